"""Host-side time of a CUDA compile, without a GPU: per-stage seconds of the first call of
`compile_train_step(resnet18, CrossEntropyLoss, SGD momentum, backend="triton")` and of
`ember.compile(resnet18, backend="triton")` inference, cold (empty ember and Triton cache
directories) and warm (a second fresh process over the caches the cold one left).

Each measurement is a fresh Python process. The CUDA device is emulated in host memory
(tests/cuda/emulation.py) with two changes: Triton is NOT interpreted (kernels compile to
real sm_90 cubins, as on the GPU), and nothing launches (a launch is a no-op and a loaded
kernel is a stub: no driver, no cuModuleLoadData). What remains is what the host does
on a GPU machine up to the launches: tracing, autodiff, passes, Triton source generation,
the cubin compile (worker pool, disk cache), cache lookups, plan building. The GPU's own
share (tile autotuning, cuDNN vs Triton timings, module loads, the launches) is not here.

    python benchmarks/cuda_compile_host.py [--model resnet18|resnet50|transformer|mlp]
        [--batch 64] [--only step|infer] [--rounds 1] [--workers N] [--cache DIR] [--times]
        [--literal-sizes | --generic-sizes] [--json out.json]
        [--cache DIR --cold-passes] [--signature FILE] [--gpu-choices [--cudnn-wins KINDS]]

`--model transformer` is benchmarks/cuda.py's encoder layer (512 wide, 8 heads, 2048 feed
forward, 128 tokens a sample: use --batch 32; MSELoss, AdamW), `--model mlp` its MLP
(784-256-128-10, CrossEntropyLoss, Adam); both with --only step. Rows use ember's default
kernels (sizes baked in but in the shape-generic families of codegen/triton/source.py's
GENERIC_FAMILIES: the split reductions); `--literal-sizes` bakes sizes into every
generated kernel (EMBER_TRITON_LITERAL_SIZES=1, one body per shape), `--generic-sizes`
makes every family shape-generic (EMBER_TRITON_LITERAL_SIZES=0), on the same code.

With EMBER_COMPILE_TIMES=<file>.json in the environment the children also append each
call's figures to that file, every compile's schedule included: benchmarks/
cuda_compile_model.py models the cold call on the GPU host's 16 cores from it.

`--cache DIR --cold-passes` times the host passes and plan build alone: the cubins (and conv
choices) come from DIR filled by an earlier run, the stored pass results are deleted first.
`--signature FILE` writes what the compile produced (kernel source hashes and launches in
build order, the plan's steps, the final graph): two versions of ember that must build the
same plan (a faster pass) give identical files.

`--gpu-choices` makes each conv's cuDNN-or-Triton choice as on the H100 (cuDNN never
runs; the "timing" answers cuDNN for weight gradients, Triton for the rest);
`--cudnn-wins wgrad,fprop` lets cuDNN win the forward convs too, which builds the plan again
after the batch compile, as the H100's cold step did.

`--times` runs the children with EMBER_COMPILE_TIMES=1 and prints their stage tables
(ir/compile_times.py: finer stages than below, the compile workers' CPU per kernel, the
kernels compiled one at a time). The counts line gives, per row, the compiles made one at
a time in the main process, the cubins on disk, the workers' CPU seconds, and the module
loads a GPU would make (one per distinct cubin) for the kernels installed.

Stages (seconds of the child's wall clock, and in brackets of its main thread's CPU time:
the compile workers' CPU is not in the brackets):
  passes    the pass pipeline (fusion included)
  codegen   plan building less the cubin compile: lowering, Triton source, steps
  cubins    device_compile.compile_many (disk hits + compiles) and single compiles
  run       the plan's first run (launches are no-ops here: eager steps' host work)
  trace     the rest: tracing, autodiff, optimizer update, guards
  total     compile + first call (what a user waits for)
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import json, os, sys, time
from pathlib import Path
sys.path.insert(0, os.path.join(sys.argv[1], "tests", "cuda"))
import numpy as np
import ember
from ember.frontend import eager_cuda
from ember.runtime.cuda import driver
from ember.codegen.triton import device_compile
import ember.compiler.compile as C
import ember.compiler.compile_train_graph as CTG
import ember.compiler.compile_train as CT
import ember.compiler.compile_dispatch as CD
REAL_LAUNCH = eager_cuda.launch
import emulation

STAGES = ("passes", "codegen", "cubins", "run")
times = {k: 0.0 for k in STAGES}
cpu_times = {k: 0.0 for k in STAGES}
counts = {"compiled": 0, "loads": 0}
stack = []                 # exclusive times: a stage nested in another counts only there

def timed(owner, name, stage):
    fn = getattr(owner, name)
    def wrapper(*a, **k):
        stack.append([0.0, 0.0])
        t, c = time.perf_counter(), time.thread_time()
        try:
            return fn(*a, **k)
        finally:
            spent, cpu = time.perf_counter() - t, time.thread_time() - c
            inner, inner_cpu = stack.pop()
            times[stage] += spent - inner
            cpu_times[stage] += cpu - inner_cpu
            if stack:
                stack[-1][0] += spent
                stack[-1][1] += cpu
    setattr(owner, name, wrapper)

class StubKernel:                      # a loaded cubin that launches nothing
    def __init__(self, cubin, meta, device=0):
        self.meta = meta
        counts["loads"] += 1
    def launch(self, grid, args, stream=None):
        pass

model_name, batch, what = sys.argv[2], int(sys.argv[3]), sys.argv[4]
with emulation.emulated_cuda(capacity=1 << 40) as alloc:
    import pytest
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(driver, "capability", lambda index=0: (9, 0))
        import ctypes
        import ember.runtime.cuda.stream as S
        mp.setattr(S, "copy_device_to_device",
                   lambda dst, src, nbytes, stream: ctypes.memmove(dst, src, nbytes))
        # a memset is device work like a launch: nothing runs (zero fills became memsets)
        mp.setattr(S, "memset", lambda dst, byte, nbytes, stream: None)
        mp.setattr(eager_cuda, "launch", REAL_LAUNCH)      # compiles; the stub launches nothing
        import ember.runtime.cuda.module as M
        mp.setattr(M, "CubinKernel", StubKernel)
        from ember.frontend import cudnn_conv
        mp.setattr(cudnn_conv, "usable", lambda: False)
        if os.environ.get("HOST_COMPILE_CONV_CHOICE"):
            # --conv-choice: the cuDNN-or-Triton choice of each compiled conv is made as on
            # a GPU without a cached choice (its Triton kernel compiled and "timed"), and
            # Triton always wins; cuDNN itself never runs
            import types
            memo = {}
            mp.setattr(cudnn_conv, "usable", lambda: True)
            mp.setattr(cudnn_conv, "spec_for", lambda kind, x, w, y, *rest, **kw:
                       types.SimpleNamespace(key=(kind, x, w, y) + tuple(rest),
                                             bias=bool(rest[3:4] and rest[3] is not None)))
            mp.setattr(cudnn_conv, "timings", lambda spec, index: memo.get(spec.key))
            def prefers(spec, index, triton_run, cudnn_run):
                triton_run()                                 # compiles it, as timing does
                memo[spec.key] = (0.5, 1.0)
                return False
            mp.setattr(cudnn_conv, "prefers_cudnn", prefers)
        if os.environ.get("HOST_COMPILE_GPU_CHOICES"):
            # --gpu-choices: TF32 on and cuDNN "available" as on the H100: each conv's
            # cuDNN-or-Triton choice is made through ember's own code (real specs, the
            # autotune cache, expected winners), the Triton side compiled as a timing
            # compiles it; the "timing" gives what the H100 measured for weight gradients
            # (cuDNN faster) and Triton for the rest; cuDNN itself never runs
            ember.backends.cuda.matmul.allow_tf32 = True
            from ember.codegen.triton import autotune as AT
            from ember.runtime.cuda import cudnn as CU
            import ember.compiler.compile_cuda as CC0
            mp.setattr(cudnn_conv, "usable", lambda: not cudnn_conv._TRITON_ONLY[0])
            mp.setattr(CU, "library", lambda: object())
            mp.setattr(cudnn_conv, "_device", lambda index: "host-emulated sm90")
            mp.setattr(cudnn_conv, "_capturing", lambda index: False)
            mp.setattr(cudnn_conv, "execute", lambda *args, **kwargs: None)
            mp.setattr(CC0, "_build_cudnn_plans", lambda specs, index: None)
            # --cudnn-wins KINDS: the directions whose timing cuDNN wins (weight
            # gradients on the H100; "wgrad,fprop" makes the forward convs choose cuDNN
            # after the batch, which builds the plan again, as a cold call on the H100 did)
            cudnn_wins = os.environ.get("HOST_COMPILE_CUDNN_WINS", "wgrad").split(",")
            def timings_for(spec, index, triton_run, cudnn_run):
                found = cudnn_conv.timings(spec, index)
                if found is not None:
                    return found
                triton_run()                                 # compiles it, as timing does
                found = (1.0, 0.5) if spec.kind in cudnn_wins else (0.5, 1.0)
                AT.record_choice(spec.describe(), cudnn_conv._device(index),
                                 "cudnn" if found[1] < found[0] else "triton", *found)
                cudnn_conv._STATS["timed"] += 1
                return cudnn_conv._remember((spec, index), found)
            mp.setattr(cudnn_conv, "_timings_for", timings_for)
        if os.environ.get("HOST_COMPILE_SIGNATURE"):
            # --signature: what the compile produced, to compare two versions of ember
            # (kernel sources and launches in build order, the plan's steps, the final graph)
            import atexit, hashlib
            from ember.ir.printer import print_graph
            signature = []
            import ember.compiler.compile_cuda as CC1
            def sign_ready(self, step, ready=CC1.CudaBackend._ready):
                g = step.generated
                signature.append(f"kernel {hashlib.sha256(g.source.encode()).hexdigest()[:16]}"
                                 f" {g.launch!r}")
                return ready(self, step)
            mp.setattr(CC1.CudaBackend, "_ready", sign_ready)
            def sign_build(self, build=C.PlanBuilder.build):
                plan = build(self)
                for s in plan.steps:
                    fn = getattr(s.fn, "__qualname__", type(s.fn).__qualname__)
                    gen = getattr(s.fn, "generated", None)
                    text = hashlib.sha256(gen.source.encode()).hexdigest()[:16] if gen else ""
                    signature.append(f"step {s.name} {s.inputs} {s.outputs} {s.kernel} "
                                     f"{s.kind} {s.source} {fn} {s.out_specs} {text}")
                signature.append("graph\n" + print_graph(self.graph))
                return plan
            mp.setattr(C.PlanBuilder, "build", sign_build)
            atexit.register(lambda: Path(os.environ["HOST_COMPILE_SIGNATURE"]).write_text(
                "\n".join(signature)))
        import ember.compiler.graph_cache as GC      # the passes, or their cached result
        timed(GC, "passes_cached", "passes")
        timed(C.PlanBuilder, "build", "codegen")
        timed(device_compile, "compile_many", "cubins")
        timed(device_compile, "compile_cached", "cubins")
        import ember.runtime.plan as P
        timed(P.Plan, "run", "run")
        import ember.compiler.compile_cuda as CC
        if hasattr(CC, "prefetch_eager_kernels"):
            timed(CC, "prefetch_eager_kernels", "run")
        orig_one = device_compile.compile_one
        main_pid = os.getpid()
        def counted_one(job):
            if os.getpid() == main_pid:           # a worker's count stays in the worker
                counts["compiled"] += 1
            return orig_one(job)
        mp.setattr(device_compile, "compile_one", counted_one)
        rng = np.random.default_rng(0)
        loss_fn = ember.nn.CrossEntropyLoss()
        if model_name == "transformer":     # benchmarks/cuda.py's train_transformer row
            model = ember.nn.TransformerEncoderLayer(512, 8, 2048, dropout=0.0,
                                                     batch_first=True).cuda()
            x = ember.tensor(rng.standard_normal((batch, 128, 512), dtype=np.float32)).cuda()
            target = ember.tensor(rng.standard_normal((batch, 128, 512), dtype=np.float32))
            loss_fn, opt_kind = ember.nn.MSELoss(), "adamw"
        elif model_name == "mlp":           # ... and its train_mlp row
            model = ember.models.mlp().cuda()
            x = ember.tensor(rng.standard_normal((batch, 784), dtype=np.float32)).cuda()
            target, opt_kind = ember.tensor(rng.integers(0, 10, batch)), "adam"
        else:
            model = getattr(ember.models, model_name)()
            model = model.to(memory_format=ember.channels_last).cuda()
            x = ember.tensor(rng.standard_normal((batch, 3, 224, 224), dtype=np.float32)).cuda()
            x = x.contiguous(memory_format=ember.channels_last)
            target, opt_kind = ember.tensor(rng.integers(0, 1000, batch)), "sgd"
        profile = None
        if os.environ.get("HOST_COMPILE_PROFILE"):
            import cProfile
            profile = cProfile.Profile()
            profile.enable()
        for k in STAGES:          # moving the model and input may compile copy kernels
            times[k] = cpu_times[k] = 0.0
        counts["compiled"] = counts["loads"] = 0
        cpu0, t0 = time.thread_time(), time.perf_counter()
        if what == "step":
            y = target.cuda()
            opt = {"sgd": lambda p: ember.optim.SGD(p, lr=0.01, momentum=0.9),
                   "adam": lambda p: ember.optim.Adam(p, lr=1e-3),
                   "adamw": lambda p: ember.optim.AdamW(p, lr=1e-3)}[opt_kind](model.parameters())
            step = ember.compile_train_step(model, loss_fn, opt, backend="triton")
            step(x, y)
            stats = step.stats
        else:
            model.eval()
            fast = ember.compile(model, backend="triton")
            with ember.no_grad():
                fast(x)
            stats = fast.stats
        total = time.perf_counter() - t0
        if profile is not None:
            import pstats
            profile.disable()
            pstats.Stats(profile, stream=sys.stderr).sort_stats("cumulative").print_stats(
                int(os.environ["HOST_COMPILE_PROFILE"]))
        cpu = time.thread_time() - cpu0
        # HOST_COMPILE_CALLS=N: N-1 more calls of the step after the measured one, 2 s
        # apart (what the tuning of untimed conv choices does between calls; its
        # compiles then count in the workers' CPU below)
        for call in range(2, int(os.environ.get("HOST_COMPILE_CALLS", "1")) + 1) \
                if what == "step" else ():
            time.sleep(2.0)
            tick = time.perf_counter()
            step(x, y)
            print(f"HOST_CALL {call}: {time.perf_counter() - tick:.3f} s, untuned "
                  f"{cudnn_conv.untuned()}, {cudnn_conv.stats()}", file=sys.stderr, flush=True)
        for pool in device_compile._POOLS.values():   # reaped: their CPU joins RUSAGE_CHILDREN
            pool.shutdown()
        import re, resource
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        # what shape-generic kernels would save: the generated sources on disk, with the
        # function's name left out (bodies: what compiles now) and also every integer
        # literal (structures: sizes, strides and block sizes as runtime values)
        bodies = set()
        for path in (Path(os.environ["EMBER_CACHE_DIR"]) / "triton" / "src").glob("*.py"):
            text = "\n".join(x for x in path.read_text().splitlines()
                             if not x.lstrip().startswith(("#", '"' * 3)))
            bodies.add(re.sub(r"^def \w+\(", "def K(", text, flags=re.M))
        def structure(body):
            return re.sub(r"\b\d+\b", "N", re.sub(r"\bks\d+\b", "ks", body))
        structures = {structure(b) for b in bodies}
        dots = [b for b in bodies if "tl.dot" in b]
        out = {k: round(v, 3) for k, v in times.items()}
        out["trace"] = round(total - sum(times.values()), 3)
        out.update({k + "_cpu": round(v, 3) for k, v in cpu_times.items()})
        out["trace_cpu"] = round(cpu - sum(cpu_times.values()), 3)
        out.update(total=round(total, 3), cpu=round(cpu, 3),
                   kernels=stats.kernels, externs=stats.externs, compiled=counts["compiled"],
                   module_loads=counts["loads"], kernels_installed=len(eager_cuda._KERNELS),
                   children_cpu=round(kids.ru_utime + kids.ru_stime, 2),
                   cubin_files=len(list((Path(os.environ["EMBER_CACHE_DIR"]) / "triton" /
                                         "cubin").glob("*.cubin"))),
                   fallbacks=len(stats.fallbacks), bodies=len(bodies),
                   structures=len(structures), dot_bodies=len(dots),
                   dot_structures=len({structure(b) for b in dots}))
        out["conv_choices"] = cudnn_conv.stats()      # timed / expected / winners
        print("HOST_COMPILE", json.dumps(out))
"""


