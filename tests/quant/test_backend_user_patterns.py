"""A user's BackendConfig with patterns of its own (torch.ao's backend_config docs):
fused (Linear, ReLU) with a custom DTypeConfig, and a module class or function ember
has no pattern for, observed on its input and output. prepare_fx / convert_fx give
torch.ao's observers, graph and outputs on the same config."""
from __future__ import annotations

from importlib import import_module

import numpy as np
import pytest
import torch

import ember

pytestmark = pytest.mark.filterwarnings("ignore")


def _model(lib, functional: bool):
    nn, F = lib.nn, lib.nn.functional

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.relu = nn.Linear(4, 8), nn.ReLU()
            self.act = nn.GELU()
            self.fc2 = nn.Linear(8, 3)

        def forward(self, x):
            y = self.relu(self.fc1(x))
            y = F.silu(y) if functional else self.act(y)
            return self.fc2(y)
    return M().eval()


def _backend(lib, functional: bool, act_dtype=None):
    bc = import_module(lib.__name__ + ".ao.quantization.backend_config")
    nni = import_module(lib.__name__ + ".ao.nn.intrinsic")
    nnqr = import_module(lib.__name__ + ".ao.nn.quantized.reference")
    weighted = bc.DTypeConfig(input_dtype=lib.quint8, output_dtype=lib.quint8,
                              weight_dtype=lib.qint8, bias_dtype=lib.float)
    act = bc.DTypeConfig(input_dtype=act_dtype or lib.quint8,
                         output_dtype=act_dtype or lib.quint8)
    different = bc.ObservationType.OUTPUT_USE_DIFFERENT_OBSERVER_AS_INPUT
    user = lib.nn.functional.silu if functional else lib.nn.GELU
    return (bc.BackendConfig("mine")
            .set_backend_pattern_config(
                bc.BackendPatternConfig((lib.nn.Linear, lib.nn.ReLU))
                .set_observation_type(different).add_dtype_config(weighted)
                .set_fused_module(nni.LinearReLU)
                .set_fuser_method(lambda is_qat, linear, relu: nni.LinearReLU(linear, relu)))
            .set_backend_pattern_config(
                bc.BackendPatternConfig(nni.LinearReLU).set_observation_type(different)
                .add_dtype_config(weighted).set_root_module(lib.nn.Linear)
                .set_reference_quantized_module(nnqr.Linear))
            .set_backend_pattern_config(
                bc.BackendPatternConfig(user).set_observation_type(different)
                .add_dtype_config(act)))


def _run(lib, functional, rng_seed=0, act_dtype=None):
    Q = import_module(lib.__name__ + ".ao.quantization")
    qfx = import_module(lib.__name__ + ".ao.quantization.quantize_fx")
    rng = np.random.default_rng(rng_seed)
    model = _model(lib, functional)
    model.load_state_dict({k: lib.tensor(rng.standard_normal(tuple(v.shape)).astype(
        np.float32)) for k, v in model.state_dict().items()})
    x = lib.tensor(rng.standard_normal((16, 4)).astype(np.float32))
    conf = _backend(lib, functional, act_dtype)
    prepared = qfx.prepare_fx(model, Q.get_default_qconfig_mapping("x86"), (x,),
                              backend_config=conf)
    prepared(x)
    observers = sum(1 for n, _ in prepared.named_modules() if "activation_post_process" in n)
    converted = qfx.convert_fx(prepared, backend_config=conf)
    return observers, converted, converted(x).detach().numpy()


def _ops(gm) -> list:
    out = []
    for n in gm.graph.nodes:
        op = n.op if isinstance(n.op, str) else n.op.value
        name = n.target if op in ("call_method", "call_module") else \
            getattr(n.target, "__name__", None) or getattr(n.target, "name", "")
        out.append((op, name if op != "get_attr" else ""))
    return out


@pytest.mark.parametrize("functional", [False, True], ids=["module", "function"])
def test_user_pattern_is_observed_and_converted_like_torch_ao(functional):
    t_obs, t_q, t_out = _run(torch, functional)
    e_obs, e_q, e_out = _run(ember, functional)
    assert e_obs == t_obs == 3               # fc1's input, fc1's output, the user op's output
    assert _ops(e_q) == _ops(t_q)            # ... -> dequantize -> op -> quantize -> ...
    # the user op runs as its pattern says; a lone Linear is no pattern of this backend
    assert e_q.quantization_report == [("fc2", "call_module fc2")]
    np.testing.assert_allclose(e_out, t_out, rtol=1e-5, atol=1e-5)


def test_user_pattern_whose_dtypes_reject_the_qconfig_names_the_node():
    from ember.ao.quantization.quantize_fx import QuantizationError
    with pytest.raises(QuantizationError, match="act.*qint8"):
        _run(ember, False, act_dtype=ember.qint8)
