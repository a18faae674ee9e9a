"""relu6 / hardtanh after a quantized Conv2d, clamped by the convolution's epilogue
(convert_fx marks the conv; frontend/quantized.py conv2d_clamped): the same integers as
the unfused pair and as torch.ao's converted model, the graph still torch.ao's."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from quant_twins import converted_twins, share_random_weights

pytestmark = pytest.mark.filterwarnings("ignore:.*quantized tensor creation")
torch.backends.quantized.engine = "x86"


def clamp_model(lib):
    nn, F = lib.nn, lib.nn.functional

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16),
                                      nn.ReLU6())
            self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, 1, 1, groups=16),
                                    nn.BatchNorm2d(16), nn.ReLU6(inplace=True))
            self.pw = nn.Conv2d(16, 24, 1)
            self.tanh_like = nn.Hardtanh(-0.5, 0.75)
            self.shared = nn.Conv2d(24, 24, 1)      # two readers: not fused
            self.act = nn.ReLU6()
            self.last = nn.Conv2d(24, 8, 1)

        def forward(self, x):
            x = self.dw(self.stem(x))
            x = self.tanh_like(self.pw(x))
            s = self.shared(x)
            y = self.act(s) + s
            return F.relu6(self.last(y))
    return M().eval()


def twins(rng):
    t_model, e_model = clamp_model(torch), clamp_model(ember)
    share_random_weights(t_model, e_model, rng)
    calib = [rng.standard_normal((2, 3, 20, 20)).astype(np.float32) for _ in range(3)]
    return converted_twins(t_model, e_model, calib) + (calib,)


def fused_modules(model) -> dict:
    return {name: m._fused_clamp for name, m in model.named_modules()
            if m.__dict__.get("_fused_clamp") is not None}


def test_convert_fx_fuses_the_clamp_after_a_conv_with_one_reader(rng):
    _, e_q, _ = twins(rng)
    assert fused_modules(e_q) == {"stem.0": (0.0, 6.0), "dw.0": (0.0, 6.0),
                                  "pw": (-0.5, 0.75), "last": (0.0, 6.0)}


def test_fused_clamps_give_the_unfused_integers_and_torch_ao_values(rng):
    t_q, e_q, calib = twins(rng)
    x = rng.standard_normal((2, 3, 20, 20)).astype(np.float32)
    with ember.no_grad():
        fused = e_q(ember.tensor(x)).numpy()
        compiled = ember.compile(e_q)(ember.tensor(x)).numpy()
        for m in e_q.modules():
            m.__dict__.pop("_fused_clamp", None)
        unfused = e_q(ember.tensor(x)).numpy()
    np.testing.assert_array_equal(fused, unfused)
    np.testing.assert_array_equal(compiled, unfused)
    expected = t_q(torch.from_numpy(x)).numpy()
    step = float(np.abs(expected).max()) / 255
    assert np.abs(expected - fused).max() <= 2 * step + 1e-6


def test_fused_conv_result_is_clamped_and_the_clamp_node_keeps_it(rng):
    _, e_q, _ = twins(rng)
    x = rng.standard_normal((2, 3, 10, 10)).astype(np.float32)
    conv = e_q.pw
    with ember.no_grad():
        q_in = ember.quantize_per_tensor(ember.tensor(np.abs(x[:, :1].repeat(16, 1))),
                                         0.02, 3, ember.quint8)
        out = conv(q_in)
        clamped = e_q.tanh_like(out)
    real = out.dequantize().numpy()
    assert real.min() >= -0.5 - conv.scale and real.max() <= 0.75 + conv.scale
    np.testing.assert_array_equal(clamped.int_repr().numpy(), out.int_repr().numpy())
    assert clamped.q_scale() == out.q_scale() and \
        clamped.q_zero_point() == out.q_zero_point()
    # a wider clamp after the fused one is still the identity; a narrower one clamps
    narrower = ember.nn.functional.hardtanh(out, -0.25, 0.25)
    lo, hi = (ember.quantize_per_tensor(ember.tensor(np.float32(v)), out.q_scale(),
                                        out.q_zero_point(), ember.quint8).int_repr().item()
              for v in (-0.25, 0.25))
    np.testing.assert_array_equal(narrower.int_repr().numpy(),
                                  np.clip(out.int_repr().numpy(), lo, hi))


def test_quantize_per_tensor_of_a_0d_tensor_matches_torch():
    for v in (0.3, -1.7, 40.0):
        got = ember.quantize_per_tensor(ember.tensor(np.float32(v)), 0.1, 2, ember.quint8)
        want = torch.quantize_per_tensor(torch.tensor(np.float32(v)), 0.1, 2, torch.quint8)
        assert got.shape == () and got.int_repr().item() == want.int_repr().item()
