"""ember.segment_reduce against torch.segment_reduce: values, empty segments, initial,
offsets, gradients."""
import numpy as np
import pytest
import torch

import ember

LENGTHS = np.array([2, 0, 3, 1])


@pytest.mark.parametrize("reduce", ["sum", "mean", "max", "min", "prod"])
@pytest.mark.parametrize("initial", [None, 10.0])
@pytest.mark.parametrize("shape", [(6,), (6, 2)])
def test_segment_reduce_matches_torch(reduce, initial, shape):
    data = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    want = torch.segment_reduce(torch.tensor(data), reduce, lengths=torch.tensor(LENGTHS),
                                initial=initial)
    got = ember.segment_reduce(ember.tensor(data), reduce, lengths=ember.tensor(LENGTHS),
                               initial=initial)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, equal_nan=True)


@pytest.mark.parametrize("reduce", ["sum", "mean", "max"])
def test_segment_reduce_offsets_and_gradient_match_torch(reduce):
    data = np.array([1.0, 4.0, 3.0, 2.0, 5.0, 6.0])
    offsets = np.array([0, 2, 2, 5, 6])
    x, y = torch.tensor(data, requires_grad=True), ember.tensor(data, requires_grad=True)
    torch.segment_reduce(x, reduce, offsets=torch.tensor(offsets)).nan_to_num(0.0, 0.0, 0.0) \
        .mul(torch.arange(4.0, dtype=torch.float64)).sum().backward()
    ember.segment_reduce(y, reduce, offsets=ember.tensor(offsets)).nan_to_num(0.0, 0.0, 0.0) \
        .mul(ember.arange(4.0, dtype=ember.float64)).sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), x.grad.numpy())


def test_segment_reduce_refuses_lengths_not_covering_the_data():
    with pytest.raises(RuntimeError, match="sum to data.size"):
        ember.segment_reduce(ember.ones(5), "sum", lengths=ember.tensor(LENGTHS))
