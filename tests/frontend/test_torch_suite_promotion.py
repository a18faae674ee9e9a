"""Type promotion as PyTorch's test_type_promotion.py pins it down: the three tiers
(dimensioned tensors, 0-d tensors, Python scalars), categories bool < int < float <
complex, in-place and out= casting rules, integer division and pow, reductions'
accumulation dtypes, the default dtype's effect, and the operands an operator takes
(NumPy scalars and arrays; None and other objects NotImplemented). Each case runs with
torch and ember and compares values, dtypes and error kinds."""
from __future__ import annotations

import numpy as np
import pytest

from torch_suite_common import both, raises_both

BINARY_CASES = {
    "int_tensor_float_scalar": lambda L: L.tensor([1, 2]) + 1.5,
    "int_tensor_0d_float": lambda L: L.tensor([1, 2]) + L.tensor(1.5),
    "int32_tensor_0d_double": lambda L: L.tensor([1, 2], dtype=L.int32)
    + L.tensor(1.5, dtype=L.float64),
    "float_tensor_0d_double": lambda L: L.tensor([1., 2]) + L.tensor(1.5, dtype=L.float64),
    "half_tensor_0d_double": lambda L: L.tensor([1.], dtype=L.float16)
    + L.tensor(1.5, dtype=L.float64),
    "uint8_int8": lambda L: L.tensor([1], dtype=L.uint8) + L.tensor([1], dtype=L.int8),
    "uint8_0d_int64_wraps": lambda L: L.tensor([1], dtype=L.uint8) + L.tensor(1000),
    "uint8_big_scalar_wraps": lambda L: L.tensor([1], dtype=L.uint8) + 300,
    "bool_bool_add": lambda L: L.tensor([True]) + L.tensor([True]),
    "bool_int_scalar": lambda L: L.tensor([True]) + 2,
    "bool_float_scalar": lambda L: L.tensor([True]) + 2.5,
    "int_complex_scalar": lambda L: L.tensor([1]) + 1j,
    "float_0d_complex128": lambda L: L.tensor([1.]) + L.tensor(1j, dtype=L.complex128),
    "double_complex64": lambda L: L.tensor([1.], dtype=L.float64)
    + L.tensor([1j], dtype=L.complex64),
    "bfloat16_half": lambda L: L.tensor([1.], dtype=L.bfloat16)
    + L.tensor([1.], dtype=L.float16),
    "int8_float_scalar": lambda L: L.tensor([1], dtype=L.int8) * 2.0,
    "int_times_bool_scalar": lambda L: L.tensor([1, 2]) * True,
    "int_true_divide": lambda L: L.tensor([3, 4]) / L.tensor([2, 2]),
    "bool_true_divide": lambda L: L.tensor([True]) / L.tensor([True]),
    "floor_divide_int": lambda L: L.tensor([-3, 4]) // 2,
    "floor_divide_float": lambda L: L.tensor([-3., 4]) // 2,
    "div_floor": lambda L: L.div(L.tensor([-3, 4]), 2, rounding_mode="floor"),
    "div_trunc": lambda L: L.div(L.tensor([-3, 4]), 2, rounding_mode="trunc"),
    "int_pow_float": lambda L: L.tensor([2]) ** 0.5,
    "scalar_pow_int_tensor": lambda L: 2 ** L.tensor([1, 2]),
    "float_scalar_pow_int_tensor": lambda L: 2.5 ** L.tensor([1, 2]),
    "int_lt_float": lambda L: L.tensor([1, 2]) < L.tensor([1.5, 2.5]),
    "int_eq_float_scalar": lambda L: L.tensor([1, 2]) == 1.0,
    "remainder_negative": lambda L: L.tensor([-3, 3]) % 2,
    "remainder_float": lambda L: L.tensor([-3.5, 3]) % 2,
    "fmod_int": lambda L: L.fmod(L.tensor([-3, 3]), 2),
    "maximum_mixed": lambda L: L.maximum(L.tensor([1]), L.tensor([1.5])),
    "clamp_int_float_bounds": lambda L: L.clamp(L.tensor([1, 5]), 1.5, 3.5),
    "addcmul_int_operands": lambda L: L.addcmul(L.tensor([1.]), L.tensor([2]), L.tensor([2]),
                                                value=2),
    "bool_or_int": lambda L: L.tensor([True]) | L.tensor([2]),
    "uint8_shift": lambda L: L.tensor([1], dtype=L.uint8) << 2,
    "where_tensor_float_scalar": lambda L: L.where(L.tensor([True, False]), L.tensor([1, 2]),
                                                   2.5),
    "where_int_scalars": lambda L: L.where(L.tensor([True, False]), 1, 0),
    "where_float_int_scalars": lambda L: L.where(L.tensor([True, False]), 1.0, 0),
    "cat_int_float": lambda L: L.cat([L.tensor([1]), L.tensor([1.5])]),
    "cat_bool_int8": lambda L: L.cat([L.tensor([True]), L.tensor([2], dtype=L.int8)]),
    "stack_int32_double": lambda L: L.stack([L.tensor([1], dtype=L.int32),
                                             L.tensor([1.5], dtype=L.float64)]),
}


