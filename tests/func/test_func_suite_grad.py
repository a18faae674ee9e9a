"""ember.func's autodiff transforms against torch.func, case by case: grad (argnums,
has_aux, pytrees, nesting), grad_and_value, vjp, jvp, linearize, jacrev, jacfwd and
hessian, in the spirit of functorch's test_eager_transforms.py (written anew here)."""
from __future__ import annotations

import numpy as np
import pytest

import ember
import ember.func as F
from ember.ir.errors import AutogradError

from func_suite_util import make_inputs, run_case, seed_of, to_lib

V3, V4, M23, M34 = (3,), (4,), (2, 3), (3, 4)


def _ints(rng):
    return rng.integers(0, 5, size=(3,))


def _positive(shape):
    return lambda rng: rng.uniform(0.5, 2.0, size=shape)


GRAD = {
    # --- grad: argnums and outputs -----------------------------------------------------
    "grad_sin_sum": (lambda m, f, x: f.grad(lambda x: x.sin().sum())(x), [V3]),
    "grad_scalar_input": (lambda m, f, x: f.grad(lambda x: x.sin() * x.cos())(x), [()]),
    "grad_matrix": (lambda m, f, x: f.grad(lambda x: (x @ x.T).trace())(x), [M23]),
    "grad_argnum1": (lambda m, f, x, y: f.grad(lambda x, y: (x * y.exp()).sum(), 1)(x, y),
                     [V3, V3]),
    "grad_argnum_negative": (lambda m, f, x, y: f.grad(lambda x, y: (x * y ** 2).sum(),
                                                       -1)(x, y), [V3, V3]),
    "grad_argnums_tuple": (lambda m, f, x, y: f.grad(lambda x, y: (x.sin() * y).sum(),
                                                     (0, 1))(x, y), [V3, V3]),
    "grad_argnums_tuple_one": (lambda m, f, x, y: f.grad(lambda x, y: (x * y).sum(),
                                                         (1,))(x, y), [V3, V3]),
    "grad_argnums_reversed": (lambda m, f, x, y: f.grad(lambda x, y: (x * y.tanh()).sum(),
                                                        (1, 0))(x, y), [V3, V3]),
    "grad_python_scalar_arg": (lambda m, f, x: f.grad(lambda x, s: (x * s).sum())(x, 3.0),
                               [V3]),
    "grad_kwargs_passed": (lambda m, f, x: f.grad(lambda x, *, p: (x ** p).sum())(x, p=3),
                           [V3]),
    "grad_closure_constant": (lambda m, f, x, c: f.grad(lambda x: (x * c).sum())(x),
                              [V3, V3]),
    "grad_unused_input": (lambda m, f, x, y: f.grad(lambda x, y: x.sum() * 2, 1)(x, y),
                          [V3, V3]),
    "grad_constant_output": (lambda m, f, x: f.grad(lambda x: (x * 0).sum())(x), [V3]),
    "grad_int_input_unused": (lambda m, f, x, i: f.grad(lambda x, i: (x * i).sum())(x, i),
                              [V3, _ints]),
    "grad_float32": (lambda m, f, x: f.grad(lambda x: (x.float() ** 2).sum())(x.float()),
                     [V3]),
    "grad_mean_softmax": (lambda m, f, x: f.grad(lambda x: (m.softmax(x, -1) * x).mean())(x),
                          [M34]),
    "grad_logsumexp": (lambda m, f, x: f.grad(lambda x: m.logsumexp(x, 1).sum())(x), [M34]),
    "grad_max": (lambda m, f, x: f.grad(lambda x: x.max())(x), [V4]),
    "grad_norm": (lambda m, f, x: f.grad(lambda x: m.linalg.norm(x))(x), [M34]),
    "grad_where": (lambda m, f, x: f.grad(lambda x: m.where(x > 0, x * 2, x.exp()).sum())(x),
                   [V4]),
    "grad_index": (lambda m, f, x: f.grad(lambda x: x[1:, ::2].sum() + x[0, 1] * 3)(x),
                   [M34]),
    "grad_inplace_inside": (lambda m, f, x: f.grad(lambda x: x.clone().mul_(2).sin_().sum())(x),
                            [V4]),
    "grad_setitem_inside": (lambda m, f, x: f.grad(_setitem_loss)(x), [V4]),
    "grad_matmul_chain": (lambda m, f, x, w: f.grad(lambda w: (x @ w).tanh().sum())(w),
                          [M23, M34]),
    "grad_det": (lambda m, f, x: f.grad(lambda x: m.linalg.det(x))(x), [(3, 3)]),
    "grad_complex_to_real": (lambda m, f, x: f.grad(lambda z: (z * z.conj()).real.sum())(
        m.complex(x, x * 2)), [V3]),
    # --- pytree inputs / outputs --------------------------------------------------------
    "grad_dict_input": (lambda m, f, d: f.grad(lambda d: (d["a"] * d["b"].sin()).sum())(d),
                        [{"a": V3, "b": V3}]),
    "grad_tuple_input": (lambda m, f, t: f.grad(lambda t: (t[0] @ t[1]).sum())(t),
                         [(M23, M34)]),
    "grad_list_input": (lambda m, f, t: f.grad(lambda t: sum(v.sum() for v in t))(t),
                        [[V3, V4]]),
    "grad_nested_input": (lambda m, f, t: f.grad(
        lambda t: (t["x"][0] * t["x"][1]).sum() + t["y"].exp().sum())(t),
        [{"x": (V3, V3), "y": V4}]),
    "grad_pytree_argnums_tuple": (lambda m, f, d, x: f.grad(
        lambda d, x: (d["w"] * x).sum(), (0, 1))(d, x), [{"w": V3}, V3]),
    # --- has_aux -------------------------------------------------------------------------
    "grad_has_aux_tensor": (lambda m, f, x: f.grad(lambda x: (x.sum(), x.cos()),
                                                   has_aux=True)(x), [V3]),
    "grad_has_aux_dict": (lambda m, f, x: f.grad(
        lambda x: ((x ** 2).sum(), {"m": x.mean(), "s": x * 2}), has_aux=True)(x), [V3]),
    "grad_has_aux_argnums": (lambda m, f, x, y: f.grad(
        lambda x, y: ((x * y).sum(), y), argnums=(0, 1), has_aux=True)(x, y), [V3, V3]),
    # --- grad_and_value ----------------------------------------------------------------
    "gv_basic": (lambda m, f, x: f.grad_and_value(lambda x: x.exp().sum())(x), [V3]),
    "gv_argnums": (lambda m, f, x, y: f.grad_and_value(lambda x, y: (x / y).sum(),
                                                       (0, 1))(x, y), [V3, _positive(V3)]),
    "gv_has_aux": (lambda m, f, x: f.grad_and_value(lambda x: (x.sum(), x * 3),
                                                    has_aux=True)(x), [V3]),
    "gv_pytree": (lambda m, f, d: f.grad_and_value(lambda d: (d["a"] ** 3).sum())(d),
                  [{"a": V3}]),
    # --- nesting ----------------------------------------------------------------------
    "grad_of_grad": (lambda m, f, x: f.grad(f.grad(lambda x: x.sin() * x ** 3))(x), [()]),
    "grad_grad_grad": (lambda m, f, x: f.grad(f.grad(f.grad(lambda x: x.exp() * x)))(x), [()]),
    "grad_of_grad_sum": (lambda m, f, x: f.grad(lambda x: f.grad(
        lambda y: (y ** 3).sum())(x).sin().sum())(x), [V3]),
    "grad_over_closure_of_outer": (lambda m, f, x, y: f.grad(lambda x: f.grad(
        lambda y: (x * y).sin().sum())(y).sum())(x), [V3, V3]),
    "grad_of_vmap": (lambda m, f, x: f.grad(lambda x: f.vmap(lambda r: r.sin().sum())(x).sum())(
        x), [M34]),
    "vmap_of_grad": (lambda m, f, x: f.vmap(f.grad(lambda r: (r.tanh() * r).sum()))(x), [M34]),
    "vmap_of_grad_in_dims": (lambda m, f, w, x: f.vmap(f.grad(lambda w, x: (x @ w).sum()),
                                                       in_dims=(None, 0))(w, x), [(3,), M23]),
    "grad_of_jvp": (lambda m, f, x, t: f.grad(lambda x: f.jvp(lambda y: y.sin().sum(),
                                                              (x,), (t,))[1])(x), [V3, V3]),
    # --- vjp --------------------------------------------------------------------------
    "vjp_basic": (lambda m, f, x, c: _vjp_apply(f, lambda x: x.sin() * 2, (x,), c), [V3, V3]),
    "vjp_two_primals": (lambda m, f, x, y, c: _vjp_apply(f, lambda x, y: x * y.exp(), (x, y), c),
                        [V3, V3, V3]),
    "vjp_tuple_output": (lambda m, f, x, a, b: _vjp_apply(f, lambda x: (x.sin(), x.sum()), (x,),
                                                          (a, b.sum())), [V3, V3, V3]),
    "vjp_dict_output": (lambda m, f, x, a, b: _vjp_apply(
        f, lambda x: {"s": x.sin(), "c": x.cos()}, (x,), {"s": a, "c": b}), [V3, V3, V3]),
    "vjp_dict_primal": (lambda m, f, d, c: _vjp_apply(f, lambda d: d["a"] * d["b"], (d,), c),
                        [{"a": V3, "b": V3}, V3]),
    "vjp_has_aux": (lambda m, f, x, c: _vjp_aux(f, lambda x: (x.exp(), x.sum()), (x,), c),
                    [V3, V3]),
    "vjp_matrix": (lambda m, f, x, w, c: _vjp_apply(f, lambda x, w: x @ w, (x, w), c),
                   [M23, M34, (2, 4)]),
    "vjp_called_twice": (lambda m, f, x, a, b: _vjp_twice(f, lambda x: x ** 3, x, a, b),
                         [V3, V3, V3]),
    "vjp_of_vjp": (lambda m, f, x, c, d: f.vjp(lambda x: f.vjp(lambda y: y.sin() * y, x)[1](c)[0],
                                                x)[1](d), [V3, V3, V3]),
    "vmap_of_vjp": (lambda m, f, x, cs: f.vmap(lambda c: f.vjp(lambda y: y.exp() * y, x)[1](c))(
        cs), [V3, (5, 3)]),
    # --- jvp --------------------------------------------------------------------------
    "jvp_basic": (lambda m, f, x, t: f.jvp(lambda x: x.sin() * x, (x,), (t,)), [V3, V3]),
    "jvp_two_primals": (lambda m, f, x, y, a, b: f.jvp(lambda x, y: x * y.cos(), (x, y),
                                                       (a, b)), [V3, V3, V3, V3]),
    "jvp_tuple_output": (lambda m, f, x, t: f.jvp(lambda x: (x.exp(), x.sum()), (x,), (t,)),
                         [V3, V3]),
    "jvp_dict_output": (lambda m, f, x, t: f.jvp(lambda x: {"a": x * 2, "b": x.tanh()}, (x,),
                                                 (t,)), [V3, V3]),
    "jvp_has_aux": (lambda m, f, x, t: f.jvp(lambda x: (x.sin(), x.cos()), (x,), (t,),
                                             has_aux=True), [V3, V3]),
    "jvp_tangent_in_primal_dtype": (lambda m, f, x, t: f.jvp(lambda x: x * 2, (x,),
                                                             (t.float(),)), [V3, V3]),
    "jvp_matmul": (lambda m, f, x, w, t: f.jvp(lambda w: (x @ w).relu(), (w,), (t,)),
                   [M23, M34, M34]),
    "jvp_pytree_primal": (lambda m, f, d, t: f.jvp(lambda d: d["a"] * d["b"], (d,), (t,)),
                          [{"a": V3, "b": V3}, {"a": V3, "b": V3}]),
    "jvp_of_jvp": (lambda m, f, x, t, u: f.jvp(lambda x: f.jvp(lambda y: y.exp() * y, (x,),
                                                               (t,))[1], (x,), (u,)),
                   [V3, V3, V3]),
    "jvp_of_grad": (lambda m, f, x, t: f.jvp(f.grad(lambda x: (x.sin() ** 2).sum()), (x,), (t,)),
                    [V3, V3]),
    "vmap_of_jvp": (lambda m, f, x, ts: f.vmap(lambda t: f.jvp(lambda y: y.cos() * y, (x,),
                                                               (t,))[1])(ts), [V3, (4, 3)]),
    # --- linearize --------------------------------------------------------------------
    "linearize": (lambda m, f, x, t: _linearize(f, lambda x: x.sin() * x.exp(), x, t), [V3, V3]),
    "linearize_two_primals": (lambda m, f, x, y, a, b: _linearize2(f, x, y, a, b),
                              [V3, V3, V3, V3]),
}


