"""Symbolic sizes in IR types: `f32[s0,128]`, `f32[128*s0]`, `i64[s0+1]`.

A `SymDim` is an affine expression `a*s0 + c` of the one symbol a dynamic-shape compile
introduces (compiler/compile_dynamic.py). It stands in a TensorMeta's shape and strides,
and in integer arguments (a `view`'s sizes), where the printer writes it as text: in a
type as the bare expression (`f32[s0,128]`), in an argument as `sym("128*s0")`; the
parser reads both back. It is deliberately not an int: a shape rule that computes with a
symbolic size fails loudly instead of computing with a made-up value, and
`instantiate(graph, n)` gives the concrete graph for s0 = n, which the ordinary
verifier checks (`verify_symbolic`).

`TracedSize` is the other half: the int a traced function reads as a size while a
dynamic-shape compile traces it at a probe size; it knows its affine form and records
comparisons that could branch differently at another size.
"""
from __future__ import annotations

import contextlib
import re
import sys
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


# --- sizes read while tracing at a probe size -----------------------------------------------
# A dynamic-shape compile traces the function at three sizes of s0 and assumes the graph is
# affine in s0 in between. Python code that *compares* a size (`if x.shape[0] > 4`,
# `min(n, 4)`, `n == 1`) can take another branch at sizes not traced, so those comparisons
# are recorded and the compile specializes instead (torch installs a guard there).
_RECORDING: list | None = None
_EMBER_DIR = __file__.rsplit("/ir/", 1)[0] + "/"
# ember's own layer code branches as user code does; the rest of ember (shape rules,
# dispatch, passes) compares sizes only to compute or check shapes
_USER_LIKE = (_EMBER_DIR + "frontend/nn/", _EMBER_DIR + "frontend/models/",
              _EMBER_DIR + "models/")


class TracedSize(int):
    """A size at a probe trace: an int (its value there) that knows it equals a*s0 + c
    (`a` None: not affine in s0), stays one through + - * with ints, and records
    comparisons whose outcome depends on s0."""

    def __new__(cls, value: int, a, c: int = 0):
        obj = int.__new__(cls, value)
        obj.a, obj.c = a, c
        return obj

    def __reduce__(self):
        return (TracedSize, (int(self), self.a, self.c))

    def __repr__(self) -> str:
        return int.__repr__(self)

    __str__ = __repr__
    __hash__ = int.__hash__

    # arithmetic keeps the affine form where there is one
    def _combine(self, other, value, a_of, c_of):
        if isinstance(other, TracedSize):
            a = None if self.a is None or other.a is None else a_of(other.a)
            return _traced(value, a, c_of(other.c))
        if isinstance(other, int) and not isinstance(other, bool):
            return _traced(value, None if self.a is None else a_of(0), c_of(other))
        return value

    def __add__(self, o):
        return self._combine(o, int.__add__(self, o), lambda oa: self.a + oa,
                             lambda oc: self.c + oc)

    __radd__ = __add__

    def __sub__(self, o):
        return self._combine(o, int.__sub__(self, o), lambda oa: self.a - oa,
                             lambda oc: self.c - oc)

    def __rsub__(self, o):
        return self._combine(o, int.__rsub__(self, o), lambda oa: oa - self.a,
                             lambda oc: oc - self.c)

    def __mul__(self, o):
        value = int.__mul__(self, o)
        if isinstance(o, TracedSize):
            return _traced(value, None, 0)          # s0 * s0: not affine
        if isinstance(o, int) and not isinstance(o, bool):
            return _traced(value, None if self.a is None else self.a * o, self.c * o)
        return value

    __rmul__ = __mul__

    def __neg__(self):
        return _traced(-int(self), None if self.a is None else -self.a, -self.c)

    def _nonlinear(op):
        def method(self, o):
            value = getattr(int, op)(self, o)
            return _traced(value, None, 0) if isinstance(value, int) else value
        return method

    __floordiv__, __rfloordiv__ = _nonlinear("__floordiv__"), _nonlinear("__rfloordiv__")
    __mod__, __rmod__ = _nonlinear("__mod__"), _nonlinear("__rmod__")
    __pow__ = _nonlinear("__pow__")

    # comparisons: recorded where the outcome may change with s0
    def _compare(op):
        def method(self, o):
            result = getattr(int, op)(self, o)
            if _RECORDING is not None and _depends(self, o):
                _note(f"{op.strip('_')} with {o!r}")
            return result
        return method

    __eq__, __ne__ = _compare("__eq__"), _compare("__ne__")
    __lt__, __le__ = _compare("__lt__"), _compare("__le__")
    __gt__, __ge__ = _compare("__gt__"), _compare("__ge__")

    def __bool__(self):
        if _RECORDING is not None and _depends(self, 0):
            _note("truth value")
        return int(self) != 0


def _traced(value: int, a, c: int):
    return value if a == 0 else TracedSize(value, a, c)


def _depends(x: TracedSize, other) -> bool:
    if isinstance(other, TracedSize):
        return x.a is None or other.a is None or x.a != other.a
    return isinstance(other, int)          # a TracedSize always varies with s0


def _note(what: str) -> None:
    frame = sys._getframe(2)
    name = frame.f_code.co_filename
    if name.startswith(_EMBER_DIR) and not name.startswith(_USER_LIKE):
        return
    _RECORDING.append(f"{name.rsplit('/', 1)[-1]}:{frame.f_lineno} ({what})")


@contextlib.contextmanager
def recording_size_comparisons():
    """Collect, in the list this yields, where traced code compared a dynamic size."""
    global _RECORDING
    previous, _RECORDING = _RECORDING, []
    try:
        yield _RECORDING
    finally:
        _RECORDING = previous
