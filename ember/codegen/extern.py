"""Extern kernels: ops that run as library calls (GEMM, convolution) instead of
generated loops. Each entry makes a kernel-style callable for one node:

    fn = extern_kernel(node)          # or None when the node is not one of these
    fn([*input_arrays, out_array])    # writes the result into out_array

Inputs are the node's tensor arguments in `tensor_inputs(node)` order; everything
else (strides, padding, alpha) is fixed when the callable is made. Only float32 has
native kernels; other dtypes fall back to the op's eager execution (the caller's
choice), as do shapes these do not cover.
"""
from __future__ import annotations

import os
import threading
from typing import Callable

import numpy as np

from ..ir.graph import Graph, Node, OpKind
from ..ir.meta import TensorMeta, channels_last
from ..ir.registry import is_op
from .llvm.conv import padding_pairs
from .llvm.conv import conv2d as conv2d_kernel
from .llvm.gemm import gemm, gemm_batched, prepack_b
from .llvm.implicit_conv import ConvGeometry, Epilogue, PreparedConv

Constant = Callable[[Node], "np.ndarray | None"] | None


def tensor_inputs(node: Node) -> list[Node]:
    """The node's tensor-valued input nodes, in argument order (duplicates kept)."""
    found = []

    def visit(v):
        if isinstance(v, Node):
            found.append(v)
        elif isinstance(v, (list, tuple)):
            for x in v:
                visit(x)
    for a in node.args:
        visit(a)
    for a in node.kwargs.values():
        visit(a)
    return found


def _bound(node: Node) -> dict:
    op = node.target
    return op.schema.as_kwargs(op.schema.bind(node.args, node.kwargs))


def _all_f32(node: Node) -> bool:
    metas = [n.meta.get("val") for n in tensor_inputs(node)] + [node.meta.get("val")]
    return all(isinstance(m, TensorMeta) and m.dtype.name == "float32" for m in metas)


def _as_2d(x: np.ndarray) -> np.ndarray | None:
    """x (..., K) as a (rows, K) matrix without copying, when its strides allow."""
    if x.ndim == 2:
        return x
    rows = x.reshape(-1, x.shape[-1]) if x.size else None
    return rows if rows is not None and np.shares_memory(rows, x) else None


def _packed(constant: Constant, node, transpose: bool = False):
    """A constant 2-D weight packed for the GEMM once, at plan build (else None)."""
    value = constant(node) if constant and isinstance(node, Node) else None
    if value is None or value.ndim != 2 or value.dtype != np.float32:
        return None
    return prepack_b(value.T if transpose else value)


def _linear(node: Node, constant: Constant = None) -> Callable | None:
    args = _bound(node)
    has_bias = isinstance(args["bias"], Node)
    packed = _packed(constant, args["weight"], transpose=True)

    def run(arrays):
        x, w, *rest = arrays
        w_t = packed if packed is not None else w.T
        out = rest[-1]
        x2, out2 = _as_2d(x), _as_2d(out)
        if x2 is None or out2 is None:
            x2, out2 = np.ascontiguousarray(x).reshape(-1, x.shape[-1]), None
        target = out2 if out2 is not None else np.empty((x2.shape[0], w.shape[0]), np.float32)
        if has_bias:
            target[...] = rest[0]
        gemm(x2, w_t, target, beta=1.0 if has_bias else 0.0)
        if out2 is None:
            out[...] = target.reshape(out.shape)
    return run


def _mm(node: Node, constant: Constant = None) -> Callable | None:
    def run(arrays):
        a, b, out = arrays
        gemm(a, b, out)
    return run


def _matmul(node: Node, constant: Constant = None) -> Callable | None:
    a, b = (n.meta["val"] for n in tensor_inputs(node)[:2])
    if len(b.shape) < 2 or len(a.shape) < 2:
        return None
    if len(b.shape) == 2:
        packed = _packed(constant, tensor_inputs(node)[1])

        def run(arrays):
            x, w, out = arrays
            x2, out2 = _as_2d(x), _as_2d(out)
            if x2 is None and out2 is not None:
                x2 = _contiguous_rows(x)
            if out2 is None:
                _batched_gemm(x, w, out)
                return
            gemm(x2, packed if packed is not None else w, out2)
        return run
    return lambda arrays: _batched_gemm(*arrays)


