"""clip_grad_norm_ / clip_grad_value_: rescale or clamp .grad in place, as torch.nn.utils."""
from __future__ import annotations

import math

from ...autograd import no_grad
from ...tensor import Tensor


def _grads(parameters) -> list:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False, foreach=None):
    """Scales all gradients so that their joint norm is at most max_norm; returns the
    norm before clipping (over all gradients, as if concatenated into one vector)."""
    import ember
    grads = _grads(parameters)
    if not grads:
        return ember.tensor(0.0)
    norm_type = float(norm_type)

    def check(total):
        if error_if_nonfinite and not math.isfinite(float(total.item())):
            raise RuntimeError(
                f"The total norm of order {norm_type} for gradients from `parameters` is "
                "non-finite, so it cannot be clipped. To disable this error and scale the "
                "gradients by the non-finite norm anyway, set `error_if_nonfinite=False`")
    with no_grad():
        if foreach is not False:     # CUDA gradients: three launches for all of them
            from ...optim.multi_tensor_cuda import clip_grad_norm
            total = clip_grad_norm(grads, max_norm, norm_type, check)
            if total is not None:
                return total
        norms = ember.stack([ember.linalg.vector_norm(g, norm_type) for g in grads])
        total = ember.linalg.vector_norm(norms, norm_type)
        check(total)
        coefficient = ember.clamp(max_norm / (total + 1e-6), max=1.0)
        for g in grads:
            g.mul_(coefficient.to(g.dtype))
    return total


def clip_grad_value_(parameters, clip_value: float, foreach=None) -> None:
    """Clamps every gradient element into [-clip_value, clip_value] in place."""
    clip_value = float(clip_value)
    with no_grad():
        for g in _grads(parameters):
            g.clamp_(min=-clip_value, max=clip_value)


def get_total_norm(tensors, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                   foreach=None):
    """The norm of the norms of `tensors` (as if concatenated into one vector)."""
    import ember
    tensors = [tensors] if isinstance(tensors, Tensor) else [t for t in tensors
                                                                if t is not None]
    if not tensors:
        return ember.tensor(0.0)
    norm_type = float(norm_type)
    with no_grad():
        norms = ember.stack([ember.linalg.vector_norm(t, norm_type) for t in tensors])
        total = ember.linalg.vector_norm(norms, norm_type)
    if error_if_nonfinite and not math.isfinite(float(total.item())):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from "
                           f"`parameters` is non-finite, so it cannot be clipped.")
    return total


def clip_grads_with_norm_(parameters, max_norm: float, total_norm, foreach=None) -> None:
    """Scale the gradients by max_norm / total_norm (at most 1), given the norm."""
    import ember
    with no_grad():
        coefficient = ember.clamp(max_norm / (total_norm + 1e-6), max=1.0)
        for g in _grads(parameters):
            g.mul_(coefficient.to(g.dtype))


def clip_grad_norm(parameters, max_norm: float, norm_type: float = 2.0,
                   error_if_nonfinite: bool = False, foreach=None):
    """Deprecated in PyTorch for clip_grad_norm_ (the same function)."""
    import warnings
    warnings.warn("ember.nn.utils.clip_grad_norm is now deprecated in favor of "
                  "ember.nn.utils.clip_grad_norm_.", FutureWarning, stacklevel=2)
    return clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite, foreach)
