"""ember.utils._pytree against torch.utils._pytree, and torch's autograd submodule paths."""
import collections

import torch.utils._pytree as tp

import ember
from ember.utils import _pytree as ep

P = collections.namedtuple("P", "a b")
TREES = [{"x": [1, 2, (3, 4)], "y": P(5, 6)}, [1, [2, [3, [4]]]], (1,), {"b": 1, "a": 2}, 7]


def test_flatten_map_unflatten_match_torch():
    for tree in TREES:
        leaves, spec = ep.tree_flatten(tree)
        assert leaves == tp.tree_flatten(tree)[0]
        assert ep.tree_leaves(tree) == tp.tree_leaves(tree)
        assert ep.tree_unflatten(leaves, spec) == tree
        assert ep.tree_unflatten(leaves, ep.tree_structure(tree)) == tree
        assert ep.tree_map(lambda v: v * 10, tree) == tp.tree_map(lambda v: v * 10, tree)
        assert ep.tree_map(lambda a, b: a + b, tree, tree) == \
            tp.tree_map(lambda a, b: a + b, tree, tree)


def test_autograd_submodule_paths():
    from ember.autograd.anomaly_mode import detect_anomaly
    from ember.autograd.grad_mode import no_grad
    assert no_grad is ember.no_grad
    assert detect_anomaly is ember.autograd.detect_anomaly
