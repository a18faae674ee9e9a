"""Host-side seconds of the first two calls of `compile_train_step(resnet18,
CrossEntropyLoss, SGD(momentum=0.9), backend="triton")` without a GPU: one plan (the
momentum buffers created as -0.0 before step 1, compile_train_rules.py) against the
two-plan path (a first-step plan, then a second compile at call 2 once the buffers exist).

Each row is a fresh process from benchmarks/cuda_compile_host.py (its emulated device:
real sm_90 cubins, launches that do nothing), cold (empty caches) then warm (a second
process over them), with a second call timed after the first. Rounds interleave the two
paths; the table gives medians of wall seconds and the main thread's CPU seconds, and the
CPU seconds of the compile workers over both calls (on a loaded machine the cold wall
time follows the load; the CPU seconds and cubin counts are what compare).

    python benchmarks/sgd_first_step_host.py [--batch 64] [--rounds 1] [--workers N]
        [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cuda_compile_host as host  # noqa: E402

_FIRST = "            step(x, y)\n            stats = step.stats\n"
_BUILT = ('            step = ember.compile_train_step(model, loss_fn, opt, '
          'backend="triton")\n')
_TWO_PLANS = _BUILT + """            if os.environ.get("SGD_TWO_PLANS"):
                from ember.compiler import compile_train_rules as R
                r = step.rule
                step.rule = R.OptimizerRule(r.state_keys, r.shared_keys, r.init_state, r.update)
"""
_SECOND = _FIRST + """            t2, c2 = time.perf_counter(), time.thread_time()
            step(x, y)
            Path(os.environ["SGD_CALL2_OUT"]).write_text(json.dumps(
                {"wall": time.perf_counter() - t2, "cpu": time.thread_time() - c2,
                 "plans": len(step.plans)}))
"""


def _child_source() -> str:
    if _FIRST not in host.CHILD or _BUILT not in host.CHILD:
        raise RuntimeError("benchmarks/cuda_compile_host.py's child changed: update "
                           "sgd_first_step_host.py's hooks")
    return host.CHILD.replace(_BUILT, _TWO_PLANS).replace(_FIRST, _SECOND)


def _row(batch: int, cache: str, workers, two_plans: bool) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        path = out.name
    os.environ["SGD_CALL2_OUT"] = path
    if two_plans:
        os.environ["SGD_TWO_PLANS"] = "1"
    else:
        os.environ.pop("SGD_TWO_PLANS", None)
    try:
        first = host.run_child("resnet18", batch, "step", cache, workers)
        with open(path) as f:
            second = json.load(f)
    finally:
        os.unlink(path)
    return {"call1_wall": first["total"] - second["wall"],
            "call1_cpu": first["cpu"] - second["cpu"],
            "call2_wall": second["wall"], "call2_cpu": second["cpu"],
            "plans": second["plans"], "cubins": first["cubin_files"],
            "workers_cpu": first["children_cpu"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    os.environ.setdefault("EMBER_TRITON_LITERAL_SIZES", "1")     # ember's default
    host.CHILD = _child_source()
    paths = {"one plan": False, "two plans": True}
    rows: dict = {(p, s): [] for p in paths for s in ("cold", "warm")}
    for _ in range(args.rounds):
        for name, two in paths.items():
            with tempfile.TemporaryDirectory() as cache:
                rows[(name, "cold")].append(_row(args.batch, cache, args.workers, two))
                rows[(name, "warm")].append(_row(args.batch, cache, args.workers, two))
    print("resnet18 training step, batch", args.batch, "- seconds: wall (main thread CPU)")
    print(f"{'path':<18}{'call 1':>18}{'call 2':>18}{'plans':>7}{'cubins':>8}"
          f"{'workers CPU s':>15}")
    table = {}
    for (name, state), found in rows.items():
        med = {k: statistics.median(r[k] for r in found) for k in found[0]}
        table[f"{name} {state}"] = med
        print(f"{name + ' ' + state:<18}"
              f"{med['call1_wall']:>9.2f} ({med['call1_cpu']:.2f})"
              f"{med['call2_wall']:>10.2f} ({med['call2_cpu']:.2f})"
              f"{int(med['plans']):>7}{int(med['cubins']):>8}{med['workers_cpu']:>15.1f}")
    print(f"load {os.getloadavg()}, {os.cpu_count()} CPUs, median of {args.rounds}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(table, f, indent=1)


if __name__ == "__main__":
    main()
