"""Module contract, state_dict errors, hooks, repr parity, and models vs torch."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import ember
import ember.nn as nn

from nn_helpers import check_layer


def test_parameter_and_registration():
    p = nn.Parameter(ember.zeros(2))
    assert p.requires_grad and isinstance(p, ember.Tensor)
    assert repr(p).startswith("Parameter containing:\ntensor(")
    m = nn.Linear(3, 2)
    assert [n for n, _ in m.named_parameters()] == ["weight", "bias"]
    m.extra = nn.Parameter(ember.ones(1))
    m.register_buffer("stat", ember.zeros(1), persistent=False)
    assert "extra" in m.state_dict() and "stat" not in m.state_dict()
    with pytest.raises(TypeError):
        m.weight = ember.zeros(2, 3)
    del m.extra
    assert "extra" not in dict(m.named_parameters())
    assert "weight" in dir(m)


def test_state_dict_errors_name_keys_and_shapes():
    m = nn.Linear(3, 2)
    with pytest.raises(RuntimeError) as err:
        m.load_state_dict({"weight": np.zeros((2, 4), np.float32), "foo": np.zeros(1)})
    msg = str(err.value)
    assert 'Missing key(s) in state_dict: "bias"' in msg
    assert 'Unexpected key(s) in state_dict: "foo"' in msg
    assert "size mismatch for weight" in msg and "[2, 4]" in msg and "[2, 3]" in msg
    result = m.load_state_dict({"weight": np.zeros((2, 3), np.float32)}, strict=False)
    assert result.missing_keys == ["bias"] and result.unexpected_keys == []


def test_hooks_train_eval_zero_grad_to():
    m = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    seen = []
    h1 = m.register_forward_pre_hook(lambda mod, args: (args[0] * 0,))
    h2 = m.register_forward_hook(lambda mod, args, out: seen.append(out) or out + 1)
    m.eval()
    out = m(ember.ones(1, 2))
    assert not m[1].training and len(seen) == 1
    np.testing.assert_allclose(out.detach().numpy(), m[0].bias.detach().numpy()[None] + 1,
                               rtol=1e-6)
    h1.remove()
    h2.remove()
    m(ember.ones(1, 2)).sum().backward()
    assert m[0].weight.grad is not None
    m.zero_grad()
    assert m[0].weight.grad is None
    w = m[0].weight
    m.double()
    assert m[0].weight is w and w.dtype == ember.float64


@pytest.mark.parametrize("build", [
    lambda m: m.Linear(4, 3), lambda m: m.Conv2d(3, 8, 3, stride=2, padding=1, bias=False),
    lambda m: m.Sequential(m.Linear(2, 2), m.ReLU()), lambda m: m.BatchNorm2d(4),
    lambda m: m.LayerNorm(5), lambda m: m.Embedding(10, 3, padding_idx=1),
    lambda m: m.MaxPool2d(2), lambda m: m.Dropout(0.2), lambda m: m.GroupNorm(2, 4),
])
def test_repr_matches_torch(build):
    assert repr(build(nn)) == repr(build(torch.nn))


@pytest.mark.parametrize("name", ["CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss",
                                  "BCELoss", "BCEWithLogitsLoss", "SmoothL1Loss"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_losses_match_torch(name, reduction, rng):
    x = rng.standard_normal((4, 5)).astype(np.float32)
    if name in ("CrossEntropyLoss", "NLLLoss"):
        t = rng.integers(0, 5, 4)
        t[0] = -100
        if name == "NLLLoss":
            x = torch.log_softmax(torch.tensor(x), 1).numpy()
    elif name == "BCELoss":
        x = 1 / (1 + np.exp(-x))
        t = rng.random((4, 5)).astype(np.float32)
    else:
        t = rng.random((4, 5)).astype(np.float32)
    em, tm = getattr(nn, name)(reduction=reduction), getattr(torch.nn, name)(reduction=reduction)
    ex = ember.tensor(x, requires_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    eo, to = em(ex, ember.tensor(t)), tm(tx, torch.tensor(t))
    np.testing.assert_allclose(eo.detach().numpy(), to.detach().numpy(), rtol=1e-5, atol=1e-6)
    eo.sum().backward()
    to.sum().backward()
    np.testing.assert_allclose(ex.grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_cross_entropy_label_smoothing_and_weight(rng):
    x = rng.standard_normal((6, 4)).astype(np.float32)
    t = rng.integers(0, 4, 6)
    w = rng.random(4).astype(np.float32)
    eo = nn.CrossEntropyLoss(weight=ember.tensor(w), label_smoothing=0.1)(ember.tensor(x),
                                                                          ember.tensor(t))
    to = torch.nn.CrossEntropyLoss(weight=torch.tensor(w), label_smoothing=0.1)(
        torch.tensor(x), torch.tensor(t))
    np.testing.assert_allclose(eo.numpy(), to.numpy(), rtol=1e-5)


def test_resnet18_matches_torchvision_shapes(rng):
    from domain_oracles import import_torchvision   # loads even without its C++ extension
    torchvision = import_torchvision()
    if torchvision is None:
        pytest.skip("torchvision is not installed (pip install --no-deps torchvision)")
    em = ember.models.resnet18(num_classes=10, seed=0)
    tm = torchvision.models.resnet18(num_classes=10)
    assert list(em.state_dict()) == list(tm.state_dict())
    check_layer(em, tm, [rng.standard_normal((2, 3, 32, 32)).astype(np.float32)], rng,
                grad=False, rtol=1e-3, atol=1e-4)


def test_models_seeded_and_save_load(tmp_path):
    a, b = ember.models.small_cnn(seed=3), ember.models.small_cnn(seed=3)
    for (k, v), (_, w) in zip(a.state_dict().items(), b.state_dict().items()):
        np.testing.assert_array_equal(v.numpy(), w.numpy(), err_msg=k)
    path = tmp_path / "w.safetensors"
    ember.save_weights(a, path)
    c = ember.models.small_cnn(seed=4)
    ember.load_weights(c, path)
    x = ember.randn(2, 1, 12, 12)
    a.eval(), c.eval()
    np.testing.assert_allclose(a(x).detach().numpy(), c(x).detach().numpy(), rtol=1e-6)


@pytest.mark.parametrize("build, fan_in", [
    (lambda lib: lib.nn.Linear(20, 30), 20), (lambda lib: lib.nn.Bilinear(4, 5, 30), 4),
    (lambda lib: lib.nn.Conv2d(3, 30, 3), 27), (lambda lib: lib.nn.ConvTranspose2d(6, 30, 2), 120),
    (lambda lib: lib.nn.Conv1d(4, 30, 5, groups=2), 10)])
def test_default_init_bounds_match_torch(build, fan_in):
    """kaiming-uniform(a=sqrt(5)) weights and bias in +-1/sqrt(fan_in), as torch's layers."""
    layer, twin = build(ember), build(torch)
    bound = 1 / np.sqrt(fan_in)
    for e, t in [(layer.weight, twin.weight), (layer.bias, twin.bias)]:
        assert tuple(e.shape) == tuple(t.shape)
        values = e.detach().numpy()
        assert np.abs(values).max() <= bound * (1 + 1e-6)
        assert np.abs(values).max() > bound * 0.5          # spread over the interval
    assert nn.Linear(0, 3).bias.tolist() == [0.0] * 3       # torch: empty fan draws in [0, 0]
    assert nn.Linear(4, 3, bias=False).bias is None


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dim, dtype", [(None, None), (0, None), (1, "float64")])
def test_functional_softmax_dim_and_dtype_match_torch(name, dim, dtype, rng):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")               # torch warns on the implicit dim
        t = getattr(torch.nn.functional, name)(torch.tensor(x), dim,
                                               dtype=getattr(torch, dtype) if dtype else None)
        e = getattr(nn.functional, name)(ember.tensor(x), dim,
                                         dtype=getattr(ember, dtype) if dtype else None)
    assert e.dtype.name == str(t.dtype).split(".")[-1]
    np.testing.assert_allclose(e.numpy(), t.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["Sequential", "ModuleList"])
def test_container_edits_renumber_keys_like_torch(kind):
    def edited(lib):
        layers = [lib.nn.ReLU(), lib.nn.Tanh(), lib.nn.Sigmoid(), lib.nn.Identity()]
        c = getattr(lib.nn, kind)(*layers) if kind == "Sequential" else lib.nn.ModuleList(layers)
        del c[1]
        c.insert(1, lib.nn.ELU())
        c.append(lib.nn.GELU())
        del c[-3:-1]
        c[0] = lib.nn.Softplus()
        return [(k, type(m).__name__) for k, m in c.named_children()], len(c), \
            [type(m).__name__ for m in c]
    assert edited(ember) == edited(torch)
