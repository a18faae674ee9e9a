"""Export-based quantization (prepare_pt2e / prepare_qat_pt2e / convert_pt2e with
X86InductorQuantizer(int8_lowering=True), ember's int8 route) on ember.export programs.

torch 2.13 no longer ships torch.ao.quantization.quantize_pt2e (it moved to torchao,
which is not installed), so the oracle is ember's own FX path with the same qconfig:
the pt2e result must equal it exactly, and stay close to float."""
from __future__ import annotations

import numpy as np
import pytest

import ember
from tests.quant.quant_twins import int8_layers
import ember.ao.quantization as eq
import ember.ao.quantization.quantize_fx as eqfx
from ember.ao.nn.intrinsic import qat as nniqat
from ember.ao.quantization.quantize_pt2e import convert_pt2e, prepare_pt2e, prepare_qat_pt2e
from ember.ao.quantization.quantizer.x86_inductor_quantizer import (
    X86InductorQuantizer, get_default_x86_inductor_quantization_config)

pytestmark = pytest.mark.filterwarnings("ignore")


class Net(ember.nn.Module):
    def __init__(self):
        super().__init__()
        nn = ember.nn
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(8 * 3 * 3, 6)
        self.relu = nn.ReLU(inplace=True)          # exported as relu_

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(x))
        y += x                                     # exported as add_
        x = ember.relu(y)
        return self.fc(ember.flatten(self.pool(x), 1))


def net(rng):
    model = Net()
    state = {}
    for k, v in model.state_dict().items():
        if not v.dtype.is_floating_point:
            continue
        arr = rng.standard_normal(tuple(v.shape)).astype(np.float32) * 0.3
        state[k] = ember.tensor(np.abs(arr) + 0.5 if "running_var" in k else arr)
    model.load_state_dict(state, strict=False)
    return model


def _batches(rng, n, batch=4):
    return [ember.tensor(rng.standard_normal((batch, 3, 6, 6)).astype(np.float32))
            for _ in range(n)]


def _quantizer(**kw):
    """ember's int8 lowering route (the FX path's patterns): torch's annotation recipe is
    compared with torchao in test_pt2e_x86_parity.py."""
    return X86InductorQuantizer(int8_lowering=True).set_global(
        get_default_x86_inductor_quantization_config(**kw))


def test_default_config_is_x86_inductors():
    config = get_default_x86_inductor_quantization_config()
    act, weight = config.output_activation(), config.weight()
    assert (act.dtype, act.quant_min, act.quant_max) == (ember.quint8, 0, 255)
    assert type(act).__name__ == "HistogramObserver"
    assert (weight.dtype, weight.qscheme, weight.quant_min, weight.quant_max) == \
        (ember.qint8, ember.per_channel_symmetric, -128, 127)
    assert float(weight.eps) == 2 ** -12 and weight.ch_axis == 0
    qat = get_default_x86_inductor_quantization_config(is_qat=True)
    assert qat.is_qat and type(qat.weight()).__name__ == "FusedMovingAvgObsFakeQuantize"
    dynamic = get_default_x86_inductor_quantization_config(is_dynamic=True)
    act = dynamic.input_activation()
    assert type(act).__name__ == "PlaceholderObserver" and act.is_dynamic and \
        (act.dtype, act.quant_min, act.quant_max) == (ember.quint8, 0, 255)
    with pytest.raises(NotImplementedError, match="is_dynamic"):
        get_default_x86_inductor_quantization_config(is_dynamic=True, is_qat=True)


