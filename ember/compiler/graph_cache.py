"""Graphs after the passes, remembered on disk: a warm compile skips the pass pipeline.

A compile traces the user's code into a graph, runs the pass pipeline over it
(autodiff's cleanups, recompute, layout, fusion, memory planning) and builds a plan from
what the passes leave. Like Inductor's FX graph cache, the pipeline's result is stored
under a key of everything it depends on, so a fresh process compiling the same code
loads it instead of running the passes:

- the traced graph: every node's kind, target, arguments, users, name, type and metadata
  (shapes, dtypes, strides, devices, source locations, autodiff phases);
- the constants' metadata (shape, dtype, strides, device; repr of other values);
- the pipeline, the pass options (a callable by its qualified name), inference or not;
- ember's code (size and mtime of every source file: an edited ember misses), the
  backend and its device (`CudaBackend.device_key`: "cuda-90"), the switches that steer
  passes and code generation (every `EMBER_*` / `TRITON_*` environment variable but
  the cache and timer ones, autocast, deterministic algorithms, the cuDNN and TF32
  flags).

Two things the key cannot see are checked on a hit, from what the passes did on the
miss that stored the entry: the constants whose values a pass read (inference folding
reads the weights; a training graph's passes read none) must have the same values
(SHA-256 of their bytes), and every call a pass made to a callable option (CUDA's
`wgrad_nchw`, whose answer comes from the autotune cache or a timing on the GPU) must
answer the same again. Otherwise the entry is not used (the passes run and rewrite it).

An entry (`<cache>/graphs/<key>.pkl`) holds the graph after the passes, each fused
group's graph, the constants the passes created (their values: a training step's
folded factory values, inference's folded weights), the options they set (the memory
plan, ...) and the checks above. Nodes, graphs, tensors and live constants are pickled
by reference (a node's users would otherwise recurse through the whole graph), so
pickle sees a flat list of node states. Tensors the passes did not create (a live
tensor inline in the traced graph) are never stored: such a compile is not cached. A
damaged entry (unreadable, another format or key, a reference out of range, a tensor
whose strides do not come back) is ignored with a `RuntimeWarning` and rewritten.

`EMBER_CACHE_DIR` is the root (`''` turns this off with the other caches);
`EMBER_GRAPH_CACHE=0` turns off this cache alone; `EMBER_GRAPH_CACHE_DEBUG=1` prints why
a compile was not stored. Only backends that set
`graph_cache = True` (CUDA) use it, for graphs of MIN_NODES nodes or more.
"""
from __future__ import annotations

import hashlib
import io
import math
import os
import pickle
import warnings
from pathlib import Path

import numpy as np

from ..ir import autocast, compile_times
from ..ir.disk_cache import cache_root, write_atomic
from ..ir.dtypes import DType
from ..ir.graph import Graph, Node, OpKind
from ..ir.meta import MemoryFormat, TensorMeta
from ..passes import PassContext, run_passes
from ..passes.fuse_cache import code_fingerprint
from ..frontend.tensor import Tensor

FORMAT = "ember-graph-cache-1"
SWITCH = "EMBER_GRAPH_CACHE"
# environment variables that change where things are cached or what is printed, never
# what the passes or code generation make
_ENV_IGNORED = frozenset({"EMBER_CACHE_DIR", "TRITON_CACHE_DIR", "EMBER_COMPILE_TIMES",
                          "EMBER_COMPILE_WORKERS", SWITCH, "EMBER_GRAPH_CACHE_DEBUG",
                          "TRITON_HOME", "TRITON_DUMP_DIR", "TRITON_OVERRIDE_DIR"})
MAX_STORED_BYTES = 1 << 30      # constants an entry may carry (inference's folded weights)
MIN_NODES = 150     # smaller graphs run their passes in milliseconds: not worth a file each


class _Uncacheable(Exception):
    """This compile cannot be keyed or stored (an object without a stable form)."""


def enabled(backend) -> bool:
    return bool(getattr(backend, "graph_cache", False)) and \
        os.environ.get(SWITCH, "1").strip().lower() not in ("0", "", "false", "off") and \
        cache_root() is not None


