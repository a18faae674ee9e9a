"""ember.profiler.profile: record eager ops, autograd's backward and compiled steps.

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True, with_stack=True) as p:
        with record_function("forward"):
            loss = model(x).sum()
        loss.backward()
    print(p.key_averages().table(sort_by="cpu_time_total", row_limit=10))
    p.export_chrome_trace("trace.json")          # opens in Perfetto / chrome://tracing

Three sources feed one collector:
- eager op calls, through a dispatch *mode* (`ir.dispatch`): rows named "aten::<op>"
  like PyTorch's; ops that an op runs internally are part of its row;
- autograd's engine, one "autograd::engine::evaluate_function: <Node>" span per node,
  with the ops its derivative rule runs nested inside;
- compiled plans (`runtime.plan`), one "CompiledFunction" span per call and one span per
  step, categorized kernel / extern (GEMM, conv) / view / fallback. Beyond PyTorch: each
  step carries the user source lines of the graph nodes it came from (every line a fused
  kernel fused), shown in the table's Source Location column with `with_stack=True`.
Spans on one thread nest strictly, so the parent/child tree and self times come from
a per-thread stack. Host timing is wall time (perf_counter_ns). With
ProfilerActivity.CUDA on a machine with a GPU, every kernel launch is also timed on the
GPU with CUDA events (device_timing.py): kernel rows (device_type 'CUDA') and the
"Self CUDA"/"CUDA total" columns, as in PyTorch.
"""
from __future__ import annotations

import enum
import functools
import gzip
import json
import os
import socket
import threading
import time
import traceback
from typing import Any, Callable, Iterable

from ..frontend.tensor import Tensor
from ..ir import dispatch, profiling
from ..ir.errors import EMBER_DIR
from .events import EventList, FunctionEvent

__all__ = ["profile", "record_function", "schedule", "ProfilerActivity", "ProfilerAction",
           "tensorboard_trace_handler", "supported_activities"]


class ProfilerActivity(enum.Enum):
    CPU = 0
    CUDA = 2


class ProfilerAction(enum.Enum):
    NONE = 0
    WARMUP = 1
    RECORD = 2
    RECORD_AND_SAVE = 3


def supported_activities() -> set:
    return {ProfilerActivity.CPU, ProfilerActivity.CUDA}


def schedule(*, wait: int, warmup: int, active: int, repeat: int = 0,
             skip_first: int = 0) -> Callable[[int], ProfilerAction]:
    """torch.profiler.schedule: after `skip_first` steps, cycles of `wait` idle steps,
    `warmup` steps recorded and discarded, `active` steps recorded (the last one saves:
    on_trace_ready runs), `repeat` times (0: forever)."""
    if wait < 0 or warmup < 0 or active <= 0 or repeat < 0 or skip_first < 0:
        raise ValueError("schedule: wait, warmup, repeat and skip_first must be >= 0 "
                         f"and active > 0, got wait={wait}, warmup={warmup}, "
                         f"active={active}, repeat={repeat}, skip_first={skip_first}")
    cycle = wait + warmup + active

    def action(step: int) -> ProfilerAction:
        if step < skip_first:
            return ProfilerAction.NONE
        step -= skip_first
        if repeat > 0 and step // cycle >= repeat:
            return ProfilerAction.NONE
        position = step % cycle
        if position < wait:
            return ProfilerAction.NONE
        if position < wait + warmup:
            return ProfilerAction.WARMUP
        return ProfilerAction.RECORD if position < cycle - 1 else ProfilerAction.RECORD_AND_SAVE
    return action


def _always_record(step: int) -> ProfilerAction:
    return ProfilerAction.RECORD


def tensorboard_trace_handler(dir_name: str, worker_name: str | None = None,
                              use_gzip: bool = False) -> Callable:
    """on_trace_ready handler writing `<worker>.<time>.pt.trace.json[.gz]` into dir_name."""
    def handler(prof: "profile") -> None:
        os.makedirs(dir_name, exist_ok=True)
        worker = worker_name or f"{socket.gethostname()}_{os.getpid()}"
        # nanoseconds, as PyTorch: two traces saved within one millisecond (a schedule's
        # last cycle and the profile's exit) must not overwrite each other
        name = f"{worker}.{time.time_ns()}.pt.trace.json"
        path = os.path.join(dir_name, name + (".gz" if use_gzip else ""))
        prof.export_chrome_trace(path)
    return handler


