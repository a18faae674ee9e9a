"""Ahead-of-time artifacts: per-call time through the artifact (the lite runtime) against
ember.compile in process, PyTorch eager, torch.compile and onnxruntime (when installed),
and the cold start of a fresh process (load + first result).

    python3 benchmarks/aot.py [--quick] [--no-compile] [--models mlp,small_cnn,...] [--save]
                              [--threads N] [--cpu-time]
    python3 benchmarks/aot.py --cuda [--tf32] [--batch N] ...   (benchmarks/aot_cuda.py)

Ratios are other / artifact (> 1: the artifact is faster). Rows a model cannot be
packaged for (a step with no native kernel) are listed as skipped with the reason.
Per-call columns are timed interleaved by benchmarks.common.timed_row (Timer blocks);
the cold start is --cold-rounds fresh processes per model (perf_counter inside each;
medians). --smoke: the mlp
row only, 2 rounds, no torch.compile.
The model `mlp_train` (in the default list) is the MLP training step of
benchmarks/train_step.py (784-256-128-10, batch 64, cross entropy, Adam): training plans
are not packaged, so its row times `ember.compile_train_step` (the base of its ratios)
against torch eager and torch.compile, in a table of its own.
--threads N runs every engine (ember's pools, the artifact's, torch, onnxruntime) on N
threads (default: each library's own default). --cpu-time times each call by the
process's CPU seconds (time.process_time) instead of the wall clock: on a shared,
busy host, `--threads 1 --cpu-time` measures the work each engine does per call,
which the wall clock there does not (other processes' load lands in it, and worse
on multithreaded engines whose threads wait for each other).
With --save, writes benchmarks/results/aot.json; without it nothing is written.
Timing is never asserted anywhere.
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_HERE = Path(__file__).resolve().parent
# run as a script, benchmarks/ is sys.path[0], and its cuda.py would shadow the `cuda`
# package (cuda.bindings: the driver): --cuda found no GPU on an H100
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import ember  # noqa: E402
from benchmarks.common import RESULTS, bench_args, timed_row, timing_note  # noqa: E402
from ember.utils.benchmark import Compare  # noqa: E402

try:
    import torch
except ImportError:       # the torch columns are left out
    torch = None

LITE = Path(ember.__file__).parent / "runtime" / "lite.py"
TRANSFORMER = dict(d_model=256, nhead=8, dim_feedforward=1024, dropout=0.0, batch_first=True)


def parse_args(argv=None):
    import argparse
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=None,
                   help="comma-separated (default mlp,small_cnn,transformer,resnet18; "
                        "mlp with --smoke)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for every engine (ember, the artifact, torch, onnxruntime)")
    p.add_argument("--cpu-time", action="store_true",
                   help="time calls by process CPU seconds, not the wall clock")
    p.add_argument("--cuda", action="store_true",
                   help="CUDA artifacts on the GPU against ember.compile(backend='triton'), "
                        "torch eager and torch.compile (benchmarks/aot_cuda.py)")
    p.add_argument("--batch", type=int, default=None, help="--cuda: resnet18's batch (64)")
    p.add_argument("--tf32", action="store_true", help="--cuda: TF32 GEMM/conv everywhere")
    p.add_argument("--inner", type=int, default=10, help="--cuda: calls per timed block")
    p.add_argument("--cold-rounds", type=int, default=5,
                   help="fresh processes per model for the cold start (medians reported)")
    args = bench_args("aot", argv, p)
    args.bench_name = "aot"
    if args.cuda:                 # aot_cuda's rows (every model; tiny inputs with --smoke)
        args.inner = 1 if args.smoke else args.inner
    elif args.models is None:
        args.models = "mlp" if args.smoke else "mlp,small_cnn,transformer,resnet18,mlp_train"
    return args


# --- models: (ember model, torch twin or None, input) ------------------------------------------
def _same_weights(e_model, t_model):
    state = {k: torch.from_numpy(np.array(v.numpy())) for k, v in e_model.state_dict().items()}
    t_model.load_state_dict(state)
    return e_model.eval(), t_model.eval()


def build(name: str, rng):
    nn = torch.nn if torch is not None else None
    if name == "mlp":
        e = ember.models.mlp()
        t = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128),
                          nn.ReLU(), nn.Linear(128, 10)) if nn else None
        x = rng.standard_normal((256, 784), dtype=np.float32)
    elif name == "small_cnn":
        e = ember.models.small_cnn()
        t = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(32, 10)) if nn else None
        x = rng.standard_normal((64, 1, 28, 28), dtype=np.float32)
    elif name == "resnet18":
        e = ember.models.resnet18()
        t = _torch_resnet18() if nn else None
        x = rng.standard_normal((8, 3, 224, 224), dtype=np.float32)
    elif name == "transformer":
        ember.manual_seed(0)
        e = ember.nn.TransformerEncoderLayer(**TRANSFORMER)
        t = nn.TransformerEncoderLayer(**TRANSFORMER) if nn else None
        x = rng.standard_normal((8, 128, 256), dtype=np.float32)
    else:
        raise SystemExit(f"unknown model {name!r}")
    if t is not None:
        e, t = _same_weights(e, t)
    return e.eval(), t, x


def _torch_resnet18():
    """The torch twin from benchmarks/common.py (same layer names as ember's ResNet)."""
    from benchmarks.common import torch_resnet18
    return torch_resnet18()


# --- one row -------------------------------------------------------------------------------------
def row(name: str, args, rng, tmp: str, measurements: list | None = None) -> dict:
    e, t, x = build(name, rng)
    xe = ember.tensor(x)
    path = os.path.join(tmp, f"{name}.ember")
    t0 = time.perf_counter()
    try:
        ember.aot.compile_and_package(ember.export(e, (xe,)), path)
    except ember.EmberError as err:
        return {"name": name, "skipped": f"{type(err).__name__}: {err}"[:300]}
    out = {"name": name, "input": list(x.shape), "package_s": time.perf_counter() - t0,
           "artifact_bytes": os.path.getsize(path)}
    art = ember.aot.load_package(path).lite
    compiled = ember.compile(e)
    fns = {"artifact": lambda: art(x)}
    with ember.no_grad():
        compiled(xe)
    fns["ember.compile"] = lambda: _no_grad_call(compiled, xe)
    if t is not None:
        xt = torch.from_numpy(x)
        fns["torch"] = lambda: _torch_call(t, xt)
        if not args.no_compile:
            tc = torch.compile(t)
            fns["torch.compile"] = lambda: _torch_call(tc, xt)
        ort, why = _onnxruntime(t, xt, args.threads)
        if ort is not None:
            fns["onnxruntime"] = lambda: ort.run(None, {"x": x})
        else:
            out["onnxruntime_skipped"] = why
            print(f"{name}: onnxruntime column skipped: {why}")
    # every column interleaved, ratios other / artifact (a failing baseline is recorded)
    clocks = {k: time.process_time for k in fns} if args.cpu_time else None
    timed = timed_row(name, fns, args, base="artifact", measurements=measurements,
                      clocks=clocks)
    out.update((k, v) for k, v in timed.items() if k != "name")
    with ember.no_grad():
        want = compiled(xe).numpy()
    out["bitwise_equal_to_ember_compile"] = bool(np.array_equal(art(x)[0], want))
    if t is not None:
        with torch.no_grad():
            out["max_abs_diff_vs_torch"] = float(np.abs(art(x)[0] - t(xt).numpy()).max())
    out["cold_start"] = cold_starts(path, x, tmp, 1 if args.smoke else args.cold_rounds)
    return out


def train_row(args, measurements: list | None = None) -> dict:
    """The MLP training step (benchmarks/train_step.py's): compiled ember against torch
    eager and torch.compile from the same weights, interleaved, ratios other / ember."""
    from benchmarks import train_step as ts
    x, y, t_models = ts.same_start(torch)
    ember_step, _ = ts.ember_compiled_step(ts.ember_model_like(t_models[0]),
                                           ember.tensor(x), ember.tensor(y))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    fns = {"ember.compile_train_step": ember_step, "torch": ts.torch_step(t_models[0], xt, yt)}
    if not args.no_compile:
        fns["torch.compile"] = ts.torch_step(t_models[1], xt, yt, compiled=True)
    clocks = {k: time.process_time for k in fns} if args.cpu_time else None
    row = timed_row("mlp_train", fns, args, base="ember.compile_train_step",
                    measurements=measurements, clocks=clocks)
    row["model"] = f"MLP {'-'.join(map(str, ts.SIZES))}, batch {ts.BATCH}, Adam"
    return row


def train_table(rows: list):
    from rich.table import Table
    t = Table(title="training step (not packaged: ember.compile_train_step in process; "
                    "ratio = other/ember, >1: ember faster)")
    keys = ["torch", "torch.compile"]
    for col in ["model", "ember.compile_train_step"] + keys:
        t.add_column(col, justify="right" if col != "model" else "left")
    for r in rows:
        cells = [r["name"], f"{r['ember.compile_train_step']['median_s'] * 1e3:.3g} ms"]
        for k in keys:
            ratio = r["ratios"].get(k)
            cells.append(f"{r[k]['median_s'] * 1e3:.3g} ms ({ratio:.2f}x)" if ratio else "-")
        t.add_row(*cells)
    return t


def _no_grad_call(fn, x):
    with ember.no_grad():
        return fn(x)


def _torch_call(fn, x):
    with torch.no_grad():
        return fn(x)


def _onnxruntime(t_model, xt, threads: int | None = None):
    """(an onnxruntime CPU session of the torch twin exported with torch.onnx.export,
    on `threads` intra-op threads (None: its default), None) or (None, why not)."""
    try:
        import onnxruntime
    except ImportError:
        return None, "onnxruntime is not installed (pip install 'ember[onnx]')"
    if isinstance(t_model, torch.nn.TransformerEncoderLayer):
        t_model = _not_causal(t_model)
    try:
        f = io.BytesIO()
        torch.onnx.export(t_model, (xt,), f, dynamo=False, input_names=["x"])
        options = onnxruntime.SessionOptions()
        # onnxruntime's intra-op threads spin after each run by default, taking a core
        # from whatever runs next (measured: the resnet18 artifact 79 ms 10 ms after an
        # onnxruntime call, 62 ms alone); without spinning onnxruntime itself is as fast
        # (59.1 against 58.5 ms)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads is not None:
            options.intra_op_num_threads = options.inter_op_num_threads = threads
        return onnxruntime.InferenceSession(f.getvalue(), options,
                                            providers=["CPUExecutionProvider"]), None
    except Exception as err:      # noqa: BLE001 - the column is optional
        return None, f"export or session failed: {type(err).__name__}: {err}"[:200]


def _not_causal(layer):
    """The layer called with is_causal=False spelled out: the TorchScript exporter traces
    the default into a tensor, which scaled_dot_product_attention refuses."""
    class NotCausal(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = layer

        def forward(self, x):
            return self.layer(x, is_causal=False)
    return NotCausal().eval()


_COLD = """
import time
t0 = time.perf_counter()
import importlib.util, sys
spec = importlib.util.spec_from_file_location("ember_lite", {lite!r})
lite = importlib.util.module_from_spec(spec); spec.loader.exec_module(lite)
import numpy as np
x = np.load({x!r})
import json, resource
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
t1, c1 = time.perf_counter(), time.process_time()
model = lite.load_package({path!r})
t2, c2 = time.perf_counter(), time.process_time()
f0 = faults()
model(x)
t3, c3 = time.perf_counter(), time.process_time()
f1 = faults()
model(x)
t4 = time.perf_counter()
print(json.dumps(dict(imports_s=t1 - t0, load_s=t2 - t1, first_call_s=t3 - t2,
                      second_call_s=t4 - t3, load_cpu_s=c2 - c1, first_call_cpu_s=c3 - c2,
                      first_call_page_faults=f1 - f0,
                      second_call_page_faults=faults() - f1, **model.load_times)))
"""


def _use_threads(n: int) -> None:
    """Every engine on n threads; the artifact's pool (and the cold-start process) read
    EMBER_NUM_THREADS when they start."""
    os.environ["EMBER_NUM_THREADS"] = str(n)
    ember.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)


def cold_start(path: str, x: np.ndarray, tmp: str) -> dict:
    """A fresh interpreter: import the lite runtime and numpy, load, first call."""
    np.save(os.path.join(tmp, "x.npy"), x)
    script = _COLD.format(lite=str(LITE), x=os.path.join(tmp, "x.npy"), path=path)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1][:200]}
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out.update(load_plus_first_s=out["load_s"] + out["first_call_s"], process_wall_s=wall)
    return out


