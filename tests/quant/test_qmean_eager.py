"""Tensor.mean (over dimensions, or all of it: a 0-d result) on a per-tensor quantized tensor, as torch's quantized mean:
averaged on the dequantized values, requantized with the input's scale and zero point
(the bound call's keyword-only dtype no longer reaches mean as a positional argument)."""
import warnings

import numpy as np
import pytest
import torch

import ember

warnings.filterwarnings("ignore")


@pytest.mark.parametrize("args", [((2, 3),), ((2, 3), True), ((1,),), ()])
def test_quantized_mean_over_dims_matches_torch(args):
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    t = torch.quantize_per_tensor(torch.from_numpy(x), 0.05, 128, torch.quint8).mean(*args)
    e = ember.quantize_per_tensor(ember.tensor(x), 0.05, 128, ember.quint8).mean(*args)
    assert e.dtype == ember.quint8 and tuple(e.shape) == tuple(t.shape)
    assert (e.q_scale(), e.q_zero_point()) == (t.q_scale(), t.q_zero_point())
    np.testing.assert_array_equal(e.int_repr().numpy(), t.int_repr().numpy())