@pytest.mark.parametrize("name", sorted(BINARY_CASES))
def test_binary_result_dtype_and_values(name):
    both(BINARY_CASES[name])


def test_result_type_promote_types_can_cast():
    both(lambda L: [L.result_type(L.tensor([1], dtype=L.int32), 1.0),
                    L.result_type(L.tensor(1, dtype=L.int32), L.tensor([1], dtype=L.int8)),
                    L.result_type(2, 3.0), L.result_type(True, 3),
                    L.promote_types(L.uint8, L.int8), L.promote_types(L.bfloat16, L.float16),
                    L.promote_types(L.bool, L.complex64),
                    [L.can_cast(L.float32, L.int32), L.can_cast(L.int32, L.float32),
                     L.can_cast(L.complex64, L.float64), L.can_cast(L.bool, L.uint8),
                     L.can_cast(L.int8, L.bool)]])


def test_reduction_accumulation_dtypes():
    both(lambda L: [L.tensor([1, 2], dtype=L.int8).sum(), L.tensor([True, True]).sum(),
                    L.tensor([1, 2], dtype=L.int32).prod(),
                    L.tensor([1, 2], dtype=L.uint8).cumsum(0),
                    L.tensor([1, 2]).sum(dtype=L.float32), L.tensor([4, 9]).sqrt(),
                    L.tensor([1], dtype=L.int32).cumprod(0)])
    raises_both(lambda L: L.tensor([1, 2]).mean(), "could not infer output dtype")


@pytest.mark.parametrize("fn, words", [
    (lambda L: L.tensor([1, 2]).__iadd__(1.5), ("result type Float", "Long")),
    (lambda L: L.tensor([1, 2]).add_(L.tensor([1.5, 2.0])), ("result type Float", "Long")),
    (lambda L: L.tensor([1., 2]).__iadd__(1j), ("ComplexFloat", "Float")),
    (lambda L: L.tensor([1, 2]).__itruediv__(2), ("result type Float", "Long")),
    (lambda L: L.add(L.tensor([1., 2]), 1, out=L.empty(2, dtype=L.int64)),
     ("result type Float", "Long")),
])
def test_in_place_and_out_refuse_a_narrower_category(fn, words):
    raises_both(fn, *words)


def test_in_place_keeps_the_destination_dtype():
    def f(L):
        a = L.tensor([1., 2])
        a *= L.tensor([2])
        b = L.tensor([1., 2])
        b += L.tensor([2.], dtype=L.float64)
        return a, b
    both(f)


def test_out_dtype_and_resize_rules():
    both(lambda L: L.add(L.tensor([1., 2]), 1, out=L.empty(2, dtype=L.float64)))
    both(lambda L: L.add(L.tensor([1, 2]), 1, out=L.empty(2, dtype=L.int32)))
    both(lambda L: L.lt(L.tensor([1, 2]), 2, out=L.empty(2)))
    both(lambda L: L.sum(L.tensor([1., 2]), 0, out=L.empty((), dtype=L.float64)))

    def resized(L):
        out = L.empty(3)
        return L.add(L.tensor([1., 2]), 1, out=out), out
    both(resized, warns="resized")

    def from_empty(L):                      # an empty out= resizes silently
        out = L.empty(0)
        r = L.mul(L.tensor([1., 2]), 3, out=out)
        return r, out, r is out
    both(from_empty)


@pytest.mark.parametrize("fn, words", [
    (lambda L: L.tensor([2]) ** -1, ("negative integer powers",)),
    (lambda L: L.tensor([True]) - L.tensor([False]), ("Subtraction", "bool")),
    (lambda L: -L.tensor([True]), ("Negation", "bool")),
])
def test_integer_and_bool_arithmetic_refusals(fn, words):
    raises_both(fn, *words)


def test_lerp_requires_matching_dtypes():
    raises_both(lambda L: L.lerp(L.tensor([1.]), L.tensor([2.], dtype=L.float64), 0.5),
                "expected dtype")


def test_default_dtype_drives_float_inference():
    def f(L):
        old = L.get_default_dtype()
        L.set_default_dtype(L.float64)
        try:
            return [L.tensor([1.]).dtype, (L.tensor([1]) + 1.5).dtype, L.ones(1).dtype,
                    L.arange(0, 1, 0.5).dtype, L.tensor(1j).dtype, L.get_default_dtype(),
                    L.linspace(0, 1, 2).dtype, L.scalar_tensor(1).dtype]
        finally:
            L.set_default_dtype(old)
    both(f)
    raises_both(lambda L: L.set_default_dtype(L.int32), "floating", kind=TypeError)


# --- the operands an operator takes ---------------------------------------------------

def test_numpy_scalars_are_numbers_on_either_side():
    both(lambda L: [np.float64(2.0) * L.ones(2), L.ones(2) * np.float32(2),
                    np.int64(2) * L.ones(2), np.int64(3) + L.tensor([1]),
                    L.tensor([1]) + np.float64(0.5)])


