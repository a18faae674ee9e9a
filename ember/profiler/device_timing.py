"""CUDA kernels timed on the GPU, for profiles that ask for ProfilerActivity.CUDA.

While such a profile records (and a GPU is available), the runtime's kernel launcher
brackets every launch with two CUDA timing events on the launch stream and reports them
here (`ir.profiling.kernel_timer`). Nothing waits while recording: the elapsed times are
read when the profile's results are collected (`resolve`), which synchronizes on the
last events. Each launch becomes a device event (device_type 'CUDA', category
'cuda_kernel') named after the kernel, whose duration is the GPU's own measurement; it
hangs off the CPU span that launched it (an eager op, a compiled plan's step), so that
span's `device_time_total` / "CUDA total" column sums the kernels under it, as in
PyTorch.

Device events are placed on the host timeline through the first kernel of each device:
its start is taken to be the host time of its launch and later kernels are offset from
it by the GPU's own clock (CUDA events' elapsed time), so gaps and overlaps between
kernels are measured, while the alignment with host spans is approximate (a kernel
starts after its launch, never before).
"""
from __future__ import annotations

import threading
import time

from .events import FunctionEvent


class KernelTimer:
    """Pending launches of one profile, resolved into FunctionEvents on demand."""

    def __init__(self, collector):
        self.collector = collector
        self.pending: list = []
        self.references: dict[int, tuple] = {}    # device -> (start event, host ns)
        self._lock = threading.Lock()

    def kernel(self, name: str, device: int, stream: int, grid, start, end) -> None:
        """Called by the runtime right after a launch (events already recorded)."""
        parent = self.collector.open_span()
        with self._lock:
            if device not in self.references:
                self.references[device] = (start, time.perf_counter_ns())
            self.pending.append((name, device, stream, tuple(grid), start, end, parent))

    def resolve(self) -> list[FunctionEvent]:
        """Device events for every pending launch (synchronizes on their end events)."""
        with self._lock:
            pending, self.pending = self.pending, []
        made = []
        for name, device, stream, grid, start, end, parent in pending:
            end.synchronize()
            reference, host_ns = self.references[device]
            offset_ns = int(reference.elapsed_time(start) * 1e6)
            duration_ns = int(start.elapsed_time(end) * 1e6)
            made.append(self.collector.device_event(name, device, stream, grid,
                                                    host_ns + offset_ns, duration_ns, parent))
        return made

    def clear(self) -> None:
        with self._lock:
            self.pending = []