def _batched_gemm(x: np.ndarray, w: np.ndarray, out: np.ndarray) -> None:
    """out[..., :, :] = x[..., :, :] @ w[..., :, :] with broadcast batch dims (any strides:
    transposed operands cost nothing). A 2-D `w` shared by a batch whose rows cannot
    be viewed as one matrix (a permuted activation) is one GEMM over a copy of x."""
    if w.ndim == 2:
        rows = _as_2d(out)
        if rows is not None:
            gemm(_contiguous_rows(x), w, rows)
            return
    batch = out.shape[:-2]
    xb = np.broadcast_to(x, batch + x.shape[-2:]).reshape(-1, *x.shape[-2:])
    wb = np.broadcast_to(w, batch + w.shape[-2:]).reshape(-1, *w.shape[-2:])
    ob = out.reshape(-1, *out.shape[-2:])
    if not np.shares_memory(ob, out) and out.size:      # out not viewable as 3-D
        for index in np.ndindex(*batch):
            gemm(np.broadcast_to(x, batch + x.shape[-2:])[index],
                 np.broadcast_to(w, batch + w.shape[-2:])[index], out[index])
        return
    gemm_batched(xb, wb, ob)


_SCRATCH = threading.local()


def _contiguous_rows(x: np.ndarray) -> np.ndarray:
    """x copied into a per-thread buffer reused across calls (no page faults per call),
    as a (rows, K) matrix; the GEMM consumes it before the next call reuses it."""
    buf = getattr(_SCRATCH, "buf", None)
    if buf is None or buf.size < x.size:
        buf = _SCRATCH.buf = np.empty(x.size, np.float32)
    rows = buf[:x.size].reshape(x.shape)
    np.copyto(rows, x)
    return rows.reshape(-1, x.shape[-1])


def _addmm(node: Node, constant: Constant = None) -> Callable | None:
    args = _bound(node)
    beta, alpha = args["beta"], args["alpha"]
    if alpha != 1:
        return None

    def run(arrays):
        bias, a, b, out = arrays
        out[...] = bias * beta if beta != 1 else bias
        gemm(a, b, out, beta=1.0 if beta != 0 else 0.0)
    return run


def _bmm(node: Node, constant: Constant = None) -> Callable | None:
    return lambda arrays: _batched_gemm(*arrays)


def _conv2d(node: Node, constant: Constant = None) -> Callable | None:
    args = _bound(node)
    x_meta: TensorMeta = args["input"].meta["val"]
    if len(x_meta.shape) != 4:
        return None
    if args["groups"] == 1:
        return _implicit_conv(args, Epilogue.NONE, constant)
    if isinstance(args["padding"], str):
        return None
    channels_last = x_meta.memory_format.value == "channels_last"
    has_bias = isinstance(args["bias"], Node)

    def run(arrays):
        x, w, *rest = arrays
        out = rest[-1]
        bias = rest[0] if has_bias else None
        if channels_last:
            y = conv2d_kernel(x.transpose(0, 2, 3, 1), w, bias, args["stride"], args["padding"],
                              args["dilation"], args["groups"], layout="nhwc")
            out[...] = y.transpose(0, 3, 1, 2)
        else:
            out[...] = conv2d_kernel(x, w, bias, args["stride"], args["padding"],
                                     args["dilation"], args["groups"], layout="nchw")
    return run


def _implicit_conv(args: dict, epilogue: Epilogue, constant: Constant):
    """groups=1 conv2d (+ epilogue): arrays are [x, w, (bias), (residual), out], all
    (N, C, H, W)-shaped with any strides. Constant weights are packed here, once."""
    w_meta: TensorMeta = args["weight"].meta["val"]
    kernel, stride, dilation = tuple(w_meta.shape[2:]), _pair(args["stride"]), \
        _pair(args["dilation"])
    geometry = ConvGeometry(kernel, stride, padding_pairs(args["padding"], kernel, dilation,
                                                         stride), dilation)
    has_bias = isinstance(args["bias"], Node)
    weight = constant(args["weight"]) if constant else None
    bias = constant(args["bias"]) if constant and has_bias else None
    prepared = None
    if weight is not None and (bias is not None or not has_bias):
        prepared = PreparedConv(weight, bias, geometry, epilogue)
    residual = Epilogue.RESIDUAL in epilogue

    def run(arrays):
        x, w, *rest = arrays
        out = rest[-1]
        conv = prepared or PreparedConv(w, rest[0] if has_bias else None, geometry, epilogue)
        conv(x, out, rest[-2] if residual else None)
    return run


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def conv_epilogue_kernel(graph: Graph, constant: Constant = None):
    """A fused group `conv2d -> [add residual] -> [relu]` as one conv kernel whose tile
    store applies the epilogue, or None for any other group.

    Returns (fn, inputs): `inputs` are the group's placeholders the kernel reads, in
    order (x, w, [bias], [residual]); fn([*arrays of inputs, out]) writes the output.
    `constant(placeholder)` gives a weight's value when it is a frozen constant."""
    ops = [n for n in graph.nodes if n.op == OpKind.call_function]
    if not ops or not is_op(ops[0].target) or ops[0].target.name != "conv2d" \
            or not _all_f32(ops[0]):
        return None
    conv, rest = ops[0], ops[1:]
    args = _bound(conv)
    if args["groups"] != 1 or len(args["input"].meta["val"].shape) != 4:
        return None
    epilogue, residual, last = Epilogue.NONE, None, conv
    # a layout conversion of the conv's result (the layout pass's, for a conv whose
    # one-channel input leaves its output contiguous) changes no value: the kernel
    # stores straight into the group's output, whatever its strides
    converts = bool(rest) and _is_layout_conversion(rest[0], conv)
    if converts:
        last, rest = rest[0], rest[1:]
    if rest and _op_name(rest[0]) == "add":
        residual = _residual_of(rest[0], last)
        if residual is None:
            return None
        epilogue, last, rest = epilogue | Epilogue.RESIDUAL, rest[0], rest[1:]
    if rest and _op_name(rest[0]) == "relu" and rest[0].args[0] is last:
        epilogue, last, rest = epilogue | Epilogue.RELU, rest[0], rest[1:]
    outputs = graph.output_node.args[0]
    if rest or (epilogue == Epilogue.NONE and not converts) or \
            outputs not in (last, (last,), [last]):
        return None
    inputs = [n for n in tensor_inputs(conv)] + ([residual] if residual is not None else [])
    if not all(n.op == OpKind.placeholder for n in inputs):
        return None
    return _implicit_conv(args, epilogue, constant), inputs


