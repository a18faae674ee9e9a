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

import ember
from ember.ao.quantization.fx import fused_forward as FF
from ember.codegen import quantized as CQ
from ember.codegen.llvm import qgemm_amx as QA
from ember.codegen.llvm import qrow_pairs as QP
from ember.codegen.llvm import qstem_pool as QS
from ember.runtime import lite_int8 as lite
from ember.runtime import threads as T
from tests.quant.quant_twins import int8_layers
from tests.quant.test_qconv_kernel_pad import _weight

pytestmark = [pytest.mark.filterwarnings("ignore"),
              pytest.mark.skipif(not (QP.available() and QA.available()),
                                 reason="no AMX-INT8 tiles here")]


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
    """Each band copies its row-pair rows (BAND_PAIRS) and, for the last call, the whole
    row-pair input is made first."""
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
        monkeypatch.setattr(QS, "BAND_PAIRS", False)
        got.append(runner.pooled(q, bias, pool))
    finally:
        ember.set_num_threads(before)
    for value in got:
        assert value is not None
        np.testing.assert_array_equal(value.int_repr.transpose(0, 2, 3, 1), want)


def _stem_model():
    nn = ember.nn
    return nn.Sequential(
        nn.Conv2d(3, 32, 7, 2, 3, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.MaxPool2d(3, 2, 1), nn.Conv2d(32, 32, 3, 1, 1), nn.ReLU(),
        nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(32, 10))


@pytest.fixture(scope="module")
def converted():
    import ember.ao.quantization as eq
    import ember.ao.quantization.quantize_fx as eqfx
    rng = np.random.default_rng(3)
    model = _stem_model().eval()
    x = ember.tensor(rng.standard_normal((3, 3, 36, 36)).astype(np.float32))
    with ember.no_grad():
        prepared = eqfx.prepare_fx(model, eq.get_default_qconfig_mapping("x86"), (x,))
        for _ in range(2):
            prepared(ember.tensor(rng.standard_normal((3, 3, 36, 36)).astype(np.float32)))
        return eqfx.convert_fx(prepared)


@pytest.mark.parametrize("threads", [1, 2])
def test_stem_model_fused_pool_equals_the_two_steps(rng, monkeypatch, converted, threads):
    monkeypatch.setenv("EMBER_QGEMM", "amx")
    monkeypatch.setattr(lite, "GEMM_PARALLEL_MIN_MACS", 0)
    monkeypatch.setattr(T, "_host_is_quiet", lambda: True)      # workers spin: defer works
    steps = [n for n in FF.fused_graph(converted).nodes if n.target is FF.conv_pool_step]
    assert len(steps) == 1 and steps[0].args[3] is not None     # the quantize's scale
    used = []
    real = FF._conv_pool
    monkeypatch.setattr(FF, "_conv_pool", lambda *a: used.append(real(*a)) or used[-1])
    inputs = [rng.standard_normal((3, 3, 36, 36)).astype(np.float32) for _ in range(2)]
    before = ember.get_num_threads()
    ember.set_num_threads(threads)

    def outputs():
        for _, layer in int8_layers(converted, "conv2d"):     # fresh runners: first calls
            layer._packed_weight.__dict__.pop("_kernel_cache", None)
            layer._packed_weight.__dict__.pop("_seen_call", None)
        with ember.no_grad():
            return [converted(ember.tensor(x)).numpy().copy() for x in inputs for _ in range(3)]
    try:
        fused = outputs()
        FF.STEM_POOL[0] = False
        plain = outputs()
    finally:
        FF.STEM_POOL[0] = True
        ember.set_num_threads(before)
    assert any(v is not None for v in used)     # the fused kernel ran (after first calls)
    for got, want in zip(fused, plain):
        np.testing.assert_array_equal(got, want)


def test_conv_pool_step_of_a_quantized_input_equals_the_two_calls(rng, monkeypatch, converted):
    """The step without the quantize (its input already quantized: scale None), against
    pool(conv(x)) as modules."""
    monkeypatch.setenv("EMBER_QGEMM", "amx")
    monkeypatch.setattr(lite, "GEMM_PARALLEL_MIN_MACS", 0)
    conv, pool = converted.get_submodule("0"), converted.get_submodule("3")
    x = ember.tensor(rng.standard_normal((3, 3, 36, 36)).astype(np.float32))
    with ember.no_grad():
        converted(x)
        converted(x)        # the conv's prepared call made
        _, scale, zero_point, _ = conv._packed_weight.__dict__["_seen_call"].x_state
        xq = ember.quantize_per_tensor(x, scale, zero_point, ember.quint8)
        used = []
        real = FF._conv_pool
        monkeypatch.setattr(FF, "_conv_pool", lambda *a: used.append(real(*a)) or used[-1])
        got = FF.conv_pool_step(conv, pool, xq, None, None, None, False)
        want = pool(conv(xq))
    assert used and used[0] is not None
    np.testing.assert_array_equal(got.int_repr().numpy(), want.int_repr().numpy())
    assert (got.q_scale(), got.q_zero_point()) == (want.q_scale(), want.q_zero_point())
