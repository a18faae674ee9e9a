"""A model of a cold first call's wall time on a host of P cores, from one measured call's
compile schedule (the main thread's CPU seconds and each compile's CPU seconds), so that
a change measured on a small loaded machine can be judged for the GPU machine's 16 cores.

Record a call with the stage timer writing JSON, e.g.

    EMBER_COMPILE_TIMES=/tmp/step.json python benchmarks/cuda_compile_host.py \\
        --only step --literal-sizes --workers 2
    python benchmarks/cuda_compile_model.py /tmp/step.json --workers 16

(each child appends a line to the file; the first call with a compile schedule is
modelled, `--line N` picks another). The model:

- the main thread runs its measured CPU seconds, times `--main-scale` (the target host's
  core against this one's);
- each compile is handed over when the modelled main thread reaches the CPU seconds it
  had spent at that hand-over in the run (device_compile records them), and a worker runs
  it for its measured CPU seconds times `--worker-scale` (or those of `--costs`); a free
  worker takes the waiting job `--order` says; the pool's workers are ready `--warm-up`
  seconds after it opened (at the call's start where the stage timer noted so, else at
  the first hand-over);
- where the main thread collected a batch (compile_many), it waits for the last of that
  batch's compiles.

The model's wall time is the main thread's time plus those waits; it leaves out what only
a GPU does (module loads, cuDNN plan builds, conv timings, launches), which `--gpu`
adds as a constant. It also prints the two bounds: the main thread alone, and the
longest single compile and all compiles over P workers after the first hand-over.
"""
from __future__ import annotations

import argparse
import heapq
import json


def schedule_of(row: dict) -> list[dict]:
    return row.get("records", {}).get("compile schedule", [])


def model(row: dict, workers: int, main_scale: float, worker_scale: float,
          warm_up: float, order: str = "fifo", costs: dict | None = None,
          opens: str = "recorded") -> dict:
    """Modelled seconds of the call (see the module docstring)."""
    jobs = sorted(schedule_of(row), key=lambda r: r["submitted_cpu"])
    costs = costs or {}
    cost = {id(j): costs.get(j.get("key"), j["cpu"]) * worker_scale for j in jobs}
    began_cpu, main_cpu = row["began_cpu"], row["main_cpu"]
    opened = {"start": 1, "hand-over": 0}.get(
        opens, row.get("notes", {}).get("compile workers opened before the trace", 0))
    free: list[float] = []                      # when each worker is next free (heap)
    delay, ends, pending = 0.0, {}, list(jobs)
    for wait_cpu in sorted({r["collected_cpu"] for r in jobs}):
        arrivals = []
        while pending and pending[0]["submitted_cpu"] <= wait_cpu:
            job = pending.pop(0)
            arrivals.append(((job["submitted_cpu"] - began_cpu) * main_scale + delay, job))
        if not free and arrivals:               # the pool opens at the call's start or at
            start = 0.0 if opened else arrivals[0][0]          # its first hand-over
            free = [start + warm_up] * workers
        _run(arrivals, free, cost, ends, order)
        at = (wait_cpu - began_cpu) * main_scale + delay
        batch_end = max([ends[id(j)] for j in jobs if j["collected_cpu"] == wait_cpu] + [at])
        delay += batch_end - at
    cpus = list(cost.values())
    first = min(((j["submitted_cpu"] - began_cpu) * main_scale for j in jobs), default=0.0)
    return {"modelled": main_cpu * main_scale + delay, "main thread": main_cpu * main_scale,
            "waiting": delay, "compiles": len(jobs), "compile CPU": sum(cpus),
            "largest compile": max(cpus, default=0.0),
            "compiles over the workers": first + warm_up + sum(cpus) / workers,
            "first hand-over": first}


