"""ember.fft rejects bad input with torch's words, the op's name and the user's line."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
import ember.fft as efft

REAL = np.zeros((3, 4), np.float32)
CPLX = np.zeros((3, 4), np.complex64)

# (function, input, kwargs, ember error class, the message torch gives)
BAD_CALLS = [
    ("fft", REAL, {"n": 0}, ember.ShapeError, "Invalid number of data points (0) specified"),
    ("ifft2", REAL, {"s": (2, -3)}, ember.ShapeError,
     "Invalid number of data points (-3) specified"),
    ("irfft", np.zeros((3, 1), np.complex64), {}, ember.ShapeError,
     "Invalid number of data points (0) specified"),
    ("fft", REAL, {"dim": 2}, ember.EmberIndexError,
     "Dimension out of range (expected to be in range of [-2, 1], but got 2)"),
    ("fft", np.float32(1.0), {}, ember.EmberIndexError,
     "Dimension specified as -1 but tensor has no dimensions"),
    ("fft", REAL, {"norm": "foo"}, ValueError, 'Invalid normalization mode: "foo"'),
    ("rfft", CPLX, {}, ember.DTypeError,
     "rfft expects a real input tensor, but got ComplexFloat"),
    ("rfftn", CPLX, {}, ember.DTypeError,
     "rfftn expects a real-valued input tensor, but got ComplexFloat"),
    ("fft", REAL.astype(np.float16), {}, ember.DTypeError, "Unsupported dtype Half"),
    ("fftn", REAL, {"s": (2,), "dim": (0, 1)}, ember.ShapeError,
     "When given, dim and shape arguments must have the same length"),
    ("fftn", REAL, {"dim": (0, -2)}, ember.ShapeError, "FFT dims must be unique"),
    ("fftn", REAL, {"s": (2, 2, 2)}, ember.ShapeError,
     "Got shape with 3 values but input tensor only has 2 dimensions."),
    ("rfftn", REAL, {"dim": ()}, ember.ShapeError, "rfftn must transform at least one axis"),
    ("ihfft2", CPLX, {}, ember.DTypeError,
     "ihfft2 expects a real-valued input tensor, but got ComplexFloat"),
    ("fftshift", REAL, {"dim": 3}, ember.EmberIndexError, "Dimension out of range"),
]


@pytest.mark.parametrize("name,x,kwargs,cls,message", BAD_CALLS,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(BAD_CALLS)])
def test_bad_arguments_raise_torchs_message(name, x, kwargs, cls, message):
    # torch words ihfft2's complex-input error as "Only supports floating-point dtypes";
    # ember says what the other real-input transforms say
    torch_message = None if name == "ihfft2" else _pattern(message)
    with pytest.raises((RuntimeError, IndexError), match=torch_message):
        getattr(torch.fft, name)(torch.from_numpy(np.asarray(x)), **kwargs)
    with pytest.raises(cls, match=_pattern(message)) as info:
        getattr(efft, name)(ember.tensor(x), **kwargs)
    text = str(info.value)
    assert f"fft_{name}" in text, text                     # names the op
    assert "test_fft_errors.py" in text, text              # and the user's line


def _pattern(message: str) -> str:
    import re
    return re.escape(message)


def test_fftfreq_rejects_integer_dtypes():
    with pytest.raises(RuntimeError, match="fftfreq requires a floating point"):
        torch.fft.fftfreq(4, dtype=torch.int64)
    with pytest.raises(ember.DTypeError, match="fftfreq requires a floating point dtype"):
        efft.fftfreq(4, dtype=ember.int64)


def test_norm_error_is_a_value_error_and_an_ember_error():
    with pytest.raises(ember.EmberError):
        efft.rfft(ember.randn(4), norm="backwards")
    with pytest.raises(ValueError):
        efft.rfft(ember.randn(4), norm="ORTHO")
