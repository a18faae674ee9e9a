"""ember.export's `dynamic_shapes` with several symbols: independent `Dim`s, `Dim.AUTO` /
`Dim.DYNAMIC` on dimensions of different sizes, derived dims (`2*d`, `d+1`).

    ep = ember.export(model, (w, x, y, z), dynamic_shapes={"w": (Dim.AUTO, Dim.AUTO), ...})
    ep.range_constraints        # {'s0': ValueRange(2, inf), 's1': ...}: the free symbols
    ep.dim_exprs                # {(input, dim): polynomial}: s0, s1, s0*s1, 2*s1+1, ...

Each marked dimension starts as a symbol of its own (a named Dim: one symbol per name;
a derived dim: a*root + c). The model is traced at the example sizes with every size a
TracedSize that knows its polynomial (ir/symdim.py); a shape rule that finds two sizes
equal (a broadcast, a matmul's inner size, a Linear's in_features) records an equation,
which unifies two symbols (x's dim is y's), defines one by the others (z's dim is
s0*s1, as a flatten makes it) or fixes a symbol to its example size (the Linear's 5).
Torch's export derives the same facts from its guards. Fixing a named Dim or a
Dim.DYNAMIC is refused (torch raises too); Dim.AUTO dims become static. When no new
equation comes, the model is traced again with each free symbol moved alone and with
all moved together, and every integer of the graph (types, view sizes) must equal its
polynomial at each of those sizes, else the export is refused naming the op. The result
keeps `symbolic_graph` (SymExpr in its types: `f32[s0*s1]`); `graph` is it at the
example sizes. A Python branch on a dynamic size is refused, as with one symbol.

A program with one symbol whose dims all take it as it is goes through
compiler/export_dynamic.py instead (ember.aot packages those; several symbols it refuses).
"""
from __future__ import annotations

import math

from ..ir.errors import EmberError, GuardError, UserError
from ..ir.graph import Graph, Node, OpKind
from ..ir.meta import TensorMeta
from ..ir.symdim import (TracedSize, known_ranges, poly_add, poly_at, poly_substitute,
                         poly_text, recording_equal_sizes, recording_exclusions,
                         recording_size_comparisons, sym_of)
from .export_dynamic import (MIN_SIZE, DerivedDim, Dim, SymbolKey, ValueRange, _DimHint,
                             small_size_runs)

MAX_ROUNDS = 32          # equations solved one per trace; a model has few


class _Symbol:
    """One symbol of the export: its range and how the user marked it."""

    def __init__(self, name: str, kind: str, lo: int, hi, example: int):
        self.name, self.kind, self.lo, self.hi, self.example = name, kind, lo, hi, example

    @property
    def upper(self):
        return math.inf if self.hi is None else self.hi


def marks_of(per_input: list, names: list[str], leaves: list) -> list[tuple]:
    """[(input index, dim, mark)] with mark a Dim, a DerivedDim or Dim.AUTO/DYNAMIC."""
    out = []
    for i, (spec, tensor) in enumerate(zip(per_input, leaves)):
        if spec is None:
            continue
        if isinstance(spec, (tuple, list)):
            spec = dict(enumerate(spec))
        if not isinstance(spec, dict):
            raise UserError(f"ember.export: dynamic_shapes for {names[i]!r} must be a dict "
                             f"{{dim: Dim}}, a tuple of Dim/None or None, got {spec!r}")
        for d, mark in spec.items():
            if mark is None or mark is Dim.STATIC:
                continue
            if not isinstance(mark, (Dim, DerivedDim, _DimHint)):
                raise UserError(f"ember.export: dynamic_shapes for {names[i]!r} dim {d}: "
                                 f"expected ember.export.Dim, got {mark!r}")
            if not isinstance(d, int) or not -tensor.ndim <= d < tensor.ndim:
                raise UserError(f"ember.export: dynamic_shapes for {names[i]!r}: dim {d!r} "
                                 f"is out of range for a tensor with {tensor.ndim} dimensions")
            if mark is Dim.AUTO and tensor.shape[d] < MIN_SIZE:
                continue            # torch's AUTO: a size 0 or 1 stays static
            out.append((i, d % tensor.ndim, mark))
    return out


