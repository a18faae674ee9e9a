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
    add_common_options(p, "quant_cuda")
    args = finish_args(p.parse_args(argv))
    if args.smoke:
        args.size, args.inner = 64, 1
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
    fns = {"ember": ember_call, "torch._int_mm": torch_call}
    found = interleaved(fns, args.warmup, args.repeats, inner=args.inner,
                        clocks={k: torch_clock for k in fns})
    ops = 2.0 * n ** 3
    e_s, t_s = found["ember"].median, found["torch._int_mm"].median
    device_name = torch.cuda.get_device_name() if device == "cuda" else "Triton interpreter"
    print(f"int8 GEMM {n}^3 on {device_name}")
    print(f"{'':14}{'median ms':>11}{'TOPS':>9}")
    for key, sec in (("ember", e_s), ("torch._int_mm", t_s)):
        print(f"{key:14}{sec * 1e3:>11.3f}{ops / sec / 1e12:>9.1f}")
    print(f"ratio torch._int_mm / ember: {t_s / e_s:.2f}x (ember's result: "
          f"{exact:.4%} of the first {rows} rows identical to the reference, max "
          f"{max_steps} step)")
    if args.save:
        results = {"device": device_name, "host": platform.node(), "size": n,
                   "config": config.constexprs(), "num_warps": config.num_warps,
                   "num_stages": config.num_stages,
                   "ember": stats(found["ember"], args.warmup),
                   "torch._int_mm": stats(found["torch._int_mm"], args.warmup),
                   "ratio_torch_over_ember": t_s / e_s, "reference_identical": exact,
                   "reference_max_steps": max_steps}
        path = _HERE / "results" / "quant_cuda.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(results, indent=1))
        print(f"wrote {path}")
    return 0 if max_steps <= 1 else 2


if __name__ == "__main__":
    sys.exit(main())
