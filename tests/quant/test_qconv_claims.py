"""The int8 convolutions' claim sizes (runtime/lite_int8.py: QGemmCall.limit_claims,
QDepthwiseCall's DW_CLAIM_MACS): a convolution's threads claim a bounded amount of work at
a time so that they end close together. The claims only split the tasks between threads,
so every claim size gives the same integers: checked against torch.ao's quantized conv
(the oracle) and the NumPy reference, on 1 and 2 threads, one task a claim up to the
whole GEMM in one claim."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ember.codegen import quantized as CQ
from ember.codegen.llvm import qdepthwise as QD
from ember.codegen.llvm import qgemm as Q
from ember.ir.ops.quantized import quantized_conv2d as op
from ember.ir.quantized import QuantizedArray
from ember.ir import dtypes
from ember.runtime import lite_int8 as lite
from ember.runtime.threads import default_pool

pytestmark = pytest.mark.skipif(Q.active_config() is not Q.VNNI,
                                reason="the claiming conv GEMM is the AVX-512 VNNI one")


def _conv(rng, c, oc, hw, k, stride, pad):
    """(x, w, bias, torch.ao's result as integers): a per-channel int8 conv of random
    uint8 activations 0..127 (the x86 qconfig's range, where torch.ao's kernels are
    exact) with relu."""
    x = rng.integers(0, 128, (2, c, hw, hw), dtype=np.uint8)
    w = rng.integers(-127, 128, (oc, c, k, k), dtype=np.int8)
    w_scales = rng.uniform(0.002, 0.01, oc)
    bias = rng.standard_normal(oc).astype(np.float32)
    tx = torch._make_per_tensor_quantized_tensor(torch.from_numpy(x), 0.05, 3)
    tw = torch._make_per_channel_quantized_tensor(
        torch.from_numpy(w), torch.from_numpy(w_scales), torch.zeros(oc, dtype=torch.long), 0)
    torch.backends.quantized.engine = "x86"
    packed = torch.ops.quantized.conv2d_prepack(tw, torch.from_numpy(bias), [stride] * 2,
                                                [pad] * 2, [1, 1], 1)
    want = torch.ops.quantized.conv2d_relu(tx, packed, 0.2, 5).int_repr().numpy()
    qx = QuantizedArray(x, dtypes.quint8, 0.05, 3)
    qw = QuantizedArray(w, dtypes.qint8, w_scales.astype(np.float64), np.zeros(oc, np.int64),
                        0)
    return qx, qw, bias, want


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("macs", [1, 1 << 16, lite.CONV_CLAIM_MACS, 1 << 40])
def test_gemm_conv_claim_sizes_give_torch_aos_integers(rng, threads, macs):
    x, w, bias, want = _conv(rng, 16, 40, 13, 3, 1, 1)
    cp, run = lite.conv_k_layout(16, 3, 1)
    cfg = Q.tile_for(Q.active_config(), 40)
    packed = Q.PackedWeight(CQ.conv_weight_matrix(w.int_repr, cp, run), cfg)
    x_nhwc = lite.nhwc_input(x.int_repr, 3, (1, 1), cp, run - 3 * 16)
    gather = Q.conv_gather(x_nhwc, (3, 3), (1, 1), (1, 1), (13, 13), run)
    vectors = packed.epilogue_vectors(3, np.float32(0.05) * CQ.weight_scales(w, 40), bias)
    gemm = Q.prepare(gather, packed, vectors, CQ.requant_params(0.2, 5, dtypes.quint8, True),
                     True)
    call = gemm.args[0]
    call.limit_claims(macs)
    task_macs = cfg.mr * cfg.nr * packed.kq * 4
    assert call.max_chunk == max(1, macs // task_macs)
    got = gemm(x_nhwc, threads).reshape(2, 13, 13, 40).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(got, want)
    ref = op.reference(x, w, bias, (1, 1), (1, 1), (1, 1), 1, 0.2, 5, True).int_repr
    np.testing.assert_array_equal(got, ref)


def test_converted_layers_claim_bounded_work(rng):
    """conv_runner's GEMM (what a converted model's every later call runs) is limited
    to CONV_CLAIM_MACS a claim; a 1x1 conv's too."""
    for k, pad in ((3, 1), (1, 0)):
        x, w, bias, want = _conv(rng, 32, 64, 12, k, 1, pad)
        args = [x, w, bias, (1, 1), (pad, pad), (1, 1), 1, 0.2, 5, True]
        cache = {}
        runner = CQ.conv_runner(args, cache)
        got = runner(x.int_repr, bias)
        np.testing.assert_array_equal(got.int_repr, want)
        gemm = next(_closure_calls(runner))
        assert gemm.max_chunk == max(1, lite.CONV_CLAIM_MACS // gemm._task_macs)


def _closure_calls(runner):
    """The QGemmCall inside a conv runner's closure (its prepared GEMM)."""
    for cell in runner.__closure__ or ():
        args = getattr(cell.cell_contents, "args", None)
        if args and isinstance(args[0], lite.QGemmCall):
            yield args[0]


@pytest.mark.skipif(not QD.available(), reason="this CPU has no AVX2")
@pytest.mark.parametrize("threads", [1, 2])
def test_depthwise_claims_are_bounded_and_exact(rng, threads):
    from test_qdepthwise import depthwise_args
    x, w, bias, stride, padding, dilation, c, scale, zp, relu = depthwise_args(
        rng, 8, 144, (30, 30), (3, 3), (1, 1), (1, 1), (1, 1), True, 7, False)
    packed = QD.PackedDepthwise(w.int_repr)
    x_nhwc = lite.nhwc_input(x.int_repr, int(x.zero_point), padding, c,
                             lite.depthwise_slack(c))
    vectors = packed.epilogue_vectors(int(x.zero_point),
                                      np.float32(x.scale) * CQ.weight_scales(w, c), bias)
    call = lite.QDepthwiseCall(x_nhwc.shape, packed.data, packed.kernel, tuple(stride),
                               tuple(dilation), (30, 30), *vectors,
                               CQ.requant_params(scale, zp, x.dtype, relu))
    c_pad = packed.data.shape[1]
    assert call.max_chunk == max(1, lite.DW_CLAIM_MACS // (9 * 30 * c_pad))
    assert call.max_chunk < call.rows // (2 * lite.CLAIMS_PER_THREAD)   # the bound acts
    got = call(QD._kernel()[1], default_pool(), x_nhwc, threads)
    want = op.reference(x, w, bias, stride, padding, dilation, c, scale, zp, relu).int_repr
    np.testing.assert_array_equal(got.reshape(8, 30, 30, c).transpose(0, 3, 1, 2), want)
