"""FX graph-mode PTQ end to end against torch.ao on the same float weights and the same
calibration data: the same script with `torch` changed to `ember`."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.ao.quantization as tq
import torch.ao.quantization.quantize_fx as tqfx

import ember
from tests.quant.quant_twins import int8_layers, share_random_weights
import ember.ao.quantization as eq
import ember.ao.quantization.quantize_fx as eqfx

pytestmark = pytest.mark.filterwarnings("ignore")
torch.backends.quantized.engine = "x86"


def model_classes(lib):
    nn, F = lib.nn, lib.nn.functional

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.fc3 = nn.Linear(32, 64), nn.Linear(64, 48), nn.Linear(48, 10)

        def forward(self, x):
            return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))

    class ResNetish(nn.Module):
        """conv-bn-relu stem, a residual block with add, pooling, linear head."""

        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
            self.relu = nn.ReLU()
            self.pool = nn.MaxPool2d(2)
            self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
            self.conv3, self.bn3 = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
            self.avg = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(8, 10)

        def forward(self, x):
            x = self.pool(self.relu(self.bn1(self.conv1(x))))
            y = self.relu(self.bn2(self.conv2(x)))
            y = self.bn3(self.conv3(y))
            x = self.relu(x + y)
            return self.fc(lib.flatten(self.avg(x), 1))

    return {"mlp": MLP, "resnetish": ResNetish}


INPUTS = {"mlp": (32,), "resnetish": (3, 12, 12)}


def twin_models(name, rng):
    t_model = model_classes(torch)[name]().eval()
    e_model = model_classes(ember)[name]().eval()
    share_random_weights(t_model, e_model, rng)
    return t_model, e_model


def _ptq(lib_fx, model, mapping, calib, example):
    prepared = lib_fx.prepare_fx(model, mapping, example)
    for batch in calib:
        prepared(batch)
    return prepared


@pytest.mark.parametrize("name", ["mlp", "resnetish"])
def test_convert_fx_agrees_with_torch_ao(rng, name):
    t_model, e_model = twin_models(name, rng)
    calib = [rng.standard_normal((16, *INPUTS[name])).astype(np.float32) for _ in range(3)]
    test = rng.standard_normal((64, *INPUTS[name])).astype(np.float32)
    t_prep = _ptq(tqfx, t_model, tq.get_default_qconfig_mapping("x86"),
                  [torch.from_numpy(c) for c in calib], (torch.from_numpy(calib[0]),))
    e_prep = _ptq(eqfx, e_model, eq.get_default_qconfig_mapping("x86"),
                  [ember.tensor(c) for c in calib], (ember.tensor(calib[0]),))
    t_q = tqfx.convert_fx(t_prep)
    e_q = eqfx.convert_fx(e_prep)
    t_out = t_q(torch.from_numpy(test)).numpy()
    e_out = e_q(ember.tensor(test)).numpy()
    float_out = t_model(torch.from_numpy(test)).detach().numpy()
    agree = (t_out.argmax(1) == e_out.argmax(1)).mean()
    step = float(np.abs(float_out).max()) / 127          # about one output quantization step
    assert agree >= 0.99, f"argmax agrees on {agree:.3f}"
    assert np.abs(t_out - e_out).max() <= 3 * step, np.abs(t_out - e_out).max() / step
    ref = eqfx.convert_to_reference_fx(e_prep)(ember.tensor(test)).numpy()
    assert np.abs(ref - e_out).max() <= 3 * step


def test_quantize_dynamic_agrees_with_torch_ao(rng):
    t_model, e_model = twin_models("mlp", rng)
    t_q = tq.quantize_dynamic(t_model, {torch.nn.Linear}, dtype=torch.qint8)
    e_q = eq.quantize_dynamic(e_model, {ember.nn.Linear}, dtype=ember.qint8)
    x = rng.standard_normal((32, 32)).astype(np.float32)
    t_out = t_q(torch.from_numpy(x)).numpy()
    e_out = e_q(ember.tensor(x)).numpy()
    assert (t_out.argmax(1) == e_out.argmax(1)).mean() >= 0.99
    assert np.abs(t_out - e_out).max() < 0.05 * np.abs(t_out).max()
    assert type(e_model.fc1) is ember.nn.Linear          # not in place by default


def test_convert_before_calibration_names_the_node():
    model = model_classes(ember)["mlp"]().eval()
    prepared = eqfx.prepare_fx(model, eq.get_default_qconfig_mapping("x86"),
                               (ember.randn(2, 32),))
    # torch.ao converts it with scale 1.0 and zero point 0 (a model converted only to load
    # a calibrated state_dict into); ember warns, naming the node
    with pytest.warns(UserWarning, match="activation_post_process_0 .*'x'.* no data"):
        converted = eqfx.convert_fx(prepared)
    assert converted.fc1_input_scale_0.item() == 1.0


def test_untraceable_model_names_the_line_and_the_escape_hatch():
    nn = ember.nn

    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            if x.sum() > 0:
                return self.fc(x)
            return x

    with pytest.raises(eq.QuantizationError) as err:
        eqfx.prepare_fx(Branchy().eval(), eq.get_default_qconfig_mapping(), (ember.randn(2, 4),))
    assert "set_non_traceable_module_names" in str(err.value)
    assert "test_fx_e2e.py" in str(err.value)


def test_non_traceable_submodule_stays_float(rng):
    nn = ember.nn

    class Inner(nn.Module):
        def forward(self, x):
            return x * 2 if x.sum() > 0 else x

    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.inner = nn.Linear(4, 4), Inner()

        def forward(self, x):
            return self.inner(self.fc(x))

    cfg = eqfx.PrepareCustomConfig().set_non_traceable_module_names(["inner"])
    prepared = eqfx.prepare_fx(Outer().eval(), eq.get_default_qconfig_mapping(),
                               (ember.randn(2, 4),), prepare_custom_config=cfg)
    prepared(ember.randn(8, 4))
    converted = eqfx.convert_fx(prepared)
    out = converted(ember.randn(3, 4))
    assert out.dtype is ember.float32 and tuple(out.shape) == (3, 4)
    assert [what for _, what in converted.quantization_report] == ["call_module inner"]


def test_prepare_warns_on_training_mode_refuses_training_bn_and_unknown_backend():
    model = model_classes(ember)["mlp"]()         # as torch.ao: prepared as it is
    with pytest.warns(UserWarning, match="training mode"):
        eqfx.prepare_fx(model, eq.get_default_qconfig_mapping(), (ember.randn(2, 32),))
    conv_bn = ember.nn.Sequential(ember.nn.Conv2d(1, 1, 1), ember.nn.BatchNorm2d(1))
    with pytest.raises(eq.QuantizationError, match="model.eval()"):
        eqfx.prepare_fx(conv_bn, eq.get_default_qconfig_mapping(), (ember.randn(1, 1, 2, 2),))
    with pytest.raises(ValueError, match="backend: arm not supported"):
        eq.get_default_qconfig_mapping("arm")


def test_quantized_model_state_dict_round_trips_through_safetensors(rng, tmp_path):
    t_model, e_model = twin_models("mlp", rng)
    prepared = eqfx.prepare_fx(e_model, eq.get_default_qconfig_mapping("x86"),
                               (ember.randn(2, 32),))
    prepared(ember.tensor(rng.standard_normal((16, 32)).astype(np.float32)))
    quantized = eqfx.convert_fx(prepared)
    ember.save_weights(quantized, tmp_path / "q.safetensors")
    fresh = eqfx.convert_fx(prepared)
    for name, buf in fresh.named_buffers():       # scramble, then load back
        if buf.is_quantized:
            buf._array[...] = 0
    ember.load_weights(fresh, tmp_path / "q.safetensors")
    x = ember.randn(5, 32)
    np.testing.assert_array_equal(fresh(x).numpy(), quantized(x).numpy())
    w = fresh.fc1.weight()
    assert w.dtype is ember.qint8 and w.qscheme() is ember.per_channel_affine


def test_prepare_qat_fx_trains_and_converts(rng):
    _, e_model = twin_models("mlp", rng)
    e_model.train()
    prepared = eqfx.prepare_qat_fx(e_model, eq.get_default_qat_qconfig_mapping("x86"),
                                   (ember.randn(2, 32),))
    # torch.ao's QAT form of linear + relu: one nniqat.LinearReLU with weight_fake_quant
    from ember.ao.nn.intrinsic import qat as nniqat
    assert type(prepared.fc1) is nniqat.LinearReLU and hasattr(prepared.fc1,
                                                              "weight_fake_quant")
    opt = ember.optim.SGD(prepared.parameters(), lr=0.05)
    x = ember.tensor(rng.standard_normal((64, 32)).astype(np.float32))
    y = ember.tensor(rng.integers(0, 10, 64))
    losses = []
    for _ in range(8):
        opt.zero_grad()
        loss = ember.nn.functional.cross_entropy(prepared(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < losses[0]
    fq_out = prepared(x).detach().numpy()
    int8_out = eqfx.convert_fx(prepared)(x).numpy()
    ref_out = eqfx.convert_to_reference_fx(prepared)(x).numpy()
    assert (fq_out.argmax(1) == int8_out.argmax(1)).mean() >= 0.95
    np.testing.assert_allclose(ref_out, int8_out, atol=0.1 * np.abs(fq_out).max())


def test_resnet18_convert_fx_agrees_with_torch_ao(rng):
    """ember.models.resnet18's blocks are traced through (not left as float leaves):
    every conv, residual add and the fc run in int8."""
    from benchmarks.quant import twins
    t_model, e_model = twins("resnet18", rng)
    calib = rng.standard_normal((4, 3, 32, 32)).astype(np.float32)
    test = rng.standard_normal((8, 3, 32, 32)).astype(np.float32)
    t_prep = _ptq(tqfx, t_model, tq.get_default_qconfig_mapping("x86"),
                  [torch.from_numpy(calib)], (torch.from_numpy(calib),))
    e_prep = _ptq(eqfx, e_model, eq.get_default_qconfig_mapping("x86"), [ember.tensor(calib)],
                  (ember.tensor(calib),))
    e_q = eqfx.convert_fx(e_prep)
    assert e_q.quantization_report == []            # nothing left in float
    ops = [n.target.name if hasattr(n.target, "name") else n.target
           for n in e_q.graph.nodes]
    assert len(int8_layers(e_q, "conv2d")) == 20 and ops.count("quantized_add") == 8
    assert ops.count("dequantize") == 1                   # only the model's output
    t_out = tqfx.convert_fx(t_prep)(torch.from_numpy(test)).numpy()
    e_out = e_q(ember.tensor(test)).numpy()
    step = float(np.abs(t_model(torch.from_numpy(test)).detach().numpy()).max()) / 127
    assert (t_out.argmax(1) == e_out.argmax(1)).mean() >= 0.99
    assert np.abs(t_out - e_out).max() <= 3 * step


def test_qconfig_the_backend_cannot_run_names_the_node():
    model = model_classes(ember)["mlp"]().eval()
    bad = eq.QConfig(activation=eq.MinMaxObserver.with_args(dtype=ember.qint8),
                     weight=eq.default_weight_observer)
    mapping = eq.QConfigMapping().set_global(eq.get_default_qconfig("x86")) \
        .set_module_name("fc2", bad)
    with pytest.raises(eq.QuantizationError,
                       match=r"node fc2 \(fc2\).*activation ember.qint8.*'linear_relu'"):
        eqfx.prepare_fx(model, mapping, (ember.randn(2, 32),))
    from ember.ao.quantization.backend_config import (BackendConfig, BackendPatternConfig,
                                                      DTypeConfig)
    only_linear = BackendConfig("mine").set_backend_pattern_config(
        BackendPatternConfig(ember.nn.Linear).add_dtype_config(
            DTypeConfig(ember.quint8, ember.quint8, ember.qint8, ember.float32)))
    # a pattern the backend does not list stays float, as torch.ao leaves it, and the
    # converted model's report says so
    x = ember.randn(2, 32)
    prepared = eqfx.prepare_fx(model, eq.get_default_qconfig_mapping(), (x,),
                               backend_config=only_linear)
    prepared(x)
    converted = eqfx.convert_fx(prepared)
    floats = {what for _, what in converted.quantization_report}
    assert floats and all(type(m).__name__ == "LinearReLU" for m in converted.modules()
                          if type(m).__module__.startswith("ember.ao.nn.intrinsic"))
    np.testing.assert_allclose(converted(x).numpy(), model(x).detach().numpy(), atol=0.1)
