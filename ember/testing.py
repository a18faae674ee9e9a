"""torch.testing: `assert_close` (PyTorch's default tolerances per dtype and its mismatch
report), `make_tensor`, and the deprecated `assert_allclose`."""
from __future__ import annotations

import collections.abc
import math

import numpy as np

from .frontend.tensor import Tensor
from .ir import dtypes

__all__ = ["assert_close", "make_tensor", "assert_allclose"]

# PyTorch's defaults (rtol, atol) by dtype; integers and bool compare exactly
_DEFAULT_TOLERANCES = {
    "float16": (1e-3, 1e-5), "bfloat16": (1.6e-2, 1e-5), "float32": (1.3e-6, 1e-5),
    "float64": (1e-7, 1e-7), "complex64": (1.3e-6, 1e-5), "complex128": (1e-7, 1e-7),
}


def _tolerances(dtype_name: str, rtol, atol) -> tuple[float, float]:
    if (rtol is None) != (atol is None):
        missing = "atol" if atol is None else "rtol"
        raise ValueError(f"Both 'rtol' and 'atol' must be either specified or omitted, but "
                         f"got no {missing}.")
    if rtol is not None:
        return rtol, atol
    return _DEFAULT_TOLERANCES.get(dtype_name, (0.0, 0.0))


def _fail(message: str, msg) -> None:
    raise AssertionError(msg(message) if callable(msg) else (msg or message))


def _as_tensor(value):
    from .frontend.factories import tensor
    if isinstance(value, Tensor):
        return value
    if isinstance(value, np.ndarray):
        return tensor(value)
    return None


def _compare_tensors(actual: Tensor, expected: Tensor, rtol, atol, equal_nan, check_device,
                     check_dtype, msg, path: str) -> None:
    where = f" at {path}" if path else ""
    if tuple(actual.shape) != tuple(expected.shape):
        _fail(f"The values for attribute 'shape' do not match{where}: {actual.shape} != "
              f"{expected.shape}.", msg)
    if check_device and actual.device != expected.device:
        _fail(f"The values for attribute 'device' do not match{where}: {actual.device} != "
              f"{expected.device}.", msg)
    if check_dtype and actual.dtype is not expected.dtype:
        _fail(f"The values for attribute 'dtype' do not match{where}: {actual.dtype} != "
              f"{expected.dtype}.", msg)
    if actual.is_meta and expected.is_meta:     # no values: the metadata is everything
        return
    wider = dtypes.promote_types(actual.dtype, expected.dtype)
    rtol, atol = _tolerances(wider.name, rtol, atol)
    a = np.asarray(actual.detach().cpu().numpy())
    e = np.asarray(expected.detach().cpu().numpy())
    if a.dtype.kind in "fcb" or e.dtype.kind in "fcb" or a.dtype != e.dtype:
        a, e = a.astype(np.complex128 if "c" in a.dtype.kind + e.dtype.kind else np.float64), \
            e.astype(np.complex128 if "c" in a.dtype.kind + e.dtype.kind else np.float64)
    _compare_values(a, e, rtol, atol, equal_nan, msg, where,
                    "Scalars" if a.ndim == 0 else "Tensor-likes")


def _compare_values(a, e, rtol, atol, equal_nan, msg, where, kind) -> None:
    with np.errstate(invalid="ignore", over="ignore"):
        close = np.isclose(a, e, rtol=rtol, atol=atol, equal_nan=equal_nan) \
            if a.dtype.kind in "fc" else (a == e)
    if close.all():
        return
    mismatched = int((~close).sum())
    total = close.size
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        abs_diff = np.abs(a - e).astype(np.float64)
        rel_diff = abs_diff / np.abs(e)
    abs_diff = np.where(close, 0, abs_diff)
    rel_diff = np.where(close, 0, np.nan_to_num(rel_diff, nan=np.inf))
    if a.ndim == 0:
        _fail(f"{kind} are not close{where}!\n\nExpected {e.item()} but got {a.item()}.\n"
              f"Absolute difference: {abs_diff.item()} (up to {atol} allowed)\n"
              f"Relative difference: {rel_diff.item()} (up to {rtol} allowed)", msg)
    abs_at = np.unravel_index(int(np.nanargmax(abs_diff)), a.shape)
    rel_at = np.unravel_index(int(np.nanargmax(rel_diff)), a.shape)
    _fail(f"{kind} are not close{where}!\n\n"
          f"Mismatched elements: {mismatched} / {total} ({100 * mismatched / total:.1f}%)\n"
          f"Greatest absolute difference: {abs_diff[abs_at]} at index "
          f"{tuple(int(i) for i in abs_at)} (up to {atol} allowed)\n"
          f"Greatest relative difference: {rel_diff[rel_at]} at index "
          f"{tuple(int(i) for i in rel_at)} (up to {rtol} allowed)", msg)


