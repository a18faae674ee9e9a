"""Hand-written Triton kernels for advanced indexing, scatter and scans on CUDA: addresses
that come from index tensors (which the kernel descriptions cannot state) and a running
carry along a dim.

- `indexed_gather` / `indexed_put`: aten.index and aten.index_put over integer index
  tensors (bool masks arrive as their nonzero coordinates), every operand strided. An
  output position's source address is its plain dims' coordinates times the source
  strides plus, per indexed dim, the index value there times that dim's stride. Indices
  are wrapped and range-checked before the launch (frontend/eager_cuda_indexing.py).
- `scatter_along`: torch.scatter / scatter_add / scatter_reduce along one dim of a dense
  output, a plain store or an atomic add / max / min.
- `scan_lines`: cumsum / cumprod along a dim, one program a line, carrying the running sum from
  block to block.
- `search_sorted`: searchsorted / bucketize, a binary search per value.
- `nonzero_coordinates`: the coordinates of a tensor's nonzero elements in row-major
  order, one program carrying the running count (the count itself is read back first,
  as PyTorch's nonzero does, since it is the result's shape).

Atomics (accumulate, scatter_add, amax/amin) add repeats in the order they land, as
PyTorch's CUDA kernels do; deterministic mode keeps those ops on the host.
"""
from __future__ import annotations

import math

from ...ir.dtypes import DType
from ...ir.errors import LoweringError
from .scatter import BLOCK, _flat_kernel
from .source import GeneratedKernel, LaunchSpec, pointer_type, register_type

ATOMIC_ADD_DTYPES = ("float32", "float64", "int32", "int64")
ATOMIC_EXTREME_DTYPES = ("float32", "int32", "int64")


_ZERO = "tl.zeros_like(offsets)"     # an address block even when every stride is 0


def _coordinates(shape: tuple) -> list[str]:
    """Lines splitting the flat offset over `shape` (row-major) into c0, c1, ..."""
    lines, step = [], 1
    for d in reversed(range(len(shape))):
        lines.append(f"    c{d} = (offsets // {step}) % {shape[d]}")
        step *= shape[d]
    return lines[::-1]


def _address(coords: list[str], strides: tuple) -> str:
    terms = [f"{c} * {s}" for c, s in zip(coords, strides) if s]
    return " + ".join(terms) or _ZERO


def _indexed_lines(plan) -> tuple[list[str], str]:
    """(lines loading every index, the source address expression) for an IndexPlan."""
    lines = _coordinates(plan.shape)
    terms = [f"c{d} * {s}" for d, s in plan.plain if s]
    for k, (strides, src_stride) in enumerate(zip(plan.index_strides, plan.indexed_strides)):
        at = _address([f"c{d}" for d in plan.broadcast_dims], strides)
        lines.append(f"    row{k} = tl.load(index{k}_ptr + ({at}), mask=inside, other=0)"
                     ".to(tl.int64)")
        terms.append(f"row{k} * {src_stride}")
    return lines, " + ".join(terms) or _ZERO


class IndexPlan:
    """Where each element of an advanced-index result comes from.

    shape: the result's shape; plain: (result dim, source stride) for every dim that is a
    plain source dim; broadcast_dims: the result dims the broadcast index shape occupies;
    index_strides: per index tensor, its strides over those dims (0 where broadcast);
    indexed_strides: per index tensor, the source stride of the dim it indexes."""

    def __init__(self, shape, plain, broadcast_dims, index_strides, indexed_strides):
        self.shape = tuple(shape)
        self.plain = tuple(plain)
        self.broadcast_dims = tuple(broadcast_dims)
        self.index_strides = tuple(tuple(s) for s in index_strides)
        self.indexed_strides = tuple(indexed_strides)

    def key(self) -> str:
        return repr((self.shape, self.plain, self.broadcast_dims, self.index_strides,
                     self.indexed_strides))


def _index_params(count: int) -> list[str]:
    return [f"index{k}_ptr" for k in range(count)]


def indexed_gather(plan: IndexPlan, dtype: DType, index_dtypes: list[DType]) -> GeneratedKernel:
    """out[p] = src[address(p)] for every p of the result (dense output): aten.index."""
    lines, at = _indexed_lines(plan)
    body = lines + [f"    value = tl.load(src_ptr + ({at}), mask=inside, other=0)",
                    "    tl.store(out_ptr + offsets, value, mask=inside)"]
    params = ["src_ptr"] + _index_params(len(index_dtypes)) + ["out_ptr"]
    types = [pointer_type(dtype)] + [pointer_type(t) for t in index_dtypes] + \
        [pointer_type(dtype)]
    return _flat_kernel(f"index_{dtype.name}", tuple(params), f"aten.index {plan.key()}",
                        max(math.prod(plan.shape), 1), body, list(zip(params, types)),
                        [p[:-4] for p in params])