@pytest.mark.parametrize("entry", ["program", "module"])
def test_pt2e_equals_the_fx_path_and_stays_close_to_float(rng, entry):
    model = net(rng).eval()
    calib, test = _batches(rng, 3), _batches(rng, 2, 16)
    ep = ember.export(model, (calib[0],))
    prepared = prepare_pt2e(ep if entry == "program" else ep.module(), _quantizer())
    assert {type(prepared.get_submodule(n)).__name__ for n in ("conv1", "conv2", "fc")} == \
        {"ConvReLU2d", "Conv2d", "Linear"}                   # lifted, bn folded, relu fused
    fx_prepared = eqfx.prepare_fx(model, eq.QConfigMapping().set_global(
        get_default_x86_inductor_quantization_config().to_qconfig()), (calib[0],))
    for batch in calib:
        prepared(batch)
        fx_prepared(batch)
    quantized, fx_quantized = convert_pt2e(prepared), eqfx.convert_fx(fx_prepared)
    text = ember.ir.print_graph(quantized.graph)
    assert len(int8_layers(quantized, "conv2d")) == 2 and "quantized_add" in text and \
        int8_layers(quantized, "linear") and quantized.quantization_report == []
    for x in test:
        got = quantized(x).numpy()
        np.testing.assert_array_equal(got, fx_quantized(x).numpy())
        with ember.no_grad():
            ref = model(x).numpy()
        assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.9
        sqnr = 10 * np.log10(np.sum(ref ** 2) / np.sum((got - ref) ** 2))
        assert sqnr > 20, sqnr      # histogram calibration on 12 samples clips a few outliers
    reference = convert_pt2e(prepared, use_reference_representation=True)
    assert "dequantize" in ember.ir.print_graph(reference.graph)


def test_module_name_config_leaves_a_layer_in_float(rng):
    model = net(rng).eval()
    calib = _batches(rng, 2)
    quantizer = _quantizer().set_module_name_qconfig("fc", None)
    prepared = prepare_pt2e(ember.export(model, (calib[0],)), quantizer)
    for batch in calib:
        prepared(batch)
    report = convert_pt2e(prepared).quantization_report
    assert [what for _, what in report] == ["call_module fc"]


def test_prepare_qat_pt2e_trains_like_prepare_qat_fx(rng):
    model = net(rng).eval()
    x0 = _batches(rng, 1)[0]
    prepared = prepare_qat_pt2e(ember.export(model, (x0,)), _quantizer(is_qat=True))
    assert isinstance(prepared.conv1, nniqat.ConvBnReLU2d) and prepared.training
    assert isinstance(prepared.conv2, nniqat.ConvBn2d) and prepared.conv2.bn.training
    twin = net(np.random.default_rng(0))
    twin.load_state_dict(model.state_dict())
    fx_prepared = eqfx.prepare_qat_fx(twin.train(), eq.QConfigMapping().set_global(
        get_default_x86_inductor_quantization_config(is_qat=True).to_qconfig()), (x0,))
    opts = [ember.optim.SGD(m.parameters(), lr=0.05) for m in (prepared, fx_prepared)]
    for x in _batches(rng, 3):
        outs = [m(x) for m in (prepared, fx_prepared)]
        np.testing.assert_allclose(outs[0].detach().numpy(), outs[1].detach().numpy(),
                                   rtol=1e-6, atol=1e-6)
        for out, opt in zip(outs, opts):
            opt.zero_grad()
            (out * out).mean().backward()
            opt.step()
    prepared.eval()
    quantized = convert_pt2e(prepared)
    assert len(int8_layers(quantized, "conv2d")) == 2


def test_bad_input_is_a_clear_error(rng):
    model = net(rng)
    x = _batches(rng, 1)[0]
    with pytest.raises(eq.QuantizationError, match="exported in training mode"):
        prepare_pt2e(ember.export(model.train(), (x,)), _quantizer())
    program = ember.export(model.eval(), (x,))
    with pytest.raises(eq.QuantizationError, match="use prepare_qat_pt2e"):
        prepare_pt2e(program, _quantizer(is_qat=True))
    with pytest.raises(eq.QuantizationError, match="expects a Quantizer"):
        prepare_pt2e(program, eq.get_default_qconfig_mapping())
    with pytest.raises(eq.QuantizationError, match="ember.export program"):
        prepare_pt2e(model, _quantizer())
