"""ember.onnx: import an ONNX model as a GraphModule, and export one (`ember.onnx.export`,
torch.onnx.export's interface: ember/onnx/export.py).

    gm = ember.onnx.load("model.onnx")      # a path, a file object, bytes or a ModelProto
    y = gm(x)                               # or ember.compile(gm), ember.export(gm, (x,))

How: the `onnx` package reads the file and infers every value's shape (inputs must
have static shapes). `OnnxModule` interprets the ONNX nodes with ember ops; values
that do not depend on an input (initializers, Constant nodes, Shape of a
statically-shaped value and arithmetic on those) are folded with NumPy when the
module is built, so shape-computing subgraphs (Shape -> Gather -> Concat ->
Reshape) become plain Python values. ember.export's trace (static shapes: ember's
composites such as layer_norm branch on shapes, which fx's proxies do not know)
records the interpretation: the result is a GraphModule whose graph holds ember ops
and whose initializers are buffers; its inputs are named arg0, arg1, ... in the ONNX
graph's input order.

The op coverage (ops.py) is what an MLP, a small CNN, torchvision-style ResNets and
a transformer encoder layer export to; an op outside it is refused naming the op and
the node. Needs `pip install onnx` (the `onnx` extra).
"""
from __future__ import annotations

import re

import numpy as np

from ..frontend.nn.modules.module import Module
from ..frontend.tensor import Tensor
from ..ir.errors import EmberError
from .ops import HANDLERS, STATIC, OnnxError, attributes, onnx_dtype

from .export import OnnxExportError, export  # noqa: E402

__all__ = ["load", "export", "input_specs", "OnnxModule", "OnnxError", "OnnxExportError"]


def load(source, input_shapes: dict | None = None):
    """An ONNX model (path, file object, bytes or onnx.ModelProto) as a GraphModule.
    `input_shapes` ({input name: shape}) fixes the sizes of inputs whose dims the file
    leaves dynamic (a model exported with dynamic_axes): the module is traced at them."""
    try:
        import onnx
    except ImportError:
        raise EmberError("ember.onnx.load needs the onnx package: pip install onnx "
                         "(or ember[onnx])") from None
    from ..compiler.export import export
    from ..frontend.fx.graph_module import GraphModule
    from ..frontend import factories
    model = _with_input_shapes(onnx, _read(onnx, source), input_shapes)
    try:
        model = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception as err:     # noqa: BLE001 - onnx raises several kinds here
        raise OnnxError(f"ember.onnx.load: shape inference failed: {err}") from None
    module = OnnxModule(model)
    examples = tuple(factories.zeros(*module.shapes[name], dtype=_dtype(module.dtypes[name]))
                     for name in module.input_names)
    exported = export(module, examples)
    for name, value in exported.tensors.items():      # constants an op made itself
        if name not in module._buffers:
            module.register_buffer(name, value)
    graph = exported.graph
    outputs = graph.output_node.args[0]
    if len(module.output_names) == 1 and len(outputs) == 1:   # one output: a tensor, not (t,)
        graph.output_node.args = (outputs[0],)
    return GraphModule(module, graph, class_name="OnnxGraphModule")


def _dtype(name: str):
    from ..ir import dtypes
    return getattr(dtypes, {"bool": "bool_"}.get(name, name))


def _with_input_shapes(onnx, model, input_shapes: dict | None):
    """A copy of `model` whose graph inputs have the sizes `input_shapes` gives (dynamic
    dims fixed; a static dim must agree)."""
    if not input_shapes:
        return model
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    inputs = {i.name: i for i in fixed.graph.input}
    for name, shape in input_shapes.items():
        if name not in inputs:
            raise OnnxError(f"ember.onnx.load: input_shapes names {name!r}, which is not an "
                            f"input (inputs: {', '.join(inputs)})")
        dims = inputs[name].type.tensor_type.shape.dim
        shape = tuple(int(d) for d in shape)
        if len(dims) != len(shape):
            raise OnnxError(f"ember.onnx.load: input {name!r} has {len(dims)} dims, "
                            f"input_shapes gives {len(shape)} ({list(shape)})")
        for d, (dim, size) in enumerate(zip(dims, shape)):
            if dim.HasField("dim_value") and dim.dim_value != size:
                raise OnnxError(f"ember.onnx.load: dim {d} of input {name!r} is "
                                f"{dim.dim_value} in the file, input_shapes gives {size}")
            dim.dim_value = size
    return fixed


