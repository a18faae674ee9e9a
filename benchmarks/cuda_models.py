"""ember.compile(..., backend="triton") on a GPU against PyTorch eager and torch.compile.

    python benchmarks/cuda_models.py [--quick] [--no-compile] [--only chain,gemm,...]

Cases (issue #9's targets in brackets):
- copy: device-to-device copy bandwidth of 256 MiB (cuMemcpyDtoDAsync), the yardstick;
- chain: gelu(x*w+b)*sigmoid(x) on 64M float32 [>= 90% of copy bandwidth];
- gemm: 4096^3 TF32 with a frozen weight (stored K-major by the compiler) [>= 85% of
  torch matmul with TF32 allowed, i.e. cuBLAS];
- softmax, layernorm: 8192x8192 float32 [>= torch.compile];
- resnet18: batch 64, 224x224, channels-last, inference [>= torch.compile];
- mlp: 784-1024-1024-10 at batch 256, per call, CUDA-graph replay [faster than torch eager].

Timing: an ember.utils.benchmark.Timer block of `inner` back-to-back calls (so host
overhead counts where the GPU would wait for it), after warmup; the best of `repeats`
such blocks. The Timer's clock synchronizes the device before each reading, as PyTorch's
Timer does (ember's device for ember's columns, torch.cuda for torch's); both libraries
run on the legacy default stream of the same device. (Before the move to the Timer these
were CUDA-event times, which leave out the launch of the first call and the final sync.)
With --save (or --out PATH), writes benchmarks/results/cuda.json (device named); without
it nothing is written. --smoke: the mlp case, 2 repeats, no torch.compile.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import traceback
from pathlib import Path

# run as a script, this file's folder is sys.path[0]; import from the repository root instead
# (no file in benchmarks/ may be named after a package: benchmarks/cuda.py once shadowed
# NVIDIA's `cuda` package, so every script there saw no GPU)
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402

import ember  # noqa: E402
import ember.nn.functional as F  # noqa: E402
from benchmarks.common import interleaved, torch_resnet18  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats")
    p.add_argument("--smoke", action="store_true",
                   help="the mlp case only, 2 repeats, no torch.compile (proves it runs)")
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    p.add_argument("--only", default="", help="comma-separated cases")
    p.add_argument("--save", "--write", dest="save", action="store_true",
                   help="write the results JSON (benchmarks/results/cuda.json or --out); "
                        "without it nothing is written")
    p.add_argument("--out", type=Path, default=None,
                   help="where --save writes (giving --out implies --save)")
    args = p.parse_args(argv)
    args.repeats, args.warmup = (3, 1) if args.quick else (10, 3)
    if args.smoke:
        args.repeats, args.warmup, args.no_compile = 2, 1, True
        args.only = args.only or "mlp"
    if args.out is not None:
        args.save = True
    args.out = args.out or RESULTS / "cuda.json"
    return args


# --- timing ------------------------------------------------------------------------------
def _time_blocks(key: str, fn, inner: int, args) -> float:
    """Best milliseconds per call over `repeats` ember Timer blocks of `inner` calls, after
    `warmup` calls. The Timer's clock synchronizes the device before each reading, as
    PyTorch's Timer does: ember's device for key "ember", torch's for "torch", so each
    library's queued kernels are charged to the block that issued them."""
    for _ in range(args.warmup):
        fn()
    m = interleaved({key: fn}, 0, args.repeats, inner=inner, label="cuda")[key]
    return min(m.times) * 1e3


def time_ember(fn, inner: int, args) -> float:
    return _time_blocks("ember", fn, inner, args)


def time_torch(fn, inner: int, args) -> float:
    return _time_blocks("torch", fn, inner, args)


def torch_compiled(fn, args):
    if args.no_compile:
        return None
    import torch
    return torch.compile(fn)


# --- cases ---------------------------------------------------------------------------------
def case_copy(args) -> dict:
    from ember.frontend.devices import data_ptr
    from ember.runtime.cuda.stream import copy_device_to_device, current_stream
    n = 64 << 20
    src, dst = ember.empty(n, device="cuda"), ember.empty(n, device="cuda")
    nbytes = 4 * n
    ms = time_ember(lambda: copy_device_to_device(data_ptr(dst), data_ptr(src), nbytes,
                                                  current_stream()), 5, args)
    return {"bytes_moved": 2 * nbytes, "ember_ms": ms, "gb_per_s": 2 * nbytes / ms / 1e6}


