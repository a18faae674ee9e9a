"""Modules convert_fx swaps whole for torch.ao's quantized modules (Conv1d with its
BatchNorm1d folded and relu fused, ConvTranspose2d, LayerNorm, InstanceNorm2d, a
standalone BatchNorm2d): the same module types under the same names as torch.ao's
converted model, outputs within a few quantization steps of torch.ao's."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from tests.quant.quant_twins import ao_modules, converted_twins, share_random_weights

pytestmark = pytest.mark.filterwarnings("ignore")


def _model(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.bn1, self.relu = nn.Conv1d(3, 4, 3), nn.BatchNorm1d(4), nn.ReLU()
            self.ct = nn.ConvTranspose2d(4, 4, 2)
            self.bn = nn.BatchNorm2d(4)
            self.ln = nn.LayerNorm(4)
            self.in2 = nn.InstanceNorm2d(4)
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            y = self.relu(self.bn1(self.c1(x))).unsqueeze(-1)      # N, 4, L, 1
            y = self.ct(y)
            y = self.ln(y.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            y = self.bn(self.in2(y))
            return self.fc(y.mean((2, 3)))
    return M().eval()


def _both(rng):
    t_model, e_model = _model(torch), _model(ember)
    share_random_weights(t_model, e_model, rng)
    calib = [rng.standard_normal((4, 3, 12)).astype(np.float32) for _ in range(3)]
    return converted_twins(t_model, e_model, calib)


def test_swapped_modules_match_torch_ao(rng):
    t_q, e_q = _both(rng)
    assert ao_modules(e_q) == ao_modules(t_q)
    # the swapped modules run quantized; mean runs on the quantized tensor, as torch.ao's
    assert e_q.quantization_report == []
    assert [n.args[0].name for n in e_q.graph.nodes if n.name == "mean"] == \
        [n.args[0].name for n in t_q.graph.nodes if n.name == "mean"]
    x = rng.standard_normal((6, 3, 12)).astype(np.float32)
    t_out, e_out = t_q(torch.from_numpy(x)).numpy(), e_q(ember.tensor(x)).numpy()
    # torch's transposed conv sums the integers exactly, ember's in float (documented: a
    # step apart at times), and the InstanceNorm after it magnifies such a step
    step = e_q.fc.scale
    assert np.mean(np.abs(t_out - e_out) <= step + 1e-6) >= 0.8
    assert np.abs(t_out - e_out).max() <= 5 * step + 1e-6
    np.testing.assert_array_equal(e_q.c1.weight().int_repr().numpy(),
                                  t_q.c1.weight().int_repr().numpy())


def test_swapped_modules_compile_to_the_same_values(rng):
    _, e_q = _both(rng)
    x = ember.tensor(rng.standard_normal((2, 3, 12)).astype(np.float32))
    with ember.no_grad():
        np.testing.assert_array_equal(ember.compile(e_q)(x).numpy(), e_q(x).numpy())
