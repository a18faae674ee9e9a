"""ember.channels_last_3d as a real layout, as PyTorch has it for 5-d tensors:
`contiguous` / `to` / `clone` lay the values out NDHWC (PyTorch's strides), is_contiguous
answers for it, pointwise results keep it, and the values never change (eager and
ember.compile)."""
import numpy as np
import pytest
import torch

import ember


def _twins():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5, 6)).astype(np.float32)
    return ember.tensor(x), torch.from_numpy(x), x


CASES = {
    "contiguous": lambda m, t: t.contiguous(memory_format=m.channels_last_3d),
    "to": lambda m, t: t.to(memory_format=m.channels_last_3d),
    "clone_preserves": lambda m, t: t.contiguous(memory_format=m.channels_last_3d).clone(),
    "add_scalar": lambda m, t: t.contiguous(memory_format=m.channels_last_3d) + 1,
    "add_channel_bias": lambda m, t: t.contiguous(memory_format=m.channels_last_3d) +
    m.ones(3, 1, 1, 1),
    "contiguous_plus_cl3d": lambda m, t: t + t.contiguous(memory_format=m.channels_last_3d),
    "relu": lambda m, t: m.relu(t.contiguous(memory_format=m.channels_last_3d)),
    "back_to_contiguous": lambda m, t: t.contiguous(
        memory_format=m.channels_last_3d).contiguous(),
}


@pytest.mark.parametrize("case", list(CASES))
def test_channels_last_3d_strides_and_values_as_torch(case):
    e, t, _ = _twins()
    e_out, t_out = CASES[case](ember, e), CASES[case](torch, t)
    assert e_out.stride() == t_out.stride()
    for fmt in ("contiguous_format", "channels_last_3d"):
        assert e_out.is_contiguous(memory_format=getattr(ember, fmt)) == \
            t_out.is_contiguous(memory_format=getattr(torch, fmt))
    np.testing.assert_allclose(e_out.numpy(), t_out.numpy(), rtol=1e-6)


def test_channels_last_3d_rank_checked_as_torch():
    with pytest.raises(RuntimeError, match="required rank 5"):
        ember.randn(2, 3, 4, 5).contiguous(memory_format=ember.channels_last_3d)


def test_compiled_function_on_channels_last_3d_input():
    e, _, x = _twins()
    y = e.contiguous(memory_format=ember.channels_last_3d)
    b = ember.tensor(np.arange(3, dtype=np.float32).reshape(3, 1, 1, 1))

    def f(a, bias):
        return ember.relu(a * 2 + bias).sigmoid()
    out = ember.compile(f)(y, b)
    want = 1 / (1 + np.exp(-np.maximum(2 * x + b.numpy(), 0)))
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-5)
    assert out.stride() == f(y, b).stride()
