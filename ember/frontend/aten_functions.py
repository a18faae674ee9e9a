"""torch.<name> functions with ATen's positional signatures, over ember's existing ops.

PyTorch exposes many nn.functional losses at the top level in ATen's form: the reduction
is an int (0 'none', 1 'mean', 2 'sum') and the legacy size_average/reduce are absent
(`torch.kl_div(input, target, 1, log_target=False)`). Beside them: the deprecated norms
kept for TorchScript (frobenius_norm, nuclear_norm), the `*_copy` forms of view ops (a
view's values in new memory), in-place feature dropouts, conv_tbc, and the global
switches code reads (set_warn_always, set_flush_denormal, get_device_module, the
per-device autocast setters of torch < 2.4). Each calls the canonical op, so tracing,
autograd and compile see the canonical op.
"""
from __future__ import annotations

import warnings

from ..ir.autocast import autocast_as

_REDUCTIONS = ("none", "mean", "sum")


def _reduction(reduction) -> str:
    if isinstance(reduction, str):
        return reduction
    if isinstance(reduction, int) and 0 <= reduction < len(_REDUCTIONS):
        return _REDUCTIONS[reduction]
    raise ValueError(f"reduction must be 0 (none), 1 (mean) or 2 (sum), got {reduction!r}")


def _functional():
    from .nn import functional
    return functional


# torch's Python bindings of these aten losses parse the schema default `reduction=Mean`
# as the integer 0, so a call that omits the reduction gets the unreduced loss ('none'):
# `torch.hinge_embedding_loss(x, t)` has x's shape. ember matches that public behaviour.
_BINDING_DEFAULT_REDUCTION = 0


def binary_cross_entropy_with_logits(input, target, weight=None, pos_weight=None,
                                     reduction=_BINDING_DEFAULT_REDUCTION):
    return _functional().binary_cross_entropy_with_logits(
        input, target, weight, reduction=_reduction(reduction), pos_weight=pos_weight)


def kl_div(input, target, reduction=_BINDING_DEFAULT_REDUCTION, *, log_target=False):
    return _functional().kl_div(input, target, reduction=_reduction(reduction),
                                log_target=log_target)


def cosine_embedding_loss(input1, input2, target, margin=0.0,
                          reduction=_BINDING_DEFAULT_REDUCTION):
    return _functional().cosine_embedding_loss(input1, input2, target, margin,
                                               reduction=_reduction(reduction))


@autocast_as("margin_ranking_loss")
def margin_ranking_loss(input1, input2, target, margin=0.0,
                        reduction=_BINDING_DEFAULT_REDUCTION):
    """F's loss without its same-dimension check: the inputs broadcast, as in aten."""
    from .nn._functional_common import reduce_loss
    from .nn._functional_losses_extra import margin_ranking_terms
    return reduce_loss(margin_ranking_terms(input1, input2, target, margin),
                       _reduction(reduction))


@autocast_as("triplet_margin_loss")
def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2, eps=1e-6, swap=False,
                        reduction=_BINDING_DEFAULT_REDUCTION):
    """F's loss without its margin > 0 check, which aten does not make."""
    from .nn._functional_losses_extra import triplet_margin_terms
    return triplet_margin_terms(anchor, positive, negative, margin, p, eps, swap,
                                _reduction(reduction))


def hinge_embedding_loss(input, target, margin=1.0, reduction=_BINDING_DEFAULT_REDUCTION):
    return _functional().hinge_embedding_loss(input, target, margin,
                                              reduction=_reduction(reduction))


def poisson_nll_loss(input, target, log_input, full, eps, reduction):
    return _functional().poisson_nll_loss(input, target, log_input, full, eps=eps,
                                          reduction=_reduction(reduction))


def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0,
             reduction=_BINDING_DEFAULT_REDUCTION, zero_infinity=False):
    return _functional().ctc_loss(log_probs, targets, input_lengths, target_lengths, blank,
                                  _reduction(reduction), zero_infinity)


# torch's RNN cell functions (input, hx, w_ih, w_hh, b_ih=None, b_hh=None): one step of
# the cells nn.LSTMCell / GRUCell / RNNCell run; autocast by their own policy (CUDA: lower)
def _rnn_steps():
    from .nn.modules import rnn
    return rnn


def lstm_cell(input, hx, w_ih, w_hh, b_ih=None, b_hh=None):
    """One LSTM step: hx is (h, c); returns (h', c')."""
    if not isinstance(hx, (tuple, list)) or len(hx) != 2:
        raise RuntimeError(f"lstm_cell: expected hx to contain 2 tensors (h, c), got "
                           f"{len(hx) if isinstance(hx, (tuple, list)) else type(hx).__name__}")
    return _lstm_cell(input, hx[0], hx[1], w_ih, w_hh, b_ih, b_hh)


