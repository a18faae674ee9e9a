"""ember.func.vmap against torch.func.vmap, case by case: in_dims / out_dims (ints, None,
negative, nested pytrees), chunk_size, nesting, methods, non-tensor arguments, factories,
in-place ops on batched and unbatched tensors, randomness, and the errors torch raises
(the kind of cases functorch's test_vmap.py exercises, written anew here)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
import ember.func as F

from func_suite_util import close, make_inputs, run_case, seed_of, to_lib

B3, B34, B234 = (3,), (3, 4), (2, 3, 4)


def _ints(shape):
    return lambda rng: rng.integers(-3, 4, size=shape)


def _bools(shape):
    return lambda rng: rng.integers(0, 2, size=shape).astype(bool)


VMAP = {
    # --- in_dims ---------------------------------------------------------------------
    "identity": (lambda m, f, x: f.vmap(lambda a: a)(x), [B34]),
    "unary": (lambda m, f, x: f.vmap(m.sin)(x), [B34]),
    "scalar_examples": (lambda m, f, x: f.vmap(lambda a: a * 2 + 1)(x), [B3]),
    "in_dim_1": (lambda m, f, x: f.vmap(lambda a: a.sum(0), in_dims=1)(x), [B234]),
    "in_dim_last": (lambda m, f, x: f.vmap(lambda a: a.cumsum(0), in_dims=-1)(x), [B234]),
    "in_dims_tuple": (lambda m, f, x, y: f.vmap(lambda a, b: a * b, in_dims=(0, 1))(x, y),
                      [(3, 4), (4, 3)]),
    "in_dims_none": (lambda m, f, x, y: f.vmap(lambda a, b: a @ b, in_dims=(0, None))(x, y),
                     [B234, (4, 5)]),
    "in_dims_none_first": (lambda m, f, w, x: f.vmap(lambda w, a: w @ a, in_dims=(None, 0))(w, x),
                           [(5, 3), (2, 3)]),
    "in_dims_dict": (lambda m, f, d: f.vmap(lambda d: d["a"] + d["b"].sum(),
                                            in_dims=({"a": 0, "b": 1},))(d),
                     [{"a": (3,), "b": (4, 3)}]),
    "in_dims_dict_none_leaf": (lambda m, f, d: f.vmap(lambda d: d["a"] * d["b"],
                                                      in_dims=({"a": 0, "b": None},))(d),
                               [{"a": (3, 4), "b": (4,)}]),
    "in_dims_list_arg": (lambda m, f, xs: f.vmap(lambda l: l[0] - l[1])(xs), [[B34, B34]]),
    "in_dims_nested_tuple": (lambda m, f, t: f.vmap(lambda t: t[0] * t[1][0] + t[1][1],
                                                    in_dims=((0, (1, None)),))(t),
                             [((3, 2), ((2, 3), (2,)))]),
    "in_dims_prefix_broadcast": (lambda m, f, t, y: f.vmap(lambda t, y: t[0] * t[1] + y,
                                                           in_dims=(0, None))(t, y),
                                 [(B34, B34), (4,)]),
    "python_scalar_arg": (lambda m, f, x: f.vmap(lambda a, s: a * s, in_dims=(0, None))(x, 2.5),
                          [B34]),
    "python_int_arg_default_dims": (lambda m, f, x: f.vmap(lambda a, k: a.roll(k, 0),
                                                           in_dims=(0, None))(x, 1), [B34]),
    "kwargs_unbatched": (lambda m, f, x, y: f.vmap(lambda a, *, b: a + b)(x, b=y), [B34, (4,)]),
    "none_argument": (lambda m, f, x: f.vmap(lambda a, o: a if o is None else o,
                                             in_dims=(0, None))(x, None), [B34]),
    "int_tensor": (lambda m, f, x: f.vmap(lambda a: a * 2 - a.sum())(x), [_ints(B34)]),
    "bool_tensor": (lambda m, f, x: f.vmap(lambda a: a.logical_not() | a.any())(x),
                    [_bools(B34)]),
    "mixed_dtypes": (lambda m, f, x, i: f.vmap(lambda a, b: a * b)(x, i), [B34, _ints(B34)]),
    "size_inside": (lambda m, f, x: f.vmap(lambda a: a.reshape(a.shape[0] * a.shape[1]))(x),
                    [B234]),
    "dim_inside": (lambda m, f, x: f.vmap(lambda a: a.sum(a.dim() - 1))(x), [B234]),
    "batch_of_one": (lambda m, f, x: f.vmap(lambda a: a.exp())(x), [(1, 4)]),
    # --- out_dims --------------------------------------------------------------------
    "out_dim_1": (lambda m, f, x: f.vmap(lambda a: a * 2, out_dims=1)(x), [B234]),
    "out_dim_negative": (lambda m, f, x: f.vmap(lambda a: a.T, out_dims=-1)(x), [B234]),
    "out_dims_tuple": (lambda m, f, x: f.vmap(lambda a: (a, a.sum(0)), out_dims=(1, 0))(x),
                       [B234]),
    "out_dims_dict": (lambda m, f, x: f.vmap(lambda a: {"s": a.sin(), "c": a.cos()},
                                             out_dims={"s": 0, "c": 1})(x), [B234]),
    "out_dims_none_unbatched": (lambda m, f, x, y: f.vmap(lambda a, b: (a + b, b * 2),
                                                          in_dims=(0, None),
                                                          out_dims=(0, None))(x, y),
                                [B34, (4,)]),
    "scalar_output_out_dim_0": (lambda m, f, x: f.vmap(lambda a: a.sum())(x), [B34]),
    "unbatched_output_expanded": (lambda m, f, x, y: f.vmap(lambda a, b: b * 2,
                                                            in_dims=(0, None))(x, y),
                                  [B34, (4,)]),
    "factory_output": (lambda m, f, x: f.vmap(lambda a: m.ones(2, dtype=a.dtype))(x), [B34]),
    # --- outputs of every shape ------------------------------------------------------
    "tuple_output": (lambda m, f, x: f.vmap(lambda a: (a.max(), a.min()))(x), [B34]),
    "list_output": (lambda m, f, x: f.vmap(lambda a: [a * 2, a.sum()])(x), [B34]),
    "dict_output": (lambda m, f, x: f.vmap(lambda a: {"m": a.mean(), "v": a.var()})(x), [B34]),
    "nested_output": (lambda m, f, x: f.vmap(lambda a: (a, {"k": [a.sum(), a.prod()]}))(x),
                      [B34]),
    "namedtuple_output_values": (lambda m, f, x: tuple(f.vmap(lambda a: a.max(0))(x)), [B234]),
    "input_returned_twice": (lambda m, f, x: f.vmap(lambda a: (a, a))(x), [B34]),
    # --- chunk_size ------------------------------------------------------------------
    "chunk_1": (lambda m, f, x: f.vmap(lambda a: a.softmax(0), chunk_size=1)(x), [(5, 4)]),
    "chunk_2_uneven": (lambda m, f, x: f.vmap(lambda a: a.softmax(0), chunk_size=2)(x),
                       [(5, 4)]),
    "chunk_bigger_than_batch": (lambda m, f, x: f.vmap(lambda a: a.exp(), chunk_size=10)(x),
                                [(5, 4)]),
    "chunk_out_dims": (lambda m, f, x: f.vmap(lambda a: (a, a.sum()), out_dims=(1, 0),
                                              chunk_size=2)(x), [(5, 4)]),
    "chunk_in_dims": (lambda m, f, x, y: f.vmap(lambda a, b: a @ b, in_dims=(1, None),
                                                chunk_size=3)(x, y), [(4, 5), (4, 2)]),
    # --- nesting ---------------------------------------------------------------------
    "nested_vmap": (lambda m, f, x: f.vmap(f.vmap(lambda a: a.sin() * a))(x), [B234]),
    "nested_vmap_outer_in_dim_1": (lambda m, f, x: f.vmap(f.vmap(m.sum), in_dims=1)(x),
                                   [B234]),
    "nested_vmap_inner_none": (lambda m, f, x, y: f.vmap(
        lambda a: f.vmap(lambda b, c: b * c, in_dims=(0, None))(y, a))(x), [B34, (2, 4)]),
    "nested_closure": (lambda m, f, x, y: f.vmap(lambda a: f.vmap(lambda b: a @ b)(y))(x),
                       [(2, 3), (4, 3)]),
    "triple_nested": (lambda m, f, x: f.vmap(f.vmap(f.vmap(lambda a: a + 1)))(x), [B234]),
    "nested_out_dims": (lambda m, f, x: f.vmap(f.vmap(lambda a: a * 3, out_dims=0),
                                               out_dims=1)(x), [B234]),
    "outer_product": (lambda m, f, x, y: f.vmap(lambda a: f.vmap(lambda b: a * b)(y))(x),
                      [(3,), (4,)]),
    "grad_of_vmap_loss": (lambda m, f, w, x: f.grad(lambda w: f.vmap(lambda r: (r @ w).tanh())(
        x).sum())(w), [(4,), B34]),
    "vmap_grad_vmap": (lambda m, f, x: f.vmap(f.grad(lambda r: f.vmap(lambda e: e ** 2)(r).sum()))(
        x), [B34]),
    # --- methods and library functions as the mapped function ------------------------
    "tensor_method_sum": (lambda m, f, x: f.vmap(m.Tensor.sum)(x), [B34]),
    "tensor_method_with_arg": (lambda m, f, x: f.vmap(m.Tensor.mul, in_dims=(0, None))(x, 3.0),
                               [B34]),
    "bound_method": (lambda m, f, x, y: f.vmap(y.add)(x), [B34, (4,)]),
    "module_function": (lambda m, f, x: f.vmap(m.nn.functional.relu)(x), [B34]),
    "matmul_function": (lambda m, f, x, y: f.vmap(m.matmul)(x, y), [(3, 2, 4), (3, 4, 5)]),
    "dot_function": (lambda m, f, x, y: f.vmap(m.dot)(x, y), [B34, B34]),
    "mv_in_dims": (lambda m, f, a, x: f.vmap(m.mv, in_dims=(None, 0))(a, x), [(2, 4), B34]),
    "linear_module_call": (lambda m, f, x, w, b: f.vmap(m.nn.functional.linear,
                                                        in_dims=(0, None, None))(x, w, b),
                           [B34, (2, 4), (2,)]),
    "nn_module_forward": (lambda m, f, x, w: _vmap_module(m, f, x, w), [B34, (5, 4)]),
    # --- ops of many kinds inside --------------------------------------------------------
    "reductions_keepdim": (lambda m, f, x: f.vmap(lambda a: a.amax(1, keepdim=True))(x),
                           [B234]),
    "sort_values_indices": (lambda m, f, x: tuple(f.vmap(lambda a: a.sort(-1))(x)), [B234]),
    "topk": (lambda m, f, x: tuple(f.vmap(lambda a: a.topk(2))(x)), [B34]),
    "argmax": (lambda m, f, x: f.vmap(lambda a: a.argmax())(x), [B234]),
    "cat_with_unbatched": (lambda m, f, x, y: f.vmap(lambda a: m.cat([a, y]))(x), [B34, (2,)]),
    "stack_batched_unbatched": (lambda m, f, x, y: f.vmap(lambda a: m.stack([a, y], 1))(x),
                                [B34, (4,)]),
    "index_with_unbatched_idx": (lambda m, f, x: f.vmap(lambda a: a[m.tensor([2, 0])])(x),
                                 [B34]),
    "index_with_batched_idx": (lambda m, f, x, i: f.vmap(lambda a, j: a[j])(x, i),
                               [B34, lambda rng: rng.integers(0, 4, size=(3, 2))]),
    "gather_batched": (lambda m, f, x, i: f.vmap(lambda a, j: a.gather(0, j))(x, i),
                       [B34, lambda rng: rng.integers(0, 4, size=(3, 5))]),
    "where_mixed": (lambda m, f, x, y: f.vmap(lambda a: m.where(a > 0, a, y))(x), [B34, (4,)]),
    "masked_fill": (lambda m, f, x: f.vmap(lambda a: a.masked_fill(a < 0, 0.0))(x), [B34]),
    "view_and_permute": (lambda m, f, x: f.vmap(lambda a: a.view(2, 2).permute(1, 0))(x),
                         [B34]),
    "expand": (lambda m, f, x: f.vmap(lambda a: a.unsqueeze(0).expand(3, 4))(x), [B34]),
    "flip_roll": (lambda m, f, x: f.vmap(lambda a: a.flip(0).roll(1, 1))(x), [B234]),
    "einsum": (lambda m, f, x, y: f.vmap(lambda a, b: m.einsum("ij,jk->ik", a, b))(x, y),
               [(2, 3, 4), (2, 4, 2)]),
    "conv2d_per_example": (lambda m, f, x, w: f.vmap(
        lambda a: m.nn.functional.conv2d(a.unsqueeze(0), w, padding=1).squeeze(0))(x),
        [(2, 1, 5, 5), (2, 1, 3, 3)]),
    "layer_norm": (lambda m, f, x: f.vmap(lambda a: m.nn.functional.layer_norm(a, (4,)))(x),
                   [B234]),
    "cross_entropy": (lambda m, f, x, y: f.vmap(m.nn.functional.cross_entropy)(x, y),
                      [(3, 2, 4), lambda rng: rng.integers(0, 4, size=(3, 2))]),
    "linalg_solve": (lambda m, f, a, b: f.vmap(m.linalg.solve)(a, b),
                     [lambda rng: rng.standard_normal((3, 3, 3)) + 3 * np.eye(3), (3, 3)]),
    "new_zeros_inside": (lambda m, f, x: f.vmap(lambda a: a.new_zeros(2) + a.sum())(x), [B34]),
    "zeros_like_inside": (lambda m, f, x: f.vmap(lambda a: m.zeros_like(a) + a[0])(x), [B34]),
    "arange_inside": (lambda m, f, x: f.vmap(lambda a: a * m.arange(4, dtype=a.dtype))(x),
                      [B34]),
    "to_dtype": (lambda m, f, x: f.vmap(lambda a: a.to(m.float32) * 2)(x), [B34]),
    "clone_contiguous": (lambda m, f, x: f.vmap(lambda a: a.t().contiguous().clone())(x),
                         [B234]),
    # --- 0-d examples through dim-taking ops ------------------------------------------
    "scalar_example_softmax": (lambda m, f, x: f.vmap(lambda a: a.softmax(0))(x), [B3]),
    "scalar_example_cumsum": (lambda m, f, x: f.vmap(lambda a: a.cumsum(-1))(x), [B3]),
    "scalar_example_sort": (lambda m, f, x: tuple(f.vmap(lambda a: a.sort(0))(x)), [B3]),
    "scalar_example_topk": (lambda m, f, x: tuple(f.vmap(lambda a: a.topk(1))(x)), [B3]),
    "scalar_example_kthvalue": (lambda m, f, x: tuple(f.vmap(lambda a: a.kthvalue(1))(x)),
                                [B3]),
    "scalar_example_transpose_argsort": (lambda m, f, x: f.vmap(
        lambda a: a.transpose(0, -1).argsort(0) + a.movedim(0, 0).log_softmax(-1))(x), [B3]),
    "scalar_example_max_dim": (lambda m, f, x: tuple(f.vmap(lambda a: a.max(0))(x)), [B3]),
    "median_dim_namedtuple": (lambda m, f, x: tuple(f.vmap(lambda a: a.median(0))(x)), [B34]),
    "linspace_tensor_ends": (lambda m, f, x, y: f.vmap(lambda a, b: m.linspace(a, b, 5,
                                                                                dtype=a.dtype))(
        x, y), [B3, B3]),
    "linspace_one_step": (lambda m, f, x, y: f.vmap(lambda a, b: m.linspace(a, b, 1,
                                                                             dtype=a.dtype))(
        x, y), [B3, B3]),
    "logspace_tensor_start": (lambda m, f, x: f.vmap(lambda a: m.logspace(a, 2.0, 4, base=2.0,
                                                                          dtype=a.dtype))(x),
                              [B3]),
    # --- in-place ops ----------------------------------------------------------------
    "inplace_on_local": (lambda m, f, x: f.vmap(lambda a: a.clone().mul_(2).add_(1))(x),
                         [B34]),
    "inplace_batched_self_unbatched_other": (lambda m, f, x, y: f.vmap(
        lambda a, b: a.clone().add_(b), in_dims=(0, None))(x, y), [B34, (4,)]),
    "setitem_local": (lambda m, f, x: f.vmap(_set_first)(x), [B34]),
    "inplace_on_batched_input": (lambda m, f, x: _inplace_input(f, x), [B34]),
    "inplace_both_batched": (lambda m, f, x, y: (f.vmap(lambda a, b: a.mul_(b))(x, y), x),
                             [B34, B34]),
    "inplace_in_dim_1": (lambda m, f, x: (f.vmap(lambda a: a.add_(1), in_dims=1)(x), x),
                         [B34]),
    "inplace_through_view_of_input": (lambda m, f, x: (f.vmap(lambda a: a[0].mul_(5))(x), x),
                                      [B34]),
    "copy_unbatched_into_batched": (lambda m, f, x, y: (f.vmap(lambda a: a.copy_(y))(x), x),
                                    [B34, (4,)]),
    "inplace_captured_unbatched_with_unbatched": (lambda m, f, x, y: _captured_inplace(f, x, y),
                                                  [B34, (4,)]),
    "fill_on_batched": (lambda m, f, x: (f.vmap(lambda a: a.fill_(2.5))(x), x), [B34]),
}


def _captured_inplace(f, x, y):
    out = f.vmap(lambda a: (y.add_(1), a * 2)[1])(x)
    return out, y


def _set_first(a):
    b = a.clone()
    b[0] = b[1] * 5
    return b


def _inplace_input(f, x):
    out = f.vmap(lambda a: a.mul_(3))(x)
    return out, x


def _vmap_module(m, f, x, w):
    lin = m.nn.Linear(4, 5, bias=False).double()
    with m.no_grad():
        lin.weight.copy_(w)
    return f.vmap(lin)(x).detach()


@pytest.mark.parametrize("name", list(VMAP))
def test_vmap_case(name):
    fn, specs = VMAP[name]
    run_case(fn, specs, name)


# --- errors ---------------------------------------------------------------------------
def _x(lib, shape=(3, 4)):
    return lib.tensor(np.arange(np.prod(shape), dtype=np.float64).reshape(shape) / 7)


ERRORS = {
    "in_dim_too_large": (lambda m, f: f.vmap(lambda a: a, in_dims=2)(_x(m)), "in_dim"),
    "in_dim_too_negative": (lambda m, f: f.vmap(lambda a: a, in_dims=-3)(_x(m)), "in_dim"),
    "in_dims_float": (lambda m, f: f.vmap(lambda a: a, in_dims=0.0)(_x(m)), "in_dims"),
    "in_dims_list_top_level": (lambda m, f: f.vmap(lambda a: a, in_dims=[0])(_x(m)), "in_dims"),
    "in_dims_wrong_length": (lambda m, f: f.vmap(lambda a, b: a + b, in_dims=(0, 0, 0))(
        _x(m), _x(m)), "in_dims"),
    "batch_size_mismatch": (lambda m, f: f.vmap(lambda a, b: a + b)(_x(m), _x(m, (4, 4))),
                            "same size"),
    "batch_size_mismatch_in_dims": (lambda m, f: f.vmap(lambda a, b: a + b, in_dims=(0, 1))(
        _x(m), _x(m)), "same size"),
    "all_in_dims_none": (lambda m, f: f.vmap(lambda a: a, in_dims=None)(_x(m)), "at least one"),
    "no_tensor_inputs": (lambda m, f: f.vmap(lambda a: a)(3.0), "Tensor|at least one"),
    "no_inputs": (lambda m, f: f.vmap(lambda: 1)(), "at least one|inputs"),
    "in_dim_for_python_scalar": (lambda m, f: f.vmap(lambda a, s: a * s, in_dims=(0, 0))(
        _x(m), 2.0), "non-Tensor"),
    "returns_python_int": (lambda m, f: f.vmap(lambda a: 1)(_x(m)), "Tensor|tensor"),
    "returns_none": (lambda m, f: f.vmap(lambda a: None)(_x(m)), "Tensor|tensor"),
    "returns_tuple_with_float": (lambda m, f: f.vmap(lambda a: (a, 1.0))(_x(m)),
                                 "Tensor|tensor"),
    "out_dims_none_for_batched": (lambda m, f: f.vmap(lambda a: a * 2, out_dims=None)(_x(m)),
                                  "out_dims"),
    "out_dims_too_large": (lambda m, f: f.vmap(lambda a: a.sum(0), out_dims=2)(_x(m)),
                           "out_dim|Dimension|dim"),
    "out_dims_wrong_structure": (lambda m, f: f.vmap(lambda a: (a, a), out_dims=(0, 0, 0))(
        _x(m)), "out_dims"),
    "chunk_size_zero": (lambda m, f: f.vmap(lambda a: a, chunk_size=0)(_x(m)), "chunk_size"),
    "randomness_invalid": (lambda m, f: f.vmap(lambda a: a, randomness="sometimes")(_x(m)),
                           "randomness"),
    "rand_like_under_error": (lambda m, f: f.vmap(lambda a: m.rand_like(a))(_x(m)),
                              "randomness|random"),
    "randn_under_error": (lambda m, f: f.vmap(lambda a: a + m.randn(4))(_x(m)),
                          "randomness|random"),
    "dropout_under_error": (lambda m, f: f.vmap(lambda a: m.nn.functional.dropout(a, 0.5))(
        _x(m)), "randomness|random"),
    "bernoulli_under_error": (lambda m, f: f.vmap(lambda a: m.bernoulli(a.sigmoid()))(_x(m)),
                              "randomness|random"),
    "item_inside": (lambda m, f: f.vmap(lambda a: a * a.sum().item())(_x(m)),
                    "item|data-dependent|symbolic"),
    "data_dependent_if": (lambda m, f: f.vmap(lambda a: a if a.sum() > 0 else -a)(_x(m)),
                          "data-dependent|bool|symbolic|control flow"),
    "inplace_unbatched_self_batched_other": (lambda m, f: f.vmap(
        lambda a, b: b.add_(a), in_dims=(0, None))(_x(m), _x(m, (4,))), "writes batched values into a tensor"),
    "inplace_unbatched_mul_": (lambda m, f: f.vmap(
        lambda a, b: b.mul_(a), in_dims=(0, None))(_x(m), _x(m, (4,))), "writes batched values into a tensor"),
    "bernoulli_batched_p_same": (lambda m, f: f.vmap(lambda a: m.bernoulli(a.sigmoid()),
                                                     randomness="same")(_x(m)),
                                 "same"),
    "nonzero_inside": (lambda m, f: f.vmap(lambda a: a.nonzero())(_x(m)),
                       "nonzero|dynamic|data-dependent"),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_vmap_errors_like_torch(name):
    call, pattern = ERRORS[name]
    with pytest.raises(Exception):
        call(torch, torch.func)
    with pytest.raises(Exception, match=pattern):
        call(ember, F)


def test_unbatched_tensor_unchanged_by_failed_inplace():
    b = _x(ember, (4,))
    before = b.numpy().copy()
    with pytest.raises(Exception):
        F.vmap(lambda a, b: b.add_(a), in_dims=(0, None))(_x(ember), b)
    np.testing.assert_array_equal(b.numpy(), before)


# --- randomness ------------------------------------------------------------------------
RANDOM = {
    "rand_like": lambda m: (lambda a: m.rand_like(a)),
    "randn_factory": lambda m: (lambda a: a * 0 + m.randn(4, dtype=a.dtype)),
    "dropout": lambda m: (lambda a: m.nn.functional.dropout(m.ones_like(a), 0.5)),
    "bernoulli": lambda m: (lambda a: m.bernoulli(m.full((4,), 0.5, dtype=a.dtype)) + a),
    "normal_": lambda m: (lambda a: m.empty_like(a).normal_()),
}


@pytest.mark.parametrize("name", list(RANDOM))
@pytest.mark.parametrize("mode", ["different", "same"])
def test_vmap_randomness_modes(name, mode):
    """'different': examples draw independently; 'same': one draw shared by all; the
    shapes are torch's."""
    x = np.zeros((6, 4))
    want = torch.func.vmap(RANDOM[name](torch), randomness=mode)(torch.tensor(x))
    ember.manual_seed(3)
    got = F.vmap(RANDOM[name](ember), randomness=mode)(ember.tensor(x)).numpy()
    assert got.shape == tuple(want.shape)
    rows_equal = all(np.array_equal(got[0], got[i]) for i in range(1, 6))
    assert rows_equal == (mode == "same"), f"{name} under randomness={mode!r}"


