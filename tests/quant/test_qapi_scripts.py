"""Pieces of torch.ao's API that tutorial-style scripts use, against torch.ao: the
model.apply switches of QAT, the torch.nn.intrinsic / torch.nn.qat names, custom
BackendConfigs (patterns a backend leaves out stay float), reference modules, and
quantize_dynamic's embedding entries."""
import importlib
import warnings

import numpy as np
import pytest
import torch

import ember
from quant_twins import share_random_weights

warnings.filterwarnings("ignore")


def _qat_model(lib):
    nn, F = lib.nn, lib.nn.functional

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.bn = nn.BatchNorm2d(8)
            self.pool = nn.MaxPool2d(2)
            self.fc = nn.Linear(8, 4)

        def forward(self, x):
            # pooling and views share their input's fake quantize, which sees their
            # outputs too (torch.ao's shared observers)
            x = self.pool(F.relu(self.bn(self.conv(x))))
            x = F.adaptive_avg_pool2d(x, 1)
            # the flatten method and dropout get fake quantizes of their own in torch.ao
            return self.fc(F.dropout(x.flatten(1), 0.0, self.training))
    return M().train()


def test_qat_with_disable_observer_and_freeze_bn_agrees_with_torch_ao():
    t_model, e_model = _qat_model(torch), _qat_model(ember)
    share_random_weights(t_model, e_model, np.random.default_rng(0))
    data = np.random.default_rng(1).standard_normal((4, 3, 6, 6)).astype(np.float32)
    results = []
    for lib, model in ((torch, t_model), (ember, e_model)):
        aq = importlib.import_module(f"{lib.__name__}.ao.quantization")
        qfx = importlib.import_module(f"{lib.__name__}.ao.quantization.quantize_fx")
        nniqat = importlib.import_module(f"{lib.__name__}.nn.intrinsic.qat")   # old name
        x = lib.tensor(data)
        prepared = qfx.prepare_qat_fx(model, aq.get_default_qat_qconfig_mapping("fbgemm"),
                                      (x,))
        opt = lib.optim.SGD(prepared.parameters(), lr=0.05)
        losses = []
        for step in range(4):
            loss = prepared(x).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss))
            if step == 1:
                prepared.apply(aq.disable_observer)
                prepared.apply(nniqat.freeze_bn_stats)
        flags = sorted({int(m.observer_enabled[0]) for m in prepared.modules()
                        if hasattr(m, "observer_enabled")})
        prepared.eval()
        out = qfx.convert_fx(prepared)(x).detach().numpy()
        results.append((losses, flags, out))
    (t_losses, t_flags, t_out), (e_losses, e_flags, e_out) = results
    assert e_flags == t_flags == [0]
    np.testing.assert_allclose(e_losses, t_losses, rtol=1e-5)
    assert np.abs(e_out - t_out).max() <= np.abs(t_out).max() / 128


def test_custom_backend_config_quantizes_only_its_patterns():
    def make(lib):
        nn = lib.nn
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(),
                             nn.Linear(4 * 16, 5)).eval()
    t_model, e_model = make(torch), make(ember)
    share_random_weights(t_model, e_model, np.random.default_rng(2))
    data = np.random.default_rng(3).standard_normal((3, 3, 6, 6)).astype(np.float32)
    outs = []
    for lib, model in ((torch, t_model), (ember, e_model)):
        aq = importlib.import_module(f"{lib.__name__}.ao.quantization")
        qfx = importlib.import_module(f"{lib.__name__}.ao.quantization.quantize_fx")
        bc = importlib.import_module(f"{lib.__name__}.ao.quantization.backend_config")
        nnqr = importlib.import_module(f"{lib.__name__}.ao.nn.quantized.reference")
        dt = bc.DTypeConfig(input_dtype=lib.quint8, output_dtype=lib.quint8,
                            weight_dtype=lib.qint8, bias_dtype=lib.float)
        linear = (bc.BackendPatternConfig(lib.nn.Linear)
                  .set_observation_type(bc.ObservationType.OUTPUT_USE_DIFFERENT_OBSERVER_AS_INPUT)
                  .add_dtype_config(dt).set_root_module(lib.nn.Linear)
                  .set_reference_quantized_module(nnqr.Linear))
        conf = bc.BackendConfig("only_linear").set_backend_pattern_config(linear)
        assert conf.to_dict()["name"] == "only_linear"
        x = lib.tensor(data)
        prepared = qfx.prepare_fx(model, aq.get_default_qconfig_mapping("x86"), (x,),
                                  backend_config=conf)
        prepared(x)
        converted = qfx.convert_fx(prepared, backend_config=conf)
        outs.append(converted(x).detach().numpy())
        if lib is ember:
            report = {what for _, what in converted.quantization_report}
            assert any("0" in what for what in report)          # the conv stayed float
            assert "quantized_linear" in ember.ir.print_graph(converted.graph)
    assert np.abs(outs[0] - outs[1]).max() <= 2 * np.abs(outs[0]).max() / 64


