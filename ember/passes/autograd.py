"""Reverse-mode autograd as a graph transform: forward graph -> joint forward+backward graph.

`joint_graph(graph, wrt)` returns a new graph that computes the forward outputs and the
gradients of the chosen inputs. It is an ordinary graph (printable, verifiable, and
open to later passes such as the min-cut partitioner in `passes.partition`):

    placeholders: the forward graph's placeholders, then one cotangent per
                  differentiable (floating/complex) output, named grad_out0, grad_out1...
    output:       (forward outputs, (gradient of each `wrt` input, ...))

The backward part is built by running each op's registry derivative rule under a
`GraphBuilder` on symbolic values: the same rules, the same `fit_grad` reduction and the
same accumulation as the eager tape (`frontend/autograd/engine.py`), so the gradients
agree with `ember.autograd.grad`. Like the tape, ops declared NOT_DIFFERENTIABLE stop
gradients silently, integer/bool values carry none, and multi-output ops get zeros for
outputs that received no gradient.

Semantics chosen where torch leaves a choice (torch.autograd.grad's flags):
- inputs that do not influence any output get zeros (allow_unused=True,
  materialize_grads=True); pass allow_unused=False for torch's error instead.
- with seed="ones" and a single one-element output there is no cotangent placeholder:
  the seed is ones (what `grad` of a loss needs).

Every node carries meta['phase']: 'forward' for copies of the forward graph, 'backward'
for what the pass added (cotangent placeholders included).

In-place ops are functionalized (`add_(x, y)` becomes `add(x, y)` and later uses of x
see the result). Mutating a graph input, a view, or a tensor that has views would need
the aliasing relation in the graph; those raise AutogradError naming the op and line.
"""
from __future__ import annotations

import operator
from typing import Any, Callable, Iterable, Sequence

from ember.ir import autodiff
from ember.ir.errors import AutogradError
from ember.ir.graph import Graph, Node, OpKind, map_arg, nodes_in
from ember.ir.meta import TensorMeta
from ember.ir.registry import NOT_DIFFERENTIABLE, OpDef, Tag, is_op
from ember.ir.symbolic import GraphBuilder, SymbolicTensor, call_graph

__all__ = ["joint_graph", "trace_joint", "call_joint", "grad_fn_from_graph", "backprop",
           "copy_functional", "trace_forward", "requires_grad_nodes", "is_differentiable_meta",
           "cotangent_placeholders"]

FORWARD = "forward"
BACKWARD = "backward"


# --- small predicates ----------------------------------------------------------------------
def is_differentiable_meta(meta) -> bool:
    """Values of floating or complex dtype carry gradients (torch's requires_grad rule)."""
    return isinstance(meta, TensorMeta) and (meta.dtype.is_floating_point or
                                             meta.dtype.is_complex)


def where(node: Node) -> str:
    loc = node.meta.get("loc")
    return f" (at {loc})" if loc else ""


def _describe(node: Node) -> str:
    return node.target.name if is_op(node.target) else f"{node.op.value} {node.target_name}"


def _ops():
    from ember.ir.ops import OPS_NS
    return OPS_NS


# --- copying the forward graph -------------------------------------------------------------
def copy_functional(graph: Graph, builder: GraphBuilder) -> tuple[dict, Any]:
    """Copy `graph` (but its output) into the builder's graph, functionalizing in-place
    ops and marking nodes 'forward'; returns (old node -> new node, the output value in
    new nodes). Shared with the forward-mode pass."""
    env: dict[Node, Node] = {}
    new = builder.graph
    for node in graph.nodes:
        if node.op == OpKind.output:
            return env, map_arg(node.args[0], lambda n: env[n])
        if _is_inplace(node):
            env[node] = _functionalize(node, env, builder)
            env[node.args[0]] = env[node]    # later uses of the mutated tensor see the result
        else:
            env[node] = new.node_copy(node, lambda n: env[n])
        env[node].meta["phase"] = FORWARD
    return env, None


def _is_inplace(node: Node) -> bool:
    return node.op == OpKind.call_function and is_op(node.target) and \
        node.target.has_tag(Tag.INPLACE)


