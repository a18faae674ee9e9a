"""The depthwise int8 kernel reading its padding itself (codegen/llvm/qdepthwise.py): a
convolution's channels-last result is read as it is, taps outside the image read the
zero point. Bit for bit the NumPy reference and the host-padded path on borders of every
kind: padding wider than the window, strides and dilations that leave no inside pixel,
images smaller than the window, zero points at both ends of the range."""
from __future__ import annotations

import numpy as np
import pytest

from ember.codegen.llvm import qdepthwise as QD
from ember.runtime import lite_int8 as lite
from test_qdepthwise import depthwise_args

pytestmark = pytest.mark.skipif(not QD.available(), reason="this CPU has no AVX2")

CASES = [  # n, c, hw, k, stride, padding, dilation, x_zp
    (2, 32, (9, 9), (3, 3), (1, 1), (1, 1), (1, 1), 0),
    (1, 64, (7, 10), (3, 3), (2, 2), (1, 1), (1, 1), 255),
    (1, 32, (6, 6), (3, 3), (1, 1), (3, 2), (1, 1), 128),       # padding wider than k // 2
    (2, 96, (5, 5), (5, 5), (1, 1), (2, 2), (1, 1), 7),
    (1, 32, (2, 3), (5, 5), (1, 1), (2, 2), (1, 1), 200),       # image smaller than the window
    (1, 64, (9, 8), (3, 3), (3, 2), (1, 1), (2, 2), 41),        # dilation, uneven strides
    (1, 32, (1, 1), (3, 3), (1, 1), (1, 1), (1, 1), 99),        # every tap but one outside
    (1, 32, (8, 8), (3, 2), (2, 1), (1, 0), (1, 1), 12),        # padding on one side only
    (3, 128, (4, 4), (7, 7), (2, 2), (3, 3), (1, 1), 255),      # no pixel inside
]


@pytest.mark.parametrize("n, c, hw, k, stride, padding, dilation, x_zp", CASES)
def test_padding_read_in_the_kernel_equals_the_reference(rng, n, c, hw, k, stride, padding,
                                                         dilation, x_zp):
    from ember.codegen.quantized import kernel_for
    from ember.ir.ops.quantized import quantized_conv2d as op
    args = depthwise_args(rng, n, c, hw, k, stride, padding, dilation, True, x_zp, False)
    assert lite.depthwise_reads_in_place(args[0].int_repr)
    kernel = kernel_for("quantized_conv2d", args, {})
    assert kernel is not None
    np.testing.assert_array_equal(kernel().int_repr, op.reference(*args).int_repr)


@pytest.mark.parametrize("n, c, hw, k, stride, padding, dilation, x_zp", CASES[:6])
def test_in_kernel_and_host_padding_give_the_same_integers(rng, n, c, hw, k, stride,
                                                           padding, dilation, x_zp):
    """The same values contiguous ([N, C, H, W]: copied and padded by the host) and
    channels-last (read in place)."""
    from ember.codegen.quantized import kernel_for
    args = depthwise_args(rng, n, c, hw, k, stride, padding, dilation, False, x_zp, True)
    in_place = kernel_for("quantized_conv2d", args, {})().int_repr
    contiguous = list(args)
    contiguous[0] = args[0].with_values(np.ascontiguousarray(args[0].int_repr))
    assert not lite.depthwise_reads_in_place(contiguous[0].int_repr)
    padded = kernel_for("quantized_conv2d", contiguous, {})().int_repr
    np.testing.assert_array_equal(in_place, padded)