def assert_close(actual, expected, *, allow_subclasses=True, rtol=None, atol=None,
                 equal_nan=False, check_device=True, check_dtype=True, check_layout=True,
                 check_stride=False, msg=None, path: str = "") -> None:
    """Tensors, NumPy arrays and Python numbers compared elementwise with
    |actual - expected| <= atol + rtol * |expected|; sequences and mappings recursively."""
    if _special_layout(actual) or _special_layout(expected):
        _compare_special(actual, expected, rtol, atol, equal_nan, check_device, check_dtype,
                         check_layout, msg, path)
        return
    a_t, e_t = _as_tensor(actual), _as_tensor(expected)
    if a_t is not None and e_t is not None:
        _compare_tensors(a_t, e_t, rtol, atol, equal_nan, check_device, check_dtype, msg, path)
    elif isinstance(actual, collections.abc.Mapping) and \
            isinstance(expected, collections.abc.Mapping):
        if set(actual) != set(expected):
            _fail(f"The keys of the mappings do not match: {sorted(map(str, actual))} != "
                  f"{sorted(map(str, expected))}", msg)
        for key in expected:
            assert_close(actual[key], expected[key], rtol=rtol, atol=atol, equal_nan=equal_nan,
                         check_device=check_device, check_dtype=check_dtype, msg=msg,
                         path=f"{path}[{key!r}]" if path else f"item [{key!r}]")
    elif _is_sequence(actual) and _is_sequence(expected):
        if len(actual) != len(expected):
            _fail(f"The length of the sequences mismatch: {len(actual)} != {len(expected)}", msg)
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_close(a, e, rtol=rtol, atol=atol, equal_nan=equal_nan,
                         check_device=check_device, check_dtype=check_dtype, msg=msg,
                         path=f"{path}[{i}]" if path else f"item [{i}]")
    elif _is_number(actual) and _is_number(expected):
        _compare_numbers(actual, expected, rtol, atol, equal_nan, check_dtype, msg, path)
    else:
        _fail(f"No comparison pair was able to handle inputs of type {type(actual)} and "
              f"{type(expected)}.", msg)


def _special_layout(value) -> bool:
    """Sparse tensors and MaskedTensor: tensors that are not ember.Tensor objects."""
    return not isinstance(value, Tensor) and getattr(type(value), "_ember_tensor_like", False)


# a layout's index tensors, compared exactly before the values, as torch names them
_INDEX_PARTS = {"sparse_coo": (("Sparse COO indices", "_indices"),),
                "sparse_csr": (("Sparse CSR crow_indices", "crow_indices"),
                               ("Sparse CSR col_indices", "col_indices")),
                "sparse_csc": (("Sparse CSC ccol_indices", "ccol_indices"),
                               ("Sparse CSC row_indices", "row_indices")),
                "sparse_bsr": (("Sparse BSR crow_indices", "crow_indices"),
                               ("Sparse BSR col_indices", "col_indices")),
                "sparse_bsc": (("Sparse BSC ccol_indices", "ccol_indices"),
                               ("Sparse BSC row_indices", "row_indices"))}


def _compare_special(actual, expected, rtol, atol, equal_nan, check_device, check_dtype,
                     check_layout, msg, path) -> None:
    """torch.testing's rules for sparse tensors (the same layout, nnz, index tensors
    equal, values close; entries compared as stored) and MaskedTensor (the same mask,
    the data close where it is set)."""
    where = f" at {path}" if path else ""
    layout_a, layout_e = getattr(actual, "layout", None), getattr(expected, "layout", None)
    if layout_a is None or layout_e is None:
        _fail(f"No comparison pair was able to handle inputs of type {type(actual)} and "
              f"{type(expected)}.", msg)
    if layout_a is not layout_e:
        if check_layout:
            _fail(f"The values for attribute 'layout' do not match{where}: {layout_a} != "
                  f"{layout_e}.", msg)
        assert_close(_densified(actual), _densified(expected), rtol=rtol, atol=atol,
                     equal_nan=equal_nan, check_device=check_device,
                     check_dtype=check_dtype, msg=msg, path=path)
        return
    if tuple(actual.shape) != tuple(expected.shape):
        _fail(f"The values for attribute 'shape' do not match{where}: {actual.shape} != "
              f"{expected.shape}.", msg)
    compare = dict(equal_nan=equal_nan, check_device=check_device, check_dtype=check_dtype,
                   msg=msg, path=path)
    if hasattr(actual, "get_mask") and hasattr(expected, "get_mask"):
        _compare_tensors(actual.get_mask(), expected.get_mask(), 0.0, 0.0, **compare)
        mask = actual.get_mask()
        _compare_tensors(actual.get_data() * mask, expected.get_data() * mask, rtol, atol,
                         **compare)
        return
    name = str(layout_e).rsplit(".", 1)[-1]
    if actual._nnz() != expected._nnz():
        label = name.split("_")[1].upper()
        _fail(f"The number of specified values in sparse {label} tensors does not "
              f"match{where}: {actual._nnz()} != {expected._nnz()}", msg)
    for _, method in _INDEX_PARTS.get(name, ()):
        _compare_tensors(getattr(actual, method)(), getattr(expected, method)(), 0.0, 0.0,
                         **compare)
    values = "_values" if name == "sparse_coo" else "values"
    _compare_tensors(getattr(actual, values)(), getattr(expected, values)(), rtol, atol,
                     **compare)


