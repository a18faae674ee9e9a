"""ShapeProp: fill node.meta['val'] (shape, dtype, strides, memory format) by
abstract evaluation from the registry's meta rules. No tensor data is computed.

The values flowing through are `MetaTensor`s: they have a Tensor's metadata and
methods, and their dispatch handler runs each op's meta rule instead of its
kernel. So leaf modules run their ordinary forward (shape checks included) on
metadata alone, and ShapeProp is just the Interpreter over MetaTensors.
"""
from __future__ import annotations

from typing import Any, NamedTuple

from ...ir import dispatch
from ...ir.graph import Node, OpKind, map_arg
from ...ir.meta import HasMeta, TensorMeta, meta_of
from ..tensor import Size, Tensor
from .interpreter import Interpreter


class MetaTensor(HasMeta):
    """A tensor with metadata and no data: what ops compute on during ShapeProp."""
    __slots__ = ("meta",)

    def __init__(self, meta: TensorMeta):
        self.meta = meta

    _shape_type = Size

    def __repr__(self) -> str:
        return f"MetaTensor({self.meta.dtype.short}{list(self.meta.shape)})"


def _to_meta(value):
    if isinstance(value, MetaTensor):
        return value.meta
    if isinstance(value, Tensor):
        return meta_of(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_to_meta(v) for v in value)
    return value


def _wrap(value):
    if isinstance(value, TensorMeta):
        return MetaTensor(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_wrap(v) for v in value)
    return value


def _run_meta(op, args: tuple):
    target = op.functional if op.functional is not None else op
    return _wrap(target.meta(*_to_meta(args)))


def install() -> None:
    from ..methods import install as install_methods
    install_methods(MetaTensor)
    dispatch.register_value_handler(MetaTensor, _run_meta, priority=5)
    MetaTensor.contiguous = lambda self, memory_format=None: self if memory_format is None \
        else _wrap(TensorMeta(self.meta.shape, self.meta.dtype, self.meta.device, memory_format))


class TensorMetadata(NamedTuple):
    """What torch.fx's ShapeProp stores under node.meta['tensor_meta'] (ember computes
    no data, so whether the value requires grad is not known and not recorded)."""
    shape: Size
    dtype: Any
    stride: tuple
    memory_format: Any
    is_quantized: bool
    qparams: dict


def _tensor_metadata(value):
    if isinstance(value, MetaTensor):
        meta = value.meta
        return TensorMetadata(Size(meta.shape), meta.dtype, tuple(meta.strides),
                              meta.memory_format, meta.dtype.is_quantized, {})
    if isinstance(value, (list, tuple)):
        found = [_tensor_metadata(v) for v in value]
        return type(value)(found) if any(f is not None for f in found) else None
    return None


class ShapeProp(Interpreter):
    def __init__(self, module):
        super().__init__(module, garbage_collect_values=False)

    def propagate(self, *args):
        return self.run(*[_wrap(_to_meta(a)) for a in args])

    def run_node(self, node: Node):
        result = super().run_node(node)
        if node.op != OpKind.output:
            node.meta["val"] = _to_meta(result)
        metadata = _tensor_metadata(result)
        if metadata is not None:    # the output node's too, as torch's ShapeProp
            node.meta["tensor_meta"] = metadata
        return result

    def get_attr(self, target, args, kwargs):
        value = super().get_attr(target, args, kwargs)
        return _wrap(meta_of(value)) if isinstance(value, Tensor) else value