def run_child(model: str, batch: int, what: str, cache: str, workers: int | None) -> dict:
    """One fresh process's first call over `cache` (see CHILD)."""
    env = dict(os.environ, EMBER_CACHE_DIR=os.path.join(cache, "ember"),
               TRITON_CACHE_DIR=os.path.join(cache, "triton"))
    env.pop("TRITON_INTERPRET", None)          # real cubins
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    if workers is not None:
        env["EMBER_COMPILE_WORKERS"] = str(workers)
    if os.environ.get("HOST_COMPILE_COLD_PASSES"):      # --cold-passes: passes run again
        for stored in ("graphs", "fuse"):
            shutil.rmtree(os.path.join(cache, "ember", stored), ignore_errors=True)
    filled = any(os.scandir(cache)) if os.path.isdir(cache) else False
    done = subprocess.run([sys.executable, "-c", CHILD, ROOT, model, str(batch), what],
                          env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"the child failed (rc {done.returncode}):\n{done.stderr[-3000:]}")
    if os.environ.get("HOST_COMPILE_PROFILE"):
        sys.stderr.write(done.stderr[-30000:])
    if env.get("EMBER_COMPILE_TIMES"):            # --times: the children's stage tables
        tables = [x for x in done.stderr.splitlines() if x.startswith(("ember compile times",
                                                                       "  ", "HOST_CALL"))]
        print(f"[{what}, caches {'filled' if filled else 'empty'}]")
        print("\n".join(tables))
    line = next(x for x in done.stdout.splitlines() if x.startswith("HOST_COMPILE"))
    return json.loads(line.split(" ", 1)[1])


