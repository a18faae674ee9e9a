"""Cold and warm first calls of a compiled model on the GPU (issue 18: resnet18 cold under
5 s, warm under 1 s).

Each measurement is a fresh Python process (so no in-memory cache helps) timing
`ember.compile(model, backend="triton")` plus its first call, with:

- cold, serial:    empty ember and Triton caches, EMBER_COMPILE_WORKERS=1
- cold, parallel:  empty caches, the default worker pool (codegen/triton/device_compile.py)
- warm:            the caches the parallel run left (cubins read from disk)

    python benchmarks/cuda_cold_compile.py [--model resnet18] [--batch 64] [--json out.json]

Process start and `import ember` are not counted; the numbers are seconds.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = """
import sys, time
import numpy as np
import ember
name, batch = sys.argv[1], int(sys.argv[2])
model = getattr(ember.models, name)().cuda().eval()
model = model.to(memory_format=ember.channels_last)
x = ember.tensor(np.random.default_rng(0).standard_normal((batch, 3, 224, 224),
                 dtype=np.float32)).contiguous(memory_format=ember.channels_last).cuda()
ember.cuda.synchronize()
start = time.perf_counter()
fast = ember.compile(model, backend="triton")
with ember.no_grad():
    fast(x)
ember.cuda.synchronize()
print("FIRST_CALL_S", time.perf_counter() - start, fast.stats.kernels + fast.stats.externs)
"""


def first_call(model: str, batch: int, cache: str, workers: str | None) -> tuple[float, int]:
    env = dict(os.environ, EMBER_CACHE_DIR=os.path.join(cache, "ember"),
               TRITON_CACHE_DIR=os.path.join(cache, "triton"))
    env.pop("TRITON_INTERPRET", None)
    if workers is not None:
        env["EMBER_COMPILE_WORKERS"] = workers
    out = subprocess.run([sys.executable, "-c", CHILD, model, str(batch)], env=env,
                         capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("FIRST_CALL_S"))
    _, seconds, steps = line.split()
    return float(seconds), int(steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as serial, tempfile.TemporaryDirectory() as shared:
        rows["cold_serial_s"], steps = first_call(args.model, args.batch, serial, "1")
        rows["cold_parallel_s"], _ = first_call(args.model, args.batch, shared, None)
        rows["warm_s"], _ = first_call(args.model, args.batch, shared, None)
    rows.update(model=args.model, batch=args.batch, plan_kernel_steps=steps)
    print(json.dumps(rows, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
