"""convert_fx's output has torch.ao's shape: the int8 layers are quantized modules under
the float modules' names (ConvReLU2d, Linear, ...), activation qparams are get_attr
buffers under torch.ao's names, the graph's node kinds follow torch.ao's, and the
modules answer torch.ao's accessors (weight(), bias(), scale, zero_point)."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
import torch.ao.quantization as tq
import torch.ao.quantization.quantize_fx as tqfx

import ember
import ember.ao.quantization as eq
import ember.ao.quantization.quantize_fx as eqfx
from tests.quant.quant_twins import ao_modules, converted_twins, share_random_weights

pytestmark = pytest.mark.filterwarnings("ignore")


def _model(lib):
    nn = lib.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
            self.relu = nn.ReLU()
            self.conv2 = nn.Conv2d(6, 6, 3, padding=1, bias=False)
            self.pool = nn.AdaptiveAvgPool2d(2)
            self.fc1 = nn.Linear(24, 16)
            self.act = nn.Hardswish()
            self.fc2 = nn.Linear(16, 4)

        def forward(self, x):
            y = self.relu(self.conv1(x))
            y = y + self.conv2(y)
            y = self.pool(y)
            y = y.reshape(y.shape[0], -1)
            return self.fc2(self.act(self.fc1(y)))
    return Net().eval()


def _both(rng):
    t_model, e_model = _model(torch), _model(ember)
    share_random_weights(t_model, e_model, rng)
    calib = [rng.standard_normal((4, 3, 8, 8)).astype(np.float32) for _ in range(3)]
    return converted_twins(t_model, e_model, calib)


def _node_kinds(gm) -> Counter:
    """(op, what it calls) for every node, in words both libraries share."""
    kinds = Counter()
    modules = dict(gm.named_modules())
    for n in gm.graph.nodes:
        op = n.op if isinstance(n.op, str) else n.op.value
        if op == "call_module":
            what = type(modules[str(n.target)]).__name__
        elif op == "call_function":
            what = getattr(n.target, "__name__", None) or getattr(n.target, "name", "")
            what = what.split(".")[-1].replace("quantized_", "")     # quantized::add
        elif op in ("call_method", "get_attr"):
            what = str(n.target).rstrip("0123456789").rstrip("_") if op == "get_attr" \
                else str(n.target)
        else:
            what = ""
        kinds[(op, what)] += 1
    return kinds


def test_converted_modules_names_and_types_match_torch_ao(rng):
    t_q, e_q = _both(rng)
    assert ao_modules(e_q) == ao_modules(t_q)
    assert [n for n, _ in e_q.named_modules()] == [n for n, _ in t_q.named_modules()
                                                    if not n.endswith("_packed_params")]
    assert str(e_q.conv1).replace("ember.", "torch.") .split("scale=")[0] == \
        str(t_q.conv1).split("scale=")[0]
    assert str(e_q.fc1).startswith("QuantizedLinear(in_features=24, out_features=16")


def test_converted_graph_node_kinds_match_torch_ao(rng):
    t_q, e_q = _both(rng)
    assert _node_kinds(e_q) == _node_kinds(t_q)
    t_attrs = {str(n.target) for n in t_q.graph.nodes if n.op == "get_attr"}
    e_attrs = {str(n.target) for n in e_q.graph.nodes if n.op.value == "get_attr"}
    assert e_attrs == t_attrs                     # conv1_input_scale_0, _scale_0, ...
    assert "conv1_input_scale_0 = self.conv1_input_scale_0" in e_q.code


def test_quantized_modules_hold_torch_ao_values(rng):
    t_q, e_q = _both(rng)
    x = rng.standard_normal((5, 3, 8, 8)).astype(np.float32)
    for name in ("conv1", "conv2", "fc1", "fc2"):
        t_mod, e_mod = t_q.get_submodule(name), e_q.get_submodule(name)
        np.testing.assert_array_equal(e_mod.weight().int_repr().numpy(),
                                      t_mod.weight().int_repr().numpy())
        assert abs(e_mod.scale - t_mod.scale) <= 1e-6 * t_mod.scale
        assert e_mod.zero_point == t_mod.zero_point
        assert (e_mod.bias() is None) == (t_mod.bias() is None)
    for key in ("conv1_input_scale_0", "conv1_input_zero_point_0"):
        np.testing.assert_allclose(getattr(e_q, key).numpy(), getattr(t_q, key).numpy(),
                                   rtol=1e-6)
    np.testing.assert_allclose(e_q(ember.tensor(x)).numpy(), t_q(torch.from_numpy(x)).numpy(),
                               atol=3 * e_q.fc2.scale)


def test_conv_state_dict_keys_match_torch_ao_and_round_trip(rng):
    t_q, e_q = _both(rng)
    e_keys = set(e_q.state_dict())
    t_keys = set(t_q.state_dict())
    # torch.ao's keys for everything but its Linear's packed-params tuple (and a missing
    # conv bias, which torch.ao saves as None)
    want = {k for k in t_keys if "_packed_params" not in k and k != "conv2.bias"}
    assert want <= e_keys
    x = ember.tensor(rng.standard_normal((2, 3, 8, 8)).astype(np.float32))
    fresh = _both(rng)[1]
    fresh.load_state_dict(e_q.state_dict())
    np.testing.assert_array_equal(fresh(x).numpy(), e_q(x).numpy())


def test_compiled_converted_model_still_runs_the_int8_ops(rng):
    _, e_q = _both(rng)
    x = ember.tensor(rng.standard_normal((3, 3, 8, 8)).astype(np.float32))
    with ember.no_grad():
        compiled = ember.compile(e_q)
        np.testing.assert_array_equal(compiled(x).numpy(), e_q(x).numpy())
    assert "quantized_linear" in compiled.stats.fallbacks
