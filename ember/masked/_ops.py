"""The masked operations behind ember.masked, as composites of ember ops.

The recipe for every operation: broadcast the mask to the input's shape, replace the
masked-out elements by the identity of the operation (`_fill_masked`), run the ordinary
operation. Operations without an identity (mean, var, std, median) count the valid
elements instead. `mask=None` means every element is valid.
"""
from __future__ import annotations

import math

import numpy as np

from ..ir.registry import OPS

import ember as _e  # the package is complete by the time any function here runs

# integer dtypes that sum/prod accumulate in int64, as torch.masked does
_SMALL_INTEGRAL = {"uint8", "bool", "int8", "int16", "int32"}


def _cast(x, dtype):
    """x in `dtype` (x itself when it already is); works on traced tensors too."""
    if x.dtype == dtype:
        return x
    return OPS["convert_element_type"](x, dtype)


def _is_float(dtype) -> bool:
    return dtype.is_floating_point


def _canonical_dims(dim, ndim: int) -> tuple[int, ...]:
    """`dim` as a sorted tuple of non-negative dims; None and () mean every dim."""
    if dim is None or dim == ():
        return tuple(range(ndim))
    ndim = max(ndim, 1)
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    seen = []
    for d in dims:
        if d in seen:
            raise RuntimeError(f"dim={d} appears multiple times in the list of dims")
        if d >= ndim or d < -ndim:
            raise IndexError(f"Dimension out of range (expected to be in range of "
                             f"[{-ndim}, {ndim - 1}], but got {d})")
        seen.append(d)
    return tuple(sorted(d % ndim for d in seen))


def _input_mask(input, mask):
    """The mask as a bool tensor of input's shape (broadcast), or None for no mask."""
    if mask is None:
        return None
    if tuple(mask.shape) != tuple(input.shape):
        if mask.ndim > input.ndim:
            raise IndexError("masked: expected a broadcastable mask (got mask "
                             "dimensionality higher than of the input)")
        mask = mask.expand(tuple(input.shape))
    return _cast(mask, _e.bool)


def _extreme(dtype, lowest: bool):
    """-inf/+inf for floating dtypes, the integer range's end otherwise."""
    if _is_float(dtype):
        return -math.inf if lowest else math.inf
    if dtype.is_complex:
        return complex(-math.inf, 0.0) if lowest else None
    if dtype.name == "bool":
        return None
    info = np.iinfo(np.dtype(dtype.name))
    return int(info.min if lowest else info.max)


def _identity(kind: str, dtype, ord=2.0):
    """The value that leaves reduction `kind` unchanged, or None where there is none."""
    if kind == "sum":
        return 0
    if kind == "prod":
        return 1
    if kind == "max":
        return None if dtype.is_complex else _extreme(dtype, lowest=True)
    if kind == "logsumexp":
        return _extreme(dtype, lowest=True)
    if kind == "min":
        return None if dtype.is_complex else _extreme(dtype, lowest=False)
    if kind == "norm":
        return math.inf if ord == -math.inf else 0
    raise ValueError(f"masked: no identity for {kind}")


def _fill_masked(kind: str, input, mask, ord=2.0):
    """input with its masked-out elements replaced by the identity of `kind`."""
    mask = _input_mask(input, mask)
    if mask is None:
        return input
    value = _identity(kind, input.dtype, ord)
    if value is None:
        raise TypeError(f"masked {kind}: no identity value for {input.dtype.name} input")
    fill = _e.full((), value, dtype=input.dtype)
    return _e.where(mask, input, fill)


def _accumulate_dtype(input, dtype):
    if dtype is not None:
        return dtype
    return _e.int64 if input.dtype.name in _SMALL_INTEGRAL else input.dtype


# --- reductions with an identity --------------------------------------------------------
def sum(input, dim=None, *, keepdim=False, dtype=None, mask=None):
    dtype = _accumulate_dtype(input, dtype)
    dims = _canonical_dims(dim, input.ndim)
    return _e.sum(_fill_masked("sum", input, mask), dims, bool(keepdim), dtype=dtype)


def prod(input, dim=None, *, keepdim=False, dtype=None, mask=None):
    dtype = _accumulate_dtype(input, dtype)
    dims = _canonical_dims(dim, input.ndim)
    result = _cast(_fill_masked("prod", input, mask), dtype)
    for d in reversed(dims):       # from the last dim so that earlier indices stay valid
        result = result.prod(dim=d, keepdim=bool(keepdim))
    return result