def case_chain(args, copy_gbps: float) -> dict:
    import torch
    n = 64 << 20

    def chain(x, w, b):
        return F.gelu(x * w + b) * ember.sigmoid(x)

    def torch_chain(x, w, b):
        return torch.nn.functional.gelu(x * w + b) * torch.sigmoid(x)
    host = [np.random.default_rng(i).standard_normal(n, dtype=np.float32) for i in range(3)]
    ex = [ember.tensor(h).cuda() for h in host]
    tx = [torch.from_numpy(h).cuda() for h in host]
    fast = ember.compile(chain, backend="triton")
    check = np.abs(fast(*ex).cpu().numpy()[:4096] -
                   torch_chain(*tx).cpu().numpy()[:4096]).max()
    compiled = torch_compiled(torch_chain, args)
    row = _row(lambda: fast(*ex), lambda: torch_chain(*tx),
               compiled and (lambda: compiled(*tx)), 5, args)
    moved = 4 * 4 * n
    row.update(bytes_moved=moved, max_abs_diff=float(check),
               ember_gb_per_s=moved / row["ember_ms"] / 1e6)
    row["fraction_of_copy"] = row["ember_gb_per_s"] / copy_gbps
    return row


def case_gemm(args) -> dict:
    import torch
    n = 4096
    ember.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cuda.matmul.allow_tf32 = True
    a_host = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    w_host = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    w = ember.tensor(w_host)                       # frozen: the compiler picks its layout
    fast = ember.compile(lambda a: a @ w, backend="triton")
    a = ember.tensor(a_host).cuda()
    ta, tw = torch.from_numpy(a_host).cuda(), torch.from_numpy(w_host).cuda()
    got = fast(a).cpu().numpy()
    ref = (ta.double() @ tw.double()).cpu().numpy()
    row = _row(lambda: fast(a), lambda: ta @ tw, None, 3, args)
    flops = 2 * n ** 3
    row.update(ember_tflops=flops / row["ember_ms"] / 1e9,
               cublas_tflops=flops / row["torch_ms"] / 1e9,
               fraction_of_cublas=row["torch_ms"] / row["ember_ms"],
               max_rel_err=float(np.abs(got - ref).max() / np.abs(ref).max()))
    return row


def case_rows(args, which: str) -> dict:
    import torch
    n = 8192
    host = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    if which == "softmax":
        fn, tfn = (lambda x: F.softmax(x, dim=-1)), (lambda x: torch.softmax(x, dim=-1))
    else:
        fn = lambda x: F.layer_norm(x, (n,))                           # noqa: E731
        tfn = lambda x: torch.nn.functional.layer_norm(x, (n,))       # noqa: E731
    fast = ember.compile(fn, backend="triton")
    x, tx = ember.tensor(host).cuda(), torch.from_numpy(host).cuda()
    diff = float(np.abs(fast(x).cpu().numpy() - tfn(tx).cpu().numpy()).max())
    compiled = torch_compiled(tfn, args)
    row = _row(lambda: fast(x), lambda: tfn(tx), compiled and (lambda: compiled(tx)), 10, args)
    row.update(max_abs_diff=diff, ember_gb_per_s=2 * 4 * n * n / row["ember_ms"] / 1e6)
    return row


def case_resnet18(args) -> dict:
    import torch
    model = ember.models.resnet18().eval()
    x_host = np.random.default_rng(0).standard_normal((64, 3, 224, 224), dtype=np.float32)
    x = ember.tensor(x_host).contiguous(memory_format=ember.channels_last).cuda()
    start = time.perf_counter()
    fast = ember.compile(model, backend="triton")
    with ember.no_grad():
        out = fast(x)
    compile_s = time.perf_counter() - start
    tmodel = torch_resnet18_like(model).cuda().eval().to(memory_format=torch.channels_last)
    tx = torch.from_numpy(x_host).cuda().contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        diff = float((torch.from_numpy(out.cpu().numpy()).cuda() - tmodel(tx)).abs().max())

    def teager():
        with torch.no_grad():
            return tmodel(tx)
    tcomp = torch_compiled(tmodel, args)

    def tcompiled():
        with torch.no_grad():
            return tcomp(tx)
    with ember.no_grad():
        row = _row(lambda: fast(x), teager, tcompiled if tcomp is not None else None,
                   3, args)
    row.update(ember_first_call_s=compile_s, max_abs_diff_vs_torch=diff,
               fallbacks=fast.stats.fallbacks, externs=fast.stats.externs,
               kernels=fast.stats.kernels, graph_replay=fast.last[0].graph is not None)
    return row


