"""Cleanup passes: dead code elimination, common subexpression elimination,
constant folding and algebraic simplification.

All of them keep every node's type (meta['val']) and never touch in-place or
random ops' semantics: an in-place op is impure (DCE keeps it), values it
mutates (and the bases of views it mutates through) are never merged or
forwarded, since the mutation would then reach a value that did not see it.
"""
from __future__ import annotations

import math
import operator
from typing import Any, Callable

from ..ir.errors import EmberError
from ..ir.graph import Graph, Node, OpKind, map_arg
from ..ir.meta import contiguous_strides
from ..ir.registry import OPS, Tag, is_op
from .manager import PassContext, register_pass

# call_function targets that are not registry ops but are pure and deterministic
PURE_FUNCTIONS = (operator.getitem, getattr)


# --- shared helpers ------------------------------------------------------------------------
def is_pure(node: Node) -> bool:
    """A call that computes a value from its inputs only: safe to merge, fold or drop."""
    if node.op == OpKind.get_attr:
        return True
    if node.op != OpKind.call_function:
        return False
    if is_op(node.target):
        return not node.target.tags & {Tag.INPLACE, Tag.RANDOM, Tag.NONDETERMINISTIC}
    return node.target in PURE_FUNCTIONS


def mutated_values(graph: Graph) -> set[Node]:
    """Nodes whose value an in-place op changes: its argument, the bases that argument
    views, the in-place node itself (which aliases its argument), and every other view
    of those bases (a sibling view `y.T.T` sees a write through `y.transpose(0, 1)`)."""
    written_roots: set[Node] = set()
    mutated: set[Node] = set()
    for node in graph.nodes:
        if node.op == OpKind.call_function and is_op(node.target) and \
                Tag.INPLACE in node.target.tags and node.args and isinstance(node.args[0], Node):
            mutated.add(node)
            written_roots.add(_storage_root(node.args[0]))
    if not written_roots:
        return mutated
    for node in graph.nodes:
        if _storage_root(node) in written_roots:
            mutated.add(node)
    return mutated


def _writes_in_place(node: Node) -> bool:
    return node.op == OpKind.call_function and is_op(node.target) and \
        Tag.INPLACE in node.target.tags


def _storage_root(node: Node) -> Node:
    """The value whose storage `node` may share: up the chain of views, shape ops and
    in-place ops (each returns its argument)."""
    while (may_alias_input(node) or is_op(node.target) and Tag.INPLACE in node.target.tags) \
            and node.args and isinstance(node.args[0], Node):
        node = node.args[0]
    return node


def may_alias_input(node: Node) -> bool:
    """Views share input 0's storage; other shape ops (contiguous, reshape) may return
    their input itself when no copy is needed."""
    return is_op(node.target) and bool(node.target.tags & {Tag.VIEW, Tag.SHAPE})


def same_type(a: Node, b: Node) -> bool:
    """Shape and dtype agree (what replacing one value by the other must keep)."""
    ma, mb = a.meta.get("val"), b.meta.get("val")
    if ma is None or mb is None or not hasattr(ma, "shape") or not hasattr(mb, "shape"):
        return False
    return tuple(ma.shape) == tuple(mb.shape) and ma.dtype is mb.dtype


def replace_node(node: Node, replacement: Node) -> None:
    """Point node's users at `replacement` and erase node."""
    node.replace_all_uses_with(replacement)
    node.graph.erase_node(node)


def insert_call(before: Node, op, args: tuple, kwargs: dict | None = None,
                like: Node | None = None) -> Node:
    """A new call_function node just before `before`, typed and located like `like`."""
    like = like if like is not None else before
    with before.graph.inserting_before(before):
        new = before.graph.call_function(op, args, kwargs or {})
    for key in ("val", "loc"):
        if key in like.meta:
            new.meta[key] = like.meta[key]
    return new


def insert_constant(before: Node, ctx: PassContext, value, like: Node,
                    hint: str = "_folded") -> Node:
    """A get_attr node for a new context constant, typed like `like`."""
    name = ctx.add_constant(value, hint)
    with before.graph.inserting_before(before):
        # a PassContext constant, not a module attribute: no owning-module check
        new = before.graph.create_node(OpKind.get_attr, name)
    new.meta["val"] = like.meta.get("val")
    if "loc" in like.meta:
        new.meta["loc"] = like.meta["loc"]
    return new


