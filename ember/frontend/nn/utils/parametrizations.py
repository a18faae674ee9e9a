"""torch.nn.utils.parametrizations: weight_norm and spectral_norm as parametrizations
(the forms PyTorch recommends), on nn.utils.parametrize."""
from __future__ import annotations

from ..modules.module import Module
from . import parametrize
from ._norms import as_matrix, norm_except_dim, normalized, power_iteration_u_first, \
    weight_norm_of

__all__ = ["weight_norm", "spectral_norm"]


class _WeightNorm(Module):
    def __init__(self, dim: int | None = 0) -> None:
        super().__init__()
        self.dim = -1 if dim is None else dim

    def forward(self, weight_g, weight_v):
        return weight_norm_of(weight_v, weight_g, self.dim)

    def right_inverse(self, weight):
        return norm_except_dim(weight, 2, self.dim), weight


def weight_norm(module, name: str = "weight", dim: int | None = 0):
    """w = g * v / ||v||: `parametrizations.<name>.original0` is g, `original1` is v."""
    parametrize.register_parametrization(module, name, _WeightNorm(dim), unsafe=True)
    return module


class _SpectralNorm(Module):
    def __init__(self, weight, n_power_iterations: int = 1, dim: int = 0,
                 eps: float = 1e-12) -> None:
        super().__init__()
        ndim = weight.ndim
        if dim >= ndim or dim < -ndim:
            raise IndexError(f"Dimension out of range (expected to be in range of [-{ndim}, "
                             f"{ndim - 1}] but got {dim})")
        if n_power_iterations <= 0:
            raise ValueError(f"Expected n_power_iterations to be positive, but got "
                             f"n_power_iterations={n_power_iterations}")
        self.dim = dim % ndim if ndim else 0
        self.eps = eps
        self.n_power_iterations = n_power_iterations
        if ndim > 1:
            matrix = as_matrix(weight.detach(), self.dim)
            h, w = matrix.shape
            u = normalized(matrix.new_empty([h]).normal_(0, 1), eps)
            v = normalized(matrix.new_empty([w]).normal_(0, 1), eps)
            u, v = power_iteration_u_first(matrix, u, v, 15, eps)
            self.register_buffer("_u", u)
            self.register_buffer("_v", v)

    def forward(self, weight):
        if weight.ndim == 1:
            return normalized(weight, self.eps)
        matrix = as_matrix(weight, self.dim)
        if self.training:
            u, v = power_iteration_u_first(matrix.detach(), self._u, self._v,
                                           self.n_power_iterations, self.eps)
            self._u.copy_(u)
            self._v.copy_(v)
        u, v = self._u.clone(), self._v.clone()
        sigma = u.conj().dot(matrix.mv(v))
        return weight / sigma

    def right_inverse(self, value):
        return value


def spectral_norm(module, name: str = "weight", n_power_iterations: int = 1,
                  eps: float = 1e-12, dim: int | None = None):
    """The weight divided by its spectral norm, estimated by power iteration while training."""
    from ..modules.conv import ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
    weight = getattr(module, name, None)
    if weight is None:
        raise ValueError(f"Module '{module}' has no parameter or buffer with name '{name}'")
    if dim is None:
        dim = 1 if isinstance(module, (ConvTranspose1d, ConvTranspose2d, ConvTranspose3d)) \
            else 0
    parametrize.register_parametrization(
        module, name, _SpectralNorm(weight, n_power_iterations, dim, eps))
    return module
