"""Hand-written Triton kernels the kernel descriptions cannot state, because their
addresses come from an index tensor: a scatter-add with atomics, a row gather, and
torch.gather along any dim of strided operands.

`plane_scatter_add` serves max pooling's backward (max_pool_scatter): each plane's
gradient goes to the input positions its indices name. Where windows do not overlap each
input position receives at most one value, so the result is exact and deterministic;
overlapping windows add in the order the atomics land (rounding may differ between runs,
as with PyTorch's CUDA kernels).
"""
from __future__ import annotations

import math

from ...ir.dtypes import DType
from ...ir.errors import LoweringError
from .source import GeneratedKernel, LaunchSpec, pointer_type

BLOCK = 1024
ATOMIC_DTYPES = ("float32", "float64")


def _flat_kernel(name: str, params: tuple, doc: str, total: int, body: list[str],
                 args: list, buffers: list) -> GeneratedKernel:
    """A 1-D kernel over `total` elements, BLOCK per program: the shared header (offsets,
    the `inside` mask) and launch spec around the kernel's own `body` lines."""
    source = "\n".join([
        "@triton.jit",
        f"def {name}({', '.join(params)}, BLOCK: tl.constexpr):",
        f'    """{doc}"""',
        "    offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)",
        f"    inside = offsets < {total}",
        *body,
    ]) + "\n"
    grid = (math.ceil(total / BLOCK), 1, 1)
    return GeneratedKernel(source, LaunchSpec(name, args, {"BLOCK": BLOCK}, grid,
                                              f"cdiv({total}, BLOCK)", 4, 1, buffers))


def _row_coordinates(inner: int, count: int) -> list[str]:
    """Lines splitting a flat offset over [outer, count, inner] into o, k, i and loading
    the k-th index as the row."""
    return [f"    i = offsets % {inner}",
            f"    k = (offsets // {inner}) % {count}",
            f"    o = offsets // {inner * count}",
            "    row = tl.load(index_ptr + k, mask=inside, other=0).to(tl.int64)"]


def plane_scatter_add(total: int, plane_out: int, plane_in: int, dtype: DType,
                      channels: int = 0) -> GeneratedKernel:
    """out[i // plane_out * plane_in + index[i]] += value[i] for i < total, over dense
    (contiguous) value/index buffers and a zeroed dense output. With `channels` > 0 all
    three are channels-last ([N, H, W, C] in memory, index[i] the position h*W + w in its
    plane): out[n, index[i], c] += value[i] for i = (n, oh, ow, c), so neighbouring
    threads add to neighbouring channels."""
    if dtype.name not in ATOMIC_DTYPES:
        raise LoweringError(f"max_pool_scatter: no atomic add for {dtype.name} on CUDA")
    if channels:
        target = (f"(offsets // {plane_out * channels}) * {plane_in * channels} "
                  f"+ position * {channels} + offsets % {channels}")
    else:
        target = f"(offsets // {plane_out}) * {plane_in} + position"
    body = ["    value = tl.load(value_ptr + offsets, mask=inside, other=0)",
            "    position = tl.load(index_ptr + offsets, mask=inside, other=0)",
            f"    target = {target}",
            "    tl.atomic_add(out_ptr + target, value, mask=inside)"]
    args = [("value_ptr", pointer_type(dtype)), ("index_ptr", "*i64"),
            ("out_ptr", pointer_type(dtype))]
    layout = f"_cl{channels}" if channels else ""
    return _flat_kernel(f"plane_scatter_add_{dtype.name}{layout}",
                        ("value_ptr", "index_ptr", "out_ptr"),
                        f"scatter-add {total} values, {plane_out} per plane, into planes of "
                        f"{plane_in}{' (channels-last)' if channels else ''}.", total, body,
                        args, ["value", "index", "out"])


def gather_rows(outer: int, size: int, count: int, inner: int, dtype: DType,
                index_dtype: DType) -> GeneratedKernel:
    """out[o, k, i] = src[o, index[k], i] over a dense src [outer, size, inner], a dense
    index of `count` entries (already checked to lie in [0, size)) and a dense output
    [outer, count, inner]: index_select along one dim, and embedding (outer 1)."""
    total = outer * count * inner
    body = _row_coordinates(inner, count) + [
        f"    value = tl.load(src_ptr + (o * {size} + row) * {inner} + i, mask=inside, other=0)",
        "    tl.store(out_ptr + offsets, value, mask=inside)"]
    args = [("src_ptr", pointer_type(dtype)), ("index_ptr", pointer_type(index_dtype)),
            ("out_ptr", pointer_type(dtype))]
    return _flat_kernel(f"gather_rows_{dtype.name}_{index_dtype.name}",
                        ("src_ptr", "index_ptr", "out_ptr"),
                        f"gather {count} rows of {inner} from {outer} blocks of {size} rows.",
                        total, body, args, ["src", "index", "out"])


