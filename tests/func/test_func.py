"""ember.func against torch.func: vmap, grad, vjp, jacrev (and jvp/jacfwd/hessian once the
forward-mode pass exists), their compositions, pytree in/out dims, and bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.func as tf

import ember
import ember.func as F
from ember.passes.vmap import BatchingRuleError


def pair(rng, *shape):
    """The same float64 data as an ember and a torch tensor."""
    a = rng.standard_normal(shape)
    return ember.tensor(a), torch.tensor(a)


def close(got, want, tol=1e-9):
    if isinstance(want, dict):
        assert set(got) == set(want)
        for k in want:
            close(got[k], want[k], tol)
        return
    if isinstance(want, (tuple, list)):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            close(g, w, tol)
        return
    assert tuple(got.shape) == tuple(want.shape), (got.shape, want.shape)
    np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=tol, atol=tol)


# the same function written for both libraries: (ember module, torch module) -> fn
FUNCTIONS = {
    "pointwise": lambda m: lambda x, y: (m.sin(x) * y + m.exp(-x * x)),
    "reduction": lambda m: lambda x, y: (x * y).sum(-1) + x.amax(-1) + x.mean(0).sum(),
    "matmul": lambda m: lambda x, y: m.tanh(x @ y.transpose(0, 1)),
    "softmax": lambda m: lambda x, y: m.softmax(x, -1) * y,
}


@pytest.mark.parametrize("name", FUNCTIONS)
def test_vmap_matches_torch(name, rng):
    xe, xt = pair(rng, 5, 3, 4)
    ye, yt = pair(rng, 3, 4)
    fe, ft = FUNCTIONS[name](ember), FUNCTIONS[name](torch)
    close(F.vmap(fe, in_dims=(0, None))(xe, ye), tf.vmap(ft, in_dims=(0, None))(xt, yt))
    close(F.vmap(fe, in_dims=(1, None), out_dims=1)(xe.movedim(0, 1), ye),
          tf.vmap(ft, in_dims=(1, None), out_dims=1)(xt.movedim(0, 1), yt))


def test_vmap_both_batched_and_nested(rng):
    xe, xt = pair(rng, 2, 3, 4)
    ye, yt = pair(rng, 2, 3, 4)
    fe = FUNCTIONS["matmul"](ember)
    ft = FUNCTIONS["matmul"](torch)
    close(F.vmap(fe)(xe, ye), tf.vmap(ft)(xt, yt))
    inner_e = F.vmap(lambda a, b: (a * b).sum(), in_dims=(0, None))
    inner_t = tf.vmap(lambda a, b: (a * b).sum(), in_dims=(0, None))
    close(F.vmap(inner_e, in_dims=(None, 0))(xe[0], ye[0]),
          tf.vmap(inner_t, in_dims=(None, 0))(xt[0], yt[0]))
    # the inner function closes over the outer example
    close(F.vmap(lambda a: F.vmap(lambda b: a @ b)(ye[1]))(xe[1]),
          tf.vmap(lambda a: tf.vmap(lambda b: a @ b)(yt[1]))(xt[1]))


def test_vmap_pytree_in_and_out_dims(rng):
    xe, xt = pair(rng, 4, 3)
    ye, yt = pair(rng, 3, 4)

    def fe(d, scale):
        return {"sum": d["x"] + d["y"] * scale, "prod": (d["x"] * d["y"],)}
    ft = fe
    in_dims = ({"x": 0, "y": 1}, None)
    out_dims = {"sum": 1, "prod": (0,)}
    close(F.vmap(fe, in_dims=in_dims, out_dims=out_dims)({"x": xe, "y": ye}, 2.0),
          tf.vmap(ft, in_dims=in_dims, out_dims=out_dims)({"x": xt, "y": yt}, 2.0))
    close(F.vmap(lambda a: (a, a.sum()))(xe),
          tf.vmap(lambda a: (a, a.sum()))(xt))
    close(F.vmap(lambda a: a * 2, chunk_size=3)(xe), xt * 2)
    close(F.vmap(lambda a, b: a * b, in_dims=(0, 1))(xe, ye), xt * yt.T)


def test_vmap_out_dims_none_for_unbatched_output(rng):
    xe, xt = pair(rng, 4, 3)
    we, wt = pair(rng, 3)
    got = F.vmap(lambda a: (a * we, we * 2), out_dims=(0, None))(xe)
    want = tf.vmap(lambda a: (a * wt, wt * 2), out_dims=(0, None))(xt)
    close(got, want)
    with pytest.raises(ValueError, match="out_dims is None"):
        F.vmap(lambda a: a * 2, out_dims=None)(xe)


def test_vmap_errors(rng):
    xe, _ = pair(rng, 4, 3)
    with pytest.raises(ValueError, match="in_dim=2"):
        F.vmap(lambda a: a, in_dims=2)(xe)
    with pytest.raises(ValueError, match="same size in the mapped dimension"):
        F.vmap(lambda a, b: a + b)(xe, ember.zeros(5, 3, dtype=ember.float64))
    with pytest.raises(ValueError, match="non-Tensor"):
        F.vmap(lambda a, s: a * s, in_dims=(0, 0))(xe, 2.0)
    with pytest.raises(ValueError, match="in_dims is not compatible"):
        F.vmap(lambda a, b: a + b, in_dims=(0,))(xe, xe)
    with pytest.raises(BatchingRuleError, match="as_strided"):
        F.vmap(lambda a: a.as_strided([2], [1]))(xe)
    with pytest.raises(BatchingRuleError, match="dropout.*randomness"):
        F.vmap(lambda a: ember.nn.functional.dropout(a, 0.5, True))(xe)


def test_vmap_randomness_same_shares_the_mask(rng):
    x = ember.ones(4, 3, dtype=ember.float64)
    out = F.vmap(lambda a: ember.nn.functional.dropout(a, 0.5, True), randomness="same")(x)
    assert all(np.array_equal(out[0].numpy(), out[i].numpy()) for i in range(4))


def test_grad_vjp_match_torch(rng):
    xe, xt = pair(rng, 5)
    ye, yt = pair(rng, 5)

    def fe(x, y):
        return (ember.sin(x) * y).sum() + (x * x).mean()

    def ft(x, y):
        return (torch.sin(x) * y).sum() + (x * x).mean()
    close(F.grad(fe)(xe, ye), tf.grad(ft)(xt, yt))
    close(F.grad(fe, argnums=(0, 1))(xe, ye), tf.grad(ft, argnums=(0, 1))(xt, yt))
    g, v = F.grad_and_value(fe)(xe, ye)
    gt, vt = tf.grad_and_value(ft)(xt, yt)
    close((g, v), (gt, vt))
    aux_e = F.grad(lambda x: (fe(x, ye), x * 2), has_aux=True)(xe)
    aux_t = tf.grad(lambda x: (ft(x, yt), x * 2), has_aux=True)(xt)
    close(aux_e, aux_t)
    out_e, fn_e = F.vjp(lambda x, y: (x * y, ember.exp(x)), xe, ye)
    out_t, fn_t = tf.vjp(lambda x, y: (x * y, torch.exp(x)), xt, yt)
    close(out_e, out_t)
    ce, ct = pair(rng, 5)
    close(fn_e((ce, ce * 2)), fn_t((ct, ct * 2)))


def test_grad_of_grad_and_vmap_of_grad(rng):
    xe, xt = pair(rng, 4)
    close(F.grad(lambda x: F.grad(lambda y: (y ** 3).sum())(x).sum())(xe),
          tf.grad(lambda x: tf.grad(lambda y: (y ** 3).sum())(x).sum())(xt))
    be, bt = pair(rng, 3, 4)
    close(F.vmap(F.grad(lambda x: (ember.tanh(x) * x).sum()))(be),
          tf.vmap(tf.grad(lambda x: (torch.tanh(x) * x).sum()))(bt))


def test_jacrev_matches_torch(rng):
    xe, xt = pair(rng, 4)
    we, wt = pair(rng, 3, 4)
    close(F.jacrev(lambda x: ember.tanh(we @ x))(xe), tf.jacrev(lambda x: torch.tanh(wt @ x))(xt))
    close(F.jacrev(lambda x: (x.sin() * x).sum())(xe), tf.jacrev(lambda x: (x.sin() * x).sum())(xt))
    close(F.jacrev(lambda x, w: w @ x, argnums=(0, 1))(xe, we),
          tf.jacrev(lambda x, w: w @ x, argnums=(0, 1))(xt, wt))
    close(F.jacrev(F.jacrev(lambda x: (x.sin() * x).sum()))(xe),
          tf.hessian(lambda x: (x.sin() * x).sum())(xt))


def test_per_example_gradients_of_an_mlp(rng):
    ember.manual_seed(0)
    model = ember.nn.Sequential(ember.nn.Linear(5, 8), ember.nn.Tanh(), ember.nn.Linear(8, 3))
    tmodel = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    params = {k: v.detach() for k, v in model.named_parameters()}
    tparams = {k: torch.tensor(v.numpy()) for k, v in params.items()}
    xs, xt = pair(rng, 6, 5)
    labels = rng.integers(0, 3, size=6)
    ys, yt = ember.tensor(labels), torch.tensor(labels)

    def loss(p, x, y):
        out = F.functional_call(model, p, (x.unsqueeze(0),))
        return ember.nn.functional.cross_entropy(out, y.unsqueeze(0))

    def tloss(p, x, y):
        out = tf.functional_call(tmodel, p, (x.unsqueeze(0),))
        return torch.nn.functional.cross_entropy(out, y.unsqueeze(0))
    got = F.vmap(F.grad(loss), in_dims=(None, 0, 0))(params, xs.float(), ys)
    want = tf.vmap(tf.grad(tloss), in_dims=(None, 0, 0))(tparams, xt.float(), yt)
    close(got, want, tol=1e-5)


def test_grad_errors(rng):
    xe, _ = pair(rng, 3)
    with pytest.raises(ember.AutogradError, match="scalar"):
        F.grad(lambda x: x * 2)(xe)
    with pytest.raises(ValueError, match="argnums"):
        F.grad(lambda x: x.sum(), argnums=3)(xe)
    with pytest.raises(ember.AutogradError, match="floating point"):
        F.grad(lambda x: x.sum())(ember.tensor([1, 2]))


def _needs_forward_mode():
    try:
        import ember.passes.forward_ad  # noqa: F401
    except ImportError:
        pytest.skip("ember.passes.forward_ad (the jvp graph pass) is not in this tree yet")


def test_jvp_jacfwd_hessian_match_torch(rng):
    _needs_forward_mode()
    xe, xt = pair(rng, 4)
    ve, vt = pair(rng, 4)
    close(F.jvp(lambda x: x.sin() * x, (xe,), (ve,)),
          tf.jvp(lambda x: x.sin() * x, (xt,), (vt,)))
    we, wt = pair(rng, 3, 4)
    close(F.jacfwd(lambda x: ember.tanh(we @ x))(xe), tf.jacfwd(lambda x: torch.tanh(wt @ x))(xt))
    close(F.hessian(lambda x: (x.sin() * x).sum())(xe),
          tf.hessian(lambda x: (x.sin() * x).sum())(xt))
    close(F.jacrev(F.jacfwd(lambda x: (x.exp() * x).sum()))(xe),
          tf.jacrev(tf.jacfwd(lambda x: (x.exp() * x).sum()))(xt))


def test_per_example_gradients_of_a_cnn(rng):
    """Conv weight gradients per example go through the grouped-conv batching rule."""
    w, b = rng.standard_normal((4, 2, 3, 3)), rng.standard_normal(4)
    xs = rng.standard_normal((3, 2, 6, 6))

    def loss(lib, conv):
        return lambda p, x: (conv(x.unsqueeze(0), p[0], p[1], padding=1).tanh() ** 2).sum()
    got = F.vmap(F.grad(loss(ember, ember.nn.functional.conv2d)), in_dims=(None, 0))(
        (ember.tensor(w), ember.tensor(b)), ember.tensor(xs))
    want = tf.vmap(tf.grad(loss(torch, torch.nn.functional.conv2d)), in_dims=(None, 0))(
        (torch.tensor(w), torch.tensor(b)), torch.tensor(xs))
    close(got, want)
    # grads w.r.t. the input too: convolution_backward_input with the batch folded into N
    got_x = F.vmap(F.grad(loss(ember, ember.nn.functional.conv2d), argnums=1),
                   in_dims=(None, 0))((ember.tensor(w), ember.tensor(b)), ember.tensor(xs))
    want_x = tf.vmap(tf.grad(loss(torch, torch.nn.functional.conv2d), argnums=1),
                     in_dims=(None, 0))((torch.tensor(w), torch.tensor(b)), torch.tensor(xs))
    close(got_x, want_x)