def op_name(node: Node) -> str | None:
    if node.op == OpKind.call_function and is_op(node.target):
        return node.target.name
    return None


def is_tensor_value(value) -> bool:
    return hasattr(value, "_array") and hasattr(value, "dtype")


def detached(value):
    """Folded constants must not keep the autograd tape of the parameters they came from."""
    return value.detach() if hasattr(value, "detach") else value


# --- dead code elimination -------------------------------------------------------------------
@register_pass("dce")
def eliminate_dead_code(graph: Graph, ctx: PassContext) -> int:
    """Remove nodes whose values nobody uses; in-place and random calls are kept."""
    before = len(graph)
    graph.eliminate_dead_code()
    return before - len(graph)


# --- common subexpression elimination --------------------------------------------------------
def _freeze(value):
    """A hashable key for an argument; scalars keep their type (1, 1.0 and True differ)."""
    if isinstance(value, Node):
        return value
    if isinstance(value, (list, tuple)):
        return (type(value).__name__,) + tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return ("dict",) + tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, slice):
        return ("slice", _freeze(value.start), _freeze(value.stop), _freeze(value.step))
    if isinstance(value, float):
        return ("float", repr(value))           # repr: nan == nan, 0.0 != -0.0
    return (type(value).__name__, value)


def _cse_key(node: Node, order: dict[Node, int]):
    args = node.args
    if is_op(node.target) and Tag.COMMUTATIVE in node.target.tags and len(args) == 2 and \
            all(isinstance(a, Node) for a in args):
        args = tuple(sorted(args, key=order.__getitem__))   # add(a, b) == add(b, a)
    target = node.target if node.op == OpKind.call_function else str(node.target)
    return (node.op, target, _freeze(args), _freeze(node.kwargs))


@register_pass("cse")
def eliminate_common_subexpressions(graph: Graph, ctx: PassContext) -> int:
    """Merge pure nodes with the same target, args and kwargs into the first of them."""
    mutated = mutated_values(graph)
    order = {n: i for i, n in enumerate(graph.nodes)}
    seen: dict[Any, Node] = {}
    changed = 0
    for node in graph.nodes:
        # a read of a mutated value depends on where it stands (before or after the write)
        if not is_pure(node) or node in mutated or any(i in mutated for i in node.all_input_nodes):
            continue
        try:
            key = _cse_key(node, order)
            first = seen.setdefault(key, node)
        except TypeError:                       # an unhashable constant argument
            continue
        if first is not node:
            replace_node(node, first)
            changed += 1
    return changed


# --- constant folding ---------------------------------------------------------------------
DEFAULT_FOLD_LIMIT = 1 << 16   # elements a folded constant may have beyond its inputs'


def _too_big(node: Node, inputs: list, limit: int) -> bool:
    """Folding must not materialize what broadcasting keeps small (expand, full, ...)."""
    val = node.meta.get("val")
    if not hasattr(val, "shape"):
        return False
    largest = max([math.prod(v.shape) for v in inputs if is_tensor_value(v)] + [0])
    return math.prod(val.shape) > max(limit, largest)


def _evaluate(node: Node, values: dict[Node, Any]):
    fetch = values.__getitem__
    return node.target(*map_arg(node.args, fetch), **map_arg(node.kwargs, fetch))


HOST_FOLD_ELEMENTS = 1 << 16


def _evaluate_folded(node: Node, values: dict[Node, Any]):
    """`node`'s value. Small values on a GPU (BatchNorm's per-channel statistics) are
    computed on the host and the result moved to the node's device: on the device every
    op would compile a kernel for its shape (resnet18 inference: sqrt and add per channel
    count, compiled one by one in a cold first call) to run a few hundred elements once.
    Views keep running where their base lives (a copy would not alias it)."""
    val = node.meta.get("val")
    tensors = [values[i] for i in node.all_input_nodes if is_tensor_value(values[i])]
    small = tensors and all(getattr(v, "is_cuda", False) for v in tensors) and \
        hasattr(val, "shape") and hasattr(val, "device") and \
        Tag.VIEW not in getattr(node.target, "tags", ()) and \
        sum(v.numel() for v in tensors) + math.prod(val.shape) <= HOST_FOLD_ELEMENTS
    if not small:
        return _evaluate(node, values)
    on_host = dict(values)
    for i in node.all_input_nodes:
        if is_tensor_value(values[i]):
            on_host[i] = values[i].cpu()
    result = _evaluate(node, on_host)
    return result.to(val.device) if is_tensor_value(result) else result


