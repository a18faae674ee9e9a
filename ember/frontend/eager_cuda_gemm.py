"""GEMM-shaped eager calls on CUDA -> the Triton GEMM / implicit-GEMM conv kernels.

`gemm_kernel` maps mm, bmm, matmul (2-D/3-D, or N-D @ 2-D when A's leading dims collapse
into rows), linear (the weight read K-major, as stored), addmm (beta = alpha = 1, a
dense bias vector) and conv2d (numeric padding) onto codegen/triton/gemm.py's problem
classes, with strides read from the operands, so no operand is copied. Anything else
returns None and eager_cuda tries its other routes.
"""
from __future__ import annotations

import numpy as np

from ..ir.errors import LoweringError
from ..ir.meta import TensorMeta
from ..ir.registry import OpDef
from .tensor import Tensor

_GEMM_DTYPES = ("float32", "float16", "bfloat16")


def _as_matrix(t: Tensor):
    """(rows, row stride, column stride) of `t` with all leading dims as rows, or None when
    the leading dims do not collapse into one strided dim."""
    shape, strides = tuple(t.shape), tuple(t.stride())
    if len(shape) == 1:
        return 1, 0, strides[0]
    lead = [(n, s) for n, s in zip(shape[:-1], strides[:-1]) if n != 1]
    for (n0, s0), (n1, s1) in zip(lead, lead[1:]):
        if s0 != s1 * n1:
            return None
    rows = int(np.prod(shape[:-1]))
    return rows, (lead[-1][1] if lead else 0), strides[-1]


def _bias_dtype(bias, n: int):
    """The bias's dtype when it is a dense vector of n (what the GEMM epilogue reads)."""
    if bias is None:
        return None
    if tuple(bias.shape) != (n,) or (n > 1 and bias.stride(0) != 1):
        raise LoweringError("bias layout")
    return bias.dtype


def _matmul_problem(gemm, a, b, out_meta, bias=None, b_transposed=False):
    """A (.., M, K) @ B (K, N) [+ bias] with A's leading dims as rows, or None."""
    rows = _as_matrix(a)
    out = _as_matrix_meta(out_meta)
    if rows is None or out is None or b.ndim != 2:
        return None
    m, sam, sak = rows
    sbk, sbn = (b.stride(1), b.stride(0)) if b_transposed else (b.stride(0), b.stride(1))
    k = a.shape[-1]
    n = b.shape[0] if b_transposed else b.shape[1]
    return gemm.MatmulProblem(m, n, k, a.dtype, out_meta.dtype, (0, sam, sak), (0, sbk, sbn),
                              (0, out[1], out[2]), 1, _bias_dtype(bias, n))


def _as_matrix_meta(meta: TensorMeta):
    shape, strides = meta.shape, meta.strides
    if len(shape) == 1:
        return 1, 0, strides[0]
    if len(shape) == 2 or all(strides[d] == strides[d + 1] * shape[d + 1]
                              for d in range(len(shape) - 2)):
        return int(np.prod(shape[:-1])), strides[-2], strides[-1]
    return None


def _mm(gemm, args, out_meta):
    a, b = args[0], args[1]
    if a.ndim != 2:
        return None
    problem = _matmul_problem(gemm, a, b, out_meta)
    return problem and (problem, [0, 1])


def _bmm(gemm, args, out_meta):
    a, b = args[0], args[1]
    if a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0]:
        return None
    batch, m, k = a.shape
    n = b.shape[2]
    so = out_meta.strides
    return gemm.MatmulProblem(m, n, k, a.dtype, out_meta.dtype, tuple(a.stride()),
                              tuple(b.stride()), tuple(so), batch), [0, 1]


def _matmul(gemm, args, out_meta):
    a, b = args[0], args[1]
    if a.ndim == 3 and b.ndim == 3:
        return _bmm(gemm, args, out_meta)
    if a.ndim >= 2 and b.ndim == 2:
        problem = _matmul_problem(gemm, a, b, out_meta)
        return problem and (problem, [0, 1])
    return None


def _linear(gemm, args, out_meta):
    x, w = args[0], args[1]
    bias = args[2] if len(args) > 2 else None
    problem = _matmul_problem(gemm, x, w, out_meta, bias, b_transposed=True)
    return problem and (problem, [0, 1] + ([2] if bias is not None else []))


def _addmm(gemm, args, out_meta):
    bias, a, b = args[0], args[1], args[2]
    beta, alpha = (list(args[3:]) + [1, 1])[:2]
    if beta != 1 or alpha != 1 or a.ndim != 2:
        return None
    problem = _matmul_problem(gemm, a, b, out_meta, bias)
    return problem and (problem, [1, 2, 0])


def _conv2d(gemm, args, out_meta):
    x, w = args[0], args[1]
    bias = args[2] if len(args) > 2 else None
    stride, padding, dilation, groups = (list(args[3:]) + [1, 0, 1, 1])[:4]
    if isinstance(padding, str) or x.ndim != 4:
        return None
    pair = (lambda v: (v, v) if isinstance(v, int) else tuple(v))
    problem = gemm.ConvProblem(tuple(x.shape), tuple(x.stride()), tuple(w.shape),
                               tuple(w.stride()), tuple(out_meta.strides), pair(stride),
                               pair(padding), pair(dilation), groups, x.dtype, out_meta.dtype,
                               _bias_dtype(bias, w.shape[0]))
    return problem, [0, 1] + ([2] if bias is not None else [])


def gemm_kernel(op: OpDef, args: tuple, out_meta: TensorMeta, operands: list):
    """(GeneratedKernel, operand index of each input buffer) for a GEMM-shaped call, or None
    when the operands' dtypes or layouts are not ones the GEMM template takes."""
    try:
        from ..codegen.triton import gemm
    except ImportError:                 # the GEMM generator is not in this build
        return None
    if not operands or any(t.dtype.name not in _GEMM_DTYPES or t.dtype != operands[0].dtype
                           for t in operands) or out_meta.dtype.name not in _GEMM_DTYPES:
        return None
    built = _GEMM_PROBLEMS[op.name](gemm, args, out_meta)
    if built is None:
        return None
    problem, inputs = built
    return gemm.generate_gemm(problem, name=op.name), inputs


_GEMM_PROBLEMS = {"mm": _mm, "bmm": _bmm, "matmul": _matmul, "linear": _linear,
                  "addmm": _addmm, "conv2d": _conv2d}