def _functionalize(node: Node, env: dict, builder: GraphBuilder) -> Node:
    """`op_(x, ...)` -> `op(x, ...)` cast back to x's dtype, as the in-place op would."""
    op: OpDef = node.target
    mutated = node.args[0] if node.args else None
    if not isinstance(mutated, Node):
        raise AutogradError(f"{op.name}: cannot functionalize an in-place op whose first "
                            f"argument is not a graph value{where(node)}")
    _check_mutation_is_local(op, mutated, node)
    if op.functional is None:
        raise AutogradError(f"{op.name}: in-place op with no functional variant{where(node)}")
    start = len(builder.graph)
    args = map_arg(node.args, lambda n: symbolic(env[n]))
    kwargs = map_arg(node.kwargs, lambda n: symbolic(env[n]))
    result = op.functional(*args, **kwargs)
    target_dtype = node.meta["val"].dtype
    if result.dtype != target_dtype:
        result = _ops().convert_element_type(result, target_dtype)
    for made in builder.graph.nodes[start:]:
        made.meta["loc"] = node.meta.get("loc")
    return result.node


def _check_mutation_is_local(op: OpDef, mutated: Node, node: Node) -> None:
    if mutated.op in (OpKind.placeholder, OpKind.get_attr):
        raise AutogradError(f"{op.name}: in-place update of graph input %{mutated.name}; the "
                            f"joint graph is functional, so the caller would not see the "
                            f"update. Use the out-of-place {op.name.rstrip('_')}{where(node)}")
    aliases = [mutated] + [u for u in mutated.users if _is_view(u)]
    if _is_view(mutated) or len(aliases) > 1:
        raise AutogradError(f"{op.name}: in-place update of %{mutated.name}, which is or has a "
                            f"view; graph autograd does not track aliasing. Clone before "
                            f"updating in place{where(node)}")


def _is_view(node: Node) -> bool:
    return node.op == OpKind.call_function and is_op(node.target) and \
        node.target.has_tag(Tag.VIEW)


# --- symbolic values for existing nodes -----------------------------------------------------
def symbolic(node: Node) -> SymbolicTensor | Node:
    val = node.meta.get("val")
    return SymbolicTensor(node, val) if isinstance(val, TensorMeta) else node


def _output_items(node: Node) -> list[Node]:
    """One getitem node per output of a multi-output node (reusing existing ones)."""
    metas = node.meta["val"]
    found: dict[int, Node] = {}
    for user in node.users:
        if user.op == OpKind.call_function and user.target is operator.getitem:
            found.setdefault(user.args[1], user)
    graph, last = node.graph, node
    for i in range(len(metas)):
        if i not in found:
            with graph.inserting_after(last):
                item = graph.call_function(operator.getitem, (node, i))
            item.meta["val"] = metas[i]
            item.meta["phase"] = node.meta.get("phase", FORWARD)
            found[i] = item
        last = found[i] if graph.nodes.index(found[i]) > graph.nodes.index(last) else last
    return [found[i] for i in range(len(metas))]


def out_value(node: Node):
    metas = node.meta["val"]
    if isinstance(metas, TensorMeta):
        return symbolic(node)
    items = [symbolic(n) for n in _output_items(node)]
    return items if isinstance(metas, list) else tuple(items)


# --- which values carry gradients ------------------------------------------------------------
def requires_grad_nodes(nodes: Iterable[Node], sources: Iterable[Node]) -> set[Node]:
    """Nodes whose value depends differentiably on `sources`, by the eager tape's rules."""
    req = {s for s in sources}
    for node in nodes:
        if node in req or not any(i in req for i in node.all_input_nodes):
            continue
        if node.op == OpKind.call_function and node.target is operator.getitem:
            if is_differentiable_meta(node.meta.get("val")):
                req.add(node)
        elif node.op == OpKind.call_function and is_op(node.target):
            if node.target.derivative is NOT_DIFFERENTIABLE:
                continue
            val = node.meta.get("val")
            if isinstance(val, (tuple, list)) or is_differentiable_meta(val):
                req.add(node)
        else:
            req.add(node)      # opaque (call_method, call_module, Python function): error
    return req                 # if a gradient ever reaches it, in `_backprop_node`


