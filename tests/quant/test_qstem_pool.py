"""A convolution and the max pool reading it as one kernel (codegen/llvm/qstem_pool.py,
fused_forward.conv_pool_step: resnet's stem and its max pool on AMX hosts): the fused
kernel's pooled integers against the conv's own output pooled by the max pool kernel
and by NumPy (bands of one, two and three to an image, tiles straddling images, the
pool's padding and a pool without it), at one and two threads, left running and joined;
and a converted stem model's outputs equal to the two steps' at one and two threads,
first calls included."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from ember.ao.quantization.fx import fused_forward as FF
from ember.codegen import quantized as CQ
from ember.codegen.llvm import qgemm_amx as QA
from ember.codegen.llvm import qrow_pairs as QP
from ember.codegen.llvm import qstem_pool as QS
from ember.runtime import lite_int8 as lite
from ember.runtime import threads as T
from tests.quant.quant_twins import converted_twins, int8_layers, share_random_weights
from tests.quant.test_qconv_kernel_pad import _weight

pytestmark = [pytest.mark.filterwarnings("ignore"),
              pytest.mark.skipif(not (QP.available() and QA.available()),
                                 reason="no AMX-INT8 tiles here")]
torch.backends.quantized.engine = "x86"


def _stem_runner(rng, monkeypatch, shape, oc):
    """A row-pair conv runner (the stem's: 7x7 / 2, padding 3, relu) over a quantized
    input, its input's integers and its bias."""
    monkeypatch.setattr(CQ, "conv_gemm_config", lambda cfg, *args: QA.AMX)
    xf = rng.standard_normal(shape).astype(np.float32)
    x = ember.quantize_per_tensor(ember.tensor(xf), 0.02, 131, ember.quint8)._qarray()
    bias = rng.standard_normal(oc).astype(np.float32)
    args = [x, _weight(rng, oc, shape[1], 7, 7), bias, [2, 2], [3, 3], [1, 1], 1, 0.05, 90,
            True]
    cache = {}
    runner = CQ.conv_runner(args, cache)
    assert "conv-pairs-amx" in cache        # the row-pair runner
    return runner, x.int_repr, bias


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape, oc, pool, per_image", [
    ((3, 3, 36, 36), 32, ((3, 3), (2, 2), (1, 1)), 2),     # tiles straddle images
    ((2, 3, 64, 64), 64, ((3, 3), (2, 2), (1, 1)), 3),
    ((2, 3, 40, 44), 32, ((2, 2), (2, 2), (0, 0)), 1),
    ((1, 3, 30, 30), 32, ((3, 3), (1, 1), (1, 1)), 4)])
def test_fused_pool_equals_the_conv_pooled(rng, monkeypatch, threads, shape, oc, pool,
                                           per_image):
    monkeypatch.setattr(T, "_host_is_quiet", lambda: True)      # workers spin: defer works
    monkeypatch.setattr(lite, "GEMM_PARALLEL_MIN_MACS", 0)
    monkeypatch.setattr(QS, "BANDS_PER_IMAGE", per_image)
    before = ember.get_num_threads()
    ember.set_num_threads(threads)
    try:
        runner, q, bias = _stem_runner(rng, monkeypatch, shape, oc)
        conv = runner(q, bias).int_repr.transpose(0, 2, 3, 1)        # [N, OH, OW, C]
        want = lite.max_pool2d_nhwc(np.ascontiguousarray(conv), *pool)
        got = [runner.pooled(q, bias, pool)]
        p = T.default_pool()
        p.open_window()
        try:
            got.append(runner.pooled(q, bias, pool))       # left running, then joined
        finally:
            p.open_window(False)
        p.join()
        got.append(runner.pooled(q, bias, pool))
    finally:
        ember.set_num_threads(before)
    for value in got:
        assert value is not None
        np.testing.assert_array_equal(value.int_repr.transpose(0, 2, 3, 1), want)
