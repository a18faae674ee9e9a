"""ember.autocast: the region's state (nesting, decorator, dtype checks, the weight-cast
cache), gradients, a small model's bf16 training against torch's CPU autocast, and
autocast under ember.compile / compile_train_step (the graph records the casts; the
autocast state is part of the guard)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import ember
from tests.compat.porting import copy_state_dict


def test_disabled_autocast_is_a_plain_region():
    x = ember.ones(2, 2)
    with ember.autocast(device_type="cpu", enabled=False):
        assert not ember.is_autocast_enabled("cpu")
        assert (x @ x).dtype is ember.float32

    @ember.autocast("cpu", enabled=False)
    def double(t):
        return t * 2
    assert double(ember.ones(2)).tolist() == [2.0, 2.0]


def test_state_nesting_and_decorator():
    x = ember.ones(2, 2)
    assert ember.amp.get_autocast_dtype("cpu") is ember.bfloat16
    with ember.autocast("cpu"):
        assert ember.is_autocast_enabled("cpu") and not ember.is_autocast_enabled()
        assert (x @ x).dtype is ember.bfloat16
        with ember.autocast("cpu", enabled=False):
            assert (x @ x).dtype is ember.float32
        with ember.autocast("cpu", dtype=ember.float16):
            assert (x @ x).dtype is ember.float16
        assert (x @ x).dtype is ember.bfloat16
    assert not ember.is_autocast_enabled("cpu")
    assert (x @ x).dtype is ember.float32

    @ember.amp.autocast("cpu")
    def product(a):
        return a @ a
    assert product(x).dtype is ember.bfloat16
    assert (x @ x).dtype is ember.float32


def test_bad_arguments_match_torch():
    with pytest.raises(RuntimeError, match="unsupported device type 'tpu'"):
        ember.autocast("tpu", enabled=False)
    with pytest.raises(ValueError, match="Expected `device_type` of type `str`"):
        ember.autocast(ember.device("cpu"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        region = ember.autocast("cpu", dtype=ember.float32)
    assert not region._enabled
    assert "CPU Autocast only supports dtype of torch.bfloat16, torch.float16" in \
        str(caught[0].message)
    if not ember.cuda.is_available():
        with pytest.warns(UserWarning, match="CUDA is not available. Disabling autocast"):
            assert not ember.autocast("cuda")._enabled
        with pytest.warns(FutureWarning, match="torch.cuda.amp.autocast"):
            ember.cuda.amp.autocast()


def test_gradients_reach_float32_parameters_in_float32():
    rng = np.random.default_rng(0)
    x_np, w_np = rng.standard_normal((5, 4), np.float32), rng.standard_normal((3, 4), np.float32)
    grads = []
    for lib in (torch, ember):
        x, w = lib.tensor(x_np), lib.tensor(w_np, requires_grad=True)
        with lib.autocast("cpu"):
            y = lib.nn.functional.linear(x, w)
            loss = lib.nn.functional.mse_loss(y.relu(), lib.zeros(5, 3))
        assert str(y.dtype).endswith("bfloat16") and str(loss.dtype).endswith("float32")
        loss.backward()
        assert str(w.grad.dtype).endswith("float32")
        grads.append(np.asarray(w.grad.detach().float().numpy(), np.float64))
    np.testing.assert_allclose(grads[1], grads[0], rtol=2e-2, atol=2e-2)


def _weight_cast_node(out):
    """The ToCopy node that fed the weight (second operand) into `out`'s matmul."""
    return out.grad_fn.next_functions[1][0]


def test_parameter_casts_are_cached_inside_the_region():
    w = ember.nn.Parameter(ember.ones(3, 3))
    x = ember.ones(3, 3)
    with ember.autocast("cpu"):
        first, second = x @ w, x @ w
        assert _weight_cast_node(first) is _weight_cast_node(second)
        (first.sum() + second.sum()).backward()
    with ember.autocast("cpu"):              # the cache is cleared when the region exits
        assert _weight_cast_node(x @ w) is not _weight_cast_node(first)
    with ember.autocast("cpu", cache_enabled=False):
        assert _weight_cast_node(x @ w) is not _weight_cast_node(x @ w)
    assert w.grad.dtype is ember.float32 and w.grad.tolist()[0] == [6.0, 6.0, 6.0]


class _Net:
    """The same small conv net in both libraries: conv, batch norm, relu, pool, linear,
    log_softmax."""

    @staticmethod
    def build(lib):
        nn = lib.nn
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                             nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(8 * 4 * 4, 10), nn.LogSoftmax(dim=1))


