"""A/B of environment switches on one compiled CUDA training step: each arm runs
benchmarks/cuda_train_step.py in its own process (the switches are read when the step
compiles) with that arm's environment, the arms interleaved over --rounds rounds, and
the table gives each arm's median ember compiled ms a step, the median torch eager ms
of the same processes, and their ratio.

    python benchmarks/cuda_train_step_ab.py [--rounds 3] [--arm NAME=VAR=VALUE,VAR=VALUE]
        [--write | --out PATH] [-- cuda_train_step.py arguments]

Without --arm the arms are the resnet18 step's kernel switches (docs/cuda.md):
`old` (EMBER_WGRAD_NCHW=always: NCHW copies for every float32 weight gradient ember's
GEMM reads so; EMBER_SPLIT_FINAL_FORWARD=1: split reductions' final phase walks forward),
`wgrad` (only the weight-gradient choice new), `new` (the defaults) and `new_w8`
(EMBER_SPLIT_COLUMN_WARPS=8). The default step arguments are `--model resnet18 --tf32
--size 224 --skip-eager --steps 30`. --write saves
benchmarks/results/cuda_train_step_ab_<gpu>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
ARMS = {
    "old": {"EMBER_WGRAD_NCHW": "always", "EMBER_SPLIT_FINAL_FORWARD": "1"},
    "wgrad": {"EMBER_SPLIT_FINAL_FORWARD": "1"},
    "new": {},
    "new_w8": {"EMBER_SPLIT_COLUMN_WARPS": "8"},
}
STEP_ARGS = ["--model", "resnet18", "--tf32", "--size", "224", "--skip-eager", "--steps", "30"]
_ROW = re.compile(r"^(ember_compiled_ms|torch_eager_ms|ember_compiled_first_call_s|GPU): (.*)$")


def parse_arm(text: str) -> tuple[str, dict]:
    name, _, assignments = text.partition("=")
    env = dict(a.split("=", 1) for a in assignments.split(",") if "=" in a)
    return name, env


def run_arm(env: dict, step_args: list[str]) -> dict:
    """One cuda_train_step.py process under `env` (added to this environment)."""
    full = {**os.environ, **env}
    done = subprocess.run([sys.executable, str(_HERE / "cuda_train_step.py"), *step_args],
                          capture_output=True, text=True, env=full)
    if done.returncode != 0:
        raise SystemExit(f"cuda_train_step.py failed under {env}:\n{done.stderr[-3000:]}")
    rows = {}
    for line in done.stdout.splitlines():
        found = _ROW.match(line.strip())
        if found:
            key, value = found.groups()
            rows[key] = value if key == "GPU" else float(value)
    return rows


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    step_args = STEP_ARGS
    if "--" in argv:
        cut = argv.index("--")
        argv, step_args = argv[:cut], argv[cut + 1:]
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--arm", action="append", default=[], metavar="NAME=VAR=VALUE,...")
    p.add_argument("--write", action="store_true")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    arms = dict(parse_arm(a) for a in args.arm) if args.arm else ARMS
    got: dict[str, list[dict]] = {name: [] for name in arms}
    gpu = "?"
    for r in range(args.rounds):
        for name, env in arms.items():
            rows = run_arm(env, step_args)
            gpu = rows.get("GPU", gpu)
            got[name].append(rows)
            print(f"round {r + 1} {name:>8}: ember {rows.get('ember_compiled_ms', 0):.3f} ms, "
                  f"torch eager {rows.get('torch_eager_ms', 0):.3f} ms", flush=True)
    print(f"\nGPU: {gpu}; {' '.join(step_args)}; medians of {args.rounds} rounds")
    print(f"{'arm':>8}  {'ember ms':>9}  {'torch ms':>9}  {'torch/ember':>11}  env")
    table = {}
    for name, runs in got.items():
        ember_ms = statistics.median(r["ember_compiled_ms"] for r in runs)
        torch_ms = statistics.median(r["torch_eager_ms"] for r in runs)
        table[name] = {"env": arms[name], "ember_compiled_ms": ember_ms,
                       "torch_eager_ms": torch_ms, "runs": runs}
        print(f"{name:>8}  {ember_ms:9.3f}  {torch_ms:9.3f}  {torch_ms / ember_ms:11.3f}  "
              f"{arms[name]}")
    if args.write or args.out:
        tag = "h200" if "H200" in gpu else "h100" if "H100" in gpu else "gpu"
        out = args.out or _HERE / "results" / f"cuda_train_step_ab_{tag}.json"
        out.write_text(json.dumps({"benchmark": "cuda_train_step_ab", "gpu": gpu,
                                   "step_args": step_args, "arms": table}, indent=2) + "\n")
        print("wrote", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
