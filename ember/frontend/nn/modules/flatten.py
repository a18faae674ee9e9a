"""Flatten and Unflatten: reshape a run of dimensions, as torch.nn does."""
from __future__ import annotations

from ._util import checkable
from .module import Module


class Flatten(Module):
    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input):
        if not checkable(input):          # torch.fx tracing: record the method call
            return input.flatten(self.start_dim, self.end_dim)
        if input.ndim == 0:
            return input.reshape([1])
        start = self.start_dim % input.ndim
        end = self.end_dim % input.ndim
        shape = list(input.shape)
        flat = 1
        for s in shape[start:end + 1]:
            flat *= s
        return input.reshape(shape[:start] + [flat] + shape[end + 1:])

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    def __init__(self, dim: int, unflattened_size) -> None:
        super().__init__()
        self.dim, self.unflattened_size = dim, unflattened_size

    def forward(self, input):
        dim = self.dim % input.ndim
        shape = list(input.shape)
        return input.reshape(shape[:dim] + list(self.unflattened_size) + shape[dim + 1:])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