def passes_cached(graph: Graph, pipeline: str, ctx: PassContext, backend) -> None:
    """`run_passes(graph, pipeline, ctx)`, or its result from the disk cache: either way
    `graph` and ctx (constants, added names, options) are left as the passes leave them
    (on a hit `graph` takes the stored graph's nodes)."""
    if not enabled(backend) or len(graph._nodes) < MIN_NODES:
        run_passes(graph, pipeline, ctx)
        return
    with compile_times.stage("graph cache (key, load)"):
        try:
            key = graph_key(graph, pipeline, ctx, backend)
        except _Uncacheable:
            key = None
        path = cache_root() / "graphs" / f"{key}.pkl"
        loaded = _load(path, key, ctx) if key is not None else None
    if loaded is not None:
        _adopt_graph(graph, loaded)
        return
    if key is None:
        run_passes(graph, pipeline, ctx)
        return
    record = _Recorder(ctx)
    try:
        run_passes(graph, pipeline, ctx)
    finally:
        record.stop()
    with compile_times.stage("graph cache (store)"):
        _store(path, key, graph, ctx, record)


def _adopt_graph(graph: Graph, loaded: Graph) -> None:
    """`graph` becomes `loaded` (its nodes, names, output), as the passes rewrite the
    caller's graph in place: whoever holds the graph sees the result."""
    state = loaded.__getstate__()
    graph.__dict__.update({k: v for k, v in state.items() if k != "_root"})
    for node in graph._nodes:
        node.graph = graph


# --- the key --------------------------------------------------------------------------------
def graph_key(graph: Graph, pipeline: str, ctx: PassContext, backend) -> str:
    """SHA-256 (40 hex digits) of what the passes' result depends on (module docstring)."""
    h = hashlib.sha256()
    device = getattr(backend, "device_key", None)
    h.update(f"{FORMAT}\n{code_fingerprint()}\n{type(backend).__qualname__}\n"
             f"{device() if callable(device) else ''}\n{pipeline}\n{ctx.inference}\n"
             f"{_canon(sorted(ctx.options.items()))}\n{_switches()}\n".encode())
    for name, value in ctx.constants.items():
        h.update(f"c|{name}|{_constant_meta(value)}\n".encode())
    _hash_graph(h, graph)
    return h.hexdigest()[:40]


def _hash_graph(h, graph: Graph) -> None:
    for node in graph.nodes:
        users = [u.name for u in node.users]
        meta = sorted(node.meta.items())
        h.update(f"{node.name}|{node.op.value}|{_target(node.target, h)}|{_canon(node.args)}|"
                 f"{_canon(node.kwargs)}|{users}|{_canon(meta)}|{node.type!r}\n".encode())


def _target(target, h) -> str:
    from ..ir.fused import is_fused
    if is_fused(target):                       # a traced graph may hold fused groups
        _hash_graph(h, target.graph)
        return f"fused:{target.name}:{target.kind}"
    name = getattr(target, "name", None)
    if isinstance(target, str):
        return target
    if isinstance(name, str) and type(target).__name__ == "OpDef":
        return f"op:{name}"
    return _callable_name(target)


def _callable_name(fn) -> str:
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    if not module or not qualname or "<" in qualname:    # a lambda or a local function:
        raise _Uncacheable(repr(fn))                    # nothing names it across processes
    return f"{module}.{qualname}"


