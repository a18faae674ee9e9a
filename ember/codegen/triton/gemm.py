"""GEMM and implicit-GEMM conv2d as generated Triton kernels, with fused epilogues.

One template: a program computes a BLOCK_M x BLOCK_N tile of C = A @ B over K in
BLOCK_K steps, accumulating in float32 with `tl.dot`, programs ordered in groups
of GROUP_M rows so neighbouring programs share B tiles in L2 (Triton's tutorial
order). The problem classes only say how A and B tiles are addressed:

- `MatmulProblem`: A (M, K) and B with any strides. B either row-major (K, N) or
  K-major (stored (N, K), as a Linear weight is). On an H100 with Triton 3.6 the
  K-major form reached 81-90% of cuBLAS TF32 against 40% for row-major B, so
  `linear` keeps its weight K-major and the compiler should store GEMM weights so.
  A batch axis (program_id(1)) covers bmm and batched matmul.
- `ConvProblem`: conv2d as implicit GEMM over an NHWC view: M = N*Ho*Wo output
  pixels, N = Cout/groups, K = KH*KW*Cin/groups ordered (kh, kw, ci), so a K step
  reads consecutive channels of the input; the im2col index math runs inside the K
  loop (nothing is materialized). Padding is a load mask. groups use program_id(1).

Precision: float32 operands use `input_precision="tf32"` or `"ieee"` from
`ember.backends.cuda` (PyTorch's flags and defaults: IEEE unless allowed);
float16/bfloat16 operands go to tensor cores and accumulate in float32.

Epilogue: the kernel lowering produced for an `anchor` group (pointwise, reading the
GEMM result as buffer "acc") is emitted by source.Emitter on the accumulator tile
before the store: each tile element's memory offset in the anchor's output is
inverted into the epilogue's loop variables (the anchor output must be a dense
layout, as GEMM/conv outputs are), so bias adds, activations and residual adds
cost no extra pass over memory.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ...ir.dtypes import DType, float32
from ...ir.errors import LoweringError
from .. import kernel as K
from .source import (Emitter, GeneratedKernel, LaunchSpec, Scope, Sizes, function_name,
                     generic_or_literal, literal_mode, pointer_type, tl_type)


def _sz(sizes: Sizes | None) -> Sizes:
    """The problem methods' integers: runtime arguments in `sizes`, literals without it."""
    return sizes or Sizes(literal=True)


@dataclass(frozen=True)
class GemmConfig:
    block_m: int = 64
    block_n: int = 64
    block_k: int = 32
    group_m: int = 8
    num_warps: int = 4
    num_stages: int = 3

    def constexprs(self) -> dict[str, int]:
        return {"BLOCK_M": self.block_m, "BLOCK_N": self.block_n, "BLOCK_K": self.block_k,
                "GROUP_M": self.group_m}


def input_precision(dtype: DType) -> str | None:
    """tl.dot's input_precision for float32 operands (None: not a float32 GEMM)."""
    if dtype != float32:
        return None
    from ...backends.cuda import float32_input_precision   # user flags, no heavier import
    return float32_input_precision()


def conv_input_precision(dtype: DType) -> str | None:
    """tl.dot's input_precision for a float32 convolution: TF32 only where both ember's
    float32 precision and `ember.backends.cudnn.allow_tf32` allow it (False keeps
    convolutions IEEE, as it keeps torch's)."""
    precision = input_precision(dtype)
    if precision == "tf32":
        from ...backends import cudnn
        if not cudnn.allow_tf32:
            return "ieee"
    return precision


_GEMM_DTYPES = ("float32", "float16", "bfloat16")


@dataclass(frozen=True)
class MatmulProblem:
    """C[b] (M, N) = A[b] (M, K) @ B[b] (K, N) (+ bias[N]); strides in elements.

    c_strides give where C[b, m, n] lives: b*c_strides[0] + m*c_strides[1] + n*c_strides[2].
    """
    m: int
    n: int
    k: int
    dtype: DType
    out_dtype: DType
    a_strides: tuple[int, int, int]          # (batch, m, k)
    b_strides: tuple[int, int, int]          # (batch, k, n)
    c_strides: tuple[int, int, int]
    batch: int = 1
    bias: DType | None = None
    precision: str | None = None             # None: from ember.backends.cuda at generation

    @classmethod
    def create(cls, m, n, k, dtype=float32, b_layout="row", batch=1, bias=None,
               out_dtype=None, precision=None) -> "MatmulProblem":
        """Contiguous A and C; B row-major (K, N) or K-major (stored (N, K))."""
        if b_layout not in ("row", "kmajor"):
            raise ValueError(f"b_layout must be 'row' or 'kmajor', got {b_layout!r}")
        b = (k * n, n, 1) if b_layout == "row" else (k * n, 1, k)
        return cls(m, n, k, dtype, out_dtype or dtype, (m * k, k, 1), b, (m * n, n, 1), batch,
                   bias, precision)

    @property
    def b_layout(self) -> str:
        return "kmajor" if self.b_strides[1] == 1 and self.b_strides[2] != 1 else "row"

    def a_setup(self, sizes: Sizes | None = None) -> list[str]:
        return _tile_pointers("a", self.a_strides, "rm", "rk",
                              _extent(self.a_strides[1:], (self.m, self.k)), sizes)

    def a_load(self, k_mask: bool, sizes: Sizes | None = None) -> list[str]:
        return _tile_load("a", "rk[None, :]", self.a_strides[2], k_mask, _sz(sizes))

    def b_setup(self, sizes: Sizes | None = None) -> list[str]:
        return _tile_pointers("b", self.b_strides, "rk", "rn",
                              _extent(self.b_strides[1:], (self.k, self.n)), sizes)

    def b_load(self, k_mask: bool, sizes: Sizes | None = None) -> list[str]:
        return _tile_load("b", "rk[:, None]", self.b_strides[1], k_mask, _sz(sizes))

    def c_offset(self, sizes: Sizes | None = None) -> str:
        sz = _sz(sizes)
        cast = _offset_cast(_extent(self.c_strides[1:], (self.m, self.n)))
        sb, sm, sn = (sz.int(s, ("c", i)) for i, s in enumerate(self.c_strides))
        return f"pid_b.to(tl.int64) * {sb} + rm{cast} * {sm} + rn{cast} * {sn}"

    def bias_offset(self, sizes: Sizes | None = None) -> str:
        return "rn"

    def describe(self) -> str:
        return (f"matmul {self.batch}x[{self.m}x{self.k}] @ [{self.k}x{self.n}] "
                f"{self.dtype.name}, B {self.b_layout}")


