"""Cold and warm first calls of a compiled model on the GPU (issue 18: resnet18 cold under
5 s, warm under 1 s).

Each measurement is a fresh Python process (so no in-memory cache helps) timing
`ember.compile(model, backend="triton")` plus its first call, with:

- cold, serial:    empty ember and Triton caches, EMBER_COMPILE_WORKERS=1
- cold, parallel:  empty caches, the default worker pool (codegen/triton/device_compile.py)
- warm:            the caches the parallel run left (cubins read from disk)

    python benchmarks/cuda_cold_compile.py [--model resnet18] [--batch 64] [--step]
        [--tf32] [--no-serial] [--times] [--json out.json]

`--times` runs the children with EMBER_COMPILE_TIMES=1 and prints each one's stage table
(ir/compile_times.py: trace, passes, plan build, cubin lookups and compiles with the
workers' CPU per kernel, module loads, cuDNN plan builds, conv timings, first run,
capture, replay, device sync) for its first and second call. `--no-serial` leaves out the
cold serial row (minutes of one-core compiles).

Process start and `import ember` are not counted; the numbers are seconds.

benchmarks/cuda_compile_host.py splits the host's share of the same first calls into
stages (trace, passes, codegen, cubins, run) without a GPU.

`--cubins` needs no GPU: it times the compile half alone on this machine's CPU. The child
generates the model's inference kernels (ember.compiler.triton_kernels.model_kernels:
trace, inference passes, fusion, Triton source) and compiles them to sm_90 cubins with
codegen/triton/device_compile.compile_many, under the same three cache states; it also
reports how many kernels the plan has, how many distinct sources and how many distinct
bodies (sources less the function name: what is compiled).
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
name, batch, tf32 = sys.argv[1], int(sys.argv[2]), sys.argv[3:4] == ["tf32"]
ember.backends.cuda.matmul.allow_tf32 = tf32
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

# the training step (CrossEntropyLoss, SGD momentum 0.9): its first call compiles the step
# (one plan: the momentum buffers are created before step 1), its second runs it again and
# captures it as a CUDA graph (SECOND_CALL_S; before the one-plan change it compiled a
# second plan, the step with the momentum buffers the first created)
STEP_CHILD = """
import sys, time
import numpy as np
import ember
name, batch, tf32 = sys.argv[1], int(sys.argv[2]), sys.argv[3:4] == ["tf32"]
ember.backends.cuda.matmul.allow_tf32 = tf32
model = getattr(ember.models, name)().cuda().to(memory_format=ember.channels_last)
rng = np.random.default_rng(0)
x = ember.tensor(rng.standard_normal((batch, 3, 224, 224), dtype=np.float32)).cuda()
x = x.contiguous(memory_format=ember.channels_last)
y = ember.tensor(rng.integers(0, 1000, batch)).cuda()
opt = ember.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
ember.cuda.synchronize()
start = time.perf_counter()
step = ember.compile_train_step(model, ember.nn.CrossEntropyLoss(), opt, backend="triton")
made = time.perf_counter()
step(x, y)
called = time.perf_counter()
ember.cuda.synchronize()
first = time.perf_counter()
# what the call's own stage timer cannot see: the step's construction, and the device-wide
# sync after it (the timer syncs the plan's stream only)
print("FIRST_CALL_PARTS construct %.4f call %.4f sync %.4f" % (made - start, called - made,
                                                               first - called))
step(x, y)
ember.cuda.synchronize()
print("SECOND_CALL_S", time.perf_counter() - first)
print("FIRST_CALL_S", first - start, step.stats.kernels)
"""


CUBINS_CHILD = """
import json, os, sys, time
os.environ.pop("TRITON_INTERPRET", None)
import ember
from ember.codegen.triton import device_compile as dc
from ember.compiler.triton_kernels import model_kernels
name, batch = sys.argv[1], int(sys.argv[2])
model = getattr(ember.models, name)().eval().to(memory_format=ember.channels_last)
x = ember.randn(batch, 3, 224, 224).contiguous(memory_format=ember.channels_last)
start = time.perf_counter()
found, _ = model_kernels(model, [x])
generated = time.perf_counter()
jobs = [dc.CompileJob(k.kernel, (True,) * len(k.kernel.launch.args), 90) for k in found]
dc.compile_many(jobs)
done = time.perf_counter()
print("CUBINS", json.dumps({"kernels": len(found),
                            "distinct_sources": len({k.kernel.key() for k in found}),
                            "distinct_bodies": len({j.key() for j in jobs}),
                            "generate_s": round(generated - start, 2),
                            "compile_s": round(done - generated, 2)}))
