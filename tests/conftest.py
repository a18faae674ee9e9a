"""Shared fixtures: a seeded numpy rng per test, and torch as the oracle."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def rng(request):
    """A numpy Generator seeded from the test's name: fresh per test, reproducible."""
    seed = abs(hash(request.node.nodeid)) % (2 ** 32)
    return np.random.default_rng(seed)
