"""Eager-mode quantization (QuantStub / fuse_modules / prepare / convert / prepare_qat /
quantize / quantize_qat / QuantWrapper) against torch.ao's eager mode on the same float
weights and the same calibration or training data: the same script with `torch`
changed to `ember`."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.ao.nn.quantized as tnnq
import torch.ao.quantization as tq

import ember
from tests.quant.quant_twins import share_random_weights
import ember.ao.nn.quantized as ennq
import ember.ao.quantization as eq

pytestmark = pytest.mark.filterwarnings("ignore")
torch.backends.quantized.engine = "x86"


def _api(lib):
    return (tq, tnnq) if lib is torch else (eq, ennq)


def model_classes(lib):
    nn = lib.nn
    Q, nnq = _api(lib)

    class Static(nn.Module):
        """conv-bn-relu, a FloatFunctional residual add, pooling, linear-relu, hardswish."""

        def __init__(self):
            super().__init__()
            self.quant = Q.QuantStub()
            self.conv, self.bn, self.relu = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), \
                nn.ReLU()
            self.conv2 = nn.Conv2d(8, 8, 3, padding=1, groups=2)
            self.skip = nnq.FloatFunctional()
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc, self.relu2 = nn.Linear(8, 16), nn.ReLU()
            self.hs = nn.Hardswish()
            self.fc2 = nn.Linear(16, 10)
            self.dequant = Q.DeQuantStub()

        def forward(self, x):
            x = self.relu(self.bn(self.conv(self.quant(x))))
            x = self.skip.add(x, self.conv2(x))
            x = self.pool(x).flatten(1)
            return self.dequant(self.fc2(self.hs(self.relu2(self.fc(x)))))

    class QAT(nn.Module):
        def __init__(self):
            super().__init__()
            self.quant = Q.QuantStub()
            self.conv, self.bn, self.relu = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), \
                nn.ReLU()
            self.conv2, self.relu3 = nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()
            self.fc, self.relu2 = nn.Linear(8 * 8 * 8, 16), nn.ReLU()
            self.fc2 = nn.Linear(16, 10)
            self.dequant = Q.DeQuantStub()

        def forward(self, x):
            x = self.relu3(self.conv2(self.relu(self.bn(self.conv(self.quant(x))))))
            return self.dequant(self.fc2(self.relu2(self.fc(x.flatten(1)))))

    class Ops(nn.Module):
        """The elementwise / normalization modules and QFunctional's other methods."""

        def __init__(self):
            super().__init__()
            self.quant = Q.QuantStub()
            self.conv1d = nn.Conv1d(4, 6, 3, stride=2, padding=1)
            self.relu6 = nn.ReLU6()
            self.elu = nn.ELU(0.5)
            self.ln = nn.LayerNorm(8)
            self.bn = nn.BatchNorm2d(6)
            self.drop = nn.Dropout(0.3)
            self.mul, self.cat, self.add_relu = nnq.FloatFunctional(), nnq.FloatFunctional(), \
                nnq.FloatFunctional()
            self.dequant = Q.DeQuantStub()

        def forward(self, x):
            y = self.conv1d(self.quant(x))                     # [N, 6, 8]
            a = self.ln(self.elu(y))
            b = self.relu6(self.drop(y))
            z = self.mul.mul(a, b)
            z = self.cat.cat([z, self.add_relu.add_relu(a, b)], 1)   # [N, 12, 8]
            z = self.bn(z.reshape(z.shape[0], 6, 2, 8))
            return self.dequant(z)

    return {"static": Static, "qat": QAT, "ops": Ops}


def twin_models(name, rng, train=False):
    t_model, e_model = model_classes(torch)[name](), model_classes(ember)[name]()
    share_random_weights(t_model, e_model, rng)
    return t_model.train(train), e_model.train(train)