"""


def cubins(model: str, batch: int, cache: str, workers: str | None) -> dict:
    env = dict(os.environ, EMBER_CACHE_DIR=os.path.join(cache, "ember"),
               TRITON_CACHE_DIR=os.path.join(cache, "triton"))
    env.pop("TRITON_INTERPRET", None)
    if workers is not None:
        env["EMBER_COMPILE_WORKERS"] = workers
    out = subprocess.run([sys.executable, "-c", CUBINS_CHILD, model, str(batch)], env=env,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(next(x for x in out.splitlines() if x.startswith("CUBINS"))[7:])


def first_call(model: str, batch: int, cache: str, workers: str | None, step: bool = False,
               tf32: bool = False) -> tuple[float, int]:
    """(seconds, plan kernel count) of a fresh process's compile + first call of the
    model's inference (or, with step=True, of its training step; see step_calls)."""
    out = _child_output(STEP_CHILD if step else CHILD, model, batch, cache, workers, tf32)
    line = next(x for x in out.splitlines() if x.startswith("FIRST_CALL_S"))
    _, seconds, steps = line.split()
    return float(seconds), int(steps)


def step_calls(model: str, batch: int, cache: str, workers: str | None = None,
               tf32: bool = False) -> dict:
    """A fresh process's training step: {"first_call_s", "second_call_s", "kernels"}."""
    out = _child_output(STEP_CHILD, model, batch, cache, workers, tf32)
    found = {x.split()[0]: x.split()[1:] for x in out.splitlines()
             if x.startswith(("FIRST_CALL_S", "SECOND_CALL_S"))}
    return {"first_call_s": float(found["FIRST_CALL_S"][0]),
            "second_call_s": float(found["SECOND_CALL_S"][0]),
            "kernels": int(found["FIRST_CALL_S"][1])}


def _child_output(child: str, model: str, batch: int, cache: str, workers: str | None,
                  tf32: bool) -> str:
    env = dict(os.environ, EMBER_CACHE_DIR=os.path.join(cache, "ember"),
               TRITON_CACHE_DIR=os.path.join(cache, "triton"))
    env.pop("TRITON_INTERPRET", None)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # this ember
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    if workers is not None:
        env["EMBER_COMPILE_WORKERS"] = workers
    argv = [sys.executable, "-c", child, model, str(batch)] + (["tf32"] if tf32 else [])
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"the child process failed (rc {done.returncode}): "
                           f"{done.stderr.strip()[-800:]}")
    if env.get("EMBER_COMPILE_TIMES"):          # --times: the child's stage tables
        print(f"[{model} {'step' if child is STEP_CHILD else 'inference'}, workers "
              f"{workers or 'default'}, cache {cache}]")
        print("\n".join(x for x in done.stderr.splitlines()
                        if x.startswith(("ember compile times", "  "))), flush=True)
        print("\n".join(x for x in done.stdout.splitlines()
                        if x.startswith("FIRST_CALL_PARTS")), flush=True)
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--json", default=None)
    parser.add_argument("--step", action="store_true",
                        help="the training step's first call (CrossEntropyLoss, SGD momentum "
                             "0.9) instead of inference")
    parser.add_argument("--cubins", action="store_true",
                        help="no GPU: time generating and compiling the cubins on this CPU")
    parser.add_argument("--tf32", action="store_true", help="TF32 GEMMs and convs")
    parser.add_argument("--no-serial", action="store_true",
                        help="leave out the cold serial row (EMBER_COMPILE_WORKERS=1)")
    parser.add_argument("--times", action="store_true",
                        help="EMBER_COMPILE_TIMES=1 in the children: print their stage tables")
    args = parser.parse_args()
    if args.times and not os.environ.get("EMBER_COMPILE_TIMES", "").endswith(".json"):
        os.environ["EMBER_COMPILE_TIMES"] = "1"      # a .json file given prints tables too
    rows = {}
    if args.cubins:
        with tempfile.TemporaryDirectory() as serial, tempfile.TemporaryDirectory() as shared:
            rows["cold_serial"] = cubins(args.model, args.batch, serial, "1")
            rows["cold_parallel"] = cubins(args.model, args.batch, shared, None)
            rows["warm"] = cubins(args.model, args.batch, shared, None)
        rows.update(model=args.model, batch=args.batch, cpus=os.cpu_count(),
                    load=os.getloadavg()[0])
        print(json.dumps(rows, indent=1))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=1)
        return
    with tempfile.TemporaryDirectory() as serial, tempfile.TemporaryDirectory() as shared:
        if not args.no_serial:
            rows["cold_serial_s"], _ = first_call(args.model, args.batch, serial, "1",
                                                  args.step, args.tf32)
        rows["cold_parallel_s"], steps = first_call(args.model, args.batch, shared, None,
                                                    args.step, args.tf32)
        rows["warm_s"], _ = first_call(args.model, args.batch, shared, None, args.step,
                                       args.tf32)
    rows.update(model=args.model, batch=args.batch, plan_kernel_steps=steps,
                training_step=args.step)
    print(json.dumps(rows, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
