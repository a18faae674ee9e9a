"""A hand-written Triton kernel the kernel descriptions cannot state: adding values into
positions read from an index tensor (a scatter-add with atomics).

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


def plane_scatter_add(total: int, plane_out: int, plane_in: int, dtype: DType) -> GeneratedKernel:
    """out[i // plane_out * plane_in + index[i]] += value[i] for i < total, over dense
    (contiguous) value/index buffers and a zeroed dense output."""
    if dtype.name not in ATOMIC_DTYPES:
        raise LoweringError(f"max_pool_scatter: no atomic add for {dtype.name} on CUDA")
    name = f"plane_scatter_add_{dtype.name}"
    source = "\n".join([
        "@triton.jit",
        f"def {name}(value_ptr, index_ptr, out_ptr, BLOCK: tl.constexpr):",
        f'    """scatter-add {total} values, {plane_out} per plane, into planes of '
        f'{plane_in}."""',
        "    offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)",
        f"    inside = offsets < {total}",
        "    value = tl.load(value_ptr + offsets, mask=inside, other=0)",
        "    position = tl.load(index_ptr + offsets, mask=inside, other=0)",
        f"    target = (offsets // {plane_out}) * {plane_in} + position",
        "    tl.atomic_add(out_ptr + target, value, mask=inside)",
    ]) + "\n"
    args = [("value_ptr", pointer_type(dtype)), ("index_ptr", "*i64"),
            ("out_ptr", pointer_type(dtype))]
    grid = (math.ceil(total / BLOCK), 1, 1)
    return GeneratedKernel(source, LaunchSpec(name, args, {"BLOCK": BLOCK}, grid,
                                              f"cdiv({total}, BLOCK)", 4, 1,
                                              ["value", "index", "out"]))
