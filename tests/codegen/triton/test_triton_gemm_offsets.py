"""GEMM / implicit-GEMM conv element offsets past 2**31 - 1 (codegen/triton/gemm.py).

Triton computes `rm * stride` in int32 when rm is int32, as the GPU does: past 2**31 - 1 it
wraps to a negative offset. Operands whose offsets can get there are addressed in int64;
smaller ones keep int32 index math. No GPU or interpreter run can hold such operands on
this machine, so the generated offset expressions are evaluated on NumPy int32/int64
arrays, which wrap as the GPU does, with the kernel's runtime sizes (shape-generic
kernels: strides and sizes are arguments) bound to the values its launch passes."""
import re
import types

import numpy as np
import pytest

from ember.codegen.triton.gemm import ConvProblem, MatmulProblem, generate_gemm
from ember.codegen.triton.qgemm import conv_problem, generate_qgemm
from ember.codegen.triton.source import literal_sizes

BIG = 2 ** 31


class _Tile(np.ndarray):
    """A NumPy array with Triton's `.to(dtype)`: int32 math wraps, as on the GPU."""

    def to(self, dtype):
        return self.astype(dtype).view(_Tile)


def _tile(values) -> _Tile:
    return np.asarray(values, np.int32).view(_Tile)


def _umulhi(a, b):
    """tl.umulhi: the high 32 bits of the unsigned 64-bit product (Sizes.div's divisions)."""
    lo = np.asarray(a, np.int64).astype(np.uint64) & np.uint64(0xFFFFFFFF)
    product = lo * (np.uint64(int(b) & 0xFFFFFFFF))
    return (product >> np.uint64(32)).astype(np.int32).view(_Tile)


_TL = types.SimpleNamespace(int64=np.int64, int32=np.int32, umulhi=_umulhi)


def _sizes(generated) -> dict:
    """The kernel's runtime size arguments as the scalars its launch passes."""
    return {name: (np.int64 if sig == "i64" else np.int32)(value)
            for name, sig, value in generated.launch.sizes}


def _expression(source: str, name: str) -> str:
    (line,) = [ln.strip() for ln in source.splitlines() if ln.strip().startswith(f"{name} = ")]
    return line.split(" = ", 1)[1]


def _evaluate(expr: str, **names):
    with np.errstate(over="ignore"):
        return np.asarray(eval(expr, {"tl": _TL}, names), np.int64)   # noqa: S307


def _a_offsets(problem: MatmulProblem, rows, cols, cast: bool = True):
    generated = generate_gemm(problem)
    expr = _expression(generated.source, "a_ptrs")
    if not cast:                                   # the rows and columns in int32
        expr = expr.replace("None].to(tl.int64)", "None]")
    return _evaluate(expr, a_ptr=0, pid_b=_tile(0), rm=_tile(rows), rk=_tile(cols),
                     **_sizes(generated))


def test_a_rows_past_int32_are_addressed_in_int64():
    m, k = 70_000, 40_000                       # A: 2.8e9 elements
    problem = MatmulProblem.create(m, 64, k, b_layout="kmajor")
    rows, cols = [0, 53_687, m - 1], [0, 1, 31]
    want = np.asarray(rows, np.int64)[:, None] * k + np.asarray(cols, np.int64)[None, :]
    np.testing.assert_array_equal(_a_offsets(problem, rows, cols), want)
    # the int32 expression (the generator's output before) wraps to negative offsets
    assert (_a_offsets(problem, rows, cols, cast=False)[-1] < 0).all()


def test_small_operands_keep_int32_index_math():
    problem = MatmulProblem.create(4096, 4096, 4096, b_layout="kmajor")
    source = generate_gemm(problem).source
    for name in ("a_ptrs", "b_ptrs", "cidx"):        # only the batch offset is int64
        assert _expression(source, name).count(".to(tl.int64)") == 1, name
    with literal_sizes():
        assert "rm[:, None] * 4096" in _expression(generate_gemm(problem).source, "a_ptrs")


def test_c_offsets_past_int32_are_int64():
    m, n = 70_000, 40_000
    problem = MatmulProblem.create(m, n, 16)
    generated = generate_gemm(problem)
    expr = _expression(generated.source, "cidx")
    rm, rn = _tile([[m - 1]]), _tile([[0, n - 1]])
    got = _evaluate(expr, pid_b=_tile(0), rm=rm, rn=rn, **_sizes(generated))
    np.testing.assert_array_equal(got, [[(m - 1) * n, (m - 1) * n + n - 1]])


@pytest.mark.parametrize("kind", ["float", "int8"])
def test_conv_output_offsets_past_int32_are_int64(kind):
    """Batch 130, 256 -> 256 channels at 256x256, channels-last output: 2.2e9 elements."""
    n, c, h = 130, 256, 256
    nhwc = (h * h * c, 1, h * c, c)
    if kind == "float":
        problem = ConvProblem((n, c, h, h), nhwc, (c, c, 3, 3), (c * 9, 9, 3, 1), nhwc,
                              (1, 1), (1, 1))
        generated = generate_gemm(problem)
    else:
        problem = conv_problem((n, c, h, h), nhwc, (c, c, 3, 3), nhwc, (1, 1), (1, 1), (1, 1),
                               1)
        generated = generate_qgemm(problem, 0, 0.1, 0, False)
    source = generated.source
    expr = _expression(source, "cidx")
    last = n * h * h - 1                                  # the last output pixel
    got = _evaluate(expr, pid_b=_tile(0), rm=_tile([[last]]), rn=_tile([[0, c - 1]]),
                    **_sizes(generated))
    np.testing.assert_array_equal(got, [[last * c, last * c + c - 1]])
    assert re.search(r"a = tl\.load\(x_base\[:, None\] \+ ih \* ", source)   # per image: int32
