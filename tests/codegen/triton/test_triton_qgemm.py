"""The Triton int8 GEMM / implicit-GEMM conv (codegen/triton/qgemm.py) against the NumPy
references of quantized_linear / quantized_conv2d: the same integers, bit for bit. Run by
Triton's interpreter on torch CPU tensors (TRITON_INTERPRET=1, the default here), or on a
GPU with `TRITON_INTERPRET=0 pytest tests/codegen/triton/test_triton_qgemm.py`."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from triton_device import dev, host  # noqa: E402  (TRITON_INTERPRET=1 unless given)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ember.codegen.triton import cache  # noqa: E402
from ember.codegen.triton.gemm import GemmConfig  # noqa: E402
from ember.codegen.triton.qgemm import (conv_problem, generate_qgemm, linear_problem,  # noqa
                                        ohwi, weight_vectors)
from ember.ir import dtypes  # noqa: E402
from ember.ir.errors import LoweringError  # noqa: E402
from ember.ir.ops.quantized import quantized_conv2d, quantized_linear  # noqa: E402
from ember.ir.quantized import QuantizedArray  # noqa: E402

SMALL = GemmConfig(block_m=16, block_n=16, block_k=32, group_m=2, num_warps=1, num_stages=1)


def _operands(rng, x_shape, w_shape, per_channel, x_zp):
    x = QuantizedArray(rng.integers(0, 256, x_shape).astype(np.uint8), dtypes.quint8, 0.02,
                       x_zp)
    w_int = rng.integers(-128, 128, w_shape).astype(np.int8)
    if per_channel:
        scales = rng.uniform(0.001, 0.01, w_shape[0])
        w = QuantizedArray(w_int, dtypes.qint8, scales, np.zeros(w_shape[0], np.int64), 0)
    else:
        scales = np.full(w_shape[0], 0.004)
        w = QuantizedArray(w_int, dtypes.qint8, 0.004, 0)
    bias = rng.standard_normal(w_shape[0]).astype(np.float32)
    return x, w, np.asarray(scales, np.float32), bias


@pytest.mark.parametrize("m, n, k", [(37, 45, 70), (16, 32, 64), (1, 19, 5)])
@pytest.mark.parametrize("per_channel, relu, x_zp", [(True, False, 117), (False, True, 0),
                                                      (True, True, 255)])
def test_linear_matches_the_reference_bit_for_bit(rng, m, n, k, per_channel, relu, x_zp):
    x, w, scales, bias = _operands(rng, (m, k), (n, k), per_channel, x_zp)
    out_scale, out_zp = 0.05 * np.sqrt(k), 97
    want = quantized_linear.reference(x, w, bias, out_scale, out_zp, relu)
    wsum, mult, b, factor = weight_vectors(w.int_repr, scales, x.scale, bias, out_scale,
                                           not per_channel)
    kernel = generate_qgemm(linear_problem(m, n, k), x_zp, out_scale, out_zp, relu, SMALL,
                            factor=factor)
    out = dev(np.zeros(m * n, np.uint8))
    cache.launch(kernel, [dev(x.int_repr), dev(w.int_repr), dev(wsum), dev(mult), dev(b), out])
    np.testing.assert_array_equal(host(out).reshape(m, n), want.int_repr)
    assert "tl.dot(" in kernel.source and "out_dtype=tl.int32" in kernel.source


def _check_conv(rng, groups, stride, padding, dilation, x_zp):
    """Channels-last input, OHWI weight; padding reads the input's zero point."""
    n_img, cin, h, w_ = 2, 8, 9, 7
    cout = 8 if groups == 8 else 12
    x, w, scales, bias = _operands(rng, (n_img, cin, h, w_), (cout, cin // groups, 3, 3),
                                   True, x_zp)
    out_scale, out_zp = 0.3, 64
    want = quantized_conv2d.reference(x, w, bias, stride, padding, dilation, groups,
                                      out_scale, out_zp, True).int_repr
    nhwc = np.ascontiguousarray(x.int_repr.transpose(0, 2, 3, 1))
    x_strides = (h * w_ * cin, 1, w_ * cin, cin)              # NCHW indices into NHWC memory
    ho, wo = want.shape[2:]
    out_strides = (cout * ho * wo, ho * wo, wo, 1)
    problem = conv_problem(x.int_repr.shape, x_strides, w.int_repr.shape, out_strides, stride,
                           padding, dilation, groups)
    wsum, mult, b, factor = weight_vectors(w.int_repr, scales, x.scale, bias, out_scale, False)
    kernel = generate_qgemm(problem, x_zp, out_scale, out_zp, True, SMALL, factor=factor)
    out = dev(np.zeros(want.size, np.uint8))
    cache.launch(kernel, [dev(nhwc), dev(ohwi(w.int_repr)), dev(wsum), dev(mult), dev(b), out])
    np.testing.assert_array_equal(host(out).reshape(want.shape), want)


@pytest.mark.parametrize("groups, stride, padding, dilation", [
    (1, (1, 1), (1, 1), (1, 1)),
    (2, (2, 1), (0, 2), (1, 1)),
    (8, (2, 2), (1, 1), (1, 1)),
    (1, (1, 1), (2, 2), (2, 2))])
def test_conv2d_matches_the_reference_bit_for_bit(rng, groups, stride, padding, dilation):
    """Grouped and depthwise (groups = channels) too."""
    _check_conv(rng, groups, stride, padding, dilation, 131)


@pytest.mark.parametrize("x_zp", [0, 117, 128, 200, 255])
def test_conv2d_padding_reads_every_zero_point(rng, x_zp):
    """Zero points with the top bit set (128..255) are selected after the load; the others
    are the load's fill."""
    _check_conv(rng, 1, (1, 1), (1, 1), (1, 1), x_zp)


def test_bad_qparams_are_refused():
    with pytest.raises(LoweringError, match="zero points must be quint8"):
        generate_qgemm(linear_problem(4, 4, 4), 300, 0.1, 0, False)
    with pytest.raises(LoweringError, match="BLOCK_K a multiple of 32"):
        generate_qgemm(linear_problem(4, 4, 4), 0, 0.1, 0, False,
                       GemmConfig(block_k=16))


def test_quantized_kernels_are_in_the_cubin_set():
    """CI's ahead-of-time cubin compile (tests/codegen/triton/test_triton_aot.py) covers them."""
    from ember.compiler.triton_kernels import model_kernel_set
    kernels, report = model_kernel_set(["quantized"])
    kinds = sorted(gk.kind for gk in kernels.values())
    assert kinds == ["qconv", "qgemm", "qgemm"] and report["quantized"]["kernels"] == 3
