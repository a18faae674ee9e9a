"""CUDA graphs: record a sequence of launches once, replay it with one cuGraphLaunch.

`CudaGraph.capture(work)` runs `work()` with a fresh capturing stream as the current
stream (so every launch and async copy `work` queues through the runtime is recorded,
not executed), then instantiates the graph. `launch(stream)` replays it: the same
kernels, on the same device addresses, in the recorded order, ordered after earlier
work on `stream`. Nothing is executed during capture, so whatever `work` returns holds
no values until the first `launch`.

Capture mode is RELAXED: the caching allocator may call cuMemAlloc while a capture is
open. Whatever the captured work allocates comes from the graph's private pool of the
caching allocator (allocator.begin_private_pool): its addresses are baked into the
graph, so a block freed during or after capture is reused only by a later capture into
that pool, never by other work while the graph may still replay over it; the pool is
released when the graph is destroyed. The capturing stream is a
non-blocking stream, so work on the legacy default stream neither joins nor breaks the
capture. Only one replay of an instantiated graph runs at a time (the driver orders
launches of one graph exec), which is what a plan needs: its buffers are reused.
"""
from __future__ import annotations

from typing import Any, Callable

from . import driver
from .allocator import device_allocator
from .stream import Stream, current_stream, use_stream


class CudaGraph:
    """An instantiated CUDA graph on one device (`cuGraphExec`), replayable with `launch`."""

    def __init__(self, graph, executable, device: int, result: Any = None,
                 pool: int | None = None):
        self._graph, self._exec, self.device = graph, executable, device
        self.result = result            # what the captured work returned (its buffers)
        self.pool = pool                # the allocator's private pool the graph replays in
        self.launches = 0

    @classmethod
    def capture(cls, work: Callable[[], Any], device: int = 0) -> "CudaGraph":
        """Record the launches `work()` queues on the current stream into a graph."""
        stream = Stream(device)
        capture = Capture(stream, mode="relaxed")
        try:
            with use_stream(stream):
                result = work()
        except BaseException:
            capture.abandon()
            raise
        return capture.end(result)

    @property
    def node_count(self) -> int:
        """Kernel launches and copies the graph holds."""
        found = driver.call("cuGraphGetNodes", self._graph, 0)
        return int(found[-1] if isinstance(found, tuple) else found)

    def launch(self, stream: Stream | None = None) -> None:
        """Replay on `stream` (default: the current stream), after its earlier work."""
        stream = stream or current_stream(self.device)
        driver.context(self.device)
        driver.call("cuGraphLaunch", self._exec, stream._stream)
        self.launches += 1

    def __del__(self):
        cu = driver._state["cu"]
        if cu is None:
            return
        try:                             # interpreter shutdown may have torn the driver down
            if getattr(self, "_exec", None) is not None:
                cu.cuGraphExecDestroy(self._exec)
            if getattr(self, "_graph", None) is not None:
                cu.cuGraphDestroy(self._graph)
            if getattr(self, "pool", None) is not None:
                device_allocator(self.device).release_private_pool(self.pool)
        except Exception:   # noqa: BLE001
            pass


MODES = {"global": "CU_STREAM_CAPTURE_MODE_GLOBAL",
         "thread_local": "CU_STREAM_CAPTURE_MODE_THREAD_LOCAL",
         "relaxed": "CU_STREAM_CAPTURE_MODE_RELAXED"}


class Capture:
    """An open capture on `stream` (cuStreamBeginCapture), its allocations served from a
    private pool of the caching allocator (`pool`: a new one unless given, so graphs may
    share one). `end(result)` closes it into a CudaGraph; `abandon()` discards it."""

    def __init__(self, stream: Stream, pool: int | None = None, mode: str = "relaxed"):
        cu = driver.bindings()
        self.stream, self.device = stream, stream.device
        driver.context(self.device)
        self.allocator = device_allocator(self.device)
        self.pool = self.allocator.begin_private_pool(stream.handle, pool)
        try:
            driver.call("cuStreamBeginCapture", stream._stream,
                        getattr(cu.CUstreamCaptureMode, MODES[mode]))
        except BaseException:
            self._close_pool(release=True)
            raise

    def _close_pool(self, release: bool) -> None:
        self.allocator.end_private_pool(self.stream.handle)
        if release:
            self.allocator.release_private_pool(self.pool)

    def end(self, result: Any = None) -> CudaGraph:
        self._close_pool(release=False)
        try:
            graph = driver.call("cuStreamEndCapture", self.stream._stream)
        except BaseException:
            self.allocator.release_private_pool(self.pool)
            raise
        try:
            executable = driver.call("cuGraphInstantiate", graph, 0)
        except BaseException:
            driver.bindings().cuGraphDestroy(graph)
            self.allocator.release_private_pool(self.pool)
            raise
        return CudaGraph(graph, executable, self.device, result, self.pool)

    def abandon(self) -> None:
        _end_capture_quietly(self.stream)
        self._close_pool(release=True)


def _end_capture_quietly(stream: Stream) -> None:
    """Close a capture that failed part-way (the stream is unusable until it ends)."""
    cu = driver.bindings()
    result, graph = cu.cuStreamEndCapture(stream._stream)
    if result == cu.CUresult.CUDA_SUCCESS and graph is not None:
        cu.cuGraphDestroy(graph)
