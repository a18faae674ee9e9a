"""Seeded random number generation: ember.manual_seed, ember.Generator.

A Generator wraps numpy's PCG64. The default generator is what factories
(rand, randn, randint, ...) and random ops (dropout) use when none is passed.
Sequences are reproducible per seed but differ from PyTorch's (different engine).
"""
from __future__ import annotations

import numpy as np

from ..ir import dtypes as _ir_dtypes
from ..ir import rng as _ir_rng
from .device import device as _device


class Generator:
    def __init__(self, device="cpu"):
        self.device = _device(device)      # torch.device, as torch's Generator.device
        self._seed = 67280421310721      # PyTorch's default seed
        self._rng = np.random.Generator(np.random.PCG64(self._seed))

    def manual_seed(self, seed: int) -> "Generator":
        seed = int(seed)
        if not -2 ** 63 <= seed < 2 ** 64:
            raise ValueError("Overflow when unpacking long long")
        self._seed = seed % 2 ** 64          # a negative seed wraps to 64 bits, as in torch
        self._rng = np.random.Generator(np.random.PCG64(self._seed))
        self._reseeded()
        return self

    def seed(self) -> int:
        self._seed = int(np.random.SeedSequence().entropy % (2 ** 63))
        self._rng = np.random.Generator(np.random.PCG64(self._seed))
        self._reseeded()
        return self._seed

    def _reseeded(self) -> None:
        """Device generators that follow this one (CUDA dropout's) restart from its seed."""
        for hook in ON_RESEED if self is default_generator else ():
            hook(self._seed)

    def initial_seed(self) -> int:
        return self._seed

    def get_state(self):
        """The generator's state as a uint8 tensor (torch's ByteTensor form: it saves,
        clones and loads like any tensor); set_state takes it back."""
        from .tensor import Tensor
        return Tensor._from_array(np.frombuffer(_pack_state(self._rng.bit_generator.state,
                                                            self._seed), np.uint8).copy())

    def set_state(self, state) -> "Generator":
        if isinstance(state, dict):             # NumPy's form of a PCG64 state
            self._rng.bit_generator.state = state
            return self
        if getattr(state, "dtype", None) is not _ir_dtypes.uint8 or \
                tuple(state.shape) != (_STATE_BYTES,):
            raise TypeError(f"expected a torch.ByteTensor of {_STATE_BYTES} elements from "
                            f"get_state(), but got {type(state).__name__}"
                            f"{'' if not hasattr(state, 'shape') else tuple(state.shape)}")
        numpy_state, self._seed = _unpack_state(np.asarray(state.numpy()).tobytes())
        self._rng.bit_generator.state = numpy_state
        self._reseeded()
        return self

    @property
    def numpy(self) -> np.random.Generator:
        return self._rng


#: PCG64's 128-bit state and increment, its buffered 32-bit half, and the seed
_STATE_BYTES = 16 + 16 + 1 + 4 + 16


def _pack_state(state: dict, seed: int) -> bytes:
    inner = state["state"]
    return (inner["state"].to_bytes(16, "little") + inner["inc"].to_bytes(16, "little")
            + bytes([state["has_uint32"]]) + state["uinteger"].to_bytes(4, "little")
            + seed.to_bytes(16, "little", signed=True))


def _unpack_state(raw: bytes) -> tuple[dict, int]:
    state = {"bit_generator": "PCG64",
             "state": {"state": int.from_bytes(raw[0:16], "little"),
                       "inc": int.from_bytes(raw[16:32], "little")},
             "has_uint32": raw[32], "uinteger": int.from_bytes(raw[33:37], "little")}
    return state, int.from_bytes(raw[37:53], "little", signed=True)


#: called with the new seed whenever the default generator is seeded or its state set
ON_RESEED: list = []
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
