"""Opt-in stage timer of a compiled function's first calls: `EMBER_COMPILE_TIMES=1`.

A first call of `ember.compile(...)` or `ember.compile_train_step(...)` on CUDA does
much more than run: trace, passes, Triton source generation, cubin cache lookups and
compiles, module loads, cuDNN plan builds and conv timings, the first run, then (second
call) the CUDA-graph capture and first replay. With the variable set, each of a plan's
first two calls prints to stderr a table of where its wall time went, stage by stage:

    ember compile times: compile_train_step call 1: 2.391 s wall
      stage                                 seconds   count
      trace                                   0.210       1
      ...

Stages nest: a stage's seconds are its own (exclusive) time, the time of stages opened
inside it is counted there only, so the rows add up to the call's wall time ("other" is
the rest, outside any stage). `EMBER_COMPILE_TIMES=<file>.json` also appends each call's
figures to that file as one JSON line. Notes (`note`) are figures that are not wall time of this
thread: the CPU seconds the compile workers spent, cubins compiled.

Every layer may report through here (the runtime imports only `ir`); with the variable
unset each hook is one check of a module-level flag.
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
import time

ENV = "EMBER_COMPILE_TIMES"
TOP_ITEMS = 12


class _ThreadState(threading.local):
    call = None                  # the open call's record on this thread


_state = _ThreadState()
_open_calls = [0]                # calls open on any thread: the hooks' one check when 0


def enabled() -> bool:
    return os.environ.get(ENV, "").strip() not in ("", "0")


def _open() -> dict | None:
    """The open call's record on this thread ({stage: [seconds, count]}, notes, stack)."""
    return _state.call if _open_calls[0] else None


_NOTHING = contextlib.nullcontext()


def stage(name: str):
    """Time the block as stage `name` of the open call (a shared no-op context when none
    is open: hooks on every call's path, such as a graph replay, cost one lookup)."""
    call = _open()
    return _NOTHING if call is None else _timed_stage(call, name)


@contextlib.contextmanager
def _timed_stage(call: dict, name: str):
    stack = call["stack"]
    stack.append(0.0)                      # seconds of stages nested inside this one
    start = time.perf_counter()
    try:
        yield
    finally:
        spent = time.perf_counter() - start
        inner = stack.pop()
        row = call["stages"].setdefault(name, [0.0, 0])
        row[0] += spent - inner
        row[1] += 1
        if stack:
            stack[-1] += spent


def timed(name: str):
    """Decorator form of `stage`."""
    def wrap(fn):
        def timed_fn(*args, **kwargs):
            if _open() is None:
                return fn(*args, **kwargs)
            with stage(name):
                return fn(*args, **kwargs)
        timed_fn.__name__, timed_fn.__doc__ = fn.__name__, fn.__doc__
        timed_fn.__wrapped__ = fn
        return timed_fn
    return wrap


def recording() -> bool:
    """Whether a call is being timed on this thread (callers skip gathering figures
    otherwise)."""
    return _open() is not None


def record(kind: str, row: dict) -> None:
    """One row of a kind that only the JSON output carries (EMBER_COMPILE_TIMES=<file>.json):
    each compile's schedule, read by benchmarks/cuda_compile_model.py."""
    call = _open()
    if call is not None:
        call["records"].setdefault(kind, []).append(row)


def note(name: str, value: float) -> None:
    """Add `value` to figure `name` of the open call (e.g. worker CPU seconds)."""
    call = _open()
    if call is not None:
        call["notes"][name] = call["notes"].get(name, 0) + value


def fact(name: str, value) -> None:
    """Set figure `name` of the open call (a count or a text that is not summed: how
    many compile workers ran and on how many CPUs)."""
    call = _open()
    if call is not None:
        call["notes"][name] = value


def item(kind: str, name: str, value: float) -> None:
    """One named figure of a kind (a kernel's compile CPU seconds): the table lists the
    largest few of each kind and their total."""
    call = _open()
    if call is not None:
        call["items"].setdefault(kind, []).append((value, name))


@contextlib.contextmanager
def call(label: str, sync=None):
    """One timed call (the outermost only: a compiled function called inside another's
    call is part of it). `sync()` runs at the end as stage "device sync": what the GPU
    still had to do of the call's launches. Prints the table on exit."""
    if not enabled() or _open() is not None:
        yield
        return
    record = {"stages": {}, "notes": {}, "items": {}, "records": {}, "stack": [0.0],
              "began": time.monotonic(), "began_cpu": time.thread_time()}
    _state.call = record
    _open_calls[0] += 1
    start = time.perf_counter()
    try:
        yield
        if sync is not None:
            with stage("device sync (the call's GPU work)"):
                sync()
    finally:
        _state.call = None
        _open_calls[0] -= 1
        total = time.perf_counter() - start
        record["main_cpu"] = time.thread_time() - record["began_cpu"]
        outside = total - record["stack"][0]
        record["stages"]["other (outside any stage)"] = [outside, 1]
        sys.stderr.write(format_table(label, total, record) + "\n")
        sys.stderr.flush()
        _append_json(label, total, record)


def _append_json(label: str, total: float, record: dict) -> None:
    """EMBER_COMPILE_TIMES=<file>.json also appends the call's figures to that file, one
    JSON object a line (every kernel's compile time included, not only the largest)."""
    path = os.environ.get(ENV, "").strip()
    if not path.endswith(".json"):
        return
    import json
    row = {"call": label, "seconds": total,
           "stages": {k: v[0] for k, v in record["stages"].items()},
           "counts": {k: v[1] for k, v in record["stages"].items()},
           "notes": record["notes"], "items": record["items"], "records": record["records"],
           "began": record["began"], "began_cpu": record["began_cpu"],
           "main_cpu": record["main_cpu"]}
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def format_table(label: str, total: float, record: dict) -> str:
    lines = [f"ember compile times: {label}: {total:.3f} s wall, "
             f"{record.get('main_cpu', 0.0):.3f} s CPU of this thread",
             f"  {'stage':<52}{'seconds':>9}{'count':>8}"]
    rows = sorted(record["stages"].items(), key=lambda kv: -kv[1][0])
    lines += [f"  {name:<52}{sec:>9.3f}{n:>8}" for name, (sec, n) in rows]
    for name, value in sorted(record["notes"].items()):
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        lines.append(f"  note: {name} = {shown}")
    for kind, entries in sorted(record["items"].items()):
        entries = sorted(entries, reverse=True)
        lines.append(f"  {kind}: {len(entries)}, total {sum(v for v, _ in entries):.3f}; "
                     f"largest:")
        lines += [f"    {value:9.3f}  {name}" for value, name in entries[:TOP_ITEMS]]
    return "\n".join(lines)
