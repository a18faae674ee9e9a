"""A converted model's input quantize_per_tensor (scale and zero point as the 0-dim tensors
convert_fx stores), its output dequantize, and its pooling, flatten and quantized adds
answered without binding and dispatch (frontend/quantized.py fast_calls): the same
tensors as the full call and as torch, and
every other call (other layouts, dtypes, grad, a TorchFunctionMode) still takes the full
call."""
import numpy as np
import pytest
import torch

import ember
from ember.frontend import eager_fast


def _full(fn):
    """fn() with the fast answers off (the full call)."""
    saved = dict(eager_fast.SPECIAL_CALLS)
    eager_fast.SPECIAL_CALLS.clear()
    try:
        return fn()
    finally:
        eager_fast.SPECIAL_CALLS.update(saved)


def _same(a, b):
    assert type(a) is type(b) and a.dtype == b.dtype and a.shape == b.shape
    assert a.stride() == b.stride()
    if a.is_quantized:
        assert (a.q_scale(), a.q_zero_point()) == (b.q_scale(), b.q_zero_point())
        assert type(a.q_scale()) is type(b.q_scale())
        assert type(a.q_zero_point()) is type(b.q_zero_point())
        np.testing.assert_array_equal(a.int_repr().numpy(), b.int_repr().numpy())
    else:
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("qparams", ["tensors", "numbers"])
@pytest.mark.parametrize("dtype", ["quint8", "qint8"])
def test_quantize_and_dequantize_equal_full_call_and_torch(qparams, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 300)).astype(np.float32) * 3
    scale, zp = np.float32(0.0371), (57 if dtype == "quint8" else -3)
    if qparams == "tensors":
        e_args = (ember.tensor(scale), ember.tensor(np.int64(zp)))
    else:
        e_args = (float(scale), zp)
    e_dtype, t_dtype = getattr(ember, dtype), getattr(torch, dtype)
    ex = ember.tensor(x)
    for _ in range(3):          # the first calls and the repeated ones alike
        fast = ember.quantize_per_tensor(ex, *e_args, e_dtype)
        _same(fast, _full(lambda: ember.quantize_per_tensor(ex, *e_args, e_dtype)))
        _same(fast.dequantize(), _full(lambda: fast.dequantize()))
    t = torch.quantize_per_tensor(torch.from_numpy(x), float(scale), zp, t_dtype)
    np.testing.assert_array_equal(fast.int_repr().numpy(), t.int_repr().numpy())
    assert (fast.q_scale(), fast.q_zero_point()) == (t.q_scale(), t.q_zero_point())
    np.testing.assert_array_equal(fast.dequantize().numpy(), t.dequantize().numpy())


def test_other_calls_take_the_full_call():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 6)).astype(np.float32)
    calls = [lambda: ember.quantize_per_tensor(ember.tensor(x).t(), 0.05, 3, ember.quint8),
             lambda: ember.quantize_per_tensor(ember.tensor(x.astype(np.float64)), 0.05, 3,
                                               ember.quint8),
             lambda: ember.quantize_per_tensor(ember.tensor(x, requires_grad=True), 0.05, 3,
                                               ember.quint8),
             lambda: ember.quantize_per_tensor(ember.tensor(x), 0.05, 3, ember.qint32),
             lambda: ember.quantize_per_tensor(ember.tensor(x), 0.05, 3, ember.quint8)[:, 1:]
             .dequantize()]
    for call in calls:
        _same(call(), _full(call))
    with pytest.raises(ValueError, match="scale must be positive"):
        ember.quantize_per_tensor(ember.tensor(x), ember.tensor(np.float32(0)), 3,
                                  ember.quint8)


