"""In-place updates: which fused kernels of a training graph may store a new value
straight into the buffer of the input it replaces (a parameter, an optimizer state
tensor, a running statistic), so the step needs no copy back.

An analysis over a graph after fusion; the compiler layer (compile_train) binds the chosen
kernel outputs to the tensors' own buffers (`Plan.bind`).
"""
from __future__ import annotations

import operator

from ..ir.fused import is_fused
from ..ir.graph import Graph, Node, OpKind
from ..ir.registry import Tag, is_op
from .cleanup import mutated_values
from .manager import PassContext, register_pass


def in_place_updates(graph: Graph, sources: list,
                     buffer_sources: list = ()) -> list[tuple[Node, int, int]]:
    """Find updates a fused kernel can store straight into the input (`sources`: one
    node or None per update) it replaces, and drop them from the graph's output;
    returns (group node, output index, position). The graph's output is a training
    step's `(loss, (updates...), (new buffers...))`; `buffer_sources` does for the new
    buffer values (BatchNorm's running statistics, read as constants) what `sources`
    does for the updates, and a position counts the updates, then the buffers.

    Legal when (1) the group reads that input only through pointwise ops of the
    store's shape and layout, so element i is read before element i is written, by the
    same iteration; (2) every other reader of the input, or of a view of it, runs
    before the group; (3) no other argument of the group may alias it; (4) no other
    value replaces the same input (a module run twice updates its statistics twice: the
    last update must land last). A group is bound all-or-nothing: a group with a result
    that stays a result allocates fresh outputs each call, so none of its outputs can
    be bound."""
    output = graph.output_node
    loss, updates, buffers = output.args[0]
    values = list(updates) + list(buffers)
    targets = list(sources) + list(buffer_sources)
    targets += [None] * (len(values) - len(targets))
    order = {n: i for i, n in enumerate(graph.nodes)}
    candidates: dict[Node, list[tuple[int, int]]] = {}
    for position, (value, source) in enumerate(zip(values, targets)):
        if source is None or targets.count(source) > 1:
            continue
        found = _group_output(value)
        if found is not None and _can_write_into(found, source, order):
            candidates.setdefault(found[0], []).append((position, found[1]))
    bound, kept = [], list(values)
    for group, entries in candidates.items():
        if _results_of(group, values) != len(entries) or _results_of(group, (loss,)):
            continue
        for position, index in entries:
            kept[position] = None
            bound.append((group, index, position))
    n = len(updates)
    output.args = ((loss, tuple(kept[:n]), tuple(kept[n:])),)
    return bound


def _results_of(group: Node, values) -> int:
    """How many of `values` are outputs of `group`."""
    return sum(1 for v in values if (_group_output(v) or (None,))[0] is group)


def _group_output(value) -> tuple[Node, int] | None:
    """(fused group node, output index) when `value` is a fused group's output."""
    if not isinstance(value, Node) or value.op != OpKind.call_function:
        return None
    if value.target is operator.getitem and is_fused(value.args[0].target):
        return value.args[0], value.args[1]
    if is_fused(value.target) and value.target.n_outputs == 1:
        return value, 0
    return None


def _can_write_into(found: tuple[Node, int], source: Node, order: dict) -> bool:
    group_node, index = found
    group = group_node.target
    out_meta = group.graph.output_node.args[0]
    out_meta = (out_meta[index] if isinstance(out_meta, (tuple, list)) else out_meta)
    out_meta = out_meta.meta["val"]
    if group.kind not in ("pointwise", "epilogue") or not _same_layout(source, out_meta):
        return False
    aliases = _aliases(source)
    if [a for a in group_node.args if a in aliases] != [source]:
        return False
    inner = group.graph.placeholders[list(group_node.args).index(source)]
    if not all(_is_pointwise(u) and u.meta["val"].shape == out_meta.shape
               for u in inner.users):
        return False
    readers = {u for a in aliases for u in a.users} - {group_node}
    return all(order[r] < order[group_node] for r in readers)


def _aliases(source: Node) -> set[Node]:
    """`source` and every value that may share its storage: outputs of nodes that are
    not kernels (views, eager fallbacks), transitively. Kernels write fresh buffers; a
    group of views alone might run eagerly and return a view, so it counts as one."""
    found, todo = {source}, [source]
    while todo:
        for user in todo.pop().users:
            if user.op == OpKind.call_function and user not in found and \
                    not _computes_fresh_values(user):
                found.add(user)
                todo.append(user)
    return found


def _computes_fresh_values(node: Node) -> bool:
    return is_fused(node.target) and any(
        inner.op == OpKind.call_function and is_op(inner.target) and
        Tag.VIEW not in inner.target.tags for inner in node.target.graph.nodes)


def _is_pointwise(node: Node) -> bool:
    return node.op == OpKind.call_function and is_op(node.target) and \
        Tag.POINTWISE in node.target.tags and Tag.INPLACE not in node.target.tags


def _same_layout(source: Node, meta) -> bool:
    have = source.meta.get("val")
    return have is not None and tuple(have.shape) == tuple(meta.shape) and \
        have.dtype == meta.dtype and tuple(have.strides) == tuple(meta.strides)


# --- sinking the updates ------------------------------------------------------------------------
@register_pass("sink-updates")
def sink_updates(graph: Graph, ctx: PassContext) -> int:
    """Training steps on CUDA: pointwise kernels whose results only leave the step move to its end.

    The optimizer's per-parameter updates and the running-statistic updates read values
    the step computed (gradients, batch statistics) and write only results; moved after
    the last other node, they sit next to each other in the plan, where the CUDA
    backend launches runs of them as one horizontal kernel (one launch instead of one
    per parameter). Moving a node later is legal: its inputs are final (no in-place op
    writes any value of the graph) and nothing in the graph reads its results. The
    gradients stay live to the end (what eager PyTorch's .grad holds anyway). Runs when
    `ctx.options['sink_updates']` is true (the CUDA backend's training steps)."""
    if not ctx.options.get("sink_updates") or mutated_values(graph):
        return 0
    output = graph.output_node
    moved, sunk = 0, {}
    for node in list(graph.nodes):
        getitems = _result_getitems(node, output)
        if getitems is None:
            continue
        for n in [node] + getitems:
            sunk[n] = None          # (output.prepend(n) in turn; one reordering below)
        moved += 1
    if sunk:
        nodes = graph._nodes
        at = nodes.index(output)
        stay = [n for n in nodes[:at] if n not in sunk]
        graph._nodes[:] = stay + list(sunk) + nodes[at:]
    return moved


def _result_getitems(node: Node, output: Node) -> list[Node] | None:
    """The getitem nodes of a pointwise group whose every result goes only to the
    graph's output ([] for a single-result group); None for any other node."""
    if node.op != OpKind.call_function or not is_fused(node.target) or \
            node.target.kind != "pointwise" or not node.users:
        return None
    getitems = []
    for user in node.users:
        if user is output:
            continue
        if user.target is not operator.getitem or set(user.users) != {output}:
            return None
        getitems.append(user)
    return getitems
