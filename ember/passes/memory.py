"""Memory planning: liveness analysis and buffer reuse over a scheduled graph.

The schedule is the node order. Every intermediate tensor (a call whose result is
not a graph output) gets a *slot*: `node.meta['buffer'] = (slot_id, nbytes)`, where
nbytes is the value's own size. The runtime allocates each slot once, with size
`plan.slot_sizes[slot_id]` (the largest value it ever holds), and reuses the slots
across calls. Not planned (no 'buffer' key): placeholders and constants (the caller's
and the module's memory), graph outputs (returned to the caller, so they cannot be
overwritten by the next call), and values that alias any of those.

Aliases share storage: a view (Tag.VIEW) and an in-place op's result live in their
argument's buffer, and `getitem(t, i)` of a multi-output node is that node's i-th
buffer (a multi-output node carries a tuple of (slot, nbytes)). A buffer is live
from the node that defines it to the last reader of any of its aliases.

Allocation is a linear scan in node order: a node's results take a free slot (the
smallest that fits, else the largest free one, which grows, else a new slot); then
the buffers whose last reader is this node are freed. In place: a pointwise node (a
pointwise FusedGroup or a single pointwise op) with one result writes into the slot
of an input whose buffer dies at this node, when that input has the result's shape,
dtype and strides and every read of it is elementwise-aligned with the store — inside
a group, only pointwise ops read it and no op in the group changes the shape — and no
other input of the node aliases the same buffer. With option `residual_in_place` (a
predicate on a conv2d node; the CPU drivers pass one saying the conv kernel sums all
of K in registers before its epilogue), a conv epilogue group (conv2d, then pointwise
ops of its shape) also writes into the slot of its residual, under the same
conditions on that input: each output element is then read and written by the same
tile store, and the conv no longer reads one buffer and writes another of the same
size (resnet18's residual convs).

The plan summary goes to `ctx.options['memory_plan']`: a MemoryPlan with `peak_bytes`
(sum of slot sizes: what the runtime allocates), `unplanned_bytes` (sum of all planned
intermediates: the memory without reuse), `live_peak_bytes` (the most bytes live at
once: a lower bound for any plan), the slot sizes and the in-place count.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field

from ..ir.fused import is_fused
from ..ir.graph import Graph, Node, OpKind
from ..ir.meta import TensorMeta
from ..ir.registry import Tag, is_op
from .manager import PassContext, register_pass

# A storage key: (defining node, output index or None for a single-result node)
Key = tuple


@dataclass
class MemoryPlan:
    slot_sizes: list[int] = field(default_factory=list)
    unplanned_bytes: int = 0
    live_peak_bytes: int = 0
    inplace: int = 0
    values: int = 0

    @property
    def n_slots(self) -> int:
        return len(self.slot_sizes)

    @property
    def peak_bytes(self) -> int:
        return sum(self.slot_sizes)

    @property
    def saving(self) -> float:
        """Fraction of the no-reuse memory the plan saves (0.4: 40% less)."""
        return 1 - self.peak_bytes / self.unplanned_bytes if self.unplanned_bytes else 0.0

    def summary(self) -> str:
        return (f"memplan: {self.values} values in {self.n_slots} slots, "
                f"{self.peak_bytes} bytes with reuse vs {self.unplanned_bytes} without "
                f"({self.saving:.0%} less; live peak {self.live_peak_bytes}), "
                f"{self.inplace} in place")


@register_pass("memplan", requires=("fused",), provides=("memory-planned",))
def plan_memory(graph: Graph, ctx: PassContext) -> int:
    """Assign reusable buffer slots to intermediates from liveness (in place where legal)."""
    for node in graph.nodes:
        node.meta.pop("buffer", None)
    plan = _Planner(graph, ctx.options.get("residual_in_place")).run()
    ctx.options["memory_plan"] = plan
    return plan.values


# --- storage and liveness --------------------------------------------------------------------
def _tensor_meta(val) -> bool:
    return isinstance(val, TensorMeta)


def _aliases_arg0(node: Node) -> bool:
    """Views and in-place ops return (part of) their first argument's storage."""
    return node.op == OpKind.call_function and is_op(node.target) and \
        bool(node.target.tags & {Tag.VIEW, Tag.INPLACE}) and bool(node.args) and \
        isinstance(node.args[0], Node)


