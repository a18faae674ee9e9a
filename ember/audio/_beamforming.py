"""torchaudio.functional's multi-channel beamforming: power spectral density matrices,
MVDR weights (Souden's form and the relative-transfer-function form), RTF estimates
(eigenvector and power iteration), and applying the weights. Complex ember ops
throughout (einsum, linalg.solve, linalg.eigh), so all of it is differentiable.
Shapes: spectrograms (..., channel, freq, time); PSD matrices (..., freq, channel, channel).
"""
from __future__ import annotations

import ember

__all__ = ["psd", "mvdr_weights_souden", "mvdr_weights_rtf", "rtf_evd", "rtf_power",
           "apply_beamforming"]


def psd(specgram, mask=None, normalize: bool = True, eps: float = 1e-10):
    """Per-frequency spatial covariance sum_t m[f, t] x[:, f, t] x[:, f, t]^H, the mask
    (..., freq, time) normalized over time unless normalize is False."""
    spec = specgram.transpose(-3, -2)                               # (..., freq, ch, time)
    outer = ember.einsum("...ct,...et->...tce", spec, spec.conj())
    if mask is not None:
        if tuple(mask.shape[:-1]) != tuple(spec.shape[:-2]) or \
                mask.shape[-1] != spec.shape[-1]:
            raise ValueError(f"The dimensions of mask except the channel dimension should be "
                             f"the same as specgram.Found {list(mask.shape)} for mask and "
                             f"{list(spec.shape)} for specgram.")
        if normalize:
            mask = mask / (mask.sum(-1, keepdim=True) + eps)
        outer = outer * mask[..., None, None]
    return outer.sum(-3)


def _trace(mat):
    return ember.diagonal(mat, 0, -2, -1).sum(-1)


def _tikhonov(mat, reg: float = 1e-7, eps: float = 1e-8):
    """mat + (reg * trace(mat).real + eps) I: keeps the noise PSD invertible."""
    channels = int(mat.shape[-1])
    eye = ember.eye(channels, dtype=mat.dtype, device=mat.device)
    load = _trace(mat).real[..., None, None] * reg + eps
    return mat + load * eye


def _check_psds(psd_s, psd_n):
    if psd_s.ndim < 3 or psd_n.ndim < 3:
        raise ValueError(f"Expected at least 3D Tensor (..., freq, channel, channel) for psd_s "
                         f"and psd_n. Found {list(psd_s.shape)} for psd_s and "
                         f"{list(psd_n.shape)} for psd_n.")
    if not (psd_s.dtype.is_complex and psd_n.dtype.is_complex):
        raise TypeError(f"The type of psd_s and psd_n must be complex64 or complex128. Found "
                        f"{psd_s.dtype} for psd_s and {psd_n.dtype} for psd_n.")
    if tuple(psd_s.shape) != tuple(psd_n.shape):
        raise ValueError(f"The dimensions of psd_s and psd_n should be the same. Found "
                         f"{list(psd_s.shape)} and {list(psd_n.shape)}.")
    if psd_s.shape[-1] != psd_s.shape[-2]:
        raise ValueError(f"The last two dimensions of psd_s should be the same. Found "
                         f"{list(psd_s.shape)}.")


def _pick_channel(mat, reference_channel, ref_shape):
    """Column `reference_channel` of mat (an int), or columns weighted by a one-hot /
    soft (..., channel) reference tensor."""
    if isinstance(reference_channel, int):
        return mat[..., :, reference_channel]
    if isinstance(reference_channel, ember.Tensor):
        ref = reference_channel.to(mat.dtype)
        return ember.einsum("...c,...c->...", mat, ref.reshape(ref_shape(ref)))
    raise TypeError(f'Expected "int" or "Tensor" for reference_channel. Found: '
                    f'{type(reference_channel)}.')


def mvdr_weights_souden(psd_s, psd_n, reference_channel, diagonal_loading: bool = True,
                        diag_eps: float = 1e-7, eps: float = 1e-8):
    """MVDR weights (..., freq, channel) = (psd_n^-1 psd_s / trace(psd_n^-1 psd_s)) u."""
    _check_psds(psd_s, psd_n)
    if diagonal_loading:
        psd_n = _tikhonov(psd_n, diag_eps)
    numerator = ember.linalg.solve(psd_n, psd_s)
    ws = numerator / (_trace(numerator)[..., None, None] + eps)
    return _pick_channel(ws, reference_channel,
                         lambda r: list(r.shape[:-1]) + [1, 1, int(r.shape[-1])])


