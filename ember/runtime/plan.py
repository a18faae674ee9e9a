"""The executable plan: a list of kernel calls over planned buffers, and nothing heavier.

A Plan holds numbered value slots. Inputs and constants fill some slots; each Step
reads slots and writes slots:
- a kernel step calls a compiled kernel with its buffers (inputs then outputs);
  its output buffers were allocated when the plan was built and are reused by every
  call, unless they are results the caller keeps (those come from the caching
  allocator each call);
- a call step calls a Python callable on arrays (extern GEMM/conv, views, ops with
  no generated code) and stores what it returns.

The runtime imports only `ir`: steps are prepared by codegen/frontend, and the plan
just runs them in order.
"""
from __future__ import annotations

import math
import resource
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
try:                                    # numpy >= 2
    from numpy.lib.array_utils import byte_bounds
except ImportError:                     # numpy 1.26
    byte_bounds = np.byte_bounds

from ..ir import autocast, profiling
from ..ir.meta import TensorMeta
from .allocator import default_allocator


@dataclass
class BufferSpec:
    """How to make a step output's array: shape/dtype/strides (elements) of a TensorMeta."""
    meta: TensorMeta
    persistent: bool = True        # False: a fresh block per call (a result the caller keeps)
    arena: Any = None              # memory-plan slot shared with other values (memplan pass)


class HostBuffers:
    """Where a plan's arrays live: CPU memory from the caching allocator. A device
    backend supplies the same five methods over its own buffers."""

    def allocate(self, meta: TensorMeta):
        return array_for(meta)

    def arena(self, nbytes: int):
        return default_allocator().empty(max(nbytes, 1), np.uint8)

    def view(self, arena, meta: TensorMeta):
        """`meta`'s geometry over the start of an arena."""
        count = max(1, _extent(meta))
        flat = arena[:count * meta.dtype.itemsize].view(meta.dtype.np_dtype)
        return strided_view(flat, meta)

    def overlaps(self, a, b) -> bool:
        return isinstance(a, np.ndarray) and np.may_share_memory(a, b)

    def bounds(self, a) -> tuple[int, int] | None:
        """(first byte, one past the last) of an array's memory, None for a non-array:
        what `overlaps` compares, for checking one value against many buffers."""
        return byte_bounds(a) if isinstance(a, np.ndarray) else None

    def copy(self, value):
        out = array_for(_meta_of_array(value))
        np.copyto(out, value)
        return out


def array_for(meta: TensorMeta, allocator=None) -> np.ndarray:
    """An uninitialized array with `meta`'s shape, dtype and strides, from the allocator."""
    allocator = allocator or default_allocator()
    count = max(1, _extent(meta))
    flat = allocator.empty(count, meta.dtype.np_dtype)
    return strided_view(flat, meta)


def strided_view(flat: np.ndarray, meta: TensorMeta) -> np.ndarray:
    """View the 1-D `flat` with `meta`'s geometry, through ordinary numpy views when the
    layout is contiguous or channels-last (so tensors can find their storage)."""
    shape, strides = tuple(meta.shape), tuple(meta.strides)
    n = math.prod(shape)
    if strides == _contiguous(shape):
        return flat[:n].reshape(shape)
    if len(shape) == 4 and strides == _channels_last(shape):
        nb, c, h, w = shape
        return flat[:n].reshape(nb, h, w, c).transpose(0, 3, 1, 2)
    item = flat.itemsize
    return np.lib.stride_tricks.as_strided(flat, shape, [s * item for s in strides])


def _contiguous(shape):
    out, acc = [], 1
    for s in reversed(shape):
        out.append(acc)
        acc *= max(s, 1)
    return tuple(reversed(out))


def _channels_last(shape):
    n, c, h, w = shape
    return (h * w * c, 1, w * c, c)


def _extent(meta: TensorMeta) -> int:
    if any(s == 0 for s in meta.shape):
        return 0
    return 1 + sum((s - 1) * st for s, st in zip(meta.shape, meta.strides))


@dataclass
class Step:
    name: str
    fn: Callable
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    kernel: bool = False            # fn(list of arrays: inputs then outputs) -> None
    out_specs: tuple = ()           # kernel steps: BufferSpec per output
    kind: str = "call"              # profiler category: kernel, extern, view, fallback, call
    source: tuple[str, ...] = ()    # user lines ('model.py:14 in forward') of its graph nodes


