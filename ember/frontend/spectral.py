"""torch.stft and torch.istft, composed of ember ops (pad, unfold, fft, index_add).

stft: optionally pad the signal by n_fft // 2 on each side (`center`), cut it into
frames of n_fft samples every hop_length samples (unfold), multiply each frame by the
window (zero-padded to n_fft in the middle), and take the (one-sided) FFT of each frame:
the result is (batch?, n_freq, n_frames). istft inverts it: inverse FFT of each frame,
window, overlap-add (index_add), divide by the overlap-added squared window, and trim
the centering pad. Being composites, both differentiate, trace and compile like any op.
"""
from __future__ import annotations

import numpy as np

from ..ir.registry import OPS
from .factories import ones, zeros
from .tensor import Tensor


def _fft(name):
    import ember.fft  # noqa: PLC0415 - the package imports this module while loading
    return getattr(ember.fft, name)


def _check_sizes(op, length, n_fft, hop_length, win_length, ndim):
    if ndim not in (1, 2):
        raise RuntimeError(f"{op}: expected a 1D or 2D tensor, but got {ndim}D")
    if n_fft <= 0 or (length is not None and n_fft > length):
        raise RuntimeError(f"{op}: expected 0 < n_fft <= {length}, but got n_fft={n_fft}")
    if hop_length <= 0:
        raise RuntimeError(f"{op}: expected hop_length > 0, but got hop_length={hop_length}")
    if win_length <= 0 or win_length > n_fft:
        raise RuntimeError(f"{op}: expected 0 < win_length <= n_fft, but got "
                           f"win_length={win_length}")


def _full_window(op, window, n_fft, win_length, like):
    """The window as n_fft samples: ones when None, centred with zeros when shorter."""
    if window is None:
        window = ones(win_length, dtype=like.dtype if like.dtype.is_floating_point
                             else _real_dtype(like.dtype))
    elif window.ndim != 1 or window.shape[0] != win_length:
        raise RuntimeError(f"{op}: expected a 1D window tensor of size equal to win_length="
                           f"{win_length}, but got window with size {list(window.shape)}")
    left = (n_fft - win_length) // 2
    if left or n_fft - win_length - left:
        window = _pad(window, (left, n_fft - win_length - left))
    return window


def _pad(x, sizes):
    """Zero padding of the last dim."""
    from .nn.functional import pad  # noqa: PLC0415 - nn imports the frontend first
    return pad(x, sizes)


def _real_dtype(dtype):
    import ember  # noqa: PLC0415
    return {"complex64": ember.float32, "complex128": ember.float64}[dtype.name]


def _center_pad(input, n_fft, pad_mode):
    """Pad the last dim by n_fft // 2 on both sides with F.pad's `pad_mode`."""
    from .nn.functional import pad  # noqa: PLC0415
    shape = tuple(input.shape)
    extended = input.reshape((1,) * (3 - input.ndim) + shape)
    half = n_fft // 2
    return pad(extended, (half, half), mode=pad_mode).reshape(
        shape[:-1] + (shape[-1] + 2 * half,))


def stft(input, n_fft: int, hop_length: int | None = None, win_length: int | None = None,
         window=None, center: bool = True, pad_mode: str = "reflect",
         normalized: bool = False, onesided: bool | None = None,
         return_complex: bool | None = None, align_to_window: bool | None = None):
    """Short-time Fourier transform, as torch.stft: (B?, n_fft // 2 + 1 or n_fft, frames)."""
    complex_in = input.dtype.is_complex or (window is not None and window.dtype.is_complex)
    if return_complex is None:
        if not complex_in:
            raise RuntimeError("stft requires the return_complex parameter be given for real "
                               "inputs, and will further require that return_complex=True "
                               "in a future PyTorch release.")
        return_complex = True
    if align_to_window is not None and center:
        raise RuntimeError("stft: align_to_window should only be set when center = false")
    hop_length = n_fft // 4 if hop_length is None else hop_length
    win_length = n_fft if win_length is None else win_length
    if center:
        _check_sizes("stft", None, n_fft, hop_length, win_length, input.ndim)
        input = _center_pad(input, n_fft, pad_mode)
    _check_sizes("stft", input.shape[-1], n_fft, hop_length, win_length, input.ndim)
    onesided = not complex_in if onesided is None else onesided
    if onesided and complex_in:
        raise RuntimeError("Cannot have onesided output if window or input is complex")
    window = _full_window("stft", window, n_fft, win_length, input)
    if align_to_window:
        # frame t's window (not its zero pad) starts at sample t * hop_length: shift the
        # signal right by the pad, 1 + (L - win_length) // hop_length frames in all
        left = (n_fft - win_length) // 2
        input = _pad(input, (left, n_fft - win_length - left))
    frames = input.unfold(-1, n_fft, hop_length) * window     # (B?, frames, n_fft)
    spectrum = _fft("rfft" if onesided else "fft")(frames, n=n_fft, dim=-1,
                                                  norm="ortho" if normalized else None)
    spectrum = spectrum.transpose(-1, -2)                      # (B?, freq, frames)
    if return_complex:
        return spectrum
    return OPS["stack"]([OPS["real"](spectrum), OPS["imag"](spectrum)], -1)