def mvdr_weights_rtf(rtf, psd_n, reference_channel=None, diagonal_loading: bool = True,
                     diag_eps: float = 1e-7, eps: float = 1e-8):
    """MVDR weights psd_n^-1 h / (h^H psd_n^-1 h) for the relative transfer function h,
    scaled by conj(h) at the reference channel when one is given."""
    if rtf.ndim < 2:
        raise ValueError(f"Expected at least 2D Tensor (..., freq, channel) for rtf. Found "
                         f"{list(rtf.shape)}.")
    if psd_n.ndim < 3:
        raise ValueError(f"Expected at least 3D Tensor (..., freq, channel, channel) for "
                         f"psd_n. Found {list(psd_n.shape)}.")
    if not (rtf.dtype.is_complex and psd_n.dtype.is_complex):
        raise TypeError(f"The type of rtf and psd_n must be complex64 or complex128. Found "
                        f"{rtf.dtype} for rtf and {psd_n.dtype} for psd_n.")
    if tuple(rtf.shape) != tuple(psd_n.shape[:-1]):
        raise ValueError(f"The dimensions of rtf and the dimensions withou the last dimension "
                         f"of psd_n should be the same. Found {list(rtf.shape)} for rtf and "
                         f"{list(psd_n.shape)} for psd_n.")
    if psd_n.shape[-1] != psd_n.shape[-2]:
        raise ValueError(f"The last two dimensions of psd_n should be the same. Found "
                         f"{list(psd_n.shape)}.")
    if diagonal_loading:
        psd_n = _tikhonov(psd_n, diag_eps)
    numerator = ember.linalg.solve(psd_n, rtf.unsqueeze(-1)).squeeze(-1)
    denominator = ember.einsum("...d,...d->...", rtf.conj(), numerator)
    weights = numerator / (denominator.real.unsqueeze(-1) + eps)
    if reference_channel is None:
        return weights
    if isinstance(reference_channel, int):
        scale = rtf[..., reference_channel].conj()
    elif isinstance(reference_channel, ember.Tensor):
        ref = reference_channel.to(psd_n.dtype)
        scale = ember.einsum("...c,...c->...", rtf.conj(), ref.unsqueeze(-2))
    else:
        raise TypeError(f'Expected "int" or "Tensor" for reference_channel. Found: '
                        f'{type(reference_channel)}.')
    return weights * scale[..., None]


def rtf_evd(psd_s):
    """The RTF as the principal eigenvector of psd_s (largest eigenvalue)."""
    if not psd_s.dtype.is_complex:
        raise TypeError(f"The type of psd_s must be complex64 or complex128. Found "
                        f"{psd_s.dtype}.")
    if psd_s.shape[-1] != psd_s.shape[-2]:
        raise ValueError(f"The last two dimensions of psd_s should be the same. Found "
                         f"{list(psd_s.shape)}.")
    return ember.linalg.eigh(psd_s)[1][..., -1]


def rtf_power(psd_s, psd_n, reference_channel, n_iter: int = 3,
              diagonal_loading: bool = True, diag_eps: float = 1e-7):
    """The RTF by power iteration on psd_n^-1 psd_s from the reference channel's column:
    n_iter - 2 multiplications by it, then one by psd_s (or by psd_n when n_iter is 1)."""
    _check_psds(psd_s, psd_n)
    if n_iter <= 0:
        raise ValueError("The number of iteration must be greater than 0.")
    if diagonal_loading:
        psd_n = _tikhonov(psd_n, diag_eps)
    phi = ember.linalg.solve(psd_n, psd_s)
    rtf = _pick_channel(phi, reference_channel,
                        lambda r: list(r.shape[:-1]) + [1, 1, int(r.shape[-1])]).unsqueeze(-1)
    if n_iter >= 2:
        for _ in range(n_iter - 2):
            rtf = ember.matmul(phi, rtf)
        rtf = ember.matmul(psd_s, rtf)
    else:
        rtf = ember.matmul(psd_n, rtf)
    return rtf.squeeze(-1)


def apply_beamforming(beamform_weights, specgram):
    """Enhanced (..., freq, time) spectrogram sum_c conj(w[f, c]) x[c, f, t]."""
    if tuple(beamform_weights.shape[:-2]) != tuple(specgram.shape[:-3]):
        raise ValueError(f"The dimensions except the last two dimensions of beamform_weights "
                         f"should be the same as the dimensions except the last three "
                         f"dimensions of specgram. Found {list(beamform_weights.shape)} for "
                         f"beamform_weights and {list(specgram.shape)} for specgram.")
    if not (beamform_weights.dtype.is_complex and specgram.dtype.is_complex):
        raise TypeError(f"The type of beamform_weights and specgram must be complex64 or "
                        f"complex128. Found {beamform_weights.dtype} for beamform_weights and "
                        f"{specgram.dtype} for specgram.")
    return ember.einsum("...fc,...cft->...ft", beamform_weights.conj(), specgram)
