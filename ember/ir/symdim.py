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
        if isinstance(k, SymDim):       # a product of sizes (several symbols' strides)
            return sym_of(poly_mul(as_poly(self), as_poly(k)))
        if not isinstance(k, int) or isinstance(k, bool):
            return NotImplemented
        return SymDim(self.a * k, self.c * k) if k else 0

    __rmul__ = __mul__

    def __add__(self, k):
        if isinstance(k, SymDim):
            return sym_of(poly_add(as_poly(self), as_poly(k)))
        if not isinstance(k, int) or isinstance(k, bool):
            return NotImplemented
        return SymDim(self.a, self.c + k)

    __radd__ = __add__

    def at(self, n) -> int:
        """The size when s0 = n (or `n` a {symbol index: size} environment)."""
        if isinstance(n, dict):
            n = n[0]
        return self.a * n + self.c

    def __str__(self) -> str:
        text = "s0" if self.a == 1 else f"{self.a}*s0"
        if self.c:
            text += f"+{self.c}" if self.c > 0 else f"-{-self.c}"
        return text

    def __repr__(self) -> str:
        return f"SymDim({self})"


# --- several symbols: polynomials (ember.export's independent dynamic dimensions) -----------
# A polynomial is a dict {monomial: coefficient}, a monomial a sorted tuple of symbol
# indices (() the constant): s0*s1 + 2*s2 - 1 is {(0, 1): 1, (2,): 2, (): -1}.

def poly_add(p: dict, q: dict, sign: int = 1) -> dict:
    out = dict(p)
    for m, k in q.items():
        out[m] = out.get(m, 0) + sign * k
    return {m: k for m, k in out.items() if k}


def poly_mul(p: dict, q: dict) -> dict:
    out: dict = {}
    for m1, k1 in p.items():
        for m2, k2 in q.items():
            m = tuple(sorted(m1 + m2))
            out[m] = out.get(m, 0) + k1 * k2
    return {m: k for m, k in out.items() if k}


def poly_div(p: dict, q: dict):
    """p / q when q is one monomial dividing every term of p exactly, else None."""
    if len(q) != 1:
        return None
    (mq, kq), = q.items()
    out = {}
    for m, k in p.items():
        rest = list(m)
        for i in mq:
            if i not in rest:
                return None
            rest.remove(i)
        if kq == 0 or k % kq:
            return None
        out[tuple(rest)] = k // kq
    return out


def poly_at(p: dict, env: dict) -> int:
    total = 0
    for m, k in p.items():
        term = k
        for i in m:
            term *= env[i]
        total += term
    return total


def poly_substitute(p: dict, symbol: int, q: dict) -> dict:
    """p with `symbol` replaced by the polynomial q."""
    out: dict = {}
    for m, k in p.items():
        term = {(): k}
        for i in m:
            term = poly_mul(term, q if i == symbol else {(i,): 1})
        out = poly_add(out, term)
    return out


def poly_text(p: dict) -> str:
    parts = []
    for m, k in sorted(p.items(), key=lambda mk: (-len(mk[0]), mk[0])):
        names = "*".join(f"s{i}" for i in m)
        if not m:
            body = str(abs(k))
        else:
            body = names if abs(k) == 1 else f"{abs(k)}*{names}"
        parts.append(("-" if k < 0 else "+") + body)
    text = "".join(parts) or "+0"
    return text[1:] if text[0] == "+" else text


_TERM = re.compile(r"([+-]?)\s*(?:(\d+)\*)?((?:s\d+\*)*s\d+)|([+-]?)\s*(\d+)")


def poly_parse(text: str) -> dict:
    p: dict = {}
    pos, text = 0, text.replace(" ", "")
    while pos < len(text):
        m = _TERM.match(text, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"not a symbolic size: {text!r}")
        if m.group(3):
            k = int(m.group(2) or 1) * (-1 if m.group(1) == "-" else 1)
            mono = tuple(sorted(int(x[1:]) for x in m.group(3).split("*")))
        else:
            k, mono = int(m.group(5)) * (-1 if m.group(4) == "-" else 1), ()
        p = poly_add(p, {mono: k})
        pos = m.end()
    return p


