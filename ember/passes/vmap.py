"""vmap as a graph transform: `batch_graph(graph, in_dims, batch_size) -> Graph`.

The input graph computes one example. The result computes `batch_size` examples at
once: each placeholder gains a batch dimension at its `in_dims` position (None: the
input is shared by every example), and each output carries the batch dimension at
`out_dims` (0 by default).

How: walk the graph in order, keeping for every value a `Batched(value, bdim)` — the
value in the new graph and where its batch dimension is (None: unbatched), like
functorch's BatchedTensor. An op whose tensor inputs are all unbatched is copied as is.
Otherwise its *batching rule* (`vmap_rules.RULES`, one entry per op or per op family)
rewrites the call on the physical, batched values: a pointwise op broadcasts with the
batch dimension moved to the front, a reduction shifts its dims, a matmul pads ranks,
and so on. Moves happen only where a rule needs them.

Ops with no better rule use `loop_rule`, which selects each example, calls the op
and stacks the results: correct, but it emits `batch_size` copies of the op (slow;
docs/autograd.md lists them). Ops that cannot be batched at all (physical strides,
in-place updates of shared state) raise `BatchingRuleError` naming the op and the
user's line.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, Sequence

from ember.ir.errors import EmberError, ShapeError
from ember.ir.graph import Graph, Node, OpKind, map_arg
from ember.ir.meta import TensorMeta
from ember.ir.registry import OpDef, Tag
from ember.ir.symbolic import GraphBuilder, SymbolicTensor


class BatchingRuleError(EmberError, NotImplementedError):
    """vmap met an op it cannot batch (no rule, or batching would change its meaning)."""


@dataclass
class Batched:
    """A value of the graph being built and the position of its batch dim (or None)."""
    value: Any
    bdim: int | None

    @property
    def is_batched(self) -> bool:
        return self.bdim is not None

    @property
    def logical_shape(self) -> tuple:
        shape = tuple(self.value.shape)
        if self.bdim is None:
            return shape
        return shape[:self.bdim] + shape[self.bdim + 1:]

    @property
    def logical_ndim(self) -> int:
        return self.value.ndim - (self.bdim is not None)


@dataclass
class BatchContext:
    """What every rule may need besides its arguments."""
    batch_size: int
    randomness: str = "error"
    node: Node | None = None          # the node being batched, for error messages

    def where(self) -> str:
        loc = self.node.meta.get("loc") if self.node is not None else None
        return f" (at {loc})" if loc else ""


def batch_graph(graph: Graph, in_dims: Sequence[int | None], batch_size: int, *,
                out_dims=0, randomness: str = "error") -> Graph:
    """The graph that runs `graph` over a batch; see the module docstring.

    `in_dims` has one entry per placeholder; `out_dims` is an int/None for every output
    or a sequence with one entry per flattened output leaf.
    """
    placeholders = graph.placeholders
    in_dims = list(in_dims)
    if len(in_dims) != len(placeholders):
        raise ShapeError(f"batch_graph: {len(in_dims)} in_dims for "
                         f"{len(placeholders)} placeholders")
    if randomness not in ("error", "different", "same"):
        raise ValueError(f"vmap: randomness must be 'error', 'different' or 'same', "
                         f"got {randomness!r}")
    ctx = BatchContext(batch_size, randomness)
    env: dict[Node, Any] = {}
    with GraphBuilder() as builder:
        for node, dim in zip(placeholders, in_dims):
            env[node] = _batched_placeholder(builder, node, dim, batch_size)
        for node in graph.nodes:
            if node.op == OpKind.output:
                builder.output(_outputs(node.args[0], env, out_dims, ctx))
            elif node.op != OpKind.placeholder:
                ctx.node = node
                env[node] = _batch_node_noting(builder, node, env, ctx)
    return builder.graph


def _batched_placeholder(builder: GraphBuilder, node: Node, dim, batch_size: int) -> Batched:
    meta: TensorMeta = node.meta["val"]
    if dim is None:
        return Batched(builder.placeholder(node.name, meta), None)
    shape = list(meta.shape)
    if not -len(shape) - 1 <= dim <= len(shape):
        raise ShapeError(f"batch_graph: in_dim {dim} out of range for {node.name} "
                         f"of per-example shape {shape}")
    dim = dim % (len(shape) + 1)
    shape.insert(dim, batch_size)
    return Batched(builder.placeholder(node.name, meta.with_(shape=tuple(shape))), dim)


def _batch_node_noting(builder: GraphBuilder, node: Node, env: dict, ctx: BatchContext):
    """Batch one node; a failure inside a rule says which node was being batched."""
    try:
        return _batch_node(builder, node, env, ctx)
    except EmberError as err:
        if not isinstance(err, BatchingRuleError):
            err.add_note(f"while batching {node.format()}{ctx.where()} for vmap")
        raise


def _batch_node(builder: GraphBuilder, node: Node, env: dict, ctx: BatchContext):
    fetch = env.__getitem__
    if node.op == OpKind.get_attr:
        new = builder.graph.get_attr(node.target)
        new.meta["val"] = node.meta["val"]
        return Batched(SymbolicTensor(new, node.meta["val"]), None)
    if node.op == OpKind.call_function and node.target is operator.getitem:
        container, index = map_arg(node.args, fetch)
        return container[index]
    if node.op == OpKind.call_function and isinstance(node.target, OpDef):
        op = node.target
        bound = op.schema.bind(map_arg(node.args, fetch), map_arg(node.kwargs, fetch))
        return batch_call(op, bound, ctx)
    raise BatchingRuleError(f"vmap: cannot batch {node.op} node {node.name} "
                            f"({node.target_name}){ctx.where()}")


def batch_call(op: OpDef, bound: tuple, ctx: BatchContext):
    """Run `op` on bound args holding `Batched` tensors; returns Batched result(s)."""
    from .vmap_rules import rule_for
    if Tag.RANDOM in op.tags and ctx.randomness == "error":
        raise BatchingRuleError(
            f"vmap: {op.name} is random; pass randomness='different' (independent per "
            f"example) or 'same' (one draw shared by the batch) to vmap{ctx.where()}")
    if not any(b.is_batched for b in tensor_args(op, bound)):
        if Tag.RANDOM not in op.tags or ctx.randomness != "different":
            return wrap_unbatched(call(op, unwrap(bound)))
        # randn(4) under randomness='different' draws once per example (torch.func's
        # semantics): the sampler runs on its first tensor argument spread over the batch
        bound = _spread_first_tensor(op, bound, ctx.batch_size)
    return rule_for(op)(op, list(bound), ctx)


def _spread_first_tensor(op: OpDef, bound: tuple, batch_size: int) -> tuple:
    from .vmap_batchdim import materialize
    i = op.schema.tensor_arg_indices[0]
    spread = list(bound)
    spread[i] = Batched(materialize(bound[i], batch_size), 0)
    return tuple(spread)


# --- helpers shared with the rules --------------------------------------------------------
def tensor_args(op: OpDef, bound) -> list[Batched]:
    """Every Batched among the op's tensor arguments (lists flattened)."""
    found = []
    for i in op.schema.tensor_arg_indices:
        value = bound[i]
        for v in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(v, Batched):
                found.append(v)
    return found


