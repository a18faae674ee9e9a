"""ember.onnx.export: a model to an ONNX file (torch.onnx.export's interface).

    ember.onnx.export(model, (x,), "model.onnx", input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=17)

The model is captured with ember.export (static shapes: the example inputs' sizes),
and each op of its graph becomes ONNX nodes (`_EMITTERS`): convolutions, linear
layers, matmul, pooling, batch/layer norm, softmax, embedding, elementwise and
activation ops, reductions, concatenation and the shape ops. Parameters and buffers
are initializers. An op outside that set is refused, naming the op and the user's line.

Sizes are those of the example inputs: shape ops (view, reshape, flatten, expand,
...) are written with the traced result's shape. With `dynamic_axes` the model is
captured with those input dimensions dynamic (ember.export's `dynamic_shapes`, one
`Dim` per axis name), so each shape op's target says which sizes follow the input:
a dynamic size kept in place is written 0 (ONNX Reshape's "copy the input's
dimension"), one other dynamic size -1, and an expand broadcasts over it; a shape op
that needs more than that is refused rather than writing a file that computes wrong
results at other sizes.
"""
from __future__ import annotations

import math
import os

import numpy as np

from ..ir.errors import EmberError
from ..ir.graph import OpKind


class OnnxExportError(EmberError):
    """A model ember.onnx.export cannot write (an op without an ONNX form, ...)."""


# ops whose result shape is written into the file
_SHAPE_OPS = {"view", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze", "expand",
              "_unsafe_view", "expand_as", "view_as", "reshape_as"}