@dataclass(frozen=True, init=False)
class SymExpr(SymDim):
    """A size that is a polynomial of several symbols (s0*s1, 2*s1+1): what ember.export
    puts in a program's types when dynamic_shapes names independent dimensions.
    Instantiated with an environment {symbol index: size}."""
    terms: tuple = ()

    def __init__(self, poly: dict):
        object.__setattr__(self, "terms", tuple(sorted(poly.items())))
        object.__setattr__(self, "a", 0)
        object.__setattr__(self, "c", 0)

    @property
    def poly(self) -> dict:
        return dict(self.terms)

    def at(self, n) -> int:
        return poly_at(self.poly, n if isinstance(n, dict) else {0: n})

    def __mul__(self, k):
        if isinstance(k, bool) or not isinstance(k, (int, SymDim)):
            return NotImplemented
        return sym_of(poly_mul(self.poly, as_poly(k)))

    __rmul__ = __mul__

    def __add__(self, k):
        if isinstance(k, bool) or not isinstance(k, (int, SymDim)):
            return NotImplemented
        return sym_of(poly_add(self.poly, as_poly(k)))

    __radd__ = __add__

    def __str__(self) -> str:
        return poly_text(self.poly)

    def __repr__(self) -> str:
        return f"SymExpr({self})"


def as_poly(value) -> dict:
    """An int, SymDim or SymExpr as a polynomial."""
    if isinstance(value, SymExpr):
        return value.poly
    if isinstance(value, SymDim):
        return poly_add({(0,): value.a}, {(): value.c})
    return {(): int(value)} if value else {}


def sym_of(poly: dict):
    """The IR value of a polynomial: an int (constant), a SymDim (a*s0 + c) or a SymExpr."""
    poly = {m: k for m, k in poly.items() if k}
    if all(not m for m in poly):
        return poly.get((), 0)
    if all(m in ((), (0,)) for m in poly):
        return SymDim(poly[(0,)], poly.get((), 0))
    return SymExpr(poly)