def cumsum(input, dim, *, dtype=None, mask=None):
    dtype = input.dtype if dtype is None else dtype
    d = _canonical_dims(dim, input.ndim)[0]
    return _cast(_e.cumsum(_fill_masked("sum", input, mask), d, dtype=dtype), dtype)


def cumprod(input, dim, *, dtype=None, mask=None):
    dtype = input.dtype if dtype is None else dtype
    d = _canonical_dims(dim, input.ndim)[0]
    return _cast(_e.cumprod(_fill_masked("prod", input, mask), d, dtype=dtype), dtype)


def amax(input, dim=None, *, keepdim=False, dtype=None, mask=None):
    dtype = input.dtype if dtype is None else dtype
    dims = _canonical_dims(dim, input.ndim)
    return _cast(_e.amax(_fill_masked("max", input, mask), dims, bool(keepdim)), dtype)


def amin(input, dim=None, *, keepdim=False, dtype=None, mask=None):
    dtype = input.dtype if dtype is None else dtype
    dims = _canonical_dims(dim, input.ndim)
    return _cast(_e.amin(_fill_masked("min", input, mask), dims, bool(keepdim)), dtype)


def argmax(input, dim=None, *, keepdim=False, dtype=None, mask=None):
    """Index of the largest valid element; like torch.masked, cast to `dtype`, which
    defaults to the input's dtype."""
    dtype = input.dtype if dtype is None else dtype
    return _cast(_e.argmax(_fill_masked("max", input, mask), dim, bool(keepdim)), dtype)


def argmin(input, dim=None, *, keepdim=False, dtype=None, mask=None):
    dtype = input.dtype if dtype is None else dtype
    return _cast(_e.argmin(_fill_masked("min", input, mask), dim, bool(keepdim)), dtype)


def logsumexp(input, dim=None, *, keepdim=False, dtype=None, mask=None):
    dtype = input.dtype if dtype is None else dtype
    dims = _canonical_dims(dim, input.ndim)
    filled = _fill_masked("logsumexp", input, mask)
    return _cast(_e.logsumexp(filled, dims, keepdim=bool(keepdim)), dtype)


def logaddexp(input, other, *, dtype=None, input_mask=None, other_mask=None):
    """log(exp(input) + exp(other)) with masked-out elements taken as -inf."""
    dtype = input.dtype if dtype is None else dtype
    a = _fill_masked("max", input, input_mask)
    b = _fill_masked("max", other, other_mask)
    shape = np.broadcast_shapes(tuple(a.shape), tuple(b.shape))
    pair = _e.stack([a.expand(shape), b.expand(shape)])
    if not (_is_float(pair.dtype) or pair.dtype.is_complex):
        pair = _cast(pair, _e.get_default_dtype())
    # logsumexp over the pair: stable for large values, -inf where both are -inf
    return _cast(_e.logsumexp(pair, 0), dtype)


def norm(input, ord=2.0, dim=None, *, keepdim=False, dtype=None, mask=None):
    dtype = input.dtype if dtype is None else dtype
    filled = _fill_masked("norm", input, mask, ord)
    # a 0-d input has one element whichever of its dims (0 or -1) is named
    dims = _canonical_dims(dim, input.ndim) if input.ndim else None
    return _e.linalg.vector_norm(filled, ord, dims, bool(keepdim), dtype=dtype)


# --- reductions without an identity: count the valid elements ----------------------------
def _valid_count(input, mask, dim, keepdim):
    """How many valid elements each output element reduces over (int64)."""
    inmask = _input_mask(input, mask)
    if inmask is None:
        inmask = _e.ones(tuple(input.shape), dtype=_e.bool)
    if dim is None:
        return inmask.sum(dtype=_e.int64).reshape([1] * input.ndim if keepdim else [])
    return inmask.sum(dim=dim, keepdim=bool(keepdim), dtype=_e.int64)


def mean(input, dim=None, *, keepdim=False, dtype=None, mask=None):
    """Sum of the valid elements over their count; nan where none is valid."""
    source = "Optional" if dtype is not None else "Input"
    dtype = input.dtype if dtype is None else dtype
    if not (dtype.is_floating_point or dtype.is_complex):
        raise ValueError(f"mean(): Could not infer output dtype. {source} dtype must be "
                         f"either a floating point or complex dtype. Got: {dtype}")
    total = sum(input, dim, keepdim=keepdim, dtype=dtype, mask=mask)
    return total / _valid_count(input, mask, dim, keepdim)


