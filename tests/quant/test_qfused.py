"""The fused int8 kernels (codegen/llvm/qgemm.py, qgemm_amx.py, qelementwise.py,
codegen/quantized.py) against the NumPy references bit for bit, on each instruction
sequence: AMX tiles, AVX-512 VNNI and the AVX2 fallback (compiled with every avx512 feature off, so it runs on this CPU too).
Inputs use 7-bit activations (0..127, what the x86/fbgemm qconfigs observe with
reduce_range), where AVX2's int16 pair sums are exact, so both paths must agree."""
from __future__ import annotations

import numpy as np
import pytest

import ember
from ember.codegen import quantized as CQ
from ember.codegen.llvm import qgemm as Q
from ember.codegen.llvm import qgemm_amx as QA
from ember.codegen.llvm.target import Isa, supported_isas
from ember.ir.ops.quantized import quantized_add, quantized_conv2d, quantized_linear
from ember.ir.ops.quantized import quantized_linear_dynamic
from ember.ir.quantized import QuantizedArray, quantize_array, quantize_channel_array

CONFIGS = [pytest.param(QA.AMX, marks=pytest.mark.skipif(not QA.available(),
                                                         reason="no AMX-INT8 for this process")),
           pytest.param(Q.VNNI, marks=pytest.mark.skipif(not Q.has_vnni(),
                                                         reason="this CPU has no AVX-512 VNNI")),
           pytest.param(Q.AVX2, marks=pytest.mark.skipif(Isa.AVX2 not in supported_isas(),
                                                         reason="this CPU has no AVX2"))]


def activation(rng, shape, zp=60, scale=0.03, qmax=127):
    q = rng.integers(0, qmax + 1, size=shape).astype(np.uint8)
    return QuantizedArray(q, ember.quint8, scale, zp)


def weight(rng, shape, per_channel):
    w = (rng.standard_normal(shape) * 0.2).astype(np.float32)
    if per_channel:
        scales = np.abs(w.reshape(shape[0], -1)).max(1) / 127.0
        return quantize_channel_array(w, scales, np.zeros(shape[0], np.int64), 0, ember.qint8)
    return quantize_array(w, float(np.abs(w).max() / 127.0), 0, ember.qint8)


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("shape, n, per_channel, relu, bias", [
    ((7, 32), 64, True, True, True), ((5, 13), 70, False, False, True),
    ((2, 3, 40), 17, True, False, False), ((1, 1), 1, False, True, True)])
def test_fused_linear_equals_the_reference(rng, cfg, shape, n, per_channel, relu, bias):
    x, w = activation(rng, shape), weight(rng, (n, shape[-1]), per_channel)
    b = rng.standard_normal(n).astype(np.float32) if bias else None
    args = [x, w, b, 0.07, 100, relu]
    out = CQ.linear(*args, cache={}, cfg=cfg)
    np.testing.assert_array_equal(out.int_repr, quantized_linear.reference(*args).int_repr)
    xf = rng.standard_normal(shape).astype(np.float32)
    dyn = [xf, w, b, relu]
    np.testing.assert_array_equal(CQ.linear_dynamic(*dyn, cache={}, cfg=cfg),
                                  quantized_linear_dynamic.reference(*dyn))


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("shape, oc, kernel, stride, padding, dilation", [
    ((2, 3, 9, 9), 8, 3, (1, 1), (1, 1), (1, 1)),        # C=3: kernel rows of 9 -> 12 bytes
    ((1, 8, 12, 10), 70, 3, (2, 2), (1, 0), (1, 1)),     # OC past one column block
    ((2, 4, 11, 11), 6, 3, (1, 2), (2, 2), (2, 2)),
    ((3, 16, 5, 5), 16, 1, (2, 2), (0, 0), (1, 1)),      # 1x1 stride 2: no copy of the input
    ((1, 3, 10, 10), 5, 3, (1, 1), (1, 2), (1, 2))])     # dilated along W: taps, C 3 -> 4
