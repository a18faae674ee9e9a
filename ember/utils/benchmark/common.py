"""Measurement records for ember.utils.benchmark (torch.utils.benchmark's common module).

A `TaskSpec` says what was timed (statement, setup, labels, threads); a `Measurement`
holds the raw block times of one task and derives the statistics PyTorch reports:
median, mean, quartiles, IQR, significant figures and the high-variance warning.
Times are seconds per run: `raw_times[i] / number_per_run`.
Quantiles interpolate linearly between order statistics (numpy's default, as
torch.quantile does), so the numbers agree with PyTorch's for the same times.
"""
from __future__ import annotations

import dataclasses
import math
import textwrap
from typing import Any, Iterable

import numpy as np

IQR_WARN_THRESHOLD = 0.1          # IQR / median above this marks a measurement noisy
MAX_SIGNIFICANT_FIGURES = 4
MIN_CONFIDENCE_INTERVAL = 25e-9   # 25 ns: timer resolution, below it digits mean nothing

_UNITS = {-3: ("ns", 1e-9), -2: ("us", 1e-6), -1: ("ms", 1e-3)}
_UNIT_NAMES = {"ns": "nanoseconds", "us": "microseconds", "ms": "milliseconds", "s": "seconds"}


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """What one Timer measures; equal specs are merged by `Measurement.merge`."""
    stmt: str
    setup: str
    global_setup: str = ""
    label: str | None = None
    sub_label: str | None = None
    description: str | None = None
    env: str | None = None
    num_threads: int = 1

    @property
    def title(self) -> str:
        """label (or a one-line stmt), with ': sub_label' when there is one."""
        suffix = f": {self.sub_label}" if self.sub_label else ""
        if self.label is not None:
            return self.label + suffix
        if "\n" not in self.stmt:
            return self.stmt + suffix
        sub = f" ({self.sub_label})" if self.sub_label else ""
        return f"stmt:{sub}\n{textwrap.indent(self.stmt, '  ')}"

    def setup_str(self) -> str:
        if not self.setup or self.setup == "pass":
            return ""
        if "\n" in self.setup:
            return "setup:\n" + textwrap.indent(self.setup, "  ")
        return f"setup: {self.setup}"

    def summarize(self) -> str:
        """The header lines of a Measurement's repr; multi-line parts end with a blank line."""
        sections = [s for s in (self.title, self.description or "", self.setup_str()) if s]
        return "\n".join(s + "\n" if "\n" in s else s for s in sections)