def _assert_same_quantized(t_model, e_model, x, steps=2, argmax=0.99):
    """Outputs within `steps` output quantization steps, argmax equal on `argmax` of the
    rows, and every quantized module's output qparams equal."""
    t_out = t_model(torch.from_numpy(x)).numpy()
    e_out = e_model(ember.tensor(x)).numpy()
    for name, t_mod in t_model.named_modules():
        if hasattr(t_mod, "scale") and not callable(t_mod.scale) and name:
            e_mod = e_model.get_submodule(name)
            assert type(e_mod).__name__ == type(t_mod).__name__, name
            np.testing.assert_allclose(float(e_mod.scale), float(t_mod.scale), rtol=1e-6,
                                       err_msg=name)
            assert int(e_mod.zero_point) == int(t_mod.zero_point), name
    step = float(t_model.get_submodule(_last_quantized(t_model)).scale)
    assert np.abs(t_out - e_out).max() <= steps * step + 1e-6
    if t_out.ndim == 2:
        assert (t_out.argmax(1) == e_out.argmax(1)).mean() >= argmax
    return t_out, e_out


def _last_quantized(model):
    return [n for n, m in model.named_modules() if hasattr(m, "scale") and n][-1]


def _calibrate(model, batches, lib):
    for b in batches:
        model(lib.from_numpy(b) if lib is torch else ember.tensor(b))


def test_static_ptq_agrees_with_torch_ao(rng):
    t_model, e_model = twin_models("static", rng)
    groups = [["conv", "bn", "relu"], ["fc", "relu2"]]
    t_model.qconfig, e_model.qconfig = tq.get_default_qconfig("x86"), \
        eq.get_default_qconfig("x86")
    t_model, e_model = tq.fuse_modules(t_model, groups), eq.fuse_modules(e_model, groups)
    assert type(e_model.conv).__name__ == "ConvReLU2d" and \
        type(e_model.bn).__name__ == "Identity"
    t_prep, e_prep = tq.prepare(t_model), eq.prepare(e_model)
    assert hasattr(e_prep.conv, "activation_post_process") and \
        not hasattr(e_prep.dequant, "activation_post_process")
    calib = [rng.standard_normal((4, 3, 8, 8)).astype(np.float32) for _ in range(3)]
    _calibrate(t_prep, calib, torch)
    _calibrate(e_prep, calib, ember)
    t_q, e_q = tq.convert(t_prep), eq.convert(e_prep)
    assert not hasattr(e_q, "qconfig") and not hasattr(e_q.fc2, "activation_post_process")
    _assert_same_quantized(t_q, e_q, rng.standard_normal((16, 3, 8, 8)).astype(np.float32))
    # the converted conv's weight: same integers and per-channel scales as torch.ao's
    tw, ew = t_q.conv2.weight(), e_q.conv2.weight()
    np.testing.assert_array_equal(ew.int_repr().numpy(), tw.int_repr().numpy())
    np.testing.assert_allclose(ew.q_per_channel_scales().numpy(),
                               tw.q_per_channel_scales().numpy(), rtol=1e-7)


def test_elementwise_modules_and_qfunctional_agree_with_torch_ao(rng):
    t_model, e_model = twin_models("ops", rng)
    t_model.qconfig, e_model.qconfig = tq.default_qconfig, eq.default_qconfig
    t_prep, e_prep = tq.prepare(t_model), eq.prepare(e_model)
    calib = [rng.standard_normal((4, 4, 16)).astype(np.float32) for _ in range(3)]
    _calibrate(t_prep, calib, torch)
    _calibrate(e_prep, calib, ember)
    t_q, e_q = tq.convert(t_prep), eq.convert(e_prep)
    assert type(e_q.conv1d).__name__ == "Conv1d" and type(e_q.cat).__name__ == "QFunctional"
    _assert_same_quantized(t_q, e_q, rng.standard_normal((5, 4, 16)).astype(np.float32),
                           steps=1)


