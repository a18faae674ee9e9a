"""ember.special: torch.special's functions under their torch.special names.

Each is a registry op in the `special` namespace (declared in `ember/ir/ops/special.py`,
`gamma.py`, `bessel.py` and `special_polynomials.py`), so it runs eagerly, records on the
autograd tape, traces into graphs and compiles like any other op. Aliases (expit,
gammaln, psi, multigammaln, ...) decompose into the top-level op they name.

    >>> import ember, ember.special
    >>> ember.special.ndtr(ember.tensor([0.0]))
    tensor([0.5000])
"""
from __future__ import annotations

from .ir import ops as _ops  # noqa: F401 - registers every op family
from .ir.registry import OPS as _OPS

__all__: list[str] = []

for _op in _OPS.values():
    if _op.namespace == "special":
        globals()[_op.python_name] = _op
        __all__.append(_op.python_name)
del _op
