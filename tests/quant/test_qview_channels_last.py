"""Data-movement ops on a channels-last quantized value (an int8 convolution's result):
the viewing ops read its integers in place (frontend/quantized.py `_integers_of`), the
others from a contiguous copy; either way the integers, shape and qparams are torch's."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember

OPS = {
    "reshape": lambda t: t.reshape(2, -1),
    "flatten": lambda t: t.flatten(1),
    "permute": lambda t: t.permute(0, 2, 3, 1),
    "transpose": lambda t: t.transpose(1, 2),
    "select": lambda t: t[1],
    "narrow": lambda t: t.narrow(1, 2, 4),
    "squeeze_1x1": lambda t: t[:, :, :1, :1].squeeze(),
    "unsqueeze": lambda t: t.unsqueeze(0),
    "unflatten": lambda t: t.flatten(2).unflatten(2, (3, 5)),
    "movedim": lambda t: t.movedim(1, 3),
    "chunk": lambda t: t.chunk(2, 1)[1],
    "contiguous": lambda t: t.contiguous(),
    "clone": lambda t: t.clone(),
}


@pytest.mark.parametrize("name", sorted(OPS))
def test_channels_last_quantized_data_movement_matches_torch(rng, name):
    a = rng.standard_normal((2, 8, 3, 5)).astype(np.float32)
    tq = torch.quantize_per_tensor(torch.from_numpy(a), 0.1, 10, torch.quint8).contiguous(
        memory_format=torch.channels_last)
    eq = ember.quantize_per_tensor(ember.tensor(a), 0.1, 10, ember.quint8).contiguous(
        memory_format=ember.channels_last)
    want, got = OPS[name](tq), OPS[name](eq)
    assert tuple(got.shape) == tuple(want.shape)
    np.testing.assert_array_equal(got.int_repr().numpy(), want.int_repr().numpy())
    assert (got.q_scale(), got.q_zero_point()) == (want.q_scale(), want.q_zero_point())
    # the source is unchanged (nothing written through a view)
    np.testing.assert_array_equal(eq.int_repr().numpy(), tq.int_repr().numpy())


def test_viewing_ops_read_a_channels_last_result_in_place(rng):
    """A channels-last int8 value (a conv's result) is viewed, not copied, by permute
    (its NHWC view, as torch's) and a flatten of a 1x1-spatial one."""
    x = ember.quantize_per_tensor(ember.tensor(rng.standard_normal((4, 16, 5, 5)).astype(
        np.float32)), 0.05, 3, ember.quint8).contiguous(memory_format=ember.channels_last)
    nhwc = x.permute(0, 2, 3, 1)
    assert np.shares_memory(nhwc._array, x._array)
    np.testing.assert_array_equal(nhwc.int_repr().numpy(),
                                  x.int_repr().numpy().transpose(0, 2, 3, 1))
    assert nhwc.is_contiguous()
