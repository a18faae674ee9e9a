"""Dropout layers: zero elements (Dropout, AlphaDropout) or whole channels (Dropout1d/2d/3d,
FeatureAlphaDropout) with probability p in training mode; identity in eval mode."""
from __future__ import annotations

from .. import functional as F
from .module import Module


class Dropout(Module):
    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if p < 0 or p > 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, input):
        return F.dropout(input, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class _DropoutNd(Dropout):
    function = None

    def forward(self, input):
        return type(self).function(input, self.p, self.training, self.inplace)


class Dropout1d(_DropoutNd):
    function = staticmethod(F.dropout1d)


class Dropout2d(_DropoutNd):
    function = staticmethod(F.dropout2d)


class Dropout3d(_DropoutNd):
    function = staticmethod(F.dropout3d)


class AlphaDropout(_DropoutNd):
    function = staticmethod(F.alpha_dropout)


class FeatureAlphaDropout(_DropoutNd):
    function = staticmethod(F.feature_alpha_dropout)