def indexed_put(plan: IndexPlan, value_strides: tuple, dtype: DType, index_dtypes: list[DType],
                accumulate: bool) -> GeneratedKernel:
    """out[address(p)] = values[p] (or += with atomics) for every p of the indexing result,
    `out` already holding self's values: aten.index_put."""
    if accumulate and dtype.name not in ATOMIC_ADD_DTYPES:
        raise LoweringError(f"index_put: no atomic add for {dtype.name} on CUDA")
    lines, at = _indexed_lines(plan)
    at_value = _address([f"c{d}" for d in range(len(plan.shape))], value_strides)
    write = "tl.atomic_add" if accumulate else "tl.store"
    body = lines + [f"    value = tl.load(value_ptr + ({at_value}), mask=inside, other=0)",
                    f"    {write}(out_ptr + ({at}), value, mask=inside)"]
    params = ["value_ptr"] + _index_params(len(index_dtypes)) + ["out_ptr"]
    types = [pointer_type(dtype)] + [pointer_type(t) for t in index_dtypes] + \
        [pointer_type(dtype)]
    name = f"index_put_{'add_' if accumulate else ''}{dtype.name}"
    return _flat_kernel(name, tuple(params), f"aten.index_put {plan.key()} {value_strides}",
                        max(math.prod(plan.shape), 1), body, list(zip(params, types)),
                        [p[:-4] for p in params])


SCATTER_WRITES = {None: "tl.store", "sum": "tl.atomic_add", "amax": "tl.atomic_max",
                  "amin": "tl.atomic_min"}


def scatter_along(shape: tuple, dim: int, out_strides: tuple, index_strides: tuple,
                  src_strides: tuple | None, dtype: DType, index_dtype: DType,
                  reduce: str | None) -> GeneratedKernel:
    """out[p with p[dim] = index[p]] (op)= src[p] for every position p of the index's
    `shape` (torch.scatter family); src_strides None: src is a scalar argument `value`.
    Indices already checked to lie in range."""
    allowed = {None: None, "sum": ATOMIC_ADD_DTYPES, "amax": ATOMIC_EXTREME_DTYPES,
               "amin": ATOMIC_EXTREME_DTYPES}[reduce]
    if allowed is not None and dtype.name not in allowed:
        raise LoweringError(f"scatter ({reduce}): no atomic for {dtype.name} on CUDA")
    coords = [f"c{d}" for d in range(len(shape))]
    at_out = " + ".join([f"c{d} * {s}" for d, s in enumerate(out_strides) if d != dim] +
                        [f"row * {out_strides[dim]}"])
    lines = _coordinates(shape) + [
        f"    row = tl.load(index_ptr + ({_address(coords, index_strides)}), mask=inside, "
        "other=0).to(tl.int64)"]
    if src_strides is None:
        scalar = "fp64" if dtype.is_floating_point else "i64"   # rounded to dtype in the kernel
        held = "tl.float64" if scalar == "fp64" else "tl.int64"
        value = f"(tl.zeros_like(offsets).to({held}) + value).to(out_ptr.dtype.element_ty)"
        params, types = ["index_ptr", "value", "out_ptr"], \
            [pointer_type(index_dtype), scalar, pointer_type(dtype)]
    else:
        value = f"tl.load(src_ptr + ({_address(coords, src_strides)}), mask=inside, other=0)"
        params, types = ["src_ptr", "index_ptr", "out_ptr"], \
            [pointer_type(dtype), pointer_type(index_dtype), pointer_type(dtype)]
    body = lines + [f"    {SCATTER_WRITES[reduce]}(out_ptr + ({at_out}), {value}, mask=inside)"]
    name = f"scatter_{reduce or 'store'}_{dtype.name}_{'value' if src_strides is None else 'src'}"
    return _flat_kernel(name, tuple(params),
                        f"scatter {list(shape)} along {dim} {out_strides} {index_strides} "
                        f"{src_strides}", max(math.prod(shape), 1), body,
                        list(zip(params, types)), [p.replace("_ptr", "") for p in params])