def storage_keys(graph: Graph) -> dict[Node, object]:
    """node -> the storage its value lives in: a Key, a tuple of Keys (multi-output),
    "external" (placeholders, constants and what aliases them) or None (no tensor)."""
    storage: dict[Node, object] = {}
    for node in graph.nodes:
        val = node.meta.get("val")
        if node.op in (OpKind.placeholder, OpKind.get_attr):
            storage[node] = "external"
        elif node.op != OpKind.call_function:
            storage[node] = None
        elif _aliases_arg0(node):
            storage[node] = storage.get(node.args[0])
        elif node.target is operator.getitem and isinstance(node.args[0], Node):
            source = storage.get(node.args[0])
            storage[node] = source[node.args[1]] if isinstance(source, tuple) and \
                isinstance(source[0], tuple) else source
        elif _tensor_meta(val):
            storage[node] = (node, None)
        elif isinstance(val, (tuple, list)) and val and all(_tensor_meta(v) for v in val):
            storage[node] = tuple((node, i) for i in range(len(val)))
        else:
            storage[node] = None
    return storage


def _keys_in(value) -> list[Key]:
    if isinstance(value, tuple) and value and isinstance(value[0], tuple):
        return list(value)
    return [value] if isinstance(value, tuple) else []


def _nbytes(key: Key) -> int:
    node, index = key
    val = node.meta["val"]
    return (val if index is None else val[index]).nbytes


class _Planner:
    def __init__(self, graph: Graph, residual_in_place=None):
        self.graph = graph
        self.residual_in_place = residual_in_place
        self.order = {n: i for i, n in enumerate(graph.nodes)}
        self.storage = storage_keys(graph)
        self.last_use, self.outputs = self._liveness()
        self.plan = MemoryPlan()
        self.slot_of: dict[Key, int] = {}
        self.free: list[int] = []
        self.handed_over: set[Key] = set()     # donors whose slot an in-place result took

    def _liveness(self) -> tuple[dict[Key, int], set[Key]]:
        last_use: dict[Key, int] = {}
        outputs: set[Key] = set()
        for node in self.graph.nodes:
            for key in _keys_in(self.storage.get(node)):
                last_use[key] = max(last_use.get(key, -1), self.order[node])
            for inp in node.all_input_nodes:
                for key in _keys_in(self.storage.get(inp)):
                    last_use[key] = max(last_use.get(key, -1), self.order[node])
                    if node.op == OpKind.output:
                        outputs.add(key)
        return last_use, outputs

    def run(self) -> MemoryPlan:
        live = 0
        for node in self.graph.nodes:
            for key in self._defined_by(node):
                donor = self._assign(node, key)
                live += _nbytes(key) - (_nbytes(donor) if donor is not None else 0)
            self.plan.live_peak_bytes = max(self.plan.live_peak_bytes, live)
            for key in self._dying_at(node):
                self.free.append(self.slot_of[key])
                live -= _nbytes(key)
        self._annotate()
        return self.plan

    def _defined_by(self, node: Node) -> list[Key]:
        return [k for k in _keys_in(self.storage.get(node))
                if k[0] is node and k not in self.outputs]

    def _dying_at(self, node: Node) -> list[Key]:
        """Planned buffers whose last reader is `node` (each freed once)."""
        keys = {k for n in [node, *node.all_input_nodes] for k in _keys_in(self.storage.get(n))}
        return [k for k in keys if k in self.slot_of and k not in self.handed_over and
                self.last_use[k] == self.order[node]]

    def _assign(self, node: Node, key: Key) -> Key | None:
        """Give `key` a slot; returns the input whose slot it took over in place, if any."""
        nbytes = _nbytes(key)
        self.plan.values += 1
        self.plan.unplanned_bytes += nbytes
        donor = self._inplace_donor(node)
        if donor is not None:
            self.slot_of[key] = self.slot_of[donor]
            self.handed_over.add(donor)
            self.plan.inplace += 1
            return donor
        self.slot_of[key] = self._take_slot(nbytes)
        return None

    def _take_slot(self, nbytes: int) -> int:
        sizes = self.plan.slot_sizes
        fitting = [s for s in self.free if sizes[s] >= nbytes]
        if fitting:
            slot = min(fitting, key=lambda s: (sizes[s], s))
        elif self.free:
            slot = max(self.free, key=lambda s: (sizes[s], -s))
            sizes[slot] = nbytes                  # grows: allocated once at its largest
        else:
            sizes.append(nbytes)
            return len(sizes) - 1
        self.free.remove(slot)
        return slot

    # --- results -------------------------------------------------------------------------
    def _annotate(self) -> None:
        for node in self.graph.nodes:
            entry = self._entry(self.storage.get(node))
            if entry is not None:
                node.meta["buffer"] = entry

    def _entry(self, value):
        """(slot, nbytes) of a planned Key; a tuple of them for a multi-output node."""
        if isinstance(value, tuple) and value and isinstance(value[0], tuple):
            entries = tuple(self._entry(k) for k in value)
            return entries if all(e is not None for e in entries) else None
        if isinstance(value, tuple) and value in self.slot_of:
            return (self.slot_of[value], _nbytes(value))
        return None

    # --- in place ------------------------------------------------------------------------
    def _inplace_donor(self, node: Node) -> Key | None:
        """An input buffer the node may overwrite: it dies here and is read aligned."""
        out = node.meta.get("val")
        if not _tensor_meta(out):
            return None
        aligned = _read_aligned
        if not _is_pointwise_node(node):
            conv = _epilogue_conv(node)
            if conv is None or self.residual_in_place is None or \
                    not self.residual_in_place(conv):
                return None
            aligned = _read_aligned_after_conv
        inputs = [a for a in node.args if isinstance(a, Node)]
        for index, value in enumerate(node.args):
            key = self.storage.get(value) if isinstance(value, Node) else None
            if not isinstance(key, tuple) or key not in self.slot_of or \
                    self.last_use[key] != self.order[node]:
                continue
            sharing = [a for a in inputs if self.storage.get(a) == key]
            if len(sharing) == 1 and _same_layout(value.meta["val"], out) and \
                    aligned(node, index):
                return key
        return None


