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
from ...ir.meta import HasMeta, MemoryFormat, TensorMeta, is_contiguous_for, meta_of
from ..tensor import Size, Tensor
from .interpreter import Interpreter


class MetaTensor(HasMeta):
    """A tensor with metadata and no data: what ops compute on during ShapeProp."""
    __slots__ = ("meta", "requires_grad", "qparams")

    def __init__(self, meta: TensorMeta, requires_grad: bool = False):
        self.meta = meta
        self.requires_grad = requires_grad
        self.qparams = {}       # a quantized input's scheme/scale/zero point (tensor_meta)

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


def _wrap(value, requires_grad: bool = False):
    if isinstance(value, TensorMeta):
        return MetaTensor(value, requires_grad)
    if isinstance(value, (list, tuple)):
        return type(value)(_wrap(v, requires_grad) for v in value)
    return value


def _from_value(value):
    """The MetaTensor standing for a real input or attribute (other values as they are)."""
    result = _wrap(_to_meta(value), _requires_grad(value))
    if isinstance(result, MetaTensor) and isinstance(value, Tensor) and value.is_quantized:
        result.qparams = _qparams(value)
    return result


def _qparams(tensor) -> dict:
    """torch's ShapeProp qparams: the scheme with its scale/zero point (per channel:
    lists and the axis)."""
    scheme = tensor.qscheme()
    if "channel" in str(scheme):
        return {"qscheme": scheme, "scale": tensor.q_per_channel_scales().tolist(),
                "zero_point": tensor.q_per_channel_zero_points().tolist(),
                "axis": tensor.q_per_channel_axis()}
    return {"qscheme": scheme, "scale": tensor.q_scale(), "zero_point": tensor.q_zero_point()}


def _requires_grad(value) -> bool:
    return bool(getattr(value, "requires_grad", False))


def _flatten(values):
    for v in values:
        if isinstance(v, (list, tuple)):
            yield from _flatten(v)
        elif isinstance(v, dict):
            yield from _flatten(list(v.values()))
        else:
            yield v


def _mark_requires_grad(result, requires: bool) -> None:
    """A floating or complex result of an op with an input that requires grad
    requires grad (an integer or bool result never does)."""
    for v in _flatten([result]):
        if isinstance(v, MetaTensor):
            dtype = v.meta.dtype
            v.requires_grad = requires and (dtype.is_floating_point or dtype.is_complex)


def _run_meta(op, args: tuple):
    target = op.functional if op.functional is not None else op
    result = target.meta(*_to_meta(args))
    # a meta rule lists its results; the op called eagerly returns a tuple (split,
    # chunk, unbind), and torch's ShapeProp records that tuple
    return _wrap(tuple(result) if isinstance(result, list) else result)


def install() -> None:
    from ..methods import TRACED_TENSOR_METHODS, install as install_methods
    install_methods(MetaTensor)
    # Tensor's conversions (`to`, `float`, `type_as`, ...) call ops, which run their meta
    # rules here; methods MetaTensor already has stay
    for name in TRACED_TENSOR_METHODS:
        if not hasattr(MetaTensor, name):
            setattr(MetaTensor, name, Tensor.__dict__[name])
    dispatch.register_value_handler(MetaTensor, _run_meta, priority=5)
    MetaTensor.detach = lambda self: MetaTensor(self.meta)    # no longer requires grad
    MetaTensor.contiguous = lambda self, memory_format=None: self if memory_format is None \
        else _wrap(TensorMeta(self.meta.shape, self.meta.dtype, self.meta.device, memory_format))


class TensorMetadata(NamedTuple):
    """What torch.fx's ShapeProp stores under node.meta['tensor_meta'], its fields in
    torch's order. requires_grad follows autograd's rule (a floating result of
    anything that requires grad requires grad), since no data is computed."""
    shape: Size
    dtype: Any
    requires_grad: bool
    stride: tuple
    memory_format: Any
    is_quantized: bool
    qparams: dict


def _memory_format(meta: TensorMeta):
    """The format the strides are contiguous in, as torch's ShapeProp reports it:
    contiguous_format, channels_last (4-d), channels_last_3d (5-d), else None (a
    transposed view)."""
    candidates = [MemoryFormat.contiguous_format]
    if len(meta.shape) == 4:
        candidates.append(MemoryFormat.channels_last)
    elif len(meta.shape) == 5:
        candidates.append(MemoryFormat.channels_last_3d)
    for fmt in candidates:
        if is_contiguous_for(meta.shape, meta.strides, fmt):
            return fmt
    return None


def _tensor_metadata(value):
    if isinstance(value, MetaTensor):
        meta = value.meta
        return TensorMetadata(Size(meta.shape), meta.dtype, value.requires_grad,
                              tuple(meta.strides), _memory_format(meta),
                              meta.dtype.is_quantized, dict(value.qparams))
    if isinstance(value, (list, tuple)):
        # other values stay as they are (torch: `(3, sum)` gives `(3, TensorMetadata)`)
        found = [_tensor_metadata(v) if _has_tensor(v) else v for v in value]
        return type(value)(found) if any(_has_tensor(v) for v in value) else None
    return None


def _has_tensor(value) -> bool:
    if isinstance(value, (list, tuple)):
        return any(_has_tensor(v) for v in value)
    return isinstance(value, MetaTensor)


class ShapeProp(Interpreter):
    def __init__(self, module, fake_mode=None):
        # fake_mode: torch's way to avoid computing; ember never computes here
        super().__init__(module, garbage_collect_values=False)

    def propagate(self, *args):
        inputs = self.graph.process_inputs(*args)   # a pytree graph's leaves
        result = self.run(*[_from_value(a) for a in inputs], enable_io_processing=False)
        return self.graph.process_outputs(result)

    def run_node(self, node: Node):
        result = super().run_node(node)
        if node.op in (OpKind.call_function, OpKind.call_method, OpKind.call_module):
            detached = getattr(node.target, "__name__", node.target) == "detach"
            _mark_requires_grad(result, not detached and self._inputs_require_grad(node))
        if node.op != OpKind.output:
            node.meta["val"] = _to_meta(result)
        # torch's ShapeProp records the result's Python type (the output node's too)
        node.meta["type"] = Tensor if isinstance(result, MetaTensor) else type(result)
        metadata = _tensor_metadata(result)
        if metadata is not None:    # the output node's too, as torch's ShapeProp
            node.meta["tensor_meta"] = metadata
        return result

    def get_attr(self, target, args, kwargs):
        value = super().get_attr(target, args, kwargs)
        return _from_value(value) if isinstance(value, Tensor) else value

    def _inputs_require_grad(self, node: Node) -> bool:
        from ..autograd.grad_mode import is_grad_enabled
        if not is_grad_enabled():
            return False
        found = []
        map_arg((node.args, node.kwargs), lambda n: found.append(self.env.get(n)) or n)
        if node.op == OpKind.call_module:       # the layer's own parameters count too
            found += list(self.fetch_attr(node.target).parameters())
        return any(_requires_grad(v) for v in _flatten(found))