def input_specs(source, input_shapes: dict | None = None) -> list[tuple[str, tuple, str]]:
    """(name, static shape, dtype name) of each graph input that is not an initializer."""
    import onnx
    model = _with_input_shapes(onnx, _read(onnx, source), input_shapes)
    initializers = {i.name for i in model.graph.initializer}
    shapes = _static_shapes(model.graph)
    specs = []
    for info in model.graph.input:
        if info.name in initializers:
            continue
        if shapes.get(info.name) is None:
            raise OnnxError(f"ember.onnx: input {info.name!r} has no static shape; give "
                            "its sizes (input_shapes=, or --input NAME:DIMS)")
        specs.append((info.name, shapes[info.name],
                      onnx_dtype(info.type.tensor_type.elem_type)))
    return specs


def _read(onnx, source):
    if isinstance(source, onnx.ModelProto):
        return source
    try:
        if isinstance(source, (bytes, bytearray)):
            return onnx.load_model_from_string(bytes(source))
        return onnx.load(source)
    except Exception as err:     # noqa: BLE001 - protobuf's DecodeError and friends
        raise OnnxError(f"ember.onnx.load: cannot read an ONNX model from {source!r:.80}: "
                        f"{err}") from None


def _identifier(name: str, taken: set) -> str:
    base = re.sub(r"\W", "_", name) or "value"
    if base[0].isdigit():
        base = "v_" + base
    out, i = base, 1
    while out in taken:
        out, i = f"{base}_{i}", i + 1
    taken.add(out)
    return out


class OnnxModule(Module):
    """Runs an ONNX graph with ember ops (see the package doc); trace it for a graph."""

    def __init__(self, model):
        super().__init__()
        from onnx import numpy_helper
        graph = model.graph
        self.opset = max([o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
                         or [1])
        self.nodes = list(graph.node)
        self.shapes = _static_shapes(graph)
        self.static: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i)
                                              for i in graph.initializer}
        self.input_names = [i.name for i in graph.input if i.name not in self.static]
        self.dtypes = {i.name: onnx_dtype(i.type.tensor_type.elem_type) for i in graph.input
                       if i.name in self.input_names}
        self.output_names = [o.name for o in graph.output]
        for name in self.input_names:
            if self.shapes.get(name) is None:
                raise OnnxError(f"ember.onnx.load: input {name!r} has no static shape; "
                                "give its sizes: ember.onnx.load(f, input_shapes={"
                                f"{name!r}: (...)}})")
        self._fold()
        taken = set(self.__dict__) | {"forward"}
        self._tensor_names = {}
        for name, value in self.static.items():
            attr = _identifier(name, taken)
            self._tensor_names[name] = attr
            self.register_buffer(attr, Tensor._adopt(np.ascontiguousarray(value)))
        self.forward = self._make_forward()

    def _fold(self) -> None:
        """Evaluate (NumPy) every node whose inputs are all known without the inputs."""
        for node in self.nodes:
            fold = STATIC.get(node.op_type)
            if fold is None:
                continue
            ins = list(node.input)
            if node.op_type == "Shape" and ins and self.shapes.get(ins[0]) is not None:
                self.static[node.output[0]] = _shape_value(self.shapes[ins[0]], node)
                continue
            if not all(name == "" or name in self.static for name in ins):
                continue
            values = [self.static.get(name) if name else None for name in ins]
            try:
                outs = fold(values, attributes(node))
            except (ValueError, TypeError, IndexError) as err:
                raise OnnxError(f"ember.onnx.load: folding {node.op_type} node "
                                f"{node.name!r} failed: {err}") from None
            for name, out in zip(node.output, outs):
                self.static[name] = np.asarray(out)

    def _make_forward(self):
        """forward(self, <one parameter per ONNX input>) (fx traces its signature)."""
        taken = set()
        params = [_identifier(n, taken) for n in self.input_names]
        source = f"def forward({', '.join(params)}):\n    return run({', '.join(params)})\n"
        namespace = {"run": self.run}
        exec(source, namespace)      # noqa: S102 - parameter names only, sanitized above
        return namespace["forward"]

    def tensor(self, name: str):
        """A folded value as a tensor: its buffer, or (folded while tracing) a constant."""
        if name in self._tensor_names:
            return getattr(self, self._tensor_names[name])
        return Tensor._adopt(np.ascontiguousarray(self.static[name]))

    def run(self, *inputs):
        env = dict(zip(self.input_names, inputs))
        for node in self.nodes:
            if all(o in self.static for o in node.output if o):
                continue
            if self._fold_late(node, env):
                continue
            handler = HANDLERS.get(node.op_type)
            if handler is None or node.domain not in ("", "ai.onnx"):
                raise OnnxError(f"ember.onnx.load: unsupported ONNX op {node.op_type!r} "
                                f"(node {node.name!r}, domain {node.domain or 'ai.onnx'!r})")
            values = [_Value(self, env, name) for name in node.input]
            try:
                outs = handler(node, values, attributes(node), self)
            except OnnxError:
                raise
            except (EmberError, ValueError, TypeError, IndexError) as err:
                raise OnnxError(f"ember.onnx.load: {node.op_type} node {node.name!r}: "
                                f"{err}") from None
            if not isinstance(outs, (tuple, list)):
                outs = (outs,)
            for name, out in zip(node.output, outs):
                env[name] = out
        results = tuple(env[n] if n in env else self.tensor(n) for n in self.output_names)
        return results[0] if len(results) == 1 else results


    def _fold_late(self, node, env) -> bool:
        """While tracing: Shape of a traced value, and folding on what it gives."""
        if node.op_type == "Shape" and node.input[0] in env:
            shape = tuple(env[node.input[0]].shape)
            self.static[node.output[0]] = _shape_value(shape, node)
            return True
        fold = STATIC.get(node.op_type)
        if fold is None or not all(n == "" or n in self.static for n in node.input):
            return False
        outs = fold([self.static.get(n) if n else None for n in node.input], attributes(node))
        for name, out in zip(node.output, outs):
            self.static[name] = np.asarray(out)
        return True