def _var(input, dim, unbiased, correction, keepdim, dtype, mask, take_sqrt):
    if unbiased is not None and correction is not None:
        raise RuntimeError("masked var/std: only one of unbiased and correction may be given")
    corr = 1.0 if unbiased is None else (1.0 if unbiased else 0.0)
    corr = float(correction) if correction is not None else corr
    if dtype is None:
        dtype = input.dtype
        if not (dtype.is_floating_point or dtype.is_complex):
            dtype = _e.float32
    compute = dtype if (dtype.is_floating_point or dtype.is_complex) else _e.float32
    count = _valid_count(input, mask, dim, True)
    centered = input - sum(input, dim, keepdim=True, dtype=dtype, mask=mask) / count
    total = sum(centered * centered.conj(), dim, keepdim=keepdim, dtype=compute, mask=mask)
    count = count.reshape(tuple(total.shape))
    if corr != 0:
        real = _e.float64 if compute.name in ("complex128", "float64") else \
            compute if compute.is_floating_point else _e.float32
        count = _e.clamp(_cast(count, real) - corr, min=0)
    output = _cast(total / count, dtype)
    return output.sqrt() if take_sqrt else output


def var(input, dim=None, unbiased=None, *, correction=None, keepdim=False, dtype=None,
        mask=None):
    return _var(input, dim, unbiased, correction, keepdim, dtype, mask, take_sqrt=False)


def std(input, dim=None, unbiased=None, *, correction=None, keepdim=False, dtype=None,
        mask=None):
    return _var(input, dim, unbiased, correction, keepdim, dtype, mask, take_sqrt=True)


def median(input, dim=-1, *, keepdim=False, dtype=None, mask=None):
    """Lower median of the valid, non-nan elements along `dim` (torch.nanmedian's rule);
    nan where none is valid, which integer results cannot hold (ValueError)."""
    dtype = input.dtype if dtype is None else dtype
    d = _canonical_dims(dim, input.ndim)[0]
    is_float = input.dtype.is_floating_point
    values = input if is_float else _cast(input, _e.float32)
    valid = ~values.isnan()
    inmask = _input_mask(values, mask)
    if inmask is not None:
        valid = valid & inmask
    output = _lower_median(values, valid, d, bool(keepdim))
    if is_float:
        return output
    if output.isnan().any().item():
        raise ValueError("masked median expects no fully masked out rows if dtype is not "
                         "floating point")
    return _cast(output, dtype)


def _lower_median(values, valid, dim: int, keepdim: bool):
    """Sort with invalid elements last (+inf), pick element (count - 1) // 2."""
    if values.ndim == 0:
        return _e.where(valid, values, _e.full((), math.nan, dtype=values.dtype))
    ranked = _e.where(valid, values, _e.full((), math.inf, dtype=values.dtype))
    ordered, _ = _e.sort(ranked, dim)
    count = valid.sum(dim=dim, keepdim=True, dtype=_e.int64)
    pick = _cast(_e.clamp((count - 1).div(2, rounding_mode="floor"), min=0), _e.int64)
    picked = _e.gather(ordered, dim, pick)
    picked = _e.where(count > 0, picked, _e.full((), math.nan, dtype=values.dtype))
    return picked if keepdim else picked.squeeze(dim)


# --- normalizations -----------------------------------------------------------------
def softmax(input, dim, *, dtype=None, mask=None):
    dtype = input.dtype if dtype is None else dtype
    d = _canonical_dims(dim, input.ndim)[0]
    return _e.nn.functional.softmax(_cast(_fill_masked("max", input, mask), dtype), d)


def log_softmax(input, dim, *, dtype=None, mask=None):
    dtype = input.dtype if dtype is None else dtype
    d = _canonical_dims(dim, input.ndim)[0]
    return _e.nn.functional.log_softmax(_cast(_fill_masked("max", input, mask), dtype), d)


def softmin(input, dim, *, dtype=None, mask=None):
    dtype = input.dtype if dtype is None else dtype
    d = _canonical_dims(dim, input.ndim)[0]
    # softmin(x) = softmax(-x); masked elements are +inf so that they weigh nothing
    return _e.nn.functional.softmax(-_cast(_fill_masked("min", input, mask), dtype), d)


def normalize(input, ord, dim, *, eps=1e-12, dtype=None, mask=None):
    """input / max(norm(input over the valid elements), eps); masked-out elements 0."""
    dtype = input.dtype if dtype is None else dtype
    filled = _fill_masked("sum", input, mask)
    nrm = norm(input, ord, dim, keepdim=True, dtype=dtype, mask=mask)
    return filled / _e.maximum(nrm, _e.full((), eps, dtype=nrm.dtype))
