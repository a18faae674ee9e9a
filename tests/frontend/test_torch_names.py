"""torch names new users reach for: ember.jit's TorchScript decorators and queries,
ember._assert, load_state_dict's seven-argument _load_from_state_dict, and
AttributeErrors that name the public module."""
from __future__ import annotations

import numpy as np
import pytest

import ember
import ember.jit


def test_jit_decorators_keep_the_function():
    def f(x):
        return x + 1
    for decorate in (ember.jit.unused, ember.jit.ignore, ember.jit.ignore(drop=True),
                     ember.jit.export, ember.jit._overload_method, ember.jit.script):
        assert decorate(f) is f
    model = ember.nn.Linear(2, 2)
    assert ember.jit.script(model) is model
    assert ember.jit.annotate(list, [1]) == [1]


def test_is_scripting_and_is_tracing():
    seen = []

    def f(x):
        seen.append((ember.jit.is_scripting(), ember.jit.is_tracing()))
        return x * 2
    f(ember.ones(2))
    ember.jit.trace(f, ember.ones(2))
    assert seen == [(False, False), (False, True)]


def test_assert_raises_and_traces():
    ember._assert(ember.tensor(True), "fine")
    with pytest.raises(AssertionError, match="too small"):
        ember._assert(ember.tensor(1.0) > 2, "too small")

    def f(x):
        ember._assert(x.shape[0] == 3, "three rows")
        return x
    gm = ember.fx.symbolic_trace(f)
    assert any(n.target is ember._assert for n in gm.graph.nodes)
    with pytest.raises(AssertionError, match="three rows"):
        gm(ember.ones(2))


def test_load_from_state_dict_with_pytorchs_seven_arguments():
    calls = []

    class Renamed(ember.nn.Linear):
        def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                                  missing_keys, unexpected_keys, error_msgs):
            calls.append(local_metadata)
            old = prefix + "w"
            if old in state_dict:
                state_dict[prefix + "weight"] = state_dict.pop(old)
            super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                          missing_keys, unexpected_keys, error_msgs)

    source = ember.nn.Linear(2, 3)
    state = {"w": source.weight.detach(), "bias": source.bias.detach()}
    target = Renamed(2, 3)
    target.load_state_dict(state)
    np.testing.assert_array_equal(target.weight.detach().numpy(),
                                  source.weight.detach().numpy())
    target.load_state_dict({"weight": source.weight.detach() * 2, "bias": source.bias},
                           assign=True)
    assert calls[-1] == {"assign_to_params_buffers": True}


@pytest.mark.parametrize("module,public", [
    (ember.nn.functional, "ember.nn.functional"), (ember.nn, "ember.nn"), (ember, "ember"),
    (ember.linalg, "ember.linalg"), (ember.nn.init, "ember.nn.init"),
    (ember.autograd, "ember.autograd"), (ember.fft, "ember.fft"),
])
def test_missing_attributes_name_the_public_module(module, public):
    with pytest.raises(AttributeError) as err:
        module.no_such_function
    assert str(err.value) == f"module '{public}' has no attribute 'no_such_function'"


def test_public_functions_carry_their_public_module():
    assert ember.nn.functional.relu.__module__ == "ember.nn.functional"
    assert ember.zeros_like.__module__ == "ember"