def _densified(value):
    return value.to_dense() if _special_layout(value) else value


def _is_sequence(value) -> bool:
    return isinstance(value, collections.abc.Sequence) and not isinstance(value, str)


def _is_number(value) -> bool:
    return isinstance(value, (bool, int, float, complex, np.number))


def _compare_numbers(actual, expected, rtol, atol, equal_nan, check_dtype, msg, path):
    if check_dtype and type(actual) is not type(expected):
        _fail(f"The values for attribute 'dtype' do not match: {type(actual).__name__} != "
              f"{type(expected).__name__}.", msg)
    kind = complex if isinstance(actual, complex) or isinstance(expected, complex) else float
    name = "complex128" if kind is complex else "float64" if \
        isinstance(actual, float) or isinstance(expected, float) else "int64"
    rtol, atol = _tolerances(name, rtol, atol)
    a, e = np.asarray(kind(actual)), np.asarray(kind(expected))
    _compare_values(a, e, rtol, atol, equal_nan, msg, f" at {path}" if path else "", "Scalars")


def assert_allclose(actual, expected, rtol=None, atol=None, equal_nan=True, msg=""):
    """Deprecated in PyTorch for assert_close; compares values across dtypes."""
    expected = expected if isinstance(expected, Tensor) else _as_tensor(np.asarray(expected))
    actual = actual if isinstance(actual, Tensor) else _as_tensor(np.asarray(actual))
    assert_close(actual, expected.to(actual.dtype), rtol=rtol, atol=atol, equal_nan=equal_nan,
                 check_device=True, check_dtype=False, msg=msg or None)


def make_tensor(*shape, dtype, device=None, low=None, high=None, requires_grad=False,
                noncontiguous=False, exclude_zero=False, memory_format=None):
    """A tensor of uniform random values in [low, high), PyTorch's defaults: [-9, 9] for
    floats, [-9, 10) for signed integers, [0, 10) for uint8, random booleans."""
    from .frontend.factories import tensor
    from .frontend.random import numpy_rng
    if len(shape) == 1 and isinstance(shape[0], (list, tuple)):
        shape = tuple(shape[0])
    dt = dtypes.as_dtype(dtype)
    rng = numpy_rng(None)
    if dt is dtypes.bool_:
        values = rng.integers(0, 2, size=shape).astype(bool)
    elif dt.is_floating_point or dt.is_complex:
        lo = -9.0 if low is None else low
        hi = 9.0 if high is None else high
        if lo > hi:
            raise ValueError(f"make_tensor: low must be less than or equal to high, got "
                             f"low={lo} and high={hi}")
        values = rng.uniform(lo, hi, size=shape)
        if dt.is_complex:
            values = values + 1j * rng.uniform(lo, hi, size=shape)
        if exclude_zero:
            values[values == 0] = np.finfo(np.float32).eps if hi > 0 else -1
    else:
        lo = (0 if dt is dtypes.uint8 else -9) if low is None else math.ceil(low)
        hi = 10 if high is None else math.ceil(high)
        values = rng.integers(lo, hi, size=shape)
        if exclude_zero:
            values[values == 0] = 1
    result = tensor(np.asarray(values).astype(dt.np_dtype), device=device)
    if noncontiguous and result.numel() > 1:
        doubled = result.repeat_interleave(2, dim=-1)
        result = doubled[..., ::2]
    if memory_format is not None:
        result = result.contiguous(memory_format=memory_format)
    return result.requires_grad_(True) if requires_grad else result
