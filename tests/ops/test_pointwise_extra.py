"""Pointwise checks the op table cannot make: complex gradients, Python-scalar
operands on the left, error messages, methods/in-place variants and operators."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from ember.ir.registry import OPS

from tests.oracle import assert_close

COMPLEX_UNARY = ["exp2", "log2", "log10", "log1p", "expm1", "rsqrt", "square", "reciprocal",
                 "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh",
                 "angle", "positive", "imag"]


def _z(rng, *shape, lo=0.3, hi=0.8):
    mag = rng.uniform(lo, hi, shape)
    return np.asarray(mag * np.exp(1j * rng.uniform(0.2, 1.2, shape)), np.complex128)


@pytest.mark.parametrize("name", COMPLEX_UNARY)
def test_complex_gradients_match_torch(name, rng):
    z = _z(rng, 3, 4)
    if name == "acosh":
        z = z + 2.0
    cot = _z(rng, 3, 4)
    e = ember.tensor(z).requires_grad_(True)
    t = torch.from_numpy(z.copy()).requires_grad_(True)
    eo, to = OPS[name](e), getattr(torch, name)(t)
    c_e, c_t = ember.tensor(cot if eo.dtype.is_complex else cot.real),\
        torch.from_numpy(cot if to.is_complex() else cot.real)
    eg, = ember.autograd.grad((ember.real(eo * c_e)).sum(), [e])
    tg, = torch.autograd.grad(torch.real(to * c_t).sum(), [t])
    assert_close(eg, tg, rtol=1e-9, atol=1e-12, what=f"{name} complex grad")


@pytest.mark.parametrize("name", ["lerp", "tanhshrink"])
def test_more_complex_gradients(name, rng):
    a, b = _z(rng, 5), _z(rng, 5)
    ea, eb = (ember.tensor(v).requires_grad_(True) for v in (a, b))
    ta, tb = (torch.from_numpy(v.copy()).requires_grad_(True) for v in (a, b))
    if name == "lerp":
        eo, to = OPS["lerp"](ea, eb, 0.3), torch.lerp(ta, tb, 0.3)
        e_in, t_in = [ea, eb], [ta, tb]
    else:
        eo, to = OPS[name](ea), getattr(torch.nn.functional, name)(ta)
        e_in, t_in = [ea], [ta]
    eg = ember.autograd.grad(ember.real(eo * ember.tensor(b)).sum(), e_in)
    tg = torch.autograd.grad(torch.real(to * torch.from_numpy(b)).sum(), t_in)
    for x, y in zip(eg, tg):
        assert_close(x, y, rtol=1e-9, atol=1e-12, what=f"{name} complex grad")


def test_imag_is_a_view():
    z = ember.tensor(np.array([1 + 2j, 3 - 4j], np.complex64))
    im = ember.imag(z)
    assert im.dtype == ember.float32 and im.stride() == (2,)
    np.testing.assert_array_equal(im.numpy(), [2.0, -4.0])


def test_scalar_left_operands(rng):
    x = rng.uniform(0.5, 2.0, (3, 4))
    e = ember.tensor(x).requires_grad_(True)
    t = torch.from_numpy(x.copy()).requires_grad_(True)
    for e_fn, t_fn in [(lambda v: ember.pow(2, v), lambda v: torch.pow(2, v)),
                       (lambda v: 2.0 ** v, lambda v: 2.0 ** v),
                       (lambda v: ember.xlogy(3.0, v), lambda v: torch.xlogy(3.0, v))]:
        eo, to = e_fn(e), t_fn(t)
        assert_close(eo, to, what="scalar-left forward")
        eg, = ember.autograd.grad(eo.sum(), [e])
        tg, = torch.autograd.grad(to.sum(), [t])
        assert_close(eg, tg, what="scalar-left grad")


def test_remainder_scalar_left_gradient(rng):
    # torch has no derivative for remainder(Scalar, Tensor): check d/dx (a mod x) = -floor(a/x)
    x = rng.uniform(0.3, 2.0, (6,)) * rng.choice([-1, 1], 6)
    e = ember.tensor(x).requires_grad_(True)
    g, = ember.autograd.grad(ember.remainder(2.5, e).sum(), [e])
    np.testing.assert_allclose(g.numpy(), -np.floor(2.5 / x))


@pytest.mark.parametrize("call, message", [
    (lambda: ember.imag(ember.ones(2)), "non-complex"),
    (lambda: ember.bitwise_and(ember.ones(2), 1), "Float"),
    (lambda: ember.clamp(ember.ones(2)), "At least one"),
    (lambda: ember.sign(ember.tensor(np.array([1j], np.complex64))), "sgn"),
    (lambda: ember.positive(ember.tensor(np.array([True]))), "bool"),
    (lambda: OPS["silu"](ember.tensor(np.array([1, 2]))), "silu"),
    (lambda: ember.lerp(ember.ones(2), ember.ones(2, dtype=ember.float64), 0.5), "end"),
])
def test_errors(call, message):
    with pytest.raises(ember.EmberError, match=message):
        call()


def test_methods_inplace_and_operators(rng):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    e, t = ember.tensor(x), torch.from_numpy(x.copy())
    assert_close(e.clamp(-0.5, 0.5), t.clamp(-0.5, 0.5))
    assert_close(e.clone().clamp_(min=0.1), t.clone().clamp_(min=0.1))
    assert_close(e.clone().exp2_(), t.clone().exp2_())
    assert_close(e.round(decimals=1), t.round(decimals=1))
    assert_close(e.clone().nan_to_num_(), t.clone().nan_to_num_())
    i = rng.integers(1, 9, (3, 4))
    ei, ti = ember.tensor(i), torch.from_numpy(i.copy())
    for op in [lambda a: a // 3, lambda a: a % 3, lambda a: ~a, lambda a: a & 5,
               lambda a: a | 5, lambda a: a ^ 5, lambda a: a << 2, lambda a: a >> 1]:
        eo, to = op(ei), op(ti)
        assert str(eo.dtype).split(".")[-1] == str(to.dtype).split(".")[-1]
        assert_close(eo, to)


def test_activation_namespaces():
    for name in ["leaky_relu", "elu", "gelu", "silu", "softplus", "hardtanh", "relu6",
                 "hardsigmoid", "hardswish", "mish", "softsign", "tanhshrink"]:
        assert OPS[name].namespace == "nn.functional" and not OPS[name].method
    assert OPS["log_sigmoid"].python_name == "logsigmoid"


@pytest.mark.parametrize("number", [3.7, 3, True])
@pytest.mark.parametrize("dtype", ["float32", "int64"])
def test_number_divided_by_tensor_matches_torch_bitwise(number, dtype):
    # torch's eager `number / x` is x.reciprocal() * number: two roundings, not one
    values = np.random.RandomState(0).rand(4096) * 50 + 1
    values = values.astype(dtype)
    ours = (number / ember.tensor(values)).numpy()
    theirs = (number / torch.tensor(values)).numpy()
    assert ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours, theirs)
    grad_ours = ember.tensor(values[:8].astype("float32"), requires_grad=True)
    grad_theirs = torch.tensor(values[:8].astype("float32"), requires_grad=True)
    (number / grad_ours).sum().backward()
    (number / grad_theirs).sum().backward()
    np.testing.assert_array_equal(grad_ours.grad.numpy(), grad_theirs.grad.numpy())
