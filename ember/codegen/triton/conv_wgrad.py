"""The weight gradient of conv2d as a split-K implicit GEMM, reduced deterministically.

    dW[g*M + co, ci, kh, kw] = sum over (n, oh, ow) of
        grad_out[n, g*M + co, oh, ow] * x[n, g*Cin_g + ci, oh*s0 - p0 + kh*d0, ow*s1 - p1 + kw*d1]

is a GEMM per group with M = Cout/groups, N = Cin_g*KH*KW (columns ordered (kh, kw, ci),
so a channels-last input reads consecutive channels) and K = batch*Ho*Wo. K is huge and
M x N small (resnet18 at batch 64: K = 200704 against a 64 x 576 output in layer1), so
one program per output tile leaves most of the GPU idle. Here K is cut into `splits`
chunks, each program computes one (tile, chunk) partial product in float32 into a
workspace [splits, groups*M, N], and a second kernel sums the chunks in a fixed order
and writes dW in its own layout and dtype: the result is the same bit for bit on every
run (no atomics), as ember's deterministic mode requires. With one chunk the GEMM
writes dW directly.

Operands are addressed by their strides, so NCHW and channels-last inputs and gradients
take the same kernel; padding is a load mask; nothing is copied or materialized. The
partial products keep their sizes literal (the main loop divides by them) but take the
chunk of K as an argument; the ordered sum takes every size as one (source.Sizes).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ...ir.dtypes import DType
from .source import (GeneratedKernel, LaunchSpec, Sizes, function_name, literal_mode, next_pow2,
                     pointer_type, tl_type)

# programs the split aims for: about two waves on a 132-SM H100 (fewer idle SMs than one
# wave, and the workspace stays a few MiB at resnet shapes)
TARGET_PROGRAMS = 264
# each program runs at least this many K steps: below it the partial tile's store and
# the reduction cost more than the split saves
MIN_STEPS = 8
REDUCE_BLOCK = 1024


@dataclass(frozen=True)
class WeightGradProblem:
    """Shapes and strides (in elements) of one conv2d weight gradient."""
    x_shape: tuple[int, int, int, int]
    x_strides: tuple[int, int, int, int]
    g_shape: tuple[int, int, int, int]           # grad_output (N, Cout, Ho, Wo)
    g_strides: tuple[int, int, int, int]
    w_shape: tuple[int, int, int, int]           # (Cout, Cin/groups, KH, KW)
    out_strides: tuple[int, int, int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    dtype: DType
    out_dtype: DType
    precision: str | None = None                 # tl.dot input_precision for float32

    @property
    def m(self) -> int:
        return self.w_shape[0] // self.groups

    @property
    def n(self) -> int:
        return self.w_shape[1] * self.w_shape[2] * self.w_shape[3]

    @property
    def k(self) -> int:
        return self.g_shape[0] * self.g_shape[2] * self.g_shape[3]


@dataclass(frozen=True)
class SplitPlan:
    block_m: int
    block_n: int
    block_k: int
    splits: int
    chunk: int                                   # K per split, a multiple of block_k
    num_warps: int = 4
    num_stages: int = 3


def tiles_for(problem: WeightGradProblem) -> dict:
    """plan()'s tile shape for a problem, from a sweep on an H100 (Triton 3.6, resnet18's
    layers and small_cnn's at batch 64, benchmarks/cuda_conv_wgrad.py --sweep; ms per call,
    default 64x64 tiles against the pick): float32 layer4 (M 512, N 4608) 0.420 -> 0.240
    with 128x256 tiles, layer3 (256 x 2304) 0.218 -> 0.122, layer2 (128 x 1152) 0.168 ->
    0.127 with 128x64 tiles and twice the programs, layer1 (64 x 576) 0.168 -> 0.159;
    bfloat16 layer2-4 0.064-0.083 -> 0.062-0.066 with 128x128 tiles (128x256 ran 5-12x
    slower there at layer1-2). Small outputs (conv1's 64 x 147, small_cnn's 32 x 144) were
    fastest with 64x64 tiles and two waves."""
    m, n = problem.m, problem.n
    if problem.dtype.itemsize == 4:
        if m >= 256 and n >= 2048:
            return dict(max_block_m=128, max_block_n=256, num_warps=8)
        if m >= 128:
            return dict(max_block_m=128, num_warps=8, target_programs=2 * TARGET_PROGRAMS)
    elif m >= 128:
        return dict(max_block_m=128, max_block_n=128, num_warps=8)
    if m >= 64 and n >= 512:
        return dict(target_programs=2 * TARGET_PROGRAMS)
    return {}


def plan(problem: WeightGradProblem, target_programs: int = TARGET_PROGRAMS,
         max_block_m: int = 64, max_block_n: int = 64, block_k: int | None = None,
         num_warps: int = 4, num_stages: int = 3) -> SplitPlan:
    """Tile sizes and the split of K: enough (tile, chunk) programs to fill the GPU, each
    with at least MIN_STEPS K steps. The keyword arguments are for benchmarks that sweep
    tile shapes (benchmarks/cuda_conv_wgrad.py); the route passes tiles_for(problem)."""
    block_m = min(max_block_m, max(16, next_pow2(problem.m)))
    block_n = min(max_block_n, max(16, next_pow2(problem.n)))
    block_k = block_k or (32 if problem.dtype.itemsize == 4 else 64)
    tiles = math.ceil(problem.m / block_m) * math.ceil(problem.n / block_n) * problem.groups
    steps = math.ceil(problem.k / block_k)
    splits = max(1, min(math.ceil(target_programs / tiles), steps // MIN_STEPS))
    chunk = max(1, math.ceil(steps / splits)) * block_k
    splits = max(1, math.ceil(problem.k / chunk))
    return SplitPlan(block_m, block_n, block_k, splits, chunk, num_warps, num_stages)


def partial_kernel(problem: WeightGradProblem, split: SplitPlan,
                   name: str = "conv_weight_grad") -> GeneratedKernel:
    """Grid (tiles, splits, groups): one (tile, chunk of K, group) partial product each."""
    fn = function_name(name)
    p = problem
    # literal sizes: the main loop unravels each K step's (image, row, column) with
    # divisions by the output's sizes, and over NCHW operands their values set the
    # contiguity of the runs a cp.async moves (runtime sizes made the PTX of resnet18's
    # layer1 weight gradient 3x longer with 132 div/rem and narrower copies); only the
    # chunk of K is an argument
    sz, chunk = Sizes(literal=True), Sizes(literal=literal_mode())
    h, w = sz.int(p.x_shape[2], "h"), sz.int(p.x_shape[3], "w")
    ho, wo = sz.int(p.g_shape[2], "ho"), sz.int(p.g_shape[3], "wo")
    hw = sz.int(p.g_shape[2] * p.g_shape[3], "hw")
    cin_g, kw_ = sz.int(p.w_shape[1], "cin"), sz.int(p.w_shape[3], "kw")
    kwc = sz.int(p.w_shape[1] * p.w_shape[3], "kwc")
    sxn, sxc, sxh, sxw = p.x_strides
    sgn, sgc, sgh, sgw = p.g_strides
    dot = f", input_precision=\"{p.precision}\"" if p.precision else ""
    direct = split.splits == 1
    exact_m = p.m % split.block_m == 0
    whole = p.w_shape[1] % split.block_n == 0
    col = "" if whole else "[None, :]"
    body = [
        f"M = {sz.int(p.m, 'M')}", f"N = {sz.int(p.n, 'N')}", f"K = {sz.int(p.k, 'K')}",
        f"CHUNK = {chunk.int(split.chunk, 'CHUNK')}",
        "pid = tl.program_id(0)", "pid_k = tl.program_id(1)", "pid_b = tl.program_id(2)",
        "num_pid_n = (N + BLOCK_N - 1) // BLOCK_N",
        "pid_m = pid // num_pid_n", "pid_n = pid % num_pid_n",
        "# rows/cols past the edge wrap (loads stay in bounds, stores are masked)",
        "rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)" + ("" if exact_m else " % M"),
    ]
    if whole:
        # a column tile is one (kh, kw) and BLOCK_N consecutive channels: the shifts are
        # scalars and the channels a plain range, so channels-last loads are contiguous
        body += ["n0 = pid_n * BLOCK_N", f"kh = n0 // {kwc}",
                 f"kw = (n0 // {cin_g}) % {kw_}",
                 f"ci = tl.multiple_of(n0 % {cin_g}, BLOCK_N) + tl.arange(0, BLOCK_N)"]
    else:
        body += ["rn = (pid_n * BLOCK_N + tl.arange(0, BLOCK_N)) % N",
                 f"kh = rn // {kwc}", f"kw = (rn // {cin_g}) % {kw_}",
                 f"ci = rn % {cin_g}"]
    body += [
        f"g_rows = g_ptr + (pid_b * M).to(tl.int64) * {sz.int(sgc, ('g', 1))} + "
        f"{_times('rm', sgc, sz, ('g', 1))}",
        f"x_cols = x_ptr + (pid_b * {cin_g}).to(tl.int64) * {sz.int(sxc, ('x', 1))} + "
        f"{_times('ci', sxc, sz, ('x', 1))}",
        f"dh = kh * {sz.int(p.dilation[0], 'dh')} - {sz.int(p.padding[0], 'ph')}",
        f"dw = kw * {sz.int(p.dilation[1], 'dw')} - {sz.int(p.padding[1], 'pw')}",
        "rk = tl.arange(0, BLOCK_K)",
        "k_lo = pid_k * CHUNK",
        "acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)",
        "for kt in range(0, CHUNK, BLOCK_K):",
        "    kk = k_lo + kt + rk",
        "    live = kk < K",
        f"    img = (kk // {hw}).to(tl.int64)",
        f"    oh = (kk // {wo}) % {ho}",
        f"    ow = kk % {wo}",
        f"    a = tl.load(g_rows[:, None] + (img * {sz.int(sgn, ('g', 0))} + "
        f"oh * {sz.int(sgh, ('g', 2))} + ow * {sz.int(sgw, ('g', 3))})[None, :], "
        "mask=live[None, :], other=0.0)",
        f"    ih = (oh * {sz.int(p.stride[0], 'sh')})[:, None] + dh{col}",
        f"    iw = (ow * {sz.int(p.stride[1], 'sw')})[:, None] + dw{col}",
        f"    inside = live[:, None] & (ih >= 0) & (ih < {h}) & (iw >= 0) & (iw < {w})",
        f"    b = tl.load(x_cols[None, :] + (img * {sz.int(sxn, ('x', 0))})[:, None] + "
        f"ih * {sz.int(sxh, ('x', 2))} + iw * {sz.int(sxw, ('x', 3))}, "
        "mask=inside, other=0.0)",
        f"    acc = tl.dot(a, b, acc{dot})",
        "rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)[:, None]",
        "rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)[None, :]",
        "xmask = (rm < M) & (rn < N)",
    ]
    if direct:
        so, si, sh, sw = (sz.int(v, ("out", i)) for i, v in enumerate(p.out_strides))
        body += [f"cidx = (pid_b * M + rm) * {so} + (rn % {cin_g}) * {si} "
                 f"+ (rn // {kwc}) * {sh} + ((rn // {cin_g}) % {kw_}) * {sw}",
                 f"tl.store(c_ptr + cidx, acc.to({tl_type(p.out_dtype)}), mask=xmask)"]
        c_type = pointer_type(p.out_dtype)
    else:
        body += [f"cidx = ((pid_k * {sz.int(p.groups, 'groups')} + pid_b) * M + rm)"
                 ".to(tl.int64) * N + rn",
                 "tl.store(c_ptr + cidx, acc, mask=xmask)"]
        c_type = "*fp32"
    args = [("g_ptr", pointer_type(p.dtype)), ("x_ptr", pointer_type(p.dtype)), ("c_ptr", c_type)]
    constexprs = {"BLOCK_M": split.block_m, "BLOCK_N": split.block_n,
                  "BLOCK_K": split.block_k}
    params = [a for a, _ in args] + [n for n, _, _ in chunk.args] + \
        [f"{c}: tl.constexpr" for c in constexprs]
    header = [f"# conv2d weight gradient x{list(p.x_shape)} grad{list(p.g_shape)} "
              f"w{list(p.w_shape)} stride {list(p.stride)} pad {list(p.padding)} "
              f"dilation {list(p.dilation)} groups {p.groups}: {split.splits} split(s) of K, "
              f"{p.precision or 'fp32 accumulate'}"]
    text = "\n".join(header + ["@triton.jit", f"def {fn}({', '.join(params)}):"]
                     + ["    " + line for line in body]) + "\n"
    tiles = math.ceil(p.m / split.block_m) * math.ceil(p.n / split.block_n)
    grid = (tiles, split.splits, p.groups)
    return GeneratedKernel(text, LaunchSpec(
        fn, args, constexprs, grid, "(tiles, splits, groups)", split.num_warps,
        split.num_stages, ["grad_output", "input", "out" if direct else "workspace"], chunk.args,
        chunk.plain))


def _times(expr: str, stride: int, sz: Sizes, role) -> str:
    """expr * stride, leaving out a unit stride (so Triton still sees a contiguous range)."""
    return expr if stride == 1 else f"{expr} * {sz.int(stride, role)}"


def reduce_kernel(problem: WeightGradProblem, split: SplitPlan,
                  name: str = "conv_weight_grad_sum") -> GeneratedKernel:
    """dW = the sum of the workspace's `splits` partial products, in split order."""
    fn = function_name(name)
    p = problem
    sz = Sizes(literal=literal_mode())
    cin_g, kw_ = sz.int(p.w_shape[1], "cin"), sz.int(p.w_shape[3], "kw")
    kwc = sz.int(p.w_shape[1] * p.w_shape[3], "kwc")
    so, si, sh, sw = (sz.int(v, ("out", i)) for i, v in enumerate(p.out_strides))
    total = p.w_shape[0] * p.n
    total_, n_ = sz.int(total, "total"), sz.int(p.n, "N")
    body = [
        "e = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)",
        f"inside = e < {total_}",
        "acc = tl.zeros((BLOCK,), dtype=tl.float32)",
        f"for s in range(0, {sz.int(split.splits, 'splits')}):",
        f"    acc += tl.load(ws_ptr + s * {total_} + e, mask=inside, other=0.0)",
        f"row = e // {n_}", f"col = e % {n_}",
        f"cidx = row * {so} + (col % {cin_g}) * {si} + (col // {kwc}) * {sh} "
        f"+ ((col // {cin_g}) % {kw_}) * {sw}",
        f"tl.store(out_ptr + cidx, acc.to({tl_type(p.out_dtype)}), mask=inside)",
    ]
    args = [("ws_ptr", "*fp32"), ("out_ptr", pointer_type(p.out_dtype))]
    params = ["ws_ptr", "out_ptr"] + [n for n, _, _ in sz.args] + ["BLOCK: tl.constexpr"]
    text = "\n".join([f"# the {split.splits} partial weight gradients of w{list(p.w_shape)}, "
                      "summed in order", "@triton.jit", f"def {fn}({', '.join(params)}):"]
                     + ["    " + line for line in body]) + "\n"
    grid = (math.ceil(total / REDUCE_BLOCK), 1, 1)
    return GeneratedKernel(text, LaunchSpec(fn, args, {"BLOCK": REDUCE_BLOCK}, grid,
                                            "cdiv(Cout * N, BLOCK)", 4, 1, ["workspace", "out"],
                                            sz.args, sz.plain))


def workspace_elements(problem: WeightGradProblem, split: SplitPlan) -> int:
    """float32 elements of the partial products (0 when the GEMM writes dW directly)."""
    return 0 if split.splits == 1 else split.splits * problem.w_shape[0] * problem.n
