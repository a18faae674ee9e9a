"""The mobilenet-style int8 model (benchmarks/quant.py's builder, batch 8, 112x112), ember's
converted model against torch.ao's (x86 backend), each library alone in its own process:
torch's OpenMP workers spin after a parallel region and take the cores from whatever runs
next in the same process, so interleaving the two in one process measures that, not them.

    python3 benchmarks/quant_mobilenet.py [--threads N] [--rounds R] [--calls C] [--save]

Each round starts one process per library (ember first, then torch); a process builds
and converts the model from the same seed, warms up, and reports the median of C calls.
The table has the median over rounds per library, the ratio torch / ember (> 1: ember
faster) and the 1-minute load average before and after (the host is shared).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(lib: str, threads: int, calls: int) -> None:
    """Time one library's converted model; print its median milliseconds."""
    import warnings
    warnings.filterwarnings("ignore")
    sys.path.insert(0, str(ROOT))
    import numpy as np
    import torch
    import torch.ao.quantization as tq
    import torch.ao.quantization.quantize_fx as tqfx
    import ember
    import ember.ao.quantization as eq
    import ember.ao.quantization.quantize_fx as eqfx
    from benchmarks.quant import mobilenet_style, twins
    torch.backends.quantized.engine = "x86"
    torch.set_num_threads(threads)
    ember.set_num_threads(threads)
    rng = np.random.default_rng(0)
    t_model, e_model = twins(mobilenet_style, rng)
    x = rng.standard_normal((8, 3, 112, 112)).astype(np.float32)
    if lib == "torch":
        tx = torch.from_numpy(x)
        prepared = tqfx.prepare_fx(t_model, tq.get_default_qconfig_mapping("x86"), (tx,))
        prepared(tx)
        model, arg, ctx = tqfx.convert_fx(prepared), tx, torch.no_grad()
    else:
        ex = ember.tensor(x)
        prepared = eqfx.prepare_fx(e_model, eq.get_default_qconfig_mapping("x86"), (ex,))
        prepared(ex)
        model, arg, ctx = eqfx.convert_fx(prepared), ex, ember.no_grad()
    with ctx:
        for _ in range(5):
            model(arg)
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            model(arg)
            times.append(time.perf_counter() - start)
    print(json.dumps({"lib": lib, "median_ms": 1e3 * statistics.median(times)}))


def run_round(lib: str, args) -> float:
    out = subprocess.run([sys.executable, __file__, "--child", lib, "--threads",
                          str(args.threads), "--calls", str(args.calls)],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])["median_ms"]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--calls", type=int, default=30)
    p.add_argument("--save", "--write", dest="save", action="store_true",
                   help="write benchmarks/results/quant_mobilenet.json")
    p.add_argument("--child", choices=("ember", "torch"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.child, args.threads, args.calls)
        return
    load_before = os.getloadavg()[0]
    runs = {"ember": [], "torch": []}
    for _ in range(args.rounds):
        for lib in runs:
            runs[lib].append(run_round(lib, args))
    load_after = os.getloadavg()[0]
    medians = {lib: statistics.median(v) for lib, v in runs.items()}
    print(f"mobilenet-style int8, batch 8, 112x112, {args.threads} thread(s), "
          f"{args.rounds} rounds of {args.calls} calls; load {load_before:.1f} -> "
          f"{load_after:.1f}")
    print(f"{'library':10s} {'median ms':>10s}   rounds")
    for lib, v in runs.items():
        print(f"{lib:10s} {medians[lib]:10.2f}   " + " ".join(f"{t:.2f}" for t in v))
    print(f"torch.ao / ember: {medians['torch'] / medians['ember']:.2f}x")
    if args.save:
        path = ROOT / "benchmarks" / "results" / "quant_mobilenet.json"
        path.write_text(json.dumps({"threads": args.threads, "rounds": runs,
                                    "medians_ms": medians,
                                    "load": [load_before, load_after]}, indent=1))


if __name__ == "__main__":
    main()
