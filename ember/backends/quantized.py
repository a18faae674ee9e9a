"""ember.backends.quantized: torch.backends.quantized's engine switch.

Quantization scripts set `torch.backends.quantized.engine = "x86"` (or "qnnpack", ...)
before building qconfigs. ember accepts torch's engine names and remembers the choice;
its int8 kernels are the same under every engine (the qconfig and backend config decide
dtypes and ranges), so the engine changes no result. An unknown name is refused as in
PyTorch.
"""
from __future__ import annotations

import sys
import types

supported_engines = ["qnnpack", "onednn", "x86", "fbgemm"]


class _QuantizedModule(types.ModuleType):
    _engine = "x86"

    @property
    def engine(self) -> str:
        return type(self)._engine

    @engine.setter
    def engine(self, name: str) -> None:
        if name not in supported_engines:
            raise RuntimeError(f"quantized engine {name} is not supported (supported: "
                               f"{', '.join(supported_engines)})")
        type(self)._engine = name


sys.modules[__name__].__class__ = _QuantizedModule