@pytest.mark.parametrize("qconfig", ["default_qat_qconfig", "x86"])
def test_qat_agrees_with_torch_ao(rng, qconfig):
    """default_qat_qconfig (FakeQuantize) and the x86 QAT qconfig (the fused fake
    quantize with per-channel symmetric weights, as the QAT tutorial uses)."""
    t_model, e_model = twin_models("qat", rng, train=True)
    if qconfig == "x86":
        t_model.qconfig = tq.get_default_qat_qconfig("x86")
        e_model.qconfig = eq.get_default_qat_qconfig("x86")
    else:
        t_model.qconfig, e_model.qconfig = getattr(tq, qconfig), getattr(eq, qconfig)
    groups = [["conv", "bn", "relu"], ["conv2", "relu3"], ["fc", "relu2"]]
    t_model = tq.fuse_modules_qat(t_model, groups)
    e_model = eq.fuse_modules_qat(e_model, groups)
    assert type(e_model.conv).__name__ == "ConvBnReLU2d"
    t_prep, e_prep = tq.prepare_qat(t_model), eq.prepare_qat(e_model)
    assert type(e_prep.conv2).__name__ == type(t_prep.conv2).__name__ == "ConvReLU2d"
    assert hasattr(e_prep.fc, "weight_fake_quant")
    t_opt = torch.optim.SGD(t_prep.parameters(), lr=0.05)
    e_opt = ember.optim.SGD(e_prep.parameters(), lr=0.05)
    for _ in range(3):
        x = rng.standard_normal((8, 3, 8, 8)).astype(np.float32)
        y = rng.integers(0, 10, 8)
        t_loss = torch.nn.functional.cross_entropy(t_prep(torch.from_numpy(x)),
                                                   torch.from_numpy(y))
        e_loss = ember.nn.functional.cross_entropy(e_prep(ember.tensor(x)), ember.tensor(y))
        np.testing.assert_allclose(float(e_loss), float(t_loss), rtol=1e-4)
        t_opt.zero_grad(), e_opt.zero_grad()
        t_loss.backward(), e_loss.backward()
        t_opt.step(), e_opt.step()
    t_q, e_q = tq.convert(t_prep.eval()), eq.convert(e_prep.eval())
    assert type(e_q.conv).__name__ == "ConvReLU2d"
    # training leaves float differences of ~1e-7 in the weights, which can move a weight
    # across a rounding boundary: logits within 2 steps, a near-tie may flip
    _assert_same_quantized(t_q, e_q, rng.standard_normal((64, 3, 8, 8)).astype(np.float32),
                           argmax=0.95)


def test_quantize_and_quantize_qat_run_the_flow(rng):
    t_model, e_model = twin_models("static", rng)
    t_model.qconfig, e_model.qconfig = tq.default_qconfig, eq.default_qconfig
    calib = [rng.standard_normal((4, 3, 8, 8)).astype(np.float32) for _ in range(2)]
    t_q = tq.quantize(t_model, _calibrate, [calib, torch])
    e_q = eq.quantize(e_model, _calibrate, [calib, ember])
    assert type(e_model.fc).__name__ == "Linear"           # not inplace: the float model stays
    _assert_same_quantized(t_q, e_q, rng.standard_normal((8, 3, 8, 8)).astype(np.float32))

    t_model, e_model = twin_models("qat", rng, train=True)
    t_model.qconfig, e_model.qconfig = tq.default_qat_qconfig, eq.default_qat_qconfig
    t_q = tq.quantize_qat(t_model, _calibrate, [calib, torch])
    e_q = eq.quantize_qat(e_model, _calibrate, [calib, ember])
    _assert_same_quantized(t_q.eval(), e_q.eval(),
                           rng.standard_normal((8, 3, 8, 8)).astype(np.float32))