def _op_name(node: Node) -> str | None:
    return node.target.name if is_op(node.target) else None


def _is_layout_conversion(node: Node, source: Node) -> bool:
    """`contiguous(source, memory_format=channels_last)`: the same values, channels-last
    (the kernel stores whole channel vectors; a conversion to NCHW stays its own kernel)."""
    return _op_name(node) == "contiguous" and node.args[0] is source and \
        node.kwargs.get("memory_format") is channels_last


def _residual_of(add: Node, conv: Node) -> Node | None:
    """The other operand of add(conv, r) / add(r, conv) when it is a same-shape float32
    tensor and alpha is 1 (the kernel adds it element for element)."""
    bound = _bound(add)
    a, b, alpha = bound["self"], bound["other"], bound.get("alpha", 1)
    other = b if a is conv else a if b is conv else None
    if other is None or other is conv or alpha != 1 or not isinstance(other, Node):
        return None
    meta, want = other.meta.get("val"), conv.meta["val"]
    ok = isinstance(meta, TensorMeta) and meta.dtype.name == "float32" and \
        tuple(meta.shape) == tuple(want.shape) and add.meta["val"].dtype.name == "float32"
    return other if ok else None


EXTERNS: dict[str, Callable[[Node, Constant], Callable | None]] = {
    "linear": _linear, "mm": _mm, "matmul": _matmul, "addmm": _addmm, "bmm": _bmm,
    "conv2d": _conv2d,
}


def extern_kernel(node: Node, constant: Constant = None) -> Callable | None:
    """A native kernel for `node`, or None (not an extern op, or not float32).

    `constant(input_node)` returns an input's value when it is a constant that stays
    fixed for the kernel's lifetime (inference weights), else None; kernels use it to
    prepare (pack) such operands once. Index ops (gather, scatter, index_put, ...) take
    any dtype their kernel has (index_kernel; EMBER_INDEX_KERNELS=0 runs them eagerly,
    the NumPy reference, as before the kernels existed)."""
    if node.op != OpKind.call_function or not is_op(node.target):
        return None
    indexed = index_kernel(node) if os.environ.get("EMBER_INDEX_KERNELS", "1") != "0" \
        else None
    if indexed is not None:
        return indexed
    make = EXTERNS.get(node.target.name)
    if make is None or not _all_f32(node):
        return None
    return make(node, constant)


# --- index ops (codegen/index_plan.py, llvm/index_ops.py) --------------------------------------

def _elements(a: np.ndarray) -> tuple:
    return tuple(a.shape), tuple(st // a.itemsize for st in a.strides)


def index_kernel(node: Node) -> Callable | None:
    """gather / scatter / index_put / ... as a bounds-checked LLVM kernel, or None.
    The callable carries `index_desc` (what the native program needs)."""
    from .index_plan import describe, geometry, kernel_spec
    from .llvm.index_ops import index_kernel as compiled, run_index
    desc = describe(node)
    if desc is None:
        return None
    spec = kernel_spec(desc)
    compiled(spec)                              # compiled while the plan is built
    desc["name"] = node.name

    def run(arrays):
        *ins, out = arrays
        ins = [a if all(st % a.itemsize == 0 for st in a.strides) else
               np.ascontiguousarray(a) for a in ins]
        if desc["mode"] == "scatter":
            np.copyto(out, ins[0])
        geom, dims = geometry(desc, [_elements(a) for a in ins], _elements(out))
        data = ins[desc["data_input"]] if desc["data_input"] is not None else None
        failed = run_index(spec, geom, out, data, [ins[i] for i in desc["index_inputs"]])
        if failed is not None:
            from ..runtime.lite import index_error
            raise index_error({**desc, "dims": dims}, failed)
    run.index_desc = desc
    return run
