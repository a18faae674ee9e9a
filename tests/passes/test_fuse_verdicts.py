"""Fusion asks codegen's group checker once per distinct candidate structure (passes/fuse.py
`_problem`): repeated structures reuse the verdict, and anything that could change it (the
checker, an op, shapes, strides, dtypes, scalar arguments, which members leave the group)
gives another key. The grouping equals the one made asking the checker every time."""
import ember
from ember.ir import fused as F
from ember.ir.fused import FusedGroup
from ember.ir.meta import meta_of
from ember.ir.symbolic import build_graph, call_graph
from ember.passes import fuse as fuse_module
from ember.passes.fuse import extract_group, fuse, plan_groups
from ember.passes.manager import PassContext


def _graph(fn, *inputs):
    graph, constants = build_graph(fn, [meta_of(t) for t in inputs])
    return graph, constants


def _block(x, w):
    # the same pointwise-then-reduction candidates twice: the second block repeats them
    y = (x * w + 1.0).relu().sum(-1, keepdim=True)
    z = ((x + y) * w + 1.0).relu().sum(-1, keepdim=True)
    return (y + z).sigmoid()


def _plan_asking_every_time(graph):
    saved = fuse_module._problem
    fuse_module._problem = lambda g, nodes: F.group_problem(extract_group(nodes)[0])
    try:
        return plan_groups(graph)
    finally:
        fuse_module._problem = saved


def _names(groups):
    return [[n.name for n in g] for g in groups]


def test_repeated_structures_ask_once_and_group_as_before():
    graph, _ = _graph(_block, ember.randn(4, 8), ember.randn(8))
    asked, checker = [], F._group_checker[0]
    F.register_group_checker(lambda g: asked.append(g) or checker(g))
    fuse_module._VERDICTS.clear()
    try:
        planned = plan_groups(graph)
        first = len(asked)
        assert _names(planned) == _names(_plan_asking_every_time(graph))
        asked.clear()
        assert _names(plan_groups(graph)) == _names(planned)
    finally:
        F.register_group_checker(checker)
    assert first > 0 and asked == []          # the same graph again: every verdict known


def test_another_checker_gets_its_own_verdicts():
    graph, _ = _graph(lambda x: (x * 2.0).relu() + 1.0, ember.randn(4, 8))
    checker = F._group_checker[0]
    try:
        merged = [n for n in plan_groups(graph) if len(n) > 1]
        F.register_group_checker(lambda g: "no fusion today")
        alone = plan_groups(graph)
    finally:
        F.register_group_checker(checker)
    assert merged and all(len(g) == 1 for g in alone)


def test_keys_tell_shapes_strides_scalars_and_outputs_apart():
    def key(fn, *inputs):
        graph, _ = _graph(fn, *inputs)
        nodes = [n for n in graph.nodes if n.op == "call_function"]
        return fuse_module._structure_key(nodes)
    x = ember.randn(4, 8)
    base = key(lambda a: (a * 2.0).relu(), x)
    assert base is not None and base == key(lambda a: (a * 2.0).relu(), ember.randn(4, 8))
    assert base != key(lambda a: (a * 3.0).relu(), x)
    assert base != key(lambda a: (a * 2.0).relu(), ember.randn(4, 9))
    assert base != key(lambda a: (a * 2.0).relu(), ember.randn(8, 4).t())
    assert base != key(lambda a: (a * 2.0).relu(), x.double())
    assert base != key(lambda a: (a * 2.0).sigmoid(), x)
    assert key(lambda a: (a * 0.0).relu(), x) != key(lambda a: (a * -0.0).relu(), x)
    both = key(lambda a: ((a * 2.0), (a * 2.0).relu()), x)     # the product leaves too
    assert both != base


def test_fused_results_match_eager():
    inputs = (ember.randn(4, 8), ember.randn(8))
    graph, constants = _graph(_block, *inputs)
    fuse(graph, PassContext(constants=constants))
    assert any(isinstance(n.target, FusedGroup) for n in graph.nodes)
    want, got = _block(*inputs), call_graph(graph, inputs, constants)
    assert ember.allclose(got, want, rtol=1e-5, atol=1e-6)


def test_erasing_in_turn_is_erase_node_for_each():
    from ember.ir.errors import VerifyError
    graph, _ = _graph(lambda x: (x * 2.0).relu() + 1.0, ember.randn(4, 8))
    calls = [n for n in graph.nodes if n.op == "call_function"]
    graph.output_node.args = (calls[0],)              # the relu and add are unused now
    graph._erase_in_turn(reversed(calls[1:]))
    assert [n for n in graph.nodes if n.op == "call_function"] == calls[:1]
    assert all(n._erased for n in calls[1:]) and set(calls[0].users) == {graph.output_node}
    try:
        graph._erase_in_turn([calls[0]])              # still read by the output
    except VerifyError:
        pass
    else:
        raise AssertionError("erasing a node with users must fail")
    assert calls[0] in graph.nodes and not calls[0]._erased
