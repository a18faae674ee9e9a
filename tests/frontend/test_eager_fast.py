"""Eager dispatch's plan cache and generated eager kernels (issue 22).

Every generated kernel is compared directly with the op's NumPy reference (not only
through the measured choice, which may pick NumPy), and the plan cache is checked
to change nothing observable: values, promotion, layouts, errors with the user's
line, data-dependent shapes.
"""
from __future__ import annotations

import numpy as np
import pytest

import ember
from ember.frontend import eager, eager_kernels
from ember.ir.registry import get_op

CONV_CASES = [  # x shape, w shape, stride, padding, dilation
    ((2, 8, 9, 9), (16, 8, 3, 3), 1, 1, 1),
    ((2, 8, 10, 9), (12, 8, 3, 3), 2, 1, 1),
    ((1, 6, 11, 10), (8, 6, 3, 2), 2, 2, 2),
    ((2, 3, 15, 15), (8, 3, 7, 7), 2, 3, 1),
    ((2, 8, 8, 8), (16, 8, 1, 1), 2, 0, 1),
    ((1, 4, 9, 9), (4, 4, 3, 3), 3, 0, 1),
    # strided backward by phases: rows the forward never reads, padding beyond the
    # kernel's reach, phases no tap reaches, unequal strides and paddings
    ((2, 8, 10, 10), (12, 8, 3, 3), 2, 0, 1),
    ((1, 5, 13, 12), (7, 5, 5, 5), 3, 2, 1),
    ((2, 4, 9, 8), (6, 4, 2, 2), 2, 0, 1),
    ((1, 4, 7, 7), (6, 4, 3, 3), 2, 3, 1),
    ((1, 4, 5, 5), (3, 4, 1, 1), 3, 1, 1),
    ((2, 6, 11, 9), (5, 6, 3, 4), (2, 3), (1, 2), 1),
    ((1, 3, 8, 8), (4, 3, 5, 5), 4, 1, 1),
]


def _pair(v):
    return list(v) if isinstance(v, tuple) else [v] * 2


def _direct(op_name, args):
    """The candidate kernel's result and the reference's, for the same call."""
    op = get_op(op_name)
    meta = op.meta(*args)
    kernel = eager_kernels.candidate(op, args, meta)
    assert kernel is not None, f"{op_name}: no generated kernel for {args}"
    plan = eager._Plan(False, meta, None)
    expected = op.reference(*eager._reference_args(op, args, plan.compute_dtype))
    return kernel(args), expected, meta


def _close(got, expected, meta):
    assert got.shape == tuple(meta.shape)
    assert got.dtype == expected.dtype
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * scale)


