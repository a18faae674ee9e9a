"""Ops model and training code calls that run on CUDA as rewrites into ops with kernels
(frontend/eager_cuda_rewrites.py), on emulated CUDA (tests/cuda/emulation.py): values and
gradients equal torch on the CPU, and nothing falls back to the host."""
import os

os.environ["TRITON_INTERPRET"] = "1"      # before triton is imported (see emulation.py)

import math  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

import ember  # noqa: E402
from ember.frontend import eager_cuda  # noqa: E402

from emulation import emulated_cuda  # noqa: E402

RNG = np.random.default_rng(1)


def _a(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


Q, K, V = _a(2, 2, 4, 8), _a(2, 2, 5, 8), _a(2, 2, 5, 8)
X, X4, P = _a(4, 6), _a(2, 4, 6, 6), RNG.uniform(0.05, 0.95, (4, 6)).astype(np.float32)
B0, B1, B2 = _a(3, 4, 2), _a(3, 4, 5), _a(3, 5, 2)
GAMMA, BETA, PS, PU, S1 = _a(4), _a(4), _a(1, 8, 2, 3), _a(1, 2, 4, 6), _a(2, 3, 9)
BIG = np.array([1.0, np.nan, np.inf, -np.inf, -2.0], np.float32)


def F(L):
    return L.nn.functional


# f(L, t): t(array) makes a leaf of library L on the device (requires grad when asked)
CASES = {
    "matmul_4d": (lambda L, t: t(Q) @ t(K).transpose(-2, -1), True),
    "matmul_broadcast_batch": (lambda L, t: t(Q) @ t(_W)[None], True),
    "sdpa": (lambda L, t: F(L).scaled_dot_product_attention(t(Q), t(K), t(V)), True),
    "sdpa_causal": (lambda L, t: F(L).scaled_dot_product_attention(t(Q), t(Q), t(Q),
                                                                   is_causal=True),
                    True),
    "sdpa_bool_mask": (lambda L, t: F(L).scaled_dot_product_attention(
        t(Q), t(K), t(V), attn_mask=t(_MASK, grad=False)), True),
    "einsum_attention": (lambda L, t: L.einsum("bhqd,bhkd->bhqk", t(Q), t(K)), True),
    "einsum_ellipsis": (lambda L, t: L.einsum("...qd,...kd->...qk", t(Q), t(K)), True),
    "einsum_implicit_three": (lambda L, t: L.einsum("ij,jk,k", t(X), t(X.T.copy()), t(X[0, :4].copy())),
                              True),
    "einsum_outer_and_sum": (lambda L, t: L.einsum("i,j->ij", t(X[0]), t(X[1])) +
                             L.einsum("ij->j", t(X))[None], True),
    "einsum_bilinear": (lambda L, t: L.einsum("bn,anm,bm->ba", t(X[:2, :4]), t(X4[0, :3, :4, :5]),
                                              t(X[:2, :5])), True),
    "mv": (lambda L, t: L.mv(t(X), t(X[0])), True),
    "dot": (lambda L, t: L.dot(t(X[0]), t(X[1])), True),
    "addmm_beta_alpha": (lambda L, t: L.addmm(t(X[:, :4]), t(X), t(X.T[:, :4].copy()), beta=0.5,
                                              alpha=2.0), True),
    "tensordot": (lambda L, t: L.tensordot(t(X4), t(X4[0]), dims=([1, 2], [0, 1])), True),
    "std_mean": (lambda L, t: L.std_mean(t(X), 1)[0] + L.std_mean(t(X), 1)[1], True),
    "isin": (lambda L, t: L.isin(t(np.array([1, 5, 2, 7])), t(np.array([2, 7, 9]))), False),
    "cross": (lambda L, t: L.linalg.cross(t(X[:, :3]), t(X[:, 3:6])), True),
    "combinations": (lambda L, t: L.combinations(t(X[0]), 2), True),
    "baddbmm": (lambda L, t: L.baddbmm(t(B0), t(B1), t(B2), beta=0.5,
                                       alpha=2.0), True),
    "norm": (lambda L, t: t(X).norm(), True),
    "norm_dim_p1": (lambda L, t: t(X).norm(p=1, dim=1), True),
    "norm_inf": (lambda L, t: L.linalg.vector_norm(t(X), ord=math.inf, dim=0), False),
    "norm_p3_keepdim": (lambda L, t: L.linalg.vector_norm(t(X), ord=3, dim=1, keepdim=True), True),
    "normalize": (lambda L, t: F(L).normalize(t(X), dim=1), True),
    "cosine_similarity": (lambda L, t: F(L).cosine_similarity(t(X), t(X[::-1].copy())), True),
    "tril": (lambda L, t: t(X).tril(), True),
    "triu_offset": (lambda L, t: t(X4).triu(2), True),
    "causal_mask": (lambda L, t: L.ones(5, 5, device=t.device).tril().bool(), False),
    "repeat": (lambda L, t: t(X).repeat(2, 1, 3), True),
    "roll": (lambda L, t: t(X).roll(2, 1), True),
    "roll_flat": (lambda L, t: t(X).roll(-3), True),
    "roll_two_dims": (lambda L, t: t(X).roll((1, -2), (0, 1)), True),
    "diag": (lambda L, t: t(X[0]).diag(1), True),
    "diag_embed": (lambda L, t: L.diag_embed(t(X), -1), True),
    "select_scatter": (lambda L, t: L.select_scatter(t(X), t(X[1] * 2), 0, 2), True),
    "quantile": (lambda L, t: L.quantile(t(X), 0.3, dim=1), True),
    "multi_margin_loss": (lambda L, t: F(L).multi_margin_loss(t(X), t(np.array([0, 5, 2, 1]))),
                          True),
    "masked_scatter": (lambda L, t: t(X).masked_scatter(t(X > 0), t(X * 3)), True),
    "embedding_bag": (lambda L, t: F(L).embedding_bag(t(np.array([0, 2, 1, 3, 3])), t(X),
                                                      t(np.array([0, 2]))), True),
    "pixel_shuffle": (lambda L, t: F(L).pixel_shuffle(t(PS), 2), True),
    "pixel_unshuffle": (lambda L, t: F(L).pixel_unshuffle(t(PU), 2), True),
    "binary_cross_entropy": (lambda L, t: F(L).binary_cross_entropy(t(P), t(P[::-1].copy(),
                                                                                grad=False)), True),
    "binary_cross_entropy_weighted_sum": (lambda L, t: F(L).binary_cross_entropy(
        t(P), t((P > 0.5).astype(np.float32), grad=False), weight=t(P[0], grad=False),
        reduction="sum"), True),
    "group_norm": (lambda L, t: F(L).group_norm(t(X4), 2, t(GAMMA), t(BETA)), True),
    "avg_pool2d": (lambda L, t: F(L).avg_pool2d(t(X4), 2), True),
    "avg_pool2d_overlapping_padded": (lambda L, t: F(L).avg_pool2d(t(X4), 3, 2, 1), True),
    "avg_pool2d_divisor": (lambda L, t: F(L).avg_pool2d(t(X4), 3, 1, divisor_override=4), True),
    "adaptive_max_pool2d": (lambda L, t: F(L).adaptive_max_pool2d(t(X4), (3, 2)), True),
    "max_pool1d": (lambda L, t: F(L).max_pool1d(t(S1), 3, 2), True),
    "isclose": (lambda L, t: L.isclose(t(X), t(X + 1e-6), equal_nan=True), False),
    "nan_to_num": (lambda L, t: L.nan_to_num(t(BIG, grad=False)), False),
    "nan_to_num_values": (lambda L, t: L.nan_to_num(t(BIG, grad=False), 0.5, 7.0, -7.0), False),
    "count_nonzero": (lambda L, t: L.count_nonzero(t(X) > 0, 1), False),
}
_W = _a(8, 3)
_MASK = RNG.uniform(size=(4, 5)) > 0.3
_MASK[:, 0] = True


class _Maker:
    def __init__(self, L, device, grads):
        self.L, self.device, self.leaves = L, device, grads

    def __call__(self, arr, grad=True):
        t = self.L.tensor(arr, device=self.device)
        if grad and arr.dtype.kind == "f":
            t.requires_grad_()
            self.leaves.append(t)
        return t


def _run(L, device, name):
    fn, differentiable = CASES[name]
    leaves = []
    out = fn(L, _Maker(L, device, leaves))
    grads = []
    if differentiable:
        weights = L.tensor(RNG_W[:out.numel()].reshape(tuple(out.shape)), device=device)
        (out * weights).sum().backward()
        grads = [leaf.grad for leaf in leaves]
    return out, grads


RNG_W = np.random.default_rng(2).standard_normal(4096).astype(np.float32)


@pytest.fixture
def cuda():
    with emulated_cuda() as allocator:
        eager_cuda._WARNED.clear()
        yield allocator


@pytest.mark.parametrize("name", sorted(CASES))
def test_rewrite_on_cuda_equals_torch_without_host_fallback(cuda, name):
    want, want_grads = _run(torch, "cpu", name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got, got_grads = _run(ember, "cuda", name)
    fallbacks = [str(w.message) for w in caught if "runs on the host" in str(w.message)]
    assert not fallbacks
    assert got.is_cuda and tuple(got.shape) == tuple(want.shape)
    assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1]
    np.testing.assert_allclose(got.detach().cpu().numpy(), want.detach().numpy(), rtol=1e-5,
                               atol=1e-5)
    assert len(got_grads) == len(want_grads)
    for g, w in zip(got_grads, want_grads):
        np.testing.assert_allclose(g.cpu().numpy(), w.numpy(), rtol=1e-4, atol=1e-5)


def test_hand_written_attention_step_stays_on_the_device(cuda):
    """A step as user code writes attention: einsum scores, a causal mask from tril, masked
    softmax, a normalized embedding, repeat over heads, per-tensor grad clipping (the
    norms), a top-2 accuracy: equal to torch's and no host fallback."""
    tokens = np.array([[1, 4, 2, 0, 3], [2, 2, 5, 1, 0]])
    emb, proj = _a(6, 8), _a(8, 8)

    def step(L, d):
        table = L.tensor(emb, device=d, requires_grad=True)
        w = L.tensor(proj, device=d, requires_grad=True)
        ids = L.tensor(tokens, device=d)
        x = F(L).normalize(table[ids], dim=-1)                    # [2, 5, 8]
        q = (x @ w).reshape(2, 5, 2, 4).transpose(1, 2)           # [2, 2, 5, 4]
        k = x.reshape(2, 5, 2, 4).transpose(1, 2)
        scores = L.einsum("bhqd,bhkd->bhqk", q, k) / 2.0
        causal = L.ones(5, 5, device=d).tril().bool()
        attn = scores.masked_fill(~causal, float("-inf")).softmax(-1)
        out = (attn @ k).transpose(1, 2).reshape(2, 5, 8)
        logits = out @ table.t()                                  # [2, 5, 6]
        target = ids.roll(-1, 1)
        loss = F(L).cross_entropy(logits.reshape(-1, 6), target.reshape(-1))
        loss.backward()
        norm = L.nn.utils.clip_grad_norm_([table, w], 0.5, foreach=False)
        top2 = (logits.topk(2, -1)[1] == target.unsqueeze(-1)).any(-1).float().mean()
        return loss, norm, top2, table.grad, w.grad
    want = step(torch, "cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = step(ember, "cuda")
    assert not [str(w.message) for w in caught if "runs on the host" in str(w.message)]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.detach().cpu().numpy(), w.detach().numpy(), rtol=1e-4,
                                   atol=1e-5)
