"""Loss functions of ember.nn.functional, with PyTorch's signatures and reductions.

Each calls the registry op of its aten name when one is registered and otherwise
composes primitive ops (log_softmax, where, sum, ...), which keeps gradients and
tracing working. Targets are class indices (int) or, for cross_entropy, class
probabilities (float, same shape as the input).
"""
from __future__ import annotations

from ...ir.autocast import autocast_as
from ...ir.errors import DTypeError, ShapeError
from ...ir.registry import OPS

_REDUCTIONS = {"none": 0, "mean": 1, "sum": 2}


def _legacy_reduction(size_average, reduce, reduction: str) -> str:
    """PyTorch's deprecated size_average/reduce pair, mapped to a reduction name."""
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if not reduce:
        return "none"
    return "mean" if size_average else "sum"


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS and reduction != "batchmean":
        raise ValueError(f"{reduction} is not a valid value for reduction")


def _reduce(loss, reduction: str):
    _check_reduction(reduction)
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()


def _call_op(name: str, reduction: str, *args):
    """Call registry op `name`, passing reduction as the schema wants it (int or str)."""
    op = OPS[name]
    arg = next(a for a in op.schema.args if a.name == "reduction")
    return op(*args, reduction=_REDUCTIONS[reduction] if arg.type == "int" else reduction)


def _where(cond, a, b):
    return OPS["where"](cond, a, b)


def _check_same_shape(name: str, input, target) -> None:
    if list(input.shape) != list(target.shape):
        t, i = list(target.shape), list(input.shape)
        detail = {   # PyTorch's words, which code written for it matches
            "binary_cross_entropy": f"Using a target size ({t}) that is different to the "
                                    f"input size ({i}) is deprecated. Please ensure they "
                                    "have the same size.",
            "binary_cross_entropy_with_logits": f"Target size ({t}) must be the same as "
                                                f"input size ({i})",
        }.get(name, f"target shape {t} must match input shape {i}")
        raise ShapeError(f"{name}: {detail}")


def _check_weight_dtype(name: str, input, weight) -> None:
    if weight is not None and weight.dtype != input.dtype:
        raise DTypeError(f"{name}: expected scalar type {input.dtype.name} but found "
                         f"{weight.dtype.name} (weight)")


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    _check_weight_dtype("nll_loss", input, weight)
    if "nll_loss" in OPS:
        return OPS["nll_loss"](input, target, weight, ignore_index=ignore_index,
                               reduction=reduction)
    class_dim = 1 if input.ndim > 1 else 0
    num_classes = input.shape[class_dim]
    expected = list(input.shape[:class_dim]) + list(input.shape[class_dim + 1:])
    if list(target.shape) != expected:
        raise ShapeError(f"nll_loss: expected target of shape {expected} for input of shape "
                         f"{list(input.shape)}, got {list(target.shape)}")
    from .functional import one_hot
    valid = target != ignore_index
    safe = _where(valid, target, 0)
    onehot = one_hot(safe, num_classes).to(input.dtype)           # target.shape + [C]
    w = onehot if weight is None else onehot * weight
    w_t = w.sum([-1]) * valid.to(input.dtype)                       # weight[target], masked
    if class_dim == 1 and input.ndim > 2:
        onehot = onehot.permute([0, onehot.ndim - 1] + list(range(1, onehot.ndim - 1)))
    picked = (input * onehot).sum([class_dim])
    loss = -picked * w_t
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / w_t.sum()


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100,
                  reduce=None, reduction="mean", label_smoothing=0.0):
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    from ._functional_common import BadArgument
    if not 0.0 <= label_smoothing <= 1.0:      # PyTorch raises RuntimeError here
        raise BadArgument(f"cross_entropy: label_smoothing must be between 0.0 and 1.0. "
                          f"Got: {label_smoothing}")
    if target.dtype.is_floating_point and ignore_index != -100:
        raise BadArgument("cross_entropy: ignore_index is not supported for floating point "
                          "target (class probabilities)")
    _check_weight_dtype("cross_entropy", input, weight)
    if list(target.shape) == list(input.shape) and not target.dtype.is_floating_point:
        # a target of the input's shape holds class probabilities (PyTorch's rule)
        raise BadArgument(f"cross_entropy: Expected floating point type for target with class "
                          f"probabilities, got {target.dtype.name}")
    if "cross_entropy" in OPS:
        return OPS["cross_entropy"](input, target, weight, ignore_index=ignore_index,
                                    reduction=reduction, label_smoothing=label_smoothing)
    from .functional import log_softmax
    class_dim = 1 if input.ndim > 1 else 0
    num_classes = input.shape[class_dim]
    logp = log_softmax(input, class_dim)
    wshape = [1] * input.ndim
    wshape[class_dim] = num_classes
    if target.dtype.is_floating_point:
        _check_same_shape("cross_entropy", input, target)
        if label_smoothing > 0:
            target = target * (1 - label_smoothing) + label_smoothing / num_classes
        term = logp * target
        if weight is not None:
            term = term * weight.reshape(wshape)
        loss = -term.sum([class_dim])
        if reduction == "mean":
            return loss.sum() / (input.numel() // num_classes)
        return _reduce(loss, reduction)
    nll = nll_loss(logp, target, weight, ignore_index=ignore_index, reduction=reduction)
    if label_smoothing == 0:
        return nll
    valid = (target != ignore_index).to(input.dtype)
    term = logp if weight is None else logp * weight.reshape(wshape)
    smooth = -term.sum([class_dim]) * valid
    if reduction == "none":
        smooth_red = smooth
    elif reduction == "sum":
        smooth_red = smooth.sum()
    elif weight is None:
        smooth_red = smooth.sum() / valid.sum()
    else:
        from .functional import one_hot
        safe = _where(target != ignore_index, target, 0)
        w_t = (one_hot(safe, num_classes).to(input.dtype) * weight).sum([-1]) * valid
        smooth_red = smooth.sum() / w_t.sum()
    return nll * (1 - label_smoothing) + smooth_red * (label_smoothing / num_classes)


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if "mse_loss" in OPS and weight is None:
        return _call_op("mse_loss", reduction, input, target)
    diff = input - target
    loss = diff * diff
    return _reduce(loss if weight is None else loss * weight, reduction)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if "l1_loss" in OPS and weight is None:
        return _call_op("l1_loss", reduction, input, target)
    loss = (input - target).abs()
    return _reduce(loss if weight is None else loss * weight, reduction)


@autocast_as("smooth_l1_loss")
def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean",
                   beta=1.0):
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if beta < 0:
        raise ValueError("smooth_l1_loss does not support negative values for beta.")
    diff = (input - target).abs()
    if beta == 0:
        return _reduce(diff, reduction)
    loss = _where(diff < beta, diff * diff * (0.5 / beta), diff - 0.5 * beta)
    return _reduce(loss, reduction)


