"""NumPy backwards for ops whose composed derivative is mostly dispatch (issue 22).

A registry op's derivative is written with ember ops, so `create_graph=True` and
tracing work unchanged. Run eagerly, though, cross_entropy's rule is ~17 op calls on
a (batch, classes) array: for a 64x10 batch that is ~0.3 ms of dispatch for
microseconds of arithmetic, more than PyTorch's whole loss backward. The rules here
compute the same formulas on the arrays directly; the autograd engine
(`engine.ARRAY_BACKWARD`) uses one only for a plain eager backward (no
`create_graph`, no dispatch mode such as a profiler or tracer, CPU gradient), and a
rule returns None for every case it does not cover (weights, probability targets,
other dtypes), which then takes the composed rule. Gradients match the composed
rule within float rounding (tests/frontend/test_eager_backward.py).
"""
from __future__ import annotations

import numpy as np

from ..ir.ops.normalization import np_log_softmax
from ..ir.registry import OPS
from .autograd.engine import ARRAY_BACKWARD

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _class_loss_backward(logits: bool):
    """cross_entropy (logits) / nll_loss (log-probabilities) with class-index targets:
    d input = gl * (mask * softmax(input) - coeff) for cross_entropy and -gl * coeff for
    nll_loss, coeff = mask * (one-hot smoothed), gl = the loss gradient per sample."""
    def rule(g, bound, out, mask):
        input, target, weight, ignore_index, reduction = bound[:5]
        smoothing = bound[5] if logits else 0.0
        if weight is not None or (mask is not None and not mask[0]):
            return None
        x, t = input._array, target._array
        if x.dtype not in _FLOATS or g.dtype != x.dtype or t.dtype.kind not in "iu" \
                or x.ndim == 0:
            return None
        cd = 1 if x.ndim >= 2 else 0
        c = x.shape[cd]
        t = np.expand_dims(t, cd)
        classes = np.arange(c).reshape((c,) + (1,) * (x.ndim - cd - 1))
        onehot = t == classes
        valid = t != ignore_index
        coeff = (valid & onehot).astype(x.dtype)
        if reduction == "mean":
            gl = g / coeff.sum(dtype=x.dtype)
        elif reduction == "sum":
            gl = g
        else:
            gl = np.expand_dims(g, cd)
        if smoothing > 0:
            coeff = valid * (onehot * x.dtype.type(1 - smoothing) + x.dtype.type(smoothing / c))
        with np.errstate(all="ignore"):    # a mean over no target is nan, as the op path's
            if not logits:
                return np.negative(gl * coeff, dtype=x.dtype), None, None
            probs = np.exp(np_log_softmax(x, cd))
            return ((probs * valid - coeff) * gl).astype(x.dtype, copy=False), None, None
    return rule


def _relu_backward(g, bound, out, mask):
    if out is None or g.dtype not in _FLOATS or out._array.dtype != g.dtype:
        return None
    return (g * (out._array > 0),)


def install() -> None:
    for name, rule in (("cross_entropy", _class_loss_backward(True)),
                       ("nll_loss", _class_loss_backward(False)),
                       ("relu", _relu_backward)):
        if name in OPS:
            ARRAY_BACKWARD[OPS[name]] = rule

