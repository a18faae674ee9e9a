"""Training-mode batch_norm on eager CPU tensors as one fused step each way (issue 22).

F.batch_norm's training path is otherwise ~8 full-size ops forward (mean, subtract,
square, mean, add, sqrt, divide, scale, shift) and ~25 backward, each a NumPy pass
with its own allocation and dispatch. Here the forward is a few NumPy passes
(per-channel sums over a [N, C, L] view, centring, one scale-and-shift) and the
backward the textbook closed form

    gx = weight * rstd * (g - mean(g) - xhat * mean(g * xhat)),
    gweight = sum(g * xhat),  gbias = sum(g)

in a handful of passes with two temporaries. The values equal the op-by-op path
within float rounding (tested against it and against torch).

Only plain eager calls take it (`fused_batch_norm_applies`): CPU, no dispatch mode
(tracing, forward AD, ...), C-contiguous float32/float64 input with per-channel
parameters of the same dtype; everything else keeps the op-by-op path and its errors.
Under `create_graph=True` the backward runs the registry's derivative rule, written
with ember ops, so double backward still works.
"""
from __future__ import annotations

import numpy as np

from ...ir import dispatch
from ...ir.registry import OPS
from ..autograd import grad_mode
from ..autograd.function import Function
from ..tensor import Tensor

_FLOATS = (np.float32, np.float64)


def fused_batch_norm_applies(input, running_mean, running_var, weight, bias) -> bool:
    if dispatch.active_modes() or type(input) is not Tensor or \
            input._storage.device != "cpu":
        return False
    arr = input._array
    if arr.dtype not in _FLOATS or arr.ndim < 2 or not arr.flags.c_contiguous or \
            arr.size == 0 or arr.shape[1] == 0:
        return False
    c = arr.shape[1]
    for t in (running_mean, running_var, weight, bias):
        if t is None:
            continue
        if not isinstance(t, Tensor) or t._storage.device != "cpu" or \
                t._array.dtype != arr.dtype or \
                t._array.shape != (c,):
            return False
    # a 1-element-per-channel batch is an error the op-by-op path raises
    return arr.size // c > 1


def batch_norm_train(input, running_mean, running_var, weight, bias, momentum, eps):
    """F.batch_norm(training=True) for calls `fused_batch_norm_applies` accepts."""
    out, mean, var = _BatchNorm.apply(input, weight, bias, eps)
    if running_mean is not None or running_var is not None:
        c = input.shape[1]
        n = input.numel() // c
        with grad_mode.no_grad():            # as the op-by-op path: op-level in-place copies
            if running_mean is not None:
                running_mean.copy_(running_mean * (1 - momentum) + mean * momentum)
            if running_var is not None:
                unbiased = var * (n / (n - 1))
                running_var.copy_(running_var * (1 - momentum) + unbiased * momentum)
    return out


class _BatchNorm(Function):
    """Returns (normalized output, batch mean, biased batch variance); only the first
    is differentiable (the statistics feed the running buffers under no_grad)."""

    @staticmethod
    def forward(ctx, input, weight, bias, eps):
        x = input._array
        n, c = x.shape[:2]
        x3 = x.reshape(n, c, -1)
        count = n * x3.shape[2]
        mean = x3.sum(axis=(0, 2)) / x.dtype.type(count)
        centred = x3 - mean[:, None]
        out = np.square(centred)
        var = out.sum(axis=(0, 2)) / x.dtype.type(count)
        rstd = 1 / np.sqrt(var + x.dtype.type(eps))
        scale = rstd if weight is None else rstd * weight._array
        np.multiply(centred, scale[:, None], out=out)
        if bias is not None:
            out += bias._array[:, None]
        ctx.save_for_backward(input, weight, bias)
        ctx.stats = (mean, rstd, eps)
        mean_t, var_t = Tensor._from_array(mean, copy=False), Tensor._from_array(var, copy=False)
        ctx.mark_non_differentiable(mean_t, var_t)
        # the statistics' gradients are never used: no zero tensors built for them
        ctx.set_materialize_grads(False)
        return Tensor._from_array(out.reshape(x.shape), copy=False), mean_t, var_t

    @staticmethod
    def backward(ctx, g, _g_mean, _g_var):
        input, weight, bias = ctx.saved_tensors
        mean, rstd, eps = ctx.stats
        if g is None:                        # the output's gradient is zero
            g = Tensor._from_array(np.zeros(input.shape, input._array.dtype), copy=False)
        if grad_mode.is_grad_enabled():      # create_graph: the rule written with ops
            derivative = OPS["batch_norm"].derivative
            gx, _, _, gw, gb = derivative(g, input, None, None, weight, bias, True, 0.1, eps)
            return gx, gw, gb, None
        gx, gw, gb = _backward_arrays(g._array, input._array, mean, rstd,
                                      None if weight is None else weight._array)
        need = ctx.needs_input_grad
        wrap = Tensor._from_array
        return (wrap(gx, copy=False) if need[0] else None,
                wrap(gw, copy=False) if need[1] else None,
                wrap(gb, copy=False) if need[2] else None, None)


def _backward_arrays(g, x, mean, rstd, weight):
    n, c = x.shape[:2]
    x3 = x.reshape(n, c, -1)
    g3 = g.reshape(n, c, -1)
    count = x.dtype.type(n * x3.shape[2])
    xhat = x3 - mean[:, None]
    xhat *= rstd[:, None]
    gb = g3.sum(axis=(0, 2))
    tmp = g3 * xhat
    gw = tmp.sum(axis=(0, 2))
    xhat *= (gw / count)[:, None]
    gx = np.subtract(g3, (gb / count)[:, None], out=tmp)
    gx -= xhat
    gx *= (rstd if weight is None else rstd * weight)[:, None]
    return gx.reshape(x.shape), gw, gb
