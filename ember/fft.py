"""ember.fft: torch.fft's functions (names, signatures, dtypes, gradients).

Each function is a registry op declared in `ember/ir/ops/fft.py`, so it runs eagerly,
records on the autograd tape, and traces into graphs like any other op:

    >>> import ember, ember.fft
    >>> ember.fft.rfft(ember.randn(8), norm="ortho").shape
    ember.Size([5])
"""
from __future__ import annotations

from .ir.meta import strided as _strided
from .ir.ops import fft as _ops
from .ir.ops.fft import (FFTNormError, fft, fft2, fftn, fftshift, hfft,  # noqa: F401
                         hfft2, hfftn, ifft, ifft2, ifftn, ifftshift, ihfft, ihfft2, ihfftn,
                         irfft, irfft2, irfftn, rfft, rfft2, rfftn)

__all__ = ["fft", "ifft", "fft2", "ifft2", "fftn", "ifftn", "rfft", "irfft", "rfft2", "irfft2",
           "rfftn", "irfftn", "hfft", "ihfft", "hfft2", "ihfft2", "hfftn", "ihfftn",
           "fftfreq", "rfftfreq", "fftshift", "ifftshift"]


def _factory(op, n, d, out, dtype, layout, device, requires_grad):
    """The sample-frequency op plus torch's factory keywords (layout, requires_grad, out),
    which the op itself does not carry."""
    if layout is not None and layout is not _strided:
        raise ValueError(f"torch.fft.{op.python_name}: only the strided layout is supported, "
                         f"got {layout}")
    result = op(n, d, dtype=dtype, device=device)
    if requires_grad:
        result.requires_grad_(True)
    if out is not None:
        return out.resize_(result.shape).copy_(result)
    return result


def fftfreq(n, d=1.0, *, out=None, dtype=None, layout=None, device=None, requires_grad=False):
    """torch.fft.fftfreq: [0, 1, ..., -(n // 2), ..., -1] / (d * n)."""
    return _factory(_ops.fftfreq, n, d, out, dtype, layout, device, requires_grad)


def rfftfreq(n, d=1.0, *, out=None, dtype=None, layout=None, device=None,
             requires_grad=False):
    """torch.fft.rfftfreq: [0, 1, ..., n // 2] / (d * n)."""
    return _factory(_ops.rfftfreq, n, d, out, dtype, layout, device, requires_grad)
