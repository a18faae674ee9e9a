"""conv2d weight gradients on a GPU: ember's split-K implicit GEMM (codegen/triton/conv_wgrad.py)
against cuDNN (torch's aten.convolution_backward, weight output only) and against ember's
previous route (a per-sample grouped convolution, then a sum over the samples), on
resnet18's layer shapes at batch 64 (224x224) and small_cnn's (64x64).

    python benchmarks/cuda_conv_wgrad.py [--batch 64] [--sweep] [--quick] [--write]

Times are GPU milliseconds per call: `reps` calls captured into one CUDA graph (ember's
ember.cuda.CUDAGraph, torch's torch.cuda.CUDAGraph), replays timed with CUDA events, the
median of 5 replays over reps; so host overhead is out, as inside a compiled training step
whose launches replay as one graph. float32 runs as TF32 in both (ember's allow_tf32,
torch's cudnn.allow_tf32, its default); bf16 rows use bf16 operands in both. Each row
first checks ember's result against torch's (relative Frobenius error). --sweep also times
other tile shapes / split targets for the split-K kernel (and, for float32 channels-last,
the kernel on those operands directly with fewer pipeline stages); --old-route the
previous route.
The ratio column is cuDNN's time over ember's (above 1: ember faster).
--write saves benchmarks/results/cuda_conv_wgrad_<gpu>.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]   # cuda.bindings
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402

import ember  # noqa: E402
from ember.codegen.triton import conv_wgrad  # noqa: E402
from ember.frontend import eager_cuda, eager_cuda_training  # noqa: E402
from ember.ir.registry import OPS  # noqa: E402

# (name, input (C, H, W) at the given batch, weight (Cout, Cin, k, k), stride, padding)
SHAPES = [
    ("r18.conv1", (3, 224, 224), (64, 3, 7, 7), 2, 3),
    ("r18.layer1", (64, 56, 56), (64, 64, 3, 3), 1, 1),
    ("r18.layer2.0.conv1", (64, 56, 56), (128, 64, 3, 3), 2, 1),
    ("r18.layer2", (128, 28, 28), (128, 128, 3, 3), 1, 1),
    ("r18.layer2.down", (64, 56, 56), (128, 64, 1, 1), 2, 0),
    ("r18.layer3.0.conv1", (128, 28, 28), (256, 128, 3, 3), 2, 1),
    ("r18.layer3", (256, 14, 14), (256, 256, 3, 3), 1, 1),
    ("r18.layer4.0.conv1", (256, 14, 14), (512, 256, 3, 3), 2, 1),
    ("r18.layer4", (512, 7, 7), (512, 512, 3, 3), 1, 1),
    ("cnn.conv1", (3, 64, 64), (16, 3, 3, 3), 1, 1),
    ("cnn.conv2", (16, 32, 32), (32, 16, 3, 3), 1, 1),
]
QUICK = {"r18.conv1", "r18.layer1", "r18.layer3", "r18.layer4", "cnn.conv2"}
SWEPT = QUICK | {"r18.layer2"}
# (label, plan keyword arguments) tried by --sweep (float32 NCHW and bfloat16 channels-last)
VARIANTS = [("64x64 t264", {}), ("64x64 t528", dict(target_programs=528)),
            ("128x128 w8 t264", dict(max_block_m=128, max_block_n=128, num_warps=8)),
            ("128x64 w8 t528", dict(max_block_m=128, num_warps=8, target_programs=528)),
            ("128x256 w8 t264", dict(max_block_m=128, max_block_n=256, num_warps=8))]
# channels-last float32 operands straight into the kernel (the route copies them to NCHW):
# fewer pipeline stages load tiles through registers instead of 4-byte async copies
CL_VARIANTS = [("64x64 s3", {}), ("64x64 s2", dict(num_stages=2)),
               ("64x64 s1", dict(num_stages=1)), ("128x64 w8 s1",
                                                  dict(max_block_m=128, num_warps=8, num_stages=1))]


def _out_hw(h, w, k, s, p):
    return (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1


def _replay_ms(lib, fn, reps: int) -> float:
    """Milliseconds per fn() call: `reps` calls captured as one CUDA graph of `lib` (ember
    or torch: the same API), replayed 5 times, the median."""
    graph = lib.cuda.CUDAGraph()
    with lib.cuda.graph(graph):
        for _ in range(reps):
            fn()
    times = []
    for _ in range(5):
        start, end = lib.cuda.Event(enable_timing=True), lib.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / reps)
    return statistics.median(times)


def _ember_graph_ms(fn, reps: int) -> float:
    fn()
    fn()
    ember.cuda.synchronize()
    return _replay_ms(ember, fn, reps)


def _torch_graph_ms(torch, fn, reps: int) -> float:
    side = torch.cuda.Stream()          # torch's capture recipe: warm up on a side stream
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()
        fn()
    torch.cuda.current_stream().wait_stream(side)
    return _replay_ms(torch, fn, reps)


def _split_k_with(problem, split, g, x, out_meta_strides, weight_shape):
    """One split-K weight gradient with an explicit SplitPlan (the sweep's variants)."""
    from ember.frontend.devices import empty_cuda
    from ember.ir.dtypes import float32
    out = empty_cuda(weight_shape, out_meta_strides, problem.out_dtype, 0)
    if split.splits == 1:
        eager_cuda.launch(conv_wgrad.partial_kernel(problem, split), [g, x, out], 0)
        return out
    ws = empty_cuda((conv_wgrad.workspace_elements(problem, split),), (1,), float32, 0)
    eager_cuda.launch(conv_wgrad.partial_kernel(problem, split), [g, x, ws], 0)
    eager_cuda.launch(conv_wgrad.reduce_kernel(problem, split), [ws, out], 0)
    return out


def _ember_operands(xe, ge, dtype, layout):
    if dtype == "bfloat16":
        xe, ge = xe.to(ember.bfloat16), ge.to(ember.bfloat16)
    if layout == "channels_last":
        xe = xe.contiguous(memory_format=ember.channels_last)
        ge = ge.contiguous(memory_format=ember.channels_last)
    return xe, ge


def _variants(xe, ge, wshape, stride, pad, out):
    """(label, SplitPlan, fn) of each swept tile shape / split target."""
    from ember.codegen.triton.gemm import input_precision
    problem = conv_wgrad.WeightGradProblem(
        tuple(xe.shape), tuple(xe.stride()), tuple(ge.shape), tuple(ge.stride()),
        tuple(wshape), tuple(out.stride()), (stride, stride), (pad, pad), (1, 1), 1,
        xe.dtype, out.dtype, input_precision(xe.dtype))
    variants = CL_VARIANTS if xe.dtype == ember.float32 and xe.stride(1) == 1 else VARIANTS
    for label, kw in variants:
        split = conv_wgrad.plan(problem, **kw)
        yield label, split, (lambda s=split: _split_k_with(problem, s, ge, xe,
                                                           tuple(out.stride()), tuple(wshape)))


def precompile(cases, batch) -> float:
    """Compile every kernel the timed calls will launch, in parallel worker processes
    (eager_cuda.compile_kernels), by running them once on uninitialized operands with
    launches collected instead of run. Returns the seconds it took."""
    import time
    from ember.frontend.devices import data_ptr
    requests = []
    real = eager_cuda.launch

    def collect(generated, tensors, index):
        requests.append((generated, [isinstance(t, ember.Tensor) and
                                     eager_cuda.aligned(data_ptr(t)) for t in tensors]))
    t0 = time.perf_counter()
    eager_cuda.launch = collect
    try:
        for name, cshape, wshape, stride, pad, dtype, layout, swept in cases:
            ho, wo = _out_hw(cshape[1], cshape[2], wshape[2], stride, pad)
            xe, ge = _ember_operands(ember.empty((batch,) + tuple(cshape), device="cuda"),
                                     ember.empty((batch, wshape[0], ho, wo), device="cuda"),
                                     dtype, layout)
            args = ([stride] * 2, [pad] * 2, [1, 1], False, [0, 0], 1)
            out = OPS["convolution_backward_weight"](ge, xe, list(wshape), *args)
            if swept:
                for _, _, fn in _variants(xe, ge, wshape, stride, pad, out):
                    fn()
    finally:
        eager_cuda.launch = real
    eager_cuda.compile_kernels(requests, 0)
    return time.perf_counter() - t0


def _rel_err(got, want) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30))


