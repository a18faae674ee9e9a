"""CUDA artifacts on the GPU (benchmarks/aot.py --cuda): per-call time of a model packaged
with ember.aot.compile_and_package(..., target="cuda") and loaded by the lite runtime,
against ember.compile(..., backend="triton") in process, PyTorch eager and torch.compile
on the same GPU with the same weights.

    python3 benchmarks/aot.py --cuda [--models mlp,small_cnn,transformer,resnet18]
                              [--batch N] [--no-compile] [--quick] [--save]

Columns (milliseconds per call, median of interleaved rounds; every library's clock
synchronizes its device before each reading):
- "artifact replay": the artifact's CUDA-graph replay on inputs already in its arena
  (device work only: what the other device-resident columns do);
- "artifact": a whole call of the artifact from host arrays (copy in, replay, copy out);
- "ember.compile": ember.compile(model, backend="triton") on a CUDA tensor (the plan
  copies the input into its buffers, replays its CUDA graph, returns a fresh tensor);
- "torch", "torch.compile": the torch twin on a CUDA tensor.
Ratios are other / "artifact replay" (above 1: the artifact is faster). resnet18 runs
at batch 64 (or --batch), channels-last in every library; the others at aot.py's inputs.
Each row also records the artifact's max |difference| from torch eager and whether it
equals ember.compile bit for bit. --save writes benchmarks/results/aot_cuda_<gpu>.json.
--smoke: tiny inputs (batch 2 or 8; resnet18 at 32 x 32, the transformer 8 tokens), two
rounds, no torch.compile; torch runs on the CPU when it has no CUDA: it proves the code
path, and CI runs it under Triton's interpreter on an emulated device
(tests/cuda/test_aot_cuda_bench_smoke.py). Timing is never asserted anywhere.
"""
from __future__ import annotations

import copy
import json
import os
import tempfile
import time

import numpy as np

import ember
from benchmarks.common import RESULTS, interleaved

MODELS = ("mlp", "small_cnn", "transformer", "resnet18")


def _models(args) -> list[str]:
    names = (args.models or ",".join(MODELS)).split(",")
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise SystemExit(f"aot --cuda: unknown model(s) {unknown}; choose from {MODELS}")
    return names


SMOKE_INPUTS = {"mlp": (8, 784), "small_cnn": (2, 1, 28, 28), "resnet18": (2, 3, 32, 32),
                "transformer": (2, 8, 256)}


def _build(name: str, rng, batch: int | None, smoke: bool = False):
    from benchmarks.aot import build
    e, t, x = build(name, rng)
    channels_last = name == "resnet18"
    if smoke and name in SMOKE_INPUTS:
        x = rng.standard_normal(SMOKE_INPUTS[name], dtype=np.float32)
    elif channels_last:
        x = rng.standard_normal((batch or 64,) + x.shape[1:], dtype=np.float32)
    return e, t, x, channels_last


