"""NumPy backwards for layer_norm, softmax, narrow, view/reshape and transpose
(eager_backward.py): the composed rule's gradients (bit for bit where the arithmetic
is the same), PyTorch's within float rounding, and views of the gradient where the
composed rule's eager call gives views."""
import numpy as np
import pytest
import torch

import ember
from ember.frontend.autograd import engine
from ember.ir.registry import OPS

RNG = np.random.default_rng(11)


def _counting(monkeypatch, name):
    op, calls = OPS[name], []
    rule = engine.ARRAY_BACKWARD[op]

    def counted(*args):
        out = rule(*args)
        calls.append(out is not None)
        return out
    counted.takes_tensor = getattr(rule, "takes_tensor", False)
    monkeypatch.setitem(engine.ARRAY_BACKWARD, op, counted)
    return calls


def _grads(lib, fn, arrays, cot):
    ts = [lib.tensor(a, requires_grad=True) for a in arrays]
    out = fn(lib, *ts)
    out.backward(lib.tensor(cot))
    return [t.grad.numpy() for t in ts]


def _check(monkeypatch, name, fn, arrays, exact=True):
    """Array rule (counted), composed rule, and torch on the same inputs."""
    with torch.no_grad():
        shape = fn(torch, *[torch.tensor(a) for a in arrays]).shape
    cot = RNG.standard_normal(tuple(shape)).astype(arrays[0].dtype)
    calls = _counting(monkeypatch, name)
    fast = _grads(ember, fn, arrays, cot)
    assert calls and all(calls)
    monkeypatch.setattr(engine, "ARRAY_BACKWARD", {})
    slow = _grads(ember, fn, arrays, cot)
    ref = _grads(torch, fn, arrays, cot)
    tol = 1e-5 if arrays[0].dtype == np.float32 else 1e-12
    for f, s, r in zip(fast, slow, ref):
        if exact:
            np.testing.assert_array_equal(f, s)
        else:
            np.testing.assert_allclose(f, s, rtol=tol, atol=tol)
        np.testing.assert_allclose(f, r, rtol=tol * 10, atol=tol * 10)


def _randn(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,ns,affine", [((4, 6, 8), (8,), True), ((3, 4, 5), (4, 5), True),
                                             ((5, 7), (7,), False)])
def test_layer_norm(monkeypatch, dtype, shape, ns, affine):
    arrays = [_randn(*shape, dtype=dtype) * 3 + 1]
    if affine:
        arrays += [_randn(*ns, dtype=dtype), _randn(*ns, dtype=dtype)]

    def fn(lib, x, *wb):
        return lib.nn.functional.layer_norm(x, list(ns), *wb, eps=1e-5)
    _check(monkeypatch, "layer_norm", fn, arrays)


def test_layer_norm_weight_only_and_frozen_input(monkeypatch):
    """A weight without a bias, and an input that needs no gradient (mask)."""
    x, w = _randn(6, 5), _randn(5)
    calls = _counting(monkeypatch, "layer_norm")
    we = ember.tensor(w, requires_grad=True)
    ember.nn.functional.layer_norm(ember.tensor(x), [5], we).sum().backward()
    wt = torch.tensor(w, requires_grad=True)
    torch.nn.functional.layer_norm(torch.tensor(x), [5], wt).sum().backward()
    assert calls == [True]
    np.testing.assert_allclose(we.grad.numpy(), wt.grad.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dim", [-1, 1, 0])
def test_softmax(monkeypatch, dim):
    _check(monkeypatch, "softmax", lambda lib, x: lib.softmax(x, dim), [_randn(3, 4, 5)])


def test_softmax_with_dtype_takes_the_composed_rule(monkeypatch):
    calls = _counting(monkeypatch, "softmax")
    x = ember.tensor(_randn(3, 4), requires_grad=True)
    ember.softmax(x, -1, dtype=ember.float64).sum().backward()
    assert calls == [False]                  # the rule declines a dtype= call
    assert x.grad.dtype == ember.float32


@pytest.mark.parametrize("dim,start,length", [(0, 1, 2), (-1, -4, 3), (1, 0, 4)])
def test_narrow(monkeypatch, dim, start, length):
    _check(monkeypatch, "narrow", lambda lib, x: x.narrow(dim, start, length) * 2.0,
           [_randn(4, 5, 6)])


def test_narrowed_pieces_accumulate(monkeypatch):
    def fn(lib, x):
        a, b, c = (x.narrow(-1, i * 3, 3) for i in range(3))
        return a * b + c
    _check(monkeypatch, "narrow", fn, [_randn(4, 9)])


@pytest.mark.parametrize("op", ["view", "reshape"])
def test_view_and_reshape(monkeypatch, op):
    _check(monkeypatch, op, lambda lib, x: getattr(x, op)(6, -1) * 3.0, [_randn(2, 3, 4)])


def test_reshape_of_a_transposed_gradient_copies(monkeypatch):
    """The cotangent reaching reshape's node is a transposed view: NumPy must copy, and
    the gradient is a fresh tensor (as the composed rule's reshape call gives)."""
    def fn(lib, x):
        return x.reshape(4, 6).t()
    _check(monkeypatch, "reshape", fn, [_randn(2, 2, 6)])


def test_transpose(monkeypatch):
    _check(monkeypatch, "transpose", lambda lib, x: x.transpose(0, 2) * 2.0, [_randn(2, 3, 4)])


def test_view_gradient_is_a_view_of_the_cotangent():
    """The array rule returns a view of the gradient (the composed rule's eager reshape
    gives one too): a leaf's .grad must still not alias the cotangent passed in."""
    x = ember.tensor(_randn(2, 6), requires_grad=True)
    cot = ember.ones(3, 4)
    x.view(3, 4).backward(cot)
    assert not np.may_share_memory(x.grad.numpy(), cot.numpy())
    cot.zero_()
    assert float(x.grad.sum()) == 12.0


def test_encoder_layer_gradients_match_torch():
    torch.manual_seed(0)
    t_layer = torch.nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
    e_layer = ember.nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
    e_layer.load_state_dict({k: ember.tensor(v.detach().numpy().copy())
                             for k, v in t_layer.state_dict().items()})
    x = _randn(2, 5, 16)
    e_layer(ember.tensor(x)).pow(2).sum().backward()
    t_layer(torch.tensor(x)).pow(2).sum().backward()
    for (name, p), (_, q) in zip(e_layer.named_parameters(), t_layer.named_parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=2e-4, atol=2e-5,
                                   err_msg=name)


def test_create_graph_uses_the_composed_rules(monkeypatch):
    calls = _counting(monkeypatch, "layer_norm")
    x = ember.tensor(_randn(3, 4), requires_grad=True)
    y = ember.nn.functional.layer_norm(x, [4]).pow(3).sum()
    (gx,) = ember.autograd.grad(y, x, create_graph=True)
    assert calls == [] and gx.requires_grad


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sa,sb", [((3, 4, 5), (3, 5, 2)), ((2, 2, 8, 16), (2, 2, 16, 8)),
                                   ((6, 7), (7, 3)), ((4, 64, 32), (4, 32, 64))])
