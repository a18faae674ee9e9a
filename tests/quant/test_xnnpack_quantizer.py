"""XNNPACKQuantizer / get_symmetric_quantization_config with prepare_pt2e.

torch 2.13 no longer ships the pt2e quantizers (they moved to torchao / executorch), so
torch.ao's observers with XNNPACK's int8 specs are the oracle for the qparams (ember
realizes signed activations as uint8 shifted by 128: same scale, zero point + 128), and
ember's FX path with the same qconfig is the oracle for the converted model."""
import numpy as np
import pytest
import torch
import torch.ao.quantization as tq

import ember
from tests.quant.quant_twins import int8_layers
import ember.ao.quantization as eq
import ember.ao.quantization.quantize_fx as eqfx
from ember.ao.quantization.quantize_pt2e import convert_pt2e, prepare_pt2e, prepare_qat_pt2e
from ember.ao.quantization.quantizer.xnnpack_quantizer import (
    XNNPACKQuantizer, get_symmetric_quantization_config)

pytestmark = pytest.mark.filterwarnings("ignore")
EPS = 2 ** -12


def _data(seed, shape=(64, 8)):
    return (np.random.default_rng(seed).standard_normal(shape) * 2 + 0.7).astype(np.float32)


@pytest.mark.parametrize("act_range", [(-128, 127), (-128, 90)])
def test_activation_observer_matches_torch_int8(act_range):
    lo, hi = act_range
    config = get_symmetric_quantization_config(act_qmin=lo, act_qmax=hi)
    ours = config.input_activation()
    theirs = tq.HistogramObserver(dtype=torch.int8, quant_min=lo, quant_max=hi, eps=EPS,
                                  qscheme=torch.per_tensor_affine)
    for seed in range(3):
        x = _data(seed)
        ours(ember.tensor(x))
        theirs(torch.tensor(x))
    (es, ez), (ts, tz) = ours.calculate_qparams(), theirs.calculate_qparams()
    np.testing.assert_array_equal(es.numpy(), ts.numpy())
    np.testing.assert_array_equal(ez.numpy().astype(np.int64), tz.numpy() + 128)


@pytest.mark.parametrize("per_channel", [False, True])
def test_weight_observer_matches_torch(per_channel):
    ours = get_symmetric_quantization_config(is_per_channel=per_channel).weight()
    cls = tq.PerChannelMinMaxObserver if per_channel else tq.MinMaxObserver
    theirs = cls(dtype=torch.int8, quant_min=-127, quant_max=127, eps=EPS,
                 qscheme=torch.per_channel_symmetric if per_channel
                 else torch.per_tensor_symmetric)
    w = _data(5, (6, 4))
    ours(ember.tensor(w))
    theirs(torch.tensor(w))
    (es, ez), (ts, tz) = ours.calculate_qparams(), theirs.calculate_qparams()
    np.testing.assert_array_equal(es.numpy(), ts.numpy())
    np.testing.assert_array_equal(ez.numpy(), tz.numpy())


def test_qat_activation_fake_quant_matches_torch_int8():
    ours = get_symmetric_quantization_config(is_qat=True).input_activation()
    theirs = tq.FusedMovingAvgObsFakeQuantize(observer=tq.MovingAverageMinMaxObserver,
                                              dtype=torch.int8, quant_min=-128,
                                              quant_max=127, eps=EPS)
    for seed in range(3):
        x = _data(seed)
        got = ours(ember.tensor(x)).detach().numpy()
        want = theirs(torch.tensor(x)).detach().numpy()
        np.testing.assert_array_equal(got, want)


def test_config_names_and_refusals():
    assert get_symmetric_quantization_config() is get_symmetric_quantization_config()
    assert len(XNNPACKQuantizer.get_supported_quantization_configs()) == 4
    with pytest.raises(NotImplementedError, match="is_dynamic"):
        get_symmetric_quantization_config(is_dynamic=True, is_qat=True)
    with pytest.raises(NotImplementedError, match="act_qmin"):
        get_symmetric_quantization_config(act_qmin=-100)
    with pytest.raises(AssertionError):
        XNNPACKQuantizer().set_module_name("fc", None)
    with pytest.raises(NotImplementedError, match="module type"):
        XNNPACKQuantizer().set_module_type(ember.nn.ReLU, get_symmetric_quantization_config())


class Net(ember.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = ember.nn.Conv2d(3, 8, 3, padding=1)
        self.relu = ember.nn.ReLU()
        self.fc = ember.nn.Linear(8 * 6 * 6, 5)

    def forward(self, x):
        return self.fc(ember.flatten(self.relu(self.conv(x)), 1))


@pytest.mark.parametrize("per_channel", [False, True])
def test_pt2e_with_xnnpack_quantizer_equals_fx_path(per_channel):
    rng = np.random.default_rng(1)
    ember.manual_seed(0)                    # fixed weights: the SQNR bound below is loose
    model = Net().eval()
    calib = [ember.tensor(rng.standard_normal((4, 3, 6, 6)).astype(np.float32))
             for _ in range(3)]
    config = get_symmetric_quantization_config(is_per_channel=per_channel)
    prepared = prepare_pt2e(ember.export(model, (calib[0],)),
                            XNNPACKQuantizer().set_global(config))
    fx_prepared = eqfx.prepare_fx(model, eq.QConfigMapping().set_global(config.to_qconfig()),
                                  (calib[0],))
    for batch in calib:
        prepared(batch)
        fx_prepared(batch)
    quantized, fx_quantized = convert_pt2e(prepared), eqfx.convert_fx(fx_prepared)
    assert quantized.quantization_report == []
    assert int8_layers(quantized, "conv2d")
    x = ember.tensor(rng.standard_normal((16, 3, 6, 6)).astype(np.float32))
    got = quantized(x).detach().numpy()
    np.testing.assert_array_equal(got, fx_quantized(x).detach().numpy())
    with ember.no_grad():
        ref = model(x).numpy()
    assert 10 * np.log10(np.sum(ref ** 2) / np.sum((got - ref) ** 2)) > 20   # ~29 dB


def test_prepare_qat_pt2e_with_xnnpack_qat_config():
    model = Net().eval()
    x = ember.randn(4, 3, 6, 6)
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_qat=True))
    with pytest.raises(Exception, match="prepare_qat_pt2e"):
        prepare_pt2e(ember.export(model, (x,)), quantizer)
    prepared = prepare_qat_pt2e(ember.export(model, (x,)), quantizer)
    prepared(x)
    eq.move_exported_model_to_eval(prepared)
    assert eq.allow_exported_model_train_eval(prepared) is prepared
    out = convert_pt2e(prepared)(x)
    assert tuple(out.shape) == (4, 5)
