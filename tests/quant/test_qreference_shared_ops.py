"""FX graph mode and the ops that keep their input's qparams (pooling, mean, torch.flatten,
post-training dropout) or that torch.ao observes anew (the `flatten` method, nn.Flatten),
against torch.ao (the oracle): the reference graph quantizes and dequantizes after each
shared op and counts those in its `<scope>_scale_N` buffers; the lowered graph keeps
the shared ops (mean included) on the int8 value with the same buffer numbering, and
runs a `flatten` method between a dequantize and a quantize. Same call targets, same
state_dict keys and values, same outputs."""
from __future__ import annotations

import operator
import warnings

import numpy as np
import pytest
import torch
import torch.ao.quantization as tq
import torch.ao.quantization.quantize_fx as tqfx

import ember
import ember.ao.quantization as eq
import ember.ao.quantization.quantize_fx as eqfx
from quant_twins import share_random_weights

pytestmark = pytest.mark.filterwarnings("ignore")
warnings.filterwarnings("ignore")


def _pooled(lib):
    nn, F = lib.nn, lib.nn.functional

    class Pooled(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.pool = nn.MaxPool2d(2)
            self.ap = nn.AdaptiveAvgPool2d(2)
            self.fc = nn.Linear(16, 4)

        def forward(self, x):
            x = F.max_pool2d(self.ap(self.pool(self.conv(x))), 1)
            x = x.flatten(1)
            return self.fc(x).mean(1), x.mean(1)
    return Pooled()


def _branches(lib):
    nn = lib.nn

    class Branches(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.fl, self.dr = nn.Flatten(), nn.Dropout()
            self.fc1, self.fc2, self.fc3 = nn.Linear(144, 4), nn.Linear(144, 4), \
                nn.Linear(144, 4)

        def forward(self, x):
            x = self.conv(x)
            a = self.fc1(self.fl(x))
            b = self.fc2(self.dr(x).flatten(1))
            c = self.fc3(lib.flatten(x, 1))
            return a + b + c, x.mean([2, 3]), x.mean(1).mean(1)
    return Branches()


MODELS = {"pooled": _pooled, "branches": _branches}


def _prepared_twins(name: str):
    rng = np.random.default_rng(0)
    t_model, e_model = MODELS[name](torch).eval(), MODELS[name](ember).eval()
    share_random_weights(t_model, e_model, rng)
    example = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    t_prep = tqfx.prepare_fx(t_model, tq.get_default_qconfig_mapping("x86"),
                             (torch.from_numpy(example),))
    e_prep = eqfx.prepare_fx(e_model, eq.get_default_qconfig_mapping("x86"),
                             (ember.tensor(example),))
    for _ in range(2):
        batch = rng.standard_normal((4, 3, 8, 8)).astype(np.float32)
        t_prep(torch.from_numpy(batch))
        e_prep(ember.tensor(batch))
    return t_prep, e_prep, rng.standard_normal((3, 3, 8, 8)).astype(np.float32)


def _target(node, lib) -> str:
    if node.op in ("call_method", "call_module", "get_attr"):
        return f"{node.op} {node.target}"
    target = node.target
    if target is operator.add:
        return "call_function add"
    name = getattr(target, "name", None) or getattr(target, "__name__", str(target))
    return f"call_function {name.split('.')[-1]}"


def _calls(gm, lib) -> list:
    return [_target(n, lib) for n in gm.graph.nodes if n.op not in ("placeholder", "output")]


def _state(gm) -> dict:
    """Every state_dict key; the activation / weight qparams' values (by key)."""
    def value(key, v):
        if ("scale" not in key and "zero_point" not in key) or not hasattr(v, "numpy"):
            return None
        return np.asarray(v.detach().numpy())
    return {k: value(k, v) for k, v in gm.state_dict().items()}


def _assert_same_state(t_gm, e_gm):
    t_state, e_state = _state(t_gm), _state(e_gm)
    assert sorted(e_state) == sorted(t_state)
    for key, value in t_state.items():
        if value is None:
            continue
        if "scale" in key:
            np.testing.assert_allclose(e_state[key], value, rtol=1e-5, err_msg=key)
        elif "zero_point" in key:
            np.testing.assert_array_equal(e_state[key], value, err_msg=key)


def _outputs(gm, x, lib):
    with (torch.no_grad() if lib is torch else ember.no_grad()):
        out = gm(torch.from_numpy(x) if lib is torch else ember.tensor(x))
    return [o.numpy() for o in out]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_reference_graph_requantizes_after_shared_ops(name):
    t_prep, e_prep, x = _prepared_twins(name)
    t_ref = tqfx.convert_to_reference_fx(tq_copy(t_prep))
    e_ref = eqfx.convert_to_reference_fx(e_prep)
    assert _calls(e_ref, ember) == _calls(t_ref, torch)
    _assert_same_state(t_ref, e_ref)
    for e_out, t_out in zip(_outputs(e_ref, x, ember), _outputs(t_ref, x, torch)):
        np.testing.assert_allclose(e_out, t_out, atol=0.05)


def test_lowered_graph_keeps_mean_int8_and_numbering():
    t_prep, e_prep, x = _prepared_twins("pooled")
    t_q, e_q = tqfx.convert_fx(tq_copy(t_prep)), eqfx.convert_fx(e_prep)
    assert e_q.quantization_report == []
    # both means run on the int8 value and are dequantized for the output
    means = [n for n in e_q.graph.nodes if n.op == "call_method" and n.target == "mean"]
    assert len(means) == 2
    assert all(n.args[0].target != "dequantize" for n in means)
    # x.flatten(1) runs between a dequantize and a quantize (torch.ao has no shared
    # pattern for the method), which takes `_scale_1`: `_scale_0` went to max_pool2d's
    # requantize, which lowering folds away
    flatten = next(n for n in e_q.graph.nodes if n.op == "call_method" and
                   n.target == "flatten")
    assert flatten.args[0].target == "dequantize"
    state = _state(e_q)
    assert "_scale_1" in state and "_scale_0" not in state
    _assert_same_state(t_q, e_q)
    for e_out, t_out in zip(_outputs(e_q, x, ember), _outputs(t_q, x, torch)):
        np.testing.assert_allclose(e_out, t_out, atol=0.05)


def tq_copy(gm):
    """torch.ao's convert changes the observed GraphModule it is given."""
    import copy
    return copy.deepcopy(gm)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_prepared_graph_names_shared_observers_as_torch_ao(name):
    """A shared op's second observer call targets the input's observer module under the
    next `activation_post_process_N` name (torch.ao's alias), so every call target and
    the prepared state_dict keys agree."""
    t_prep, e_prep, _ = _prepared_twins(name)
    assert _calls(e_prep, ember) == _calls(t_prep, torch)
    assert sorted(e_prep.state_dict()) == sorted(t_prep.state_dict())
    assert e_prep.activation_post_process_2 is e_prep.activation_post_process_1 or \
        name != "pooled"
