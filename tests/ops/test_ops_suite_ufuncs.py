"""Binary and unary ufuncs as the non-OpInfo parts of PyTorch's test_binary_ufuncs.py and
test_unary_ufuncs.py pin them down: promotion with Python scalars and 0-d tensors, out=
resizing and casting, integer division / remainder / fmod signs and zero divisors, pow
with integer and negative exponents, comparisons across dtypes, in-place promotion
errors, bool arithmetic refusals, NaN handling of maximum/fmax, and unary edge values.
Each case runs with torch (the oracle) and ember (torch_suite_common.both / raises_both)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "frontend"))
from torch_suite_common import both, raises_both  # noqa: E402

NAN, INF = float("nan"), float("inf")


def _signs(L, dtype=None):
    return L.tensor([-7, -6, -1, 0, 1, 6, 7], dtype=dtype or L.int64)


def _div3(L, dtype=None):
    return L.tensor([3, -3, 3, -3, 3, -3, 3], dtype=dtype or L.int64)


def _o(fn, out):
    """fn(out=out) and out afterwards."""
    r = fn(out)
    return [r, out]


def _same(L, x, y):
    return [x is y, x]


def _out(L, fn, out):
    """fn(out=out) and out afterwards."""
    r = fn(out)
    return [r, out, r is out]


CASES = {
    # integer division, remainder, fmod: signs follow PyTorch (floor / trunc / C fmod)
    "floor_divide_signs": lambda L: L.floor_divide(_signs(L), _div3(L)),
    "div_floor_trunc_signs": lambda L: [L.div(_signs(L), _div3(L), rounding_mode="floor"),
                                        L.div(_signs(L), _div3(L), rounding_mode="trunc"),
                                        L.div(_signs(L), _div3(L))],
    "remainder_signs": lambda L: [L.remainder(_signs(L), _div3(L)), _signs(L) % -3,
                                  L.remainder(-7, L.tensor([3, -3]))],
    "fmod_signs": lambda L: [L.fmod(_signs(L), _div3(L)), L.fmod(_signs(L), -3)],
    "float_remainder_fmod": lambda L: [L.remainder(L.tensor([-7.5, 7.5, -0.]), 2),
                                       L.fmod(L.tensor([-7.5, 7.5, -0.]), 2),
                                       L.remainder(L.tensor([5.]), -INF),
                                       L.fmod(L.tensor([5.]), INF)],
    "float_div_by_zero": lambda L: [L.tensor([1., -1., 0.]) / 0,
                                    L.remainder(L.tensor([1., 0.]), 0.),
                                    L.fmod(L.tensor([1.]), 0.),
                                    L.floor_divide(L.tensor([1., -1., 0.]), 0.)],
    "int8_division_wraps": lambda L: [L.div(L.tensor([-128], dtype=L.int8), -1,
                                            rounding_mode="trunc"),
                                      L.tensor([-128], dtype=L.int8) // 3],
    "uint8_remainder": lambda L: L.remainder(L.tensor([250, 7], dtype=L.uint8), 3),
    "floor_divide_float_precision": lambda L: L.floor_divide(L.tensor([1.0, 0.3]),
                                                             L.tensor([0.1, 0.1])),
    "true_divide_ints": lambda L: [L.true_divide(L.tensor([7, -7]), 2),
                                   L.tensor([1], dtype=L.int8) / L.tensor([2],
                                                                          dtype=L.uint8)],
    "rtruediv_rfloordiv": lambda L: [2 / L.tensor([4, -8]), 7 // L.tensor([2, -2]),
                                     7.5 // L.tensor([2, -2]), -7 % L.tensor([3])],
    # pow
    "pow_int_tensor_int_scalar": lambda L: [L.tensor([2, -3, 0]) ** 3,
                                            L.pow(L.tensor([2, -3]), 0)],
    "pow_int_tensor_negative_tensor_exponent": lambda L: L.pow(L.tensor([2, -1, 1, -2]),
                                                               L.tensor([-1, -1, -2, -3])),
    "pow_float_exponents": lambda L: [L.tensor([2, 4]) ** 0.5, L.tensor([4.]) ** -0.5,
                                      L.tensor([-8.]) ** (1 / 3), L.tensor([0.]) ** -1,
                                      L.tensor([0., -0.]) ** -INF],
    "pow_scalar_base": lambda L: [2 ** L.tensor([-1, 0, 3]), 2.0 ** L.tensor([-1, 3]),
                                  L.pow(-2, L.tensor([2, 3])), L.pow(0, L.tensor([0, 1]))],
    "pow_bool": lambda L: [L.tensor([True, False]) ** 2, L.tensor([True, False]) ** True,
                           L.tensor([True, False]) ** False, L.tensor([True]) ** 0.5,
                           L.tensor([True, False]).pow_(True)],
    "pow_overflow_int": lambda L: L.tensor([10], dtype=L.int32) ** 12,
    "pow_uint8_wraps": lambda L: L.tensor([3], dtype=L.uint8) ** 6,
    "pow_complex_scalar": lambda L: L.tensor([1., 4.]) ** 0.5j,
    "pow_0d_tensor_exponent": lambda L: L.tensor([2, 3]) ** L.tensor(2.),
    "float_power": lambda L: [L.float_power(L.tensor([2, 3]), 2),
                              L.float_power(L.tensor([2.], dtype=L.float16), -1),
                              L.float_power(2, L.tensor([1j]))],
    "pow_inplace_float_int_exponent": lambda L: L.tensor([2., 3.]).pow_(L.tensor([2, 3])),
    "square_int": lambda L: [L.square(L.tensor([-3], dtype=L.int8)),
                             L.square(L.tensor([True]))],
    # comparisons across dtypes
    "compare_uint8_int8": lambda L: [L.tensor([200], dtype=L.uint8) > L.tensor([-1],
                                                                                dtype=L.int8),
                                     L.tensor([255], dtype=L.uint8) == -1],
    "compare_int_float": lambda L: [L.tensor([1, 2]) < 1.5, L.tensor([2]) == 2.0,
                                    L.tensor([2 ** 53 + 1]) == float(2 ** 53)],
    "compare_bool_int": lambda L: [L.tensor([True, False]) == 1,
                                   L.tensor([True]) > L.tensor([0])],
    "compare_nan": lambda L: [L.tensor([NAN]) == L.tensor([NAN]),
                              L.tensor([NAN]) != NAN, L.tensor([NAN, 1.]) < INF,
                              L.eq(L.tensor([1.]), L.tensor([1 + 0j]))],
    "compare_out_float": lambda L: _out(L, lambda o: L.lt(L.tensor([1, 3]), 2, out=o),
                                        L.empty(2)),
    "compare_reflected": lambda L: [2 < L.tensor([1, 3]), 2.5 >= L.tensor([2, 3])],
    "compare_numpy_scalars": lambda L: [np.float64(2.5) > L.tensor([1., 3.]),
                                        L.tensor([1, 3]) <= np.int64(2),
                                        np.float32(0.5) - L.tensor([1.]),
                                        L.maximum(L.tensor([1., 4.]), L.tensor(np.float64(2.)))],
    "eq_broadcast": lambda L: L.eq(L.tensor([[1], [2]]), L.tensor([1, 2, 3])),
    "equal_dtypes": lambda L: [L.equal(L.tensor([1, 2]), L.tensor([1., 2.])),
                               L.equal(L.tensor([1]), L.tensor([1, 1]))],
    "isclose_int_float": lambda L: [L.isclose(L.tensor([1, 2]), L.tensor([1, 3])),
                                    L.isclose(L.tensor([NAN]), L.tensor([NAN]),
                                              equal_nan=True)],
    # maximum / minimum / fmax / fmin with NaN
    "maximum_nan": lambda L: [L.maximum(L.tensor([1., NAN, NAN]), L.tensor([NAN, 2., NAN])),
                              L.minimum(L.tensor([1., NAN]), L.tensor([0., 2.]))],
    "fmax_fmin_nan": lambda L: [L.fmax(L.tensor([1., NAN, NAN]), L.tensor([NAN, 2., NAN])),
                                L.fmin(L.tensor([1., NAN]), L.tensor([0., 2.]))],
    "maximum_int_bool": lambda L: [L.maximum(L.tensor([1, 5]), L.tensor([3, 2])),
                                   L.maximum(L.tensor([True, False]), L.tensor([False,
                                                                                False]))],
    "maximum_negative_zero": lambda L: [L.maximum(L.tensor([-0.]), L.tensor([0.])),
                                        L.minimum(L.tensor([0.]), L.tensor([-0.]))],
    # promotion with scalars and 0-d tensors
    "add_alpha": lambda L: [L.add(L.tensor([1, 2]), L.tensor([3, 4]), alpha=2),
                            L.sub(L.tensor([1.]), L.tensor([3.]), alpha=0.5),
                            L.add(L.tensor([1.]), 2, alpha=3)],
    "rsub": lambda L: [L.rsub(L.tensor([1, 2]), 5), 5 - L.tensor([1.]),
                       L.rsub(L.tensor([1.]), L.tensor([2.]), alpha=2)],
    "int_tensor_plus_0d_float": lambda L: L.tensor([1, 2], dtype=L.int16) + L.tensor(0.5),
    "float16_plus_double_scalar": lambda L: L.tensor([1.], dtype=L.float16) + 1e-4,
    "int8_plus_big_int_scalar": lambda L: L.tensor([1], dtype=L.int8) + 200,
    "bool_plus_bool_scalar": lambda L: [L.tensor([True]) + True, L.tensor([True]) * False],
    "mul_complex_scalar_int_tensor": lambda L: L.tensor([1, 2]) * (1 + 2j),
    "bitwise_mixed": lambda L: [L.tensor([12], dtype=L.int16) & L.tensor([10],
                                                                           dtype=L.uint8),
                                L.bitwise_xor(L.tensor([True]), L.tensor([3])),
                                ~L.tensor([5], dtype=L.uint8), ~L.tensor([True, False])],
    "shifts": lambda L: [L.tensor([1, -8]) << 2, L.tensor([-8, 8]) >> 1,
                         L.tensor([1], dtype=L.int8) << 7,
                         L.bitwise_left_shift(L.tensor([1]), L.tensor([3])),
                         L.tensor([1], dtype=L.uint8) >> L.tensor([9], dtype=L.uint8)],
    "logical_ops_mixed": lambda L: [L.logical_and(L.tensor([1., 0.]), L.tensor([2, 2])),
                                    L.logical_xor(L.tensor([0, 3]), L.tensor(1)),
                                    L.logical_or(L.tensor([NAN]), L.tensor([0]))],
    "logical_out_int": lambda L: _out(L, lambda o: L.logical_and(
        L.tensor([1., 0.]), L.tensor([1., 1.]), out=o), L.empty(2, dtype=L.int32)),
    "atan2_hypot_ints": lambda L: [L.atan2(L.tensor([1, -1]), L.tensor([0, 0])),
                                   L.hypot(L.tensor([3.]), L.tensor([4.]))],
    "copysign": lambda L: [L.copysign(L.tensor([1, -2]), -0.),
                           L.copysign(L.tensor([3.]), L.tensor([-1])),
                           L.copysign(L.tensor([NAN]), -1.)],
    "nextafter_ldexp": lambda L: [
        L.nextafter(L.tensor([0.], dtype=L.float64), L.tensor([1.], dtype=L.float64)) > 0,
        L.ldexp(L.tensor([1., 3.]), L.tensor([2, -1]))],
    "xlogy": lambda L: [L.xlogy(L.tensor([0., 0., 2.]), L.tensor([0., NAN, 3.])),
                        L.xlogy(2, L.tensor([1, 4])),
                        L.special.xlog1py(L.tensor([0.]), L.tensor([-1.]))],
    "heaviside": lambda L: L.heaviside(L.tensor([-1., 0., 2., NAN]), L.tensor([0.5])),
    "gcd_lcm": lambda L: [L.gcd(L.tensor([-12, 0, 7]), L.tensor([18, 0, -14])),
                          L.lcm(L.tensor([-4, 0, 6]), L.tensor([6, 5, -4]))],
    "lerp_scalar_and_tensor_weight": lambda L: [L.lerp(L.tensor([0., 10.]), L.tensor([10.,
                                                                                      0.]), 0.25),
                                                L.lerp(L.tensor([0.]), L.tensor([10.]),
                                                       L.tensor([0.75]))],
    "addcdiv_int_value": lambda L: L.addcdiv(L.tensor([1.]), L.tensor([3.]),
                                             L.tensor([2.]), value=2),
    # out=: resizing (warning when it had elements) and casting
    "out_resized_from_empty": lambda L: _out(L, lambda o: L.add(L.tensor([1., 2]), 1, out=o),
                                             L.empty(0)),
    "out_cast_to_double": lambda L: _out(L, lambda o: L.mul(L.tensor([1, 2]), 2, out=o),
                                         L.empty(2, dtype=L.float64)),
    "out_broadcast_shape": lambda L: _out(L, lambda o: L.sub(L.tensor([[1.], [2.]]),
                                                              L.tensor([1., 2., 3.]), out=o),
                                          L.empty(2, 3)),
    "out_same_as_input": lambda L: (lambda x: _out(L, lambda o: L.add(x, x, out=o), x))(
        L.tensor([1., 2.])),
    # in-place forms that keep self's dtype
    "inplace_int_from_int_scalar": lambda L: L.tensor([5, 7]).floor_divide_(2),
    "inplace_float_from_double": lambda L: L.tensor([1.]).add_(L.tensor([1e-9],
                                                                       dtype=L.float64)),
    "inplace_int8_wraps": lambda L: L.tensor([100], dtype=L.int8).mul_(3),
    "inplace_broadcast_other": lambda L: L.zeros(2, 2).add_(L.tensor([1., 2.])),
    "inplace_remainder_float": lambda L: L.tensor([-5.]).remainder_(3),
    # unary edge values
    "abs_neg_int_min": lambda L: [L.abs(L.tensor([-128], dtype=L.int8)),
                                  -L.tensor([-128], dtype=L.int8), L.abs(L.tensor([-0.]))],
    "sign_sgn": lambda L: [L.sign(L.tensor([-2., -0., 0., 3., NAN])),
                           L.sgn(L.tensor([3 + 4j, 0j])), L.sign(L.tensor([True, False])),
                           L.signbit(L.tensor([-0., 0., -1, NAN]))],
    "rounding_ints_keep_dtype": lambda L: [L.floor(L.tensor([3])), L.ceil(L.tensor([-2],
                                                                                  dtype=L.int8)),
                                           L.round(L.tensor([7])), L.trunc(L.tensor([5]))],
    "round_half_even_decimals": lambda L: [L.round(L.tensor([0.5, 1.5, 2.5, -0.5])),
                                           L.round(L.tensor([1.2345, 123.45]), decimals=2),
                                           L.round(L.tensor([1234.5]), decimals=-2)],
    "int_to_float_unary": lambda L: [L.sqrt(L.tensor([4, 9])), L.exp(L.tensor([0, 1],
                                                                             dtype=L.int8)),
                                     L.sin(L.tensor([True])), L.sigmoid(L.tensor([0]))],
    "sqrt_log_domain": lambda L: [L.sqrt(L.tensor([-1., -0.])), L.log(L.tensor([0., -1.])),
                                  L.log1p(L.tensor([-1., -2.])), L.rsqrt(L.tensor([0., -0.]))],
    "nan_to_num": lambda L: [L.nan_to_num(L.tensor([NAN, INF, -INF, 1.])),
                             L.nan_to_num(L.tensor([NAN, INF, -INF]), 1., 2., -3.),
                             L.nan_to_num(L.tensor([1, 2])),
                             L.nan_to_num(L.tensor([INF], dtype=L.float16))],
    "isnan_isinf_ints": lambda L: [L.isnan(L.tensor([1])), L.isinf(L.tensor([1])),
                                   L.isfinite(L.tensor([1, 2], dtype=L.uint8)),
                                   L.isposinf(L.tensor([INF, -INF])),
                                   L.isneginf(L.tensor([INF, -INF])), L.isreal(L.tensor([1j,
                                                                                        1]))],
    "frexp": lambda L: list(L.frexp(L.tensor([8., -0.75, 0., INF]))),
    "logit_eps": lambda L: [L.logit(L.tensor([0., 0.5, 1.])),
                            L.logit(L.tensor([0., 1.]), eps=0.25)],
    "reciprocal_int": lambda L: [L.reciprocal(L.tensor([2, 0])),
                                 L.reciprocal(L.tensor([0.], dtype=L.float16))],
    "exp2_expm1_log2": lambda L: [L.exp2(L.tensor([3, -1])), L.expm1(L.tensor([1e-10])),
                                  L.log2(L.tensor([8]))],
    "angle_real": lambda L: [L.angle(L.tensor([-1., 0., 2.])), L.angle(L.tensor([-1, 2])),
                             L.angle(L.tensor([-1j]))],
    "positive_conj_real": lambda L: [L.positive(L.tensor([1, 2])), L.conj_physical(
        L.tensor([1 + 1j])), L.real(L.tensor([1., 2.]))],
    "bitwise_not_bool_int": lambda L: [L.bitwise_not(L.tensor([True])),
                                       L.bitwise_not(L.tensor([0], dtype=L.int8))],
    "clamp_inf_bounds": lambda L: L.clamp(L.tensor([1., -INF, INF]), -INF, 2.),
    # more edge cases (zero divisors, infinities, dtypes, out=, in-place)
    "div_int_by_int_scalar_inplace_float": lambda L: L.tensor([1., 2.]).div_(L.tensor([2])),
    "div_trunc_float": lambda L: L.div(L.tensor([-7.5, 7.5]), 2, rounding_mode="trunc"),
    "div_floor_negzero": lambda L: L.div(L.tensor([-0., 0.]), 3, rounding_mode="floor"),
    "div_floor_by_zero_float": lambda L: L.div(L.tensor([1., -1., 0.]), 0, rounding_mode="floor"),
    "div_trunc_by_zero_float": lambda L: L.div(L.tensor([1., -1., 0.]), 0, rounding_mode="trunc"),
    "floor_divide_int_negative_scalar": lambda L: L.tensor([7, -7]) // -2,
    "floor_divide_uint8": lambda L: L.tensor([7], dtype=L.uint8) // 2,
    "remainder_int_float_scalar": lambda L: L.remainder(L.tensor([5, -5]), 1.5),
    "remainder_scalar_first": lambda L: L.remainder(5, L.tensor([3, -3])),
    "remainder_inf": lambda L: L.remainder(L.tensor([INF, 1.]), 2),
    "fmod_neg_divisor_float": lambda L: L.fmod(L.tensor([5.5, -5.5]), -2),
    "fmod_int_float_tensor": lambda L: L.fmod(L.tensor([5]), L.tensor([2.5])),
    "pow_neg_base_frac": lambda L: L.tensor([-8.]) ** 0.5,
    "pow_int_tensor_big": lambda L: L.tensor([2]) ** 62,
    "pow_float_tensor_int_tensor": lambda L: L.pow(L.tensor([2.]), L.tensor([3])),
    "pow_int_tensor_float_tensor": lambda L: L.pow(L.tensor([2]), L.tensor([0.5])),
    "pow_0d_int_float_exponent_tensor": lambda L: L.pow(L.tensor(2), L.tensor([0.5, 2.])),
    "pow_scalar_int_tensor_float0d": lambda L: L.pow(2, L.tensor(0.5)),
    "pow_nan_zero":
        lambda L: [L.tensor([NAN]) ** 0, L.tensor([1.]) ** NAN, L.pow(L.tensor([NAN]), 0.)],
    "pow_inf":
        lambda L: [L.tensor([INF, -INF]) ** -1, L.tensor([-INF]) ** 3, L.tensor([0.5]) ** INF],
    "pow_int_negative_tensor_exp_bases":
        lambda L: L.pow(L.tensor([0, 3, -3]), L.tensor([-1, -2, -3])),
    "pow_out_float64":
        lambda L: _o(lambda o: L.pow(L.tensor([2]), 2, out=o), L.empty(1, dtype=L.float64)),
    "pow_complex_int": lambda L: L.tensor([1j]) ** 2,
    "float_power_int_neg": lambda L: L.float_power(L.tensor([2]), -1),
    "mul_bool_tensors": lambda L: L.tensor([True, False]) * L.tensor([True, True]),
    "add_bool_tensors": lambda L: L.tensor([True, False]) + L.tensor([True, True]),
    "div_bool": lambda L: L.tensor([True]) / L.tensor([True]),
    "add_bool_float_scalar": lambda L: L.tensor([True]) + 0.5,
    "add_int8_uint8": lambda L: L.tensor([-1], dtype=L.int8) + L.tensor([255], dtype=L.uint8),
    "add_int_0d_int8": lambda L: L.tensor([1], dtype=L.int8) + L.tensor(1000),
    "add_half_0d_float": lambda L: L.tensor([1.], dtype=L.float16) + L.tensor(1e5),
    "add_bfloat16_scalar": lambda L: L.tensor([1.], dtype=L.bfloat16) + 1.001,
    "sub_alpha_int": lambda L: L.sub(L.tensor([5]), L.tensor([1]), alpha=3),
    "eq_out_int":
        lambda L: _o(lambda o: L.eq(L.tensor([1, 2]), 1, out=o), L.empty(2, dtype=L.int64)),
    "ne_complex": lambda L: L.ne(L.tensor([1 + 1j]), 1),
    "maximum_0d_scalar_like": lambda L: L.maximum(L.tensor([1, 5]), L.tensor(3.)),
    "fmax_int": lambda L: L.fmax(L.tensor([1, 5]), L.tensor([3, 2])),
    "logical_not_dtypes":
        lambda L: [L.logical_not(L.tensor([0., NAN])), L.logical_not(L.tensor([2]))],
    "logical_not_out_int":
        lambda L: _o(lambda o: L.logical_not(L.tensor([0, 2]), out=o), L.empty(2, dtype=L.int16)),
    "bitwise_ops_bool":
        lambda L: [L.tensor([True, False]) & True, L.tensor([True]) | 0,
            L.tensor([True]) ^ L.tensor([True])],
    "bitwise_int_scalar_big": lambda L: L.tensor([1], dtype=L.int8) | 256,
    "shift_negative": lambda L: [L.tensor([-1]) >> 70, L.tensor([1]) << 64, L.tensor([5]) << -1],
    "shift_int8_by_8": lambda L: L.tensor([1], dtype=L.int8) << L.tensor([8], dtype=L.int8),
    "atan2_inf": lambda L: L.atan2(L.tensor([INF, -INF, 0., -0.]), L.tensor([INF, INF, -1., -1.])),
    "hypot_inf_nan": lambda L: L.hypot(L.tensor([INF, NAN]), L.tensor([NAN, INF])),
    "copysign_int_int": lambda L: L.copysign(L.tensor([2]), L.tensor([-1])),
    "nextafter_float": lambda L: L.nextafter(L.tensor([1.]), L.tensor([2.])) - 1,
    "ldexp_int": lambda L: L.ldexp(L.tensor([3]), L.tensor([2])),
    "xlogy_int": lambda L: L.xlogy(L.tensor([0, 2]), L.tensor([0, 8])),
    "logaddexp_inf":
        lambda L: [L.logaddexp(L.tensor([-INF]), L.tensor([-INF])),
            L.logaddexp2(L.tensor([INF]), L.tensor([INF]))],
    "gcd_int8_min": lambda L: L.gcd(L.tensor([-128], dtype=L.int8), L.tensor([0], dtype=L.int8)),
    "lcm_zero": lambda L: L.lcm(L.tensor([0]), L.tensor([0])),
    "polar_complex": lambda L: L.polar(L.tensor([2.]), L.tensor([0.])),
    "abs_unsigned": lambda L: L.abs(L.tensor([200], dtype=L.uint8)),
    "neg_uint8": lambda L: -L.tensor([1], dtype=L.uint8),
    "round_half": lambda L: L.round(L.tensor([2.5, 3.5], dtype=L.float16)),
    "frac": lambda L: L.frac(L.tensor([-1.5, 2.25, INF])),
    "exp_complex": lambda L: L.exp(L.tensor([1j * 3.14159265])),
    "log_int": lambda L: L.log(L.tensor([1, 0])),
    "sigmoid_inf": lambda L: L.sigmoid(L.tensor([INF, -INF, NAN])),
    "tanh_bool": lambda L: L.tanh(L.tensor([True])),
    "erfinv_edges": lambda L: L.erfinv(L.tensor([-1., 1., 2.])),
    "lgamma_poles": lambda L: L.lgamma(L.tensor([0., -1., -0.5])),
    "digamma_zero": lambda L: L.digamma(L.tensor([0., -0., -1.])),
    "sinc": lambda L: L.sinc(L.tensor([0., 0.5, INF])),
    "deg_rad":
        lambda L: [L.deg2rad(L.tensor([180])), L.rad2deg(L.tensor([3.14159265], dtype=L.float64))],
    "i0": lambda L: L.i0(L.tensor([0., 1.])),
    "signbit_int": lambda L: L.signbit(L.tensor([-1, 0], dtype=L.int8)),
    "isfinite_complex": lambda L: L.isfinite(L.tensor([complex(INF, 0), 1j])),
    "nan_to_num_int_kw": lambda L: L.nan_to_num(L.tensor([1], dtype=L.int8), nan=2.0),
    "nan_to_num_out": lambda L: _o(lambda o: L.nan_to_num(L.tensor([NAN]), out=o), L.empty(1)),
    "clamp_min_inplace_int": lambda L: L.tensor([-1, 3]).clamp_min_(0),
    "sqrt_out_from_int":
        lambda L: _o(lambda o: L.sqrt(L.tensor([4]), out=o), L.empty(1, dtype=L.float64)),
    "abs_inplace_int": lambda L: L.tensor([-3]).abs_(),
    # from test_binary_ufuncs.py's own tests: overflow, in-place dunders, typing
    "int_min_remainder_neg1":
        lambda L: L.remainder(L.tensor([-2 ** 63]), -1),
    "int_min_fmod_neg1":
        lambda L: L.fmod(L.tensor([-2 ** 63]), -1),
    "int8_min_floordiv_neg1":
        lambda L: L.tensor([-128], dtype=L.int8) // -1,
    "int32_min_remainder":
        lambda L: L.remainder(L.tensor([-2 ** 31], dtype=L.int32), -1),
    "rpow_int":
        lambda L: [3 ** L.tensor([2]), 3.5 ** L.tensor([2]), 2 ** L.tensor([0.5])],
    "int8_shift_overflow":
        lambda L: [L.tensor([1], dtype=L.int8) << 8, L.tensor([-1], dtype=L.int8) >> 8,
            L.tensor([64], dtype=L.int8) << 1],
    "uint8_shift_big":
        lambda L: L.tensor([255], dtype=L.uint8) << 9,
    "mul_int8_float_scalar":
        lambda L: L.tensor([3], dtype=L.int8) * 1.5,
    "mul_uint8_neg_scalar":
        lambda L: L.tensor([3], dtype=L.uint8) * -1,
    "iadd_same_object":
        lambda L: (lambda x: _same(L, x, x.__iadd__(1)))(L.tensor([1.])),
    "ifloordiv_int":
        lambda L: (lambda x: [x.__ifloordiv__(2), x])(L.tensor([5])),
    "imod_float":
        lambda L: (lambda x: [x.__imod__(2), x])(L.tensor([-5.])),
    "ipow_int":
        lambda L: (lambda x: [x.__ipow__(2), x])(L.tensor([3])),
    "iand_bool":
        lambda L: (lambda x: [x.__iand__(L.tensor([False, True])), x])(L.tensor([True, True])),
    "ilshift":
        lambda L: (lambda x: [x.__ilshift__(2), x])(L.tensor([1])),
    "addcmul_scalars_as_floats":
        lambda L: L.addcmul(L.tensor([1.], dtype=L.float64), L.tensor([2.], dtype=L.float64),
            L.tensor([3.], dtype=L.float64), value=0.1),
    "long_tensor_pow_floats":
        lambda L: [L.tensor([2]) ** 1.5, L.pow(L.tensor([2]), -0.5)],
    "float_scalar_pow_float_tensor":
        lambda L: L.pow(2.5, L.tensor([2., -1.], dtype=L.float64)),
    "tensor_pow_tensor_broadcast":
        lambda L: L.pow(L.tensor([[2.], [3.]]), L.tensor([1., 2.])),
    "add_typing":
        lambda L: [L.tensor([True]) + L.tensor([1], dtype=L.int8), L.tensor([1],
            dtype=L.int16) + 1.0],
    "muldiv_scalar":
        lambda L: [L.tensor([2.]) * 3, 3 / L.tensor([2]), L.tensor([6]) / 4],
    "floor_divide_zero_float":
        lambda L: L.floor_divide(L.tensor([1., -1., 0., NAN]), L.tensor([0., 0., 0., 0.])),
    "fmod_remainder_float_by_zero":
        lambda L: [L.fmod(L.tensor([1.]), L.tensor([0.])), L.remainder(L.tensor([-1.]),
            L.tensor([0.]))],
    "div_rounding_nonfinite":
        lambda L: [L.div(L.tensor([INF, -INF, NAN]), L.tensor([2., 2., 2.]),
            rounding_mode=m) for m in ("floor", "trunc")],
    "div_rounding_inf_divisor":
        lambda L: [L.div(L.tensor([1., -1.]), INF, rounding_mode=m) for m in ("floor", "trunc")],
    "min_max_binary_nan":
        lambda L: [L.max(L.tensor([NAN, 1.]), L.tensor([1., NAN])), L.min(L.tensor([NAN]),
            L.tensor([0.]))],
    "maximum_minimum_type_promotion":
        lambda L: [L.maximum(L.tensor([1], dtype=L.int8), L.tensor([1.], dtype=L.float16)),
            L.minimum(L.tensor([True]), L.tensor([2]))],
    "maximum_out_int":
        lambda L: (lambda o: [L.maximum(L.tensor([1.5]), L.tensor([2.5]), out=o),
            o])(L.empty(1, dtype=L.float64)),
    "logical_xor_nontrivial":
        lambda L: L.logical_xor(L.tensor([[1, 0, 2]]).t(), L.tensor([0., 1.])),
    "lerp_half":
        lambda L: L.lerp(L.tensor([1.], dtype=L.float16), L.tensor([2.], dtype=L.float16), 0.5),
    "heaviside_int":
        lambda L: L.heaviside(L.tensor([-2, 0, 3]), L.tensor([7])),
    "heaviside_0d_values":
        lambda L: L.heaviside(L.tensor([0., -1.]), L.tensor(0.5)),
    "atan2_edge":
        lambda L: L.atan2(L.tensor([0., -0., 0., -0.]), L.tensor([0., 0., -0., -0.])),
    "hypot_out":
        lambda L: (lambda o: [L.hypot(L.tensor([3.]), L.tensor([4.]), out=o), o])(L.empty(1)),
    "gcd_uint8":
        lambda L: L.gcd(L.tensor([12], dtype=L.uint8), L.tensor([18], dtype=L.uint8)),
    "nextafter_inf_nan":
        lambda L: L.nextafter(L.tensor([INF, NAN, 0.], dtype=L.float64), L.tensor([0., 1.,
            NAN], dtype=L.float64)),
    "ldexp_float64_int":
        lambda L: L.ldexp(L.tensor([1.], dtype=L.float64), L.tensor([1024])),
    "logaddexp_mixed":
        lambda L: L.logaddexp(L.tensor([1.], dtype=L.float64), L.tensor([1.])),
    "xlogy_bfloat16":
        lambda L: L.xlogy(L.tensor([2.], dtype=L.bfloat16), L.tensor([3.], dtype=L.bfloat16)),
    "zeta":
        lambda L: L.special.zeta(L.tensor([2., 1.]), L.tensor([1., 1.])),
    "true_divide_bool_scalar":
        lambda L: L.tensor([True]) / True,
    "copysign_int_scalar":
        lambda L: L.copysign(L.tensor([2, -3]), 1),
    "eq_uint8_neg_scalar":
        lambda L: L.tensor([255], dtype=L.uint8) == -1,
    "lt_int64_big_float":
        lambda L: L.tensor([2 ** 62]) < 4.611686018427388e18,
    "ne_bool_int_scalar":
        lambda L: L.tensor([True, False]) != 2,
    # from test_unary_ufuncs.py's own tests: signed zeros, domains, out=, dtypes
    "abs_negzero_signbit":
        lambda L: L.signbit(L.abs(L.tensor([-0.]))),
    "isposinf_int":
        lambda L: [L.isposinf(L.tensor([1])), L.isneginf(L.tensor([True]))],
    "nan_to_num_bool":
        lambda L: L.nan_to_num(L.tensor([True])),
    "nan_to_num_inplace":
        lambda L: (lambda x: [x.nan_to_num_(0.5), x])(L.tensor([NAN, INF])),
    "nan_to_num_float64":
        lambda L: L.nan_to_num(L.tensor([INF, -INF], dtype=L.float64)),
    "frexp_out":
        lambda L: list(L.frexp(L.tensor([4.]), out=(L.empty(1), L.empty(1, dtype=L.int32)))),
    "polygamma_int":
        lambda L: L.polygamma(1, L.tensor([1, 2])),
    "digamma_special":
        lambda L: L.digamma(L.tensor([1., 0.5, -INF, INF])),
    "mvlgamma_err":
        lambda L: L.mvlgamma(L.tensor([0.5]), 2),
    "mvlgamma":
        lambda L: L.mvlgamma(L.tensor([2.5]), 2),
    "sigmoid_noncontig":
        lambda L: L.sigmoid(L.arange(6.).reshape(2, 3).t()).contiguous(),
    "exp_large":
        lambda L: L.exp(L.tensor([88.8, 89., -104.])),
    "expm1_int":
        lambda L: L.expm1(L.tensor([0, 1])),
    "log_neg":
        lambda L: [L.log(L.tensor([-1.])), L.log10(L.tensor([0.])), L.log2(L.tensor([-0.]))],
    "sqrt_negzero":
        lambda L: L.signbit(L.sqrt(L.tensor([-0.]))),
    "rsqrt_int":
        lambda L: L.rsqrt(L.tensor([4, 0])),
    "reciprocal_negzero":
        lambda L: L.reciprocal(L.tensor([-0., 0.])),
    "neg_int8_min":
        lambda L: L.neg(L.tensor([-128], dtype=L.int8)),
    "floor_negzero":
        lambda L: L.signbit(L.floor(L.tensor([-0.5, -0.]))),
    "round_negzero":
        lambda L: L.signbit(L.round(L.tensor([-0.4]))),
    "trunc_nan_inf":
        lambda L: L.trunc(L.tensor([NAN, INF, -2.7])),
    "trunc_uint8":
        lambda L: L.trunc(L.tensor([3], dtype=L.uint8)),
    "sign_int8":
        lambda L: L.sign(L.tensor([-5, 0, 7], dtype=L.int8)),
    "sgn_int":
        lambda L: L.sgn(L.tensor([-5, 0, 7])),
    "sinh_cosh_inf":
        lambda L: [L.sinh(L.tensor([INF])), L.cosh(L.tensor([-INF]))],
    "asin_out_of_domain":
        lambda L: L.asin(L.tensor([2.])),
    "acosh_atanh_domain":
        lambda L: [L.acosh(L.tensor([0.5])), L.atanh(L.tensor([1., -1.]))],
    "erf_erfc_inf":
        lambda L: [L.erf(L.tensor([INF])), L.erfc(L.tensor([-INF]))],
    "logit_int":
        lambda L: L.logit(L.tensor([0, 1])),
    "logit_out_of_range":
        lambda L: L.logit(L.tensor([1.5, -0.5])),
    "i0e_i1":
        lambda L: [L.special.i0e(L.tensor([0., 1.])), L.special.i1(L.tensor([1.]))],
    "expit_exp2_int":
        lambda L: [L.special.expit(L.tensor([0])), L.special.exp2(L.tensor([2]))],
    "logical_not_complex":
        lambda L: L.logical_not(L.tensor([0j, 1j])),
    "angle_nan":
        lambda L: L.angle(L.tensor([NAN])),
    "conj_int":
        lambda L: L.conj(L.tensor([1])),
    "square_bool":
        lambda L: L.square(L.tensor([True, False])),
    "unary_out_overlap_ok":
        lambda L: (lambda x: [L.exp(x, out=x), x])(L.tensor([0., 1.])),
    "sin_out_resize":
        lambda L: (lambda o: [L.sin(L.tensor([0., 1.]), out=o), o])(L.empty(0)),
    "clamp_min_int_float_err":
        lambda L: L.clamp_min(L.tensor([1]), 0.5).dtype,
    "relu_int":
        lambda L: L.relu(L.tensor([-1, 2])),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_ufunc(name):
    both(CASES[name])


def test_out_resize_warns():
    both(lambda L: _out(L, lambda o: L.add(L.tensor([1., 2]), 1, out=o), L.empty(3)),
         warns="An output with one or more elements was resized")


ERRORS = {
    "int_pow_negative_int_scalar_unit_base": (lambda L: L.tensor([1, -1]) ** -1, RuntimeError,
                                              ("Integers to negative integer powers",)),
    "int_pow_negative_int_scalar": (lambda L: L.tensor([2, 3]) ** -1, RuntimeError,
                                    ("Integers to negative integer powers are not allowed",)),
    "int_0d_pow_negative": (lambda L: L.tensor(3) ** -2, RuntimeError,
                            ("Integers to negative integer powers",)),
    "bool_pow_bool_tensor":
        (lambda L: L.pow(L.tensor([True]), L.tensor([True])), NotImplementedError,
                             ("\"pow\" not implemented for 'Bool'",)),
    "int_inplace_true_divide": (lambda L: L.tensor([1, 2]).div_(2), RuntimeError,
                                ("result type Float can't be cast to the desired output type "
                                 "Long",)),
    "int_inplace_add_float": (lambda L: L.tensor([1, 2]).add_(1.5), RuntimeError,
                              ("result type Float can't be cast",)),
    "bool_inplace_add_int": (lambda L: L.tensor([True]).add_(1), RuntimeError,
                             ("result type Long can't be cast to the desired output type "
                              "Bool",)),
    "float_inplace_add_complex": (lambda L: L.tensor([1.]).mul_(1j), RuntimeError,
                                  ("result type ComplexFloat can't be cast",)),
    "inplace_broadcast_self": (lambda L: L.tensor([1., 2.]).add_(L.ones(2, 2)), RuntimeError,
                               ("doesn't match the broadcast shape",)),
    "out_int_for_float_result": (lambda L: L.add(L.tensor([1.]), 1, out=L.empty(1,
                                                                                dtype=L.long)),
                                 RuntimeError, ("result type Float can't be cast",)),
    "sub_bool": (lambda L: L.tensor([True]) - L.tensor([False]), RuntimeError,
                 ("Subtraction, the `-` operator, with two bool tensors is not supported",)),
    "sub_bool_scalar": (lambda L: L.tensor([True]) - True, RuntimeError,
                        ("Subtraction, the `-` operator",)),
    "neg_bool": (lambda L: -L.tensor([True]), RuntimeError,
                 ("Negation, the `-` operator, on a bool tensor is not supported",)),
    "int_div_by_zero": (lambda L: L.tensor([1]) // 0, RuntimeError, ("ZeroDivisionError",)),
    "int_remainder_by_zero": (lambda L: L.remainder(L.tensor([1]), L.tensor([0])),
                              RuntimeError, ("ZeroDivisionError",)),
    "bitwise_float": (lambda L: L.tensor([1.]) & L.tensor([1.]), NotImplementedError,
                      ("not implemented for 'Float'",)),
    "shift_float": (lambda L: L.tensor([1.]) << 1, NotImplementedError, ("not implemented for",)),
    "gcd_float": (lambda L: L.gcd(L.tensor([1.]), L.tensor([2.])), NotImplementedError,
                  ("not implemented for 'Float'",)),
    "heaviside_mixed_dtypes": (lambda L: L.heaviside(L.tensor([1.]), L.tensor([1])),
                               RuntimeError, ("heaviside is not yet implemented for tensors "
                                              "with different dtypes",)),
    "add_shape_mismatch": (lambda L: L.tensor([1., 2.]) + L.tensor([1., 2., 3.]),
                           RuntimeError, ("must match the size of tensor b",)),
    "add_float_alpha_int": (lambda L: L.add(L.tensor([1]), L.tensor([1]), alpha=0.5),
                            RuntimeError, ("For integral input tensors, argument alpha must "
                                           "not be a floating point number",)),
    "remainder_complex": (lambda L: L.remainder(L.tensor([1j]), 2), NotImplementedError,
                          ("not implemented for 'ComplexFloat'",)),
    "floor_divide_complex": (lambda L: L.tensor([1j]) // 2, NotImplementedError, ()),
    "lerp_dtype_mismatch": (lambda L: L.lerp(L.tensor([1.]), L.tensor([1.],
                                                                      dtype=L.float64), 0.5),
                            RuntimeError, ("expected dtype",)),
    "round_decimals_int": (lambda L: L.round(L.tensor([1]), decimals=1), NotImplementedError,
                           ("not implemented for 'Long'",)),
    "sign_complex": (lambda L: L.sign(L.tensor([1j])), NotImplementedError,
                                              ("Unlike NumPy, torch.sign is not intended",)),
    "add_alpha_bool_err": (lambda L: L.add(L.tensor([1]), L.tensor([1]), alpha=True), RuntimeError,
        ("Boolean alpha only supported",)),
    "add_out_bool_err":
        (lambda L: L.add(L.tensor([1]), 1, out=L.empty(1, dtype=L.bool)), RuntimeError,
        ("can't be cast",)),
    "ceil_inplace_bool_err": (lambda L: L.tensor([True]).ceil_(), NotImplementedError,
        ("not implemented for 'Bool'",)),
    "complex_ctor_err":
        (lambda L: L.complex(L.tensor([1.]), L.tensor([1.], dtype=L.float64)), RuntimeError,
        ()),
    "div_bad_rounding_mode":
        (lambda L: L.div(L.tensor([1.]), 2, rounding_mode="round"), RuntimeError,
        ("div expected rounding_mode to be one of None, 'trunc', or 'floor'",)),
    "div_bool_floor_err":
        (lambda L: L.div(L.tensor([True]), L.tensor([True]), rounding_mode="floor"),
            NotImplementedError,
        ()),
    "exp_out_int_err":
        (lambda L: L.exp(L.tensor([1.]), out=L.empty(1, dtype=L.long)), RuntimeError,
        ("can't be cast",)),
    "float_power_inplace_err": (lambda L: L.tensor([2.]).float_power_(2), RuntimeError,
        ("the base given to float_power_ has dtype Float",)),
    "fmod_int_by_zero": (lambda L: L.fmod(L.tensor([1]), 0), RuntimeError,
        ("ZeroDivisionError",)),
    "hypot_int_err": (lambda L: L.hypot(L.tensor([3]), L.tensor([4])), NotImplementedError,
        ("not implemented for 'Long'",)),
    "lt_complex_err": (lambda L: L.lt(L.tensor([1j]), 1), NotImplementedError,
        ("not implemented for 'ComplexFloat'",)),
    "maximum_complex_err": (lambda L: L.maximum(L.tensor([1j]), L.tensor([1j])), RuntimeError,
        ("maximum not implemented for complex tensors",)),
    "maximum_scalar_err": (lambda L: L.maximum(L.tensor([1.]), 2.), TypeError,
        ()),
    "sin_inplace_int_err": (lambda L: L.tensor([1]).sin_(), RuntimeError,
        ("can't be cast",)),
    "true_divide_out_int_err":
        (lambda L: L.true_divide(L.tensor([1]), 2, out=L.empty(1, dtype=L.long)), RuntimeError,
        ("can't be cast",)),
    "float_power_out_err":
        (lambda L: L.float_power(L.tensor([2.]), 2, out=L.empty(1)), RuntimeError,
         ()),
    "imul_int_float_err":
        (lambda L: (lambda x: x.__imul__(1.5))(L.tensor([1])), RuntimeError,
         ("can't be cast",)),
    "itruediv_int_err":
        (lambda L: (lambda x: x.__itruediv__(2))(L.tensor([4])), RuntimeError,
         ("can't be cast",)),
    "mem_overlap_add_err":
        (lambda L: (lambda x: L.add(x[1:], x[:-1], out=x[:-1]))(L.tensor([1., 2., 3.])),
            RuntimeError,
         ("some elements of the input tensor and the written-to tensor refer to a single "
          "memory location",)),
    "pow_inplace_resize_err":
        (lambda L: L.tensor([2.]).pow_(L.tensor([1., 2.])), RuntimeError,
         ()),
    "sub_typing":
        (lambda L: [L.tensor([1], dtype=L.int8) - L.tensor([1], dtype=L.uint8),
            L.tensor([True]) - 1], RuntimeError,
         ("Subtraction, the `-` operator, with a bool tensor is not supported",)),
    "bitwise_not_float_err":
        (lambda L: L.bitwise_not(L.tensor([1.])), NotImplementedError,
         ()),
    "ceil_bool_err":
        (lambda L: L.ceil(L.tensor([True])), NotImplementedError,
         ()),
    "floor_bool_err":
        (lambda L: L.floor(L.tensor([True])), NotImplementedError,
         ()),
    "frexp_int_err":
        (lambda L: L.frexp(L.tensor([1])), RuntimeError,
         ()),
    "imag_real_err":
        (lambda L: L.imag(L.tensor([1.])), RuntimeError,
         ("imag is not implemented for tensors with non-complex dtypes",)),
    "isposinf_out_err":
        (lambda L: L.isposinf(L.tensor([1.]), out=L.empty(1)), RuntimeError,
         ()),
    "polygamma_neg_err":
        (lambda L: L.polygamma(-1, L.tensor([1.])), RuntimeError,
         ("does not support negative n",)),
    "positive_bool_err":
        (lambda L: L.positive(L.tensor([True])), RuntimeError,
         ("The `+` operator, on a bool tensor is not supported",)),
    "relu_bool_err":
        (lambda L: L.relu(L.tensor([True])), RuntimeError,
         ("Boolean inputs not supported for relu",)),
    "unary_out_partial_overlap_err":
        (lambda L: (lambda x: L.exp(x[:2], out=x[1:]))(L.tensor([0., 1., 2.])), RuntimeError,
         ("refer to a single memory location",)),
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_ufunc_error(name):
    fn, kind, words = ERRORS[name]
    raises_both(fn, *words, kind=kind)
