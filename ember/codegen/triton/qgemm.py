"""int8 GEMM and implicit-GEMM conv2d for quantized_linear / quantized_conv2d as generated
Triton kernels: tensor-core `tl.dot` on int8 operands accumulating in int32, with the
requantization in the epilogue.

Operands are what the CPU int8 kernels take: a per-tensor quint8 activation (scale
`x_scale`, zero point `x_zp`) and a qint8 weight with zero points 0 (symmetric: every
default weight observer), per tensor or per output channel. Tensor cores multiply
signed bytes, so the activation is shifted into int8 inside the K loop and the shift
is undone with the weight's row sums:

    acc[m, n]  = sum_k (x[m, k] - 128) * w[n, k]                  (int8 x int8 -> int32)
               + (128 - x_zp) * wsum[n]      wsum[n] = sum_k w[n, k]   = sum_k (x - x_zp) w
    raw[m, n]  = fma(bias_term[n], factor, float32(acc))
    out[m, n]  = clamp(rint(raw * mult[n]) + zp, 0 | zp (relu), 255)

with mult = x_scale * w_scale / scale and the bias term and factor of torch.ao's (fbgemm's)
requantization (ir/quantized.py `requant_columns`: factor 1 and bias / (x_scale * w_scale)
for per-channel weights, the bias and 1 / (x_scale * w_scale) for per-tensor ones). That is
the NumPy reference's arithmetic step for step (ir/ops/quantized.py `requantize`): the
integer sums are exact and each float32 step is one operation (the fma explicit, nothing
left for the compiler to contract), so results are bit-identical to the reference and to
torch.ao. Convolution padding reads the activation's zero point (a real 0), masked K
steps read weight 0. A zero point of 128..255 is selected after a load that fills 0, not
given as the load's `other`: Triton 3.6 fills the words of a vectorized masked 8-bit load
with the sign-extended constant (131 -> bytes 131, 255, 255, 255), which made the conv
wrong on an H100 wherever a window covered padding (source.masked_load).

The tile loops are gemm.py's: MatmulProblem (A [M, K] row-major, W stored [N, K]) and
ConvProblem (NHWC-strided input, groups over program_id(1)) say how tiles are addressed;
`generate_qgemm` swaps the float accumulator and dot for the int8 ones and writes the
requantizing epilogue. Output qparams and the activation zero point are literals of the
kernel (as the sizes are); `mult`, `wsum` and the bias are device vectors prepared once
per weight (`weight_vectors`).
"""
from __future__ import annotations

import math
import re

import numpy as np

from ...ir.dtypes import uint8
from ...ir.errors import LoweringError
from ...ir.quantized import requant_columns
from .gemm import ConvProblem, GemmConfig, MatmulProblem, _main_loop
from .source import GeneratedKernel, LaunchSpec, fill_needs_select, function_name

# int8 dot tiles: K steps of 64 bytes feed the tensor cores (mma k=32 for int8)
QGEMM_CONFIG = GemmConfig(block_m=128, block_n=128, block_k=64, group_m=8, num_warps=8,
                          num_stages=3)


def linear_problem(m: int, n: int, k: int) -> MatmulProblem:
    """quantized_linear: x (M, K) row-major quint8, weight (N, K) qint8, out (M, N)."""
    return MatmulProblem(m, n, k, uint8, uint8, (m * k, k, 1), (0, 1, k), (m * n, n, 1))


def conv_problem(x_shape, x_strides, w_shape, out_strides, stride, padding, dilation,
                 groups) -> ConvProblem:
    """quantized_conv2d: the weight is read as OHWI (each K step is consecutive channels,
    which the caller packs once per weight)."""
    cout, cin_g, kh, kw = w_shape
    ohwi = (cin_g * kh * kw, 1, kw * cin_g, cin_g)
    return ConvProblem(tuple(x_shape), tuple(x_strides), tuple(w_shape), ohwi,
                       tuple(out_strides), tuple(stride), tuple(padding), tuple(dilation),
                       groups, uint8, uint8)