def _setitem_loss(x):
    y = x.clone()
    y[1] = y[0] * 3
    return (y * y).sum()


def _vjp_apply(f, fn, primals, cot):
    out, vjp_fn = f.vjp(fn, *primals)
    return out, vjp_fn(cot)


def _vjp_aux(f, fn, primals, cot):
    out, vjp_fn, aux = f.vjp(fn, *primals, has_aux=True)
    return out, vjp_fn(cot), aux


def _vjp_twice(f, fn, x, a, b):
    _, vjp_fn = f.vjp(fn, x)
    return vjp_fn(a), vjp_fn(b)


def _linearize(f, fn, x, t):
    out, jvp_fn = f.linearize(fn, x)
    return out, jvp_fn(t), jvp_fn(t * 2)


def _linearize2(f, x, y, a, b):
    out, jvp_fn = f.linearize(lambda x, y: (x * y).sin(), x, y)
    return out, jvp_fn(a, b)


def _quad(x):
    return (x.sin() * x ** 2).sum()


JAC = {
    "jacrev_vector": (lambda m, f, x: f.jacrev(lambda x: x.sin() * x.sum())(x), [V3]),
    "jacrev_scalar_out": (lambda m, f, x: f.jacrev(lambda x: (x ** 2).sum())(x), [V3]),
    "jacrev_scalar_in": (lambda m, f, x: f.jacrev(lambda x: m.stack([x.sin(), x * 2]))(x), [()]),
    "jacrev_matrix": (lambda m, f, x: f.jacrev(lambda x: x @ x.T)(x), [M23]),
    "jacrev_argnum1": (lambda m, f, x, w: f.jacrev(lambda x, w: w @ x, 1)(x, w), [V4, M34]),
    "jacrev_argnums_tuple": (lambda m, f, x, w: f.jacrev(lambda x, w: w @ x, (0, 1))(x, w),
                             [V4, M34]),
    "jacrev_has_aux": (lambda m, f, x: f.jacrev(lambda x: (x.exp(), x.sum()), has_aux=True)(x),
                       [V3]),
    "jacrev_tuple_out": (lambda m, f, x: f.jacrev(lambda x: (x.sin(), x.sum() * x[:2]))(x), [V3]),
    "jacrev_dict_out": (lambda m, f, x: f.jacrev(lambda x: {"a": x * 2, "b": x.cos()})(x), [V3]),
    "jacrev_dict_in": (lambda m, f, d: f.jacrev(lambda d: d["a"] * d["b"])(d),
                       [{"a": V3, "b": V3}]),
    "jacrev_chunk_1": (lambda m, f, x: f.jacrev(lambda x: x.tanh() * x, chunk_size=1)(x), [V4]),
    "jacrev_chunk_3": (lambda m, f, x: f.jacrev(lambda x: x.tanh().cumsum(0), chunk_size=3)(x),
                       [V4]),
    "jacrev_tuple_out_argnums": (lambda m, f, x, y: f.jacrev(
        lambda x, y: (x * y, (x + y).sum()), (0, 1))(x, y), [V3, V3]),
    "jacrev_of_jacrev": (lambda m, f, x: f.jacrev(f.jacrev(lambda x: x.sin() * x.prod()))(x),
                         [V3]),
    "jacrev_float32": (lambda m, f, x: f.jacrev(lambda x: x.exp())(x.float()), [V3]),
    "jacfwd_vector": (lambda m, f, x: f.jacfwd(lambda x: x.sin() * x.sum())(x), [V3]),
    "jacfwd_scalar_out": (lambda m, f, x: f.jacfwd(lambda x: (x ** 2).sum())(x), [V3]),
    "jacfwd_scalar_in": (lambda m, f, x: f.jacfwd(lambda x: m.stack([x.sin(), x * 2]))(x), [()]),
    "jacfwd_matrix": (lambda m, f, x: f.jacfwd(lambda x: x @ x.T)(x), [M23]),
    "jacfwd_argnum1": (lambda m, f, x, w: f.jacfwd(lambda x, w: w @ x, 1)(x, w), [V4, M34]),
    "jacfwd_argnums_tuple": (lambda m, f, x, w: f.jacfwd(lambda x, w: w @ x, (0, 1))(x, w),
                             [V4, M34]),
    "jacfwd_has_aux": (lambda m, f, x: f.jacfwd(lambda x: (x.exp(), x.sum()), has_aux=True)(x),
                       [V3]),
    "jacfwd_tuple_out": (lambda m, f, x: f.jacfwd(lambda x: (x.sin(), x.sum() * x[:2]))(x), [V3]),
    "jacfwd_dict_out": (lambda m, f, x: f.jacfwd(lambda x: {"a": x * 2, "b": x.cos()})(x), [V3]),
    "jacfwd_dict_in": (lambda m, f, d: f.jacfwd(lambda d: d["a"] * d["b"])(d),
                       [{"a": V3, "b": V3}]),
    "jacfwd_of_jacrev": (lambda m, f, x: f.jacfwd(f.jacrev(lambda x: x.exp() * x.sum()))(x), [V3]),
    "jacrev_of_jacfwd": (lambda m, f, x: f.jacrev(f.jacfwd(lambda x: x.exp() * x.sum()))(x), [V3]),
    "jacfwd_mixed_argnums_pytree": (lambda m, f, d, x: f.jacfwd(
        lambda d, x: d["w"] @ x, (0, 1))(d, x), [{"w": M34}, V4]),
    "hessian_basic": (lambda m, f, x: f.hessian(_quad)(x), [V3]),
    "hessian_matrix_input": (lambda m, f, x: f.hessian(lambda x: (x.sin() @ x.T).sum())(x),
                             [M23]),
    "hessian_argnum1": (lambda m, f, x, y: f.hessian(lambda x, y: (x * y ** 3).sum(), 1)(x, y),
                        [V3, V3]),
    "hessian_argnums_tuple": (lambda m, f, x, y: f.hessian(lambda x, y: (x * y).sin().sum(),
                                                           (0, 1))(x, y), [V3, V3]),
    "hessian_vector_output": (lambda m, f, x: f.hessian(lambda x: x.sin() * x.sum())(x), [V3]),
    "vmap_of_hessian": (lambda m, f, x: f.vmap(f.hessian(_quad))(x), [(2, 3)]),
    "vmap_of_jacrev": (lambda m, f, x: f.vmap(f.jacrev(lambda r: r.sin() * r.sum()))(x),
                       [(2, 3)]),
    "vmap_of_jacfwd": (lambda m, f, x: f.vmap(f.jacfwd(lambda r: r.sin() * r.sum()))(x),
                       [(2, 3)]),
    "jacrev_of_vmap": (lambda m, f, x: f.jacrev(f.vmap(lambda r: r.sin() * r.sum()))(x),
                       [(2, 3)]),
    "jacrev_nn_linear": (lambda m, f, x, w, b: f.jacrev(m.nn.functional.linear, (1, 2))(x, w, b),
                         [V4, M34, V3]),
    "jacfwd_nn_softmax": (lambda m, f, x: f.jacfwd(lambda x: m.softmax(x, 0))(x), [V4]),
}


