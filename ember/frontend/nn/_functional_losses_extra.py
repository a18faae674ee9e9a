"""The rest of torch.nn.functional's losses, as composites of ember ops.

margin_ranking_loss, hinge_embedding_loss, soft_margin_loss, multilabel_soft_margin_loss,
multi_margin_loss, multilabel_margin_loss, triplet_margin_loss,
triplet_margin_with_distance_loss, cosine_embedding_loss, gaussian_nll_loss and
poisson_nll_loss follow PyTorch's formulas term by term (where eps enters, which
entries a target value selects, what 'mean' divides by), so values and gradients agree
with PyTorch's and autograd, tracing and compile come from the primitives. ctc_loss
calls the registry op `ctc_loss` (ember/ir/ops/loss_ctc.py), whose forward-backward
recursion is a NumPy kernel.
"""
from __future__ import annotations

import math

from ...ir import dtypes
from ...ir.autocast import autocast_as
from ...ir.registry import OPS
from ..tensor import Tensor
from ._functional_common import cast, BadArgument, check_broadcast, check_reduction, reduce_loss
from ._functional_losses import _legacy_reduction
from ._functional_norms import pairwise_distance


def _w(cond, a, b):
    return OPS["where"](cond, a, b)


def _zeros(x):
    return OPS["zeros_like"](x)


@autocast_as("margin_ranking_loss")
def margin_ranking_loss(input1, input2, target, margin: float = 0, size_average=None,
                        reduce=None, reduction: str = "mean") -> Tensor:
    """max(0, -target * (input1 - input2) + margin)."""
    if not input1.ndim == input2.ndim == target.ndim:
        raise BadArgument(f"margin_ranking_loss : All input tensors should have same "
                          f"dimension but got sizes: input1: {list(input1.shape)}, input2: "
                          f"{list(input2.shape)}, target: {list(target.shape)} ")
    return reduce_loss(margin_ranking_terms(input1, input2, target, margin), reduction,
                       size_average, reduce)


def margin_ranking_terms(input1, input2, target, margin) -> Tensor:
    """The unreduced margin ranking loss, broadcasting its three inputs (torch's aten op
    has no same-dimension check; only F's has)."""
    # margin is a double in PyTorch's signature: integer inputs give a float loss
    return (-target * (input1 - input2) + float(margin)).clamp_min(0)


@autocast_as("hinge_embedding_loss")
def hinge_embedding_loss(input, target, margin: float = 1.0, size_average=None, reduce=None,
                         reduction: str = "mean") -> Tensor:
    """input where target is 1, max(0, margin - input) where target is -1 (a target that
    is neither takes both terms, as PyTorch's kernel does)."""
    beyond_margin = (margin - input).clamp_min(0)
    margin_term = _w(target != 1, beyond_margin, _zeros(beyond_margin))
    self_term = _w(target != -1, input, _zeros(input))
    return reduce_loss(margin_term + self_term, reduction, size_average, reduce)


@autocast_as("soft_margin_loss")
def soft_margin_loss(input, target, size_average=None, reduce=None,
                     reduction: str = "mean") -> Tensor:
    """log(1 + exp(-target * input)), averaged over every element for 'mean'."""
    check_reduction(_legacy_reduction(size_average, reduce, reduction))
    check_broadcast(input, target)
    loss = (-target * input).exp().log1p()
    return reduce_loss(loss, reduction, size_average, reduce)


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction: str = "mean") -> Tensor:
    """Per-class logistic loss, averaged over the classes (the last dim) of each sample."""
    logsigmoid = OPS["log_sigmoid"]
    loss = -(target * logsigmoid(input) + (1 - target) * logsigmoid(-input))
    if weight is not None:
        loss = loss * weight
    classes = input.shape[-1] if input.ndim else 1
    loss = (loss.sum([-1]) if input.ndim else loss) / classes
    return reduce_loss(loss, reduction, size_average, reduce)


