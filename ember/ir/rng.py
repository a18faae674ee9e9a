"""The numpy Generator that random reference kernels (dropout, ...) draw from.

`ir` cannot import the frontend, so the frontend registers a *provider* here: a
function returning its default generator's current `np.random.Generator`
(`ember.manual_seed`, `set_rng_state` and `seed` then reach reference kernels
with no further wiring). Without a provider (ir used alone) a module-level
PCG64 generator with PyTorch's default seed is used.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

_provider: Callable[[], np.random.Generator] | None = None
_fallback = np.random.Generator(np.random.PCG64(67280421310721))


def set_provider(provider: Callable[[], np.random.Generator] | None) -> None:
    """Install the function that returns the current global numpy Generator."""
    global _provider
    _provider = provider


def generator() -> np.random.Generator:
    """The Generator random reference kernels must use (the frontend's default one)."""
    return _provider() if _provider is not None else _fallback


def manual_seed(seed: int) -> None:
    """Reseed the fallback generator (used only when no frontend provider is set)."""
    global _fallback
    _fallback = np.random.Generator(np.random.PCG64(int(seed)))
