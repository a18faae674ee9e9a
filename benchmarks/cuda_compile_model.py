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
- each compile is handed to the workers when the main thread had spent the CPU seconds
  it had spent when it was handed over (device_compile records both), and a worker runs
  it for its measured CPU seconds times `--worker-scale`; the workers take jobs in the
  order they were handed over (a FIFO pool), each as soon as one is free; the pool's
  workers are ready `--warm-up` seconds after its first job was handed over (their
  Triton import: measured in the run where it recorded it, else the option);
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


def warm_up_of(rows: list[dict]) -> float | None:
    """Median seconds from a worker's start to its readiness, where recorded."""
    spans = sorted({tuple(r["worker"][1:]) for r in rows if len(r.get("worker", ())) == 3})
    if not spans:
        return None
    return sorted(end - start for start, end in spans)[len(spans) // 2]


def model(row: dict, workers: int, main_scale: float, worker_scale: float,
          warm_up: float) -> dict:
    """Modelled seconds of the call (see the module docstring)."""
    jobs = sorted(schedule_of(row), key=lambda r: r["submitted_cpu"])
    began_cpu, main_cpu = row["began_cpu"], row["main_cpu"]
    free = [0.0] * workers                      # when each worker is next free (heap)
    waits = sorted({r["collected_cpu"] for r in jobs})
    delay, ready, ends = 0.0, None, {}
    pending = list(jobs)
    for wait_cpu in waits:                      # main thread time at each collection
        batch_end = 0.0
        while pending and pending[0]["submitted_cpu"] <= wait_cpu:
            job = pending.pop(0)
            submit = (job["submitted_cpu"] - began_cpu) * main_scale + delay
            if ready is None:
                ready = submit + warm_up
                free = [ready] * workers
            start = max(submit, heapq.heappop(free))
            end = start + job["cpu"] * worker_scale
            heapq.heappush(free, end)
            ends[id(job)] = end
        at = (wait_cpu - began_cpu) * main_scale + delay
        batch_end = max([ends[id(j)] for j in jobs if j["collected_cpu"] == wait_cpu] + [at])
        delay += batch_end - at
    cpus = [j["cpu"] * worker_scale for j in jobs]
    first = min(((j["submitted_cpu"] - began_cpu) * main_scale for j in jobs), default=0.0)
    return {"modelled": main_cpu * main_scale + delay, "main thread": main_cpu * main_scale,
            "waiting": delay, "compiles": len(jobs), "compile CPU": sum(cpus),
            "largest compile": max(cpus, default=0.0),
            "compiles over the workers": first + warm_up + sum(cpus) / workers,
            "first hand-over": first}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", help="an EMBER_COMPILE_TIMES=<file>.json file")
    parser.add_argument("--line", type=int, default=None,
                        help="which line (call) to model; default: the first with compiles")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--main-scale", type=float, default=1.0)
    parser.add_argument("--worker-scale", type=float, default=1.0)
    parser.add_argument("--warm-up", type=float, default=None,
                        help="seconds from the pool's start to a worker's first compile "
                             "(default: as recorded, else 0.5)")
    parser.add_argument("--gpu", type=float, default=0.0,
                        help="seconds of GPU-only work to add (conv timings, module loads)")
    args = parser.parse_args()
    with open(args.json) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    if args.line is None:
        row = next(r for r in rows if schedule_of(r))
    else:
        row = rows[args.line]
    warm_up = args.warm_up
    if warm_up is None:
        recorded = warm_up_of(schedule_of(row))
        warm_up = 0.5 if recorded is None else recorded * args.worker_scale
    out = model(row, args.workers, args.main_scale, args.worker_scale, warm_up)
    print(f"{row['call']}: measured {row['seconds']:.2f} s wall here; model for "
          f"{args.workers} workers (main x{args.main_scale}, workers x{args.worker_scale}, "
          f"warm-up {warm_up:.2f} s, GPU-only +{args.gpu:.2f} s):")
    for key, value in out.items():
        print(f"  {key:<28}{value:9.2f}" if isinstance(value, float) else
              f"  {key:<28}{value:9d}")
    print(f"  {'modelled with GPU-only':<28}{out['modelled'] + args.gpu:9.2f}")


if __name__ == "__main__":
    main()