def test_a_torch_function_mode_still_sees_both_calls():
    seen = []

    class Log(ember.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            seen.append(func.__name__)
            return func(*args, **(kwargs or {}))
    x = ember.tensor(np.ones((4, 4), np.float32))
    scale, zp = ember.tensor(np.float32(0.1)), ember.tensor(np.int64(2))
    ember.quantize_per_tensor(x, scale, zp, ember.quint8).dequantize()     # seen before
    with Log():
        ember.quantize_per_tensor(x, scale, zp, ember.quint8).dequantize()
    assert "quantize_per_tensor" in seen and "dequantize" in seen


def test_converted_model_output_unchanged():
    """A converted MLP's output, with the fast calls and without (its input quantize and
    output dequantize are the calls answered)."""
    import ember.ao.quantization as eq
    import ember.ao.quantization.quantize_fx as eqfx
    rng = np.random.default_rng(2)
    ember.manual_seed(0)
    model = ember.nn.Sequential(ember.nn.Linear(32, 64), ember.nn.ReLU(),
                                ember.nn.Linear(64, 16)).eval()
    x = ember.tensor(rng.standard_normal((8, 32)).astype(np.float32))
    with ember.no_grad():
        prep = eqfx.prepare_fx(model, eq.get_default_qconfig_mapping("x86"), (x,))
        prep(x)
        q = eqfx.convert_fx(prep)
        for _ in range(3):
            _same(q(x), _full(lambda: q(x)))


@pytest.mark.parametrize("batch", [1, 5, 64])
def test_dynamic_linear_result_adopted_as_torch_lays_it_out(batch):
    """A dynamic Linear's float result (adopted directly, frontend/quantized.py
    _wrap_checked): torch's values, shape and strides; each call's result its own memory,
    writeable without touching the next call's."""
    rng = np.random.default_rng(batch)
    t_lin = torch.nn.Linear(48, 40)
    e_lin = ember.nn.Linear(48, 40)
    e_lin.load_state_dict({k: ember.tensor(v.detach().numpy())
                           for k, v in t_lin.state_dict().items()})
    t_q = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(t_lin), {torch.nn.Linear},
                                                 dtype=torch.qint8)
    e_q = ember.ao.quantization.quantize_dynamic(ember.nn.Sequential(e_lin), {ember.nn.Linear},
                                                 dtype=ember.qint8)
    x = rng.standard_normal((batch, 48)).astype(np.float32)
    with torch.no_grad(), ember.no_grad():
        t_out = t_q(torch.from_numpy(x))
        outs = [e_q(ember.tensor(x)) for _ in range(3)]
    for out in outs:
        assert tuple(out.shape) == tuple(t_out.shape) and out.stride() == t_out.stride()
        np.testing.assert_allclose(out.numpy(), t_out.numpy(), rtol=1e-5, atol=1e-5)
    before = outs[2].numpy().copy()
    outs[1].add_(1.0)
    np.testing.assert_array_equal(outs[2].numpy(), before)
    assert not np.shares_memory(outs[1].numpy(), outs[2].numpy())


def _channels_last_quint8(rng, shape, scale, zero_point):
    """A per-tensor quint8 value laid out as an int8 convolution's result (channels-last)
    and torch's twin of it."""
    x = rng.standard_normal(shape).astype(np.float32)
    t = torch.quantize_per_tensor(torch.from_numpy(x), scale, zero_point, torch.quint8)
    t = t.contiguous(memory_format=torch.channels_last)
    e = ember.quantize_per_tensor(ember.tensor(x), scale, zero_point, ember.quint8)
    e = e.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
    return e, t


def test_pooling_flatten_and_add_equal_full_call_and_torch():
    """The converted CNN's pooling, flatten and quantized add (fast_calls): the full
    call's tensors (layout and qparams included) and torch's integers."""
    rng = np.random.default_rng(1)
    F = ember.nn.functional
    e, t = _channels_last_quint8(rng, (2, 32, 9, 9), 0.05, 100)
    e2, t2 = _channels_last_quint8(rng, (2, 32, 9, 9), 0.07, 90)
    calls = [
        (lambda: F.max_pool2d(e, 3, 2, 1), lambda: torch.nn.functional.max_pool2d(t, 3, 2, 1)),
        (lambda: F.adaptive_avg_pool2d(e, (1, 1)),
         lambda: torch.nn.functional.adaptive_avg_pool2d(t, (1, 1))),
        (lambda: e.reshape(2, -1), lambda: t.reshape(2, -1)),
        (lambda: ember.flatten(e, 1), lambda: torch.flatten(t, 1)),
        (lambda: ember.quantized_add(e, e2, ember.tensor(np.float32(0.09)),
                                     ember.tensor(np.int64(80)), True),
         lambda: torch.ops.quantized.add_relu(t, t2, 0.09, 80)),
    ]
    for fast_call, torch_call in calls:
        for _ in range(2):
            fast = fast_call()
            _same(fast, _full(fast_call))
            np.testing.assert_array_equal(fast.int_repr().numpy(),
                                          torch_call().int_repr().numpy())
