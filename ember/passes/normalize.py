"""normalize: from torch.fx's recording to the registry-op form passes and codegen read.

ember.fx records a program as torch.fx does — `x.relu()` is `call_method "relu"`,
`a * 2` is `operator.mul`, `F.relu(x)` is a call of `ember.nn.functional.relu` with
its arguments as written — because transform authors match on that. Passes,
golden IR and codegen work on registry ops (`relu(%x)`, `mul(%0, 2)`) with their
arguments in the op schema's canonical form. This pass converts, in place:

1. `call_method m`, where Tensor.m is an op's method → a call of the op
   (`x.view(2, 3)`: the sizes are packed as the method packs them);
2. `operator.<op>` with a tensor operand → the registry op the Tensor's operator
   runs (ir/operators.py: one table with the eager dunders); `+x` is `x`;
3. a registry op's arguments as written → bound to its schema and unbound
   (positional up to the last non-default, non-default keyword-only ones);
4. calls of ember's other functions (`ember.nn.functional.relu`) and of Tensor
   methods that are not ops (`x.float()`) → the op calls they make, by calling
   them on symbolic values (ir/symbolic.py), which needs the inputs' types
   (meta['val'], from ShapeProp or a typed IR). Without them, or when the function
   cannot run symbolically, the node stays a call: every interpreter runs it.

`operator.getitem`/`getattr` stay as they are (indexing and multi-output results
are read that way in the canonical form too), as do submodule calls and Python
arithmetic on sizes (`x.shape[0] + 1`). On a graph already in registry-op form
(the compiler's own traces, parsed IR) the pass changes nothing; the pass manager
runs it first in every pipeline.
"""
from __future__ import annotations

import operator
import types

from ..ir.graph import Graph, Node, OpKind, map_arg
from ..ir.meta import TensorMeta
from ..ir.operators import OPERATOR_OPS, VARARG_METHODS, pack_sizes
from ..ir.registry import OPS, is_op
from ..ir.symbolic import GraphBuilder
from .manager import PassContext, register_pass

# attributes and methods of a tensor that are Python values, not tensors
PYTHON_ATTRIBUTES = frozenset({"shape", "dtype", "device", "ndim", "is_cuda", "requires_grad",
                               "layout", "is_leaf", "is_sparse", "is_quantized", "is_meta",
                               "itemsize", "nbytes", "names"})
PYTHON_METHODS = frozenset({"size", "dim", "ndimension", "numel", "nelement", "item",
                            "tolist", "stride", "element_size", "is_contiguous",
                            "is_floating_point", "is_complex", "data_ptr", "storage_offset",
                            "get_device", "__len__"})
# methods returning a sequence of tensors
SEQUENCE_METHODS = frozenset({"chunk", "split", "unbind", "tensor_split",
                              "split_with_sizes"})


@register_pass("normalize")
def normalize(graph: Graph, ctx: PassContext) -> int:
    """Rewrite torch.fx's method/operator/function calls as registry-op calls."""
    methods = _method_ops()
    kinds = _ValueKinds()
    changed = 0
    for node in graph.nodes:
        if node.op == OpKind.call_method:
            changed += _normalize_method(graph, node, methods, ctx)
        elif node.op == OpKind.call_function:
            changed += _normalize_call(graph, node, kinds, ctx)
    return changed


def _method_ops() -> dict:
    """Tensor method name -> the op it calls (ops declared with method=True)."""
    return {op.python_name: op for op in OPS.values() if op.method and op.namespace == ""}


def _normalize_method(graph: Graph, node: Node, methods: dict, ctx: PassContext) -> int:
    op = methods.get(node.target)
    if op is None:
        return _inline(graph, node, ctx)
    self_, *rest = node.args
    if node.target in VARARG_METHODS and rest:
        rest = [_packed_sizes(rest)]
    _become_op(node, op, (self_, *rest), node.kwargs)
    return 1


def _packed_sizes(args: list):
    """`x.view(a, b)` -> [a, b]; `x.view(shape)` -> shape, when that one value is a
    sequence (a Size node, a list) rather than a single size."""
    if len(args) == 1 and isinstance(args[0], Node):
        return args[0] if _ValueKinds().of(args[0]) == "python-sequence" else [args[0]]
    return pack_sizes(args)


def _normalize_call(graph: Graph, node: Node, kinds: "_ValueKinds", ctx: PassContext) -> int:
    target = node.target
    if is_op(target):
        return _canonical_args(node)
    if target in OPERATOR_OPS:
        if not any(kinds.of(n) == "tensor" for n in node.all_input_nodes):
            return 0                    # Python arithmetic on sizes stays Python
        name = OPERATOR_OPS[target]
        if name is None:                # +x
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)
            return 1
        _become_op(node, OPS[name], node.args, node.kwargs)
        return 1
    if _is_ember_function(target):
        return _inline(graph, node, ctx)
    return 0


def _is_ember_function(target) -> bool:
    """One of ember's Python functions (ember.nn.functional.relu), not a fused group or
    any other callable object a pass put in the graph."""
    return isinstance(target, types.FunctionType) and \
        getattr(target, "__module__", "").startswith("ember")


def _become_op(node: Node, op, args, kwargs) -> None:
    node.op = OpKind.call_function
    node.target = op
    node.args, node.kwargs = op.schema.unbind(op.schema.bind(tuple(args), dict(kwargs)))


def _canonical_args(node: Node) -> int:
    """A registry op called with positional parameters by keyword (as fx records
    `ember.cat(xs, dim=1)`) gets the canonical form; a call that names only
    keyword-only ones is left as written (parsed IR, the compiler's own traces)."""
    op = node.target
    positional = {a.name for a in op.schema.args if not a.kwarg_only}
    if not positional & set(node.kwargs):
        return 0
    args, kwargs = op.schema.unbind(op.schema.bind(node.args, node.kwargs))
    if args == node.args and kwargs == node.kwargs:
        return 0
    node.args, node.kwargs = args, kwargs
    return 1