def parse_size(text: str):
    """A symbolic size as printed (`s0`, `2*s0+1`, `s0*s1-3`)."""
    if _TEXT.match(text):
        return SymDim.parse(text)
    return sym_of(poly_parse(text))


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

    def __new__(cls, value: int, a, c: int = 0, poly: dict | None = None):
        obj = int.__new__(cls, value)
        if poly is not None:        # several symbols (ember.export): a/c of s0 if affine
            a, c = _affine_s0(poly)
        elif a is not None:
            poly = poly_add({(0,): a}, {(): c})
        obj.a, obj.c, obj.poly = a, c, poly
        return obj

    def __reduce__(self):
        return (TracedSize, (int(self), self.a, self.c, self.poly))

    def __repr__(self) -> str:
        return int.__repr__(self)

    __str__ = __repr__
    __hash__ = int.__hash__

    # arithmetic keeps the polynomial (and so the affine form) where there is one
    def _combine(self, other, value, combine):
        if isinstance(other, bool) or not isinstance(other, int):
            return value
        q = other.poly if isinstance(other, TracedSize) else {(): int(other)}
        if self.poly is None or q is None:
            return _traced_poly(value, None)
        return _traced_poly(value, combine(self.poly, q))

    def __add__(self, o):
        return self._combine(o, int.__add__(self, o), poly_add)

    __radd__ = __add__

    def __sub__(self, o):
        return self._combine(o, int.__sub__(self, o), lambda p, q: poly_add(p, q, -1))

    def __rsub__(self, o):
        return self._combine(o, int.__rsub__(self, o), lambda p, q: poly_add(q, p, -1))

    def __mul__(self, o):
        return self._combine(o, int.__mul__(self, o), poly_mul)

    __rmul__ = __mul__

    def __neg__(self):
        return _traced_poly(-int(self), None if self.poly is None else
                            poly_mul(self.poly, {(): -1}))

    def _nonlinear(op):
        def method(self, o):
            value = getattr(int, op)(self, o)
            return _traced_poly(value, None) if isinstance(value, int) else value
        return method

    def __floordiv__(self, o):
        value = int.__floordiv__(self, o)
        if isinstance(value, int) and not isinstance(o, bool) and isinstance(o, int):
            q = o.poly if isinstance(o, TracedSize) else {(): int(o)}
            exact = poly_div(self.poly, q) if self.poly is not None and q is not None \
                else None
            return _traced_poly(value, exact)
        return value

    def __truediv__(self, o):
        value = int.__truediv__(self, o)
        return _SizeQuotient(value) if _RECORDING is not None else value

    __rfloordiv__ = _nonlinear("__rfloordiv__")
    __mod__, __rmod__ = _nonlinear("__mod__"), _nonlinear("__rmod__")
    __pow__ = _nonlinear("__pow__")

    # comparisons: recorded where the outcome may change with s0
    def _compare(op):
        def method(self, o):
            result = getattr(int, op)(self, o)
            if _EQUATIONS is not None and op in ("__eq__", "__ne__"):
                # several symbols: sizes found equal are an equation (torch's guard that
                # specializes or relates them), not a branch; sizes 0 and 1 are never
                # dynamic, so comparing with them decides nothing
                if result is (op == "__eq__"):
                    _equal_sizes(self, o)
                    return result
                if not isinstance(o, TracedSize) and o in (0, 1):
                    if _RECORDING is not None:
                        _note_one(f"{op.strip('_')} with {o!r}")
                    return result
            if _RECORDING is not None and _depends(self, o):
                return _decision(result, op.strip("_"), self, o)
            return result
        return method

    __eq__, __ne__ = _compare("__eq__"), _compare("__ne__")
    __lt__, __le__ = _compare("__lt__"), _compare("__le__")
    __gt__, __ge__ = _compare("__gt__"), _compare("__ge__")

    def __bool__(self):
        if _RECORDING is not None and _depends(self, 0):
            _note("truth value")
        return int(self) != 0


class SizeCondition(int):
    """The outcome of comparing a dynamic size in the model's code while a dynamic shape
    is traced (`x.shape[0] > 2`). It is recorded as a decision on the size, as any such
    comparison is, unless `cond(x.shape[0] > 2, f, g, ...)` takes it unused: cond keeps
    both branches and picks one at run time from the size (torch.export keeps such a
    predicate symbolic), and withdraws the record. An int 0/1: bool cannot be
    subclassed."""

    def __new__(cls, result: bool, op: str, left, right, record, book: list):
        obj = int.__new__(cls, bool(result))
        obj.op, obj.left, obj.right, obj.record, obj.used = op, left, right, record, False
        obj.book = book             # the list that holds the record
        return obj

    def __repr__(self) -> str:
        return repr(int(self) == 1)

    __str__ = __repr__

    def __reduce__(self):
        return (bool, (int(self),))

    def __bool__(self):
        self.used = True
        return int(self) == 1

    def withdraw(self) -> bool:
        """Drop this comparison's record (cond decides at run time); False when Python
        already branched on it or the trace that recorded it is over."""
        if self.used or self.book is not _RECORDING and self.book is not _EXCLUSIONS:
            return False
        for i in range(len(self.book) - 1, -1, -1):
            if self.book[i] is self.record:
                del self.book[i]
                return True
        return False


