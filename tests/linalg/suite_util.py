"""Helpers of the linalg suite (tests/linalg/test_linalg_suite_*.py): run one call in ember
and in torch (the oracle) on the same NumPy inputs and compare values, dtypes, shapes,
named-tuple fields, gradients and raised errors.

A case is a function `fn(L, *args)` where `L` is the `ember` or the `torch` module, so the
same line (`lambda L, a: L.linalg.inv(a)`) is what a user's port would run.
"""
from __future__ import annotations

import numpy as np
import torch

import ember

# (rtol, atol) by the dtype of the compared output
_TOL = {"float32": (2e-4, 2e-4), "complex64": (2e-4, 2e-4),
        "float64": (1e-8, 1e-9), "complex128": (1e-8, 1e-9)}
DTYPES = {"float32": np.float32, "float64": np.float64,
          "complex64": np.complex64, "complex128": np.complex128}


def rand(rng, *shape, dtype=np.float64):
    """Standard normal entries (complex: both parts) of a NumPy dtype."""
    dtype = np.dtype(dtype)
    a = rng.standard_normal(shape)
    if dtype.kind == "c":
        a = a + 1j * rng.standard_normal(shape)
    return a.astype(dtype)


def well_conditioned(rng, *shape, dtype=np.float64):
    """Square matrices (or a batch) far from singular: random plus n on the diagonal."""
    a = rand(rng, *shape, dtype=dtype)
    n = shape[-1]
    return (a + n * np.eye(n, dtype=dtype)).astype(dtype)


def spd(rng, *shape, dtype=np.float64):
    """Hermitian positive-definite matrices."""
    a = rand(rng, *shape, dtype=dtype)
    n = shape[-1]
    return (a @ np.conj(np.swapaxes(a, -1, -2)) + n * np.eye(n)).astype(dtype)


def hermitian(rng, *shape, dtype=np.float64):
    a = rand(rng, *shape, dtype=dtype)
    return ((a + np.conj(np.swapaxes(a, -1, -2))) / 2).astype(dtype)


def triangular(rng, *shape, upper=True, dtype=np.float64):
    a = well_conditioned(rng, *shape, dtype=dtype)
    return (np.triu(a) if upper else np.tril(a)).astype(dtype)


def convert(v, lib, requires_grad=False):
    """NumPy arrays become `lib` tensors (lists and tuples recursively), the rest is kept."""
    if isinstance(v, np.ndarray):
        t = lib.tensor(v)
        if requires_grad and (t.dtype.is_floating_point or t.dtype.is_complex):
            t.requires_grad_(True)
        return t
    if isinstance(v, list):
        return [convert(x, lib, requires_grad) for x in v]
    if isinstance(v, tuple):
        return tuple(convert(x, lib, requires_grad) for x in v)
    return v


def _dtype_name(t) -> str:
    return str(t.dtype).rsplit(".", 1)[-1]


def _numpy(t) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        return t.detach().resolve_conj().numpy()
    return t.detach().numpy()


def compare(e, t, rtol=None, atol=None, what="output"):
    """ember's result `e` against torch's `t`: same structure, dtypes, shapes, values."""
    if isinstance(t, torch.Tensor):
        assert isinstance(e, ember.Tensor), f"{what}: {type(e).__name__} is not a Tensor"
        assert _dtype_name(e) == _dtype_name(t), f"{what}: dtype {e.dtype} != {t.dtype}"
        assert tuple(e.shape) == tuple(t.shape), f"{what}: shape {tuple(e.shape)} != " \
                                                 f"{tuple(t.shape)}"
        r, a = _TOL.get(_dtype_name(t), (0, 0))
        np.testing.assert_allclose(_numpy(e), _numpy(t), rtol=rtol if rtol is not None else r,
                                   atol=atol if atol is not None else a, equal_nan=True,
                                   err_msg=what)
        return
    if isinstance(t, (tuple, list)):
        assert isinstance(e, (tuple, list)), f"{what}: {type(e).__name__} is not a tuple"
        assert len(e) == len(t), f"{what}: {len(e)} results != {len(t)}"
        for name in getattr(e, "_fields", ()):     # named tuples: torch has the same fields
            compare(getattr(e, name), getattr(t, name), rtol, atol, f"{what}.{name}")
        for i, (x, y) in enumerate(zip(e, t)):
            compare(x, y, rtol, atol, f"{what}[{i}]")
        return
    assert e == t, f"{what}: {e!r} != {t!r}"


def check(fn, *args, rtol=None, atol=None, **kwargs):
    """fn(ember, ...) matches fn(torch, ...); returns ember's result."""
    expected = fn(torch, *convert(args, torch), **kwargs)
    actual = fn(ember, *convert(args, ember), **kwargs)
    compare(actual, expected, rtol, atol)
    return actual


def _loss(lib, out, weights):
    outs = [o for o in (out if isinstance(out, (tuple, list)) else [out])
            if getattr(o, "requires_grad", False)]
    total = 0
    for o, w in zip(outs, weights):
        index = tuple(slice(0, s) for s in o.shape) + (0,) * (w.ndim - o.dim())
        term = o * lib.tensor(w[index].astype(
            np.complex128 if o.dtype.is_complex else np.float64)).to(o.dtype)
        total = total + (term.real if o.dtype.is_complex else term).sum()
    return total


def check_grad(fn, *args, rtol=1e-6, atol=1e-8, seed=0):
    """Gradients of a weighted sum of fn's outputs, in ember and in torch, match (the
    weights are fixed random numbers, so every output element counts differently)."""
    wrng = np.random.default_rng(seed)
    weights = [wrng.standard_normal((8,) * 6) for _ in range(4)]
    grads = {}
    for lib in (torch, ember):
        inputs = convert(args, lib, requires_grad=True)
        leaves = [x for x in _flat(inputs) if getattr(x, "requires_grad", False)]
        loss = _loss(lib, fn(lib, *inputs), weights)
        grads[lib.__name__] = lib.autograd.grad(loss, leaves)
    for i, (e, t) in enumerate(zip(grads["ember"], grads["torch"])):
        compare(e, t, rtol, atol, what=f"grad of input {i}")


def _flat(v):
    if isinstance(v, (list, tuple)):
        return [x for item in v for x in _flat(item)]
    return [v]


def raised(fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - the test compares what was raised
        return err
    return None


def _same_kind(e_err, t_err) -> bool:
    if isinstance(t_err, torch.linalg.LinAlgError):
        return isinstance(e_err, ember.linalg.LinAlgError)
    for kind in (IndexError, TypeError, ValueError, NotImplementedError, RuntimeError):
        if isinstance(t_err, kind):
            return isinstance(e_err, kind)
    return isinstance(e_err, type(t_err))


def check_raises(fn, *args, words=(), **kwargs):
    """torch raises for fn; ember raises the same kind of error, and its message names
    each of `words` (the function, the offending shapes or sizes)."""
    t_err = raised(fn, torch, *convert(args, torch), **kwargs)
    assert t_err is not None, "the case is meant to make torch raise"
    e_err = raised(fn, ember, *convert(args, ember), **kwargs)
    assert e_err is not None, f"ember did not raise; torch raised {t_err!r}"
    assert _same_kind(e_err, t_err), f"ember raised {e_err!r}, torch {t_err!r}"
    for word in words:
        assert word in str(e_err), f"{word!r} not in ember's message {str(e_err)!r}"
    return e_err