def _canon(value) -> str:
    """A text of `value` that is the same in every process for equal values."""
    if value is None or isinstance(value, (bool, int, str)):
        return repr(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    if isinstance(value, Node):
        return f"%{value.name}"
    if isinstance(value, (list, tuple)):
        inner = ",".join(_canon(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner})"
    if isinstance(value, dict):
        return "{" + ",".join(f"{_canon(k)}:{_canon(v)}" for k, v in value.items()) + "}"
    if isinstance(value, TensorMeta):
        return f"T{value.shape}{value.dtype.name}{value.device}{value.strides}" \
               f"{value.memory_format}"
    if isinstance(value, (DType, MemoryFormat)):
        return f"{type(value).__name__}:{value}"
    if isinstance(value, slice):
        return f"slice({_canon(value.start)},{_canon(value.stop)},{_canon(value.step)})"
    if isinstance(value, complex):
        return repr(value)
    if isinstance(value, np.ndarray):
        return f"nd{value.shape}{value.dtype}:{_digest_bytes(value)}"
    if isinstance(value, Tensor):     # an inline tensor: such a graph is keyed, not stored
        return f"tensor:{_constant_meta(value)}:{_digest(value)}"
    if isinstance(value, np.generic):
        return f"{value.dtype}:{value!r}"
    if callable(value):
        return _callable_name(value)
    text = repr(value)
    if " at 0x" in text:                      # an object's address: differs every process
        raise _Uncacheable(text)
    return f"{type(value).__module__}.{type(value).__qualname__}:{text}"


def _constant_meta(value) -> str:
    if isinstance(value, Tensor):
        return f"{type(value).__name__}{tuple(value.shape)}{value.dtype.name}" \
               f"{tuple(value.stride())}{value.device}{value.requires_grad}"
    return _canon(value)


def _switches() -> str:
    """The environment and the global flags that steer passes and code generation."""
    from ..backends import cuda as cuda_flags, cudnn
    from ..ir import determinism
    env = sorted((k, v) for k, v in os.environ.items()
                 if k.startswith(("EMBER_", "TRITON_")) and k not in _ENV_IGNORED)
    flags = (autocast.state_key() if autocast.ACTIVE else (), determinism.enabled(),
             cudnn.enabled, cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32,
             cuda_flags.get_float32_matmul_precision())
    return repr((env, flags))


def _digest(value) -> str:
    """SHA-256 of a constant's values (with its type), for the constants a pass read."""
    if isinstance(value, Tensor):
        return f"{_constant_meta(value)}:{_digest_bytes(_host_values(value))}"
    return _canon(value)


def _host_values(t: Tensor) -> np.ndarray:
    """A tensor's values on the host, in its strides. A device tensor's span of memory is
    copied as it is: `.cpu()` of a broadcast or permuted one would launch (and first
    compile) a layout copy kernel."""
    if not t.is_cuda:
        return t._values()
    from ..frontend.devices import data_ptr
    from ..runtime.cuda.stream import copy_device_to_host, current_stream
    geometry = t._array
    span = np.empty(geometry.extent(), geometry.dtype)
    copy_device_to_host(span, data_ptr(t), current_stream(t._storage.index))
    return np.lib.stride_tricks.as_strided(span, tuple(t.shape),
                                           tuple(geometry.strides))


def _digest_bytes(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).view(np.uint8)).hexdigest()[:32]


# --- what the passes read and asked, on a miss ----------------------------------------------
class _ReadLog(dict):
    """ctx.constants while the passes run: remembers which constants' values they read."""

    def __init__(self, values: dict):
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, name, default=None):
        if name in self:
            self.read.add(name)
        return super().get(name, default)

    def __getitem__(self, name):
        self.read.add(name)
        return super().__getitem__(name)

    def values(self):
        self.read.update(self.keys())
        return super().values()

    def items(self):
        self.read.update(self.keys())
        return super().items()


class _Asked:
    """A callable pass option, answering as itself and logging each question."""

    def __init__(self, name: str, fn, log: list):
        self.name, self.fn, self.log = name, fn, log

    def __call__(self, *args, **kwargs):
        answer = self.fn(*args, **kwargs)
        self.log.append((self.name, args, kwargs, answer))
        return answer


class _Recorder:
    """Watches a pipeline run on a miss: the constants before it, the values it read, the
    questions it asked of callable options, the options before it."""

    def __init__(self, ctx: PassContext):
        self.ctx = ctx
        self.before = dict(ctx.constants)
        self.options_before = dict(ctx.options)
        self.asked: list = []
        self.reads = _ReadLog(ctx.constants)
        ctx.constants = self.reads
        for name, value in ctx.options.items():
            if callable(value) and not isinstance(value, type):
                ctx.options[name] = _Asked(name, value, self.asked)

    def stop(self) -> None:
        ctx = self.ctx
        ctx.constants = dict(self.reads)
        for name, value in list(ctx.options.items()):
            if isinstance(value, _Asked):
                ctx.options[name] = value.fn


# --- entries --------------------------------------------------------------------------------
_PLAIN = frozenset({str, int, float, bool, tuple, list, dict, type(None), bytes})