def test_fused_conv_equals_the_reference(rng, cfg, shape, oc, kernel, stride, padding, dilation):
    x = activation(rng, shape, zp=70)
    w = weight(rng, (oc, shape[1], kernel, kernel), True)
    args = [x, w, rng.standard_normal(oc).astype(np.float32), list(stride), list(padding),
            list(dilation), 1, 0.05, 90, True]
    out = CQ.conv2d(*args, cache={}, cfg=cfg)
    ref = quantized_conv2d.reference(*args).int_repr
    np.testing.assert_array_equal(out.int_repr, ref)
    assert out.int_repr.transpose(0, 2, 3, 1).flags.c_contiguous      # channels-last result
    # a channels-last input (what a previous conv gives) reads in place
    x_cl = QuantizedArray(np.ascontiguousarray(x.int_repr.transpose(0, 2, 3, 1))
                          .transpose(0, 3, 1, 2), x.dtype, x.scale, x.zero_point)
    np.testing.assert_array_equal(CQ.conv2d(x_cl, *args[1:], cache={}, cfg=cfg).int_repr, ref)


def test_avx2_equals_vnni_and_refuses_8bit_activations(rng, monkeypatch):
    if not Q.has_vnni():
        pytest.skip("this CPU has no AVX-512 VNNI")
    x, w = activation(rng, (9, 64)), weight(rng, (32, 64), True)
    args = [x, w, None, 0.05, 3, False]
    np.testing.assert_array_equal(CQ.linear(*args, cache={}, cfg=Q.AVX2).int_repr,
                                  CQ.linear(*args, cache={}, cfg=Q.VNNI).int_repr)
    if QA.available():
        np.testing.assert_array_equal(CQ.linear(*args, cache={}, cfg=QA.AMX).int_repr,
                                      CQ.linear(*args, cache={}, cfg=Q.VNNI).int_repr)
    monkeypatch.setenv("EMBER_ISA", "avx2")          # the target a CPU without VNNI gets
    assert Q.active_config() is Q.AVX2
    assert CQ.kernel_for("quantized_linear", args, {}) is not None
    full = QuantizedArray(x.int_repr + np.uint8(128), x.dtype, x.scale, x.zero_point)
    # bytes above 127 could saturate vpmaddubsw's int16 sums: the reference runs instead
    assert CQ.kernel_for("quantized_linear", [full] + args[1:], {}) is None
    monkeypatch.delenv("EMBER_ISA")
    assert CQ.kernel_for("quantized_linear", [full] + args[1:], {}) is not None


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "mixed"])
@pytest.mark.parametrize("relu", [False, True])
def test_native_quantized_add_equals_the_reference(rng, layout, relu):
    shape = (2, 5, 7, 3)                        # 210 elements: vector loop and a tail
    a = activation(rng, shape, zp=30, scale=0.02, qmax=255)
    b = activation(rng, shape, zp=200, scale=0.05, qmax=255)
    if layout != "contiguous":
        a_cl, b_cl = (QuantizedArray(np.ascontiguousarray(t.int_repr.transpose(0, 2, 3, 1))
                                     .transpose(0, 3, 1, 2), t.dtype, t.scale, t.zero_point)
                      for t in (a, b))
        a, b = (a_cl, b_cl) if layout == "channels_last" else (a, b_cl)
    kernel = CQ.binary_kernel("quantized_add", a, b)
    assert kernel is not None
    out = kernel(0.06, 120, relu)
    np.testing.assert_array_equal(out.int_repr,
                                  quantized_add.reference(a, b, 0.06, 120, relu).int_repr)
    if layout != "mixed":
        assert out.int_repr.strides == a.int_repr.strides


