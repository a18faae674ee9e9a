"""ember.linalg: torch.linalg's functions, each a registry op (see ember/ir/ops/linalg_*.py).

They run eagerly on tensors, trace into graphs, and differentiate; names, arguments,
defaults and named-tuple results follow torch.linalg. `LinAlgError` is raised for
singular or non-positive-definite input, as torch.linalg.LinAlgError.
"""
from __future__ import annotations

from .ir import ops as _ops  # noqa: F401 - registers every op family
from .ir.errors import LinAlgError  # noqa: F401
from .ir.registry import OPS as _OPS

__all__ = ["LinAlgError"]

for _op in _OPS.values():
    if _op.namespace == "linalg":
        globals()[_op.python_name] = _op
        __all__.append(_op.python_name)
del _op

from .frontend.linalg_functions import LINALG as _COMPOSITES  # noqa: E402

globals().update(_COMPOSITES)
__all__ += sorted(_COMPOSITES)

from .frontend.linalg_householder import LINALG_HOUSEHOLDER as _HOUSEHOLDER  # noqa: E402

globals().update(_HOUSEHOLDER)
__all__ += sorted(_HOUSEHOLDER)

matmul = _OPS["matmul"]     # torch.linalg.matmul: torch.matmul under linalg's name
__all__.append("matmul")
