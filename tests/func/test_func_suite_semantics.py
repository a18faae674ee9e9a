"""ember.func's finer semantics against torch.func: no_grad/enable_grad/detach inside
and outside transforms, in-place updates (through views, on inputs) inside grad and
vmap, constants made inside transforms, and torch.autograd.functional's options
(create_graph, strict, vectorize, strategy) on cases tests/autograd/test_functional.py
does not already hold."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
import ember.func as F

from func_suite_util import close, make_inputs, run_case, seed_of, to_lib

V3, V4, M23, M34 = (3,), (4,), (2, 3), (3, 4)


def _no_grad_inside(m, f, x):
    def fn(x):
        with m.no_grad():
            c = x * 2
        return (c * x).sum()
    return f.grad(fn)(x)


def _enable_grad_inside(m, f, x):
    def fn(x):
        with m.enable_grad():
            y = x.sin()
        return (y * x).sum()
    return f.grad(fn)(x)


def _no_grad_outside(m, f, x):
    with m.no_grad():
        return f.grad(lambda x: (x ** 3).sum())(x)


def _inplace_view_mul(m, f, x):
    def fn(x):
        y = x.clone()
        y[1:].mul_(3)
        y.select(0, 0).add_(x[2])
        return (y * y).sum()
    return f.grad(fn)(x)


def _inplace_view_vmap(m, f, x):
    def fn(r):
        y = r.clone()
        y[:, 0] = r.sum(1)
        y.diagonal().zero_()
        return y
    return f.vmap(fn)(x)


def _transposed_view_update(m, f, x):
    def fn(x):
        y = x.clone()
        y.t()[0] += 1.0
        return (y.exp() * x).sum()
    return f.grad(fn)(x)


def _detach_inside(m, f, x):
    return f.grad(lambda x: (x.detach() * x).sum())(x)


def _tensor_ctor_inside(m, f, x):
    return f.grad(lambda x: (x * m.tensor([1.0, 2.0, 3.0], dtype=x.dtype)).sum())(x)


def _tensor_ctor_inside_vmap(m, f, x):
    return f.vmap(lambda r: r + m.tensor([1.0, 2.0, 3.0, 4.0], dtype=r.dtype))(x)


def _grad_unrelated(m, f, x, y):
    return f.grad(lambda x: (y ** 2).sum() + 0 * x.sum())(x)


def _grad_of_vjp(m, f, x, c):
    return f.grad(lambda x: f.vjp(lambda y: y.sin() * y, x)[1](c)[0].sum())(x)


def _vjp_of_grad(m, f, x, c):
    return f.vjp(f.grad(lambda y: (y.exp() * y).sum()), x)[1](c)


def _vmap_grad_argnums(m, f, x, y):
    return f.vmap(f.grad(lambda a, b: (a * b.sin()).sum(), argnums=(0, 1)))(x, y)


def _vmap_jvp_has_aux(m, f, x, t):
    return f.vmap(lambda a, b: f.jvp(lambda y: (y.exp(), y.sum()), (a,), (b,),
                                     has_aux=True))(x, t)


def _vmap_vjp_has_aux(m, f, x, c):
    def one(a, b):
        out, fn, aux = f.vjp(lambda y: (y.tanh(), y.mean()), a, has_aux=True)
        return out, fn(b), aux
    return f.vmap(one)(x, c)


def _vmap_method_inplace(m, f, x, y):
    out = f.vmap(m.Tensor.add_, in_dims=(0, None))(x, y)
    return out, x


def _jacrev_has_aux_argnums(m, f, x, y):
    return f.jacrev(lambda x, y: (x * y, {"s": x.sum()}), argnums=(0, 1), has_aux=True)(x, y)


def _jacfwd_randomness_same(m, f, x):
    return f.jacfwd(lambda x: x * 2, randomness="same")(x)


def _jacrev_pytree_chunked(m, f, d):
    return f.jacrev(lambda d: {"u": d["a"] * d["b"], "v": (d["a"].sum(),)}, chunk_size=2)(d)


def _hessian_of_functional_call(m, f, w, x):
    lin = m.nn.Linear(3, 2, bias=False).double()
    return f.hessian(lambda p: f.functional_call(lin, p, (x,)).tanh().sum())({"weight": w})


def _grad_with_int_arg_argnums(m, f, x, idx):
    return f.grad(lambda x, i: x[i].pow(2).sum())(x, idx)


def _vmap_index_put(m, f, x, v):
    def fn(r, val):
        y = r.clone()
        y[m.tensor([0, 2])] = val
        return y
    return f.vmap(fn, in_dims=(0, None))(x, v)


def _vmap_scatter_add(m, f, x, src):
    idx = m.tensor([0, 1, 0, 1])
    return f.vmap(lambda a, s: a.scatter_add(0, idx, s))(x, src)


def _bn(m, x, w, rm, rv):
    return m.nn.functional.batch_norm(x, rm, rv, w, None, training=True, momentum=0.5)


def _grad_updates_running_stats(m, f, x, w, rm, rv):
    g = f.grad(lambda x, w, rm, rv: (_bn(m, x, w, rm, rv) ** 3).sum(), argnums=(0, 1))(
        x, w, rm, rv)
    return g, rm, rv


def _vjp_updates_running_stats(m, f, x, w, rm, rv, c):
    out, fn = f.vjp(lambda x, w: _bn(m, x, w, rm, rv).sin(), x, w)   # stats captured
    return out, fn(c), rm, rv


def _jvp_updates_running_stats(m, f, x, w, rm, rv, t):
    out = f.jvp(lambda x: _bn(m, x, w, rm, rv).tanh(), (x,), (t,))
    return out, rm, rv


def _inplace_on_input_inside_grad(m, f, x, y):
    def fn(x, y):
        y.mul_(2)
        return (x * y).sum()
    return f.grad(fn)(x, y), y


def _grad_of_grad_updating_input(m, f, x, c):
    def inner(y, c):
        c.add_(y.detach())
        return (y ** 3).sum()
    return f.grad(lambda x, c: f.grad(inner)(x, c).sin().sum())(x, c), c


SEMANTICS = {
    "grad_of_grad_updating_an_input": (_grad_of_grad_updating_input, [V3, V3]),
    "grad_updates_running_stats": (_grad_updates_running_stats, [(4, 3), (3,), (3,),
                                                                   lambda rng: np.ones(3)]),
    "vjp_updates_running_stats": (_vjp_updates_running_stats, [(4, 3), (3,), (3,),
                                                                 lambda rng: np.ones(3),
                                                                 (4, 3)]),
    "jvp_updates_running_stats": (_jvp_updates_running_stats, [(4, 3), (3,), (3,),
                                                                 lambda rng: np.ones(3),
                                                                 (4, 3)]),
    "inplace_on_undifferentiated_input_inside_grad": (_inplace_on_input_inside_grad,
                                                      [V3, V3]),
    "no_grad_inside_grad": (_no_grad_inside, [V3]),
    "enable_grad_inside_grad": (_enable_grad_inside, [V3]),
    "no_grad_outside_grad": (_no_grad_outside, [V3]),
    "inplace_through_view_in_grad": (_inplace_view_mul, [V3]),
    "inplace_through_view_in_vmap": (_inplace_view_vmap, [(2, 3, 3)]),
    "inplace_through_transposed_view": (_transposed_view_update, [(3, 3)]),
    "detach_inside_grad": (_detach_inside, [V3]),
    "tensor_ctor_inside_grad": (_tensor_ctor_inside, [V3]),
    "tensor_ctor_inside_vmap": (_tensor_ctor_inside_vmap, [M34]),
    "grad_of_unrelated_output": (_grad_unrelated, [V3, V3]),
    "grad_of_vjp": (_grad_of_vjp, [V3, V3]),
    "vjp_of_grad": (_vjp_of_grad, [V3, V3]),
    "vmap_grad_argnums": (_vmap_grad_argnums, [M34, M34]),
    "vmap_jvp_has_aux": (_vmap_jvp_has_aux, [M34, M34]),
    "vmap_vjp_has_aux": (_vmap_vjp_has_aux, [M34, M34]),
    "vmap_method_inplace_on_batched": (_vmap_method_inplace, [M34, V4]),
    "jacrev_has_aux_argnums": (_jacrev_has_aux_argnums, [V3, V3]),
    "jacfwd_randomness_same": (_jacfwd_randomness_same, [V3]),
    "jacrev_pytree_chunked": (_jacrev_pytree_chunked, [{"a": V3, "b": V3}]),
    "hessian_of_functional_call": (_hessian_of_functional_call, [M23, V3]),
    "grad_int_tensor_index_arg": (_grad_with_int_arg_argnums, [V4, lambda rng: np.array([0, 2])]),
    "vmap_index_put_unbatched_value": (_vmap_index_put, [M34, ()]),
    "vmap_scatter_add": (_vmap_scatter_add, [M34, M34]),
}


@pytest.mark.parametrize("name", list(SEMANTICS))
def test_transform_semantics(name):
    fn, specs = SEMANTICS[name]
    run_case(fn, specs, name)


# --- torch.autograd.functional --------------------------------------------------------
def _f_two(m):
    return lambda x, y: (x.exp() * y.sum(), (x * y).sin())


def _af(name):
    return lambda m: getattr(m.autograd.functional, name)


AUTOGRAD_FUNCTIONAL = {
    "jacobian_tuple_outputs_vectorized_forward": (
        lambda m, x, y: _af("jacobian")(m)(_f_two(m), (x, y), vectorize=True,
                                           strategy="forward-mode"), [V3, V3]),
    "jacobian_tuple_outputs_vectorized_reverse": (
        lambda m, x, y: _af("jacobian")(m)(_f_two(m), (x, y), vectorize=True), [V3, V3]),
    "jacobian_tuple_outputs_loop": (
        lambda m, x, y: _af("jacobian")(m)(_f_two(m), (x, y)), [V3, V3]),
    "jacobian_create_graph_then_grad": (lambda m, x: _jac_create_graph(m, x), [V3]),
    "hessian_two_inputs_vectorized": (
        lambda m, x, y: _af("hessian")(m)(lambda x, y: (x.sin() * y ** 2).sum(), (x, y),
                                          vectorize=True), [V3, V3]),
    "hessian_outer_jacobian_forward": (
        lambda m, x: _af("hessian")(m)(lambda x: (x.exp() * x).sum(), x, vectorize=True,
                                       outer_jacobian_strategy="forward-mode"), [V4]),
    "hvp_create_graph": (lambda m, x, v: _hvp_create_graph(m, x, v), [V3, V3]),
    "vhp_two_inputs": (lambda m, x, y, a, b: _af("vhp")(m)(
        lambda x, y: (x * y.exp()).sum(), (x, y), (a, b)), [V3, V3, V3, V3]),
    "vjp_tuple_v": (lambda m, x, y, a, b: _af("vjp")(m)(_f_two(m), (x, y), (a, b)),
                    [V3, V3, V3, V3]),
    "jvp_tuple_v": (lambda m, x, y, a, b: _af("jvp")(m)(_f_two(m), (x, y), (a, b)),
                    [V3, V3, V3, V3]),
    "jacobian_strict_ok": (lambda m, x: _af("jacobian")(m)(lambda x: x.sin(), x, strict=True),
                           [V3]),
    "jacobian_of_a_module": (lambda m, x: _module_jacobian(m, x), [(2, 3)]),
}


def _jac_create_graph(m, x):
    x = x.clone().requires_grad_(True)
    jac = m.autograd.functional.jacobian(lambda x: x.sin() * x, x, create_graph=True)
    (g,) = m.autograd.grad(jac.sum(), x)
    return jac.detach(), g


def _hvp_create_graph(m, x, v):
    x = x.clone().requires_grad_(True)
    out, hvp = m.autograd.functional.hvp(lambda x: (x ** 4).sum(), x, v, create_graph=True)
    (g,) = m.autograd.grad(hvp.sum(), x)
    return out.detach(), hvp.detach(), g


def _module_jacobian(m, x):
    m.manual_seed(0)
    lin = m.nn.Linear(3, 2).double()
    with m.no_grad():
        lin.weight.copy_(m.arange(6, dtype=m.float64).reshape(2, 3) / 5)
        lin.bias.fill_(0.5)
    return m.autograd.functional.jacobian(lambda x: lin(x).tanh(), x)


@pytest.mark.parametrize("name", list(AUTOGRAD_FUNCTIONAL))
def test_autograd_functional(name):
    fn, specs = AUTOGRAD_FUNCTIONAL[name]
    run_case(lambda m, f, *a: fn(m, *a), specs, name)


AUTOGRAD_FUNCTIONAL_ERRORS = {
    "jacobian_strict_independent_output": (lambda m, x: _af("jacobian")(m)(
        lambda x: m.ones(3, dtype=x.dtype), x, strict=True), "does not require gradients"),
    "hessian_strict_linear": (lambda m, x: _af("hessian")(m)(
        lambda x: x.sum(), x, strict=True), "independent"),
    "jacobian_strict_with_vectorize": (lambda m, x: _af("jacobian")(m)(
        lambda x: x, x, strict=True, vectorize=True), "strict"),
    "jacobian_forward_mode_without_vectorize": (lambda m, x: _af("jacobian")(m)(
        lambda x: x, x, strategy="forward-mode"), "vectorize"),
    "jacobian_bad_strategy": (lambda m, x: _af("jacobian")(m)(
        lambda x: x, x, strategy="sideways"), "strategy"),
    "vjp_v_wrong_shape": (lambda m, x: _af("vjp")(m)(lambda x: x * 2, x, x[:2]), "size|shape"),
    "hvp_non_scalar": (lambda m, x: _af("hvp")(m)(lambda x: x * 2, x, x), "single|scalar|Tensor"),
    "jvp_non_tensor_output": (lambda m, x: _af("jvp")(m)(lambda x: 3.0, x, x), "Tensor|tensor"),
}


@pytest.mark.parametrize("name", list(AUTOGRAD_FUNCTIONAL_ERRORS))
def test_autograd_functional_errors(name):
    call, pattern = AUTOGRAD_FUNCTIONAL_ERRORS[name]
    x = np.random.default_rng(seed_of(name)).standard_normal(3)
    with pytest.raises(Exception):
        call(torch, torch.tensor(x))
    with pytest.raises(Exception, match=pattern):
        call(ember, ember.tensor(x))
