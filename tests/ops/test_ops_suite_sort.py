"""Sorting and selection as PyTorch's test_sort_and_select.py pins them down: sort
(stable, descending, NaN last, dims, dtypes), argsort, msort, topk, kthvalue, mode,
median, unique / unique_consecutive (sorted, dim, return_inverse / return_counts),
searchsorted / bucketize (right / side, sorter, out_int32, scalars) and their errors.
Each case runs with torch (the oracle) and ember (torch_suite_common.both / raises_both)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "frontend"))
from torch_suite_common import both, raises_both  # noqa: E402

NAN, INF = float("nan"), float("inf")


def _nan_data(L):
    return L.tensor([[3., NAN, -INF, 1.], [NAN, 2., INF, -0.]])


def _ties(L):
    return L.tensor([2, 1, 2, 0, 1, 2, 0, 1])


def _m(L, *shape, dtype=None):
    n = 1
    for s in shape:
        n *= s
    return L.arange(n, dtype=dtype or L.float32).reshape(*shape)


def _vi(r):
    """values and indices of a (values, indices) named tuple, by field name."""
    return [r.values, r.indices]


CASES = {
    # sort / argsort / msort
    "sort_default": lambda L: _vi(L.sort(L.tensor([[3, 1, 2], [0, 5, 4]]))),
    "sort_dim0_descending": lambda L: _vi(L.sort(L.tensor([[3, 1], [0, 5], [2, 2]]), 0,
                                                 descending=True)),
    "sort_nan_ascending": lambda L: _vi(L.sort(_nan_data(L))),
    "sort_nan_descending": lambda L: _vi(L.sort(_nan_data(L), descending=True)),
    "sort_stable_ties": lambda L: _vi(L.sort(_ties(L), stable=True)),
    "sort_stable_ties_descending": lambda L: _vi(L.sort(_ties(L), stable=True,
                                                        descending=True)),
    "sort_bool": lambda L: _vi(L.sort(L.tensor([True, False, True, False]), stable=True)),
    "sort_uint8_int8": lambda L: [L.sort(L.tensor([200, 3, 130], dtype=L.uint8)).values,
                                  L.sort(L.tensor([-100, 3, 100], dtype=L.int8)).values],
    "sort_scalar": lambda L: _vi(L.sort(L.tensor(3.))),
    "sort_empty": lambda L: _vi(L.sort(L.empty(0, 3), 1)),
    "sort_negative_zero_stable": lambda L: _vi(L.sort(L.tensor([0., -0., 0., -1.]),
                                                      stable=True)),
    "sort_out": lambda L: (lambda v, i: (list(L.sort(L.tensor([3., 1, 2]), out=(v, i))), v, i))(
        L.empty(3), L.empty(3, dtype=L.long)),
    "sort_method_tuple_unpack": lambda L: tuple(L.tensor([2., 1.]).sort(descending=True)),
    "sort_noncontiguous": lambda L: [t.contiguous() for t in
                                     L.arange(12.).reshape(3, 4).t().sort(0, True)],
    "argsort_stable": lambda L: L.argsort(_ties(L), stable=True),
    "argsort_descending_dim": lambda L: L.argsort(L.tensor([[1., 3, 2], [6, 5, 4]]), dim=0,
                                                  descending=True),
    "msort": lambda L: L.msort(L.tensor([[3., 1], [NAN, 0], [2, 5]])),
    # topk
    "topk_largest": lambda L: _vi(L.topk(L.tensor([1., 5, 3, 4]), 2)),
    "topk_smallest": lambda L: _vi(L.topk(L.tensor([1., 5, 3, 4]), 3, largest=False)),
    "topk_k0": lambda L: _vi(L.topk(L.tensor([1., 5, 3]), 0)),
    "topk_nan_largest": lambda L: _vi(L.topk(L.tensor([1., NAN, 3, INF]), 2)),
    "topk_nan_smallest": lambda L: _vi(L.topk(L.tensor([1., NAN, 3, -INF]), 2,
                                              largest=False)),
    "topk_dim0": lambda L: _vi(L.topk(L.tensor([[1, 9], [7, 2], [4, 4]]), 2, dim=0)),
    "topk_full_k": lambda L: L.topk(L.tensor([2., 8, 5]), 3).values,
    "topk_scalar": lambda L: _vi(L.topk(L.tensor(4.), 1)),
    "topk_int8": lambda L: _vi(L.topk(L.tensor([-3, 7, 0], dtype=L.int8), 1)),
    # kthvalue / median / mode / nanmedian
    "kthvalue": lambda L: _vi(L.kthvalue(L.tensor([3., 1, 4, 1, 5]), 2)),
    "kthvalue_dim_keepdim": lambda L: _vi(L.kthvalue(L.tensor([[3., 1], [4, 1], [5, 9]]), 3,
                                                     0, True)),
    "kthvalue_nan_largest": lambda L: _vi(L.kthvalue(L.tensor([NAN, 1., 2.]), 3)),
    "kthvalue_scalar": lambda L: _vi(L.kthvalue(L.tensor(2.), 1)),
    "median_even_lower": lambda L: L.median(L.tensor([4., 1, 3, 2])),
    "median_dim": lambda L: _vi(L.median(L.tensor([[4., 1, 3], [2, 2, 9]]), 1)),
    "median_nan": lambda L: [L.median(L.tensor([1., NAN, 3])),
                             L.nanmedian(L.tensor([1., NAN, 3]))],
    "nanmedian_dim_all_nan": lambda L: _vi(L.nanmedian(L.tensor([[NAN, NAN], [1., NAN]]),
                                                       1)),
    "mode_dim": lambda L: _vi(L.mode(L.tensor([[1, 2, 2, 3], [4, 4, 5, 5]]), 1)),
    # unique / unique_consecutive
    "unique_sorted": lambda L: L.unique(L.tensor([3, 1, 2, 3, 1])),
    "unique_inverse_counts": lambda L: L.unique(L.tensor([[3, 1], [2, 3]]),
                                                return_inverse=True, return_counts=True),
    "unique_inverse_only": lambda L: L.unique(L.tensor([2., 2., 1.]), return_inverse=True),
    "unique_counts_only": lambda L: L.unique(L.tensor([2., 2., 1.]), return_counts=True),
    "unique_dim0": lambda L: L.unique(L.tensor([[1, 2], [0, 1], [1, 2]]), dim=0,
                                      return_inverse=True, return_counts=True),
    "unique_dim1": lambda L: L.unique(L.tensor([[1, 0, 1], [2, 1, 2]]), dim=1).contiguous(),
    "unique_bool": lambda L: L.unique(L.tensor([True, False, True]), return_counts=True),
    "unique_empty": lambda L: L.unique(L.tensor([], dtype=L.int64), return_inverse=True,
                                       return_counts=True),
    "unique_scalar": lambda L: L.unique(L.tensor(5), return_inverse=True),
    "unique_method": lambda L: L.tensor([1, 1, 0]).unique(return_counts=True),
    "unique_consecutive": lambda L: L.unique_consecutive(L.tensor([1, 1, 2, 2, 3, 1, 1])),
    "unique_consecutive_inverse_counts": lambda L: L.unique_consecutive(
        L.tensor([1, 1, 2, 2, 3, 1, 1]), return_inverse=True, return_counts=True),
    "unique_consecutive_dim": lambda L: [t.contiguous() for t in L.unique_consecutive(
        L.tensor([[1, 1, 2], [1, 1, 2]]), dim=1, return_counts=True)],
    "unique_consecutive_2d_flat": lambda L: L.unique_consecutive(
        L.tensor([[1, 1], [1, 2]]), return_inverse=True),
    # searchsorted / bucketize
    "searchsorted_left_right": lambda L: [
        L.searchsorted(L.tensor([1, 3, 5, 7]), L.tensor([3, 6, 9, 0])),
        L.searchsorted(L.tensor([1, 3, 5, 7]), L.tensor([3, 6, 9, 0]), right=True),
        L.searchsorted(L.tensor([1, 3, 5, 7]), L.tensor([3, 6, 9, 0]), side="right")],
    "searchsorted_nd": lambda L: L.searchsorted(L.tensor([[1, 3, 5], [2, 4, 6]]),
                                                L.tensor([[3, 6], [1, 7]])),
    "searchsorted_1d_boundaries_nd_values": lambda L: L.searchsorted(
        L.tensor([1., 3, 5]), L.tensor([[2., 6], [0, 3]])),
    "searchsorted_scalar_value": lambda L: L.searchsorted(L.tensor([1, 3, 5]), 4),
    "searchsorted_out_int32": lambda L: L.searchsorted(L.tensor([1, 3, 5]), L.tensor([4]),
                                                       out_int32=True),
    "searchsorted_sorter": lambda L: L.searchsorted(L.tensor([5, 1, 3]), L.tensor([2, 4]),
                                                    sorter=L.tensor([1, 2, 0])),
    "searchsorted_nan": lambda L: [
        L.searchsorted(L.tensor([1., 2., NAN]), L.tensor([NAN, 1.5, INF, 2.])),
        L.searchsorted(L.tensor([1., 2., NAN]), L.tensor([NAN, 1.5, INF, 2.]), right=True),
        L.searchsorted(L.tensor([[1., NAN, NAN], [0., 1., 2.]]), L.tensor([[1.], [NAN]])),
        L.bucketize(L.tensor([NAN, 0.5]), L.tensor([0., 1., NAN, NAN]))],
    "searchsorted_mixed_dtypes": lambda L: L.searchsorted(L.tensor([1, 3, 5]),
                                                          L.tensor([2.5, 3.0])),
    "bucketize": lambda L: [L.bucketize(L.tensor([[1, 6], [9, 3]]), L.tensor([1, 3, 5, 7])),
                            L.bucketize(L.tensor([1, 6, 9, 3]), L.tensor([1, 3, 5, 7]),
                                        right=True)],
    "bucketize_scalar_int32": lambda L: L.bucketize(4, L.tensor([1, 3, 5]), out_int32=True),
    "isin": lambda L: [L.isin(L.tensor([1, 2, 3]), L.tensor([2, 5])),
                       L.isin(L.tensor([1, 2, 3]), 2, invert=True)],
    # more edge cases (empty, 0-d, NaN, mixed dtypes)
    "sort_int16_desc_stable":
        lambda L: list(L.sort(L.tensor([3, 1, 3, 2], dtype=L.int16), descending=True,
            stable=True)),
    "sort_inf_nan_mix":
        lambda L: list(L.sort(L.tensor([INF, NAN, -INF, 0., -NAN]), descending=True)),
    "sort_dim_keyword_3d": lambda L: list(L.sort(_m(L, 2, 3, 2) * L.tensor([1., -1.]), dim=1)),
    "sort_half": lambda L: list(L.sort(L.tensor([3., NAN, 1.], dtype=L.float16))),
    "argsort_bool_desc":
        lambda L: L.argsort(L.tensor([False, True, True]), descending=True, stable=True),
    "topk_sorted_false_values": lambda L: L.topk(L.tensor([5., 1, 4, 2]), 2, sorted=True).values,
    "topk_neg_dim": lambda L: list(L.topk(_m(L, 2, 4), 2, -1, False)),
    "topk_empty_dim": lambda L: list(L.topk(L.empty(3, 0), 0, 1)),
    "kthvalue_ties": lambda L: list(L.kthvalue(L.tensor([2., 1, 2, 1]), 2)),
    "kthvalue_neg_dim": lambda L: list(L.kthvalue(_m(L, 2, 3), 1, -1)),
    "kthvalue_int": lambda L: list(L.kthvalue(L.tensor([5, 3, 9]), 1)),
    "median_ties_index": lambda L: list(L.median(L.tensor([1., 2, 2, 1]), 0)),
    "median_int": lambda L: L.median(L.tensor([5, 3, 9, 1])),
    "median_empty": lambda L: L.median(L.empty(0)),
    "nanmedian_all_nan": lambda L: L.nanmedian(L.tensor([NAN, NAN])),
    "mode_scalar": lambda L: list(L.mode(L.tensor(3.))),
    "unique_nan": lambda L: L.unique(L.tensor([NAN, 1., NAN])),
    "unique_float_negzero": lambda L: L.unique(L.tensor([0., -0., 1.])),
    "unique_sorted_false": lambda L: L.unique(L.tensor([3, 1, 3]), sorted=False),
    "unique_dim_empty":
        lambda L: L.unique(L.empty(0, 2), dim=0, return_inverse=True, return_counts=True),
    "unique_consecutive_nan": lambda L: L.unique_consecutive(L.tensor([NAN, NAN, 1.])),
    "unique_consecutive_empty":
        lambda L: L.unique_consecutive(L.tensor([]), return_inverse=True, return_counts=True),
    "unique_consecutive_dim0_2d":
        lambda L: L.unique_consecutive(L.tensor([[1, 2], [1, 2], [2, 1]]), dim=0,
            return_inverse=True),
    "unique_dim_bool": lambda L: L.unique(L.tensor([[True, False], [True, False]]), dim=0),
    "searchsorted_empty_values":
        lambda L: L.searchsorted(L.tensor([1, 2]), L.empty(0, dtype=L.int64)),
    "searchsorted_empty_boundaries": lambda L: L.searchsorted(L.empty(0), L.tensor([1.])),
    "searchsorted_out":
        lambda L: (lambda o: (L.searchsorted(L.tensor([1, 3]), L.tensor([2]), out=o),
            o))(L.empty(1, dtype=L.long)),
    "searchsorted_int32_boundaries_float_vals":
        lambda L: L.searchsorted(L.tensor([1, 3], dtype=L.int32), L.tensor([2.5])),
    "searchsorted_sorter_right":
        lambda L: L.searchsorted(L.tensor([3, 1, 2, 2]), L.tensor([2]), sorter=L.tensor([1, 2,
            3, 0]), side="right"),
    "searchsorted_dup_left": lambda L: L.searchsorted(L.tensor([1, 2, 2, 2, 3]), L.tensor([2])),
    "bucketize_float_int": lambda L: L.bucketize(L.tensor([0.5, 2.0]), L.tensor([1, 2])),
    "bucketize_0d": lambda L: L.bucketize(L.tensor(2), L.tensor([1, 3])),
    "msort_int": lambda L: L.msort(L.tensor([[3, 1], [1, 2]])),
    "argsort_0d": lambda L: L.argsort(L.tensor(3.)),
    "isin_float_int": lambda L: L.isin(L.tensor([1., 2.5]), L.tensor([1, 2])),
    "isin_scalar_elem": lambda L: L.isin(2, L.tensor([1, 2])),
    "isin_nan": lambda L: L.isin(L.tensor([NAN]), L.tensor([NAN])),
    "isin_assume_unique":
        lambda L: L.isin(L.tensor([1, 2, 3]), L.tensor([3, 4]), assume_unique=True),
    # keyword / method forms, dtypes, keepdim
    "median_dim_int_keepdim": lambda L: list(L.median(L.tensor([[3, 1, 2], [6, 5, 4]]), 1, True)),
    "nanmedian_dim_keepdim": lambda L: list(L.nanmedian(L.tensor([[NAN, 1., 2.]]), 1, True)),
    "mode_keepdim_int": lambda L: list(L.mode(L.tensor([[3, 3, 1]]), 1, True)),
    "kthvalue_keepdim_int": lambda L: list(L.kthvalue(L.tensor([[3, 3, 1]]), 2, 1, True)),
    "topk_largest_false_int_sorted": lambda L: list(L.topk(L.tensor([5, 1, 4]), 2, largest=False)),
    "sort_descending_kw_only": lambda L: list(L.sort(L.tensor([2, 3, 1]), descending=True)),
    "sort_stable_none": lambda L: list(L.sort(L.tensor([2, 1, 2]), stable=None)),
    "argsort_stable_desc_dim0":
        lambda L: L.argsort(L.tensor([[1, 1], [1, 0]]), dim=0, descending=True, stable=True),
    "sort_2d_dim0_nan": lambda L: list(L.sort(L.tensor([[NAN, 1.], [0., NAN]]), 0)),
    "unique_return_inverse_2d":
        lambda L: L.unique(L.tensor([[2, 1], [1, 2]]), return_inverse=True),
    "unique_int8": lambda L: L.unique(L.tensor([-1, 3, -1], dtype=L.int8), return_counts=True),
    "unique_consecutive_bool":
        lambda L: L.unique_consecutive(L.tensor([True, True, False]), return_counts=True),
    "searchsorted_float64_vals_float32_bnd":
        lambda L: L.searchsorted(L.tensor([0.1, 0.2]), L.tensor([0.1], dtype=L.float64)),
    "searchsorted_right_dup":
        lambda L: L.searchsorted(L.tensor([1, 2, 2, 3]), L.tensor([2]), right=True),
    "bucketize_right_dup":
        lambda L: L.bucketize(L.tensor([2]), L.tensor([1, 2, 2, 3]), right=True),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_sort_select(name):
    both(CASES[name])


ERRORS = {
    "topk_k_too_big": (lambda L: L.topk(L.tensor([1., 2]), 3), RuntimeError,
                       ("selected index k out of range",)),
    "topk_dim_out_of_range": (lambda L: L.topk(L.tensor([1., 2]), 1, dim=1), IndexError,
                              ("Dimension out of range",)),
    "kthvalue_k_too_big": (lambda L: L.kthvalue(L.tensor([1., 2]), 3), RuntimeError,
                           ("kthvalue(): selected number k out of range",)),
    "kthvalue_k_zero": (lambda L: L.kthvalue(L.tensor([1., 2]), 0), RuntimeError,
                        ("kthvalue(): selected number k out of range",)),
    "sort_dim_out_of_range": (lambda L: L.sort(L.tensor([1., 2]), 1), IndexError,
                              ("Dimension out of range",)),
    "searchsorted_side_right_conflict": (
        lambda L: L.searchsorted(L.tensor([1, 2]), L.tensor([1]), right=True, side="left"),
        RuntimeError, ("side and right can't be set to opposites",)),
    "searchsorted_bad_side": (
        lambda L: L.searchsorted(L.tensor([1, 2]), L.tensor([1]), side="middle"),
        RuntimeError, ("side can only be 'left' or 'right'",)),
    "searchsorted_shape_mismatch": (
        lambda L: L.searchsorted(L.tensor([[1, 2], [3, 4]]), L.tensor([[1], [2], [3]])),
        RuntimeError, ("boundaries tensor should be 1 dimension or the first N-1 dimensions",)),
    "searchsorted_scalar_boundaries": (
        lambda L: L.searchsorted(L.tensor(1), L.tensor([1])), RuntimeError,
        ("boundaries tensor should have positive dimension",)),
    "searchsorted_sorter_size": (
        lambda L: L.searchsorted(L.tensor([1, 2, 3]), L.tensor([1]), sorter=L.tensor([0, 1])),
        RuntimeError, ("boundary and sorter must have the same size",)),
    "bucketize_2d_boundaries": (
        lambda L: L.bucketize(L.tensor([1]), L.tensor([[1, 2]])), RuntimeError,
        ("boundaries tensor must be 1 dimension",)),
    "unique_consecutive_dim_out_of_range": (
        lambda L: L.unique_consecutive(L.tensor([1, 2]), dim=1), IndexError,
        ("Dimension out of range",)),
    "unique_dim_scalar_err": (lambda L: L.unique(L.tensor(1), dim=0), IndexError,
        ("Dimension specified as 0 but tensor has no dimensions",)),
    "sort_complex_err": (lambda L: L.sort(L.tensor([1j])), RuntimeError,
        ("does not support complex dtypes",)),
    "topk_complex_err": (lambda L: L.topk(L.tensor([1j]), 1), RuntimeError,
        ("does not support complex dtypes",)),
    "sort_out_values_wrong_dtype":
        (lambda L: L.sort(L.tensor([1., 2]), out=(L.empty(2, dtype=L.float64), L.empty(2,
            dtype=L.long))), RuntimeError,
        ("Expected out tensor to have dtype",)),
    "searchsorted_2d_scalar_value_err":
        (lambda L: L.searchsorted(L.tensor([[1, 2]]), 1), RuntimeError,
        ("torch.searchsorted()",)),
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_sort_select_error(name):
    fn, kind, words = ERRORS[name]
    raises_both(fn, *words, kind=kind)
