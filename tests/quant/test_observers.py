"""Observers against torch.ao on the same data: every scale and zero point bit for bit."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch.ao.quantization import observer as TO

import ember
from ember.ao.quantization import observer as EO

pytestmark = pytest.mark.filterwarnings("ignore:.*reduce_range will be deprecated")

T2E = {torch.quint8: ember.quint8, torch.qint8: ember.qint8, torch.qint32: ember.qint32,
       torch.per_tensor_affine: ember.per_tensor_affine,
       torch.per_tensor_symmetric: ember.per_tensor_symmetric,
       torch.per_channel_affine: ember.per_channel_affine,
       torch.per_channel_symmetric: ember.per_channel_symmetric,
       torch.per_channel_affine_float_qparams: ember.per_channel_affine_float_qparams}


def ember_kwargs(kwargs):
    return {k: T2E.get(v, v) if not isinstance(v, (int, float)) else v
            for k, v in kwargs.items()}


def batches(rng, shape, n=3):
    """Calibration batches of varied ranges, one all-positive and one all-negative."""
    out = [rng.standard_normal(shape) * rng.uniform(0.1, 20) + rng.uniform(-2, 2)
           for _ in range(n)]
    out.append(np.abs(out[0]) + 0.5)
    out.append(-np.abs(out[1]) - 0.25)
    return [b.astype(np.float32) for b in out]


def assert_same_qparams(e_obs, t_obs):
    es, ez = e_obs.calculate_qparams()
    ts, tz = t_obs.calculate_qparams()
    np.testing.assert_array_equal(es.numpy().view(np.int32), ts.numpy().view(np.int32))
    assert str(ez.dtype).split(".")[1] == str(tz.dtype).split(".")[1]
    np.testing.assert_array_equal(ez.numpy(), tz.numpy())
    assert tuple(es.shape) == tuple(ts.shape)


PER_TENSOR_CASES = [
    {}, {"dtype": torch.qint8}, {"qscheme": torch.per_tensor_symmetric},
    {"qscheme": torch.per_tensor_symmetric, "dtype": torch.qint8},
    {"reduce_range": True}, {"reduce_range": True, "dtype": torch.qint8},
    {"quant_min": 0, "quant_max": 100}, {"quant_min": -20, "quant_max": 100, "dtype": torch.qint8},
    {"quant_min": 0, "quant_max": 100, "reduce_range": True},
    {"quant_min": -20, "quant_max": 101, "dtype": torch.qint8, "reduce_range": True},
    {"quant_min": 0, "quant_max": 15, "qscheme": torch.per_tensor_symmetric},
    {"dtype": torch.qint32}, {"dtype": torch.qint32, "qscheme": torch.per_tensor_symmetric},
    {"eps": 0.5}, {"eps": 1e-3, "qscheme": torch.per_tensor_symmetric},
]


@pytest.mark.parametrize("cls", ["MinMaxObserver", "MovingAverageMinMaxObserver"])
@pytest.mark.parametrize("kwargs", PER_TENSOR_CASES, ids=str)
def test_per_tensor_observers_match_torch(rng, cls, kwargs):
    e_obs = getattr(EO, cls)(**ember_kwargs(kwargs))
    t_obs = getattr(TO, cls)(**kwargs)
    assert (e_obs.quant_min, e_obs.quant_max) == (t_obs.quant_min, t_obs.quant_max)
    for i, b in enumerate(batches(rng, (4, 9))):
        e_obs(ember.tensor(b))
        t_obs(torch.from_numpy(b))
        assert float(e_obs.min_val) == float(t_obs.min_val)
        assert float(e_obs.max_val) == float(t_obs.max_val)
        assert_same_qparams(e_obs, t_obs)


def test_uncalibrated_and_degenerate_ranges(rng):
    e_obs, t_obs = EO.MinMaxObserver(), TO.MinMaxObserver()
    with pytest.warns(UserWarning, match="must run observer"):
        s, z = e_obs.calculate_qparams()
    assert s.tolist() == [1.0] and z.tolist() == [0]
    for value in (0.0, 3.0, -1e-9):        # the eps floor
        e_obs, t_obs = EO.MinMaxObserver(), TO.MinMaxObserver()
        e_obs(ember.full((3,), value))
        t_obs(torch.full((3,), value))
        assert_same_qparams(e_obs, t_obs)


PER_CHANNEL_CASES = [
    {"dtype": torch.qint8, "qscheme": torch.per_channel_symmetric},
    {"dtype": torch.qint8, "qscheme": torch.per_channel_affine},
    {}, {"reduce_range": True}, {"ch_axis": 1}, {"ch_axis": -1, "dtype": torch.qint8},
    {"quant_min": -8, "quant_max": 7, "dtype": torch.qint8,
     "qscheme": torch.per_channel_symmetric},
    {"qscheme": torch.per_channel_affine_float_qparams},
]


@pytest.mark.parametrize("cls", ["PerChannelMinMaxObserver",
                                 "MovingAveragePerChannelMinMaxObserver"])
@pytest.mark.parametrize("kwargs", PER_CHANNEL_CASES, ids=str)
def test_per_channel_observers_match_torch(rng, cls, kwargs):
    e_obs = getattr(EO, cls)(**ember_kwargs(kwargs))
    t_obs = getattr(TO, cls)(**kwargs)
    for b in batches(rng, (5, 3, 4)):
        b[1] = 0.0                                 # a channel with nothing in it
        e_obs(ember.tensor(b))
        t_obs(torch.from_numpy(b))
        np.testing.assert_array_equal(e_obs.min_val.numpy(), t_obs.min_val.numpy())
        np.testing.assert_array_equal(e_obs.max_val.numpy(), t_obs.max_val.numpy())
        es, ez = e_obs.calculate_qparams()
        ts, tz = t_obs.calculate_qparams()
        np.testing.assert_array_equal(es.numpy(), ts.numpy())
        np.testing.assert_array_equal(ez.numpy(), tz.numpy())
        assert ez.dtype.name == str(tz.dtype).split(".")[1]


def test_fixed_and_placeholder_observers():
    e_obs = EO.default_fixed_qparams_range_neg1to1_observer()
    t_obs = TO.default_fixed_qparams_range_neg1to1_observer()
    assert_same_qparams(e_obs, t_obs)
    x = ember.randn(3)
    assert e_obs(x) is x
    p = EO.PlaceholderObserver(dtype=ember.float16)
    assert p(x) is x and p.dtype is ember.float16
    with pytest.raises(Exception, match="should not be called for PlaceholderObserver"):
        p.calculate_qparams()


def test_bad_observer_arguments():
    with pytest.raises(ValueError, match="must include 0"):
        EO.MinMaxObserver(quant_min=1, quant_max=100)
    with pytest.raises(NotImplementedError, match="qscheme"):
        EO.MinMaxObserver(qscheme=ember.per_channel_affine)
    with pytest.raises(ValueError, match="only works for"):
        EO.MinMaxObserver(dtype=ember.float32)


def test_observer_state_and_with_args():
    obs = EO.MinMaxObserver.with_args(dtype=ember.qint8)()
    obs(ember.tensor([-1.0, 2.0]))
    assert set(obs.state_dict()) == {"eps", "min_val", "max_val"}
    assert obs.dtype is ember.qint8
    assert repr(obs) == "MinMaxObserver(min_val=-1.0, max_val=2.0)"


HISTOGRAM_CASES = [{}, {"reduce_range": True},
                   {"dtype": torch.qint8, "qscheme": torch.per_tensor_symmetric},
                   {"quant_min": 0, "quant_max": 63}]


@pytest.mark.parametrize("kwargs", HISTOGRAM_CASES, ids=str)
def test_histogram_observer_matches_torch(rng, kwargs):
    """One batch, then batches that widen the range (the old histogram is re-binned)."""
    e_obs = EO.HistogramObserver(**ember_kwargs(kwargs))
    t_obs = TO.HistogramObserver(**kwargs)
    for i in range(3):
        b = (rng.standard_normal((6, 40)) * (1 + i) + rng.uniform(-1, 1)).astype(np.float32)
        if i == 1:
            b = np.maximum(b, 0)         # a ReLU-like batch: mass piled at zero
        e_obs(ember.tensor(b))
        t_obs(torch.from_numpy(b))
        np.testing.assert_array_equal(e_obs.histogram.numpy(), t_obs.histogram.numpy())
        assert float(e_obs.min_val) == float(t_obs.min_val)
        assert float(e_obs.max_val) == float(t_obs.max_val)
        assert_same_qparams(e_obs, t_obs)


def test_histogram_observer_constant_input():
    e_obs, t_obs = EO.HistogramObserver(), TO.HistogramObserver()
    for v in (2.0, 3.0):
        e_obs(ember.full((5,), v))
        t_obs(torch.full((5,), v))
    np.testing.assert_array_equal(e_obs.histogram.numpy(), t_obs.histogram.numpy())
    assert_same_qparams(e_obs, t_obs)


@pytest.mark.parametrize("name", ["default_fused_per_channel_wt_fake_quant",
                                  "default_fused_wt_fake_quant", "default_fused_act_fake_quant"])
def test_fused_fake_quant_qparams_match_torch_over_steps(rng, name):
    """torch's fused kernel chooses qparams its own way (symmetric ranges widened to
    [-128 s, 127 s]); one-sided and all-zero channels included."""
    import ember.ao.quantization as _eq
    import torch.ao.quantization as _tq
    t_fq, e_fq = getattr(_tq, name)(), getattr(_eq, name)()
    for step in range(6):
        w = (rng.standard_normal((8, 5)) * 0.3).astype(np.float32)
        if step == 3:
            w[2] = np.abs(w[2])
        if step == 4:
            w[1] = 0.0
        t_out = t_fq(torch.from_numpy(w)).numpy()
        e_out = e_fq(ember.tensor(w)).numpy()
        np.testing.assert_array_equal(e_out, t_out)
        np.testing.assert_array_equal(e_fq.scale.numpy(), t_fq.scale.numpy())
        np.testing.assert_array_equal(e_fq.zero_point.numpy(), t_fq.zero_point.numpy())