def constant_values(graph: Graph, ctx: PassContext) -> dict[Node, Any]:
    """Values of every node computable from constants alone (get_attr values only
    count in inference graphs)."""
    limit = ctx.options.get("fold_size_limit", DEFAULT_FOLD_LIMIT)
    # a value an in-place op writes (through a view, too) is not one constant: folding it
    # and its views into separate new constants would lose the write
    mutated = mutated_values(graph)
    values: dict[Node, Any] = {}
    for node in graph.nodes:
        if node in mutated:
            continue
        if node.op == OpKind.get_attr:
            value = ctx.value_of(node) if ctx.inference else None
            if value is not None:
                values[node] = value
            continue
        if not is_pure(node) or not all(i in values for i in node.all_input_nodes):
            continue
        if _too_big(node, [values[i] for i in node.all_input_nodes], limit):
            continue
        try:
            values[node] = detached(_evaluate_folded(node, values))
        except EmberError:      # leave the failure to the run, where it names the user line
            continue
    return values


@register_pass("fold", provides=("constants-folded",))
def fold_constants(graph: Graph, ctx: PassContext) -> int:
    """Replace values computed from constants only by new constants in the context."""
    values = constant_values(graph, ctx)
    changed = 0
    for node, value in values.items():
        if node.op == OpKind.get_attr or not is_tensor_value(value):
            continue
        if any(user not in values for user in node.users):
            replace_node(node, insert_constant(node, ctx, value, node))
            changed += 1
    for node in reversed(list(values)):          # the folded intermediates are now dead
        if node.op != OpKind.get_attr and not node.users and node.graph is graph \
                and not node._erased:
            graph.erase_node(node)
    return changed


