"""Helpers to run the same call in ember and in torch (the oracle) and compare."""
from __future__ import annotations

import numpy as np
import torch

import ember

TORCH_DTYPES = {ember.float32: torch.float32, ember.float64: torch.float64,
                ember.float16: torch.float16, ember.bfloat16: torch.bfloat16,
                ember.int64: torch.int64, ember.int32: torch.int32, ember.int16: torch.int16,
                ember.int8: torch.int8, ember.uint8: torch.uint8, ember.bool: torch.bool,
                ember.complex64: torch.complex64, ember.complex128: torch.complex128}
# quantized dtypes: kept apart, since most tests iterate TORCH_DTYPES as "every dtype"
QUANTIZED_TORCH_DTYPES = {ember.quint8: torch.quint8, ember.qint8: torch.qint8,
                          ember.qint32: torch.qint32}


def to_torch_value(v, requires_grad=False):
    """numpy arrays -> torch tensors; dtypes/formats by name; everything else unchanged."""
    if isinstance(v, np.ndarray):
        t = torch.from_numpy(np.array(v))
        if requires_grad and t.is_floating_point() or requires_grad and t.is_complex():
            t.requires_grad_(True)
        return t
    if isinstance(v, ember.dtype):
        return TORCH_DTYPES[v]
    if isinstance(v, ember.memory_format):
        return getattr(torch, v.value)
    if isinstance(v, (list, tuple)):
        return type(v)(to_torch_value(x, requires_grad) for x in v)
    return v


def to_ember_value(v, requires_grad=False):
    if isinstance(v, np.ndarray):
        t = ember.tensor(v)
        if requires_grad and (t.dtype.is_floating_point or t.dtype.is_complex):
            t.requires_grad_(True)
        return t
    if isinstance(v, (list, tuple)):
        return type(v)(to_ember_value(x, requires_grad) for x in v)
    return v


def torch_fn(op):
    """The torch callable an op is checked against (`op.torch_ref`: a dotted name or
    `lambda torch: callable`)."""
    ref = op.torch_ref
    if callable(ref):
        return ref(torch)
    obj = torch
    for part in ref.split(".")[1:]:
        obj = getattr(obj, part)
    return obj


def kwargs_to_torch(kwargs):
    out = {}
    for k, v in kwargs.items():
        if k == "dtype" and isinstance(v, str):
            v = getattr(torch, v)
        elif k == "memory_format" and isinstance(v, str):
            v = getattr(torch, v)
        out[k] = to_torch_value(v)
    return out


def as_numpy(t):
    if getattr(t, "is_quantized", False):     # quantized tensors compare by integers
        t = t.int_repr()
    if isinstance(t, torch.Tensor):
        t = t.detach()
        if t.dtype == torch.bfloat16:
            t = t.float()
        # force=True: torch may return a ZeroTensor (SgnBackward of a real input)
        return t.resolve_conj().numpy(force=True)
    if isinstance(t, ember.Tensor):
        arr = t.detach().numpy()
        return arr.astype(np.float32) if str(arr.dtype) == "bfloat16" else arr
    return np.asarray(t)


def assert_close(actual, expected, rtol=1e-5, atol=1e-6, what=""):
    a, e = as_numpy(actual), as_numpy(expected)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != expected {e.shape}"
    np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, equal_nan=True, err_msg=what)


def flat_tensors(v):
    if isinstance(v, (list, tuple)):
        return [x for item in v for x in flat_tensors(item)]
    return [v]

