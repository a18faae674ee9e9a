"""The profiler's hook point: layers below the frontend report spans through here.

ember.profiler (a frontend-level package) installs a *collector* while a profile is
recording; the runtime's Plan (compiled steps) and the autograd engine report spans
with `record(...)`, and cost one list check when nothing is installed. `ir` holds
this hook because the runtime may import only `ir`.

A collector has `begin(name, category, fields) -> token` and `end(token)`; spans
on one thread nest (begin/end are strictly bracketed), which is how the profiler
builds parent/child trees and self times.
"""
from __future__ import annotations

import contextlib

_collectors: list = []


def collector():
    """The innermost installed collector, or None when nothing is profiling."""
    return _collectors[-1] if _collectors else None


def install(c) -> None:
    _collectors.append(c)


def uninstall(c) -> None:
    if c in _collectors:
        _collectors.remove(c)


@contextlib.contextmanager
def record(name: str, category: str, **fields):
    """A span named `name` in the current collector (a no-op when there is none)."""
    c = collector()
    if c is None:
        yield None
        return
    token = c.begin(name, category, fields)
    try:
        yield token
    finally:
        c.end(token)


# --- device kernels: timed on the GPU ----------------------------------------------------
# A profile that asked for ProfilerActivity.CUDA installs a kernel timer; the runtime's
# kernel launcher (runtime/cuda/module.py) then brackets each launch with CUDA events and
# hands them over with `timer.kernel(name, device, stream, grid, start, end)`. The
# profiler reads the elapsed times when the profile's results are asked for, so launches
# stay asynchronous while recording.
_kernel_timers: list = []


def kernel_timer():
    """The innermost installed kernel timer, or None (launches are not timed)."""
    return _kernel_timers[-1] if _kernel_timers else None


def install_kernel_timer(t) -> None:
    _kernel_timers.append(t)


def uninstall_kernel_timer(t) -> None:
    if t in _kernel_timers:
        _kernel_timers.remove(t)
