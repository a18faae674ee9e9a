"""What ember.compile's tracer records from PyTorch-style model code: new_* factories,
writes into tensors the function made, indexing with traced index tensors, conversions;
and what it refuses, in Tensor's vocabulary, at the user's line."""
import re

import numpy as np
import pytest

import ember
import ember.nn as nn
from ember.ir.errors import TraceError


def _check(fn, *tensors):
    with ember.no_grad():
        want = fn(*tensors)
        got = ember.compile(fn)(*tensors)
    assert tuple(got.shape) == tuple(want.shape) and got.dtype == want.dtype
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make", [
    lambda x: x.new_zeros(3, 4), lambda x: x.new_zeros((3, 4)), lambda x: x.new_ones(4),
    lambda x: x.new_full((3, 4), 2.5), lambda x: x.new_empty(x.shape).copy_(x),
    lambda x: x.new_zeros(4, dtype=ember.int64), lambda x: x.new_tensor([1.0, 2.0, 3.0, 4.0]),
], ids=["zeros", "zeros_tuple", "ones", "full", "empty", "zeros_int64", "tensor"])
def test_new_factories(make):
    x = ember.randn(3, 4, dtype=ember.float64)
    _check(lambda t: t + make(t), x)


def test_new_factories_take_the_tensors_dtype_and_device():
    x = ember.randn(2, dtype=ember.float64)
    assert x.new_zeros(3).dtype == ember.float64 and x.new_zeros(3).device == x.device


def test_slice_assignment_into_a_tensor_the_function_made():
    def fn(x):
        m = ember.zeros(4, 4)
        m[0:2, 0:2] = 1.0
        m[3] = x[0]
        return x @ m
    _check(fn, ember.randn(3, 4))


def test_bool_mask_assignment_is_a_masked_fill():
    def fn(x):
        y = x.clone()
        y[y < 0] = 0.0
        y[:, x[0] > 0] = x[0, 0]
        return y
    _check(fn, ember.randn(3, 4))


def test_index_a_parameter_with_a_view_of_a_buffer():
    class Table(nn.Module):
        def __init__(self):
            super().__init__()
            self.table = nn.Parameter(ember.randn(10, 3))
            self.register_buffer("index", ember.tensor([[1, 2], [3, 9]]))

        def forward(self, x):
            return x + self.table[self.index.view(-1)].sum(0)
    _check(Table().eval(), ember.randn(2, 3))


def test_traced_index_tensors_and_conversions():
    def fn(x):
        rows = (x[:, 0] > 0).long()                 # computed index tensor
        return x[rows] + x[(x.sum() > 0).long()] + (x > 0).float() + x.double().type_as(x)
    _check(fn, ember.randn(3, 4))


def test_iteration_over_rows():
    _check(lambda x: sum(row * i for i, row in enumerate(x)), ember.randn(3, 4))


# --- refusals: Tensor's vocabulary, the user's line, and that the line runs eagerly -------------
def _refusal(fn, error=TraceError):  # noqa: ARG001 - fullgraph wraps every refusal
    # fullgraph=True: without it the function breaks the graph there and runs eagerly
    with pytest.raises(TraceError) as info:
        ember.compile(fn, fullgraph=True)(ember.randn(3, 4))
    text = str(info.value)
    assert "SymbolicTensor" not in text
    return text


def test_data_dependent_control_flow_names_the_line():
    def branchy(x):
        if x.sum() > 0:
            return x
        return -x
    text = _refusal(branchy)
    assert "bool()" in text and "if x.sum() > 0:" in text and "runs eagerly" in text
    assert re.search(r"test_compile_tracing.py:\d+ in branchy", text)


def test_bool_mask_read_names_the_line():
    text = _refusal(lambda x: x[x > 0].sum())
    assert "bool mask" in text and "x[x > 0]" in text and "runs eagerly" in text


def test_unsupported_tensor_attribute_is_named_as_tensors():
    text = _refusal(lambda x: x.grad, AttributeError)
    assert "AttributeError: Tensor.grad is not supported" in text and "runs eagerly" in text
    assert "AttributeError: 'Tensor' object has no attribute 'no_such_thing'" in \
        _refusal(lambda x: x.no_such_thing, AttributeError)
