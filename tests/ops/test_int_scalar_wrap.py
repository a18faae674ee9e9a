"""A Python int out of an integer tensor's range wraps as in torch (uint8 -1 is 255) in
eager binary ops, comparisons and where, on the first call and on the cached fast path."""
from __future__ import annotations

import pytest
import torch

import ember

CASES = {
    "eq": lambda m, x: x == -1,
    "add": lambda m, x: x + (-1),
    "mul": lambda m, x: x * -3,
    "rsub": lambda m, x: 300 - x,
    "where": lambda m, x: m.where(x > 1, x, -1),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("dtype", ["uint8", "int8"])
def test_out_of_range_int_scalar_wraps_like_torch(name, dtype):
    values = [0, 100, 3] if dtype == "int8" else [0, 255, 3]
    want = CASES[name](torch, torch.tensor(values, dtype=getattr(torch, dtype))).tolist()
    x = ember.tensor(values, dtype=getattr(ember, dtype))
    for _ in range(3):                      # the full path, then the cached one
        assert CASES[name](ember, x).tolist() == want
