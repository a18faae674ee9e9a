"""cuDNN convolutions through NVIDIA's cuDNN frontend Python package (optional).

The package (`nvidia-cudnn-frontend`, imported as `cudnn`, with the library wheel
`nvidia-cudnn-cu13` / `-cu12`) is an external kernel library: ember hands it device
pointers and its current stream, nothing else (no torch, no cupy). Where the package
cannot be imported or its library does not load, `library()` is None, one info line
goes to the `ember.backends.cudnn` logger, and every caller uses ember's own Triton
kernels.

A `ConvSpec` names one convolution exactly (direction, dtype, the three tensors' shapes
and element strides, padding, stride, dilation, TF32, determinism, benchmarking); groups
follow from the shapes (input channels / the filter's channels per group). `conv_plan`
builds the cuDNN graph for a spec once per process and device (the heuristics' first
plan that builds, or with `benchmark` the fastest of the first `benchmark_limit` plans
timed on the given buffers) and keeps its workspace as a permanent device block, so a
plan's launches always see the same pointers and a CUDA graph may record them.

Directions, with cuDNN's roles: `fprop` y = conv(x, w) (then + b, + z, relu as the spec's
bias and epilogue ask, as cuDNN pointwise nodes in the same graph, each intermediate in
float32); `dgrad` x = the input gradient from y (the output gradient) and w; `wgrad` w =
the weight gradient from x and y.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from ...ir import compile_times
from .. import lite_cudnn
from . import cudnn_plan_cache as plan_cache, driver

_LOG = logging.getLogger("ember.backends.cudnn")
_state: dict = {"module": None, "tried": False, "why": None}
_lock = threading.Lock()
_handles: dict[int, object] = {}
_plans: dict[tuple, "ConvPlan"] = {}
# one thread at a time in cuDNN on ember's handles: cuDNN is thread-safe across handles
# but a handle must not be used by two threads at once, and the builder thread (below)
# builds on the handle the caller's plans run on
_in_cudnn = threading.RLock()
DTYPES = {"float32": "FLOAT", "float16": "HALF", "bfloat16": "BFLOAT16"}
KINDS = ("fprop", "dgrad", "wgrad")


class CudnnUnsupported(Exception):
    """cuDNN has no plan for this convolution (or failed to build one)."""


def library():
    """The imported `cudnn` frontend module with its library loaded, or None (logged once)."""
    if not _state["tried"]:
        with _lock:
            if not _state["tried"]:
                try:
                    import cudnn
                    int(cudnn.backend_version())     # raises when libcudnn did not load
                    _state["module"] = cudnn
                except Exception as err:  # noqa: BLE001 - any failure means "not available"
                    _state["why"] = f"{type(err).__name__}: {err}"
                    _LOG.info("cuDNN is not available (%s); convolutions use ember's Triton "
                              "kernels", _state["why"])
                _state["tried"] = True
    return _state["module"]


def unavailable_reason() -> str | None:
    library()
    return _state["why"]


def version() -> int | None:
    """cuDNN's version as one number (91300 for 9.13.0), as torch.backends.cudnn.version()."""
    cudnn = library()
    return None if cudnn is None else int(cudnn.backend_version())


@dataclass(frozen=True)
class ConvSpec:
    kind: str                      # "fprop" | "dgrad" | "wgrad"
    dtype: str                     # "float32" | "float16" | "bfloat16"
    x: tuple                       # (shape, element strides) of the input (or its gradient)
    w: tuple                       # ... of the weight (or its gradient)
    y: tuple                       # ... of the output (or its gradient)
    padding: tuple
    stride: tuple
    dilation: tuple
    tf32: bool = False             # float32 may use TF32 tensor cores
    deterministic: bool = False    # only engines without the NONDETERMINISTIC note
    benchmark: int = 0             # >0: time this many plans and keep the fastest
    bias: bool = False             # fprop only: y = conv(x, w) + b, b a vector of Cout
    epilogue: str = ""             # fprop only, after the bias: "relu", "add" (+ z, a
    #                                residual of y's geometry) or "add_relu"

    def describe(self) -> str:
        return (f"conv {self.kind} {self.dtype} x{list(self.x[0])}/{list(self.x[1])} "
                f"w{list(self.w[0])}/{list(self.w[1])} y{list(self.y[0])}/{list(self.y[1])} "
                f"pad{list(self.padding)} stride{list(self.stride)} dil{list(self.dilation)}"
                f"{' +bias' if self.bias else ''}"
                f"{' +' + self.epilogue if self.epilogue else ''}{' tf32' if self.tf32 else ''}"
                f"{' deterministic' if self.deterministic else ''}")