class _Value:
    """One input of an ONNX node: a traced tensor, a folded constant, or absent ('')."""

    def __init__(self, module: OnnxModule, env: dict, name: str):
        self.module, self.env, self.name = module, env, name

    @property
    def present(self) -> bool:
        return self.name != ""

    @property
    def is_static(self) -> bool:
        return self.name in self.module.static

    def tensor(self):
        if self.name in self.env:
            return self.env[self.name]
        if self.is_static:
            return self.module.tensor(self.name)
        raise OnnxError(f"ember.onnx.load: value {self.name!r} is used before it is defined")

    def const(self, what: str = "this input") -> np.ndarray:
        if not self.is_static:
            raise OnnxError(f"ember.onnx.load: {what} ({self.name!r}) must be a constant")
        return self.module.static[self.name]

    def ints(self, what: str = "this input") -> list[int]:
        return [int(v) for v in np.asarray(self.const(what)).reshape(-1)]

    @property
    def shape(self) -> tuple:
        if self.is_static:
            return tuple(self.module.static[self.name].shape)
        if self.name in self.env:
            return tuple(self.env[self.name].shape)
        shape = self.module.shapes.get(self.name)
        if shape is None:
            raise OnnxError(f"ember.onnx.load: the shape of {self.name!r} is unknown "
                            "(shape inference gave none)")
        return shape


def _static_shapes(graph) -> dict:
    """name -> shape tuple for every value whose shape inference gave static dims."""
    shapes = {}
    for info in list(graph.input) + list(graph.value_info) + list(graph.output):
        t = info.type.tensor_type
        if not t.HasField("shape"):
            continue
        dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
        shapes[info.name] = tuple(dims) if all(d is not None for d in dims) else None
    return shapes


def _shape_value(shape: tuple, node) -> np.ndarray:
    attrs = attributes(node)
    start, end = attrs.get("start", 0), attrs.get("end", None)
    return np.asarray(shape[start:end], np.int64)
