"""ember.signal.windows and the top-level window factories against torch."""
from __future__ import annotations

import pytest
import torch

import ember

from tests.oracle import assert_close

WINDOWS = [("bartlett", {}), ("blackman", {}), ("cosine", {}), ("gaussian", {"std": 0.7}),
           ("exponential", {"tau": 2.0}), ("general_cosine", {"a": [0.5, 0.3, 0.2]}),
           ("general_hamming", {"alpha": 0.6}), ("hamming", {}), ("hann", {}),
           ("kaiser", {"beta": 5.0}), ("nuttall", {})]


@pytest.mark.parametrize("name,kw", WINDOWS, ids=[w[0] for w in WINDOWS])
@pytest.mark.parametrize("M", [0, 1, 7])
@pytest.mark.parametrize("sym", [True, False])
def test_windows_match_torch(name, kw, M, sym):
    e = getattr(ember.signal.windows, name)(M, sym=sym, dtype=ember.float64, **kw)
    t = getattr(torch.signal.windows, name)(M, sym=sym, dtype=torch.float64, **kw)
    assert_close(e, t, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name,kw", [("hann_window", {}), ("hamming_window", {"alpha": 0.5}),
                                     ("blackman_window", {}), ("bartlett_window", {}),
                                     ("kaiser_window", {"beta": 4.0})])
@pytest.mark.parametrize("periodic", [True, False])
@pytest.mark.parametrize("n", [1, 8])
def test_window_factories_match_torch(name, kw, periodic, n):
    e = getattr(ember, name)(n, periodic, **kw)
    t = getattr(torch, name)(n, periodic, **kw)
    assert e.dtype == ember.float32
    assert_close(e, t, rtol=1e-6, atol=1e-7)