EPILOGUES = lite_cudnn.EPILOGUES
ALL_PLANS = 1 << 30        # ConvSpec.benchmark for "time every plan" (benchmark_limit 0)


def _handle(index: int):
    handle = _handles.get(index)
    if handle is None:
        driver.context(index)            # cuDNN binds the thread's current (primary) context
        handle = _handles[index] = library().create_handle()
    return handle


class ConvPlan:
    """One built cuDNN graph: `run(pointers, stream)` with pointers for x, w, y, then the
    bias vector for a spec with bias, then the residual z for an "add" epilogue."""

    def __init__(self, spec: ConvSpec, index: int, buffers: tuple | None = None,
                 allocate: bool = True):
        cudnn = library()
        if cudnn is None:
            raise CudnnUnsupported("cuDNN is not available")
        self.spec, self.index = spec, index
        with _in_cudnn:
            self._make(cudnn, spec, index, buffers)
        # the builder thread leaves the workspace to conv_plan, on the caller's thread
        # (device allocations stay on the thread that runs the plans)
        self.workspace = _workspace(self.workspace_size, index) if allocate else None

    def _make(self, cudnn, spec: ConvSpec, index: int, buffers: tuple | None) -> None:
        self.handle = _handle(index)
        try:
            timed = bool(spec.benchmark and buffers is not None)
            # the engine config the timing selected (None: the heuristics' choice), which
            # a CUDA artifact records (ember.aot)
            self.chosen = None
            loaded = None if timed else plan_cache.load(cudnn, spec, index, self.handle)
            if loaded is not None:              # a built plan from disk: no heuristics, no build
                self.graph, self.tensors = loaded
            else:
                self.graph, self.tensors = _build(cudnn, spec, self.handle, timed)
                if timed:
                    self.chosen = _benchmark(cudnn, self.graph, self.tensors, buffers,
                                             spec.benchmark, index, self.handle)
                else:
                    plan_cache.store(cudnn, spec, index, self.graph, self.tensors)
            self.workspace_size = int(self.graph.get_workspace_size())
        except CudnnUnsupported:
            raise
        except Exception as err:  # noqa: BLE001 - the frontend's errors have no common base
            raise CudnnUnsupported(f"{spec.describe()}: {type(err).__name__}: "
                                   f"{str(err)[:300]}") from err

    def run(self, pointers: tuple, stream: int) -> None:
        cudnn = library()
        pack = dict(zip(self.tensors, pointers))
        with _in_cudnn:
            cudnn.set_stream(self.handle, stream)
            self.graph.execute(pack, self.workspace, handle=self.handle)


def _build(cudnn, spec: ConvSpec, handle, build_all: bool = False):
    # the graph itself is runtime/lite_cudnn.py's, shared with CUDA artifacts (ember.aot),
    # so an artifact's rebuilt graph lists the same engine configs
    graph, tensors = lite_cudnn.conv_graph(cudnn, spec, handle, _barred_notes(cudnn, spec))
    graph.build_plans(cudnn.build_plan_policy.ALL if build_all else
                      cudnn.build_plan_policy.HEURISTICS_CHOICE)
    return graph, tensors


_barred_notes = lite_cudnn.barred_notes


def _benchmark(cudnn, graph, tensors, buffers, limit: int, index: int, handle) -> int | None:
    """torch.backends.cudnn.benchmark: time the first `limit` built plans on `buffers` and
    select the fastest. One scratch workspace (the largest any candidate asks) serves them
    all and is freed afterwards; the selected plan gets its own permanent one."""
    from .allocator import DriverBackend
    from .stream import Event, current_stream
    stream = current_stream(index)
    cudnn.set_stream(handle, stream.handle)
    pack = dict(zip(tensors, buffers))
    count = min(limit, int(graph.get_execution_plan_count()))
    sizes = {}
    for i in range(count):
        try:
            sizes[i] = int(graph.get_workspace_size_plan_at_index(i))
        except Exception:  # noqa: BLE001 - a plan that did not build is no candidate
            continue
    if not sizes:
        return None
    backend = DriverBackend(index)
    scratch = backend.malloc(max(sizes.values())) if max(sizes.values()) > 0 else None
    best = None
    try:
        for i in sizes:
            try:
                graph.execute_plan_at_index(pack, scratch, i, handle=handle)
                start, end = Event(True, device=index), Event(True, device=index)
                start.record(stream)
                for _ in range(3):
                    graph.execute_plan_at_index(pack, scratch, i, handle=handle)
                end.record(stream)
                end.synchronize()
                ms = start.elapsed_time(end)
            except Exception:  # noqa: BLE001 - a plan that does not run is no candidate
                continue
            if best is None or ms < best[0]:
                best = (ms, i)
    finally:
        if scratch is not None:
            stream.synchronize()
            backend.free(scratch)
    if best is not None:
        graph.select_plan(best[1])
        graph.build_plans()
    return None if best is None else best[1]


