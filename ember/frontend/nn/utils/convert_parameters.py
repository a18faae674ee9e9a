"""parameters_to_vector / vector_to_parameters, as torch.nn.utils."""
from __future__ import annotations

from ...autograd import no_grad


def parameters_to_vector(parameters):
    """All parameters flattened and concatenated into one 1-D tensor."""
    import ember
    return ember.cat([p.reshape(-1) for p in parameters])


def vector_to_parameters(vec, parameters) -> None:
    """Copies consecutive slices of the 1-D `vec` into each parameter in turn."""
    import ember
    if not isinstance(vec, ember.Tensor):
        raise TypeError(f"expected torch.Tensor, but got: {type(vec).__name__}")
    offset = 0
    with no_grad():
        for p in parameters:
            count = p.numel()
            p.copy_(vec[offset:offset + count].reshape(p.shape))
            offset += count
