"""Converted (int8) models: the AOT artifact (the lite runtime) against the in-process
converted model, and, on AMX hosts, the artifact as packaged before the per-shape kernel
choice (every conv on AMX tiles: EMBER_QGEMM=amx while packaging).

    [EMBER_NUM_THREADS=N] python3 benchmarks/quant_aot.py [--models small_cnn,resnet18,mobilenet]
                                                          [--rounds 5] [--batch B]

Models are tools/qprofile.py's (random weights, seed 0, x86 qconfig mapping, two
calibration batches): small_cnn at batch 64 (1x28x28), resnet18 at batch 8 (224x224),
mobilenet (benchmarks/quant.py's mobilenet-style model) at batch 8 (112x112). Each row is
timed in interleaved rounds (in-process, artifact, artifact all-AMX, ...), each round the
median of 7 batches of calls (benchmarks/quant.py's time_calls); the table gives the
median over rounds of the wall and the process-CPU milliseconds per call. Ratios:
in-process / artifact (> 1: the artifact is faster). Prints only; timing is never
asserted; nothing is written.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ember  # noqa: E402
from benchmarks.quant import time_calls  # noqa: E402
from tools.qprofile import converted  # noqa: E402

BATCH = {"small_cnn": 64, "resnet18": 8, "mobilenet": 8}
SECONDS = {"small_cnn": 0.3, "resnet18": 1.5, "mobilenet": 0.8}


def package(model, x, path: Path, all_amx: bool):
    """The artifact of `model`, loaded; all_amx: every conv on AMX tiles (no choice)."""
    old = os.environ.get("EMBER_QGEMM")
    if all_amx:
        os.environ["EMBER_QGEMM"] = "amx"
    try:
        with ember.no_grad():
            ember.aot.compile_and_package(ember.export(model, (x,)), path)
    finally:
        if all_amx:
            if old is None:
                os.environ.pop("EMBER_QGEMM")
            else:
                os.environ["EMBER_QGEMM"] = old
    return ember.aot.load_package(path)


def kernels(run) -> str:
    configs = [d["config"].split("_")[0] for d in run.lite.plan["steps"]
               if d.get("gemm") == "conv"]
    return " ".join(f"{c}x{configs.count(c)}" for c in sorted(set(configs)))


def bench(name: str, args, tmp: Path) -> None:
    model, x = converted(name, args.batch or BATCH[name])
    amx = ember.codegen.quantized.gemm_config() is not None and \
        ember.codegen.quantized.gemm_config().name == "amx"
    with ember.no_grad():
        model(x)
        model(x)          # eager mode's per-shape choice made (timed or read from disk)
    rows = {"in-process": lambda: model(x)}
    art = package(model, x, tmp / f"{name}.ember", False)
    rows["artifact"] = lambda: art(x)
    print(f"{name}: artifact conv steps {kernels(art)}", flush=True)
    if amx:
        old = package(model, x, tmp / f"{name}-amx.ember", True)
        rows["artifact, all AMX"] = lambda: old(x)
        print(f"{name}: all-AMX artifact conv steps {kernels(old)}", flush=True)
    with ember.no_grad():
        for label, fn in rows.items():
            if label != "in-process":
                assert (fn().numpy() == rows["in-process"]().numpy()).all(), label
    got = {label: [] for label in rows}
    for _ in range(args.rounds):
        for label, fn in rows.items():
            got[label].append(time_calls(fn, SECONDS[name]))
    med = {label: {k: statistics.median(r[k] for r in runs) for k in ("wall_ms", "cpu_ms")}
           for label, runs in got.items()}
    base = med["in-process"]
    for label, m in med.items():
        print(f"  {label:20s} wall {m['wall_ms']:8.3f} ms  cpu {m['cpu_ms']:8.3f} ms  "
              f"in-process/this wall {base['wall_ms'] / m['wall_ms']:.2f}x "
              f"cpu {base['cpu_ms'] / m['cpu_ms']:.2f}x", flush=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="small_cnn,resnet18")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batch", type=int, default=None)
    args = p.parse_args(argv)
    threads = os.environ.get("EMBER_NUM_THREADS", "all cores")
    print(f"load {os.getloadavg()[0]:.1f}; threads {threads}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            bench(name, args, Path(tmp))
    print(f"load {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
