"""Profiler events and their averages: torch.autograd.profiler_util's FunctionEvent,
FunctionEventAvg and EventList, with PyTorch's table layout.

Times are kept in integer nanoseconds and reported in microseconds (PyTorch's unit
for `cpu_time_total` and friends). An event's *self* time is its duration minus its
children's (spans on the same thread strictly nest, so children never overlap).
"""
from __future__ import annotations

from typing import Iterable

_NAME_WIDTH = 55
_COLUMN_WIDTH = 12
_SHAPES_WIDTH = 28
_SOURCE_WIDTH = 75


class FunctionEvent:
    """One recorded span: an op, a user annotation, a backward node or a compiled step."""

    def __init__(self, id: int, name: str, category: str, thread: int, start_ns: int,
                 input_shapes: list | None = None, stack: list[str] | None = None,
                 sources: list[str] | None = None):
        self.id, self.name, self.category, self.thread = id, name, category, thread
        self.start_ns, self.end_ns = start_ns, start_ns
        self.input_shapes = input_shapes or []
        self.stack = stack or []
        self.sources = sources or []      # compiled steps: the user lines they came from
        self.own_memory = 0               # bytes this span's op itself allocated
        self.cpu_parent: FunctionEvent | None = None
        self.cpu_children: list[FunctionEvent] = []
        self.count = 1
        self.device_type = "CPU"          # 'CUDA' for a kernel timed on the GPU
        self.device_index = -1
        self.kernels: list[FunctionEvent] = []    # GPU kernels this span launched itself

    @property
    def key(self) -> str:
        return self.name

    @property
    def cpu_time_total(self) -> float:
        if self.device_type != "CPU":     # a kernel's span is GPU time, not host time
            return 0.0
        return (self.end_ns - self.start_ns) / 1e3

    @property
    def self_cpu_time_total(self) -> float:
        return self.cpu_time_total - sum(c.cpu_time_total for c in self.cpu_children)

    @property
    def device_time_total(self) -> float:
        """GPU microseconds: a kernel's own; a CPU span's kernels and its children's."""
        if self.device_type != "CPU":
            return (self.end_ns - self.start_ns) / 1e3
        return sum(k.device_time_total for k in self.kernels) + \
            sum(c.device_time_total for c in self.cpu_children)

    @property
    def self_device_time_total(self) -> float:
        """A kernel's time; for a CPU span, the kernels it launched itself."""
        if self.device_type != "CPU":
            return self.device_time_total
        return sum(k.device_time_total for k in self.kernels)

    cuda_time_total = device_time_total
    self_cuda_time_total = self_device_time_total

    @property
    def cpu_memory_usage(self) -> int:
        """Bytes allocated inside the span, its children's included."""
        return self.own_memory + sum(c.cpu_memory_usage for c in self.cpu_children)

    @property
    def self_cpu_memory_usage(self) -> int:
        return self.own_memory

    @property
    def time_range(self) -> tuple[float, float]:
        return (self.start_ns / 1e3, self.end_ns / 1e3)

    def __repr__(self) -> str:
        return (f"<FunctionEvent id={self.id} name={self.name} category={self.category} "
                f"cpu_time_total={_format_time(self.cpu_time_total)} "
                f"cpu_children={[c.id for c in self.cpu_children]}>")