@pytest.mark.parametrize("name", list(GRAD))
def test_autodiff_transform(name):
    fn, specs = GRAD[name]
    run_case(fn, specs, name)


@pytest.mark.parametrize("name", list(JAC))
def test_jacobian_transform(name):
    fn, specs = JAC[name]
    run_case(fn, specs, name, tol=1e-6 if "float32" in name else 1e-7)


# --- errors: each must raise in ember as it does in torch ----------------------------------
ERRORS = {
    "grad_non_scalar_output": (lambda f, x: f.grad(lambda x: x * 2)(x), "scalar"),
    "grad_tuple_output": (lambda f, x: f.grad(lambda x: (x.sum(), x.sum()))(x), "scalar|tuple"),
    "grad_int_input": (lambda f, x: f.grad(lambda x: x.sum())(x.long()),
                       "floating point|Float"),
    "grad_argnums_out_of_range": (lambda f, x: f.grad(lambda x: x.sum(), 1)(x), "argnums"),
    "grad_argnums_empty": (lambda f, x: f.grad(lambda x: x.sum(), ())(x), "argnums"),
    "grad_argnums_float": (lambda f, x: f.grad(lambda x: x.sum(), 0.0)(x), "argnums"),
    "grad_has_aux_not_tuple": (lambda f, x: f.grad(lambda x: x.sum(), has_aux=True)(x),
                               "tuple"),
    "grad_has_aux_python_int": (lambda f, x: f.grad(lambda x: (x.sum(), 3), has_aux=True)(x),
                                "tensors|Tensor"),
    "grad_output_not_tensor": (lambda f, x: f.grad(lambda x: 3.0)(x), "Tensor|tensor"),
    "jvp_primals_not_tuple": (lambda f, x: f.jvp(lambda x: x, x, (x,)), "tuple"),
    "jvp_tangent_shape": (lambda f, x: f.jvp(lambda x: x, (x,), (x[:2],)), "shape"),
    "jvp_length_mismatch": (lambda f, x: f.jvp(lambda x: x, (x,), (x, x)), "tangents|same"),
    "vjp_cotangent_shape": (lambda f, x: f.vjp(lambda x: x * 2, x)[1](x[:2]), "shape"),
    "grad_one_element_vector_output": (lambda f, x: f.grad(lambda x: x.sum().reshape(1))(x),
                                       "scalar"),
    "grad_complex_output": (lambda f, x: f.grad(lambda x: (x * 1j).sum())(x),
                            "real|complex"),
    "jvp_non_tensor_primal": (lambda f, x: f.jvp(lambda x: x * 2, (2.0,), (1.0,)),
                              "Tensor|tensor"),
    "vjp_non_tensor_primal": (lambda f, x: f.vjp(lambda x: x * 2, 2.0), "Tensor|tensor"),
    "vjp_cotangent_structure": (lambda f, x: f.vjp(lambda x: (x, x), x)[1](x),
                                "structure|tensors"),
    "vjp_has_aux_not_tuple": (lambda f, x: f.vjp(lambda x: x * 2, x, has_aux=True),
                              "tuple"),
    "jvp_has_aux_not_tuple": (lambda f, x: f.jvp(lambda x: x * 2, (x,), (x,), has_aux=True),
                              "tuple"),
    "jacrev_has_aux_not_tuple": (lambda f, x: f.jacrev(lambda x: x, has_aux=True)(x), "tuple"),
    "jacrev_chunk_size_zero": (lambda f, x: f.jacrev(lambda x: x, chunk_size=0)(x),
                               "chunk_size"),
    "jacrev_int_input": (lambda f, x: f.jacrev(lambda x: x * 2)(x.long()),
                         "floating point|Float|complex"),
    "jacfwd_int_input": (lambda f, x: f.jacfwd(lambda x: x * 2)(x.long()),
                         "floating point|Float|complex"),
    "hessian_int_input": (lambda f, x: f.hessian(lambda x: (x * 2).sum())(x.long()),
                          "floating point|Float|complex"),
    "jacrev_argnums_range": (lambda f, x: f.jacrev(lambda x: x, 2)(x), "argnums"),
    "jacfwd_argnums_range": (lambda f, x: f.jacfwd(lambda x: x, 2)(x), "argnums"),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_autodiff_errors_like_torch(name):
    import torch
    call, pattern = ERRORS[name]
    x = np.random.default_rng(seed_of(name)).standard_normal(3)
    with pytest.raises(Exception):
        call(torch.func, torch.tensor(x))
    with pytest.raises((RuntimeError, ValueError, TypeError, AutogradError), match=pattern):
        call(F, ember.tensor(x))


def test_grad_result_is_not_tracked_by_autograd():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    g = F.grad(lambda x: (x ** 2).sum())(x)
    np.testing.assert_allclose(g.detach().numpy(), [2.0, 4.0])


def test_grad_composes_with_outer_backward():
    """grad inside an ordinary autograd computation: torch differentiates through it."""
    import torch
    xa = np.array([0.3, -1.2, 0.7])
    xt = torch.tensor(xa, requires_grad=True)
    torch.func.grad(lambda x: (x.sin() ** 2).sum())(xt).sum().backward()
    xe = ember.tensor(xa, requires_grad=True)
    F.grad(lambda x: (x.sin() ** 2).sum())(xe).sum().backward()
    np.testing.assert_allclose(xe.grad.numpy(), xt.grad.numpy(), rtol=1e-9)