def test_quant_wrapper_and_add_quant_dequant(rng):
    def stack(lib):
        nn = lib.nn
        return nn.Sequential(nn.Linear(12, 20), nn.ReLU(), nn.Linear(20, 6))

    t_model, e_model = stack(torch).eval(), stack(ember).eval()
    e_model.load_state_dict({k: ember.tensor(v.numpy()) for k, v in
                             t_model.state_dict().items()})
    # QuantWrapper: quantize the input, run the quantized stack, return float
    t_w, e_w = tq.QuantWrapper(t_model), eq.QuantWrapper(e_model)
    t_w.qconfig, e_w.qconfig = tq.default_qconfig, eq.default_qconfig
    calib = [rng.standard_normal((8, 12)).astype(np.float32) for _ in range(2)]
    t_q = tq.quantize(t_w, _calibrate, [calib, torch])
    e_q = eq.quantize(e_w, _calibrate, [calib, ember])
    assert type(e_q.quant).__name__ == "Quantize" and type(e_q.module[0]).__name__ == "Linear"
    _assert_same_quantized(t_q, e_q, rng.standard_normal((8, 12)).astype(np.float32))
    # add_quant_dequant: every leaf with a qconfig gets its own stubs
    e_model.qconfig = eq.default_qconfig
    eq.propagate_qconfig_(e_model)
    wrapped = eq.add_quant_dequant(e_model)
    assert [type(m).__name__ for m in wrapped] == ["QuantWrapper"] * 3


def test_propagate_qconfig_order():
    model = ember.nn.Sequential(ember.nn.Linear(2, 2), ember.nn.Sequential(
        ember.nn.Linear(2, 2), ember.nn.ReLU()))
    model[1][0].qconfig = None                                   # own attribute wins
    eq.propagate_qconfig_(model, {ember.nn.ReLU: eq.default_qconfig,
                                  "0": eq.default_dynamic_qconfig})
    assert model[0].qconfig is eq.default_dynamic_qconfig        # name
    assert model[1][1].qconfig is eq.default_qconfig             # type
    assert model[1][0].qconfig is None and model.qconfig is None