class FunctionEventAvg:
    """The sum of events with one key (name, and shapes/stack when grouped by them)."""

    def __init__(self, key: str, input_shapes=None, stack=None):
        self.key, self.input_shapes, self.stack = key, input_shapes, stack or []
        self.count = 0
        self.cpu_time_total = 0.0
        self.self_cpu_time_total = 0.0
        self.cpu_memory_usage = 0
        self.self_cpu_memory_usage = 0
        self.device_time_total = 0.0
        self.self_device_time_total = 0.0
        self.device_type = "CPU"

    def add(self, event: FunctionEvent) -> "FunctionEventAvg":
        self.count += event.count
        self.cpu_time_total += event.cpu_time_total
        self.self_cpu_time_total += event.self_cpu_time_total
        self.device_time_total += event.device_time_total
        self.self_device_time_total += event.self_device_time_total
        self.device_type = event.device_type
        self.cpu_memory_usage += event.cpu_memory_usage
        self.self_cpu_memory_usage += event.self_cpu_memory_usage
        return self

    @property
    def cpu_time(self) -> float:
        return self.cpu_time_total / max(self.count, 1)

    @property
    def self_cpu_time(self) -> float:
        return self.self_cpu_time_total / max(self.count, 1)

    @property
    def device_time(self) -> float:
        return self.device_time_total / max(self.count, 1)

    @property
    def cuda_time_total(self) -> float:
        return self.device_time_total

    @property
    def self_cuda_time_total(self) -> float:
        return self.self_device_time_total

    cuda_time = device_time

    def __repr__(self) -> str:
        return (f"<FunctionEventAvg key={self.key} self_cpu_time={_format_time(self.self_cpu_time)}"
                f" cpu_time={_format_time(self.cpu_time)} count={self.count}>")


class EventList(list):
    """A list of events (or averages) that can print PyTorch's summary table."""

    def __init__(self, events: Iterable = (), *, profile_memory: bool = False,
                 with_stack: bool = False, grouped_by_shapes: bool = False,
                 stack_n: int = 0, with_device: bool = False):
        super().__init__(events)
        self._with_device = with_device       # CUDA columns: kernels were timed on the GPU
        self._profile_memory = profile_memory
        self._with_stack = with_stack
        self._grouped_by_shapes = grouped_by_shapes
        self._stack_n = stack_n

    @property
    def self_cpu_time_total(self) -> float:
        return sum(e.self_cpu_time_total for e in self)

    def key_averages(self, group_by_input_shape: bool = False,
                     group_by_stack_n: int = 0) -> "EventList":
        """Events summed per name (and per input shapes / top `group_by_stack_n` frames)."""
        groups: dict = {}
        for event in self:
            key = [event.key]
            if group_by_input_shape:
                key.append(str(event.input_shapes))
            if group_by_stack_n > 0:
                key.append(tuple(event.stack[:group_by_stack_n]))
            key = tuple(key)
            if key not in groups:
                stack = event.stack[:group_by_stack_n] if group_by_stack_n > 0 else \
                    (event.sources or event.stack)
                groups[key] = FunctionEventAvg(event.key, event.input_shapes, stack)
            groups[key].add(event)
        return EventList(groups.values(), profile_memory=self._profile_memory,
                         with_stack=self._with_stack, grouped_by_shapes=group_by_input_shape,
                         stack_n=group_by_stack_n, with_device=self._with_device)

    def table(self, sort_by: str | None = None, row_limit: int = 100,
              max_src_column_width: int = _SOURCE_WIDTH,
              max_name_column_width: int = _NAME_WIDTH, header: str | None = None,
              top_level_events_only: bool = False) -> str:
        return _table(self, sort_by, row_limit, max_src_column_width, max_name_column_width,
                      header, top_level_events_only)


_SORT_KEYS = ("cpu_time", "cpu_time_total", "self_cpu_time_total", "count",
              "cpu_memory_usage", "self_cpu_memory_usage")
_DEVICE_SORT_KEYS = ("cuda_time", "cuda_time_total", "self_cuda_time_total", "device_time",
                     "device_time_total", "self_device_time_total")


