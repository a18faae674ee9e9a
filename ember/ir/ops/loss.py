"""Loss functions with torch.nn.functional's names, arguments and reductions.

`reduction` is 'none' | 'mean' | 'sum'. Weighted class losses (cross_entropy,
nll_loss) divide a 'mean' by the summed weights of the non-ignored targets, as
PyTorch does; cross_entropy with probability targets divides by the number of
batch elements. Derivatives are explicit ember-op expressions (one-hot targets via
`eq(target.unsqueeze(class_dim), arange)`), including gradients for `weight` and
`pos_weight`, which PyTorch refuses to compute (ember's are checked against finite
differences in tests/ops/test_nn_ops_extra.py; table samples that pass a weight
check values only).
"""
from __future__ import annotations

import numpy as np

from .. import dtypes
from ..errors import DTypeError, EmberIndexError, ShapeError
from ..meta import TensorMeta
from ..registry import Tag, defop
from . import samples as S
from .normalization import log_softmax, np_log_softmax, up
from .rules import broadcast_shapes, np_inexact

NN = "nn.functional"
REDUCTIONS = ("none", "mean", "sum")


def _check_reduction(reduction):
    if reduction not in REDUCTIONS:
        raise ShapeError(f"{reduction} is not a valid value for reduction")


def _reduce_np(loss, reduction):
    if reduction == "mean":
        return np.mean(loss) if loss.size else np.asarray(np.nan, loss.dtype)
    if reduction == "sum":
        return np.sum(loss)
    return loss


def _loss_meta(shape, dtype, device, reduction):
    _check_reduction(reduction)
    return TensorMeta(shape if reduction == "none" else (), dtype, device)


def _grad_of_reduced(g, shape, reduction, count=None):
    """The gradient of each unreduced loss element."""
    if reduction == "none":
        return g
    g = SH.expand(g, list(shape))
    if reduction == "mean":
        return g / (count if count is not None else max(int(np.prod(shape)), 1))
    return g


def _float(x):
    if not x.dtype.is_floating_point:
        raise DTypeError(f"expected a floating point input, got {x.dtype.name}")


# --- pointwise regression losses -----------------------------------------------------

def _pair_meta(input, target, reduction="mean", *_):
    _float(input)
    shape = broadcast_shapes(tuple(input.shape), tuple(target.shape))
    dt = dtypes.promote_types(input.dtype, target.dtype)
    return _loss_meta(shape, dt, str(input.device), reduction)


def _l1_meta(input, target, reduction="mean"):
    """l1_loss also takes complex input and returns |input - target|, real (PyTorch)."""
    dt = dtypes.promote_types(input.dtype, target.dtype)
    if not dt.is_complex:
        return _pair_meta(input, target, reduction)
    shape = broadcast_shapes(tuple(input.shape), tuple(target.shape))
    dt = dt.to_real()
    return _loss_meta(shape, dt, str(input.device), reduction)


