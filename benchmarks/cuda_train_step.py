"""Time one training step of the built-in small_cnn (3 input channels, batch 64, 64x64,
CrossEntropyLoss, SGD momentum 0.9) on the GPU: ember compiled
(compile_train_step(backend="triton")), ember eager, and torch eager with the same
weights; prints the host-fallback warnings ember emitted.

    python benchmarks/cuda_train_step.py [--steps N] [--warmup N] [--smoke] [--write]

Wall-clock per step after warmup: one ember.utils.benchmark.Timer block of N steps, the
GPU synchronized before and after it by the Timer's clock. Prints the rows, and whether
the compiled step replays as one CUDA graph (its node count); --write (or --out PATH)
writes them as JSON to benchmarks/results/cuda_train_step_<gpu>.json.
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


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--skip-eager", action="store_true")
    p.add_argument("--smoke", action="store_true", help="2 steps after 1 warmup step")
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
    rng = np.random.default_rng(0)
    x_host = rng.standard_normal((64, 3, 64, 64), dtype=np.float32)
    y_host = rng.integers(0, 10, 64)
    base = ember.models.small_cnn(in_channels=3)
    x, y = ember.tensor(x_host).cuda(), ember.tensor(y_host).cuda()
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
    tmodel = _torch_model(base)
    topt = torch.optim.SGD(tmodel.parameters(), lr=0.01, momentum=0.9)
    tx, ty = torch.from_numpy(x_host).cuda(), torch.from_numpy(y_host).cuda()
    tloss = torch.nn.CrossEntropyLoss()
    tfirst = tloss(tmodel(tx), ty).item()

    def teager():
        loss = tloss(tmodel(tx), ty)
        loss.backward()
        topt.step()
        topt.zero_grad()
    rows["torch_eager_ms"] = _timed(teager, args.warmup, args.steps, "torch")
    rows["first_loss_ember_vs_torch"] = (first, tfirst)
    rows["host_fallbacks"] = fallbacks
    rows["ratio_torch_eager_over_ember_compiled"] = \
        rows["torch_eager_ms"] / rows["ember_compiled_ms"]
    for k, v in rows.items():
        print(f"{k}: {v}")
    if args.write or args.out:
        gpu = ember.cuda.get_device_name()
        tag = "h200" if "H200" in gpu else "h100" if "H100" in gpu else "gpu"
        out = args.out or _HERE / "results" / f"cuda_train_step_{tag}.json"
        meta = {"gpu": gpu, "torch": torch.__version__, "steps": args.steps,
                "model": "small_cnn(3 channels), batch 64, 64x64, CrossEntropyLoss, SGD 0.9"}
        out.write_text(json.dumps({"benchmark": "cuda_train_step", "meta": meta,
                                   "rows": rows}, indent=2) + "\n")
        print("wrote", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
