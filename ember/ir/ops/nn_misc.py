"""nn ops: dropout, embedding, one_hot, scaled_dot_product_attention.

Random kernels draw from `ir.rng.generator()`, the frontend's default generator
(`ember.manual_seed` reseeds it). `native_dropout` returns (output, mask), so its
derivative is exact; `dropout`'s eager rule infers the kept mask from
(out != 0) | (input == 0), exact except where the input is exactly zero (there it
assumes "kept"); its decomposition goes through native_dropout.
scaled_dot_product_attention is composite (decomposition in ember ops) with an
explicit backward; with dropout_p > 0 its eager backward refuses (call the
decomposition instead, which records native_dropout's mask).
"""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes, rng as ir_rng
from ..errors import AutogradError, DTypeError, EmberIndexError, ShapeError
from ..meta import TensorMeta, contiguous_format
from ..registry import NOT_DIFFERENTIABLE, Tag, defop
from . import samples as S
from .normalization import np_softmax, up
from .rules import same_meta

NN = "nn.functional"


def _check_p(p):
    if not 0 <= p <= 1:
        raise ShapeError(f"dropout probability has to be between 0 and 1, but got {p}")


def _keep_mask(shape, p):
    return ir_rng.generator().random(shape) < (1 - p)


def _dropout_ref(x, p, train):
    if not train or p == 0:
        return x.copy(), np.ones(x.shape, bool)
    if p == 1:
        return np.zeros_like(x), np.zeros(x.shape, bool)
    mask = _keep_mask(x.shape, p)
    return (up(x) * mask / (1 - p)).astype(x.dtype), mask


def _dropout_meta_pair(input, p, train):
    _check_p(p)
    m = same_meta(input)
    return m, m.with_(dtype=dtypes.bool_)


def _scale(p, train):
    return 1.0 if not train or p == 0 else (0.0 if p == 1 else 1 / (1 - p))


native_dropout = defop(
    "native_dropout(Tensor input, float p, bool? train) -> (Tensor, Tensor)",
    meta=_dropout_meta_pair, reference=lambda x, p, train: _dropout_ref(x, p, train is not False),
    derivative=lambda g, input, p, train, out: g[0] * out[1] * _scale(p, train is not False),
    tags={Tag.RANDOM}, saves=(),
    samples=lambda rng: [S.Sample((S.randn(rng, 3, 4), 0.0, True)),
                         S.Sample((S.randn(rng, 5), 0.5, False))],
    torch_ref="torch.native_dropout",
)

dropout = defop(
    "dropout(Tensor input, float p, bool train) -> Tensor",
    meta=lambda input, p, train: _dropout_meta_pair(input, p, train)[0],
    reference=lambda x, p, train: _dropout_ref(x, p, train)[0],
    derivative=lambda g, input, p, train, out: g * _scale(p, train) if not train or p == 0
    else PW.where(PW.ne(out, 0), g, PW.where(PW.eq(input, 0), g, g * 0)) * _scale(p, train),
    tags={Tag.RANDOM, Tag.COMPOSITE},
    decomposition=lambda input, p, train: native_dropout(input, p, train)[0],
    samples=lambda rng: [S.Sample((S.randn(rng, 3, 4), 0.0, True)),
                         S.Sample((S.randn(rng, 2, 3, 2, 2), 0.7, False)),
                         S.Sample((S.randn(rng), 0.3, False))],
    torch_ref="torch.dropout", method=False,
)


# --- embedding -------------------------------------------------------------------------

def _embedding_meta(weight, indices, padding_idx=-1, scale_grad_by_freq=False, sparse=False):
    if weight.ndim != 2:
        raise ShapeError(f"'weight' must be 2-D, got {list(weight.shape)}")
    if indices.dtype not in (dtypes.int64, dtypes.int32):
        raise DTypeError(f"Expected tensor for argument #1 'indices' to have one of the "
                         f"following scalar types: Long, Int; but got {indices.dtype.name}")
    return TensorMeta(tuple(indices.shape) + (weight.shape[1],), weight.dtype,
                      str(weight.device))


def _embedding_ref(w, idx, padding_idx, scale_grad_by_freq, sparse):
    if idx.size and (idx.min() < 0 or idx.max() >= w.shape[0]):
        raise EmberIndexError(f"index out of range in self (num_embeddings={w.shape[0]})")
    return w[idx]


