"""Helpers shared by tests/func/test_func_suite_*.py: one case written once, run with
(ember, ember.func) and with (torch, torch.func), results compared leaf by leaf."""
from __future__ import annotations

import zlib

import numpy as np
import torch

import ember
import ember.func


def make_inputs(specs, seed: int):
    """NumPy arrays from specs: a shape tuple (float64 normal), an np.ndarray (as is),
    a callable rng -> value, or a list/tuple/dict of specs (kept as that container)."""
    rng = np.random.default_rng(seed)

    def build(spec):
        if callable(spec):
            return spec(rng)
        if isinstance(spec, np.ndarray):
            return spec
        if isinstance(spec, dict):
            return {k: build(v) for k, v in spec.items()}
        if isinstance(spec, list):
            return [build(v) for v in spec]
        if isinstance(spec, tuple) and all(isinstance(s, int) for s in spec):
            return rng.standard_normal(spec)
        return tuple(build(v) for v in spec)
    return [build(s) for s in specs]


def to_lib(value, lib):
    """NumPy arrays inside `value` as `lib` tensors (containers kept)."""
    if isinstance(value, np.ndarray):
        return lib.tensor(value)
    if isinstance(value, dict):
        return {k: to_lib(v, lib) for k, v in value.items()}
    if isinstance(value, list):
        return [to_lib(v, lib) for v in value]
    if isinstance(value, tuple):
        return tuple(to_lib(v, lib) for v in value)
    return value


def seed_of(name: str) -> int:
    return zlib.crc32(name.encode())


def close(got, want, tol=1e-7, where="result"):
    """Same pytree structure (tuple/list/dict), same shapes and dtypes, close values."""
    if isinstance(want, dict):
        assert isinstance(got, dict), f"{where}: expected a dict, got {type(got).__name__}"
        assert list(got) == list(want), f"{where}: keys {list(got)} vs {list(want)}"
        for k in want:
            close(got[k], want[k], tol, f"{where}[{k!r}]")
        return
    if isinstance(want, (tuple, list)):
        assert isinstance(got, type(want)) or (isinstance(got, tuple) and
                                               isinstance(want, tuple)), \
            f"{where}: expected {type(want).__name__}, got {type(got).__name__}"
        assert len(got) == len(want), f"{where}: {len(got)} items vs {len(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            close(g, w, tol, f"{where}[{i}]")
        return
    if not isinstance(want, torch.Tensor):
        assert got == want, f"{where}: {got!r} vs {want!r}"
        return
    assert isinstance(got, ember.Tensor), f"{where}: expected a Tensor, got {type(got)}"
    assert tuple(got.shape) == tuple(want.shape), f"{where}: shape {tuple(got.shape)} vs " \
        f"{tuple(want.shape)}"
    assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1], \
        f"{where}: dtype {got.dtype} vs {want.dtype}"
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=tol,
                               atol=tol, err_msg=where)


def run_case(fn, specs, name, tol=1e-7):
    """fn(lib, func, *inputs) with ember and with torch; results must match."""
    arrays = make_inputs(specs, seed_of(name))
    want = fn(torch, torch.func, *to_lib(arrays, torch))
    got = fn(ember, ember.func, *to_lib(arrays, ember))
    close(got, want, tol)
    return got
