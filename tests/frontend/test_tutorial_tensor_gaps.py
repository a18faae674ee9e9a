"""Tensor-tutorial behaviours fixed for torch parity: split/chunk/unbind return tuples,
torch.tensor() of a list of 0-d tensors takes (and promotes) their dtypes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember


@pytest.mark.parametrize("call", [
    lambda lib, x: x.split(2), lambda lib, x: x.chunk(3), lambda lib, x: x.unbind(),
    lambda lib, x: lib.split(x, [1, 5]), lambda lib, x: lib.chunk(x, 2),
    lambda lib, x: lib.unbind(x.view(2, 3), 1),
])
def test_multi_output_ops_return_tuples(call):
    ours = call(ember, ember.arange(6))
    ref = call(torch, torch.arange(6))
    assert type(ours) is tuple and type(ref) is tuple and len(ours) == len(ref)
    for a, b in zip(ours, ref):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("items", [
    lambda lib: [lib.tensor(1.0), lib.tensor(2.5)],
    lambda lib: [lib.tensor(1, dtype=lib.int32), lib.tensor(2, dtype=lib.int32)],
    lambda lib: [lib.tensor(1, dtype=lib.int32), 2.5],
    lambda lib: [lib.tensor(1.0, dtype=lib.float64), 2],
    lambda lib: [lib.tensor(1.0, dtype=lib.float16), lib.tensor(3, dtype=lib.int64)],
    lambda lib: [[lib.tensor(True), lib.tensor(False)]],
])
def test_tensor_of_zero_dim_tensors(items):
    ours, ref = ember.tensor(items(ember)), torch.tensor(items(torch))
    assert ours.dtype.name == str(ref.dtype).split(".")[-1]
    np.testing.assert_array_equal(ours.numpy(), ref.numpy())


def test_accelerator_device_selection_idiom():
    """The tutorials' device line works: the accelerator is CUDA when ember has a GPU."""
    has_gpu = ember.cuda.is_available()
    assert ember.accelerator.is_available() == has_gpu
    accelerator = ember.accelerator.current_accelerator()
    assert (accelerator is None) == (not has_gpu)
    device = accelerator.type if ember.accelerator.is_available() else "cpu"
    assert device == ("cuda" if has_gpu else "cpu")
    assert ember.accelerator.device_count() == (ember.cuda.device_count() if has_gpu else 0)
    assert ember.ones(2, device=device).device.type == device
    ember.accelerator.synchronize()
    assert ember.backends.mps.is_available() is False and ember.backends.mps.is_built() is False
    if not has_gpu:                           # same answers as a CPU-only torch
        assert torch.accelerator.is_available() is False
        assert torch.accelerator.current_accelerator() is None


def test_scatter_value_keyword_one_hot_transform():
    """The Transforms tutorial's target_transform: zeros(10).scatter_(0, tensor(y), value=1)."""
    for y in (0, 3, 9):
        ours = ember.zeros(10, dtype=ember.float).scatter_(0, ember.tensor(y), value=1)
        ref = torch.zeros(10, dtype=torch.float).scatter_(0, torch.tensor(y), value=1)
        np.testing.assert_array_equal(ours.numpy(), ref.numpy())
    index = [[0, 2], [1, 0]]
    ours = ember.zeros(2, 3).scatter(1, ember.tensor(index), value=2.5)
    ref = torch.zeros(2, 3).scatter(1, torch.tensor(index), value=2.5)
    np.testing.assert_array_equal(ours.numpy(), ref.numpy())