def measure(model: str, batch: int, what: str, workers: int | None,
            keep: str | None = None) -> dict:
    if keep:                      # a kept cache directory: one fresh process over it
        os.makedirs(keep, exist_ok=True)
        row = run_child(model, batch, what, keep, workers)
        return {"cold": row, "warm": row}
    with tempfile.TemporaryDirectory() as cache:
        cold = run_child(model, batch, what, cache, workers)
        warm = run_child(model, batch, what, cache, workers)
    return {"cold": cold, "warm": warm}


def median_rows(rounds: list[dict]) -> dict:
    out = {}
    for state in ("cold", "warm"):
        keys = rounds[0][state].keys()
        out[state] = {k: statistics.median(r[state][k] for r in rounds) for k in keys}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--only", choices=("step", "infer"), default=None)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--workers", type=int, default=None,
                        help="EMBER_COMPILE_WORKERS for the children (default: the CPU count)")
    parser.add_argument("--cache", default=None,
                        help="use (and keep) this cache directory: one process per row")
    parser.add_argument("--json", default=None)
    parser.add_argument("--conv-choice", action="store_true",
                        help="make each compiled conv's cuDNN-or-Triton choice as a GPU "
                             "without a cached one does (Triton compiled and 'timed'; it "
                             "always wins), to count the compiles that choice costs")
    parser.add_argument("--gpu-choices", action="store_true",
                        help="TF32, and cuDNN counted available: every conv's choice made "
                             "through ember's code as on the H100 (weight gradients: cuDNN "
                             "faster; the rest: Triton), cuDNN never running; with "
                             "EMBER_CONV_EXPECTED=0 a compile times every choice (before)")
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--literal-sizes", action="store_true",
                       help="EMBER_TRITON_LITERAL_SIZES=1 in the children: sizes baked into "
                            "every kernel (one body per shape), the before of shape-generic "
                            "kernels on the same code")
    sizes.add_argument("--generic-sizes", action="store_true",
                       help="EMBER_TRITON_LITERAL_SIZES=0 in the children: every kernel "
                            "family shape-generic (opt-in in ember)")
    parser.add_argument("--cudnn-wins", default=None,
                        help="with --gpu-choices: the conv directions whose timing cuDNN "
                             "wins, e.g. wgrad,fprop (default wgrad, the H100's finding)")
    parser.add_argument("--cold-passes", action="store_true",
                        help="with --cache: delete the stored pass results (graph cache, "
                             "fusion plans) before each run, so that the passes and the plan "
                             "build run as cold while the cubins come from the disk cache")
    parser.add_argument("--signature", default=None,
                        help="write what the (last) compile produced to this file: each "
                             "kernel's source hash and launch in build order, the plan's "
                             "steps, the final graph; diff two versions' files")
    parser.add_argument("--times", action="store_true",
                        help="EMBER_COMPILE_TIMES=1 in the children: print their stage tables")
    args = parser.parse_args()
    if args.times and not os.environ.get("EMBER_COMPILE_TIMES", "").endswith(".json"):
        os.environ["EMBER_COMPILE_TIMES"] = "1"      # a .json file given prints tables too
    # neither flag: ember's default (sizes literal but in the families of
    # codegen/triton/source.py's GENERIC_FAMILIES)
    os.environ.pop("EMBER_TRITON_LITERAL_SIZES", None)
    if args.literal_sizes or args.generic_sizes:
        os.environ["EMBER_TRITON_LITERAL_SIZES"] = "1" if args.literal_sizes else "0"
    if args.conv_choice:
        os.environ["HOST_COMPILE_CONV_CHOICE"] = "1"
    if args.gpu_choices:
        os.environ["HOST_COMPILE_GPU_CHOICES"] = "1"
    if args.cold_passes:
        os.environ["HOST_COMPILE_COLD_PASSES"] = "1"
    if args.cudnn_wins:
        os.environ["HOST_COMPILE_CUDNN_WINS"] = args.cudnn_wins
    if args.signature:
        os.environ["HOST_COMPILE_SIGNATURE"] = os.path.abspath(args.signature)
    whats = [args.only] if args.only else ["step", "infer"]
    rounds: dict[str, list] = {w: [] for w in whats}
    for _ in range(args.rounds):            # interleaved: each round runs every row
        for what in whats:
            rounds[what].append(measure(args.model, args.batch, what, args.workers,
                                         args.cache))
    result = {w: median_rows(r) for w, r in rounds.items()}
    result.update(model=args.model, batch=args.batch, cpus=os.cpu_count(),
                  load=os.getloadavg(), rounds=args.rounds)
    stages = ("trace", "passes", "codegen", "cubins", "run")
    print("seconds: wall (main thread CPU)")
    print(f"{'row':<12}" + "".join(f"{c:>15}" for c in stages + ("total",)) + f"{'kernels':>9}")
    for what in whats:
        for state in ("cold", "warm"):
            row = result[what][state]
            cells = [f"{row[c]:.2f} ({row[c + '_cpu']:.2f})" for c in stages]
            cells.append(f"{row['total']:.2f} ({row['cpu']:.2f})")
            print(f"{what + ' ' + state:<12}" + "".join(f"{c:>15}" for c in cells) +
                  f"{row['kernels'] + row['externs']:>9}")
    print("compiled in the main process (serially) / cubins on disk / CPU s of the compile "
          "workers and their ptxas / module loads (cuModuleLoadData on a GPU):")
    for what in whats:
        for state in ("cold", "warm"):
            row = result[what][state]
            print(f"  {what} {state}: {row['compiled']} / {row['cubin_files']} / "
                  f"{row['children_cpu']} / {row.get('module_loads', '-')} for "
                  f"{row.get('kernels_installed', '-')} kernels")
    print("distinct kernel bodies / the same up to integer literals (sizes, strides, blocks), "
          "all and with tl.dot:")
    for what in whats:
        row = result[what]["cold"]
        print(f"  {what}: {row.get('bodies', '-')} / {row.get('structures', '-')}, "
              f"{row.get('dot_bodies', '-')} / {row.get('dot_structures', '-')}")
    for what in whats:
        print(what, json.dumps(result[what]))
    print(f"load {os.getloadavg()}, {os.cpu_count()} CPUs, median of {args.rounds}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
