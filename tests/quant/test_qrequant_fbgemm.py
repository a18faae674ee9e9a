"""The int8 GEMM / conv requantization is torch.ao's bit for bit (fbgemm's float32
operations: ir/quantized.py requant_columns), for the native kernels and the NumPy
reference: exact ties built on purpose (where rounding before or after adding the zero
point differs), and random sweeps of about a million outputs per kind of layer, per-tensor
and per-channel weights, with and without bias, relu."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.ao.nn.intrinsic.quantized as nniq
import torch.ao.nn.quantized as nnq
import torch.nn.functional as F

import ember
from ember.ir import dtypes
from ember.ir.ops import quantized as OQ
from ember.ir.quantized import QuantizedArray, fma_float32

pytestmark = pytest.mark.filterwarnings("ignore:.*quantized tensor creation")
f32 = np.float32


@pytest.fixture(autouse=True)
def _engine():
    before = torch.backends.quantized.engine
    yield
    torch.backends.quantized.engine = before


def operands(xq, x_scale, x_zp, wq, w_scales, per_channel):
    """(ember input, ember weight, torch input, torch weight) with these exact integers."""
    n = wq.shape[0]
    tx = torch._make_per_tensor_quantized_tensor(torch.from_numpy(xq), x_scale, x_zp)
    if per_channel:
        tw = torch._make_per_channel_quantized_tensor(
            torch.from_numpy(wq), torch.from_numpy(w_scales), torch.zeros(n, dtype=torch.long), 0)
    else:
        tw = torch._make_per_tensor_quantized_tensor(torch.from_numpy(wq), float(w_scales[0]), 0)
    ex = ember.quantize_per_tensor(ember.tensor(tx.dequantize().numpy()), x_scale, x_zp,
                                   ember.quint8)
    if per_channel:
        ew = ember.quantize_per_channel(ember.tensor(tw.dequantize().numpy()),
                                        ember.tensor(w_scales), ember.tensor(np.zeros(n, np.int64)),
                                        0, ember.qint8)
    else:
        ew = ember.quantize_per_tensor(ember.tensor(tw.dequantize().numpy()), float(w_scales[0]),
                                       0, ember.qint8)
    np.testing.assert_array_equal(ex.int_repr().numpy(), xq)
    np.testing.assert_array_equal(ew.int_repr().numpy(), wq)
    return ex, ew, tx, tw


def reference_arrays(xq, x_scale, x_zp, wq, w_scales, per_channel):
    x = QuantizedArray(xq, dtypes.quint8, x_scale, x_zp)
    if per_channel:
        return x, QuantizedArray(wq, dtypes.qint8, w_scales, np.zeros(len(w_scales), np.int64), 0)
    return x, QuantizedArray(wq, dtypes.qint8, float(w_scales[0]), 0)


def random_layer(seed, n, per_channel, with_bias):
    rng = np.random.default_rng(seed)
    x_scale, x_zp = float(f32(rng.uniform(0.005, 0.05))), int(rng.integers(0, 128))
    w_scales = rng.uniform(0.001, 0.01, n).astype(f32).astype(np.float64)
    if not per_channel:
        w_scales[:] = w_scales[0]
    bias = rng.normal(0, 0.5, n).astype(f32) if with_bias else None
    out_scale, out_zp = float(f32(rng.uniform(0.002, 0.01))), int(rng.integers(0, 256))
    return rng, x_scale, x_zp, w_scales, bias, out_scale, out_zp


CASES = [(pc, wb, relu) for pc in (False, True) for wb in (False, True) for relu in (False, True)]


@pytest.mark.parametrize("per_channel,with_bias,relu", CASES)
def test_linear_sweep_is_bit_exact(per_channel, with_bias, relu):
    """~1e6 outputs (x86 engine, fbgemm's kernels) per case: the kernel and the reference."""
    torch.backends.quantized.engine = "x86"
    n, k = 500, 64
    rng, xs, xzp, ws, bias, os_, zp = random_layer(7 + 2 * per_channel + with_bias, n,
                                                   per_channel, with_bias)
    xq = rng.integers(0, 128, (2000, k)).astype(np.uint8)
    wq = rng.integers(-127, 128, (n, k)).astype(np.int8)
    ex, ew, tx, tw = operands(xq, xs, xzp, wq, ws, per_channel)
    mod = (nniq.LinearReLU if relu else nnq.Linear)(k, n)
    mod.set_weight_bias(tw, None if bias is None else torch.from_numpy(bias))
    mod.scale, mod.zero_point = os_, zp
    want = mod(tx).int_repr().numpy()
    got = ember.quantized_linear(ex, ew, None if bias is None else ember.tensor(bias), os_, zp,
                                 relu).int_repr().numpy()
    np.testing.assert_array_equal(got, want)
    x, w = reference_arrays(xq, xs, xzp, wq, ws, per_channel)
    np.testing.assert_array_equal(OQ._linear_ref(x, w, bias, os_, zp, relu).int_repr, want)


def tie_layer(per_channel):
    """Scales whose products are exact: x_scale * w_scale / out_scale = 1/2, so every odd
    sum lands on a half-integer; odd zero point: rounding before adding it (torch) and after
    (quantize_per_tensor) disagree on every tie."""
    k, n = 8, 16
    xs, os_, zp = 0.25, 0.25, 77
    ws = np.full(n, 0.5) if not per_channel else np.where(np.arange(n) % 2, 0.5, 0.25)
    rng = np.random.default_rng(3)
    xq = rng.integers(0, 128, (64, k)).astype(np.uint8)
    wq = rng.integers(-20, 21, (n, k)).astype(np.int8)
    bias = (np.arange(n) % 4 * 0.125).astype(f32)      # multiples of x_scale * w_scale: exact
    return xq, xs, 3, wq, ws, bias, os_, zp


@pytest.mark.parametrize("per_channel", [False, True])
def test_linear_exact_ties_round_as_torch(per_channel):
    torch.backends.quantized.engine = "x86"
    xq, xs, xzp, wq, ws, bias, os_, zp = tie_layer(per_channel)
    ex, ew, tx, tw = operands(xq, xs, xzp, wq, ws, per_channel)
    mod = nnq.Linear(wq.shape[1], wq.shape[0])
    mod.set_weight_bias(tw, torch.from_numpy(bias))
    mod.scale, mod.zero_point = os_, zp
    want = mod(tx).int_repr().numpy()
    got = ember.quantized_linear(ex, ew, ember.tensor(bias), os_, zp, False).int_repr().numpy()
    np.testing.assert_array_equal(got, want)
    # the case has ties, and quantize_per_tensor's rounding would miss them
    real = torch.from_numpy(((xq.astype(np.float64) - xzp) @ (wq.astype(np.float64) * ws[:, None]).T
                             + bias).astype(f32))
    other = torch.quantize_per_tensor(real, os_, zp, torch.quint8).int_repr().numpy()
    assert (other != want).sum() > 20


def conv_case(engine, channels, groups, per_channel, with_bias, relu, seed, batch, size):
    torch.backends.quantized.engine = engine
    rng, xs, xzp, ws, bias, os_, zp = random_layer(seed, channels, per_channel, with_bias)
    xq = rng.integers(0, 128, (batch, channels, size, size)).astype(np.uint8)
    wq = rng.integers(-127, 128, (channels, channels // groups, 3, 3)).astype(np.int8)
    ex, ew, tx, tw = operands(xq, xs, xzp, wq, ws, per_channel)
    mod = (nniq.ConvReLU2d if relu else nnq.Conv2d)(channels, channels, 3, padding=1,
                                                    groups=groups)
    mod.set_weight_bias(tw, None if bias is None else torch.from_numpy(bias))
    mod.scale, mod.zero_point = os_, zp
    want = mod(tx).int_repr().numpy()
    got = ember.quantized_conv2d(ex, ew, None if bias is None else ember.tensor(bias), [1, 1],
                                 [1, 1], [1, 1], groups, os_, zp, relu).int_repr().numpy()
    np.testing.assert_array_equal(got, want)
    acc = np.rint(F.conv2d(torch.from_numpy(xq).double() - xzp, torch.from_numpy(wq).double(),
                           padding=1, groups=groups).numpy())
    x, w = reference_arrays(xq, xs, xzp, wq, ws, per_channel)
    ref = OQ.requantize(acc, xs, w, bias, os_, zp, relu, dtypes.quint8, 1).int_repr
    np.testing.assert_array_equal(ref, want)


@pytest.mark.parametrize("per_channel,with_bias,relu", CASES)
def test_conv_sweep_is_bit_exact_with_fbgemm(per_channel, with_bias, relu):
    """A 3x3 conv, 64 channels, on the fbgemm engine (~400k outputs a case)."""
    conv_case("fbgemm", 64, 1, per_channel, with_bias, relu, 11 + with_bias, 4, 40)


@pytest.mark.parametrize("per_channel,with_bias,relu", CASES)
def test_depthwise_sweep_is_bit_exact(per_channel, with_bias, relu):
    """mobilenet's depthwise 3x3 with 144 channels (x86 engine: fbgemm's depthwise kernel,
    as for every depthwise conv of more than 100 channels there)."""
    conv_case("x86", 144, 144, per_channel, with_bias, relu, 13 + with_bias, 4, 28)


def test_fma_float32_rounds_once():
    """x * y + z with one rounding, including sums whose float64 value sits on a float32
    tie that the exact value is not on."""
    x = np.array([1 + 2.0 ** -12, 3.0, 1.0], f32)
    y = f32(1 + 2.0 ** -12)
    z = np.array([2.0 ** -60, 2.0 ** 25, -1.0], f32)
    # exact: 1 + 2^-11 + 2^-24 + 2^-60, just above a float32 tie (its float64 sum is on it)
    want = [f32(1 + 2.0 ** -11 + 2.0 ** -23), f32(3 * (1 + 2.0 ** -12) + 2.0 ** 25),
            f32((1 + 2.0 ** -12) - 1)]
    np.testing.assert_array_equal(fma_float32(x, y, z), np.array(want, f32))


@pytest.mark.parametrize("per_channel,relu", [(False, False), (True, False), (True, True)])
def test_dynamic_linear_is_bit_exact(per_channel, relu):
    """quantize_dynamic's Linear: float32 results equal torch.ao's (fbgemm multiplies the
    sums by x_scale * w_scale and adds the bias in one fma), kernel and reference."""
    import torch.ao.nn.intrinsic.quantized.dynamic as nniqd
    import torch.ao.nn.quantized.dynamic as nnqd
    torch.backends.quantized.engine = "x86"
    rng = np.random.default_rng(21 + per_channel + relu)
    n, k = 384, 256
    w = (rng.standard_normal((n, k)) * 0.05).astype(f32)
    bias = rng.standard_normal(n).astype(f32)
    x = (rng.standard_normal((300, k)) * 2).astype(f32)
    scales = (np.abs(w).max(1) / 127).astype(f32).astype(np.float64) if per_channel else \
        np.full(n, float(np.abs(w).max() / 127))
    wq = np.clip(np.rint(w / scales[:, None]), -127, 127).astype(np.int8)
    _, ew, _, tw = operands(np.zeros((1, k), np.uint8), 0.1, 0, wq, scales, per_channel)
    mod = (nniqd.LinearReLU if relu else nnqd.Linear)(k, n)
    mod.set_weight_bias(tw, torch.from_numpy(bias))
    want = mod(torch.from_numpy(x)).numpy()
    got = ember.quantized_linear_dynamic(ember.tensor(x), ew, ember.tensor(bias), relu).numpy()
    np.testing.assert_array_equal(got, want)
    _, w_ref = reference_arrays(np.zeros((1, k), np.uint8), 0.1, 0, wq, scales, per_channel)
    np.testing.assert_array_equal(OQ._dynamic_ref(x, w_ref, bias, relu), want)


def pointwise_operands(rng, n, ties):
    scales = (0.25, 0.5, 0.25) if ties else tuple(float(f32(rng.uniform(0.01, 0.2)))
                                                   for _ in range(3))
    zps = tuple(int(rng.integers(0, 128)) * 2 + 1 for _ in range(3))   # odd: ties differ
    qa, qb = (rng.integers(0, 256, n).astype(np.uint8) for _ in range(2))
    ta, tb = (torch._make_per_tensor_quantized_tensor(torch.from_numpy(q), s, z)
              for q, s, z in zip((qa, qb), scales, zps))
    ea, eb = (ember.quantize_per_tensor(ember.tensor(t.dequantize().numpy()), s, z,
                                        ember.quint8) for t, s, z in zip((ta, tb), scales, zps))
    return ta, tb, ea, eb, scales[2], zps[2]


@pytest.mark.parametrize("ties", [True, False])
@pytest.mark.parametrize("relu", [False, True])
def test_quantized_mul_is_bit_exact(ties, relu):
    """torch's quantized mul: the integer product times float32(sa * sb / s), rounded,
    plus the zero point (200k values, exact ties among them when `ties`)."""
    torch.backends.quantized.engine = "x86"
    ta, tb, ea, eb, scale, zp = pointwise_operands(np.random.default_rng(31 + ties), 200_000,
                                                   ties)
    want = (torch.ops.quantized.mul_relu if relu else torch.ops.quantized.mul)(ta, tb, scale, zp)
    got = ember.quantized_mul(ea, eb, scale, zp, relu)
    np.testing.assert_array_equal(got.int_repr().numpy(), want.int_repr().numpy())


@pytest.mark.parametrize("ties", [True, False])
@pytest.mark.parametrize("relu", [False, True])
def test_quantized_add_is_bit_exact_on_torch_vectorized_path(ties, relu):
    """torch's quantized add (fma dequantize, float add, round, then the zero point) on
    one torch thread and a length that its vector loop covers whole: its scalar loop, which
    takes the last elements of each thread's chunk, adds the zero point before rounding
    (docs/quantization.md, "Left out (known)")."""
    torch.backends.quantized.engine = "x86"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ta, tb, ea, eb, scale, zp = pointwise_operands(np.random.default_rng(41 + ties),
                                                       1 << 17, ties)
        want = (torch.ops.quantized.add_relu if relu else torch.ops.quantized.add)(
            ta, tb, scale, zp)
    finally:
        torch.set_num_threads(threads)
    got = ember.quantized_add(ea, eb, scale, zp, relu)
    np.testing.assert_array_equal(got.int_repr().numpy(), want.int_repr().numpy())
