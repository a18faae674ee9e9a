"""ctc_loss: Connectionist Temporal Classification (Graves et al., 2006).

The loss of one sample is -log of the total probability of every alignment of its
target to the T input frames: the target is extended with blanks (b, l1, b, l2, ..., b),
and a path may stay on a symbol, advance one, or skip a blank between two different
symbols. The forward (alpha) and backward (beta) recursions run in log space with
NumPy, one step per frame, vectorized over the batch and the extended positions.

Gradient: PyTorch's kernel returns, for d loss_n / d log_probs[t, n, c],
    exp(log_probs[t, n, c]) - exp(log(sum_{s: l'_s = c} alpha_t(s) beta_t(s)) + loss_n
                                  - log_probs[t, n, c])
which is the gradient with respect to the *logits* when log_probs = log_softmax(logits)
(the exp term is what log_softmax's backward removes again); with respect to log_probs
themselves the true gradient lacks the exp term. ember returns PyTorch's value, so a
model built either way trains identically; the op's table samples therefore skip the
finite-difference check (tests/nn/test_functional_nn_extra.py checks the gradient
against torch, and through log_softmax against finite differences).

Shapes: log_probs (T, N, C) or unbatched (T, C); targets padded (N, S) or concatenated
(sum(target_lengths),) or unbatched (S,); input_lengths/target_lengths one int per
sample. reduction 'mean' divides each loss by its target length (at least 1), then
averages over the batch; zero_infinity replaces infinite losses (no valid alignment)
and their gradients by zero.
"""
from __future__ import annotations

import numpy as np

from ..errors import DTypeError, ShapeError
from ..meta import TensorMeta
from ..registry import NOT_DIFFERENTIABLE, defop
from . import samples as S
from .normalization import up

NN = "nn.functional"
NEG_INF = -np.inf


# --- argument checks and normalisation ---------------------------------------------------

def _check(log_probs, targets, input_lengths, target_lengths, reduction):
    if reduction not in ("none", "mean", "sum"):
        raise ShapeError(f"{reduction} is not a valid value for reduction")
    if log_probs.ndim not in (2, 3):
        raise ShapeError(f"ctc_loss: log_probs must be (T, N, C) or (T, C), got shape "
                         f"{list(log_probs.shape)}")
    if not log_probs.dtype.is_floating_point:
        raise DTypeError(f"ctc_loss: log_probs must be a floating point tensor, got "
                         f"{log_probs.dtype.name}")
    if targets.dtype.is_floating_point or targets.dtype.is_complex:
        raise DTypeError(f"ctc_loss: targets must be integer class indices, got "
                         f"{targets.dtype.name}")
    batch = log_probs.shape[1] if log_probs.ndim == 3 else 1
    if len(input_lengths) != batch:
        raise ShapeError(f"input_lengths must be of size batch_size, got "
                         f"{len(input_lengths)} for batch size {batch}")
    if len(target_lengths) != batch:
        raise ShapeError(f"target_lengths must be of size batch_size, got "
                         f"{len(target_lengths)} for batch size {batch}")
    frames = log_probs.shape[0]
    for n in input_lengths:
        if not 0 <= n <= frames:
            raise ShapeError(f"Expected input_lengths to have value at most {frames}, but got "
                             f"value {n}")
    if targets.ndim == 2 or (targets.ndim == 1 and log_probs.ndim == 2):
        width = targets.shape[-1]
        for n in target_lengths:
            if n > width:
                raise ShapeError(f"Expected tensor to have size at least {n} at dimension "
                                 f"{targets.ndim - 1}, but got size {width} for argument #2 "
                                 f"'targets'")
    elif targets.ndim == 1 and targets.shape[0] < sum(target_lengths):
        raise ShapeError(f"ctc_loss: concatenated targets have {targets.shape[0]} entries, "
                         f"fewer than sum(target_lengths) = {sum(target_lengths)}")


