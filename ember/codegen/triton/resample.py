"""A hand-written Triton kernel for separable resampling (F.interpolate's kernels and their
backwards, antialiased resize included): along one dim, each output element is a weighted
sum of a few input elements whose positions come from a table,

    out[o, j, i] = sum_t weight[j, t] * src[o, index[j, t], i]

over a dense src [outer, n_in, inner] and a dense out [outer, n_out, inner]. The tables are
ir.ops.resample's taps (the nonzero columns of each row of the mode's weight matrix), so
every mode and its adjoint (the transposed matrix) use the same kernel, one launch per
resized dim. Addresses come from the index table, which kernel descriptions cannot state.

Sizes are read from a small int64 `params` buffer [total, n_in, n_out, inner, taps]
instead of being compiled in: a random-resized-crop pipeline resizes crops of a new size
on every call, and one cubin per dtype serves them all.
"""
from __future__ import annotations

import math

from ...ir.dtypes import DType
from .source import GeneratedKernel, LaunchSpec, pointer_type, tl_type

BLOCK = 512
PARAMS = ("total", "n_in", "n_out", "inner", "taps")


def compute_type(dtype: DType) -> str:
    """Weights apply in float32 (float64 for float64 inputs), as the CPU kernels do."""
    return "tl.float64" if dtype.name == "float64" else "tl.float32"


def taps_kernel(src: DType, out: DType, weight: DType, total: int,
                gather: bool) -> GeneratedKernel:
    """The kernel for `total` outputs; `gather` (one tap of weight 1: nearest modes) copies
    the source element unchanged, which keeps integers exact."""
    name = f"resample_{'gather' if gather else 'taps'}_{src.name}_{out.name}"
    acc = compute_type(src)
    if gather:
        body = ["    row = tl.load(index_ptr + j, mask=inside, other=0).to(tl.int64)",
                "    value = tl.load(src_ptr + (o * n_in + row) * inner + i, mask=inside, other=0)"]
    else:
        body = [f"    value = tl.zeros([BLOCK], {acc})",
                "    for t in range(0, taps):",
                "        at = j * taps + t",
                "        row = tl.load(index_ptr + at, mask=inside, other=0).to(tl.int64)",
                f"        w = tl.load(weight_ptr + at, mask=inside, other=0).to({acc})",
                "        x = tl.load(src_ptr + (o * n_in + row) * inner + i, mask=inside, "
                f"other=0).to({acc})",
                "        value += x * w"]
    params = "".join(f"    {p} = tl.load(params_ptr + {k})\n" for k, p in enumerate(PARAMS))
    source = "\n".join([
        "@triton.jit",
        f"def {name}(src_ptr, index_ptr, weight_ptr, params_ptr, out_ptr, BLOCK: tl.constexpr):",
        '    """out[o, j, i] = sum_t weight[j, t] * src[o, index[j, t], i] (sizes in params)."""',
        params.rstrip("\n"),
        "    offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)",
        "    inside = offsets < total",
        "    i = offsets % inner",
        "    j = (offsets // inner) % n_out",
        "    o = offsets // (inner * n_out)",
        *body,
        f"    tl.store(out_ptr + offsets, value.to({tl_type(out)}), mask=inside)",
    ]) + "\n"
    args = [("src_ptr", pointer_type(src)), ("index_ptr", "*i32"),
            ("weight_ptr", pointer_type(weight)), ("params_ptr", "*i64"),
            ("out_ptr", pointer_type(out))]
    grid = (max(1, math.ceil(total / BLOCK)), 1, 1)
    return GeneratedKernel(source, LaunchSpec(name, args, {"BLOCK": BLOCK}, grid,
                                              "cdiv(total, BLOCK)", 4, 1,
                                              ["src", "index", "weight", "params", "out"]))
