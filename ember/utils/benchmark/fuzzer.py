"""Fuzzer: random benchmark inputs, as torch.utils.benchmark's Fuzzer.

    fuzzer = Fuzzer(parameters=[FuzzedParameter("k", 16, 1024, distribution="loguniform")],
                    tensors=[FuzzedTensor("x", size=("k", 8), probability_contiguous=0.6)],
                    seed=0)
    for tensors, properties, params in fuzzer.take(10): ...

Parameters are drawn first (uniform, loguniform, or a {value: probability} dict);
a draw that fails any constraint, or yields a tensor outside its element/byte
limits, is redrawn. A tensor may come out non-contiguous: a larger buffer sliced by
`steps` and/or with its dimensions permuted; `properties[name]` records numel,
order, steps and is_contiguous. A seed makes the whole sequence reproducible
(one numpy RandomState drives parameters and tensor values).
"""
from __future__ import annotations

import itertools
import math
from typing import Any, Callable

import numpy as np

__all__ = ["Fuzzer", "FuzzedParameter", "FuzzedTensor", "ParameterAlias"]

_MAX_ATTEMPTS = 1000


class ParameterAlias:
    """A parameter value that repeats another parameter's value."""

    def __init__(self, alias_to: str):
        self.alias_to = alias_to

    def __repr__(self):
        return f"ParameterAlias[alias_to: {self.alias_to}]"


class FuzzedParameter:
    def __init__(self, name: str, minval: int | float | None = None,
                 maxval: int | float | None = None,
                 distribution: str | dict[Any, float] | None = None, strict: bool = False):
        self._name, self._minval, self._maxval = name, minval, maxval
        self.strict = strict
        self._distribution = self._check(distribution)

    @property
    def name(self) -> str:
        return self._name

    def _check(self, distribution):
        if isinstance(distribution, dict):
            if self._minval is not None or self._maxval is not None:
                raise ValueError(f"FuzzedParameter '{self._name}': minval and maxval must "
                                 "not be given with a categorical distribution")
            total = sum(distribution.values())
            if not math.isclose(total, 1.0):
                raise ValueError(f"FuzzedParameter '{self._name}': distribution "
                                 f"probabilities sum to {total}, not 1")
            return distribution
        if distribution not in ("uniform", "loguniform"):
            raise ValueError(f"FuzzedParameter '{self._name}': distribution must be "
                             f"'uniform', 'loguniform' or a dict, got {distribution!r}")
        if self._minval is None or self._maxval is None or self._minval > self._maxval:
            raise ValueError(f"FuzzedParameter '{self._name}': needs minval <= maxval, "
                             f"got {self._minval} and {self._maxval}")
        if distribution == "loguniform" and self._minval <= 0:
            raise ValueError(f"FuzzedParameter '{self._name}': loguniform needs minval > 0")
        return distribution

    def _integral(self) -> bool:
        return isinstance(self._minval, int) and isinstance(self._maxval, int)

    def sample(self, state: np.random.RandomState):
        if isinstance(self._distribution, dict):
            values = list(self._distribution.keys())
            index = state.choice(len(values), p=list(self._distribution.values()))
            return values[index]
        if self._distribution == "uniform":
            if self._integral():
                return int(state.randint(self._minval, self._maxval + 1))
            return float(state.uniform(self._minval, self._maxval))
        value = math.exp(state.uniform(math.log(self._minval), math.log(self._maxval)))
        if self._integral():
            return int(min(max(round(value), self._minval), self._maxval))
        return value


