"""torch.quasirandom: SobolEngine, a low-discrepancy (Sobol') sequence generator.

The direction numbers are Joe and Kuo's (new-joe-kuo-6.21201, dimensions 1 to 21201),
taken from scipy.stats.qmc, which ships the same table PyTorch does, with 30 bits per
coordinate (PyTorch's MAXBIT). Points come in Gray-code order: point k is the XOR of the
direction numbers selected by the bits of k ^ (k >> 1), so unscrambled sequences equal
PyTorch's exactly, and fast_forward is a counter bump.

Scrambling (scramble=True) is PyTorch's method: each dimension's direction numbers go
through a random lower-triangular binary matrix (linear matrix scrambling) and the
points through a random digital shift. The random bits come from a NumPy generator
seeded by `seed` (or by ember's global generator when seed is None), so scrambled
points are a valid scrambled Sobol' sequence but not PyTorch's bit for bit.
"""
from __future__ import annotations

import numpy as np

__all__ = ["SobolEngine"]


class SobolEngine:
    MAXBIT = 30
    MAXDIM = 21201

    def __init__(self, dimension: int, scramble: bool = False, seed=None) -> None:
        if not 1 <= dimension <= self.MAXDIM:
            raise ValueError(f"Supported range of dimensionality for SobolEngine is "
                             f"[1, {self.MAXDIM}]")
        self.dimension, self.scramble, self.seed = dimension, scramble, seed
        directions = _direction_numbers(dimension, self.MAXBIT)          # [dim, bits]
        self._shift = np.zeros(dimension, np.uint64)
        if scramble:
            rng = np.random.default_rng(_seed_of(seed))
            directions = _matrix_scrambled(directions, rng, self.MAXBIT)
            self._shift = rng.integers(0, 2 ** self.MAXBIT, dimension, dtype=np.uint64)
        self._directions = directions
        self.num_generated = 0

    def draw(self, n: int = 1, out=None, dtype=None):
        """The next n points, as an [n, dimension] tensor (default dtype unless given)."""
        if self.num_generated + n > 2 ** self.MAXBIT:
            raise ValueError(f"SobolEngine can generate at most 2**{self.MAXBIT} points")
        points = self._points(np.arange(self.num_generated, self.num_generated + n,
                                        dtype=np.uint64))
        self.num_generated += n
        return _as_tensor(points, out, dtype)

    def draw_base2(self, m: int, out=None, dtype=None):
        """The next 2**m points; the count so far plus 2**m must be a power of 2 (what
        keeps the sequence's balance properties)."""
        n = 2 ** m
        total_n = self.num_generated + n
        if total_n & (total_n - 1):
            raise ValueError(f"The balance properties of Sobol' points require n to be a "
                             f"power of 2. {self.num_generated} points have been previously "
                             f"generated, then: n={self.num_generated}+2**{m}={total_n}. If "
                             f"you still want to do this, please use 'SobolEngine.draw()' "
                             f"instead.")
        return self.draw(n, out=out, dtype=dtype)

    def reset(self) -> "SobolEngine":
        self.num_generated = 0
        return self

    def fast_forward(self, n: int) -> "SobolEngine":
        """Skip the next n points."""
        self.num_generated += n
        return self

    def _points(self, indices: np.ndarray) -> np.ndarray:
        gray = indices ^ (indices >> np.uint64(1))
        values = np.broadcast_to(self._shift, (len(indices), self.dimension)).copy()
        for bit in range(self.MAXBIT):
            selected = ((gray >> np.uint64(bit)) & np.uint64(1)).astype(bool)
            values[selected] ^= self._directions[:, bit]
        return values.astype(np.float64) * 2.0 ** -self.MAXBIT

    def __repr__(self) -> str:
        return (f"SobolEngine(dimension={self.dimension}, scramble={self.scramble}, "
                f"seed={self.seed})")


def _direction_numbers(dimension: int, bits: int) -> np.ndarray:
    """[dimension, bits] uint64: direction number j of each dimension, MSB at bit bits-1."""
    from scipy.stats import qmc
    engine = qmc.Sobol(dimension, scramble=False, bits=bits)
    return np.asarray(engine._sv, dtype=np.uint64)


def _matrix_scrambled(directions: np.ndarray, rng, bits: int) -> np.ndarray:
    """Each dimension's direction numbers times a random unit lower-triangular binary
    matrix over GF(2), digits taken most significant first."""
    dimension = directions.shape[0]
    place = np.uint64(1) << np.arange(bits - 1, -1, -1, dtype=np.uint64)   # digit i's bit
    digits = ((directions[:, :, None] & place) > 0).astype(np.uint8)       # [d, j, i]
    lower = np.tril(rng.integers(0, 2, (dimension, bits, bits), dtype=np.uint8), -1)
    lower += np.eye(bits, dtype=np.uint8)
    scrambled = np.einsum("dik,djk->dji", lower, digits, dtype=np.int64) & 1
    return (scrambled.astype(np.uint64) * place).sum(-1, dtype=np.uint64)


def _seed_of(seed):
    if seed is not None:
        return seed
    from . import randint
    return int(randint(0, 2 ** 62, (1,)).item())


def _as_tensor(points: np.ndarray, out, dtype):
    from .frontend.factories import tensor
    from .ir.dtypes import get_default_dtype
    result = tensor(points, dtype=dtype or get_default_dtype())
    if out is None:
        return result
    out.resize_as_(result).copy_(result)
    return out