class _Pickler(pickle.Pickler):
    """Nodes and graphs by position, the compile's own constants by name, tensors the passes
    made by value (in a table beside the pickle)."""

    def __init__(self, file, graphs: list[Graph], live: dict[int, str], inline: set[int]):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.graph_index = {id(g): i for i, g in enumerate(graphs)}
        self.node_index = {id(n): (gi, ni) for gi, g in enumerate(graphs)
                           for ni, n in enumerate(g._nodes)}
        self.live, self.inline = live, inline
        self.tensors: list[tuple] = []
        self.tensor_index: dict[int, int] = {}
        self.stored_bytes = 0

    def persistent_id(self, obj):
        if type(obj) in _PLAIN:      # most of what is pickled (names, sizes, args): at once
            return None
        if isinstance(obj, Node):
            where = self.node_index.get(id(obj))
            if where is None:
                raise _Uncacheable(f"node {obj.name} outside the graph")
            return ("n",) + where
        if isinstance(obj, Graph):
            where = self.graph_index.get(id(obj))
            if where is None:
                raise _Uncacheable("a graph outside the entry")
            return ("g", where)
        if isinstance(obj, Tensor):
            if id(obj) in self.live:
                return ("c", self.live[id(obj)])
            if id(obj) in self.inline or type(obj) is not Tensor or obj.requires_grad:
                raise _Uncacheable("a tensor the passes did not make")
            return ("t", self._tensor(obj))
        return None

    def _tensor(self, t: Tensor) -> int:
        index = self.tensor_index.get(id(t))
        if index is None:
            host = _host_values(t)
            # a broadcast constant (stride 0: a folded ones_like) is stored once per
            # distinct value and expanded back
            shape, strides = tuple(t.shape), tuple(t.stride())
            broadcast = tuple(i for i, (size, stride) in enumerate(zip(shape, strides))
                              if stride == 0 and size != 1)
            compact = host[tuple(slice(0, 1) if i in broadcast else slice(None)
                                 for i in range(host.ndim))]
            if not _dense(compact.shape, strides):
                raise _Uncacheable("a constant with overlapping or gapped strides")
            self.stored_bytes += compact.nbytes
            if self.stored_bytes > MAX_STORED_BYTES:
                raise _Uncacheable("constants too large to store")
            entry = (np.ascontiguousarray(compact), shape, strides, str(t.device))
            if broadcast or not host.flags.c_contiguous:   # whether it comes back as it was
                _restore_tensor(*entry)
            index = self.tensor_index[id(t)] = len(self.tensors)
            self.tensors.append(entry)
        return index


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, graphs: list[Graph], nodes: list[list[Node]], live: dict,
                 tensors: list):
        super().__init__(file)
        self.graphs, self.nodes, self.live, self.tensors = graphs, nodes, live, tensors

    def persistent_load(self, pid):
        kind = pid[0]
        if kind == "n":
            return self.nodes[pid[1]][pid[2]]
        if kind == "g":
            return self.graphs[pid[1]]
        if kind == "c":
            return self.live[pid[1]]
        if kind == "t":
            return self.tensors[pid[1]]
        raise pickle.UnpicklingError(f"unknown reference {pid!r}")


def _graphs_of(graph: Graph) -> list[Graph]:
    """`graph` and every fused group's graph in it (nested ones too), in a fixed order."""
    from ..ir.fused import is_fused
    out, stack, seen = [], [graph], set()
    while stack:
        g = stack.pop(0)
        if id(g) in seen:
            continue
        seen.add(id(g))
        out.append(g)
        stack.extend(n.target.graph for n in g._nodes
                     if n.op == OpKind.call_function and is_fused(n.target))
    return out


def _inline_tensors(graphs: list[Graph]) -> set[int]:
    """ids of tensors held in node arguments (live objects, not the passes' own)."""
    found: set[int] = set()

    def walk(value):
        if isinstance(value, Tensor):
            found.add(id(value))
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
    for g in graphs:
        for n in g._nodes:
            walk(n._args)
            walk(n._kwargs)
    return found


def _store(path: Path, key: str, graph: Graph, ctx: PassContext, record: _Recorder) -> None:
    """Write the entry; a compile whose result has no stable form is simply not stored."""
    before = record.before
    live = {id(v): name for name, v in before.items() if isinstance(v, Tensor)}
    added = {name: ctx.constants[name] for name in ctx.constants
             if name not in before or ctx.constants[name] is not before[name]}
    options = {k: v for k, v in ctx.options.items()
               if k not in record.options_before or record.options_before[k] is not v}
    removed = [k for k in record.options_before if k not in ctx.options]
    graphs = _graphs_of(graph)
    body = io.BytesIO()
    try:
        reads = {name: _digest(before[name]) for name in sorted(record.reads.read)
                 if name in before}
        pickler = _Pickler(body, graphs, live, _inline_tensors(graphs) - set(live))
        pickler.dump({
            "graphs": [g.__getstate__() for g in graphs],
            "nodes": [[n.__dict__ for n in g._nodes] for g in graphs],
            "constants": list(ctx.constants), "added_constants": added,
            "added": sorted(ctx.added), "options": options, "options_removed": removed,
            "reads": reads, "asked": record.asked})
        header = {"format": FORMAT, "key": key, "nodes": [len(g._nodes) for g in graphs],
                  "tensors": pickler.tensors}
        data = pickle.dumps(header, protocol=pickle.HIGHEST_PROTOCOL) + body.getvalue()
    except (_Uncacheable, pickle.PicklingError, TypeError, AttributeError, RecursionError,
            ValueError):
        if os.environ.get("EMBER_GRAPH_CACHE_DEBUG"):
            import traceback
            traceback.print_exc()
        return
    try:
        write_atomic(path, data)
    except OSError:
        pass                                 # a read-only cache: run the passes next time


