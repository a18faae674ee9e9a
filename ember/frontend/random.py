"""Seeded random number generation: ember.manual_seed, ember.Generator.

A Generator wraps numpy's PCG64. The default generator is what factories
(rand, randn, randint, ...) and random ops (dropout) use when none is passed.
Sequences are reproducible per seed but differ from PyTorch's (different engine).
"""
from __future__ import annotations

import numpy as np

from ..ir import rng as _ir_rng
from .device import device as _device


class Generator:
    def __init__(self, device="cpu"):
        self.device = _device(device)      # torch.device, as torch's Generator.device
        self._seed = 67280421310721      # PyTorch's default seed
        self._rng = np.random.Generator(np.random.PCG64(self._seed))

    def manual_seed(self, seed: int) -> "Generator":
        self._seed = int(seed)
        self._rng = np.random.Generator(np.random.PCG64(self._seed))
        return self

    def seed(self) -> int:
        self._seed = int(np.random.SeedSequence().entropy % (2 ** 63))
        self._rng = np.random.Generator(np.random.PCG64(self._seed))
        return self._seed

    def initial_seed(self) -> int:
        return self._seed

    def get_state(self):
        return self._rng.bit_generator.state

    def set_state(self, state) -> "Generator":
        self._rng.bit_generator.state = state
        return self

    @property
    def numpy(self) -> np.random.Generator:
        return self._rng


default_generator = Generator()


def manual_seed(seed: int) -> Generator:
    return default_generator.manual_seed(seed)


def seed() -> int:
    return default_generator.seed()


def initial_seed() -> int:
    return default_generator.initial_seed()


def get_rng_state():
    return default_generator.get_state()


def set_rng_state(state) -> None:
    default_generator.set_state(state)


def numpy_rng(generator: Generator | None = None) -> np.random.Generator:
    return (generator or default_generator).numpy


# reference kernels in ir (dropout, ...) draw from the default generator's current state
_ir_rng.set_provider(lambda: default_generator.numpy)
