"""Extra checks for nn ops the op table cannot cover: randomness, buffers, layouts,
and gradients PyTorch refuses (weights, running stats) against finite differences."""
from __future__ import annotations

import numpy as np
import torch

import ember
from ember.ir.registry import OPS

F = torch.nn.functional


def _fd_grad(f, arr, idx, eps=1e-6):
    flat = arr.reshape(-1)
    old = flat[idx]
    flat[idx] = old + eps
    up = f()
    flat[idx] = old - eps
    down = f()
    flat[idx] = old
    return (up - down) / (2 * eps)


def test_dropout_statistics_and_mask_consistency():
    ember.manual_seed(0)
    x = ember.tensor(np.random.default_rng(0).standard_normal((200, 50)) + 5.0,
                     requires_grad=True)
    out, mask = OPS["native_dropout"](x, 0.3, True)
    keep = mask.numpy()
    assert abs(keep.mean() - 0.7) < 0.02
    np.testing.assert_allclose(out.detach().numpy(), x.detach().numpy() * keep / 0.7, rtol=1e-6)
    (g,) = ember.autograd.grad(out.sum(), [x])
    np.testing.assert_allclose(g.numpy(), keep / 0.7, rtol=1e-6)
    y = OPS["dropout"](x, 0.3, True)
    (g2,) = ember.autograd.grad(y.sum(), [x])
    np.testing.assert_allclose(g2.numpy(), (y.detach().numpy() != 0) / 0.7, rtol=1e-6)
    # manual_seed makes it reproducible
    ember.manual_seed(5)
    a = OPS["dropout"](x.detach(), 0.5, True).numpy()
    ember.manual_seed(5)
    b = OPS["dropout"](x.detach(), 0.5, True).numpy()
    np.testing.assert_array_equal(a, b)


def test_batch_norm_updates_running_stats_like_torch():
    from ember.ir.ops.normalization import batch_norm_with_update
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3, 2, 2)).astype(np.float32)
    rm, rv = rng.standard_normal(3).astype(np.float32), rng.random(3).astype(np.float32) + 0.5
    erm, erv = ember.tensor(rm), ember.tensor(rv)
    trm, trv = torch.tensor(rm), torch.tensor(rv)
    e = batch_norm_with_update(ember.tensor(x), erm, erv, training=True, momentum=0.2)
    t = F.batch_norm(torch.tensor(x), trm, trv, training=True, momentum=0.2)
    np.testing.assert_allclose(e.numpy(), t.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(erm.numpy(), trm.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(erv.numpy(), trv.numpy(), rtol=1e-6, atol=1e-6)


def test_channels_last_batch_norm_and_group_norm():
    x = ember.tensor(np.random.default_rng(2).standard_normal((2, 4, 3, 3)).astype(np.float32))
    x = x.contiguous(memory_format=ember.channels_last)
    y = OPS["batch_norm"](x, None, None, training=True)
    assert y.is_contiguous(memory_format=ember.channels_last)
    assert OPS["group_norm"](x, 2).is_contiguous(memory_format=ember.channels_last)


def test_batch_norm_eval_grads():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 3))
    rm, rv, w = rng.standard_normal(3), rng.random(3) + 0.5, rng.standard_normal(3)
    ex, erm, erv, ew = (ember.tensor(a, requires_grad=True) for a in (x, rm, rv, w))
    out = OPS["batch_norm"](ex, erm, erv, ew, None, False)
    cot = rng.standard_normal((5, 3))
    grads = ember.autograd.grad((out * ember.tensor(cot)).sum(), [ex, erm, erv, ew])
    tx = torch.tensor(x, requires_grad=True)
    t = F.batch_norm(tx, torch.tensor(rm), torch.tensor(rv), torch.tensor(w), training=False)
    (tg,) = torch.autograd.grad((t * torch.tensor(cot)).sum(), [tx])
    np.testing.assert_allclose(grads[0].numpy(), tg.numpy(), rtol=1e-8)
    for arr, g in ((rm, grads[1]), (rv, grads[2])):
        f = lambda: float((OPS["batch_norm"](ember.tensor(x), ember.tensor(rm), ember.tensor(rv),
                                             ember.tensor(w), None, False).numpy() * cot).sum())
        for i in range(3):
            np.testing.assert_allclose(g.numpy()[i], _fd_grad(f, arr, i), rtol=1e-5, atol=1e-7)


