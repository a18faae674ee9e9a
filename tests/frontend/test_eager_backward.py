"""NumPy backwards of dispatch-bound rules (eager_backward.py): same gradients as the
composed rule and as PyTorch, and the composed rule wherever they must step aside."""
import numpy as np
import pytest
import torch

import ember
import ember.nn.functional as EF
from ember.frontend.autograd import engine
from ember.ir.registry import OPS

RNG = np.random.default_rng(7)


def _composed_only(monkeypatch):
    monkeypatch.setattr(engine, "ARRAY_BACKWARD", {})


def _counting(monkeypatch, name):
    """Wrap the array rule of op `name`; returns the list its calls append to."""
    op = OPS[name]
    calls = []
    rule = engine.ARRAY_BACKWARD[op]

    def counted(*args):
        out = rule(*args)
        calls.append(out is not None)
        return out
    monkeypatch.setitem(engine.ARRAY_BACKWARD, op, counted)
    return calls


def _grad(fn, x, *args, **kw):
    xe = ember.tensor(x, requires_grad=True)
    out = fn(xe, *args, **kw)
    out.backward(ember.ones_like(out))
    return xe.grad.numpy()


CLASS_CASES = [
    ((64, 10), (64,), {}),
    ((5, 4, 3), (5, 3), {"reduction": "sum"}),
    ((6, 4), (6,), {"ignore_index": 2}),
    ((6, 4), (6,), {"reduction": "none"}),
    ((4,), (), {}),
    ((3, 5, 2, 2), (3, 2, 2), {}),
]


