"""torch.nn names real model code uses, against torch on the same weights: padding layers,
Conv padding_mode, lazy modules, weight/spectral normalization (hook API and
parametrizations), parametrize, init.dirac_/sparse_, gumbel_softmax,
AdaptiveLogSoftmaxWithLoss, CrossMapLRN2d, DataParallel, linear-BN fusion, grad-norm
helpers."""
import numpy as np
import pytest
import torch

import ember
import ember.nn as nn
import ember.nn.utils.parametrize as P
from ember.nn.utils import parametrizations


def _copy_weights(src, dst):
    dst.load_state_dict({k: ember.tensor(v.detach().numpy()) for k, v in src.state_dict().items()})


def _close(e, t, atol=1e-5):
    np.testing.assert_allclose(e.detach().numpy(), t.detach().numpy(), rtol=1e-4, atol=atol)


@pytest.mark.parametrize("name, args, rank", [
    ("ZeroPad2d", ((1, 2, 0, 3),), 4), ("ConstantPad1d", ((1, 2), -1.5), 3),
    ("ConstantPad3d", (1, 2.0), 5), ("ReflectionPad1d", (2,), 3), ("ReflectionPad2d", (2,), 4),
    ("ReplicationPad2d", ((1, 0, 2, 1),), 4), ("ReplicationPad3d", (1,), 5),
    ("CircularPad2d", (1,), 4), ("ZeroPad1d", (2,), 2),
])
def test_padding_layers_match_torch(name, args, rank, rng):
    x = rng.standard_normal((2, 3, 4, 5, 6)[:rank]).astype(np.float32)
    e, t = getattr(nn, name)(*args), getattr(torch.nn, name)(*args)
    _close(e(ember.tensor(x)), t(torch.tensor(x)))
    assert repr(e) == repr(t)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("dims, padding", [(1, 2), (2, (1, 2)), (2, "same"), (3, 1)])
def test_conv_padding_modes_match_torch(mode, dims, padding, rng):
    t = getattr(torch.nn, f"Conv{dims}d")(2, 3, 3, padding=padding, padding_mode=mode)
    e = getattr(nn, f"Conv{dims}d")(2, 3, 3, padding=padding, padding_mode=mode)
    _copy_weights(t, e)
    x = rng.standard_normal((1, 2) + (5,) * dims).astype(np.float32)
    _close(e(ember.tensor(x)), t(torch.tensor(x)))
    assert repr(e) == repr(t)


def test_transposed_conv_refuses_other_padding_modes():
    with pytest.raises(ValueError, match='Only "zeros" padding mode'):
        nn.ConvTranspose2d(2, 3, 3, padding_mode="reflect")


def test_lazy_modules_infer_sizes_and_load_torch_weights(rng):
    def build(m):
        return m.Sequential(m.LazyConv2d(4, 3), m.LazyBatchNorm2d(), m.ReLU(), m.Flatten(),
                            m.LazyLinear(5))
    t = build(torch.nn)
    t(torch.randn(2, 3, 8, 8))
    t.eval()
    e = build(nn)
    assert isinstance(e[0], nn.LazyConv2d)
    e.load_state_dict({k: ember.tensor(v.detach().numpy()) for k, v in t.state_dict().items()})
    assert type(e[0]) is nn.Conv2d and type(e[4]) is nn.Linear
    e.eval()
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    _close(e(ember.tensor(x)), t(torch.tensor(x)))
    fresh = build(nn)
    assert tuple(fresh(ember.tensor(x)).shape) == (2, 5)
    assert tuple(fresh[4].weight.shape) == (5, 144)


def test_hook_weight_norm_matches_torch(rng):
    t, e = torch.nn.Conv1d(3, 4, 3), nn.Conv1d(3, 4, 3)
    _copy_weights(t, e)
    torch.nn.utils.weight_norm(t)
    nn.utils.weight_norm(e)
    assert list(e.state_dict()) == list(t.state_dict())
    x = rng.standard_normal((2, 3, 8)).astype(np.float32)
    eo, to = e(ember.tensor(x)), t(torch.tensor(x))
    _close(eo, to)
    eo.sum().backward()
    to.sum().backward()
    _close(e.weight_g.grad, t.weight_g.grad)
    _close(e.weight_v.grad, t.weight_v.grad)
    nn.utils.remove_weight_norm(e)
    assert list(e.state_dict()) == ["bias", "weight"]


def test_hook_spectral_norm_matches_torch(rng):
    t, e = torch.nn.Linear(5, 4), nn.Linear(5, 4)
    torch.nn.utils.spectral_norm(t)
    nn.utils.spectral_norm(e)
    assert list(e.state_dict()) == list(t.state_dict())
    _copy_weights(t, e)
    x = rng.standard_normal((2, 5)).astype(np.float32)
    for mode in ("train", "train", "eval"):
        getattr(t, mode)()
        getattr(e, mode)()
        _close(e(ember.tensor(x)), t(torch.tensor(x)))