_workspaces: list = []          # permanent: captured graphs keep their pointers


def _workspace(nbytes: int, index: int):
    if nbytes <= 0:
        return None
    from .allocator import DriverBackend
    ptr = DriverBackend(index).malloc(nbytes)
    _workspaces.append((index, ptr, nbytes))
    return ptr


def conv_plan(spec: ConvSpec, index: int = 0, buffers: tuple | None = None) -> ConvPlan:
    """The built plan for `spec` on device `index` (built once; a failure raises
    CudnnUnsupported every time without building again). A plan the builder thread has
    (start_builds) is waited for and taken from it."""
    key = (spec, index)
    plan = _plans.get(key)
    if plan is None:
        if key in _building:
            return _collect(key)
        if key in _failed:
            raise CudnnUnsupported(_failed[key])
        try:
            with compile_times.stage("cuDNN plan builds"):
                plan = _plans[key] = ConvPlan(spec, index, buffers)
        except CudnnUnsupported as err:
            _failed[key] = str(err)
            raise
    return plan


# --- building plans on a thread of their own ------------------------------------------------
# A compile knows the cuDNN plans its first call will need before it waits for its Triton
# compiles (compile_cuda.CudaBackend.batch_compile); built serially on the caller's thread
# they were 1.74 s of a cold resnet18 training step's first call on an H100 (29 plans).
# With EMBER_CUDNN_BUILD_THREAD=1 they are built on one builder thread instead while the
# caller goes on to wait for its compile workers. The frontend's Python binding holds the
# GIL while it builds (cudnn-frontend's pygraph.cpp: no gil release around build_plans), so
# a build overlaps only what the caller does without the GIL (waiting for the compile
# workers, GPU synchronizations), never its Python work; off by default, and never run on a
# GPU yet (tests/cuda/test_cudnn_build_thread.py runs it with a fake frontend).
_building: dict[tuple, Future] = {}
_builder: list = []                  # the one builder thread's executor, made on first use
_built_off_thread = [0.0]            # its CPU seconds, for the stage table's note


def build_thread_enabled() -> bool:
    return os.environ.get("EMBER_CUDNN_BUILD_THREAD", "0").strip() not in ("", "0")


def start_builds(specs: list, index: int) -> int:
    """Hand the plans for `specs` to the builder thread (none already built, failed or
    building, and no benchmark spec: those time on the call's own buffers); conv_plan
    collects each one. Returns how many were handed over."""
    if not _builder:
        _builder.append(ThreadPoolExecutor(1, thread_name_prefix="ember-cudnn-build"))
    started = 0
    for spec in specs:
        key = (spec, index)
        if spec.benchmark or key in _plans or key in _failed or key in _building:
            continue
        _building[key] = _builder[0].submit(_build_off_thread, spec, index)
        started += 1
    return started


def _build_off_thread(spec: ConvSpec, index: int) -> ConvPlan:
    cpu = time.thread_time()
    try:
        driver.context(index)             # cuDNN builds in this thread's current context
        return ConvPlan(spec, index, allocate=False)
    finally:
        _built_off_thread[0] += time.thread_time() - cpu


def _collect(key: tuple) -> ConvPlan:
    """The builder thread's plan for `key`, waited for; its workspace allocated here."""
    future = _building[key]
    with compile_times.stage("cuDNN plan builds (waiting for the builder thread)"):
        try:
            plan = future.result()
        except CudnnUnsupported as err:
            _failed[key] = str(err)
            raise
        finally:
            _building.pop(key, None)
    plan.workspace = _workspace(plan.workspace_size, key[1])
    _plans[key] = plan
    compile_times.fact("CPU seconds of cuDNN plan builds (builder thread)",
                       round(_built_off_thread[0], 3))
    return plan


def finish_builds() -> None:
    """Collect every plan the builder thread has (refused ones are remembered as such)."""
    for key in list(_building):
        try:
            _collect(key)
        except CudnnUnsupported:
            continue


_failed: dict[tuple, str] = {}
