"""Composite functions: PyTorch functions that ember writes as calls of registry ops.

Many of PyTorch's functions are exact compositions of ops ember already has
(`fliplr` is `flip(x, [1])`, `atleast_2d` is a reshape, `kron` a product of
reshaped views). Writing them as Python over op calls, instead of declaring a new
registry op with its own kernel and derivative, gives autograd, tracing, compile,
vmap and storage sharing of view results for free: every call they make is an
ordinary op call that the active dispatch handler records or runs.

`@composite(method=..., attribute=...)` records such a function in `COMPOSITES`;
the package's `__init__` exports each one as `ember.<name>` and `frontend.methods`
attaches the methods (and read-only attributes such as `Tensor.mT`) to Tensor and
SymbolicTensor. Composites validate their own arguments first, so a bad call is
reported in the function's own name and PyTorch's wording, not in a constituent
op's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Composite:
    name: str
    fn: Callable
    function: bool = True      # ember.<name>
    method: bool = False       # Tensor.<name>(...)
    attribute: bool = False    # Tensor.<name>, a read-only property
    namespace: str = ""        # '' or 'nn.functional', 'linalg', ...
    replaces_op: bool = False  # ember.<name> is this wrapper of the registry op <name>


COMPOSITES: dict[str, Composite] = {}


def composite(name: str | None = None, *, function: bool = True, method: bool = False,
              attribute: bool = False, namespace: str = "", replaces_op: bool = False):
    """Register `fn` as PyTorch's `name` (default: the function's own name). With
    `replaces_op`, `fn` is the user-facing form of the registry op of the same name (it
    adds PyTorch's Python-level options, e.g. nonzero's as_tuple) and is exported in
    its place."""
    def register(fn: Callable) -> Callable:
        key = name or fn.__name__
        if key in COMPOSITES:
            raise KeyError(f"composite {key!r} is registered twice")
        COMPOSITES[key] = Composite(key, fn, function, method, attribute, namespace,
                                    replaces_op)
        fn.__name__ = key
        return fn
    return register


def install_methods(cls) -> None:
    """Attach composite methods and attributes to a tensor class (Tensor, SymbolicTensor)."""
    for c in COMPOSITES.values():
        if c.attribute:
            setattr(cls, c.name, property(c.fn, doc=c.fn.__doc__))
        elif c.method:
            setattr(cls, c.name, c.fn)


def export(namespace: dict, where: str = "") -> None:
    """Expose the composites of namespace `where` in a module's globals (unless taken)."""
    for c in COMPOSITES.values():
        if c.function and c.namespace == where and (c.replaces_op or c.name not in namespace):
            from .out_arg import with_out      # PyTorch's out= keyword, as registry ops take
            namespace[c.name] = with_out(c.fn)
