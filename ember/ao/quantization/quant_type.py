"""QuantType (torch.ao.quantization.quant_type): the kind of quantization a custom
module mapping applies to."""
from __future__ import annotations

import enum


class QuantType(enum.IntEnum):
    DYNAMIC = 0
    STATIC = 1
    QAT = 2
    WEIGHT_ONLY = 3


_NAMES = {QuantType.DYNAMIC: "dynamic", QuantType.STATIC: "static", QuantType.QAT: "qat",
          QuantType.WEIGHT_ONLY: "weight_only"}


def _get_quant_type_to_str(quant_type: QuantType) -> str:
    return _NAMES[quant_type]


def _quant_type_from_str(name: str) -> QuantType:
    for quant_type, text in _NAMES.items():
        if text == name:
            return quant_type
    raise ValueError(f"Unknown quant type '{name}' (expected one of {sorted(_NAMES.values())})")


__all__ = ["QuantType"]