def test_native_max_pool_equals_the_reference(rng):
    x = rng.integers(0, 256, size=(2, 8, 9, 11)).astype(np.uint8)
    cl = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    qx = ember.quantize_per_tensor(ember.zeros(1), 0.1, 0, ember.quint8)   # for the qparams
    qa = QuantizedArray(cl, ember.quint8, 0.1, 5)
    kernel = CQ.same_qparams_kernel("max_pool2d", qa, (qx, [3, 3], [2, 2], [1, 1]))
    assert kernel is not None
    expect = ember.nn.functional.max_pool2d(ember.tensor(x.astype(np.float32)), 3, 2, 1)
    np.testing.assert_array_equal(kernel().int_repr, expect.numpy().astype(np.uint8))


def _window_average_loop(q: np.ndarray, zp: int, size) -> np.ndarray:
    """torch's quantized adaptive average, one window at a time in Python integers:
    float32(sum - n * zp) * (1 / (1 / (1 / n))) + zp, rounded half to even, clamped."""
    n_img, c, h, w = q.shape
    oh, ow = size
    out = np.empty((n_img, c, oh, ow), np.uint8)
    f = np.float32
    for i in range(oh):
        h0, h1 = (i * h) // oh, -((-(i + 1) * h) // oh)
        for j in range(ow):
            w0, w1 = (j * w) // ow, -((-(j + 1) * w) // ow)
            n = (h1 - h0) * (w1 - w0)
            acc = q[:, :, h0:h1, w0:w1].astype(np.int64).sum((2, 3)) - n * zp
            inv = f(1) / (f(1) / (f(1) / f(n)))
            out[:, :, i, j] = np.clip(np.rint(acc.astype(f) * inv + f(zp)), 0, 255)
    return out


@pytest.mark.parametrize("shape, size, channels_last", [
    ((2, 6, 7, 7), [1, 1], False), ((2, 32, 7, 7), [1, 1], True), ((1, 3, 9, 5), [4, 2], False),
    ((2, 4, 6, 6), 3, True), ((1, 2, 300, 300), [1, 1], False), ((1, 2, 260, 260), [2, 3], True)])
def test_quantized_adaptive_avg_pool_integer_sums(rng, shape, size, channels_last):
    """lite's averaging (eager's and the artifact's) sums the integers of each window, as
    torch's quantized kernel does: equal to a per-window loop (windows of every size,
    channels-last or not, above float32's exact integers too) and close to torch."""
    import torch
    q = activation(rng, shape, zp=40, scale=0.07, qmax=255)
    if channels_last:
        q = q.with_values(np.ascontiguousarray(q.int_repr.transpose(0, 2, 3, 1))
                          .transpose(0, 3, 1, 2))
    kernel = CQ.same_qparams_kernel("adaptive_avg_pool2d", q, (None, size))
    got = kernel().int_repr
    pair = [size] * 2 if isinstance(size, int) else size
    np.testing.assert_array_equal(got, _window_average_loop(q.int_repr, 40, pair))
    tq = torch._make_per_tensor_quantized_tensor(torch.from_numpy(
        np.ascontiguousarray(q.int_repr)), 0.07, 40)
    want = torch.nn.functional.adaptive_avg_pool2d(tq, size).int_repr().numpy()
    assert np.abs(got.astype(int) - want).max() <= 1
    assert (got == want).mean() > 0.99


@pytest.mark.parametrize("shape, kernel, stride, padding", [
    ((2, 9, 11, 64), (3, 3), (2, 2), (1, 1)), ((1, 6, 6, 128), (2, 2), (2, 2), (0, 0)),
    ((1, 7, 5, 64), (3, 2), (1, 2), (1, 1)), ((3, 14, 14, 16), (2, 2), (2, 2), (0, 0)),
    ((2, 9, 8, 80), (3, 3), (2, 1), (1, 1)), ((1, 5, 6, 48), (3, 3), (1, 1), (1, 1)),
    # the unrolled 2x2 / 3x3 windows next to clipped ones, other square and odd sizes
    ((2, 7, 9, 16), (2, 2), (1, 1), (1, 1)), ((1, 8, 8, 32), (3, 3), (1, 1), (0, 0)),
    ((1, 10, 7, 16), (4, 4), (3, 2), (2, 1)), ((2, 3, 3, 144), (3, 3), (2, 2), (1, 1)),
    ((1, 1, 1, 16), (2, 2), (2, 2), (1, 1))])
