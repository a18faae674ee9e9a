"""Quantized compute ops (NumPy int-accumulate references) against torch.ao's quantized
modules on the same quantized operands: equal integers (Linear), or one step apart where
torch's kernels round differently (the x86 engine's oneDNN convolutions, tails of its
quantized add, pooling)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.ao.nn.quantized as nnq

import ember

pytestmark = pytest.mark.filterwarnings("ignore:.*quantized tensor creation")
torch.backends.quantized.engine = "x86"


def both_per_tensor(x, scale, zp, tdtype=torch.quint8, edtype=ember.quint8):
    return (ember.quantize_per_tensor(ember.tensor(x), scale, zp, edtype),
            torch.quantize_per_tensor(torch.from_numpy(x), scale, zp, tdtype))


def both_weight(rng, shape, per_channel):
    w = (rng.standard_normal(shape) * 0.2).astype(np.float32)
    if per_channel:
        scales = np.abs(w.reshape(shape[0], -1)).max(1) / 127.0
        zps = np.zeros(shape[0], np.int64)
        return (ember.quantize_per_channel(ember.tensor(w), ember.tensor(scales),
                                           ember.tensor(zps), 0, ember.qint8),
                torch.quantize_per_channel(torch.from_numpy(w), torch.from_numpy(scales),
                                           torch.from_numpy(zps), 0, torch.qint8))
    scale = float(np.abs(w).max() / 127.0)
    return (ember.quantize_per_tensor(ember.tensor(w), scale, 0, ember.qint8),
            torch.quantize_per_tensor(torch.from_numpy(w), scale, 0, torch.qint8))


def assert_within_one_step(e, t, what):
    diff = np.abs(e.int_repr().numpy().astype(np.int64) - t.int_repr().numpy().astype(np.int64))
    assert e.q_scale() == t.q_scale() and e.q_zero_point() == t.q_zero_point()
    assert diff.max() <= 1, f"{what}: {diff.max()} steps apart"
    assert (diff == 0).mean() > 0.97, f"{what}: only {(diff == 0).mean():.3f} equal"


@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("relu", [False, True])
def test_quantized_linear_matches_torch(rng, per_channel, relu):
    x = rng.standard_normal((6, 32)).astype(np.float32)
    ex, tx = both_per_tensor(x, 0.03, 120)
    ew, tw = both_weight(rng, (16, 32), per_channel)
    bias = rng.standard_normal(16).astype(np.float32)
    mod = (torch.ao.nn.intrinsic.quantized.LinearReLU if relu else nnq.Linear)(32, 16)
    mod.set_weight_bias(tw, torch.from_numpy(bias))
    mod.scale, mod.zero_point = 0.08, 60
    ty = mod(tx)
    ey = ember.quantized_linear(ex, ew, ember.tensor(bias), 0.08, 60, relu)
    # fbgemm runs torch.ao's Linear: its requantization is ember's, bit for bit
    np.testing.assert_array_equal(ey.int_repr().numpy(), ty.int_repr().numpy())


@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("relu", [False, True])
def test_quantized_conv2d_matches_torch(rng, per_channel, relu):
    x = rng.standard_normal((2, 4, 9, 9)).astype(np.float32)
    ex, tx = both_per_tensor(x, 0.03, 120)
    ew, tw = both_weight(rng, (6, 2, 3, 3), per_channel)
    bias = rng.standard_normal(6).astype(np.float32)
    cls = torch.ao.nn.intrinsic.quantized.ConvReLU2d if relu else nnq.Conv2d
    mod = cls(4, 6, 3, stride=2, padding=1, groups=2)
    mod.set_weight_bias(tw, torch.from_numpy(bias))
    mod.scale, mod.zero_point = 0.1, 50
    ty = mod(tx)
    ey = ember.quantized_conv2d(ex, ew, ember.tensor(bias), [2, 2], [1, 1], [1, 1], 2, 0.1, 50,
                                relu)
    assert_within_one_step(ey, ty, "quantized_conv2d")


def test_quantized_add_mul_and_pooling_match_torch(rng):
    a, b = (rng.standard_normal((2, 3, 6, 6)).astype(np.float32) for _ in range(2))
    ea, ta = both_per_tensor(a, 0.02, 130)
    eb, tb = both_per_tensor(b, 0.03, 120)
    assert_within_one_step(ember.quantized_add(ea, eb, 0.05, 128),
                           torch.ops.quantized.add(ta, tb, 0.05, 128), "add")
    assert_within_one_step(ember.quantized_add(ea, eb, 0.05, 128, True),
                           torch.ops.quantized.add_relu(ta, tb, 0.05, 128), "add_relu")
    assert_within_one_step(ember.quantized_mul(ea, eb, 0.05, 128),
                           torch.ops.quantized.mul(ta, tb, 0.05, 128), "mul")
    pooled = ember.nn.functional.adaptive_avg_pool2d(ea, 1)
    assert_within_one_step(pooled, torch.nn.functional.adaptive_avg_pool2d(ta, 1), "avgpool")
    assert_within_one_step(ember.nn.functional.avg_pool2d(ea, 2),
                           torch.nn.functional.avg_pool2d(ta, 2), "avg_pool2d")


def test_quantized_linear_dynamic_close_to_torch(rng):
    x = rng.standard_normal((8, 32)).astype(np.float32)
    ew, tw = both_weight(rng, (16, 32), True)
    bias = rng.standard_normal(16).astype(np.float32)
    mod = torch.ao.nn.quantized.dynamic.Linear(32, 16)
    mod.set_weight_bias(tw, torch.from_numpy(bias))
    ty = mod(torch.from_numpy(x)).numpy()
    ey = ember.quantized_linear_dynamic(ember.tensor(x), ew, ember.tensor(bias)).numpy()
    step = np.abs(x).max() / 127 * 0.2 * np.sqrt(32)
    assert np.abs(ey - ty).max() < step, np.abs(ey - ty).max()


def test_quantized_ops_refuse_float_operands():
    with pytest.raises(ember.DTypeError, match="quantized_linear: expected input to be a "
                                               "quantized tensor"):
        ember.quantized_linear(ember.randn(2, 3), ember.randn(4, 3), None, 0.1, 0)


@pytest.mark.skipif(not __import__("ember.codegen.llvm.qgemm", fromlist=["x"]).has_vnni(),
                    reason="this CPU has no AVX-512 VNNI")
@pytest.mark.parametrize("shape, n, per_channel, x_zp", [
    ((6, 32), 64, True, 120), ((5, 13), 70, False, 0), ((2, 3, 40), 17, True, 255),
    ((1, 1), 1, False, 7), ((13, 40), 32, True, 3), ((25, 8), 16, False, 200)])
def test_vnni_int8_gemm_equals_the_reference_bit_for_bit(rng, shape, n, per_channel, x_zp):
    from ember.codegen.quantized import kernel_for
    from ember.ir.ops.quantized import quantized_linear as op
    x = rng.standard_normal(shape).astype(np.float32)
    ex = ember.quantize_per_tensor(ember.tensor(x), 0.03, x_zp, ember.quint8)
    ew, _ = both_weight(rng, (n, shape[-1]), per_channel)
    bias = ember.tensor(rng.standard_normal(n).astype(np.float32))
    args = [ex._qarray(), ew._qarray(), bias.numpy(), 0.07, 100, True]
    kernel = kernel_for("quantized_linear", args, {})
    assert kernel is not None
    np.testing.assert_array_equal(kernel().int_repr, op.reference(*args).int_repr)
    dyn = [x, ew._qarray(), bias.numpy(), False]
    from ember.ir.ops.quantized import quantized_linear_dynamic as dop
    np.testing.assert_array_equal(kernel_for("quantized_linear_dynamic", dyn, {})(),
                                  dop.reference(*dyn))


@pytest.mark.skipif(not __import__("ember.codegen.llvm.qgemm", fromlist=["x"]).has_vnni(),
                    reason="this CPU has no AVX-512 VNNI")
@pytest.mark.parametrize("shape, oc, stride, padding, dilation", [
    ((2, 3, 9, 9), 8, (1, 1), (1, 1), (1, 1)), ((1, 4, 12, 10), 5, (2, 2), (1, 0), (1, 1)),
    ((2, 2, 11, 11), 6, (1, 2), (2, 2), (2, 2)), ((3, 16, 7, 9), 32, (1, 1), (1, 1), (1, 1)),
    ((1, 8, 10, 10), 24, (2, 1), (0, 1), (1, 1))])
def test_vnni_int8_conv_equals_the_reference_bit_for_bit(rng, shape, oc, stride, padding,
                                                         dilation):
    from ember.codegen.quantized import kernel_for
    from ember.ir.ops.quantized import quantized_conv2d as op
    x = rng.standard_normal(shape).astype(np.float32)
    ex = ember.quantize_per_tensor(ember.tensor(x), 0.02, 100, ember.quint8)
    ew, _ = both_weight(rng, (oc, shape[1], 3, 3), True)
    args = [ex._qarray(), ew._qarray(), rng.standard_normal(oc).astype(np.float32),
            list(stride), list(padding), list(dilation), 1, 0.05, 90, True]
    kernel = kernel_for("quantized_conv2d", args, {})
    assert kernel is not None
    np.testing.assert_array_equal(kernel().int_repr, op.reference(*args).int_repr)