def test_fuse_modules_errors_and_qat_mode():
    model = ember.nn.Sequential(ember.nn.Conv2d(3, 4, 3), ember.nn.BatchNorm2d(4),
                                ember.nn.ReLU(), ember.nn.Linear(4, 4))
    with pytest.raises(AssertionError, match="eval"):
        eq.fuse_modules(model.train(), ["0", "1", "2"])
    with pytest.raises(NotImplementedError, match=r"Cannot fuse modules: \(ReLU, Linear\)"):
        eq.fuse_modules(model.eval(), ["2", "3"])
    with pytest.raises(AssertionError, match="training mode"):
        eq.prepare_qat(model.eval())
    fused = eq.fuse_modules_qat(model.train(), ["0", "1", "2"])
    assert type(fused[0]).__name__ == "ConvBnReLU2d" and type(fused[2]).__name__ == "Identity"
    # eval fusion folds BN: the fused conv computes conv -> bn -> relu
    x = ember.randn(2, 3, 6, 6)
    model.eval()
    np.testing.assert_allclose(eq.fuse_modules(model, ["0", "1", "2"])[:3](x).detach().numpy(),
                               model[:3](x).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_convert_needs_an_observer():
    linear = ember.nn.Linear(4, 4)
    linear.qconfig = eq.default_qconfig
    with pytest.raises(RuntimeError, match="activation_post_process"):
        ennq.Linear.from_float(linear)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_quantize_dynamic_rnn_agrees_with_torch_ao(rng, kind):
    """One step from a given state exercises both gate matmuls: equal to float rounding.
    Over a sequence the per-call input quantization of h amplifies rounding differences
    of the float gate math by a quantization step now and then, so longer runs are held
    to torch.ao's own distance from float."""
    def net(lib):
        return getattr(lib.nn, kind)(12, 20, num_layers=2, bidirectional=True)

    t_model, e_model = torch.nn.Sequential(net(torch)), ember.nn.Sequential(net(ember))
    e_model.load_state_dict({k: ember.tensor(v.numpy()) for k, v in
                             t_model.state_dict().items()})
    t_q = tq.quantize_dynamic(t_model, dtype=torch.qint8)
    e_q = eq.quantize_dynamic(e_model)
    assert type(e_q[0]).__name__ == kind and e_q[0].weight_ih_l1_reverse.dtype is ember.qint8
    h0 = rng.standard_normal((4, 3, 20)).astype(np.float32) * 0.5
    state = (h0, h0 * 2) if kind == "LSTM" else h0

    def run(lib, model, x):
        hx = tuple(lib.tensor(s) if lib is ember else torch.from_numpy(s) for s in state) \
            if kind == "LSTM" else (ember.tensor(state) if lib is ember else
                                    torch.from_numpy(state))
        out, _ = model[0](ember.tensor(x) if lib is ember else torch.from_numpy(x), hx)
        return out.detach().numpy()

    x = rng.standard_normal((1, 3, 12)).astype(np.float32)
    np.testing.assert_allclose(run(ember, e_q, x), run(torch, t_q, x), atol=1e-5)
    x = rng.standard_normal((6, 3, 12)).astype(np.float32)
    e_out, t_out, f_out = run(ember, e_q, x), run(torch, t_q, x), run(torch, t_model, x)
    assert np.abs(e_out - t_out).max() <= 2 * np.abs(t_out - f_out).max() + 1e-5
    assert np.abs(e_out - t_out).mean() <= 2 * np.abs(t_out - f_out).mean() + 1e-6


def test_eager_converted_model_compiles_and_exports(rng):
    """An eager-converted model is made of the same registry ops as convert_fx's:
    ember.compile runs it with the same results, and ember.export records them."""
    t_model, e_model = twin_models("static", rng)
    e_model.qconfig = eq.get_default_qconfig("x86")
    e_model = eq.fuse_modules(e_model, [["conv", "bn", "relu"], ["fc", "relu2"]])
    x = ember.tensor(rng.standard_normal((4, 3, 8, 8)).astype(np.float32))
    quantized = eq.quantize(e_model, lambda m: m(x), [])
    np.testing.assert_array_equal(ember.compile(quantized)(x).numpy(), quantized(x).numpy())
    text = str(ember.export(quantized, (x,)))
    assert "quantized_conv2d(" in text and "quantized_add(" in text and \
        "quantized_linear(" in text


def test_from_float_refuses_the_wrong_module():
    conv = ember.nn.Conv2d(2, 2, 1)
    conv.qconfig = eq.default_qconfig
    with pytest.raises(TypeError, match="expects nn.Linear"):
        ennq.Linear.from_float(conv)


def test_quantized_engine_switch_and_old_names():
    assert ember.backends.quantized.supported_engines == \
        torch.backends.quantized.supported_engines
    before = ember.backends.quantized.engine
    try:
        ember.backends.quantized.engine = "qnnpack"
        assert ember.backends.quantized.engine == "qnnpack"
        with pytest.raises(RuntimeError, match="quantized engine foo is not supported"):
            ember.backends.quantized.engine = "foo"
    finally:
        ember.backends.quantized.engine = before
    # torch.quantization / torch.nn.quantized: the older names of the same objects
    assert ember.quantization.prepare is eq.prepare and \
        ember.quantization.fuse_modules is eq.fuse_modules
    assert ember.nn.quantized.Linear is ennq.Linear


def test_quantized_conv3d_agrees_with_torch_ao(rng):
    def net(lib):
        Q = tq if lib is torch else eq
        return lib.nn.Sequential(Q.QuantStub(), lib.nn.Conv3d(3, 6, 3, stride=(1, 2, 1),
                                                             padding=1, groups=3),
                                 lib.nn.ReLU(), lib.nn.Conv3d(6, 4, 2), Q.DeQuantStub())

    t_model, e_model = net(torch).eval(), net(ember).eval()
    e_model.load_state_dict({k: ember.tensor(v.numpy()) for k, v in
                             t_model.state_dict().items()})
    t_model.qconfig, e_model.qconfig = tq.get_default_qconfig("x86"), \
        eq.get_default_qconfig("x86")
    calib = [rng.standard_normal((2, 3, 5, 6, 5)).astype(np.float32) for _ in range(2)]
    t_model, e_model = tq.fuse_modules(t_model, ["1", "2"]), eq.fuse_modules(e_model, ["1", "2"])
    t_q = tq.quantize(t_model, _calibrate, [calib, torch])
    e_q = eq.quantize(e_model, _calibrate, [calib, ember])
    assert type(e_q[1]).__name__ == "ConvReLU3d" and type(e_q[3]).__name__ == "Conv3d"
    _assert_same_quantized(t_q, e_q, rng.standard_normal((2, 3, 5, 6, 5)).astype(np.float32))


def test_quantized_embeddings_agree_with_torch_ao(rng, tmp_path):
    """Weight-only, per row with float zero points (float_qparams_weight_only_qconfig)."""
    def net(lib):
        class Net(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.emb = lib.nn.Embedding(50, 16)
                self.bag = lib.nn.EmbeddingBag(50, 16, mode="sum", include_last_offset=True)
                self.fc = lib.nn.Linear(16, 4)

            def forward(self, i, j, o, w):
                return self.fc(self.emb(i).sum(1) + self.bag(j, o, per_sample_weights=w))
        return Net()

    t_model, e_model = net(torch).eval(), net(ember).eval()
    e_model.load_state_dict({k: ember.tensor(v.numpy()) for k, v in
                             t_model.state_dict().items()})
    for model, Q in ((t_model, tq), (e_model, eq)):
        model.emb.qconfig = model.bag.qconfig = Q.float_qparams_weight_only_qconfig
    t_q, e_q = tq.convert(tq.prepare(t_model)), eq.convert(eq.prepare(e_model))
    tw, ew = t_q.emb.weight(), e_q.emb.weight()
    assert ew.qscheme() is ember.per_channel_affine_float_qparams
    np.testing.assert_array_equal(ew.int_repr().numpy(), tw.int_repr().numpy())
    np.testing.assert_array_equal(ew.q_per_channel_zero_points().numpy(),
                                  tw.q_per_channel_zero_points().numpy())
    np.testing.assert_allclose(ew.dequantize().numpy(), tw.dequantize().numpy(), rtol=0,
                               atol=0)
    i, j = rng.integers(0, 50, (3, 5)), rng.integers(0, 50, 10)
    o, w = np.array([0, 4, 7, 10]), rng.standard_normal(10).astype(np.float32)
    t_out = t_q(*(torch.from_numpy(a) for a in (i, j, o, w))).detach().numpy()
    e_out = e_q(*(ember.tensor(a) for a in (i, j, o, w))).detach().numpy()
    np.testing.assert_allclose(e_out, t_out, rtol=1e-5, atol=1e-5)
    # float zero points survive save_weights / load_weights
    ember.save_weights(e_q, tmp_path / "q.safetensors")
    fresh = eq.convert(eq.prepare(e_model))
    ember.load_weights(fresh, tmp_path / "q.safetensors")
    np.testing.assert_array_equal(
        fresh(*(ember.tensor(a) for a in (i, j, o, w))).detach().numpy(), e_out)
    # torch.ao's quantized EmbeddingBag sums whatever the mode: so does ember's, saying so
    with pytest.warns(UserWarning, match="sums the bags"):
        mean_bag = ennq.EmbeddingBag(10, 4, mode="mean")
    assert mean_bag.mode == "mean"


def test_convert_without_calibration_names_the_module():
    model = ember.nn.Sequential(eq.QuantStub(), ember.nn.Linear(4, 4), eq.DeQuantStub()).eval()
    model.qconfig = eq.default_qconfig
    with pytest.warns(UserWarning, match=r"convert: 1 \(Linear\): its observer saw no data"):
        eq.convert(eq.prepare(model))