def run_case(torch, name, batch, cshape, wshape, stride, pad, dtype, layout, reps, sweep,
             old_route):
    c, h, w = cshape
    ho, wo = _out_hw(h, w, wshape[2], stride, pad)
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal((batch, c, h, w), dtype=np.float32)
    g_np = rng.standard_normal((batch, wshape[0], ho, wo), dtype=np.float32)
    tdt = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    xt = torch.from_numpy(x_np).cuda().to(tdt).contiguous(memory_format=fmt)
    gt = torch.from_numpy(g_np).cuda().to(tdt).contiguous(memory_format=fmt)
    wt = torch.empty(wshape, device="cuda", dtype=tdt)
    xe, ge = _ember_operands(ember.tensor(x_np).cuda(), ember.tensor(g_np).cuda(), dtype, layout)
    args = ([stride] * 2, [pad] * 2, [1, 1], False, [0, 0], 1)

    def torch_wgrad():
        return torch.ops.aten.convolution_backward(gt, xt, wt, None, *args,
                                                   [False, True, False])[1]

    def ember_wgrad():
        return OPS["convolution_backward_weight"](ge, xe, list(wshape), *args)

    want = torch_wgrad().float().cpu().numpy()
    got = ember_wgrad().float().cpu().numpy()
    row = {"case": name, "dtype": dtype, "layout": layout, "err": _rel_err(got, want)}
    row["cudnn_ms"] = _torch_graph_ms(torch, torch_wgrad, reps)
    row["ember_ms"] = _ember_graph_ms(ember_wgrad, reps)
    if old_route:
        real = eager_cuda_training._split_k_pays
        eager_cuda_training._split_k_pays = lambda *a: False
        try:
            row["old_err"] = _rel_err(ember_wgrad().float().cpu().numpy(), want)
            row["old_ms"] = _ember_graph_ms(ember_wgrad, reps)
        finally:
            eager_cuda_training._split_k_pays = real
    if sweep:
        row["sweep"] = {}
        for label, split, fn in _variants(xe, ge, wshape, stride, pad, ember_wgrad()):
            try:
                err = _rel_err(fn().float().cpu().numpy(), want)
                row["sweep"][label] = (_ember_graph_ms(fn, reps), split.splits, err)
            except Exception as exc:  # noqa: BLE001 - a variant that does not fit
                row["sweep"][label] = (float("nan"), split.splits, repr(exc)[:80])
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--sweep", action="store_true")
    p.add_argument("--old-route", action="store_true",
                   help="also time the per-sample grouped convolution route")
    p.add_argument("--quick", action="store_true", help="five shapes, float32 channels-last")
    p.add_argument("--write", action="store_true")
    args = p.parse_args(argv)
    import torch
    if not (torch.cuda.is_available() and ember.cuda.is_available()):
        print("needs a CUDA GPU for both ember and torch")
        return 1
    ember.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    gpu = ember.cuda.get_device_name()
    print(f"GPU: {gpu}, batch {args.batch}, {args.reps} calls per graph replay")
    combos = [("float32", "channels_last"), ("float32", "nchw"), ("bfloat16", "channels_last")]
    if args.quick:
        combos = combos[:1]
    cases = [(name, cshape, wshape, stride, pad, dtype, layout, args.sweep and name in SWEPT)
             for dtype, layout in combos for name, cshape, wshape, stride, pad in SHAPES
             if not args.quick or name in QUICK]
    try:
        print(f"compiled the kernels in {precompile(cases, args.batch):.1f} s", flush=True)
    except Exception as exc:  # noqa: BLE001 - the timed calls then compile as they go
        print(f"precompile failed ({type(exc).__name__}: {exc}); compiling on first use")
    rows = []
    for name, cshape, wshape, stride, pad, dtype, layout, swept in cases:
        try:
            row = run_case(torch, name, args.batch, cshape, wshape, stride, pad, dtype,
                           layout, args.reps, swept, old_route=args.old_route)
        except Exception as exc:  # noqa: BLE001 - report and go on with the other rows
            print(f"{name} {dtype} {layout}: FAILED {type(exc).__name__}: {exc}"[:300])
            continue
        rows.append(row)
        old = f" old {row['old_ms']:.3f}" if "old_ms" in row else ""
        print(f"{name:20s} {dtype:8s} {layout:13s} cudnn {row['cudnn_ms']:.3f} ms  "
              f"ember {row['ember_ms']:.3f} ms{old}  ratio {row['cudnn_ms'] / row['ember_ms']:.2f}x"
              f"  err {row['err']:.1e}", flush=True)
        for label, (ms, splits, err) in row.get("sweep", {}).items():
            print(f"    {label:16s} {ms:.3f} ms  splits {splits}  err {err}", flush=True)
    if args.write:
        out = _HERE / "results" / f"cuda_conv_wgrad_{gpu.replace(' ', '_')}.json"
        out.write_text(json.dumps({"gpu": gpu, "batch": args.batch, "rows": rows}, indent=1))
        print("wrote", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