def export(model, args, f, export_params: bool = True, verbose: bool = False,
           training=None, input_names=None, output_names=None, operator_export_type=None,
           opset_version: int | None = None, do_constant_folding: bool = True,
           dynamic_axes: dict | None = None, keep_initializers_as_inputs=None,
           custom_opsets=None, export_modules_as_functions=False, *, kwargs=None,
           dynamo: bool = False, external_data: bool = True, **_options):
    """Write `model(*args)` as ONNX to `f` (a path or a binary file object)."""
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        raise EmberError("ember.onnx.export needs the onnx package: pip install onnx") from None
    from ..compiler.export import export as capture
    from ..frontend.tensor import Tensor
    args = (args,) if isinstance(args, Tensor) else tuple(args)
    if args and isinstance(args[-1], dict) and kwargs is None:
        args, kwargs = args[:-1], args[-1]
    if hasattr(model, "eval") and training is None:
        pass        # torch exports in the module's current mode too (TrainingMode.EVAL
                    # only flips it for the export); ember traces as the module is
    ep, graph = _capture(capture, model, args, kwargs or {}, input_names, dynamic_axes)
    opset = opset_version or 17
    writer = _Writer(helper, numpy_helper, opset)
    placeholders = [n for n in graph.nodes if n.op == OpKind.placeholder]
    # torch names unnamed inputs after forward's parameters, as its graph does
    in_names = list(input_names or []) + _parameter_names(model)[len(input_names or []):]
    in_names += [n.name for n in placeholders[len(in_names):]]
    outputs = graph.output_node.args[0]
    outputs = list(outputs) if isinstance(outputs, (tuple, list)) else [outputs]
    out_names = list(output_names or []) + [f"output{i}" if len(outputs) > 1 else "output"
                                            for i in range(len(output_names or []),
                                                           len(outputs))]
    for node, name in zip(placeholders, in_names):
        writer.names[node] = name
        writer.inputs.append(_value_info(helper, name, node.meta["val"],
                                         (dynamic_axes or {}).get(name)))
    for node in graph.nodes:
        if node.op == OpKind.get_attr:
            value = ep.state_dict[node.target]
            writer.names[node] = node.target
            writer.initializers.append(numpy_helper.from_array(
                np.ascontiguousarray(value.detach().numpy()), node.target))
        elif node.op == OpKind.call_function:
            writer.emit(node)
    for value, name in zip(outputs, out_names):
        writer.nodes.append(helper.make_node("Identity", [writer.names[value]], [name]))
        writer.outputs.append(_value_info(helper, name, value.meta["val"],
                                          (dynamic_axes or {}).get(name)))
    onnx_graph = helper.make_graph(writer.nodes, type(model).__name__, writer.inputs,
                                   writer.outputs, writer.initializers)
    proto = helper.make_model(onnx_graph, producer_name="ember",
                              opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    if isinstance(f, (str, os.PathLike)):
        with open(f, "wb") as out:
            out.write(data)
    else:
        f.write(data)
    return None


def _capture(capture, model, args: tuple, kwargs: dict, input_names, dynamic_axes):
    """The ExportedProgram and the graph to write: with dynamic axes on the inputs, the
    graph with those sizes symbolic (one Dim per axis name, shared between inputs)."""
    from ..frontend.tensor import Tensor
    names = list(input_names or []) + _parameter_names(model)[len(input_names or []):]
    on_inputs = {name: axes for name, axes in (dynamic_axes or {}).items() if name in names}
    if not on_inputs or kwargs or not all(isinstance(a, Tensor) for a in args):
        ep = capture(model, args, kwargs)
        return ep, ep.graph
    from ..compiler.export_dynamic import Dim
    dims: dict = {}

    def spec(name):
        axes = on_inputs.get(name)
        if not axes:
            return None
        axes = axes if isinstance(axes, dict) else \
            {d: f"{name}_dynamic_axes_{i + 1}" for i, d in enumerate(axes)}
        return {d: dims.setdefault(label, Dim(label)) for d, label in axes.items()}
    specs = tuple(spec(names[i]) if i < len(names) else None for i in range(len(args)))
    try:
        ep = capture(model, args, kwargs, dynamic_shapes=specs)
    except Exception as error:  # noqa: BLE001 - re-raised with the ONNX context
        raise OnnxExportError(f"ember.onnx.export: the model cannot run with the dynamic_axes "
                              f"{dict(on_inputs)}: {error}") from error
    return ep, ep.symbolic_graph


def _parameter_names(model) -> list:
    """forward's parameter names: the inputs' names where input_names gives none."""
    import inspect
    try:
        signature = inspect.signature(getattr(model, "forward", model))
    except (TypeError, ValueError):
        return []
    return [p.name for p in signature.parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _is_op(node) -> str | None:
    from ..ir.registry import is_op
    return node.target.name if node.op == OpKind.call_function and is_op(node.target) \
        else None


def _value_info(helper, name: str, meta, dynamic: dict | list | None):
    from onnx import TensorProto
    names = dynamic if isinstance(dynamic, dict) else \
        {d: f"{name}_dynamic_axes_{i + 1}" for i, d in enumerate(dynamic or [])}
    shape = [names.get(d, size if isinstance(size, int) else str(size))
             for d, size in enumerate(meta.shape)]
    elem = getattr(TensorProto, _ONNX_TYPES.get(meta.dtype.name, "UNDEFINED"))
    return helper.make_tensor_value_info(name, elem, shape)


_ONNX_TYPES = {"float32": "FLOAT", "float64": "DOUBLE", "float16": "FLOAT16",
               "bfloat16": "BFLOAT16", "int64": "INT64", "int32": "INT32", "int8": "INT8",
               "uint8": "UINT8", "bool": "BOOL", "int16": "INT16"}


class _Writer:
    def __init__(self, helper, numpy_helper, opset: int):
        self.helper, self.numpy_helper, self.opset = helper, numpy_helper, opset
        self.names: dict = {}
        self.nodes, self.inputs, self.outputs, self.initializers = [], [], [], []
        self.count = 0

    def fresh(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def add(self, op_type: str, inputs: list, hint: str, **attrs) -> str:
        out = self.fresh(hint)
        self.nodes.append(self.helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def const(self, value, dtype) -> str:
        name = self.fresh("const")
        self.initializers.append(self.numpy_helper.from_array(np.asarray(value, dtype=dtype),
                                                              name))
        return name

    def reduce(self, op_type: str, source: str, dims: list, keep: bool, hint: str) -> str:
        """A Reduce* node: axes an input from opset 13 (ReduceSum) / 18 (the others),
        an attribute before."""
        if self.opset < (13 if op_type == "ReduceSum" else 18):
            return self.add(op_type, [source], hint, axes=dims, keepdims=int(keep))
        return self.add(op_type, [source, self.ints(dims)], hint, keepdims=int(keep))

    def ints(self, values) -> str:
        return self.const(list(values), np.int64)

    def operand(self, value, like_meta) -> str:
        """A node's name, or a scalar as a constant of the result's dtype."""
        from ..ir.graph import Node
        if isinstance(value, Node):
            return self.names[value]
        return self.const(value, like_meta.dtype.np_dtype)

    def emit(self, node) -> None:
        from ..ir.registry import is_op
        name = node.target.name if is_op(node.target) else None
        emitter = _EMITTERS.get(name)
        if emitter is None:
            where = f" (at {node.meta['loc']})" if node.meta.get("loc") else ""
            raise OnnxExportError(f"ember.onnx.export: no ONNX form for op "
                                  f"'{name or node.target}'{where}")
        bound = node.target.schema.bind(node.args, node.kwargs)
        arguments = dict(zip((a.name for a in node.target.schema.args), bound))
        self.names[node] = emitter(self, node, arguments)


def _pair(v, n=2):
    return list(v) * n if len(v) == 1 else list(v)


def _unary(op_type):
    return lambda w, node, a: w.add(op_type, [w.names[a.get("self", a.get("input"))]],
                                    node.name)


def _binary(op_type):
    def emit(w, node, a):
        meta = node.meta["val"]
        left, right = a["self"], a["other"]
        other = w.operand(right, meta)
        if a.get("alpha", 1) != 1:
            other = w.add("Mul", [other, w.const(a["alpha"], meta.dtype.np_dtype)], node.name)
        return w.add(op_type, [w.operand(left, meta), other], node.name)
    return emit


def _conv(w, node, a):
    stride, padding, dilation = _pair(a["stride"]), _pair(a["padding"]), _pair(a["dilation"])
    inputs = [w.names[a["input"]], w.names[a["weight"]]]
    if a["bias"] is not None:
        inputs.append(w.names[a["bias"]])
    return w.add("Conv", inputs, node.name, strides=stride, pads=padding + padding,
                 dilations=dilation, group=a["groups"])


def _linear(w, node, a):
    x, weight, bias = w.names[a["input"]], w.names[a["weight"]], a["bias"]
    if a["input"].meta["val"].ndim == 2:
        inputs = [x, weight] + ([w.names[bias]] if bias is not None else [])
        return w.add("Gemm", inputs, node.name, transB=1)
    out = w.add("MatMul", [x, w.add("Transpose", [weight], "weight_t", perm=[1, 0])],
                node.name)
    return w.add("Add", [out, w.names[bias]], node.name) if bias is not None else out


def _pool(op_type):
    def emit(w, node, a):
        kernel = _pair(a["kernel_size"])
        stride = _pair(a["stride"]) if a["stride"] else kernel
        padding = _pair(a["padding"])
        attrs = dict(kernel_shape=kernel, strides=stride, pads=padding + padding,
                     ceil_mode=int(a["ceil_mode"]))
        if op_type == "MaxPool":
            attrs["dilations"] = _pair(a["dilation"])
        else:
            attrs["count_include_pad"] = int(a["count_include_pad"])
            if a.get("divisor_override") is not None:
                raise OnnxExportError("ember.onnx.export: avg_pool2d's divisor_override has "
                                      "no ONNX form")
        return w.add(op_type, [w.names[a["self"]]], node.name, **attrs)
    return emit


def _adaptive_avg_pool2d(w, node, a):
    if list(_pair(a["output_size"])) != [1, 1]:
        raise OnnxExportError("ember.onnx.export: adaptive_avg_pool2d is written for "
                              "output_size 1 (GlobalAveragePool) only")
    return w.add("GlobalAveragePool", [w.names[a["self"]]], node.name)


def _layer_norm(w, node, a):
    meta = node.meta["val"]
    shape = list(a["normalized_shape"])
    weight = w.names[a["weight"]] if a["weight"] is not None else \
        w.const(np.ones(shape), meta.dtype.np_dtype)
    bias = w.names[a["bias"]] if a["bias"] is not None else \
        w.const(np.zeros(shape), meta.dtype.np_dtype)
    if w.opset < 17:        # LayerNormalization is opset 17's: normalize by hand
        return _layer_norm_by_hand(w, node, a, weight, bias, len(shape))
    return w.add("LayerNormalization", [w.names[a["input"]], weight, bias], node.name,
                 axis=-len(shape), epsilon=float(a["eps"]))


def _layer_norm_by_hand(w, node, a, weight: str, bias: str, count: int) -> str:
    """(x - mean) / sqrt(var + eps) * weight + bias over the last `count` dims."""
    x = w.names[a["input"]]
    ndim = node.meta["val"].ndim
    dims = list(range(ndim - count, ndim))
    dtype = node.meta["val"].dtype.np_dtype
    centered = w.add("Sub", [x, w.reduce("ReduceMean", x, dims, True, "mean")], "centered")
    var = w.reduce("ReduceMean", w.add("Mul", [centered, centered], "sq"), dims, True, "var")
    std = w.add("Sqrt", [w.add("Add", [var, w.const(float(a["eps"]), dtype)], "var_eps")],
                "std")
    normed = w.add("Div", [centered, std], "normed")
    return w.add("Add", [w.add("Mul", [normed, weight], "scaled"), bias], node.name)


def _batch_norm(w, node, a):
    if a["training"]:
        raise OnnxExportError("ember.onnx.export: batch_norm in training mode; call "
                              "model.eval() before exporting")
    meta = node.meta["val"]
    channels = meta.shape[1]
    scale = w.names[a["weight"]] if a["weight"] is not None else \
        w.const(np.ones(channels), meta.dtype.np_dtype)
    bias = w.names[a["bias"]] if a["bias"] is not None else \
        w.const(np.zeros(channels), meta.dtype.np_dtype)
    return w.add("BatchNormalization", [w.names[a["input"]], scale, bias,
                                        w.names[a["running_mean"]], w.names[a["running_var"]]],
                 node.name, epsilon=float(a["eps"]))


def _gelu(w, node, a):
    x = w.names[a["self"]]
    dtype = node.meta["val"].dtype.np_dtype
    half = w.const(0.5, dtype)
    one = w.const(1.0, dtype)
    if a["approximate"] == "tanh":     # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        cube = w.add("Mul", [w.add("Mul", [x, x], "sq"), x], "cube")
        inner = w.add("Add", [x, w.add("Mul", [cube, w.const(0.044715, dtype)], "c")], "in")
        t = w.add("Tanh", [w.add("Mul", [inner, w.const(math.sqrt(2 / math.pi), dtype)],
                                 "s")], "tanh")
    else:                              # 0.5 x (1 + erf(x / sqrt 2))
        t = w.add("Erf", [w.add("Div", [x, w.const(math.sqrt(2.0), dtype)], "s")], "erf")
    return w.add("Mul", [w.add("Mul", [x, half], "h"), w.add("Add", [t, one], "p")],
                 node.name)


def _silu(w, node, a):
    x = w.names[a["self"]]
    return w.add("Mul", [x, w.add("Sigmoid", [x], "sig")], node.name)


def _softmax(op_type):
    def emit(w, node, a):
        ndim = node.meta["val"].ndim
        axis = int(a["dim"]) % max(ndim, 1)
        if w.opset < 13 and axis != ndim - 1:
            # before opset 13 Softmax flattens from `axis` on: move the axis last
            perm = [d for d in range(ndim) if d != axis] + [axis]
            inverse = [perm.index(d) for d in range(ndim)]
            moved = w.add("Transpose", [w.names[a["self"]]], "moved", perm=perm)
            out = w.add(op_type, [moved], "soft", axis=ndim - 1)
            return w.add("Transpose", [out], node.name, perm=inverse)
        return w.add(op_type, [w.names[a["self"]]], node.name, axis=axis)
    return emit


def _reshape_to_result(w, node, a):
    source = a.get("self", a.get("input"))
    return w.add("Reshape", [w.names[source], w.ints(_reshape_target(node, source))],
                 node.name)


def _reshape_target(node, source) -> list:
    """The result's sizes as ONNX Reshape reads them: a dynamic size at the input's
    position is 0 (copied from the input), one other dynamic size -1 (inferred)."""
    out, inp = node.meta["val"].shape, source.meta["val"].shape
    target = [size if isinstance(size, int) else
              0 if i < len(inp) and inp[i] == size else -1 for i, size in enumerate(out)]
    if target.count(-1) > 1:
        raise _dynamic_refusal(node, "reshape to several sizes that move with the dynamic axes")
    return target


def _expand(w, node, a):
    out, inp = node.meta["val"].shape, a["self"].meta["val"].shape
    aligned = [None] * (len(out) - len(inp)) + list(inp)
    if any(not isinstance(size, int) and aligned[i] != size for i, size in enumerate(out)):
        raise _dynamic_refusal(node, "expand a size to a dynamic axis")
    # a dynamic size is the input's own there: 1 broadcasts over it
    target = [size if isinstance(size, int) else 1 for size in out]
    return w.add("Expand", [w.names[a["self"]], w.ints(target)], node.name)


def _dynamic_refusal(node, what: str) -> OnnxExportError:
    where = f" (at {node.meta['loc']})" if node.meta.get("loc") else ""
    return OnnxExportError(f"ember.onnx.export: '{node.target.name}'{where} would {what}; "
                           "export without those dynamic_axes (one size per file)")


def _permute(w, node, a):
    return w.add("Transpose", [w.names[a["self"]]], node.name,
                 perm=[d % node.meta["val"].ndim for d in a["dims"]])


def _transpose(w, node, a):
    ndim = node.meta["val"].ndim
    perm = list(range(ndim))
    d0, d1 = a["dim0"] % ndim, a["dim1"] % ndim
    perm[d0], perm[d1] = perm[d1], perm[d0]
    return w.add("Transpose", [w.names[a["self"]]], node.name, perm=perm)


def _t(w, node, a):
    perm = [1, 0] if node.meta["val"].ndim == 2 else [0]
    return w.add("Transpose", [w.names[a["self"]]], node.name, perm=perm)


def _reduce(op_type):
    def emit(w, node, a):
        source = a["self"]
        ndim = source.meta["val"].ndim
        dims = a.get("dim")
        dims = list(range(ndim)) if dims is None or dims == [] else \
            [d % ndim for d in (dims if isinstance(dims, (list, tuple)) else [dims])]
        return w.reduce(op_type, w.names[source], dims, bool(a.get("keepdim", False)),
                        node.name)
    return emit


def _cat(w, node, a):
    ndim = node.meta["val"].ndim
    return w.add("Concat", [w.names[t] for t in a["tensors"]], node.name,
                 axis=a["dim"] % ndim)


def _embedding(w, node, a):
    return w.add("Gather", [w.names[a["weight"]], w.names[a["indices"]]], node.name, axis=0)


def _clamp(w, node, a):
    meta = node.meta["val"]
    low, high = a.get("min"), a.get("max")
    inputs = [w.names[a["self"]], w.operand(low, meta) if low is not None else "",
              w.operand(high, meta) if high is not None else ""]
    return w.add("Clip", inputs, node.name)


def _identity(w, node, a):
    return w.add("Identity", [w.names[a.get("self", a.get("input"))]], node.name)


def _rsqrt(w, node, a):
    return w.add("Reciprocal", [w.add("Sqrt", [w.names[a["self"]]], "sqrt")], node.name)


def _pow(w, node, a):
    meta = node.meta["val"]
    return w.add("Pow", [w.operand(a["self"], meta), w.operand(a["exponent"], meta)],
                 node.name)


def _select(w, node, a):
    ndim = a["self"].meta["val"].ndim
    index = w.const(a["index"], np.int64)            # a 0-d index drops the dim
    return w.add("Gather", [w.names[a["self"]], index], node.name, axis=a["dim"] % ndim)


def _slice(w, node, a):
    ndim = a["self"].meta["val"].ndim
    start = 0 if a["start"] is None else a["start"]
    end = np.iinfo(np.int64).max if a["end"] is None else a["end"]
    return w.add("Slice", [w.names[a["self"]], w.ints([start]), w.ints([end]),
                           w.ints([a["dim"] % ndim]), w.ints([a["step"]])], node.name)


def _where(w, node, a):
    meta = node.meta["val"]
    return w.add("Where", [w.names[a["condition"]], w.operand(a["self"], meta),
                           w.operand(a["other"], meta)], node.name)


def _masked_fill(w, node, a):
    meta = node.meta["val"]
    return w.add("Where", [w.names[a["mask"]], w.operand(a["value"], meta),
                           w.names[a["self"]]], node.name)


_EMITTERS = {
    "select": _select, "slice": _slice, "where": _where, "masked_fill": _masked_fill,
    "conv2d": _conv, "conv1d": _conv, "linear": _linear,
    "matmul": _binary("MatMul"), "bmm": _binary("MatMul"), "mm": _binary("MatMul"),
    "add": _binary("Add"), "sub": _binary("Sub"), "mul": _binary("Mul"),
    "div": _binary("Div"),
    "relu": _unary("Relu"), "sigmoid": _unary("Sigmoid"), "tanh": _unary("Tanh"),
    "exp": _unary("Exp"), "log": _unary("Log"), "sqrt": _unary("Sqrt"), "neg": _unary("Neg"),
    "abs": _unary("Abs"), "erf": _unary("Erf"), "rsqrt": _rsqrt, "pow": _pow,
    "gelu": _gelu, "silu": _silu,
    "softmax": _softmax("Softmax"), "log_softmax": _softmax("LogSoftmax"),
    "max_pool2d": _pool("MaxPool"), "avg_pool2d": _pool("AveragePool"),
    "adaptive_avg_pool2d": _adaptive_avg_pool2d,
    "layer_norm": _layer_norm, "batch_norm": _batch_norm,
    "mean": _reduce("ReduceMean"), "sum": _reduce("ReduceSum"),
    "cat": _cat, "embedding": _embedding, "clamp": _clamp, "hardtanh": _clamp,
    "permute": _permute, "transpose": _transpose, "t": _t,
    "expand": _expand,
    "contiguous": _identity, "clone": _identity, "alias": _identity, "detach": _identity,
    "dropout": _identity,
    **{name: _reshape_to_result for name in _SHAPE_OPS - {"expand", "expand_as"}},
}
