"""The native depthwise int8 convolution (codegen/llvm/qdepthwise.py) and grouped ones
(one fused GEMM per group): bit for bit the NumPy reference on the full uint8 range, and
torch.ao's x86 result on a mobilenet-style block converted by both libraries from the
same float weights."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.ao.quantization as tq
import torch.ao.quantization.quantize_fx as tqfx

import ember
import ember.ao.quantization as eq
import ember.ao.quantization.quantize_fx as eqfx
from ember.codegen.llvm import qdepthwise as QD
from quant_twins import share_random_weights

pytestmark = [pytest.mark.filterwarnings("ignore:.*quantized tensor creation"),
              pytest.mark.skipif(not QD.available(), reason="this CPU has no AVX2")]
torch.backends.quantized.engine = "x86"


def depthwise_args(rng, n, c, hw, k, stride, padding, dilation, per_channel, x_zp, relu):
    from ember.ir import dtypes
    from ember.ir.quantized import QuantizedArray
    x_q = rng.integers(0, 256, (n, *hw, c)).astype(np.uint8).transpose(0, 3, 1, 2)
    w_q = rng.integers(-128, 128, (c, 1, *k)).astype(np.int8)
    if per_channel:
        w = QuantizedArray(w_q, dtypes.qint8, rng.random(c) * 0.01 + 1e-3,
                           np.zeros(c, np.int64), 0)
    else:
        w = QuantizedArray(w_q, dtypes.qint8, 0.004, 0)
    x = QuantizedArray(x_q, dtypes.quint8, 0.03, x_zp)
    bias = rng.standard_normal(c).astype(np.float32)
    return [x, w, bias, list(stride), list(padding), list(dilation), c, 0.2, 100, relu]


@pytest.mark.parametrize("n, c, hw, k, stride, padding, dilation, per_channel, x_zp, relu", [
    (2, 32, (9, 9), (3, 3), (1, 1), (1, 1), (1, 1), True, 0, False),
    (1, 40, (8, 11), (3, 3), (2, 2), (1, 1), (1, 1), True, 255, True),
    (2, 7, (6, 6), (3, 3), (1, 1), (0, 0), (1, 1), False, 128, False),
    (1, 72, (10, 10), (5, 5), (1, 2), (2, 2), (2, 1), True, 3, True),
    (3, 1, (5, 4), (1, 1), (1, 1), (0, 0), (1, 1), False, 9, False),
    (1, 96, (7, 7), (3, 2), (2, 1), (1, 0), (1, 1), True, 77, False)])
def test_depthwise_kernel_equals_the_reference_bit_for_bit(rng, n, c, hw, k, stride, padding,
                                                           dilation, per_channel, x_zp, relu):
    from ember.codegen.quantized import kernel_for
    from ember.ir.ops.quantized import quantized_conv2d as op
    args = depthwise_args(rng, n, c, hw, k, stride, padding, dilation, per_channel, x_zp,
                          relu)
    kernel = kernel_for("quantized_conv2d", args, {})
    assert kernel is not None, "the native depthwise kernel should take this convolution"
    got = kernel()
    assert got.int_repr.transpose(0, 2, 3, 1).flags.c_contiguous     # channels-last out
    np.testing.assert_array_equal(got.int_repr, op.reference(*args).int_repr)


def test_depthwise_kernel_sees_a_bias_changed_in_place(rng):
    from ember.codegen.quantized import kernel_for
    from ember.ir.ops.quantized import quantized_conv2d as op
    args = depthwise_args(rng, 1, 16, (6, 6), (3, 3), (1, 1), (1, 1), (1, 1), True, 5, False)
    cache = {}
    kernel_for("quantized_conv2d", args, cache)()
    args[2] += 3.0
    np.testing.assert_array_equal(kernel_for("quantized_conv2d", args, cache)().int_repr,
                                  op.reference(*args).int_repr)


def mobilenet_block(nn, c=16, expand=4):
    """An inverted residual (1x1 expand, 3x3 depthwise, 1x1 project, residual add) after a
    strided depthwise stem, with ReLU6 as MobileNetV2 has."""
    hidden = c * expand

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, c, 3, 1, 1), nn.BatchNorm2d(c), nn.ReLU6(),
                                      nn.Conv2d(c, c, 3, 2, 1, groups=c), nn.BatchNorm2d(c),
                                      nn.ReLU6())
            self.expand = nn.Sequential(nn.Conv2d(c, hidden, 1), nn.BatchNorm2d(hidden),
                                        nn.ReLU6())
            self.dw = nn.Sequential(nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden),
                                    nn.BatchNorm2d(hidden), nn.ReLU6())
            self.project = nn.Sequential(nn.Conv2d(hidden, c, 1), nn.BatchNorm2d(c))

        def forward(self, x):
            x = self.stem(x)
            return x + self.project(self.dw(self.expand(x)))
    return Block()


def test_mobilenet_block_int8_agrees_with_torch_ao(rng):
    """End to end: both libraries calibrate their own observers (histograms agree to a
    step or so, as in test_fx_ops), so outputs agree within two output steps."""
    t_model, e_model = mobilenet_block(torch.nn).eval(), mobilenet_block(ember.nn).eval()
    share_random_weights(t_model, e_model, rng)
    calib = [rng.standard_normal((4, 3, 16, 16)).astype(np.float32) for _ in range(3)]
    t_prep = tqfx.prepare_fx(t_model, tq.get_default_qconfig_mapping("x86"),
                             (torch.from_numpy(calib[0]),))
    e_prep = eqfx.prepare_fx(e_model, eq.get_default_qconfig_mapping("x86"),
                             (ember.tensor(calib[0]),))
    with torch.no_grad(), ember.no_grad():
        for c in calib:
            t_prep(torch.from_numpy(c))
            e_prep(ember.tensor(c))
        t_q, e_q = tqfx.convert_fx(t_prep), eqfx.convert_fx(e_prep)
        assert ember.ir.print_graph(e_q.graph).count(", 64, 0.") == 1       # the depthwise conv, quantized
        x = rng.standard_normal((4, 3, 16, 16)).astype(np.float32)
        t_out, e_out = t_q(torch.from_numpy(x)).numpy(), e_q(ember.tensor(x)).numpy()
    assert np.abs(t_out - e_out).max() <= 2 * float(t_q._scale_0) + 1e-6


@pytest.mark.parametrize("n, c, hw, stride, relu, per_channel", [
    (2, 32, 14, 1, True, True), (1, 144, 9, 2, False, True), (3, 24, 8, 1, False, False)])
def test_depthwise_module_equals_torch_ao_bit_for_bit(rng, n, c, hw, stride, relu,
                                                      per_channel):
    """quantized Conv2d(groups=C) modules on the same integers. Activations stay in
    0..127, as the x86 configuration's reduce_range observers give them: above that
    fbgemm's 16-bit pair sums saturate, where ember computes the exact sum."""
    import ember.ao.nn.intrinsic.quantized as eniq
    import ember.ao.nn.quantized as enq
    import torch.ao.nn.intrinsic.quantized as tniq
    import torch.ao.nn.quantized as tnq
    x = np.abs(rng.standard_normal((n, c, hw, hw))).astype(np.float32).clip(max=4.5)
    tx = torch.quantize_per_tensor(torch.from_numpy(x), 0.04, 3, torch.quint8)
    tx = tx.contiguous(memory_format=torch.channels_last)
    ex = ember.quantize_per_tensor(ember.tensor(x), 0.04, 3, ember.quint8)
    w = (rng.standard_normal((c, 1, 3, 3)) * 0.3).astype(np.float32)
    bias = rng.standard_normal(c).astype(np.float32)
    if per_channel:
        scales = np.abs(w.reshape(c, -1)).max(1) / 127.0
        tw = torch.quantize_per_channel(torch.from_numpy(w), torch.from_numpy(scales),
                                        torch.zeros(c, dtype=torch.long), 0, torch.qint8)
        ew = ember.quantize_per_channel(ember.tensor(w), ember.tensor(scales),
                                        ember.tensor(np.zeros(c, np.int64)), 0, ember.qint8)
    else:
        scale = float(np.abs(w).max() / 127.0)
        tw = torch.quantize_per_tensor(torch.from_numpy(w), scale, 0, torch.qint8)
        ew = ember.quantize_per_tensor(ember.tensor(w), scale, 0, ember.qint8)
    tm = (tniq.ConvReLU2d if relu else tnq.Conv2d)(c, c, 3, stride, 1, groups=c)
    em = (eniq.ConvReLU2d if relu else enq.Conv2d)(c, c, 3, stride, 1, groups=c)
    tm.set_weight_bias(tw, torch.from_numpy(bias))
    em.set_weight_bias(ew, ember.tensor(bias))
    tm.scale, tm.zero_point = em.scale, em.zero_point = 0.05, 7
    np.testing.assert_array_equal(em(ex).int_repr().numpy(), tm(tx).int_repr().numpy())


