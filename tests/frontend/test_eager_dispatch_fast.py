"""Eager dispatch shortcuts (docs/eager.md): NumPy backwards for linear, sum/mean and
mul/div by a number, in-place arithmetic without a graph, basic indexing without a
graph. Each must give exactly what the full path gives (values bit for bit, strides,
versions, errors) and agree with PyTorch."""
import numpy as np
import pytest
import torch

import ember
import ember.nn.functional as EF
from ember.frontend import eager_fast
from ember.frontend import tensor as tensor_module
from ember.frontend.autograd import engine
from ember.ir.registry import OPS

RNG = np.random.default_rng(11)


def _grads(fn, arrays, requires):
    ts = [ember.tensor(a, requires_grad=r) for a, r in zip(arrays, requires)]
    out = fn(*ts)
    (out * out).sum().backward()
    return [None if t.grad is None else (t.grad.numpy().copy(), t.grad.stride()) for t in ts]


def _torch_grads(fn, arrays, requires):
    ts = [torch.tensor(a, requires_grad=r) for a, r in zip(arrays, requires)]
    out = fn(*ts)
    (out * out).sum().backward()
    return [None if t.grad is None else t.grad.numpy() for t in ts]


BACKWARD_CASES = [
    # (name, fn for either library, shapes, requires_grad per input)
    ("linear", lambda x, w, b: (EF if isinstance(x, ember.Tensor) else torch.nn.functional)
     .linear(x, w, b), [(4, 16), (8, 16), (8,)], [True, True, True]),
    ("linear big", lambda x, w, b: (EF if isinstance(x, ember.Tensor) else torch.nn.functional)
     .linear(x, w, b), [(64, 300), (200, 300), (200,)], [False, True, True]),
    ("linear 3-d", lambda x, w, b: (EF if isinstance(x, ember.Tensor) else torch.nn.functional)
     .linear(x, w, b), [(2, 3, 5), (4, 5), (4,)], [True, True, False]),
    ("sum", lambda x: x.sum() * x.sum(), [(3, 4)], [True]),
    ("sum dims", lambda x: x.sum([0, 2]), [(2, 3, 4)], [True]),
    ("mean keepdim", lambda x: x.mean(1, keepdim=True), [(2, 1, 4)], [True]),
    ("mul scalar", lambda x: x * 2.5, [(3, 4)], [True]),
    ("mul broadcast", lambda x, y: x * y, [(3, 4), (4,)], [True, False]),
    ("div scalar", lambda x: x / 3, [(3, 4)], [True]),
    ("div tensor", lambda x, y: x / (y * y + 1), [(3, 4), (3, 1)], [True, True]),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,fn,shapes,requires", BACKWARD_CASES,
                         ids=[c[0] for c in BACKWARD_CASES])
def test_array_backwards_match_the_composed_rules_and_torch(monkeypatch, name, fn, shapes,
                                                            requires, dtype):
    arrays = [RNG.standard_normal(s).astype(dtype) for s in shapes]
    fast = _grads(fn, arrays, requires)
    fast = _grads(fn, arrays, requires)         # the second call: kernel choices made
    with monkeypatch.context() as m:
        m.setattr(engine, "ARRAY_BACKWARD", {})
        composed = _grads(fn, arrays, requires)
    expected = _torch_grads(fn, arrays, requires)
    for got, ref, want in zip(fast, composed, expected):
        assert (got is None) == (ref is None) == (want is None)
        if got is None:
            continue
        assert got[1] == ref[1]
        np.testing.assert_array_equal(got[0], ref[0])
        tol = 1e-4 if dtype == np.float32 else 1e-10      # float sums in another order
        np.testing.assert_allclose(got[0], want, rtol=tol,
                                   atol=tol * max(1.0, float(np.abs(want).max())))


def test_array_backwards_are_taken(monkeypatch):
    taken = []
    for name in ("linear", "sum", "mul", "div"):
        rule = engine.ARRAY_BACKWARD[OPS[name]]

        def counted(*args, _rule=rule, _name=name):
            out = _rule(*args)
            taken.append((_name, out is not None))
            return out
        counted.takes_tensor = getattr(rule, "takes_tensor", False)
        monkeypatch.setitem(engine.ARRAY_BACKWARD, OPS[name], counted)
    x = ember.randn(4, 16, requires_grad=True)
    w = ember.randn(8, 16, requires_grad=True)
    (EF.linear(x, w) * 2.0 / 4).sum().backward()
    assert sorted(taken) == [("div", True), ("linear", True), ("mul", True), ("sum", True)]