def unwrap(value):
    """Batched -> its physical value, through lists and tuples."""
    if isinstance(value, Batched):
        return value.value
    if isinstance(value, (list, tuple)):
        return type(value)(unwrap(v) for v in value)
    return value


def call(op: OpDef, bound) -> Any:
    """Call `op` with bound (schema-ordered) physical args, recording it in the builder."""
    args, kwargs = op.schema.unbind(tuple(bound))
    return op(*args, **kwargs)


def wrap_result(result, bdim: int | None):
    """Batched result(s) with one bdim for every tensor output."""
    if isinstance(result, (list, tuple)):
        items = [wrap_result(r, bdim) for r in result]
        return list(items) if isinstance(result, list) else tuple(items)
    return Batched(result, bdim)


def wrap_unbatched(result):
    return wrap_result(result, None)


def _outputs(value, env: dict, out_dims, ctx: BatchContext):
    """Map the output structure, moving each leaf's batch dim to its out_dim."""
    leaves: list[Node] = []
    map_arg(value, lambda n: leaves.append(n) or n)
    dims = list(out_dims) if isinstance(out_dims, (list, tuple)) else [out_dims] * len(leaves)
    if len(dims) != len(leaves):
        raise ShapeError(f"vmap: {len(dims)} out_dims for {len(leaves)} outputs")
    targets = dict(zip(leaves, dims))
    return map_arg(value, lambda n: _output_leaf(env[n], targets[n], ctx, n))


def _output_leaf(b: Batched, out_dim, ctx: BatchContext, node: Node):
    from .vmap_batchdim import materialize
    if out_dim is None:
        if b.is_batched:
            raise ShapeError(f"vmap: out_dims is None for output {node.name}, but it "
                             "depends on the batched inputs (None is only for outputs "
                             "that are the same for every example)")
        return b.value
    ndim = b.logical_ndim + 1
    if not -ndim <= out_dim < ndim:
        raise ShapeError(f"vmap: out_dim {out_dim} out of range for output {node.name} "
                         f"with per-example shape {list(b.logical_shape)}")
    front = materialize(b, ctx.batch_size)
    out_dim %= ndim
    return front if out_dim == 0 else front.movedim(0, out_dim)