def _mm(a, b):
    return OPS["matmul"](a, b) if "matmul" in OPS else \
        R.sum(SH.unsqueeze(a, -1) * SH.unsqueeze(b, -3), [-2])


def _embedding_derivative(g, weight, indices, padding_idx, scale_grad_by_freq, sparse):
    v, d = weight.shape
    flat = SH.reshape(indices, [-1])
    if not scale_grad_by_freq and str(g.device) == "cpu":
        # each row's gradient added to its weight row in index order, as PyTorch's CPU
        # backward adds (an index_put that compiled plans run as a scatter kernel; the
        # gradients of padding positions are replaced by zeros, so that row stays zero).
        # CUDA keeps the one-hot products: its index_put accumulates with atomics, in
        # no fixed order
        rows = SH.reshape(g, [-1, d])
        if padding_idx is not None and padding_idx >= 0:     # (a NaN there too)
            rows = PW.where(SH.unsqueeze(PW.ne(flat, padding_idx), -1), rows, 0)
        return J.index_put(CR.full([v, d], 0, dtype=g.dtype), [flat], rows, True), None
    oh = PW.convert_element_type(PW.eq(SH.unsqueeze(flat, -1), CR.arange(0, v, dtype=flat.dtype)),
                                 g.dtype)                               # [n, V]
    if padding_idx is not None and padding_idx >= 0:
        oh = oh * SH.unsqueeze(PW.convert_element_type(PW.ne(flat, padding_idx), g.dtype), -1)
    gw = _mm(SH.transpose(oh, 0, 1), SH.reshape(g, [-1, d]))             # [V, D]
    if scale_grad_by_freq:
        counts = R.sum(oh, [0], True)
        gw = gw / SH.transpose(PW.maximum(counts, CR.ones_like(counts)), 0, 1)
    return gw, None


embedding = defop(
    "embedding(Tensor weight, Tensor indices, int padding_idx=-1, bool scale_grad_by_freq=False,"
    " bool sparse=False) -> Tensor",
    meta=_embedding_meta, reference=_embedding_ref, derivative=_embedding_derivative,
    saves=("indices",),
    samples=lambda rng: [
        S.Sample((S.randn(rng, 6, 3), S.int_array(rng, 4, low=0, high=6))),
        # padding_idx and scale_grad_by_freq change the gradient away from the math
        # (PyTorch's semantics), so finite differences would disagree: the padding row is
        # absent here, and scale_grad_by_freq is checked against torch in the extra tests
        S.Sample((S.randn(rng, 5, 2), np.asarray([[0, 2, 3], [4, 4, 0]]), 1)),
        S.Sample((S.randn(rng, 4, 3), np.asarray([0, 1, 1, 3, 1]), -1, True), grad=False),
        S.Sample((S.randn(rng, 4, 3), np.asarray(2))),
    ],
    torch_ref=lambda torch: lambda w, i, padding_idx=-1, scale_grad_by_freq=False,
    sparse=False: torch.embedding(w, i, padding_idx, scale_grad_by_freq, sparse),
    doc="aten's argument order (weight, indices); padding_idx < 0 means none; this rule's "
        "gradient is dense (eager autograd gives a sparse COO one for sparse=True).",
)



def _embedding_renorm_meta(self, indices, max_norm, norm_type):
    if self.ndim != 2:
        raise ShapeError(f"embedding_renorm_: 'self' must be 2-D, got {list(self.shape)}")
    if indices.dtype not in (dtypes.int64, dtypes.int32):
        raise DTypeError(f"Expected tensor for argument #2 'indices' to have one of the "
                         f"following scalar types: Long, Int; but got {indices.dtype.name}")
    return same_meta(self)


def _embedding_renorm_ref(w, idx, max_norm, norm_type):
    """Each row idx refers to (once, however often referenced) whose norm_type-norm exceeds
    max_norm is scaled to max_norm / (norm + 1e-7): PyTorch's eps keeps the new norm
    just under max_norm."""
    if idx.size and (idx.min() < 0 or idx.max() >= w.shape[0]):
        raise EmberIndexError(f"index out of range in self (num_embeddings={w.shape[0]})")
    out = w.copy()
    rows = np.unique(idx.reshape(-1))
    norms = np.linalg.norm(out[rows], ord=float(norm_type), axis=-1)
    scale = np.where(norms > max_norm, max_norm / (norms + 1e-7), 1.0).astype(w.dtype)
    out[rows] *= scale[:, None]
    return out


