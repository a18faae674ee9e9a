"""Quantized Linear/Conv2d modules skip dispatch on calls seen before (frontend/quantized.py
run_checked): the same results as the op's full path and as torch.ao's modules, and
every error, mode and change of state still seen."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.ao.nn.quantized as tnnq

import ember
import ember.ao.nn.quantized as ennq
from ember.ir.ops.quantized import quantized_conv2d, quantized_linear

pytestmark = pytest.mark.filterwarnings("ignore:.*quantized tensor creation")
torch.backends.quantized.engine = "x86"


def _pair(rng, shape, scale=0.05, zp=3):
    x = rng.standard_normal(shape).astype(np.float32)
    return (ember.quantize_per_tensor(ember.tensor(x), scale, zp, ember.quint8),
            torch.quantize_per_tensor(torch.from_numpy(x), scale, zp, torch.quint8))


def _linear_twins(rng, n_in, n_out):
    w = (rng.standard_normal((n_out, n_in)) * 0.1).astype(np.float32)
    b = rng.standard_normal(n_out).astype(np.float32)
    s = float(np.abs(w).max() / 127)
    e = ennq.Linear(n_in, n_out)
    e.set_weight_bias(ember.quantize_per_tensor(ember.tensor(w), s, 0, ember.qint8),
                      ember.tensor(b))
    t = tnnq.Linear(n_in, n_out)
    t.set_weight_bias(torch.quantize_per_tensor(torch.from_numpy(w), s, 0, torch.qint8),
                      torch.from_numpy(b))
    for m in (e, t):
        m.scale, m.zero_point = 0.08, 64
    return e, t


def test_repeated_linear_calls_equal_the_full_path_and_torch():
    rng = np.random.default_rng(0)
    e, t = _linear_twins(rng, 32, 10)
    for batch in (4, 4, 7, 4):          # seen, new and seen-again geometries
        ex, tx = _pair(rng, (batch, 32))
        got = e(ex)
        full = quantized_linear(ex, e._packed_weight, e._bias, e.scale, e.zero_point)
        np.testing.assert_array_equal(got.int_repr().numpy(), full.int_repr().numpy())
        assert (got.q_scale(), got.q_zero_point()) == (0.08, 64)
        want = t(tx).int_repr().numpy().astype(int)
        assert np.abs(got.int_repr().numpy().astype(int) - want).max() <= 1


def test_changed_output_qparams_and_weights_are_used():
    rng = np.random.default_rng(1)
    e, _ = _linear_twins(rng, 16, 8)
    ex, _ = _pair(rng, (3, 16))
    first = e(ex)
    e.scale, e.zero_point = 0.2, 10
    second = e(ex)
    assert (second.q_scale(), second.q_zero_point()) == (0.2, 10)
    full = quantized_linear(ex, e._packed_weight, e._bias, 0.2, 10)
    np.testing.assert_array_equal(second.int_repr().numpy(), full.int_repr().numpy())
    assert not np.array_equal(first.int_repr().numpy(), second.int_repr().numpy())
    w = ember.quantize_per_tensor(ember.randn(8, 16), 0.02, 0, ember.qint8)
    e.set_weight_bias(w, None)
    np.testing.assert_array_equal(e(ex).int_repr().numpy(),
                                  quantized_linear(ex, w, None, 0.2, 10).int_repr().numpy())


def test_a_bad_input_after_good_calls_still_raises():
    rng = np.random.default_rng(2)
    e, _ = _linear_twins(rng, 16, 8)
    ex, _ = _pair(rng, (3, 16))
    e(ex)
    e(ex)
    bad, _ = _pair(rng, (3, 15))
    with pytest.raises(ember.ShapeError, match="quantized_linear"):
        e(bad)
    conv = ennq.Conv2d(4, 6, 3, padding=1)
    cx, _ = _pair(rng, (2, 4, 5, 5))
    conv(cx)
    conv(cx)
    with pytest.raises(Exception, match="quantized_conv2d|channels|match"):
        conv(_pair(rng, (2, 3, 5, 5))[0])


def _conv(rng, cin, cout, relu, **kw):
    from ember.ao.nn.intrinsic.quantized import ConvReLU2d
    w = (rng.standard_normal((cout, cin, 3, 3)) * 0.1).astype(np.float32)
    scales = np.abs(w.reshape(cout, -1)).max(1) / 127
    qw = ember.quantize_per_channel(ember.tensor(w), ember.tensor(scales),
                                    ember.tensor(np.zeros(cout, np.int64)), 0, ember.qint8)
    conv = (ConvReLU2d if relu else ennq.Conv2d)(cin, cout, 3, **kw)
    conv.set_weight_bias(qw, ember.tensor(rng.standard_normal(cout).astype(np.float32)))
    conv.scale, conv.zero_point = 0.05, 0 if relu else 100
    return conv


def test_repeated_conv_calls_equal_the_full_path_channels_last_too():
    """A conv's result is channels-last: the next conv's input layout differs from the
    model input's, and each keeps its own checked entry."""
    rng = np.random.default_rng(3)
    first = _conv(rng, 4, 8, True, stride=2, padding=1)
    second = _conv(rng, 8, 6, False, padding=1)
    x, _ = _pair(rng, (2, 4, 9, 9))
    for _ in range(3):
        mid = first(x)
        full = quantized_conv2d(x, first._packed_weight, first._bias, (2, 2), (1, 1), (1, 1),
                                1, 0.05, 0, True)
        np.testing.assert_array_equal(mid.int_repr().numpy(), full.int_repr().numpy())
        out = second(mid)
        full = quantized_conv2d(mid, second._packed_weight, second._bias, (1, 1), (1, 1),
                                (1, 1), 1, 0.05, 100, False)
        np.testing.assert_array_equal(out.int_repr().numpy(), full.int_repr().numpy())


