"""ReduceOp: torch.distributed.ReduceOp's members (PREMUL_SUM is not supported)."""
from __future__ import annotations

import enum


class ReduceOp(enum.Enum):
    SUM = "sum"
    AVG = "avg"
    PRODUCT = "product"
    MIN = "min"
    MAX = "max"
    BAND = "band"
    BOR = "bor"
    BXOR = "bxor"
    PREMUL_SUM = "premul_sum"

    def __repr__(self) -> str:
        return f"<ReduceOp.{self.name}>"

    def __str__(self) -> str:
        return f"ReduceOp.{self.name}"
