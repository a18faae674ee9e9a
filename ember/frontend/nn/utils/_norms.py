"""The arithmetic weight and spectral normalization share between PyTorch's two APIs
(the hook-based nn.utils.weight_norm/spectral_norm and nn.utils.parametrizations)."""
from __future__ import annotations

from ... import autograd
from .. import functional as F


def norm_except_dim(v, pow: float = 2, dim: int = 0):
    """torch.norm_except_dim: the norm over every dimension but `dim`, shaped to broadcast
    against v (dim=-1: the norm of the whole tensor)."""
    if dim == -1:
        return v.norm(pow)
    dim = dim % v.ndim
    others = [d for d in range(v.ndim) if d != dim]
    shape = [1] * v.ndim
    shape[dim] = v.shape[dim]
    return (v.abs() ** pow).sum(others).pow(1.0 / pow).reshape(shape) if others else v.abs()


def weight_norm_of(v, g, dim: int):
    """torch._weight_norm: v scaled so that its norm (except along `dim`) is g."""
    return v * (g / norm_except_dim(v, 2, dim))


def as_matrix(weight, dim: int):
    """The weight as (size along dim) x (everything else), for the power iteration."""
    if dim != 0:
        order = [dim] + [d for d in range(weight.ndim) if d != dim]
        weight = weight.permute(order)
    return weight.reshape([weight.shape[0], -1])


def normalized(vector, eps: float):
    return F.normalize(vector, dim=0, eps=eps)


def power_iteration_v_first(matrix, u, v, iterations: int, eps: float):
    """nn.utils.spectral_norm's order: v from u, then u from v."""
    with autograd.no_grad():
        for _ in range(iterations):
            v = normalized(matrix.t().mv(u), eps)
            u = normalized(matrix.mv(v), eps)
    return u, v


def power_iteration_u_first(matrix, u, v, iterations: int, eps: float):
    """nn.utils.parametrizations.spectral_norm's order: u from v, then v from u."""
    with autograd.no_grad():
        for _ in range(iterations):
            u = normalized(matrix.mv(v), eps)
            v = normalized(matrix.conj().t().mv(u), eps)
    return u, v