embedding_renorm = defop(
    "embedding_renorm(Tensor self, Tensor indices, float max_norm, float norm_type) -> Tensor",
    meta=_embedding_renorm_meta, reference=_embedding_renorm_ref,
    derivative=NOT_DIFFERENTIABLE, inplace_variant=True,
    samples=lambda rng: [
        S.Sample((S.randn(rng, 5, 3) * 2, np.asarray([[0, 2], [2, 4]]), 1.0, 2.0)),
        S.Sample((S.randn(rng, 4, 3), np.asarray([1, 3]), 0.5, 1.0))],
    torch_ref=lambda torch: lambda w, i, max_norm, norm_type: torch.embedding_renorm_(
        w.detach().clone(), i, max_norm, norm_type),
    doc="Out-of-place form of aten's embedding_renorm_ (F.embedding(max_norm=) calls the "
        "in-place one under no_grad).",
)

one_hot = defop(
    "one_hot(Tensor self, int num_classes=-1) -> Tensor",
    meta=lambda self, num_classes=-1: _one_hot_meta(self, num_classes),
    reference=lambda x, num_classes: _np_one_hot(x, num_classes),
    derivative=NOT_DIFFERENTIABLE, namespace=NN,
    samples=lambda rng: [S.Sample((S.int_array(rng, 5, low=0, high=4), 4)),
                         S.Sample((S.int_array(rng, 2, 3, low=0, high=3), 5))],
    torch_ref="torch.nn.functional.one_hot",
)


def _one_hot_meta(self, num_classes):
    if self.dtype is not dtypes.int64:
        raise DTypeError("one_hot is only applicable to index tensor of type LongTensor.")
    if num_classes < 0:
        if not hasattr(self, "__array__"):
            raise ShapeError("one_hot with num_classes=-1 has a data-dependent shape; pass "
                             "num_classes")
        arr = np.asarray(self)
        num_classes = int(arr.max()) + 1 if arr.size else 0
    return TensorMeta(tuple(self.shape) + (num_classes,), dtypes.int64, str(self.device))


class _ClassValueError(EmberIndexError, RuntimeError):
    """one_hot's class values outside [0, num_classes)."""


def _np_one_hot(x, num_classes):
    if num_classes < 0:
        num_classes = int(x.max()) + 1 if x.size else 0
    # PyTorch raises RuntimeError; an IndexError too, as these were
    if x.size and x.min() < 0:
        raise _ClassValueError("Class values must be non-negative.")
    if x.size and x.max() >= num_classes:
        raise _ClassValueError("Class values must be smaller than num_classes.")
    return (x[..., None] == np.arange(num_classes)).astype(np.int64)


# --- scaled_dot_product_attention ------------------------------------------------------

def _sdpa_meta(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
               enable_gqa=False):
    if query.ndim < 2 or key.ndim < 2 or value.ndim < 2:
        raise ShapeError("query, key and value must have at least 2 dims")
    if query.shape[-1] != key.shape[-1]:
        raise ShapeError(f"query's last dim {query.shape[-1]} != key's {key.shape[-1]}")
    if key.shape[-2] != value.shape[-2]:
        raise ShapeError(f"key has {key.shape[-2]} positions but value has {value.shape[-2]}")
    if attn_mask is not None and is_causal:
        raise ShapeError("_scaled_dot_product_attention: Explicit attn_mask should not be set "
                         "when is_causal=True")
    from .rules import broadcast_shapes
    batch = broadcast_shapes(tuple(query.shape[:-2]), tuple(key.shape[:-2]),
                             tuple(value.shape[:-2]))
    return TensorMeta(batch + (query.shape[-2], value.shape[-1]), query.dtype,
                      str(query.device), contiguous_format)


