"""torch.nn.utils.parametrizations: weight_norm, spectral_norm and orthogonal as
parametrizations (the forms PyTorch recommends), on nn.utils.parametrize."""
from __future__ import annotations

from ....ir.ops import OPS_NS as ops
from ....ir.registry import OPS
from ...dtype_info import finfo
from ...factories import eye, randn, zeros_like
from ...linalg_householder import householder_product
from ...tensor import Tensor
from ..modules.module import Module
from . import parametrize
from ._norms import as_matrix, norm_except_dim, normalized, power_iteration_u_first, \
    weight_norm_of

__all__ = ["weight_norm", "spectral_norm", "orthogonal"]


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


_ORTHOGONAL_MAPS = ("matrix_exp", "cayley", "householder")


def _orthonormalized(matrix):
    """Q of matrix's QR with R's diagonal made positive: the orthonormal matrix nearest
    in spirit to `matrix` (its first k columns depend only on matrix's first k)."""
    reflectors, tau = ops.geqrf(matrix)
    q = householder_product(reflectors, tau)
    return q * reflectors.diagonal(dim1=-2, dim2=-1).sgn().unsqueeze(-2)


def _is_orthonormal(matrix) -> bool:
    n, k = matrix.shape[-2], matrix.shape[-1]
    tolerance = 10. * n * finfo(matrix.dtype).eps
    return bool((matrix.mH @ matrix).allclose(eye(k, dtype=matrix.dtype), atol=tolerance))


class _Orthogonal(Module):
    """Maps an unconstrained matrix to one with orthonormal columns (rows when wide).

    With use_trivialization (torch's default), assigning Q stores Q as the buffer
    `base` and resets the trained matrix to -I, which the maps send to the identity:
    the weight is then base @ map(X), and training moves X from there."""

    def __init__(self, weight, orthogonal_map: str, use_trivialization: bool = True) -> None:
        super().__init__()
        if weight.is_complex() and orthogonal_map == "householder":
            raise ValueError("The householder parametrization does not support complex tensors.")
        self.shape = weight.shape
        self.orthogonal_map = orthogonal_map
        if use_trivialization:
            self.register_buffer("base", None)

    def forward(self, X):
        wide = X.shape[-2] < X.shape[-1]
        if wide:
            X = X.mT
        n, k = X.shape[-2], X.shape[-1]
        if self.orthogonal_map == "householder":
            reflectors = X.tril(diagonal=-1)
            tau = 2. / (1. + (reflectors * reflectors).sum(dim=-2))
            Q = householder_product(reflectors, tau)
            # the reflectors' signs come back through X's diagonal (-I maps to I)
            Q = Q * X.diagonal(dim1=-2, dim2=-1).int().unsqueeze(-2)
        else:
            Q = self._from_skew(X.tril(), n, k)
        if getattr(self, "base", None) is not None:
            Q = self.base @ Q
        return Q.mT if wide else Q

    def _from_skew(self, lower, n: int, k: int):
        if n != k:
            lower = ops.cat([lower, lower.new_zeros(n, n - k).expand(*lower.shape[:-2], -1, -1)],
                        dim=-1)
        skew = lower - lower.mH
        if self.orthogonal_map == "matrix_exp":
            Q = OPS["linalg_matrix_exp"](skew)
        else:     # cayley: (I - A/2)^-1 (I + A/2)
            identity = eye(n, dtype=skew.dtype)
            Q = OPS["linalg_solve"](identity - skew * 0.5, identity + skew * 0.5)
        return Q[..., :k] if n != k else Q

    def right_inverse(self, Q):
        if tuple(Q.shape) != tuple(self.shape):
            raise ValueError(f"Expected a matrix or batch of matrices of shape {self.shape}. "
                             f"Got a tensor of shape {Q.shape}.")
        assigned = Q
        if Q.shape[-2] < Q.shape[-1]:
            Q = Q.mT
        n, k = Q.shape[-2], Q.shape[-1]
        if not hasattr(self, "base"):
            return self._reflectors_of(Q, wide=assigned is not Q)
        if n == k:
            Q = Q.clone() if _is_orthonormal(Q) else _orthonormalized(Q)
        else:   # complete the columns to a square orthonormal basis
            extra = randn(*Q.shape[:-2], n, n - k, dtype=Q.dtype)
            Q = _orthonormalized(ops.cat([Q, extra], dim=-1))
        self.base = Q.detach()
        minus_identity = zeros_like(assigned)
        minus_identity.diagonal(dim1=-2, dim2=-1).fill_(-1.)
        return minus_identity

    def _reflectors_of(self, Q, wide: bool):
        """Without trivialization the trained matrix holds Householder reflectors whose
        diagonal carries the signs the forward map multiplies back."""
        if self.orthogonal_map != "householder":
            raise NotImplementedError("It is not possible to assign to the matrix exponential "
                                      "or the Cayley parametrizations when "
                                      "use_trivialization=False.")
        reflectors, tau = ops.geqrf(Q)
        diagonal = reflectors.diagonal(dim1=-2, dim2=-1)
        diagonal.sign_()
        diagonal[tau == 0.] *= -1
        return reflectors.mT if wide else reflectors


def orthogonal(module, name: str = "weight", orthogonal_map: str | None = None, *,
               use_trivialization: bool = True):
    """Constrains `module.<name>` to orthonormal columns (or rows): "matrix_exp" and
    "cayley" map a skew-symmetric matrix, "householder" a product of reflectors. The
    default is matrix_exp for square or complex weights, householder otherwise."""
    weight = getattr(module, name, None)
    if not isinstance(weight, Tensor):
        raise ValueError(f"Module '{module}' has no parameter or buffer with name '{name}'")
    if weight.ndim < 2:
        raise ValueError("Expected a matrix or batch of matrices. "
                         f"Got a tensor of {weight.ndim} dimensions.")
    if orthogonal_map is None:
        square = weight.shape[-2] == weight.shape[-1]
        orthogonal_map = "matrix_exp" if square or weight.is_complex() else "householder"
    if orthogonal_map not in _ORTHOGONAL_MAPS:
        raise ValueError('orthogonal_map has to be one of "matrix_exp", "cayley", '
                         f'"householder". Got: {orthogonal_map}')
    parametrize.register_parametrization(
        module, name, _Orthogonal(weight, orthogonal_map, use_trivialization), unsafe=True)
    return module