def test_matmul_same_batch(monkeypatch, dtype, sa, sb):
    """Both sides of eager_kernels' work threshold (the last case is above it)."""
    _check(monkeypatch, "matmul", lambda lib, a, b: lib.matmul(a, b),
           [_randn(*sa, dtype=dtype), _randn(*sb, dtype=dtype)])


def test_matmul_one_operand_without_grad_and_broadcast_batch(monkeypatch):
    calls = _counting(monkeypatch, "matmul")
    a, b = _randn(2, 3, 4), _randn(2, 4, 5)
    ae = ember.tensor(a, requires_grad=True)
    ember.matmul(ae, ember.tensor(b)).sum().backward()
    at = torch.tensor(a, requires_grad=True)
    torch.matmul(at, torch.tensor(b)).sum().backward()
    np.testing.assert_allclose(ae.grad.numpy(), at.grad.numpy(), rtol=1e-5, atol=1e-6)
    be = ember.tensor(_randn(4, 5), requires_grad=True)     # broadcast batch: composed rule
    ember.matmul(ae, be).sum().backward()
    assert calls == [True, False]
    assert be.grad.shape == (4, 5)


@pytest.mark.parametrize("sa,sb", [((3, 4), (3, 4)), ((2, 3, 4), (4,)), ((3, 1), (1, 5))])
def test_add(monkeypatch, sa, sb):
    _check(monkeypatch, "add", lambda lib, a, b: (a + b) * 2.0, [_randn(*sa), _randn(*sb)])


def test_add_of_a_number_and_with_alpha(monkeypatch):
    calls = _counting(monkeypatch, "add")
    x = ember.tensor(_randn(3), requires_grad=True)
    (x + 2.0).sum().backward()
    ember.add(x, x, alpha=3).sum().backward()      # alpha: the composed rule
    assert calls == [True, False]
    np.testing.assert_array_equal(x.grad.numpy(), np.full(3, 5.0, np.float32))


def test_relu_infinite_gradients_are_zeroed_where_the_output_is_not_positive(recwarn):
    """inf * 0 is NaN: PyTorch's rule (out <= 0 ? 0 : g) gives 0 there, quietly."""
    x = np.array([-1.0, 2.0, -3.0, 4.0, 0.0], np.float32)
    for g in ([np.inf, np.inf, -np.inf, 1.0, 2.0], [3e38, 3e38, 1.0, 2.0, 3.0]):
        g = np.array(g, np.float32)
        xe = ember.tensor(x, requires_grad=True)
        ember.relu(xe).backward(ember.tensor(g))
        xt = torch.tensor(x, requires_grad=True)
        torch.relu(xt).backward(torch.tensor(g))
        np.testing.assert_array_equal(xe.grad.numpy(), xt.grad.numpy())
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
