"""Timer: time a Python statement the way torch.utils.benchmark.Timer does.

    t = Timer("y = model(x)", globals={"model": model, "x": x}, label="resnet", num_threads=1)
    m = t.blocked_autorange(min_run_time=0.5)     # a Measurement: median, IQR, ...

The statement is compiled once (stdlib `timeit`), then run in blocks of `number`
iterations; each block's total is one raw time. The block size is chosen so the
timer's own overhead is negligible. Every timing runs with ember's native thread
pool capped at `num_threads` (restored afterwards), and when a CUDA device is
present the timer synchronizes it before reading the clock, so queued GPU work is
counted where it was issued, as PyTorch's Timer does.
"""
from __future__ import annotations

import enum
import timeit
from typing import Any, Callable

import numpy as np

from ...runtime import threads as _threads
from .common import Measurement, TaskSpec

__all__ = ["Timer", "Language", "timer"]


class Language(enum.Enum):
    PYTHON = 0
    CPP = 1


def _cuda_present() -> bool:
    try:
        from ...frontend import cuda
        return cuda.is_available()
    except Exception:   # no bindings or driver: CPU-only machine
        return False


def timer() -> float:
    """The clock Timer reads: perf_counter, after draining the GPU when one exists."""
    if _CUDA[0] is None:
        _CUDA[0] = _cuda_present()
    if _CUDA[0]:
        from ...frontend import cuda
        cuda.synchronize()
    return timeit.default_timer()


_CUDA: list[bool | None] = [None]


class _ThreadCap:
    """Run the body with ember's kernels on `n` threads, then restore the old cap."""

    def __init__(self, n: int):
        self.n = n

    def __enter__(self):
        self.saved = _threads._THREAD_LIMIT[0]
        _threads.set_num_threads(self.n)

    def __exit__(self, *exc):
        _threads._THREAD_LIMIT[0] = self.saved


class Timer:
    """torch.utils.benchmark.Timer's arguments and methods, over ember."""

    def __init__(self, stmt: str = "pass", setup: str = "pass", global_setup: str = "",
                 timer: Callable[[], float] = timer, globals: dict[str, Any] | None = None,
                 label: str | None = None, sub_label: str | None = None,
                 description: str | None = None, env: str | None = None,
                 num_threads: int = 1, language: Language | str = Language.PYTHON):
        if not isinstance(stmt, str):
            raise ValueError("Timer: stmt must be a string")
        if language not in (Language.PYTHON, "py", "python"):
            raise ValueError("Timer: ember times Python statements only, "
                             f"got language={language!r}")
        if global_setup:
            raise ValueError("Timer: global_setup is only meaningful for C++ statements")
        # Python's timeit accepts no leading indentation; strip it as PyTorch does
        stmt = _dedent(stmt)
        setup = _dedent(setup)
        self._globals = dict(globals or {})
        self._globals.setdefault("ember", __import__("ember"))
        self._timer = timeit.Timer(stmt=stmt, setup=setup, timer=timer, globals=self._globals)
        self._task_spec = TaskSpec(stmt=stmt, setup=setup, global_setup=global_setup,
                                   label=label, sub_label=sub_label, description=description,
                                   env=env, num_threads=num_threads)

    def _timeit(self, number: int) -> float:
        # at least one run: a zero-iteration block measures only the timer itself
        return max(self._timer.timeit(number), 1e-9)

    def timeit(self, number: int = 1000000) -> Measurement:
        """One block of `number` runs (after one warm-up run), as timeit.Timer.timeit."""
        with _ThreadCap(self._task_spec.num_threads):
            self._timeit(number=max(int(number // 100), 2))    # warm up caches, compile
            return Measurement(number, [self._timeit(number)], self._task_spec)

    def repeat(self, repeat: int = -1, number: int = -1):
        raise NotImplementedError("Timer.repeat is not supported (as in PyTorch): "
                                  "use blocked_autorange or timeit")

    def autorange(self, callback: Callable[[int, float], None] | None = None):
        raise NotImplementedError("Timer.autorange is not supported (as in PyTorch): "
                                  "use blocked_autorange")

    def _estimate_block_size(self, min_run_time: float) -> int:
        """Runs per block: grow 10x until the timer's overhead is < 0.01% of a block
        and a block takes at least min_run_time / 1000 (or alone exceeds min_run_time)."""
        with _ThreadCap(self._task_spec.num_threads):
            overhead = float(np.median([self._timer.timeit(0) for _ in range(5)]))
            number = 1
            while True:
                taken = self._timeit(number)
                if overhead / taken <= 1e-4 and taken >= min_run_time / 1000:
                    return number
                if taken > min_run_time or number * 10 > 2 ** 31:
                    return number
                number *= 10

    def _measure(self, number: int, stop: Callable[[list[float]], bool], min_run_time: float,
                 max_run_time: float | None, callback) -> list[float]:
        """Time blocks of `number` runs until min_run_time has passed and `stop` agrees
        (or max_run_time has passed)."""
        times: list[float] = []
        total = 0.0
        with _ThreadCap(self._task_spec.num_threads):
            while True:
                spent = self._timeit(number)
                times.append(spent)
                total += spent
                if callback is not None:
                    callback(number, spent)
                if total >= min_run_time and stop(times):
                    return times
                if max_run_time is not None and total > max_run_time:
                    return times

    def blocked_autorange(self, callback: Callable[[int, float], None] | None = None,
                          min_run_time: float = 0.2) -> Measurement:
        """Blocks of a fixed size until at least min_run_time seconds were timed."""
        number = self._estimate_block_size(min_run_time)
        times = self._measure(number, lambda times: True, min_run_time, None, callback)
        return Measurement(number, times, self._task_spec)

    def adaptive_autorange(self, threshold: float = 0.1, *, min_run_time: float = 0.01,
                           max_run_time: float = 10.0,
                           callback: Callable[[int, float], None] | None = None) -> Measurement:
        """Blocks until IQR / median < threshold (with more than 3 blocks) or
        max_run_time seconds have passed."""
        number = self._estimate_block_size(min_run_time=0.05)

        def confident(times: list[float]) -> bool:
            return len(times) > 3 and \
                Measurement(number, times, self._task_spec).meets_confidence(threshold)

        times = self._measure(number, confident, min_run_time, max_run_time, callback)
        return Measurement(number, times, self._task_spec)

    def collect_callgrind(self, *args, **kwargs):
        raise NotImplementedError("Timer.collect_callgrind: ember has no Valgrind support")


def _dedent(code: str) -> str:
    import textwrap
    return textwrap.dedent(code).strip() or "pass"