class _Collector:
    """Receives spans from every source; builds FunctionEvents with parents and children."""

    def __init__(self, record_shapes: bool, profile_memory: bool, with_stack: bool):
        self.record_shapes, self.profile_memory = record_shapes, profile_memory
        self.with_stack = with_stack
        self.events: list[FunctionEvent] = []
        self._open = threading.local()
        self._lock = threading.Lock()

    def _stack(self) -> list:
        if not hasattr(self._open, "stack"):
            self._open.stack = []
        return self._open.stack

    def begin(self, name: str, category: str, fields: dict) -> FunctionEvent:
        open_spans = self._stack()
        with self._lock:
            event = FunctionEvent(len(self.events), name, category, threading.get_native_id(),
                                  0, input_shapes=fields.get("input_shapes"),
                                  stack=_user_stack() if self.with_stack else None,
                                  sources=list(fields.get("source") or ()))
            self.events.append(event)
        if event.sources and self.with_stack:
            event.stack = list(event.sources)
        if open_spans:
            event.cpu_parent = open_spans[-1]
            open_spans[-1].cpu_children.append(event)
        open_spans.append(event)
        event.start_ns = event.end_ns = time.perf_counter_ns()
        return event

    def end(self, event: FunctionEvent) -> None:
        event.end_ns = time.perf_counter_ns()
        open_spans = self._stack()
        if open_spans and open_spans[-1] is event:
            open_spans.pop()

    def clear(self) -> None:
        self.events = []
        if self.kernel_timer is not None:
            self.kernel_timer.clear()

    kernel_timer = None                   # a device_timing.KernelTimer when CUDA is timed

    def open_span(self) -> FunctionEvent | None:
        """The innermost span open on this thread (what a kernel launch belongs to)."""
        stack = self._stack()
        return stack[-1] if stack else None

    def device_event(self, name: str, device: int, stream: int, grid, start_ns: int,
                     duration_ns: int, parent: FunctionEvent | None) -> FunctionEvent:
        """A kernel timed on the GPU, attached to the CPU span that launched it."""
        with self._lock:
            event = FunctionEvent(len(self.events), name, "cuda_kernel", stream, start_ns)
            self.events.append(event)
        event.end_ns = start_ns + duration_ns
        event.device_type, event.device_index = "CUDA", device
        event.grid = grid
        if parent is not None:
            parent.kernels.append(event)
            event.cpu_parent = parent
        return event

    def resolve_device_events(self) -> None:
        if self.kernel_timer is not None:
            self.kernel_timer.resolve()


def _cuda_available() -> bool:
    from ..frontend import cuda
    try:
        return cuda.is_available()
    except Exception:   # noqa: BLE001 - a broken driver install: no device timing
        return False


class _OpMode:
    """The dispatch mode that times each eager op call as one 'aten::<op>' span."""

    def __init__(self, collector: _Collector):
        self.collector = collector

    def handle(self, op, args: tuple):
        shapes = _shapes(args) if self.collector.record_shapes else None
        event = self.collector.begin(_op_name(op), "cpu_op", {"input_shapes": shapes})
        try:
            with dispatch.disabled(self):
                result = dispatch.dispatch(op, args)
        finally:
            self.collector.end(event)
        if self.collector.profile_memory:
            event.own_memory = _nbytes(result)
        return result


def _op_name(op) -> str:
    """PyTorch's row names: 'aten::conv2d' for built-in ops, 'mylib::op' for custom ones."""
    return op.name if "::" in op.name else f"aten::{op.name}"


def _shapes(args) -> list:
    out = []
    for a in args:
        if isinstance(a, Tensor):
            out.append(list(a.shape))
        elif isinstance(a, (list, tuple)) and a and all(isinstance(v, Tensor) for v in a):
            out.append([list(v.shape) for v in a])
        else:
            out.append([])
    return out