@autocast_as("lstm_cell")        # h and c as arguments of their own, so autocast casts them
def _lstm_cell(input, h, c, w_ih, w_hh, b_ih, b_hh):
    return _rnn_steps()._lstm_step(input, (h, c), w_ih, w_hh, b_ih, b_hh)


@autocast_as("gru_cell")
def gru_cell(input, hx, w_ih, w_hh, b_ih=None, b_hh=None):
    return _rnn_steps()._gru_step(input, hx, w_ih, w_hh, b_ih, b_hh)


@autocast_as("rnn_tanh_cell")
def rnn_tanh_cell(input, hx, w_ih, w_hh, b_ih=None, b_hh=None):
    return _rnn_steps()._rnn_step(input, hx, w_ih, w_hh, b_ih, b_hh, relu=False)


@autocast_as("rnn_relu_cell")
def rnn_relu_cell(input, hx, w_ih, w_hh, b_ih=None, b_hh=None):
    return _rnn_steps()._rnn_step(input, hx, w_ih, w_hh, b_ih, b_hh, relu=True)


def rms_norm(input, normalized_shape, weight=None, eps=None):
    return _functional().rms_norm(input, normalized_shape, weight, eps)


def native_channel_shuffle(input, groups):
    return _functional().channel_shuffle(input, groups)


def conv_tbc(input, weight, bias, pad=0):
    """A 1-d convolution over time-major input: input (time, batch, in), weight
    (kernel, in, out), bias (out) -> (time', batch, out)."""
    out = _functional().conv1d(input.permute(1, 2, 0), weight.permute(2, 1, 0), bias,
                               padding=pad)
    return out.permute(2, 0, 1)


def _in_place_dropout(name: str):
    def dropout_(input, p, train):
        return getattr(_functional(), name)(input, p, train, inplace=True)
    dropout_.__name__ = name + "_"
    return dropout_


def _feature_dropout_(input, p, train):
    """torch.feature_dropout_: channel dropout (whole feature maps zeroed) in place."""
    from . import aliases
    return input.copy_(aliases._feature_dropout(input, p, train)) if train and p > 0 else input


def frobenius_norm(input, dim=(), keepdim=False):
    from .. import linalg
    _deprecated("frobenius_norm", "linalg.vector_norm(A, 2., dim, keepdim)")
    return linalg.vector_norm(input, 2, dim if dim not in ((), []) else None, keepdim)


def nuclear_norm(input, dim=None, keepdim=False):
    from .. import linalg
    _deprecated("nuclear_norm", "linalg.matrix_norm(A, 'nuc', dim, keepdim)")
    if isinstance(dim, bool):         # nuclear_norm(input, keepdim)
        dim, keepdim = None, dim
    return linalg.matrix_norm(input, "nuc", (-2, -1) if dim is None else dim, keepdim)


def _deprecated(name: str, replacement: str) -> None:
    warnings.warn(f"{name} is deprecated and it is just left for JIT compatibility. It will "
                  f"be removed in a future release. Please use `{replacement}` instead",
                  UserWarning, stacklevel=3)


def matrix_rank(input, tol=None, symmetric=False, *, out=None):
    """Removed in PyTorch 1.9; torch.matrix_rank raises this error, and so does ember."""
    raise RuntimeError("This function was deprecated since version 1.9 and is now removed.\n"
                       "Please use the `ember.linalg.matrix_rank` function instead. The "
                       "parameter 'symmetric' was renamed in `ember.linalg.matrix_rank()` to "
                       "'hermitian'.")


_REMOVED_1_9 = "This function was deprecated since version 1.9 and is now removed. "


def solve(input, A, *, out=None):
    """Removed in PyTorch 1.9 (torch.solve raises this); the replacement's arguments are
    reversed."""
    raise RuntimeError(_REMOVED_1_9 + "`ember.solve` is deprecated in favor of "
                       "`ember.linalg.solve`, which takes its arguments reversed and returns "
                       "no LU factorization (see `ember.linalg.lu_factor`).\n"
                       "X = ember.solve(B, A).solution should be replaced with:\n"
                       "X = ember.linalg.solve(A, B)")


def lstsq(input, A, *, out=None):
    """Removed in PyTorch 1.9 (torch.lstsq raises this)."""
    raise RuntimeError(_REMOVED_1_9 + "`ember.lstsq` is deprecated in favor of "
                       "`ember.linalg.lstsq`, which takes its arguments reversed and returns "
                       "the residuals in its `residuals` field.\n"
                       "X = ember.lstsq(B, A).solution[:A.size(1)] should be replaced with:\n"
                       "X = ember.linalg.lstsq(A, B).solution")


def symeig(input, eigenvectors=False, upper=True, *, out=None):
    """Removed in PyTorch 1.9 (torch.symeig raises this); the replacement reads the lower
    triangle by default."""
    raise RuntimeError(_REMOVED_1_9 + "Use ember.linalg.eigvalsh(A, UPLO='U' if upper else "
                       "'L') for the eigenvalues, or ember.linalg.eigh(A, UPLO=...) for "
                       "eigenvalues and eigenvectors (the lower triangle is now the default).")