def _extent(strides, sizes) -> int:
    """The largest element offset of a view of `sizes` with `strides` (the literal shape:
    a shape-generic kernel's text still differs where its offsets need int64)."""
    return sum((size - 1) * abs(stride) for size, stride in zip(sizes, strides) if size > 0)


def _offset_cast(extent: int) -> str:
    """int32 index math wraps past 2**31 - 1: offsets that can reach it are computed in
    int64 (smaller problems keep int32, the faster and usual case)."""
    return ".to(tl.int64)" if extent >= 2 ** 31 - 1 else ""


def _tile_pointers(name: str, strides: tuple, rows: str, cols: str, extent: int,
                   sizes: Sizes | None = None) -> list[str]:
    """`<name>_ptrs`: a (rows x cols) tile of operand `name` in this program's batch, whose
    offsets reach `extent` elements."""
    sb, s_row, s_col = (_sz(sizes).int(s, (name, i)) for i, s in enumerate(strides))
    cast = _offset_cast(extent)
    return [f"{name}_ptrs = {name}_ptr + pid_b.to(tl.int64) * {sb} + {rows}[:, None]{cast} * "
            f"{s_row} + {cols}[None, :]{cast} * {s_col}"]


def _tile_load(name: str, k_index: str, k_stride: int, k_mask: bool,
               sizes: Sizes | None = None) -> list[str]:
    """Load operand `name`'s tile (masked past K on the last step) and step along K."""
    mask = f", mask={k_index} < K - k0, other=0.0" if k_mask else ""
    return [f"{name} = tl.load({name}_ptrs{mask})",
            f"{name}_ptrs += BLOCK_K * {_sz(sizes).int(k_stride, (name, 'k'))}"]


