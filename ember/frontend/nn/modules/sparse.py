"""Embedding: a lookup table; row padding_idx starts at zero and gets no gradient."""
from __future__ import annotations

from ....ir.errors import ShapeError
from .. import functional as F, init
from ..parameter import Parameter
from ._util import ArgumentError, checkable, new_param
from .module import Module


class Embedding(Module):
    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx=None,
                 max_norm=None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                 sparse: bool = False, _weight=None, _freeze: bool = False, device=None,
                 dtype=None) -> None:
        super().__init__()
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ArgumentError("Padding_idx must be within num_embeddings")
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx, self.max_norm, self.norm_type = padding_idx, max_norm, norm_type
        self.scale_grad_by_freq, self.sparse = scale_grad_by_freq, sparse
        if _weight is None:
            self.weight = new_param(num_embeddings, embedding_dim, dtype=dtype)
            self.reset_parameters()
            self.weight.requires_grad_(not _freeze)
        else:
            # PyTorch's: the given tensor itself becomes the weight (no draw, no copy)
            self.weight = _pretrained_weight(_weight, num_embeddings, embedding_dim, _freeze)

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight._array[self.padding_idx] = 0
            self.weight._bump_version()

    def forward(self, input):
        if checkable(input) and input.dtype.is_floating_point:
            raise ShapeError(f"{self!r}: Expected tensor for argument #1 'indices' to have one "
                             f"of the following scalar types: Long, Int; but got "
                             f"{input.dtype} instead")
        return F.embedding(input, self.weight, self.padding_idx, self.max_norm,
                           self.norm_type, self.scale_grad_by_freq, self.sparse)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        if self.norm_type != 2:
            s += f", norm_type={self.norm_type}"
        if self.scale_grad_by_freq is not False:
            s += f", scale_grad_by_freq={self.scale_grad_by_freq}"
        if self.sparse is not False:
            s += ", sparse=True"
        return s

    @classmethod
    def from_pretrained(cls, embeddings, freeze: bool = True, padding_idx=None, **kwargs):
        if embeddings.dim() != 2:
            raise ArgumentError("Embeddings parameter is expected to be 2-dimensional")
        rows, cols = embeddings.shape
        return cls(rows, cols, padding_idx, _weight=embeddings, _freeze=freeze, **kwargs)


def _pretrained_weight(weight, num_embeddings: int, embedding_dim: int, freeze: bool):
    if list(weight.shape) != [num_embeddings, embedding_dim]:
        raise ArgumentError("Shape of weight does not match num_embeddings and embedding_dim")
    return Parameter(weight, requires_grad=not freeze)