def _run(arrivals: list, free: list, cost: dict, ends: dict, order: str) -> None:
    """List scheduling of the arrivals (time, job) on the workers' free times: a free
    worker takes the first job handed over (fifo) or the longest waiting (longest)."""
    queue: list = []
    arrivals = sorted(arrivals, key=lambda a: a[0])
    while arrivals or queue:
        now = heapq.heappop(free)
        if not queue:
            now = max(now, arrivals[0][0])
        while arrivals and arrivals[0][0] <= now:
            queue.append(arrivals.pop(0))
        if order == "fifo":
            pick = 0
        elif order == "longest":
            pick = max(range(len(queue)), key=lambda i: cost[id(queue[i][1])])
        else:                       # ember's queue: its expected cost, then the first
            pick = min(range(len(queue)), key=lambda i: (
                [-v for v in queue[i][1].get("expected", [0])], i))
        _, job = queue.pop(pick)
        ends[id(job)] = now + cost[id(job)]
        heapq.heappush(free, ends[id(job)])


def print_kinds(row: dict) -> None:
    """The call's compile CPU seconds per kernel kind: count, sum and largest, by sum."""
    import collections
    import re
    kinds: dict = collections.defaultdict(list)
    for cpu, label in row["items"].get("kernel compiles (CPU s)", []):
        name = re.sub(r"_\d+$", "", label.split(" [", 1)[0])
        kinds[re.sub(r"\d+", "N", name)].append(cpu)
    total = sum(sum(v) for v in kinds.values())
    print(f"{row['call']}: {sum(len(v) for v in kinds.values())} compiles, {total:.2f} CPU s")
    print(f"  {'CPU s':>7} {'count':>5} {'largest':>8}  kind")
    for kind, cpus in sorted(kinds.items(), key=lambda kv: -sum(kv[1])):
        print(f"  {sum(cpus):7.2f} {len(cpus):5d} {max(cpus):8.2f}  {kind}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", help="an EMBER_COMPILE_TIMES=<file>.json file")
    parser.add_argument("--line", type=int, default=None,
                        help="which line (call) to model; default: the first with compiles")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--main-scale", type=float, default=1.0)
    parser.add_argument("--worker-scale", type=float, default=1.0)
    parser.add_argument("--warm-up", type=float, default=0.65,
                        help="seconds from the pool's start to a worker's first compile: "
                             "a fork and device_compile._warm_worker (0.65 CPU s here; "
                             "the recorded wall seconds follow this machine's load)")
    parser.add_argument("--order", choices=("fifo", "expected", "longest"),
                        default="expected",
                        help="which waiting compile a free worker takes: the first handed "
                             "over (a plain pool, ember's before), the longest expected "
                             "(ember's queue: device_compile._expected_cost, as recorded) "
                             "or the longest measured (a bound)")
    parser.add_argument("--costs", default=None,
                        help="JSON list of {key, cpu}: each compile's CPU seconds measured "
                             "elsewhere (one process, serially: less noise than a loaded "
                             "pool's), replacing the recorded ones by kernel key")
    parser.add_argument("--pool-opens", choices=("recorded", "start", "hand-over"),
                        default="recorded",
                        help="when the pool opens: as the run noted, at the call's start, "
                             "or at the first hand-over (ember before open_early)")
    parser.add_argument("--gpu", type=float, default=0.0,
                        help="seconds of GPU-only work to add (conv timings, module loads)")
    parser.add_argument("--kinds", action="store_true",
                        help="also print the compiles' CPU seconds per kernel kind (the "
                             "kernel's name less its numbers: convNd, fused_N_final, ...)")
    args = parser.parse_args()
    with open(args.json) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    if args.line is None:
        row = next(r for r in rows if schedule_of(r))
    else:
        row = rows[args.line]
    if args.kinds:
        print_kinds(row)
    warm_up = args.warm_up * args.worker_scale
    costs = None
    if args.costs:
        with open(args.costs) as f:
            costs = {r["key"]: r["cpu"] for r in json.load(f)}
    out = model(row, args.workers, args.main_scale, args.worker_scale, warm_up, args.order,
                costs, args.pool_opens)
    print(f"{row['call']}: measured {row['seconds']:.2f} s wall here; model for "
          f"{args.workers} workers (main x{args.main_scale}, workers x{args.worker_scale}, "
          f"warm-up {warm_up:.2f} s, GPU-only +{args.gpu:.2f} s):")
    for key, value in out.items():
        print(f"  {key:<28}{value:9.2f}" if isinstance(value, float) else
              f"  {key:<28}{value:9d}")
    print(f"  {'modelled with GPU-only':<28}{out['modelled'] + args.gpu:9.2f}")


if __name__ == "__main__":
    main()