def _decision(result: bool, op: str, left, right):
    """A comparison whose outcome may change with the symbols, recorded where the
    model's code made it (ember's own shape code compares sizes only to compute them).
    One whose outcome the symbols' declared ranges fix (`x.shape[0] > 4` with
    Dim("b", min=5)) decides nothing: torch's guard is then statically true too."""
    frame = sys._getframe(2)
    name = frame.f_code.co_filename
    if name.startswith(_EMBER_DIR) and not name.startswith(_USER_LIKE):
        return result
    if _settled_by_ranges(op, left, right):
        return result
    record = f"{name.rsplit('/', 1)[-1]}:{frame.f_lineno} ({op} with {right!r})"
    if _EXCLUSIONS is not None and not isinstance(right, (bool, TracedSize)) and \
            isinstance(right, int) and (op not in ("eq", "ne") or result is (op == "ne")):
        # a size found unequal to a constant (torch's guard `s0 != 4`) or on one side
        # of one (`s0 > 4`: a Dim.AUTO range narrows), not a branch: export decides
        record = (left.poly, int(right), record, op, bool(result))
        _EXCLUSIONS.append(record)
        return SizeCondition(result, op, left, right, record, _EXCLUSIONS)
    _RECORDING.append(record)
    return SizeCondition(result, op, left, right, record, _RECORDING)


class _SizeQuotient(float):
    """`size / k` while a dynamic size is traced: a float, which becomes a size again
    only through round/int/floor/ceil/trunc. That rounding is not a polynomial of the
    symbol, and at the few sizes traced it can look constant (round(s0 / 2) is 2 at
    s0 = 3, 4, 5): it is recorded as a decision on the size, so export refuses it with
    the user's line instead of baking in a wrong constant."""

    def _rounded(how):
        def method(self, *args):
            _note(how)
            return getattr(float, f"__{how}__")(self, *args)
        return method

    __round__, __int__, __trunc__ = _rounded("round"), _rounded("int"), _rounded("trunc")
    __floor__, __ceil__ = _rounded("floor"), _rounded("ceil")


# (poly, constant, where, op, outcome) of sizes the model's code compared with a
# constant (found unequal, or on one side of it), while ember.export's several-symbol
# trace collects them (None: recorded as decisions)
_EXCLUSIONS: list | None = None


@contextlib.contextmanager
def recording_exclusions():
    """Collect, in the list this yields, the sizes compared unequal to a constant."""
    global _EXCLUSIONS
    previous, _EXCLUSIONS = _EXCLUSIONS, []
    try:
        yield _EXCLUSIONS
    finally:
        _EXCLUSIONS = previous


# the declared ranges {symbol index: (lo, hi)} of the export tracing now (None: unknown)
_RANGES: dict | None = None


@contextlib.contextmanager
def known_ranges(ranges: dict):
    """Comparisons traced inside see the symbols' ranges: those the ranges settle are
    not recorded as decisions on the size."""
    global _RANGES
    previous, _RANGES = _RANGES, dict(ranges)
    try:
        yield
    finally:
        _RANGES = previous


def _poly_interval(poly: dict, ranges: dict):
    """(lo, hi) a polynomial of sizes (each symbol in [lo, hi], lo >= 0) can take, by
    interval arithmetic (sound, maybe wider); None if a symbol has no known range."""
    lo = hi = 0
    for monomial, coef in poly.items():
        m_lo = m_hi = 1
        for k in monomial:
            if k not in ranges:
                return None
            m_lo, m_hi = m_lo * ranges[k][0], m_hi * ranges[k][1]
        lo, hi = (lo + coef * m_lo, hi + coef * m_hi) if coef >= 0 else \
            (lo + coef * m_hi, hi + coef * m_lo)
    return lo, hi


def _settled_by_ranges(op: str, left, right) -> bool:
    if _RANGES is None or left.poly is None or isinstance(right, bool) or \
            not isinstance(right, int):
        return False
    other = right.poly if isinstance(right, TracedSize) else {(): int(right)}
    if other is None:
        return False
    interval = _poly_interval(poly_add(left.poly, other, -1), _RANGES)
    if interval is None:
        return False
    lo, hi = interval              # of left - right
    return {"gt": lo > 0 or hi <= 0, "ge": lo >= 0 or hi < 0,
            "lt": hi < 0 or lo >= 0, "le": hi <= 0 or lo > 0,
            "eq": lo > 0 or hi < 0, "ne": lo > 0 or hi < 0}.get(op, False)