def _batched(log_probs, targets, log_probs_ndim, target_lengths):
    """(T, N, C) float64 log-probs and an (N, S) padded target array."""
    lp = np.asarray(up(log_probs), np.float64)
    if log_probs_ndim == 2:
        return lp[:, None, :], np.asarray(targets).reshape(1, -1)
    targets = np.asarray(targets)
    if targets.ndim == 2:
        return lp, targets
    width = max(max(target_lengths, default=0), 1)            # concatenated targets
    padded = np.zeros((len(target_lengths), width), np.int64)
    start = 0
    for i, n in enumerate(target_lengths):
        padded[i, :n] = targets[start:start + n]
        start += n
    return lp, padded


# --- the recursions ----------------------------------------------------------------------

def _shift(a, k):
    """a[..., s - k] along the last axis, -inf where s < k."""
    out = np.full_like(a, NEG_INF)
    out[..., k:] = a[..., :a.shape[-1] - k]
    return out


def _unshift(a, k):
    """a[..., s + k] along the last axis, -inf past the end."""
    out = np.full_like(a, NEG_INF)
    out[..., :a.shape[-1] - k] = a[..., k:]
    return out


def _logsumexp3(a, b, c):
    m = np.maximum(np.maximum(a, b), c)
    safe = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return safe + np.log(np.exp(a - safe) + np.exp(b - safe) + np.exp(c - safe))


class _Lattice:
    """Extended labels and per-frame log-probabilities of them, for a batch."""

    def __init__(self, lp, targets, input_lengths, target_lengths, blank):
        n, width = targets.shape
        self.length = 2 * width + 1
        ext = np.full((n, self.length), blank, np.int64)
        ext[:, 1::2] = targets
        self.ext = ext
        self.in_len = np.asarray(input_lengths, np.int64)
        self.ext_len = 2 * np.asarray(target_lengths, np.int64) + 1
        self.valid = np.arange(self.length)[None, :] < self.ext_len[:, None]          # [N, L]
        prev2 = np.concatenate([np.full((n, 2), -1), ext[:, :-2]], axis=1)
        self.skip = (ext != blank) & (ext != prev2) & (np.arange(self.length) >= 2)   # [N, L]
        self.lp_ext = np.take_along_axis(lp, np.broadcast_to(ext, (lp.shape[0],) + ext.shape),
                                         axis=2)                                        # [T, N, L]

    def alpha(self):
        frames = self.lp_ext.shape[0]
        alpha = np.full(self.lp_ext.shape, NEG_INF)
        if frames == 0:
            return alpha
        first = np.full(self.ext.shape, NEG_INF)
        first[:, :2] = self.lp_ext[0, :, :2]
        alpha[0] = np.where(self.valid, first, NEG_INF)
        for t in range(1, frames):
            prev = alpha[t - 1]
            skip = np.where(self.skip, _shift(prev, 2), NEG_INF)
            step = self.lp_ext[t] + _logsumexp3(prev, _shift(prev, 1), skip)
            alpha[t] = np.where(self.valid, step, NEG_INF)
        return alpha

    def beta(self):
        frames = self.lp_ext.shape[0]
        beta = np.full(self.lp_ext.shape, NEG_INF)
        last_pos = np.arange(self.length)[None, :] >= (self.ext_len - 2)[:, None]
        init_mask = self.valid & last_pos                                          # [N, L]
        skip_from = _unshift(self.skip.astype(np.float64), 2) > 0                   # s+2 may skip
        nxt = np.full(self.ext.shape, NEG_INF)
        for t in range(frames - 1, -1, -1):
            step = self.lp_ext[t] + _logsumexp3(nxt, _unshift(nxt, 1),
                                                np.where(skip_from, _unshift(nxt, 2), NEG_INF))
            init = np.where(init_mask, self.lp_ext[t], NEG_INF)
            is_last = (t == self.in_len - 1)[:, None]
            inside = (t < self.in_len - 1)[:, None]
            cur = np.where(is_last, init, np.where(inside, step, NEG_INF))
            beta[t] = np.where(self.valid, cur, NEG_INF)
            nxt = beta[t]
        return beta

    def nll(self, alpha):
        """-log p(target | input) per sample: the last two extended positions at the
        sample's last frame (just the final blank for an empty target)."""
        n = self.ext.shape[0]
        out = np.empty(n)
        for i in range(n):
            frames, end = self.in_len[i], self.ext_len[i]
            if frames == 0:
                out[i] = 0.0 if end == 1 else np.inf
                continue
            last = alpha[frames - 1, i]
            tail = last[end - 1] if end == 1 else np.logaddexp(last[end - 1], last[end - 2])
            out[i] = -tail
        return out


