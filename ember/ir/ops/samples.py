"""Sample inputs for the table-driven op tests (framework-neutral: numpy arrays).

A `Sample` is one call: positional args and kwargs where tensors are numpy arrays.
The test driver turns arrays into ember and torch tensors (floats require grad)
and compares values, dtypes, shapes, strides and gradients. Shapes are chosen to
hit 0-d, size-1, broadcasting and odd sizes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Sample:
    args: tuple
    kwargs: dict = field(default_factory=dict)
    grad: bool = True          # check gradients for this sample
    note: str = ""

    def __repr__(self) -> str:
        def short(v):
            if isinstance(v, np.ndarray):
                return f"{v.dtype}{list(v.shape)}"
            if isinstance(v, (list, tuple)):
                return "[" + ", ".join(short(x) for x in v) + "]"
            return repr(v)
        parts = [short(a) for a in self.args] + [f"{k}={short(v)}" for k, v in
                                                 self.kwargs.items()]
        return f"Sample({', '.join(parts)})"


def randn(rng, *shape, dtype=np.float32):
    return np.asarray(rng.standard_normal(shape), dtype=dtype)


def positive(rng, *shape, dtype=np.float32):
    return np.asarray(rng.random(shape) + 0.5, dtype=dtype)


def unit(rng, *shape, dtype=np.float32):
    """Values in (-0.9, 0.9): asin/acos/atanh domains."""
    return np.asarray(rng.random(shape) * 1.8 - 0.9, dtype=dtype)


def away_from_zero(rng, *shape, dtype=np.float32):
    x = rng.standard_normal(shape)
    return np.asarray(np.sign(x) * (np.abs(x) + 0.3), dtype=dtype)


UNARY_SHAPES = [(), (1,), (5,), (3, 7), (2, 3, 4)]


def unary_samples(make=randn, dtype=np.float32):
    def gen(rng):
        return [Sample((make(rng, *s, dtype=dtype),)) for s in UNARY_SHAPES]
    return gen


BINARY_SHAPES = [((), ()), ((5,), (5,)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)),
                 ((3, 4), ())]


def binary_samples(make_a=randn, make_b=randn, scalar=None):
    """Pairs that broadcast; optional extra sample with a Python scalar second operand."""
    def gen(rng):
        out = [Sample((make_a(rng, *a), make_b(rng, *b))) for a, b in BINARY_SHAPES]
        if scalar is not None:
            out.append(Sample((make_a(rng, 3, 4), scalar)))
        return out
    return gen


def int_array(rng, *shape, low=-5, high=6, dtype=np.int64):
    return np.asarray(rng.integers(low, high, size=shape), dtype=dtype)


def bool_array(rng, *shape):
    return np.asarray(rng.random(shape) > 0.5)
