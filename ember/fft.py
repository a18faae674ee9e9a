"""ember.fft: torch.fft's functions (names, signatures, dtypes, gradients).

Each function is a registry op declared in `ember/ir/ops/fft.py`, so it runs eagerly,
records on the autograd tape, and traces into graphs like any other op:

    >>> import ember, ember.fft
    >>> ember.fft.rfft(ember.randn(8), norm="ortho").shape
    ember.Size([5])
"""
from __future__ import annotations

from .ir.ops.fft import (FFTNormError, fft, fft2, fftfreq, fftn, fftshift, hfft,  # noqa: F401
                         hfft2, hfftn, ifft, ifft2, ifftn, ifftshift, ihfft, ihfft2, ihfftn,
                         irfft, irfft2, irfftn, rfft, rfft2, rfftfreq, rfftn)

__all__ = ["fft", "ifft", "fft2", "ifft2", "fftn", "ifftn", "rfft", "irfft", "rfft2", "irfft2",
           "rfftn", "irfftn", "hfft", "ihfft", "hfft2", "ihfft2", "hfftn", "ihfftn",
           "fftfreq", "rfftfreq", "fftshift", "ifftshift"]