def _nbytes(result) -> int:
    if isinstance(result, Tensor):
        return result.numel() * result.element_size()
    if isinstance(result, (list, tuple)):
        return sum(_nbytes(r) for r in result)
    return 0


def _user_stack() -> list[str]:
    """The caller's frames outside ember, innermost first, as 'file.py(14): forward'."""
    frames = []
    for frame in reversed(traceback.extract_stack()):
        if frame.filename.startswith(EMBER_DIR) or frame.filename.startswith("<"):
            continue
        if f"{os.sep}site-packages{os.sep}" in frame.filename or \
                f"{os.sep}lib{os.sep}python3" in frame.filename:
            continue
        frames.append(f"{frame.filename}({frame.lineno}): {frame.name}")
    return frames


class profile:
    """torch.profiler.profile's arguments and methods (CPU host timing)."""

    def __init__(self, *, activities: Iterable[ProfilerActivity] | None = None,
                 schedule: Callable[[int], ProfilerAction] | None = None,
                 on_trace_ready: Callable[["profile"], Any] | None = None,
                 record_shapes: bool = False, profile_memory: bool = False,
                 with_stack: bool = False, with_flops: bool = False,
                 with_modules: bool = False, experimental_config=None,
                 execution_trace_observer=None, acc_events: bool = False, use_cuda=None):
        activities = set(activities) if activities is not None else supported_activities()
        unknown = [a for a in activities if a not in supported_activities()]
        if unknown:
            raise ValueError(f"profile: unsupported activities {unknown}; ember profiles "
                             "ProfilerActivity.CPU and ProfilerActivity.CUDA")
        self.activities = activities
        self.schedule = schedule or _always_record
        self.on_trace_ready = on_trace_ready
        self.record_shapes, self.profile_memory = record_shapes, profile_memory
        self.with_stack, self.with_flops, self.with_modules = with_stack, with_flops, with_modules
        self.acc_events = acc_events
        self.step_num = 0
        self.current_action = ProfilerAction.NONE
        self._collector = _Collector(record_shapes, profile_memory, with_stack)
        self.with_device = ProfilerActivity.CUDA in activities and _cuda_available()
        if self.with_device:
            from .device_timing import KernelTimer
            self._collector.kernel_timer = KernelTimer(self._collector)
        self._mode = _OpMode(self._collector)
        self._recording = False
        self._step_event = None
        self._saved: list[FunctionEvent] = []
        self._started = False

    # --- lifecycle -----------------------------------------------------------------------
    def __enter__(self) -> "profile":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self._started = True
        self.current_action = self.schedule(self.step_num)
        self._apply(self.current_action)

    def stop(self) -> None:
        if not self._started:
            return
        was = self.current_action
        self._end_step_event()
        self._set_recording(False)
        self._started = False
        if self.schedule is _always_record or was == ProfilerAction.RECORD_AND_SAVE or \
                (was == ProfilerAction.RECORD and self.on_trace_ready is not None):
            self._finish_cycle()

    def step(self) -> None:
        """Mark a training step's end: advances the schedule, saving a finished cycle."""
        previous = self.current_action
        self._end_step_event()
        self.step_num += 1
        self.current_action = self.schedule(self.step_num)
        if previous == ProfilerAction.WARMUP and self.current_action in _RECORDING:
            self._collector.clear()          # warm-up spans are discarded
        if previous == ProfilerAction.RECORD_AND_SAVE:
            self._set_recording(False)
            self._finish_cycle()
        self._apply(self.current_action)

    def _apply(self, action: ProfilerAction) -> None:
        recording = action in _RECORDING or action == ProfilerAction.WARMUP
        self._set_recording(recording)
        if recording and self.schedule is not _always_record:
            self._step_event = self._collector.begin(f"ProfilerStep#{self.step_num}",
                                                     "user_annotation", {})

    def _end_step_event(self) -> None:
        if self._step_event is not None:
            self._collector.end(self._step_event)
            self._step_event = None

    def _set_recording(self, on: bool) -> None:
        timer = self._collector.kernel_timer
        if on and not self._recording:
            profiling.install(self._collector)
            if timer is not None:
                profiling.install_kernel_timer(timer)
            self._mode_ctx = dispatch.enabled(self._mode)
            self._mode_ctx.__enter__()
        elif not on and self._recording:
            self._mode_ctx.__exit__(None, None, None)
            profiling.uninstall(self._collector)
            profiling.uninstall_kernel_timer(timer)
        self._recording = on

    def _finish_cycle(self) -> None:
        self._collector.resolve_device_events()
        self._saved = list(self._collector.events)
        self._collector.clear()
        if self.on_trace_ready is not None:
            self.on_trace_ready(self)

    # --- results -------------------------------------------------------------------------
    def events(self) -> EventList:
        if not self._saved:
            self._collector.resolve_device_events()
        events = self._saved if self._saved or not self._collector.events \
            else self._collector.events
        return EventList(events, profile_memory=self.profile_memory, with_stack=self.with_stack,
                         with_device=self.with_device)

    def key_averages(self, group_by_input_shape: bool = False, group_by_stack_n: int = 0,
                     group_by_overload_name: bool = False) -> EventList:
        if group_by_input_shape and not self.record_shapes:
            raise ValueError("key_averages(group_by_input_shape=True) needs "
                             "profile(record_shapes=True)")
        if group_by_stack_n > 0 and not self.with_stack:
            raise ValueError("key_averages(group_by_stack_n=...) needs profile(with_stack=True)")
        return self.events().key_averages(group_by_input_shape, group_by_stack_n)

    def export_chrome_trace(self, path: str) -> None:
        """The Chrome trace-event JSON (Perfetto, chrome://tracing); '.gz' paths are gzipped."""
        trace = chrome_trace(self.events(), self)
        data = json.dumps(trace).encode()
        if path.endswith(".gz"):
            data = gzip.compress(data)
        with open(path, "wb") as f:
            f.write(data)