@pytest.mark.parametrize("c", [40, 7, 144])
def test_channel_counts_off_32_are_read_in_place_where_bytes_follow_the_input(rng, c):
    """The last channel block reads up to 31 bytes past the input: read in place where
    the input's memory goes on that far (every int8 kernel's output does), copied
    where it ends with the input."""
    from ember.codegen.quantized import kernel_for
    from ember.ir.ops.quantized import quantized_conv2d as op
    args = depthwise_args(rng, 2, c, (6, 5), (3, 3), (1, 1), (1, 1), (1, 1), True, 17, False)
    nhwc = args[0].int_repr.transpose(0, 2, 3, 1)
    exact = np.empty(nhwc.size, np.uint8)
    exact[:] = nhwc.reshape(-1)
    followed = np.empty(nhwc.size + lite.OUT_SLACK, np.uint8)
    followed[:nhwc.size] = nhwc.reshape(-1)
    want = op.reference(*args).int_repr
    for buffer, in_place in ((exact, False), (followed[:nhwc.size], True)):
        x = buffer.reshape(nhwc.shape).transpose(0, 3, 1, 2)
        assert lite.depthwise_reads_in_place(x) is in_place
        args[0] = args[0].with_values(x)
        np.testing.assert_array_equal(kernel_for("quantized_conv2d", args, {})().int_repr,
                                      want)


def test_int8_kernel_outputs_have_readable_bytes_past_their_end(rng):
    from ember.codegen.quantized import kernel_for
    args = depthwise_args(rng, 1, 40, (5, 5), (3, 3), (1, 1), (1, 1), (1, 1), True, 3, False)
    out = kernel_for("quantized_conv2d", args, {})().int_repr
    assert lite.readable_past_end(out) >= lite.OUT_SLACK


def test_inside_range_marks_the_windows_inside_the_image():
    for size, k, stride, pad, dil in [(9, 3, 1, 1, 1), (7, 3, 2, 1, 1), (2, 5, 1, 2, 1),
                                      (9, 3, 3, 1, 2), (4, 7, 2, 3, 1), (1, 3, 1, 1, 1)]:
        out = (size + 2 * pad - dil * (k - 1) - 1) // stride + 1
        lo, hi = lite._inside_range(size, out, k, stride, pad, dil)
        inside = [o for o in range(out)
                  if o * stride - pad >= 0 and o * stride - pad + (k - 1) * dil < size]
        assert list(range(lo, hi)) == inside, (size, k, stride, pad, dil)


def _separable(lib):
    nn = lib.nn
    return nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1), nn.BatchNorm2d(32), nn.ReLU6(),
                         nn.Conv2d(32, 32, 3, 1, 1, groups=32), nn.BatchNorm2d(32), nn.ReLU6(),
                         nn.Conv2d(32, 64, 1), nn.Conv2d(64, 64, 3, 2, 1, groups=64),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 5)).eval()


def test_an_artifact_reads_the_depthwise_padding_in_its_kernel(rng, tmp_path):
    """A packaged depthwise step (its kernel reads the padding: "pad": "kernel") gives the
    integers eager mode and ember.compile give."""
    import ember
    import ember.ao.quantization as eq
    import ember.ao.quantization.quantize_fx as eqfx
    from ember.codegen.llvm import qgemm as Q
    if Q.active_config() is None:
        pytest.skip("no int8 kernel on this CPU")
    model = _separable(ember)
    for m in model.modules():
        if isinstance(m, ember.nn.BatchNorm2d):
            m.running_mean.copy_(ember.tensor(rng.standard_normal(m.num_features)
                                              .astype(np.float32) * 0.1))
    x = ember.tensor(rng.standard_normal((2, 3, 18, 18)).astype(np.float32))
    with ember.no_grad():
        prepared = eqfx.prepare_fx(model, eq.get_default_qconfig_mapping("x86"), (x,))
        prepared(x)
        quantized = eqfx.convert_fx(prepared)
        path = ember.aot.compile_and_package(ember.export(quantized, (x,)),
                                             tmp_path / "m.ember")
        run = ember.aot.load_package(path)
        want = quantized(x).numpy()
        np.testing.assert_array_equal(run(x).numpy(), want)
        np.testing.assert_array_equal(ember.compile(quantized)(x).numpy(), want)