# --- the reverse sweep -------------------------------------------------------------------------
class NodeSums:
    """A value summed per node: gradients here (per output slot of multi-output nodes
    too), tangents in forward_ad. Absent means zero."""

    def __init__(self):
        self.by_node: dict[Node, Any] = {}

    def add(self, node: Node, value) -> None:
        have = self.by_node.get(node)
        self.by_node[node] = value if have is None else have + value

    def get(self, node):
        return self.by_node.get(node) if isinstance(node, Node) else None



def backprop(nodes: Sequence[Node], req: set[Node], seeds) -> NodeSums:
    """Run the derivative rules over `nodes` (in forward order) from `seeds` ((node, its
    gradient) pairs, or a dict; a node seeded twice gets the sum); must run under a
    GraphBuilder of the nodes' graph. Returns the accumulated gradients."""
    grads = NodeSums()
    for node, g in (seeds.items() if isinstance(seeds, dict) else seeds):
        grads.add(node, g)
    for node in reversed(list(nodes)):
        if node not in req:
            continue
        if node.op == OpKind.call_function and node.target is operator.getitem:
            continue                  # collected by its multi-output parent below
        if not any(i in req for i in node.all_input_nodes):
            continue                  # a source: its gradient is a result, not passed on
        incoming = _incoming(node, grads)
        if incoming is None:
            continue
        _backprop_node(node, incoming, req, grads)
    return grads


def _incoming(node: Node, grads: NodeSums):
    """The gradient of `node`'s output(s), zeros for missing slots; None when none came."""
    val = node.meta.get("val")
    if not isinstance(val, (tuple, list)):
        return grads.get(node)
    items = _output_items(node)
    got = [grads.get(item) for item in items]
    if all(g is None for g in got):
        return None
    return tuple(g if g is not None else autodiff.zeros(m.shape, m.dtype)
                 for g, m in zip(got, val))


def _backprop_node(node: Node, grad, req: set[Node], grads: NodeSums) -> None:
    if node.op != OpKind.call_function or not is_op(node.target):
        raise AutogradError(f"cannot differentiate through {_describe(node)} (%{node.name}); "
                            f"graph autograd needs registry ops{where(node)}")
    op: OpDef = node.target
    if not op.is_differentiable:
        raise AutogradError(f"{op.name}: the derivative is not implemented, and %{node.name} "
                            f"is on the path to a differentiated input{where(node)}")
    bound = op.schema.bind(node.args, node.kwargs)
    inputs = tensor_inputs(op, bound)
    raw = op.call_derivative(grad, map_arg(bound, symbolic), out_value(node))
    for input_node, g in zip(inputs, flat_grads(raw, len(inputs), op)):
        if g is None or not isinstance(input_node, Node) or input_node not in req:
            continue
        meta = input_node.meta["val"]
        grads.add(input_node, autodiff.fit_grad(g, meta.shape, meta.dtype))


def tensor_inputs(op: OpDef, bound: tuple) -> list:
    """One entry per tensor argument, Tensor[] arguments expanded (the tape's order)."""
    inputs = []
    for i in op.schema.tensor_arg_indices:
        value = bound[i]
        inputs.extend(value if isinstance(value, (list, tuple)) else (value,))
    return inputs


def flat_grads(raw: tuple, expected: int, op: OpDef) -> list:
    flat = []
    for g in raw:
        flat.extend(g if isinstance(g, (list, tuple)) else (g,))
    if len(flat) != expected:
        raise AutogradError(f"derivative of {op.name} produced {len(flat)} gradients for "
                            f"{expected} tensor inputs")
    return flat


# --- the pass ------------------------------------------------------------------------------
def copy_with_sources(graph: Graph, builder: GraphBuilder, wrt, transform: str):
    """Copy `graph` functionally into `builder`: (its output value, the copied nodes that
    `wrt` names). Shared by joint_graph and forward_ad.jvp_graph."""
    env, out_value = copy_functional(graph, builder)
    if out_value is None:
        raise AutogradError(f"{transform}: the forward graph has no output node")
    return out_value, resolve_wrt(graph, env, wrt)