@dataclass
class Plan:
    n_slots: int
    input_slots: list[int]
    output_slots: Any                 # nested tuples of slot numbers, like the graph's output
    constants: dict[int, Any] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    buffers: Any = field(default_factory=HostBuffers)
    _fixed: dict[int, Any] = field(default_factory=dict, repr=False)
    _fixed_bounds: list | None = field(default=None, repr=False)   # of _fixed, while valid
    calls: int = 0

    def prepare(self) -> None:
        """Allocate the persistent buffers once (done on the first call). Values the
        memory plan put in one arena share it: one block of the largest size."""
        sizes: dict[int, int] = {}
        for step in self.steps:
            for spec in step.out_specs:
                if spec.persistent and spec.arena is not None:
                    nbytes = max(1, _extent(spec.meta)) * spec.meta.dtype.itemsize
                    sizes[spec.arena] = max(sizes.get(spec.arena, 0), nbytes)
        arenas = {k: self.buffers.arena(n) for k, n in sizes.items()}
        for step in self.steps:
            for slot, spec in zip(step.outputs, step.out_specs):
                if not spec.persistent or slot in self._fixed:
                    continue
                self._fixed[slot] = self.buffers.view(arenas[spec.arena], spec.meta) \
                    if spec.arena is not None else self.buffers.allocate(spec.meta)
        self._fixed_bounds = None

    @property
    def reserved_bytes(self) -> int:
        """Bytes of the persistent buffers (arenas counted once)."""
        seen, total = set(), 0
        for arr in self._fixed.values():
            base = arr.base if getattr(arr, "base", None) is not None else arr
            while getattr(base, "base", None) is not None and isinstance(base.base, np.ndarray):
                base = base.base
            if id(base) not in seen:
                seen.add(id(base))
                total += getattr(base, "nbytes", 0)
        return total

    def bind(self, slot: int, array: np.ndarray) -> None:
        """Make a persistent kernel output write into the caller's `array` (which must
        have its BufferSpec's shape, dtype and strides): a training step updating its
        parameters in place. Rebinding each call is cheap."""
        if not self._fixed:
            self.prepare()
        if self._fixed.get(slot) is not array:     # a step's parameters: the same each call
            self._fixed[slot] = array
            self._fixed_bounds = None

    def run(self, inputs: list[np.ndarray]):
        if not self._fixed:
            self.prepare()
        values: list[Any] = [None] * self.n_slots
        for slot, value in self.constants.items():
            values[slot] = value
        for slot, value in zip(self.input_slots, inputs):
            values[slot] = value
        profiler = profiling.collector()
        # an eager step runs a graph node whose dtypes autocast already chose when it was
        # traced: a region active at the call must not cast its operands again
        with autocast.suspended():
            if profiler is None:
                for step in self.steps:
                    self._run_step(step, values)
            else:
                self._run_profiled(profiler, values)
        self.calls += 1
        return _gather(self.output_slots, values, self._owns, self.buffers.copy)

    def _run_profiled(self, profiler, values: list) -> None:
        """The steps, each a span (named by its graph node, carrying its user lines)
        inside one 'CompiledFunction' span for the whole call."""
        with profiling.record("CompiledFunction", "compiled"):
            for step in self.steps:
                token = profiler.begin(step.name, step.kind, {"source": step.source})
                try:
                    self._run_step(step, values)
                finally:
                    profiler.end(token)

    def _run_step(self, step: Step, values: list) -> None:
        if step.kernel:
            outs = [self._fixed[s] if spec.persistent else self.buffers.allocate(spec.meta)
                    for s, spec in zip(step.outputs, step.out_specs)]
            step.fn([values[s] for s in step.inputs] + outs)
            for s, arr in zip(step.outputs, outs):
                values[s] = arr
        else:
            result = step.fn(*[values[s] for s in step.inputs])
            if len(step.outputs) == 1:
                values[step.outputs[0]] = result
            else:
                for s, arr in zip(step.outputs, result):
                    values[s] = arr

    def _owns(self, arr) -> bool:
        """True when `arr` lives in a buffer the next call overwrites. On the host the
        buffers' byte ranges are kept between calls: a training step returns a few
        values and holds dozens of buffers, and pairwise checks cost ~0.1 ms a call."""
        bounds = getattr(self.buffers, "bounds", None)
        if bounds is None:
            return any(self.buffers.overlaps(arr, fixed) for fixed in self._fixed.values())
        span = bounds(arr)
        if span is None:
            return False
        if self._fixed_bounds is None:
            self._fixed_bounds = [b for b in map(bounds, self._fixed.values()) if b]
        low, high = span
        return any(low < end and start < high for start, end in self._fixed_bounds)


def _gather(structure, values, reused: Callable, copy: Callable):
    """The results, copied out of reused buffers (callers keep results across calls)."""
    if isinstance(structure, int):
        value = values[structure]
        return copy(value) if reused(value) else value
    if isinstance(structure, (tuple, list)):
        return type(structure)(_gather(s, values, reused, copy) for s in structure)
    return structure


def _meta_of_array(arr: np.ndarray) -> TensorMeta:
    from ..ir.dtypes import from_numpy_dtype
    from ..ir.meta import contiguous_strides
    return TensorMeta(arr.shape, from_numpy_dtype(arr.dtype), "cpu",
                      strides=contiguous_strides(arr.shape))


def page_faults() -> int:
    """Minor page faults of this process so far (ru_minflt)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