def test_create_graph_keeps_the_composed_rules():
    x = ember.randn(3, requires_grad=True)
    (g,) = ember.autograd.grad((x * x / 2).mean(), x, create_graph=True)
    (gg,) = ember.autograd.grad(g.sum(), x)     # through the composed rules' graph
    xt = torch.tensor(x.detach().numpy(), requires_grad=True)
    (gt,) = torch.autograd.grad((xt * xt / 2).mean(), xt, create_graph=True)
    (ggt,) = torch.autograd.grad(gt.sum(), xt)
    assert g.requires_grad and gt.requires_grad
    np.testing.assert_allclose(g.detach().numpy(), gt.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(gg.numpy(), ggt.numpy(), rtol=1e-6)


# --- in-place arithmetic without a graph -------------------------------------------------

def _in_place_script(x, y):
    for _ in range(3):
        x.add_(1.5)
        x.mul_(0.9)
        x.sub_(y)
        x.add_(y, alpha=-0.1)
        x.sub_(y, alpha=3)
        x.add_(2)
        x.relu_()
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_in_place_fast_path_matches_the_full_path(monkeypatch, dtype):
    a, b = RNG.standard_normal((3, 4)).astype(dtype), RNG.standard_normal((4,)).astype(dtype)
    fast = _in_place_script(ember.tensor(a), ember.tensor(b))
    with monkeypatch.context() as m:
        m.setattr(eager_fast, "SPECIAL_CALLS", {})
        full = _in_place_script(ember.tensor(a), ember.tensor(b))
    np.testing.assert_array_equal(fast.numpy(), full.numpy())
    assert fast._version == full._version == 21
    t = _in_place_script(torch.tensor(a), torch.tensor(b))
    np.testing.assert_allclose(fast.numpy(), t.numpy(), rtol=1e-5, atol=1e-5)


def test_in_place_fast_path_errors_and_graphs():
    x = ember.randn(3)
    for _ in range(2):                          # seen, then looked up: raised both times
        with pytest.raises(ember.ir.errors.ShapeError, match="add_"):
            x.add_(ember.randn(4))
    w = ember.randn(3, requires_grad=True)
    with pytest.raises(ember.ir.errors.AutogradError, match="leaf Variable"):
        w.add_(1.0)
    with ember.no_grad():
        w.add_(1.0)
        w.add_(1.0)
    assert w.grad_fn is None and w._version == 2
    h = w * 1.0                                 # recording: the full path, with history
    h.mul_(2.0)
    h.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), np.full(3, 2.0, np.float32))
    assert type(h.grad_fn).__name__ == "MulBackward0"


# --- basic indexing without a graph ----------------------------------------------------

INDEXES = [0, -1, slice(1, 3), slice(None, None, 2), (1, 2), (slice(None), 1),
           (slice(None), slice(1, 4), 2), (2, slice(0, 10, 3)), (-4, -5, -6)]


@pytest.mark.parametrize("index", INDEXES, ids=[repr(i) for i in INDEXES])
def test_basic_indexing_fast_path_matches_getitem_and_torch(monkeypatch, index):
    x = ember.randn(4, 5, 6)
    xt = torch.tensor(x.numpy())
    fast = x[index]
    with monkeypatch.context() as m:
        m.setattr(tensor_module, "FAST_GETITEM", [])
        full = x[index]
    want = xt[index]
    assert fast.shape == full.shape == tuple(want.shape)
    assert fast.stride() == full.stride() == want.stride()
    assert fast.storage_offset() == full.storage_offset() == want.storage_offset()
    assert fast._base is full._base is x
    np.testing.assert_array_equal(fast.numpy(), want.numpy())


def test_basic_indexing_fast_path_views_errors_and_graphs():
    x = ember.randn(4, 5)
    row = x[1]
    row.add_(1.0)
    assert x._version == row._version == 1
    np.testing.assert_array_equal(x.numpy()[1], row.numpy())
    with pytest.raises(IndexError, match="out of bounds"):
        x[4]
    with pytest.raises(IndexError, match="too many indices"):
        x[0, 0, 0]
    w = ember.randn(4, 5, requires_grad=True)
    assert type(w[1].grad_fn).__name__ == "SelectBackward0"
    with ember.no_grad():
        assert w[1].grad_fn is None and w[:, 1:3]._base is w