class FuzzedTensor:
    def __init__(self, name: str, size: tuple, steps: tuple | None = None,
                 probability_contiguous: float = 0.5, min_elements: int | None = None,
                 max_elements: int | None = None, max_allocation_bytes: int | None = None,
                 dim_parameter: str | None = None, roll_parameter: str | None = None,
                 dtype=None, cuda: bool = False, tensor_constructor: Callable | None = None):
        import ember
        self._name, self._size, self._steps = name, tuple(size), steps
        self._probability_contiguous = probability_contiguous
        self._min_elements, self._max_elements = min_elements, max_elements
        self._max_allocation_bytes = max_allocation_bytes
        self._dim_parameter, self._roll_parameter = dim_parameter, roll_parameter
        self._dtype = dtype if dtype is not None else ember.float32
        self._cuda = cuda
        self._tensor_constructor = tensor_constructor

    @property
    def name(self) -> str:
        return self._name

    @staticmethod
    def default_tensor_constructor(size, dtype, **kwargs):
        import ember
        if dtype.is_floating_point or dtype.is_complex:
            return ember.rand(*size, dtype=dtype)
        return ember.randint(1, 127, size=size, dtype=dtype)

    def _shape(self, params: dict, state) -> tuple[tuple[int, ...], tuple[int, ...], tuple]:
        size = tuple(params[s] if isinstance(s, str) else s for s in self._size)
        steps = tuple(params[s] if isinstance(s, str) else s
                      for s in (self._steps or (1,) * len(size)))
        if self._dim_parameter is not None:
            ndim = params[self._dim_parameter]
            size, steps = size[:ndim], steps[:ndim]
        order = tuple(range(len(size)))
        if state.rand() >= self._probability_contiguous:
            order = tuple(state.permutation(len(size)))
        return size, steps, order

    def satisfies(self, params: dict, state) -> bool:
        size, steps, _ = self._shape(params, np.random.RandomState(0))
        numel = math.prod(size)
        allocated = math.prod(n * s for n, s in zip(size, steps)) * self._dtype.itemsize
        return (self._min_elements is None or numel >= self._min_elements) and \
            (self._max_elements is None or numel <= self._max_elements) and \
            (self._max_allocation_bytes is None or allocated <= self._max_allocation_bytes)

    def _make(self, params: dict, state: np.random.RandomState):
        """The tensor, and its properties (numel, order, steps, is_contiguous, dtype)."""
        size, steps, order = self._shape(params, state)
        buffer_shape = [size[i] * steps[i] for i in order]
        constructor = self._tensor_constructor or self.default_tensor_constructor
        raw = constructor(size=tuple(buffer_shape), dtype=self._dtype, **params)
        if self._cuda:
            raw = raw.cuda()
        inverse = tuple(order.index(i) for i in range(len(order)))
        x = raw.permute(inverse) if len(order) else raw
        index = tuple(slice(None, None, s) for s in steps)
        x = x[index] if index else x
        if self._roll_parameter is not None:
            x = x.roll(params[self._roll_parameter], dims=0) if len(size) else x
        properties = {"numel": math.prod(size), "order": order, "steps": steps,
                      "is_contiguous": x.is_contiguous(), "dtype": str(x.dtype)}
        return x, properties


class Fuzzer:
    def __init__(self, parameters: list, tensors: list, constraints: list[Callable] | None = None,
                 seed: int | None = None):
        if seed is None:
            seed = int(np.random.RandomState().randint(0, 2 ** 32 - 1, dtype=np.int64))
        self._seed = seed
        self._parameters = list(_flatten(parameters))
        self._tensors = list(_flatten(tensors))
        self._constraints = list(constraints or ())
        names = [p.name for p in self._parameters] + [t.name for t in self._tensors]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate is not None:
            raise ValueError(f"Fuzzer: duplicate name {duplicate!r} among parameters and tensors")

    @property
    def rejection_rate(self) -> float:
        return self._rejections / max(self._total, 1)

    def take(self, n: int):
        state = np.random.RandomState(self._seed)
        self._rejections, self._total = 0, 0
        # ember's own RNG draws the tensor values: seed it from the same stream
        import ember
        ember.manual_seed(int(state.randint(0, 2 ** 31 - 1)))
        for _ in range(n):
            params = self._draw_parameters(state)
            tensors, properties = {}, {}
            for t in self._tensors:
                tensors[t.name], properties[t.name] = t._make(params, state)
            yield tensors, properties, params

    def _draw_parameters(self, state) -> dict:
        for _ in range(_MAX_ATTEMPTS):
            self._total += 1
            params: dict = {}
            for p in self._parameters:
                params[p.name] = p.sample(state)
            for name, value in list(params.items()):
                if isinstance(value, ParameterAlias):
                    params[name] = params[value.alias_to]
            if all(c(**params) for c in self._constraints) and \
                    all(t.satisfies(params, state) for t in self._tensors):
                return params
            self._rejections += 1
        raise ValueError(f"Fuzzer: no parameters satisfying the constraints and tensor "
                         f"limits were found in {_MAX_ATTEMPTS} draws")


def _flatten(items):
    for item in items:
        if isinstance(item, (list, tuple)):
            yield from itertools.chain(_flatten(item))
        else:
            yield item