@pytest.mark.parametrize("mode", ["different", "same"])
def test_vmap_randomness_unbatched_input(mode):
    """A random op on an unbatched input under 'different' still draws per example."""
    y = ember.zeros(4, dtype=ember.float64)
    got = F.vmap(lambda a, b: a + ember.rand_like(b), in_dims=(0, None),
                 randomness=mode)(ember.zeros(5, 4, dtype=ember.float64), y).numpy()
    assert got.shape == (5, 4)
    assert all(np.array_equal(got[0], got[i]) for i in range(1, 5)) == (mode == "same")


def test_unbatched_output_at_out_dim_1_is_expanded_there():
    """torch 2.13's vmap fails to expand an unbatched output at out_dims=1 (an internal
    expand error); the documented result is the value repeated along that dim."""
    x, y = ember.zeros(3, 4, dtype=ember.float64), ember.arange(4, dtype=ember.float64)
    got = F.vmap(lambda a, b: b.exp(), in_dims=(0, None), out_dims=1)(x, y)
    want = np.repeat(np.exp(np.arange(4.0))[:, None], 3, axis=1)
    assert tuple(got.shape) == (4, 3)
    np.testing.assert_allclose(got.numpy(), want)


def test_flip_of_scalar_examples():
    """torch 2.13's vmap fails on flip(0) of 0-d examples (its rule shifts the dim past
    the batch); flipping a scalar is the scalar, which ember returns."""
    x = ember.arange(3, dtype=ember.float64)
    np.testing.assert_array_equal(F.vmap(lambda a: a.flip(0))(x).numpy(), x.numpy())


def test_vmap_keeps_function_metadata():
    def my_function(a):
        """doc"""
        return a
    wrapped = F.vmap(my_function)
    assert wrapped.__name__ == "my_function" and wrapped.__doc__ == "doc"