def cold_starts(path: str, x: np.ndarray, tmp: str, rounds: int) -> dict:
    """The median of each figure over `rounds` fresh processes (one after another, with
    the load average before and after), and every process's load + first call."""
    load = os.getloadavg()
    runs = [cold_start(path, x, tmp) for _ in range(max(1, rounds))]
    failed = [r for r in runs if "error" in r]
    if failed:
        return failed[0]
    out = {k: float(np.median([r[k] for r in runs])) for k in runs[0]
           if all(isinstance(r.get(k), (int, float)) for r in runs)}
    out.update(rounds=len(runs), load_average_before=load, load_average_after=os.getloadavg(),
               load_plus_first_each_s=[r["load_plus_first_s"] for r in runs])
    return out


def cold_table(rows: list):
    """Where a fresh process's cold start goes (no test asserts on it)."""
    from rich.table import Table
    t = Table(title="cold start in a fresh process (lite runtime only)")
    keys = [("imports_s", "import lite+numpy"), ("read_and_verify_s", "mmap+SHA-256"),
            ("plan_s", "plan json"), ("dlopen_s", "dlopen+pool"),
            ("arena_and_weights_s", "arena+weights"), ("load_s", "load"),
            ("first_call_s", "first call"), ("second_call_s", "second call"),
            ("load_plus_first_s", "load+first"), ("load_cpu_s", "load CPU"),
            ("first_call_cpu_s", "first call CPU")]
    for col in ["model"] + [k[1] for k in keys] + ["faults 1st/2nd"]:
        t.add_column(col, justify="right" if col != "model" else "left")
    for r in rows:
        cold = r.get("cold_start", {})
        if "load_s" not in cold:
            continue
        t.add_row(r["name"], *[f"{cold.get(k, float('nan')) * 1e3:.1f} ms" for k, _ in keys],
                  f"{cold['first_call_page_faults']}/{cold['second_call_page_faults']}")
    return t