def _check_margin_input(name, input):
    nonempty = (input.ndim <= 1 and input.numel() > 0) or (input.ndim == 2 and input.shape[1])
    if not nonempty:
        raise BadArgument(f"{name}: Expected non-empty vector or matrix with optional 0-dim "
                          f"batch size, but got: {list(input.shape)}")


def _check_index_target(target):
    if target.dtype not in (dtypes.int64,):
        raise BadArgument(f"expected scalar type Long but found "
                          f"{_scalar_type_name(target.dtype)}")


def _scalar_type_name(dtype) -> str:
    return getattr(dtype, "scalar_type_name", dtype.name)


@autocast_as("multi_margin_loss")
def multi_margin_loss(input, target, p: int = 1, margin: float = 1.0, weight=None,
                      size_average=None, reduce=None, reduction: str = "mean") -> Tensor:
    """sum over i != y of max(0, margin - x[y] + x[i])^p * weight[y], divided by C."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    check_reduction(reduction)
    if p not in (1, 2):
        raise ValueError("only p == 1 and p == 2 supported")
    if weight is not None and weight.ndim != 1:
        raise ValueError("weight must be one-dimensional")
    _check_margin_input("multi_margin_loss", input)
    batched = input.ndim == 2
    samples = input.shape[0] if batched else 1
    if target.ndim > 1 or target.numel() != samples:
        raise BadArgument(f"multi_margin_loss: target tensor should be 1-D with size equal to "
                          f"the number of input samples (batch size). Expected target size "
                          f"[{samples}], but got {list(target.shape)}. Input has shape "
                          f"{list(input.shape)}.")
    _check_index_target(target)
    x = input if batched else input.reshape([1, -1])
    classes = x.shape[1]
    if weight is not None and weight.numel() != classes:
        raise BadArgument(f"inconsistent weight size, expected {classes} but got "
                          f"{list(weight.shape)}")
    y = target.reshape([-1, 1])
    picked = x.gather(1, y)                                          # [N, 1]
    hinge = (margin - picked + x).clamp_min(0)
    if p == 2:
        hinge = hinge * hinge
    if weight is not None:
        hinge = hinge * weight.gather(0, y.reshape([-1])).unsqueeze(1)
    not_target = OPS["arange"](0, classes, dtype=y.dtype, device=y.device).unsqueeze(0) != y
    loss = _w(not_target, hinge, _zeros(hinge)).sum([1]) / classes
    if not batched:
        loss = loss.reshape(list(target.shape))
    return reduce_loss(loss, reduction)


@autocast_as("multilabel_margin_loss")
def multilabel_margin_loss(input, target, size_average=None, reduce=None,
                           reduction: str = "mean") -> Tensor:
    """For each target class j (the entries of `target` before the first -1) and each
    non-target class i: max(0, 1 - (x[j] - x[i])), summed and divided by C."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    check_reduction(reduction)
    _check_margin_input("multilabel_margin_loss", input)
    if input.ndim > 2 or list(target.shape) != list(input.shape):
        raise BadArgument(f"inconsistent target size: {list(target.shape)} for input of "
                          f"size: {list(input.shape)}")
    _check_index_target(target)
    batched = input.ndim == 2
    x = input if batched else input.reshape([1, -1])
    t = target.reshape(list(x.shape))
    classes = x.shape[1]
    # targets count up to the first negative entry
    valid = cast(t >= 0, dtypes.int64).cumprod(1) > 0                # [N, J]
    safe = _w(valid, t, _zeros(t))
    class_ids = OPS["arange"](0, classes, dtype=t.dtype)
    hits = OPS["logical_and"](safe.unsqueeze(2) == class_ids, valid.unsqueeze(2))  # [N,J,C]
    is_target = cast(hits, dtypes.int64).sum([1]) > 0                  # [N, C]
    picked = x.gather(1, safe)                                       # [N, J]
    hinge = (1 - picked.unsqueeze(2) + x.unsqueeze(1)).clamp_min(0)  # [N, J, C]
    counted = OPS["logical_and"](valid.unsqueeze(2), OPS["logical_not"](is_target).unsqueeze(1))
    loss = _w(counted, hinge, _zeros(hinge)).sum([1, 2]) / classes
    if not batched:
        loss = loss.reshape([])
    return reduce_loss(loss, reduction)