def _load(path: Path, key: str, ctx: PassContext) -> Graph | None:
    """The stored graph after the passes, with ctx updated as the passes left it; None on
    a miss, a failed check (a read constant changed, an option answers otherwise) or a
    damaged entry (warned about)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        return _damaged(path, f"{type(err).__name__}: {err}")
    try:
        stream = io.BytesIO(data)
        header = pickle.load(stream)
        if not isinstance(header, dict) or header.get("format") != FORMAT or \
                header.get("key") != key:
            raise ValueError("another format or key")
        tensors = [_restore_tensor(*entry) for entry in header["tensors"]]
        graphs = [Graph() for _ in header["nodes"]]
        nodes = [[Node.__new__(Node) for _ in range(count)] for count in header["nodes"]]
        body = _Unpickler(stream, graphs, nodes, ctx.constants, tensors).load()
        for graph, state in zip(graphs, body["graphs"]):
            graph.__setstate__(state)
        for shells, states in zip(nodes, body["nodes"]):
            if len(shells) != len(states):
                raise ValueError("node counts differ")
            for shell, state in zip(shells, states):
                shell.__dict__.update(state)
        constants = {name: body["added_constants"].get(name, ctx.constants.get(name))
                     for name in body["constants"]}
        if any(v is None and name not in ctx.constants and name not in body["added_constants"]
               for name, v in constants.items()):
            raise ValueError("a constant the entry names is not in this compile")
    except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError, AttributeError,
            pickle.UnpicklingError, ImportError, RecursionError) as err:
        return _damaged(path, f"{type(err).__name__}: {err}")
    if not _still_true(body, ctx):
        return None
    ctx.constants = constants
    ctx.added = set(body["added"])
    ctx.options.update(body["options"])
    for name in body["options_removed"]:
        ctx.options.pop(name, None)
    return graphs[0]


def _still_true(body: dict, ctx: PassContext) -> bool:
    """The entry's checks: constants the passes read hold the same values, callable
    options give the same answers."""
    for name, digest in body["reads"].items():
        if name not in ctx.constants or _digest(ctx.constants[name]) != digest:
            return False
    for name, args, kwargs, answer in body["asked"]:
        fn = ctx.options.get(name)
        if not callable(fn) or fn(*args, **kwargs) != answer:
            return False
    return True


def _dense(shape: tuple, strides: tuple) -> bool:
    """Strides of a permutation of a contiguous layout (what numpy and .to() give back)."""
    expected = 1
    for size, stride in sorted((d for d in zip(shape, strides) if d[0] != 1),
                               key=lambda d: d[1]):
        if stride != expected:
            return False
        expected *= size
    return True


def _restore_tensor(host: np.ndarray, shape: tuple, strides: tuple, device: str):
    """A stored tensor, in its strides (broadcast dimensions expanded), on its device: the
    bytes are laid out on the host and copied as they are (no device kernel runs)."""
    item = host.dtype.itemsize
    extent = 1 + sum((n - 1) * st for n, st in zip(host.shape, strides)) if host.size else 0
    span = np.zeros(max(extent, 1), host.dtype)
    laid = np.lib.stride_tricks.as_strided(span, host.shape, [st * item for st in strides])
    laid[...] = host
    values = np.lib.stride_tricks.as_strided(span, shape, [st * item for st in strides])
    if device == "cpu":
        t = Tensor._adopt(values)
    else:
        from .compile_cuda import upload_exact
        t = upload_exact(values, _device_index(device))
    if tuple(t.shape) != shape or tuple(t.stride()) != strides:
        raise ValueError(f"a stored constant came back with strides {tuple(t.stride())}, "
                         f"not {strides}")
    return t


def _device_index(device: str) -> int:
    return int(device.split(":")[1]) if ":" in device else 0


def _damaged(path: Path, why: str) -> None:
    warnings.warn(f"ember: ignoring a damaged entry of the graph cache ({path}: {why}); the "
                  "passes run again", RuntimeWarning, stacklevel=4)
    return None