def _torch_device(torch) -> str:
    """torch's device: the GPU; the CPU where torch has no CUDA (--smoke under emulation)."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def _torch_sync(torch):
    if not torch.cuda.is_available():
        return time.perf_counter
    return lambda: (torch.cuda.synchronize(), time.perf_counter())[1]


def row(name: str, args, rng, tmp: str) -> dict:
    import torch
    e, t, x, channels_last = _build(name, rng, args.batch, args.smoke)
    fmt = ember.channels_last if channels_last else ember.contiguous_format
    e = e.to(memory_format=fmt) if channels_last else e
    out = {"name": name, "input": list(x.shape), "channels_last": channels_last}
    xe_host = ember.tensor(x).contiguous(memory_format=fmt)
    path = os.path.join(tmp, f"{name}_cuda.ember")
    t0 = time.perf_counter()
    try:
        ember.aot.compile_and_package(ember.export(e, (xe_host,)), path, target="cuda")
    except ember.EmberError as err:
        return {**out, "skipped": f"{type(err).__name__}: {err}"[:300]}
    out["package_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    art = ember.aot.load_package(path).lite
    # the plan ember.compile runs: launches, split steps' kernels (split-K partials and
    # sums, split reductions' phases), cuDNN convolutions
    names = [art.plan["kernels"][launch["kernel"]]["name"]
             for launch in art.plan["launches"] if "kernel" in launch]
    out["launches"] = len(art.plan["launches"])
    out["cudnn_convs"] = sum("cudnn" in launch for launch in art.plan["launches"])
    out["split_kernels"] = sum("_splitk" in n or "_partial" in n or n.endswith("_final")
                               for n in names)
    first = art(x)[0]
    out["artifact_load_and_first_call_s"] = time.perf_counter() - t0

    on_gpu = copy.deepcopy(e).to("cuda")
    xe = xe_host.to("cuda")
    compiled = ember.compile(on_gpu, backend="triton")
    t0 = time.perf_counter()
    with ember.no_grad():
        want = compiled(xe)
    ember.cuda.synchronize()
    out["ember_compile_first_call_s"] = time.perf_counter() - t0
    want = want.cpu().numpy()

    where = _torch_device(torch)
    tmodel = t.to(where)
    xt = torch.from_numpy(x).to(where)
    if channels_last:
        tmodel = tmodel.to(memory_format=torch.channels_last)
        xt = xt.contiguous(memory_format=torch.channels_last)

    def replay():
        if art._graph is not None:
            art.driver.replay(art._graph[1], art.stream)
        else:
            art._launch_all()

    def no_grad(fn, arg):
        def call():
            with ember.no_grad():
                return fn(arg)
        return call

    def torch_call(fn):
        def call():
            with torch.no_grad():
                return fn(xt)
        return call

    fns = {"artifact replay": replay, "artifact": lambda: art(x),
           "ember.compile": no_grad(compiled, xe), "torch": torch_call(tmodel)}
    if not args.no_compile:
        tc = torch.compile(tmodel)
        t0 = time.perf_counter()
        torch_call(tc)()
        out["torch_compile_first_call_s"] = _torch_sync(torch)() - t0
        fns["torch.compile"] = torch_call(tc)
    artifact_clock = lambda: (art.driver.synchronize(art.stream), time.perf_counter())[1]  # noqa: E731
    clocks = {"artifact replay": artifact_clock, "artifact": artifact_clock}
    timed = interleaved(fns, args.warmup, args.repeats, inner=args.inner, clocks=clocks)
    ms = {k: m.median * 1e3 for k, m in timed.items()}
    out["ms"] = ms
    out["ratio_over_artifact_replay"] = {k: v / ms["artifact replay"] for k, v in ms.items()}
    with torch.no_grad():
        ref = torch_call(tmodel)().float().cpu().numpy()
    out["max_abs_diff_vs_torch"] = float(np.abs(first - ref).max())
    out["bitwise_equal_to_ember_compile"] = bool(np.array_equal(first, want))
    return out


def table(rows: list, gpu: str) -> None:
    cols = ["artifact replay", "artifact", "ember.compile", "torch", "torch.compile"]
    print(f"\n# {gpu}: ms per call (ratio other / artifact replay; > 1: artifact faster)")
    print(f"{'model':12} " + " ".join(f"{c:>22}" for c in cols))
    for r in rows:
        if "skipped" in r:
            print(f"{r['name']:12} skipped: {r['skipped']}")
            continue
        cells = []
        for c in cols:
            v = r["ms"].get(c)
            cells.append(f"{'-':>22}" if v is None else
                         f"{v:9.3f} ({r['ratio_over_artifact_replay'][c]:5.2f}x)".rjust(22))
        print(f"{r['name']:12} " + " ".join(cells))
    for r in rows:
        if "skipped" not in r:
            print(f"{r['name']}: input {r['input']}, package {r['package_s']:.1f} s, "
                  f"{r['launches']} launches ({r['cudnn_convs']} cuDNN, "
                  f"{r['split_kernels']} split-step kernels), "
                  f"max|artifact - torch| {r['max_abs_diff_vs_torch']:.2e}, bitwise = "
                  f"ember.compile: {r['bitwise_equal_to_ember_compile']}")


def main(args) -> list:
    if not ember.cuda.is_available():
        raise SystemExit("aot --cuda: needs a CUDA GPU visible to ember")
    import torch
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = args.tf32
    ember.backends.cuda.matmul.allow_tf32 = args.tf32
    gpu = ember.cuda.get_device_name()
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in _models(args):
            try:
                rows.append(row(name, args, rng, tmp))
            except Exception as err:  # noqa: BLE001 - one failing row must not end the run
                import traceback
                traceback.print_exc()           # where it failed, for the one GPU run
                rows.append({"name": name, "skipped": f"{type(err).__name__}: {err}"[:300]})
            print(json.dumps(rows[-1]), flush=True)
    table(rows, gpu)
    if args.save:
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"aot_cuda_{gpu.replace(' ', '_')}.json"
        path.write_text(json.dumps({"gpu": gpu, "torch": torch.__version__,
                                    "tf32": args.tf32, "rows": rows}, indent=1) + "\n")
        print("wrote", path)
    return rows