def _affine_s0(poly: dict):
    """(a, c) when poly is a*s0 + c, else (None, 0)."""
    if all(m in ((), (0,)) for m in poly):
        return poly.get((0,), 0), poly.get((), 0)
    return None, 0


def _traced_poly(value: int, poly):
    """value as a TracedSize of `poly` (None: not a polynomial of the symbols), or the
    plain int when poly is a constant."""
    if poly is not None and all(not m for m in poly):
        return value
    return TracedSize(value, None, 0, poly) if poly is not None else TracedSize(value, None)


def _depends(x: TracedSize, other) -> bool:
    if isinstance(other, TracedSize):
        if x.poly is None or other.poly is None:
            return True
        return any(m for m in poly_add(x.poly, other.poly, -1))
    return isinstance(other, int)          # a TracedSize always varies with s0


# --- equal sizes seen while tracing (ember.export's several symbols) -------------------------
# ember.export traces with an independent symbol per dynamic dimension; a shape rule that
# finds two of them equal (a broadcast, a matmul's inner size, a Linear's in_features)
# is an equation the exported program must keep: it unifies the symbols or fixes one.
_EQUATIONS: list | None = None


def _equal_sizes(x: TracedSize, other) -> None:
    if isinstance(other, bool) or not isinstance(other, int) or x.poly is None:
        return
    q = other.poly if isinstance(other, TracedSize) else {(): int(other)}
    if q is not None and poly_add(x.poly, q, -1):
        _EQUATIONS.append((x.poly, q))


@contextlib.contextmanager
def recording_equal_sizes():
    """Collect, in the list this yields, (poly, poly) pairs traced code found equal."""
    global _EQUATIONS
    previous, _EQUATIONS = _EQUATIONS, []
    try:
        yield _EQUATIONS
    finally:
        _EQUATIONS = previous


def _note(what: str) -> None:
    frame = sys._getframe(2)
    name = frame.f_code.co_filename
    if name.startswith(_EMBER_DIR) and not name.startswith(_USER_LIKE):
        return
    _RECORDING.append(f"{name.rsplit('/', 1)[-1]}:{frame.f_lineno} ({what})")


def note_decision(what: str, *values) -> None:
    """A choice made on traced sizes inside ember on the user's behalf (sym_min,
    sym_max): recorded at the user's line, as a comparison in the model's code is, when
    its outcome may change with the symbols."""
    if _RECORDING is None:
        return
    traced = [v for v in values if isinstance(v, TracedSize)]
    if not traced or not any(_depends(traced[0], v) for v in values if v is not traced[0]):
        return
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_EMBER_DIR) and \
            not frame.f_code.co_filename.startswith(_USER_LIKE):
        frame = frame.f_back
    if frame is not None:
        _RECORDING.append(f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:"
                          f"{frame.f_lineno} ({what})")


# comparisons with 0 or 1 in the model's code that a several-symbol trace let pass (its
# sizes are >= 2 there): a call of size 1 would need them, so such a program refuses it
_ONES: list = []


def _note_one(what: str) -> None:
    frame = sys._getframe(2)
    name = frame.f_code.co_filename
    if name.startswith(_EMBER_DIR) and not name.startswith(_USER_LIKE):
        return
    _ONES.append(f"{name.rsplit('/', 1)[-1]}:{frame.f_lineno} ({what})")


def compared_with_one() -> list:
    """Where traced code compared a dynamic size with 0 or 1 (cleared by the caller)."""
    return _ONES


@contextlib.contextmanager
def recording_size_comparisons():
    """Collect, in the list this yields, where traced code compared a dynamic size."""
    global _RECORDING
    previous, _RECORDING = _RECORDING, []
    try:
        yield _RECORDING
    finally:
        _RECORDING = previous