def test_numpy_array_operand_becomes_a_tensor():
    both(lambda L: L.zeros(2) + np.ones(2))
    both(lambda L: L.zeros(2, dtype=L.int32) * np.array([2, 3], dtype=np.int32))


def test_comparison_with_none_and_other_objects():
    both(lambda L: [L.zeros(2) == None, L.zeros(2) != None,   # noqa: E711
                    L.zeros(2) == "a", L.zeros(2) == [0., 0.], L.zeros(2) == object()])


@pytest.mark.parametrize("fn", [
    lambda L: L.zeros(2) + None,
    lambda L: None + L.zeros(2),
    lambda L: L.zeros(2) < None,
    lambda L: L.zeros(2) + [1, 2],
    lambda L: L.zeros(2) & None,
], ids=["add_none", "radd_none", "lt_none", "add_list", "and_none"])
def test_operator_with_a_non_operand_is_a_type_error(fn):
    raises_both(fn, kind=TypeError)


@pytest.mark.parametrize("fn", [
    lambda L: L.tensor([5]) // L.tensor([0]),
    lambda L: L.tensor([5]) % L.tensor([0]),
    lambda L: L.tensor([5]) // 0,
    lambda L: L.div(L.tensor([5]), L.tensor([0]), rounding_mode="trunc"),
    lambda L: L.div(L.tensor([5]), 0, rounding_mode="floor"),
    lambda L: L.fmod(L.tensor([5]), L.tensor([0])),
    lambda L: L.remainder(L.tensor([5, 1], dtype=L.uint8), 0),
], ids=["floordiv", "mod", "floordiv_scalar", "div_trunc", "div_floor", "fmod", "uint8"])
def test_integer_division_by_zero_is_an_error(fn):
    raises_both(fn, "ZeroDivisionError")


def test_float_division_by_zero_is_ieee():
    both(lambda L: [L.tensor([5]) / L.tensor([0]), L.tensor([5.]) // 0, L.tensor([5.]) % 0,
                    L.tensor([-5.]) // 0, L.tensor([5]) % L.tensor([0.])])


@pytest.mark.parametrize("fn, words", [
    (lambda L: L.tensor([1]).add(1, alpha=0.5), ("alpha must not be a floating point",)),
    (lambda L: L.tensor([1]).sub(L.tensor([1]), alpha=1.0), ("alpha must not be",)),
    (lambda L: L.tensor([1]).add(1, alpha=1j), ("alpha must not be",)),
    (lambda L: L.tensor([1.]).add(1, alpha=True), ("Boolean alpha",)),
    (lambda L: L.tensor([1]).add(1, alpha=True), ("Boolean alpha",)),
])
def test_alpha_must_fit_the_result_dtype(fn, words):
    raises_both(fn, *words)


def test_alpha_accepted_forms():
    both(lambda L: [L.tensor([True]).add(True, alpha=True), L.tensor([1]).add(1.5, alpha=2),
                    L.tensor([1]).add(L.tensor([1.]), alpha=0.5),
                    L.tensor([1], dtype=L.uint8).add(1, alpha=-3)])


def test_python_int_operands_wrap_within_64_bits_and_refuse_beyond():
    both(lambda L: [L.tensor([1], dtype=L.int32) + 2 ** 63,
                    L.tensor([1], dtype=L.int32) + (2 ** 64 - 1),
                    L.tensor([1], dtype=L.int32) + 2 ** 40])
    for v in (2 ** 64, -2 ** 63 - 1, 2 ** 70):
        raises_both(lambda L: L.tensor([1], dtype=L.int32) + v, kind=OverflowError)
    raises_both(lambda L: L.full((1,), 2 ** 70), kind=OverflowError)


def test_cat_family_out_takes_a_wider_dtype():
    both(lambda L: [L.cat([L.ones(2), L.zeros(1)], out=L.empty(0, dtype=L.float64)),
                    L.stack([L.ones(2), L.ones(2)], out=L.empty(0, dtype=L.float64)),
                    L.hstack([L.ones(1), L.ones(1)], out=L.empty(0, dtype=L.float64)),
                    L.cat([L.tensor([1.]), L.tensor([2])], out=L.empty(2, dtype=L.float64)),
                    L.cumsum(L.ones(2), 0, out=L.empty(0, dtype=L.float64))])
    raises_both(lambda L: L.cat([L.ones(2)], out=L.empty(0, dtype=L.int64)),
                "can't be cast to the desired output type Long", kind=TypeError)
    raises_both(lambda L: L.mm(L.ones(1, 2), L.ones(2, 1), out=L.empty(0, dtype=L.float64)),
                "Expected out tensor to have dtype")


def test_in_place_forms_written_through_copy_refuse_narrowing():
    raises_both(lambda L: L.tensor([1, 2]).float_power_(2), "Long")
    both(lambda L: [L.tensor([1, 2]).cumsum_(0),
                    L.tensor([1., 2], dtype=L.float64).float_power_(2)])