def _table(events: EventList, sort_by, row_limit, src_width, name_width, header,
           top_level_only) -> str:
    rows = list(events)
    if top_level_only:
        rows = [e for e in rows if getattr(e, "cpu_parent", None) is None]
    device = events._with_device
    keys = _SORT_KEYS + (_DEVICE_SORT_KEYS if device else ())
    if sort_by is not None:
        if sort_by not in keys:
            raise ValueError(f"table: sort_by must be one of {', '.join(keys)}"
                             f"{'' if device else ' (no CUDA kernels were timed)'}, "
                             f"got {sort_by!r}")
        rows.sort(key=lambda e: _sort_value(e, sort_by), reverse=True)
    total_self = sum(e.self_cpu_time_total for e in events)
    # PyTorch's device total: the kernels' own times (CPU rows only sum them up)
    total_device = sum(e.self_device_time_total for e in events
                       if getattr(e, "device_type", "CPU") != "CPU")
    shown = rows[:row_limit] if row_limit is not None and row_limit >= 0 else rows
    widths = [name_width] + [_COLUMN_WIDTH] * 5
    titles = ["Name", "Self CPU %", "Self CPU", "CPU total %", "CPU total", "CPU time avg"]
    if device:
        titles += ["Self CUDA", "Self CUDA %", "CUDA total", "CUDA time avg"]
        widths += [_COLUMN_WIDTH] * 4
    if events._profile_memory:
        titles += ["CPU Mem", "Self CPU Mem"]
        widths += [_COLUMN_WIDTH] * 2
    titles.append("# of Calls")
    widths.append(_COLUMN_WIDTH)
    if events._grouped_by_shapes:
        titles.append("Input Shapes")
        widths.append(_SHAPES_WIDTH)
    with_source = events._with_stack or events._stack_n > 0
    if with_source:
        titles.append("Source Location")
        widths.append(src_width)
    rule = "".join("-" * w + "  " for w in widths)
    lines = [rule] if header is None else ["=" * len(rule), header, rule]
    lines += [_line(titles, widths), rule]
    for e in shown:
        cells = [_name(e.key, name_width),
                 _percent(e.self_cpu_time_total, total_self), _format_time(e.self_cpu_time_total),
                 _percent(e.cpu_time_total, total_self), _format_time(e.cpu_time_total),
                 _format_time(e.cpu_time)]
        if device:
            cells += [_format_time(e.self_device_time_total),
                      _percent(e.self_device_time_total, total_device),
                      _format_time(e.device_time_total), _format_time(_device_avg(e))]
        if events._profile_memory:
            cells += [_format_memory(e.cpu_memory_usage), _format_memory(e.self_cpu_memory_usage)]
        cells.append(str(e.count))
        if events._grouped_by_shapes:
            cells.append(_name(str(e.input_shapes), _SHAPES_WIDTH))
        sources = list(getattr(e, "stack", []) or [])
        if with_source:
            cells.append(_name(sources[0], src_width) if sources else "")
        lines.append(_line(cells, widths))
        for extra in sources[1:] if with_source else ():
            lines.append(_line([""] * (len(widths) - 1) + [_name(extra, src_width)], widths))
    lines.append(rule)
    lines.append(f"Self CPU time total: {_format_time(total_self)}")
    if device:
        lines.append(f"Self CUDA time total: {_format_time(total_device)}")
    return "\n".join(lines) + "\n"


def _sort_value(e, key: str) -> float:
    if key in ("cuda_time", "device_time"):
        return _device_avg(e)
    return getattr(e, key.replace("cuda", "device"), getattr(e, key, 0))


def _device_avg(e) -> float:
    return e.device_time_total / max(e.count, 1)


def _line(cells: list[str], widths: list[int]) -> str:
    return "".join(c.rjust(w) + "  " for c, w in zip(cells, widths))


def _name(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def _percent(part: float, total: float) -> str:
    return f"{part / total * 100:.2f}%" if total else "0.00%"


def _format_time(us: float) -> str:
    """PyTorch's time strings: 1.234s, 5.678ms, 12.345us."""
    if abs(us) >= 1e6:
        return f"{us / 1e6:.3f}s"
    if abs(us) >= 1e3:
        return f"{us / 1e3:.3f}ms"
    return f"{us:.3f}us"


def _format_memory(nbytes: int) -> str:
    """PyTorch's memory strings: 1.50 GB, 2.00 MB, 4.00 KB, 12 B."""
    for unit, size in (("GB", 1024 ** 3), ("MB", 1024 ** 2), ("KB", 1024)):
        if abs(nbytes) >= size:
            return f"{nbytes / size:.2f} {unit}"
    return f"{nbytes} B"