def test_fx_tracing_after_eager_calls_records_the_op():
    rng = np.random.default_rng(4)
    e, _ = _linear_twins(rng, 16, 8)
    ex, _ = _pair(rng, (3, 16))
    e(ex)
    e(ex)
    traced = ember.fx.symbolic_trace(e)
    assert any("quantized_linear" in str(n.target) for n in traced.graph.nodes)
    np.testing.assert_array_equal(traced(ex).int_repr().numpy(), e(ex).int_repr().numpy())


def test_dynamic_linear_seen_calls_equal_the_full_path_and_torch():
    rng = np.random.default_rng(5)
    t_model = torch.nn.Sequential(torch.nn.Linear(24, 40), torch.nn.ReLU(),
                                  torch.nn.Linear(40, 6)).eval()
    e_model = ember.nn.Sequential(ember.nn.Linear(24, 40), ember.nn.ReLU(),
                                  ember.nn.Linear(40, 6)).eval()
    e_model.load_state_dict({k: ember.tensor(v.detach().numpy())
                             for k, v in t_model.state_dict().items()})
    tq = torch.ao.quantization.quantize_dynamic(t_model, {torch.nn.Linear}, dtype=torch.qint8)
    eqm = ember.ao.quantization.quantize_dynamic(e_model, {ember.nn.Linear},
                                                 dtype=ember.qint8)
    first = eqm[0]
    for batch in (5, 5, 3, 5):
        x = rng.standard_normal((batch, 24)).astype(np.float32)
        with ember.no_grad():
            got = eqm(ember.tensor(x)).numpy()
            full = ember.quantized_linear_dynamic(ember.tensor(x), first._packed_weight,
                                                  first.bias).numpy()
            np.testing.assert_array_equal(first(ember.tensor(x)).numpy(), full)
        np.testing.assert_allclose(got, tq(torch.from_numpy(x)).detach().numpy(),
                                   atol=1e-4, rtol=1e-4)
    with pytest.raises(ember.ShapeError, match="quantized_linear_dynamic"):
        first(ember.tensor(rng.standard_normal((5, 23)).astype(np.float32)))
