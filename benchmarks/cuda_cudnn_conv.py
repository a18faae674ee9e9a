"""Convolutions on a GPU, per shape and direction: ember's Triton route against cuDNN run by
ember (the cuDNN frontend package, frontend/cudnn_conv.py) and against torch's cuDNN, on
resnet18's layer shapes (batch 64, 224x224) and small_cnn's (64x64), channels-last.

    python benchmarks/cuda_cudnn_conv.py [--batch 64] [--dtype float32|bfloat16]
        [--no-tf32] [--reps 20] [--quick] [--write]

Times are GPU milliseconds per call: `reps` calls captured as one CUDA graph (ember's
ember.cuda.CUDAGraph, torch's torch.cuda.CUDAGraph), the median of 5 replays; host
overhead is out, as inside a compiled step replayed as one graph (this also checks that
ember's cuDNN launches are capturable). Directions: fprop (F.conv2d), dgrad
(convolution_backward_input), wgrad (convolution_backward_weight); ember's side is forced
with EMBER_CONV_BACKEND per column. `pick` is the side ember's timing recorded in the
autotune cache (auto mode). float32 is TF32 on both sides unless --no-tf32.
--write saves benchmarks/results/cuda_cudnn_conv_<gpu>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]   # cuda.bindings
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402

import ember  # noqa: E402
from benchmarks.cuda_conv_wgrad import SHAPES, _ember_graph_ms, _torch_graph_ms  # noqa: E402
from ember.frontend import cudnn_conv  # noqa: E402
from ember.ir.registry import OPS  # noqa: E402

QUICK = {"r18.conv1", "r18.layer1", "r18.layer3.0.conv1", "r18.layer4"}


def _ember_calls(x, w, g, stride, pad):
    s, p, d = [stride, stride], [pad, pad], [1, 1]
    return {"fprop": lambda: ember.nn.functional.conv2d(x, w, None, stride, pad),
            "dgrad": lambda: OPS["convolution_backward_input"](
                g, w, list(x.shape), s, p, d, False, [0, 0], 1),
            "wgrad": lambda: OPS["convolution_backward_weight"](
                g, x, list(w.shape), s, p, d, False, [0, 0], 1)}


def _torch_calls(torch, x, w, g, stride, pad):
    conv_bw = torch.ops.aten.convolution_backward
    args = ([stride, stride], [pad, pad], [1, 1], False, [0, 0], 1)
    return {"fprop": lambda: torch.nn.functional.conv2d(x, w, None, stride, pad),
            "dgrad": lambda: conv_bw(g, x, w, None, *args, [True, False, False]),
            "wgrad": lambda: conv_bw(g, x, w, None, *args, [False, True, False])}


def _with_backend(mode: str, fn):
    os.environ["EMBER_CONV_BACKEND"] = mode
    return fn()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--no-tf32", action="store_true")
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--write", action="store_true")
    args = p.parse_args(argv)
    import torch
    tf32 = not args.no_tf32
    ember.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True
    gpu = ember.cuda.get_device_name()
    print(f"GPU: {gpu} | cuDNN (ember) {ember.backends.cudnn.version()} | torch cuDNN "
          f"{torch.backends.cudnn.version()} | {args.dtype}{' TF32' if tf32 and args.dtype == 'float32' else ''}")
    if not ember.backends.cudnn.is_available():
        print("cuDNN frontend not available to ember:",
              __import__("ember.runtime.cuda.cudnn", fromlist=["x"]).unavailable_reason())
    rng = np.random.default_rng(0)
    rows = []
    print(f"{'shape':22} {'dir':6} {'triton':>8} {'cudnn':>8} {'torch':>8} {'pick':>7}")
    et, tt = getattr(ember, args.dtype), getattr(torch, args.dtype)
    for name, (c, h, w_), wshape, stride, pad in SHAPES:
        if args.quick and name not in QUICK:
            continue
        n = args.batch
        ho, wo = (h + 2 * pad - wshape[2]) // stride + 1, (w_ + 2 * pad - wshape[3]) // stride + 1
        xh = rng.standard_normal((n, c, h, w_)).astype(np.float32)
        wh = (rng.standard_normal(wshape) / np.sqrt(np.prod(wshape[1:]))).astype(np.float32)
        gh = rng.standard_normal((n, wshape[0], ho, wo)).astype(np.float32)
        cl = ember.channels_last
        xe, we, ge = (ember.tensor(a).cuda().to(et).contiguous(memory_format=cl)
                      for a in (xh, wh, gh))
        xt, wt, gt = (torch.from_numpy(a).cuda().to(tt).contiguous(
            memory_format=torch.channels_last) for a in (xh, wh, gh))
        ours, theirs = _ember_calls(xe, we, ge, stride, pad), _torch_calls(torch, xt, wt, gt,
                                                                              stride, pad)
        for kind in ("fprop", "dgrad", "wgrad"):
            row = {"shape": name, "dir": kind}
            for mode in ("triton", "cudnn"):
                try:
                    row[mode] = _with_backend(mode, lambda: _ember_graph_ms(ours[kind],
                                                                            args.reps))
                except Exception as err:  # noqa: BLE001 - report and go on
                    row[mode] = None
                    print(f"  {name} {kind} {mode}: {type(err).__name__}: {str(err)[:200]}")
            row["torch"] = _torch_graph_ms(torch, theirs[kind], args.reps)
            os.environ["EMBER_CONV_BACKEND"] = "auto"
            cudnn_conv._memo.clear()
            ours[kind]()
            row["pick"] = "cudnn" if any(v[1] < v[0] for v in cudnn_conv._memo.values()) \
                else "triton"
            cudnn_conv._memo.clear()
            rows.append(row)
            fmt = (lambda v: f"{v:8.3f}" if v is not None else "       -")
            print(f"{name:22} {kind:6} {fmt(row['triton'])} {fmt(row['cudnn'])} "
                  f"{fmt(row['torch'])} {row['pick']:>7}", flush=True)
    for kind in ("fprop", "dgrad", "wgrad"):
        sel = [r for r in rows if r["dir"] == kind and r["triton"] and r["cudnn"]]
        best = sum(min(r["triton"], r["cudnn"]) for r in sel)
        print(f"sum {kind}: triton {sum(r['triton'] for r in sel):.3f} cudnn "
              f"{sum(r['cudnn'] for r in sel):.3f} best-of {best:.3f} torch "
              f"{sum(r['torch'] for r in sel):.3f}")
    if args.write:
        out = _HERE / "results" / f"cuda_cudnn_conv_{gpu.replace(' ', '_')}.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps({"gpu": gpu, "dtype": args.dtype, "tf32": tf32,
                                   "batch": args.batch, "rows": rows}, indent=1))
        print("wrote", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
