"""Ops PyTorch runs on per-tensor quantized tensors that ember used to refuse: data
movement on the integers (qparams kept, bit-exact with torch) and float-computed ops
requantized with the input's qparams (within one integer step of torch's kernels)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import ember

warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")

MOVES = {
    "expand_as": lambda m, F, q: q[:, :1].expand_as(q),
    "stack": lambda m, F, q: m.stack([q, q], -1),
    "flip": lambda m, F, q: q.flip(1),
    "index_select": lambda m, F, q: m.index_select(q, 1, m.tensor([0, 2])),
    "advanced_index": lambda m, F, q: q[:, [0, 2]],
    "pixel_shuffle": lambda m, F, q: F.pixel_shuffle(q, 2),
    "pixel_unshuffle": lambda m, F, q: F.pixel_unshuffle(q[..., :4, :4], 2),
    "channel_shuffle": lambda m, F, q: F.channel_shuffle(q, 2),
    "pad": lambda m, F, q: F.pad(q, (1, 1, 2, 0)),
    "pad_value": lambda m, F, q: F.pad(q, (1, 1, 2, 0), value=0.5),
}
REQUANTIZED = {
    "leaky_relu": lambda m, F, q: F.leaky_relu(q, 0.1),
    "gelu": lambda m, F, q: F.gelu(q),
    "bilinear": lambda m, F, q: F.interpolate(q, scale_factor=2, mode="bilinear"),
    "bilinear_align_corners": lambda m, F, q: F.interpolate(q, size=(7, 9), mode="bilinear",
                                                            align_corners=True),
}


def _pair(zero_point):
    x = np.random.default_rng(zero_point).standard_normal((2, 4, 5, 6)).astype(np.float32)
    return (ember.quantize_per_tensor(ember.tensor(x), 0.05, zero_point, ember.quint8),
            torch.quantize_per_tensor(torch.from_numpy(x), 0.05, zero_point, torch.quint8))


def _compare(name, cases, zero_point, max_steps):
    eq, tq = _pair(zero_point)
    got = cases[name](ember, ember.nn.functional, eq)
    want = cases[name](torch, torch.nn.functional, tq)
    assert got.dtype is ember.quint8 and tuple(got.shape) == tuple(want.shape)
    assert got.q_zero_point() == want.q_zero_point()
    assert got.q_scale() == pytest.approx(want.q_scale(), rel=1e-7)
    steps = np.abs(got.int_repr().numpy().astype(int) - want.int_repr().numpy().astype(int))
    assert steps.max() <= max_steps, f"{name}: {steps.max()} integer steps from torch"


@pytest.mark.parametrize("zero_point", [100, 3])
@pytest.mark.parametrize("name", sorted(MOVES))
def test_data_movement_on_quantized_values_is_bit_exact(name, zero_point):
    _compare(name, MOVES, zero_point, 0)


@pytest.mark.parametrize("zero_point", [100, 3])
@pytest.mark.parametrize("name", sorted(REQUANTIZED))
def test_requantized_ops_stay_within_one_step_of_torch(name, zero_point):
    _compare(name, REQUANTIZED, zero_point, 1)
