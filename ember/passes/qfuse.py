"""Compile-time fusion of int8 residual blocks: a quantized conv2d whose only reader is a
`quantized_add` (a ResNet block's `out += identity`, + relu) becomes one
`quantized_conv2d_add`, so the int8 GEMM's epilogue adds the residual and requantizes
while the tile is in registers instead of a separate pass over both tensors.

    c = quantized_conv2d(x, w, b, stride, padding, dilation, 1, cs, czp, crelu)
    y = quantized_add(c, other, s, zp, relu)          (or add(other, c))
    ==> y = quantized_conv2d_add(x, w, b, stride, padding, dilation, 1, cs, czp, crelu,
                                 other, s, zp, relu)

The fused op keeps the pair's value exactly: the conv's result is still rounded to its
own (cs, czp) before the add (as torch.ao's converted model computes it), and float
addition is commutative, so taking the conv from either side changes no bit. Only
`ember.compile` / `ember.aot` plans run this (the inference pipeline): convert_fx's
graph keeps the pair, as torch.ao's does. Requires shapes (node metadata): the add must
not broadcast, and the conv must be an ordinary one (groups 1).
"""
from __future__ import annotations

from ..ir.graph import Graph, Node
from ..ir.registry import OPS
from .cleanup import insert_call, op_name
from .manager import PassContext, register_pass


def _shape_dtype(node) -> tuple | None:
    val = node.meta.get("val") if isinstance(node, Node) else None
    if val is None or not hasattr(val, "shape"):
        return None
    return tuple(val.shape), val.dtype


def _fusable_conv(add: Node, conv, other) -> bool:
    """conv (an operand of `add`) can take the add into its epilogue."""
    if not isinstance(conv, Node) or op_name(conv) != "quantized_conv2d" or conv is other:
        return False
    if len(conv.users) != 1 or conv.kwargs:
        return False
    groups = conv.target.schema.bind(conv.args, conv.kwargs)[6]
    here, there, out = _shape_dtype(conv), _shape_dtype(other), _shape_dtype(add)
    return groups == 1 and here is not None and here == there == out


@register_pass("fuse-qresidual")
def fuse_quantized_residual(graph: Graph, ctx: PassContext) -> int:
    """quantized_conv2d -> quantized_add(_relu) pairs become quantized_conv2d_add."""
    changed = 0
    for add in list(graph.nodes):
        if add._erased or op_name(add) != "quantized_add":
            continue
        a, b, scale, zero_point, relu = add.target.schema.bind(add.args, add.kwargs)
        for conv, other in ((a, b), (b, a)):
            if _fusable_conv(add, conv, other):
                conv_args = tuple(conv.target.schema.bind(conv.args, conv.kwargs))
                fused = insert_call(add, OPS["quantized_conv2d_add"],
                                    conv_args + (other, scale, zero_point, relu), like=add)
                add.replace_all_uses_with(fused)
                graph.erase_node(add)
                graph.erase_node(conv)
                changed += 1
                break
    return changed
