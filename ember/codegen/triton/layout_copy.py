"""Copies between NCHW and channels-last (NHWC) storage as tiled batched transposes.

A dense 4-D tensor changes layout by transposing, per sample, a [H*W, C] matrix into
[C, H*W] (channels-last -> NCHW) or back. The strided copy kernel walks the logical
(N, C, H, W) order, so one side of such a copy steps C (or H*W) elements between
neighbouring threads: one 4-byte access per 32-byte sector. Here each program loads a
[BLOCK, BLOCK] tile with the input's contiguous axis across threads and stores it with
the output's contiguous axis across threads (Triton moves the tile through shared
memory between the two), so both the reads and the writes are whole sectors.

    out[b, j, i] = in[b, i, j]     in: [batch, rows, cols] dense, out: [batch, cols, rows]
"""
from __future__ import annotations

import math

from ...ir.dtypes import DType
from .source import GeneratedKernel, LaunchSpec, Sizes, function_name, literal_mode, pointer_type

BLOCK_ROWS = 64
BLOCK_COLS = 64
MAX_GRID_Z = 65535                      # CUDA's limit on the grid's third dim (the batch)


def fits(batch: int, rows: int, cols: int) -> bool:
    """Whether one launch of `batched_transpose` covers the problem."""
    return 0 < batch <= MAX_GRID_Z and rows > 0 and cols > 0


def batched_transpose(batch: int, rows: int, cols: int, dtype: DType,
                      name: str = "layout_copy") -> GeneratedKernel:
    """out[b, j, i] = in[b, i, j] for dense [batch, rows, cols] -> [batch, cols, rows]."""
    fn = function_name(name)
    sizes = Sizes(literal=literal_mode(), wide=False)
    rows_, cols_ = sizes.int(rows, "rows"), sizes.int(cols, "cols")
    plane = sizes.int(rows * cols, "plane")
    body = [
        "b = tl.program_id(2).to(tl.int64)",
        "i = tl.program_id(0) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)",
        "j = tl.program_id(1) * BLOCK_COLS + tl.arange(0, BLOCK_COLS)",
        f"inside = (i[:, None] < {rows_}) & (j[None, :] < {cols_})",
        f"base = b * {plane}",
        f"tile = tl.load(in_ptr + base + i[:, None] * {cols_} + j[None, :], mask=inside)",
        f"tl.store(out_ptr + base + j[None, :] * {rows_} + i[:, None], tile, mask=inside)",
    ]
    params = ["in_ptr", "out_ptr"] + [n for n, _, _ in sizes.args] + \
        ["BLOCK_ROWS: tl.constexpr", "BLOCK_COLS: tl.constexpr"]
    text = "\n".join([f"# [{batch}, {rows}, {cols}] -> [{batch}, {cols}, {rows}], tiled",
                      "@triton.jit", f"def {fn}({', '.join(params)}):"]
                     + ["    " + line for line in body]) + "\n"
    grid = (math.ceil(rows / BLOCK_ROWS), math.ceil(cols / BLOCK_COLS), batch)
    pointer = pointer_type(dtype)
    return GeneratedKernel(text, LaunchSpec(
        fn, [("in_ptr", pointer), ("out_ptr", pointer)],
        {"BLOCK_ROWS": BLOCK_ROWS, "BLOCK_COLS": BLOCK_COLS}, grid,
        "(cdiv(rows, BLOCK_ROWS), cdiv(cols, BLOCK_COLS), batch)", 4, 1, ["input", "out"],
        sizes.args, sizes.plain))