def _epilogue_conv(node: Node) -> Node | None:
    """The conv2d of a conv epilogue group with one result, else None."""
    if node.op != OpKind.call_function or not is_fused(node.target) or \
            node.target.kind != "epilogue" or node.target.n_outputs != 1:
        return None
    calls = [n for n in node.target.graph.nodes if n.op == OpKind.call_function]
    if not calls or not is_op(calls[0].target) or calls[0].target.name != "conv2d":
        return None
    return calls[0]


def _read_aligned_after_conv(node: Node, index: int) -> bool:
    """Argument `index` of a conv epilogue group is read only by the pointwise ops after
    the conv, all of the output's shape (the residual), never by the conv itself."""
    group = node.target.graph
    placeholder = group.placeholders[index]
    calls = [n for n in group.nodes if n.op == OpKind.call_function]
    shape = node.meta["val"].shape
    if placeholder in calls[0].all_input_nodes or not placeholder.users:
        return False
    for inner in calls[1:]:
        pointwise = is_op(inner.target) and Tag.POINTWISE in inner.target.tags
        if not pointwise or getattr(inner.meta.get("val"), "shape", None) != shape:
            return False
    return True


def _is_pointwise_node(node: Node) -> bool:
    if node.op != OpKind.call_function:
        return False
    if is_fused(node.target):
        return node.target.kind == "pointwise" and node.target.n_outputs == 1
    return is_op(node.target) and Tag.POINTWISE in node.target.tags and \
        Tag.INPLACE not in node.target.tags


def _same_layout(a, b) -> bool:
    return _tensor_meta(a) and a.shape == b.shape and a.dtype.itemsize == b.dtype.itemsize \
        and tuple(a.strides) == tuple(b.strides)


def _read_aligned(node: Node, index: int) -> bool:
    """Every load of argument `index` uses the store's index: in a group graph, only
    pointwise ops of the output's shape read it (no view, broadcast or reduction)."""
    if not is_fused(node.target):
        return True                     # a single pointwise op: same shape, same strides
    group = node.target.graph
    placeholder = group.placeholders[index]
    shape = node.meta["val"].shape
    for inner in group.nodes:
        if inner.op != OpKind.call_function:
            continue
        pointwise = is_op(inner.target) and Tag.POINTWISE in inner.target.tags
        if not pointwise or getattr(inner.meta.get("val"), "shape", None) != shape:
            return False
    return bool(placeholder.users)

