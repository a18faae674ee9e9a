"""Lower pt2e's quantize/dequantize graph to ember's int8 ops (Inductor's q/dq patterns).

convert_pt2e gives torch's reference form: float conv / linear / add / pool ops between
`dequantize` and `quantize_per_tensor` nodes. torch gets int8 speed from that graph by
torch.compile (Inductor matches dq -> op -> q and calls int8 kernels); this pass does the
same for `ember.compile`, rewriting into the ops convert_fx lowers to:

    q(relu?(conv2d(dq(xq), dq(W), b, ...)), s, zp)  ==> quantized_conv2d(xq, W, b, ..., s, zp, relu)
    q(relu?(linear(dq(xq), dq(W), b)), s, zp)       ==> quantized_linear(xq, W, b, s, zp, relu)
    q(relu?(add(dq(aq), dq(bq))), s, zp)            ==> quantized_add(aq, bq, s, zp, relu)
    q(max_pool2d(dq(xq), ...), s, zp)  (xq's s, zp) ==> max_pool2d(xq, ...)   (also flatten)

W is a constant quantized weight (qint8, per channel or per tensor), activations quint8.
The int8 kernels sum integers exactly and requantize in float32 (torch.ao's int8
arithmetic), where the reference sums dequantized floats: a value on a rounding boundary
may land one quantization step apart. max_pool2d / flatten on the integers are exact (max
commutes with the monotonic dequantize; requantizing with the same qparams gives the same
integers). Left float, as nothing in ember computes them exactly in int8: a conv whose
float result feeds a residual add (torch's recipe does not quantize it; Inductor fuses the
add into the conv's float epilogue, ember's quantized_conv2d_add rounds the conv first), a
linear / conv whose output is a float model output, every other op.

Runs first in ember.compile's inference pipeline (right after normalize, before folding
turns the weight's dequantize into a float constant). Graphs without q/dq are untouched.
"""
from __future__ import annotations

from ..ir.graph import Graph, Node, OpKind
from ..ir.registry import OPS
from .cleanup import insert_call, op_name as _node_op
from .manager import PassContext, register_pass

_SHARED = {"max_pool2d", "flatten"}
# where each quantized value's maker takes its output scale and zero point
_QPARAMS_AT = {"quantize_per_tensor": 1, "quantized_conv2d": 7, "quantized_linear": 3,
               "quantized_add": 2}


def op_name(value) -> str | None:
    """The registry op a node calls; None for anything else (numbers too)."""
    return _node_op(value) if isinstance(value, Node) else None


def _val(node):
    return node.meta.get("val") if isinstance(node, Node) else None


def _is_quantized(node, name: str) -> bool:
    val = _val(node)
    return val is not None and str(getattr(val, "dtype", "")).endswith(name)


def _activation(dq) -> Node | None:
    """The quint8 value (a quantize, or an int8 op already lowered) `dq` dequantizes."""
    if op_name(dq) != "dequantize" or len(dq.args) != 1 or dq.kwargs:
        return None
    q = dq.args[0]
    return q if isinstance(q, Node) and _is_quantized(q, "quint8") else None


def _weight(dq) -> Node | None:
    """The constant qint8 weight `dq` dequantizes, if it is one."""
    if op_name(dq) != "dequantize" or len(dq.args) != 1 or dq.kwargs:
        return None
    w = dq.args[0]
    if isinstance(w, Node) and w.op == OpKind.get_attr and _is_quantized(w, "qint8"):
        return w
    return None


def _qparams(value: Node) -> tuple | None:
    """(scale, zero_point) of a quantize node or of a lowered int8 op's output."""
    name = op_name(value)
    if name in _QPARAMS_AT:
        at = _QPARAMS_AT[name]
        return tuple(_bound(value)[at:at + 2])
    if name in _SHARED:
        return _qparams(value.args[0])
    return None


def _tail(node: Node):
    """(relu or None, the quint8 quantize that alone reads node [through a relu])."""
    relu = None
    users = list(node.users)
    if len(users) == 1 and op_name(users[0]) == "relu" and not users[0].kwargs:
        relu, users = users[0], list(users[0].users)
    if len(users) == 1 and op_name(users[0]) == "quantize_per_tensor" and \
            _is_quantized(users[0], "quint8") and users[0].args[0] is (relu or node):
        return relu, users[0]
    return relu, None


def _bound(node: Node) -> list:
    return list(node.target.schema.bind(node.args, node.kwargs))


def _rewrite(graph: Graph, node: Node, relu, out_q: Node, op, args: tuple) -> None:
    new = insert_call(out_q, OPS[op], args, like=out_q)
    out_q.replace_all_uses_with(new)
    for dead in (out_q, relu, node):
        if dead is not None and not dead.users:
            graph.erase_node(dead)


def _lower_weighted(graph: Graph, node: Node, name: str) -> bool:
    args = _bound(node)
    x, w = _activation(args[0]), _weight(args[1])
    bias = args[2]
    if x is None or w is None or (bias is not None and _is_quantized(bias, "int32")):
        return False
    relu, out_q = _tail(node)
    if out_q is None or (name == "conv2d" and isinstance(args[4], str)):
        return False                               # padding="same" stays a float conv
    _, scale, zero_point, _ = _bound(out_q)
    if name == "linear":
        _rewrite(graph, node, relu, out_q, "quantized_linear",
                 (x, w, bias, scale, zero_point, relu is not None))
    else:
        stride, padding, dilation, groups = args[3:7]
        _rewrite(graph, node, relu, out_q, "quantized_conv2d",
                 (x, w, bias, list(stride), list(padding), list(dilation), groups, scale,
                  zero_point, relu is not None))
    return True


def _lower_add(graph: Graph, node: Node) -> bool:
    args = _bound(node)
    if len(args) > 2 and args[2] != 1:
        return False                               # add(a, b, alpha=...)
    a, b = _activation(args[0]), _activation(args[1])
    if a is None or b is None or _val(args[0]).shape != _val(args[1]).shape:
        return False
    relu, out_q = _tail(node)
    if out_q is None:
        return False
    _, scale, zero_point, _ = _bound(out_q)
    _rewrite(graph, node, relu, out_q, "quantized_add",
             (a, b, scale, zero_point, relu is not None))
    return True


def _lower_shared(graph: Graph, node: Node) -> bool:
    x = _activation(node.args[0]) if node.args else None
    users = list(node.users)
    if x is None or len(users) != 1 or op_name(users[0]) != "quantize_per_tensor":
        return False
    out_q = users[0]
    if _qparams(x) is None or tuple(_bound(out_q)[1:3]) != _qparams(x):
        return False                               # other qparams: a real requantize
    node.replace_input_with(node.args[0], x)
    node.meta["val"] = out_q.meta.get("val", node.meta.get("val"))
    out_q.replace_all_uses_with(node)
    graph.erase_node(out_q)
    return True


@register_pass("lower-qdq")
def lower_qdq(graph: Graph, ctx: PassContext) -> int:
    """dq -> conv2d / linear / add (-> relu) -> q and dq -> max_pool2d / flatten -> q
    become int8 ops on the quantized values."""
    changed = 0
    for node in list(graph.nodes):
        if node._erased:
            continue
        name = op_name(node)
        if name in ("conv2d", "linear"):
            changed += _lower_weighted(graph, node, name)
        elif name == "add":
            changed += _lower_add(graph, node)
        elif name in _SHARED:
            changed += _lower_shared(graph, node)
    if changed:
        for node in reversed(list(graph.nodes)):
            if op_name(node) == "dequantize" and not node.users:
                graph.erase_node(node)
    return changed