def _per_sample_nll(log_probs, targets, input_lengths, target_lengths, blank):
    lp, padded = _batched(log_probs, targets, log_probs.ndim, target_lengths)
    lattice = _Lattice(lp, padded, input_lengths, target_lengths, blank)
    return lattice, lattice.nll(lattice.alpha()), lp


def _reduce(nll, target_lengths, reduction, zero_infinity):
    if zero_infinity:
        nll = np.where(np.isinf(nll), 0.0, nll)
    if reduction == "none":
        return nll
    if reduction == "sum":
        return np.sum(nll)
    return np.mean(nll / np.maximum(np.asarray(target_lengths, np.float64), 1))


def _ctc_reference(log_probs, targets, input_lengths, target_lengths, blank, reduction,
                   zero_infinity):
    _, nll, _ = _per_sample_nll(log_probs, targets, input_lengths, target_lengths, blank)
    out = _reduce(nll, target_lengths, reduction, zero_infinity)
    if log_probs.ndim == 2 and reduction == "none":
        out = out.reshape(())
    return np.asarray(out).astype(log_probs.dtype)


def _ctc_grad_reference(log_probs, targets, input_lengths, target_lengths, blank, reduction,
                        zero_infinity):
    """d(reduced loss)/d log_probs for a unit upstream gradient (per sample for 'none')."""
    lattice, nll, lp = _per_sample_nll(log_probs, targets, input_lengths, target_lengths,
                                       blank)
    log_ab = lattice.alpha() + lattice.beta()                                  # [T, N, L]
    classes = lp.shape[2]
    owns = lattice.ext[:, :, None] == np.arange(classes)                       # [N, L, C]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        masked = np.where(owns[None], log_ab[..., None], NEG_INF)              # [T, N, L, C]
        peak = masked.max(axis=2)
        safe = np.where(np.isfinite(peak), peak, 0.0)
        lcab = safe + np.log(np.exp(masked - safe[:, :, None, :]).sum(axis=2))  # [T, N, C]
        grad = np.exp(lp) - np.exp(lcab + nll[None, :, None] - lp)
    frames = np.arange(lp.shape[0])[:, None] < lattice.in_len[None, :]         # [T, N]
    grad = np.where(frames[..., None], grad, 0.0)
    if zero_infinity:
        grad = np.where(np.isinf(nll)[None, :, None], 0.0, grad)
    grad = grad * _sample_scale(target_lengths, reduction)[None, :, None]
    if log_probs.ndim == 2:
        grad = grad[:, 0, :]
    return grad.astype(log_probs.dtype)


def _sample_scale(target_lengths, reduction):
    lengths = np.asarray(target_lengths, np.float64)
    if reduction == "mean":
        return 1.0 / (np.maximum(lengths, 1) * max(len(lengths), 1))
    return np.ones_like(lengths)


# --- ops -----------------------------------------------------------------------------------

def _ctc_meta(log_probs, targets, input_lengths, target_lengths, blank=0, reduction="mean",
              zero_infinity=False):
    _check(log_probs, targets, input_lengths, target_lengths, reduction)
    shape = (log_probs.shape[1],) if reduction == "none" and log_probs.ndim == 3 else ()
    return TensorMeta(shape, log_probs.dtype, str(log_probs.device))


