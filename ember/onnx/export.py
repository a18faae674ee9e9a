"""ember.onnx.export: a model to an ONNX file (torch.onnx.export's interface).

    ember.onnx.export(model, (x,), "model.onnx", input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=17)

The model is captured with ember.export (static shapes: the example inputs' sizes),
and each op of its graph becomes ONNX nodes (`_EMITTERS`): convolutions, linear
layers, matmul, pooling, batch/layer norm, softmax, embedding, elementwise and
activation ops, reductions, concatenation and the shape ops. Parameters and buffers
are initializers. An op outside that set is refused, naming the op and the user's line.

Sizes are those of the example inputs, except the dims `dynamic_axes` (or
`dynamic_shapes`, torch's dynamo exporter's argument) names: the model is then
exported with one ember.export Dim per axis name, the graph with symbolic sizes is
written, inputs and outputs get the axis names as `dim_param`, and shape ops write a
dynamic size as Reshape's 0 (copied from the input) or -1 (inferred), Expand's 1, or
else compute it from the inputs' shapes (Shape, Gather and the size's arithmetic); a
size no input's dim holds is refused naming the op and the user's line.
"""
from __future__ import annotations

import math
import os

import numpy as np

from ..ir.errors import EmberError
from ..ir.graph import OpKind
from ..ir.symdim import SymDim


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
    in_names_given = list(input_names or [])
    shapes = _dynamic_shapes(args, in_names_given + _parameter_names(model)[
        len(in_names_given):], dynamic_axes, _options.pop(
        "dynamic_shapes", None))
    if dynamic_axes and _options.get("dynamic_shapes") is None and shapes is not None:
        args = _widened(args, shapes)
    ep = capture(model, args, kwargs or {}, dynamic_shapes=shapes)
    opset = opset_version or 17
    writer = _Writer(helper, numpy_helper, opset)
    # with dynamic sizes: the graph whose types hold them (s0, 2*s0, ...)
    graph = _functional(ep.symbolic_graph if ep.symbolic_graph is not None else ep.graph)
    placeholders = [n for n in graph.nodes if n.op == OpKind.placeholder]
    # unnamed inputs take forward's parameter names (torch's dynamo exporter's names)
    in_names = in_names_given + [s.name for s in ep.user_inputs[len(in_names_given):]]
    outputs = graph.output_node.args[0]
    outputs = list(outputs) if isinstance(outputs, (tuple, list)) else [outputs]
    out_names = list(output_names or []) + [f"output{i}" if len(outputs) > 1 else "output"
                                            for i in range(len(output_names or []),
                                                           len(outputs))]
    symbols = _symbol_names(placeholders, in_names, dynamic_axes, shapes)
    for node, name in zip(placeholders, in_names):
        writer.names[node] = name
        for d, size in enumerate(node.meta["val"].shape):
            if not isinstance(size, int) and str(size).isidentifier():
                writer.symbol_sources.setdefault(str(size), (name, d))
        writer.inputs.append(_value_info(helper, name, node.meta["val"], symbols,
                                         (dynamic_axes or {}).get(name)))
    for node in graph.nodes:
        if node.op == OpKind.get_attr:
            value = ep.tensors[node.target]
            writer.names[node] = node.target
            writer.initializers.append(numpy_helper.from_array(
                np.ascontiguousarray(value.detach().numpy()), node.target))
        elif node.op == OpKind.call_function:
            writer.emit(node)
    for value, name in zip(outputs, out_names):
        writer.nodes.append(helper.make_node("Identity", [writer.names[value]], [name]))
        writer.outputs.append(_value_info(helper, name, value.meta["val"], symbols,
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


def _is_op(node) -> str | None:
    from ..ir.registry import is_op
    return node.target.name if node.op == OpKind.call_function and is_op(node.target) \
        else None


def _dynamic_shapes(args: tuple, names: list, dynamic_axes, dynamic_shapes):
    """ember.export's dynamic_shapes for torch.onnx.export's `dynamic_axes` ({input name:
    {dim: axis name} or [dims]}: one Dim per axis name, shared by the inputs naming it)
    or its own `dynamic_shapes` (passed through); None when every size is static."""
    if dynamic_shapes is not None:
        return dynamic_shapes
    if not dynamic_axes:
        return None
    from ..compiler.export_dynamic import Dim
    dims: dict = {}
    spec = []
    for i, arg in enumerate(args):
        name = names[i] if i < len(names) else None
        axes = dynamic_axes.get(name) if name is not None else None
        if axes is None:
            spec.append(None)
            continue
        if not hasattr(arg, "shape"):
            raise OnnxExportError(f"ember.onnx.export: dynamic_axes names input {name!r}, "
                                  "which is not a tensor")
        axes = axes if isinstance(axes, dict) else \
            {d: f"{name}_dynamic_axes_{k + 1}" for k, d in enumerate(axes)}
        spec.append({d % len(arg.shape): dims.setdefault(str(axis), Dim(_dim_name(axis)))
                     for d, axis in axes.items()})
    return tuple(spec) if any(s is not None for s in spec) else None


def _widened(args: tuple, shapes: tuple) -> tuple:
    """The example inputs with each dynamic axis of size 1 repeated to size 2: torch's
    exporter keeps a `dynamic_axes` axis dynamic whatever the example's size (the usual
    dummy input has batch 1), while ember.export specializes sizes 0 and 1. Only the
    traced graph is kept, so the repeated values change nothing written."""
    widened = []
    for arg, spec in zip(args, shapes):
        if spec:
            reps = [2 if d in spec and size == 1 else 1 for d, size in enumerate(arg.shape)]
            if any(r == 2 for r in reps):
                arg = arg.detach().repeat(*reps)
        widened.append(arg)
    return (*widened, *args[len(widened):])


def _functional(graph):
    """The graph with in-place ops made functional (ONNX has none): `y[0] = v` becomes a
    select_scatter, `x.add_(1)` an add. An input or buffer updated in place keeps its new
    value inside the graph only: an ONNX model has no state, as torch's exported file
    has none."""
    from ..compiler.aot import _copy_graph
    from ..frontend.fx.functionalize_graph import (CannotFunctionalize, _is_inplace,
                                                   functionalize_graph)
    if not any(_is_inplace(n) for n in graph.nodes):
        return graph
    graph = _copy_graph(graph)
    try:
        functionalize_graph(graph)
    except CannotFunctionalize as err:
        raise OnnxExportError(f"ember.onnx.export: an in-place update has no ONNX form: "
                              f"{err}") from None
    for node in list(graph.nodes):
        if _is_op(node) == "copy_" and getattr(node.args[0], "op", None) in (
                OpKind.placeholder, OpKind.get_attr):
            graph.erase_node(node)          # the write-back of an updated input/buffer
    return graph


def _parameter_names(model) -> list:
    """forward's positional parameter names (an input's default name)."""
    import inspect
    fn = getattr(model, "forward", model)
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _dim_name(axis) -> str:
    """A Dim's name from an axis name ('batch size' is not an identifier)."""
    text = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in str(axis))
    return text if text and not text[0].isdigit() else f"d_{text}"


def _symbol_names(placeholders, names, dynamic_axes, shapes) -> dict:
    """{symbol text: the axis name the user gave it} read off the inputs' types."""
    found = {}
    for node, name in zip(placeholders, names):
        axes = (dynamic_axes or {}).get(name)
        axes = axes if isinstance(axes, dict) else \
            {d: f"{name}_dynamic_axes_{k + 1}" for k, d in enumerate(axes or [])}
        for d, size in enumerate(node.meta["val"].shape):
            if not isinstance(size, int):
                given = axes.get(d, axes.get(d - len(node.meta["val"].shape)))
                found.setdefault(str(size), str(given) if given is not None else str(size))
    return found


def _value_info(helper, name: str, meta, symbols: dict, dynamic: dict | list | None):
    from onnx import TensorProto
    names = dynamic if isinstance(dynamic, dict) else \
        {d: f"{name}_dynamic_axes_{i + 1}" for i, d in enumerate(dynamic or [])}
    shape = [size if isinstance(size, int) else
             str(names.get(d, symbols.get(str(size), str(size))))
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
        self.symbol_sources: dict = {}       # symbol -> (input name, dim)
        self.sizes: dict = {}                # size text -> its tensor's name

    def size(self, dim) -> str:
        """A dynamic size as a 1-element int64 tensor of the file, computed from the
        inputs' shapes (`symbols`: symbol -> (input name, dim)), through Shape, Gather
        and the expression's Add/Sub/Mul."""
        import ast
        key = str(dim)
        if key in self.sizes:
            return self.sizes[key]
        try:
            tree = ast.parse(key.replace("^", "**"), mode="eval").body
        except SyntaxError:
            raise OnnxExportError(f"ember.onnx.export: the size {key} has no ONNX form") \
                from None
        self.sizes[key] = self._size_of(tree, key)
        return self.sizes[key]

    def _size_of(self, tree, text: str) -> str:
        import ast
        if isinstance(tree, ast.Constant) and isinstance(tree.value, int):
            return self.ints([tree.value])
        if isinstance(tree, ast.Name):
            if tree.id not in self.symbol_sources:
                raise OnnxExportError(f"ember.onnx.export: the size {text} uses {tree.id}, "
                                      "which no input's dim holds alone")
            name, d = self.symbol_sources[tree.id]
            shape = self.add("Shape", [name], "shape")
            return self.add("Gather", [shape, self.ints([d])], tree.id)
        ops = {ast.Add: "Add", ast.Sub: "Sub", ast.Mult: "Mul"}
        if isinstance(tree, ast.BinOp) and type(tree.op) in ops:
            return self.add(ops[type(tree.op)], [self._size_of(tree.left, text),
                                                 self._size_of(tree.right, text)], "size")
        if isinstance(tree, ast.UnaryOp) and isinstance(tree.op, ast.USub):
            return self.add("Neg", [self._size_of(tree.operand, text)], "size")
        raise OnnxExportError(f"ember.onnx.export: the size {text} has no ONNX form")

    def shape_of(self, shape) -> str:
        """A shape with dynamic sizes as an int64 tensor computed in the file."""
        parts = [self.ints([d]) if isinstance(d, int) else self.size(d) for d in shape]
        return self.add("Concat", parts, "shape", axis=0)

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

    def ints(self, values) -> str:
        return self.const(list(values), np.int64)

    def operand(self, value, like_meta) -> str:
        """A node's name, or a scalar as a constant of the result's dtype."""
        from ..ir.graph import Node
        if isinstance(value, Node):
            return self.names[value]
        return self.const(value, like_meta.dtype.np_dtype)

    def add_many(self, op_type: str, inputs: list, hint: str, n: int, **attrs) -> list:
        outs = [self.fresh(hint) for _ in range(n)]
        self.nodes.append(self.helper.make_node(op_type, inputs, outs, **attrs))
        return outs

    def emit(self, node) -> None:
        import operator
        from ..ir.registry import is_op
        if node.target is operator.getitem:       # one piece of split/chunk/unbind/topk
            self.names[node] = self.names[node.args[0]][node.args[1]]
            return
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
    v = [v] if isinstance(v, int) else list(v)
    return v * n if len(v) == 1 else v


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
    n = a["weight"].meta["val"].ndim - 2            # spatial dims: conv1d 1, conv2d 2
    if isinstance(a["padding"], str):
        raise OnnxExportError(f"ember.onnx.export: conv padding={a['padding']!r} (at "
                              f"{node.meta.get('loc', node.name)}); give the padding as "
                              "numbers")
    stride, padding, dilation = (_pair(a[k], n) for k in ("stride", "padding", "dilation"))
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
    if w.opset >= 17:
        return w.add("LayerNormalization", [w.names[a["input"]], weight, bias], node.name,
                     axis=-len(shape), epsilon=float(a["eps"]))
    # LayerNormalization is opset 17's: before it, the mean / variance arithmetic
    dtype = meta.dtype.np_dtype
    x = w.names[a["input"]]
    axes = list(range(meta.ndim - len(shape), meta.ndim))
    mean = _reduce_axes(w, "ReduceMean", x, axes)
    centred = w.add("Sub", [x, mean], "centred")
    var = _reduce_axes(w, "ReduceMean", w.add("Mul", [centred, centred], "sq"), axes)
    std = w.add("Sqrt", [w.add("Add", [var, w.const(float(a["eps"]), dtype)], "v")], "std")
    normed = w.add("Div", [centred, std], "normed")
    return w.add("Add", [w.add("Mul", [normed, weight], "scaled"), bias], node.name)


def _reduce_axes(w, op_type: str, x: str, axes: list, keep: int = 1, name: str = "") -> str:
    # axes became an input in opset 13 for ReduceSum, in 18 for the others
    name = name or op_type.lower()
    if w.opset < (13 if op_type == "ReduceSum" else 18):
        return w.add(op_type, [x], name, axes=axes, keepdims=keep)
    return w.add(op_type, [x, w.ints(axes)], name, keepdims=keep)


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
        ndim = max(1, node.meta["val"].ndim)
        axis = int(a["dim"]) % ndim
        if w.opset >= 13 or axis == ndim - 1:
            return w.add(op_type, [w.names[a["self"]]], node.name, axis=axis)
        # before opset 13 Softmax normalizes over every dim from `axis` on (the input
        # coerced to 2-D): move the dim last, normalize it alone, move it back
        perm = list(range(ndim))
        perm[axis], perm[-1] = perm[-1], perm[axis]
        moved = w.add("Transpose", [w.names[a["self"]]], "moved", perm=perm)
        done = w.add(op_type, [moved], node.name, axis=ndim - 1)
        return w.add("Transpose", [done], node.name, perm=perm)
    return emit


def _reshape_to_result(w, node, a):
    """Reshape to the traced result's shape; a dynamic size is written as ONNX's 0 (the
    input's size at that index) where the input has it there, else as the one -1."""
    source = a.get("self", a.get("input"))
    target = list(node.meta["val"].shape)
    have = list(source.meta["val"].shape)
    sizes = []
    for i, size in enumerate(target):
        if isinstance(size, int):
            sizes.append(size)
        elif i < len(have) and str(have[i]) == str(size):
            sizes.append(0)
        else:
            sizes.append(-1)
    if sizes.count(-1) > 1 or (sizes.count(-1) and 0 in target):
        # the target computed from the inputs' shapes at run time
        return w.add("Reshape", [w.names[source], w.shape_of(target)], node.name)
    return w.add("Reshape", [w.names[source], w.ints(sizes)], node.name)


def _shape_text(shape) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def _expand(w, node, a):
    """Expand to the result's shape; a dynamic size the input has there is written 1
    (Expand broadcasts both ways, so the input's size stays)."""
    target = list(node.meta["val"].shape)
    have = list(a["self"].meta["val"].shape)
    lead = len(target) - len(have)
    sizes = []
    for i, size in enumerate(target):
        if isinstance(size, int):
            sizes.append(size)
        elif i >= lead and str(have[i - lead]) == str(size):
            sizes.append(1)
        else:               # a size the input lacks: computed from the inputs' shapes
            return w.add("Expand", [w.names[a["self"]], w.shape_of(target)], node.name)
    return w.add("Expand", [w.names[a["self"]], w.ints(sizes)], node.name)


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
    """sum/mean/amax/amin over `dim` (all dims when None or [])."""
    def emit(w, node, a):
        source = a["self"]
        ndim = source.meta["val"].ndim
        dims = a.get("dim")
        dims = list(range(ndim)) if dims is None or dims == [] else \
            [d % ndim for d in (dims if isinstance(dims, (list, tuple)) else [dims])]
        keep = int(a.get("keepdim", False))
        return _reduce_axes(w, op_type, w.names[source], dims, keep, node.name)
    return emit


def _cat(w, node, a):
    ndim = node.meta["val"].ndim
    return w.add("Concat", [w.names[t] for t in a["tensors"]], node.name,
                 axis=a["dim"] % ndim)


def _embedding(w, node, a):
    return w.add("Gather", [w.names[a["weight"]], w.names[a["indices"]]], node.name, axis=0)


def _clamp(w, node, a):
    meta = node.meta["val"]
    low, high = a.get("min", a.get("min_val")), a.get("max", a.get("max_val"))
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
    # a dynamic bound (`x[:, :T]` with T a dynamic size): computed from the inputs' shapes
    bound = [w.size(v) if isinstance(v, SymDim) else w.ints([v]) for v in (start, end)]
    return w.add("Slice", [w.names[a["self"]], *bound,
                           w.ints([a["dim"] % ndim]), w.ints([a["step"]])], node.name)


def _where(w, node, a):
    meta = node.meta["val"]
    return w.add("Where", [w.names[a["condition"]], w.operand(a["self"], meta),
                           w.operand(a["other"], meta)], node.name)


def _masked_fill(w, node, a):
    meta = node.meta["val"]
    return w.add("Where", [w.names[a["mask"]], w.operand(a["value"], meta),
                           w.names[a["self"]]], node.name)


def _compare(op_type, negate=False):
    def emit(w, node, a):
        left, right = a["self"], a["other"]
        like = (left if not isinstance(left, (int, float, bool)) else right).meta["val"]
        out = w.add(op_type, [w.operand(left, like), w.operand(right, like)], node.name)
        return w.add("Not", [out], node.name) if negate else out
    return emit


def _bitwise_not(w, node, a):
    """`~mask`: Not of a bool; BitwiseNot (opset 18) of an integer."""
    if node.meta["val"].dtype.name == "bool":
        return w.add("Not", [w.names[a["self"]]], node.name)
    if w.opset < 18:
        raise OnnxExportError("ember.onnx.export: bitwise_not of an integer tensor needs "
                              f"opset 18 or later (BitwiseNot); got opset_version={w.opset}")
    return w.add("BitwiseNot", [w.names[a["self"]]], node.name)


def _logical(op_type):
    def emit(w, node, a):
        ins = [w.names[a["self"]]] + ([w.names[a["other"]]] if "other" in a else [])
        ins = [w.add("Cast", [x], "as_bool", to=_onnx_type("bool")) for x in ins]
        return w.add(op_type, ins, node.name)
    return emit


def _onnx_type(dtype_name: str) -> int:
    from onnx import TensorProto
    return getattr(TensorProto, _ONNX_TYPES[dtype_name])


def _cast(w, node, a):
    return w.add("Cast", [w.names[a["self"]]], node.name,
                 to=_onnx_type(node.meta["val"].dtype.name))


def _leaky_relu(w, node, a):
    return w.add("LeakyRelu", [w.names[a["self"]]], node.name,
                 alpha=float(a["negative_slope"]))


def _elu(w, node, a):
    if a["scale"] != 1 or a["input_scale"] != 1:
        raise OnnxExportError("ember.onnx.export: elu with scale/input_scale other than 1 "
                              f"(at {node.meta.get('loc', node.name)}) has no ONNX form")
    return w.add("Elu", [w.names[a["self"]]], node.name, alpha=float(a["alpha"]))


def _softplus(w, node, a):
    x = w.names[a["self"]]
    dtype = node.meta["val"].dtype.np_dtype
    beta, threshold = float(a["beta"]), float(a["threshold"])
    scaled = w.add("Mul", [x, w.const(beta, dtype)], "bx") if beta != 1 else x
    soft = w.add("Softplus", [scaled], "softplus")
    soft = w.add("Div", [soft, w.const(beta, dtype)], "sp") if beta != 1 else soft
    # torch returns x itself where beta * x > threshold
    return w.add("Where", [w.add("Greater", [scaled, w.const(threshold, dtype)], "big"),
                           x, soft], node.name)


def _hardsigmoid(w, node, a):
    return w.add("HardSigmoid", [w.names[a["self"]]], node.name, alpha=1 / 6, beta=0.5)


def _hardswish(w, node, a):
    x = w.names[a["self"]]
    return w.add("Mul", [x, w.add("HardSigmoid", [x], "hs", alpha=1 / 6, beta=0.5)],
                 node.name)


def _relu6(w, node, a):
    dtype = node.meta["val"].dtype.np_dtype
    return w.add("Clip", [w.names[a["self"]], w.const(0, dtype), w.const(6, dtype)],
                 node.name)


def _narrow(w, node, a):
    ndim = a["self"].meta["val"].ndim
    start = a["start"]
    return w.add("Slice", [w.names[a["self"]], w.ints([start]),
                           w.ints([start + a["length"]]), w.ints([a["dim"] % ndim])],
                 node.name)


def _arg_reduce(op_type):
    def emit(w, node, a):
        x = w.names[a["self"]]
        if a["dim"] is None:            # over the flattened tensor
            x = w.add("Reshape", [x, w.ints([-1])], "flat")
            dim = 0
        else:
            dim = a["dim"] % max(1, a["self"].meta["val"].ndim)
        return w.add(op_type, [x], node.name, axis=dim, keepdims=int(a["keepdim"]))
    return emit


def _topk(w, node, a):
    ndim = a["self"].meta["val"].ndim
    return w.add_many("TopK", [w.names[a["self"]], w.ints([a["k"]])], node.name, 2,
                      axis=a["dim"] % ndim, largest=int(a["largest"]),
                      sorted=int(a["sorted"]))


def _pieces(w, node, a):
    """split / chunk / unbind: one Slice (Gather for unbind) per piece."""
    source = a["self"]
    ndim = source.meta["val"].ndim
    dim = a.get("dim", 0) % ndim
    pieces = node.meta["val"]
    if node.target.name == "unbind":
        return [w.add("Gather", [w.names[source], w.const(i, np.int64)], node.name, axis=dim)
                for i in range(len(pieces))]
    names, start = [], 0
    for piece in pieces:
        if not isinstance(piece.shape[dim], int):
            raise OnnxExportError(f"ember.onnx.export: {node.target.name} (at "
                                  f"{node.meta.get('loc', node.name)}) along a dynamic dim")
        end = start + piece.shape[dim]
        names.append(w.add("Slice", [w.names[source], w.ints([start]), w.ints([end]),
                                     w.ints([dim])], node.name))
        start = end
    return names


def _pad(w, node, a):
    if a["mode"] != "constant":
        raise OnnxExportError(f"ember.onnx.export: pad mode {a['mode']!r} (at "
                              f"{node.meta.get('loc', node.name)}) is written for 'constant' "
                              "only")
    ndim = node.meta["val"].ndim
    pairs = list(a["pad"])                 # (last dim's begin, end, the one before's, ...)
    begins, ends = [0] * ndim, [0] * ndim
    for i in range(len(pairs) // 2):
        begins[ndim - 1 - i], ends[ndim - 1 - i] = pairs[2 * i], pairs[2 * i + 1]
    value = w.const(a["value"] or 0, node.meta["val"].dtype.np_dtype)
    return w.add("Pad", [w.names[a["self"]], w.ints(begins + ends), value], node.name,
                 mode="constant")


def _full(w, node, a):
    meta = node.meta["val"]
    if any(not isinstance(d, int) for d in meta.shape):
        return w.add("ConstantOfShape", [w.shape_of(meta.shape)], node.name,
                     value=w.numpy_helper.from_array(np.asarray(
                         [a["fill_value"]], dtype=meta.dtype.np_dtype)))
    return w.const(np.full(tuple(meta.shape), a["fill_value"]), meta.dtype.np_dtype)


def _arange(w, node, a):
    """arange over a dynamic size (a static one is a folded constant): ONNX Range of
    scalars, a size computed from the inputs' shapes as for Reshape."""
    meta = node.meta["val"]
    dtype = meta.dtype.np_dtype

    def scalar(value):
        if not isinstance(value, SymDim):
            return w.const(value, dtype)
        size = w.add("Reshape", [w.size(value), w.ints([])], "scalar")
        return size if dtype == np.int64 else w.add("Cast", [size], "cast",
                                                    to=_onnx_type(meta.dtype.name))
    return w.add("Range", [scalar(a["start"]), scalar(a["end"]), scalar(a["step"])],
                 node.name)


def _tri(upper: int):
    """tril / triu: Trilu (opset 14 on); a bool input through int64 and back, as
    onnxruntime's Trilu may not take bool."""
    def emit(w, node, a):
        if w.opset < 14:
            raise OnnxExportError(f"ember.onnx.export: {'triu' if upper else 'tril'} needs "
                                  f"opset 14 or later (Trilu); got opset_version={w.opset}")
        meta = node.meta["val"]
        x = w.names[a["self"]]
        is_bool = meta.dtype.name == "bool"
        if is_bool:
            x = w.add("Cast", [x], "as_int", to=_onnx_type("int64"))
        out = w.add("Trilu", [x, w.const(a["diagonal"], np.int64)],
                    "tri" if is_bool else node.name, upper=upper)
        return w.add("Cast", [out], node.name, to=_onnx_type("bool")) if is_bool else out
    return emit


def _like(fill):
    def emit(w, node, a):
        meta = node.meta["val"]
        value = a.get("fill_value", fill)
        shape = w.add("Shape", [w.names[a["self"]]], "shape")
        return w.add("ConstantOfShape", [shape], node.name, value=w.numpy_helper.from_array(
            np.asarray([value], dtype=meta.dtype.np_dtype)))
    return emit


def _sdpa(w, node, a):
    """softmax(q k^T * scale + mask) v, written out (ONNX has no attention op in the
    default domain before opset 23)."""
    q, k, v = a["query"], a["key"], a["value"]
    meta = q.meta["val"]
    dtype = meta.dtype.np_dtype
    if a["enable_gqa"] or a["dropout_p"]:
        raise OnnxExportError("ember.onnx.export: scaled_dot_product_attention with "
                              "enable_gqa or dropout has no ONNX form here (at "
                              f"{node.meta.get('loc', node.name)})")
    ndim = meta.ndim
    perm = list(range(ndim))
    perm[-1], perm[-2] = perm[-2], perm[-1]
    scale = a["scale"] if a["scale"] is not None else 1 / math.sqrt(meta.shape[-1])
    scores = w.add("MatMul", [w.names[q], w.add("Transpose", [w.names[k]], "kt", perm=perm)],
                   "scores")
    scores = w.add("Mul", [scores, w.const(scale, dtype)], "scaled")
    mask = a["attn_mask"]
    if a["is_causal"]:
        scores = w.add("Where", [_causal_mask(w, scores, meta, k.meta["val"]), scores,
                                 w.const(-np.inf, dtype)], "causal")
    if mask is not None:
        if mask.meta["val"].dtype.name == "bool":
            scores = w.add("Where", [w.names[mask], scores, w.const(-np.inf, dtype)], "masked")
        else:
            scores = w.add("Add", [scores, w.names[mask]], "masked")
    probs = w.add("Softmax", [scores], "probs", axis=ndim - 1)
    return w.add("MatMul", [probs, w.names[v]], node.name)


def _causal_mask(w, scores: str, q_meta, k_meta) -> str:
    """The lower triangle of the (L, S) scores: a constant for static lengths; for a
    dynamic one, Trilu of ones shaped as the scores (opset 14 on)."""
    length, source = q_meta.shape[-2], k_meta.shape[-2]
    if isinstance(length, int) and isinstance(source, int):
        return w.const(np.tril(np.ones((length, source), dtype=bool)), np.bool_)
    if w.opset < 14:
        raise OnnxExportError("ember.onnx.export: a causal attention's mask with a dynamic "
                              f"sequence length needs opset 14 or later (Trilu); got "
                              f"opset_version={w.opset}")
    ones = w.add("ConstantOfShape", [w.add("Shape", [scores], "shape")], "ones",
                 value=w.numpy_helper.from_array(np.asarray([1], dtype=np.int64)))
    return w.add("Cast", [w.add("Trilu", [ones], "tril", upper=0)], "causal_mask",
                 to=_onnx_type("bool"))


def _upsample_nearest(w, node, a):
    in_shape, out_shape = a["self"].meta["val"].shape, node.meta["val"].shape
    if any(not isinstance(d, int) for d in list(in_shape[2:]) + list(out_shape[2:])):
        raise OnnxExportError("ember.onnx.export: upsample_nearest2d over dynamic spatial "
                              "sizes has no ONNX form here")
    scales = [1.0, 1.0] + [o / i for o, i in zip(out_shape[2:], in_shape[2:])]
    return w.add("Resize", [w.names[a["self"]], "", w.const(scales, np.float32)], node.name,
                 mode="nearest", coordinate_transformation_mode="asymmetric",
                 nearest_mode="floor")


def _conv_transpose(w, node, a):
    n = a["weight"].meta["val"].ndim - 2
    inputs = [w.names[a["input"]], w.names[a["weight"]]]
    if a["bias"] is not None:
        inputs.append(w.names[a["bias"]])
    padding = _pair(a["padding"], n)
    return w.add("ConvTranspose", inputs, node.name, strides=_pair(a["stride"], n),
                 pads=padding + padding, dilations=_pair(a["dilation"], n),
                 output_padding=_pair(a["output_padding"], n), group=a["groups"])


def _dim_mask(w, shape, dim: int, start: int, end: int) -> str:
    """A bool constant broadcasting along `dim`: True for positions start .. end - 1."""
    size = shape[dim]
    if not isinstance(size, int):
        raise OnnxExportError("ember.onnx.export: an update along a dynamic dim has no "
                              "ONNX form here")
    mask = np.zeros([size if d == dim else 1 for d in range(len(shape))], dtype=bool)
    index = [slice(None)] * len(shape)
    index[dim] = slice(start, end)
    mask[tuple(index)] = True
    return w.const(mask, np.bool_)


def _select_scatter(w, node, a):
    shape = node.meta["val"].shape
    dim = a["dim"] % len(shape)
    at = a["index"] % shape[dim]
    piece = _unsqueeze_name(w, w.names[a["src"]], dim)
    return w.add("Where", [_dim_mask(w, shape, dim, at, at + 1), piece,
                           w.names[a["self"]]], node.name)


def _slice_scatter(w, node, a):
    shape = node.meta["val"].shape
    dim = a["dim"] % len(shape)
    if a["step"] not in (None, 1):
        raise OnnxExportError("ember.onnx.export: slice_scatter with a step has no ONNX "
                              "form here")
    start, end, _ = slice(a["start"], a["end"]).indices(shape[dim])
    # src padded with zeros to self's size along dim, then chosen inside the slice
    begins, ends = [0] * len(shape), [0] * len(shape)
    begins[dim], ends[dim] = start, shape[dim] - max(start, end)
    padded = w.add("Pad", [w.names[a["src"]], w.ints(begins + ends)], "padded")
    return w.add("Where", [_dim_mask(w, shape, dim, start, end), padded,
                           w.names[a["self"]]], node.name)


def _copy(w, node, a):
    meta = node.meta["val"]
    src = w.add("Cast", [w.names[a["src"]]], "cast", to=_onnx_type(meta.dtype.name))
    shape = w.add("Shape", [w.names[a["self"]]], "shape")
    return w.add("Expand", [src, shape], node.name)


def _unsqueeze_name(w, x: str, axis: int) -> str:
    if w.opset < 13:
        return w.add("Unsqueeze", [x], "unsq", axes=[axis])
    return w.add("Unsqueeze", [x, w.ints([axis])], "unsq")


def _stack(w, node, a):
    ndim = node.meta["val"].ndim
    dim = a["dim"] % ndim
    parts = [_unsqueeze_name(w, w.names[t], dim) for t in a["tensors"]]
    return w.add("Concat", parts, node.name, axis=dim)


def _max_min_dim(reduce_type, arg_type):
    def emit(w, node, a):
        ndim = max(1, a["self"].meta["val"].ndim)
        dim, keep = a["dim"] % ndim, int(a["keepdim"])
        x = w.names[a["self"]]
        return [_reduce_axes(w, reduce_type, x, [dim], keep),
                w.add(arg_type, [x], node.name, axis=dim, keepdims=keep)]
    return emit


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
    "gt": _compare("Greater"), "lt": _compare("Less"), "eq": _compare("Equal"),
    "ne": _compare("Equal", negate=True), "ge": _compare("GreaterOrEqual"),
    "le": _compare("LessOrEqual"),
    "logical_not": _logical("Not"), "bitwise_not": _bitwise_not, "logical_and": _logical("And"),
    "logical_or": _logical("Or"), "logical_xor": _logical("Xor"),
    "convert_element_type": _cast,
    "leaky_relu": _leaky_relu, "elu": _elu, "softplus": _softplus,
    "hardsigmoid": _hardsigmoid, "hardswish": _hardswish, "relu6": _relu6,
    "sin": _unary("Sin"), "cos": _unary("Cos"), "reciprocal": _unary("Reciprocal"),
    "floor": _unary("Floor"), "ceil": _unary("Ceil"), "sign": _unary("Sign"),
    "maximum": _binary("Max"), "minimum": _binary("Min"),
    "narrow": _narrow, "argmax": _arg_reduce("ArgMax"), "argmin": _arg_reduce("ArgMin"),
    "amax": _reduce("ReduceMax"), "amin": _reduce("ReduceMin"),
    "topk": _topk, "stack": _stack, "max_dim": _max_min_dim("ReduceMax", "ArgMax"),
    "min_dim": _max_min_dim("ReduceMin", "ArgMin"),
    "split": _pieces, "chunk": _pieces, "unbind": _pieces,
    "select_scatter": _select_scatter, "slice_scatter": _slice_scatter, "copy": _copy,
    "pad": _pad, "full": _full, "arange": _arange, "tril": _tri(0), "triu": _tri(1), "zeros_like": _like(0), "ones_like": _like(1),
    "full_like": _like(None),
    "scaled_dot_product_attention": _sdpa, "upsample_nearest2d": _upsample_nearest,
    "conv_transpose2d": _conv_transpose, "conv_transpose1d": _conv_transpose,
    **{name: _reshape_to_result for name in _SHAPE_OPS - {"expand", "expand_as"}},
}