def istft(input, n_fft: int, hop_length: int | None = None, win_length: int | None = None,
          window=None, center: bool = True, normalized: bool = False,
          onesided: bool | None = None, length: int | None = None,
          return_complex: bool = False):
    """Inverse of stft by windowed overlap-add, as torch.istft."""
    if not input.dtype.is_complex:
        raise RuntimeError("istft requires a complex-valued input tensor matching the output "
                           "from stft with return_complex=True.")
    hop_length = n_fft // 4 if hop_length is None else hop_length
    win_length = n_fft if win_length is None else win_length
    if input.ndim not in (2, 3):
        raise RuntimeError(f"istft: expected a tensor with 2 or 3 dimensions of complex "
                           f"values, but got {input.ndim}")
    _check_sizes("istft", None, n_fft, hop_length, win_length, 1)
    batched = input.ndim == 3
    spectrum = input if batched else input.unsqueeze(0)
    n_freq, n_frames = spectrum.shape[-2], spectrum.shape[-1]
    onesided = n_freq != n_fft if onesided is None else onesided
    _check_freq_size(n_freq, n_fft, onesided)
    if return_complex and onesided:
        raise RuntimeError("Cannot have onesided output if window or input is complex")
    if not return_complex and window is not None and window.dtype.is_complex:
        raise RuntimeError("Complex windows are incompatible with return_complex=False")
    window = _full_window("istft", window, n_fft, win_length, _real_part_of(input))
    frames = _inverse_frames(spectrum.transpose(-1, -2), n_fft, onesided, return_complex,
                             normalized) * window             # (B, frames, n_fft)
    signal, envelope = _overlap_add(frames, window, hop_length, n_frames)
    start = n_fft // 2 if center else 0
    full = n_fft + hop_length * (n_frames - 1)
    end = start + length if length is not None else (full - n_fft // 2 if center else full)
    signal, envelope = signal[:, start:min(end, full)], envelope[start:min(end, full)]
    # NOLA check needs the window's values: skipped for a window that is a graph input
    # while tracing (its values do not exist yet)
    if isinstance(envelope, Tensor) and envelope.shape[0] and \
            OPS["abs"](envelope).min().item() < 1e-11:
        raise RuntimeError("istft: window overlap add min is below 1e-11: the window "
                           "and hop_length do not satisfy the NOLA condition")
    signal = signal / envelope
    if end > full:                   # `length` longer than the frames cover: zeros after
        signal = _pad(signal, (0, end - full))
    return signal if batched else signal.squeeze(0)


def _real_part_of(input):
    return OPS["real"](input) if input.dtype.is_complex else input


def _check_freq_size(n_freq, n_fft, onesided):
    want = n_fft // 2 + 1 if onesided else n_fft
    if n_freq != want:
        raise RuntimeError(f"istft: expected the frequency dimension (3rd to the last) of the "
                           f"input tensor to match {'n_fft / 2 + 1' if onesided else 'n_fft'}"
                           f" when onesided={onesided}, but got {n_freq}")


def _inverse_frames(spectra, n_fft, onesided, return_complex, normalized):
    """Each frame's inverse FFT; a real result reads only the non-negative frequencies
    (the spectrum is taken as Hermitian), as PyTorch's istft does."""
    norm = "ortho" if normalized else None
    if return_complex:
        return _fft("ifft")(spectra, n=n_fft, dim=-1, norm=norm)
    if not onesided:
        spectra = spectra[..., : n_fft // 2 + 1]
    return _fft("irfft")(spectra, n=n_fft, dim=-1, norm=norm)


def _overlap_add(frames, window, hop_length, n_frames):
    """Sum frame t into samples t * hop .. t * hop + n_fft; the same for window ** 2."""
    n_fft = frames.shape[-1]
    full = n_fft + hop_length * (n_frames - 1)
    positions = (np.arange(n_frames)[:, None] * hop_length + np.arange(n_fft)).reshape(-1)
    index = Tensor._from_array(positions.astype(np.int64))
    batch = frames.shape[0]
    signal = zeros(batch, full, dtype=frames.dtype).index_add(1, index, frames.reshape(batch, n_frames * n_fft))
    squares = (window * window).expand(n_frames, n_fft).reshape(n_frames * n_fft)
    envelope = zeros(full, dtype=squares.dtype).index_add(0, index, squares)
    return signal, envelope
