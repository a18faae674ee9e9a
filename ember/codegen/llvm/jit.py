"""Compile LLVM IR for the host at -O3 and hand back ctypes function pointers.

    lib = compile_ir(ir_text)                    # or an llvmlite.ir.Module
    f = lib.function("axpy", None, c_int64, c_float, c_void_p, c_void_p)

Every compile goes IR text -> object code (LLVM's new pass manager at O3, then the
target machine's code generator), and every load goes object code -> MCJIT, so the
disk cache (`cache.py`) skips parsing, optimization and code generation entirely on a
warm start. Compiled libraries are also kept per process by key: a library's code
lives as long as the process, so its function pointers never dangle.

Floating-point: nothing here turns on fast-math globally. Kernels put fast-math
flags on the instructions where reassociation is numerically allowed (a GEMM's
reduction order, a polynomial's FMA contraction), never on range reductions.
"""
from __future__ import annotations

import ctypes
import threading
import time
from dataclasses import dataclass

import llvmlite.binding as llvm
from llvmlite import ir as llir

from ...ir.errors import LoweringError
from . import cache
from .target import Target, host_target, supported_isas, target_for


@dataclass
class Library:
    """One compiled module loaded into the process."""
    key: str
    target: Target
    object_code: bytes
    from_cache: bool          # True: loaded from the disk cache, nothing was compiled
    seconds: float            # wall time of compile_ir (compile or load)
    engine: llvm.ExecutionEngine

    def address(self, name: str) -> int:
        addr = self.engine.get_function_address(name)
        if not addr:
            raise LoweringError(f"compiled library has no function {name!r}")
        return addr

    def function(self, name: str, restype, *argtypes):
        """A ctypes function (CFUNCTYPE: the call releases the GIL) for symbol `name`."""
        return ctypes.CFUNCTYPE(restype, *argtypes)(self.address(name))


_LOADED: dict[str, Library] = {}
_LOCK = threading.Lock()


def compile_ir(module: str | llir.Module, target: Target | None = None,
               use_cache: bool = True, reuse_loaded: bool = True) -> Library:
    """Compile `module` for `target` (default: the host), through both caches.

    `use_cache=False` skips the disk cache; `reuse_loaded=False` skips the in-process
    table (a fresh load, as a new process would do: used to time warm starts)."""
    target = target or host_target()
    text = str(module)
    key = cache.cache_key(text, target)
    with _LOCK:
        if reuse_loaded and key in _LOADED:
            return _LOADED[key]
        t0 = time.perf_counter()
        lib = _load_cached(key, target, t0) if use_cache else None
        if lib is None:
            obj = compile_to_object(text, target)
            if use_cache:
                cache.store(key, obj)
            lib = Library(key, target, obj, False, time.perf_counter() - t0, _load_object(obj))
        _LOADED.setdefault(key, lib)
        return lib


_BUILT: dict[str, Library] = {}


def compile_built(build, *args, target: Target | None = None) -> Library:
    """compile_ir(build(*args), target), where build's module depends only on its
    arguments (whose repr says all of them), the target, the host and ember's sources:
    a warm disk cache then loads the object code without calling `build` at all (no
    module built, no IR printed; cache.recipe_key)."""
    if build.__closure__ is not None or "<" in build.__qualname__:
        raise ValueError(f"compile_built needs a module-level builder, not {build!r}: "
                         "a closure's captured values are not in its recipe")
    target = target or host_target()
    recipe = f"{build.__module__}.{build.__qualname__}{args!r}"
    rkey = cache.recipe_key(recipe, target, host_target())
    with _LOCK:
        if rkey in _BUILT:
            return _BUILT[rkey]
        key = cache.load_alias(rkey)
        lib = _LOADED.get(key) if key else None
        if lib is None and key:
            lib = _load_cached(key, target, time.perf_counter())
            if lib is not None:
                _LOADED.setdefault(key, lib)
        if lib is not None:
            _BUILT[rkey] = lib
            return lib
    lib = compile_ir(build(*args), target)
    cache.store_alias(rkey, lib.key)
    with _LOCK:
        _BUILT.setdefault(rkey, lib)
    return lib


def _load_cached(key: str, target: Target, t0: float) -> Library | None:
    obj = cache.load(key)      # checksummed: never a damaged object file
    if obj is None:
        return None
    return Library(key, target, obj, True, time.perf_counter() - t0, _load_object(obj))


def compile_to_object(text: str, target: Target) -> bytes:
    """IR text -> verified, O3-optimized module -> object code for `target`."""
    try:
        mod = llvm.parse_assembly(text)
        mod.verify()
    except RuntimeError as e:
        raise LoweringError(f"invalid LLVM IR: {e}") from None
    tm = target.machine()
    mod.triple = tm.triple
    mod.data_layout = str(tm.target_data)
    optimize(mod, tm)
    return tm.emit_object(mod)


def optimize(mod: llvm.ModuleRef, tm: llvm.TargetMachine) -> None:
    """LLVM's default O3 pipeline (new pass manager), vectorizers on."""
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pto.loop_unrolling = True
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(mod, pb)


def _load_object(obj: bytes) -> llvm.ExecutionEngine:
    # One engine per library: symbols never clash across libraries, and the host
    # machine can run code built for any ISA it supports.
    # The engine takes ownership of its target machine (and frees it with itself),
    # so each engine gets a machine of its own.
    machine = target_for(supported_isas()[0]).machine()
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), machine)
    engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
    engine.finalize_object()
    return engine

