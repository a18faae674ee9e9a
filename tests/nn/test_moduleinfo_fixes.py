"""Behaviours the ModuleInfo suite (tests/nn/test_moduleinfo.py) found missing in ember.nn,
each checked directly against torch."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from nn_helpers import copy_weights

import ember


def _pair(x, requires_grad=False):
    return (torch.tensor(x, requires_grad=requires_grad),
            ember.tensor(x, requires_grad=requires_grad))


@pytest.mark.parametrize("name,args", [("BatchNorm1d", (4,)), ("BatchNorm2d", (4,)),
                                       ("InstanceNorm1d", (4,)), ("GroupNorm", (2, 4)),
                                       ("LazyBatchNorm1d", ()), ("LazyInstanceNorm2d", ())])
@pytest.mark.parametrize("affine", [True, False])
def test_norm_bias_keyword(name, args, affine):
    affine_kw = {} if name.startswith("Lazy") else {"affine": affine}
    t = getattr(torch.nn, name)(*args, bias=False, **affine_kw)
    e = getattr(ember.nn, name)(*args, bias=False, **affine_kw)
    assert repr(e) == repr(t)
    shape = (3, 4, 5, 5) if "2d" in name else (3, 4, 5)
    xt, xe = _pair(np.random.default_rng(0).standard_normal(shape).astype(np.float32))
    t(xt), e(xe)                                    # lazy ones materialize here
    assert repr(e) == repr(t)
    assert list(e.state_dict()) == list(t.state_dict())


def test_batch_norm_rejects_nonpositive_eps_in_training():
    x = ember.randn(4, 3)
    for eps in (0.0, -1.0):
        with pytest.raises(ValueError, match="eps must be positive"):
            ember.nn.BatchNorm1d(3, eps=eps)(x)
        with pytest.raises(ValueError, match="eps must be positive"):
            torch.nn.BatchNorm1d(3, eps=eps)(torch.randn(4, 3))


def test_module_list_repr_collapses_runs():
    def build(nn):
        layer = lambda: nn.Linear(2, 2)  # noqa: E731
        return nn.Sequential(nn.ModuleList([layer(), layer(), nn.ReLU(), layer()]),
                             nn.ModuleList([nn.Tanh()]), nn.ModuleList())
    assert repr(build(ember.nn)) == repr(build(torch.nn))


def test_transformer_encoder_repr():
    def build(nn):
        return nn.TransformerEncoder(nn.TransformerEncoderLayer(4, 2, 8), 3,
                                     enable_nested_tensor=False)
    assert repr(build(ember.nn)) == repr(build(torch.nn))


@pytest.mark.parametrize("name", ["LazyConv1d", "LazyConvTranspose2d", "LazyLinear"])
def test_lazy_repr_and_dtype_before_first_input(name):
    args = (5,) if name == "LazyLinear" else (5, 3)
    t, e = getattr(torch.nn, name)(*args), getattr(ember.nn, name)(*args)
    assert repr(e) == repr(t)
    t, e = t.double(), e.double()
    shape = {"LazyConv1d": (2, 4, 7), "LazyConvTranspose2d": (2, 4, 6, 6)}.get(name, (2, 4))
    xt, xe = _pair(np.random.default_rng(0).standard_normal(shape))
    assert e(xe).dtype == ember.float64 and t(xt).dtype == torch.float64
    assert e.weight.dtype == ember.float64


def test_rnn_repr_and_argument_errors():
    assert repr(ember.nn.RNN(2, 3, nonlinearity="relu")) == \
        repr(torch.nn.RNN(2, 3, nonlinearity="relu"))
    assert repr(ember.nn.RNNCell(2, 3, nonlinearity="relu")) == \
        repr(torch.nn.RNNCell(2, 3, nonlinearity="relu"))
    for kwargs, error in [({"bias": 1}, TypeError), ({"batch_first": "False"}, TypeError),
                          ({"input_size": 3.0}, TypeError), ({"input_size": 0}, ValueError)]:
        full = {"input_size": 3, "hidden_size": 5, **kwargs}
        for nn in (torch.nn, ember.nn):
            with pytest.raises(error):
                nn.LSTM(**full)


def test_rnn_input_dtype_mismatch_is_value_error():
    with pytest.raises(ValueError, match="does not match weight dtype"):
        torch.nn.GRU(3, 5)(torch.randn(2, 4, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="does not match weight dtype"):
        ember.nn.GRU(3, 5)(ember.randn(2, 4, 3, dtype=ember.float64))


@pytest.mark.parametrize("cell", ["RNNCell", "GRUCell", "LSTMCell"])
@pytest.mark.parametrize("shape,pattern", [((3, 21), "hidden0 has inconsistent hidden_size"),
                                           ((5, 20), "Input batch size 3 doesn't match")])
def test_rnn_cell_hidden_shape_errors(cell, shape, pattern):
    for lib in (torch, ember):
        hx = lib.randn(*shape)
        with pytest.raises(RuntimeError, match=pattern):
            getattr(lib.nn, cell)(10, 20)(lib.randn(3, 10), (hx, hx) if cell == "LSTMCell"
                                          else hx)


@pytest.mark.parametrize("cell", ["RNNCell", "GRUCell", "LSTMCell"])
def test_rnn_cell_rejects_3d_hidden(cell):
    h = (3, 1, 1, 20)
    for lib in (torch, ember):
        hx = lib.randn(*h)
        with pytest.raises(ValueError, match="to be 1D or 2D"):
            getattr(lib.nn, cell)(10, 20)(lib.randn(3, 10), (hx, hx) if cell == "LSTMCell"
                                          else hx)


@pytest.mark.parametrize("reduction", ["mean", "sum", "batchmean", "none"])
def test_kl_div_matches_torch_with_negative_and_zero_targets(reduction):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 5))
    tgt = rng.standard_normal((4, 5))
    tgt[0, :2] = 0.0
    xt, xe = _pair(x, True)
    lt = torch.nn.functional.kl_div(xt, torch.tensor(tgt), reduction=reduction)
    le = ember.nn.functional.kl_div(xe, ember.tensor(tgt), reduction=reduction)
    np.testing.assert_allclose(le.detach().numpy(), lt.detach().numpy(), equal_nan=True)
    cot = rng.standard_normal(lt.shape)
    lt.backward(torch.tensor(cot))
    le.backward(ember.tensor(cot))
    np.testing.assert_allclose(xe.grad.numpy(), xt.grad.numpy(), equal_nan=True)


@pytest.mark.parametrize("fn,kw", [("cross_entropy", {}), ("nll_loss", {}),
                                   ("cross_entropy", {"label_smoothing": 0.2})])
def test_loss_gradient_is_zero_when_every_target_is_ignored(fn, kw):
    xt, xe = _pair(np.random.default_rng(1).standard_normal((2, 3)), True)
    lt = getattr(torch.nn.functional, fn)(xt, torch.tensor([1, 1]), ignore_index=1, **kw)
    le = getattr(ember.nn.functional, fn)(xe, ember.tensor([1, 1]), ignore_index=1, **kw)
    assert np.isnan(le.item()) and np.isnan(lt.item())
    lt.backward(), le.backward()
    np.testing.assert_array_equal(np.abs(xe.grad.numpy()), np.abs(xt.grad.numpy()))


def test_cross_entropy_argument_errors_are_runtime_errors():
    for lib in (torch, ember):
        x = lib.randn(2, 3)
        with pytest.raises(RuntimeError, match="label_smoothing"):
            lib.nn.functional.cross_entropy(x, lib.tensor([0, 1]), label_smoothing=1.5)
        with pytest.raises(RuntimeError, match="ignore_index"):
            lib.nn.functional.cross_entropy(x, x.softmax(1), ignore_index=1)
        with pytest.raises(RuntimeError):
            lib.nn.functional.nll_loss(lib.randn(2, 3, dtype=lib.float64), lib.tensor([0, 1]),
                                       weight=lib.ones(3, dtype=lib.float32))


def test_gaussian_nll_loss_homoscedastic_broadcast():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    var = rng.uniform(0.5, 1.5, (1, 3))
    lt = torch.nn.functional.gaussian_nll_loss(torch.tensor(x), torch.tensor(y),
                                               torch.tensor(var))
    le = ember.nn.functional.gaussian_nll_loss(ember.tensor(x), ember.tensor(y),
                                               ember.tensor(var))
    np.testing.assert_allclose(le.item(), lt.item(), rtol=1e-12)


def test_huber_loss_rejects_complex_delta():
    for nn in (torch.nn, ember.nn):
        with pytest.raises(TypeError):
            nn.HuberLoss(delta=1.0 + 0.0j)


def test_fractional_max_pool3d_unbatched_takes_first_random_samples():
    rng = np.random.default_rng(3)
    x, samples = rng.standard_normal((4, 5, 5, 5)), rng.uniform(size=(2, 4, 3))
    t = torch.nn.FractionalMaxPool3d(2, output_ratio=0.5,
                                     _random_samples=torch.tensor(samples))(torch.tensor(x))
    e = ember.nn.FractionalMaxPool3d(2, output_ratio=0.5,
                                     _random_samples=ember.tensor(samples))(ember.tensor(x))
    np.testing.assert_array_equal(e.numpy(), t.numpy())


@pytest.mark.parametrize("kwargs", [{}, {"bias": True, "out_features": (2,)},
                                    {"reduction": "sum", "label_smoothing": 0.1}])
def test_linear_cross_entropy_loss_module(kwargs):
    t = torch.nn.LinearCrossEntropyLoss(6, 4, **kwargs).double()
    e = ember.nn.LinearCrossEntropyLoss(6, 4, **kwargs).double()
    assert repr(e) == repr(t)
    assert list(e.state_dict()) == list(t.state_dict())
    copy_weights(e, t)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 6))
    target = rng.integers(0, 4, (5,) + tuple(kwargs.get("out_features", ())))
    xt, xe = _pair(x, True)
    lt, le = t(xt, torch.tensor(target)), e(xe, ember.tensor(target))
    np.testing.assert_allclose(le.item(), lt.item(), rtol=1e-10)
    lt.backward(), le.backward()
    np.testing.assert_allclose(xe.grad.numpy(), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(e.linear.weight.grad.numpy(), t.linear.weight.grad.numpy(),
                               rtol=1e-10, atol=1e-12)


_MESSAGES = [   # (call on a library, PyTorch's wording that both must use)
    (lambda lib: lib.nn.MaxPool2d(2)(lib.randn(3, 4)),
     r"non-empty 3D or 4D \(batch mode\) tensor expected for input"),
    (lambda lib: lib.nn.CircularPad1d(1)(lib.randn(2, 3, 4, 5)),
     r"expected 2D or 3D input \(got 4D input\)"),
    (lambda lib: lib.nn.GroupNorm(3, 10), r"num_channels \(10\) must be divisible by "
                                          r"num_groups \(3\)"),
    (lambda lib: lib.nn.functional.cross_entropy(lib.randn(2, 3), lib.zeros(2, 3,
                                                                          dtype=lib.int64)),
     "Expected floating point type for target with class probabilities"),
    (lambda lib: lib.nn.functional.cross_entropy(lib.randn(2, 3), lib.randn(2)),
     "expected target dtype to be Long or Byte"),
    (lambda lib: lib.nn.functional.cross_entropy(lib.randn(2, 3), lib.tensor([0, 1, 2])),
     r"Expected input batch_size \(2\) to match target batch_size \(3\)"),
    (lambda lib: lib.nn.functional.cross_entropy(lib.randn(2, 3, 5),
                                                 lib.zeros(2, 4, dtype=lib.int64)),
     "Expected target size"),
    (lambda lib: lib.nn.Embedding(10, 3)(lib.randn(2)),
     "Expected tensor for argument.*indices.*to have.*scalar type.*Long.*Int"),
    (lambda lib: lib.nn.functional.linear_cross_entropy(lib.randn(4, 5), lib.randn(2, 3),
                                                        lib.tensor([0, 1, 0, 1])),
     r"expected equal input and linear_weight last dimensions \(in_features\), got 5 and 3"),
]


@pytest.mark.parametrize("call,pattern", _MESSAGES, ids=range(len(_MESSAGES)))
def test_error_messages_in_pytorchs_words(call, pattern):
    for lib in (torch, ember):
        with pytest.raises(Exception, match=pattern):
            call(lib)
