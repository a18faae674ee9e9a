"""Shared benchmark harness: time callables, compare ember with numpy / torch, report.

    from benchmarks.common import Bench, bench_args
    args = bench_args("eager_train")            # --quick, --no-compile, --repeats N
    b = Bench("eager_train", args)
    b.row("mlp step", ember=lambda: ..., torch=lambda: ..., torch_compile=lambda: ...)
    b.finish()     # rich table on stdout; with --save, JSON in benchmarks/results/eager_train.json

Each timing is the median (and quartiles) of `repeats` runs after `warmup` runs.
Ratios are other / ember, so > 1 means ember is faster (e.g. "torch: 0.5x" means
torch eager takes half of ember's time). Timing is never asserted anywhere.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

RESULTS = Path(__file__).resolve().parent / "results"
BASELINES = ("numpy", "torch", "torch_compile")


def bench_args(name: str, argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=f"benchmark: {name}")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--quick", action="store_true", help="warmup 1, repeats 5")
    p.add_argument("--no-compile", action="store_true",
                   help="skip torch.compile (its first call can take tens of seconds)")
    p.add_argument("--save", action="store_true",
                   help=f"write benchmarks/results/{name}.json (without it nothing is written: "
                        "the committed results change only when asked)")
    p.add_argument("--no-json", action="store_true", help="do not write results JSON "
                   "(the default; kept for old command lines)")
    args = p.parse_args(argv)
    if args.quick:
        args.warmup, args.repeats = 1, 5
    return args


def measure(fn: Callable[[], object], warmup: int = 3, repeats: int = 20) -> dict:
    """Seconds per call: median, quartiles, min, over `repeats` timed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    q = statistics.quantiles(times, n=4) if len(times) >= 2 else [times[0]] * 3
    return {"median_s": statistics.median(times), "q1_s": q[0], "q3_s": q[2],
            "min_s": times[0], "repeats": repeats, "warmup": warmup}


def _fmt(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


class Bench:
    def __init__(self, name: str, args: argparse.Namespace | None = None):
        self.name = name
        self.args = args or bench_args(name, [])
        self.rows: list[dict] = []
        self.skipped: list[dict] = []       # rows that could not run, with the reason

    def row(self, label: str, ember: Callable, **baselines: Callable | None) -> dict:
        """Time ember and each given baseline (numpy=, torch=, torch_compile=)."""
        a = self.args
        result = {"name": label, "ember": measure(ember, a.warmup, a.repeats)}
        for key in BASELINES:
            fn = baselines.get(key)
            if fn is None or (key == "torch_compile" and a.no_compile):
                continue
            try:
                result[key] = measure(fn, a.warmup, a.repeats)
            except Exception as e:  # a baseline failing must not hide the others
                result[key] = {"error": f"{type(e).__name__}: {e}"[:200]}
        e = result["ember"]["median_s"]
        result["ratios"] = {k: result[k]["median_s"] / e for k in BASELINES
                            if k in result and "median_s" in result[k]}
        self.rows.append(result)
        return result

    def table(self):
        from rich.table import Table
        t = Table(title=f"{self.name} (median [q1-q3]; ratio = other/ember, >1: ember faster)")
        t.add_column("benchmark")
        t.add_column("ember", justify="right")
        for key in BASELINES:
            if any(key in r for r in self.rows):
                t.add_column(key, justify="right")
                t.add_column(f"{key}/ember", justify="right")
        for r in self.rows:
            cells = [r["name"], self._cell(r["ember"])]
            for key in BASELINES:
                if any(key in row for row in self.rows):
                    cells.append(self._cell(r[key]) if key in r else "-")
                    ratio = r["ratios"].get(key)
                    cells.append(f"{ratio:.3g}x" if ratio is not None else "-")
            t.add_row(*cells)
        return t

    @staticmethod
    def _cell(m: dict) -> str:
        if "error" in m:
            return "error"
        return f"{_fmt(m['median_s'])} [{_fmt(m['q1_s'])}-{_fmt(m['q3_s'])}]"

    def finish(self) -> Path | None:
        from rich.console import Console
        Console().print(self.table())
        if self.args.no_json or not getattr(self.args, "save", False):
            return None
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"{self.name}.json"
        meta = {"python": platform.python_version(), "machine": platform.machine(),
                "processor": platform.processor(), "cpus": os.cpu_count(),
                "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "warmup": self.args.warmup, "repeats": self.args.repeats}
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


def torch_resnet18(num_classes: int = 1000):
    """torchvision's resnet18 (BasicBlock, [2, 2, 2, 2]) under ember's module names
    (ember's resnet18 uses torchvision's), so ember's state_dict loads into it by name.
    torch is imported here: the harness itself runs without it."""
    import torch
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.downsample = None if stride == 1 and cin == cout else nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(out)) + identity)

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            widths, cin = (64, 128, 256, 512), 64
            for i, width in enumerate(widths):
                stride = 1 if i == 0 else 2
                setattr(self, f"layer{i + 1}", nn.Sequential(Block(cin, width, stride),
                                                             Block(width, width, 1)))
                cin = width
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(512, num_classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))
    return ResNet()
