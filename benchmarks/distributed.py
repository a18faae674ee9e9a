"""ember.distributed on one host: all-reduce bandwidth against raw mpi4py, DDP scaling.

    python3 benchmarks/distributed.py [--quick] [--nprocs 1,2,4] [--save]

For each process count the script relaunches itself through
`python -m ember.distributed.run` (mpirun), and rank 0 reports JSON lines:
- allreduce: float32 buffers from 4 KiB to 16 MiB (1 MiB with --quick); ember's
  synchronous `dist.all_reduce` (its direct path: MPI's blocking call on the caller's
  thread, in place on the tensor's array, under the sampling watchdog) against mpi4py's
  blocking `comm.Allreduce(IN_PLACE, ...)` on an array of the same size; each call
  timed alone, the two alternating call by call (up to 4000 pairs, fewer for big
  buffers), the median of each. Bus bandwidth uses
  nccl-tests' formula: busbw = 2 (n - 1) / n * bytes / seconds. "of raw" is ember's
  busbw / mpi4py's (target: >= 0.9).
- ddp: training samples/s (all ranks together: world * batch / step time) of an MLP
  (784-512-512-10) and a small CNN (2 conv + linear on 1x28x28), batch 32 per rank,
  with the default all-reduce, fp16 compression and PowerSGD (rank 2), SGD steps.
- rpc (2-process worlds only): round-trip time of `rpc_sync(1, echo, args=(t,))` with a
  float32 tensor of 1 KiB to 4 MiB (1 MiB with --quick), against raw grpcio (a unary
  generic-handler echo of the same number of bytes, the same transport underneath).
Timing is the median of `repeats` interleaved rounds after `warmup` (ember's Timer, via
benchmarks.common.interleaved). --smoke: one process, buffers up to 16 KiB, the mlp
with the default all-reduce, 2 rounds. On a small shared box the
ranks fight for cores: read the numbers as relative, not as this engine's ceiling.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def median_times(fns: dict, args) -> dict[str, float]:
    """{key: median seconds per call}, the callables timed interleaved by ember's Timer
    (benchmarks.common.interleaved). Every rank makes the same calls in the same order
    (a fixed count of rounds, never blocked_autorange's adaptive count), so collectives
    inside the callables stay matched across ranks."""
    from benchmarks.common import interleaved
    found = interleaved(fns, args.warmup, args.repeats, label="distributed")
    return {k: m.median for k, m in found.items()}


def median_time(fn, args) -> float:
    return median_times({"ember": fn}, args)["ember"]


# --- worker side (inside an MPI job) -----------------------------------------------------
def alternating_medians(fn_a, fn_b, calls: int) -> tuple[float, float]:
    """Median seconds per call of two collectives timed call by call, alternating.

    Each call is timed alone and the two alternate (a b, then b a: the second of a
    pair pays for the first's cache and progress state), so both see the same load:
    on a shared 2-core box round-based timing of microsecond collectives swings 3x
    from round to round, while these medians repeat within a few percent. Every rank
    makes the same calls in the same order."""
    import time

    import numpy as np
    clock = time.perf_counter_ns
    times = np.empty((2, calls))
    for i in range(calls):
        first, second = (fn_a, fn_b) if i % 2 == 0 else (fn_b, fn_a)
        t0 = clock()
        first()
        t1 = clock()
        second()
        t2 = clock()
        times[i % 2, i], times[1 - i % 2, i] = t1 - t0, t2 - t1
    return float(np.median(times[0])) * 1e-9, float(np.median(times[1])) * 1e-9


def allreduce_rows(args) -> list[dict]:
    import numpy as np
    from mpi4py import MPI

    import ember
    import ember.distributed as dist
    comm = MPI.COMM_WORLD.Dup()
    n = dist.get_world_size()
    top = 1 << (14 if args.smoke else 20 if args.quick else 24)
    rows, size = [], 4096
    while size <= top:
        numel = size // 4
        t = ember.zeros(numel)
        raw = np.zeros(numel, np.float32)
        calls = max(40, min(4000, (args.repeats * 200 << 12) // size))
        for _ in range(max(args.warmup, 1)):
            dist.all_reduce(t)
            comm.Allreduce(MPI.IN_PLACE, raw)
        ember_s, raw_s = alternating_medians(lambda: dist.all_reduce(t),
                                             lambda: comm.Allreduce(MPI.IN_PLACE, raw), calls)
        busbw = lambda s: 2 * (n - 1) / n * size / s / 1e9 if n > 1 else 0.0  # noqa: E731
        rows.append({"kind": "allreduce", "world": n, "bytes": size, "calls": calls,
                     "ember_s": ember_s, "mpi4py_s": raw_s,
                     "ember_busbw_GBps": busbw(ember_s), "mpi4py_busbw_GBps": busbw(raw_s),
                     "of_raw": raw_s / ember_s})
        size *= 4
    comm.Free()
    return rows


def _models():
    import ember.nn as nn
    mlp = lambda: nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(),  # noqa: E731
                                nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
    cnn = lambda: nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),  # noqa: E731
                                nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                                nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 7 * 7, 10))
    return {"mlp": mlp, "cnn": cnn}


def _hooks():
    from ember.distributed.algorithms.ddp_comm_hooks import default_hooks
    from ember.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as powerSGD
    return {
        "allreduce": lambda: (None, None),
        "fp16": lambda: (None, default_hooks.fp16_compress_hook),
        "powerSGD": lambda: (powerSGD.PowerSGDState(None, matrix_approximation_rank=2,
                                                    start_powerSGD_iter=2),
                             powerSGD.powerSGD_hook),
    }


def ddp_rows(args) -> list[dict]:
    import numpy as np

    import ember
    import ember.distributed as dist
    import ember.nn.functional as F
    from ember.nn.parallel import DistributedDataParallel as DDP
    n, batch = dist.get_world_size(), 32
    rng = np.random.default_rng(dist.get_rank())
    x = ember.tensor(rng.standard_normal((batch, 1, 28, 28)).astype(np.float32))
    y = ember.tensor(rng.integers(0, 10, batch))
    rows = []
    models, hooks = _models(), _hooks()
    if args.smoke:                          # the smallest row proves the script runs
        models, hooks = {"mlp": models["mlp"]}, {"allreduce": hooks["allreduce"]}
    for model_name, make in models.items():
        for hook_name, make_hook in hooks.items():
            ember.manual_seed(0)
            model = DDP(make())
            state, hook = make_hook()
            if hook is not None:
                model.register_comm_hook(state, hook)
            opt = ember.optim.SGD(model.parameters(), lr=0.01)

            def step():
                opt.zero_grad()
                F.cross_entropy(model(x), y).backward()
                opt.step()

            seconds = median_time(step, args)
            rows.append({"kind": "ddp", "world": n, "model": model_name, "hook": hook_name,
                         "step_s": seconds, "samples_per_s": n * batch / seconds})
    return rows


def _echo(x):
    return x


def rpc_rows(args) -> list[dict]:
    """Rank 0 calls rank 1: ember's rpc_sync of a tensor against raw grpcio bytes."""
    from concurrent import futures

    import grpc

    import ember
    import ember.distributed as dist
    import ember.distributed.rpc as rpc
    rank = dist.get_rank()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Echo", {
        "Echo": grpc.unary_unary_rpc_method_handler(lambda request, context: request)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    ports = [None, None]
    dist.all_gather_object(ports, port)
    rpc.init_rpc(f"bench{rank}", rank=rank, world_size=2)
    rows = []
    if rank == 0:
        channel = grpc.insecure_channel(f"127.0.0.1:{ports[1]}")
        echo = channel.unary_unary("/bench.Echo/Echo")
        size, top = 1024, 1 << (20 if args.quick else 22)
        while size <= top:
            t, payload = ember.ones(size // 4), bytes(size)
            got = median_times({"ember": lambda: rpc.rpc_sync(1, _echo, args=(t,)),
                                "grpcio": lambda: echo(payload, timeout=60)}, args)
            ember_s, raw_s = got["ember"], got["grpcio"]
            rows.append({"kind": "rpc", "world": 2, "bytes": size, "ember_ms": ember_s * 1e3,
                         "grpcio_ms": raw_s * 1e3, "ember_over_raw": ember_s / raw_s})
            size *= 4
        channel.close()
    rpc.shutdown()
    server.stop(0)
    return rows


def worker(args) -> None:
    import ember.distributed as dist
    dist.init_process_group("mpi")
    rows = [] if args.only in ("ddp", "rpc") else allreduce_rows(args)
    rows += [] if args.only in ("allreduce", "rpc") else ddp_rows(args)
    if args.only in (None, "rpc") and dist.get_world_size() == 2:
        rows += rpc_rows(args)
    if dist.get_rank() == 0:
        for row in rows:
            print("ROW " + json.dumps(row), flush=True)
    dist.destroy_process_group()


# --- driver side -------------------------------------------------------------------------
def run_world(nproc: int, args) -> list[dict]:
    cmd = [sys.executable, "-m", "ember.distributed.run", "--nproc-per-node", str(nproc),
           __file__, "--worker", "--warmup", str(args.warmup), "--repeats", str(args.repeats)]
    if args.smoke:
        cmd.append("--smoke")
    elif args.quick:
        cmd.append("--quick")
    if args.only:
        cmd += ["--only", args.only]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"the {nproc}-process job failed:\n{out.stderr[-3000:]}")
    return [json.loads(line[4:]) for line in out.stdout.splitlines() if line.startswith("ROW ")]


def report(rows: list[dict]) -> None:
    print(f"{'world':>5} {'bytes':>10} {'ember us':>9} {'mpi4py us':>9} "
          f"{'ember GB/s':>10} {'mpi4py GB/s':>11} {'of raw':>6}")
    for r in (r for r in rows if r["kind"] == "allreduce"):
        print(f"{r['world']:>5} {r['bytes']:>10} {r['ember_s'] * 1e6:>9.1f} "
              f"{r['mpi4py_s'] * 1e6:>9.1f} {r['ember_busbw_GBps']:>10.3f} "
              f"{r['mpi4py_busbw_GBps']:>11.3f} {r['of_raw']:>6.2f}")
    print(f"\n{'world':>5} {'model':>5} {'hook':>9} {'step ms':>8} {'samples/s':>9}")
    for r in (r for r in rows if r["kind"] == "ddp"):
        print(f"{r['world']:>5} {r['model']:>5} {r['hook']:>9} {r['step_s'] * 1e3:>8.2f} "
              f"{r['samples_per_s']:>9.0f}")
    rpc_rows_ = [r for r in rows if r["kind"] == "rpc"]
    if rpc_rows_:
        print(f"\n{'rpc bytes':>10} {'ember ms':>9} {'grpcio ms':>9} {'ratio':>6}")
        for r in rpc_rows_:
            print(f"{r['bytes']:>10} {r['ember_ms']:>9.3f} {r['grpcio_ms']:>9.3f} "
                  f"{r['ember_over_raw']:>6.2f}")


def parse_args(argv=None) -> argparse.Namespace:
    sys.path.insert(0, str(ROOT))
    from benchmarks.common import bench_args
    p = argparse.ArgumentParser(description="benchmark: distributed")
    p.add_argument("--nprocs", default=None, help="process counts (default 1,2,4; 1 with "
                   "--smoke)")
    p.add_argument("--only", choices=("allreduce", "ddp", "rpc"), default=None)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = bench_args("distributed", argv, p)
    if args.min_run_time:
        raise SystemExit("distributed: --min-run-time is not supported (ranks must make "
                         "the same number of collective calls)")
    if args.compare:
        raise SystemExit("distributed: --compare is not supported (rows are printed by rank 0 "
                         "as plain text)")
    if args.nprocs is None:
        args.nprocs = "1" if args.smoke else "1,2,4"
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return
    rows = [row for n in args.nprocs.split(",") for row in run_world(int(n), args)]
    report(rows)
    if args.save:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "distributed.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
