"""Batchnorm folding for eval graphs: conv/linear followed by per-channel affine
steps (an eval `batch_norm`, or the sub/div/mul/add by per-channel constants that
eval batchnorm traces to) becomes one conv/linear with new weight and bias.

    y = conv(x, W, b);  z = (y - m) / s * g + h
    ==> z = conv(x, W * (g/s), (b - m) * g/s + h)      (per output channel)

The new weight and bias are new constants in the context, computed in float64
and cast back, so folding does not add rounding of its own. Each step must keep
the conv's output type (no broadcasting growth) and every intermediate must have
the chain as its only user. Requires constant folding first, so that the
statistics' reshapes and `sqrt(var + eps)` are constants by then.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ir.dtypes import float64
from ..ir.graph import Graph, Node
from ..ir.registry import OPS
from .cleanup import insert_call, insert_constant, is_tensor_value, op_name, same_type
from .manager import PassContext, register_pass

# producer op -> (index of weight, index of bias) in its bound arguments
PRODUCERS = {"conv1d": (1, 2), "conv2d": (1, 2), "linear": (1, 2)}


def _op(name: str):
    return OPS[name]


@dataclass
class ChannelAffine:
    """z = y * scale + shift per output channel; None stands for 1 and 0."""
    channels: int
    scale: object = None
    shift: object = None

    def then_scale(self, s) -> None:
        self.scale = s if self.scale is None else _op("mul")(self.scale, s)
        self.shift = None if self.shift is None else _op("mul")(self.shift, s)

    def then_shift(self, t) -> None:
        self.shift = t if self.shift is None else _op("add")(self.shift, t)


def _full(channels: int, value: float):
    """A float64 vector of `channels` copies of value, on the host (see _host_value)."""
    return _op("full")([channels], float(value), dtype=float64)


def _host_value(value):
    """A constant's value on the host. The fold is computed there and its results moved
    to the weight's device (`_on_device_of`): on a GPU every float64 op of the fold
    would compile a kernel for its channel count (resnet18: 69 serial Triton compiles
    of a cold first call) to run a few hundred elements once."""
    if getattr(value, "is_cuda", False):
        return value.cpu()
    return value


def _on_device_of(value, like):
    """`value` (a host tensor) on the device `like` lives on (the model's constants stay
    on its device through the passes)."""
    if getattr(like, "is_cuda", False):
        return value.to(like.device)
    return value


def _channel_dim(producer: Node) -> int:
    return 1 if op_name(producer) in ("conv1d", "conv2d") else len(producer.meta["val"].shape) - 1


def _per_channel(value, producer: Node, channels: int):
    """A python scalar or a constant broadcasting along the channel dim only, as a
    float64 vector of `channels` entries; None when it is anything else."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _full(channels, value)
    if not is_tensor_value(value):
        return None
    out_ndim = len(producer.meta["val"].shape)
    channel_dim = _channel_dim(producer)
    shape = tuple(value.shape)
    if len(shape) > out_ndim:
        return None
    for offset, size in enumerate(shape):
        dim = out_ndim - len(shape) + offset
        if size != 1 and not (dim == channel_dim and size == channels):
            return None
    flat = _op("reshape")(_op("convert_element_type")(value, float64), [-1])
    return _op("expand")(flat, [channels])


def _operand(node: Node, ctx: PassContext, index: int):
    """The constant value of node.args[index]: a scalar, a context constant, or None."""
    arg = node.args[index]
    if isinstance(arg, Node):
        return _host_value(ctx.value_of(arg))
    return arg


def _batch_norm_step(step: Node, producer: Node, ctx: PassContext, affine: ChannelAffine):
    args = OPS["batch_norm"].schema.as_kwargs(
        OPS["batch_norm"].schema.bind(step.args, step.kwargs))
    if args["training"] or _channel_dim(producer) != 1:
        return False
    stats = [args["running_mean"], args["running_var"]]
    params = [args["weight"], args["bias"]]
    values = [_host_value(ctx.value_of(v)) if isinstance(v, Node) else None
              for v in stats + params]
    if any(v is None for v in values[:2]) or any(p is not None and v is None
                                                 for p, v in zip(params, values[2:])):
        return False
    if any(v is not None and tuple(v.shape) != (affine.channels,) for v in values):
        return False
    mean, var, weight, bias = [None if v is None else _op("convert_element_type")(v, float64)
                               for v in values]
    inv_std = _op("rsqrt")(_op("add")(var, args["eps"]))
    scale = inv_std if weight is None else _op("mul")(inv_std, weight)
    affine.then_shift(_op("neg")(mean))
    affine.then_scale(scale)
    if bias is not None:
        affine.then_shift(bias)
    return True


