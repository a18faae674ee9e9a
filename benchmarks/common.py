"""Shared benchmark harness on ember.utils.benchmark: time callables, compare ember with
numpy / torch / other tools, report.

    from benchmarks.common import Bench, bench_args
    args = bench_args("eager_train")            # --quick, --no-compile, --repeats N
    b = Bench("eager_train", args)
    b.row("mlp step", ember=lambda: ..., torch=lambda: ..., torch_compile=lambda: ...)
    b.finish()     # rich table on stdout; with --save, JSON in benchmarks/results/eager_train.json

Every repeated timing goes through `ember.utils.benchmark.Timer` (one Timer per callable,
statement "fn()"), and its statistics come from the Timer's `Measurement`. By default a
row runs `warmup` untimed calls of each callable, then `repeats` *rounds*; each round
times one block of `inner` calls of every callable in turn (interleaved, so load on a
shared machine hits every column alike). The reported time is the median of the rounds
(quartiles by linear interpolation, as Measurement computes them). With
`--min-run-time S` each callable is instead timed alone by `Timer.blocked_autorange(S)`
(block size chosen by the Timer; not interleaved). `--compare` also prints the rows as
an `ember.utils.benchmark.Compare` table (one column per library).

CUDA: the clock synchronizes the device before every reading, as PyTorch's Timer does
(ember's device through ember's Timer clock; torch's through torch.cuda.synchronize when
torch has CUDA), so queued GPU work is charged to the block that issued it.

Ratios are other / ember, so > 1 means ember is faster (e.g. "torch: 0.5x" means
torch eager takes half of ember's time). Timing is never asserted anywhere.
One-shot times (compile, first call, a cold process) are not repeatable statements and
stay `time.perf_counter` differences in the scripts that report them.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

# a script run as `python benchmarks/x.py` has this folder first on sys.path, where
# benchmarks/cuda.py would stand in for NVIDIA's `cuda` package (ember imports
# cuda.bindings lazily, at its first CUDA call, so dropping the folder here is in time)
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from ember.utils.benchmark import Compare, Measurement, Timer
from ember.utils.benchmark import timer as ember_clock

RESULTS = Path(__file__).resolve().parent / "results"
BASELINES = ("numpy", "torch", "torch_compile")


def bench_args(name: str, argv=None, parser: argparse.ArgumentParser | None = None
               ) -> argparse.Namespace:
    """The common options; `parser` may carry a script's own options first."""
    p = parser or argparse.ArgumentParser(description=f"benchmark: {name}")
    add_common_options(p, name)
    return finish_args(p.parse_args(argv))


def add_common_options(p: argparse.ArgumentParser, name: str) -> None:
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--quick", action="store_true", help="warmup 1, repeats 5")
    p.add_argument("--smoke", action="store_true",
                   help="warmup 0, repeats 2, smallest rows only: proves the script runs "
                        "(numbers mean nothing)")
    p.add_argument("--min-run-time", type=float, default=0.0, metavar="S",
                   help="time each callable alone with Timer.blocked_autorange(S) instead "
                        "of interleaved rounds")
    p.add_argument("--compare", action="store_true",
                   help="also print the rows as an ember.utils.benchmark.Compare table")
    p.add_argument("--no-compile", action="store_true",
                   help="skip torch.compile (its first call can take tens of seconds)")
    p.add_argument("--save", "--write", dest="save", action="store_true",
                   help=f"write benchmarks/results/{name}.json (without it nothing is written: "
                        "the committed results change only when asked)")
    p.add_argument("--no-json", action="store_true", help="do not write results JSON "
                   "(the default; kept for old command lines)")


def finish_args(args: argparse.Namespace) -> argparse.Namespace:
    if args.smoke:
        args.warmup, args.repeats, args.quick = 0, 2, True
        args.no_compile = True              # torch.compile's first call takes tens of seconds
    elif args.quick:
        args.warmup, args.repeats = 1, 5
    return args