def joint_graph(graph: Graph, wrt: Sequence[int | str], *, seed: str | None = None,
                allow_unused: bool = True) -> Graph:
    """The joint forward+backward graph of `graph`; see the module docstring.

    `wrt`: placeholder indices and/or get_attr targets (parameters held as constants).
    """
    if seed not in (None, "ones"):
        raise AutogradError(f"joint_graph: seed must be None or 'ones', got {seed!r}")
    builder = GraphBuilder(record_locations=False)
    with builder:
        out_value, sources = copy_with_sources(graph, builder, wrt, "joint_graph")
        seeds = _make_seeds(builder, nodes_in(out_value), seed)
        forward = [n for n in builder.graph.nodes if n.meta.get("phase") == FORWARD]
        req = requires_grad_nodes(forward, sources)
        grads = backprop(forward, req, seeds)
        results = tuple(_final_grad(grads, node, i, allow_unused)
                        for i, node in enumerate(sources))
        builder.output((out_value, results))
    _finish(builder)
    return builder.graph


def resolve_wrt(graph: Graph, env: dict, wrt) -> list[Node]:
    """The copied nodes for `wrt` (placeholder indices / get_attr targets of `graph`)."""
    placeholders = graph.placeholders
    attrs = {n.target: n for n in graph.nodes if n.op == OpKind.get_attr}
    sources = []
    for w in wrt:
        if isinstance(w, int) and 0 <= w < len(placeholders):
            node = placeholders[w]
        elif isinstance(w, str) and w in attrs:
            node = attrs[w]
        else:
            raise AutogradError(f"wrt entry {w!r} is neither a placeholder index "
                                f"(0..{len(placeholders) - 1}) nor a get_attr target "
                                f"({sorted(attrs)})")
        if not is_differentiable_meta(node.meta.get("val")):
            raise AutogradError(f"input {w!r} (%{node.name}) has type "
                                f"{node.meta.get('val')}; only floating point and complex "
                                "tensors can require gradients")
        sources.append(env[node])
    return sources


def _make_seeds(builder: GraphBuilder, outputs: list[Node], seed: str | None) -> dict:
    """One gradient per differentiable output: a cotangent placeholder, or ones."""
    live = [n for n in outputs if is_differentiable_meta(n.meta.get("val"))]
    if seed == "ones":
        if len(live) != 1 or live[0].meta["val"].numel() != 1:
            shapes = [list(n.meta["val"].shape) for n in live]
            raise AutogradError(f"joint_graph(seed='ones'): grad can be implicitly created "
                                f"only for one scalar output; got outputs of shapes {shapes}")
        return {live[0]: autodiff.ones_like_value(symbolic(live[0]))}
    seeds: dict[Node, Any] = {}
    graph = builder.graph
    for i, node in enumerate(live):
        with graph.inserting_after(graph.placeholders[-1] if graph.placeholders else None):
            cot = builder.placeholder(f"grad_out{i}", node.meta["val"])
        cot.node.meta["phase"] = BACKWARD
        seeds[node] = cot if node not in seeds else seeds[node] + cot
    return seeds


def _final_grad(grads: NodeSums, node: Node, index: int, allow_unused: bool):
    g = grads.get(node)
    if g is not None:
        return g.node
    if not allow_unused:
        raise AutogradError(f"One of the differentiated Tensors (input {index}) appears to not "
                            "have been used in the graph. Set allow_unused=True if this is the "
                            "desired behavior.")
    meta = node.meta["val"]
    return autodiff.zeros(meta.shape, meta.dtype).node


def _finish(builder: GraphBuilder) -> None:
    """Mark what the pass added, drop backward nodes nobody uses, refuse stray constants."""
    graph = builder.graph
    for node in graph.nodes:
        node.meta.setdefault("phase", BACKWARD)
    graph.eliminate_dead_code(lambda n: n.meta.get("phase") == FORWARD)
    if builder.constants:
        raise AutogradError(f"internal: derivative rules created real tensors "
                            f"{sorted(builder.constants)} while building a graph; rules must "
                            "make constants with factory ops")


