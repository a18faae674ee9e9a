"""Dropout's keep mask drawn on the device: counter-based (Philox, Triton's `tl.rand`).

The generator state lives in device memory: a seed and an offset, one int64 each. The
dropout kernel reads both, draws element i's uniform number from (seed, offset + i) and
keeps the element where it is at least p (probability 1 - p); a one-program kernel then
adds the element count to the offset. Nothing is read back to the host and no value is
compiled into a launch, so a CUDA graph that recorded the two launches draws a fresh mask
on every replay, continuing the same sequence an uncaptured run would draw.
"""
from __future__ import annotations

import math

from ...ir.dtypes import DType
from .source import GeneratedKernel, LaunchSpec, pointer_type, register_type

BLOCK = 1024


def dropout_kernel(total: int, p: float, dtype: DType) -> GeneratedKernel:
    """out = where(keep, x / (1 - p), 0) and keep (bool) over dense x/out/keep of `total`
    elements, for 0 < p < 1; keep[i] = rand(seed, offset + i) >= p."""
    name = f"dropout_{dtype.name}"
    compute = "tl.float64" if dtype.name == "float64" else register_type(dtype)
    source = "\n".join([
        "@triton.jit",
        f"def {name}(x_ptr, seed_ptr, offset_ptr, out_ptr, keep_ptr, BLOCK: tl.constexpr):",
        f'    """dropout of {total} elements with p = {p!r}."""',
        "    offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)",
        f"    inside = offsets < {total}",
        "    seed = tl.load(seed_ptr)",
        "    start = tl.load(offset_ptr)",
        "    keep = tl.rand(seed, start + offsets) >= " + repr(float(p)),
        f"    x = tl.load(x_ptr + offsets, mask=inside, other=0).to({compute})",
        f"    kept = x / {1.0 - p!r}",
        f"    y = tl.where(keep, kept, tl.zeros_like(kept))",
        "    tl.store(out_ptr + offsets, y, mask=inside)",
        "    tl.store(keep_ptr + offsets, keep, mask=inside)",
    ]) + "\n"
    args = [("x_ptr", pointer_type(dtype)), ("seed_ptr", "*i64"), ("offset_ptr", "*i64"),
            ("out_ptr", pointer_type(dtype)), ("keep_ptr", "*i1")]
    grid = (math.ceil(total / BLOCK), 1, 1)
    return GeneratedKernel(source, LaunchSpec(name, args, {"BLOCK": BLOCK}, grid,
                                              f"cdiv({total}, BLOCK)", 4, 1,
                                              ["x", "seed", "offset", "out", "keep"]))


def advance_kernel(count: int) -> GeneratedKernel:
    """offset += count (one program): the next draw starts past the numbers just used."""
    name = "philox_advance"
    source = "\n".join([
        "@triton.jit",
        f"def {name}(offset_ptr, BLOCK: tl.constexpr):",
        f'    """advance the dropout generator by {count}."""',
        "    tl.store(offset_ptr, tl.load(offset_ptr) + " + str(int(count)) + ")",
    ]) + "\n"
    return GeneratedKernel(source, LaunchSpec(name, [("offset_ptr", "*i64")], {"BLOCK": 1},
                                              (1, 1, 1), "1", 1, 1, ["offset"]))
