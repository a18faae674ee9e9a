"""Run one piece of PyTorch user code under torch and under ember; compare what it returns.

A case is a function `case_x(torch, nn, F, h)`: written as PyTorch code, it is called once
with torch (the oracle) and once with ember naming `torch`/`nn`/`F`. What it returns
(tensors, Parameters, lists, dicts, strings, numbers, errors caught by `h.raises`) is made
comparable (`normalize`) and both results must be equal: tensors by dtype, shape, values
(float tolerance), requires_grad and Parameter-ness; errors by exception type and by which of
the case's key words their message holds (torch's must hold every key word, so the check
cannot pass vacuously). Random draws go through `h.randn` / `h.det`, numpy-seeded, so both
libraries see the same numbers.
"""
from __future__ import annotations

import inspect
from collections import OrderedDict

import numpy as np
import pytest
import torch as _torch

import ember as _ember
import ember.nn as _enn
import ember.nn.functional as _eF


class CaughtError:
    """An exception a case expected: its type name and which key words its message holds."""

    def __init__(self, err: BaseException | None, keywords: tuple[str, ...]):
        self.type = None if err is None else type(err).__name__
        self.bases = () if err is None else tuple(
            b.__name__ for b in type(err).__mro__ if b.__module__ == "builtins")
        self.message = "" if err is None else str(err)
        self.keywords = keywords
        self.found = tuple(k.lower() in self.message.lower() for k in keywords)

    def __repr__(self) -> str:
        return f"CaughtError({self.type}: {self.message[:300]!r})"


class Helpers:
    """What a case gets as `h`: deterministic data and error capture."""

    def __init__(self, lib):
        self.lib = lib
        self.is_torch = lib is _torch

    def raises(self, fn, *keywords):
        try:
            fn()
        except Exception as err:  # noqa: BLE001 - the point is to record any error
            return CaughtError(err, keywords)
        return CaughtError(None, keywords)

    def arr(self, *shape, seed=0, dtype="float32"):
        return np.random.default_rng(seed).standard_normal(shape).astype(dtype)

    def randn(self, *shape, seed=0, dtype="float32", requires_grad=False):
        t = self.lib.tensor(self.arr(*shape, seed=seed, dtype=dtype))
        return t.requires_grad_(True) if requires_grad else t

    def det(self, module, seed=0):
        """Every parameter and buffer of floating dtype set from a numpy seed."""
        rng = np.random.default_rng(seed)
        with self.lib.no_grad():
            for _, t in list(module.named_parameters()) + list(module.named_buffers()):
                if t.dtype.is_floating_point:
                    vals = rng.standard_normal(tuple(t.shape)).astype("float64")
                    t.copy_(self.lib.tensor(vals, dtype=t.dtype))
        return module

    def np(self, t):
        return t.detach().cpu().numpy()


def _is_tensor(v) -> bool:
    return isinstance(v, (_torch.Tensor, _ember.Tensor))


def _dtype_name(d) -> str:
    return str(d).split(".")[-1]


def normalize(v):
    """A library-neutral form of what a case returned."""
    if isinstance(v, CaughtError):
        return v
    if _is_tensor(v):
        kind = type(v).__name__ if type(v).__name__ in ("Parameter", "Buffer") else "Tensor"
        if v.layout is not None and "sparse" in str(v.layout):
            v = v.to_dense()
        return ("tensor", kind, _dtype_name(v.dtype), tuple(v.shape), bool(v.requires_grad),
                v.detach().cpu().numpy())
    if isinstance(v, (_torch.dtype, _ember.dtype)):
        return ("dtype", _dtype_name(v))
    if isinstance(v, (_torch.Size, _ember.Size)):
        return ("size", tuple(v))
    if isinstance(v, (_torch.nn.Module, _enn.Module)):
        return ("module", type(v).__name__)
    if isinstance(v, (dict, OrderedDict)):
        return ("dict", [(normalize(k), normalize(x)) for k, x in v.items()])
    if isinstance(v, tuple) and hasattr(v, "_fields"):
        return ("namedtuple", tuple(v._fields), [normalize(x) for x in v])
    if isinstance(v, (list, tuple)):
        return (type(v).__name__, [normalize(x) for x in v])
    if isinstance(v, (set, frozenset)):
        return ("set", sorted(repr(normalize(x)) for x in v))
    if isinstance(v, np.ndarray):
        return ("ndarray", v.dtype.name, v.shape, v)
    if isinstance(v, str):
        # reprs and messages name the library ("torch.float32" / "ember.float32")
        return v.replace("torch.", "ember.")
    return v


def assert_same(t, e, rtol, atol, path="result"):
    if isinstance(t, CaughtError):
        assert isinstance(e, CaughtError), f"{path}: torch raised {t}, ember gave {e!r}"
        assert t.type is not None, f"{path}: torch raised nothing (the case expects an error)"
        assert all(t.found), f"{path}: torch's message lacks a key word {t.keywords}: {t}"
        assert e.type is not None, f"{path}: torch raised {t}, ember raised nothing"
        assert t.bases[0] in e.bases, f"{path}: torch raised {t}, ember raised {e}"
        assert e.found == t.found, f"{path}: key words {t.keywords}: torch {t}, ember {e}"
        return
    if isinstance(t, tuple) and t and t[0] == "tensor":
        assert isinstance(e, tuple) and e and e[0] == "tensor", f"{path}: torch {t}, ember {e}"
        assert t[1:5] == e[1:5], f"{path}: (kind, dtype, shape, requires_grad) torch {t[1:5]}, ember {e[1:5]}"
        np.testing.assert_allclose(e[5], t[5], rtol=rtol, atol=atol, err_msg=path, equal_nan=True)
        return
    if isinstance(t, tuple) and t and t[0] == "ndarray":
        assert isinstance(e, tuple) and e[:3] == t[:3], f"{path}: torch {t[:3]}, ember {e!r}"
        np.testing.assert_allclose(e[3], t[3], rtol=rtol, atol=atol, err_msg=path)
        return
    if isinstance(t, (list, tuple)):
        assert isinstance(e, type(t)) and len(e) == len(t), f"{path}: torch {t!r}, ember {e!r}"
        for i, (a, b) in enumerate(zip(t, e)):
            assert_same(a, b, rtol, atol, f"{path}[{i}]")
        return
    if isinstance(t, float) and isinstance(e, (float, int)):
        assert np.isclose(e, t, rtol=rtol, atol=atol, equal_nan=True), f"{path}: torch {t}, ember {e}"
        return
    assert type(t) is type(e) and t == e, f"{path}: torch {t!r}, ember {e!r}"


def run_both(case, rtol=1e-5, atol=1e-6):
    t = case(_torch, _torch.nn, _torch.nn.functional, Helpers(_torch))
    e = case(_ember, _enn, _eF, Helpers(_ember))
    assert_same(normalize(t), normalize(e), rtol, atol)


def cases_of(namespace: dict):
    """pytest parameters: every `case_*` function of a test module, by name."""
    found = [(n, f) for n, f in namespace.items() if n.startswith("case_") and inspect.isfunction(f)]
    return [pytest.param(f, id=n[len("case_"):], marks=getattr(f, "marks", ())) for n, f in found]


def xfail(reason):
    """A case ember gets wrong (strict: it fails the run once it passes)."""
    def mark(f):
        f.marks = (pytest.mark.xfail(reason=reason, strict=True),)
        return f
    return mark