def table(rows: list):
    from rich.table import Table
    keys = ["ember.compile", "torch", "torch.compile", "onnxruntime"]
    t = Table(title="aot (median per call; ratio = other/artifact, >1: artifact faster)")
    for col in ["model", "artifact"] + [f"{k}" for k in keys] + ["cold: load+first", "bitwise"]:
        t.add_column(col, justify="right" if col != "model" else "left")
    for r in rows:
        if "skipped" in r:
            t.add_row(r["name"], f"skipped: {r['skipped'][:70]}", *[""] * (len(keys) + 2))
            continue
        cells = [r["name"], f"{r['artifact']['median_s'] * 1e3:.3g} ms"]
        for k in keys:
            ratio = r["ratios"].get(k)
            cells.append(f"{r[k]['median_s'] * 1e3:.3g} ms ({ratio:.2f}x)" if ratio else "-")
        cold = r["cold_start"]
        cells.append(f"{cold['load_plus_first_s'] * 1e3:.0f} ms" if "load_s" in cold else "error")
        cells.append(str(r["bitwise_equal_to_ember_compile"]))
        t.add_row(*cells)
    return t


def main(argv=None):
    args = parse_args(argv)
    if args.cuda:
        from benchmarks import aot_cuda
        return aot_cuda.main(args)
    if args.threads is not None:
        _use_threads(args.threads)
    rng = np.random.default_rng(0)
    load_before = os.getloadavg()
    rows, train_rows, measurements = [], [], []
    names = [n.strip() for n in args.models.split(",")]
    with tempfile.TemporaryDirectory(prefix="ember-aot-bench-") as tmp:
        for name in names:
            if name == "mlp_train":
                if torch is not None:
                    train_rows.append(train_row(args, measurements))
            else:
                rows.append(row(name, args, rng, tmp, measurements))
    from rich.console import Console
    console = Console(width=170)
    if rows:
        console.print(table(rows))
        console.print(cold_table(rows))
    if train_rows:
        console.print(train_table(train_rows))
    if args.compare and measurements:
        Compare(measurements).print()
    if args.save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / "aot.json"
        meta = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "cpus": os.cpu_count(),
                "load_average_before": load_before, "load_average_after": os.getloadavg(),
                "warmup": args.warmup, "repeats": args.repeats, "timing": timing_note(args),
                "clock": "process CPU time" if args.cpu_time else "wall",
                "threads": args.threads or "each library's default",
                "torch_threads": torch.get_num_threads() if torch is not None else None,
                "note": "timings on a shared machine are only comparable within one row"}
        path.write_text(json.dumps({"benchmark": "aot", "meta": meta, "rows": rows,
                                    "train_rows": train_rows},
                                   indent=2) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
