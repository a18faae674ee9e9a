"""ember.return_types: the namedtuple types of ops returning several tensors
(`ember.return_types.max`, `.sort`, `.topk`, `.slogdet`, ...), as torch.return_types has them:
for isinstance checks and so that pickled results load back."""
from __future__ import annotations


def __getattr__(name: str):
    from .ir.ops.reduction import NamedTupleOp, _namedtuple_for
    from .ir.registry import OPS
    for op in OPS.values():
        if isinstance(op, NamedTupleOp) and op.python_name.removesuffix("_dim") == name:
            value = _namedtuple_for(op)
            globals()[name] = value
            return value
    raise AttributeError(f"module 'ember.return_types' has no attribute '{name}'")