def pair_loss(name, elementwise, grad_diff, extra="", torch_name=None, samples_extra=(),
              meta=_pair_meta, symbolic=None):
    """A loss of d = input - target, elementwise, then reduced. `grad_diff(g, d, *extra)`;
    `symbolic(d, *extra)`: the elementwise loss in ember ops (the decomposition that lets
    a compiled graph compute it in generated kernels)."""
    schema = (f"{name}(Tensor input, Tensor target, str reduction='mean'{extra}) -> Tensor")

    def ref(x, t, reduction, *params):
        x, t = up(x), up(t)
        dt = np.result_type(x, t)
        return _reduce_np(elementwise(x.astype(dt) - t.astype(dt), *params), reduction)

    def derivative(g, input, target, reduction, **params):
        d = input - target
        gd = grad_diff(_grad_of_reduced(g, tuple(d.shape), reduction), d, *params.values())
        return gd, -gd

    def samples(rng):
        out = [S.Sample((S.randn(rng, 3, 4), S.randn(rng, 3, 4))),
               S.Sample((S.randn(rng, 5), S.randn(rng, 5)), {"reduction": "sum"}),
               S.Sample((S.randn(rng, 2, 3), S.randn(rng, 2, 3)), {"reduction": "none"}),
               S.Sample((S.randn(rng), S.randn(rng)))]
        return out + [S.Sample((S.randn(rng, 4, 3) * 2, S.randn(rng, 4, 3)), kw)
                      for kw in samples_extra]

    def decomposition(input, target, reduction="mean", *params):
        half = input.dtype.itemsize < 4 or target.dtype.itemsize < 4
        x, t = input, target
        if half:        # computed in float32, as the reference does
            x, t = (PW.convert_element_type(v, dtypes.float32) for v in (x, t))
        loss = symbolic(x - t, *params)
        if reduction == "mean":
            loss = R.mean(loss) if int(np.prod(loss.shape)) else R.sum(loss) / 0.0
        elif reduction == "sum":
            loss = R.sum(loss)
        if half:
            loss = PW.convert_element_type(loss, dtypes.promote_types(input.dtype,
                                                                      target.dtype))
        return loss

    extra_fields = {} if symbolic is None else {"decomposition": decomposition,
                                                "tags": {Tag.COMPOSITE}}
    return defop(schema, meta=meta, reference=ref, derivative=derivative,
                 samples=samples, torch_ref=f"torch.nn.functional.{torch_name or name}",
                 namespace=NN, **extra_fields)


mse_loss = pair_loss("mse_loss", lambda d: d * d, lambda g, d: 2 * g * d,
                     symbolic=lambda d: d * d)
l1_loss = pair_loss("l1_loss", np.abs, lambda g, d: g * PW.sgn(d), meta=_l1_meta,
                    symbolic=lambda d: PW.abs(d))
smooth_l1_loss = pair_loss(
    "smooth_l1_loss",
    lambda d, beta: np.abs(d) if beta == 0 else
    np.where(np.abs(d) < beta, 0.5 * d * d / (beta or 1), np.abs(d) - 0.5 * beta),
    lambda g, d, beta: g * PW.sgn(d) if beta == 0 else
    g * PW.where(PW.abs(d) < beta, d / beta, PW.sgn(d)),
    extra=", float beta=1.0", samples_extra=({"beta": 0.5}, {"beta": 0.0, "reduction": "sum"}),
    symbolic=lambda d, beta: PW.abs(d) if beta == 0 else
    PW.where(PW.abs(d) < beta, 0.5 * d * d / beta, PW.abs(d) - 0.5 * beta))
huber_loss = pair_loss(
    "huber_loss",
    lambda d, delta: np.where(np.abs(d) < delta, 0.5 * d * d, delta * (np.abs(d) - 0.5 * delta)),
    lambda g, d, delta: g * PW.where(PW.abs(d) < delta, d, PW.sgn(d) * delta),
    extra=", float delta=1.0", samples_extra=({"delta": 0.5}, {"delta": 2.0, "reduction": "none"}),
    symbolic=lambda d, delta: PW.where(PW.abs(d) < delta, 0.5 * d * d,
                                       delta * (PW.abs(d) - 0.5 * delta)))


# --- class losses: nll_loss, cross_entropy -------------------------------------------

def _class_dim(input):
    return 1 if input.ndim >= 2 else 0


