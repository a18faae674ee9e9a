"""The FX quantization pipeline's models as torch.ao prints them: fuse_fx, prepare_fx,
convert_fx and convert_to_reference_fx return a `GraphModule(...)` (not the model's class
name), and the converted graph's node names follow torch.ao's."""
import warnings

import numpy as np
import pytest
import torch

import ember
import ember.ao.quantization as eq
import ember.ao.quantization.quantize_fx as eqfx
import torch.ao.quantization as tq
import torch.ao.quantization.quantize_fx as tqfx
from quant_twins import converted_twins, share_random_weights

warnings.filterwarnings("ignore")


def _model(nn):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.fc = nn.Linear(6, 6)

        def forward(self, x):
            y = self.conv(x)
            z = self.fc(y)
            return z + y
    return Net().eval()


def _stages(lib, q, fx):
    data = lib.tensor(np.random.default_rng(0).standard_normal((2, 3, 8, 8))
                      .astype(np.float32))
    fused = fx.fuse_fx(_model(lib.nn))
    prepared = fx.prepare_fx(_model(lib.nn), q.get_default_qconfig_mapping("x86"), (data,))
    prepared(data)
    return fused, prepared, fx.convert_to_reference_fx(prepared), fx.convert_fx(prepared)


def test_pipeline_models_are_named_graph_module_as_torch_ao():
    t_names = [type(m).__name__ for m in _stages(torch, tq, tqfx)]
    e_stages = _stages(ember, eq, eqfx)
    assert [type(m).__name__ for m in e_stages] == t_names == ["GraphModule"] * 4
    assert all(repr(m).startswith("GraphModule(") for m in e_stages)


def _binary_model(nn, F):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.fc = nn.Linear(6, 6)

        def forward(self, x):
            y = self.conv(x)
            z = self.fc(y)
            a = F.relu(z + y)
            b = a * y
            return b + z
    return Net().eval()


def _binary_names(gm, targets) -> list:
    return [n.name for n in gm.graph.nodes if n.op == "call_function" and
            any(t in str(n.target) for t in targets)]


def test_converted_add_mul_nodes_take_torch_ao_names():
    rng = np.random.default_rng(1)
    t_model, e_model = _binary_model(torch.nn, torch.nn.functional), \
        _binary_model(ember.nn, ember.nn.functional)
    share_random_weights(t_model, e_model, rng)
    calib = [rng.standard_normal((2, 3, 8, 8)).astype(np.float32)]
    t_q, e_q = converted_twins(t_model, e_model, calib)
    t_names = _binary_names(t_q, ("quantized.add", "quantized.mul"))
    e_names = _binary_names(e_q, ("quantized_add", "quantized_mul"))
    assert t_names == e_names, (t_names, e_names)
    assert e_names[:2] == ["add_relu", "mul_1"]
    data = calib[0]
    np.testing.assert_allclose(e_q(ember.tensor(data)).numpy(),
                               t_q(torch.from_numpy(data)).numpy(),
                               atol=2 * float(t_q.state_dict()["_scale_2"]) + 1e-6)


def _relu_model(nn, relu):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3)
            self.fc = nn.Linear(6, 6)

        def forward(self, x):
            y = relu(self.conv(x))
            z = relu(self.fc(y))
            return relu(z + y)
    return Net().eval()


# looked up when called, as a model's forward does (`F.relu(x)`, `torch.relu(x)`)
_RELUS = {"method": lambda nn: lambda t: t.relu(),
          "inplace_method": lambda nn: lambda t: t.relu_(),
          "functional": lambda nn: lambda t: nn.functional.relu(t),
          "torch_relu": lambda nn: lambda t: (torch if nn is torch.nn else ember).relu(t)}


@pytest.mark.parametrize("form", list(_RELUS))
def test_relu_forms_fuse_as_torch_ao(form):
    """torch.ao fuses F.relu into conv / linear / add, torch.relu into add only (after
    a conv / linear it runs in float), and leaves the `.relu()` and `.relu_()` methods
    as relus on the quantized output."""
    rng = np.random.default_rng(2)
    t_model = _relu_model(torch.nn, _RELUS[form](torch.nn))
    e_model = _relu_model(ember.nn, _RELUS[form](ember.nn))
    share_random_weights(t_model, e_model, rng)
    calib = [rng.standard_normal((2, 3, 8, 8)).astype(np.float32)]
    t_q, e_q = converted_twins(t_model, e_model, calib)
    assert [type(m).__name__ for m in (e_q.conv, e_q.fc)] == \
        [type(m).__name__ for m in (t_q.conv, t_q.fc)]
    names = [n.name for n in t_q.graph.nodes if n.op in ("call_function", "call_method")]
    assert [n.name for n in e_q.graph.nodes if n.op in ("call_function", "call_method")][1:-1] \
        == names[1:-1]                    # (not the quantize / final dequantize nodes)
    out_scale = float(t_q.state_dict()["_scale_0"]) if "_scale_0" in t_q.state_dict() \
        else float(t_q.fc.scale)
    np.testing.assert_allclose(e_q(ember.tensor(calib[0])).numpy(),
                               t_q(torch.from_numpy(calib[0])).numpy(),
                               atol=2 * out_scale + 1e-6)


def _functional_relu_model(lib):
    nn, F = lib.nn, lib.nn.functional

    class Inner(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(lib.randn(5, 6) * 0.3)
            self.b = nn.Parameter(lib.zeros(5))

        def forward(self, x):
            return F.linear(x, self.w, self.b)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = Inner()

        def forward(self, x):
            return F.relu(self.inner(x))
    return Net().eval()


def test_functional_linear_relu_qparams_named_as_torch_ao():
    """F.linear in a submodule fused with a top-level F.relu: the model input's qparams
    take the linear's scope (`inner_input_scale_0`), the output's the relu's (`_scale_0`)."""
    data = np.random.default_rng(1).standard_normal((4, 6)).astype(np.float32)
    keys = []
    for lib, q, fx in ((torch, tq, tqfx), (ember, eq, eqfx)):
        model = _functional_relu_model(lib)
        if lib is ember:
            model.load_state_dict({k: ember.tensor(v.detach().numpy())
                                   for k, v in t_model.state_dict().items()})
        t_model = model
        x = lib.tensor(data)
        prepared = fx.prepare_fx(model, q.get_default_qconfig_mapping("x86"), (x,))
        prepared(x)
        keys.append({k for k in fx.convert_fx(prepared).state_dict() if "scale" in k})
    assert keys[1] == keys[0] == {"inner_input_scale_0", "_scale_0"}
