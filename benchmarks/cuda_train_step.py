"""Time one training step of a built-in model (small_cnn by default, or resnet18
channels-last; 3 input channels, batch 64, 64x64 unless --size, CrossEntropyLoss, SGD
momentum 0.9) on the GPU: ember compiled (compile_train_step(backend="triton")), ember
eager, and torch eager with the same weights; prints the host-fallback warnings ember
emitted. float32 GEMMs and convolutions are exact float32 in both unless --tf32 (then
TF32 in both: ember's allow_tf32, torch's matmul and cuDNN flags).

--model transformer | mlp: benchmarks/cuda.py's training rows of those names (a
TransformerEncoderLayer(512, 8 heads, 2048, dropout 0, batch_first), batch 32 x 128
tokens, MSELoss, AdamW; ember.models.mlp(), batch 64, CrossEntropyLoss, Adam), ember
compiled against torch eager, --bf16 with the forward and loss under autocast in both.
--no-split-k and --no-staging compile without split-K GEMMs / without the K-major
copies of TF32 GEMM operands (codegen/triton/gemm.py), to compare.

    python benchmarks/cuda_train_step.py [--model resnet18|small_cnn|transformer|mlp]
        [--size 224] [--tf32] [--bf16] [--steps N] [--warmup N] [--smoke] [--no-split]
        [--no-split-k] [--no-staging] [--profile N] [--write | --out PATH]

Wall-clock per step after warmup: one ember.utils.benchmark.Timer block of N steps, the
GPU synchronized before and after it by the Timer's clock. Prints the rows, and whether
the compiled step replays as one CUDA graph (its node count); --write (or --out PATH)
writes them as JSON to benchmarks/results/cuda_train_step_<model>_<gpu>.json.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
import warnings
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]   # cuda.bindings
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402

import ember  # noqa: E402
from benchmarks.common import interleaved  # noqa: E402


def _timed(step, warmup: int, steps: int, key: str) -> float:
    """Milliseconds per step: `warmup` untimed steps, then one ember Timer block of
    `steps` steps. The Timer's clock synchronizes the GPU before each reading (ember's
    for "ember..." keys, torch's for "torch..."), as PyTorch's Timer does."""
    for _ in range(warmup):
        step()
    return interleaved({key: step}, 0, 1, inner=steps)[key].median * 1e3


def _profile(label: str, step, top: int, steps: int = 10) -> None:
    """The kernels of `steps` steps as CUPTI sees them (torch.profiler records every
    kernel of the process, ember's driver-API launches and graph replays included):
    kernel count per step, GPU busy time per step, and the `top` costliest kernels."""
    import torch
    from torch.profiler import ProfilerActivity, profile
    step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    by_name: dict[str, list[float]] = {}
    for e in kernels:
        by_name.setdefault(e.name, []).append(e.time_range.elapsed_us())
    busy = sum(sum(v) for v in by_name.values()) / steps / 1e3
    first = min((e.time_range.start for e in kernels), default=0)
    last = max((e.time_range.end for e in kernels), default=0)
    print(f"[profile {label}] {len(kernels) / steps:.0f} GPU activities/step, GPU busy "
          f"{busy:.3f} ms/step, first-to-last span {(last - first) / steps / 1e3:.3f} ms/step")
    rows = sorted(by_name.items(), key=lambda kv: -sum(kv[1]))[:top]
    for name, times in rows:
        each = len(times) // steps
        split = f"  [{', '.join(f'{t / 1e3:.3f}' for t in times[:each])}]" if each > 1 else ""
        print(f"  {sum(times) / steps / 1e3:8.4f} ms/step  x{len(times) / steps:4.1f}  "
              f"{name[:90]}{split}")


def _torch_model(model):
    import torch
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.BatchNorm2d(32),
        torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.AdaptiveAvgPool2d((1, 1)),
        torch.nn.Flatten(), torch.nn.Linear(32, 10))
    state = {k: torch.from_numpy(v.detach().cpu().numpy().copy())
             for k, v in model.state_dict().items()}
    net.load_state_dict(state)
    return net.cuda()


def _torch_net(name: str, model):
    """torch's twin of ember's model, with the same weights, on the GPU."""
    import torch
    if name == "small_cnn":
        return _torch_model(model)
    from benchmarks.common import torch_resnet18
    net = torch_resnet18(num_classes=10)
    state = {k: torch.from_numpy(v.detach().cpu().numpy().copy())
             for k, v in model.state_dict().items()}
    net.load_state_dict(state)
    return net.cuda().to(memory_format=torch.channels_last)


MODELS = {"small_cnn": lambda: ember.models.small_cnn(in_channels=3),
          "resnet18": lambda: ember.models.resnet18(num_classes=10)}
SEQUENCE_MODELS = ("transformer", "mlp")       # benchmarks/cuda.py's training rows


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=list(MODELS) + list(SEQUENCE_MODELS),
                   default="small_cnn")
    p.add_argument("--bf16", action="store_true",
                   help="transformer/mlp: forward and loss under bfloat16 autocast")
    p.add_argument("--no-split-k", action="store_true",
                   help="compile without split-K GEMMs (one program per output tile)")
    p.add_argument("--no-staging", action="store_true",
                   help="compile without the K-major copies of TF32 GEMM operands")
    p.add_argument("--size", type=int, default=64, help="image height and width")
    p.add_argument("--tf32", action="store_true", help="TF32 GEMM/conv in ember and torch")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--skip-eager", action="store_true")
    p.add_argument("--no-split", action="store_true",
                   help="compile without split reductions (codegen/triton/split_reduce.py): "
                        "the single-kernel BatchNorm reductions, for comparison")
    p.add_argument("--smoke", action="store_true", help="2 steps after 1 warmup step")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="print the N kernels taking most GPU time per step (torch.profiler's "
                        "CUPTI trace of the compiled ember step and of torch eager)")
    p.add_argument("--write", action="store_true", help="write the rows as JSON")
    p.add_argument("--out", type=Path, help="where --write writes (implies --write)")
    args = p.parse_args(argv)
    if args.smoke:
        args.steps, args.warmup = 2, 1
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if not ember.cuda.is_available():
        raise SystemExit("cuda_train_step: needs a CUDA device visible to ember "
                         "(ember.cuda.is_available() is False)")
    import torch
    ember.backends.cuda.matmul.allow_tf32 = args.tf32
    from ember.compiler.compile_cuda import CudaBackend
    if args.no_split:
        CudaBackend.split_reductions = False
    if args.no_split_k:
        from ember.codegen.triton import gemm
        gemm.MIN_SPLIT_K = 1 << 62
    if args.no_staging:
        CudaBackend.stage_tf32_operands = False
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = args.tf32
    if args.model in SEQUENCE_MODELS:
        return _sequence_model(args)
    rng = np.random.default_rng(0)
    x_host = rng.standard_normal((64, 3, args.size, args.size), dtype=np.float32)
    y_host = rng.integers(0, 10, 64)
    base = MODELS[args.model]()
    channels_last = args.model == "resnet18"
    x = ember.tensor(x_host).cuda()
    if channels_last:
        x = x.contiguous(memory_format=ember.channels_last)
        base = base.to(memory_format=ember.channels_last)
    y = ember.tensor(y_host).cuda()
    loss_fn = ember.nn.CrossEntropyLoss()
    print("GPU:", ember.cuda.get_device_name())
    rows = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = copy.deepcopy(base).cuda()
        opt = ember.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        step = ember.compile_train_step(model, loss_fn, opt, backend="triton")
        t0 = time.perf_counter()
        first = step(x, y).item()
        rows["ember_compiled_first_call_s"] = time.perf_counter() - t0
        rows["ember_compiled_ms"] = _timed(lambda: step(x, y), args.warmup, args.steps,
                                           "ember")
        graph = getattr(step.last.plan, "graph", None)
        rows["ember_compiled_cuda_graph_nodes"] = graph.node_count if graph else None
        if not args.skip_eager:
            model = copy.deepcopy(base).cuda()
            opt = ember.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

            def eager():
                loss = loss_fn(model(x), y)
                loss.backward()
                opt.step()
                opt.zero_grad()
            rows["ember_eager_ms"] = _timed(eager, args.warmup, args.steps,
                                            "ember")
    fallbacks = sorted({str(w.message).split(":")[0] for w in caught
                        if "runs on the host" in str(w.message)})
    import torch
    tmodel = _torch_net(args.model, base)
    topt = torch.optim.SGD(tmodel.parameters(), lr=0.01, momentum=0.9)
    tx, ty = torch.from_numpy(x_host).cuda(), torch.from_numpy(y_host).cuda()
    if channels_last:
        tx = tx.contiguous(memory_format=torch.channels_last)
    tloss = torch.nn.CrossEntropyLoss()
    tfirst = tloss(tmodel(tx), ty).item()

    def teager():
        loss = tloss(tmodel(tx), ty)
        loss.backward()
        topt.step()
        topt.zero_grad()
    rows["torch_eager_ms"] = _timed(teager, args.warmup, args.steps, "torch")
    if args.profile:
        _profile("ember compiled", lambda: step(x, y), args.profile)
        _profile("torch eager", teager, args.profile)
    rows["first_loss_ember_vs_torch"] = (first, tfirst)
    rows["host_fallbacks"] = fallbacks
    rows["ratio_torch_eager_over_ember_compiled"] = \
        rows["torch_eager_ms"] / rows["ember_compiled_ms"]
    for k, v in rows.items():
        print(f"{k}: {v}")
    if args.write or args.out:
        gpu = ember.cuda.get_device_name()
        tag = "h200" if "H200" in gpu else "h100" if "H100" in gpu else "gpu"
        out = args.out or _HERE / "results" / f"cuda_train_step_{args.model}_{tag}.json"
        meta = {"gpu": gpu, "torch": torch.__version__, "steps": args.steps,
                "model": f"{args.model} (3 channels, 10 classes), batch 64, "
                         f"{args.size}x{args.size}{', channels-last' if channels_last else ''}, "
                         "CrossEntropyLoss, SGD momentum 0.9",
                "tf32": args.tf32, "split_reductions": not args.no_split}
        out.write_text(json.dumps({"benchmark": "cuda_train_step", "meta": meta,
                                   "rows": rows}, indent=2) + "\n")
        print("wrote", out)
    return 0


def _sequence_model(args) -> int:
    """benchmarks/cuda.py's transformer or MLP training row: ember compiled against torch
    eager (same weights and batch), --bf16 under autocast; --profile N lists both steps'
    costliest kernels."""
    import torch
    from benchmarks import cuda as rows_bench
    spec = rows_bench.specs(False)[args.model]
    model, twin, x_host, y_host = rows_bench.build(spec)
    print("GPU:", ember.cuda.get_device_name(), f"| {args.model}",
          "bf16 autocast" if args.bf16 else f"float32 ({'TF32' if args.tf32 else 'IEEE'})")
    rows = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, step = rows_bench.ember_step(spec, model, args.bf16)
        x, y = rows_bench.Devices().ember_in(spec, x_host, y_host)
        t0 = time.perf_counter()
        first = step(x, y).item()
        rows["ember_compiled_first_call_s"] = time.perf_counter() - t0
        rows["ember_compiled_ms"] = _timed(lambda: step(x, y), args.warmup, args.steps,
                                           "ember")
    graph = getattr(step.last.plan, "graph", None)
    rows["ember_compiled_cuda_graph_nodes"] = graph.node_count if graph else None
    twin, tstep = rows_bench.torch_step(spec, twin, "cuda", args.bf16)
    tx, ty = rows_bench.torch_inputs(spec, x_host, y_host, "cuda")
    tfirst = tstep(tx, ty).item()
    rows["torch_eager_ms"] = _timed(lambda: tstep(tx, ty), args.warmup, args.steps, "torch")
    if args.profile:
        _profile("ember compiled", lambda: step(x, y), args.profile)
        _profile("torch eager", lambda: tstep(tx, ty), args.profile)
    rows["first_loss_ember_vs_torch"] = (first, tfirst)
    rows["host_fallbacks"] = sorted({str(w.message).split(":")[0] for w in caught
                                     if "runs on the host" in str(w.message)})
    rows["ratio_torch_eager_over_ember_compiled"] = \
        rows["torch_eager_ms"] / rows["ember_compiled_ms"]
    for k, v in rows.items():
        print(f"{k}: {v}")
    if args.write or args.out:
        gpu = ember.cuda.get_device_name()
        tag = "h200" if "H200" in gpu else "h100" if "H100" in gpu else "gpu"
        out = args.out or _HERE / "results" / \
            f"cuda_train_step_{args.model}{'_bf16' if args.bf16 else ''}_{tag}.json"
        meta = {"gpu": gpu, "torch": torch.__version__, "steps": args.steps,
                "model": args.model, "bf16": args.bf16, "tf32": args.tf32,
                "split_k": not args.no_split_k, "staging": not args.no_staging}
        out.write_text(json.dumps({"benchmark": "cuda_train_step", "meta": meta,
                                   "rows": rows}, indent=2) + "\n")
        print("wrote", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
