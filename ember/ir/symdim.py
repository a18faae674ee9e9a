"""Symbolic sizes in IR types: `f32[s0,128]`, `f32[128*s0]`, `i64[s0+1]`.

A `SymDim` is an affine expression `a*s0 + c` of the one symbol a dynamic-shape compile
introduces (frontend/compile_dynamic.py). It stands in a TensorMeta's shape and strides,
and in integer arguments (a `view`'s sizes), where the printer writes it as text: in a
type as the bare expression (`f32[s0,128]`), in an argument as `sym("128*s0")`; the
parser reads both back. It is deliberately not an int: a shape rule that computes with a
symbolic size fails loudly instead of computing with a made-up value, and
`instantiate(graph, n)` gives the concrete graph for s0 = n, which the ordinary
verifier checks (`verify_symbolic`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_TEXT = re.compile(r"^\s*(?:(-?\d+)\*)?s0\s*(?:([+-])\s*(\d+))?\s*$")


@dataclass(frozen=True)
class SymDim:
    """a*s0 + c (a != 0)."""
    a: int = 1
    c: int = 0

    @staticmethod
    def symbol() -> "SymDim":
        return SymDim(1, 0)

    @staticmethod
    def parse(text: str) -> "SymDim":
        m = _TEXT.match(text)
        if m is None:
            raise ValueError(f"not a symbolic size: {text!r} (expected s0, K*s0, s0+C or "
                             "K*s0-C)")
        a = int(m.group(1)) if m.group(1) else 1
        c = int(m.group(3)) * (-1 if m.group(2) == "-" else 1) if m.group(3) else 0
        return SymDim(a, c)

    def __mul__(self, k):
        if not isinstance(k, int) or isinstance(k, bool):
            return NotImplemented
        return SymDim(self.a * k, self.c * k) if k else 0

    __rmul__ = __mul__

    def __add__(self, k):
        if not isinstance(k, int) or isinstance(k, bool):
            return NotImplemented
        return SymDim(self.a, self.c + k)

    __radd__ = __add__

    def at(self, n: int) -> int:
        """The size when s0 = n."""
        return self.a * n + self.c

    def __str__(self) -> str:
        text = "s0" if self.a == 1 else f"{self.a}*s0"
        if self.c:
            text += f"+{self.c}" if self.c > 0 else f"-{-self.c}"
        return text

    def __repr__(self) -> str:
        return f"SymDim({self})"


def is_symbolic(value) -> bool:
    """Does `value` (a TensorMeta, a shape, nested arguments) contain a symbolic size?"""
    from .meta import TensorMeta
    if isinstance(value, SymDim):
        return True
    if isinstance(value, TensorMeta):
        return is_symbolic(value.shape) or is_symbolic(value.strides)
    if isinstance(value, (tuple, list)):
        return any(is_symbolic(v) for v in value)
    if isinstance(value, dict):
        return any(is_symbolic(v) for v in value.values())
    return False


def concrete(value, n: int):
    """`value` with every SymDim evaluated at s0 = n (TensorMetas, shapes, arguments)."""
    from .meta import TensorMeta
    if isinstance(value, SymDim):
        return value.at(n)
    if isinstance(value, TensorMeta):
        return TensorMeta(concrete(value.shape, n), value.dtype, value.device,
                          value.memory_format, concrete(value.strides, n))
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(concrete(v, n) for v in value))
    if isinstance(value, (tuple, list)):
        return type(value)(concrete(v, n) for v in value)
    if isinstance(value, dict):
        return {k: concrete(v, n) for k, v in value.items()}
    if isinstance(value, slice):
        return slice(concrete(value.start, n), concrete(value.stop, n), concrete(value.step, n))
    return value


def instantiate(graph, n: int):
    """A copy of `graph` with s0 = n everywhere (fused groups' graphs included)."""
    from .fused import FusedGroup
    from .graph import Graph, Node
    out = Graph()
    env: dict = {}
    for node in graph.nodes:
        remap = lambda v: env[v] if isinstance(v, Node) else concrete(v, n)  # noqa: E731
        target = node.target
        if isinstance(target, FusedGroup):
            target = FusedGroup(target.name, instantiate(target.graph, n), target.kind)
        args = _map(node.args, remap)
        kwargs = _map(node.kwargs, remap)
        new = out.create_node(node.op, target, args, kwargs, name=node.name)
        new.meta = dict(node.meta)
        if "val" in node.meta:
            new.meta["val"] = concrete(node.meta["val"], n)
        env[node] = new
    return out


def _map(value, fn):
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(_map(v, fn) for v in value))
    if isinstance(value, (tuple, list)):
        return type(value)(_map(v, fn) for v in value)
    if isinstance(value, dict):
        return {k: _map(v, fn) for k, v in value.items()}
    if isinstance(value, slice):
        return fn(value)
    return fn(value)


def verify_symbolic(graph, sizes=(2, 7)) -> None:
    """Verify a graph with symbolic sizes: the ordinary verifier (shape rules re-run
    against every recorded type) on the graph instantiated at each of `sizes`."""
    from .verifier import verify
    for n in sizes:
        verify(instantiate(graph, n))
