"""ember.export's `dynamic_shapes`: one symbolic dimension (torch.export.Dim's role),
torch's specs (`Dim`, derived dims, hints, ShapesCollection, AdditionalInputs).

    batch = ember.export.Dim("batch", min=2, max=64)
    ep = ember.export(model, (x,), dynamic_shapes={"x": {0: batch}})
    ep.range_constraints          # {s0: VR[2, 64]}
    ep.module()(x_of_batch_17)    # any size in the range

The model is traced at three sizes of the dimension and the graphs compared, as
ember.compile's dynamic shapes do (compiler/compile_dynamic.py's `_Template`): every
integer that differs must be `a*s0 + c`; a branch on the size, a constant that depends
on it or a non-affine size is refused, naming the op. The result keeps
`symbolic_graph` (s0 in its types: `f32[s0,10]`); `graph` is that graph at the
example inputs' size, so everything that reads a static program reads it unchanged.

Limits here: one symbol (every dynamic dimension has the same size in a call; several
symbols go through compiler/export_symbols.py), traced at sizes >= 2 (the range keeps
the declared `min`, 0 by default as torch's; a call of size 0 or 1 inside it runs the
graph at that size, its results' shapes checked: `small_size_runs`), and the range
must hold at least the three sizes traced. `Dim.AUTO` / `Dim.DYNAMIC` mark a dimension
dynamic with torch's range [2, int_oo]; `Dim.STATIC` keeps it static. Refusals of a
spec or of a model that contradicts it are UserError (torch._dynamo.exc.UserError);
a call outside what was exported is GuardError (torch's "Guard failed").
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..ir.errors import GuardError, UserError
from ..ir.symdim import SymDim, instantiate

MIN_SIZE = 2


@dataclass(frozen=True)
class Dim:
    """torch.export.Dim: a named dynamic dimension with an inclusive size range."""
    name: str
    min: int = 0
    max: int | None = None

    def __post_init__(self):
        if self.min is None:
            object.__setattr__(self, "min", 0)
        if not isinstance(self.min, int) or self.min < 0:
            raise UserError(f"ember.export.Dim {self.name!r}: min must be an int >= 0, "
                             f"got {self.min!r}")
        if self.max is not None and (not isinstance(self.max, int) or self.max < self.min):
            raise UserError(f"ember.export.Dim {self.name!r}: max must be an int >= min "
                             f"({self.min}), got {self.max!r}")


    # torch.export's derived dims: 2*d, d+1, d-1 name a size computed from d's
    def __mul__(self, k):
        return DerivedDim(self, 1, 0) * k

    __rmul__ = __mul__

    def __add__(self, k):
        return DerivedDim(self, 1, 0) + k

    __radd__ = __add__

    def __sub__(self, k):
        return DerivedDim(self, 1, 0) + (-k if isinstance(k, int) else k)


@dataclass(frozen=True)
class DerivedDim:
    """a*root + c (torch.export's derived Dim: `2*d`, `d+1`)."""
    root: Dim
    a: int
    c: int

    def __post_init__(self):
        if not isinstance(self.a, int) or not isinstance(self.c, int) or self.a <= 0:
            raise UserError(f"ember.export.Dim {self.root.name!r}: a derived dim is a*dim + c "
                             "with int a > 0 and int c")

    @property
    def name(self) -> str:
        return str(self)

    def __mul__(self, k):
        if not isinstance(k, int) or isinstance(k, bool):
            return NotImplemented
        return DerivedDim(self.root, self.a * k, self.c * k)

    __rmul__ = __mul__

    def __add__(self, k):
        if not isinstance(k, int) or isinstance(k, bool):
            return NotImplemented
        return DerivedDim(self.root, self.a, self.c + k)

    __radd__ = __add__

    def __sub__(self, k):
        return self + (-k) if isinstance(k, int) else NotImplemented

    def __str__(self) -> str:
        text = self.root.name if self.a == 1 else f"{self.a}*{self.root.name}"
        return text + (f" + {self.c}" if self.c > 0 else f" - {-self.c}" if self.c else "")


class _DimHint:
    """Dim.AUTO / Dim.DYNAMIC / Dim.STATIC (torch.export's hints)."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"Dim.{self.name}"


Dim.AUTO, Dim.DYNAMIC, Dim.STATIC = _DimHint("AUTO"), _DimHint("DYNAMIC"), _DimHint("STATIC")
_HINTED = Dim("dynamic", min=MIN_SIZE)    # an AUTO or DYNAMIC mark: torch's [2, int_oo]


@dataclass(frozen=True)
class ValueRange:
    """An inclusive range of sizes (torch's ValueRanges: lower, upper)."""
    lower: int
    upper: float

    def __contains__(self, n) -> bool:
        return self.lower <= n <= self.upper

    def __repr__(self) -> str:          # torch's text: VR[2, int_oo]
        upper = "int_oo" if self.upper == math.inf else self.upper
        return f"VR[{self.lower}, {upper}]"


class SymbolKey(str):
    """A range_constraints key: the symbol's text ('s0', 's0*s1'), printed bare as
    torch prints its sympy symbols ({s0: VR[2, int_oo]})."""

    def __repr__(self) -> str:
        return str(self)


def dims(*names: str, min: int | None = None, max: int | None = None) -> tuple:  # noqa: A002
    """torch.export.dims: one Dim per name, sharing a range."""
    return tuple(Dim(name, min=min, max=max) for name in names)


class ShapesCollection:
    """torch.export.ShapesCollection: dynamic_shapes given per tensor object
    (`sc[x] = {0: batch}`), wherever the tensor sits in the arguments."""

    def __init__(self):
        self._by_id: dict[int, tuple] = {}

    def __setitem__(self, tensor, shape) -> None:
        self._by_id[id(tensor)] = (tensor, shape)

    def __getitem__(self, tensor):
        return self._by_id[id(tensor)][1]

    def __contains__(self, tensor) -> bool:
        return id(tensor) in self._by_id

    def leaf_specs(self, leaves: list) -> list:
        return [self._by_id[id(t)][1] if id(t) in self._by_id else None for t in leaves]

    def dynamic_shapes(self, model, args, kwargs=None):
        """The specs in the arguments' structure (tensors replaced by their spec)."""
        from .compile_guards import flatten, unflatten
        leaves, spec = flatten((tuple(args), dict(kwargs or {})))
        out_args, out_kwargs = unflatten(spec, self.leaf_specs(leaves))
        return tuple(out_args) + tuple(out_kwargs.values())


class AdditionalInputs:
    """torch.export.AdditionalInputs: more example inputs; the dims whose sizes differ
    among them (and the export's example) are dynamic (Dim.DYNAMIC)."""

    def __init__(self):
        self._examples: list[tuple] = []

    def add(self, args, kwargs=None) -> None:
        self._examples.append((tuple(args), dict(kwargs or {})))

    def leaf_specs(self, leaves: list) -> list:
        from .compile_guards import flatten
        shapes = [[tuple(t.shape) for t in leaves]]
        for args, kwargs in self._examples:
            others = flatten((args, kwargs))[0]
            if len(others) != len(leaves) or any(len(o.shape) != len(t.shape)
                                                  for o, t in zip(others, leaves)):
                raise UserError("ember.export.AdditionalInputs: an added input does not "
                                 "have the example's structure and ranks")
            shapes.append([tuple(o.shape) for o in others])
        return [{d: Dim.DYNAMIC for d in range(len(t.shape))
                 if len({s[i][d] for s in shapes}) > 1} or None
                for i, t in enumerate(leaves)]

    def dynamic_shapes(self, model, args, kwargs=None):
        from .compile_guards import flatten, unflatten
        leaves, spec = flatten((tuple(args), dict(kwargs or {})))
        out_args, out_kwargs = unflatten(spec, self.leaf_specs(leaves))
        return tuple(out_args) + tuple(out_kwargs.values())

    def verify(self, ep) -> None:
        """Run `ep` on every added input (it raises where one is not covered)."""
        module = ep.module()
        for args, kwargs in self._examples:
            module(*args, **kwargs)


def per_input_specs(dynamic_shapes, names: list[str], leaves: list, model=None,
                    in_spec=None) -> list:
    """One entry of dynamic_shapes per tensor input (torch's forms: a dict keyed by
    forward's parameter names, or a tuple/list by position; an argument that is a list,
    tuple or dict of tensors takes a spec of the same structure; a ShapesCollection or
    AdditionalInputs)."""
    if isinstance(dynamic_shapes, (ShapesCollection, AdditionalInputs)):
        return dynamic_shapes.leaf_specs(leaves)
    nested = _signature_specs(dynamic_shapes, model, in_spec, len(leaves))
    if nested is None:
        nested = _nested_specs(dynamic_shapes, model, in_spec, len(leaves))
    if nested is not None:
        return nested
    if isinstance(dynamic_shapes, dict):
        unknown = [k for k in dynamic_shapes if k not in names]
        if unknown:
            raise UserError(f"ember.export: dynamic_shapes names {unknown}, which are not "
                             f"inputs (inputs: {names})")
        return [dynamic_shapes.get(name) for name in names]
    if isinstance(dynamic_shapes, (tuple, list)):
        if len(dynamic_shapes) != len(leaves):
            raise UserError(f"ember.export: dynamic_shapes has {len(dynamic_shapes)} "
                             f"entries for {len(leaves)} tensor inputs")
        return list(dynamic_shapes)
    raise UserError("ember.export: dynamic_shapes must be a dict (by input name), a "
                     f"tuple/list (by position) or None, got {type(dynamic_shapes).__name__}")


class _LeafAt:
    """A tensor argument's position among the tensor inputs (a marker in the call)."""
    __slots__ = ("index",)

    def __init__(self, index: int):
        self.index = index


def _signature_specs(dynamic_shapes, model, in_spec, n_leaves: int):
    """Per-leaf specs by torch's own rule: dynamic_shapes follows forward's parameters
    as the call binds them (a dict by parameter name, or a tuple/list with one entry per
    bound parameter), so `*args` takes one tuple entry and `**kwargs` one dict entry.
    None where the form does not fit that (the flat forms then apply)."""
    import inspect
    from .compile_guards import unflatten
    if in_spec is None or not isinstance(dynamic_shapes, (dict, tuple, list)):
        return None
    try:
        signature = inspect.signature(getattr(model, "forward", model))
        args, kwargs = unflatten(in_spec, [_LeafAt(i) for i in range(n_leaves)])
        bound = signature.bind(*args, **kwargs).arguments
    except (TypeError, ValueError):
        return None
    if isinstance(dynamic_shapes, dict):
        if not set(dynamic_shapes) <= set(bound):
            return None
        pairs = [(bound[k], dynamic_shapes.get(k)) for k in bound]
    elif len(dynamic_shapes) == len(bound):
        pairs = list(zip(bound.values(), dynamic_shapes))
    else:
        return None
    out: list = [None] * n_leaves
    for value, shapes in pairs:
        _place_specs(value, shapes, out)
    return out


def _place_specs(value, shapes, out: list) -> None:
    if isinstance(value, _LeafAt):
        out[value.index] = shapes
    elif isinstance(value, (tuple, list)) and shapes is not None:
        if not isinstance(shapes, (tuple, list)) or len(shapes) != len(value):
            raise UserError(f"ember.export: dynamic_shapes {shapes!r} does not match the "
                             f"structure of its argument ({len(value)} items)")
        for item, item_shapes in zip(value, shapes):
            _place_specs(item, item_shapes, out)
    elif isinstance(value, dict) and shapes is not None:
        if not isinstance(shapes, dict):
            raise UserError(f"ember.export: dynamic_shapes {shapes!r} does not match the "
                             "structure of its argument (a dict)")
        for key, item in value.items():
            _place_specs(item, shapes.get(key), out)


def _nested_specs(dynamic_shapes, model, in_spec, n_leaves: int):
    """Per-leaf specs when an argument is a container of tensors (None otherwise: the
    flat forms above apply)."""
    import inspect
    from .compile_guards import LEAF
    if in_spec is None:
        return None
    args, kwargs = in_spec
    if all(a is LEAF for a in args) and all(v is LEAF for v in kwargs.values()):
        return None
    if isinstance(dynamic_shapes, dict):
        try:
            params = list(inspect.signature(getattr(model, "forward", model)).parameters)
        except (TypeError, ValueError):
            params = []
        by_name = dict(zip(params, args))
        by_name.update(kwargs)
        unknown = [k for k in dynamic_shapes if k not in by_name]
        if unknown:
            raise UserError(f"ember.export: dynamic_shapes names {unknown}, which are not "
                             f"arguments of forward ({list(by_name)})")
        pairs = [(by_name[k], dynamic_shapes.get(k)) for k in by_name]
    elif isinstance(dynamic_shapes, (tuple, list)):
        parts = list(args) + list(kwargs.values())
        if len(dynamic_shapes) not in (len(args), len(parts)):
            raise UserError(f"ember.export: dynamic_shapes has {len(dynamic_shapes)} entries "
                             f"for {len(args)} positional arguments")
        pairs = list(zip(parts, list(dynamic_shapes) + [None] * len(parts)))
    else:
        return None
    out: list = []
    for spec, shapes in pairs:
        _leaf_specs(spec, shapes, out, LEAF)
    return out if len(out) == n_leaves else None


def _leaf_specs(spec, shapes, out: list, leaf) -> None:
    if spec is leaf:
        out.append(shapes)
    elif isinstance(spec, (tuple, list)):
        if shapes is not None and (not isinstance(shapes, (tuple, list)) or
                                   len(shapes) != len(spec)):
            raise UserError(f"ember.export: dynamic_shapes {shapes!r} does not match the "
                             f"structure of its argument ({len(spec)} items)")
        for i, item in enumerate(spec):
            _leaf_specs(item, None if shapes is None else shapes[i], out, leaf)
    elif isinstance(spec, dict):
        if shapes is not None and not isinstance(shapes, dict):
            raise UserError(f"ember.export: dynamic_shapes {shapes!r} does not match the "
                             f"structure of its argument (a dict)")
        for key, item in spec.items():
            _leaf_specs(item, None if shapes is None else shapes.get(key), out, leaf)


def dynamic_dims(dynamic_shapes, names: list[str], n_args: int, leaves: list,
                 per_input: list | None = None) -> tuple:
    """([(leaf index, dim)], Dim) from torch's dynamic_shapes forms: a dict keyed by
    forward's parameter names, or a tuple/list by position; per tensor a dict
    {dim: Dim}, a tuple/list of Dim-or-None, or None."""
    if per_input is None:
        per_input = per_input_specs(dynamic_shapes, names, leaves)
    dims, found = [], []
    for i, (spec, tensor) in enumerate(zip(per_input, leaves)):
        for d, dim in _tensor_dims(spec, names[i], tensor.ndim):
            dims.append((i, d))
            found.append(dim)
    if not dims:
        raise UserError("ember.export: dynamic_shapes marks no dimension dynamic")
    if len({(d.name, d.min, d.max) for d in found}) != 1:
        raise UserError("ember.export: dynamic dimensions must all be the same Dim (ember "
                         f"makes one symbol per program), got {sorted({d.name for d in found})}")
    sizes = {leaves[i].shape[d] for i, d in dims}
    if len(sizes) != 1:
        raise UserError(f"ember.export: the dimensions marked {found[0].name!r} have "
                         f"different sizes in the example inputs: {sorted(sizes)}")
    return dims, found[0]


def _tensor_dims(spec, name: str, ndim: int) -> list:
    if spec is None:
        return []
    if isinstance(spec, (tuple, list)):
        spec = {d: dim for d, dim in enumerate(spec) if dim is not None}
    if isinstance(spec, dict):
        spec = {d: _HINTED if dim is Dim.AUTO or dim is Dim.DYNAMIC else dim
                for d, dim in spec.items() if dim is not None and dim is not Dim.STATIC}
    if not isinstance(spec, dict):
        raise UserError(f"ember.export: dynamic_shapes for {name!r} must be a dict "
                         f"{{dim: Dim}}, a tuple of Dim/None or None, got {spec!r}")
    out = []
    for d, dim in spec.items():
        if not isinstance(dim, Dim):
            raise UserError(f"ember.export: dynamic_shapes for {name!r} dim {d}: expected "
                             f"ember.export.Dim, got {dim!r}")
        if not isinstance(d, int) or not -ndim <= d < ndim:
            raise UserError(f"ember.export: dynamic_shapes for {name!r}: dim {d!r} is out "
                             f"of range for a tensor with {ndim} dimensions")
        out.append((d % ndim, dim))
    return out


def probe_sizes(example: int, dim: Dim, where: str) -> list[int]:
    """The example size and two more inside the range to trace at."""
    upper = math.inf if dim.max is None else dim.max
    if not dim.min <= example <= upper:
        raise UserError(f"ember.export: {where} has size {example} in the example inputs, "
                         f"outside {dim.name!r}'s range [{dim.min}, {dim.max}]")
    if example < MIN_SIZE:
        raise UserError(f"ember.export: {where} has size {example} in the example inputs; "
                        "sizes 0 and 1 are specialized (export with an example of size 2 "
                        "or more to make it dynamic)")
    sizes = [example]
    for s in (example + 1, example + 2, example - 1, example - 2):
        if max(dim.min, MIN_SIZE) <= s <= upper and s not in sizes and len(sizes) < 3:
            sizes.append(s)
    if len(sizes) < 3:
        raise UserError(f"ember.export: {dim.name!r}'s range [{dim.min}, {dim.max}] holds "
                         "fewer than the three sizes ember traces a dynamic dimension at")
    return sizes


def symbolic_program(graphs: list, states: list, sizes: list[int], where: str):
    """The graph with s0 from graphs traced at `sizes` (their constants `states`), or a
    refusal naming the op; see the module doc."""
    from .compile_dynamic import Specialize, _Template
    try:
        template = _Template(graphs, sizes, ())
        uniform = template.check_constants(states)
        if uniform:
            raise Specialize(f"the constant {next(iter(uniform))!r} depends on the size")
        return template.instantiate(SymDim.symbol())
    except Specialize as err:
        raise UserError(f"ember.export: cannot make {where} dynamic: {err}") from None


def check_size(ep, leaves: list) -> int | None:
    """s0 in a call of a dynamic program (None for a static one); refuses sizes outside
    the range or dims that disagree."""
    if ep.symbolic_graph is None:
        return None
    (symbol, bounds), = ep.range_constraints.items()
    sizes = {leaves[i].shape[d] for i, d in ep.dynamic_dims if d < leaves[i].ndim}
    if len(sizes) != 1:
        raise GuardError(f"exported program: the dynamic dimensions ({symbol}) must have one "
                         f"size in a call, got {sorted(sizes)}")
    n = sizes.pop()
    if small_size_runs(ep, n, bounds):
        return n                # the graph at s0 = n (results checked), as torch runs it
    if n not in bounds or n < MIN_SIZE:
        special = " (sizes 0 and 1 are specialized: export with an example of that size)" \
            if n < MIN_SIZE else ""
        raise GuardError(f"exported program: size {n} is outside {symbol}'s range "
                         f"[{bounds.lower}, {bounds.upper}]{special}")
    return n


def small_size_runs(ep, n: int, bounds: ValueRange) -> bool:
    """A size 0 or 1 of a symbol traced at sizes >= 2 runs the graph at that size when
    the range holds it (a Dim's default min is 0, as torch's) and the trace compared no
    size with 0 or 1; a range starting at 2 (Dim.AUTO/DYNAMIC) runs 1 too, as torch's
    exported module does. The call checks the results' shapes (an op that behaves
    otherwise there is refused)."""
    return n < MIN_SIZE and ep.size_one and (n >= bounds.lower or
                                             n == 1 and bounds.lower == MIN_SIZE)


def graph_at(ep, n):
    """The program's graph for s0 = n, or for the sizes {symbol: size} (cached)."""
    cache = ep.__dict__.setdefault("_graphs_by_size", {})
    key = tuple(sorted(n.items())) if isinstance(n, dict) else n
    graph = cache.get(key)
    if graph is None:
        if len(cache) >= 16:
            cache.pop(next(iter(cache)))
        graph = cache[key] = instantiate(ep.symbolic_graph, n)
    return graph