def test_native_uint8_max_pool_equals_numpy(rng, shape, kernel, stride, padding):
    from ember.codegen.llvm import qelementwise as QE
    from ember.runtime import lite_int8 as lite
    x = rng.integers(0, 256, size=shape).astype(np.uint8)
    got = QE.max_pool2d_nhwc(x, kernel, stride, padding)
    np.testing.assert_array_equal(got, lite.max_pool2d_nhwc(x, kernel, stride, padding))
    import torch
    want = torch.nn.functional.max_pool2d(torch.from_numpy(x).permute(0, 3, 1, 2).float(),
                                          kernel, stride, padding)
    np.testing.assert_array_equal(got, want.permute(0, 2, 3, 1).numpy().astype(np.uint8))


@pytest.mark.parametrize("dtype", [ember.quint8, ember.qint8])
def test_native_quantize_per_tensor_equals_the_reference(rng, dtype):
    """Eager quantize_per_tensor of a large float32 tensor runs qelementwise's kernel
    (taken without a trial: it is exact); equal to quantize_array, ties and clamps too."""
    x = (rng.standard_normal((3, 5, 67, 71)) * 4).astype(np.float32)
    x.reshape(-1)[:9] = [0.25, -0.25, 0.75, 1e9, -1e9, 2.5 * 0.03, -2.5 * 0.03, 0.0, -0.0]
    got = ember.quantize_per_tensor(ember.tensor(x), 0.03, 7, dtype)
    want = quantize_array(x, 0.03, 7, dtype)
    np.testing.assert_array_equal(got.int_repr().numpy(), want.int_repr)
    from ember.frontend import eager_kernels
    from ember.ir.ops.quantize import quantize_per_tensor as op
    args = (ember.tensor(x), 0.03, 7, dtype)
    kernel = eager_kernels.candidate(op, args, op.meta(*args))
    assert kernel is not None and kernel.exact        # the native path was the one tested


@pytest.mark.parametrize("shape, padding", [((2, 3, 37, 45), (3, 3)), ((1, 2, 5, 16), (0, 1)),
                                            ((3, 4, 9, 33), (1, 0))])
def test_native_channels_last_packing_equals_numpy(rng, shape, padding):
    """A conv's padded channels-last input made by qpack_nhwc (the stem's few channels)
    equals NumPy's strided copy, padding and slack bytes included."""
    from ember.codegen.llvm import qelementwise as QE
    from ember.runtime import lite_int8 as lite
    x = rng.integers(0, 256, size=shape).astype(np.uint8)
    slack = 3
    want = lite.nhwc_input(x, 17, padding, shape[1], slack)
    got = lite.nhwc_input(x, 17, padding, shape[1], slack, QE.pack_nhwc)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype, tdtype, shape", [("qint8", "qint8", (2, 5, 6, 7)),
                                                  ("quint8", "quint8", (5, 6, 7))])
def test_quantized_adaptive_avg_pool_signed_and_3d(rng, dtype, tdtype, shape):
    """qint8 values and [C, H, W] inputs take the same integer arithmetic (close to torch)."""
    import torch
    x = rng.standard_normal(shape).astype(np.float32)
    ex = ember.quantize_per_tensor(ember.tensor(x), 0.03, 2, getattr(ember, dtype))
    tx = torch.quantize_per_tensor(torch.from_numpy(x), 0.03, 2, getattr(torch, tdtype))
    got = ember.nn.functional.adaptive_avg_pool2d(ex, (2, 3))
    want = torch.nn.functional.adaptive_avg_pool2d(tx, (2, 3))
    assert tuple(got.shape) == tuple(want.shape)
    diff = np.abs(got.int_repr().numpy().astype(int) - want.int_repr().numpy().astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.95
    assert (got.q_scale(), got.q_zero_point()) == (0.03, 2)