@autocast_as("huber_loss")
def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    if delta <= 0:
        from ._functional_common import BadArgument
        raise BadArgument("huber_loss does not support non-positive values for delta.")
    diff = (input - target).abs()
    loss = _where(diff < delta, diff * diff * 0.5, (diff - 0.5 * delta) * delta)
    return _reduce(loss if weight is None else loss * weight, reduction)


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction="mean"):
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_same_shape("binary_cross_entropy", input, target)
    if "binary_cross_entropy" in OPS:
        return _call_op("binary_cross_entropy", reduction, input, target, weight)
    # PyTorch clamps each log at -100 so that 0 * log(0) stays finite
    floor = OPS["full_like"](input, -100.0)
    log_x = OPS["maximum"](input.log(), floor)
    log_1mx = OPS["maximum"]((1 - input).log(), floor)
    loss = -(target * log_x + (1 - target) * log_1mx)
    return _reduce(loss if weight is None else loss * weight, reduction)


@autocast_as("binary_cross_entropy_with_logits")
def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None,
                                     reduce=None, reduction="mean", pos_weight=None):
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_same_shape("binary_cross_entropy_with_logits", input, target)
    # log(1 + exp(-|x|)) + max(-x, 0) is log(1 + exp(-x)) without overflow
    softplus_neg = ((-input.abs()).exp() + 1).log() + (-input).relu()
    if pos_weight is not None:
        log_weight = (pos_weight - 1) * target + 1
        loss = (1 - target) * input + log_weight * softplus_neg
    else:
        loss = (1 - target) * input + softplus_neg
    return _reduce(loss if weight is None else loss * weight, reduction)


@autocast_as("kl_div")
def kl_div(input, target, size_average=None, reduce=None, reduction="mean",
           log_target=False):
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if log_target:
        loss = target.exp() * (target - input)
    else:
        # PyTorch's pointwise form: 0 where target is 0, NaN where it is negative, and
        # d/d input = -target everywhere
        loss = target.xlogy(target) - target * input
    if reduction == "batchmean":
        return loss.sum() / input.shape[0] if input.ndim else loss.sum()
    return _reduce(loss, reduction)