def _check_class_target(input, target, weight, name):
    _float(input)
    if input.ndim == 0:
        raise ShapeError(f"{name}: input must have at least 1 dim (classes), got a 0-d tensor")
    cd = _class_dim(input)
    c = input.shape[cd]
    if weight is not None and tuple(weight.shape) != (c,):
        raise ShapeError(f"weight tensor should be defined either for all {c} classes or no "
                         f"classes but got weight tensor of shape: {list(weight.shape)}")
    # PyTorch's wording for each mismatch (its tests match it), then ember's detail
    if target.dtype.is_floating_point:
        if tuple(target.shape) != tuple(input.shape):
            if target.ndim != input.ndim:       # read as class indices, as PyTorch does
                raise DTypeError(f"{name}: expected target dtype to be Long or Byte, got "
                                 f"{target.dtype.name} (probability targets take the "
                                 f"input's shape {list(input.shape)})")
            _check_batch(input, target, name)
            raise ShapeError(f"probability targets must have the input's shape "
                             f"{list(input.shape)}, got {list(target.shape)}")
        return True
    if target.dtype not in (dtypes.int64, dtypes.int32, dtypes.uint8, dtypes.int16,
                            dtypes.int8):
        raise DTypeError(f"expected class-index targets of an integer dtype, got "
                         f"{target.dtype.name}")
    expected = tuple(s for i, s in enumerate(input.shape) if i != cd)
    if tuple(target.shape) != expected:
        _check_batch(input, target, name)
        raise ShapeError(f"{name}: Expected target size {list(expected)}, got "
                         f"{list(target.shape)} (input of shape {list(input.shape)})")
    return False


def _check_batch(input, target, name):
    if input.ndim >= 2 and target.ndim >= 1 and target.shape[0] != input.shape[0]:
        raise ShapeError(f"{name}: Expected input batch_size ({input.shape[0]}) to match "
                         f"target batch_size ({target.shape[0]}).")


def _class_meta(name, probs_ok):
    def rule(input, target, weight=None, ignore_index=-100, reduction="mean",
             label_smoothing=0.0):
        probs = _check_class_target(input, target, weight, name)
        if probs and not probs_ok:
            raise DTypeError(f"{name} expects class-index targets of an integer dtype")
        shape = tuple(s for i, s in enumerate(input.shape) if i != _class_dim(input))
        return _loss_meta(shape, input.dtype, str(input.device), reduction)
    return rule


def _np_onehot(target, c, cd, ndim, dtype):
    classes = np.arange(c).reshape((c,) + (1,) * (ndim - cd - 1))
    return (np.expand_dims(target, cd) == classes).astype(dtype)


def _class_loss_ref(logits):
    def ref(x, target, weight, ignore_index, reduction, label_smoothing=0.0):
        x = up(x)
        cd = x.ndim and _class_dim(x)
        c = x.shape[cd]
        lsm = np_log_softmax(x, cd) if logits else x
        wb = np.ones(c, x.dtype) if weight is None else up(weight).astype(x.dtype)
        wb = wb.reshape((c,) + (1,) * (x.ndim - cd - 1))
        ls = label_smoothing
        if np_inexact(target.dtype):                      # probability targets
            t = up(target).astype(x.dtype)
            if ls > 0:
                t = t * (1 - ls) + ls / c
            loss = -np.sum(lsm * t * wb, axis=cd)
            if reduction == "mean":
                return np.sum(loss) / (x.size / c) if x.size else np.asarray(np.nan, x.dtype)
            return _reduce_np(loss, reduction)
        _check_targets_in_range(target, ignore_index, c)
        if weight is None and ls == 0 and reduction in ("mean", "sum"):
            picked = _picked_log_probs(lsm, target, ignore_index, c, cd)
            if picked is not None:          # (None: a target out of range)
                return _picked_loss(picked, reduction)
        oh = _np_onehot(target, c, cd, x.ndim, x.dtype)
        mask = (target != ignore_index).astype(x.dtype)
        coeff = np.expand_dims(mask, cd) * wb * ((1 - ls) * oh + ls / c)
        loss = -np.sum(coeff * lsm, axis=cd)
        if reduction == "mean":
            denom = np.sum(mask * np.sum(oh * wb, axis=cd))
            return np.sum(loss) / denom if denom != 0 or np.sum(loss) != 0 else \
                np.asarray(np.nan, x.dtype)
        return _reduce_np(loss, reduction)
    return ref