def one_symbol(marks: list) -> bool:
    """Do the marks make one symbol that every marked dim takes as it is (the case
    compiler/export_dynamic.py handles, ember.aot packages)?"""
    if len(marks) == 1:
        return not isinstance(marks[0][2], DerivedDim)
    return all(isinstance(m, Dim) for _, _, m in marks) and \
        len({(m.name, m.min, m.max) for _, _, m in marks}) == 1


class _Export:
    """The state of one several-symbol export (see the module doc)."""

    def __init__(self, marks, leaves, names, trace):
        self.leaves, self.names, self.trace = leaves, names, trace
        self.symbols: dict[int, _Symbol] = {}
        self.dims: dict[tuple, dict] = {}            # (input, dim) -> polynomial
        self.excluded: dict[int, dict] = {}          # symbol -> {size: where} (guards)
        self.narrowed = False
        by_name: dict = {}
        for i, d, mark in marks:
            size = leaves[i].shape[d]
            where = f"dim {d} of '{names[i]}'"
            if isinstance(mark, _DimHint):
                k = self._new(_Symbol(f"{mark.name.lower()}:{where}", mark.name.lower(),
                                      MIN_SIZE, None, size), where)
                self.dims[(i, d)] = {(k,): 1}
                continue
            root, a, c = (mark.root, mark.a, mark.c) if isinstance(mark, DerivedDim) \
                else (mark, 1, 0)
            if root.name not in by_name:
                if (size - c) % a:
                    raise UserError(f"ember.export: {where} has size {size}, which is not "
                                     f"{mark} for any size of {root.name!r}")
                by_name[root.name] = self._new(
                    _Symbol(root.name, "named", root.min, root.max, (size - c) // a), where)
            k = by_name[root.name]
            self.dims[(i, d)] = poly_add({(k,): a}, {(): c})
            want = a * self.symbols[k].example + c
            if size != want:
                raise UserError(f"ember.export: {where} has size {size} in the example "
                                 f"inputs, but {mark} is {want} there (the dims marked with "
                                 f"{root.name!r} disagree)")

    def _new(self, symbol: _Symbol, where: str) -> int:
        if not symbol.lo <= symbol.example <= symbol.upper:
            raise UserError(f"ember.export: {where} has size {symbol.example} in the "
                             f"example inputs, outside {symbol.name!r}'s range "
                             f"[{symbol.lo}, {symbol.hi}]")
        if symbol.example < MIN_SIZE:
            raise UserError(f"ember.export: {where} has size {symbol.example} in the "
                             "example inputs; sizes 0 and 1 are specialized (export with an "
                             "example of size 2 or more to make it dynamic)")
        k = len(self.symbols)
        self.symbols[k] = symbol
        return k

    # --- tracing at an environment {symbol: size} ------------------------------------------
    def env(self, moved: dict | None = None) -> dict:
        env = {k: s.example for k, s in self.symbols.items()}
        env.update(moved or {})
        return env

    def traced(self, env: dict):
        from ..ir.meta import contiguous_strides
        probe = []
        for i, t in enumerate(self.leaves):
            shape = list(t.shape)
            for d in range(len(shape)):
                poly = self.dims.get((i, d))
                if poly is not None and any(m for m in poly):
                    shape[d] = TracedSize(poly_at(poly, env), None, 0, poly)
                elif poly is not None:
                    shape[d] = poly.get((), 0)
            strides = tuple(t.stride()) if all(isinstance(s, int) and
                                               not isinstance(s, TracedSize) for s in shape) \
                else contiguous_strides(tuple(shape))
            if any(isinstance(s, TracedSize) for s in shape) and \
                    tuple(t.stride()) != contiguous_strides(tuple(t.shape)):
                raise UserError(f"ember.export: input '{self.names[i]}' has strides "
                                 f"{list(t.stride())}; dynamic dimensions take contiguous "
                                 "inputs")
            probe.append(TensorMeta(tuple(shape), t.dtype, str(t.device), _layout(t),
                                    strides))
        ranges = {k: (s.lo, s.upper) for k, s in self.symbols.items()}
        with recording_equal_sizes() as equations, recording_size_comparisons() as compared, \
                known_ranges(ranges), recording_exclusions() as unequal:
            traced = self.trace(probe)
        if compared:
            raise UserError(f"ember.export: cannot make {self.where()} dynamic: the model "
                             f"compares the size at {compared[0]} (a branch that may change "
                             "with it)")
        if env == self.env():                   # the example's trace: its guards hold
            self.excluded, self.narrowed = self._guards(unequal)
        return traced, equations

    def _guards(self, compared: list) -> tuple[dict, bool]:
        """torch's guards on a Dim.AUTO/DYNAMIC dim from the sizes the code compared with
        a constant: found unequal (`x.size(0) not in [4, 5]`: `s0 != 4`, checked per
        call; returned as {symbol: {size: where}}) or on one side of it (`if
        x.shape[0] > 4`, `torch._check(x.shape[0] <= 10)`: the symbol's range narrows
        to that side, as torch's does; True when one did, to trace again). On a named
        Dim, or on a size of several symbols, the comparison is refused as a branch
        (torch refuses the named Dim)."""
        from fractions import Fraction
        excluded: dict = {}
        narrowed = False
        for poly, constant, where, op, outcome in compared:
            linear = [m for m in poly if m]
            s = linear[0][0] if len(linear) == 1 and len(linear[0]) == 1 else None
            if s is None or self.symbols[s].kind == "named":
                raise UserError(f"ember.export: cannot make {self.where()} dynamic: the "
                                f"model compares the size at {where} (a branch that may "
                                "change with it)")
            a, c = poly[linear[0]], poly.get((), 0)
            if op in ("eq", "ne"):
                if (constant - c) % a == 0:
                    excluded.setdefault(s, {})[(constant - c) // a] = where
                continue
            if not outcome:             # the side that holds: s0 > 4 false is s0 <= 4
                op = {"lt": "ge", "le": "gt", "gt": "le", "ge": "lt"}[op]
            if a < 0:                   # a*s + c OP k with a < 0: flip dividing by a
                op = {"lt": "gt", "le": "ge", "gt": "lt", "ge": "le"}[op]
            q = Fraction(constant - c, a)
            symbol = self.symbols[s]
            lo, hi = symbol.lo, symbol.hi
            if op == "gt":
                lo = max(lo, math.floor(q) + 1)
            elif op == "ge":
                lo = max(lo, math.ceil(q))
            elif op == "lt":
                hi = math.ceil(q) - 1 if hi is None else min(hi, math.ceil(q) - 1)
            else:
                hi = math.floor(q) if hi is None else min(hi, math.floor(q))
            if (lo, hi) != (symbol.lo, symbol.hi):
                symbol.lo, symbol.hi, narrowed = lo, hi, True
        return excluded, narrowed

    def where(self) -> str:  # noqa: D401 - the dims marked dynamic, as words
        return ", ".join(f"dim {d} of '{self.names[i]}'" for (i, d), p in self.dims.items()
                         if any(m for m in p))

    def free(self) -> list[int]:
        return sorted({i for p in self.dims.values() for m in p for i in m})

    # --- equations ---------------------------------------------------------------------------
    def solve(self, equations: list) -> bool:
        """Apply the first equation that says something new; False when none does."""
        for p, q in equations:
            diff = poly_add(p, q, -1)
            if not diff:
                continue
            if all(not m for m in diff):
                continue            # two sizes that differ by a constant: no relation
            self._apply(diff, p, q)
            return True
        return False

    def _apply(self, diff: dict, p: dict, q: dict) -> None:
        diff = _without_common_symbols(diff)
        # solvable for s: a term +-s (degree one) and s nowhere else in diff
        candidates = [m[0] for m, k in diff.items() if len(m) == 1 and abs(k) == 1 and
                      sum(m[0] in other for other in diff) == 1]
        if not candidates:
            raise UserError(f"ember.export: cannot make {self.where()} dynamic: the model "
                             f"needs {poly_text(p)} == {poly_text(q)}, which ember cannot "
                             "solve for one dimension")
        rank = {"auto": 0, "dynamic": 1, "named": 2}
        # an AUTO symbol first; between equals, the later one (z's dim := s0*s1)
        s = min(candidates, key=lambda k: (rank[self.symbols[k].kind], -k))
        k = diff[(s,)]
        rest = {m: -v * k for m, v in diff.items() if m != (s,)}    # s = rest
        symbol = self.symbols[s]
        constant = all(not m for m in rest)
        target = next(iter(rest)) if len(rest) == 1 else ()
        unify = len(target) == 1 and rest[target] == 1       # s := another symbol
        # torch unifies named Dims found equal (one symbol, ranges intersected) and
        # refuses a Dim or Dim.DYNAMIC that the code fixes to a constant or relates
        # otherwise; Dim.AUTO takes whatever the code says
        if symbol.kind == "named" or (symbol.kind == "dynamic" and not unify):
            raise UserError(self._violation(symbol, rest))
        for key, poly in self.dims.items():
            self.dims[key] = poly_substitute(poly, s, rest)
        if unify:                                       # both ranges hold
            other = self.symbols[target[0]]
            other.lo = max(other.lo, symbol.lo)
            other.hi = symbol.hi if other.hi is None else \
                other.hi if symbol.hi is None else min(other.hi, symbol.hi)
            if other.kind == "auto" and symbol.kind != "auto":
                other.kind, other.name = symbol.kind, symbol.name
            if other.lo > other.upper:
                raise UserError(f"ember.export: {symbol.name!r} and {other.name!r} must be "
                                 "equal, but their ranges do not meet")

    def _violation(self, symbol: _Symbol, rest: dict) -> str:
        text = poly_text(rest) if any(m for m in rest) else str(rest.get((), 0))
        names = {f"s{k}": self.symbols[k].name for k in self.symbols}
        for code, name in sorted(names.items(), key=lambda kv: -len(kv[0])):
            text = text.replace(code, name if ":" not in name else f"({name})")
        what = symbol.name if symbol.kind == "named" else f"{symbol.name[8:]} (Dim.DYNAMIC)"
        if all(not m for m in rest):
            return (f"ember.export: constraints violated: you marked {what} as dynamic but "
                    f"your code specialized it to be a constant ({text}); mark it static "
                    "(None, Dim.STATIC) or Dim.AUTO")
        if len(rest) == 1 and rest.get(next(iter(rest))) == 1:
            return (f"ember.export: constraints violated: the values of {what} and {text} "
                    f"must always be equal; use one Dim for both ({what} = {text})")
        return (f"ember.export: constraints violated: {what} must equal {text} in your "
                "code; use that expression (a derived Dim) for it")

    def specialize(self, s: int) -> None:
        value = self.symbols[s].example
        for key, poly in self.dims.items():
            self.dims[key] = poly_substitute(poly, s, {(): value})


def export_several(marks, leaves, names, trace):
    """(traced at the example sizes, symbolic graph, dims {(i, d): poly}, symbols
    {index: _Symbol}, whether a call may take size 1) for marks making several
    symbols; see the module doc."""
    from ..ir.symdim import compared_with_one
    compared_with_one().clear()
    state = _Export(marks, leaves, names, trace)
    for _ in range(MAX_ROUNDS):
        base, equations = state.traced(state.env())
        if state.solve(equations) or state.narrowed:
            continue
        moved = _probe_envs(state)
        failed, probes = None, []
        for s, env in moved:
            try:
                traced, _ = state.traced(env)
            except EmberError:
                raise
            except Exception as err:        # noqa: BLE001 - the size cannot move
                failed = (s, err)
                break
            probes.append((env, traced))
        if failed is None:
            break
        s, err = failed
        symbol = state.symbols[s] if s is not None else None
        if symbol is None or symbol.kind != "auto":
            who = symbol.name if symbol is not None else "the dynamic dims"
            raise UserError(f"ember.export: cannot make {who} dynamic: tracing at another "
                             f"size fails ({type(err).__name__}: {err})") from None
        state.specialize(s)
    else:
        raise UserError("ember.export: dynamic_shapes: the size equations do not settle")
    free = state.free()
    renumber = {old: new for new, old in enumerate(free)}
    symbolic = _symbolic_graph(base, probes, renumber)
    base.out_spec = _sized_results(base, probes, renumber)
    dims = {key: _renumbered(p, renumber) for key, p in state.dims.items()}
    symbols = {renumber[k]: state.symbols[k] for k in free}
    size_one = not compared_with_one()
    compared_with_one().clear()
    excluded = {renumber[k]: sizes for k, sizes in state.excluded.items() if k in renumber}
    return base, symbolic, dims, symbols, size_one, excluded


def _without_common_symbols(diff: dict) -> dict:
    """diff with every symbol that divides all its terms divided out: a dynamic size is
    never 0 (ranges start at 2), so `10*s0 - s0*s1 == 0` says `10 - s1 == 0` (a view of
    x[s0, s1] as [s0, 2, 5] fixes s1 to 10, as torch's guard does)."""
    while True:
        common = set.intersection(*(set(m) for m in diff)) if diff else set()
        if not common:
            return diff
        s = min(common)
        divided = {}
        for m, k in diff.items():
            rest = list(m)
            rest.remove(s)
            divided[tuple(rest)] = k
        diff = divided


def _sized_results(base, probes, renumber):
    """The result structure with its sizes (`x.shape[0] * 2 + y.shape[0]`) as SymInts
    of the final symbols; refused where it changes with the sizes otherwise."""
    from .export import SymInt, _symbolic_results

    def renumbered(spec):
        if isinstance(spec, SymInt):
            return SymInt(_renumbered(spec.poly, renumber))
        if isinstance(spec, (tuple, list)):
            return type(spec)(renumbered(v) for v in spec)
        if isinstance(spec, dict):
            return {k: renumbered(v) for k, v in spec.items()}
        return spec
    first = _symbolic_results(base.out_spec)
    for _, traced in probes:
        if repr(_symbolic_results(traced.out_spec)) != repr(first):
            raise UserError("ember.export: the result's structure depends on the sizes of "
                             "the dynamic dims")
    return renumbered(first)


def _layout(tensor):
    from ..ir.meta import channels_last, contiguous_format, contiguous_strides, strides_for
    shape, strides = tuple(tensor.shape), tuple(tensor.stride())
    if len(shape) == 4 and strides != contiguous_strides(shape) and \
            strides == strides_for(shape, channels_last):
        return channels_last
    return contiguous_format


def _probe_envs(state: _Export) -> list[tuple]:
    """[(symbol or None for all, environment)]: each free symbol moved alone, then all
    moved together, inside their ranges and off the example sizes of the others."""
    def moved(k, step):
        s = state.symbols[k]
        for n in (s.example + step, s.example - step, s.example + step + 1,
                  s.example + step + 2, s.example + step + 3):
            if s.lo <= n <= s.upper and n >= MIN_SIZE and n not in state.excluded.get(k, ()):
                return n
        return None
    out = []
    free = state.free()
    for i, k in enumerate(free):
        n = moved(k, 1 + i % 2)
        if n is None:
            raise UserError(f"ember.export: {state.symbols[k].name!r}'s range "
                             f"[{state.symbols[k].lo}, {state.symbols[k].hi}] holds a single "
                             "size")
        out.append((k, state.env({k: n})))
    together = {k: moved(k, 3) for k in free}     # one symbol: a second size of it
    if all(v is not None for v in together.values()) and \
            not (len(free) == 1 and together[free[0]] == out[0][1][free[0]]):
        out.append((None, state.env(together)))
    return out


def _renumbered(poly: dict, renumber: dict) -> dict:
    return {tuple(sorted(renumber[i] for i in m)): k for m, k in poly.items()}


# --- the symbolic graph: the example trace's integers as polynomials, checked at probes ----
def _symbolic_graph(base, probes: list, renumber: dict) -> Graph:
    graphs = [t.graph for _, t in probes]
    for (_, traced) in probes:
        if len(traced.graph) != len(base.graph):
            raise UserError("ember.export: cannot make the dims dynamic: the graph has a "
                             "different number of ops at other sizes")
        _check_constants(base.constants, traced.constants)
    out = Graph()
    env: dict = {}
    envs = [e for e, _ in probes]
    for nodes in zip(base.graph.nodes, *(g.nodes for g in graphs)):
        first = nodes[0]
        where = _describe(first)
        if any(n.op != first.op or n.target is not first.target and
               n.target != first.target for n in nodes[1:]):
            raise UserError(f"ember.export: cannot make the dims dynamic: {where} differs "
                             "between sizes")
        conv = _Converter(renumber, envs, where)
        args = conv.value(first.args, [n.args for n in nodes[1:]], env)
        kwargs = conv.value(first.kwargs, [n.kwargs for n in nodes[1:]], env)
        node = out.create_node(first.op, first.target, args, kwargs, name=first.name)
        node.meta = dict(first.meta)
        if "val" in first.meta:
            node.meta["val"] = conv.value(first.meta["val"],
                                          [n.meta.get("val") for n in nodes[1:]], None)
        env[first] = node
    return out


def _check_constants(a: dict, b: dict) -> None:
    from .compile_dynamic import _same_constant
    for name, value in a.items():
        if not _same_constant(value, b.get(name)):
            raise UserError(f"ember.export: cannot make the dims dynamic: the constant "
                             f"{name!r} depends on the size")


class _Converter:
    """One node's values: TracedSize -> SymDim/SymExpr, checked against the probes."""

    def __init__(self, renumber: dict, envs: list, where: str):
        self.renumber, self.envs, self.where = renumber, envs, where

    def value(self, a, others: list, env):
        if isinstance(a, Node):
            return env[a] if env is not None else a
        if isinstance(a, bool) or a is None:
            return a
        if isinstance(a, int):
            return self._int(a, others)
        if isinstance(a, TensorMeta):
            shape = self.value(a.shape, [o.shape for o in others], env)
            strides = self.value(a.strides, [o.strides for o in others], env)
            return TensorMeta(shape, a.dtype, a.device, a.memory_format, strides)
        if isinstance(a, (tuple, list)):
            if any(not isinstance(o, (tuple, list)) or len(o) != len(a) for o in others):
                raise UserError(f"ember.export: cannot make the dims dynamic: {self.where} "
                                 "has arguments of different lengths at other sizes")
            items = [self.value(x, [o[j] for o in others], env) for j, x in enumerate(a)]
            return type(a)(*items) if hasattr(a, "_fields") else type(a)(items)
        if isinstance(a, dict):
            return {k: self.value(v, [o[k] for o in others], env) for k, v in a.items()}
        if isinstance(a, slice):
            return slice(*(self.value(getattr(a, f), [getattr(o, f) for o in others], env)
                           for f in ("start", "stop", "step")))
        return a

    def _int(self, a: int, others: list):
        poly = a.poly if isinstance(a, TracedSize) else {(): int(a)}
        if poly is None:
            raise UserError(f"ember.export: cannot make the dims dynamic: {self.where} uses "
                             f"an integer computed from a dynamic size that is not a "
                             f"polynomial of the sizes ({int(a)} at the example sizes)")
        for env, other in zip(self.envs, others):
            if not isinstance(other, int) or poly_at(poly, env) != int(other):
                raise UserError(
                    f"ember.export: cannot make the dims dynamic: {self.where} uses {int(a)} "
                    f"at the example sizes and {other!r} at others, not "
                    f"{poly_text(poly)} (a size the trace cannot follow)")
        return sym_of(_renumbered(poly, self.renumber))


def _describe(node: Node) -> str:
    from .compile_dynamic import _describe as describe
    return describe(node)


# --- calls of an exported program with several symbols --------------------------------------
def sizes_of_call(ep, leaves: list) -> dict:
    """{symbol: size} of a call, every dynamic dim checked against its polynomial and
    every symbol against its range; refuses with the dim named."""
    env: dict = {}
    specs = ep.user_inputs
    for (i, d), poly in ep.dim_exprs.items():
        if d >= leaves[i].ndim:
            continue
        size = leaves[i].shape[d]
        linear = [(m[0], k) for m, k in poly.items() if len(m) == 1]
        if len(poly) - (() in poly) == 1 and len(linear) == 1:
            s, a = linear[0]
            c = poly.get((), 0)
            if (size - c) % a == 0 and s not in env:
                env[s] = (size - c) // a
    for (i, d), poly in ep.dim_exprs.items():
        if d >= leaves[i].ndim:
            continue
        size = leaves[i].shape[d]
        if any(i2 not in env for m in poly for i2 in m):
            raise GuardError(f"exported program: cannot tell the sizes of "
                             f"{poly_text(poly)} from the inputs")
        want = poly_at(poly, env)
        if size != want:
            raise GuardError(f"exported program: dim {d} of input '{specs[i].name}' must be "
                             f"{poly_text(poly)} = {want} in this call, got {size}")
    for k in sorted(env):
        where = ep.excluded_sizes.get(k, {}).get(env[k])
        if where is not None:
            raise GuardError(f"exported program: size {env[k]} of s{k} is excluded: the "
                             f"model compares that size at {where} (torch's guard s{k} != "
                             f"{env[k]})")
        bounds = ep.range_constraints[f"s{k}"]
        if small_size_runs(ep, env[k], bounds):
            continue            # as torch runs it: the graph at that size (results checked)
        if env[k] not in bounds or env[k] < MIN_SIZE:
            special = " (sizes 0 and 1 are specialized: export with an example of that " \
                "size)" if env[k] < MIN_SIZE else ""
            raise GuardError(f"exported program: size {env[k]} is outside s{k}'s range "
                             f"[{bounds.lower}, {bounds.upper}]{special}")
    return env


def range_constraints(ranges: dict, dims: dict) -> dict:
    """torch's range_constraints: each free symbol's range ({k: (lo, upper)}), then each
    other size an input dim takes (s0*s1, 2*s0+1) with the range it spans."""
    out = {SymbolKey(f"s{k}"): ValueRange(lo, hi) for k, (lo, hi) in sorted(ranges.items())}
    for _, poly in sorted(dims.items()):
        text = poly_text(poly)
        if text not in out and any(m for m in poly):
            lo = poly_at(poly, {k: r[0] for k, r in ranges.items()})
            hi = poly_at(poly, {k: r[1] for k, r in ranges.items()}) \
                if all(r[1] != math.inf for r in ranges.values()) and \
                all(k > 0 for k in poly.values()) else math.inf
            out[SymbolKey(text)] = ValueRange(lo, hi)
    return out


def shape_text(ep, i: int, shape) -> str:
    return ", ".join(poly_text(ep.dim_exprs[(i, d)]) if (i, d) in ep.dim_exprs else str(s)
                     for d, s in enumerate(shape))
