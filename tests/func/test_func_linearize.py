"""torch.func.linearize, functionalize and replace_all_batch_norm_modules_ against torch."""
import numpy as np
import pytest
import torch

import ember


def _pair(*shape, seed=0):
    a = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return ember.tensor(a), torch.tensor(a)


def test_linearize_matches_torch():
    (x, tx), (t, tt) = _pair(5), _pair(5, seed=1)
    out, jvp_fn = ember.func.linearize(lambda a: a.sin() * a, x)
    tout, tjvp_fn = torch.func.linearize(lambda a: a.sin() * a, tx)
    np.testing.assert_allclose(out.numpy(), tout.numpy(), rtol=1e-6)
    np.testing.assert_allclose(jvp_fn(t).numpy(), tjvp_fn(tt).numpy(), rtol=1e-5, atol=1e-6)


def test_functionalize_keeps_results_and_input_mutations():
    def f(a):
        a.add_(1)
        return a * 2
    (x, tx) = _pair(3)
    out, tout = ember.func.functionalize(f)(x), torch.func.functionalize(f)(tx)
    np.testing.assert_allclose(out.numpy(), tout.numpy())
    np.testing.assert_allclose(x.numpy(), tx.numpy())
    for m in (ember, torch):
        with pytest.raises(RuntimeError, match="invalid argument"):
            m.func.functionalize(f, remove="views")


def _mutating(a):
    y = a.clone()
    y.add_(1)
    y[0] = 5                      # copy_ into a select view
    y.view(2, 3).mul_(3)          # through a reshaping view
    window = y[1:3]               # a view taken before its base changes again
    y.sub_(0.5)
    a.mul_(2)
    a[1:].sub_(1)                 # an input mutated through a slice
    return y * 2 + window.sum(), a.t()


def _op_name(target) -> str:
    """'add_' for ember's registry op and for torch's aten.add_.Tensor alike."""
    name = getattr(target, "name", None)
    return name if isinstance(name, str) else target.__name__.split(".")[0]


def _graph_ops(gm):
    return [_op_name(n.target) for n in gm.graph.nodes if n.op == "call_function"]


def test_make_fx_of_functionalize_removes_mutations_as_torch():
    """Traced through make_fx, functionalize's graph has no in-place op but the input's
    final copy_, writes views back with scatters, and computes what f computes, input
    mutation included (as torch's)."""
    from ember.fx.experimental.proxy_tensor import make_fx as ember_make_fx
    from torch.fx.experimental.proxy_tensor import make_fx as torch_make_fx
    results = []
    for lib, make_fx in ((ember, ember_make_fx), (torch, torch_make_fx)):
        gm = make_fx(lib.func.functionalize(_mutating))(lib.arange(6.0))
        ops = _graph_ops(gm)
        assert [op for op in ops if op.endswith("_")] == ["copy_"], ops
        assert "select_scatter" in ops and "slice_scatter" in ops
        fresh = lib.arange(6.0)
        out = gm(fresh)
        results.append([t.numpy() for t in out] + [fresh.numpy()])
    eager = ember.arange(6.0)
    expected = [t.numpy() for t in _mutating(eager)] + [eager.numpy()]
    for ours, theirs, eagers in zip(*results, expected):
        np.testing.assert_allclose(ours, theirs)
        np.testing.assert_allclose(ours, eagers)


def test_make_fx_of_functionalize_keeps_mutations_it_cannot_invert():
    """A mutation through an expand view (no scatter inverts it) keeps the traced
    mutation: the graph still computes what f computes."""
    from ember.fx.experimental.proxy_tensor import make_fx

    def f(a):
        b = a.clone()
        b.unfold(0, 2, 2).mul_(10)
        return b
    gm = make_fx(ember.func.functionalize(f))(ember.arange(4.0))
    np.testing.assert_allclose(gm(ember.arange(4.0)).numpy(), f(ember.arange(4.0)).numpy())


def test_replace_all_batch_norm_modules():
    model = ember.nn.Sequential(ember.nn.Linear(3, 3), ember.nn.BatchNorm1d(3))
    assert ember.func.replace_all_batch_norm_modules_(model) is model
    bn = model[1]
    assert bn.running_mean is None and bn.running_var is None and not bn.track_running_stats
    (x, tx) = _pair(4, 3)
    tbn = torch.func.replace_all_batch_norm_modules_(torch.nn.BatchNorm1d(3))
    bn.eval(), tbn.eval()     # without running stats, eval mode normalizes with batch statistics
    np.testing.assert_allclose(bn(x).detach().numpy(), tbn(tx).detach().numpy(), rtol=1e-5,
                               atol=1e-6)
