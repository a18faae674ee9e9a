"""ember.func with modules against torch.func: functional_call (strict, tie_weights,
several dicts), stack_module_state and vmap over an ensemble, and torch's func tutorials
(model ensembling, per-sample gradients, jacobians and hessians, the neural tangent
kernel) written once and run on both libraries with the same weights."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import ember
import ember.func as F

from func_suite_util import close, to_lib


def _same_weights(build):
    """The module `build(lib)` in torch and in ember with torch's initial weights."""
    torch.manual_seed(0)
    tm = build(torch).double()
    em = build(ember).double()
    state = {k: ember.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()}
    em.load_state_dict(state)
    return em, tm


def _mlp(m, n_in=4, hidden=6, n_out=3):
    return m.nn.Sequential(m.nn.Linear(n_in, hidden), m.nn.Tanh(), m.nn.Linear(hidden, n_out))


def _cnn(m):
    return m.nn.Sequential(m.nn.Conv2d(1, 3, 3), m.nn.ReLU(), m.nn.MaxPool2d(2),
                           m.nn.Flatten(), m.nn.Linear(12, 4))


def _bn_net(m):
    return m.nn.Sequential(m.nn.Linear(4, 5), m.nn.BatchNorm1d(5), m.nn.ReLU(),
                           m.nn.Linear(5, 2))