def eig(input, eigenvectors=False, *, out=None):
    """Removed in PyTorch 1.9 (torch.eig raises this); the replacement returns complex
    tensors."""
    raise RuntimeError(_REMOVED_1_9 + "Use ember.linalg.eigvals(A) for the eigenvalues, or "
                       "ember.linalg.eig(A) for eigenvalues and eigenvectors; both return "
                       "complex tensors rather than real ones mimicking complex.")


def get_device(input) -> int:
    return input.get_device()


def to_dlpack(tensor):
    """A DLPack capsule of `tensor`'s memory (ember.from_dlpack takes it back)."""
    return tensor.__dlpack__()


# the *_copy forms of view ops: the view's values in new memory
def slice_copy(input, dim=0, start=None, end=None, step=1):
    index = [slice(None)] * input.ndim
    index[dim] = slice(start, end, step)
    return input[tuple(index)].clone(memory_format=_contiguous())


def select_copy(input, dim, index):
    return input.select(dim, index).clone(memory_format=_contiguous())


def detach_copy(input):
    return input.detach().clone()


def view_as_real_copy(input):
    from ..ir.registry import OPS
    return OPS["view_as_real"](input).clone(memory_format=_contiguous())


def view_as_complex_copy(input):
    from ..ir.registry import OPS
    return OPS["view_as_complex"](input).clone(memory_format=_contiguous())


def _contiguous():
    from ..ir.meta import contiguous_format
    return contiguous_format


# global switches
_WARN_ALWAYS = [False]


def set_warn_always(b: bool, /) -> None:
    """Warnings PyTorch gives once per process are given every time while set."""
    _WARN_ALWAYS[0] = bool(b)


def is_warn_always_enabled() -> bool:
    return _WARN_ALWAYS[0]


def set_flush_denormal(mode: bool) -> bool:
    """False: ember computes with NumPy, which cannot switch the CPU's flush-to-zero mode,
    so denormals are kept (torch returns False likewise where the CPU cannot)."""
    return False


def get_device_module(device=None):
    """The torch.<device type> module of `device` (a device, a string such as 'cuda:0' or
    'cuda'); without one, that of the current accelerator, else ember.cpu."""
    import importlib
    from .device import device as device_type
    if device is None:
        from . import cuda
        kind = "cuda" if cuda.is_available() else "cpu"
    else:
        kind = device.type if isinstance(device, device_type) else \
            device_type(device).type if ":" in str(device) else str(device)
    if kind not in ("cpu", "cuda"):
        raise RuntimeError(f"Device '{kind}' does not have a corresponding module registered "
                           "as 'ember.{kind}'.")
    return importlib.import_module(f"ember.{kind}")


def _autocast_functions() -> dict:
    """torch < 2.4's per-device autocast setters, over the device-type API."""
    from . import autocast as ac
    functions = {}
    for prefix, kind in (("cpu", "cpu"), ("gpu", "cuda")):
        functions[f"get_autocast_{prefix}_dtype"] = lambda kind=kind: ac.get_autocast_dtype(kind)
        functions[f"set_autocast_{prefix}_dtype"] = \
            lambda dtype, kind=kind: ac.set_autocast_dtype(kind, dtype)
    functions["is_autocast_cpu_enabled"] = lambda: ac.is_autocast_enabled("cpu")
    functions["set_autocast_cpu_enabled"] = lambda enabled: ac.set_autocast_enabled("cpu",
                                                                                    enabled)
    for name, function in functions.items():
        function.__name__ = name
    return functions


def top_level() -> dict:
    names = ("binary_cross_entropy_with_logits", "kl_div", "cosine_embedding_loss",
             "margin_ranking_loss", "triplet_margin_loss", "hinge_embedding_loss",
             "poisson_nll_loss", "ctc_loss", "lstm_cell", "gru_cell", "rnn_tanh_cell",
             "rnn_relu_cell", "rms_norm", "native_channel_shuffle", "conv_tbc",
             "frobenius_norm", "nuclear_norm", "matrix_rank", "solve", "lstsq", "symeig", "eig",
             "get_device", "to_dlpack", "slice_copy",
             "select_copy", "detach_copy", "view_as_real_copy", "view_as_complex_copy",
             "set_warn_always", "is_warn_always_enabled", "set_flush_denormal",
             "get_device_module")
    functions = {name: globals()[name] for name in names}
    from .nn._functional_embedding_bag import aten_embedding_bag
    functions["embedding_bag"] = aten_embedding_bag
    functions.update({"alpha_dropout_": _in_place_dropout("alpha_dropout"),
                      "feature_alpha_dropout_": _in_place_dropout("feature_alpha_dropout"),
                      "feature_dropout_": _feature_dropout_})
    functions.update(_autocast_functions())
    return functions