def scan_lines(outer: int, size: int, inner: int, in_dtype: DType, out_dtype: DType,
               work_dtype: DType, combine: str = "sum") -> GeneratedKernel:
    """out[o, :, i] = cumsum (or cumprod, combine="prod") of src[o, :, i] over dense
    [outer, size, inner] operands, one program a line (outer * inner programs), in
    `work_dtype`; the carry into the next block is the running value of the block's last
    element."""
    block = min(BLOCK, 1 << max(0, (size - 1).bit_length()))
    work = register_type(work_dtype)
    name = f"cum{combine}_{in_dtype.name}_{out_dtype.name}"
    scan, start, join = ("tl.cumsum", "tl.zeros", "+") if combine == "sum" else \
        ("tl.cumprod", "1 + tl.zeros", "*")
    source = "\n".join([
        "@triton.jit",
        f"def {name}(src_ptr, out_ptr, BLOCK: tl.constexpr):",
        f'    """cum{combine} of {outer * inner} lines of {size} (stride {inner})."""',
        "    line = tl.program_id(0).to(tl.int64)",
        f"    base = (line // {inner}) * {size * inner} + line % {inner}",
        f"    carry = {start}([1], dtype={work})",
        f"    for first in range(0, {size}, BLOCK):",
        "        k = first + tl.arange(0, BLOCK)",
        f"        inside = k < {size}",
        f"        x = tl.load(src_ptr + base + k * {inner}, mask=inside, "
        f"other={0 if combine == 'sum' else 1}).to({work})",
        f"        running = {scan}(x, 0) {join} carry",
        f"        tl.store(out_ptr + base + k * {inner}, running.to(out_ptr.dtype.element_ty), "
        "mask=inside)",
        f"        last = tl.minimum({size} - first, BLOCK) - 1",
        "        carry = tl.sum(tl.where(tl.arange(0, BLOCK) == last, running, 0), 0) + "
        "tl.zeros([1], dtype=running.dtype)",
    ]) + "\n"
    args = [("src_ptr", pointer_type(in_dtype)), ("out_ptr", pointer_type(out_dtype))]
    grid = (max(outer * inner, 1), 1, 1)
    return GeneratedKernel(source, LaunchSpec(name, args, {"BLOCK": block}, grid,
                                              str(grid[0]), 4, 1, ["src", "out"]))


def nonzero_coordinates(shape: tuple, strides: tuple, dtype: DType) -> GeneratedKernel:
    """out[n, d] = the d-th coordinate of the n-th nonzero element of a strided tensor of
    `shape`, in row-major order: one program walks the elements in blocks, a cumsum of the
    nonzero flags giving each one's row and a carry the rows before the block."""
    total = max(math.prod(shape), 1)
    ndim = max(len(shape), 1)
    coords, step = [], 1
    for d in reversed(range(len(shape))):
        coords.append((d, f"(k // {step}) % {shape[d]}"))
        step *= shape[d]
    at = " + ".join(f"((k // {math.prod(shape[d + 1:])}) % {shape[d]}) * {s}"
                    for d, s in enumerate(strides) if s) or "0"
    stores = [f"        tl.store(out_ptr + row * {ndim} + {d}, {expr}, mask=hit)"
              for d, expr in coords] if shape else []
    name = f"nonzero_{dtype.name}"
    source = "\n".join([
        "@triton.jit",
        f"def {name}(src_ptr, out_ptr, BLOCK: tl.constexpr):",
        f'    """nonzero coordinates of a {list(shape)} tensor."""',
        "    carry = tl.zeros([1], dtype=tl.int64)",
        f"    for start in range(0, {total}, BLOCK):",
        "        k = start + tl.arange(0, BLOCK).to(tl.int64)",
        f"        inside = k < {total}",
        f"        x = tl.load(src_ptr + ({at}), mask=inside, other=0)",
        "        hit = inside & (x != 0)",
        "        flags = hit.to(tl.int64)",
        "        row = carry + tl.cumsum(flags, 0) - 1",
        *stores,
        "        carry = carry + tl.sum(flags, 0)",
    ]) + "\n"
    args = [("src_ptr", pointer_type(dtype)), ("out_ptr", "*i64")]
    return GeneratedKernel(source, LaunchSpec(name, args, {"BLOCK": BLOCK}, (1, 1, 1), "1", 4,
                                              1, ["src", "out"]))


def search_sorted(total: int, count: int, n: int, shared: bool, right: bool, seq_dtype: DType,
                  value_dtype: DType, out_dtype: DType) -> GeneratedKernel:
    """out[i] = the insertion point of value[i] in its row of `seq` (dense [rows, n]; one
    row for every value when `shared`, else row i // count): a binary search of
    n.bit_length() + 1 halvings. PyTorch's comparisons: left goes right while
    !(seq[mid] >= x), right while !(seq[mid] > x), so NaN values land after everything."""
    steps = n.bit_length() + 1
    row = "0" if shared else f"(offsets // {count}) * {n}"
    test = ">" if right else ">="
    body = [
        "    x = tl.load(value_ptr + offsets, mask=inside, other=0)",
        "    lo = tl.zeros_like(offsets)",
        f"    hi = tl.zeros_like(offsets) + {n}",
        f"    for _ in range({steps}):",
        "        active = inside & (lo < hi)",
        "        mid = (lo + hi) // 2",
        f"        v = tl.load(seq_ptr + {row} + mid, mask=active, other=0)",
        f"        go = ~(v {test} x)",
        "        lo = tl.where(active & go, mid + 1, lo)",
        "        hi = tl.where(active & ~go, mid, hi)",
        "    tl.store(out_ptr + offsets, lo.to(out_ptr.dtype.element_ty), mask=inside)"]
    params = ("seq_ptr", "value_ptr", "out_ptr")
    types = [pointer_type(seq_dtype), pointer_type(value_dtype), pointer_type(out_dtype)]
    return _flat_kernel(f"searchsorted_{'right' if right else 'left'}_{seq_dtype.name}",
                        params, f"search {total} values in rows of {n}.", max(total, 1),
                        body, list(zip(params, types)), ["seq", "value", "out"])