def scatter_add_rows(outer: int, size: int, count: int, inner: int, dtype: DType,
                     index_dtype: DType) -> GeneratedKernel:
    """out[o, index[k], i] += value[o, k, i] with atomics, over a dense value
    [outer, count, inner], a dense index (checked to lie in [0, size)) and a dense output
    [outer, size, inner] that already holds what is added to: index_add."""
    if dtype.name not in ATOMIC_DTYPES:
        raise LoweringError(f"index_add: no atomic add for {dtype.name} on CUDA")
    total = outer * count * inner
    body = _row_coordinates(inner, count) + [
        "    value = tl.load(value_ptr + offsets, mask=inside, other=0)",
        f"    tl.atomic_add(out_ptr + (o * {size} + row) * {inner} + i, value, mask=inside)"]
    args = [("value_ptr", pointer_type(dtype)), ("index_ptr", pointer_type(index_dtype)),
            ("out_ptr", pointer_type(dtype))]
    return _flat_kernel(f"scatter_add_rows_{dtype.name}_{index_dtype.name}",
                        ("value_ptr", "index_ptr", "out_ptr"),
                        f"add {count} rows of {inner} into {outer} blocks of {size} rows.",
                        total, body, args, ["value", "index", "out"])


def gather_along(shape: tuple, dim: int, src_strides: tuple, index_strides: tuple,
                 dtype: DType, index_dtype: DType) -> GeneratedKernel:
    """out[p] = src[p with p[dim] replaced by index[p]] for every position p of the index's
    `shape` (torch.gather), over strided src and index (indices already checked to lie in
    range) and a dense output."""
    total = math.prod(shape)
    coords, step = [], 1
    for d in reversed(range(len(shape))):
        coords.append(f"    c{d} = (offsets // {step}) % {shape[d]}")
        step *= shape[d]
    at_index = " + ".join(f"c{d} * {s}" for d, s in enumerate(index_strides)) or "0"
    at_src = " + ".join([f"c{d} * {s}" for d, s in enumerate(src_strides) if d != dim] +
                        [f"row * {src_strides[dim]}"])
    body = coords[::-1] + [
        f"    row = tl.load(index_ptr + ({at_index}), mask=inside, other=0).to(tl.int64)",
        f"    value = tl.load(src_ptr + ({at_src}), mask=inside, other=0)",
        "    tl.store(out_ptr + offsets, value, mask=inside)"]
    args = [("src_ptr", pointer_type(dtype)), ("index_ptr", pointer_type(index_dtype)),
            ("out_ptr", pointer_type(dtype))]
    return _flat_kernel(f"gather_{dtype.name}_{index_dtype.name}",
                        ("src_ptr", "index_ptr", "out_ptr"),
                        f"torch.gather of {list(shape)} along dim {dim}.", max(total, 1), body,
                        args, ["src", "index", "out"])


def checked_index(total: int, size: int, index_dtype: DType) -> GeneratedKernel:
    """out[i] = index[i] where 0 <= index[i] < size, else 0, over a dense index of `total`
    entries; an index out of range also stores (index, size + 1) into the int64 `flag`
    pair (flag[1] != 0 marks an error). The range check of a gather that must not read
    back to the host (inside a compiled CUDA step): the gather reads in range whatever the
    index held, and the host raises at its next read from the device."""
    body = [
        "    row = tl.load(index_ptr + offsets, mask=inside, other=0).to(tl.int64)",
        f"    bad = inside & ((row < 0) | (row >= {size}))",
        "    here = tl.zeros_like(offsets)",
        "    tl.store(flag_ptr + here, row, mask=bad)",
        f"    tl.store(flag_ptr + 1 + here, here + {size + 1}, mask=bad)",
        "    safe = tl.where(bad, tl.zeros_like(row), row)",
        "    tl.store(out_ptr + offsets, safe.to(out_ptr.dtype.element_ty), mask=inside)"]
    args = [("index_ptr", pointer_type(index_dtype)), ("flag_ptr", "*i64"),
            ("out_ptr", pointer_type(index_dtype))]
    return _flat_kernel(f"checked_index_{index_dtype.name}", ("index_ptr", "flag_ptr", "out_ptr"),
                        f"range-check {total} indices against a dim of size {size}.",
                        max(total, 1), body, args, ["index", "flag", "out"])