def _check_triplet_dims(anchor, positive, negative):
    if not anchor.ndim == positive.ndim == negative.ndim:
        raise BadArgument(f"The anchor, positive, and negative tensors are expected to have "
                          f"the same number of dimensions, but got: anchor {anchor.ndim}D, "
                          f"positive {positive.ndim}D, and negative {negative.ndim}D inputs")


@autocast_as("triplet_margin_loss")
def triplet_margin_loss(anchor, positive, negative, margin: float = 1.0, p: float = 2,
                        eps: float = 1e-6, swap: bool = False, size_average=None,
                        reduce=None, reduction: str = "mean") -> Tensor:
    if margin <= 0:
        raise ValueError(f"margin must be greater than 0, got {margin}")
    return triplet_margin_terms(anchor, positive, negative, margin, p, eps, swap,
                                _legacy_reduction(size_average, reduce, reduction))


def triplet_margin_terms(anchor, positive, negative, margin, p, eps, swap, reduction):
    """The triplet margin loss without F's margin > 0 check (torch's aten op has none)."""
    _check_triplet_dims(anchor, positive, negative)

    def distance(a, b):
        return pairwise_distance(a, b, p, eps)
    return _triplet(anchor, positive, negative, distance, margin, swap, reduction)


def triplet_margin_with_distance_loss(anchor, positive, negative, *, distance_function=None,
                                      margin: float = 1.0, swap: bool = False,
                                      reduction: str = "mean") -> Tensor:
    if margin <= 0:
        raise ValueError(f"TripletMarginWithDistanceLoss: expected margin to be greater "
                         f"than 0, got {margin} instead")
    _check_triplet_dims(anchor, positive, negative)
    return _triplet(anchor, positive, negative, distance_function or pairwise_distance,
                    margin, swap, reduction)


def _triplet(anchor, positive, negative, distance, margin, swap, reduction):
    """max(0, margin + d(a, p) - d(a, n)); with swap, d(a, n) is min(d(a, n), d(p, n))."""
    check_reduction(reduction)
    check_broadcast(anchor, positive, negative)
    to_positive = distance(anchor, positive)
    to_negative = distance(anchor, negative)
    if swap:
        to_negative = OPS["minimum"](to_negative, distance(positive, negative))
    loss = (margin + to_positive - to_negative).clamp_min(0)
    return reduce_loss(loss, reduction)


COSINE_EPS = 1e-12     # added to each squared norm, as PyTorch's kernel does


@autocast_as("cosine_embedding_loss")
def cosine_embedding_loss(input1, input2, target, margin: float = 0, size_average=None,
                          reduce=None, reduction: str = "mean") -> Tensor:
    """1 - cos(x1, x2) where target is 1, max(0, cos(x1, x2) - margin) where it is -1."""
    if list(input1.shape) != list(input2.shape):
        raise BadArgument(f"cosine_embedding_loss: Input1 and Input2 must have the same "
                          f"dimensions, but got {list(input1.shape)} and "
                          f"{list(input2.shape)}")
    if target.ndim > 1:
        raise BadArgument("1D target tensor expected, multi-target not supported")
    if input1.ndim != target.ndim + 1:
        which = "0D target tensor expects 1D" if target.ndim == 0 else \
            "1D target tensor expects 2D"
        raise BadArgument(f"{which} input tensors, but found inputs with sizes "
                          f"{list(input1.shape)} and {list(input2.shape)}.")
    dim = input1.ndim - 1
    if not input1.dtype.is_floating_point:
        input1 = cast(input1, dtypes.get_default_dtype())
        input2 = cast(input2, dtypes.get_default_dtype())
    dot = (input1 * input2).sum([dim])
    square1 = (input1 * input1).sum([dim]) + COSINE_EPS
    square2 = (input2 * input2).sum([dim]) + COSINE_EPS
    cos = dot / (square1 * square2).sqrt()
    positive = _w(target == 1, 1 - cos, _zeros(cos))
    negative = _w(target == -1, (cos - margin).clamp_min(0), _zeros(cos))
    return reduce_loss(positive + negative, reduction, size_average, reduce)


