"""A converted model's last quantized Linear (or LinearReLU) and the dequantize reading it
run as one GEMM whose epilogue dequantizes (qgemm_u8_deq, fused_forward.linear_dequantize):
the same floats, bit for bit, as the uint8 GEMM followed by the native dequantize, and
torch.ao's values; the pair runs where the fusion does not apply (a first call, a tile
without the kernel, a forward hook on the layer)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from ember.codegen.llvm import qgemm as Q
from quant_twins import converted_twins, share_random_weights

pytestmark = [pytest.mark.filterwarnings("ignore"),
              pytest.mark.skipif(Q.active_config() is not Q.VNNI,
                                 reason="the dequantizing GEMM is a VNNI kernel")]
torch.backends.quantized.engine = "x86"


@pytest.mark.parametrize("m, k, n, relu, per_channel", [
    (64, 256, 128, False, False),     # whole tiles
    (13, 36, 100, True, True),        # a 1-row tail tile, a ragged last column block
    (5, 8, 1000, False, True),        # one 4-or-fewer-row tile (the tail), 16 column blocks
])
def test_kernel_equals_uint8_gemm_then_dequantize(rng, m, k, n, relu, per_channel):
    w = rng.integers(-127, 128, (n, k), dtype=np.int8)
    a = rng.integers(0, 256, (m, k), dtype=np.uint8)
    cfg = Q.tile_for(Q.VNNI, n)
    assert Q.dequantizes(cfg)
    packed = Q.PackedWeight(w, cfg)
    mult = (rng.uniform(2e-4, 4e-3, n) if per_channel else np.full(n, 1e-3)).astype(np.float32)
    bias = (rng.standard_normal(n) * 300).astype(np.float32)
    vectors = packed.epilogue_vectors(131, mult, bias)
    zp, scale = 71.0, 0.0372
    qparams = (1.0 if per_channel else 3.0, zp, zp if relu else 0.0, 255.0)
    gather = Q.linear_gather(a, k // 4)
    q = Q.prepare(gather, packed, vectors, qparams, True)(a)
    real = Q.prepare(gather, packed, vectors, qparams, True, dequant_scale=scale)(a)
    want = (q.astype(np.float32) - np.float32(zp)) * np.float32(scale)
    assert real.dtype == np.float32 and real.shape == (m, n)
    np.testing.assert_array_equal(real.view(np.uint32), want.view(np.uint32))


def test_narrow_tiles_have_no_dequantizing_kernel(rng):
    packed = Q.PackedWeight(rng.integers(-127, 128, (10, 8), dtype=np.int8),
                            Q.tile_for(Q.VNNI, 10))
    a = np.zeros((4, 8), np.uint8)
    with pytest.raises(ValueError, match="no dequantizing kernel"):
        Q.prepare(Q.linear_gather(a, 2), packed, packed.epilogue_vectors(0, np.ones(10), None),
                  (1.0, 0.0, 0.0, 255.0), True, dequant_scale=0.1)


def mlp(lib, out_features: int, last_relu: bool):
    nn = lib.nn
    layers = [nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, out_features)]
    return nn.Sequential(*layers, *([nn.ReLU()] if last_relu else [])).eval()


def _pair_only(monkeypatch):
    """The unfused pair on every call (the fused forward's fallback)."""
    from ember.ao.quantization.fx import fused_forward
    monkeypatch.setattr(fused_forward, "_linear_dequantize", lambda args: None)


@pytest.mark.parametrize("out_features, last_relu, fused", [
    (128, False, True), (100, True, True),      # 64-column tiles: fused
    (10, False, False),                          # a 16-column tile: the pair
])                                               # (AMX tiles: every width fused)
def test_fused_forward_gives_the_pairs_floats_and_torch_ao_values(rng, monkeypatch,
                                                                    out_features, last_relu,
                                                                    fused):
    from ember.ao.quantization.fx import fused_forward
    from ember.codegen import quantized as CQ
    from ember.codegen.llvm import qgemm_amx as QA
    fused = fused or CQ.gemm_config() is QA.AMX
    t_model, e_model = mlp(torch, out_features, last_relu), mlp(ember, out_features, last_relu)
    share_random_weights(t_model, e_model, rng)
    calib = [rng.standard_normal((13, 64)).astype(np.float32) for _ in range(2)]
    t_q, e_q = converted_twins(t_model, e_model, calib)
    assert fused_forward.dequantize_pairs(e_q)      # the graph's last Linear + dequantize
    x = rng.standard_normal((13, 64)).astype(np.float32)
    hits = []
    real = fused_forward._linear_dequantize

    def counted(args):
        value = real(args)
        hits.append(value is not None)
        return value
    with ember.no_grad():
        with monkeypatch.context() as m:
            _pair_only(m)
            pair = e_q(ember.tensor(x)).numpy()
        monkeypatch.setattr(fused_forward, "_linear_dequantize", counted)
        outs = [e_q(ember.tensor(x)).numpy() for _ in range(4)]
    assert hits[-1] is fused and all(h is fused for h in hits[2:])
    for out in outs:
        assert out.dtype == np.float32 and out.shape == (13, out_features)
        np.testing.assert_array_equal(out.view(np.uint32), pair.view(np.uint32))
    want = t_q(torch.from_numpy(x)).numpy()
    step = float(e_q.get_submodule("2").scale)
    assert np.abs(want - outs[-1]).max() <= 3 * step


def test_a_hook_on_the_linear_keeps_the_pair(rng):
    t_model, e_model = mlp(torch, 128, False), mlp(ember, 128, False)
    share_random_weights(t_model, e_model, rng)
    calib = [rng.standard_normal((8, 64)).astype(np.float32)]
    _, e_q = converted_twins(t_model, e_model, calib)
    seen = []
    e_q.get_submodule("2").register_forward_hook(lambda mod, inp, out: seen.append(out))
    x = ember.tensor(rng.standard_normal((8, 64)).astype(np.float32))
    with ember.no_grad():
        outs = [e_q(x).numpy() for _ in range(3)]
    assert len(seen) == 3 and all(o.is_quantized for o in seen)
    np.testing.assert_array_equal(outs[-1], seen[-1].dequantize().numpy())


class _Tokens:
    """A Linear stack on [batch, tokens, features] input (a transformer's MLP block)."""

    @staticmethod
    def make(lib):
        nn = lib.nn
        return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64)).eval()


def test_three_dimensional_input(rng, monkeypatch):
    from ember.ao.quantization.fx import fused_forward
    t_model, e_model = _Tokens.make(torch), _Tokens.make(ember)
    share_random_weights(t_model, e_model, rng)
    calib = [rng.standard_normal((3, 5, 32)).astype(np.float32) for _ in range(2)]
    t_q, e_q = converted_twins(t_model, e_model, calib)
    x = rng.standard_normal((3, 5, 32)).astype(np.float32)
    hits, real = [], fused_forward._linear_dequantize
    monkeypatch.setattr(fused_forward, "_linear_dequantize",
                        lambda args: hits.append(real(args)) or hits[-1])
    with ember.no_grad():
        outs = [e_q(ember.tensor(x)).numpy() for _ in range(4)]
    assert [h is not None for h in hits] == [False, False, True, True]
    assert outs[-1].shape == (3, 5, 64)
    for out in outs[1:]:
        np.testing.assert_array_equal(out.view(np.uint32), outs[0].view(np.uint32))
    want = t_q(torch.from_numpy(x)).numpy()
    assert np.abs(want - outs[-1]).max() <= 3 * float(e_q.get_submodule("2").scale)