def _train(lib, model, x, y, steps: int, compiled=None) -> list[float]:
    opt = lib.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(steps):
        if compiled is not None:
            with lib.autocast("cpu"):
                losses.append(float(compiled(x, y).item()))
            continue
        opt.zero_grad()
        with lib.autocast("cpu"):
            loss = lib.nn.functional.nll_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.item()))
    return losses


def _models_and_data():
    torch.manual_seed(0)
    t_model = _Net.build(torch)
    e_model = _Net.build(ember)
    copy_state_dict(t_model, e_model)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 3, 8, 8)).astype(np.float32)
    y = rng.integers(0, 10, 16)
    return t_model, e_model, x, y


def test_small_model_trains_as_torch_cpu_autocast():
    t_model, e_model, x, y = _models_and_data()
    want = _train(torch, t_model, torch.tensor(x), torch.tensor(y), 6)
    got = _train(ember, e_model, ember.tensor(x), ember.tensor(y), 6)
    # bf16 GEMMs round to 8 bits of mantissa; the trajectories stay within that
    np.testing.assert_allclose(got, want, rtol=3e-2, atol=3e-2)
    assert want[-1] < want[0] and got[-1] < got[0]
    for p in e_model.parameters():
        assert p.dtype is ember.float32


def test_compiled_step_records_casts_and_matches_eager_autocast():
    t_model, e_model, x, y = _models_and_data()
    want = _train(torch, t_model, torch.tensor(x), torch.tensor(y), 4)
    opt = ember.optim.SGD(e_model.parameters(), lr=0.05, momentum=0.9)
    step = ember.compile_train_step(e_model, ember.nn.functional.nll_loss, opt)
    got = _train(ember, e_model, ember.tensor(x), ember.tensor(y), 4, compiled=step)
    np.testing.assert_allclose(got, want, rtol=3e-2, atol=3e-2)
    dtypes = {getattr(n.meta.get("val"), "dtype", None) for n in step.graph.nodes}
    assert ember.bfloat16 in dtypes, "the traced step computes nothing in bfloat16"
    assert all(p.dtype is ember.float32 for p in e_model.parameters())


def test_compile_records_casts_and_guards_on_autocast():
    model = ember.nn.Sequential(ember.nn.Linear(4, 3), ember.nn.Softmax(dim=1))
    x = ember.randn(2, 4)
    fast = ember.compile(model)
    with ember.no_grad():
        with ember.autocast("cpu"):
            mixed = fast(x)
            with ember.autocast("cpu", enabled=False):
                plain_inside = fast(x)
            eager_mixed = model(x)
        plain = fast(x)
    assert mixed.dtype is ember.bfloat16          # softmax of bf16 stays bf16 on the CPU
    assert plain.dtype is ember.float32 and plain_inside.dtype is ember.float32
    np.testing.assert_allclose(mixed.float().numpy(), eager_mixed.float().numpy(), atol=1e-2)
    np.testing.assert_allclose(plain.numpy(), model(x).detach().numpy(), rtol=1e-5, atol=1e-6)
    assert len(fast.dispatcher.entries) == 2       # one plan per autocast state


def test_custom_fwd_casts_inputs_and_custom_bwd_restores_the_state():
    seen = {}

    class Square(ember.autograd.Function):
        @staticmethod
        @ember.amp.custom_fwd(device_type="cpu", cast_inputs=ember.float32)
        def forward(ctx, x):
            seen["forward"] = (x.dtype, ember.is_autocast_enabled("cpu"))
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        @ember.amp.custom_bwd(device_type="cpu")
        def backward(ctx, grad):
            seen["backward"] = ember.is_autocast_enabled("cpu")
            (x,) = ctx.saved_tensors
            return grad * 2 * x

    x = ember.ones(3, dtype=ember.bfloat16, requires_grad=True)
    with ember.autocast("cpu"):
        y = Square.apply(x)
    y.sum().backward()
    assert seen == {"forward": (ember.float32, False), "backward": True}
    assert y.dtype is ember.float32 and x.grad.tolist() == [2.0, 2.0, 2.0]


def test_top_level_state_functions_match_torch():
    x = ember.ones(2, 2)
    for lib in (torch, ember):
        assert lib.get_autocast_dtype("cpu") == lib.bfloat16
        assert lib.is_autocast_cache_enabled()
    ember.set_autocast_dtype("cpu", ember.float16)
    ember.set_autocast_enabled("cpu", True)
    try:
        assert ember.is_autocast_enabled("cpu") and (x @ x).dtype is ember.float16
    finally:
        ember.set_autocast_enabled("cpu", False)
        ember.set_autocast_dtype("cpu", ember.bfloat16)
    assert (x @ x).dtype is ember.float32
    ember.clear_autocast_cache()