def select_unit(t: float) -> tuple[str, float]:
    """The unit PyTorch prints `t` seconds in, and its scale in seconds."""
    exponent = int(math.log10(t) // 3) if t > 0 else -3
    return _UNITS.get(exponent, ("s", 1.0))


def unit_to_english(unit: str) -> str:
    return _UNIT_NAMES[unit]


def trim_sigfig(x: float, n: int) -> float:
    """Round `x` to `n` significant figures (as Compare's trimmed columns show it).

    Computed in float32, as PyTorch does (it rounds with float32 tensors), so large
    values print the same digits (1543000064, not 1543000000) as torch's tables."""
    x32 = np.float32(x)
    if x32 == 0:
        return 0.0
    magnitude = int(np.ceil(np.log10(np.abs(x32))))
    scale = 10.0 ** (magnitude - n)
    return float(np.round(x32 / np.float32(scale)) * np.float32(scale))


def leading_digits(x: float) -> int:
    """ceil(log10(x)) in float32 (PyTorch's Compare sizes columns with float32 tensors)."""
    return int(np.ceil(np.log10(np.float32(x))))


class Measurement:
    """The times of one task: `number_per_run` runs per block, one raw time per block."""

    def __init__(self, number_per_run: int, raw_times: list[float], task_spec: TaskSpec,
                 metadata: dict[Any, Any] | None = None):
        if not raw_times:
            raise ValueError("Measurement: raw_times must not be empty")
        self.number_per_run = number_per_run
        self.raw_times = list(raw_times)
        self.task_spec = task_spec
        self.metadata = metadata
        sorted_times = np.sort(np.asarray(self.times, dtype=np.float64))
        self._sorted_times = tuple(float(t) for t in sorted_times)
        self._median = float(np.quantile(sorted_times, 0.5))
        self._mean = float(sorted_times.mean())
        self._p25 = float(np.quantile(sorted_times, 0.25))
        self._p75 = float(np.quantile(sorted_times, 0.75))

    def __getattr__(self, name: str):
        # label, sub_label, description, stmt, setup, env, num_threads, title, ...
        if name.startswith("_") or name == "task_spec":
            raise AttributeError(name)
        try:
            return getattr(self.task_spec, name)
        except AttributeError:
            raise AttributeError(f"'Measurement' object has no attribute '{name}'") from None

    @property
    def times(self) -> list[float]:
        return [t / self.number_per_run for t in self.raw_times]

    @property
    def median(self) -> float:
        return self._median

    @property
    def mean(self) -> float:
        return self._mean

    @property
    def iqr(self) -> float:
        return self._p75 - self._p25

    @property
    def significant_figures(self) -> int:
        """Digits of the median that the spread of the middle half of the times supports.

        A 90% confidence interval of the mean of the interquartile times (1.645 sigma /
        sqrt(n)), floored at the timer's resolution; log10(median / interval) digits,
        clamped to [1, 4]."""
        # float32 throughout, as PyTorch computes it, so borderline cases agree
        n = len(self._sorted_times)
        middle = np.asarray(self._sorted_times[n // 4:int(math.ceil(3 * n / 4))], np.float32)
        spread = float(middle.std(dtype=np.float32))
        interval = max(1.645 * spread / float(np.sqrt(np.float32(len(middle)))),
                       MIN_CONFIDENCE_INTERVAL)
        digits = int(np.floor(np.log10(np.float32(self._median / interval))))
        return min(max(digits, 1), MAX_SIGNIFICANT_FIGURES)

    @property
    def has_warnings(self) -> bool:
        return bool(self._warnings())

    def meets_confidence(self, threshold: float = IQR_WARN_THRESHOLD) -> bool:
        return self.iqr / self.median < threshold

    @property
    def env(self) -> str | None:
        return self.task_spec.env

    @property
    def as_row_name(self) -> str:
        return self.sub_label or self.stmt or "[Unknown]"

    def _warnings(self) -> list[str]:
        if self.median > 0 and self.iqr / self.median > IQR_WARN_THRESHOLD:
            percent = self.iqr / self.median * 100
            return [f"  WARNING: Interquartile range is {percent:.1f}% of the median "
                    "measurement.\n           This could indicate system fluctuation."]
        return []

    def __repr__(self) -> str:
        n = len(self._sorted_times)
        unit, scale = select_unit(self._median)
        lines = [object.__repr__(self), self.task_spec.summarize()]
        lines.append(f"  {'Median: ' if n > 1 else ''}{self._median / scale:.2f} {unit}")
        if n >= 4:
            lines.append(f"  IQR:    {self.iqr / scale:.2f} {unit} "
                         f"({self._p25 / scale:.2f} to {self._p75 / scale:.2f})")
        per = "per measurement," if n > 1 else ","
        threads = self.num_threads
        lines.append(f"  {n} measurement{'s' if n > 1 else ''}, {self.number_per_run} runs "
                     f"{per} {threads} thread{'s' if threads > 1 else ''}")
        lines.extend(self._warnings())
        return "\n".join(lines).strip()

    @staticmethod
    def merge(measurements: Iterable[Measurement]) -> list[Measurement]:
        """One Measurement per distinct TaskSpec, pooling the per-run times of all of them.

        The pooled times come from blocks of different sizes, so each becomes one
        'run' (number_per_run=1), as PyTorch does."""
        grouped: dict[TaskSpec, list[float]] = {}
        for m in measurements:
            grouped.setdefault(m.task_spec, []).extend(m.times)
        return [Measurement(1, times, spec) for spec, times in grouped.items()]
