"""Gradient plumbing shared by the eager tape and the graph autograd pass.

Both run the registry's derivative rules; both then need each raw gradient fitted
to its input: summed over broadcast dimensions, cast to the input's dtype, and
real-projected when a real input got a complex gradient (PyTorch's convention).
Written with op calls, so it records on the tape or in a graph alike.
"""
from __future__ import annotations

import contextlib

from .dtypes import Category


# Which tensor inputs of the rule running now need a gradient (PyTorch's output_mask):
# the eager engine sets it around a derivative call when some input needs none, so
# an expensive rule (a convolution's input gradient for the image batch) can skip
# that product. None: every input (the graph autograd pass, forward mode).
_INPUT_MASK: list = [None]


def take_input_mask() -> tuple | None:
    """The running derivative's mask (True: that tensor input needs its gradient), or
    None for all. Read once, first thing in a rule: it is cleared here, so rules run by
    the ops this rule calls (forward-mode AD nested in a backward) never see it."""
    mask, _INPUT_MASK[0] = _INPUT_MASK[0], None
    return mask


@contextlib.contextmanager
def input_grad_mask(mask):
    saved = _INPUT_MASK[0]
    _INPUT_MASK[0] = mask
    try:
        yield
    finally:
        _INPUT_MASK[0] = saved


_OPS_NS: list = []                      # ops.OPS_NS, imported on first use (ops import this)


def _ops():
    if not _OPS_NS:
        from .ops import OPS_NS
        _OPS_NS.append(OPS_NS)
    return _OPS_NS[0]


def sum_to_shape(g, shape: tuple):
    """Sum `g` over the dims that broadcasting added or expanded from size 1."""
    shape = tuple(shape)
    if tuple(g.shape) == shape:
        return g
    ops = _ops()
    lead = g.ndim - len(shape)
    dims = list(range(lead))
    dims += [lead + i for i, s in enumerate(shape) if s == 1 and g.shape[lead + i] != 1]
    if dims:
        g = ops.sum(g, dims, keepdim=True)
    if lead or tuple(g.shape) != shape:
        g = ops.reshape(g, list(shape))
    return g


def fit_grad(g, shape, dtype):
    """The gradient for an input of `shape`/`dtype` (None shape: a Python scalar input)."""
    if shape is None:
        return None
    if g.dtype != dtype:
        ops = _ops()
        if g.dtype.category == Category.COMPLEX and dtype.category != Category.COMPLEX:
            g = ops.real(g)
        if g.dtype != dtype:
            g = ops.convert_element_type(g, dtype)
    return sum_to_shape(g, shape)


def zeros(shape, dtype):
    return _ops().full(list(shape), 0, dtype=dtype)


def ones_like_value(t):
    return _ops().ones_like(t)