def _ctc_derivative(g, log_probs, targets, input_lengths, target_lengths, blank, reduction,
                    zero_infinity):
    unit = ctc_loss_backward(log_probs, targets, input_lengths, target_lengths, blank,
                             reduction, zero_infinity)
    if reduction == "none" and log_probs.ndim == 3:
        return unit * g.reshape([1, -1, 1]), None
    return unit * g, None


def _lengths(rng, n, low, high):
    return [int(v) for v in rng.integers(low, high + 1, size=n)]


def _ctc_samples(rng):
    def log_probs(*shape):
        x = rng.standard_normal(shape)
        return np.asarray(x - np.log(np.exp(x).sum(-1, keepdims=True)), np.float32)
    out = []
    for kw in ({}, {"reduction": "sum"}, {"reduction": "none", "blank": 2}):
        tl = _lengths(rng, 3, 1, 3)
        targets = S.int_array(rng, 3, 3, low=1, high=5)
        if kw.get("blank") == 2:
            targets = np.where(targets == 2, 1, targets)
        out.append(S.Sample((log_probs(7, 3, 5), targets, _lengths(rng, 3, 5, 7), tl), kw,
                            grad=False, note="PyTorch's gradient is w.r.t. logits (see doc)"))
    # concatenated targets, an empty target, an impossible one with zero_infinity
    out.append(S.Sample((log_probs(4, 3, 4), np.asarray([1, 2, 1, 3, 3]), [4, 4, 2], [2, 0, 3]),
                        {"zero_infinity": True}, grad=False))
    out.append(S.Sample((log_probs(5, 4), np.asarray([1, 2]), [5], [2]), grad=False))
    return out


def _torch_ctc_grad(torch):
    def run(log_probs, targets, input_lengths, target_lengths, blank, reduction,
            zero_infinity):
        with torch.enable_grad():
            lp = log_probs.detach().requires_grad_()
            loss = torch.nn.functional.ctc_loss(lp, targets, input_lengths, target_lengths,
                                                blank, reduction, zero_infinity)
            return torch.autograd.grad(loss.sum(), lp)[0]
    return run


ctc_loss = defop(
    "ctc_loss(Tensor log_probs, Tensor targets, int[] input_lengths, int[] target_lengths, "
    "int blank=0, str reduction='mean', bool zero_infinity=False) -> Tensor",
    meta=_ctc_meta, reference=_ctc_reference, derivative=_ctc_derivative,
    saves=("log_probs", "targets"), samples=_ctc_samples, namespace=NN,
    torch_ref="torch.nn.functional.ctc_loss",
    doc="Lengths are Python ints (the functional converts tensors); the gradient is "
        "PyTorch's (w.r.t. logits under log_softmax, see the module docstring).",
)

ctc_loss_backward = defop(
    "ctc_loss_backward(Tensor log_probs, Tensor targets, int[] input_lengths, "
    "int[] target_lengths, int blank, str reduction, bool zero_infinity) -> Tensor",
    meta=lambda log_probs, targets, input_lengths, target_lengths, blank, reduction,
    zero_infinity: TensorMeta(tuple(log_probs.shape), log_probs.dtype, str(log_probs.device)),
    reference=_ctc_grad_reference, derivative=NOT_DIFFERENTIABLE, namespace=NN,
    samples=lambda rng: [S.Sample(s.args + (s.kwargs.get("blank", 0),
                                            s.kwargs.get("reduction", "mean"),
                                            s.kwargs.get("zero_infinity", False)))
                         for s in _ctc_samples(rng) if s.kwargs.get("reduction") != "none"],
    torch_ref=_torch_ctc_grad,
    doc="ember: the gradient of ctc_loss for a unit upstream gradient (PyTorch's formula; "
        "with reduction='none', per sample). Like PyTorch's, not differentiable again.",
)