# --- what a node's value is, when no type was recorded ----------------------------------------
class _ValueKinds:
    """'tensor', 'tensors' (a tuple of them), 'python-sequence' (a size), 'python' or
    'unknown' for each node: from meta['val'] when recorded, else from what made it."""

    def __init__(self):
        self._memo: dict[Node, str] = {}

    def of(self, node: Node) -> str:
        kind = self._memo.get(node)
        if kind is None:
            kind = self._memo[node] = self._kind(node)
        return kind

    def _kind(self, node: Node) -> str:
        if "val" in node.meta:
            return _kind_of_value(node.meta["val"])
        if node.op == OpKind.placeholder:
            has_scalar_default = node.args and not hasattr(node.args[0], "shape")
            return "python" if has_scalar_default else "tensor"
        if node.op in (OpKind.get_attr, OpKind.call_module):
            return "tensor"
        if node.op == OpKind.call_method:
            return self._method_kind(node)
        return self._function_kind(node)

    def _method_kind(self, node: Node) -> str:
        if node.target in PYTHON_METHODS:
            return "python-sequence" if node.target == "size" and len(node.args) == 1 \
                else "python"
        op = _method_ops().get(node.target)
        if node.target in SEQUENCE_METHODS or (op is not None and op.schema.returns_tuple):
            return "tensors"
        return "tensor"

    def _function_kind(self, node: Node) -> str:
        target, args = node.target, node.args
        if is_op(target):
            return "tensors" if target.schema.returns_tuple else "tensor"
        if target is getattr and len(args) == 2 and isinstance(args[0], Node):
            if args[1] in PYTHON_ATTRIBUTES:
                return "python-sequence" if args[1] == "shape" else "python"
            return "tensor" if self.of(args[0]).startswith("tensor") else "unknown"
        if target is operator.getitem and args and isinstance(args[0], Node):
            base = self.of(args[0])
            return {"tensor": "tensor", "tensors": "tensor",
                    "python-sequence": "python"}.get(base, "unknown")
        if target in OPERATOR_OPS:
            inputs = [self.of(n) for n in node.all_input_nodes]
            return "tensor" if "tensor" in inputs else "python"
        if _is_ember_function(target):
            return "tensor"
        return "unknown"


def _kind_of_value(value) -> str:
    if isinstance(value, TensorMeta):
        return "tensor"
    if isinstance(value, (tuple, list)) and value and \
            all(isinstance(v, TensorMeta) for v in value):
        return "tensors"
    if isinstance(value, (tuple, list)):
        return "python-sequence"
    return "python"


# --- inlining a function by calling it on symbolic values ---------------------------------------
def _inline(graph: Graph, node: Node, ctx: PassContext) -> int:
    """Replace `node` by the op calls its function makes on symbolic inputs; 0 (and
    nothing changed) when an input has no recorded type or the call cannot be made
    symbolically (it needs a concrete value)."""
    inputs = node.all_input_nodes
    metas = [n.meta.get("val") for n in inputs]
    if not all(isinstance(m, TensorMeta) for m in metas):
        return 0
    result = _call_symbolically(node, inputs, metas)
    if result is None:
        return 0
    sub, constants = result
    outputs = _splice_target(node, sub)
    if outputs is None:
        return 0
    _splice(graph, node, sub, dict(zip(sub.placeholders, inputs)), constants, ctx, outputs)
    return 1


def _call_symbolically(node: Node, inputs: list, metas: list):
    """(graph, constants) of calling the node's function on symbolic values."""
    builder = GraphBuilder(record_locations=False)
    try:
        with builder:
            values = [builder.placeholder(f"in{i}", m) for i, m in enumerate(metas)]
            env = dict(zip(inputs, values))
            args = map_arg(node.args, env.__getitem__)
            kwargs = map_arg(node.kwargs, env.__getitem__)
            if node.op == OpKind.call_method:
                self_, *rest = args
                out = getattr(self_, node.target)(*rest, **kwargs)
            else:
                out = node.target(*args, **kwargs)
            builder.output(out)
    except Exception:  # noqa: BLE001 - it needs concrete values: the node stays a call
        return None
    return builder.graph, builder.constants


def _splice_target(node: Node, sub: Graph):
    """[(node to replace, sub-graph value)]: the node itself for one result; its getitem
    users for a tuple (None when some other use of the tuple would need the tuple)."""
    result = sub.output_node.args[0]
    if isinstance(result, Node):
        return [(node, result)]
    if isinstance(result, (tuple, list)) and all(isinstance(r, Node) for r in result):
        pairs = []
        for user in node.users:
            index = user.args[1] if user.target is operator.getitem else None
            if not isinstance(index, int) or user.args[0] is not node:
                return None
            pairs.append((user, result[index]))
        return pairs
    return None


def _splice(graph: Graph, node: Node, sub: Graph, env: dict, constants: dict,
            ctx: PassContext, outputs: list) -> None:
    loc = node.meta.get("loc")
    with graph.inserting_before(node):
        for inner in sub.nodes:
            if inner.op in (OpKind.placeholder, OpKind.output):
                continue
            copy = graph.node_copy(inner, env.__getitem__)
            if inner.op == OpKind.get_attr:     # a constant the function made
                copy.target = ctx.add_constant(constants[inner.target], "_constant")
            if loc:
                copy.meta["loc"] = loc
            env[inner] = copy
    for replaced, value in outputs:
        replaced.replace_all_uses_with(env[value])
        graph.erase_node(replaced)
    if node.users:
        return
    if node in graph.nodes:
        graph.erase_node(node)
