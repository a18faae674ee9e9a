"""ember's Triton int8 GEMM (codegen/triton/qgemm.py) on a GPU against torch._int_mm
(cuBLASLt int8 -> int32).

    python benchmarks/quant_cuda.py [--size 4096] [--quick] [--write]
    python benchmarks/quant_cuda.py --smoke      # no GPU needed: size 64 under Triton's interpreter

The row: C = requant(A @ W.T) with A (size x size) quint8, W (size x size) qint8 per
output channel, the int8 tensor-core dot accumulating in int32 and the requantizing
epilogue writing quint8 (what quantized_linear computes), against torch._int_mm on the
same bytes (int8 x int8 -> int32, no epilogue: cuBLAS's int8 GEMM alone). The ratio is
torch._int_mm's time over ember's (above 1: ember faster); TOPS counts 2*size^3 ops.
Before timing, ember's result is checked against the NumPy reference of quantized_linear
on the first rows (the same integers). Both run on torch's current CUDA stream, timed
by interleaved Timer blocks whose clock synchronizes torch's device. --write saves
benchmarks/results/quant_cuda.json.

A second row times the int8 implicit-GEMM conv (a resnet18 layer3 conv: batch 32,
256 -> 256 channels, 14x14, 3x3, padding 1, channels-last, input zero point 131, so the
padding reads a zero point with the top bit set) against torch's float16 cuDNN conv of
the same shape (torch has no CUDA int8 conv); its first image is checked against the
NumPy reference of quantized_conv2d.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))


def parse_args(argv=None):
    from benchmarks.common import add_common_options, finish_args
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=4096, help="M = N = K")
    p.add_argument("--inner", type=int, default=10, help="calls per timed block")
    p.add_argument("--conv-batch", type=int, default=32, help="the conv row's batch")
    add_common_options(p, "quant_cuda")
    args = finish_args(p.parse_args(argv))
    if args.smoke:
        args.size, args.inner, args.conv_batch = 64, 1, 1
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.smoke:
        os.environ.setdefault("TRITON_INTERPRET", "1")   # before triton is imported
    import numpy as np
    import torch

    from benchmarks.common import interleaved, stats, torch_clock
    from ember.codegen.triton import cache
    from ember.codegen.triton.qgemm import QGEMM_CONFIG, generate_qgemm, linear_problem, \
        weight_vectors
    from ember.ir import dtypes
    from ember.ir.ops.quantized import quantized_linear
    from ember.ir.quantized import QuantizedArray

    interpreted = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
    device = "cpu" if interpreted else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: run on the GPU machine, or --smoke for the interpreter")
        return 1
    n = args.size
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, n)).astype(np.uint8)
    w = rng.integers(-128, 128, (n, n)).astype(np.int8)
    x_scale, x_zp = 0.02, 128
    w_scales = rng.uniform(0.001, 0.01, n).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    scale, zp = float(0.02 * 0.005 * 74 * np.sqrt(n)), 128
    config = QGEMM_CONFIG
    if interpreted:
        from ember.codegen.triton.gemm import GemmConfig
        config = GemmConfig(block_m=32, block_n=32, block_k=32, group_m=2, num_warps=1,
                            num_stages=1)
    wsum, mult, b, factor = weight_vectors(w, w_scales, x_scale, bias, scale, False)
    kernel = generate_qgemm(linear_problem(n, n, n), x_zp, scale, zp, False, config,
                            name=f"qgemm_{n}", factor=factor)
    on = [torch.from_numpy(np.ascontiguousarray(a)).to(device)
          for a in (x, w, wsum, mult, b)]
    out = torch.empty(n * n, dtype=torch.uint8, device=device)
    ember_call = lambda: cache.launch(kernel, on + [out])      # noqa: E731

    # correctness on the first rows, against the NumPy reference
    ember_call()
    rows = min(n, 256)
    want = quantized_linear.reference(
        QuantizedArray(x[:rows], dtypes.quint8, x_scale, x_zp),
        QuantizedArray(w, dtypes.qint8, w_scales.astype(np.float64), np.zeros(n, np.int64), 0),
        bias, scale, zp, False).int_repr
    got = out.cpu().numpy().reshape(n, n)[:rows]
    exact = float((got == want).mean())
    max_steps = int(np.abs(got.astype(np.int32) - want.astype(np.int32)).max())

    a8 = torch.from_numpy((x.astype(np.int16) - 128).astype(np.int8)).to(device)
    w_t = torch.from_numpy(w).to(device).t()                  # (K, N) view of the K-major weight
    torch_call = lambda: torch._int_mm(a8, w_t)                # noqa: E731
    conv = _conv_case(args.conv_batch, 16 if interpreted else 256, 8 if interpreted else 14,
                      config, device)
    fns = {"ember": ember_call, "torch._int_mm": torch_call,
           "ember int8 conv": conv["ember"], "torch fp16 conv": conv["torch"]}
    found = interleaved(fns, args.warmup, args.repeats, inner=args.inner,
                        clocks={k: torch_clock for k in fns})
    ops = 2.0 * n ** 3
    e_s, t_s = found["ember"].median, found["torch._int_mm"].median
    ce_s, ct_s = found["ember int8 conv"].median, found["torch fp16 conv"].median
    device_name = torch.cuda.get_device_name() if device == "cuda" else "Triton interpreter"
    print(f"int8 GEMM {n}^3 and conv {conv['shape']} on {device_name}")
    print(f"{'':16}{'median ms':>11}{'TOPS':>9}")
    for key, sec, count in (("ember", e_s, ops), ("torch._int_mm", t_s, ops),
                            ("ember int8 conv", ce_s, conv["ops"]),
                            ("torch fp16 conv", ct_s, conv["ops"])):
        print(f"{key:16}{sec * 1e3:>11.3f}{count / sec / 1e12:>9.1f}")
    print(f"GEMM ratio torch._int_mm / ember: {t_s / e_s:.2f}x (ember's result: "
          f"{exact:.4%} of the first {rows} rows identical to the reference, max "
          f"{max_steps} step)")
    print(f"conv ratio torch fp16 / ember int8: {ct_s / ce_s:.2f}x (ember's first image: "
          f"{conv['exact']:.4%} identical to the reference, max {conv['max_steps']} step)")
    if args.save:
        results = {"device": device_name, "host": platform.node(), "size": n,
                   "config": config.constexprs(), "num_warps": config.num_warps,
                   "num_stages": config.num_stages,
                   "ember": stats(found["ember"], args.warmup),
                   "torch._int_mm": stats(found["torch._int_mm"], args.warmup),
                   "ratio_torch_over_ember": t_s / e_s, "reference_identical": exact,
                   "reference_max_steps": max_steps,
                   "conv": {"shape": conv["shape"],
                            "ember_int8": stats(found["ember int8 conv"], args.warmup),
                            "torch_fp16": stats(found["torch fp16 conv"], args.warmup),
                            "ratio_torch_fp16_over_ember": ct_s / ce_s,
                            "reference_identical": conv["exact"],
                            "reference_max_steps": conv["max_steps"]}}
        path = _HERE / "results" / "quant_cuda.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(results, indent=1))
        print(f"wrote {path}")
    return 0 if max_steps <= 1 and conv["max_steps"] == 0 else 2


def _conv_case(batch: int, channels: int, size: int, config, device: str) -> dict:
    """The int8 conv row: ember's call, torch's float16 call, and ember's first image
    against the NumPy reference (exact: the conv's requantization is the reference's)."""
    import numpy as np
    import torch

    from ember.codegen.triton import cache
    from ember.codegen.triton.qgemm import conv_problem, generate_qgemm, ohwi, weight_vectors
    from ember.ir import dtypes
    from ember.ir.ops.quantized import quantized_conv2d
    from ember.ir.quantized import QuantizedArray

    rng = np.random.default_rng(1)
    n, c, h = batch, channels, size
    x = rng.integers(0, 256, (n, c, h, h)).astype(np.uint8)
    w = rng.integers(-128, 128, (c, c, 3, 3)).astype(np.int8)
    x_scale, x_zp, scale, zp = 0.02, 131, float(0.02 * 0.005 * 74 * np.sqrt(9 * c)), 64
    w_scales = rng.uniform(0.001, 0.01, c).astype(np.float32)
    bias = rng.standard_normal(c).astype(np.float32)
    nhwc_strides = (h * h * c, 1, h * c, c)                   # NCHW indices, NHWC memory
    problem = conv_problem((n, c, h, h), nhwc_strides, (c, c, 3, 3), nhwc_strides, (1, 1),
                           (1, 1), (1, 1), 1)
    wsum, mult, b, factor = weight_vectors(w, w_scales, x_scale, bias, scale, False)
    kernel = generate_qgemm(problem, x_zp, scale, zp, True, config, name=f"qconv_{c}_{h}",
                            factor=factor)
    on = [torch.from_numpy(np.ascontiguousarray(a)).to(device)
          for a in (x.transpose(0, 2, 3, 1), ohwi(w), wsum, mult, b)]
    out = torch.empty(n * c * h * h, dtype=torch.uint8, device=device)
    ember_call = lambda: cache.launch(kernel, on + [out])      # noqa: E731
    ember_call()
    want = quantized_conv2d.reference(
        QuantizedArray(x[:1], dtypes.quint8, x_scale, x_zp),
        QuantizedArray(w, dtypes.qint8, w_scales.astype(np.float64), np.zeros(c, np.int64), 0),
        bias, (1, 1), (1, 1), (1, 1), 1, scale, zp, True).int_repr
    got = out.cpu().numpy().reshape(n, h, h, c)[:1].transpose(0, 3, 1, 2)
    steps = np.abs(got.astype(np.int32) - want.astype(np.int32))
    half = torch.float16 if device == "cuda" else torch.float32     # CPU conv: float32
    xf = torch.from_numpy(x.astype(np.float32)).to(device, half).to(
        memory_format=torch.channels_last)
    wf = torch.from_numpy(w.astype(np.float32)).to(device, half).to(
        memory_format=torch.channels_last)
    torch_call = lambda: torch.nn.functional.conv2d(xf, wf, padding=1)   # noqa: E731
    return {"ember": ember_call, "torch": torch_call, "shape": [n, c, h, h],
            "ops": 2.0 * n * h * h * c * c * 9, "exact": float((steps == 0).mean()),
            "max_steps": int(steps.max())}


if __name__ == "__main__":
    sys.exit(main())
