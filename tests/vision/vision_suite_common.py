"""Shared helpers of the tests/vision/test_vision_suite_*.py files: the torchvision oracle
(imported without its C++ extension, see tests/domain_oracles.py) and value checks."""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from domain_oracles import import_torchvision  # noqa: E402

import ember  # noqa: E402

tv = import_torchvision()
needs_tv = pytest.mark.skipif(tv is None, reason="torchvision is not installed")


def np_of(x):
    if hasattr(x, "detach"):
        x = x.detach()
    if hasattr(x, "numpy"):
        return x.numpy()
    return np.asarray(x)


def close(a, b, atol=1e-5, rtol=1e-5):
    a, b = np_of(a), np_of(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    np.testing.assert_allclose(a.astype(np.float64), b.astype(np.float64), atol=atol, rtol=rtol)


def same_ints(a, b, max_diff=0):
    """Integer images equal, or within max_diff levels (float rounding at .5)."""
    a, b = np_of(a), np_of(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    assert a.dtype == b.dtype, (a.dtype, b.dtype)
    diff = np.abs(a.astype(np.int64) - b.astype(np.int64))
    assert diff.max(initial=0) <= max_diff, f"max difference {diff.max()}"


def image(seed, shape=(3, 10, 12), dtype="float32"):
    rng = np.random.default_rng(seed)
    if dtype == "uint8":
        return rng.integers(0, 256, shape).astype(np.uint8)
    return rng.random(shape).astype(dtype)


def pair(arr, requires_grad=False):
    """The same values as an ember and a torch tensor."""
    import torch
    return (ember.tensor(arr, requires_grad=requires_grad),
            torch.tensor(arr, requires_grad=requires_grad))
