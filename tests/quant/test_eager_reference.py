"""Eager convert(is_reference=True) against torch.ao: the same module structure, the
same quantize -> dequantize weights (bit for bit), the same float outputs."""
import importlib
import warnings

import numpy as np
import pytest
import torch

import ember


def _model(lib):
    q = importlib.import_module(f"{lib.__name__}.ao.quantization")

    class M(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.quant = q.QuantStub()
            self.fc = lib.nn.Linear(6, 4)
            self.conv = lib.nn.Conv2d(2, 3, 3)
            self.conv1 = lib.nn.Conv1d(2, 3, 2)
            self.relu = lib.nn.ReLU()
            self.dequant = q.DeQuantStub()

        def forward(self, x):
            return self.dequant(self.relu(self.fc(self.quant(x))))

    return M().eval(), q


def _converted(lib, state, qconfig_name, x):
    model, q = _model(lib)
    if lib is ember:
        state = {k: ember.tensor(v.numpy()) for k, v in state.items()}
    model.load_state_dict(state)
    model.qconfig = getattr(q, qconfig_name)("x86") if qconfig_name.startswith("get_") \
        else getattr(q, qconfig_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = q.prepare(model)
        prepared(lib.tensor(x))
        return q.convert(prepared, is_reference=True)


@pytest.mark.parametrize("qconfig", ["get_default_qconfig", "default_qconfig",
                                     "default_per_channel_qconfig"])
def test_eager_reference_convert_matches_torch(qconfig):
    rng = np.random.default_rng(3)
    torch.manual_seed(0)
    state = _model(torch)[0].state_dict()
    x = rng.standard_normal((8, 6)).astype(np.float32)
    t_ref = _converted(torch, state, qconfig, x)
    e_ref = _converted(ember, state, qconfig, x)
    for name in ["fc", "conv", "conv1"]:
        t_mod, e_mod = getattr(t_ref, name), getattr(e_ref, name)
        assert e_mod._get_name() == t_mod._get_name()
        assert str(e_mod.weight_qscheme).split(".")[-1] == \
            str(t_mod.weight_qscheme).split(".")[-1]
        np.testing.assert_array_equal(e_mod.get_weight().detach().numpy(),
                                      t_mod.get_weight().detach().numpy())
    assert type(e_ref.quant).__name__ == type(t_ref.quant).__name__ == "Quantize"
    assert type(e_ref.dequant).__name__ == "DeQuantize"
    assert not hasattr(e_ref.fc, "qconfig")
    assert {k for k in e_ref.state_dict()} >= {"fc.weight_scale", "fc.weight_zero_point",
                                               "quant.scale", "quant.zero_point"}
    np.testing.assert_allclose(e_ref.fc(ember.tensor(x)).detach().numpy(),
                               t_ref.fc(torch.tensor(x)).detach().numpy(), atol=1e-6)


def test_eager_reference_convert_needs_qconfig_only_where_swapped():
    model, q = _model(ember)
    model.fc.qconfig = q.default_qconfig          # only fc is quantized
    prepared = q.prepare(model)
    prepared(ember.randn(2, 6))
    ref = q.convert(prepared, is_reference=True)
    assert ref.fc._get_name() == "QuantizedLinear(Reference)"
    assert type(ref.conv) is ember.nn.Conv2d
