"""Shared fixtures: a seeded numpy rng per test, and torch as the oracle."""
from __future__ import annotations

import zlib

import numpy as np
import pytest


@pytest.fixture
def rng(request):
    """A numpy Generator seeded from the test's name: fresh per test, reproducible."""
    seed = zlib.crc32(request.node.nodeid.encode())   # stable across runs (hash() is not)
    return np.random.default_rng(seed)
