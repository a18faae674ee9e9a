"""Time one eager `opt.step()` on the GPU over a built-in model's parameters (resnet18 by
default, or the transformer classifier): ember's multi-tensor kernel (one launch per
parameter group, the default on CUDA), ember's per-tensor update (foreach=False: one
kernel per operation per parameter), torch's foreach (its CUDA default) and torch's
fused kernel, same shapes, same gradients, float32.

    python benchmarks/cuda_optimizer.py [--model transformer] [--steps N] [--rounds N]
        [--write | --out PATH]

Milliseconds per step: interleaved rounds of N steps each (benchmarks/common.py), the GPU
synchronized around each block by the clock of the library timed; medians. --write
writes benchmarks/results/cuda_optimizer_<model>.json.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]   # cuda.bindings
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402

import ember  # noqa: E402
from benchmarks.common import interleaved  # noqa: E402

OPTIMIZERS = {
    "SGD momentum": ("SGD", dict(lr=0.01, momentum=0.9, weight_decay=1e-4)),
    "AdamW": ("AdamW", dict(lr=1e-3, weight_decay=1e-2)),
}


def _shapes(model: str) -> list[tuple]:
    if model == "transformer":
        net = ember.models.transformer_classifier(vocab_size=1000, d_model=512, nhead=8,
                                                  num_layers=2, dim_feedforward=2048,
                                                  max_len=128, dropout=0.0)
    else:
        net = ember.models.resnet18(num_classes=1000)
    return [tuple(p.shape) for p in net.parameters()]


def _ember_step(shapes, cls: str, kw: dict, flags: dict):
    rng = np.random.default_rng(0)
    params = [ember.nn.Parameter(ember.tensor(rng.standard_normal(s).astype(np.float32))
                                 .cuda()) for s in shapes]
    for p in params:
        p.grad = ember.tensor(rng.standard_normal(p.shape).astype(np.float32)).cuda()
    opt = getattr(ember.optim, cls)(params, **kw, **flags)
    return opt.step


def _torch_step(shapes, cls: str, kw: dict, flags: dict):
    import torch
    params = [torch.nn.Parameter(torch.randn(s, device="cuda")) for s in shapes]
    for p in params:
        p.grad = torch.randn_like(p)
    opt = getattr(torch.optim, cls)(params, **kw, **flags)
    return opt.step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18", choices=["resnet18", "transformer"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args()
    shapes = _shapes(args.model)
    count = sum(int(np.prod(s)) for s in shapes)
    gpu = ember.cuda.get_device_name(0)
    print(f"{args.model}: {len(shapes)} tensors, {count / 1e6:.1f}M parameters, {gpu}")
    rows = []
    for label, (cls, kw) in OPTIMIZERS.items():
        fns = {"ember multi-tensor": _ember_step(shapes, cls, kw, {}),
               "ember per-tensor": _ember_step(shapes, cls, kw, {"foreach": False}),
               "torch foreach": _torch_step(shapes, cls, kw, {"foreach": True}),
               "torch fused": _torch_step(shapes, cls, kw, {"fused": True})}
        if cls == "AdamW":
            fns["ember fused (device step)"] = _ember_step(shapes, cls, kw, {"fused": True})
        found = interleaved(fns, 3, args.rounds, inner=args.steps)
        ms = {k: m.median * 1e3 for k, m in found.items()}
        for key, value in ms.items():
            ratio = ms["torch foreach"] / value
            print(f"  {label:14s} {key:26s} {value:8.3f} ms   {ratio:5.2f}x torch foreach")
            rows.append({"optimizer": label, "impl": key, "ms": value,
                         "vs_torch_foreach": ratio})
    if args.write or args.out:
        out = Path(args.out or _HERE / "results" / f"cuda_optimizer_{args.model}.json")
        out.write_text(json.dumps({"gpu": gpu, "model": args.model, "tensors": len(shapes),
                                   "parameters": count, "steps": args.steps,
                                   "rounds": args.rounds, "rows": rows}, indent=2) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