@pytest.fixture
def small_work(monkeypatch):
    monkeypatch.setattr(eager_kernels, "_MIN_WORK", 0)     # small shapes still get kernels


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_kernels_equal_the_reference(case, rng, small_work):
    xs, ws, stride, pad, dil = case
    x = ember.tensor(rng.standard_normal(xs).astype(np.float32))
    w = ember.tensor(rng.standard_normal(ws).astype(np.float32))
    b = ember.tensor(rng.standard_normal(ws[0]).astype(np.float32))
    conv_args = (x, w, b, _pair(stride), _pair(pad), _pair(dil), 1)
    got, expected, meta = _direct("conv2d", conv_args)
    _close(got, expected, meta)
    g = ember.tensor(rng.standard_normal(meta.shape).astype(np.float32))
    common = (_pair(stride), _pair(pad), _pair(dil), False, [0, 0], 1)
    _close(*_direct("convolution_backward_input", (g, w, list(xs)) + common))
    _close(*_direct("convolution_backward_weight", (g, x, list(ws)) + common))


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_backward_kernels_equal_torch(case, rng, small_work):
    """Both gradient kernels (phases for strided convolutions) against torch's."""
    import torch
    xs, ws, stride, pad, dil = case
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, wt, None, _pair(stride), _pair(pad), _pair(dil))
    g = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
    yt.backward(torch.from_numpy(g))
    common = (_pair(stride), _pair(pad), _pair(dil), False, [0, 0], 1)
    ge, we, xe = ember.tensor(g), ember.tensor(w), ember.tensor(x)
    gi, _, _ = _direct("convolution_backward_input", (ge, we, list(xs)) + common)
    gw, _, _ = _direct("convolution_backward_weight", (ge, xe, list(ws)) + common)
    np.testing.assert_allclose(gi, xt.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gw, wt.grad.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("groups,stride", [(2, 1), (4, 2), (8, 2)])   # 8: depthwise
def test_grouped_conv_gradients_keep_the_reference_and_equal_torch(groups, stride, rng,
                                                                   small_work):
    import torch
    x = rng.standard_normal((2, 8, 9, 9)).astype(np.float32)
    w = rng.standard_normal((8, 8 // groups, 3, 3)).astype(np.float32)
    args = (ember.tensor(x), ember.tensor(w), None, [stride] * 2, [1, 1], [1, 1], groups)
    op = get_op("conv2d")
    assert eager_kernels.candidate(op, args, op.meta(*args)) is None
    xe, we = ember.tensor(x, requires_grad=True), ember.tensor(w, requires_grad=True)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    ye = ember.nn.functional.conv2d(xe, we, stride=stride, padding=1, groups=groups)
    yt = torch.nn.functional.conv2d(xt, wt, stride=stride, padding=1, groups=groups)
    g = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
    ye.backward(ember.tensor(g))
    yt.backward(torch.from_numpy(g))
    np.testing.assert_allclose(ye.detach().numpy(), yt.detach().numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(xe.grad.numpy(), xt.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(we.grad.numpy(), wt.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_conv_kernels_take_channels_last_and_strided_inputs(rng, small_work):
    x = ember.tensor(rng.standard_normal((2, 8, 9, 9)).astype(np.float32))
    x = x.contiguous(memory_format=ember.channels_last)
    w = ember.tensor(rng.standard_normal((16, 8, 3, 3)).astype(np.float32))
    got, expected, meta = _direct("conv2d", (x, w, None, [1, 1], [1, 1], [1, 1], 1))
    _close(got, expected, meta)
    wide = ember.tensor(rng.standard_normal((2, 8, 9, 18)).astype(np.float32))
    got, expected, meta = _direct("conv2d", (wide[..., ::2], w, None, [1, 1], [0, 0],
                                             [1, 1], 1))
    _close(got, expected, meta)


@pytest.mark.parametrize("op_name, shapes", [
    ("linear", [(5, 7, 16), (9, 16), (9,)]),
    ("linear", [(6, 16), (9, 16), None]),
    ("mm", [(6, 16), (16, 5)]),
    ("matmul", [(3, 6, 16), (16, 5)]),
    ("bmm", [(3, 6, 16), (3, 16, 5)]),
    ("matmul", [(4, 6, 16), (4, 16, 5)]),
])
def test_gemm_kernels_equal_the_reference(op_name, shapes, rng, small_work):
    args = tuple(None if s is None else ember.tensor(rng.standard_normal(s).astype(np.float32))
                 for s in shapes)
    _close(*_direct(op_name, args))


def test_batched_matmul_kernel_on_attention_views(rng, small_work):
    """q @ k^T with heads split out of a [tokens, batch*heads, dim] projection: strided views."""
    q = ember.tensor(rng.standard_normal((6, 4, 8)).astype(np.float32)).transpose(0, 1)
    k = ember.tensor(rng.standard_normal((6, 4, 8)).astype(np.float32)).transpose(0, 1)
    _close(*_direct("matmul", (q, k.transpose(-2, -1))))
    _close(*_direct("matmul", (q @ k.transpose(-2, -1), k)))


@pytest.mark.parametrize("shape, k", [((2, 3, 8, 8), 2), ((1, 2, 7, 9), 3), ((2, 2, 6, 6), 2)])
def test_tiled_max_pool_equals_the_reference(shape, k, rng, small_work):
    x = rng.standard_normal(shape).astype(np.float32)
    x[0, 0, :2, :2] = 1.0                                  # a tie inside one window
    x[-1, -1, 0, 1] = np.nan
    x[0, 1, 0, 0] = np.nan                                 # a NaN first in its window
    x[-1, 0, 1, 0] = x[-1, 0, 1, 1] = np.nan               # two NaNs in one window
    x[0, -1, 2:4, 2:4] = -np.inf                           # a window of -inf only
    t = ember.tensor(x)
    if shape[-1] == 6:
        t = t.contiguous(memory_format=ember.channels_last)
    for name in ("max_pool2d", "max_pool2d_with_indices"):
        got, expected, meta = _direct(name, (t, [k, k], [], [0, 0], [1, 1], False))
        pairs = zip(got, expected) if isinstance(got, tuple) else [(got, expected)]
        for g, e in pairs:
            np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("k, s, pad, dil, ceil", [(3, 2, 1, 1, False), (3, 2, 1, 1, True),
                                                   (2, 1, 0, 2, False), (3, 3, 1, 1, True)])
def test_overlapping_max_pool_values_equal_the_reference(k, s, pad, dil, ceil, rng,
                                                         small_work):
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    x[1, 2, 4, 4] = np.nan
    t = ember.tensor(x)
    got, expected, meta = _direct("max_pool2d", (t, [k, k], [s, s], [pad, pad], [dil, dil],
                                                 ceil))
    np.testing.assert_array_equal(got, expected)


def test_addmm_kernel_with_beta(rng, small_work):
    bias, a, b = (ember.tensor(rng.standard_normal(s).astype(np.float32))
                  for s in ((6, 5), (6, 16), (16, 5)))
    _close(*_direct("addmm", (bias, a, b, 0.5, 1)))


def test_measured_choice_is_recorded_and_eager_matches_torch(rng, small_work):
    import torch
    x = rng.standard_normal((2, 4, 8, 8)).astype(np.float32)
    w = rng.standard_normal((6, 4, 3, 3)).astype(np.float32)
    xe, we = ember.tensor(x, requires_grad=True), ember.tensor(w, requires_grad=True)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    for _ in range(2):                    # the first call measures, the second reuses
        ye = ember.nn.functional.conv2d(xe, we, padding=1)
        yt = torch.nn.functional.conv2d(xt, wt, padding=1)
        np.testing.assert_allclose(ye.detach().numpy(), yt.detach().numpy(), rtol=1e-4,
                                   atol=1e-4)
    ye.sum().backward()
    yt.sum().backward()
    np.testing.assert_allclose(xe.grad.numpy(), xt.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(we.grad.numpy(), wt.grad.numpy(), rtol=1e-4, atol=1e-4)
    rows = {row["op"]: row for row in eager_kernels.choices()}
    for name in ("conv2d", "convolution_backward_input", "convolution_backward_weight"):
        assert "kernel_ms" in rows[name] and rows[name]["why"] == "", rows[name]


@pytest.mark.parametrize("deterministic", [False, True])
def test_deterministic_mode_keeps_an_agreeing_kernel_without_timing(deterministic, rng,
                                                                     monkeypatch):
    """Timed as 10x slower than NumPy, the kernel loses the race; in deterministic mode the
    race does not decide (results must not depend on the machine's load)."""
    op = get_op("mm")
    a = ember.tensor(rng.standard_normal((64, 64)).astype(np.float32))
    b = ember.tensor(rng.standard_normal((64, 64)).astype(np.float32))
    reference = lambda: op.reference(a.numpy(), b.numpy())      # noqa: E731
    real_race = eager_kernels._race

    def slow_kernel_race(kernel_call, ref):
        expected, got, _, _ = real_race(kernel_call, ref)
        return expected, got, 1.0, 10.0
    monkeypatch.setattr(eager_kernels, "_race", slow_kernel_race)
    monkeypatch.setattr(eager_kernels, "_MIN_WORK", 0)
    kernel = eager_kernels.candidate(op, (a, b), op.meta(a, b))
    previous = ember.are_deterministic_algorithms_enabled()
    ember.use_deterministic_algorithms(deterministic)
    try:
        result, kept = eager_kernels.choose(op, (a, b), kernel, reference)
    finally:
        ember.use_deterministic_algorithms(previous)
    assert (kept is kernel) is deterministic
    np.testing.assert_allclose(result, reference(), rtol=1e-4, atol=1e-4)


# --- the plan cache ------------------------------------------------------------------------

def test_cached_plans_keep_promotion_and_scalar_values():
    a = ember.arange(4, dtype=ember.int32)
    for _ in range(2):
        assert (a * 2).dtype == ember.int32
        assert (a * 2.5).dtype == ember.float32
        assert (a * 2.5).tolist() == [0.0, 2.5, 5.0, 7.5]
        assert (a * 3.5).tolist() == [0.0, 3.5, 7.0, 10.5]     # same plan, new value
        assert ember.add(a, a, alpha=3).tolist() == [0, 4, 8, 12]
        assert ember.add(a, a, alpha=2).tolist() == [0, 3, 6, 9]


def test_default_dtype_is_part_of_the_plan():
    a = ember.arange(3)
    before = ember.get_default_dtype()
    try:
        assert (a / 2).dtype == ember.float32
        ember.set_default_dtype(ember.float64)
        assert (a / 2).dtype == ember.float64
    finally:
        ember.set_default_dtype(before)


def test_value_dependent_meta_is_never_cached():
    x = ember.arange(6.0)
    assert x[x > 2].tolist() == [3.0, 4.0, 5.0]
    assert x[x > 4].tolist() == [5.0]            # same metadata, different shape


def test_errors_still_raise_with_the_user_line_after_a_cached_success():
    a, b = ember.ones(2, 3), ember.ones(3, 2)
    _ = a + a
    with pytest.raises(Exception) as info:
        _ = a + b                                                  # the failing line
    assert "add" in str(info.value) and "test_eager_fast.py" in str(info.value)
    with pytest.raises(Exception):
        _ = a + b                                     # errors are never cached


def test_results_have_pytorch_strides_and_own_their_storage():
    x = ember.randn(2, 3, 4, 5).contiguous(memory_format=ember.channels_last)
    for _ in range(2):
        y = x + 1
        assert y.stride() == x.stride()
        z = ember.ones(1, 4) + ember.ones(3, 1)
        assert z.stride() == (4, 1) and z.storage_offset() == 0
    v = ember.arange(6.0).view(2, 3)
    w = v.t()
    w.add_(1)                                       # a view's write reaches its base
    assert v.tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]


# --- in-place optimizer updates ------------------------------------------------------------

def _optimizer_run(opt_cls, kwargs, fast: bool, monkeypatch):
    from ember.frontend.optim import inplace_cpu
    monkeypatch.setattr(inplace_cpu, "applies", inplace_cpu.applies if fast else
                        (lambda *a: False))
    rng = np.random.default_rng(3)
    p = ember.tensor(rng.standard_normal((5, 4)).astype(np.float32), requires_grad=True)
    opt = opt_cls([p], **kwargs)
    for _ in range(3):
        p.grad = ember.tensor(rng.standard_normal((5, 4)).astype(np.float32))
        opt.step()
    return p.detach().numpy().copy(), opt.state_dict()["state"].get(0, {})


@pytest.mark.parametrize("opt_name, kwargs", [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, momentum=0.5, dampening=0.1, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, weight_decay=0.1, amsgrad=True, betas=(0.6, 0.9))),
    ("AdamW", dict(lr=0.01, maximize=True)),
])
def test_inplace_optimizer_steps_are_bit_identical(opt_name, kwargs, monkeypatch):
    opt_cls = getattr(ember.optim, opt_name)
    fast, fast_state = _optimizer_run(opt_cls, kwargs, True, monkeypatch)
    slow, slow_state = _optimizer_run(opt_cls, kwargs, False, monkeypatch)
    np.testing.assert_array_equal(fast, slow)
    assert fast_state.keys() == slow_state.keys()
    for key in fast_state:
        np.testing.assert_array_equal(np.asarray(fast_state[key].numpy()),
                                      np.asarray(slow_state[key].numpy()))


def test_conv_skips_the_input_gradient_nobody_needs(monkeypatch):
    op = get_op("convolution_backward_input")
    calls = []
    reference = op.reference
    monkeypatch.setattr(op, "reference", lambda *a: calls.append(1) or reference(*a))
    x = ember.randn(2, 3, 6, 6)
    w = ember.randn(4, 3, 3, 3, requires_grad=True)
    ember.nn.functional.conv2d(x, w, padding=1).sum().backward()
    assert w.grad is not None and calls == []
    x.requires_grad_()
    ember.nn.functional.conv2d(x, w, padding=1).sum().backward()
    assert x.grad is not None and calls == [1]
