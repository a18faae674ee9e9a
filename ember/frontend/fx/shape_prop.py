"""ShapeProp: fill node.meta['val'] (shape, dtype, strides, memory format) by
abstract evaluation from the registry's meta rules. No tensor data is computed,
so it runs on very deep models in milliseconds per layer.

Registry ops run their meta rule; `call_module` leaf modules are traced on the fly
and propagated through; a few shape-only methods/functions (getattr of .shape,
getitem, size, dim) are evaluated on the metadata itself.
"""
from __future__ import annotations

import operator

from ...ir.graph import Node, OpKind, map_arg
from ...ir.meta import TensorMeta, meta_of
from ...ir.registry import OPS
from ..tensor import Tensor
from .interpreter import Interpreter, fetch_attr


def _as_meta(v):
    if isinstance(v, Tensor):
        return meta_of(v)
    return v


class ShapeProp(Interpreter):
    def __init__(self, module):
        super().__init__(module, garbage_collect_values=False)

    def propagate(self, *args):
        return self.run(*[map_arg(a, _as_meta) if not isinstance(a, Tensor) else meta_of(a)
                          for a in args])

    def run_node(self, node: Node):
        result = super().run_node(node)
        if node.op != OpKind.output:
            node.meta["val"] = result
            if isinstance(result, TensorMeta):
                node.meta["tensor_meta"] = result
        return result

    def get_attr(self, target, args, kwargs):
        value = fetch_attr(self.module, target)
        return meta_of(value) if isinstance(value, Tensor) else value

    def call_function(self, target, args, kwargs):
        if type(target).__name__ == "OpDef":
            return target.meta(*target.schema.bind(args, kwargs))
        if target is getattr and args[1] == "shape":
            return tuple(args[0].shape)
        if target is operator.getitem:
            return args[0][args[1]]
        return _shape_only(target, args, kwargs)

    def call_method(self, target, args, kwargs):
        self_obj, *rest = args
        if target in ("size", "dim", "stride", "numel", "is_contiguous"):
            return getattr(self_obj, target)(*rest, **kwargs)
        if target == "contiguous":
            fmt = kwargs.get("memory_format", rest[0] if rest else None)
            return OPS["contiguous"].meta(self_obj, fmt) if fmt is not None else \
                TensorMeta(self_obj.shape, self_obj.dtype, self_obj.device)
        op = OPS.get(target)
        if op is not None:
            return op.meta(*op.schema.bind((self_obj, *rest), kwargs))
        raise NotImplementedError(f"ShapeProp: no shape rule for method '{target}'")

    def call_module(self, target, args, kwargs):
        from .tracer import Tracer
        from .graph_module import GraphModule
        module = fetch_attr(self.module, target)

        class _Inner(Tracer):
            def is_leaf_module(self, m, name):
                return False
        graph = _Inner().trace(module)
        return ShapeProp(GraphModule(module, graph)).propagate(*args)


def _shape_only(target, args, kwargs):
    raise NotImplementedError(f"ShapeProp: no shape rule for {getattr(target, '__name__', target)}")
