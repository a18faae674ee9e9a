"""Comparing a torch run of a distributions program with its ember twin: each named
result list holds tensors (compared as arrays), sizes and plain values."""
from __future__ import annotations

import numpy as np


def plain(value):
    if hasattr(value, "detach"):
        return value.detach().numpy()
    if type(value).__name__ == "Size":
        return tuple(value)
    return value


def assert_same_results(want: list, got: list, name: str) -> None:
    assert len(got) == len(want)
    for i, (w, g) in enumerate(zip(want, got)):
        w, g = plain(w), plain(g)
        if isinstance(w, np.ndarray):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5, equal_nan=True,
                                       err_msg=f"{name}[{i}]")
        else:
            assert g == w, f"{name}[{i}]"
