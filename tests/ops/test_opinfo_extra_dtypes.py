"""Extra-dtype cases (float16/bfloat16 rounding, int32/int16/int8/uint8 result dtypes) found
by running PyTorch's OpInfo database with `--dtypes all`, each checked against torch."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember


def _pair(shape, dtype, seed, low=-4, high=5):
    rng = np.random.default_rng(seed)
    if dtype in ("float16", "bfloat16"):
        t = torch.from_numpy(rng.standard_normal(shape).astype(np.float32)).to(
            getattr(torch, dtype))
    else:
        t = torch.from_numpy(rng.integers(low, high, shape)).to(getattr(torch, dtype))
    return _to_ember(t), t


def _to_ember(t):
    if t.dtype == torch.bfloat16:   # NumPy has no bfloat16: go through float32 exactly
        return ember.tensor(t.float().numpy()).to(ember.bfloat16)
    return ember.tensor(t.numpy())


def _same(actual, expected):
    assert str(actual.dtype).split(".")[-1] == str(expected.dtype).split(".")[-1], \
        (actual.dtype, expected.dtype)
    a = actual.to(ember.float64).numpy() if actual.dtype.is_floating_point else \
        actual.numpy()
    e = expected.double().numpy() if expected.dtype.is_floating_point else expected.numpy()
    np.testing.assert_array_equal(a, e)      # bit for bit: the rounding order must match


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("beta,alpha", [(1, 1), (0.6, 0.2)])
@pytest.mark.parametrize("in_shape", [(5, 10), (), (1,)])
def test_addbmm_half_rounds_once_per_batch(dtype, beta, alpha, in_shape):
    (i, ti), (a, ta), (b, tb) = (_pair(s, dtype, k) for k, s in
                                 enumerate([in_shape, (5, 5, 5), (5, 5, 10)]))
    _same(ember.addbmm(i, a, b, beta=beta, alpha=alpha),
          torch.addbmm(ti, ta, tb, beta=beta, alpha=alpha))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "int32", "int16", "uint8"])
@pytest.mark.parametrize("batch", [(8,), (2, 3), ()])
def test_bilinear_keeps_dtype_and_half_rounding(dtype, batch):
    (x1, t1), (x2, t2) = _pair(batch + (3,), dtype, 1, 0, 3), _pair(batch + (4,), dtype, 2, 0, 3)
    (w, tw), (b, tb) = _pair((5, 3, 4), dtype, 3, 0, 3), _pair((5,), dtype, 4, 0, 3)
    _same(ember.nn.functional.bilinear(x1, x2, w, b), torch.nn.functional.bilinear(t1, t2, tw, tb))


@pytest.mark.parametrize("dtype", ["int32", "int8", "uint8", "bool"])
@pytest.mark.parametrize("equation,shapes", [
    ("i->", [(3,)]), ("ij->i", [(2, 3)]), ("ii->", [(3, 3)]), ("ij,k->ik", [(2, 3), (4,)]),
    ("ii->i", [(3, 3)]), ("ij->ji", [(2, 3)]), ("ij,ij->i", [(2, 3), (2, 3)]),
])
def test_einsum_integer_result_dtype(dtype, equation, shapes):
    if dtype == "bool" and equation == "ij,ij->i":
        pytest.skip("torch has no bool contraction (bmm) to compare with")
    pairs = [_pair(s, dtype if dtype != "bool" else "int64", k, 0, 2 if dtype == "bool" else
                   100) for k, s in enumerate(shapes)]
    ours = [e.to(ember.bool) if dtype == "bool" else e for e, _ in pairs]
    theirs = [t.bool() if dtype == "bool" else t for _, t in pairs]
    _same(ember.einsum(equation, *ours), torch.einsum(equation, *theirs))


@pytest.mark.parametrize("dtype", ["int32", "int16", "uint8"])
@pytest.mark.parametrize("n", [2, 4])
def test_linalg_vander_integer_powers_in_int64(dtype, n):
    x, t = _pair((5,), dtype, 0, 0, 250)
    _same(ember.linalg.vander(x, N=n), torch.linalg.vander(t, N=n))


def test_linalg_vander_rejects_bool_like_torch():
    with pytest.raises(RuntimeError, match="Bool"):
        torch.linalg.vander(torch.tensor([True, False]))
    with pytest.raises(RuntimeError, match="Bool"):
        ember.linalg.vander(ember.tensor([True, False]))


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16"])
@pytest.mark.parametrize("value", [-1, 300, -129, 127, 255])
def test_full_out_of_range_int_wraps_or_raises_like_torch(dtype, value):
    try:
        expected = torch.full([3], value, dtype=getattr(torch, dtype))
    except RuntimeError:
        with pytest.raises(RuntimeError, match="without overflow"):
            ember.full([3], value, dtype=getattr(ember, dtype))
        return
    _same(ember.full([3], value, dtype=getattr(ember, dtype)), expected)


@pytest.mark.parametrize("lo,hi", [(-1, 4), (1, 250), (None, -2)])
def test_clamp_uint8_wraps_python_bounds_like_torch(lo, hi):
    x, t = _pair((6,), "uint8", 0, 0, 255)
    _same(x.clamp(lo, hi), t.clamp(lo, hi))


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
def test_index_add_negative_alpha_wraps_like_torch(dtype):
    (x, tx), (s, ts) = _pair((4, 3), dtype, 0, 0, 9), _pair((2, 3), dtype, 1, 0, 9)
    idx = [2, 0]
    _same(ember.index_add(x, 0, ember.tensor(idx), s, alpha=-1),
          torch.index_add(tx, 0, torch.tensor(idx), ts, alpha=-1))


_SPECIAL = [float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 0.3, -0.3, 0.5, -0.5, 0.7,
            -0.7, 1e-40]


@pytest.mark.parametrize("name,args", [("hardshrink", ()), ("softshrink", (0.5,)),
                                       ("threshold", (0.5, -9.0)), ("threshold", (0.15, 2.0))])
def test_shrink_and_threshold_keep_nan_and_signed_zero_like_torch(name, args):
    actual = getattr(ember.nn.functional, name)(ember.tensor(_SPECIAL), *args).numpy()
    expected = getattr(torch.nn.functional, name)(torch.tensor(_SPECIAL), *args).numpy()
    np.testing.assert_array_equal(actual, expected)
    np.testing.assert_array_equal(np.signbit(actual), np.signbit(expected))


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_margin_ranking_loss_of_integers_is_float_like_torch(reduction):
    (a, ta), (b, tb), (y, ty) = (_pair(s, "int64", k) for k, s in
                                 enumerate([(5, 2), (5, 1), (1, 2)]))
    _same(ember.nn.functional.margin_ranking_loss(a, b, y, reduction=reduction),
          torch.nn.functional.margin_ranking_loss(ta, tb, ty, reduction=reduction))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("op", ["sum", "cumsum"])
def test_half_result_dtype_accumulates_in_float32_like_torch(dtype, op):
    # multiples of 1/64: every float32 partial sum is exact, whatever the summation order,
    # so only the accumulator's width decides the rounded result
    t = torch.from_numpy(np.round(np.random.default_rng(0).standard_normal((2, 300)) * 64)
                         .astype(np.float32) / 64)
    x = ember.tensor(t.numpy())
    _same(getattr(x, op)(1, dtype=getattr(ember, dtype)),
          getattr(t, op)(1, dtype=getattr(torch, dtype)))


@pytest.mark.parametrize("dtype", ["uint8", "int64"])
def test_addbmm_integers_keep_dtype_like_torch(dtype):
    (i, ti), (a, ta), (b, tb) = (_pair(s, dtype, k, 0, 6) for k, s in
                                 enumerate([(5, 10), (5, 5, 5), (5, 5, 10)]))
    _same(ember.addbmm(i, a, b), torch.addbmm(ti, ta, tb))
