"""ember.compile's CPU inference plans through one native entry point.

The entry point an artifact's shared library exports (codegen/native_entry.py) serves
in-process plans too: the plan is built with the describing backend
(compiler/aot.py's PackagingBackend, in-process mode: its steps carry what the native
program needs), and from the plan's second call on, `plan.run` makes one foreign call
into a JIT-compiled `ember_plan<N>_run` that calls the already-loaded kernels (the
plan's generated kernels, the process's GEMM and conv) by address, over one arena.
The first call runs the Python step loop (a plan called once never pays for the
entry's compilation; EMBER_NATIVE_ENTRY=always builds it for the first call, which
tests use), as does any call under the profiler (per-step spans).

A plan the program cannot express (a step with no native kernel, a conv whose weights
are computed, an empty product, ...) keeps the Python loop; so does everything when
`EMBER_NATIVE_ENTRY=0` or no C compiler is found (the pool and copies are C).
Results are bit for bit those of the Python loop: same kernels, same arguments, same
chunks per thread (tests/aot/test_native_entry.py).
"""
from __future__ import annotations

import ctypes
import itertools
import os
import shutil
import subprocess
import tempfile
import threading

import numpy as np

from ..ir import profiling
from ..ir.errors import EmberIndexError
from ..runtime.lite import Spares, step_error
from ..runtime.threads import cpu_count, get_num_threads

_COUNTER = itertools.count()
_RUNTIME: list = []              # [ctypes library] once loaded, [None] when unavailable
_RUNTIME_LOCK = threading.Lock()
_SYMBOLS = ("ember_init", "ember_threads", "ember_set_threads", "ember_parallel_for",
            "ember_now", "ember_copy", "ember_copy_rows", "ember_take")


def enabled(options: dict) -> bool:
    """Off with EMBER_NATIVE_ENTRY=0 or options={"native_entry": False}."""
    if os.environ.get("EMBER_NATIVE_ENTRY", "1") in ("0", "", "false", "off"):
        return False
    return options.get("native_entry", True) is not False


def _first_native_call() -> int:
    """The call that builds the entry: the second, or the first with
    EMBER_NATIVE_ENTRY=always (tests run every compiled call through it)."""
    return 0 if os.environ.get("EMBER_NATIVE_ENTRY") == "always" else 1


def describing_backend():
    from .aot import PackagingBackend
    return PackagingBackend(in_process=True)


def attach(plan, graph, bound=()) -> None:
    """Make `plan.run` switch to the native entry from its second call (see module doc).
    `bound`: persistent kernel outputs the caller binds to arrays of its own before each
    call (`Plan.bind`: a training step's parameters and optimizer state, updated in
    place); the entry stores them at those arrays' addresses, read each call."""
    inputs = [n.meta.get("val") for n in graph.placeholders]
    plan.run = _TieredRun(plan, inputs, tuple(bound))


class _TieredRun:
    """plan.run: the Python loop on the first call, then the native entry when it builds."""

    def __init__(self, plan, input_metas, bound=()):
        self.plan, self.python_run = plan, type(plan).run.__get__(plan)
        self.input_metas, self.bound = input_metas, bound
        self.native = None
        self.failed: str | None = None

    def __call__(self, inputs):
        plan = self.plan
        # not while a profile records: it runs the Python loop (its spans) anyway, and the
        # build (LLVM, ~1 s for resnet18) would be time no span accounts for
        if (self.native is None and self.failed is None and profiling.collector() is None
                and plan.calls >= _first_native_call()):
            try:
                self.native = _NativeEntry(plan, self.input_metas, self.bound)
            except Exception as err:     # noqa: BLE001 - an optimization: the loop is right
                self.failed = f"{type(err).__name__}: {err}"
        if self.native is None or profiling.collector() is not None:
            return self.python_run(inputs)
        plan.calls += 1
        return self.native(inputs)


def _runtime():
    """The C support runtime as a shared library, built once per cache (None when no C
    compiler is available); its functions are registered for the JIT by name."""
    with _RUNTIME_LOCK:
        if _RUNTIME:
            return _RUNTIME[0]
        try:
            lib = _build_runtime()
        except OSError:          # e.g. a temporary directory mounted noexec
            lib = None
        if lib is not None:
            import llvmlite.binding as llvm
            for name in _SYMBOLS:
                llvm.add_symbol(name, ctypes.cast(getattr(lib, name), ctypes.c_void_p).value)
            lib.ember_init(ctypes.c_int64(cpu_count()))
        _RUNTIME.append(lib)
        return lib