_RECORDING = (ProfilerAction.RECORD, ProfilerAction.RECORD_AND_SAVE)


def chrome_trace(events: Iterable[FunctionEvent], prof: profile | None = None) -> dict:
    """Complete ('X') events in microseconds; nesting follows from ts/dur on each thread."""
    events = list(events)
    base = min((e.start_ns for e in events), default=0)
    pid = os.getpid()
    trace = []
    devices: set[int] = set()
    for e in events:
        args: dict[str, Any] = {}
        if e.input_shapes:
            args["Input Dims"] = e.input_shapes
        if e.sources:
            args["Source"] = e.sources
        if e.stack and not e.sources:
            args["Call stack"] = ";".join(e.stack)
        if e.cpu_memory_usage:
            args["Bytes"] = e.cpu_memory_usage
        where = pid
        if e.device_type != "CPU":             # GPU kernels: process = device, thread = stream
            args.update(device=e.device_index, stream=e.thread, grid=list(e.grid))
            where = e.device_index
            devices.add(e.device_index)
        trace.append({"ph": "X", "cat": e.category, "name": e.name, "pid": where,
                      "tid": e.thread, "ts": (e.start_ns - base) / 1e3,
                      "dur": (e.end_ns - e.start_ns) / 1e3, "args": args})
    for index in sorted(devices):              # Perfetto's label for each GPU's track
        trace.append({"ph": "M", "name": "process_name", "pid": index, "tid": 0,
                      "args": {"name": f"cuda:{index}"}})
    return {"schemaVersion": 1, "displayTimeUnit": "ms", "baseTimeNanoseconds": base,
            "traceName": "ember", "with_stack": bool(prof and prof.with_stack),
            "record_shapes": bool(prof and prof.record_shapes),
            "profile_memory": bool(prof and prof.profile_memory), "traceEvents": trace}


class record_function:
    """A named span around user code (context manager or decorator); free when not profiling."""

    def __init__(self, name: str, args: str | None = None):
        self.name, self.args = name, args
        self._token = None

    def __enter__(self) -> "record_function":
        c = profiling.collector()
        self._collector = c
        if c is not None:
            self._token = c.begin(self.name, "user_annotation", {})
        return self

    def __exit__(self, *exc) -> None:
        if self._token is not None:
            self._collector.end(self._token)
            self._token = None

    def __call__(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            with record_function(self.name, self.args):
                return fn(*args, **kwargs)
        return wrapped
