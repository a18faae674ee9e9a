"""Quantized tensors and fake quantization, bit for bit against torch.

Inputs mix random values with exact half-way points (k + 0.5) * scale, where the
rounding rule (half to even) and the order of float32 operations decide the result.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import ember

warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")

QDTYPES = [(ember.quint8, torch.quint8), (ember.qint8, torch.qint8),
           (ember.qint32, torch.qint32)]


def _inputs(rng, shape, scale):
    x = rng.standard_normal(shape) * rng.uniform(0.05, 40)
    halves = (rng.integers(-300, 300, shape) + 0.5) * np.asarray(scale)
    return np.where(rng.random(shape) < 0.4, halves, x).astype(np.float32)


def _bits(a):
    return np.ascontiguousarray(a, np.float32).view(np.int32)


@pytest.mark.parametrize("edt, tdt", QDTYPES, ids=lambda d: str(d))
@pytest.mark.parametrize("n", [1, 7, 33, 1000])
def test_quantize_per_tensor_bit_exact(rng, edt, tdt, n):
    for _ in range(6):
        scale = float(rng.choice([rng.uniform(1e-4, 1.0), 0.1, 1 / 3, 2 ** -7]))
        lo, hi = {ember.quint8: (0, 256), ember.qint8: (-128, 128),
                  ember.qint32: (-1000, 1000)}[edt]
        zp = int(rng.integers(lo, hi))
        x = _inputs(rng, (n,), scale)
        tq = torch.quantize_per_tensor(torch.from_numpy(x), scale, zp, tdt)
        eq = ember.quantize_per_tensor(ember.tensor(x), scale, zp, edt)
        assert eq.dtype is edt and eq.is_quantized and eq.qscheme() is ember.per_tensor_affine
        assert eq.q_scale() == tq.q_scale() and eq.q_zero_point() == tq.q_zero_point()
        np.testing.assert_array_equal(eq.int_repr().numpy(), tq.int_repr().numpy())
        assert eq.int_repr().dtype == {ember.quint8: ember.uint8, ember.qint8: ember.int8,
                                       ember.qint32: ember.int32}[edt]
        np.testing.assert_array_equal(_bits(eq.dequantize().numpy()),
                                      _bits(tq.dequantize().numpy()))


@pytest.mark.parametrize("edt, tdt", QDTYPES, ids=lambda d: str(d))
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_quantize_per_channel_bit_exact(rng, edt, tdt, axis):
    shape = [3, 5, 4]
    c = shape[axis]
    scales = rng.uniform(1e-3, 0.5, c)
    lo, hi = {ember.quint8: (0, 256), ember.qint8: (-128, 128),
              ember.qint32: (-100, 100)}[edt]
    zps = rng.integers(lo, hi, c)
    bshape = [1, 1, 1]
    bshape[axis] = c
    x = _inputs(rng, shape, scales.reshape(bshape))
    tq = torch.quantize_per_channel(torch.from_numpy(x), torch.from_numpy(scales),
                                    torch.from_numpy(zps), axis, tdt)
    eq = ember.quantize_per_channel(ember.tensor(x), ember.tensor(scales), ember.tensor(zps),
                                    axis, edt)
    assert eq.qscheme() is ember.per_channel_affine
    assert eq.q_per_channel_axis() == tq.q_per_channel_axis()
    np.testing.assert_array_equal(eq.q_per_channel_scales().numpy(),
                                  tq.q_per_channel_scales().numpy())
    np.testing.assert_array_equal(eq.q_per_channel_zero_points().numpy(),
                                  tq.q_per_channel_zero_points().numpy())
    np.testing.assert_array_equal(eq.int_repr().numpy(), tq.int_repr().numpy())
    np.testing.assert_array_equal(_bits(eq.dequantize().numpy()),
                                  _bits(tq.dequantize().numpy()))


@pytest.mark.parametrize("qmin, qmax", [(0, 255), (-128, 127), (0, 127), (-64, 63), (0, 15)])
def test_fake_quantize_per_tensor_forward_and_straight_through_grad(rng, qmin, qmax):
    for n in (7, 33, 500):
        scale = float(rng.uniform(1e-3, 0.5))
        zp = int(rng.integers(qmin, qmax + 1))
        x = _inputs(rng, (n,), scale)
        g = rng.standard_normal(n).astype(np.float32)
        tx = torch.from_numpy(x).requires_grad_()
        ty = torch.fake_quantize_per_tensor_affine(tx, scale, zp, qmin, qmax)
        ty.backward(torch.from_numpy(g))
        ex = ember.tensor(x, requires_grad=True)
        ey = ember.fake_quantize_per_tensor_affine(ex, scale, zp, qmin, qmax)
        ey.backward(ember.tensor(g))
        np.testing.assert_array_equal(_bits(ey.detach().numpy()), _bits(ty.detach().numpy()))
        np.testing.assert_array_equal(ex.grad.numpy(), tx.grad.numpy())


@pytest.mark.parametrize("axis, qmin, qmax", [(0, 0, 255), (1, -128, 127), (2, 0, 15)])
def test_fake_quantize_per_channel_forward_and_grad(rng, axis, qmin, qmax):
    shape = [4, 6, 5]
    c = shape[axis]
    scale = rng.uniform(1e-3, 0.3, c).astype(np.float32)
    zp = rng.integers(qmin, qmax + 1, c).astype(np.int32)
    bshape = [1, 1, 1]
    bshape[axis] = c
    x = _inputs(rng, shape, scale.reshape(bshape))
    g = rng.standard_normal(shape).astype(np.float32)
    tx = torch.from_numpy(x).requires_grad_()
    ty = torch.fake_quantize_per_channel_affine(tx, torch.from_numpy(scale),
                                                torch.from_numpy(zp), axis, qmin, qmax)
    ty.backward(torch.from_numpy(g))
    ex = ember.tensor(x, requires_grad=True)
    ey = ember.fake_quantize_per_channel_affine(ex, ember.tensor(scale), ember.tensor(zp),
                                                axis, qmin, qmax)
    ey.backward(ember.tensor(g))
    np.testing.assert_array_equal(_bits(ey.detach().numpy()), _bits(ty.detach().numpy()))
    np.testing.assert_array_equal(ex.grad.numpy(), tx.grad.numpy())


def test_ops_on_quantized_tensors_keep_qparams_or_refuse(rng):
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    tq = torch.quantize_per_tensor(torch.from_numpy(x), 0.05, 10, torch.quint8)
    eq = ember.quantize_per_tensor(ember.tensor(x), 0.05, 10, ember.quint8)
    for e, t in [(eq.reshape(6, 16), tq.reshape(6, 16)), (ember.relu(eq), torch.relu(tq)),
                 (ember.flatten(eq, 1), torch.flatten(tq, 1)),
                 (ember.nn.functional.max_pool2d(eq, 2), torch.nn.functional.max_pool2d(tq, 2)),
                 (eq.permute(0, 2, 3, 1), tq.permute(0, 2, 3, 1))]:
        assert e.dtype is ember.quint8 and e.q_scale() == t.q_scale()
        assert e.q_zero_point() == t.q_zero_point()
        np.testing.assert_array_equal(e.int_repr().numpy(), t.int_repr().numpy())
    with pytest.raises(NotImplementedError, match="add: not supported on quantized tensors"):
        eq + eq
    with pytest.raises(ember.EmberError, match="int_repr"):
        eq.numpy()


def test_keyword_only_arguments_reach_ops_on_quantized_tensors(rng):
    # contiguous(memory_format=...) is keyword-only: it must reach the op as a keyword
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    tq = torch.quantize_per_tensor(torch.from_numpy(x), 0.05, 3, torch.quint8)
    eq = ember.quantize_per_tensor(ember.tensor(x), 0.05, 3, ember.quint8)
    e = eq.contiguous(memory_format=ember.channels_last)
    t = tq.contiguous(memory_format=torch.channels_last)
    assert e.is_contiguous(memory_format=ember.channels_last)
    assert e.stride() == t.stride() and e.q_scale() == t.q_scale()
    np.testing.assert_array_equal(e.int_repr().numpy(), t.int_repr().numpy())


def test_bad_quantize_arguments_are_clear_errors():
    x = ember.randn(3, 4)
    with pytest.raises(ember.DTypeError, match="quantized dtype"):
        ember.quantize_per_tensor(x, 0.1, 0, ember.int8)
    with pytest.raises(ember.DTypeError, match="floating point"):
        ember.quantize_per_tensor(ember.ones(3, dtype=ember.int64), 0.1, 0, ember.quint8)
    with pytest.raises(ember.ShapeError, match="size 3"):
        ember.quantize_per_channel(x, ember.ones(4), ember.zeros(4), 0, ember.qint8)
    with pytest.raises(ember.ShapeError, match="Channel axis out of range"):
        ember.quantize_per_channel(x, ember.ones(4), ember.zeros(4), -1, ember.qint8)
    with pytest.raises(AttributeError):
        x.q_scale()


def test_quantized_dtypes_print_and_parse_in_ir():
    from ember.ir import dtypes
    for d in (ember.quint8, ember.qint8, ember.qint32):
        assert dtypes.dtype_from_name(d.short) is d and dtypes.dtype_from_name(d.name) is d
        assert not d.is_floating_point and d.is_quantized
    assert ember.qint8.is_signed and not ember.quint8.is_signed
    assert not ember.uint8.is_quantized


def test_quantized_dtypes_do_not_promote():
    with pytest.raises(ember.DTypeError, match="quantized"):
        ember.promote_types(ember.quint8, ember.float32)


def test_inplace_relu_on_a_quantized_tensor_clamps_at_the_zero_point(rng):
    x = rng.standard_normal(50).astype(np.float32)
    eq = ember.quantize_per_tensor(ember.tensor(x), 0.1, 50, ember.quint8)
    tq = torch.quantize_per_tensor(torch.from_numpy(x), 0.1, 50, torch.quint8)
    eq.relu_()
    tq.relu_()
    np.testing.assert_array_equal(eq.int_repr().numpy(), tq.int_repr().numpy())
    with pytest.raises(NotImplementedError, match="add"):
        eq.add_(eq)
