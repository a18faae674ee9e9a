"""A hand-written Triton sort of rows: values and the indices they came from (sort,
argsort), by rank counting.

Each row of a dense [rows, n] input is one program. Element i's place in the sorted row
is the number of elements that sort before it: those ordered before it, plus the equal
ones at smaller indices, which makes the sort stable (PyTorch's stable=True order, and
ember's CPU order for either flag). NaN sorts after every number ascending and before
every number descending, as in PyTorch; -0.0 and 0.0 are equal. The value and its index
are then stored at that place. Counting is O(n^2) compares per row, CHUNK columns at a
time, so rows are limited to MAX_ROW elements (longer rows are the caller's to refuse):
for the short rows of a classifier's top classes or a batch's keys this is one launch
instead of two host copies.
"""
from __future__ import annotations

from ...ir.dtypes import DType
from ...ir.errors import LoweringError
from .source import GeneratedKernel, LaunchSpec, pointer_type, register_type

MAX_ROW = 2048
TILE = 8192                 # elements of the [BLOCK, CHUNK] compare tile per step


def sort_rows(rows: int, n: int, dtype: DType, descending: bool) -> GeneratedKernel:
    """values[r, rank] = x[r, i] and indices[r, rank] = i over dense [rows, n] buffers."""
    if dtype.is_complex or dtype.name == "bool":
        raise LoweringError(f"sort: no CUDA sort kernel for {dtype.name}")
    if not 1 <= n <= MAX_ROW:
        raise LoweringError(f"sort: rows of {n} elements are outside the CUDA sort kernel "
                            f"(1 to {MAX_ROW})")
    block = 1 << max(0, (n - 1).bit_length())
    chunk = max(1, min(block, TILE // block))
    name = f"sort_rows_{dtype.name}_{'desc' if descending else 'asc'}"
    source = "\n".join([
        "@triton.jit",
        f"def {name}(x_ptr, values_ptr, indices_ptr, BLOCK: tl.constexpr, "
        "CHUNK: tl.constexpr):",
        f'    """Stable {"descending" if descending else "ascending"} sort of rows of {n} by '
        'rank counting."""',
        f"    base = tl.program_id(0).to(tl.int64) * {n}",
        "    i = tl.arange(0, BLOCK)",
        f"    inside = i < {n}",
        "    raw = tl.load(x_ptr + base + i, mask=inside, other=0)",
        f"    a = raw.to({register_type(dtype)})[:, None]",
        "    rank = tl.zeros((BLOCK,), dtype=tl.int32)",
        f"    for start in range(0, {n}, CHUNK):",
        "        j = start + tl.arange(0, CHUNK)",
        f"        column = j < {n}",
        "        b = tl.load(x_ptr + base + j, mask=column, other=0)"
        f".to({register_type(dtype)})[None, :]",
        *[f"        {line}" for line in _order_lines(dtype, descending)],
        "        earlier = j[None, :] < i[:, None]",
        "        counted = (before | (tie & earlier)) & column[None, :]",
        "        rank += tl.sum(counted.to(tl.int32), axis=1)",
        "    tl.store(values_ptr + base + rank, raw, mask=inside)",
        "    tl.store(indices_ptr + base + rank, i.to(tl.int64), mask=inside)",
    ]) + "\n"
    args = [("x_ptr", pointer_type(dtype)), ("values_ptr", pointer_type(dtype)),
            ("indices_ptr", "*i64")]
    warps = 4 if block <= 1024 else 8
    spec = LaunchSpec(name, args, {"BLOCK": block, "CHUNK": chunk}, (rows, 1, 1),
                      "rows", warps, 1, ["x", "values", "indices"])
    return GeneratedKernel(source, spec)


def _order_lines(dtype: DType, descending: bool) -> list[str]:
    """`before`: b sorts before a; `tie`: a and b are equal (NaNs equal one another)."""
    if not (dtype.is_floating_point):
        return ["before = " + ("b > a" if descending else "b < a"), "tie = b == a"]
    lines = ["a_nan = a != a", "b_nan = b != b", "tie = (b == a) | (a_nan & b_nan)"]
    if descending:                      # NaN first, then larger numbers
        lines.append("before = (b > a) | (b_nan & (a == a))")
    else:                               # smaller numbers first, NaN last
        lines.append("before = (b < a) | (a_nan & (b == b))")
    return lines