def _tied(m):
    class Tied(m.nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = m.nn.Linear(3, 3)
            self.dec = m.nn.Linear(3, 3)
            self.dec.weight = self.enc.weight

        def forward(self, x, scale=1.0):
            return self.dec(self.enc(x).tanh()) * scale
    return Tied()


def _params(module, lib, scale=0.5):
    """Replacement values: every parameter scaled (fresh tensors, not the module's)."""
    return {k: (v.detach() * scale) for k, v in module.named_parameters()}


def _both(build, rng_shape, fn, tol=1e-7, seed=0):
    em, tm = _same_weights(build)
    x = np.random.default_rng(seed).standard_normal(rng_shape)
    want = fn(tm, torch, torch.func, torch.tensor(x))
    got = fn(em, ember, F, ember.tensor(x))
    close(_detached(got), _detached(want), tol)


def _detached(value):
    if isinstance(value, dict):
        return {k: _detached(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_detached(v) for v in value)
    return value.detach() if hasattr(value, "detach") else value


# --- functional_call ------------------------------------------------------------------
FUNCTIONAL_CALL = {
    "all_params": (_mlp, (2, 4), lambda mod, m, f, x: f.functional_call(
        mod, _params(mod, m), (x,))),
    "some_params": (_mlp, (2, 4), lambda mod, m, f, x: f.functional_call(
        mod, {"0.weight": mod[0].weight.detach() * 2}, (x,))),
    "single_arg_not_tuple": (_mlp, (2, 4), lambda mod, m, f, x: f.functional_call(
        mod, _params(mod, m), x)),
    "two_dicts": (_mlp, (2, 4), lambda mod, m, f, x: f.functional_call(
        mod, ({"0.weight": mod[0].weight.detach() * 2}, {"2.bias": mod[2].bias.detach() + 1}),
        (x,))),
    "kwargs": (_tied, (2, 3), lambda mod, m, f, x: f.functional_call(
        mod, _params(mod, m), (x,), {"scale": 3.0})),
    "tied_replaced_together": (_tied, (2, 3), lambda mod, m, f, x: f.functional_call(
        mod, {"enc.weight": m.zeros(3, 3, dtype=m.float64)}, (x,))),
    "tied_off": (_tied, (2, 3), lambda mod, m, f, x: f.functional_call(
        mod, {"enc.weight": m.zeros(3, 3, dtype=m.float64)}, (x,), tie_weights=False)),
    "tied_both_given_same": (_tied, (2, 3), lambda mod, m, f, x: _tied_same(mod, m, f, x)),
    "strict_complete": (_mlp, (2, 4), lambda mod, m, f, x: f.functional_call(
        mod, _params(mod, m), (x,), strict=True)),
    "buffers_eval_bn": (_bn_net, (3, 4), lambda mod, m, f, x: f.functional_call(
        mod.eval(), {"1.running_mean": m.ones(5, dtype=m.float64),
                     "1.running_var": m.full((5,), 4.0, dtype=m.float64)}, (x,))),
    "params_and_buffers_dicts": (_bn_net, (3, 4), lambda mod, m, f, x: f.functional_call(
        mod.eval(), (_params(mod, m), {k: v * 2 for k, v in mod.named_buffers()
                                       if v.is_floating_point()}), (x,))),
    "module_unchanged_after": (_mlp, (2, 4), lambda mod, m, f, x: (
        f.functional_call(mod, _params(mod, m), (x,)), mod(x))),
    "grad_through_functional_call": (_mlp, (2, 4), lambda mod, m, f, x: f.grad(
        lambda p: f.functional_call(mod, p, (x,)).pow(2).sum())(_params(mod, m))),
    "jacrev_wrt_params": (_mlp, (4,), lambda mod, m, f, x: f.jacrev(
        lambda p: f.functional_call(mod, p, (x,)))(_params(mod, m))),
    "autograd_through_functional_call": (_mlp, (2, 4), lambda mod, m, f, x: _eager_grads(
        mod, m, f, x)),
    "old_name_stateless": (_mlp, (2, 4), lambda mod, m, f, x: _stateless(mod, m, x)),
}


def _tied_same(mod, m, f, x):
    w = m.ones(3, 3, dtype=m.float64) * 0.1
    return f.functional_call(mod, {"enc.weight": w, "dec.weight": w}, (x,))


def _eager_grads(mod, m, f, x):
    p = {k: v.detach().clone().requires_grad_(True) for k, v in mod.named_parameters()}
    f.functional_call(mod, p, (x,)).sum().backward()
    return {k: v.grad for k, v in p.items()}


def _stateless(mod, m, x):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return m.nn.utils.stateless.functional_call(mod, _params(mod, m), (x,))


@pytest.mark.parametrize("name", list(FUNCTIONAL_CALL))
def test_functional_call(name):
    build, shape, fn = FUNCTIONAL_CALL[name]
    _both(build, shape, fn)


FUNCTIONAL_CALL_ERRORS = {
    "strict_missing": (_mlp, lambda mod, m, f, x: f.functional_call(
        mod, {"0.weight": mod[0].weight}, (x,), strict=True), "Missing key"),
    "strict_unexpected": (_mlp, lambda mod, m, f, x: f.functional_call(
        mod, {**_params(mod, m), "extra": x}, (x,), strict=True), "Unexpected key"),
    "overlapping_dicts": (_mlp, lambda mod, m, f, x: f.functional_call(
        mod, ({"0.bias": mod[0].bias}, {"0.bias": mod[0].bias}), (x,)), "0.bias"),
    "tied_given_twice": (_tied, lambda mod, m, f, x: f.functional_call(
        mod, {"enc.weight": m.ones(3, 3, dtype=m.float64),
              "dec.weight": m.zeros(3, 3, dtype=m.float64)}, (x,)), "tied"),
    "wrong_shape": (_mlp, lambda mod, m, f, x: f.functional_call(
        mod, {"0.weight": m.ones(2, 2, dtype=m.float64)}, (x,)), "shape|size|mat"),
}


@pytest.mark.parametrize("name", list(FUNCTIONAL_CALL_ERRORS))
def test_functional_call_errors(name):
    build, fn, pattern = FUNCTIONAL_CALL_ERRORS[name]
    em, tm = _same_weights(build)
    n_in = 3 if build is _tied else 4
    with pytest.raises(Exception):
        fn(tm, torch, torch.func, torch.ones(2, n_in, dtype=torch.float64))
    with pytest.raises(Exception, match=pattern):
        fn(em, ember, F, ember.ones(2, n_in, dtype=ember.float64))


def test_tied_weights_module_keeps_its_tie_after_the_call():
    em, _ = _same_weights(_tied)
    F.functional_call(em, {"enc.weight": ember.zeros(3, 3, dtype=ember.float64)},
                      (ember.ones(1, 3, dtype=ember.float64),))
    assert em.dec.weight is em.enc.weight
    assert float(em.enc.weight.abs().sum()) > 0


# --- stack_module_state and ensembles (the model-ensembling tutorial) --------------------
def _ensemble(build, n=3):
    """n torch models and ember twins with the same weights (different per model)."""
    pairs = []
    for i in range(n):
        torch.manual_seed(i)
        tm = build(torch).double()
        em = build(ember).double()
        em.load_state_dict({k: ember.tensor(v.detach().numpy())
                            for k, v in tm.state_dict().items()})
        pairs.append((em, tm))
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _fmodel(base, f):
    return lambda params, buffers, x: f.functional_call(base, (params, buffers), (x,))


ENSEMBLE = {
    # a different minibatch per model / the same minibatch for every model
    "mlp_different_minibatches": (_mlp, (3, 5, 4), (0, 0, 0)),
    "mlp_same_minibatch": (_mlp, (5, 4), (0, 0, None)),
    "cnn_same_minibatch": (_cnn, (2, 1, 6, 6), (0, 0, None)),
    "cnn_different_minibatches": (_cnn, (3, 2, 1, 6, 6), (0, 0, 0)),
    "bn_eval_same_minibatch": (_bn_net, (5, 4), (0, 0, None)),
}


@pytest.mark.parametrize("name", list(ENSEMBLE))
@pytest.mark.parametrize("meta_base", [False, True])
def test_ensemble_with_stack_module_state(name, meta_base):
    build, shape, in_dims = ENSEMBLE[name]
    ems, tms = _ensemble(build)
    for mod in ems + tms:
        mod.eval()
    x = np.random.default_rng(1).standard_normal(shape)
    results = []
    for lib, models in ((torch, tms), (ember, ems)):
        params, buffers = lib.func.stack_module_state(models)
        base = copy.deepcopy(models[0])
        if meta_base:
            base = base.to("meta")
        results.append(lib.func.vmap(_fmodel(base, lib.func), in_dims=in_dims)(
            params, buffers, lib.tensor(x)))
    close(results[1].detach(), results[0].detach(), 1e-7)
    # and each model's own output
    for k, em in enumerate(ems):
        xk = ember.tensor(x[k] if in_dims[2] == 0 else x)
        close(results[1][k].detach(), torch.tensor(em(xk).detach().numpy()), 1e-9)


def test_stack_module_state_layout_and_leaves():
    ems, tms = _ensemble(_bn_net)
    ep, eb = F.stack_module_state(ems)
    tp, tb = torch.func.stack_module_state(tms)
    close(_detached(ep), _detached(tp))
    close(eb, tb)
    assert all(v.requires_grad and v.is_leaf for v in ep.values())
    assert list(ep) == list(tp) and list(eb) == list(tb)


STACK_ERRORS = {
    "empty": lambda lib, ms: lib.func.stack_module_state([]),
    "mixed_modes": lambda lib, ms: lib.func.stack_module_state([ms[0].train(), ms[1].eval()]),
    "mixed_classes": lambda lib, ms: lib.func.stack_module_state(
        [ms[0], lib.nn.Linear(4, 6).double()]),
}


@pytest.mark.parametrize("name", list(STACK_ERRORS))
def test_stack_module_state_errors(name):
    ems, tms = _ensemble(_mlp, 2)
    with pytest.raises(Exception):
        STACK_ERRORS[name](torch, tms)
    with pytest.raises(RuntimeError, match="stack_module_state|Expected"):
        STACK_ERRORS[name](ember, ems)


def test_ensemble_training_step_gradients():
    """Gradients of an ensemble's summed loss reach the stacked leaves (training an
    ensemble at once, as the tutorial suggests)."""
    ems, tms = _ensemble(_mlp)
    x = np.random.default_rng(2).standard_normal((5, 4))
    grads = []
    for lib, models in ((torch, tms), (ember, ems)):
        params, buffers = lib.func.stack_module_state(models)
        base = copy.deepcopy(models[0]).to("meta")
        out = lib.func.vmap(_fmodel(base, lib.func), in_dims=(0, 0, None))(
            params, buffers, lib.tensor(x))
        out.pow(2).sum().backward()
        grads.append({k: v.grad for k, v in params.items()})
    close(grads[1], grads[0])


# --- per-sample gradients (the tutorial) ------------------------------------------------
def _per_sample_grads(mod, lib, f, data, targets, loss_name="nll"):
    params = {k: v.detach() for k, v in mod.named_parameters()}
    buffers = {k: v.detach() for k, v in mod.named_buffers()}

    def compute_loss(params, buffers, sample, target):
        batch, targets = sample.unsqueeze(0), target.unsqueeze(0)
        out = f.functional_call(mod, (params, buffers), (batch,))
        if loss_name == "nll":
            return lib.nn.functional.nll_loss(lib.nn.functional.log_softmax(out, -1), targets)
        return lib.nn.functional.mse_loss(out, targets)
    return f.vmap(f.grad(compute_loss), in_dims=(None, None, 0, 0))(params, buffers, data,
                                                                     targets)


PER_SAMPLE = {
    "mlp_nll": (_mlp, (6, 4), lambda rng: rng.integers(0, 3, size=6), "nll"),
    "mlp_mse": (_mlp, (6, 4), lambda rng: rng.standard_normal((6, 3)), "mse"),
    "cnn_nll": (_cnn, (4, 1, 6, 6), lambda rng: rng.integers(0, 4, size=4), "nll"),
}


@pytest.mark.parametrize("name", list(PER_SAMPLE))
def test_per_sample_gradients(name):
    build, shape, make_targets, loss_name = PER_SAMPLE[name]
    em, tm = _same_weights(build)
    rng = np.random.default_rng(3)
    data, targets = rng.standard_normal(shape), make_targets(rng)
    want = _per_sample_grads(tm, torch, torch.func, torch.tensor(data), torch.tensor(targets),
                             loss_name)
    got = _per_sample_grads(em, ember, F, ember.tensor(data), ember.tensor(targets), loss_name)
    close(got, want, 1e-7)
    # the tutorial's check: each per-sample gradient equals a batch-of-one backward
    for i in range(shape[0]):
        em.zero_grad()
        out = em(ember.tensor(data[i:i + 1]))
        tgt = ember.tensor(targets[i:i + 1])
        loss = ember.nn.functional.nll_loss(ember.nn.functional.log_softmax(out, -1), tgt) \
            if loss_name == "nll" else ember.nn.functional.mse_loss(out, tgt)
        loss.backward()
        for k, p in em.named_parameters():
            np.testing.assert_allclose(got[k][i].numpy(), p.grad.numpy(), rtol=1e-7, atol=1e-9)


# --- jacobians and hessians (the tutorial) ---------------------------------------------
def _predict(m):
    return lambda weight, bias, x: m.nn.functional.linear(x, weight, bias).tanh()


JACOBIANS = {
    "jacrev_wrt_x": lambda m, f, w, b, x: f.jacrev(_predict(m), argnums=2)(w, b, x[0]),
    "jacfwd_wrt_x": lambda m, f, w, b, x: f.jacfwd(_predict(m), argnums=2)(w, b, x[0]),
    "jacrev_wrt_weight_bias": lambda m, f, w, b, x: f.jacrev(_predict(m), argnums=(0, 1))(
        w, b, x[0]),
    "jacfwd_wrt_weight_bias": lambda m, f, w, b, x: f.jacfwd(_predict(m), argnums=(0, 1))(
        w, b, x[0]),
    "batch_jacobian_vmap": lambda m, f, w, b, x: f.vmap(f.jacrev(_predict(m), argnums=2),
                                                        in_dims=(None, None, 0))(w, b, x),
    "batch_jacobian_vmap_jacfwd": lambda m, f, w, b, x: f.vmap(
        f.jacfwd(_predict(m), argnums=2), in_dims=(None, None, 0))(w, b, x),
    "batch_jacobian_sum_trick": lambda m, f, w, b, x: f.jacrev(
        lambda w, b, x: _predict(m)(w, b, x).sum(0), argnums=2)(w, b, x).movedim(1, 0),
    "jacrev_chunked": lambda m, f, w, b, x: f.jacrev(_predict(m), argnums=2, chunk_size=2)(
        w, b, x[0]),
    "hessian_wrt_x": lambda m, f, w, b, x: f.hessian(_predict(m), argnums=2)(w, b, x[0]),
    "hessian_as_jacfwd_jacfwd": lambda m, f, w, b, x: f.jacfwd(f.jacfwd(_predict(m), 2), 2)(
        w, b, x[0]),
    "hessian_as_jacrev_jacrev": lambda m, f, w, b, x: f.jacrev(f.jacrev(_predict(m), 2), 2)(
        w, b, x[0]),
    "batch_hessian": lambda m, f, w, b, x: f.vmap(f.hessian(_predict(m), argnums=2),
                                                  in_dims=(None, None, 0))(w, b, x),
    "hvp_jvp_of_grad": lambda m, f, w, b, x: f.jvp(
        f.grad(lambda x: _predict(m)(w, b, x).sum()), (x[0],), (x[1],))[1],
    "hvp_vjp_of_grad": lambda m, f, w, b, x: f.vjp(
        f.grad(lambda x: _predict(m)(w, b, x).sum()), x[0])[1](x[1]),
}


@pytest.mark.parametrize("name", list(JACOBIANS))
def test_jacobians_hessians_tutorial(name):
    rng = np.random.default_rng(4)
    w, b, x = rng.standard_normal((5, 4)), rng.standard_normal(5), rng.standard_normal((3, 4))
    want = JACOBIANS[name](torch, torch.func, *to_lib([w, b, x], torch))
    got = JACOBIANS[name](ember, F, *to_lib([w, b, x], ember))
    close(got, want, 1e-7)


# --- the neural tangent kernel (the tutorial) ---------------------------------------------
def _ntk_jacobian_contraction(mod, lib, f, x1, x2, compute):
    params = {k: v.detach() for k, v in mod.named_parameters()}

    def fnet_single(params, x):
        return f.functional_call(mod, params, (x.unsqueeze(0),)).squeeze(0)
    jac1 = f.vmap(f.jacrev(fnet_single), (None, 0))(params, x1)
    jac2 = f.vmap(f.jacrev(fnet_single), (None, 0))(params, x2)
    jac1 = [j.flatten(2) for j in jac1.values()]
    jac2 = [j.flatten(2) for j in jac2.values()]
    eq = {"full": "Naf,Mbf->NMab", "trace": "Naf,Maf->NM", "diagonal": "Naf,Maf->NMa"}[compute]
    return lib.stack([lib.einsum(eq, j1, j2) for j1, j2 in zip(jac1, jac2)]).sum(0)


def _ntk_vps(mod, lib, f, x1, x2):
    """The tutorial's second method: NTK-vector products (vjp then jvp), vmapped twice."""
    params = {k: v.detach() for k, v in mod.named_parameters()}

    def fnet_single(params, x):
        return f.functional_call(mod, params, (x.unsqueeze(0),)).squeeze(0)

    def get_ntk(x1, x2):
        def func_x1(params):
            return fnet_single(params, x1)

        def func_x2(params):
            return fnet_single(params, x2)
        output, vjp_fn = f.vjp(func_x1, params)

        def get_ntk_slice(vec):
            vjps = vjp_fn(vec)
            _, jvps = f.jvp(func_x2, (params,), vjps)
            return jvps
        basis = lib.eye(output.numel(), dtype=output.dtype).view(output.numel(), -1)
        return f.vmap(get_ntk_slice)(basis)
    result = f.vmap(f.vmap(get_ntk, (None, 0)), (0, None))(x1, x2)
    return result


NTK = {
    "mlp_full": (_mlp, (3, 4), (2, 4), "full"),
    "mlp_trace": (_mlp, (3, 4), (2, 4), "trace"),
    "mlp_diagonal": (_mlp, (3, 4), (2, 4), "diagonal"),
    "cnn_full": (_cnn, (2, 1, 6, 6), (3, 1, 6, 6), "full"),
    "mlp_ntk_vector_products": (_mlp, (2, 4), (3, 4), "vps"),
}


@pytest.mark.parametrize("name", list(NTK))
def test_neural_tangent_kernel(name):
    build, s1, s2, compute = NTK[name]
    em, tm = _same_weights(build)
    rng = np.random.default_rng(5)
    x1, x2 = rng.standard_normal(s1), rng.standard_normal(s2)
    results = []
    for mod, lib, f in ((tm, torch, torch.func), (em, ember, F)):
        a, b = lib.tensor(x1), lib.tensor(x2)
        results.append(_ntk_vps(mod, lib, f, a, b) if compute == "vps" else
                       _ntk_jacobian_contraction(mod, lib, f, a, b, compute))
    close(results[1], results[0], 1e-7)


def test_ntk_methods_agree():
    em, _ = _same_weights(_mlp)
    rng = np.random.default_rng(6)
    x1, x2 = ember.tensor(rng.standard_normal((2, 4))), ember.tensor(rng.standard_normal((3, 4)))
    a = _ntk_jacobian_contraction(em, ember, F, x1, x2, "full")
    b = _ntk_vps(em, ember, F, x1, x2)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-8, atol=1e-10)


def test_ensemble_of_train_mode_batch_norm_after_replace_all_batch_norm_modules():
    """The tutorials' recipe for vmap over models with BatchNorm in training mode: stop
    tracking running statistics, then each model normalizes with its own batch's."""
    ems, tms = _ensemble(_bn_net)
    x = np.random.default_rng(7).standard_normal((3, 5, 4))
    results = []
    for lib, models in ((torch, tms), (ember, ems)):
        for mod in models:
            lib.func.replace_all_batch_norm_modules_(mod.train())
        params, buffers = lib.func.stack_module_state(models)
        base = copy.deepcopy(models[0]).to("meta")
        results.append(lib.func.vmap(_fmodel(base, lib.func))(params, buffers,
                                                              lib.tensor(x)))
    close(results[1].detach(), results[0].detach(), 1e-7)


def test_per_sample_grads_of_train_mode_batch_norm_model():
    """Per-sample gradients through a BatchNorm that normalizes each sample's own batch
    (running statistics off): vmap over batches of samples, grad inside."""
    em, tm = _same_weights(_bn_net)
    x = np.random.default_rng(8).standard_normal((3, 4, 4))
    y = np.random.default_rng(9).integers(0, 2, size=(3, 4))
    got = []
    for lib, mod in ((torch, tm), (ember, em)):
        lib.func.replace_all_batch_norm_modules_(mod.train())
        params = {k: v.detach() for k, v in mod.named_parameters()}

        def loss(p, xb, yb):
            return lib.nn.functional.cross_entropy(lib.func.functional_call(mod, p, (xb,)), yb)
        got.append(lib.func.vmap(lib.func.grad(loss), in_dims=(None, 0, 0))(
            params, lib.tensor(x), lib.tensor(y)))
    close(got[1], got[0], 1e-7)


def test_vmap_of_a_module_call_with_buffers_in_eval_mode():
    em, tm = _same_weights(_bn_net)
    em.eval()
    tm.eval()
    x = np.random.default_rng(10).standard_normal((3, 2, 4))
    want = torch.func.vmap(tm)(torch.tensor(x))
    close(F.vmap(em)(ember.tensor(x)).detach(), want.detach(), 1e-7)