@pytest.mark.parametrize("shape,tshape,kw", CLASS_CASES)
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_backward_matches_torch_and_composed(monkeypatch, shape, tshape, kw,
                                                           smoothing):
    x = RNG.standard_normal(shape).astype(np.float32)
    t = RNG.integers(0, shape[1] if len(shape) > 1 else shape[0], tshape)
    te = ember.tensor(t)
    calls = _counting(monkeypatch, "cross_entropy")
    fast = _grad(EF.cross_entropy, x, te, label_smoothing=smoothing, **kw)
    assert calls == [True]
    xt = torch.tensor(x, requires_grad=True)
    lt = torch.nn.functional.cross_entropy(xt, torch.tensor(t), label_smoothing=smoothing, **kw)
    lt.backward(torch.ones_like(lt))
    np.testing.assert_allclose(fast, xt.grad.numpy(), rtol=1e-5, atol=1e-7)
    _composed_only(monkeypatch)
    slow = _grad(EF.cross_entropy, x, te, label_smoothing=smoothing, **kw)
    np.testing.assert_allclose(fast, slow, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss_backward_matches_torch(monkeypatch, reduction):
    x = RNG.standard_normal((8, 5)).astype(np.float64)
    t = RNG.integers(0, 5, 8)
    t[3] = -100
    calls = _counting(monkeypatch, "nll_loss")
    fast = _grad(EF.nll_loss, x, ember.tensor(t), reduction=reduction)
    assert calls == [True]
    xt = torch.tensor(x, requires_grad=True)
    lt = torch.nn.functional.nll_loss(xt, torch.tensor(t), reduction=reduction)
    lt.backward(torch.ones_like(lt))
    np.testing.assert_allclose(fast, xt.grad.numpy(), rtol=1e-12)


def test_weighted_and_probability_targets_take_the_composed_rule(monkeypatch):
    x = RNG.standard_normal((6, 4)).astype(np.float32)
    t = ember.tensor(RNG.integers(0, 4, 6))
    w = ember.tensor(RNG.random(4).astype(np.float32) + 0.5)
    calls = _counting(monkeypatch, "cross_entropy")
    weighted = _grad(EF.cross_entropy, x, t, weight=w)
    probs = RNG.random((6, 4)).astype(np.float32)
    soft = _grad(EF.cross_entropy, x, ember.tensor(probs / probs.sum(1, keepdims=True)))
    assert calls == [False, False]
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.functional.cross_entropy(xt, torch.tensor(t.numpy()),
                                      weight=torch.tensor(w.numpy())).backward()
    np.testing.assert_allclose(weighted, xt.grad.numpy(), rtol=1e-5, atol=1e-7)
    xt.grad = None
    torch.nn.functional.cross_entropy(xt, torch.tensor(probs / probs.sum(1, keepdims=True))
                                      ).backward()
    np.testing.assert_allclose(soft, xt.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_create_graph_uses_the_composed_rule_and_double_backward_works(monkeypatch):
    x = RNG.standard_normal((5, 3)).astype(np.float64)
    t = RNG.integers(0, 3, 5)
    calls = _counting(monkeypatch, "cross_entropy")
    xe = ember.tensor(x, requires_grad=True)
    (g,) = ember.autograd.grad(EF.cross_entropy(xe, ember.tensor(t)), xe, create_graph=True)
    g.pow(2).sum().backward()
    assert calls == []
    xt = torch.tensor(x, requires_grad=True)
    (gt,) = torch.autograd.grad(torch.nn.functional.cross_entropy(xt, torch.tensor(t)), xt,
                                create_graph=True)
    gt.pow(2).sum().backward()
    np.testing.assert_allclose(g.detach().numpy(), gt.detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(xe.grad.numpy(), xt.grad.numpy(), rtol=1e-8)


def test_profiler_sees_the_composed_rule(monkeypatch):
    x = ember.randn(4, 3, requires_grad=True)
    t = ember.tensor([0, 1, 2, 0])
    calls = _counting(monkeypatch, "cross_entropy")
    with ember.profiler.profile() as prof:
        EF.cross_entropy(x, t).backward()
    assert calls == []
    assert "aten::exp" in {e.key for e in prof.key_averages()}     # the rule's own ops


def test_relu_backward_matches_torch_and_keeps_nan_gradients(monkeypatch):
    x = RNG.standard_normal((7, 9)).astype(np.float32)
    x[0, 0], x[1, 1], x[2, 2], x[3, 3] = 0.0, -1.0, 2.0, np.nan
    g = RNG.standard_normal((7, 9)).astype(np.float32)
    g[1, 1] = g[2, 2] = np.nan             # dropped where the input is <= 0, else kept
    calls = _counting(monkeypatch, "relu")
    xe = ember.tensor(x, requires_grad=True)
    EF.relu(xe).backward(ember.tensor(g))
    assert calls == [True]
    xt = torch.tensor(x, requires_grad=True)
    torch.relu(xt).backward(torch.tensor(g))
    np.testing.assert_array_equal(xe.grad.numpy(), xt.grad.numpy())
    assert xe.grad.dtype == ember.float32


def test_hooks_see_the_array_rule_gradients(monkeypatch):
    x = ember.randn(4, 3, requires_grad=True)
    seen = []
    y = EF.relu(x)
    y.register_hook(lambda g: seen.append(g.numpy().copy()) or g * 2)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), 2.0 * (x.detach().numpy() > 0))
    assert len(seen) == 1


POOLS = [((2, 3, 9, 9), dict(kernel_size=3, stride=2, padding=1)),
         ((1, 2, 7, 8), dict(kernel_size=[3, 2], stride=[2, 1], padding=[1, 0],
                             dilation=[1, 2], ceil_mode=True)),
         ((3, 6, 5), dict(kernel_size=2, stride=1)),
         ((2, 2, 6, 6), dict(kernel_size=2, stride=2, ceil_mode=True))]


@pytest.mark.parametrize("shape,kw", POOLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool2d_backward_matches_composed_rule_and_torch(monkeypatch, shape, kw, dtype):
    x = RNG.standard_normal(shape).astype(dtype)
    x.reshape(-1)[::7] = 0.5                            # ties inside windows
    g_shape = torch.nn.functional.max_pool2d(torch.tensor(x), **kw).shape
    g = RNG.standard_normal(g_shape).astype(dtype)
    calls = _counting(monkeypatch, "max_pool2d")
    xe = ember.tensor(x, requires_grad=True)
    ember.ir.registry.OPS["max_pool2d"](xe, *_pool_args(kw)).backward(ember.tensor(g))
    assert calls == [True]
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.functional.max_pool2d(xt, **kw).backward(torch.tensor(g))
    np.testing.assert_allclose(xe.grad.numpy(), xt.grad.numpy(), rtol=1e-6)
    if dtype == np.float32:
        # the generated kernel adds float32 gradients in output order, as PyTorch's
        # CPU kernel does: the same bits; the composed rule sums in float64
        np.testing.assert_array_equal(xe.grad.numpy(), xt.grad.numpy())
    _composed_only(monkeypatch)
    xs = ember.tensor(x, requires_grad=True)
    ember.ir.registry.OPS["max_pool2d"](xs, *_pool_args(kw)).backward(ember.tensor(g))
    if dtype == np.float32:
        np.testing.assert_allclose(xe.grad.numpy(), xs.grad.numpy(), rtol=1e-6, atol=1e-7)
    else:
        np.testing.assert_array_equal(xe.grad.numpy(), xs.grad.numpy())


def _pool_args(kw):
    pair = lambda v: list(v) if isinstance(v, list) else [v, v]    # noqa: E731
    return (pair(kw["kernel_size"]), pair(kw.get("stride", kw["kernel_size"])),
            pair(kw.get("padding", 0)), pair(kw.get("dilation", 1)), kw.get("ceil_mode", False))


def test_max_pool2d_backward_with_nan_windows_matches_composed_rule(monkeypatch):
    x = RNG.standard_normal((2, 2, 7, 7)).astype(np.float32)
    x[0, 0, 1, 1] = x[1, 1, 3, 2] = x[1, 1, 3, 4] = np.nan
    g = RNG.standard_normal((2, 2, 4, 4)).astype(np.float32)
    args = ([3, 3], [2, 2], [1, 1], [1, 1], False)
    calls = _counting(monkeypatch, "max_pool2d")
    xe = ember.tensor(x, requires_grad=True)
    ember.ir.registry.OPS["max_pool2d"](xe, *args).backward(ember.tensor(g))
    assert calls == [True]
    _composed_only(monkeypatch)
    xs = ember.tensor(x, requires_grad=True)
    ember.ir.registry.OPS["max_pool2d"](xs, *args).backward(ember.tensor(g))
    # the same winners (first NaN, else first maximum); float32 sums against float64 ones
    np.testing.assert_array_equal(xe.grad.numpy() != 0, xs.grad.numpy() != 0)
    np.testing.assert_allclose(xe.grad.numpy(), xs.grad.numpy(), rtol=1e-6, atol=1e-7)


def test_max_pool2d_channels_last_input_takes_the_composed_rule(monkeypatch):
    x = ember.randn(2, 3, 6, 6).contiguous(memory_format=ember.channels_last)
    x.requires_grad_(True)
    calls = _counting(monkeypatch, "max_pool2d")
    EF.max_pool2d(x, 3, 2, 1).sum().backward()
    assert calls == [False]
    assert x.grad.is_contiguous(memory_format=ember.channels_last)


def test_inplace_relu_without_a_snapshot_copy_matches_torch():
    """relu_ keeps no copy of the old values (its derivative reads only the result):
    gradients through ReLU(inplace=True) chains and NaN equal torch's."""
    x = RNG.standard_normal((2, 3, 5, 5)).astype(np.float32)
    x[0, 0, 0, :2] = (np.nan, 0.0)
    w = RNG.standard_normal((3, 3, 3, 3)).astype(np.float32)

    def run(lib, F, x, w):
        x = lib.tensor(x, requires_grad=True)
        w = lib.tensor(w, requires_grad=True)
        y = F.conv2d(x * 2, w, padding=1)
        y.relu_()
        z = F.relu(y * 3, inplace=True)
        z = z + 1
        (z * z).sum().backward()
        return y.detach().numpy(), x.grad.numpy(), w.grad.numpy()

    got = run(ember, EF, x, w)
    expected = run(torch, torch.nn.functional, x, w)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_inplace_relu_without_a_graph_writes_the_target_array():
    x = RNG.standard_normal((4, 6)).astype(np.float32)
    x[0, :3] = (np.nan, -0.0, 0.0)
    xe = ember.tensor(x)
    view = xe[:, ::2]
    version = xe._version
    with ember.no_grad():
        out = view.relu_()
    assert out is view and xe._version > version
    expected = torch.tensor(x)
    expected[:, ::2].relu_()
    np.testing.assert_array_equal(xe.numpy(), expected.numpy())
    np.testing.assert_array_equal(np.signbit(xe.numpy()), np.signbit(expected.numpy()))


def test_inplace_binary_ops_without_a_graph_equal_the_functional_ops():
    """add_/sub_/mul_ without a graph write the target's array with the reference's ufunc
    (same bits); other dtypes, alpha != 1 and grad recording keep the functional path."""
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    other = RNG.standard_normal(4).astype(np.float32)
    cases = [("add_", (ember.tensor(other),), {}), ("add_", (2.5,), {}),
             ("sub_", (ember.tensor(other),), {"alpha": 3}), ("mul_", (ember.tensor(other),), {}),
             ("add_", (ember.tensor(other.astype(np.float64)),), {}), ("mul_", (7,), {})]
    for name, args, kwargs in cases:
        target = ember.tensor(x)
        expected = getattr(torch.tensor(x), name)(
            *[torch.tensor(a.numpy()) if isinstance(a, ember.Tensor) else a for a in args],
            **kwargs)
        functional = getattr(ember.tensor(x), name[:-1])(*args, **kwargs)
        with ember.no_grad():
            out = getattr(target, name)(*args, **kwargs)
        assert out is target and target.dtype == ember.float32
        np.testing.assert_array_equal(target.numpy(), functional.numpy().astype(np.float32))
        np.testing.assert_allclose(target.numpy(), expected.numpy(), rtol=1e-6, atol=1e-6)


def test_eval_batch_norm_without_a_graph_equals_torch():
    bn_e, bn_t = ember.nn.BatchNorm2d(5).eval(), torch.nn.BatchNorm2d(5).eval()
    stats = RNG.standard_normal((4, 5)).astype(np.float32)
    for m in (bn_e, bn_t):
        lib = ember if m is bn_e else torch
        with lib.no_grad():
            m.running_mean.copy_(lib.tensor(stats[0]))
            m.running_var.copy_(lib.tensor(np.abs(stats[1]) + 0.5))
            m.weight.copy_(lib.tensor(stats[2]))
            m.bias.copy_(lib.tensor(stats[3]))
    x = RNG.standard_normal((2, 5, 3, 3)).astype(np.float32)
    with ember.no_grad():
        got = bn_e(ember.tensor(x)).numpy()
    np.testing.assert_allclose(got, bn_t(torch.tensor(x)).detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    xe = ember.tensor(x, requires_grad=True)          # with a graph: gradients as before
    bn_e(xe).sum().backward()
    xt = torch.tensor(x, requires_grad=True)
    bn_t(xt).sum().backward()
    np.testing.assert_allclose(xe.grad.numpy(), xt.grad.numpy(), rtol=1e-5, atol=1e-6)