def _build_runtime():
    import hashlib
    from ..codegen.llvm.cache import cache_dir
    from ..codegen.native_entry import RUNTIME_C
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        return None
    digest = hashlib.sha256(f"{cc}\n{RUNTIME_C}".encode()).hexdigest()[:16]
    where = cache_dir() or tempfile.gettempdir()
    os.makedirs(where, exist_ok=True)
    path = os.path.join(where, f"ember-runtime-{digest}.so")
    if not os.path.exists(path):
        with tempfile.TemporaryDirectory(prefix="ember-rt-") as tmp:
            src, out = os.path.join(tmp, "rt.c"), os.path.join(tmp, "rt.so")
            with open(src, "w") as f:
                f.write(RUNTIME_C)
            done = subprocess.run([cc, "-O2", "-fPIC", "-shared", "-pthread", src, "-o", out],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                return None
            tmp_path = f"{path}.{os.getpid()}"
            shutil.copyfile(out, tmp_path)
            os.replace(tmp_path, path)        # atomic: concurrent builders agree
    return ctypes.CDLL(path)


class _NativeEntry:
    """One plan's compiled entry point and the arrays it reads."""

    def __init__(self, plan, input_metas, bound=()):
        from ..codegen.llvm.jit import _load_object
        from ..codegen.llvm.target import host_target
        from ..codegen.native_entry import EntryEmitter
        from ..ir.errors import LoweringError
        from .aot import _flat_outputs, _memory_plan, _step_table, _weights
        from .native_program import ProgramBuilder
        lib = _runtime()
        if lib is None:
            raise LoweringError("no C compiler for the native entry's runtime")
        if any(m is None or not hasattr(m, "strides") for m in input_metas):
            raise LoweringError("an input without tensor metadata")
        table, _ = _step_table(plan, None)
        weights = _weights(plan, table)
        specs = [{"dtype": np.dtype(m.dtype.np_dtype).str, "shape": list(m.shape),
                  "strides": list(m.strides)} for m in input_metas]
        view_fns = {i: step.fn for i, step in enumerate(plan.steps)
                    if table[i]["kind"] == "view"}
        memory = _memory_plan(plan)
        builder = ProgramBuilder(table, weights, memory, plan.input_slots, specs,
                                 plan.n_slots, external_weights=True, view_fns=view_fns,
                                 bound=bound)
        self.flat_slots = _flat_outputs(plan.output_slots)
        calls, layout, outputs = builder.build(self.flat_slots)
        prefix = f"ember_plan{next(_COUNTER)}"
        # compiled outside jit.compile_ir's tables: the code (holding this plan's
        # addresses) lives exactly as long as the plan
        emitter = EntryEmitter(calls, len(table), prefix, breaks=builder.segment_breaks())
        obj = _entry_object(emitter.emit(), host_target())
        self.engine = _load_object(obj)
        signature = ctypes.CFUNCTYPE(ctypes.c_int32, *[ctypes.c_void_p] * 4)
        self.segments = [signature(self.engine.get_function_address(name))
                         for name in emitter.entry_names()]
        self.fn = self.segments[0]
        # custom ops: the plan's own eager step (what the Python loop calls) between
        # two segments, on views of its operands; see _run_segments
        self.custom = [(plan.steps[c["step"]].fn, c["inputs"], c["outputs"], c["tuple"])
                       for c in builder.host_steps]
        self.lib, self.table = lib, table
        self.calls = calls          # what the entry calls, in order (for inspection)
        self.weights = list(weights.values())        # kept alive: their addresses are baked
        self.n_inputs = len(specs)
        self.last_inputs: list = [None] * len(specs)
        self.ins = (ctypes.c_void_p * (len(specs) + len(self.weights) + len(bound)))()
        for j, w in enumerate(self.weights):
            self.ins[len(specs) + j] = w.ctypes.data
        # bound outputs: pointers after the weights, refreshed when the array changes
        self.bound, self.bound_at = bound, len(specs) + len(self.weights)
        self.bound_arrays: list = [None] * len(bound)
        self.bound_specs = [builder.bound_specs[slot] for slot in bound]
        self.outs = (ctypes.c_void_p * max(1, len(builder.fresh)))()
        self.fresh = builder.fresh
        self.spares, self.arena_copies = Spares(len(self.fresh)), Spares(len(outputs))
        self.results = outputs
        self.structure = plan.output_slots
        self.nest = _nester(self.structure)
        self.arena = _aligned_zeros(layout["workspace_offset"] + 4 * layout["workspace_floats"]
                                    * cpu_count())
        self.threads = None
        if bound and not plan._fixed:
            plan.prepare()
        self.plan_fixed = plan._fixed         # where Plan.bind leaves the bound arrays
        self.arena_address = self.arena.ctypes.data
        # results living in the arena: their views made once, copied each call
        self.arena_views = [_view(self.arena, g) if g["base"] == "arena" else None
                            for g in outputs]
        for g in outputs:
            g["byte_strides"] = tuple(s * np.dtype(g["dtype"]).itemsize for s in g["strides"])

    def __call__(self, inputs):
        ins, outs, last = self.ins, self.outs, self.last_inputs
        for i, a in enumerate(inputs):
            # a training step passes the same parameter arrays call after call: an
            # array's data pointer is fixed for its lifetime, so only new ones are read
            if a is not last[i]:
                ins[i] = a.__array_interface__["data"][0]
                last[i] = a
        if self.bound:
            self._bind_outputs()
        fresh = []
        for i, f in enumerate(self.fresh):
            # a spare nothing references any more, else a new one (runtime/lite.py:
            # Spares; a new 1 MB buffer costs 256 page faults)
            raw = self.spares.get(i, lambda n=f["nbytes"]: np.empty(max(n, 1) + 64, np.uint8))
            base = raw.__array_interface__["data"][0]
            address = base + (-base) % 64
            fresh.append((raw, address))
            outs[i] = address
        threads = get_num_threads()
        if threads != self.threads:
            self.lib.ember_set_threads(ctypes.c_int64(threads))
            self.threads = threads
        if self.custom:
            status = self._run_segments(inputs, fresh)
        else:       # the whole plan: one foreign call
            status = self.fn(self.arena_address, ins, outs, None)
        if status:
            step = self.table[status - 1]
            if step["kind"] == "index":
                raise step_error(step, self.arena_address)
            raise EmberIndexError(f"index out of range in self (step {step['name']}, "
                                  f"{step.get('op', step['kind'])})")
        values = {}
        for j, (slot, g, arena_view) in enumerate(zip(self.flat_slots, self.results,
                                                      self.arena_views)):
            if slot in values:      # one value returned twice (Adam's step, per param)
                continue
            values[slot] = self.arena_copies.copy(j, arena_view) if arena_view is not None \
                else self._value(g, inputs, fresh)
        return self.nest(values)

    def _bind_outputs(self) -> None:
        """The arrays `Plan.bind` gave the bound outputs (the same ones call after call
        in a training step: checked only when one changes)."""
        fixed, ins, at = self.plan_fixed, self.ins, self.bound_at
        for j, slot in enumerate(self.bound):
            array = fixed[slot]
            if array is self.bound_arrays[j]:
                continue
            shape, byte_strides, dtype = self.bound_specs[j]
            if array.shape != shape or array.strides != byte_strides or array.dtype != dtype:
                raise RuntimeError(f"native entry: the array bound to output slot {slot} "
                                   f"is {array.dtype}{list(array.shape)} with strides "
                                   f"{array.strides}, not the planned {dtype}{list(shape)} "
                                   f"{byte_strides}")
            ins[at + j] = array.__array_interface__["data"][0]
            self.bound_arrays[j] = array

    def _run_segments(self, inputs, fresh) -> int:
        """Segment j natively, then custom step j (its plan step's callable, as the
        Python loop runs it) on views of its operands, its result copied to its planned
        buffer, then segment j + 1 ..."""
        for j, segment in enumerate(self.segments):
            status = segment(self.arena_address, self.ins, self.outs, None)
            if status or j == len(self.custom):
                return status
            fn, operands, results, returns_tuple = self.custom[j]
            value = fn(*[self._operand(g, inputs, fresh) for g in operands])
            values = tuple(value) if returns_tuple else (value,)
            outs = [self._operand(g, inputs, fresh) for g in results]
            if len(values) != len(outs) or not all(
                    isinstance(v, np.ndarray) and v.shape == o.shape and v.dtype == o.dtype
                    for v, o in zip(values, outs)):
                raise RuntimeError(f"native entry: custom op step {j} returned results "
                                   "other than its fake function said")
            for v, o in zip(values, outs):
                np.copyto(o, v)
        return 0

    def _operand(self, g: dict, inputs, fresh) -> np.ndarray:
        """A view (no copy) of the value `g` describes where it lives."""
        if g["base"] == "arena":
            return _view(self.arena, g)
        kind, index = g["base"]
        if kind == "out":              # the caller's own buffer
            raw, address = fresh[index]
            return np.ndarray(g["shape"], g["dtype"], buffer=raw,
                              offset=address - raw.__array_interface__["data"][0] +
                              g["offset"], strides=g.get("byte_strides") or tuple(
                                  s * np.dtype(g["dtype"]).itemsize for s in g["strides"]))
        source = inputs[index] if index < self.n_inputs else \
            self.weights[index - self.n_inputs]
        if not all(g["shape"]):
            return np.empty(g["shape"], g["dtype"])
        itemsize = np.dtype(g["dtype"]).itemsize
        nbytes = g["offset"] + itemsize * (1 + sum((s - 1) * st for s, st in
                                                   zip(g["shape"], g["strides"])))
        raw = np.frombuffer((ctypes.c_uint8 * nbytes).from_address(source.ctypes.data),
                            np.uint8)
        return _view(raw, g)

    def _value(self, g: dict, inputs, fresh) -> np.ndarray:
        view = self._operand(g, inputs, fresh)
        # the caller's own buffer is returned as is; an input or weight is copied
        return view if g["base"][0] == "out" else np.array(view)


def _entry_object(text: str, target) -> bytes:
    """The entry's object code at -O1: it is straight-line calls (the kernels it calls
    are optimized already), and O3's code generation of it took ~0.3 s on resnet18."""
    import llvmlite.binding as llvm
    from ..ir.errors import LoweringError
    try:
        mod = llvm.parse_assembly(text)
        mod.verify()
    except RuntimeError as err:
        raise LoweringError(f"native entry: invalid LLVM IR: {err}") from None
    machine = llvm.Target.from_triple(llvm.get_process_triple()).create_target_machine(
        cpu=target.cpu, features=target.features, opt=1, reloc="pic",
        codemodel="jitdefault", jit=True)          # as Target.machine, but -O1
    mod.triple = machine.triple
    mod.data_layout = str(machine.target_data)
    return machine.emit_object(mod)


def _view(buf: np.ndarray, g: dict) -> np.ndarray:
    dtype = np.dtype(g["dtype"])
    shape, strides = g["shape"], g["strides"]
    if not all(shape):
        return np.empty(shape, dtype)
    extent = 1 + sum((s - 1) * st for s, st in zip(shape, strides))
    flat = buf[g["offset"]:g["offset"] + extent * dtype.itemsize].view(dtype)
    return np.lib.stride_tricks.as_strided(flat, tuple(shape),
                                           tuple(s * dtype.itemsize for s in strides))


def _nester(structure):
    """`values -> structure with each slot number replaced by values[slot]`, with the
    parts holding no slot (a training step's Nones for values stored in place) built
    once instead of on every call."""
    build = _part_builder(structure)
    return (lambda values: structure) if build is None else build


def _part_builder(structure):
    if isinstance(structure, int):
        return lambda values: values[structure]
    if not isinstance(structure, (tuple, list)):
        return None
    parts = [(i, b) for i, b in enumerate(map(_part_builder, structure)) if b is not None]
    if not parts and isinstance(structure, tuple):     # (a list is made anew each call:
        return None                                    # the caller may change it)
    kind, template = type(structure), list(structure)

    def build(values):
        out = list(template)
        for i, b in parts:
            out[i] = b(values)
        return kind(out)
    return build


def _aligned_empty(nbytes: int) -> np.ndarray:
    raw = np.empty(max(nbytes, 1) + 64, np.uint8)
    start = (-raw.ctypes.data) % 64
    return raw[start:start + max(nbytes, 1)]


def _aligned_zeros(nbytes: int) -> np.ndarray:
    out = _aligned_empty(nbytes)
    out[...] = 0
    return out