@dataclass(frozen=True)
class ConvProblem:
    """conv2d as implicit GEMM. Input (N, C, H, W) and weight (Cout, Cin/g, KH, KW) with
    any strides (channels-last input makes K steps contiguous); output (N, Cout, Ho, Wo)
    with `out_strides`."""
    x_shape: tuple[int, int, int, int]
    x_strides: tuple[int, int, int, int]
    w_shape: tuple[int, int, int, int]
    w_strides: tuple[int, int, int, int]
    out_strides: tuple[int, int, int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    dtype: DType = float32
    out_dtype: DType = float32
    bias: DType | None = None
    precision: str | None = None

    @property
    def out_hw(self) -> tuple[int, int]:
        (_, _, h, w), (_, _, kh, kw) = self.x_shape, self.w_shape
        return tuple((size + 2 * p - d * (kk - 1) - 1) // s + 1 for size, kk, s, p, d in
                     zip((h, w), (kh, kw), self.stride, self.padding, self.dilation))

    @property
    def m(self) -> int:
        return self.x_shape[0] * math.prod(self.out_hw)

    @property
    def n(self) -> int:
        return self.w_shape[0] // self.groups

    @property
    def k(self) -> int:
        return self.w_shape[1] * self.w_shape[2] * self.w_shape[3]

    @property
    def batch(self) -> int:
        return self.groups

    # Sizes, strides, stride/padding/dilation are `sizes` arguments where given (a
    # shape-generic kernel: layers of one structure and tile share a cubin); a kernel
    # size of 1, a unit stride and zero padding stay literals (they shape the code)
    def a_setup(self, sizes: Sizes | None = None) -> list[str]:
        sz = _sz(sizes)
        ho, wo = self.out_hw
        sn, sc, sh, sw = self.x_strides
        cin_g = self.w_shape[1]
        img, oh, ow = self._pixel("rm", sz)
        return [f"img = {img}", f"oh = {oh}", f"ow = {ow}",
                f"ih0 = oh * {sz.int(self.stride[0], 'sh')} - {sz.int(self.padding[0], 'ph')}",
                f"iw0 = ow * {sz.int(self.stride[1], 'sw')} - {sz.int(self.padding[1], 'pw')}",
                f"x_base = a_ptr + pid_b.to(tl.int64) * {sz.int(cin_g * sc, 'x_group')} + "
                f"img.to(tl.int64) * {sz.int(sn, ('x', 0))}"]

    def _pixel(self, rows: str, sz: Sizes) -> tuple[str, str, str]:
        """(image, output row, output column) of the output pixels `rows`: literal divisions
        for an NCHW operand (its pixels are the contiguous runs, which Triton must see),
        else multiply-shift divisions by runtime magic numbers (Sizes.div), as cheap as
        a literal divisor's, so convs of other spatial sizes share the kernel."""
        ho, wo = self.out_hw
        if self._m_contiguous() or sz.literal:
            return (f"{rows} // {ho * wo}", f"({rows} // {wo}) % {ho}", f"{rows} % {wo}")
        by_w = sz.div(rows, wo, "wo")
        oh = f"({by_w} - {sz.div(by_w, ho, 'ho')} * {sz.int(ho, 'ho', False)})"
        ow = f"({rows} - {by_w} * {sz.int(wo, 'wo', False)})"
        return sz.div(rows, ho * wo, "hw"), oh, ow

    def _m_contiguous(self) -> bool:
        """Whether a tile's rows (output pixels) are contiguous in the input or output
        (an NCHW operand): only then does the divisibility of the output's size by 16 tell
        Triton something (contiguous runs along M); channels-last convs read and write
        along channels, so their spatial sizes are compiled without it (one cubin for
        layers whose sizes differ only there)."""
        return self.x_strides[3] == 1 or self.out_strides[3] == 1

    def _k_split(self, sz: Sizes, block_k: int | None) -> tuple[list[str], str, str]:
        """(lines, kh, kw): the kernel tap and channel `ci` of each K index `kk` of this
        step, kh and kw as the a_load expressions broadcasting them along K."""
        cin_g, kw = self.w_shape[1], self.w_shape[3]
        if self._taps_per_step(sz, block_k):
            # shape-generic: each K step lies in one tap (the channels of a group are a
            # multiple of BLOCK_K), so the tap is one scalar division of the step's start
            # (a multiply-high by a runtime magic number: no integer division) and the
            # channels are a contiguous run, the channel count a runtime argument (Triton
            # specializes it on divisibility by 16, which the vector copies need): the
            # layers of one kernel size, stride and tile share a body
            tap = sz.div("k0", cin_g, "cin")
            lines = ["kk = k0 + rk", f"tap = {tap}",
                     f"ci = (k0 - tap * {sz.int(cin_g, 'cin')}) + rk"]
            if kw == 1:
                lines += ["kh = tap", "kw = 0"]
            else:
                lines += [f"kh = tap // {kw}", f"kw = tap - kh * {kw}"]
            return lines, "kh", "kw"
        # literals, whatever `sz`: these divide a K step's indices on every iteration of
        # the main loop, where a literal divisor is a multiply-shift and a runtime one an
        # integer division (PTX of a resnet 3x3 conv: 111 div/rem against 1), and their
        # value sets the contiguity of the channel run a cp.async moves; the layers of
        # one channel count still share a kernel
        return (["kk = k0 + rk", f"kh = kk // {kw * cin_g}", f"kw = (kk // {cin_g}) % {kw}",
                 f"ci = kk % {cin_g}"], "kh[None, :]", "kw[None, :]")

    def taps_per_step(self, block_k: int | None) -> bool:
        """Whether a shape-generic main loop can walk K a tap at a time (see _k_split): a
        channels-last input (its channels contiguous) with channels per group a multiple
        of BLOCK_K (resnet's 64-512; not the stem's 3, whose taps stay packed)."""
        return block_k is not None and self.x_strides[1] == 1 and \
            self.w_shape[1] % block_k == 0

    def _taps_per_step(self, sz: Sizes, block_k: int | None) -> bool:
        return not sz.literal and self.taps_per_step(block_k)

    def a_load(self, k_mask: bool, sizes: Sizes | None = None,
               block_k: int | None = None) -> list[str]:
        sz = _sz(sizes)
        cast = _offset_cast(_extent(self.x_strides[1:], self.x_shape[1:]))   # within one image
        _, sc, sh, sw = (sz.int(s, ("x", i)) for i, s in enumerate(self.x_strides))
        # bounds of the padding mask only: no divisibility specialization
        h, w = sz.int(self.x_shape[2], "h", False), sz.int(self.x_shape[3], "w", False)
        split, kh, kw = self._k_split(sz, block_k)
        return split + [
            f"ih = ih0[:, None] + {kh} * {sz.int(self.dilation[0], 'dh')}",
            f"iw = iw0[:, None] + {kw} * {sz.int(self.dilation[1], 'dw')}",
            f"inside = (ih >= 0) & (ih < {h}) & (iw >= 0) & (iw < {w}) & (kk[None, :] < K)",
            f"a = tl.load(x_base[:, None] + ih{cast} * {sh} + iw{cast} * {sw} + "
            f"ci[None, :]{cast} * {sc}, mask=inside, other=0.0)"]

    def b_setup(self, sizes: Sizes | None = None) -> list[str]:
        sz = _sz(sizes)
        so = self.w_strides[0]
        return [f"w_base = b_ptr + pid_b.to(tl.int64) * {sz.int(self.n * so, 'w_group')} + "
                f"rn[None, :] * {sz.int(so, ('w', 0))}"]

    def b_load(self, k_mask: bool, sizes: Sizes | None = None) -> list[str]:
        sz = _sz(sizes)
        _, si, sh, sw = self.w_strides
        cin_g, kw = self.w_shape[1], self.w_shape[3]
        dense = (si, sw, sh) == (1, cin_g, kw * cin_g)     # OHWI: k is the memory offset
        terms = [f"kh * {sz.int(sh, ('w', 2))}", f"kw * {sz.int(sw, ('w', 3))}",
                 f"ci * {sz.int(si, ('w', 1))}"]
        koff = "kk" if dense else f"({' + '.join(terms)})"
        return [f"b = tl.load(w_base + {koff}[:, None], mask=kk[:, None] < K, other=0.0)"]

    def c_offset(self, sizes: Sizes | None = None) -> str:
        sz = _sz(sizes)
        ho, wo = self.out_hw
        cast = _offset_cast(_extent(self.out_strides, (self.x_shape[0], self.w_shape[0], ho, wo)))
        # the pixel's coordinates in int32 (rm < M < 2**31), their products in int64 where
        # the output's offsets need it
        img, oh, ow = self._pixel("rm", sz)
        sn, sc, sh, sw = (sz.int(s, ("out", i)) for i, s in enumerate(self.out_strides))
        return (f"({img}){cast} * {sn} + ({oh}){cast} * {sh} + ({ow}){cast} * {sw} "
                f"+ (pid_b{cast} * {sz.int(self.n, 'N')} + rn) * {sc}")

    def bias_offset(self, sizes: Sizes | None = None) -> str:
        return f"pid_b * {_sz(sizes).int(self.n, 'N')} + rn"

    def describe(self) -> str:
        return (f"conv2d implicit GEMM x{list(self.x_shape)} w{list(self.w_shape)} "
                f"stride {list(self.stride)} pad {list(self.padding)} groups {self.groups}")


# --- the kernel ---------------------------------------------------------------------------------
def generate_gemm(problem, config: GemmConfig | None = None, epilogue: K.Kernel | None = None,
                  name: str = "gemm") -> GeneratedKernel:
    """A GEMM/conv kernel; with `epilogue` (a lowered anchor group) fused before the store."""
    config = config or GemmConfig()
    for dt in (problem.dtype, problem.out_dtype):
        if dt.name not in _GEMM_DTYPES:
            raise LoweringError(f"{name}: the Triton GEMM takes float32, float16 or bfloat16, "
                                f"got {dt.name}")
    if problem.dtype.name != "float32" and problem.bias is not None and \
            problem.bias.name not in _GEMM_DTYPES:
        raise LoweringError(f"{name}: bias dtype {problem.bias.name} is not a float type")
    if hasattr(problem, "x_shape") and problem.taps_per_step(config.block_k):
        # the "conv" family (source.GENERIC_FAMILIES): shape-generic by default; other
        # convs (the stem's 3 channels, NCHW inputs) share with nothing and stay literal
        return generic_or_literal("conv", lambda literal: _generate_gemm(
            problem, config, epilogue, name, Sizes(literal=literal)))
    return _generate_gemm(problem, config, epilogue, name, Sizes(literal=literal_mode()))


def _generate_gemm(problem, config: GemmConfig, epilogue, name: str,
                   sizes: Sizes) -> GeneratedKernel:
    fn = function_name(name)
    precision = _precision(problem)
    k_mask = problem.k % config.block_k != 0 or hasattr(problem, "x_shape")
    body = _main_loop(problem, config, precision, k_mask, sizes)
    args, buffers = _operand_args(problem, epilogue)
    body += _finish(problem, epilogue, sizes)
    header = [f"# {problem.describe()}, {precision or 'fp32 accumulate'}"]
    grid = (_tiles(problem, config), problem.batch, 1)
    return _kernel(fn, header, body, args, buffers, config.constexprs(), grid,
                   "(cdiv(M, BLOCK_M) * cdiv(N, BLOCK_N), batch, 1)", config.num_warps,
                   config.num_stages, epilogue, sizes)


def _precision(problem) -> str | None:
    return problem.precision or (conv_input_precision(problem.dtype)
                                 if hasattr(problem, "x_shape") else
                                 input_precision(problem.dtype))


def _tiles(problem, config: GemmConfig) -> int:
    return math.ceil(problem.m / config.block_m) * math.ceil(problem.n / config.block_n)


def _operand_args(problem, epilogue) -> tuple[list, list]:
    """The kernel's pointer arguments and their description buffers: A, B, the bias, then
    C or the epilogue's other inputs and its outputs."""
    args = [("a_ptr", pointer_type(problem.dtype)), ("b_ptr", pointer_type(problem.dtype))]
    buffers = ["a", "b"]
    if problem.bias is not None:
        args.append(("bias_ptr", pointer_type(problem.bias)))
        buffers.append("bias")
    if epilogue is None:
        args.append(("c_ptr", pointer_type(problem.out_dtype)))
        buffers.append("c")
    else:
        extra = [b for b in epilogue.inputs if b.name != "acc"] + list(epilogue.outputs)
        args += [(f"{b.name}_ptr", pointer_type(b.dtype)) for b in extra]
        buffers += [b.name for b in extra]
    return args, buffers


def _finish(problem, epilogue, sizes: Sizes | None = None,
            bias_mask: str = "rn < N") -> list[str]:
    """From the float32 `acc` (rows rm, columns rn, batch pid_b, mask xmask): the bias,
    then the store or the epilogue."""
    body = []
    if problem.bias is not None:
        body += [f"acc += tl.load(bias_ptr + {problem.bias_offset(sizes)}, mask={bias_mask}, "
                 "other=0.0).to(tl.float32)"]
    body += [f"cidx = {problem.c_offset(sizes)}"]
    if epilogue is None:
        return body + [f"tl.store(c_ptr + cidx, acc.to({tl_type(problem.out_dtype)}), "
                       "mask=xmask)"]
    return body + _epilogue(epilogue, problem, sizes)


def _kernel(fn, header, body, args, buffers, constexprs, grid, rule, warps, stages,
            epilogue, sizes: Sizes | None = None) -> GeneratedKernel:
    """The kernel text and its launch: pointer arguments, then the runtime `sizes` (bound
    in the LaunchSpec, appended at every launch), then the constexprs."""
    sizes = _sz(sizes)
    params = [a for a, _ in args] + [n for n, _, _ in sizes.args] + \
        [f"{c}: tl.constexpr" for c in constexprs]
    if epilogue is not None:
        header = header + ["# epilogue:"] + ["#   " + line for line in
                                               str(epilogue).splitlines()]
    text = "\n".join(header + ["@triton.jit", f"def {fn}({', '.join(params)}):"]
                     + ["    " + line for line in body]) + "\n"
    return GeneratedKernel(text, LaunchSpec(fn, args, constexprs, grid, rule, warps, stages,
                                            buffers, sizes.args, sizes.plain))


# --- split-K ------------------------------------------------------------------------------------
SMS = 132              # streaming multiprocessors of the GPU the split choice targets (H100 SXM)
MIN_SPLIT_K = 512      # K elements each split's programs walk at least
MIN_SPLIT_WORK = 1 << 25   # FLOPs of one whole-K program worth splitting (~11 us of one
#                            H100 SM's TF32 share; a small GEMM is cheaper as one launch)


def split_k(problem, config: GemmConfig) -> int:
    """How many K ranges a matmul's programs divide: 1 where its output tiles fill at least
    half the SMs, K is short or a program's whole-K work is small (MIN_SPLIT_WORK); else
    the largest power of two keeping the programs within one wave (SMS) and each range
    at least MIN_SPLIT_K long. A transformer layer's
    weight-gradient GEMMs (512x512 over 4096 tokens: 16 tiles of 128x128) otherwise leave
    most of an H100 idle."""
    if not isinstance(problem, MatmulProblem):
        return 1
    tiles = _tiles(problem, config) * problem.batch
    splits = 1
    if 2 * tiles > SMS or 2 * config.block_m * config.block_n * problem.k < MIN_SPLIT_WORK:
        return 1
    while tiles * splits * 2 <= SMS and problem.k // (splits * 2) >= MIN_SPLIT_K:
        splits *= 2
    return splits


@dataclass
class SplitGemm:
    """A matmul split over K: `kernels` launch in order with the same arguments (the GEMM's
    operands, then a float32 workspace of `workspace` elements). The first writes each
    K range's partial tile to the workspace; the second sums the ranges in a fixed order
    (deterministic) and applies the bias and the epilogue, or stores C."""
    kernels: list[GeneratedKernel]
    workspace: int
    splits: int


def generate_split_gemm(problem: "MatmulProblem", config: GemmConfig, splits: int,
                        epilogue: K.Kernel | None = None, name: str = "gemm",
                        reduce_block: int = 1024) -> SplitGemm:
    """`problem` as `splits` K ranges (a multiple of BLOCK_K each) and a reduction."""
    if not isinstance(problem, MatmulProblem) or splits < 2:
        raise LoweringError(f"{name}: split-K takes a matmul and at least 2 splits")
    chunk = math.ceil(math.ceil(problem.k / splits) / config.block_k) * config.block_k
    splits = math.ceil(problem.k / chunk)
    total = problem.batch * problem.m * problem.n
    precision = _precision(problem)
    args, buffers = _operand_args(problem, epilogue)
    args, buffers = args + [("ws_ptr", pointer_type(float32))], buffers + ["workspace"]
    header = [f"# {problem.describe()}, {precision or 'fp32 accumulate'}, split-K {splits} "
              f"x {chunk}"]
    k_mask = problem.k % config.block_k != 0
    # literal sizes (no `sizes`): a split GEMM's partial and reduction kernels are one
    # body per shape, as the K-major copies are (few GEMMs split: long K, few tiles)
    body = _main_loop(problem, config, precision, k_mask, chunk=chunk)
    body += [f"widx = (pid_k * {problem.batch} + pid_b).to(tl.int64) * {problem.m * problem.n}"
             f" + rm * {problem.n} + rn",
             "tl.store(ws_ptr + widx, acc, mask=xmask)"]
    fn = function_name(f"{name}_splitk")
    partial = _kernel(fn, header, body, args, buffers, config.constexprs(),
                      (_tiles(problem, config), problem.batch, splits),
                      "(cdiv(M, BLOCK_M) * cdiv(N, BLOCK_N), batch, splits)",
                      config.num_warps, config.num_stages, None)
    reduce_body = [f"M = {problem.m}", f"N = {problem.n}",
                   "offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)",
                   f"xmask = offs < {total}",
                   "acc = tl.zeros((BLOCK,), dtype=tl.float32)",
                   "# the K ranges in order: the same sum every run"]
    reduce_body += [f"acc += tl.load(ws_ptr + {s * total} + offs, mask=xmask, other=0.0)"
                    for s in range(splits)]
    reduce_body += [f"pid_b = offs // {problem.m * problem.n}",
                    f"rm = (offs // {problem.n}) % {problem.m}", f"rn = offs % {problem.n}"]
    reduce_body += _finish(problem, epilogue, bias_mask="xmask")
    fn = function_name(f"{name}_splitk_sum")
    reduced = _kernel(fn, header, reduce_body, args, buffers, {"BLOCK": reduce_block},
                      (math.ceil(total / reduce_block), 1, 1), "(cdiv(batch * M * N, BLOCK), 1, 1)",
                      4, 1, epilogue)
    return SplitGemm([partial, reduced], splits * total, splits)


# --- TF32 operands staged K-major ----------------------------------------------------------------
STAGE_FLOPS_PER_ELEMENT = 512   # stage an operand only where each copied element feeds this
#                                 many FLOPs (the copy's bytes against the GEMM time it saves)


@dataclass(frozen=True)
class Staging:
    """One GEMM operand copied K-major before the GEMM: operand 0 (A) or 1 (B), the copy
    kernel (arguments: the operand, then a dense buffer of `numel` elements)."""
    operand: int
    kernel: GeneratedKernel
    numel: int


def kmajor_staging(problem, name: str = "gemm") -> tuple[object, list[Staging]]:
    """(the problem reading staged operands, the copies) for a TF32 matmul with an
    operand whose K axis is not contiguous: Hopper's wgmma reads TF32 operands only
    K-major from shared memory, so Triton runs such a dot on a slower path (an H100:
    143 TFLOP/s for a row-major B against 305 K-major); a weight gradient's operands
    (activations over tokens) and a backward GEMM's weight are both that way round.
    Copies are made only where each copied element feeds STAGE_FLOPS_PER_ELEMENT FLOPs."""
    if not isinstance(problem, MatmulProblem) or _precision(problem) != "tf32":
        return problem, []
    flops = 2 * problem.m * problem.n * problem.k * problem.batch
    staged, copies = problem, []
    sb, sm, sk = problem.a_strides
    if sk != 1 and problem.k > 1:
        batch = problem.batch if sb else 1
        numel = batch * problem.m * problem.k
        if flops >= STAGE_FLOPS_PER_ELEMENT * numel:
            copies.append(Staging(0, generate_kmajor_copy(
                problem.a_strides, batch, problem.m, problem.k, problem.dtype,
                f"{name}_stage_a"), numel))
            staged = _replace(staged, a_strides=(problem.m * problem.k if sb else 0,
                                                 problem.k, 1))
    sb, sk, sn = problem.b_strides
    if sk != 1 and problem.k > 1:
        batch = problem.batch if sb else 1
        numel = batch * problem.n * problem.k
        if flops >= STAGE_FLOPS_PER_ELEMENT * numel:
            copies.append(Staging(1, generate_kmajor_copy(
                (sb, sn, sk), batch, problem.n, problem.k, problem.dtype,
                f"{name}_stage_b"), numel))
            staged = _replace(staged, b_strides=(problem.n * problem.k if sb else 0, 1,
                                                 problem.k))
    return staged, copies


def _replace(problem, **changes):
    import dataclasses
    return dataclasses.replace(problem, **changes)


def generate_kmajor_copy(strides: tuple[int, int, int], batch: int, rows: int, cols: int,
                         dtype: DType, name: str, block: int = 64) -> GeneratedKernel:
    """dst (batch, rows, cols) dense (cols contiguous: the K axis) = src read at
    b*strides[0] + r*strides[1] + c*strides[2]; tiles of block x block, each load along
    the source's contiguous axis and each store along the destination's."""
    sb, sr, sc = strides
    cast = _offset_cast(_extent(strides, (batch, rows, cols)) + 1)
    dense_cast = _offset_cast(batch * rows * cols)
    fn = function_name(name)
    body = [f"pid_b = tl.program_id(1)",
            f"tiles_c = {math.ceil(cols / block)}",
            "r = (tl.program_id(0) // tiles_c) * BLOCK + tl.arange(0, BLOCK)[:, None]",
            "c = (tl.program_id(0) % tiles_c) * BLOCK + tl.arange(0, BLOCK)[None, :]",
            f"mask = (r < {rows}) & (c < {cols})",
            f"v = tl.load(src_ptr + pid_b{cast} * {sb} + r{cast} * {sr} + c{cast} * {sc}, "
            "mask=mask)",
            f"tl.store(dst_ptr + pid_b{dense_cast} * {rows * cols} + r{dense_cast} * {cols} + c,"
            " v, mask=mask)"]
    args = [("src_ptr", pointer_type(dtype)), ("dst_ptr", pointer_type(dtype))]
    grid = (math.ceil(rows / block) * math.ceil(cols / block), batch, 1)
    return _kernel(fn, [f"# K-major copy of a [{batch}x{rows}x{cols}] GEMM operand, strides "
                        f"{list(strides)}"], body, args, ["src", "dst"], {"BLOCK": block},
                   grid, "(cdiv(rows, BLOCK) * cdiv(cols, BLOCK), batch, 1)", 4, 1, None)


def _main_loop(problem, config: GemmConfig, precision: str | None, k_mask: bool,
               sizes: Sizes | None = None, chunk: int | None = None) -> list[str]:
    """The tile loop over K (with `chunk`: this program's K range, program_id(2))."""
    dot_args = f", input_precision=\"{precision}\"" if precision else ""
    sz = _sz(sizes)
    m_spec = not hasattr(problem, "x_shape") or problem._m_contiguous()
    lines = [f"M = {sz.int(problem.m, 'M', m_spec)}", f"N = {sz.int(problem.n, 'N')}",
             f"K = {sz.int(problem.k, 'K')}",
             "pid = tl.program_id(0)", "pid_b = tl.program_id(1)",
             "num_pid_m = (M + BLOCK_M - 1) // BLOCK_M", "num_pid_n = (N + BLOCK_N - 1) // BLOCK_N",
             "# grouped order: GROUP_M rows of tiles share B tiles in L2",
             "group_size = GROUP_M * num_pid_n",
             "first_m = (pid // group_size) * GROUP_M",
             "rows = tl.minimum(num_pid_m - first_m, GROUP_M)",
             "pid_m = first_m + (pid % group_size) % rows",
             "pid_n = (pid % group_size) // rows",
             "# rows/cols past the edge wrap (loads stay in bounds, stores are masked)"]
    generic_conv = hasattr(problem, "x_shape") and not sz.literal
    lines += _wrap("rm", "pid_m * BLOCK_M + tl.arange(0, BLOCK_M)", "M",
                   generic_conv and problem.m >= config.block_m)
    lines += _wrap("rn", "pid_n * BLOCK_N + tl.arange(0, BLOCK_N)", "N",
                   generic_conv and problem.n >= config.block_n)
    lines += ["rk = tl.arange(0, BLOCK_K)"]
    lines += problem.a_setup(sz) + problem.b_setup(sz)
    lines += ["acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)"]
    if chunk is None:
        lines += ["for k0 in range(0, K, BLOCK_K):"]
    else:
        lines += ["pid_k = tl.program_id(2)", f"k_first = pid_k * {sz.int(chunk, 'chunk')}",
                  f"a_ptrs += k_first * {sz.int(problem.a_strides[2], ('a', 'k'))}",
                  f"b_ptrs += k_first * {sz.int(problem.b_strides[1], ('b', 'k'))}",
                  f"for k0 in range(k_first, tl.minimum(k_first + {sz.int(chunk, 'chunk')}, K), "
                  "BLOCK_K):"]
    a_load = problem.a_load(k_mask, sz, config.block_k) if hasattr(problem, "x_shape") \
        else problem.a_load(k_mask, sz)
    inner = a_load + problem.b_load(k_mask, sz) + \
        [f"acc = tl.dot(a, b, acc{dot_args})"]
    lines += ["    " + line for line in inner]
    lines += ["rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)[:, None]",
              "rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)[None, :]",
              "xmask = (rm < M) & (rn < N)"]
    return lines


def _wrap(name: str, index: str, size: str, once: bool) -> list[str]:
    """`name = index % size`; with `once` (the size at least the block: an index past the
    edge is under twice the size) one conditional subtraction, where a runtime size would
    make the remainder an integer division per element (a shape-generic conv's tile)."""
    if once:
        return [f"{name} = {index}", f"{name} = tl.where({name} < {size}, {name}, {name} - {size})"]
    return [f"{name} = ({index}) % {size}"]


def _epilogue(kernel: K.Kernel, problem, sizes: Sizes | None = None) -> list[str]:
    """The epilogue description's stores, with its "acc" loads reading the tile."""
    if kernel.inner:
        raise LoweringError(f"{kernel.name}: a reduction cannot be a GEMM epilogue")
    index = _acc_index(kernel)
    lines = ["xindex = cidx"]
    # literal sizes: the epilogue unravels every element of the tile into the anchor's
    # loop variables, where runtime divisors would be integer divisions per element
    emitter = Emitter(kernel, wide=False, substitutes={"acc": "acc_value"},
                      sizes=Sizes(literal=True))
    emitter.unravel_dense(lines, "cidx", index)
    acc_dtype = next(b.dtype for b in kernel.inputs if b.name == "acc")
    if acc_dtype.name in ("float16", "bfloat16"):
        lines.append(f"acc_value = acc.to({tl_type(acc_dtype)}).to(tl.float32)")
    else:
        lines.append(f"acc_value = acc.to({tl_type(acc_dtype)})")
    scope = Scope(lines, "xmask", inner=False)
    for stage in kernel.stages:
        emitter.store(stage, scope, scope)
    return lines


def _acc_index(kernel: K.Kernel) -> K.Affine:
    """The one index the epilogue reads "acc" at; it must be a dense layout of the outer
    space (each output point reads its own GEMM result) for the tile to stand in for it."""
    indices = {e.index for s in kernel.stages for e in K._walk(s.value)
               if isinstance(e, K.Load) and e.buffer == "acc"}
    if len(indices) != 1:
        raise LoweringError(f"{kernel.name}: the epilogue reads the GEMM result at "
                            f"{len(indices)} different indices; expected one")
    (index,) = indices
    dims = sorted((index.coeff(v), size) for v, size in enumerate(kernel.outer) if size != 1)
    expected = 1
    for coeff, size in dims:
        if coeff != expected:
            raise LoweringError(f"{kernel.name}: the epilogue reads the GEMM result at {index}, "
                                "not at each output point's own element")
        expected *= size
    if index.offset != 0:
        raise LoweringError(f"{kernel.name}: the epilogue reads the GEMM result at an offset")
    return index


# --- extern anchors (graph nodes) -> problems -----------------------------------------------
def anchor_problem(node, dtype_out: DType | None = None):
    """The GEMM/conv problem of an anchor node (mm, addmm, linear, matmul, bmm, conv2d,
    convolution), and the nodes feeding A, B and the bias, in kernel-argument order."""
    op = node.target
    bound = op.schema.as_kwargs(op.schema.bind(node.args, node.kwargs))
    out = node.meta["val"]
    builder = _ANCHORS.get(op.name)
    if builder is None:
        raise LoweringError(f"the Triton GEMM has no rule for {op.name} (at {node.name})")
    return builder(bound, out, node.name)


def _meta(n):
    return n.meta["val"]


def _rows(meta, name: str) -> tuple[int, int, int]:
    """(batch=0, row, col) strides of a 2-D operand, or of an N-D one whose leading dims
    flatten into rows (contiguous over them)."""
    shape, strides = tuple(meta.shape), tuple(meta.strides)
    if not _flattens(meta):
        raise LoweringError(f"{name}: operand of shape {list(shape)} with strides "
                            f"{list(strides)} does not flatten into GEMM rows")
    return (0, strides[-2] if len(shape) > 1 else 0, strides[-1])


def _flattens(meta) -> bool:
    shape, strides = tuple(meta.shape), tuple(meta.strides)
    return all(shape[d] == 1 or strides[d] == strides[d + 1] * shape[d + 1]
               for d in range(len(shape) - 2))


def _mm(bound, out, name, a="self", b="mat2", bias=None):
    am, bm = _meta(bound[a]), _meta(bound[b])
    m = math.prod(am.shape[:-1])
    k, n = bm.shape
    problem = MatmulProblem(m, n, k, am.dtype, out.dtype, _rows(am, name), (0,) + tuple(bm.strides),
                            _rows(out, name), 1, _meta(bias).dtype if bias is not None else None)
    return problem, [bound[a], bound[b]] + ([bias] if bias is not None else [])


def _linear(bound, out, name):
    x, w, bias = bound["input"], bound["weight"], bound.get("bias")
    xm, wm = _meta(x), _meta(w)
    n, k = wm.shape
    if bias is not None and (tuple(_meta(bias).shape) != (n,) or _meta(bias).strides[-1] != 1):
        raise LoweringError(f"{name}: linear bias must be a contiguous ({n},) vector")
    problem = MatmulProblem(math.prod(xm.shape[:-1]), n, k, xm.dtype, out.dtype, _rows(xm, name),
                            (0, wm.strides[1], wm.strides[0]), _rows(out, name), 1,
                            _meta(bias).dtype if bias is not None else None)
    return problem, [x, w] + ([bias] if bias is not None else [])


def _addmm(bound, out, name):
    bias = bound["self"]
    if bound.get("beta", 1) != 1 or bound.get("alpha", 1) != 1 or \
            tuple(_meta(bias).shape) != (out.shape[-1],) or _meta(bias).strides[-1] != 1:
        raise LoweringError(f"{name}: the Triton GEMM fuses addmm only as mm + a contiguous "
                            "row bias with beta = alpha = 1")
    return _mm(bound, out, name, "mat1", "mat2", bias)


def _bmm(bound, out, name, a="self", b="mat2"):
    am, bm = _meta(bound[a]), _meta(bound[b])
    batch, m, k = am.shape
    n = bm.shape[-1]
    problem = MatmulProblem(m, n, k, am.dtype, out.dtype, tuple(am.strides), tuple(bm.strides),
                            tuple(out.strides), batch)
    return problem, [bound[a], bound[b]]


def _matmul(bound, out, name):
    a, b = _meta(bound["self"]), _meta(bound["other"])
    if len(b.shape) == 2 and len(a.shape) == 3 and not _flattens(a):
        batch, m, k = a.shape                   # e.g. a seq-first view: batch over dim 0
        problem = MatmulProblem(m, b.shape[1], k, a.dtype, out.dtype, tuple(a.strides),
                                (0,) + tuple(b.strides), tuple(out.strides), batch)
        return problem, [bound["self"], bound["other"]]
    if len(b.shape) == 2 and len(a.shape) >= 2:
        return _mm({"self": bound["self"], "mat2": bound["other"]}, out, name)
    if len(a.shape) == 3 and len(b.shape) == 3 and a.shape[0] == b.shape[0]:
        return _bmm({"self": bound["self"], "mat2": bound["other"]}, out, name)
    raise LoweringError(f"{name}: the Triton GEMM takes matmul of {len(a.shape)}-D @ 2-D or "
                        "equal-batch 3-D operands")


def _pair(value, name: str, what: str) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, (tuple, list)) and len(value) in (1, 2):
        return (value[0], value[-1])
    raise LoweringError(f"{name}: conv2d {what}={value!r} is not supported by the Triton GEMM")


