"""detach: the graph form of `Tensor.detach()` (aten::detach), a view carrying no gradient.

Eager `Tensor.detach()` is a Tensor method, not an op call. While ember.compile traces a
function that may be differentiated (compiler/compile_trace.py), `detach()` on a traced
value records this op, so the graph autograd pass stops there as the eager tape does;
values computed under `no_grad()` inside the function get one too.
"""
from __future__ import annotations

from ..registry import NOT_DIFFERENTIABLE, Tag, defop
from . import samples as S
from .shape import view_meta

detach = defop(
    "detach(Tensor self) -> Tensor",
    saves=(),
    meta=lambda self: view_meta(self, tuple(self.shape), tuple(self.stride())),
    reference=lambda x: x.view(),
    derivative=NOT_DIFFERENTIABLE,
    tags={Tag.VIEW},
    samples=lambda rng: [S.Sample((S.randn(rng, 3, 4),)), S.Sample((S.randn(rng),))],
    torch_ref="torch.detach",
)