@pytest.mark.skipif(not __import__("ember.codegen.llvm.qgemm", fromlist=["x"]).has_vnni(),
                    reason="this CPU has no AVX-512 VNNI")
@pytest.mark.parametrize("n, c, oc, groups, hw, k, stride, padding, dilation", [
    (2, 8, 8, 2, 9, 3, 1, 1, 1), (1, 12, 6, 3, 8, 3, 2, 1, 1), (1, 6, 12, 3, 7, 1, 1, 0, 1),
    (2, 64, 64, 32, 10, 3, 1, 1, 1), (1, 10, 20, 5, 9, 3, 1, 2, 2), (1, 4, 8, 4, 6, 3, 1, 1, 1)])
def test_grouped_conv_equals_the_reference_bit_for_bit(rng, n, c, oc, groups, hw, k, stride,
                                                       padding, dilation):
    """Several channels per group (ResNeXt's), a channel multiplier (oc = 2c, groups = c):
    one fused GEMM per group, whole groups per thread where there are many."""
    from ember.codegen.quantized import kernel_for
    from ember.ir import dtypes
    from ember.ir.ops.quantized import quantized_conv2d as op
    from ember.ir.quantized import QuantizedArray
    x = QuantizedArray(rng.integers(0, 256, (n, hw, hw, c)).astype(np.uint8)
                       .transpose(0, 3, 1, 2), dtypes.quint8, 0.03, int(rng.integers(0, 256)))
    w = QuantizedArray(rng.integers(-128, 128, (oc, c // groups, k, k)).astype(np.int8),
                       dtypes.qint8, rng.random(oc) * 0.01 + 1e-3, np.zeros(oc, np.int64), 0)
    args = [x, w, rng.standard_normal(oc).astype(np.float32), [stride] * 2, [padding] * 2,
            [dilation] * 2, groups, 0.2, 100, bool(rng.integers(0, 2))]
    kernel = kernel_for("quantized_conv2d", args, {})
    assert kernel is not None
    np.testing.assert_array_equal(kernel().int_repr, op.reference(*args).int_repr)


def test_packaged_depthwise_model_equals_eager(rng, tmp_path):
    """ember.aot packages a depthwise int8 convolution (a host step on the same kernel,
    linked into model.so) and the artifact equals the eager converted model."""
    nn = ember.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 24, 3, padding=1)
            self.dw = nn.Conv2d(24, 24, 3, stride=2, padding=1, groups=24)
            self.relu = nn.ReLU()

        def forward(self, x):
            return self.relu(self.dw(self.relu(self.conv(x))))
    model = Net().eval()
    x = ember.tensor(rng.standard_normal((2, 3, 12, 12)).astype(np.float32))
    prep = eqfx.prepare_fx(model, eq.get_default_qconfig_mapping("x86"), (x,))
    with ember.no_grad():
        prep(x)
        q = eqfx.convert_fx(prep)
        path = ember.aot.compile_and_package(ember.export(q, (x,)), tmp_path / "dw.ember")
        run = ember.aot.load_package(path)
        for _ in range(2):
            np.testing.assert_array_equal(run(x).numpy(), q(x).numpy())
            x = ember.tensor(rng.standard_normal((2, 3, 12, 12)).astype(np.float32))
    assert "depthwise" in {d.get("gemm") for d in run.lite.plan["steps"]}