def _arith_step(step: Node, producer: Node, current: Node, ctx: PassContext,
                affine: ChannelAffine) -> bool:
    """mul/div/add/sub of the running value by a per-channel constant."""
    name = op_name(step)
    if len(step.args) != 2 or step.kwargs.get("rounding_mode") is not None:
        return False
    mine = 0 if step.args[0] is current else 1
    if step.args[mine] is not current or step.args[1 - mine] is current:
        return False
    alpha = step.kwargs.get("alpha", 1)
    if mine == 1 and (name in ("div", "sub") or alpha != 1):
        return False                       # c / y and c - y are not affine in y's way
    other = _per_channel(_operand(step, ctx, 1 - mine), producer, affine.channels)
    if other is None:
        return False
    if name == "mul":
        affine.then_scale(other)
    elif name == "div":
        affine.then_scale(_op("reciprocal")(other))
    elif name == "add":
        affine.then_shift(_op("mul")(other, float(alpha)) if alpha != 1 else other)
    else:
        affine.then_shift(_op("mul")(other, -float(alpha)))
    return True


def _absorb(step: Node, producer: Node, current: Node, ctx: PassContext,
            affine: ChannelAffine) -> bool:
    if not same_type(step, producer):
        return False
    if op_name(step) == "batch_norm" and step.args[0] is current:
        return _batch_norm_step(step, producer, ctx, affine)
    if op_name(step) in ("mul", "div", "add", "sub"):
        return _arith_step(step, producer, current, ctx, affine)
    return False


def _folded_params(producer: Node, ctx: PassContext, affine: ChannelAffine):
    """(new weight, new bias) tensors, or None when the producer's are not constants."""
    w_index, b_index = PRODUCERS[op_name(producer)]
    bound = producer.target.schema.bind(producer.args, producer.kwargs)
    weight = ctx.value_of(bound[w_index]) if isinstance(bound[w_index], Node) else None
    bias_node = bound[b_index]
    bias = ctx.value_of(bias_node) if isinstance(bias_node, Node) else None
    if weight is None or (bias_node is not None and bias is None):
        return None
    device_weight, weight, bias = weight, _host_value(weight), _host_value(bias)
    w64 = _op("convert_element_type")(weight, float64)
    scale = affine.scale if affine.scale is not None else _full(affine.channels, 1.0)
    shape = [affine.channels] + [1] * (len(weight.shape) - 1)
    new_w = _op("mul")(w64, _op("reshape")(scale, shape))
    b64 = _full(affine.channels, 0.0) if bias is None else \
        _op("convert_element_type")(bias, float64)
    new_b = _op("mul")(b64, scale)
    if affine.shift is not None:
        new_b = _op("add")(new_b, affine.shift)
    return (_on_device_of(_op("convert_element_type")(new_w, weight.dtype), device_weight),
            _on_device_of(_op("convert_element_type")(new_b, weight.dtype), device_weight),
            w_index, b_index, bound)


def _fold_chain(producer: Node, ctx: PassContext) -> bool:
    channels = producer.meta["val"].shape[_channel_dim(producer)]
    affine = ChannelAffine(channels)
    chain = [producer]
    while len(chain[-1].users) == 1:
        step = next(iter(chain[-1].users))
        if not _absorb(step, producer, chain[-1], ctx, affine):
            break
        chain.append(step)
    if len(chain) == 1:
        return False
    current = chain[-1]
    params = _folded_params(producer, ctx, affine)
    if params is None:
        return False
    new_w, new_b, w_index, b_index, bound = params
    args = list(bound)
    args[w_index] = insert_constant(current, ctx, new_w, bound[w_index], "_folded_weight")
    args[b_index] = insert_constant(current, ctx, new_b, args[w_index], "_folded_bias")
    args[b_index].meta["val"] = args[w_index].meta["val"].with_(shape=(channels,))
    call_args, call_kwargs = producer.target.schema.unbind(tuple(args))
    folded = insert_call(current, producer.target, call_args, call_kwargs, like=current)
    current.replace_all_uses_with(folded)
    for node in reversed(chain):          # each one's only user was the next
        node.graph.erase_node(node)
    return True


@register_pass("fold-bn", requires=("constants-folded",))
def fold_batchnorm(graph: Graph, ctx: PassContext) -> int:
    """Fold eval batchnorm (and per-channel affine ops) into the conv/linear before it."""
    if not ctx.inference:
        return 0
    changed = 0
    for node in graph.nodes:
        if not node._erased and op_name(node) in PRODUCERS and "val" in node.meta:
            changed += _fold_chain(node, ctx)
    return changed
