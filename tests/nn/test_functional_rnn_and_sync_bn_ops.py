"""torch.lstm / gru / rnn_tanh / rnn_relu (the functional RNN entry points) against torch,
and SyncBatchNorm's statistics ops against torch's batch norm (torch runs those ops on
CUDA only, so the oracle is what they compute: batch statistics, F.batch_norm's output
and running update, and autograd's batch-norm gradients)."""
import numpy as np
import pytest
import torch

import ember

H, I, T, B, LAYERS = 4, 3, 5, 2, 2


def _params(rng, gates, bidirectional, bias):
    dirs = 2 if bidirectional else 1
    params = []
    for layer in range(LAYERS):
        for _ in range(dirs):
            width = I if layer == 0 else H * dirs
            params += [rng.standard_normal((gates * H, width)), rng.standard_normal((gates * H, H))]
            if bias:
                params += [rng.standard_normal(gates * H), rng.standard_normal(gates * H)]
    return [p.astype("float32") for p in params]


@pytest.mark.parametrize("name,gates", [("lstm", 4), ("gru", 3), ("rnn_tanh", 1),
                                        ("rnn_relu", 1)])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("bias,batch_first", [(True, False), (False, True)])
def test_functional_rnn_matches_torch(name, gates, bidirectional, bias, batch_first):
    rng = np.random.default_rng(0)
    params = _params(rng, gates, bidirectional, bias)
    dirs = 2 if bidirectional else 1
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I)).astype("float32")
    states = [rng.standard_normal((LAYERS * dirs, B, H)).astype("float32")
              for _ in range(2 if name == "lstm" else 1)]
    flags = (bias, LAYERS, 0.0, False, bidirectional, batch_first)

    def run(lib):
        hx = [lib.tensor(s) for s in states]
        hx = hx if name == "lstm" else hx[0]
        return getattr(lib, name)(lib.tensor(x), hx, [lib.tensor(p) for p in params], *flags)
    want, got = run(torch), run(ember)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w.numpy(), atol=1e-5, rtol=1e-5)


def test_functional_lstm_gradients_match_torch():
    rng = np.random.default_rng(1)
    params = _params(rng, 4, False, True)
    x = rng.standard_normal((T, B, I)).astype("float32")

    def grads(lib):
        ps = [lib.tensor(p, requires_grad=True) for p in params]
        xs = lib.tensor(x, requires_grad=True)
        hx = [lib.zeros(LAYERS, B, H), lib.zeros(LAYERS, B, H)]
        out, h, c = lib.lstm(xs, hx, ps, True, LAYERS, 0.0, True, False, False)
        (out.sum() + h.sum() * 2 + c.sum()).backward()
        return [xs.grad.numpy()] + [p.grad.numpy() for p in ps]
    for g, w in zip(grads(ember), grads(torch)):
        np.testing.assert_allclose(g, w, atol=1e-4, rtol=1e-4)


def _bn_input(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((6, 3, 5)).astype("float32")
    w = rng.standard_normal(3).astype("float32")
    b = rng.standard_normal(3).astype("float32")
    return x, w, b


def test_batch_norm_stats_and_elemt():
    x, w, b = _bn_input()
    eps = 1e-5
    mean, invstd = ember.batch_norm_stats(ember.tensor(x), eps)
    var_t, mean_t = torch.var_mean(torch.tensor(x), [0, 2], correction=0)
    np.testing.assert_allclose(mean.numpy(), mean_t.numpy(), atol=1e-6)
    np.testing.assert_allclose(invstd.numpy(), (var_t + eps).rsqrt().numpy(), rtol=1e-5)
    out = ember.batch_norm_elemt(ember.tensor(x), ember.tensor(w), ember.tensor(b), mean,
                                 invstd, eps)
    want = torch.nn.functional.batch_norm(torch.tensor(x), mean_t, var_t, torch.tensor(w),
                                          torch.tensor(b), False, 0.0, eps)
    np.testing.assert_allclose(out.numpy(), want.numpy(), atol=1e-5)


def test_gather_stats_with_counts_is_the_whole_batch():
    """Two processes' stats (4 and 2 rows) gather into the whole batch's, and the running
    statistics move as torch's training-mode batch_norm moves them."""
    x, _, _ = _bn_input(1)
    eps, momentum = 1e-5, 0.1
    parts = [ember.tensor(x[:4]), ember.tensor(x[4:])]
    stats = [ember.batch_norm_stats(p, eps) for p in parts]
    means = ember.stack([s[0] for s in stats])
    invstds = ember.stack([s[1] for s in stats])
    counts = ember.tensor([4.0 * 5, 2.0 * 5])
    running_mean, running_var = ember.zeros(3), ember.ones(3)
    mean, invstd = ember.batch_norm_gather_stats_with_counts(
        ember.tensor(x), means, invstds, running_mean, running_var, momentum, eps, counts)
    t_mean, t_var = torch.zeros(3), torch.ones(3)
    torch.nn.functional.batch_norm(torch.tensor(x), t_mean, t_var, training=True,
                                   momentum=momentum, eps=eps)
    var_t, mean_t = torch.var_mean(torch.tensor(x), [0, 2], correction=0)
    np.testing.assert_allclose(mean.numpy(), mean_t.numpy(), atol=1e-5)
    np.testing.assert_allclose(invstd.numpy(), (var_t + eps).rsqrt().numpy(), rtol=1e-4)
    np.testing.assert_allclose(running_mean.numpy(), t_mean.numpy(), atol=1e-5)
    np.testing.assert_allclose(running_var.numpy(), t_var.numpy(), atol=1e-4)


def test_backward_reduce_and_elemt_give_batch_norm_gradients():
    x, w, b = _bn_input(2)
    eps = 1e-5
    g = np.random.default_rng(3).standard_normal(x.shape).astype("float32")
    tx = torch.tensor(x, requires_grad=True)
    tw, tb = torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)
    torch.nn.functional.batch_norm(tx, None, None, tw, tb, True, 0.0, eps).backward(
        torch.tensor(g))
    ex, ew, eg = ember.tensor(x), ember.tensor(w), ember.tensor(g)
    mean, invstd = ember.batch_norm_stats(ex, eps)
    sum_dy, sum_dy_xmu, grad_w, grad_b = ember.batch_norm_backward_reduce(
        eg, ex, mean, invstd, ew, True, True, True)
    np.testing.assert_allclose(grad_w.numpy(), tw.grad.numpy(), atol=1e-4)
    np.testing.assert_allclose(grad_b.numpy(), tb.grad.numpy(), atol=1e-4)
    grad_x = ember.batch_norm_backward_elemt(eg, ex, mean, invstd, ew, sum_dy, sum_dy_xmu,
                                             ember.tensor([x.shape[0] * x.shape[2]],
                                                          dtype=ember.int32))
    np.testing.assert_allclose(grad_x.numpy(), tx.grad.numpy(), atol=1e-4)
    none = ember.batch_norm_backward_reduce(eg, ex, mean, invstd, ew, True, False, False)
    assert none[2] is None and none[3] is None and none[0] is not None
