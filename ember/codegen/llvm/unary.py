"""Elementwise float32 kernels from one vecmath emitter: y[i] = f(x[i]) over a range.

    y = apply_unary("tanh", x)        # any-shape contiguous float32 array, threaded

The kernel `map(begin, end, worker, x, y)` runs whole vectors over [begin, end) and
the scalar form of the same emitter on the tail, so every element goes through the
same math whatever its position. It is the standalone form of the vecmath emitters,
for tests, for the benchmark, and for ops that run as external kernels.
"""
from __future__ import annotations

import ctypes
import functools

import numpy as np
from llvmlite import ir

from ...ir.errors import DTypeError, LoweringError
from ...runtime.threads import ThreadPool, default_pool
from . import irutil as u
from .jit import compile_built
from .target import Isa, host_isa, target_for
from .vecmath import EMITTERS

_ARGS = [("begin", u.I64), ("end", u.I64), ("worker", u.I64), ("x", u.PTR), ("y", u.PTR)]
_CTYPES = [ctypes.c_int64] * 3 + [ctypes.c_void_p] * 2
_MIN_PER_THREAD = 1 << 15     # below this a thread hand-off costs more than it saves


def unary_module(name: str, lanes: int) -> ir.Module:
    emit = EMITTERS[name]
    module = ir.Module(name=f"ember_unary_{name}")
    fn, b = u.define(module, "map", u.VOID, _ARGS)
    begin, end, _, x, y = fn.args
    vector_end = b.sub(end, b.srem(b.sub(end, begin), u.i64(lanes)))
    with u.counted_loop(b, begin, vector_end, lanes, "v") as i:
        u.store_vec(b, emit(b, u.load_vec(b, x, i, lanes)), y, i)
    with u.counted_loop(b, vector_end, end, 1, "t") as i:
        b.store(emit(b, b.load(u.elem_ptr(b, x, i), typ=u.F32)), u.elem_ptr(b, y, i))
    b.ret_void()
    return module


@functools.cache
def unary_kernel(name: str, isa: Isa):
    """The compiled map kernel of `name` for `isa` (ctypes, parallel_for signature)."""
    if name not in EMITTERS:
        raise LoweringError(f"vecmath has no function {name!r}; known: {sorted(EMITTERS)}")
    lib = compile_built(unary_module, name, isa.lanes, target=target_for(isa))
    return lib.function("map", None, *_CTYPES)


def apply_unary(name: str, x: np.ndarray, out: np.ndarray | None = None,
                isa: Isa | None = None, pool: ThreadPool | None = None) -> np.ndarray:
    """out = name(x) elementwise for a C-contiguous float32 array."""
    if not isinstance(x, np.ndarray) or x.dtype != np.float32:
        raise DTypeError(f"{name}: expected a float32 numpy array, got "
                         f"{getattr(x, 'dtype', type(x).__name__)}")
    x = np.ascontiguousarray(x)
    if out is None:
        out = np.empty_like(x)
    elif out.shape != x.shape or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise DTypeError(f"{name}: out must be a C-contiguous float32 array of shape {x.shape}")
    isa = isa or host_isa()
    kernel = unary_kernel(name, isa)
    pool = pool or default_pool()
    threads = max(1, min(pool.n_threads, x.size // _MIN_PER_THREAD))
    pool.parallel_for(kernel, x.size, x.ctypes.data, out.ctypes.data,
                      align=isa.lanes, max_threads=threads)
    return out