# --- timing on ember.utils.benchmark ---------------------------------------------------------
_TORCH_CUDA: list[bool | None] = [None]


def torch_clock() -> float:
    """PyTorch's Timer clock: perf_counter after torch.cuda.synchronize() when torch has
    CUDA (torch is looked up, never imported: the harness runs without it)."""
    if _TORCH_CUDA[0] is None:
        torch = sys.modules.get("torch")
        if torch is None:                   # not imported yet: ask again next time
            return time.perf_counter()
        _TORCH_CUDA[0] = bool(torch.cuda.is_available())
    if _TORCH_CUDA[0]:
        sys.modules["torch"].cuda.synchronize()
    return time.perf_counter()


def clock_for(key: str) -> Callable[[], float]:
    """The clock that drains the device `key`'s library queues work on: torch's columns
    (torch, torch_compile, torch.compile, ...) sync torch, every other one ember."""
    return torch_clock if key.startswith("torch") else ember_clock


def make_timer(fn: Callable[[], object], key: str = "ember", label: str | None = None,
               sub_label: str | None = None, clock: Callable[[], float] | None = None) -> Timer:
    """A Timer of `fn()`, described by its column `key`, on ember's current thread count
    (so the Timer's thread cap changes nothing the script set up)."""
    from ember import get_num_threads
    return Timer("fn()", globals={"fn": fn}, timer=clock or clock_for(key), label=label,
                 sub_label=sub_label, description=key, num_threads=get_num_threads())


def timed_block(t: Timer, number: int) -> float:
    """Seconds for one block of `number` runs of t's statement, with no warm-up runs.

    Timer.timeit(number) runs two untimed warm-up calls first, which would triple the
    cost of an interleaved round of single calls; this is the block Timer.timeit and
    blocked_autorange time (Timer._timeit, as in PyTorch's Timer)."""
    return t._timeit(number)


def interleaved(fns: dict[str, Callable[[], object]], warmup: int, repeats: int,
                inner: int = 1, label: str | None = None, sub_label: str | None = None,
                settle_s: float = 0.0, min_run_time: float = 0.0,
                clocks: dict[str, Callable[[], float]] | None = None
                ) -> dict[str, Measurement]:
    """{key: Measurement} of each callable's seconds per call.

    `warmup` untimed calls of each, then `repeats` rounds; each round times one block of
    `inner` calls of every callable in turn, sleeping `settle_s` before each block (lets
    other libraries' spinning worker threads go idle). With min_run_time > 0 each
    callable is timed alone by Timer.blocked_autorange(min_run_time) instead."""
    timers = {k: make_timer(fn, k, label, sub_label, (clocks or {}).get(k))
              for k, fn in fns.items()}
    if min_run_time > 0:
        return {k: t.blocked_autorange(min_run_time=min_run_time) for k, t in timers.items()}
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    raw: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(max(repeats, 1)):
        for k, t in timers.items():
            if settle_s:
                time.sleep(settle_s)
            raw[k].append(timed_block(t, inner))
    return {k: Measurement(inner, raw[k], timers[k]._task_spec) for k in fns}


def stats(m: Measurement, warmup: int | None = None) -> dict:
    """A Measurement as the results JSON records it (seconds per call)."""
    times = np.asarray(m.times)
    return {"median_s": m.median, "q1_s": float(np.quantile(times, 0.25)),
            "q3_s": float(np.quantile(times, 0.75)), "min_s": float(times.min()),
            "repeats": len(m.raw_times), "warmup": warmup, "number": m.number_per_run}


def measure(fn: Callable[[], object], warmup: int = 3, repeats: int = 20, inner: int = 1,
            key: str = "ember", min_run_time: float = 0.0) -> dict:
    """Seconds per call of one callable (Timer-timed): median, quartiles, min."""
    m = interleaved({key: fn}, warmup, repeats, inner, min_run_time=min_run_time)[key]
    return stats(m, warmup)