@pytest.mark.parametrize("per_channel", [False, True])
def test_reference_linear_agrees_with_torch_ao(per_channel):
    import ember.ao.nn.quantized.reference as enr
    import torch.ao.nn.quantized.reference as tnr
    t_lin, e_lin = torch.nn.Linear(5, 3), ember.nn.Linear(5, 3)
    e_lin.load_state_dict({k: ember.tensor(v.detach().numpy())
                           for k, v in t_lin.state_dict().items()})
    if per_channel:
        t_qp = dict(qscheme=torch.per_channel_affine, dtype=torch.qint8, axis=0,
                    scale=torch.tensor([0.01, 0.02, 0.005]), zero_point=torch.tensor([0, 2, -1]))
        e_qp = dict(qscheme=ember.per_channel_affine, dtype=ember.qint8, axis=0,
                    scale=[0.01, 0.02, 0.005], zero_point=[0, 2, -1])
    else:
        t_qp = dict(qscheme=torch.per_tensor_affine, dtype=torch.qint8, scale=0.004,
                    zero_point=3)
        e_qp = dict(qscheme=ember.per_tensor_affine, dtype=ember.qint8, scale=0.004,
                    zero_point=3)
    t_ref, e_ref = tnr.Linear.from_float(t_lin, t_qp), enr.Linear.from_float(e_lin, e_qp)
    x = np.random.default_rng(6).standard_normal((4, 5)).astype(np.float32)
    np.testing.assert_allclose(e_ref(ember.tensor(x)).detach().numpy(),
                               t_ref(torch.from_numpy(x)).detach().numpy(), atol=1e-6)


def test_quantize_dynamic_takes_embeddings_with_weight_only_qconfig():
    def make(lib):
        return lib.nn.Sequential(lib.nn.EmbeddingBag(10, 4, mode="sum"), lib.nn.Linear(4, 3))
    t_model, e_model = make(torch), make(ember)
    share_random_weights(t_model, e_model, np.random.default_rng(7))
    outs = []
    for lib, model in ((torch, t_model), (ember, e_model)):
        aq = importlib.import_module(f"{lib.__name__}.ao.quantization")
        q = aq.quantize_dynamic(model, {lib.nn.EmbeddingBag: aq.float_qparams_weight_only_qconfig,
                                        lib.nn.Linear: aq.default_dynamic_qconfig})
        outs.append(q(lib.tensor(np.array([[1, 2, 3], [4, 4, 9]]))).detach().numpy())
        assert type(q[0]).__name__ == "EmbeddingBag" and q[0].weight().dtype == lib.quint8
    np.testing.assert_allclose(outs[1], outs[0], atol=1e-5)
    # the default spec leaves embeddings alone, as torch.ao's
    assert type(ember.ao.quantization.quantize_dynamic(e_model)[0]) is ember.nn.EmbeddingBag


def _eager_custom_classes(lib):
    nn = lib.nn
    nnq = importlib.import_module(f"{lib.__name__}.ao.nn.quantized")

    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x):
            return self.lin(x)

    class Observed(nn.Module):
        def __init__(self, lin):
            super().__init__()
            self.lin = lin

        def forward(self, x):
            return self.lin(x)

        @classmethod
        def from_float(cls, mod):
            new = cls(mod.lin)
            new.qconfig = mod.qconfig
            return new

    class Quantized(nn.Module):
        def __init__(self, qlin):
            super().__init__()
            self.qlin = qlin

        def forward(self, x):
            return self.qlin(x)

        @classmethod
        def from_observed(cls, mod):
            mod.lin.qconfig = mod.qconfig
            mod.lin.activation_post_process = mod.activation_post_process
            return cls(nnq.Linear.from_float(mod.lin))
    return Custom, Observed, Quantized


def test_eager_custom_module_configs_agree_with_torch_ao():
    outs = []
    data = np.random.default_rng(9).standard_normal((6, 4)).astype(np.float32)
    state = None
    for lib in (torch, ember):
        aq = importlib.import_module(f"{lib.__name__}.ao.quantization")
        Custom, Observed, Quantized = _eager_custom_classes(lib)
        model = aq.QuantWrapper(lib.nn.Sequential(Custom(), lib.nn.ReLU())).eval()
        if state is None:
            state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
        model.load_state_dict({k: lib.tensor(v) for k, v in state.items()})
        model.qconfig = aq.default_qconfig
        prepared = aq.prepare(model, prepare_custom_config_dict={
            "float_to_observed_custom_module_class": {Custom: Observed}})
        assert type(prepared.module[0]) is Observed
        prepared(lib.tensor(data))
        converted = aq.convert(prepared, convert_custom_config_dict={
            "observed_to_quantized_custom_module_class": {Observed: Quantized}})
        assert type(converted.module[0]) is Quantized
        outs.append(converted(lib.tensor(data)).detach().numpy())
    assert np.abs(outs[0] - outs[1]).max() <= 1.01 * np.abs(outs[0]).max() / 128
