"""In-place NumPy updates for SGD and Adam/AdamW on CPU float32/float64 parameters.

The optimizers' general path runs the pure functions of `functional.py` (ember ops,
one new tensor per operation, then a copy back into each parameter and state
buffer). For plain CPU parameters these functions do the same arithmetic directly on
the parameters' and states' own arrays: the same operations in the same order, each
rounded to the parameter's dtype as the op-by-op path rounds it (Python scalars are
cast to that dtype first, as ember's promotion does), so results are bit-identical,
in a handful of NumPy calls per parameter and no temporaries kept. Anything else
(CUDA, complex, half precision, mismatched gradients) stays on the general path.
"""
from __future__ import annotations

import math

import numpy as np

from ..tensor import Tensor

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def applies(params, grads) -> bool:
    """True when every parameter and gradient can be updated in place here."""
    for p, g in zip(params, grads):
        if type(p._array) is not np.ndarray or p._storage.device != "cpu":
            return False
        a, ga = p._array, getattr(g, "_array", None)
        if a.dtype not in _DTYPES or type(ga) is not np.ndarray or ga.dtype != a.dtype or \
                ga.shape != a.shape or not a.flags.writeable:
            return False
    return True


def _state_ok(tensors, like: np.ndarray) -> bool:
    return all(isinstance(t, Tensor) and type(t._array) is np.ndarray and
               t._array.dtype == like.dtype and t._array.shape == like.shape and
               t._array.flags.writeable for t in tensors)


def sgd(params, grads, momentum_buffers, *, weight_decay, momentum, lr, dampening, nesterov,
        maximize) -> list:
    """Updates params in place; returns the momentum buffers (new ones where None)."""
    out_bufs = []
    for i, p in enumerate(params):
        a = p._array
        f = a.dtype.type
        grad = grads[i]._array
        if maximize:
            grad = -grad
        if weight_decay != 0:
            grad = grad + a * f(weight_decay)
        buf = None
        if momentum != 0:
            buf = momentum_buffers[i] if i < len(momentum_buffers) else None
            if buf is None or not _state_ok([buf], a):
                buf = Tensor._from_array(grad)             # grad.clone()
            else:
                b = buf._array
                np.multiply(b, f(momentum), out=b)
                b += grad * f(1 - dampening)
                buf._bump_version()
            grad = grad + buf._array * f(momentum) if nesterov else buf._array
        a += grad * f(-lr)
        p._bump_version()
        out_bufs.append(buf)
    return out_bufs


def adam(params, grads, states, *, amsgrad, beta1, beta2, lr, weight_decay, eps, maximize,
         decoupled) -> bool:
    """Adam/AdamW in place on params and their states ('step', 'exp_avg', 'exp_avg_sq',
    'max_exp_avg_sq'). Returns False, touching nothing, when a state does not fit."""
    keys = ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if amsgrad else [])
    for p, st in zip(params, states):
        step = st.get("step")
        if not (_state_ok([st[k] for k in keys], p._array) and isinstance(step, Tensor) and
                type(step._array) is np.ndarray and step._array.size == 1):
            return False
    for i, p in enumerate(params):
        a, st = p._array, states[i]
        f = a.dtype.type
        grad = grads[i]._array
        if maximize:
            grad = -grad
        step_arr = st["step"]._array
        step_arr += 1
        st["step"]._bump_version()
        if weight_decay != 0:
            if decoupled:
                np.multiply(a, f(1 - lr * weight_decay), out=a)
            else:
                grad = grad + a * f(weight_decay)
        m, v = st["exp_avg"]._array, st["exp_avg_sq"]._array
        weight = 1 - beta1
        if weight < 0.5:                                   # torch.lerp's CPU formula
            m += (grad - m) * f(weight)
        else:
            m[...] = grad - (grad - m) * f(1 - weight)
        np.multiply(v, f(beta2), out=v)
        v += grad * grad * f(1 - beta2)
        step = step_arr.item()
        bias_correction1 = 1 - beta1 ** step
        bias_correction2 = 1 - beta2 ** step
        step_size = lr / bias_correction1
        bias_correction2_sqrt = math.sqrt(bias_correction2)
        if amsgrad:
            mx = st["max_exp_avg_sq"]._array
            np.maximum(mx, v, out=mx)
            st["max_exp_avg_sq"]._bump_version()
            denom = np.sqrt(mx)
        else:
            denom = np.sqrt(v)
        denom /= f(bias_correction2_sqrt)
        denom += f(eps)
        a += (m / denom) * f(-step_size)
        for key in ("exp_avg", "exp_avg_sq"):
            st[key]._bump_version()
        p._bump_version()
    return True
