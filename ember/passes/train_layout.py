"""Training steps on CUDA: NCHW copies for the float32 weight gradients, written by the
kernels that produce their operands.

The CUDA float32 convolution weight gradient reads both operands NCHW where
Cin/groups*KH*KW >= 512 (`ir.fused.wgrad_reads_nchw`: channels-last tiles measured 2-3x
slower there), so for a channels-last model the eager op copied both the layer's input
and its output gradient: resnet18's compiled step at batch 64 ran 32 such transposes
(1.6 GB read and written). Here each such operand gets an explicit
`contiguous(memory_format=torch.contiguous_format)` node in the graph; fusion puts it in
the kernel that computes the value (the BatchNorm + ReLU forward, the BatchNorm backward,
the residual add), which then writes both layouts in one pass: no copy kernel and no
second read. One conversion per value serves every weight gradient that reads it.

Runs when `ctx.options['wgrad_nchw']` is true (the CUDA backend's training steps). The
option may be a predicate instead, called as `wants(input, grad_output, weight_gradient,
stride, padding, dilation)` with the three TensorMetas: a weight gradient gets NCHW
operands only where it returns true. The CUDA backend's predicate says no where cuDNN,
timed on the channels-last operands against ember's route, is the faster
(frontend/cudnn_conv.py: `wgrad_wants_nchw`): there no kernel writes a second layout.
A predicate with a `prefetch` attribute is first handed every question at once (the
CUDA predicate starts compiling all the routes it will time in parallel).
"""
from __future__ import annotations

from ..ir.fused import wgrad_reads_nchw
from ..ir.graph import Graph, Node, OpKind
from ..ir.meta import TensorMeta, channels_last, contiguous_format
from ..ir.registry import is_op
from .cleanup import mutated_values
from .fuse import functionalize_inplace
from .layout import insert_conversion
from .manager import PassContext, register_pass


@register_pass("wgrad-nchw")
def wgrad_nchw(graph: Graph, ctx: PassContext) -> int:
    """CUDA training steps: NCHW operands for float32 weight gradients, fused upstream."""
    wants = ctx.options.get("wgrad_nchw")
    if not wants:
        return 0
    functionalize_inplace(graph)        # relu_ -> relu where legal, as fuse does first
    mutated = mutated_values(graph)
    converted: dict[Node, Node] = {}
    candidates = [node for node in graph.nodes if _nchw_weight_gradient(node)]
    prefetch = getattr(wants, "prefetch", None)
    if prefetch is not None:            # the predicate's work for every node, started at once
        prefetch([q for q in map(_question, candidates) if q is not None])
    for node in candidates:
        if callable(wants) and not _asks(wants, node):
            continue
        args = list(node.args)
        for i in (0, 1):                                   # grad_output, input
            value = args[i]
            if not _channels_last(value) or value in mutated:
                continue        # a value written in place: its copy must follow the writes
            if value not in converted:
                # just before the first reader: the value is final there
                converted[value] = insert_conversion(value, contiguous_format, before=node)
            args[i] = converted[value]
        if args != list(node.args):
            node.args = tuple(args)
            # the gradient's layout follows its operands' (PyTorch's rule): NCHW now
            node.meta["val"] = node.target.meta(*[a.meta["val"] if isinstance(a, Node) else a
                                                  for a in args], **node.kwargs)
    return len(converted)


def _nchw_weight_gradient(node: Node) -> bool:
    if node.op != OpKind.call_function or not is_op(node.target) or \
            node.target.name != "convolution_backward_weight":
        return False
    g, x, weight_size = node.args[:3]
    transposed = node.args[6] if len(node.args) > 6 else False
    if transposed or not isinstance(g, Node) or not isinstance(x, Node):
        return False
    gm, xm = g.meta.get("val"), x.meta.get("val")
    return isinstance(gm, TensorMeta) and isinstance(xm, TensorMeta) and \
        gm.dtype == xm.dtype and wgrad_reads_nchw(xm.dtype.name, list(weight_size))


def _question(node: Node) -> tuple | None:
    """The predicate's arguments for a weight gradient: (x, g, w TensorMetas, stride,
    padding, dilation); None where its result has no TensorMeta to ask about."""
    g, x, _, stride, padding, dilation = node.args[:6]
    w = node.meta.get("val")
    if not isinstance(w, TensorMeta):
        return None
    return x.meta["val"], g.meta["val"], w, list(stride), list(padding), list(dilation)


def _asks(wants, node: Node) -> bool:
    question = _question(node)
    if question is None:
        return True                      # nothing to ask about: NCHW operands, as always
    return bool(wants(*question))


def _channels_last(value) -> bool:
    meta = value.meta.get("val") if isinstance(value, Node) else None
    return isinstance(meta, TensorMeta) and len(meta.shape) == 4 and \
        meta.is_contiguous(channels_last) and not meta.is_contiguous(contiguous_format)