def test_weighted_class_losses_grads():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 4))
    target = np.array([0, 3, -100, 1, 1, 2])
    w = rng.random(4) + 0.5
    for name, kw in (("cross_entropy", {"label_smoothing": 0.2}), ("cross_entropy", {}),
                     ("nll_loss", {}), ("nll_loss", {"reduction": "sum"})):
        ex, ew = ember.tensor(x, requires_grad=True), ember.tensor(w, requires_grad=True)
        out = OPS[name](ex, ember.tensor(target), ew, **kw)
        gx, gw = ember.autograd.grad(out, [ex, ew])
        tx = torch.tensor(x, requires_grad=True)
        t = getattr(F, name)(tx, torch.tensor(target), torch.tensor(w), **kw)
        (tg,) = torch.autograd.grad(t, [tx])
        np.testing.assert_allclose(gx.numpy(), tg.numpy(), rtol=1e-7, atol=1e-10)
        f = lambda: float(OPS[name](ember.tensor(x), ember.tensor(target), ember.tensor(w),
                                    **kw).numpy())
        for i in range(4):
            np.testing.assert_allclose(gw.numpy()[i], _fd_grad(f, w, i), rtol=1e-5, atol=1e-8)


def test_bce_with_logits_weight_grads():
    rng = np.random.default_rng(5)
    x, t = rng.standard_normal((3, 4)), rng.random((3, 4))
    w, pw = rng.random((3, 4)) + 0.5, rng.random(4) + 0.5
    args = [ember.tensor(a, requires_grad=True) for a in (x, t, w, pw)]
    out = OPS["binary_cross_entropy_with_logits"](*args[:3], pos_weight=args[3])
    grads = ember.autograd.grad(out, args)
    for arr, g in zip((x, t, w, pw), grads):
        f = lambda: float(OPS["binary_cross_entropy_with_logits"](
            ember.tensor(x), ember.tensor(t), ember.tensor(w), pos_weight=ember.tensor(pw)).numpy())
        for i in range(3):
            np.testing.assert_allclose(g.numpy().reshape(-1)[i], _fd_grad(f, arr, i), rtol=1e-5,
                                       atol=1e-8)


def test_embedding_padding_idx_gets_zero_grad():
    w = ember.tensor(np.random.default_rng(6).standard_normal((5, 3)), requires_grad=True)
    out = OPS["embedding"](w, ember.tensor(np.array([1, 2, 2, 4])), 2)
    (g,) = ember.autograd.grad(out.sum(), [w])
    np.testing.assert_array_equal(g.numpy().sum(1), [0, 3, 0, 0, 3])


def test_sdpa_fully_masked_row_and_decomposition():
    rng = np.random.default_rng(7)
    q = rng.standard_normal((2, 3, 4)).astype(np.float32)
    m = np.ones((3, 3), bool)
    m[1] = False
    op = OPS["scaled_dot_product_attention"]
    e = op(ember.tensor(q), ember.tensor(q), ember.tensor(q), ember.tensor(m))
    t = F.scaled_dot_product_attention(*(torch.tensor(q),) * 3, attn_mask=torch.tensor(m))
    np.testing.assert_allclose(e.numpy(), t.numpy(), rtol=1e-5, atol=1e-6)
    d = op.decomposition(ember.tensor(q), ember.tensor(q), ember.tensor(q), ember.tensor(m))
    np.testing.assert_allclose(d.numpy(), t.numpy(), rtol=1e-5, atol=1e-6)


def test_embedding_scale_grad_by_freq_matches_torch():
    rng = np.random.default_rng(8)
    w, idx = rng.standard_normal((4, 3)), np.array([0, 1, 1, 3, 1])
    cot = rng.standard_normal((5, 3))
    ew = ember.tensor(w, requires_grad=True)
    (g,) = ember.autograd.grad((OPS["embedding"](ew, ember.tensor(idx), -1, True)
                                * ember.tensor(cot)).sum(), [ew])
    tw = torch.tensor(w, requires_grad=True)
    (tg,) = torch.autograd.grad((torch.embedding(tw, torch.tensor(idx), -1, True)
                                 * torch.tensor(cot)).sum(), [tw])
    np.testing.assert_allclose(g.numpy(), tg.numpy(), rtol=1e-10)