def _check_targets_in_range(target, ignore_index, c) -> None:
    """PyTorch's IndexError for a class index outside [0, C) (ignore_index aside): a
    silently dropped term would be a wrong loss."""
    bad = target[(target != ignore_index) & ((target < 0) | (target >= c))]
    if bad.size:
        raise EmberIndexError(f"Target {int(bad.flat[0])} is out of bounds.")


def _picked_log_probs(lsm, target, ignore_index, c, cd):
    """(lsm at each target, 0 where ignored; mask) without the one-hot product: the
    same sums, as every other class contributes an exact 0 to them."""
    valid = target != ignore_index
    safe = np.where(valid, target, 0)
    if safe.size and (safe.min() < 0 or safe.max() >= c):
        return None
    picked = np.squeeze(np.take_along_axis(lsm, np.expand_dims(safe, cd), axis=cd), cd)
    mask = valid.astype(lsm.dtype)
    return picked * mask, mask


def _picked_loss(picked, reduction):
    values, mask = picked
    loss = -values
    if reduction == "sum":
        return np.sum(loss)
    denom = np.sum(mask)
    return np.sum(loss) / denom if denom != 0 or np.sum(loss) != 0 else \
        np.asarray(np.nan, loss.dtype)


def _class_loss_derivative(logits):
    def derivative(g, input, target, weight, ignore_index, reduction, label_smoothing=0.0):
        cd = _class_dim(input)
        c = input.shape[cd]
        lsm = log_softmax(input, cd) if logits else input
        rest = [i for i in range(input.ndim) if i != cd]
        wb = None if weight is None else SH.reshape(weight, [c] + [1] * (input.ndim - cd - 1))
        ls = label_smoothing
        if target.dtype.is_floating_point:
            t = target * (1 - ls) + ls / c if ls > 0 else target
            count = max(int(np.prod(input.shape)) // c, 1)
            gl = SH.unsqueeze(_grad_of_reduced(g, tuple(target.shape[:cd] + target.shape[cd + 1:]),
                                               reduction, count), cd)
            tw = t * wb if wb is not None else t
            dlsm = -gl * tw
            lw = lsm * wb if wb is not None else lsm
            gt = -gl * lw * (1 - ls)
            gw = _sum_over(-gl * lsm * t, rest) if wb is not None else None
            return _through_log_softmax(dlsm, lsm, cd, logits), gt, gw
        classes = SH.reshape(CR.arange(0, c, dtype=target.dtype),
                             [c] + [1] * (input.ndim - cd - 1))
        oh = PW.convert_element_type(PW.eq(SH.unsqueeze(target, cd), classes), input.dtype)
        mask = SH.unsqueeze(PW.convert_element_type(PW.ne(target, ignore_index), input.dtype),
                            cd)
        pattern = oh * (1 - ls) + ls / c if ls > 0 else oh
        coeff = mask * wb * pattern if wb is not None else mask * pattern
        shape = tuple(target.shape)
        if reduction == "mean":
            moh = mask * oh
            denom = R.sum(moh * wb) if wb is not None else R.sum(moh)
            # every target ignored (denom 0): the loss is NaN but, as in PyTorch, the
            # gradient is 0 (each coefficient is 0), not 0/0
            safe = PW.where(PW.eq(denom, 0), PW.convert_element_type(
                PW.eq(denom, denom), denom.dtype), denom)
            gl = SH.unsqueeze(SH.expand(g, list(shape)), cd) / safe
        else:
            gl = SH.unsqueeze(_grad_of_reduced(g, shape, reduction), cd)
        dlsm = -gl * coeff
        gw = None
        if wb is not None:
            gw = _sum_over(-gl * mask * pattern * lsm, rest)
            if reduction == "mean":     # the denominator depends on the weights too
                loss = R.sum(-(coeff * lsm))
                gw = gw - g * loss / (denom * denom) * _sum_over(mask * oh, rest)
        return _through_log_softmax(dlsm, lsm, cd, logits), None, gw
    return derivative


def _sum_over(x, dims):
    """Sum over `dims`; none for an unbatched input (R.sum reads [] as every dim)."""
    return R.sum(x, dims) if dims else x


def _through_log_softmax(dlsm, lsm, cd, logits):
    if not logits:
        return dlsm
    return dlsm - PW.exp(lsm) * R.sum(dlsm, [cd], True)


def _class_samples(probs: bool, smoothing: bool):
    def gen(rng):
        tgt = lambda *shape, c: np.asarray(rng.integers(0, c, size=shape))  # noqa: E731
        ignore = tgt(6, c=4)
        ignore[1] = -100
        out = [
            S.Sample((S.randn(rng, 5, 4), tgt(5, c=4))),
            S.Sample((S.randn(rng, 4), tgt(c=4))),
            S.Sample((S.randn(rng, 2, 3, 4), tgt(2, 4, c=3)), {"reduction": "sum"}),
            S.Sample((S.randn(rng, 6, 4), ignore), {"reduction": "none"}),
            S.Sample((S.randn(rng, 6, 4), ignore)),
            S.Sample((S.randn(rng, 3, 5), tgt(3, c=5)), {"ignore_index": 2}),
            S.Sample((S.randn(rng, 5, 4), tgt(5, c=4), S.positive(rng, 4)), grad=False,
                     note="PyTorch refuses grads for weight"),
            S.Sample((S.randn(rng, 6, 4), ignore, S.positive(rng, 4)),
                     {"reduction": "none"}, grad=False, note="PyTorch refuses grads for weight"),
        ]
        if smoothing:
            out += [
                S.Sample((S.randn(rng, 6, 4), ignore), {"label_smoothing": 0.2}),
                S.Sample((S.randn(rng, 2, 3, 2), tgt(2, 2, c=3)),
                         {"label_smoothing": 0.1, "reduction": "none"}),
                S.Sample((S.randn(rng, 6, 4), ignore, S.positive(rng, 4)),
                         {"label_smoothing": 0.3}, grad=False,
                         note="PyTorch refuses grads for weight"),
            ]
        if probs:
            p = lambda *s: np.asarray(rng.dirichlet(np.ones(s[-1]), size=s[:-1]),  # noqa: E731
                                      np.float32)
            out += [
                S.Sample((S.randn(rng, 5, 4), p(5, 4))),
                S.Sample((S.randn(rng, 4), p(4)), {"reduction": "sum"}),
                S.Sample((S.randn(rng, 3, 4), p(3, 4), S.positive(rng, 4)),
                         {"label_smoothing": 0.2, "reduction": "none"}),
                S.Sample((S.randn(rng, 2, 3, 2), np.moveaxis(p(2, 2, 3), -1, 1).copy()),
                         {"label_smoothing": 0.1}),
            ]
        return out
    return gen


def _class_loss_decomposition(logits):
    """The loss in primitives, so a compiled graph computes it in generated kernels
    (log_softmax's, then one masked reduction) instead of calling the reference. Class
    indices pick with `where(target == class, log-probs, 0)`, never a one-hot product:
    a -inf log-probability of a class not picked (a masked logit) must not turn into
    NaN. Half inputs are computed in float32, as the reference does."""
    def decomposition(input, target, weight=None, ignore_index=-100, reduction="mean",
                      label_smoothing=0.0):
        half = input.dtype.itemsize < 4
        x = PW.convert_element_type(input, dtypes.float32) if half else input
        cd = _class_dim(x)
        c = x.shape[cd]
        lsm = log_softmax(x, cd) if logits else x
        trailing = [1] * (x.ndim - cd - 1)
        wb = None if weight is None else \
            SH.reshape(PW.convert_element_type(weight, x.dtype), [c] + trailing)
        weighted = lsm * wb if wb is not None else lsm
        ls = label_smoothing
        if target.dtype.is_floating_point:          # probability targets
            t = PW.convert_element_type(target, x.dtype)
            t = t * (1 - ls) + ls / c if ls > 0 else t
            loss = -R.sum(weighted * t, [cd])
            if reduction == "mean":
                loss = R.sum(loss) / max(int(np.prod(x.shape)) // max(c, 1), 1) \
                    if int(np.prod(x.shape)) else R.sum(loss) / 0.0
        else:
            valid = SH.unsqueeze(PW.ne(target, ignore_index), cd)
            # int64 classes: a uint8 target's own dtype would wrap past 255 classes
            classes = SH.reshape(CR.arange(0, c, dtype=dtypes.int64), [c] + trailing)
            picked = PW.logical_and(PW.eq(SH.unsqueeze(target, cd), classes), valid)
            loss = -R.sum(PW.where(picked, weighted, 0), [cd])
            if ls > 0:
                spread = -R.sum(PW.where(valid, weighted, 0), [cd])
                loss = loss * (1 - ls) + spread * (ls / c)
            if reduction == "mean":
                counted = PW.where(picked, wb, 0) if wb is not None else \
                    PW.convert_element_type(picked, x.dtype)
                loss = R.sum(loss) / R.sum(counted)
        if reduction == "sum":
            loss = R.sum(loss)
        return PW.convert_element_type(loss, input.dtype) if half else loss
    return decomposition


nll_loss = defop(
    "nll_loss(Tensor input, Tensor target, Tensor? weight=None, *, int ignore_index=-100, "
    "str reduction='mean') -> Tensor",
    meta=_class_meta("nll_loss", False), reference=_class_loss_ref(False),
    derivative=_class_loss_derivative(False),
    samples=_class_samples(False, False), torch_ref="torch.nn.functional.nll_loss",
    namespace=NN, tags={Tag.COMPOSITE}, decomposition=_class_loss_decomposition(False),
)

cross_entropy = defop(
    "cross_entropy(Tensor input, Tensor target, Tensor? weight=None, *, int ignore_index=-100,"
    " str reduction='mean', float label_smoothing=0.0) -> Tensor",
    meta=_class_meta("cross_entropy", True), reference=_class_loss_ref(True),
    derivative=_class_loss_derivative(True),
    samples=_class_samples(True, True), torch_ref="torch.nn.functional.cross_entropy",
    namespace=NN, tags={Tag.COMPOSITE}, decomposition=_class_loss_decomposition(True),
)


# --- binary cross entropy ------------------------------------------------------------

def _bce_meta(input, target, weight=None, reduction="mean", pos_weight=None):
    _float(input)
    if tuple(target.shape) != tuple(input.shape):
        raise ShapeError(f"Using a target size ({list(target.shape)}) that is different to "
                         f"the input size ({list(input.shape)}) is deprecated. Please ensure "
                         f"they have the same size.")
    for t in (weight, pos_weight):
        if t is not None:
            broadcast_shapes(tuple(t.shape), tuple(input.shape))
    return _loss_meta(tuple(input.shape), input.dtype, str(input.device), reduction)


def _bce_ref(x, t, weight, reduction):
    x, t = up(x), up(t).astype(up(x).dtype)
    with np.errstate(divide="ignore"):
        loss = -(t * np.maximum(np.log(x), -100) + (1 - t) * np.maximum(np.log1p(-x), -100))
    if weight is not None:
        loss = loss * up(weight)
    return _reduce_np(loss, reduction)


def _bce_derivative(g, input, target, weight, reduction):
    gl = _grad_of_reduced(g, tuple(input.shape), reduction)
    gw = gl * weight if weight is not None else gl
    gx = gw * (input - target) / PW.maximum((1 - input) * input,
                                            CR.full_like(input, 1e-12))
    log_x = PW.maximum(PW.log(input), CR.full_like(input, -100.0))
    log_1mx = PW.maximum(PW.log(1 - input), CR.full_like(input, -100.0))
    gt = gw * (log_1mx - log_x)
    gweight = None
    if weight is not None:
        gweight = -gl * (target * log_x + (1 - target) * log_1mx)
    return gx, gt, gweight


def _prob(rng, *shape):
    return np.asarray(rng.random(shape) * 0.9 + 0.05, np.float32)


binary_cross_entropy = defop(
    "binary_cross_entropy(Tensor input, Tensor target, Tensor? weight=None, "
    "str reduction='mean') -> Tensor",
    meta=lambda input, target, weight=None, reduction="mean": _bce_meta(input, target, weight,
                                                                        reduction),
    reference=_bce_ref, derivative=_bce_derivative,
    samples=lambda rng: [
        S.Sample((_prob(rng, 3, 4), _prob(rng, 3, 4))),
        S.Sample((_prob(rng, 5), _prob(rng, 5)), {"reduction": "sum"}),
        S.Sample((_prob(rng, 2, 3), (rng.random((2, 3)) > 0.5).astype(np.float32)),
                 {"reduction": "none"}),
        S.Sample((_prob(rng), _prob(rng))),
        S.Sample((_prob(rng, 3, 4), _prob(rng, 3, 4), S.positive(rng, 3, 4)), grad=False,
                 note="PyTorch refuses grads for weight"),
    ],
    torch_ref="torch.nn.functional.binary_cross_entropy", namespace=NN,
)


def _softplus_neg(x):
    """log(1 + exp(-x)), stable, in ember ops."""
    return PW.relu(-x) + PW.log(1 + PW.exp(-PW.abs(x)))


def _bce_logits_ref(x, t, weight, reduction, pos_weight):
    x, t = up(x), up(t).astype(up(x).dtype)
    sp = np.logaddexp(0, -x)                             # log(1 + exp(-x))
    if pos_weight is not None:
        loss = (1 - t) * x + ((up(pos_weight) - 1) * t + 1) * sp
    else:
        loss = (1 - t) * x + sp
    if weight is not None:
        loss = loss * up(weight)
    return _reduce_np(loss, reduction)


def _bce_logits_derivative(g, input, target, weight, reduction, pos_weight):
    shape = broadcast_shapes(*(tuple(v.shape) for v in (input, target, weight, pos_weight)
                               if v is not None))
    gl = _grad_of_reduced(g, shape, reduction)
    gw = gl * weight if weight is not None else gl
    sig = PW.sigmoid(input)
    sp = _softplus_neg(input)
    if pos_weight is not None:
        lw = (pos_weight - 1) * target + 1
        gx = gw * ((1 - target) - lw * (1 - sig))
        gt = gw * ((pos_weight - 1) * sp - input)
        gpw = gw * target * sp
        loss = (1 - target) * input + lw * sp
    else:
        gx = gw * (sig - target)
        gt = -gw * input
        gpw = None
        loss = (1 - target) * input + sp
    return gx, gt, (gl * loss if weight is not None else None), gpw


def _bce_logits_decomposition(input, target, weight=None, reduction="mean",
                              pos_weight=None):
    """The loss in primitives (generated kernels when compiled); half inputs in float32,
    as the reference computes them."""
    half = input.dtype.itemsize < 4
    x = PW.convert_element_type(input, dtypes.float32) if half else input
    t = PW.convert_element_type(target, x.dtype)
    sp = _softplus_neg(x)
    if pos_weight is not None:
        pw = PW.convert_element_type(pos_weight, x.dtype)
        loss = (1 - t) * x + ((pw - 1) * t + 1) * sp
    else:
        loss = (1 - t) * x + sp
    if weight is not None:
        loss = loss * PW.convert_element_type(weight, x.dtype)
    if reduction == "mean":
        loss = R.mean(loss) if int(np.prod(loss.shape)) else R.sum(loss) / 0.0
    elif reduction == "sum":
        loss = R.sum(loss)
    return PW.convert_element_type(loss, input.dtype) if half else loss


binary_cross_entropy_with_logits = defop(
    "binary_cross_entropy_with_logits(Tensor input, Tensor target, Tensor? weight=None, "
    "str reduction='mean', Tensor? pos_weight=None) -> Tensor",
    meta=_bce_meta, reference=_bce_logits_ref, derivative=_bce_logits_derivative,
    samples=lambda rng: [
        S.Sample((S.randn(rng, 3, 4) * 3, _prob(rng, 3, 4))),
        S.Sample((S.randn(rng, 5), _prob(rng, 5)), {"reduction": "sum"}),
        S.Sample((S.randn(rng, 2, 3), _prob(rng, 2, 3)), {"reduction": "none"}),
        S.Sample((np.asarray(S.randn(rng) * 30), _prob(rng))),
        S.Sample((S.randn(rng, 3, 4), _prob(rng, 3, 4), S.positive(rng, 3, 4)),
                 {"pos_weight": S.positive(rng, 4)}, grad=False,
                 note="PyTorch refuses grads for weight and pos_weight"),
        S.Sample((S.randn(rng, 3, 4), _prob(rng, 3, 4)), {"pos_weight": S.positive(rng, 4),
                                                          "reduction": "none"}, grad=False,
                 note="PyTorch refuses grads for pos_weight"),
    ],
    torch_ref="torch.nn.functional.binary_cross_entropy_with_logits", namespace=NN,
    tags={Tag.COMPOSITE}, decomposition=_bce_logits_decomposition,
)


# --- kl_div --------------------------------------------------------------------------

def _kl_ref(x, t, reduction, log_target):
    x, t = up(x), up(t).astype(up(x).dtype)
    if log_target:
        loss = np.exp(t) * (t - x)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            loss = np.where(t > 0, t * np.log(np.where(t > 0, t, 1)), 0) - t * x
    if reduction == "batchmean":
        return np.sum(loss) / (x.shape[0] if x.ndim else 1)
    return _reduce_np(loss, reduction)


def _kl_meta(input, target, reduction="mean", log_target=False):
    _float(input)
    shape = broadcast_shapes(tuple(input.shape), tuple(target.shape))
    if reduction == "batchmean":
        reduction = "sum"
    return _loss_meta(shape, input.dtype, str(input.device), reduction)


def _kl_derivative(g, input, target, reduction, log_target):
    shape = broadcast_shapes(tuple(input.shape), tuple(target.shape))
    if reduction == "batchmean":
        gl = SH.expand(g, list(shape)) / (shape[0] if shape else 1)
    else:
        gl = _grad_of_reduced(g, shape, reduction)
    if log_target:
        et = PW.exp(target)
        return -gl * et, gl * et * (target - input + 1)
    pos = target > 0
    log_t = PW.log(PW.where(pos, target, CR.ones_like(target)))
    return -gl * target, gl * PW.where(pos, log_t + 1, CR.zeros_like(target)) - gl * input


kl_div = defop(
    "kl_div(Tensor input, Tensor target, str reduction='mean', bool log_target=False) -> Tensor",
    meta=_kl_meta, reference=_kl_ref, derivative=_kl_derivative,
    samples=lambda rng: [
        S.Sample((S.randn(rng, 3, 4), _prob(rng, 3, 4))),
        S.Sample((S.randn(rng, 3, 4), _prob(rng, 3, 4)), {"reduction": "batchmean"}),
        S.Sample((S.randn(rng, 5), S.randn(rng, 5)), {"reduction": "sum", "log_target": True}),
        S.Sample((S.randn(rng, 2, 3), _prob(rng, 2, 3)), {"reduction": "none"}),
    ],
    torch_ref="torch.nn.functional.kl_div", namespace=NN,
)

from . import creation as CR, pointwise as PW, reduction as R, shape as SH  # noqa: E402,N812
