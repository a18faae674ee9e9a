"""Edge cases found by running PyTorch's OpInfo database over every sample (empty
matrices, 0-d inputs, integer dtypes of float-valued factories, subgradients at zero),
each checked against torch."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember

INF = float("inf")


def _same(actual, expected, rtol=1e-6, atol=1e-7):
    a = actual.detach().numpy()
    e = expected.detach().numpy()
    assert a.shape == e.shape and str(a.dtype) == str(e.dtype), (a.dtype, e.dtype, a.shape)
    np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)


@pytest.mark.parametrize("args", [(4.3, -3, 50), (-2.0, 50, 7), (0, 4, 1), (1.9, 1.2, 3),
                                  (-3.7, 2.2, 4)])
@pytest.mark.parametrize("dtype", ["int64", "int32"])
def test_linspace_integer_dtype_truncates_ends(args, dtype):
    _same(ember.linspace(*args, dtype=getattr(ember, dtype)),
          torch.linspace(*args, dtype=getattr(torch, dtype)))


@pytest.mark.parametrize("args", [(0, 1.2, 4), (1, 2.9, 3, 5.0), (0, -3, 5, 2.0)])
def test_logspace_integer_dtype_truncates_ends(args):
    _same(ember.logspace(*args, dtype=ember.int64), torch.logspace(*args, dtype=torch.int64))


@pytest.mark.parametrize("shape", [(5, 0, 5), (0, 3)])
@pytest.mark.parametrize("bins", [1, 3])
def test_histogram_of_no_points_spans_zero_to_one(shape, bins):
    hist, edges = ember.histogram(ember.empty(*shape), bins)
    t_hist, t_edges = torch.histogram(torch.empty(*shape), bins)
    _same(hist, t_hist)
    _same(edges, t_edges)


def test_histogramdd_of_no_points():
    hist, edges = ember.histogramdd(ember.empty(5, 0, 2), 2)
    t_hist, t_edges = torch.histogramdd(torch.empty(5, 0, 2), 2)
    _same(hist, t_hist)
    for a, e in zip(edges, t_edges):
        _same(a, e)


@pytest.mark.parametrize("shape", [(0, 0), (2, 0, 0), (0, 3), (3, 0)])
@pytest.mark.parametrize("ord", ["fro", "nuc", 2, -2, 1, -1, INF, -INF])
def test_matrix_norm_of_empty_matrices(shape, ord):
    try:
        expected = torch.linalg.matrix_norm(torch.empty(shape), ord)
    except Exception as exc:  # noqa: BLE001 - ember must raise the same type
        with pytest.raises(type(exc)):
            ember.linalg.matrix_norm(ember.empty(*shape), ord)
        return
    _same(ember.linalg.matrix_norm(ember.empty(*shape), ord), expected)


@pytest.mark.parametrize("ord", [0.5, -0.5, -1, -2, 3, 2, 1])
@pytest.mark.parametrize("values", [[0.0, 0.0, 1.0, 0.0, -2.0], [0.0] * 4, [1.5, -0.5]])
def test_vector_norm_subgradient_at_zero(ord, values):
    x = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    torch.linalg.vector_norm(x, ord).backward()
    y = ember.tensor(values, dtype=ember.float64, requires_grad=True)
    ember.linalg.vector_norm(y, ord).backward()
    _same(y.grad, x.grad)


@pytest.mark.parametrize("keepdim", [False, True])
def test_vector_norm_of_0d_tensor_with_dim(keepdim):
    x = torch.tensor(-1.5, dtype=torch.float64, requires_grad=True)
    out = torch.linalg.vector_norm(x, 3, dim=0, keepdim=keepdim)
    out.backward()
    y = ember.tensor(-1.5, dtype=ember.float64, requires_grad=True)
    got = ember.linalg.vector_norm(y, 3, dim=0, keepdim=keepdim)
    got.backward()
    _same(got, out)
    _same(y.grad, x.grad)


def test_matrix_rank_and_pinv_with_tolerance_tensors():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 5, 4)).astype(np.float32)
    a[1, :, 0] = a[1, :, 1]                     # one rank-deficient matrix
    tol = np.array([0.0, 0.5, 30.0], np.float32)
    for kw in ("atol", "rtol"):
        got = ember.linalg.matrix_rank(ember.tensor(a), **{kw: ember.tensor(tol)})
        want = torch.linalg.matrix_rank(torch.tensor(a), **{kw: torch.tensor(tol)})
        _same(got, want)
        got = ember.linalg.pinv(ember.tensor(a), **{kw: ember.tensor(tol)})
        want = torch.linalg.pinv(torch.tensor(a), **{kw: torch.tensor(tol)})
        _same(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("a_shape,b_shape", [((0, 0), (0, 3)), ((2, 0, 0), (2, 0, 1))])
def test_lu_paths_on_empty_matrices(a_shape, b_shape):
    LU, piv = ember.linalg.lu_factor(ember.empty(*a_shape))
    t_LU, t_piv = torch.linalg.lu_factor(torch.empty(a_shape))
    _same(LU, t_LU)
    _same(piv, t_piv)
    _same(ember.linalg.lu_solve(LU, piv, ember.empty(*b_shape)),
          torch.linalg.lu_solve(t_LU, t_piv, torch.empty(b_shape)))
    _same(ember.linalg.solve_ex(ember.empty(*a_shape), ember.empty(*b_shape))[0],
          torch.linalg.solve_ex(torch.empty(a_shape), torch.empty(b_shape))[0])


def test_empty_view_fits_any_storage_offset():
    got = ember.empty(0).as_strided([0, 3], [2, 2], 5)
    want = torch.empty(0).as_strided([0, 3], [2, 2], 5)
    assert tuple(got.shape) == tuple(want.shape)
    with pytest.raises(RuntimeError):
        ember.empty(0).as_strided([1], [2], 5)


@pytest.mark.parametrize("args", [(0.0, -8.000001, -4.0), (-0.9, 2.1, 2.0), (3.1,),
                                  (2.1, -2.9, -1.0), (1.5, 7.7, 1.5)])
@pytest.mark.parametrize("dtype", ["int32", "int16", "int64"])
def test_arange_integer_dtype_counts_like_torch(args, dtype):
    _same(ember.arange(*args, dtype=getattr(ember, dtype)),
          torch.arange(*args, dtype=getattr(torch, dtype)))


@pytest.mark.parametrize("op", ["add", "sub"])
def test_integer_alpha_wraps_into_uint8(op):
    a = np.array([1, 200, 7], np.uint8)
    _same(getattr(ember, op)(ember.tensor(a), ember.tensor(a), alpha=-3),
          getattr(torch, op)(torch.tensor(a), torch.tensor(a), alpha=-3))


def test_vander_needs_two_columns():
    for make in (lambda m: m.tensor(1.5), lambda m: m.ones(1), lambda m: m.ones(0)):
        with pytest.raises(RuntimeError):
            torch.linalg.vander(make(torch))
        with pytest.raises(RuntimeError, match="N must be greater than 1"):
            ember.linalg.vander(make(ember))


@pytest.mark.parametrize("N", [2, 3])
def test_vander_of_0d_input_is_one_row(N):
    x = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    out = torch.linalg.vander(x, N=N)
    y = ember.tensor(1.5, dtype=ember.float64, requires_grad=True)
    got = ember.linalg.vander(y, N=N)
    _same(got, out)
    if out.shape[-1] > 1:
        cot = np.arange(1.0, out.numel() + 1).reshape(out.shape)
        out.backward(torch.tensor(cot))
        got.backward(ember.tensor(cot))
        _same(y.grad, x.grad)


def test_group_norm_of_empty_batch():
    w, b = np.ones(2, np.float32), np.zeros(2, np.float32)
    got = ember.native_group_norm(ember.empty(0, 2), ember.tensor(w), ember.tensor(b),
                                  0, 2, 1, 1, 1e-5)
    want = torch.native_group_norm(torch.empty(0, 2), torch.tensor(w), torch.tensor(b),
                                   0, 2, 1, 1, 1e-5)
    for a, e in zip(got, want):
        assert tuple(a.shape) == tuple(e.shape)


def test_fractional_max_pool_of_empty_batch():
    got = ember.nn.functional.fractional_max_pool3d(ember.empty(0, 1, 4, 5, 4), [2, 2, 1],
                                                    output_size=2)
    want = torch.nn.functional.fractional_max_pool3d(torch.empty(0, 1, 4, 5, 4), [2, 2, 1],
                                                     output_size=2)
    assert tuple(got.shape) == tuple(want.shape)


@pytest.mark.parametrize("dtype", ["int32", "bool", "uint8", "float32"])
@pytest.mark.parametrize("N", [None, 0, 1, 3])
def test_torch_vander_dtype_and_narrow_widths(dtype, N):
    x = np.array([1, 0, 2][: 1 if N is None else 3]).astype(dtype)
    _same(ember.vander(ember.tensor(x), N=N), torch.vander(torch.tensor(x), N=N))


@pytest.mark.parametrize("factory", ["empty", "zeros", "ones"])
def test_more_than_64_dims_is_a_runtime_error(factory):
    with pytest.raises(RuntimeError, match="up to 64 dims"):
        getattr(ember, factory)([1] * 65)
    assert getattr(ember, factory)([1] * 64).ndim == 64


@pytest.mark.parametrize("driver", ["gels", "gelsy", "gelsd", "gelss"])
def test_lstsq_differentiable_outputs_match_torch(driver):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    want = torch.linalg.lstsq(torch.tensor(a, requires_grad=True),
                              torch.tensor(b, requires_grad=True), driver=driver)
    got = ember.linalg.lstsq(ember.tensor(a, requires_grad=True),
                             ember.tensor(b, requires_grad=True), driver=driver)
    assert [t.requires_grad for t in got] == [t.requires_grad for t in want]


@pytest.mark.parametrize("ord", [2, -2])
@pytest.mark.parametrize("make", [lambda: np.zeros((4, 4)), lambda: np.eye(3) * 2.0,
                                  lambda: np.arange(6.0).reshape(2, 3)])
def test_spectral_norm_gradient_shares_ties(ord, make):
    a = make()
    x = torch.tensor(a, requires_grad=True)
    torch.linalg.matrix_norm(x, ord).backward()
    y = ember.tensor(a, requires_grad=True)
    ember.linalg.matrix_norm(y, ord).backward()
    _same(y.grad, x.grad, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", ["cat", "stack", "hstack", "vstack", "dstack", "column_stack"])
def test_one_tensor_where_a_sequence_is_wanted(name):
    with pytest.raises(TypeError, match="must be tuple of Tensors"):
        getattr(torch, name)(torch.ones(2, 3))
    with pytest.raises(TypeError, match="must be tuple of Tensors, not Tensor"):
        getattr(ember, name)(ember.ones(2, 3))
    x = ember.ones(2, 3)
    with pytest.raises(TypeError):
        ember.cat(x, out=ember.zeros(2, 3, dtype=ember.float64))


@pytest.mark.parametrize("fn", ["unique", "unique_consecutive"])
def test_unique_along_a_dim_of_empty_tensor(fn):
    got = getattr(ember, fn)(ember.empty(5, 0, 5), dim=1, return_counts=True)
    want = getattr(torch, fn)(torch.empty(5, 0, 5), dim=1, return_counts=True)
    for a, e in zip(got, want):
        assert tuple(a.shape) == tuple(e.shape)


def test_searchsorted_with_empty_batches():
    for seq, vals in [((0, 3), (0, 2)), ((2, 3), (2, 0))]:
        got = ember.searchsorted(ember.zeros(*seq), ember.zeros(*vals))
        want = torch.searchsorted(torch.zeros(seq), torch.zeros(vals))
        _same(got, want)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_norms_of_half_precision_inputs(dtype):
    a = np.linspace(-3, 3, 12, dtype=np.float32).reshape(3, 4)
    x, y = torch.tensor(a).to(getattr(torch, dtype)), ember.tensor(a).to(getattr(ember, dtype))
    for ord in (2, 1, INF, 0.5):
        _same(ember.linalg.vector_norm(y, ord, dim=1).float(),
              torch.linalg.vector_norm(x, ord, dim=1).float(), rtol=1e-2)
    for ord in ("fro", 1, INF):
        _same(ember.linalg.matrix_norm(y, ord).float(),
              torch.linalg.matrix_norm(x, ord).float(), rtol=1e-2)
    _same(ember.renorm(y, 2, 0, 1.0).float(), torch.renorm(x, 2, 0, 1.0).float(), rtol=2e-2,
          atol=1e-2)
    with pytest.raises(RuntimeError, match="Low precision"):
        ember.linalg.matrix_norm(y, "nuc")


@pytest.mark.parametrize("reduce", ["amax", "amin"])
def test_scatter_reduce_bfloat16_without_self(reduce):
    src = np.arange(6, dtype=np.float32).reshape(2, 3)
    index = np.array([[0, 1, 0], [1, 0, 1]])
    got = ember.zeros(2, 3, dtype=ember.bfloat16).scatter_reduce(
        0, ember.tensor(index), ember.tensor(src).to(ember.bfloat16), reduce,
        include_self=False)
    want = torch.zeros(2, 3, dtype=torch.bfloat16).scatter_reduce(
        0, torch.tensor(index), torch.tensor(src).to(torch.bfloat16), reduce,
        include_self=False)
    _same(got.float(), want.float())


def test_bfloat16_probability_targets_and_nans():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((4, 3)).astype(np.float32)
    probs = np.abs(rng.standard_normal((4, 3))).astype(np.float32)
    for reduction in ("mean", "none"):
        got = ember.nn.functional.cross_entropy(
            ember.tensor(logits).bfloat16(), ember.tensor(probs).bfloat16(),
            reduction=reduction)
        want = torch.nn.functional.cross_entropy(
            torch.tensor(logits).bfloat16(), torch.tensor(probs).bfloat16(),
            reduction=reduction)
        _same(got.float(), want.float(), rtol=2e-2, atol=2e-2)
    x = np.array([[1.0, np.nan, 3.0, -2.0], [0.5, 2.0, np.nan, np.nan]], np.float32)
    e, t = ember.tensor(x).bfloat16(), torch.tensor(x).bfloat16()
    for fn in ("median", "nanmedian", "cummax", "mode"):
        got, want = getattr(ember, fn)(e, 1), getattr(torch, fn)(t, 1)
        np.testing.assert_array_equal(got[0].float().numpy(), want[0].float().numpy())


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int64", "float32"])
def test_trapezoid_in_torch_order(dtype):
    y = np.array([[250, 3, 200, 7], [1, 2, 3, 4]]).astype(dtype)
    x = np.array([[1, 5, 2, 9], [0, 1, 2, 3]]).astype(dtype)
    ey, ex, ty, tx = ember.tensor(y), ember.tensor(x), torch.tensor(y), torch.tensor(x)
    _same(ember.trapezoid(ey), torch.trapezoid(ty), rtol=1e-5)
    _same(ember.trapezoid(ey, dx=0.5, dim=0), torch.trapezoid(ty, dx=0.5, dim=0), rtol=1e-5)
    _same(ember.trapezoid(ey, ex), torch.trapezoid(ty, tx), rtol=1e-5)
    _same(ember.trapezoid(ey, ex[0]), torch.trapezoid(ty, tx[0]), rtol=1e-5)