def generate_qgemm(problem, x_zero_point: int, scale: float, zero_point: int, relu: bool,
                   config: GemmConfig | None = None, name: str = "qgemm",
                   factor: float = 1.0) -> GeneratedKernel:
    """The int8 kernel for `problem` (linear_problem / conv_problem) with its epilogue;
    factor: weight_vectors' (1.0 for per-channel weights or no bias)."""
    config = config or QGEMM_CONFIG
    if not 0 <= x_zero_point <= 255 or not 0 <= zero_point <= 255:
        raise LoweringError(f"{name}: zero points must be quint8 values (0..255), got input "
                            f"{x_zero_point} and output {zero_point}")
    if config.block_k % 32:
        raise LoweringError(f"{name}: int8 tl.dot needs BLOCK_K a multiple of 32")
    fn = function_name(name)
    k_mask = problem.k % config.block_k != 0 or isinstance(problem, ConvProblem)
    padded = isinstance(problem, ConvProblem)
    body = [out for line in _main_loop(problem, config, None, k_mask)
            for out in _int8_lines(line, x_zero_point, padded)]
    factor = float(np.float32(factor))
    low = zero_point if relu else 0
    n_off = problem.bias_offset()
    body += [
        "# undo the activation's shift into int8: (128 - x_zp) * sum_k w[n, k]",
        f"wsum = tl.load(wsum_ptr + {n_off}, mask=rn < N, other=0)",
        f"acc += {128 - x_zero_point} * wsum",
        f"mult = tl.load(mult_ptr + {n_off}, mask=rn < N, other=0.0)",
        f"bias_term = tl.load(bias_ptr + {n_off}, mask=rn < N, other=0.0)",
        "# torch.ao's requantization: fma(bias term, factor, sum), times mult, rounded, + zp",
        f"raw = tl.fma(bias_term, {factor!r}, acc.to(tl.float32))",
        f"q = emath.rint(raw * mult) + {float(zero_point)!r}",
        f"q = tl.minimum(tl.maximum(q, {float(low)}), 255.0)",
        f"cidx = {problem.c_offset()}",
        "tl.store(c_ptr + cidx, q.to(tl.uint8), mask=xmask)"]
    args = [("a_ptr", "*u8"), ("b_ptr", "*i8"), ("wsum_ptr", "*i32"), ("mult_ptr", "*fp32"),
            ("bias_ptr", "*fp32"), ("c_ptr", "*u8")]
    constexprs = config.constexprs()
    params = [a for a, _ in args] + [f"{c}: tl.constexpr" for c in constexprs]
    header = [f"# int8 {problem.describe().replace('uint8', 'u8 x s8')}, x_zp {x_zero_point}, "
              f"out scale {scale!r} zp {zero_point}{', relu' if relu else ''}"]
    text = "\n".join(header + ["@triton.jit", f"def {fn}({', '.join(params)}):"]
                     + ["    " + line for line in body]) + "\n"
    grid = (math.ceil(problem.m / config.block_m) * math.ceil(problem.n / config.block_n),
            problem.batch, 1)
    launch = LaunchSpec(fn, args, constexprs, grid,
                        "(cdiv(M, BLOCK_M) * cdiv(N, BLOCK_N), groups, 1)", config.num_warps,
                        config.num_stages, ["x", "weight", "wsum", "mult", "bias", "out"])
    return GeneratedKernel(text, launch)


def _int8_lines(line: str, x_zero_point: int, padded: bool) -> list[str]:
    """gemm.py's float main loop, made int8: int32 accumulator, the activation tile shifted
    into int8 for the dot, conv padding reading the activation's zero point (a real 0) and
    masked K steps reading weight 0 (their activation bytes then do not matter)."""
    stripped = line.strip()
    indent = line[:len(line) - len(line.lstrip())]
    if stripped.startswith("acc = tl.zeros("):
        return [line.replace("tl.float32", "tl.int32")]
    if stripped.startswith("acc = tl.dot("):
        return [line.replace("acc = tl.dot(a, b, acc)",
                             "acc = tl.dot((a.to(tl.int16) - 128).to(tl.int8), b, acc, "
                             "out_dtype=tl.int32)")]
    if stripped.startswith("a = tl.load(") and padded:
        # source.masked_load's rule: a zero point with the top bit set (128..255) is
        # selected after a load filling 0 (Triton 3.6 packs it into wrong bytes)
        mask = re.search(r"mask=(\w+)", stripped).group(1)
        if not fill_needs_select(x_zero_point, uint8):
            return [line.replace("other=0.0", f"other={x_zero_point}")]
        return [line.replace("other=0.0", "other=0"),
                f"{indent}a = tl.where({mask}, a, tl.full([], {x_zero_point}, tl.uint8))"]
    if stripped.startswith(("a = tl.load(", "b = tl.load(")):
        return [line.replace("other=0.0", "other=0")]
    return [line]


def weight_vectors(w_int8: np.ndarray, w_scales: np.ndarray, x_scale: float, bias,
                   scale: float, per_tensor: bool):
    """(wsum int32 [N], mult float32 [N], bias_term float32 [N], factor) for a weight
    [N, ...] of int8 values and the output scale: what the epilogue reads per output
    channel, and generate_qgemm's factor. `w_scales` has one scale per output channel (a
    per-tensor weight, per_tensor=True, repeats its scale)."""
    n = w_int8.shape[0]
    wsum = w_int8.reshape(n, -1).astype(np.int64).sum(axis=1).astype(np.int32)
    cols = requant_columns(x_scale, w_scales, per_tensor, bias, scale, n)
    return wsum, cols.mult, cols.bias_term, cols.factor


def ohwi(w_int8: np.ndarray) -> np.ndarray:
    """A conv weight (Cout, Cin/g, KH, KW) packed as conv_problem reads it."""
    return np.ascontiguousarray(w_int8.transpose(0, 2, 3, 1))


def benchmark_problem(size: int = 4096) -> tuple[MatmulProblem, dict]:
    """The GPU benchmark's int8 GEMM (size^3) and its qparams."""
    return linear_problem(size, size, size), dict(x_zero_point=128, scale=64.0,
                                                  zero_point=128, relu=False)
