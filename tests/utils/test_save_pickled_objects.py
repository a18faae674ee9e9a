"""ember.save of objects outside the data format (a whole module, a Namespace in a
checkpoint): stored pickled, loaded only with weights_only=False, as torch.save/load."""
from __future__ import annotations

import argparse
import io
import pickle

import numpy as np
import pytest
import torch

import ember


def _roundtrip(lib, obj, **load_kwargs):
    buffer = io.BytesIO()
    lib.save(obj, buffer)
    buffer.seek(0)
    return lib.load(buffer, **load_kwargs)


def test_whole_module_needs_weights_only_false_like_torch():
    for lib in (ember, torch):
        model = lib.nn.Sequential(lib.nn.Linear(3, 2), lib.nn.ReLU())
        with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
            _roundtrip(lib, model)
        loaded = _roundtrip(lib, model, weights_only=False)
        assert type(loaded) is type(model)
        x = lib.ones(1, 3)
        np.testing.assert_array_equal(loaded(x).detach().numpy(), model(x).detach().numpy())


def test_checkpoint_with_namespace_and_tensors(tmp_path):
    args = argparse.Namespace(lr=0.1, epochs=3)
    model = ember.nn.Linear(2, 2)
    path = tmp_path / "ckpt.pt"
    ember.save({"args": args, "state_dict": model.state_dict(), "step": 7}, path)
    with pytest.raises(ember.frontend.serialization.WeightsOnlyError, match="weights_only=False"):
        ember.load(path)
    checkpoint = ember.load(path, weights_only=False)
    assert checkpoint["args"] == args and checkpoint["step"] == 7
    np.testing.assert_array_equal(checkpoint["state_dict"]["weight"].numpy(),
                                  model.weight.detach().numpy())


def test_state_dicts_still_load_without_unpickling():
    model = ember.nn.Linear(2, 2)
    loaded = _roundtrip(ember, {"model": model.state_dict()})
    np.testing.assert_array_equal(loaded["model"]["bias"].numpy(), model.bias.detach().numpy())


def test_unpicklable_object_is_refused_by_name():
    with pytest.raises(TypeError, match="cannot save an object of type generator"):
        ember.save({"bad": (i for i in range(3))}, io.BytesIO())