def case_mlp(args) -> dict:
    import torch
    model = ember.models.mlp(784, (1024, 1024), 10).eval()
    tmodel = torch_copy(model).cuda().eval()
    x_host = np.random.default_rng(0).standard_normal((256, 784), dtype=np.float32)
    x, tx = ember.tensor(x_host).cuda(), torch.from_numpy(x_host).cuda()
    fast = ember.compile(model, backend="triton")
    plain = ember.compile(model, backend="triton", options={"cuda_graphs": False})
    with ember.no_grad():
        got = fast(x)
        fast(x)
    with torch.no_grad():
        diff = float(np.abs(got.cpu().numpy() - tmodel(tx).cpu().numpy()).max())

    def teager():
        with torch.no_grad():
            return tmodel(tx)
    tcomp = torch_compiled(tmodel, args)
    with ember.no_grad():
        row = _row(lambda: fast(x), teager, (lambda: tcomp(tx)) if tcomp else None,
                   50, args)
        row["ember_no_graph_ms"] = time_ember(lambda: plain(x), 50, args)
    row.update(max_abs_diff=diff, graph_replay=fast.last[0].graph is not None,
               graph_nodes=fast.last[0].graph.node_count if fast.last[0].graph else 0)
    return row


def _row(ember_fn, torch_fn, torch_compile_fn, inner: int, args) -> dict:
    row = {"ember_ms": time_ember(ember_fn, inner, args),
           "torch_ms": time_torch(torch_fn, inner, args)}
    if torch_compile_fn is not None:
        try:
            torch_compile_fn()                                    # compile outside timing
            row["torch_compile_ms"] = time_torch(torch_compile_fn, inner, args)
        except Exception as err:    # noqa: BLE001 - a failing baseline must not hide ember
            row["torch_compile_error"] = f"{type(err).__name__}: {err}"[:300]
    row["torch_over_ember"] = row["torch_ms"] / row["ember_ms"]
    if "torch_compile_ms" in row:
        row["torch_compile_over_ember"] = row["torch_compile_ms"] / row["ember_ms"]
    return row


# --- torch twins of ember models (same weights) ---------------------------------------------
def torch_copy(model):
    """A torch nn.Sequential of Linear/ReLU/Flatten with ember's weights."""
    import torch
    layers = []
    for m in model:
        kind = type(m).__name__
        if kind == "Linear":
            lin = torch.nn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
            lin.weight.data = torch.from_numpy(m.weight.detach().numpy().copy())
            if m.bias is not None:
                lin.bias.data = torch.from_numpy(m.bias.detach().numpy().copy())
            layers.append(lin)
        else:
            layers.append(getattr(torch.nn, kind)())
    return torch.nn.Sequential(*layers)


def torch_resnet18_like(model):
    """torch's ResNet-18 layout with ember's weights, loaded by parameter/buffer name
    (ember's resnet18 uses torchvision's names)."""
    import torch
    net = torch_resnet18(model.fc.out_features)
    state = {name: torch.from_numpy(np.ascontiguousarray(t.detach().numpy()))
             for name, t in list(model.state_dict().items())}
    missing = net.load_state_dict(state, strict=False)
    net.loaded_names_missing = list(missing.missing_keys)
    return net


CASES = ("copy", "chain", "gemm", "softmax", "layernorm", "mlp", "resnet18")


def main(argv=None) -> int:
    args = parse_args(argv)
    if not ember.cuda.is_available():
        raise SystemExit("cuda: needs a CUDA device visible to ember "
                         "(ember.cuda.is_available() is False)")
    import torch
    only = [c for c in args.only.split(",") if c] or list(CASES)
    device = {"name": ember.cuda.get_device_name(), "capability":
              list(ember.cuda.get_device_capability())}
    meta = {"device": device, "python": platform.python_version(), "torch": torch.__version__,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "repeats": args.repeats,
            "warmup": args.warmup, "timing": "ember.utils.benchmark.Timer blocks of `inner` calls, "
            "device synchronized before each clock reading; best of repeats"}
    try:
        import triton
        meta["triton"] = triton.__version__
    except ImportError:
        pass
    results = {"benchmark": "cuda", "meta": meta, "rows": {}}
    copy_gbps = None
    for name in only:
        print(f"--- {name}", flush=True)
        start = time.perf_counter()
        try:
            if name == "copy":
                row = case_copy(args)
                copy_gbps = row["gb_per_s"]
            elif name == "chain":
                copy_gbps = copy_gbps or case_copy(args)["gb_per_s"]
                row = case_chain(args, copy_gbps)
            elif name in ("softmax", "layernorm"):
                row = case_rows(args, name)
            else:
                row = globals()[f"case_{name}"](args)
        except Exception as err:    # noqa: BLE001 - report, keep the other cases
            traceback.print_exc()
            row = {"error": f"{type(err).__name__}: {err}"[:500]}
        row["wall_s"] = round(time.perf_counter() - start, 1)
        results["rows"][name] = row
        print(json.dumps(row), flush=True)
        if args.save:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2) + "\n")  # partial results survive
    if args.save:
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
