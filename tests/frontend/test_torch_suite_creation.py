"""Creation ops as PyTorch's test_tensor_creation_ops.py and test_torch.py pin them
down: dtype inference from Python lists, mixed scalars, NumPy scalars and arrays and
tensors; torch.tensor's copy (and its warning for a tensor), as_tensor/from_numpy's
sharing; the overflow check on stored Python numbers; arange/linspace/logspace edge
cases and dtypes; full's fill-value inference; new_* and the legacy constructors; item,
tolist, len, iteration, `in`. Each case runs with torch and ember and compares."""
from __future__ import annotations

import numpy as np
import pytest

from torch_suite_common import both, raises_both

INFERENCE = {
    "ints": lambda L: L.tensor([1, 2]),
    "int_float": lambda L: L.tensor([1, 2.5]),
    "bool_int": lambda L: L.tensor([True, 2]),
    "int_complex": lambda L: L.tensor([1, 2j]),
    "empty": lambda L: L.tensor([]),
    "empty_nested": lambda L: L.tensor([[], []]),
    "bool_scalar": lambda L: L.tensor(True),
    "tuple_nested": lambda L: L.tensor(((1, 2), (3, 4))),
    "range": lambda L: L.tensor(range(3)),
    "numpy_float64_array": lambda L: L.tensor(np.array([1.5])),
    "numpy_float16_array": lambda L: L.tensor(np.array([1.5], dtype=np.float16)),
    "numpy_float64_scalar": lambda L: L.tensor(np.float64(1.5)),
    "numpy_int32_scalar": lambda L: L.tensor(np.int32(7)),
    "numpy_float64_in_list": lambda L: L.tensor([np.float64(1.5), 2]),
    "numpy_int32_list": lambda L: L.tensor([np.int32(1), np.int32(2)]),
    "numpy_int32_and_python_int": lambda L: L.tensor([np.int32(1), 2]),
    "numpy_float16_and_python_int": lambda L: L.tensor([np.float16(1), 2]),
    "zero_dim_tensors": lambda L: L.tensor([L.tensor(1), L.tensor(2)]),
    "zero_dim_float_tensors": lambda L: L.tensor([L.tensor(1.5), L.tensor(2.)]),
    "zero_dim_int32_tensors": lambda L: L.tensor([L.tensor(1, dtype=L.int32)] * 2),
    "dtype_truncates": lambda L: L.tensor([1.7, -1.7], dtype=L.int32),
    "uint8_takes_small_negatives": lambda L: L.tensor([-1, 255], dtype=L.uint8),
    "big_int_as_float": lambda L: L.tensor([2 ** 63], dtype=L.float64),
    "float_inf_into_half": lambda L: L.tensor([1e10], dtype=L.float16),
    "float_into_bool": lambda L: L.tensor([1.5, 0.], dtype=L.bool),
    "scalar_tensor": lambda L: [L.scalar_tensor(3), L.scalar_tensor(True),
                                L.scalar_tensor(2, dtype=L.int32)],
}


@pytest.mark.parametrize("name", sorted(INFERENCE))
def test_tensor_dtype_inference(name):
    both(INFERENCE[name])


@pytest.mark.parametrize("fn, words, kind", [
    (lambda L: L.tensor([300], dtype=L.uint8), ("cannot be converted", "uint8"),
     RuntimeError),
    (lambda L: L.tensor([-300], dtype=L.uint8), ("cannot be converted",), RuntimeError),
    (lambda L: L.tensor([float("nan")], dtype=L.int64), ("cannot be converted",),
     RuntimeError),
    (lambda L: L.tensor([1e20], dtype=L.int64), ("cannot be converted", "int64"),
     RuntimeError),
    (lambda L: L.tensor([128], dtype=L.int8), ("cannot be converted", "int8"), RuntimeError),
    (lambda L: L.tensor([2 ** 63]), ("Overflow when unpacking long long",), ValueError),
    (lambda L: L.tensor(2 ** 64), ("Overflow when unpacking long long",), ValueError),
    (lambda L: L.tensor([[1, 2], [3]]), (), ValueError),
])
def test_tensor_refuses_values_that_do_not_fit(fn, words, kind):
    raises_both(fn, *words, kind=kind)