# --- algebraic simplification ---------------------------------------------------------------
def _is_scalar(value, wanted: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == wanted


def _other_if_scalar(node: Node, wanted: float) -> Node | None:
    """For mul(x, 1) / mul(1, x): x."""
    a, b = node.args[0], node.args[1]
    if isinstance(a, Node) and _is_scalar(b, wanted):
        return a
    if isinstance(b, Node) and _is_scalar(a, wanted):
        return b
    return None


def _simplify_mul(node: Node) -> Node | None:
    return _other_if_scalar(node, 1)


def _simplify_add(node: Node) -> Node | None:
    a, b = node.args[0], node.args[1]
    if isinstance(a, Node) and _is_scalar(b, 0):
        return a
    if isinstance(b, Node) and _is_scalar(a, 0) and node.kwargs.get("alpha", 1) == 1:
        return b
    return None


def _simplify_sub(node: Node) -> Node | None:
    a, b = node.args[0], node.args[1]
    return a if isinstance(a, Node) and _is_scalar(b, 0) else None


def _simplify_div(node: Node) -> Node | None:
    a, b = node.args[0], node.args[1]
    if node.kwargs.get("rounding_mode") is None and isinstance(a, Node) and _is_scalar(b, 1):
        return a
    return None


def _simplify_neg(node: Node) -> Node | None:
    inner = node.args[0]
    return inner.args[0] if isinstance(inner, Node) and op_name(inner) == "neg" else None


def _ndim(node: Node) -> int:
    return len(node.meta["val"].shape)


def _permutation(node: Node) -> list[int] | None:
    """The dims a permute/transpose/t node takes from its input, in output order."""
    name = op_name(node)
    if name not in ("permute", "transpose", "t") or "val" not in node.meta:
        return None
    n = _ndim(node)
    if name == "permute":
        return [d % n for d in node.args[1]] if n else []
    perm = list(range(n))
    if name == "t":
        return perm[::-1]
    d0, d1 = node.args[1] % max(n, 1), node.args[2] % max(n, 1)
    perm[d0], perm[d1] = perm[d1], perm[d0]
    return perm


def _simplify_permutation(node: Node) -> Node | None:
    """transpose(transpose(x)) and permute(permute(x)): one permute, or x itself."""
    outer = _permutation(node)
    source = node.args[0]
    inner = _permutation(source) if isinstance(source, Node) else None
    if outer is None:
        return None
    if inner is None:
        return source if outer == sorted(outer) else None
    combined = [inner[d] for d in outer]
    if combined == sorted(combined):
        return source.args[0]
    return insert_call(node, OPS["permute"], (source.args[0], combined), like=node)


RESHAPES = ("reshape", "view", "flatten", "unflatten", "squeeze", "unsqueeze")


def _simplify_reshape(node: Node) -> Node | None:
    """Chains of reshapes/views/flatten collapse to one reshape, or to x when the
    shape comes back (they all keep the elements' row-major order)."""
    source = node.args[0]
    if not isinstance(source, Node):
        return None
    if same_type(node, source):
        return source
    if op_name(source) in RESHAPES and isinstance(source.args[0], Node):
        shape = list(node.meta["val"].shape)
        return insert_call(node, OPS["reshape"], (source.args[0], shape), like=node)
    return None


def _simplify_contiguous(node: Node) -> Node | None:
    source = node.args[0]
    fmt = node.kwargs.get("memory_format", node.args[1] if len(node.args) > 1 else None)
    if op_name(source) != "contiguous":
        return None
    inner_fmt = source.kwargs.get("memory_format", source.args[1] if len(source.args) > 1
                                  else None)
    return source if str(fmt) == str(inner_fmt) else None


def _identity_if_same_type(node: Node) -> Node | None:
    """expand to the same shape, a cast to the same dtype: the input itself."""
    source = node.args[0]
    return source if isinstance(source, Node) and same_type(node, source) else None


def _simplify_slice(node: Node) -> Node | None:
    """slice(x, d, 0, >= size, 1) and narrow(x, d, 0, size) take all of x."""
    source = node.args[0]
    if not isinstance(source, Node) or not same_type(node, source):
        return None
    step = node.args[4] if op_name(node) == "slice" and len(node.args) > 4 else 1
    return source if step == 1 else None


def _functional_inplace(node: Node) -> Node | None:
    """relu_(t) where t is a fresh temporary nobody else reads: relu(t). Nothing can
    observe the mutation, and pure ops merge, fold and fuse."""
    source = node.args[0] if node.args else None
    functional = node.target.functional
    if functional is None or not isinstance(source, Node) or list(source.users) != [node]:
        return None
    if source.op != OpKind.call_function or not is_pure(source) or may_alias_input(source):
        return None
    return insert_call(node, functional, node.args, node.kwargs, like=node)


def _fill_from_shape(node: Node) -> Node | None:
    """zeros_like(x) / ones_like(x) / full_like(x, v) of a small contiguous value:
    full(x's shape, v), which reads nothing of x, so `fold` makes it a constant (a
    training graph's loss seed, ones_like(loss), then needs no step of its own)."""
    val = node.meta.get("val")
    shape = getattr(val, "shape", None)
    if shape is None or not all(isinstance(d, int) for d in shape) or \
            math.prod(shape) > DEFAULT_FOLD_LIMIT or \
            tuple(val.strides) != tuple(contiguous_strides(shape)):
        return None
    name = op_name(node)
    fill = {"zeros_like": 0, "ones_like": 1}.get(name)
    if fill is None:
        fill = node.args[1] if len(node.args) > 1 else node.kwargs.get("fill_value")
    if not isinstance(fill, (bool, int, float)):
        return None
    return insert_call(node, OPS["full"], (list(shape), fill),
                       {"dtype": val.dtype, "device": val.device}, like=node)


def _real_sgn(node: Node) -> Node | None:
    """sgn(x) of a real x is sign(x) (the same values; sign has a generated kernel, sgn,
    written for complex values too, does not): the derivative of l1_loss and friends."""
    val = node.meta.get("val")
    if val is None or not hasattr(val, "dtype") or val.dtype.is_complex:
        return None
    return insert_call(node, OPS["sign"], tuple(node.args), dict(node.kwargs), like=node)


SIMPLIFICATIONS: dict[str, Callable[[Node], Node | None]] = {
    "mul": _simplify_mul, "add": _simplify_add, "sub": _simplify_sub, "div": _simplify_div,
    "neg": _simplify_neg,
    "permute": _simplify_permutation, "transpose": _simplify_permutation,
    "t": _simplify_permutation,
    **{name: _simplify_reshape for name in RESHAPES},
    "contiguous": _simplify_contiguous,
    "expand": _identity_if_same_type, "convert_element_type": _identity_if_same_type,
    "slice": _simplify_slice, "narrow": _simplify_slice,
    "zeros_like": _fill_from_shape, "ones_like": _fill_from_shape,
    "full_like": _fill_from_shape, "sgn": _real_sgn,
}


def _same_device_and_type(node: Node) -> Node | None:
    """x.to(dtype/device) that changes neither (fx graphs keep `to` as a method call)."""
    source = node.args[0] if node.args else None
    if not isinstance(source, Node) or node.kwargs.get("copy") or not same_type(node, source):
        return None
    return source if node.meta["val"].device == source.meta["val"].device else None


METHOD_SIMPLIFICATIONS: dict[str, Callable[[Node], Node | None]] = {
    "to": _same_device_and_type,
}


def _rule_for(node: Node) -> Callable[[Node], Node | None] | None:
    try:
        return _RULE_OF[(node.op, node.target)]
    except KeyError:
        rule = _RULE_OF[(node.op, node.target)] = _find_rule(node)
        return rule
    except TypeError:             # an unhashable target: no memo
        return _find_rule(node)


# the rule of each (op, target) met: which rule applies depends on nothing else
_RULE_OF: dict = {}


def _find_rule(node: Node) -> Callable[[Node], Node | None] | None:
    if node.op == OpKind.call_method:
        return METHOD_SIMPLIFICATIONS.get(str(node.target))
    name = op_name(node)
    if name is None:
        return None
    if Tag.INPLACE in node.target.tags:
        return _functional_inplace
    return SIMPLIFICATIONS.get(name)


def _touches_mutated(node: Node, mutated: set[Node]) -> bool:
    """Whether `node` is, or reads, a value an in-place op writes. Rules such as -(-x) -> x
    or permute(permute(x)) -> x look through their input to the value it was computed
    from; where that input was written in place between (`n = -t; n.relu_(); -n`), the
    rewrite would skip the write and give a wrong result."""
    return node in mutated or any(i in mutated for i in node.all_input_nodes)


@register_pass("simplify")
def simplify_algebra(graph: Graph, ctx: PassContext) -> int:
    """Rewrite x*1, x+0, x-0, x/1, -(-x), permute chains, reshape chains, identity
    contiguous/expand/cast/slice, and in-place ops on dead temporaries."""
    changed = 0
    progress = True
    mutated = mutated_values(graph)
    # Each rewrite starts the scan again from the first node (the first applicable rule in
    # graph order wins). A node that the scan passed without a rewrite is "settled": a
    # rewrite changes only later nodes' arguments, so its rule answers the same again
    # while the mutated set is unchanged; except an in-place node's rule, which reads its
    # argument's users (a rewrite erases a user). Settled nodes are skipped, which keeps
    # the rewrites and their order those of full rescans without their quadratic cost.
    settled: set[Node] = set()
    while progress:
        progress = False
        passed: set[Node] = set()
        for node in graph.nodes:
            if node in settled:
                passed.add(node)
                continue
            rule = _rule_for(node)
            if rule is None or node._erased or \
                    rule is not _functional_inplace and _touches_mutated(node, mutated):
                passed.add(node)
                continue
            replacement = rule(node)
            if replacement is None or replacement in mutated or not same_type(node, replacement):
                if replacement is None and rule is not _functional_inplace:
                    passed.add(node)        # (a refused replacement may be a new node)
                continue
            replace_node(node, replacement)
            changed += 1
            progress = True
            if mutated or _writes_in_place(replacement):
                # (with no in-place node in the graph none is mutated, and rewrites
                # other than to an in-place node add none)
                before, mutated = mutated, mutated_values(graph)
                settled = passed if mutated == before else set()
            else:
                settled = passed
            break       # the mutated set may have changed; rescan
    return changed