def test_parametrized_weight_and_spectral_norm_match_torch(rng):
    t, e = torch.nn.Conv2d(3, 4, 3), nn.Conv2d(3, 4, 3)
    _copy_weights(t, e)
    torch.nn.utils.parametrizations.weight_norm(t)
    parametrizations.weight_norm(e)
    assert type(e).__name__ == type(t).__name__ == "ParametrizedConv2d"
    assert list(e.state_dict()) == list(t.state_dict())
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    _close(e(ember.tensor(x)), t(torch.tensor(x)))
    ts, es = torch.nn.Linear(6, 5), nn.Linear(6, 5)
    torch.nn.utils.parametrizations.spectral_norm(ts)
    parametrizations.spectral_norm(es)
    assert list(es.state_dict()) == list(ts.state_dict())
    _copy_weights(ts, es)
    x = rng.standard_normal((3, 6)).astype(np.float32)
    for mode in ("train", "eval"):
        getattr(ts, mode)()
        getattr(es, mode)()
        _close(es(ember.tensor(x)), ts(torch.tensor(x)))


def test_register_parametrization_chain_cache_and_removal():
    class Symmetric(nn.Module):
        def forward(self, X):
            return X.triu() + X.triu(1).transpose(-1, -2)

    layer = nn.Linear(3, 3)
    P.register_parametrization(layer, "weight", Symmetric())
    w = layer.weight.detach().numpy()
    np.testing.assert_allclose(w, w.T)
    assert P.is_parametrized(layer, "weight") and P.type_before_parametrizations(layer) is nn.Linear
    with P.cached():
        assert layer.weight is layer.weight
    P.remove_parametrizations(layer, "weight")
    assert type(layer) is nn.Linear and list(layer.state_dict()) == ["bias", "weight"]  # torch too
    with pytest.raises(ValueError, match="does not have a parametrization"):
        P.remove_parametrizations(layer, "weight")


def test_dirac_and_sparse_init():
    e, t = ember.empty(6, 4, 3, 3), torch.empty(6, 4, 3, 3)
    nn.init.dirac_(e, 2)
    torch.nn.init.dirac_(t, 2)
    assert np.array_equal(e.numpy(), t.numpy())
    s = nn.init.sparse_(ember.empty(10, 5), 0.3)
    assert ((s.numpy() == 0).sum(0) == 3).all()


def test_gumbel_softmax_is_a_distribution_and_hard_is_one_hot():
    logits = ember.randn(4, 5, requires_grad=True)
    soft = nn.functional.gumbel_softmax(logits, tau=0.5)
    np.testing.assert_allclose(soft.sum(-1).detach().numpy(), 1, rtol=1e-5)
    hard = nn.functional.gumbel_softmax(logits, hard=True)
    assert set(np.unique(hard.detach().numpy())) <= {0.0, 1.0}
    (hard * ember.arange(5.0)).sum().backward()
    assert float(logits.grad.abs().sum()) > 0          # straight-through gradient


def test_adaptive_log_softmax_matches_torch(rng):
    t = torch.nn.AdaptiveLogSoftmaxWithLoss(16, 50, [10, 30], div_value=2.0)
    e = nn.AdaptiveLogSoftmaxWithLoss(16, 50, [10, 30], div_value=2.0)
    assert list(e.state_dict()) == list(t.state_dict())
    _copy_weights(t, e)
    x = rng.standard_normal((8, 16)).astype(np.float32)
    y = np.array([1, 12, 45, 3, 29, 31, 0, 49])
    xe, xt = ember.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    eo, to = e(xe, ember.tensor(y)), t(xt, torch.tensor(y))
    _close(eo.output, to.output)
    _close(eo.loss, to.loss)
    eo.loss.backward()
    to.loss.backward()
    _close(xe.grad, xt.grad)
    _close(e.log_prob(ember.tensor(x)), t.log_prob(torch.tensor(x)))
    assert e.predict(ember.tensor(x)).tolist() == t.predict(torch.tensor(x)).tolist()
    with pytest.raises(ValueError, match="Target values should be in"):
        e(ember.tensor(x), ember.tensor(np.full(8, 50)))


def test_cross_map_lrn_data_parallel_and_nll_loss_2d(rng):
    x = rng.standard_normal((2, 5, 4, 4)).astype(np.float32)
    _close(nn.CrossMapLRN2d(3)(ember.tensor(x)), torch.nn.CrossMapLRN2d(3)(torch.tensor(x)))
    dp = nn.DataParallel(nn.Linear(2, 3))
    assert list(dp.state_dict()) == ["module.weight", "module.bias"]
    assert tuple(dp(ember.ones(4, 2)).shape) == (4, 3)
    assert nn.parallel.DataParallel is nn.DataParallel
    assert issubclass(nn.NLLLoss2d, nn.NLLLoss)


def test_fuse_linear_bn_eval_matches_unfused(rng):
    linear, bn = nn.Linear(4, 3).eval(), nn.BatchNorm1d(3).eval()
    bn.running_mean.copy_(ember.tensor([0.5, -1.0, 2.0]))
    bn.running_var.copy_(ember.tensor([1.5, 0.5, 2.0]))
    fused = nn.utils.fuse_linear_bn_eval(linear, bn)
    x = ember.tensor(rng.standard_normal((5, 4)).astype(np.float32))
    _close(fused(x), bn(linear(x)))


def test_total_norm_helpers_match_clip_grad_norm():
    p = nn.Parameter(ember.ones(3))
    p.grad = ember.tensor([3.0, 4.0, 0.0])
    total = nn.utils.get_total_norm([p.grad])
    assert abs(float(total) - 5.0) < 1e-6
    nn.utils.clip_grads_with_norm_([p], 1.0, total)
    np.testing.assert_allclose(p.grad.numpy(), [0.6, 0.8, 0.0], rtol=1e-5)
