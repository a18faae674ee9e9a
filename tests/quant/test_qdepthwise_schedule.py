"""The depthwise int8 kernel's two schedules (codegen/llvm/qdepthwise.py): rows claimed
from a shared counter (what eager mode and new artifacts run) and fixed row ranges (the
parameter block of artifacts packaged before claiming), and the epilogue clamp a fused
relu6 tightens: bit for bit the NumPy reference, on 1 and 2 threads."""
from __future__ import annotations

import numpy as np
import pytest

import ember
from ember.codegen.llvm import qdepthwise as QD
from test_qdepthwise import depthwise_args

pytestmark = pytest.mark.skipif(not QD.available(), reason="this CPU has no AVX2")


@pytest.mark.parametrize("claim", [True, False])
@pytest.mark.parametrize("threads", [1, 2])
def test_claimed_and_fixed_rows_equal_the_reference(rng, claim, threads):
    from ember.codegen.quantized import epilogue_inputs, requant_params
    from ember.ir.ops.quantized import quantized_conv2d as op
    from ember.runtime import lite_int8 as lite
    from ember.runtime.threads import default_pool
    x, w, bias, stride, padding, dilation, c, scale, zp, relu = depthwise_args(
        rng, 3, 40, (11, 9), (3, 3), (1, 1), (1, 1), (1, 1), True, 7, False)
    packed = QD.PackedDepthwise(w.int_repr)
    oh, ow = lite.conv_output_size(11, 9, (3, 3), stride, padding, dilation)
    x_nhwc = lite.nhwc_input(x.int_repr, int(x.zero_point), padding, c,
                             lite.depthwise_slack(c))
    vectors, qparams = epilogue_inputs(packed, x.scale, x.zero_point, w, bias, scale,
                                       requant_params(scale, zp, x.dtype, relu))
    call = lite.QDepthwiseCall(x_nhwc.shape, packed.data, packed.kernel, tuple(stride),
                               tuple(dilation), (oh, ow), *vectors, qparams, claim=claim)
    got = call(QD._kernel()[1], default_pool(), x_nhwc, threads)
    want = op.reference(x, w, bias, stride, padding, dilation, c, scale, zp, relu).int_repr
    np.testing.assert_array_equal(got.reshape(3, oh, ow, c).transpose(0, 3, 1, 2), want)


def test_fused_clamp_bounds_equal_a_clamp_after_the_reference(rng):
    from ember.codegen.quantized import kernel_for
    from ember.ir.ops.quantized import quantized_conv2d as op
    args = depthwise_args(rng, 2, 24, (7, 7), (3, 3), (2, 2), (1, 1), (1, 1), True, 30, True)
    got = kernel_for("quantized_conv2d", args, {}, clamp=(90, 140))().int_repr
    np.testing.assert_array_equal(got, np.clip(op.reference(*args).int_repr, 90, 140))
