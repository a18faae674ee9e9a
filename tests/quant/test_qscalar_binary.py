"""add / mul of a quantized value and a Python number in FX graph mode, against
torch.ao: prepare shares the input's observer with the output, and convert_fx gives the
output the qparams (and integers) of torch's quantized add_scalar / mul_scalar."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember


def _twins(op, c):
    class T(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = torch.nn.Linear(5, 8), torch.nn.Linear(8, 3)

        def forward(self, x):
            return self.fc2(op(torch)(self.fc1(x), c))

    class E(ember.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = ember.nn.Linear(5, 8), ember.nn.Linear(8, 3)

        def forward(self, x):
            return self.fc2(op(ember)(self.fc1(x), c))

    torch.manual_seed(0)
    t, e = T().eval(), E().eval()
    e.load_state_dict({k: ember.tensor(v.numpy()) for k, v in t.state_dict().items()})
    return t, e


@pytest.mark.parametrize("name,c", [("add", 5.0), ("add", -20.0), ("add", 0.3),
                                    ("add", 2.5), ("mul", 2.0), ("mul", -1.5)])
@pytest.mark.parametrize("reference", [False, True])
def test_scalar_binary_matches_torch_ao(name, c, reference):
    import torch.ao.quantization as tq
    import torch.ao.quantization.quantize_fx as tqfx
    import ember.ao.quantization as eq
    import ember.ao.quantization.quantize_fx as eqfx
    t, e = _twins(lambda lib: getattr(lib, name), c)
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((4, 5)).astype(np.float32) for _ in range(3)]
    tp = tqfx.prepare_fx(t, tq.get_default_qconfig_mapping("fbgemm"),
                         (torch.from_numpy(batches[0]),))
    ep = eqfx.prepare_fx(e, eq.get_default_qconfig_mapping("fbgemm"),
                         (ember.tensor(batches[0]),))
    for b in batches:
        tp(torch.from_numpy(b))
        ep(ember.tensor(b))
    tconv = (tqfx.convert_to_reference_fx if reference else tqfx.convert_fx)(tp)
    econv = (eqfx.convert_to_reference_fx if reference else eqfx.convert_fx)(ep)
    expect = tconv(torch.from_numpy(batches[1])).detach().numpy()
    got = econv(ember.tensor(batches[1])).numpy()
    step = float(tconv.fc2.scale) if not reference else \
        (expect.max() - min(expect.min(), 0)) / 255
    np.testing.assert_allclose(got, expect, atol=1.01 * step + 1e-6)


@pytest.mark.parametrize("c", [5.0, 2.5, 100.0, -20.0, 0.3, -0.04])
def test_add_scalar_qparams_are_torch_s(c):
    from ember.passes.quantize import scalar_output_qparams
    x = torch.quantize_per_tensor(torch.linspace(-3, 9, 50), 0.05004, 10, torch.quint8)
    y = torch.ops.quantized.add(x, c)
    scale, zero_point = scalar_output_qparams("add", x.q_scale(), x.q_zero_point(), c, 0, 255)
    assert zero_point == y.q_zero_point()
    assert scale == pytest.approx(y.q_scale(), rel=1e-12)


@pytest.mark.parametrize("c", [2.0, -1.5, 0.25])
def test_mul_scalar_qparams_are_torch_s(c):
    from ember.passes.quantize import scalar_output_qparams
    x = torch.quantize_per_tensor(torch.linspace(-3, 9, 50), 0.05004, 10, torch.quint8)
    y = torch.ops.quantized.mul(x, c)
    scale, zero_point = scalar_output_qparams("mul", x.q_scale(), x.q_zero_point(), c, 0, 255)
    assert zero_point == y.q_zero_point()
    assert scale == pytest.approx(y.q_scale(), rel=1e-12)