def _conv(bound, out, name):
    if bound.get("transposed"):
        raise LoweringError(f"{name}: transposed convolution has no Triton implicit GEMM")
    x, w, bias = bound["input"], bound["weight"], bound.get("bias")
    xm, wm = _meta(x), _meta(w)
    if len(xm.shape) != 4:
        raise LoweringError(f"{name}: the Triton implicit GEMM takes 2-D convolutions")
    padding = bound.get("padding", 0)
    if padding == "valid":
        padding = 0
    elif padding == "same":
        padding = tuple((d * (k - 1)) // 2 for d, k in
                        zip(_pair(bound.get("dilation", 1), name, "dilation"), wm.shape[2:]))
    problem = ConvProblem(tuple(xm.shape), tuple(xm.strides), tuple(wm.shape), tuple(wm.strides),
                          tuple(out.strides), _pair(bound.get("stride", 1), name, "stride"),
                          _pair(padding, name, "padding"),
                          _pair(bound.get("dilation", 1), name, "dilation"),
                          int(bound.get("groups", 1)), xm.dtype, out.dtype,
                          _meta(bias).dtype if bias is not None else None)
    if problem.out_hw != tuple(out.shape[2:]):
        raise LoweringError(f"{name}: conv2d output {list(out.shape)} does not match its "
                            f"arguments (asymmetric 'same' padding?)")
    return problem, [x, w] + ([bias] if bias is not None else [])


_ANCHORS = {"mm": _mm, "addmm": _addmm, "linear": _linear, "bmm": _bmm, "matmul": _matmul,
            "conv2d": _conv, "convolution": _conv}
