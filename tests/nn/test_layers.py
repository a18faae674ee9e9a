"""Every layer against the torch layer with the same weights: forward, gradients, modes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
import ember.nn as nn

from nn_helpers import check_layer


def randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _needs(*ops):
    """xfail while a registry op this case needs is missing (its owner is adding it)."""
    from ember.ir.registry import OPS
    missing = [op for op in ops if op not in OPS]
    return pytest.mark.xfail(bool(missing), reason=f"registry op(s) {missing} not registered")


CASES = {
    "linear": (lambda m: m.Linear(5, 3), lambda r: [randn(r, 4, 5)]),
    "linear_3d_nobias": (lambda m: m.Linear(5, 3, bias=False), lambda r: [randn(r, 2, 4, 5)]),
    "conv1d": (lambda m: m.Conv1d(3, 4, 3, padding=1), lambda r: [randn(r, 2, 3, 9)]),
    "conv2d": (lambda m: m.Conv2d(3, 4, 3, stride=2, padding=1), lambda r: [randn(r, 2, 3, 9, 9)]),
    "conv2d_groups": (lambda m: m.Conv2d(4, 4, 3, groups=2, bias=False),
                      lambda r: [randn(r, 2, 4, 7, 7)]),
    "conv_transpose2d": (lambda m: m.ConvTranspose2d(3, 2, 3, stride=2, padding=1),
                         lambda r: [randn(r, 2, 3, 5, 5)]),
    "relu": (lambda m: m.ReLU(), lambda r: [randn(r, 3, 7)]),
    "leaky_relu": (lambda m: m.LeakyReLU(0.2), lambda r: [randn(r, 3, 7)]),
    "elu": (lambda m: m.ELU(), lambda r: [randn(r, 3, 7)]),
    "gelu": (lambda m: m.GELU(), lambda r: [randn(r, 3, 7)]),
    "gelu_tanh": (lambda m: m.GELU("tanh"), lambda r: [randn(r, 3, 7)]),
    "silu": (lambda m: m.SiLU(), lambda r: [randn(r, 3, 7)]),
    "softplus": (lambda m: m.Softplus(beta=2.0), lambda r: [randn(r, 3, 7)]),
    "tanh": (lambda m: m.Tanh(), lambda r: [randn(r, 3, 7)]),
    "sigmoid": (lambda m: m.Sigmoid(), lambda r: [randn(r, 3, 7)]),
    "softmax": (lambda m: m.Softmax(dim=1), lambda r: [randn(r, 3, 7)]),
    "log_softmax": (lambda m: m.LogSoftmax(dim=-1), lambda r: [randn(r, 3, 7)]),
    "identity": (lambda m: m.Identity(), lambda r: [randn(r, 3, 7)]),
    "flatten": (lambda m: m.Flatten(), lambda r: [randn(r, 2, 3, 4)]),
    "unflatten": (lambda m: m.Unflatten(1, (3, 4)), lambda r: [randn(r, 2, 12)]),
    "max_pool2d": (lambda m: m.MaxPool2d(2), lambda r: [randn(r, 2, 3, 8, 8)]),
    "max_pool2d_pad": (lambda m: m.MaxPool2d(3, 2, 1), lambda r: [randn(r, 2, 3, 9, 9)]),
    "avg_pool2d": (lambda m: m.AvgPool2d(2), lambda r: [randn(r, 2, 3, 8, 8)]),
    "adaptive_avg_pool2d": (lambda m: m.AdaptiveAvgPool2d((1, 1)),
                            lambda r: [randn(r, 2, 3, 5, 5)]),
    "adaptive_avg_pool2d_3": (lambda m: m.AdaptiveAvgPool2d(3), lambda r: [randn(r, 2, 3, 7, 7)]),
    "layer_norm": (lambda m: m.LayerNorm(6), lambda r: [randn(r, 3, 6)]),
    "layer_norm_2d": (lambda m: m.LayerNorm((4, 6)), lambda r: [randn(r, 2, 4, 6)]),
    "group_norm": (lambda m: m.GroupNorm(2, 4), lambda r: [randn(r, 3, 4, 5, 5)]),
    "embedding": (lambda m: m.Embedding(10, 4, padding_idx=0),
                  lambda r: [r.integers(0, 10, (3, 5))]),
    "dropout_eval": (lambda m: m.Dropout(0.5), lambda r: [randn(r, 3, 7)]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_layer_matches_torch(name, rng):
    build, inputs = CASES[name]
    ember.manual_seed(0)
    check_layer(build(nn), build(torch.nn), inputs(rng), rng)


@pytest.mark.parametrize("cls", ["BatchNorm1d", "BatchNorm2d"])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_batch_norm_train_then_eval(cls, momentum, rng):
    shape = (6, 4) if cls == "BatchNorm1d" else (3, 4, 5, 5)
    em, tm = getattr(nn, cls)(4, momentum=momentum), getattr(torch.nn, cls)(4, momentum=momentum)
    for step in range(3):
        check_layer(em, tm, [randn(rng, *shape)], rng, train=True, copy=step == 0)
    assert int(em.num_batches_tracked.item()) == 3
    check_layer(em, tm, [randn(rng, *shape)], rng, train=False, copy=False)


def test_batch_norm_no_affine_no_tracking(rng):
    em = nn.BatchNorm2d(3, affine=False, track_running_stats=False)
    tm = torch.nn.BatchNorm2d(3, affine=False, track_running_stats=False)
    check_layer(em, tm, [randn(rng, 2, 3, 4, 4)], rng, train=False)
    assert list(em.state_dict()) == []


def test_dropout_statistics():
    ember.manual_seed(0)
    x = ember.ones(200, 200)
    y = nn.Dropout(0.3)(x).numpy()
    kept = (y != 0).mean()
    assert abs(kept - 0.7) < 0.01
    np.testing.assert_allclose(y[y != 0], 1 / 0.7, rtol=1e-6)


def test_max_pool2d_return_indices(rng):
    x = randn(rng, 2, 3, 6, 6)
    eo, ei = nn.MaxPool2d(2, return_indices=True)(ember.tensor(x))
    to, ti = torch.nn.MaxPool2d(2, return_indices=True)(torch.tensor(x))
    np.testing.assert_allclose(eo.numpy(), to.numpy())
    np.testing.assert_array_equal(ei.numpy(), ti.numpy())


def test_sequential_and_containers(rng):
    em = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    tm = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    check_layer(em, tm, [randn(rng, 3, 4)], rng)
    assert len(em) == 3 and isinstance(em[-1], nn.Linear)
    assert isinstance(em[1:], nn.Sequential) and len(em[1:]) == 2
    em.append(nn.Tanh())
    assert list(dict(em.named_children())) == ["0", "1", "2", "3"]
    ml = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(list(ml.parameters())) == 6 and len(ml[:2]) == 2
    md = nn.ModuleDict({"a": nn.ReLU(), "b": nn.Linear(2, 2)})
    assert list(md.keys()) == ["a", "b"] and "b.weight" in md.state_dict()


@pytest.mark.parametrize("batch_first", [False, True])
def test_multihead_attention(batch_first, rng):
    em = nn.MultiheadAttention(8, 2, batch_first=batch_first)
    tm = torch.nn.MultiheadAttention(8, 2, batch_first=batch_first)
    q = randn(rng, 3, 5, 8)
    kv = randn(rng, 3, 4, 8) if batch_first else randn(rng, 4, 5, 8)
    check_layer(em, tm, [q, kv, kv], rng)
    n, l, s = (3, 5, 4) if batch_first else (5, 3, 4)
    kpm = np.zeros((n, s), dtype=bool)
    kpm[:, -1] = True
    mask = rng.standard_normal((l, s)).astype(np.float32)
    eo, ew = em(ember.tensor(q), ember.tensor(kv), ember.tensor(kv),
                key_padding_mask=ember.tensor(kpm), attn_mask=ember.tensor(mask))
    to, tw = tm(torch.tensor(q), torch.tensor(kv), torch.tensor(kv),
                key_padding_mask=torch.tensor(kpm), attn_mask=torch.tensor(mask))
    np.testing.assert_allclose(eo.detach().numpy(), to.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ew.detach().numpy(), tw.detach().numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_transformer_encoder_layer(norm_first, activation, rng):
    kw = dict(dim_feedforward=16, dropout=0.1, activation=activation, norm_first=norm_first,
              batch_first=True)
    em = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, **kw), 2)
    tm = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(8, 2, **kw), 2,
                                     enable_nested_tensor=False)
    check_layer(em, tm, [randn(rng, 2, 5, 8)], rng)


def test_transformer_decoder_and_full(rng):
    kw = dict(d_model=8, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
              dim_feedforward=16, dropout=0.0)
    em, tm = nn.Transformer(**kw), torch.nn.Transformer(**kw)
    assert list(em.state_dict()) == list(tm.state_dict())
    check_layer(em, tm, [randn(rng, 5, 2, 8), randn(rng, 4, 2, 8)], rng)
