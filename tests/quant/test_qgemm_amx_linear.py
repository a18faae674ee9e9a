"""The AMX linear kernels (codegen/llvm/qgemm_amx.py qgemm_amx_lin_*: A read in place,
column blocks outer, claimed tasks) against the NumPy references bit for bit: uint8,
float32 (dynamic) and dequantized results, per-tensor and per-channel weights, a ragged
last column block, one and two threads, and through the prepared calls (linear runner,
dynamic runner, Linear + dequantize) of a converted model against the row-tile kernel."""
from __future__ import annotations

import numpy as np
import pytest

import ember
from ember.codegen import quantized as CQ
from ember.codegen.llvm import qgemm as Q
from ember.codegen.llvm import qgemm_amx as QA
from ember.ir.ops.quantized import quantized_linear, quantized_linear_dynamic
from ember.ir.quantized import QuantizedArray, quantize_array, quantize_channel_array

pytestmark = pytest.mark.skipif(not QA.available(), reason="no AMX-INT8 for this process")


def activation(rng, shape, zp=60, scale=0.03):
    q = rng.integers(0, 256, size=shape).astype(np.uint8)
    return QuantizedArray(q, ember.quint8, scale, zp)


def weight(rng, shape, per_channel):
    w = (rng.standard_normal(shape) * 0.2).astype(np.float32)
    if per_channel:
        scales = np.abs(w).max(1) / 127.0
        return quantize_channel_array(w, scales, np.zeros(shape[0], np.int64), 0, ember.qint8)
    return quantize_array(w, float(np.abs(w).max() / 127.0), 0, ember.qint8)


def test_linear_applies_where_reads_stay_inside_a():
    assert QA.linear_applies(64, 4096) and QA.linear_applies(32, 64)
    assert QA.linear_applies(48, 1000)         # packed: any shape that fits
    assert QA.linear_applies(256, 4096)        # in place: whole tiles
    assert not QA.linear_applies(100, 4096)    # neither
    assert not QA.linear_applies(0, 64)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("m, k, n, per_channel, relu, bias", [
    (64, 256, 96, True, True, True), (32, 128, 70, False, False, True),
    (96, 64, 33, True, False, False), (64, 512, 300, False, True, False),
    (40, 192, 64, True, False, True), (8, 64, 10, False, True, True),
    (5, 13, 70, True, True, True), (32, 100, 16, False, False, False),
    (64, 4096, 40, True, False, True), (96, 4096, 32, False, False, True),
    (33, 1000, 64, True, True, False)])
def test_linear_kernels_equal_the_reference(rng, threads, m, k, n, per_channel, relu, bias):
    before = ember.get_num_threads()
    ember.set_num_threads(threads)
    try:
        x, w = activation(rng, (m, k)), weight(rng, (n, k), per_channel)
        b = rng.standard_normal(n).astype(np.float32) if bias else None
        args = [x, w, b, 0.07, 100, relu]
        cache = {}
        ref = quantized_linear.reference(*args).int_repr
        for _ in range(2):          # the kept call's second run reuses its block
            np.testing.assert_array_equal(CQ.linear(*args, cache=cache, cfg=QA.AMX).int_repr,
                                          ref)
        assert any(isinstance(key, tuple) and key[0] == "linear" for key in cache)
        runner = CQ.linear_runner(args, cache)
        assert runner is not None
        padded = None if b is None else cache_bias(cache, b)
        deq = runner.dequantized(x.int_repr, padded)
        expect = (ref.astype(np.float32) - np.float32(100)) * np.float32(0.07)
        np.testing.assert_array_equal(deq, expect)
        xf = rng.standard_normal((m, k)).astype(np.float32)
        dyn = [xf, w, b, relu]
        np.testing.assert_array_equal(CQ.linear_dynamic(*dyn, cache=cache, cfg=QA.AMX),
                                      quantized_linear_dynamic.reference(*dyn))
    finally:
        ember.set_num_threads(before)


def cache_bias(cache, b):
    """The bias as the runner reads it: the packed width's float32 vector."""
    call = next(v for key, v in cache.items() if isinstance(key, tuple) and key[0] == "linear")
    vector = np.zeros(call.n_pad, np.float32)
    vector[:len(b)] = b
    return vector


def test_row_tile_and_linear_kernels_agree(rng):
    """The same GEMM by both AMX kernels (qgemm_amx_u8 re-reads and packs A, the linear
    kernel reads it in place): the same bytes, and the float32 epilogue the same floats."""
    m, k, n = 64, 1024, 160
    a = rng.integers(0, 256, (m, k), dtype=np.uint8)
    packed = Q.PackedWeight(rng.integers(-127, 128, (n, k), dtype=np.int8), QA.AMX)
    vectors = packed.epilogue_vectors(7, rng.random(n).astype(np.float32) * 1e-3,
                                      rng.standard_normal(n).astype(np.float32))
    gather = Q.linear_gather(a, k // 4)
    for u8, qparams in ((True, (10.0, 3.0, 0.0, 255.0)), (False, (0.0, 0.0, -np.inf, np.inf))):
        rows = QA.run_vectors(gather, packed, vectors, qparams, u8)
        linear = QA.prepare_linear(gather, packed, vectors, qparams, u8)(a)
        np.testing.assert_array_equal(linear, rows)


def test_converted_mlp_on_amx_matches_torch_ao(rng):
    torch = pytest.importorskip("torch")
    import torch.ao.quantization as tq
    import torch.ao.quantization.quantize_fx as tqfx
    import ember.ao.quantization as eq
    import ember.ao.quantization.quantize_fx as eqfx
    torch.backends.quantized.engine = "x86"
    t_model = torch.nn.Sequential(torch.nn.Linear(128, 256), torch.nn.ReLU(),
                                  torch.nn.Linear(256, 64)).eval()
    e_model = ember.nn.Sequential(ember.nn.Linear(128, 256), ember.nn.ReLU(),
                                  ember.nn.Linear(256, 64)).eval()
    e_model.load_state_dict({k: ember.tensor(v.numpy()) for k, v in t_model.state_dict().items()})
    x = rng.standard_normal((64, 128)).astype(np.float32)
    # the dynamic models first, from float models no prepare_fx has traced (made after
    # it, torch's and ember's dynamic results differed)
    t_dyn = tq.quantize_dynamic(t_model, {torch.nn.Linear}, dtype=torch.qint8)
    e_dyn = eq.quantize_dynamic(e_model, {ember.nn.Linear}, dtype=ember.qint8)
    t_prep = tqfx.prepare_fx(t_model, tq.get_default_qconfig_mapping("x86"),
                             (torch.from_numpy(x),))
    e_prep = eqfx.prepare_fx(e_model, eq.get_default_qconfig_mapping("x86"), (ember.tensor(x),))
    t_prep(torch.from_numpy(x))
    e_prep(ember.tensor(x))
    t_q, e_q = tqfx.convert_fx(t_prep), eqfx.convert_fx(e_prep)
    with torch.no_grad(), ember.no_grad():
        for scale in (1.0, 3.0, 0.5):     # repeated calls take the kept calls and runners
            xi = x * scale
            np.testing.assert_array_equal(e_q(ember.tensor(xi)).numpy(),
                                          t_q(torch.from_numpy(xi)).numpy())
            np.testing.assert_array_equal(e_dyn(ember.tensor(xi)).numpy(),
                                          t_dyn(torch.from_numpy(xi)).numpy())
