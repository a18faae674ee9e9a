"""PyTorch's tensor, autograd and "What is torch.nn really?" tutorials
(tutorial_basics.py) run with torch and, through torch_as_ember, with ember."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tutorial_basics as ref
from porting import copy_state_dict, torch_as_ember

with torch_as_ember("tutorial_basics") as _ported:
    port = _ported["tutorial_basics"]


def _same(ours, reference, path="result"):
    if isinstance(reference, dict):
        assert sorted(ours) == sorted(reference), path
        for key in reference:
            _same(ours[key], reference[key], f"{path}[{key!r}]")
    elif isinstance(reference, (list, tuple)):
        assert isinstance(ours, (list, tuple)) and len(ours) == len(reference), path
        if hasattr(reference, "_fields"):                   # torch.return_types
            ours, reference = tuple(ours), tuple(reference)
        for i, (a, b) in enumerate(zip(ours, reference)):
            _same(a, b, f"{path}[{i}]")
    elif isinstance(reference, np.ndarray):
        assert isinstance(ours, np.ndarray), path
        assert ours.shape == reference.shape and ours.dtype == reference.dtype, path
        np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-5, err_msg=path)
    elif isinstance(reference, float):
        assert ours == pytest.approx(reference, rel=1e-4, abs=1e-6), path
    else:
        assert ours == reference, path


def test_tensors_tutorial():
    ours, reference = port.tensors_tour(), ref.tensors_tour()
    _same(ours, reference)


def test_autograd_tutorial(rng):
    w = rng.standard_normal((5, 3)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    x = rng.standard_normal(5).astype(np.float32)
    _same(port.autograd_tour(w, b, x), ref.autograd_tour(w, b, x))


@pytest.mark.parametrize("optimizer", ["sgd", "adamw", "rmsprop", "adagrad"])
def test_what_is_nn_really(optimizer, rng):
    x_train = rng.standard_normal((10, 36)).astype(np.float32)
    y_train = rng.integers(0, 3, 10)
    x_valid = rng.standard_normal((6, 36)).astype(np.float32)
    y_valid = rng.integers(0, 3, 6)
    reference, ours = ref.make_mnist_model(), port.make_mnist_model()
    copy_state_dict(reference, ours)
    _same(port.nn_really(ours, x_train, y_train, x_valid, y_valid, optimizer),
          ref.nn_really(reference, x_train, y_train, x_valid, y_valid, optimizer))