def test_tensor_of_a_tensor_copies_and_warns():
    def f(L):
        src = L.ones(2)
        t = L.tensor(src)
        t[0] = 5
        n = src.new_tensor(src)
        return src, t, n
    both(f, warns="To copy construct from a tensor")


def test_tensor_copies_numpy_as_tensor_and_from_numpy_share():
    def f(L):
        a = np.zeros(3)
        copied, shared, cast = L.tensor(a), L.as_tensor(a), L.as_tensor(a, dtype=L.float32)
        ff = np.zeros(3, dtype=np.float32)
        fn = L.from_numpy(ff)
        a[0] = 5
        fn[1] = 7
        t = L.ones(2)
        return copied, shared, cast, ff, L.as_tensor(t) is t
    both(f)
    both(lambda L: L.from_numpy(np.zeros((3, 4), dtype=np.float32).T).stride())


ARANGE = {
    "int": lambda L: L.arange(5),
    "float_step": lambda L: L.arange(0, 1, 0.25),
    "float_end": lambda L: L.arange(0, 5.0),
    "negative_step": lambda L: L.arange(5, 0, -2),
    "dtype_int_float_step": lambda L: L.arange(0, 5, 1.5, dtype=L.int64),
    "tensor_end": lambda L: L.arange(L.tensor(3)),
    "tensor_float_end": lambda L: L.arange(L.tensor(3.)),
    "empty": lambda L: L.arange(3, 3),
    "rounding_count": lambda L: L.arange(-4.0, 4.0, 0.01).shape,
    "double_count": lambda L: L.arange(0, 1, 0.1, dtype=L.float64).shape,
    "linspace": lambda L: L.linspace(0, 1, 5),
    "linspace_int": lambda L: L.linspace(0, 10, 4, dtype=L.int64),
    "linspace_one": lambda L: L.linspace(3, 10, 1),
    "linspace_zero": lambda L: L.linspace(3, 10, 0),
    "linspace_complex": lambda L: L.linspace(0, 1j, 3),
    "linspace_complex128": lambda L: L.linspace(1j, 2, 3, dtype=L.complex128),
    "linspace_tensor_ends": lambda L: L.linspace(L.tensor(0.), L.tensor(1.), 3),
    "logspace": lambda L: L.logspace(0, 2, 3),
    "logspace_base": lambda L: L.logspace(0, 3, 4, base=2),
    "logspace_int": lambda L: L.logspace(0, 3, 4, base=2, dtype=L.int32),
    "logspace_complex": lambda L: L.logspace(0, 1j, 2),
}


@pytest.mark.parametrize("name", sorted(ARANGE))
def test_ranges(name):
    both(ARANGE[name])


@pytest.mark.parametrize("fn", [
    lambda L: L.arange(0, 5, -1), lambda L: L.arange(0, 5, 0),
    lambda L: L.arange(0, float("inf")), lambda L: L.linspace(3, 10, -1),
], ids=["wrong_sign", "zero_step", "infinite", "negative_steps"])
def test_range_refusals(fn):
    raises_both(fn)


def test_full_infers_the_fill_dtype():
    both(lambda L: [L.full((2,), True), L.full((2,), 3), L.full((2,), 3.), L.full((2,), 1j),
                    L.full_like(L.zeros(2, dtype=L.int32), 2.7), L.ones(2, dtype=L.bool),
                    L.zeros_like(L.ones(2, dtype=L.int32), dtype=L.float16)])


def test_size_arguments():
    both(lambda L: [L.zeros(2, 3).shape, L.zeros((2, 3)).shape, L.zeros([2, 3]).shape,
                    L.zeros(L.Size([2])).shape, L.eye(2, 3), L.empty_strided((2, 3),
                                                                             (1, 2)).stride()])
    raises_both(lambda L: L.zeros(-1), "negative")
    raises_both(lambda L: L.eye(-1), "must be greater or equal to 0")