# --- tracing and running --------------------------------------------------------------------
def trace_forward(fn_or_module, example_inputs: Sequence) -> tuple[Graph, dict, int]:
    """Trace `fn_or_module(*example_inputs)` into a forward graph with `build_graph`.

    For a module its parameters become the first placeholders (named after them, in
    `named_parameters()` order), then the inputs (arg0, arg1, ...), so a training step
    can feed new weights; buffers stay get_attr constants. Returns (graph, constants,
    number of parameter placeholders).
    """
    from ember.ir.meta import meta_of
    from ember.ir.symbolic import build_graph
    params = _named_parameters(fn_or_module)
    names = [_placeholder_name(n) for n, _ in params] + \
        [f"arg{i}" for i in range(len(example_inputs))]
    metas = [meta_of(p) for _, p in params] + [meta_of(x) for x in example_inputs]

    def run(*values):
        if not params:
            return fn_or_module(*values)
        with parameters_replaced(fn_or_module, [p for _, p in params], values[:len(params)]):
            return fn_or_module(*values[len(params):])

    graph, constants = build_graph(run, metas, names)
    return graph, constants, len(params)


def trace_joint(fn_or_module, example_inputs: Sequence, wrt="parameters", *,
                seed: str | None = None) -> tuple[Graph, dict]:
    """Trace `fn_or_module(*example_inputs)` (see `trace_forward`) and build its joint graph.

    `wrt`: "parameters" (a module's parameters), "inputs" (every floating input), or
    placeholder indices. Returns (joint graph, constants) for `call_graph`/`call_joint`.
    """
    forward, constants, n_params = trace_forward(fn_or_module, example_inputs)
    metas = [p.meta["val"] for p in forward.placeholders]
    return joint_graph(forward, _wrt_for(wrt, n_params, metas), seed=seed), constants


def _named_parameters(fn_or_module) -> list:
    named = getattr(fn_or_module, "named_parameters", None)
    return list(named()) if callable(named) else []


def _placeholder_name(param_name: str) -> str:
    return param_name.replace(".", "_")


def _wrt_for(wrt, n_params: int, metas: list) -> list[int]:
    if wrt == "parameters":
        return list(range(n_params))
    if wrt == "inputs":
        return [i for i in range(n_params, len(metas)) if is_differentiable_meta(metas[i])]
    return list(wrt)


class parameters_replaced:
    """Context manager: swap a module tree's parameters for `values` (matched to `params`
    by identity, so tied weights stay tied) and put the originals back on exit. Tracing
    uses it to feed symbolic parameters through a module's own forward."""

    def __init__(self, module, params: list, values: Sequence):
        self.by_id = {id(p): v for p, v in zip(params, values)}
        self.module = module
        self.saved: list = []

    def __enter__(self):
        for mod in self.module.modules():
            store = mod._parameters
            for name, p in list(store.items()):
                if p is not None and id(p) in self.by_id:
                    self.saved.append((store, name, p))
                    store[name] = self.by_id[id(p)]
        return self

    def __exit__(self, *exc):
        for store, name, p in self.saved:
            store[name] = p


def call_joint(joint: Graph, inputs: Sequence, cotangents: Sequence = (),
               constants: dict | None = None):
    """Run a joint graph (eagerly on Tensors, or inlined on SymbolicTensors):
    returns (outputs, grads)."""
    outputs, grads = call_graph(joint, list(inputs) + list(cotangents), constants)
    return outputs, grads


def cotangent_placeholders(joint: Graph) -> list[Node]:
    """The joint graph's cotangent inputs (phase 'backward' placeholders), in order."""
    return [p for p in joint.placeholders if p.meta.get("phase") == BACKWARD]


def grad_fn_from_graph(joint: Graph, constants: dict | None = None) -> Callable:
    """A function `(*inputs, *cotangents) -> (outputs, grads)` running `joint`."""
    def run(*values):
        return call_graph(joint, list(values), constants)
    return run