def _sdpa_ref(q, k, v, mask, dropout_p, is_causal, scale, enable_gqa):
    q, k, v = up(q), up(k), up(v)
    s = q @ np.swapaxes(k, -1, -2) * (scale if scale is not None else 1 / math.sqrt(q.shape[-1]))
    L, Sk = q.shape[-2], k.shape[-2]
    if is_causal:
        s = np.where(np.tril(np.ones((L, Sk), bool)), s, -np.inf)
    if mask is not None:
        s = np.where(mask, s, -np.inf) if mask.dtype == bool else s + mask
    p = np_softmax(s, -1)
    p = np.where(np.isnan(p), 0, p)                 # fully masked rows give 0, as PyTorch
    if dropout_p > 0:
        p = p * _keep_mask(p.shape, dropout_p) / (1 - dropout_p)
    return p @ v


def _scores(query, key, attn_mask, is_causal, scale):
    s = _mm(query, SH.transpose(key, -1, -2)) * (
        scale if scale is not None else 1 / math.sqrt(query.shape[-1]))
    if is_causal:
        L, Sk = query.shape[-2], key.shape[-2]
        if isinstance(L, int) and isinstance(Sk, int):
            causal = PW.ge(SH.unsqueeze(CR.arange(0, L), -1), CR.arange(0, Sk))
        else:
            # a dynamic length (a symbolic size in an exported program's graph): arange
            # needs a concrete end, the lower triangle of the scores' shape does not
            causal = J.tril(CR.ones_like(s, dtype=dtypes.bool_))
        s = PW.where(causal, s, -math.inf)
    if attn_mask is not None:
        s = PW.where(attn_mask, s, -math.inf) if attn_mask.dtype is dtypes.bool_ else \
            s + attn_mask
    p = NORM.softmax(s, -1)
    return PW.where(p == p, p, 0.0)                # NaN (fully masked rows) -> 0


def _sdpa_derivative(g, query, key, value, attn_mask, dropout_p, is_causal, scale,
                     enable_gqa):
    if dropout_p > 0:
        raise AutogradError("scaled_dot_product_attention: eager backward with dropout_p > 0 "
                            "needs the dropout mask; call op.decomposition(...) instead")
    sc = scale if scale is not None else 1 / math.sqrt(query.shape[-1])
    p = _scores(query, key, attn_mask, is_causal, scale)
    gv = _mm(SH.transpose(p, -1, -2), g)
    gp = _mm(g, SH.transpose(value, -1, -2))
    gs = p * (gp - R.sum(gp * p, [-1], True))
    gq = _mm(gs, key) * sc
    gk = _mm(SH.transpose(gs, -1, -2), query) * sc
    gm = gs if attn_mask is not None and attn_mask.dtype.is_floating_point else None
    return gq, gk, gv, gm


def _sdpa_decomposition(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
                        scale=None, enable_gqa=False):
    p = _scores(query, key, attn_mask, is_causal, scale)
    if dropout_p > 0:
        p = native_dropout(p, dropout_p, True)[0]
    return _mm(p, value)


scaled_dot_product_attention = defop(
    "scaled_dot_product_attention(Tensor query, Tensor key, Tensor value, Tensor? attn_mask=None,"
    " float dropout_p=0.0, bool is_causal=False, *, float? scale=None, bool enable_gqa=False)"
    " -> Tensor",
    meta=_sdpa_meta, reference=_sdpa_ref, derivative=_sdpa_derivative,
    tags={Tag.COMPOSITE}, decomposition=_sdpa_decomposition, namespace=NN,
    samples=lambda rng: [
        S.Sample((S.randn(rng, 2, 3, 4), S.randn(rng, 2, 5, 4), S.randn(rng, 2, 5, 3))),
        S.Sample((S.randn(rng, 1, 2, 4, 3), S.randn(rng, 1, 2, 4, 3), S.randn(rng, 1, 2, 4, 2)),
                 {"is_causal": True}),
        S.Sample((S.randn(rng, 2, 3, 4), S.randn(rng, 2, 5, 4), S.randn(rng, 2, 5, 3),
                  S.randn(rng, 3, 5)), {"scale": 0.3}),
        S.Sample((S.randn(rng, 3, 4), S.randn(rng, 5, 4), S.randn(rng, 5, 2),
                  S.bool_array(rng, 3, 5) | np.eye(3, 5, dtype=bool))),
    ],
    torch_ref="torch.nn.functional.scaled_dot_product_attention",
)

from ..registry import OPS  # noqa: E402
from . import creation as CR, normalization as NORM, pointwise as PW  # noqa: E402,N812
from . import reduction as R, shape as SH  # noqa: E402,N812
from . import joining as J  # noqa: E402,N812