def test_new_methods_take_self_dtype():
    def f(L):
        t = L.zeros(2, dtype=L.float64)
        i = L.zeros(2, dtype=L.int32)
        return [t.new_tensor([1, 2]), t.new_zeros(3), t.new_ones((2,)), t.new_full((2,), 3),
                t.new_empty(2).dtype, t.new_zeros(2, dtype=L.int32), i.new_ones(2).dtype,
                i.new_tensor([1.5]), i.new_tensor([1.5], dtype=L.float32), i.new_full((1,), 2.5),
                t.new_zeros(2, requires_grad=True).requires_grad]
    both(f)


def test_legacy_constructors():
    both(lambda L: [L.Tensor([1, 2]), L.Tensor(2, 3).shape, L.Tensor().shape,
                    L.FloatTensor([1]), L.LongTensor([1.5]), L.BoolTensor([1, 0]),
                    L.DoubleTensor(2).dtype, L.zeros(2, dtype=L.float64).new(3).shape,
                    L.zeros(2, dtype=L.float64).new([1, 2])])


def test_item_tolist_and_python_conversions():
    both(lambda L: [L.tensor([[2.5]]).item(), type(L.tensor(3).item()).__name__,
                    type(L.tensor(True).item()).__name__, L.tensor(1.5).tolist(),
                    L.tensor([[True]]).tolist(), L.tensor(1 + 2j).tolist(),
                    L.arange(6).reshape(2, 1, 3).tolist(), int(L.tensor([3.7])),
                    float(L.tensor(2)), bool(L.tensor([0])), complex(L.tensor(1.)),
                    [1, 2, 3][L.tensor(1)], [1, 2, 3][L.tensor([2])], hex(L.tensor(5))])
    raises_both(lambda L: L.tensor([1, 2]).item(), "elements")
    raises_both(lambda L: int(L.tensor([1, 2])), "only one element tensors", kind=ValueError)
    raises_both(lambda L: float(L.tensor([1., 2])), "only one element tensors",
                kind=ValueError)
    raises_both(lambda L: bool(L.tensor([1, 2])), "ambiguous")
    raises_both(lambda L: bool(L.tensor([])), "ambiguous")
    raises_both(lambda L: [1, 2][L.tensor(1.)], "only integer tensors", kind=TypeError)


def test_len_iteration_and_membership():
    both(lambda L: [len(L.zeros(3, 2)), len(L.zeros(0)), [x for x in L.arange(3)],
                    list(reversed(L.arange(3))), 2 in L.arange(4), 7 in L.arange(4),
                    L.tensor(1) in L.arange(4), L.tensor([1, 9]) in L.arange(8).reshape(4, 2),
                    5 in L.arange(6).reshape(2, 3)])
    raises_both(lambda L: len(L.tensor(1)), "0-d tensor", kind=TypeError)
    raises_both(lambda L: list(L.tensor(2)), "0-d tensor", kind=TypeError)
    raises_both(lambda L: "a" in L.arange(3), "only supports Tensor or scalar")


def test_numpy_views_and_array_protocol():
    def f(L):
        t = L.zeros(3)
        t.numpy()[0] = 4
        a = np.asarray(L.tensor([1, 2], dtype=L.int32))
        return [t, a, np.asarray(L.tensor([1, 2]), dtype=np.float32),
                L.zeros(3, 4).t().numpy().strides,
                L.zeros(3, requires_grad=True).numpy(force=True)]
    both(f)
    raises_both(lambda L: L.zeros(3, requires_grad=True).numpy(), "requires grad")


def test_legacy_constructor_wants_a_sequence_or_sizes():
    raises_both(lambda L: L.Tensor(2.5), "data must be a sequence", kind=TypeError)
    raises_both(lambda L: L.FloatTensor(1.5), "data must be a sequence", kind=TypeError)
    # Tensor(Size) allocates uninitialized values: its shape is what compares
    both(lambda L: [L.Tensor(np.array([1, 2])), L.LongTensor(2).shape,
                    L.Tensor(L.Size([2])).shape])
