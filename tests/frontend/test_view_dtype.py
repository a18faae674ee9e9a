"""Tensor.view(dtype) against torch: values, shapes, strides, shared memory, errors."""
import numpy as np
import pytest
import torch

import ember
from oracle import TORCH_DTYPES

PAIRS = [(ember.float32, ember.int32), (ember.float32, ember.float16),
         (ember.float32, ember.float64), (ember.int8, ember.int32),
         (ember.float16, ember.bfloat16), (ember.complex64, ember.float32),
         (ember.float64, ember.uint8), (ember.bool, ember.int8)]


@pytest.mark.parametrize("src,dst", PAIRS, ids=lambda d: d.name)
def test_view_dtype_matches_torch(src, dst):
    base = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float64)
    t = torch.from_numpy(base).to(TORCH_DTYPES[src])
    e = ember.from_numpy(t.numpy().copy())
    got, want = e.view(dst), t.view(TORCH_DTYPES[dst])
    assert got.dtype is dst and tuple(got.shape) == tuple(want.shape)
    assert tuple(got.stride()) == tuple(want.stride())
    assert np.array_equal(got.view(ember.uint8).numpy(), want.view(torch.uint8).numpy())


def test_view_dtype_shares_memory_and_keeps_strides():
    x = ember.zeros(3, 4)
    bits = x.t().view(ember.int32)                     # equal sizes: any strides
    assert tuple(bits.stride()) == tuple(torch.zeros(3, 4).t().view(torch.int32).stride())
    bits[1, 2] = 1065353216                            # the bits of 1.0f
    assert x[2, 1].item() == 1.0
    halves = x.view(dtype=ember.float16)
    halves[0, 1] = 2.0
    want = torch.tensor([0, 2.0], dtype=torch.float16).view(torch.int32).item()
    assert x.view(ember.int32)[0, 0].item() == want


def test_view_dtype_is_not_differentiable_and_view_sizes_still_work():
    x = ember.ones(2, 4, requires_grad=True)
    assert not x.view(ember.int32).requires_grad
    assert x.view(4, 2).requires_grad and tuple(x.view(-1).shape) == (8,)


@pytest.mark.parametrize("case", ["stride", "size", "dim0", "offset"])
def test_view_dtype_errors_match_torch(case):
    def make(lib):
        x = lib.arange(12.).reshape(3, 4)
        return {"stride": lambda: x.t().view(lib.int16),
                "size": lambda: x[:, :3].contiguous().view(lib.int64),
                "dim0": lambda: lib.tensor(1.).view(lib.int16),
                "offset": lambda: x[:, 1:3].view(lib.float64)}[case]
    with pytest.raises(RuntimeError) as want:
        make(torch)()
    with pytest.raises(Exception) as got:
        make(ember)()
    assert str(want.value) in str(got.value)
