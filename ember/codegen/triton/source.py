"""Kernel descriptions (codegen/kernel.py) -> Triton source text.

Each description becomes one `@triton.jit` function whose arguments are the
description's buffers (inputs then outputs, as `<name>_ptr`), its sizes (`ks0, ks1,
...`: element counts, unravel divisors, index coefficients and offsets, constants;
bound to the shape's values in `LaunchSpec.sizes`, see `Sizes`) and its block sizes
(constexprs). The text is the same for every shape of one structure, so such kernels
share one source and one cubin; integer sizes that are multiples of 16 are compiled
as such (Triton's specialization), which keeps the contiguity that vector loads need.
`literal_sizes()` / EMBER_TRITON_LITERAL_SIZES=1 bake the sizes in instead.

- Pointwise (no inner space): 1-D blocks of XBLOCK points over the flattened
  outer space, masked at the end; the flat index is unraveled into the loop
  variables with // and % by the outer sizes (lowering already collapsed dims
  that every access walks contiguously).
- Reductions: each program owns XBLOCK outer points (a [XBLOCK, 1] column) and
  walks the inner space in [1, RBLOCK] rows. When the inner space fits in
  registers (`MAX_PERSISTENT`) the whole row is loaded once and every stage
  reads it ("one pass": softmax and layernorm read x once); otherwise each
  Reduce loops over RBLOCK chunks into an [XBLOCK, RBLOCK] accumulator, then
  reduces it (float sums accumulate in float32: the description's acc dtype).
- max/min propagate NaN, as torch does (`emath.max_nan`); float16/bfloat16 values
  live in float32 registers and are rounded where the description casts.

Descriptions are DAGs: each distinct expression object becomes one variable per
scope. Values that do not depend on the inner space are emitted once per program,
outside the inner loop (per-row constants such as rsqrt(var + eps)).

`emit_epilogue` reuses the same emitter inside GEMM kernels (gemm.py).
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import os
import re
from dataclasses import dataclass, field

from ...ir.dtypes import Category, DType
from ...ir.errors import LoweringError
from .. import kernel as K

# --- dtypes --------------------------------------------------------------------------------
# ember dtype -> (Triton type in source, signature type for triton.compile)
_TYPES = {
    "float32": ("tl.float32", "fp32"), "float16": ("tl.float16", "fp16"),
    "bfloat16": ("tl.bfloat16", "bf16"), "float64": ("tl.float64", "fp64"),
    "int8": ("tl.int8", "i8"), "int16": ("tl.int16", "i16"), "int32": ("tl.int32", "i32"),
    "int64": ("tl.int64", "i64"), "uint8": ("tl.uint8", "u8"), "bool": ("tl.int1", "i1"),
}
_LOW_PRECISION = ("float16", "bfloat16")

MAX_PERSISTENT = 16384      # inner extents up to this stay in registers (one pass over memory)
LOOP_RBLOCK = 2048          # chunk of the inner space per iteration otherwise
POINTWISE_XBLOCK = 1024
TILE_ELEMENTS = 4096        # XBLOCK * RBLOCK budget for small rows (several rows per program)
FEW_ROWS = 128              # looping reductions with fewer rows than this get one row a program
FEW_ROWS_RBLOCK = 8192      # ... and a wider chunk per iteration (more bytes in flight)
# Column reductions (the kept dims are the contiguous ones: channels-last per-channel sums)
COLUMN_SECTOR_BYTES = 32    # a DRAM sector: the fewest consecutive kept elements a tile takes
COLUMN_TARGET_PROGRAMS = 132  # enough programs for one wave of an H100 where the kept space allows
COLUMN_TILE = 8192          # XBLOCK * RBLOCK of a column tile (16 warps)
COLUMN_WINDOW = 32          # column reductions this short (pooling windows) walk one reduced
COLUMN_WINDOW_XBLOCK = 1024  # element a step over XBLOCK kept ones: no cross-thread reduce
DIVISIBILITY = 16           # bound integers that are multiples of this are compiled as such


def tl_type(dtype: DType) -> str:
    entry = _TYPES.get(dtype.name)
    if entry is None:
        raise LoweringError(f"the Triton backend has no {dtype.name} support")
    return entry[0]


def pointer_type(dtype: DType) -> str:
    tl_type(dtype)
    return "*" + _TYPES[dtype.name][1]


def register_type(dtype: DType) -> str:
    """float16/bfloat16 are computed in float32 registers (as the LLVM backend does)."""
    return "tl.float32" if dtype.name in _LOW_PRECISION else tl_type(dtype)


def _is_float(dtype: DType) -> bool:
    return dtype.category == Category.FLOAT


def next_pow2(n: int) -> int:
    return 1 << max(0, (max(1, n) - 1).bit_length())


# --- generated kernels and their launch metadata ----------------------------------------------
@dataclass
class LaunchSpec:
    """What a runtime needs to launch the compiled kernel without Triton.

    `args` are the runtime arguments a caller passes, in call order: (name, signature
    type), device pointers (and the optimizer kernels' hyperparameters); `sizes` follow
    them, bound here. `constexprs` are the block sizes compiled in. The grid comes from
    the shape: `grid` is the value, `grid_rule` says how it was computed.
    """
    name: str
    args: list[tuple[str, str]]
    constexprs: dict[str, int]
    grid: tuple[int, int, int]
    grid_rule: str
    num_warps: int
    num_stages: int = 1
    buffers: list[str] = field(default_factory=list)   # description buffer per pointer arg
    # runtime scalars the generator binds (sizes, strides, element counts, constants of a
    # shape-generic kernel): (parameter name, signature type, value), passed after `args`
    sizes: list[tuple[str, str, object]] = field(default_factory=list)
    plain: tuple[str, ...] = ()      # sizes compiled without divisibility (Sizes.int)

    def to_json(self) -> dict:
        return {"name": self.name, "args": [list(a) for a in self.args],
                "constexprs": dict(self.constexprs), "grid": list(self.grid),
                "grid_rule": self.grid_rule, "num_warps": self.num_warps,
                "num_stages": self.num_stages, "buffers": list(self.buffers),
                "sizes": [list(s) for s in self.sizes]}

    def arg_types(self) -> list[str]:
        """Signature types of every runtime argument in call order: `args`, then `sizes`."""
        return [t for _, t in self.args] + [t for _, t, _ in self.sizes]

    def bound(self) -> list:
        """The values of `sizes`: what a launch appends after the caller's arguments."""
        return [v for _, _, v in self.sizes]

    def signature(self) -> dict[str, str]:
        """triton.compile's signature: runtime arguments, then the constexprs."""
        out = {name: t for name, t in self.args}
        out.update({name: t for name, t, _ in self.sizes})
        out.update({name: "constexpr" for name in self.constexprs})
        return out

    def size_divisibility(self) -> tuple[bool, ...]:
        """Per bound integer, whether it is a multiple of DIVISIBILITY: the kernel is
        compiled assuming it (as Triton's own launcher specializes integer arguments), so
        the index math keeps its contiguity and vector loads; part of the kernel's key."""
        return tuple(not t.startswith("fp") and n not in self.plain and
                     int(v) % DIVISIBILITY == 0 for n, t, v in self.sizes)

    def divisibility_attrs(self, pointer_alignment) -> dict:
        """triton.compile's `attrs`: pointers marked 16-byte divisible where
        `pointer_alignment` says so (one flag per `args`), bound integers where their value
        is a multiple of DIVISIBILITY."""
        flags = list(pointer_alignment) + list(self.size_divisibility())
        return {(i,): [["tt.divisibility", DIVISIBILITY]] for i, ok in enumerate(flags) if ok}


@dataclass
class GeneratedKernel:
    source: str              # the function's text (module header not included)
    launch: LaunchSpec

    @property
    def name(self) -> str:
        return self.launch.name

    def key(self) -> str:
        """Identity for caching and deduplication: the source plus how it is launched. The
        argument types are part of it: a source may leave its element types to the
        pointers' (a layout copy's is the same for float16 and float32), and a float32
        launch of a float16 cubin moves the wrong bytes. So is the divisibility of the
        bound sizes (the compile specializes on it), never their values: a shape-generic
        kernel has one key, one source file and one cubin for every shape. Comment lines
        (the description a kernel was generated for, with its shape) are left out."""
        return self._remembered("key", lambda: self._hash(self.source))

    def instance_key(self) -> str:
        """key() plus the bound values: one launch's identity (a kernel and its shape)."""
        return f"{self.key()}:{self.launch.bound()!r}"

    def _hash(self, text: str) -> str:
        launch = self.launch
        types, divisible = launch.arg_types(), launch.size_divisibility()
        blocks = sorted(launch.constexprs.items())
        # a plan asks each kernel's keys a dozen times (deduplication, disk lookups, the
        # batch, launches): the digest is remembered by everything it hashes (a str
        # caches its own hash, so the lookup does not read the source again)
        memo = (text, tuple(types), divisible, tuple(blocks), launch.num_warps,
                launch.num_stages)
        try:
            found = _DIGESTS.get(memo)
        except TypeError:                   # an unhashable block value: no memo
            found, memo = None, None
        if found is None:
            h = hashlib.sha256(_without_comments(text))
            h.update(repr(types).encode())
            h.update(repr(divisible).encode())
            h.update(repr(blocks).encode())
            h.update(f"{launch.num_warps}/{launch.num_stages}".encode())
            found = h.hexdigest()[:24]
            if memo is not None:
                if len(_DIGESTS) >= 4096:
                    _DIGESTS.clear()
                _DIGESTS[memo] = found
        return found

    def body_key(self) -> str:
        """Identity of the compiled code whatever the function is called: kernels generated
        for different graph nodes (layers of one shape, the same backward op in every
        block) often differ only in their name and the description comment above them,
        and share one cubin (a third of a resnet18 training step's kernels)."""
        # only the definition's name: the body may call a math function of the same name
        # (a kernel named `asin` calls `asin`; replacing every `asin` made asin and acos
        # kernels one cubin)
        return self._remembered("body", lambda: self._hash(_renamed_body(self.name,
                                                                         self.source)))

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_digests", None)         # a pickled kernel computes its keys afresh
        return state

    def _remembered(self, kind: str, digest) -> str:
        """`digest()`, remembered on this kernel while its source and launch are the same
        objects (a batch asks each kernel's keys ~10 times; building the content memo of
        `_hash` each time was most of a plan's key work). Launch fields are replaced, never
        edited in place (multi_tensor.horizontal_kernel assigns new `args`), so an
        identity stamp sees every change."""
        launch = self.launch
        stamp = (self.source, launch, launch.name, launch.args, launch.sizes,
                 launch.constexprs, launch.num_warps, launch.num_stages, launch.plain)
        memo = self.__dict__.get("_digests")
        if memo is None or any(a is not b for a, b in zip(memo[0], stamp)):
            memo = self.__dict__["_digests"] = (stamp, {})
        found = memo[1].get(kind)
        if found is None:
            found = memo[1][kind] = digest()
        return found


_DIGESTS: dict = {}


# a plan asks each kernel's keys several times (deduplication, cache lookups, launches):
# the text work is done once per distinct source
@functools.lru_cache(maxsize=1024)
def _without_comments(text: str) -> bytes:
    return "\n".join(line for line in text.splitlines()
                     if not line.lstrip().startswith("#")).encode()


@functools.lru_cache(maxsize=1024)
def _renamed_body(name: str, source: str) -> str:
    return re.sub(rf"^def {re.escape(name)}\(", "def KERNEL(", source, flags=re.MULTILINE)


MODULE_HEADER = '''"""Generated by ember.codegen.triton; do not edit."""
import triton
import triton.language as tl

from ember.codegen.triton import mathlib as emath
'''


def function_name(name: str) -> str:
    ident = re.sub(r"\W", "_", name)
    return ident if ident and not ident[0].isdigit() else f"k_{ident}"


# --- shape-generic kernels: sizes as runtime arguments -----------------------------------------
def literal_sizes_default(family: str | None = None) -> bool:
    """Sizes, strides and constants are baked into the source (one kernel body per shape)
    unless EMBER_TRITON_LITERAL_SIZES=0 asks for shape-generic kernels. Measured on an H100
    (resnet18 training step, batch 64, TF32): shape-generic kernels ran 5% slower (10.16
    against 9.62 ms a step; the transformer layer 1.24 against 1.07) and did not make the
    cold first call faster there (10.1 against 8.9 s: 16 compile workers hide the count of
    cubins, 95 against 141), so they are opt-in: they pay where few cores compile.

    The kernel families of GENERIC_FAMILIES are the exception: with the variable unset
    they are generated shape-generic (one body per structure), because their generic text
    divides by nothing at runtime and keeps every vector access (docs/cuda.md, "Split
    reductions compile once per structure"). EMBER_TRITON_LITERAL_SIZES=1 makes them
    literal too, =0 makes every family generic. EMBER_TRITON_LITERAL_FAMILIES (names
    separated by commas, e.g. "conv") keeps those families of GENERIC_FAMILIES literal
    alone: the A/B of one family."""
    setting = os.environ.get("EMBER_TRITON_LITERAL_SIZES")
    if setting is None:
        kept = os.environ.get("EMBER_TRITON_LITERAL_FAMILIES", "")
        return family not in GENERIC_FAMILIES or family in kept.replace(" ", "").split(",")
    return setting not in ("", "0")


# Families generated shape-generic by default: "split", the phases of split reductions
# (BatchNorm's statistics and gradients, split_reduce.py): a resnet18 training step
# compiled 52 of them, 44 now. "fused" (source.generate's pointwise and reduction kernels)
# is literal by default: its generic text divides by runtime sizes in most kernels of the
# step (multi-dimensional copies and layout changes), so nothing would be shared. "conv",
# the implicit-GEMM convolutions (gemm.ConvProblem) of channels-last inputs whose channels
# per group are a multiple of BLOCK_K: their main loop walks K a tap at a time, so the
# channel count, spatial sizes and strides are arguments and the layers of one kernel
# size, stride, padding and tile share a body (a fused epilogue stays literal).
GENERIC_FAMILIES = frozenset({"split", "conv"})


_RUNTIME_DIVISOR = re.compile(r"(//|%)\s*ks\d+")


def runs_as_literal(generated: GeneratedKernel) -> bool:
    """Whether a shape-generic kernel computes what its literal form would, as fast as
    far as the text tells: it divides by no runtime size (a literal divisor is a
    multiply and a shift, a runtime one an integer division of ~20 instructions, per
    element where it unravels an index; Sizes.div's multiply-high by a runtime magic
    number is the literal's division), and every size Triton specializes is a multiple
    of 16 (a literal's own divisibility is what vector accesses need; a runtime 8 or 3
    would be compiled as divisible by nothing). The families of GENERIC_FAMILIES keep a
    kernel literal where this says no."""
    if _RUNTIME_DIVISOR.search(_without_comments(generated.source).decode()):
        return False
    return all(t.startswith("fp") or n in generated.launch.plain or int(v) % DIVISIBILITY == 0
               for n, t, v in generated.launch.sizes)


def generic_or_literal(family: str, make):
    """`make(literal)` (Sizes' `literal` argument) in the mode of `family`: literal,
    shape-generic where asked (literal_sizes(False), EMBER_TRITON_LITERAL_SIZES=0), or by
    default for GENERIC_FAMILIES, ALIGNED sizes, made again with literal sizes where the
    result would not run as its literal form does (runs_as_literal)."""
    literal = literal_mode(family)
    if literal or _LITERAL or os.environ.get("EMBER_TRITON_LITERAL_SIZES") is not None:
        return make(literal)         # literal, or generic by request (all of it)
    made = make(ALIGNED)
    kernels = made if isinstance(made, list) else [made]
    return made if all(runs_as_literal(k) for k in kernels) else make(True)


_LITERAL: list[bool] = []


@contextlib.contextmanager
def literal_sizes(on: bool = True):
    """Inside, generate() bakes every size into the source (a plan packaged ahead of time
    whose launch records carry no scalar arguments)."""
    _LITERAL.append(on)
    try:
        yield
    finally:
        _LITERAL.pop()


def literal_mode(family: str | None = None) -> bool:
    """Whether a kernel of `family` (None: any other) bakes its sizes in: literal_sizes()
    where one is active (ahead-of-time packages, autotune keys), else the default above."""
    return _LITERAL[-1] if _LITERAL else literal_sizes_default(family)


class Sizes:
    """The integers and floating constants of one generated kernel, as runtime arguments.

    `int(value, role)` / `const(value, dtype)` return the source text for a value: a
    parameter name (`ks0`, `ks1`, ... in order of first use) bound to the value in the
    kernel's LaunchSpec.sizes, or the literal itself where it shapes the code rather than
    parameterizes it: 0 and 1 (an omitted term, a unit stride Triton's contiguity analysis
    needs to see), -1, non-finite floats, booleans and narrow integers. One parameter
    serves every use of one value in one `role` (a loop variable's coefficient, the outer
    size, ...): values are never shared across roles, where two sizes that happen to be
    equal at one shape (a split's chunk and the channel count, both 512) would make that
    shape's text differ from the others'. No role: a parameter of its own. With `literal`
    every value is a literal (the per-shape kernels of literal_sizes())."""

    def __init__(self, literal: bool | str = True, wide: bool = False):
        # ALIGNED: arguments where Triton's specialization keeps what the literal tells
        # (multiples of 16), literals elsewhere (a literal 196 still tells divisibility by 4)
        self.aligned_only = literal == ALIGNED
        self.literal = literal != ALIGNED and bool(literal)
        self.itype = "i64" if wide else "i32"
        self._names: dict = {}
        self.args: list[tuple[str, str, object]] = []
        self.plain: tuple[str, ...] = ()

    def int(self, value: int, role=None, specialize: bool = True) -> str:
        """`specialize=False` for a size whose divisibility tells Triton nothing it uses (a
        bound compared against, a conv's stride or padding): the kernel is then compiled
        once whatever the value, where each divisibility pattern is another cubin."""
        value = int(value)
        if self.literal or value in (0, 1, -1) or \
                self.aligned_only and specialize and value % DIVISIBILITY:
            return str(value)
        name = self._arg(self.itype if -2 ** 31 <= value < 2 ** 31 else "i64", value, role)
        if not specialize and name not in self.plain:
            self.plain += (name,)
        return name

    def div(self, expr: str, value: int, role) -> str:
        """`expr // value` for 0 <= expr < 2**31 as a multiply-high and a shift by runtime
        magic numbers (the division a compiler makes of a literal divisor: an integer
        division by a runtime value is ~20 instructions): q = umulhi(n, m) >> s with
        s = ceil(log2 d) - 1, m = ceil(2**(31 + s + 1) / d), exact for n < 2**31.
        Triton learns nothing about the quotient's contiguity, so this is for indices
        along a dimension no vector access walks (a channels-last conv's output pixels)."""
        value = int(value)
        if self.literal or value == 1:
            return f"({expr} // {value})" if value != 1 else expr
        shift = (value - 1).bit_length() - 1
        magic = -(-(1 << (32 + shift)) // value)
        magic = magic - (1 << 32) if magic >= 1 << 31 else magic     # its bits, as an i32
        m = self._arg("i32", magic, ("magic", role))
        s = self._arg("i32", shift, ("shift", role))
        self.plain += tuple(n for n in (m, s) if n not in self.plain)
        return f"(tl.umulhi({expr}, {m}) >> {s})"

    def const(self, value, dtype: DType) -> str:
        """`tl.full([], value, <register type>)` with the value a parameter where it may be."""
        sig = _CONST_SIGS.get(register_type(dtype))
        if self.literal or sig is None or dtype.name == "bool":
            return _constant(value, dtype)
        if sig.startswith("fp"):
            value = float(value)
            if not math.isfinite(value) or value in (0.0, 1.0, -1.0):
                return _constant(value, dtype)
        else:
            value = int(value)
            if value in (0, 1, -1) or not -2 ** 31 <= value < 2 ** 31 and sig == "i32":
                return _constant(value, dtype)
        return f"tl.full([], {self._arg(sig, value, 'const')}, {register_type(dtype)})"

    def _arg(self, sig: str, value, role) -> str:
        key = (role, sig, type(value), value) if role is not None else len(self.args)
        name = self._names.get(key)
        if name is None:
            name = self._names[key] = f"ks{len(self.args)}"
            self.args.append((name, sig, value))
        return name


ALIGNED = "aligned"          # Sizes(literal=ALIGNED): see Sizes.__init__

_CONST_SIGS = {"tl.float32": "fp32", "tl.float64": "fp64", "tl.int32": "i32",
               "tl.int64": "i64"}


# --- block choice ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Blocks:
    xblock: int
    rblock: int = 1
    persistent: bool = True
    num_warps: int = 4


def default_blocks(kernel: K.Kernel) -> Blocks:
    """Documented defaults; autotune.py may time alternatives on a GPU."""
    x, r = math.prod(kernel.outer), math.prod(kernel.inner)
    if not kernel.inner:
        xblock = min(POINTWISE_XBLOCK, next_pow2(x))
        return Blocks(xblock, 1, True, _warps(xblock))
    if is_column_reduction(kernel):
        return _column_blocks(kernel, x, r)
    persistent = r <= MAX_PERSISTENT
    if not persistent and x < FEW_ROWS:
        # Few long rows (BatchNorm's per-channel sums over N*H*W): each program is one SM
        # walking its row, so the time is that SM's bytes in flight. One row a program
        # doubles the programs over XBLOCK=2, and 32 KiB chunks quadruple what each has in
        # flight: on an H100 the small CNN's 16-channel BatchNorm (16 rows of 262144)
        # forward took 0.43 ms with [2, 2048] tiles (39 GB/s).
        return Blocks(1, FEW_ROWS_RBLOCK, False, 16)
    rblock = next_pow2(r) if persistent else LOOP_RBLOCK
    xblock = min(next_pow2(x), max(1, TILE_ELEMENTS // rblock))
    return Blocks(xblock, rblock, persistent, _warps(xblock * rblock))


def is_column_reduction(kernel: K.Kernel) -> bool:
    """True when the kept (outer) space is the contiguous one and the reduced space is
    strided: every load that walks the inner space steps 1 element along the last outer
    dim and more than 1 along every inner dim (BatchNorm's statistics and gradients, bias
    gradients and sums over N, H, W of channels-last tensors; column sums of row-major
    matrices). Row tiles would read one element per sector there; column tiles read runs
    of consecutive kept elements."""
    if not kernel.outer or not kernel.inner or kernel.outer[-1] == 1:
        return False
    n_outer, last = len(kernel.outer), len(kernel.outer) - 1
    walking = [e for e in _loads(kernel)
               if any(e.index.coeff(v) for v in range(n_outer, kernel.n_vars))]
    return bool(walking) and all(
        e.index.coeff(last) == 1 and
        all(abs(e.index.coeff(v)) != 1 for v in range(n_outer, kernel.n_vars)
            if kernel.inner[v - n_outer] != 1)
        for e in walking)


def _loads(kernel: K.Kernel) -> list:
    seen: set = set()
    return [e for stage in kernel.stages for e in K._walk(stage.value, seen)
            if isinstance(e, (K.Load, K.MaskedLoad))]


def _column_blocks(kernel: K.Kernel, x: int, r: int) -> Blocks:
    """[XBLOCK consecutive kept elements, RBLOCK reduced] tiles: Triton's coalescing follows
    the contiguous axis (axis 0 here), so each warp reads whole sectors of neighbouring kept
    elements. XBLOCK is at least one sector of the widest element and otherwise as small as
    gives COLUMN_TARGET_PROGRAMS programs; the reduced dim fills the rest of the tile."""
    if r <= COLUMN_WINDOW and not any(getattr(s, "over_inner", False) for s in kernel.stages):
        # max pooling over channels-last activations: resnet18's stem pool (3x3 windows,
        # 64x64x56x56 outputs, two reductions: the max, then its first position) took
        # 1.87 ms on an H100 with [256, 16] tiles, whose window axis is reduced across
        # threads; [XBLOCK, 1] steps keep each output in one thread (not yet timed on a
        # GPU). Only where nothing is stored over the window (each stage one pass;
        # softmax-like kernels keep their rows in registers for the store)
        xblock = min(next_pow2(x), COLUMN_WINDOW_XBLOCK,
                     max(32, next_pow2(math.ceil(x / COLUMN_TARGET_PROGRAMS))))
        return Blocks(xblock, 1, False, _warps(xblock))
    itemsize = max(e.dtype.itemsize for e in _loads(kernel))
    sector = max(1, COLUMN_SECTOR_BYTES // itemsize)
    xblock = max(sector, next_pow2(math.ceil(x / COLUMN_TARGET_PROGRAMS)))
    rblock_full = next_pow2(r)
    xblock = min(next_pow2(x), xblock, max(sector, TILE_ELEMENTS // min(rblock_full, 64)))
    if xblock * rblock_full <= COLUMN_TILE:                 # whole columns fit: one pass
        return Blocks(xblock, rblock_full, True, _warps(xblock * rblock_full))
    rblock = max(1, COLUMN_TILE // xblock)
    return Blocks(xblock, rblock, False, _warps(xblock * rblock))


def _warps(tile: int) -> int:
    """About 8 elements per thread for small tiles, up to 16 warps for long rows."""
    return max(1, min(16, tile // 256))


# --- the emitter ---------------------------------------------------------------------------------
class Scope:
    """Where values are emitted: a list of lines, a memo (expression id -> variable),
    the mask of full-shape accesses, and whether inner variables exist here."""

    def __init__(self, lines: list, mask: str | None, inner: bool):
        self.lines, self.mask, self.inner = lines, mask, inner
        self.memo: dict[int, str] = {}


class Emitter:
    """Emits the body of one kernel; `pointwise_body`/`reduction_body` build whole kernels,
    `epilogue` only the stores after a GEMM main loop."""

    def __init__(self, kernel: K.Kernel, wide: bool = False, substitutes=None,
                 sizes: Sizes | None = None):
        K.validate(kernel)
        self.k = kernel
        self.sizes = sizes or Sizes(literal=True)    # where the integers and constants go
        self.n_outer = len(kernel.outer)
        self.dtypes = {b.name: b.dtype for b in kernel.inputs + kernel.outputs}
        for d in self.dtypes.values():
            tl_type(d)
        self.itype = "tl.int64" if wide else "tl.int32"
        self.wide = wide
        self.substitutes = substitutes or {}     # buffer name -> variable (GEMM's accumulator)
        self.count = 0
        self.reduced: dict[str, str] = {}
        self._inner_memo: dict[int, bool] = {}
        # split reductions (split_reduce.py) walk one chunk of the inner space and let
        # one program of each column store the per-outer-point results
        self.loop_range = "range(0, R, RBLOCK)"
        self.outer_store_mask = "xmask"

    def fresh(self, prefix: str = "t") -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    # -- index variables ------------------------------------------------------------------
    def unravel(self, lines: list, flat: str, first_var: int, sizes,
                magic: int = 0) -> None:
        """v_d = (flat // stride_d) % size_d for row-major `sizes` (one var per dim).
        `magic` (a shape-generic kernel's [1, RBLOCK] index, below 2**31, running
        contiguously in groups of `magic` elements that start at multiples of it): runtime
        divisors as Sizes.div's multiply-high and shift, the division a literal divisor
        compiles to, where `//` by a runtime value is an integer division."""
        strides = [math.prod(sizes[d + 1:]) for d in range(len(sizes))]
        if magic and not self.sizes.literal and not self.wide and \
                all(v % magic == 0 for v in strides[:-1] + list(sizes[1:]) if v != 1):
            return self._unravel_magic(lines, flat, first_var, sizes, strides, magic)
        for d, (size, stride) in enumerate(zip(sizes, strides)):
            var = first_var + d
            value = flat if stride == 1 else f"({flat} // {self.sizes.int(stride, ('div', var))})"
            if d > 0 and size != 1:
                value = f"{value} % {self.sizes.int(size, ('size', var))}"
            elif size == 1:
                value = f"{flat} * 0"
            lines.append(f"v{first_var + d} = {value}")

    def _unravel_magic(self, lines: list, flat: str, first_var: int, sizes, strides,
                       run: int) -> None:
        """q_d = flat // stride_d by Sizes.div, and v_d = q_d - q_(d-1) * size_d (as
        q_(d-1) = q_d // size_d): one multiply-high a dimension, no modulo. Every size and
        stride is a multiple of `run` (unravel checks), so each run of `flat` has one
        q_d for d above the last and walks the last dimension contiguously from a
        multiple of `run`. Triton sees both through a literal divisor (`flat // 3136` is
        constant, `flat % 3136` contiguous, over runs of 32), not through a multiply-high:
        the text says so (tl.max_constancy, tl.max_contiguous, tl.multiple_of), which an
        access walking the last dimension needs for vector loads and stores (a
        BatchNorm's NCHW copy of its output for a weight gradient)."""
        previous, hint = None, f"[1, {run}]"
        for d, (size, stride) in enumerate(zip(sizes, strides)):
            var = first_var + d
            if size == 1:
                lines.append(f"v{var} = {flat} * 0")
                continue
            quotient = flat if stride == 1 else f"q{var}"
            if stride != 1:
                lines.append(f"q{var} = tl.max_constancy("
                             f"{self.sizes.div(flat, stride, ('div', var))}, {hint})")
            value = quotient if previous is None else \
                f"({quotient} - {previous} * {self.sizes.int(size, ('size', var), False)})"
            if stride == 1 and previous is not None:
                value = f"tl.max_contiguous(tl.multiple_of({value}, {hint}), {hint})"
            lines.append(f"v{var} = {value}")
            previous = quotient

    def unravel_dense(self, lines: list, flat: str, index: K.Affine) -> None:
        """Inverse of a dense permutation index: loop vars from a memory offset."""
        for v in range(self.n_outer):
            c, size = index.coeff(v), self.k.outer[v]
            lines.append(f"v{v} = ({flat} // {self.sizes.int(c, ('div', v))}) % "
                         f"{self.sizes.int(size, ('size', v))}" if size != 1 else
                         f"v{v} = {flat} * 0")

    # -- expressions ----------------------------------------------------------------------
    def uses_inner(self, e) -> bool:
        hit = self._inner_memo.get(id(e))
        if hit is None:
            if isinstance(e, (K.Load, K.IndexValue)):
                hit = any(e.index.coeff(v) for v in range(self.n_outer, self.k.n_vars))
            elif isinstance(e, K.MaskedLoad):
                hit = any(e.index.coeff(v) for v in range(self.n_outer, self.k.n_vars)) or \
                    self.uses_inner(e.mask)
            elif isinstance(e, K.Call):
                hit = any(self.uses_inner(a) for a in e.args)
            elif isinstance(e, K.Cast):
                hit = self.uses_inner(e.value)
            else:
                hit = False
            self._inner_memo[id(e)] = hit
        return hit

    def value(self, e, scope: Scope, outer: Scope) -> str:
        """The variable holding `e`; outer-only values go to the outer scope."""
        target = scope if scope.inner and self.uses_inner(e) else outer
        hit = target.memo.get(id(e))
        if hit is None:
            text = self._text(e, target, outer)
            if isinstance(e, (K.ReduceRef,)) or re.fullmatch(r"\w+", text):
                hit = text
            else:
                hit = self.fresh()
                target.lines.append(f"{hit} = {text}")
            target.memo[id(e)] = hit
        return hit

    def _text(self, e, scope: Scope, outer: Scope) -> str:
        if isinstance(e, K.Load):
            return self._load(e, scope)
        if isinstance(e, K.MaskedLoad):
            return self._masked_load(e, scope, outer)
        if isinstance(e, K.Const):
            return self.sizes.const(e.value, e.dtype)
        if isinstance(e, K.ReduceRef):
            return self.reduced[e.name]
        if isinstance(e, K.IndexValue):
            offset = self.affine(e.index)
            if not any(e.index.coeffs):
                offset = self.sizes.int(e.index.offset, "offset")
                return f"tl.full([], {offset}, {register_type(e.dtype)})"
            return f"({offset}).to({register_type(e.dtype)})"
        if isinstance(e, K.Cast):
            return _cast(self.value(e.value, scope, outer), e.value.dtype, e.dtype)
        args = [self.value(a, scope, outer) for a in e.args]
        text = scalar_op(e.op, args, e.args[-1 if e.op == "where" else 0].dtype, e.dtype,
                         self.k.name)
        return _round_low_precision(text, e.dtype)

    def affine(self, index: K.Affine) -> str:
        terms = [f"v{v}" if c == 1 else f"v{v} * {self.sizes.int(c, ('coeff', v))}"
                 for v, c in enumerate(index.coeffs) if c]
        if index.offset or not terms:
            terms.append(self.sizes.int(index.offset, "offset"))
        return " + ".join(terms)

    def _mask_for(self, index: K.Affine, scope: Scope) -> str | None:
        if any(index.coeff(v) for v in range(self.n_outer, self.k.n_vars)):
            return scope.mask
        return "xmask" if any(index.coeffs) else None

    def _load(self, e: K.Load, scope: Scope) -> str:
        if e.buffer in self.substitutes:
            return self.substitutes[e.buffer]
        mask = self._mask_for(e.index, scope)
        masked = f", mask={mask}, other=0" if mask else ""
        text = f"tl.load({e.buffer}_ptr + ({self.affine(e.index)}){masked})"
        if e.dtype.name in _LOW_PRECISION:
            text += ".to(tl.float32)"
        return text

    def _masked_load(self, e: K.MaskedLoad, scope: Scope, outer: Scope) -> str:
        """A load only where the description's mask (and the block's) holds: no memory
        access elsewhere, so the index may point outside the buffer there (padding)."""
        if e.buffer in self.substitutes:
            raise LoweringError(f"{self.k.name}: a masked read of the GEMM result cannot be "
                                "fused into the GEMM")
        own = self.value(e.mask, scope, outer)
        block = self._mask_for(e.index, scope) or (scope.mask if scope.inner else "xmask")
        mask = f"({block}) & ({own})"
        address = f"{e.buffer}_ptr + ({self.affine(e.index)})"
        if not any(e.index.coeffs):     # one address for every lane (a broadcast input):
            address += f" + tl.zeros_like({mask}).to(tl.int64)"  # a block, as the mask is
        text = masked_load(address, mask, e.other, e.dtype)
        if e.dtype.name in _LOW_PRECISION:
            text += ".to(tl.float32)"
        return text

    # -- stages -----------------------------------------------------------------------------
    def store(self, stage: K.Store, scope: Scope, outer: Scope) -> None:
        dtype = self.dtypes[stage.buffer]
        value = self.value(stage.value, scope, outer)
        value = _cast(value, stage.value.dtype, dtype) if stage.value.dtype != dtype else value
        mask = scope.mask if stage.over_inner else self.outer_store_mask
        offset = self.affine(stage.index)
        if not any(stage.index.coeffs):
            offset += " + xindex * 0"          # a block of pointers: value and mask are blocks
        scope.lines.append(f"tl.store({stage.buffer}_ptr + ({offset}), "
                           f"({value}).to({tl_type(dtype)}), mask={mask})")

    def reduce_persistent(self, stage: K.Reduce, row: Scope, outer: Scope) -> None:
        value = self.value(stage.value, row, outer)
        name = f"red_{stage.name}"
        ident = _identity(stage.combine, stage.acc_dtype)
        picked = f"tl.where({row.mask}, {value}, {ident})"      # masked lanes: the identity
        outer.lines.append(f"{name} = {_reduce_call(stage, picked)}[:, None]")
        self.reduced[stage.name] = name

    def reduce_loop(self, stage: K.Reduce, outer: Scope, inner_header) -> None:
        self.reduce_loops([stage], outer, inner_header)

    def reduce_loops(self, stages: list, outer: Scope, inner_header) -> None:
        """Reduce stages that read no result of each other in ONE walk of the inner space,
        one accumulator each: a load they share is read once per walk (BatchNorm's
        backward sums of dy and dy * x-hat read dy once, not twice)."""
        row = inner_header()
        accs = []
        for stage in stages:
            acc, ident = self.fresh("acc"), _identity(stage.combine, stage.acc_dtype)
            outer.lines.append(f"{acc} = tl.full([XBLOCK, RBLOCK], {ident}, "
                               f"{register_type(stage.acc_dtype)})")
            value = self.value(stage.value, row, outer)
            picked = f"tl.where({row.mask}, {value}, {ident})"
            row.lines.append(f"{acc} = {_combine(stage, acc, picked)}")
            accs.append(acc)
        self._close_loop(outer, row)
        for stage, acc in zip(stages, accs):
            name = f"red_{stage.name}"
            outer.lines.append(f"{name} = {_reduce_call(stage, acc)}[:, None]")
            self.reduced[stage.name] = name

    def store_loop(self, stages: list, outer: Scope, inner_header) -> None:
        """Stores over the inner space in one walk (the loads they share read once)."""
        loop = inner_header()
        for stage in stages:
            self.store(stage, loop, outer)
        self._close_loop(outer, loop)

    def _close_loop(self, outer: Scope, row: Scope) -> None:
        outer.lines.append(f"for roff in {self.loop_range}:")
        outer.lines.extend("    " + line for line in row.lines)

    # -- whole kernels ----------------------------------------------------------------------
    def pointwise_body(self) -> list[str]:
        lines = [f"xindex = {self._program_start()} + tl.arange(0, XBLOCK){self._widen()}",
                 "xmask = xindex < X"]
        self.unravel(lines, "xindex", 0, self.k.outer)
        scope = Scope(lines, "xmask", inner=False)
        for stage in self.k.stages:
            self.store(stage, scope, scope)
        return lines

    def reduction_body(self, persistent: bool) -> list[str]:
        lines = [f"xindex = {self._program_start()} + tl.arange(0, XBLOCK){self._widen()}[:, None]",
                 "xmask = xindex < X"]
        self.unravel(lines, "xindex", 0, self.k.outer)
        outer = Scope(lines, "xmask", inner=False)

        def inner_header() -> Scope:
            body = lines if persistent else []
            start = "" if persistent else "roff + "
            body.append(f"rindex = {start}tl.arange(0, RBLOCK){self._widen()}[None, :]")
            body.append("rmask = rindex < R")
            self.unravel(body, "rindex", self.n_outer, self.k.inner)
            body.append("rxmask = xmask & rmask")
            return Scope(body, "rxmask", inner=True)

        if not persistent:
            for kind, stages in walks(self.k.stages):
                if kind == "reduce":
                    self.reduce_loops(stages, outer, inner_header)
                elif kind == "store":
                    self.store_loop(stages, outer, inner_header)
                else:
                    self.store(stages[0], outer, outer)
            return lines
        row = inner_header()
        for stage in self.k.stages:
            if isinstance(stage, K.Reduce):
                self.reduce_persistent(stage, row, outer)     # row loads stay shared
            elif stage.over_inner:
                self.store(stage, row, outer)
            else:
                self.store(stage, outer, outer)
        return lines

    def _program_start(self) -> str:
        pid = "tl.program_id(0).to(tl.int64)" if self.wide else "tl.program_id(0)"
        return f"{pid} * XBLOCK"

    def _widen(self) -> str:
        return ".to(tl.int64)" if self.wide else ""


def reduce_refs(value) -> set[str]:
    return {e.name for e in K._walk(value) if isinstance(e, K.ReduceRef)}


def walks(stages: list) -> list[tuple[str, list]]:
    """A looped kernel's stages as walks over the inner space, in an order that keeps each
    stage after the Reduces it reads: ("reduce", stages) for Reduces that read no result of
    each other (one loop, one accumulator each), ("store", stages) for consecutive stores
    over the inner space (one loop), ("outer", [stage]) for a store per outer point. The
    stages before grouping walked the input once each: BatchNorm's forward read x five
    times to store x - mean, x-hat, the ReLU output and its mask."""
    groups: list[tuple[str, list]] = []
    for stage in stages:
        last = groups[-1] if groups else None
        if isinstance(stage, K.Reduce):
            if last and last[0] == "reduce" and \
                    not reduce_refs(stage.value) & {s.name for s in last[1]}:
                last[1].append(stage)
                continue
            groups.append(("reduce", [stage]))
        elif stage.over_inner:
            if last and last[0] == "store":
                last[1].append(stage)
                continue
            groups.append(("store", [stage]))
        elif last and last[0] == "store":
            groups.insert(len(groups) - 1, ("outer", [stage]))   # its Reduces are done
        else:
            groups.append(("outer", [stage]))
    return groups


def needs_int64(kernel: K.Kernel) -> bool:
    """Offsets past 2**31 - 1 need 64-bit index math (int32 is faster otherwise)."""
    biggest = max([b.numel for b in kernel.inputs + kernel.outputs] +
                  [math.prod(kernel.outer) * max(1, math.prod(kernel.inner))])
    return biggest >= 2 ** 31 - 1


def generate(kernel: K.Kernel, blocks: Blocks | None = None) -> GeneratedKernel:
    """The Triton function for one kernel description, with its launch metadata."""
    blocks = blocks or default_blocks(kernel)
    if kernel.inner and not blocks.persistent:
        from .reduce_levels import flatten_levels
        kernel = flatten_levels(kernel)     # sums of earlier sums: fewer walks of the input
    return generic_or_literal("fused", lambda literal: _generate(kernel, blocks, literal))


def _generate(kernel: K.Kernel, blocks: Blocks, literal: bool) -> GeneratedKernel:
    wide = needs_int64(kernel)
    sizes = Sizes(literal=literal, wide=wide)
    name = function_name(kernel.name)
    x, r = math.prod(kernel.outer), math.prod(kernel.inner)
    size_lines = [f"X = {sizes.int(x, 'X')}"] + \
        ([f"R = {sizes.int(r, 'R')}"] if kernel.inner else [])
    emitter = Emitter(kernel, wide=wide, sizes=sizes)
    if kernel.inner:
        body = emitter.reduction_body(blocks.persistent)
        constexprs = {"XBLOCK": blocks.xblock, "RBLOCK": blocks.rblock}
    else:
        body = emitter.pointwise_body()
        constexprs = {"XBLOCK": blocks.xblock}
    buffers = [b.name for b in kernel.inputs + kernel.outputs]
    params = [f"{b}_ptr" for b in buffers] + [a for a, _, _ in sizes.args] + \
        [f"{c}: tl.constexpr" for c in constexprs]
    comment = "\n".join("# " + line for line in str(kernel).splitlines())
    mode = ("persistent" if blocks.persistent else "looped") + \
        (" columns" if is_column_reduction(kernel) else " rows") if kernel.inner else "pointwise"
    # the shapes stay in comments (which keys leave out): the text below them is the same
    # for every shape of one structure
    text = "\n".join([comment, f"# outer {list(kernel.outer)}, inner {list(kernel.inner)}",
                      "@triton.jit", f"def {name}({', '.join(params)}):",
                      f'    """{mode}: {len(kernel.stages)} stages."""']
                     + ["    " + line for line in size_lines + body]) + "\n"
    args = [(f"{b.name}_ptr", pointer_type(b.dtype)) for b in kernel.inputs + kernel.outputs]
    grid = (math.ceil(x / blocks.xblock), 1, 1)
    launch = LaunchSpec(name, args, constexprs, grid, f"cdiv({x}, XBLOCK)", blocks.num_warps,
                        1, buffers, sizes.args, sizes.plain)
    return GeneratedKernel(text, launch)


# --- scalar ops ------------------------------------------------------------------------------
def masked_load(address: str, mask: str, fill, dtype: DType) -> str:
    """`tl.load` of `address` where `mask` holds and `fill` elsewhere.

    A fill whose bit pattern has the element's top bit set (int8 -1, uint8 131, int16
    -32768) is selected after a load filling 0 rather than passed as the load's `other`:
    Triton 3.6 builds the register word of a vectorized masked 8/16-bit load from the
    sign-extended constant (uint8 131 -> 0xffffff83: bytes 131, 255, 255, 255), so every
    lane but the first of each word read 255 instead of the fill on an H100 (the
    interpreter and Triton 3.9 replicate the bytes)."""
    other = _constant(fill, dtype)
    if not fill_needs_select(fill, dtype):
        return f"tl.load({address}, mask={mask}, other={other})"
    return f"tl.where({mask}, tl.load({address}, mask={mask}, other=0), {other})"


def fill_needs_select(fill, dtype: DType) -> bool:
    """Whether masked_load must select `fill` after the load (see there): an integer
    element narrower than 32 bits whose fill has the top bit set."""
    if _is_float(dtype) or dtype.name == "bool" or dtype.itemsize >= 4:
        return False
    bits = 8 * dtype.itemsize
    return (int(fill) >> (bits - 1)) & 1 == 1


def _constant(value, dtype: DType) -> str:
    if dtype.name == "bool":
        literal = "1" if value else "0"
    elif _is_float(dtype):
        value = float(value)
        literal = f'float("{value}")' if not math.isfinite(value) else repr(value)
    else:
        literal = str(int(value))
    return f"tl.full([], {literal}, {register_type(dtype)})"


def _cast(value: str, src: DType, dst: DType) -> str:
    if src == dst:
        return value
    if dst.name == "bool":
        return f"({value} != 0)"
    if dst.name in _LOW_PRECISION:
        return f"{value}.to({tl_type(dst)}).to(tl.float32)"     # round like the memory type
    if src.name in _LOW_PRECISION and _is_float(dst) and dst.name != "float64":
        return value
    return f"{value}.to({register_type(dst)})"


def _round_low_precision(text: str, dtype: DType) -> str:
    """NumPy's reference rounds each float16 result; so do we, in float32 registers."""
    if dtype.name in _LOW_PRECISION:
        return f"({text}).to({tl_type(dtype)}).to(tl.float32)"
    return text


# float32 division is tl.math.div_rn (PTX div.rn.f32, IEEE round-to-nearest): Triton's `/`
# on float32 is div.full.f32, up to 2 ulp off, so x / 255 * 255 could land under an integer
# and a uint8 cast then truncates one level below the CPU's and PyTorch's (uint8 colour
# jitter on an H100 differed by up to 3 levels)
_FLOAT_OPS = {
    "add": "({0} + {1})", "sub": "({0} - {1})", "mul": "({0} * {1})",
    "div": "tl.math.div_rn({0}, {1})",
    "neg": "(-{0})", "abs": "tl.abs({0})", "reciprocal": "tl.math.div_rn(1.0, {0})",
    "square": "({0} * {0})",
    "maximum": "tl.maximum({0}, {1}, propagate_nan=tl.PropagateNan.ALL)",
    "minimum": "tl.minimum({0}, {1}, propagate_nan=tl.PropagateNan.ALL)",
    "pow": "emath.pow({0}, {1})", "fmod": "({0} % {1})",
    "remainder": "emath.remainder_float({0}, {1})",
    "floor_divide": "tl.floor(tl.math.div_rn({0}, {1}))",
    "exp": "tl.exp({0})", "exp2": "tl.exp2({0})", "expm1": "emath.expm1({0})",
    "log": "tl.log({0})",
    "log2": "tl.log2({0})", "log1p": "emath.log1p({0})", "sqrt": "tl.sqrt_rn({0})",
    "rsqrt": "tl.math.div_rn(1.0, tl.sqrt_rn({0}))", "tanh": "emath.tanh({0})", "sigmoid": "tl.sigmoid({0})",
    "erf": "tl.erf({0})", "sin": "tl.sin({0})", "cos": "tl.cos({0})", "tan": "emath.tan({0})",
    "atan": "emath.atan({0})", "asin": "emath.asin({0})", "acos": "emath.acos({0})",
    "sinh": "emath.sinh({0})",
    "cosh": "emath.cosh({0})", "atan2": "emath.atan2({0}, {1})",
    "floor": "tl.floor({0})", "ceil": "tl.ceil({0})", "round": "emath.rint({0})",
    "trunc": "emath.trunc({0})", "sign": "emath.sign({0})",
    "isnan": "({0} != {0})", "isinf": '(tl.abs({0}) == float("inf"))',
    "logical_not": "({0} == 0)",
}
# tl.sqrt_rn (IEEE-rounded; tl.sqrt may be approximate for float32) takes float32 only;
# float64 square roots and divisions are always correctly rounded
_FLOAT64_OPS = {**_FLOAT_OPS, "sqrt": "tl.sqrt({0})", "rsqrt": "(1.0 / tl.sqrt({0}))",
                "div": "({0} / {1})", "reciprocal": "(1.0 / {0})",
                "floor_divide": "tl.floor({0} / {1})"}
_INT_OPS = {
    "add": "({0} + {1})", "sub": "({0} - {1})", "mul": "({0} * {1})", "neg": "(-{0})",
    "abs": "tl.abs({0})", "square": "({0} * {0})", "maximum": "tl.maximum({0}, {1})",
    "minimum": "tl.minimum({0}, {1})", "floor_divide": "emath.floor_div_int({0}, {1})",
    "remainder": "emath.remainder_int({0}, {1})", "fmod": "({0} % {1})",
    "bitwise_and": "({0} & {1})", "bitwise_or": "({0} | {1})", "bitwise_xor": "({0} ^ {1})",
    "bitwise_not": "(~{0})", "sign": "emath.sign({0})", "logical_not": "({0} == 0)",
    "isnan": "({0} != {0})", "isinf": "({0} != {0})",
}
_COMPARE = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
_LOGICAL = {"logical_and": "&", "logical_or": "|", "logical_xor": "^"}


def scalar_op(op: str, args: list[str], in_dtype: DType, out_dtype: DType, where: str) -> str:
    """Source text for one SCALAR_OPS call over operand variables."""
    if op == "where":
        return f"tl.where({args[0]}, {args[1]}, {args[2]})"
    if op in _COMPARE:
        return f"({args[0]} {_COMPARE[op]} {args[1]})"
    if op in _LOGICAL:
        return f"(({args[0]} != 0) {_LOGICAL[op]} ({args[1]} != 0))"
    if in_dtype.name == "bool" and op == "bitwise_not":
        return f"({args[0]} == 0)"
    table = (_FLOAT64_OPS if in_dtype.name == "float64" else _FLOAT_OPS) if _is_float(in_dtype) \
        else _INT_OPS
    template = table.get(op)
    if template is None:
        raise LoweringError(f"{where}: the Triton backend has no {in_dtype.name} lowering "
                            f"for scalar op {op!r}")
    return template.format(*args)


# --- reductions --------------------------------------------------------------------------------
def _identity(combine: str, dtype: DType) -> str:
    if combine == "sum":
        return "0.0" if _is_float(dtype) else "0"
    if combine == "prod":
        return "1.0" if _is_float(dtype) else "1"
    if _is_float(dtype):
        return 'float("-inf")' if combine == "max" else 'float("inf")'
    import numpy as np
    info = np.iinfo(dtype.np_dtype)
    return str(int(info.min if combine == "max" else info.max))


def _reduce_call(stage: K.Reduce, value: str) -> str:
    return _reduction_templates(stage)[0].format(value)


def _combine(stage: K.Reduce, acc: str, value: str) -> str:
    return _reduction_templates(stage)[1].format(acc, value)


def _reduction_templates(stage: K.Reduce) -> tuple[str, str]:
    """(reduce block {0} over axis 1, fold value {1} into accumulator {0}) for `stage`'s
    combine; float max/min use emath's NaN-propagating versions, as torch does."""
    if stage.combine == "sum":
        return "tl.sum({0}, 1)", "{0} + {1}"
    if stage.combine == "prod":
        return "tl.reduce({0}, 1, emath.multiply)", "{0} * {1}"
    if _is_float(stage.acc_dtype):
        nan_fn = f"emath.{stage.combine}_nan"
        return f"tl.reduce({{0}}, 1, {nan_fn})", f"{nan_fn}({{0}}, {{1}})"
    pairwise = "maximum" if stage.combine == "max" else "minimum"
    return f"tl.{stage.combine}({{0}}, 1)", f"tl.{pairwise}({{0}}, {{1}})"
