"""torch.random: seeding, the generator's state, and fork_rng (run a block without
disturbing the global random stream)."""
from __future__ import annotations

import contextlib

from .frontend.random import (Generator, default_generator, get_rng_state, initial_seed,
                              manual_seed, seed, set_rng_state)

__all__ = ["Generator", "default_generator", "fork_rng", "get_rng_state", "initial_seed",
           "manual_seed", "seed", "set_rng_state"]


@contextlib.contextmanager
def fork_rng(devices=None, enabled=True, _caller="fork_rng", _devices_kw="devices",
             device_type="cuda"):
    """The global generator's state is saved on entry and restored on exit."""
    if not enabled:
        yield
        return
    state = get_rng_state()
    try:
        yield
    finally:
        set_rng_state(state)
