"""repr(ember tensor) must read exactly like repr(torch tensor), prefix aside."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from tests.oracle import TORCH_DTYPES

INF, NAN = float("inf"), float("nan")

VALUES = [
    [1, 2, 3], [-1, 20, 300], [1., 2., 3.], [1.5, -2.25, 3.], [0.1, 0.2], [1e-5, 1.],
    [1e10, 1.], [123456789., 1.], [1e-10], [1e20], [NAN, 1.], [INF, -INF, 1.5], [NAN],
    [True, False], 3.5, 3, True, False, 1e-7, -2.5, [], [[1., 2.], [3., 4.]], [0., 0.], [-0.5],
    [1e8], [1e9, 2.0], [12345.678, 0.001], [100., 0.5], [1000.5, 1.25], [[1e-5, 2.], [3., 4.]],
    0., -0., INF, -INF, NAN, [1.0e-4], [0.0001, 1.], [123.456, 7.0], [1e3, 1.0], [[True]],
    [2 ** 40, 1], [-1.5e-3], [[-1, 2], [3, -400]], [[[1.5]]], [1e-3, 1e3], [-1e-5, 1e-5],
    [0., 1e-5], [NAN, INF, 0.], [2.0 ** 60], 1 + 2j, [1 + 2j, -3.5 - 1j], [1j, 0j],
]


def _same(e, t):
    assert repr(e) == repr(t).replace("torch.", "ember.")


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_repr_values(value):
    _same(ember.tensor(value), torch.tensor(value))


@pytest.mark.parametrize("dtype", list(TORCH_DTYPES), ids=lambda d: d.name)
@pytest.mark.parametrize("value", [[1.5, 2.], [1, 0], 2.5, [[0.25, -3.0], [7.0, 1e-6]]],
                         ids=repr)
def test_repr_dtypes(dtype, value):
    if not dtype.is_floating_point and not dtype.is_complex and np.ndim(value) == 2:
        value = [[1, 2], [3, 4]]
    _same(ember.tensor(value, dtype=dtype), torch.tensor(value, dtype=TORCH_DTYPES[dtype]))


@pytest.mark.parametrize("shape", [(2000,), (40, 40), (3, 0), (0,), (0, 2, 3), (5, 300),
                                   (4, 5, 6, 7), (1001,), (12, 9)], ids=str)
def test_repr_shapes_and_summarization(shape, rng):
    a = (rng.standard_normal(shape) * 10).astype(np.float32)
    _same(ember.tensor(a), torch.tensor(a))
    ai = rng.integers(-1000, 1000, shape)
    _same(ember.tensor(ai), torch.tensor(ai))


@pytest.mark.parametrize("dtype", [ember.int64, ember.int32, ember.float64, ember.bool])
def test_repr_empty_with_dtype(dtype):
    _same(ember.zeros(0, 3, dtype=dtype), torch.zeros(0, 3, dtype=TORCH_DTYPES[dtype]))
    _same(ember.zeros(0, dtype=dtype), torch.zeros(0, dtype=TORCH_DTYPES[dtype]))


def test_repr_requires_grad_and_grad_fn():
    e = ember.tensor([1., 2.], requires_grad=True)
    t = torch.tensor([1., 2.], requires_grad=True)
    _same(e, t)
    for f in [lambda x: x + 1, lambda x: x * 2, lambda x: x.sum(), lambda x: x.exp(),
              lambda x: x - 1, lambda x: 1 - x, lambda x: x / 2, lambda x: x.mean(),
              lambda x: x.view(2, 1), lambda x: x.reshape(1, 2), lambda x: x.sin(),
              lambda x: x.tanh(), lambda x: x ** 2, lambda x: x.pow(x), lambda x: 2 ** x,
              lambda x: x.unsqueeze(0), lambda x: x.expand(2, 2), lambda x: x.clone(),
              lambda x: x.double(), lambda x: -x, lambda x: x.relu(), lambda x: x.sigmoid(),
              lambda x: x.sqrt(), lambda x: x.log(), lambda x: x.abs(),
              lambda x: x.view(1, 2).sum(0), lambda x: x.view(1, 2).mean(1),
              lambda x: x.view(1, 2).squeeze(), lambda x: x.view(1, 2).squeeze(0),
              lambda x: x.view(1, 2).transpose(0, 1), lambda x: x.view(2, 1).t().reshape(2)
              if hasattr(x, "t") else x.view(2, 1).transpose(0, 1).reshape(2)]:
        _same(f(e), f(t))
    _same(e.detach(), t.detach())
    _same(e.double().to(ember.float64), t.double().to(torch.float64))


def test_repr_grad_fn_on_wide_tensor_wraps_suffix():
    a = np.linspace(-3, 3, 20).astype(np.float32)
    e = ember.tensor(a, requires_grad=True) * 3
    t = torch.tensor(a, requires_grad=True) * 3
    _same(e, t)
    _same(ember.tensor(a, dtype=ember.float64), torch.tensor(a, dtype=torch.float64))


def test_repr_views_and_channels_last():
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 3
    _same(ember.tensor(a).permute(2, 0, 1), torch.tensor(a).permute(2, 0, 1))
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 2, 2)
    _same(ember.tensor(x).to(memory_format=ember.channels_last),
          torch.tensor(x).to(memory_format=torch.channels_last))


def test_set_printoptions_matches_torch():
    a = np.array([1.123456789, 2.5, 1e-3], dtype=np.float64)
    b = np.arange(30, dtype=np.float32)
    try:
        for kw in [dict(precision=2), dict(precision=6), dict(threshold=5), dict(edgeitems=1,
                   threshold=5), dict(linewidth=30), dict(sci_mode=True), dict(sci_mode=False),
                   dict(profile="short"), dict(profile="full")]:
            ember.set_printoptions(**kw)
            torch.set_printoptions(**kw)
            _same(ember.tensor(a), torch.tensor(a))
            _same(ember.tensor(b), torch.tensor(b))
            ember.set_printoptions(profile="default")
            torch.set_printoptions(profile="default")
    finally:
        ember.set_printoptions(profile="default")
        torch.set_printoptions(profile="default")


def test_str_equals_repr_and_format():
    e = ember.tensor([1.5, 2.0])
    assert str(e) == repr(e)
    assert f"{ember.tensor(2.5):.2f}" == "2.50"
    assert repr(ember.Size([2, 3])) == "ember.Size([2, 3])"
    assert repr(ember.float32) == "ember.float32"