def gaussian_nll_loss(input, target, var, full: bool = False, eps: float = 1e-6,
                      reduction: str = "mean") -> Tensor:
    """0.5 * (log(var) + (input - target)^2 / var) (+ 0.5*log(2*pi) when full). var is
    clamped to eps for the value only: its gradient passes as if unclamped, as in
    PyTorch (which clamps a clone under no_grad)."""
    if not isinstance(var, (Tensor,)) and not hasattr(var, "shape"):
        var = OPS["full_like"](input, float(var))
    if list(var.shape) != list(input.shape):
        if list(input.shape[:-1]) == list(var.shape):
            var = var.unsqueeze(-1)                     # one variance per sample
        elif not (var.ndim == input.ndim and sum(
                v for i, v in zip(input.shape, var.shape) if i != v) == 1):
            # PyTorch's homoscedastic rule: one dimension of var is 1 where input's is not
            # ((4, 1, 32, 32) against (4, 3, 32, 32)), every other size equal
            raise ValueError("var is of incorrect size")
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(reduction + " is not valid")
    if isinstance(var, Tensor) and bool((var < 0).any()):
        raise ValueError("var has negative entry/entries")
    check_broadcast(input, target, var)
    var = var + (var.clamp_min(eps) - var).detach()
    diff = input - target
    loss = 0.5 * (var.log() + diff * diff / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return reduce_loss(loss, reduction)


@autocast_as("poisson_nll_loss")
def poisson_nll_loss(input, target, log_input: bool = True, full: bool = False,
                     size_average=None, eps: float = 1e-8, reduce=None,
                     reduction: str = "mean") -> Tensor:
    """exp(input) - target * input (log_input) or input - target * log(input + eps); with
    full, Stirling's term target*log(target) - target + 0.5*log(2*pi*target) where
    target > 1."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    check_reduction(reduction)
    check_broadcast(input, target)
    if log_input:
        loss = input.exp() - target * input
    else:
        loss = input - target * (input + eps).log()
    if full:
        safe = _w(target > 1, target, OPS["ones_like"](target))
        stirling = safe * safe.log() - safe + 0.5 * (2 * math.pi * safe).log()
        loss = loss + _w(target > 1, stirling, _zeros(stirling))
    return reduce_loss(loss, reduction)


def _length_list(lengths, name) -> list[int]:
    if isinstance(lengths, Tensor):
        return [int(v) for v in lengths.reshape([-1]).tolist()]
    if hasattr(lengths, "shape"):
        raise BadArgument(f"ctc_loss: {name} must be concrete (a list or an eager tensor) "
                          f"when tracing")
    if isinstance(lengths, int):
        return [lengths]
    return [int(v) for v in lengths]


def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank: int = 0,
             reduction: str = "mean", zero_infinity: bool = False) -> Tensor:
    """Connectionist Temporal Classification loss; see ember/ir/ops/loss_ctc.py."""
    return OPS["ctc_loss"](log_probs, targets, _length_list(input_lengths, "input_lengths"),
                           _length_list(target_lengths, "target_lengths"), blank,
                           reduction, zero_infinity)


__all__ = ["ctc_loss", "margin_ranking_loss", "hinge_embedding_loss", "soft_margin_loss",
           "multilabel_soft_margin_loss", "multi_margin_loss", "multilabel_margin_loss",
           "triplet_margin_loss", "triplet_margin_with_distance_loss", "cosine_embedding_loss",
           "gaussian_nll_loss", "poisson_nll_loss"]