def _fmt(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


# A pause before each timed block: PyTorch's OpenMP workers and onnxruntime's intra-op
# threads spin for a while after a call, and on 2 cores that takes one from whatever runs
# next (measured: ember's transformer layer 45% slower right after a torch call,
# unaffected after 10 ms; the resnet18 artifact 81 ms right after onnxruntime, 62 ms alone).
SETTLE_S = 0.01


def timed_row(label: str, fns: dict[str, Callable[[], object]], args: argparse.Namespace,
              repeats: int | None = None, inner: int = 1, settle_s: float = SETTLE_S,
              base: str = "ember", measurements: list | None = None,
              clocks: dict[str, Callable[[], float]] | None = None) -> dict:
    """One results row: every callable timed interleaved (see `interleaved`), ratios
    other / `base`. Each callable's first call is timed on its own (it compiles, for
    ember.compile and torch.compile) and counts toward the warmup. A failing baseline
    is recorded as an error and dropped; the base failing is an error of the benchmark.
    The Measurements are appended to `measurements` (for a Compare table); `clocks`
    replaces a column's clock (e.g. time.process_time: CPU seconds per call)."""
    row: dict = {"name": label, "first_call_s": {}}
    live = {}
    for key, fn in fns.items():
        try:
            t0 = time.perf_counter()
            fn()
            row["first_call_s"][key] = time.perf_counter() - t0
            live[key] = fn
        except Exception as e:      # noqa: BLE001 (a baseline failing must not hide others)
            if key == base:
                raise
            row[key] = {"error": f"{type(e).__name__}: {e}"[:200]}
    found = interleaved(live, max(0, args.warmup - 1), repeats or args.repeats, inner,
                        label=getattr(args, "bench_name", None), sub_label=label,
                        settle_s=settle_s, min_run_time=getattr(args, "min_run_time", 0.0),
                        clocks=clocks)
    for key, m in found.items():
        row[key] = stats(m, args.warmup)
    if measurements is not None:
        measurements.extend(found.values())
    b = row[base]
    others = [k for k in found if k != base]
    row["ratios"] = {k: row[k]["median_s"] / b["median_s"] for k in others}
    row["ratios_best"] = {k: row[k]["min_s"] / b["min_s"] for k in others}
    return row


class Bench:
    def __init__(self, name: str, args: argparse.Namespace | None = None):
        self.name = name
        self.args = args or bench_args(name, [])
        self.args.bench_name = name
        self.rows: list[dict] = []
        self.skipped: list[dict] = []       # rows that could not run, with the reason
        self.measurements: list[Measurement] = []      # for --compare

    def row(self, label: str, ember: Callable, repeats: int | None = None, inner: int = 1,
            settle_s: float = 0.0, **baselines: Callable | None) -> dict:
        """Time ember and each given baseline (numpy=, torch=, torch_compile=, or any
        other tool's column) interleaved."""
        if self.args.no_compile:
            baselines.pop("torch_compile", None)
        fns = {"ember": ember, **{k: f for k, f in baselines.items() if f is not None}}
        result = timed_row(label, fns, self.args, repeats, inner, settle_s,
                           measurements=self.measurements)
        self.rows.append(result)
        return result

    def compare(self) -> Compare:
        """The rows as ember.utils.benchmark.Compare: one row per benchmark, one column
        per library."""
        return Compare(self.measurements)

    def table(self):
        from rich.table import Table
        from rich.markup import escape
        t = Table(title=escape(f"{self.name} (median [q1-q3]; ratio = other/ember, "
                               ">1: ember faster)"))
        t.add_column("benchmark")
        t.add_column("ember", justify="right")
        columns = self.columns()
        for key in columns:
            t.add_column(key, justify="right")
            t.add_column(f"{key}/ember", justify="right")
        for r in self.rows:
            cells = [r["name"], self._cell(r["ember"])]
            for key in columns:
                cells.append(self._cell(r[key]) if key in r else "-")
                ratio = r.get("ratios", {}).get(key)
                cells.append(f"{ratio:.3g}x" if ratio is not None else "-")
            t.add_row(*cells)
        return t

    def columns(self) -> list[str]:
        """The baseline columns present in any row: numpy, torch, torch_compile first,
        then other tools in the order they appear."""
        seen = [k for r in self.rows for k, v in r.items()
                if k != "ember" and isinstance(v, dict) and ("median_s" in v or "error" in v)]
        extra = [k for k in dict.fromkeys(seen) if k not in BASELINES]
        return [k for k in BASELINES if k in seen] + extra

    @staticmethod
    def _cell(m: dict) -> str:
        if "error" in m:
            return "error"
        return f"{_fmt(m['median_s'])} [{_fmt(m['q1_s'])}-{_fmt(m['q3_s'])}]"

    def finish(self) -> Path | None:
        from rich.console import Console
        Console().print(self.table())
        if getattr(self.args, "compare", False) and self.measurements:
            self.compare().print()
        if self.args.no_json or not getattr(self.args, "save", False):
            return None
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"{self.name}.json"
        meta = {"python": platform.python_version(), "machine": platform.machine(),
                "processor": platform.processor(), "cpus": os.cpu_count(),
                "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "warmup": self.args.warmup, "repeats": self.args.repeats,
                "timing": timing_note(self.args)}
        try:
            import numpy
            meta["numpy"] = numpy.__version__
            import torch
            meta["torch"] = torch.__version__
            meta["torch_threads"] = torch.get_num_threads()
        except ImportError:
            pass
        path.write_text(json.dumps({"benchmark": self.name, "meta": meta, "rows": self.rows,
                                    "skipped": self.skipped},
                                   indent=2) + "\n")
        print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
        return path


def timing_note(args: argparse.Namespace) -> str:
    """How the rows were timed, for the results JSON's meta."""
    if getattr(args, "min_run_time", 0.0) > 0:
        return (f"ember.utils.benchmark.Timer.blocked_autorange(min_run_time="
                f"{args.min_run_time}) per callable; median of blocks")
    return ("ember.utils.benchmark.Timer blocks, interleaved rounds (one block of each "
            "callable per round); median of rounds")


def torch_resnet18(num_classes: int = 1000):
    """torchvision's resnet18 (BasicBlock, [2, 2, 2, 2]) under ember's module names
    (ember's resnet18 uses torchvision's), so ember's state_dict loads into it by name.
    torch is imported here: the harness itself runs without it."""
    return _torch_resnet("basic", (2, 2, 2, 2), num_classes)


def torch_resnet50(num_classes: int = 1000):
    """torchvision's resnet50 (Bottleneck, [3, 4, 6, 3], the stride on the 3x3 conv) under
    ember's module names, as torch_resnet18."""
    return _torch_resnet("bottleneck", (3, 4, 6, 3), num_classes)


def _torch_resnet(kind: str, layers, num_classes: int):
    import torch
    nn = torch.nn

    def downsample(cin, cout, stride):
        return None if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    class Block(nn.Module):
        expansion = 1

        def __init__(self, cin, width, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, width, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(width)
            self.downsample = downsample(cin, width, stride)

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(out)) + identity)

    class Bottleneck(nn.Module):
        expansion = 4

        def __init__(self, cin, width, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(width)
            self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(width * 4)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = downsample(cin, width * 4, stride)

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            return self.relu(self.bn3(self.conv3(out)) + identity)

    block = Block if kind == "basic" else Bottleneck

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            cin = 64
            for i, (width, count) in enumerate(zip((64, 128, 256, 512), layers)):
                stride = 1 if i == 0 else 2
                blocks = [block(cin, width, stride)]
                cin = width * block.expansion
                blocks += [block(cin, width, 1) for _ in range(1, count)]
                setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(cin, num_classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))
    return ResNet()
