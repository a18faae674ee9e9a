"""Reductions as PyTorch's test_reductions.py pins them down: dim / dim tuples / keepdim,
dtype= and out=, the identities of empty reductions and the errors of those without one,
NaN propagation (max/min/amax/argmax) and the nan-ignoring forms, var/std's correction
and their degrees-of-freedom warning, logsumexp's infinities, count_nonzero, all/any's
dtypes. Each case runs with torch (the oracle) and ember (torch_suite_common.both /
raises_both)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "frontend"))
from torch_suite_common import IGNORE, both, raises_both  # noqa: E402

NAN, INF = float("nan"), float("inf")


def _m(L, *shape, dtype=None):
    n = 1
    for s in shape:
        n *= s
    return L.arange(n, dtype=dtype or L.float32).reshape(*shape)


def _nan(L):
    return L.tensor([[1., NAN, 3.], [4., 5., -1.]])


def _o(fn, o):
    """fn(out=o) and o afterwards."""
    r = fn(o)
    return [r, o]


def _vi(r):
    return [r.values, r.indices]


CASES = {
    # sum / prod / mean: dims, keepdim, dtype=, out=
    "sum_dim_tuple_keepdim": lambda L: L.sum(_m(L, 2, 3, 4), (0, 2), keepdim=True),
    "sum_negative_dims": lambda L: _m(L, 2, 3, 4).sum((-1, -3)),
    "sum_empty_dim_list": lambda L: L.sum(_m(L, 2, 3), dim=[]),
    "sum_dtype_int_to_float": lambda L: L.sum(L.tensor([1, 2, 3]), dtype=L.float64),
    "sum_float_to_int_dtype": lambda L: L.sum(L.tensor([1.7, 2.6]), dtype=L.int64),
    "sum_bool_int8_uint8": lambda L: [L.tensor([True, True]).sum(),
                                      L.tensor([100, 100], dtype=L.int8).sum(),
                                      L.tensor([200, 200], dtype=L.uint8).sum()],
    "sum_int_dtype_kw_narrow": lambda L: L.tensor([200, 200]).sum(dtype=L.uint8),
    "sum_out": lambda L: (lambda o: (L.sum(_m(L, 2, 3), 1, out=o), o))(L.empty(2)),
    "sum_half": lambda L: L.tensor([1000., 2000.], dtype=L.float16).sum(),
    "sum_scalar_dim0": lambda L: [L.tensor(3.).sum(0), L.tensor(3.).sum(-1, keepdim=True)],
    "sum_empty_identities": lambda L: [L.empty(0).sum(), L.empty(0, 3).sum(0),
                                       L.empty(2, 0).sum(1, keepdim=True),
                                       L.empty(0, dtype=L.int32).sum()],
    "prod_empty_identity": lambda L: [L.empty(0).prod(), L.empty(2, 0).prod(1),
                                      L.empty(0, dtype=L.bool).prod()],
    "prod_int_dtype": lambda L: [L.tensor([2, 3], dtype=L.int8).prod(),
                                 L.tensor([True, False]).prod(),
                                 L.tensor([2, 3]).prod(dtype=L.float32)],
    "prod_dim_keepdim": lambda L: L.prod(_m(L, 2, 3) + 1, 1, keepdim=True),
    "prod_with_zero_nan_inf": lambda L: [L.tensor([0., INF]).prod(),
                                         L.tensor([NAN, 0.]).prod()],
    "mean_dims": lambda L: [L.mean(_m(L, 2, 3, 4), (0, 1)), _m(L, 2, 3).mean(-1, True)],
    "mean_dtype": lambda L: L.mean(L.tensor([1, 2, 4]), dtype=L.float64),
    "mean_empty_nan": lambda L: [L.empty(0).mean(), L.empty(0, 2).mean(0)],
    "mean_out": lambda L: (lambda o: (L.mean(_m(L, 2, 3), 0, out=o), o))(L.empty(3)),
    "nansum_nanmean": lambda L: [L.nansum(_nan(L)), L.nansum(_nan(L), 1),
                                 L.nanmean(_nan(L)), L.nanmean(_nan(L), 0, keepdim=True)],
    "nansum_int": lambda L: L.nansum(L.tensor([1, 2])),
    "nansum_all_nan": lambda L: [L.nansum(L.tensor([NAN, NAN])),
                                 L.nanmean(L.tensor([NAN, NAN]))],
    # var / std
    "var_std_default": lambda L: [L.var(_m(L, 5)), L.std(_m(L, 5))],
    "var_unbiased_false": lambda L: [L.var(_m(L, 2, 3), 1, unbiased=False),
                                     L.std(_m(L, 2, 3), 0, False, True)],
    "var_correction": lambda L: [L.var(_m(L, 2, 4), 1, correction=0),
                                 L.var(_m(L, 2, 4), 1, correction=2),
                                 L.std(_m(L, 2, 4), dim=None, correction=3)],
    "var_dim_tuple": lambda L: L.var(_m(L, 2, 3, 4), (0, 2), keepdim=True),
    "var_mean_std_mean": lambda L: [L.var_mean(_m(L, 2, 3), 1),
                                    L.std_mean(_m(L, 2, 3), 0, correction=0)],
    "var_with_nan": lambda L: L.var(_nan(L), 1),
    "var_complex": lambda L: L.var(L.tensor([1 + 1j, 2 - 1j, 0j])),
    # var/std with fewer elements than the correction: NaN (or inf) and a warning
    "var_single_element": lambda L: L.var(L.tensor([3.])),
    "std_single_per_row": lambda L: L.std(L.tensor([[1.], [2.]]), 1),
    "var_correction_gt_n": lambda L: L.var(L.tensor([1., 2.]), correction=3),
    # logsumexp
    "logsumexp_dims": lambda L: [L.logsumexp(_m(L, 2, 3), 1), L.logsumexp(_m(L, 2, 3),
                                                                        (0, 1), True)],
    "logsumexp_infinities": lambda L: [L.logsumexp(L.tensor([-INF, -INF]), 0),
                                       L.logsumexp(L.tensor([INF, 1.]), 0),
                                       L.logsumexp(L.tensor([INF, -INF]), 0),
                                       L.logsumexp(L.tensor([NAN, 1.]), 0)],
    "logsumexp_large": lambda L: L.logsumexp(L.tensor([1000., 1000.]), 0),
    "logsumexp_int": lambda L: L.logsumexp(L.tensor([1, 2]), 0),
    "logsumexp_empty": lambda L: L.logsumexp(L.empty(0, 2), 0),
    # count_nonzero
    "count_nonzero": lambda L: [L.count_nonzero(L.tensor([[0, 1], [2, 0]])),
                                L.count_nonzero(L.tensor([[0, 1], [2, 3]]), 0),
                                L.count_nonzero(L.tensor([[0., NAN], [-0., 3]]), (0, 1)),
                                L.count_nonzero(L.tensor([True, False]))],
    "count_nonzero_empty": lambda L: L.count_nonzero(L.empty(0, 3), 1),
    # min / max / amin / amax / aminmax / argmax / argmin
    "max_all_and_dim": lambda L: [L.max(_m(L, 2, 3)), _vi(L.max(_m(L, 2, 3), 1)),
                                  _vi(L.min(_m(L, 2, 3), 0, keepdim=True))],
    "max_nan_propagates": lambda L: [L.max(_nan(L)), _vi(L.max(_nan(L), 1)),
                                     _vi(L.min(_nan(L), 1)), L.amax(_nan(L), 0),
                                     L.amin(_nan(L), 1)],
    "max_ties_first_index": lambda L: [_vi(L.max(L.tensor([[1, 3, 3], [2, 2, 0]]), 1)),
                                       _vi(L.min(L.tensor([[1, 0, 0], [0, 2, 0]]), 1))],
    "max_bool": lambda L: [L.max(L.tensor([True, False])), L.amin(L.tensor([True, False]))],
    "max_binary_form": lambda L: L.max(L.tensor([1., 5.]), L.tensor([3., 2.])),
    "amax_dims": lambda L: [L.amax(_m(L, 2, 3, 4), (0, 2)), L.amin(_m(L, 2, 3, 4), -1, True),
                            L.amax(_m(L, 2, 3), dim=())],
    "amax_empty_kept_dim": lambda L: L.amax(L.empty(0, 3), 1),
    "aminmax": lambda L: [list(L.aminmax(_m(L, 2, 3))),
                          list(L.aminmax(_m(L, 2, 3), dim=1, keepdim=True)),
                          L.aminmax(_nan(L), dim=0).min],
    "aminmax_int_bool": lambda L: [list(L.aminmax(L.tensor([3, -2, 7], dtype=L.int8))),
                                   list(L.aminmax(L.tensor([True, True])))],
    "argmax_argmin": lambda L: [L.argmax(_m(L, 2, 3)), L.argmax(_m(L, 2, 3), 0),
                                L.argmin(_m(L, 2, 3), 1, keepdim=True),
                                L.argmax(_m(L, 2, 3), keepdim=True)],
    "argmax_nan": lambda L: [L.argmax(_nan(L)), L.argmin(_nan(L), 1)],
    "argmax_ties": lambda L: [L.argmax(L.tensor([1, 3, 3])), L.argmin(L.tensor([0, 0, 1]))],
    "argmax_scalar": lambda L: [L.argmax(L.tensor(2.)), L.argmax(L.tensor(2.), 0)],
    "max_empty_along_other_dim": lambda L: _vi(L.max(L.empty(0, 3), 1)),
    "max_infinities": lambda L: [L.max(L.tensor([-INF, -INF])), L.argmin(L.tensor([INF,
                                                                                  -INF]))],
    # sum/prod/cumsum with out= and no dtype= compute in out's dtype
    "sum_prod_out_dtype_computes": lambda L: [
        (lambda o: (L.sum(L.tensor([[0.5, 0.7]]), 1, out=o), o)[1])(L.empty(1, dtype=L.long)),
        (lambda o: (L.sum(L.tensor([1e8, 1., -1e8]), 0, out=o), o)[1])(
            L.empty((), dtype=L.float64)),
        (lambda o: (L.prod(L.tensor([1.5, 1.5]), 0, out=o), o)[1])(L.empty((), dtype=L.long)),
        (lambda o: (L.cumsum(L.tensor([0.5, 0.7]), 0, out=o), o)[1])(L.empty(2, dtype=L.long)),
        (lambda o: (L.sum(L.tensor([100, 100]), 0, out=o), o)[1])(L.empty((), dtype=L.int8))],
    "max_out": lambda L: (lambda v, i: (list(L.max(_m(L, 2, 3), 1, out=(v, i))), v, i))(
        L.empty(2), L.empty(2, dtype=L.long)),
    # all / any
    "all_any_dtypes": lambda L: [L.all(L.tensor([1, 2], dtype=L.uint8)),
                                 L.any(L.tensor([0., 2.])), L.all(L.tensor([1, 0]), 0),
                                 L.any(_m(L, 2, 3), 1, keepdim=True)],
    "all_any_empty": lambda L: [L.all(L.empty(0)), L.any(L.empty(0)),
                                L.all(L.empty(2, 0), 1)],
    "all_any_nan": lambda L: [L.all(L.tensor([NAN])), L.any(L.tensor([NAN, 0.]))],
    "all_dim_tuple": lambda L: L.all(L.ones(2, 3, 2), dim=(0, 2)),
    # norms and cumulative forms that test_reductions covers
    "norm_dims": lambda L: [L.norm(_m(L, 2, 3)), L.norm(_m(L, 2, 3), 1, 1),
                            L.norm(_m(L, 2, 3), float("inf"), 0)],
    "cumsum_dtype": lambda L: [L.cumsum(L.tensor([1, 2, 3], dtype=L.int8), 0),
                               L.cumsum(L.tensor([True, True]), 0),
                               L.cumprod(L.tensor([1, 2, 3]), 0, dtype=L.float32)],
    "cummax_nan": lambda L: _vi(L.cummax(L.tensor([1., NAN, 3., 0.]), 0)),
    "cummin_ties": lambda L: _vi(L.cummin(L.tensor([2, 1, 1, 3]), 0)),
    "logcumsumexp": lambda L: L.logcumsumexp(L.tensor([0., -INF, 1.]), 0),
    "std_var_keepdim_0d": lambda L: [L.tensor(2.).sum(dim=(), keepdim=True),
                                     L.tensor(2.).amax(0, True)],
    # more edge cases (0-d, empty, dtypes, keyword forms)
    "sum_keepdim_none_dim": lambda L: L.sum(_m(L, 2, 3), None, True),
    "sum_dim_none_kw": lambda L: _m(L, 2, 3).sum(dim=None, keepdim=True),
    "sum_int32_default_int64": lambda L: L.tensor([1, 2], dtype=L.int32).sum(),
    "sum_uint8_dim": lambda L: L.tensor([[200, 200]], dtype=L.uint8).sum(1),
    "sum_complex": lambda L: L.tensor([1 + 1j, 2j]).sum(),
    "sum_bfloat16": lambda L: L.tensor([1., 2.], dtype=L.bfloat16).sum(),
    "prod_uint8": lambda L: L.tensor([16, 16], dtype=L.uint8).prod(),
    "prod_keepdim_0d": lambda L: L.tensor(3.).prod(0, True),
    "prod_dtype_kw": lambda L: L.prod(L.tensor([[2, 3]], dtype=L.int8), 1, dtype=L.float64),
    "mean_keepdim_none": lambda L: L.mean(_m(L, 2, 3), dim=None, keepdim=True),
    "mean_complex": lambda L: L.tensor([1 + 1j, 3j]).mean(),
    "mean_half": lambda L: L.tensor([60000., 60000.], dtype=L.float16).mean(),
    "mean_dtype_from_int_kw": lambda L: L.tensor([1, 2]).mean(dtype=L.float32),
    "nansum_dtype": lambda L: L.nansum(L.tensor([1., NAN]), dtype=L.float64),
    "nansum_bool": lambda L: L.nansum(L.tensor([True, True])),
    "var_keepdim_all": lambda L: L.var(_m(L, 2, 3), None, keepdim=True),
    "var_unbiased_positional": lambda L: [L.var(_m(L, 4), False), L.std(_m(L, 4), True)],
    "var_dim_list": lambda L: L.var(_m(L, 2, 3), [0, 1]),
    "var_correction_float": lambda L: L.var(_m(L, 4), correction=0.5),
    "var_empty": lambda L: L.var(L.empty(0)),
    "std_empty_dim": lambda L: L.std(L.empty(0, 3), 0),
    "var_mean_correction":
        lambda L: list(L.var_mean(_m(L, 2, 3), dim=1, correction=0, keepdim=True)),
    "var_half": lambda L: L.var(L.tensor([1., 2., 4.], dtype=L.float16)),
    "std_inf": lambda L: L.std(L.tensor([1., INF])),
    "logsumexp_keepdim": lambda L: L.logsumexp(_m(L, 2, 3), -1, keepdim=True),
    "logsumexp_bool": lambda L: L.logsumexp(L.tensor([True, False]), 0),
    "logsumexp_0d": lambda L: L.logsumexp(L.tensor(2.), 0),
    "logsumexp_complex": lambda L: L.logsumexp(L.tensor([1 + 1j, 2j]), 0),
    "logsumexp_out_float64":
        lambda L: _o(lambda o: L.logsumexp(_m(L, 2, 2), 1, out=o), L.empty(2, dtype=L.float64)),
    "count_nonzero_negative_dim": lambda L: L.count_nonzero(_m(L, 2, 3), -1),
    "count_nonzero_0d":
        lambda L: [L.count_nonzero(L.tensor(0.)), L.count_nonzero(L.tensor(2.), 0)],
    "amax_int8": lambda L: L.amax(L.tensor([[-128, 127]], dtype=L.int8), 1),
    "amin_keepdim_neg": lambda L: L.amin(_m(L, 2, 3, 2), (-1, 0), True),
    "amax_0d_dims": lambda L: [L.amax(L.tensor(2.), 0), L.amax(L.tensor(2.), ())],
    "max_dim_int_keepdim": lambda L: list(L.max(L.tensor([[1, 5], [7, 2]]), 0, True)),
    "max_dim_bool": lambda L: list(L.max(L.tensor([[True, False]]), 1)),
    "min_dim_neg_zero": lambda L: list(L.min(L.tensor([0., -0.]), 0)),
    "max_nan_index_first": lambda L: list(L.max(L.tensor([NAN, 1., NAN]), 0)),
    "argmax_inf_nan": lambda L: [L.argmax(L.tensor([INF, NAN])), L.argmin(L.tensor([-INF, NAN]))],
    "argmax_dim_keepdim_3d": lambda L: L.argmax(_m(L, 2, 3, 4) % 5, 1, True),
    "argmax_half": lambda L: L.argmax(L.tensor([1., 3., 2.], dtype=L.float16)),
    "aminmax_0d": lambda L: list(L.aminmax(L.tensor(3.))),
    "aminmax_nan": lambda L: list(L.aminmax(L.tensor([1., NAN]))),
    "all_any_keepdim_none":
        lambda L: [L.all(_m(L, 2, 2), dim=0, keepdim=True), L.any(L.tensor([[0, 0]]), 1)],
    "all_uint8_dim": lambda L: L.all(L.tensor([[1, 0]], dtype=L.uint8), 1),
    "all_out_bool":
        lambda L: _o(lambda o: L.all(L.tensor([[1, 0]]), 1, out=o), L.empty(1, dtype=L.bool)),
    "any_empty_dim": lambda L: L.any(L.empty(0, 2), 0),
    "norm_p0": lambda L: L.norm(L.tensor([0., 2., -3.]), 0),
    "norm_neg_inf": lambda L: L.norm(L.tensor([1., -3.]), float("-inf")),
    "norm_keepdim_dtype": lambda L: L.norm(_m(L, 2, 3), 2, 1, True, dtype=L.float64),
    "norm_empty": lambda L: L.norm(L.empty(0)),
    "dist":
        lambda L: [L.dist(L.tensor([1., 2.]), L.tensor([4., 6.])), L.dist(L.tensor([1., 2.]),
            L.tensor([4., 6.]), 1)],
    "cumsum_neg_dim_0d": lambda L: [L.cumsum(_m(L, 2, 3), -1), L.cumsum(L.tensor(2.), 0)],
    "cumprod_zero": lambda L: L.cumprod(L.tensor([2., 0., 3.]), 0),
    "cummax_int_ties": lambda L: list(L.cummax(L.tensor([1, 3, 3, 2]), 0)),
    "cummin_empty": lambda L: list(L.cummin(L.empty(0), 0)),
    "logcumsumexp_complex": lambda L: L.logcumsumexp(L.tensor([1j, 1 + 0j]), 0),
    "sum_to_size": lambda L: _m(L, 2, 3).sum_to_size(1, 3),
    "diff":
        lambda L: [L.diff(L.tensor([1, 4, 9])), L.diff(_m(L, 2, 3), n=2, dim=1),
            L.diff(L.tensor([1., 2]), prepend=L.tensor([0.]), append=L.tensor([5.]))],
    "trapz":
        lambda L: [L.trapezoid(L.tensor([1., 2., 3.])), L.trapezoid(L.tensor([1., 2.]), dx=0.5)],
    "histc": lambda L: L.histc(L.tensor([1., 2., 1., 5.]), bins=4, min=0, max=4),
    "bincount":
        lambda L: [L.bincount(L.tensor([0, 1, 1, 3])), L.bincount(L.tensor([0, 1]),
            weights=L.tensor([0.5, 2.]), minlength=3)],
    "std_mean_unbiased_kw": lambda L: list(L.std_mean(_m(L, 4), unbiased=False)),
    "prod_out_dtype_mismatch":
        lambda L: _o(lambda o: L.prod(L.tensor([2., 3.]), 0, out=o), L.empty((), dtype=L.float64)),
    "sum_method_axis_kw": lambda L: _m(L, 2, 3).sum(axis=1),
    "mean_method_axis_kw": lambda L: _m(L, 2, 3).mean(axis=(0, 1), keepdims=True),
    "amax_axis_kw": lambda L: L.amax(_m(L, 2, 3), axis=0),
    # keyword / method forms, dtypes, keepdim
    "max_method_dim_kw": lambda L: list(_m(L, 2, 3).max(dim=1, keepdim=True)),
    "min_other_tensor_broadcast": lambda L: L.min(L.tensor([[1., 5.]]), L.tensor([[3.], [0.]])),
    "max_int_uint8_binary":
        lambda L: L.max(L.tensor([1], dtype=L.uint8), L.tensor([-1], dtype=L.int8)),
    "sum_generator_dims_list": lambda L: L.sum(_m(L, 2, 3, 4), [2, 0]),
    "mean_neg_dims_keepdim": lambda L: L.mean(_m(L, 2, 3, 4), [-1, -2], True),
    "std_dim_tuple_corr": lambda L: L.std(_m(L, 2, 3, 4), (1, 2), correction=2),
    "prod_bool_dim": lambda L: L.prod(L.tensor([[True, False], [True, True]]), 1),
    "prod_neg_zero": lambda L: L.prod(L.tensor([-0., 1.])),
    "amax_bool": lambda L: L.amax(L.tensor([[True, False]]), 1),
    "argmin_uint8": lambda L: L.argmin(L.tensor([3, 0, 255], dtype=L.uint8)),
    "all_float_nan_zero": lambda L: L.all(L.tensor([[NAN, 0.]]), 1),
    "sum_int_overflow_wraps": lambda L: L.tensor([2 ** 62, 2 ** 62]).sum(),
    "cumsum_uint8_to_int64": lambda L: L.cumsum(L.tensor([200, 200], dtype=L.uint8), 0),
    "cumsum_bool_dtype": lambda L: L.cumsum(L.tensor([True, True, False]), 0, dtype=L.float32),
    "logsumexp_neg_inf_dim": lambda L: L.logsumexp(L.tensor([[-INF, -INF], [0., -INF]]), 1),
    "nansum_keepdim": lambda L: L.nansum(L.tensor([[NAN, 1.], [2., NAN]]), 0, keepdim=True),
    "nanmean_dim_all_nan": lambda L: L.nanmean(L.tensor([[NAN, NAN], [1., 3.]]), 1),
    "var_mean_all_default": lambda L: list(L.var_mean(_m(L, 3))),
    "std_mean_dim_list": lambda L: list(L.std_mean(_m(L, 2, 3), [0, 1])),
    "count_nonzero_bool_dims":
        lambda L: L.count_nonzero(L.tensor([[True, False], [True, True]]), dim=(0,)),
    "aminmax_keepdim_int":
        lambda L: list(L.aminmax(L.tensor([[3, 1], [2, 5]]), dim=0, keepdim=True)),
    # empty reductions with keepdim, overflow in narrow dtypes, quantiles
    "empty_reduce_keepdim_identities":
        lambda L: [f(L.empty(2, 0, 3), 1, keepdim=True) for f in (L.sum, L.prod, L.mean,
            L.nansum, L.logsumexp)],
    "empty_all_any_uint8":
        lambda L: [L.all(L.empty(2, 0, dtype=L.uint8), 1), L.any(L.empty(2, 0, dtype=L.uint8),
            1, keepdim=True)],
    "empty_var_std_dim":
        lambda L: [L.var(L.empty(2, 0), 1), L.std(L.empty(0, 3), 0, keepdim=True)],
    "empty_amax_other_dim_keepdim":
        lambda L: L.amax(L.empty(0, 3), 1, keepdim=True),
    "empty_argmax_other_dim":
        lambda L: L.argmax(L.empty(0, 3), 1),
    "empty_cumsum":
        lambda L: L.cumsum(L.empty(0, 3), 0),
    "empty_norm_dim":
        lambda L: L.norm(L.empty(2, 0), dim=1),
    "sum_uint8_dtype_overflow":
        lambda L: L.tensor([200, 100], dtype=L.uint8).sum(dtype=L.uint8),
    "sum_noncontig_int":
        lambda L: L.arange(12).reshape(3, 4).t()[::2].sum(1),
    "nansum_dtype_int_input":
        lambda L: L.nansum(L.tensor([1, 2], dtype=L.int8), dtype=L.int64),
    "mean_noncontig":
        lambda L: L.arange(12.).reshape(3, 4)[:, ::2].mean(0),
    "argmax_multiple_maxima":
        lambda L: [L.argmax(L.tensor([[1, 5, 5], [7, 7, 0]]), 1), L.argmin(L.tensor([[2, 1,
            1]]), 1)],
    "max_min_multiple":
        lambda L: [list(L.max(L.tensor([[5., 5.]]), 1)), list(L.min(L.tensor([[0, 0]]), 1))],
    "std_correction_cases":
        lambda L: [L.std(L.arange(6.).reshape(2, 3), 1, correction=c) for c in (0, 1, 2)],
    "logsumexp_dim_tuple_neg":
        lambda L: L.logsumexp(L.arange(6.).reshape(1, 2, 3), (-1, 0)),
    "all_any_out_uint8":
        lambda L: (lambda o: [L.all(L.tensor([[1, 2]], dtype=L.uint8), 1, out=o),
            o])(L.empty(1, dtype=L.uint8)),
    "aminmax_dim_none_keepdim":
        lambda L: list(L.aminmax(L.arange(6.).reshape(2, 3), keepdim=True)),
    "count_nonzero_uint8_empty":
        lambda L: L.count_nonzero(L.empty(0, dtype=L.uint8)),
    "prod_dim_int8_overflow":
        lambda L: L.tensor([[100, 100]], dtype=L.int8).prod(1, dtype=L.int8),
    "var_complex_dim":
        lambda L: L.var(L.tensor([[1 + 1j, 2j], [3., 1j]]), 0),
    "std_mean_complex":
        lambda L: list(L.std_mean(L.tensor([1 + 1j, 3 - 1j]))),
    "median_even_int_dim":
        lambda L: list(L.median(L.tensor([[4, 1, 3, 2]]), 1)),
    "nanmedian_int":
        lambda L: L.nanmedian(L.tensor([3, 1, 2])),
    "quantile_basic":
        lambda L: [L.quantile(L.tensor([1., 2., 3., 4.]), 0.5), L.quantile(L.tensor([1., 2.,
            3., 4.]), L.tensor([0.25, 0.75]), interpolation="lower")],
    "nanquantile":
        lambda L: L.nanquantile(L.tensor([1., NAN, 3.]), 0.5),
    "quantile_nan":
        lambda L: L.quantile(L.tensor([1., NAN, 3.]), 0.5),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_reduction(name):
    both(CASES[name], warns=IGNORE)


WARNING_CASES = {
    "var_single_element": "degrees of freedom is <= 0",
    "std_single_per_row": "degrees of freedom is <= 0",
    "var_correction_gt_n": "degrees of freedom is <= 0",
}


@pytest.mark.parametrize("name", sorted(WARNING_CASES))
def test_reduction_warns(name):
    both(CASES[name], warns=WARNING_CASES[name])


ERRORS = {
    "max_empty_no_dim": (lambda L: L.max(L.empty(0)), RuntimeError,
                         ("Expected reduction dim to be specified for input.numel() == 0",)),
    "max_empty_reduced_dim": (lambda L: L.max(L.empty(0, 3), 0), IndexError,
                              ("Expected reduction dim 0 to have non-zero size",)),
    "amax_empty_reduced_dim": (lambda L: L.amax(L.empty(0, 3), 0), IndexError,
                               ("Expected reduction dim 0 to have non-zero size",)),
    "argmax_empty": (lambda L: L.argmax(L.empty(0)), IndexError,
                     ("Expected reduction dim to be specified for input.numel() == 0",)),
    "argmax_empty_reduced_dim": (lambda L: L.argmax(L.empty(0, 3), 0), IndexError,
                                 ("Expected reduction dim 0 to have non-zero size",)),
    "argmax_bool": (lambda L: L.argmax(L.tensor([False, True])), RuntimeError,
                    ("argmax(): does not support bool input",)),
    "argmin_bool": (lambda L: L.argmin(L.tensor([False, True]), 0), RuntimeError,
                    ("argmin(): does not support bool input",)),
    "aminmax_empty_reduced_dim": (lambda L: L.aminmax(L.empty(0, 3), dim=0), IndexError,
                                  ("Expected reduction dim 0 to have non-zero size",)),
    "amax_empty_no_dim": (lambda L: L.amax(L.empty(0, 3)), RuntimeError,
                          ("Expected reduction dim to be specified for input.numel() == 0",)),
    "aminmax_empty": (lambda L: L.aminmax(L.empty(0)), RuntimeError,
                      ("cannot compute aminmax over an empty dimension",)),
    "mean_int": (lambda L: L.mean(L.tensor([1, 2])), RuntimeError,
                 ("could not infer output dtype",)),
    "mean_int_dtype_int": (lambda L: L.mean(L.tensor([1., 2]), dtype=L.int64), RuntimeError,
                           ("could not infer output dtype",)),
    "var_int": (lambda L: L.var(L.tensor([1, 2])), RuntimeError,
                ("std and var only support floating point and complex dtypes",)),
    "sum_dim_out_of_range": (lambda L: L.sum(_m(L, 2, 3), 2), IndexError,
                             ("Dimension out of range",)),
    "sum_repeated_dim": (lambda L: L.sum(_m(L, 2, 3), (0, 0)), RuntimeError,
                         ("appears multiple times in the list of dims",)),
    "amax_out_wrong_dtype": (lambda L: L.amax(_m(L, 2, 3), 1, out=L.empty(2, dtype=L.int64)),
                             RuntimeError, ()),
    "mean_out_int": (lambda L: L.mean(_m(L, 2, 3), 1, out=L.empty(2, dtype=L.int64)),
                     RuntimeError, ("can't be cast to the desired output type",)),
    "logsumexp_complex_ok_but_bool_dims": (lambda L: L.logsumexp(_m(L, 2), (0, 0)),
                                           RuntimeError, ("appears multiple times",)),
    "prod_dim_tuple": (lambda L: L.prod(_m(L, 2, 3), (0, 1)), TypeError, ()),
    "var_unbiased_and_correction": (lambda L: L.var(_m(L, 3), 0, True, correction=1),
                                    TypeError, ()),
    "count_nonzero_repeated": (lambda L: L.count_nonzero(_m(L, 2, 3), (1, 1)), RuntimeError,
                               ("appears multiple times",)),
    "logsumexp_no_dim_err": (lambda L: L.logsumexp(_m(L, 2)), TypeError,
        ()),
    "max_out_values_dtype_err":
        (lambda L: L.max(L.tensor([[1., 2.]]), 1, out=(L.empty(1, dtype=L.float64), L.empty(1,
            dtype=L.long))), RuntimeError,
        ("Expected out tensor to have dtype",)),
    "mean_bool_err": (lambda L: L.mean(L.tensor([True])), RuntimeError,
        ("could not infer output dtype",)),
    "nanmean_int_err": (lambda L: L.nanmean(L.tensor([1, 2])), RuntimeError,
        ()),
    "norm_int_err": (lambda L: L.norm(L.tensor([1, 2])), RuntimeError,
        ()),
    "sum_list_dims_dup_neg": (lambda L: L.sum(_m(L, 2, 3), (1, -1)), RuntimeError,
        ("appears multiple times",)),
    "quantile_q_err":
        (lambda L: L.quantile(L.tensor([1., 2.]), 1.5), RuntimeError,
         ("must be in the range [0, 1]",)),
    "quantile_int_err":
        (lambda L: L.quantile(L.tensor([1, 2]), 0.5), RuntimeError,
         ("input tensor must be either float or double dtype",)),
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_reduction_error(name):
    fn, kind, words = ERRORS[name]
    raises_both(fn, *words, kind=kind)
