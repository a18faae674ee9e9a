"""torch.signal.windows: window functions of length M, symmetric (sym=True, for filter
design) or periodic (sym=False: M + 1 points with the last dropped, for spectral analysis),
and the legacy top-level factories (ember.hann_window, ...). Computed in float64 with
NumPy, returned in the requested dtype (default: the default float dtype).
"""
from __future__ import annotations

import math

import numpy as np

from ..frontend.factories import tensor as _tensor
from ..ir import dtypes as _dtypes
from ..ir.meta import strided as _strided

__all__ = ["bartlett", "blackman", "cosine", "exponential", "gaussian", "general_cosine",
           "general_hamming", "hamming", "hann", "kaiser", "nuttall"]


def _check(name: str, M: int, dtype, layout=None) -> None:
    if layout is not None and layout is not _strided:
        raise ValueError(f"{name} is implemented for strided tensors only, got: {layout!r}")
    if M < 0:
        raise ValueError(f"{name} requires non-negative window length, got M={M}")
    if dtype is not None and _dtypes.as_dtype(dtype) not in (_dtypes.float32, _dtypes.float64):
        raise ValueError(f"{name} expects float32 or float64 dtypes, got: {dtype}")


def _finish(values: np.ndarray, dtype, device, requires_grad):
    dtype = _dtypes.as_dtype(dtype) if dtype is not None else _dtypes.get_default_dtype()
    return _tensor(values.astype(dtype.np_dtype), device=device, requires_grad=requires_grad)


def _window(name, M, sym, dtype, layout, device, requires_grad, body):
    """`body(n, N)`: values at positions n of a symmetric window of N points."""
    _check(name, M, dtype, layout)
    if M == 0:
        return _finish(np.zeros(0), dtype, device, requires_grad)
    if M == 1:
        return _finish(np.ones(1), dtype, device, requires_grad)
    N = M if sym else M + 1
    return _finish(body(np.arange(M, dtype=np.float64), N), dtype, device, requires_grad)


def general_cosine(M, *, a, sym=True, dtype=None, layout=None, device=None,
                   requires_grad=False):
    """sum_k (-1)^k a_k cos(2 pi k n / (N - 1))."""
    if not isinstance(a, (list, tuple)):
        raise TypeError(f"Coefficients must be a list/tuple, got {type(a)}")
    if not a:
        raise ValueError("Coefficients cannot be empty")

    def body(n, N):
        return sum((-1) ** k * c * np.cos(2 * math.pi * k * n / (N - 1)) for k, c in enumerate(a))
    return _window("general_cosine", M, sym, dtype, layout, device, requires_grad, body)


def general_hamming(M, *, alpha=0.54, sym=True, dtype=None, layout=None, device=None,
                    requires_grad=False):
    return general_cosine(M, a=[alpha, 1.0 - alpha], sym=sym, dtype=dtype, layout=layout, device=device,
                          requires_grad=requires_grad)


def hamming(M, *, sym=True, dtype=None, layout=None, device=None, requires_grad=False):
    return general_hamming(M, sym=sym, dtype=dtype, layout=layout, device=device, requires_grad=requires_grad)


def hann(M, *, sym=True, dtype=None, layout=None, device=None, requires_grad=False):
    return general_hamming(M, alpha=0.5, sym=sym, dtype=dtype, layout=layout, device=device,
                           requires_grad=requires_grad)


def blackman(M, *, sym=True, dtype=None, layout=None, device=None, requires_grad=False):
    return general_cosine(M, a=[0.42, 0.5, 0.08], sym=sym, dtype=dtype, layout=layout, device=device,
                          requires_grad=requires_grad)


def nuttall(M, *, sym=True, dtype=None, layout=None, device=None, requires_grad=False):
    return general_cosine(M, a=[0.3635819, 0.4891775, 0.1365995, 0.0106411], sym=sym,
                          dtype=dtype, layout=layout, device=device, requires_grad=requires_grad)


def bartlett(M, *, sym=True, dtype=None, layout=None, device=None, requires_grad=False):
    return _window("bartlett", M, sym, dtype, layout, device, requires_grad,
                   lambda n, N: 1 - np.abs(2 * n / (N - 1) - 1))


def cosine(M, *, sym=True, dtype=None, layout=None, device=None, requires_grad=False):
    return _window("cosine", M, sym, dtype, layout, device, requires_grad,
                   lambda n, N: np.sin(math.pi * (n + 0.5) / N))


def gaussian(M, *, std=1.0, sym=True, dtype=None, layout=None, device=None,
             requires_grad=False):
    if std <= 0:
        raise ValueError(f"Standard deviation must be positive, got: {std} instead.")
    return _window("gaussian", M, sym, dtype, layout, device, requires_grad,
                   lambda n, N: np.exp(-((n - (N - 1) / 2) ** 2) / (2 * std * std)))


def exponential(M, *, center=None, tau=1.0, sym=True, dtype=None, layout=None, device=None,
                requires_grad=False):
    if tau <= 0:
        raise ValueError(f"Tau must be positive, got: {tau} instead.")
    if sym and center is not None:
        raise ValueError("Center must be None for symmetric windows")

    def body(n, N):
        c = (N - 1) / 2 if center is None else center
        return np.exp(-np.abs(n - c) / tau)
    return _window("exponential", M, sym, dtype, layout, device, requires_grad, body)


def kaiser(M, *, beta=12.0, sym=True, dtype=None, layout=None, device=None,
           requires_grad=False):
    if beta < 0:
        raise ValueError(f"beta must be non-negative, got: {beta} instead.")

    def body(n, N):
        half = (N - 1) / 2
        return np.i0(beta * np.sqrt(np.clip(1 - ((n - half) / half) ** 2, 0, None))) / np.i0(beta)
    return _window("kaiser", M, sym, dtype, layout, device, requires_grad, body)


# --- torch's top-level factories: periodic=True is sym=False --------------------------
def _legacy(fn, window_length, periodic, dtype, device, requires_grad, **kw):
    return fn(window_length, sym=not periodic, dtype=dtype, device=device,
              requires_grad=requires_grad, **kw)


def hann_window(window_length, periodic=True, *, dtype=None, layout=None, device=None,
                requires_grad=False):
    return _legacy(hann, window_length, periodic, dtype, device, requires_grad)


def hamming_window(window_length, periodic=True, alpha=0.54, beta=0.46, *, dtype=None,
                   layout=None, device=None, requires_grad=False):
    return general_cosine(window_length, a=[alpha, beta], sym=not periodic, dtype=dtype,
                          device=device, requires_grad=requires_grad)


def blackman_window(window_length, periodic=True, *, dtype=None, layout=None, device=None,
                    requires_grad=False):
    return _legacy(blackman, window_length, periodic, dtype, device, requires_grad)


def bartlett_window(window_length, periodic=True, *, dtype=None, layout=None, device=None,
                    requires_grad=False):
    return _legacy(bartlett, window_length, periodic, dtype, device, requires_grad)


def kaiser_window(window_length, periodic=True, beta=12.0, *, dtype=None, layout=None,
                  device=None, requires_grad=False):
    return _legacy(kaiser, window_length, periodic, dtype, device, requires_grad, beta=beta)


FACTORIES = {"hann_window": hann_window, "hamming_window": hamming_window,
             "blackman_window": blackman_window, "bartlett_window": bartlett_window,
             "kaiser_window": kaiser_window}
