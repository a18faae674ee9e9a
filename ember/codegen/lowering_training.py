"""Kernel descriptions for ops that training steps run and the fused-group lowering does
not cover: arange, max pooling with its indices, and a strided copy that may walk a
source backwards (flipped convolution weights).

Each builder takes shapes, strides and dtypes and returns a validated `kernel.Kernel`,
which both backends read (the Triton emitter on CUDA, the LLVM one on the CPU). Eager
CUDA ops use them where no registry op has a lowering rule (frontend/eager_cuda_training.py).
"""
from __future__ import annotations

from ..ir.dtypes import Category, DType, float64, int64
from ..ir.meta import TensorMeta
from ..ir.ops.pooling import PoolParams
from . import kernel as K
from .lowering import (LoweringContext, Strided, c, cast, collapse_dims, constant, linear,
                       opmath, reorder_loops, strided_value, trim_vars, var)
from .lowering_windows import _lowest, _window_element, _window_positions, _within, window_reduce

NO_INDEX = 1 << 62          # larger than any flat position: loses every `min`


def _finish(kernel: K.Kernel) -> K.Kernel:
    kernel = collapse_dims(reorder_loops(collapse_dims(trim_vars(kernel))))
    K.validate(kernel)
    return kernel


def arange_kernel(n: int, start, step, dtype: DType, stride: int) -> K.Kernel:
    """out[i] = start + i * step, computed in float64 (floats) or int64, then cast."""
    compute = float64 if dtype.category == Category.FLOAT else int64
    position = cast(K.IndexValue(K.Affine((1,)), int64), compute)
    value = c("add", constant(start, compute), c("mul", position, constant(step, compute)))
    out = K.BufferSpec("out0", dtype, max(1, (n - 1) * stride + 1))
    return _finish(K.Kernel("arange", (max(n, 1),), (), [],
                            [out], [K.Store("out0", K.Affine((stride,)), cast(value, dtype))]))


def strided_copy(shape, src_strides, src_offset: int, src_dtype: DType, src_extent: int,
                 dst_strides, dst_dtype: DType, dst_extent: int) -> K.Kernel:
    """out0[dst index] = in0[src_offset + src index]; source strides may be negative (a
    flip reads from the last element backwards)."""
    n = len(shape)
    value = K.Load("in0", K.strided_index(src_strides, src_offset, n_vars=n), src_dtype)
    return _finish(K.Kernel("strided_copy", tuple(shape) or (1,), (),
                            [K.BufferSpec("in0", src_dtype, max(1, src_extent))],
                            [K.BufferSpec("out0", dst_dtype, max(1, dst_extent))],
                            [K.Store("out0", K.strided_index(dst_strides, n_vars=n),
                                     cast(value, dst_dtype))]))


def max_pool2d_with_indices_kernel(x: TensorMeta, x_extent: int, pool_args: tuple,
                                   values: TensorMeta, indices: TensorMeta) -> K.Kernel:
    """Max pooling's values and PyTorch's indices (flat h * W + w positions in each plane
    of the unpadded input; the first maximum in window order on ties) in one kernel: a
    max over each window, then a min over the positions that hold it."""
    ndim = len(x.shape)
    ctx = LoweringContext("max_pool2d_with_indices", ndim + 2)
    source = strided_value(ctx, Strided("in0", tuple(x.strides)), x.shape, x.dtype)
    p = PoolParams(TensorMeta(tuple(x.shape), x.dtype), *pool_args)
    acc = opmath(x.dtype)
    element = _window_element(ctx, source, p, fill=_lowest(x.dtype))
    out_shape = tuple(values.shape)
    best = window_reduce(ctx, "max", out_shape, p.k, element, acc)
    h, w = p.spatial

    def position_if_best(outer, window):
        here = cast(element(outer, window), acc)
        top = best.load(outer)
        ih, iw = _window_positions(ctx, p, outer, window)
        inside = c("logical_and", _within(ctx, ih, 0, h), _within(ctx, iw, 0, w))
        same = c("logical_or", c("eq", here, top),
                 c("logical_and", c("isnan", here), c("isnan", top)))
        flat = K.IndexValue(linear([(w, ih), (1, iw)], 0, ctx.n_vars), int64)
        return c("where", c("logical_and", inside, same), flat, constant(NO_INDEX, int64))
    first = window_reduce(ctx, "min", out_shape, p.k, position_if_best, int64)
    index = tuple(var(v, ctx.n_vars) for v in range(len(out_shape)))
    stores = [K.Store("out0", linear(zip(values.strides, index), 0, ctx.n_vars),
                      cast(best.load(index), values.dtype)),
              K.Store("out1", linear(zip(indices.strides, index), 0, ctx.n_vars),
                      first.load(index))]
    outputs = [K.BufferSpec("out0", values.dtype, _extent(values)),
               K.BufferSpec("out1", int64, _extent(indices))]
    kernel = K.Kernel(ctx.name, tuple(ctx.outer), tuple(ctx.inner),
                      [K.BufferSpec("in0", x.dtype, max(1, x_extent))], outputs,
                      ctx.stages + stores)
    return _finish(kernel)


def _extent(meta: TensorMeta) -> int:
    if any(s == 0 for s in meta.shape):
        return 1
    return 1 + sum((s - 1) * st for s, st in zip(meta.shape, meta.strides))
