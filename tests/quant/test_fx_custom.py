"""prepare_fx / convert_fx options the way torch.ao's users write them, run against
torch.ao on the same weights: custom configs (objects and dict forms), standalone
modules, custom module classes, preserved attributes, dynamic and weight-only qconfigs."""
import importlib
import warnings

import numpy as np
import pytest
import torch

import ember
from quant_twins import int8_layers, share_random_weights

warnings.filterwarnings("ignore")


def _api(lib):
    return (importlib.import_module(f"{lib.__name__}.ao.quantization"),
            importlib.import_module(f"{lib.__name__}.ao.quantization.quantize_fx"),
            importlib.import_module(f"{lib.__name__}.ao.quantization.fx.custom_config"))


def _model(lib):
    nn, F = lib.nn, lib.nn.functional

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.sub = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8))
            self.fc = nn.Linear(8, 4)

        def forward(self, x):
            x = F.relu(self.conv(x))
            x = F.adaptive_avg_pool2d(x, 1).flatten(1)
            return self.fc(self.sub(x))
    return M().eval()


def _twins(seed=0):
    t, e = _model(torch), _model(ember)
    share_random_weights(t, e, np.random.default_rng(seed))
    return t, e


def _run_both(t_model, e_model, make_mapping, make_pcc=None, make_ccc=None, shape=(4, 3, 6, 6)):
    data = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    outs = []
    for lib, model, x in ((torch, t_model, torch.from_numpy(data)),
                          (ember, e_model, ember.tensor(data))):
        aq, qfx, cc = _api(lib)
        pcc = make_pcc(lib, aq, cc) if make_pcc else None
        prepared = qfx.prepare_fx(model, make_mapping(lib, aq), (x,), prepare_custom_config=pcc)
        prepared(x)
        ccc = make_ccc(lib, aq, cc) if make_ccc else None
        converted = qfx.convert_fx(prepared, convert_custom_config=ccc)
        outs.append((prepared, converted, converted(x).detach().numpy()))
    return outs


def _close(t_out, e_out, steps=3):
    scale = np.abs(t_out).max() / 64
    assert np.abs(t_out - e_out).max() <= steps * scale


def test_standalone_module_and_preserved_attributes_agree_with_torch_ao():
    t_model, e_model = _twins()
    for m in (t_model, e_model):
        m.version = 3

    def mapping(lib, aq):
        return aq.get_default_qconfig_mapping("x86")

    def pcc(lib, aq, cc):
        sub_mapping = aq.QConfigMapping().set_global(aq.get_default_qconfig("x86"))
        return (cc.PrepareCustomConfig()
                .set_standalone_module_name("sub", sub_mapping, (lib.randn(2, 8),), None, None)
                .set_preserved_attributes(["version"]))

    def ccc(lib, aq, cc):
        return {"preserved_attributes": ["version"]}       # the dict form
    (tp, tc, t_out), (ep, ec, e_out) = _run_both(t_model, e_model, mapping, pcc, ccc)
    assert ep.version == 3 and ec.version == 3 and tc.version == 3
    _close(t_out, e_out)
    # the standalone module was quantized on its own
    assert int8_layers(ec.sub, "linear")


def test_non_traceable_dict_form_and_config_round_trip():
    import ember.ao.quantization.fx.custom_config as ecc
    import torch.ao.quantization.fx.custom_config as tcc
    d = {"non_traceable_module_name": ["sub"], "preserved_attributes": ["a"],
         "input_quantized_idxs": [], "output_quantized_idxs": []}
    t, e = tcc.PrepareCustomConfig.from_dict(d), ecc.PrepareCustomConfig.from_dict(d)
    assert e.to_dict() == t.to_dict()
    c = {"preserved_attributes": ["a"]}
    assert ecc.ConvertCustomConfig.from_dict(c).to_dict() == \
        tcc.ConvertCustomConfig.from_dict(c).to_dict()
    t_model, e_model = _twins(2)

    def mapping(lib, aq):
        return aq.get_default_qconfig_mapping("x86")

    def pcc(lib, aq, cc):
        return {"non_traceable_module_name": ["sub"]}
    (_, tc, t_out), (_, ec, e_out) = _run_both(t_model, e_model, mapping, pcc)
    _close(t_out, e_out)
    assert any(name == "sub" for name, _ in ec.quantization_report)     # said, not hidden


def _custom_classes(lib):
    """A user's custom module trio in torch.ao's protocol: float -> observed
    (from_float) -> quantized (from_observed, quantized in and out)."""
    nn = lib.nn
    aq = importlib.import_module(f"{lib.__name__}.ao.quantization")
    nnq = importlib.import_module(f"{lib.__name__}.ao.nn.quantized")

    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(8, 8)

        def forward(self, x):
            return self.linear(x)

    class ObservedCustom(nn.Module):
        def __init__(self, linear):
            super().__init__()
            self.linear = linear

        def forward(self, x):
            return self.linear(x)

        @classmethod
        def from_float(cls, float_module):
            observed = cls(float_module.linear)
            observed.qconfig = float_module.qconfig
            return observed

    class QuantizedCustom(nn.Module):
        def __init__(self, qlinear):
            super().__init__()
            self.qlinear = qlinear

        def forward(self, x):
            return self.qlinear(x)

        @classmethod
        def from_observed(cls, observed):
            linear = observed.linear
            linear.qconfig = aq.default_qconfig
            linear.activation_post_process = observed.activation_post_process
            return cls(nnq.Linear.from_float(linear))
    return Custom, ObservedCustom, QuantizedCustom


def test_custom_module_classes_agree_with_torch_ao():
    def make(lib):
        nn = lib.nn
        Custom = _custom_classes(lib)[0]

        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(6, 8)
                self.custom = Custom()
                self.out = nn.Linear(8, 3)

            def forward(self, x):
                return self.out(self.custom(self.fc(x)))
        return M().eval()
    t_model, e_model = make(torch), make(ember)
    share_random_weights(t_model, e_model, np.random.default_rng(3))

    classes = {}
    for lib, model in ((torch, t_model), (ember, e_model)):
        classes[lib.__name__] = _custom_classes(lib)
        model.custom.__class__ = classes[lib.__name__][0]     # the mapping's float class

    def mapping(lib, aq):
        return aq.QConfigMapping().set_global(aq.default_qconfig)

    def pcc(lib, aq, cc):
        return cc.PrepareCustomConfig().set_float_to_observed_mapping(
            *classes[lib.__name__][:2])

    def ccc(lib, aq, cc):
        return cc.ConvertCustomConfig().set_observed_to_quantized_mapping(
            *classes[lib.__name__][1:])
    (_, tc, t_out), (_, ec, e_out) = _run_both(t_model, e_model, mapping, pcc, ccc,
                                               shape=(5, 6))
    assert type(ec.custom).__name__ == "QuantizedCustom"
    assert not ec.quantization_report
    _close(t_out, e_out, steps=2)


@pytest.mark.parametrize("qconfig", ["default_dynamic_qconfig", "per_channel_dynamic_qconfig",
                                     "float16_dynamic_qconfig"])
def test_fx_dynamic_qconfigs_agree_with_torch_ao(qconfig):
    def make(lib):
        nn = lib.nn
        return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8)).eval()
    t_model, e_model = make(torch), make(ember)
    share_random_weights(t_model, e_model, np.random.default_rng(4))

    def mapping(lib, aq):
        return aq.QConfigMapping().set_global(getattr(aq, qconfig))
    (_, tc, t_out), (_, ec, e_out) = _run_both(t_model, e_model, mapping, shape=(6, 16))
    np.testing.assert_allclose(e_out, t_out, atol=1e-5)
    kinds = {type(m).__module__ for m in ec.modules()}
    assert "ember.ao.nn.intrinsic.quantized.dynamic" in kinds
    assert not ec.quantization_report


def test_fx_embedding_weight_only_agrees_with_torch_ao():
    def make(lib):
        nn = lib.nn

        class E(nn.Module):
            def __init__(self):
                super().__init__()
                self.bag = nn.EmbeddingBag(10, 4, mode="sum")
                self.emb = nn.Embedding(10, 4)

            def forward(self, i):
                return self.bag(i.reshape(2, 3)) + self.emb(i[:2])
        return E().eval()
    t_model, e_model = make(torch), make(ember)
    share_random_weights(t_model, e_model, np.random.default_rng(5))
    idx = np.array([1, 2, 4, 5, 4, 3])
    outs = []
    for lib, model in ((torch, t_model), (ember, e_model)):
        aq, qfx, _ = _api(lib)
        i = lib.tensor(idx)
        mapping = aq.QConfigMapping().set_object_type(
            lib.nn.EmbeddingBag, aq.float_qparams_weight_only_qconfig).set_object_type(
            lib.nn.Embedding, aq.float_qparams_weight_only_qconfig)
        prepared = qfx.prepare_fx(model, mapping, (i,))
        converted = qfx.convert_fx(prepared)
        outs.append(converted(i).detach().numpy())
        if lib is ember:
            assert type(converted.bag).__module__.startswith("ember.ao.nn.quantized")
    np.testing.assert_allclose(outs[1], outs[0], atol=1e-6)


def test_functional_linear_and_conv2d_with_parameter_weights_agree_with_torch_ao():
    def make(lib):
        nn, F = lib.nn, lib.nn.functional

        class Fn(nn.Module):
            def __init__(self):
                super().__init__()
                self.cw = nn.Parameter(lib.randn(8, 3, 3, 3))
                self.cb = nn.Parameter(lib.randn(8))
                self.w = nn.Parameter(lib.randn(4, 8))
                self.b = nn.Parameter(lib.randn(4))

            def forward(self, x):
                # every argument given: torch.ao's functional conv pattern needs them
                y = F.relu(F.conv2d(x, self.cw, self.cb, (1, 1), (1, 1), (1, 1), 1))
                y = F.max_pool2d(y, 6)
                return F.linear(y.flatten(1), self.w, self.b)
        return Fn().eval()
    t_model, e_model = make(torch), make(ember)
    share_random_weights(t_model, e_model, np.random.default_rng(8))

    def mapping(lib, aq):
        return aq.get_default_qconfig_mapping("x86")
    (_, tc, t_out), (_, ec, e_out) = _run_both(t_model, e_model, mapping)
    graph = ember.ir.print_graph(ec.graph)
    assert "quantized_conv2d" in graph and "quantized_linear" in graph
    _close(t_out, e_out)


@pytest.mark.parametrize("qconfig", ["default_dynamic_qconfig", "float16_dynamic_qconfig"])
def test_fx_dynamic_lstm_agrees_with_torch_ao(qconfig):
    def make(lib):
        nn = lib.nn

        class R(nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = nn.LSTM(6, 8)
                self.cell = nn.GRUCell(8, 8)
                self.fc = nn.Linear(8, 3)

            def forward(self, x):
                out, _ = self.lstm(x)
                return self.fc(self.cell(out[-1]))
        return R().eval()
    t_model, e_model = make(torch), make(ember)
    share_random_weights(t_model, e_model, np.random.default_rng(10))

    def mapping(lib, aq):
        return aq.QConfigMapping().set_global(getattr(aq, qconfig))
    (_, tc, t_out), (_, ec, e_out) = _run_both(t_model, e_model, mapping, shape=(1, 2, 6))
    assert type(ec.lstm).__module__ == "ember.ao.nn.quantized.dynamic.rnn"
    np.testing.assert_allclose(e_out, t_out, atol=2e-5)


def _mapping_variants(lib, aq):
    qc = aq.get_default_qconfig("x86")
    nn = lib.nn
    return {
        "object_type": aq.QConfigMapping().set_global(qc).set_object_type(nn.Linear, None),
        "regex": aq.QConfigMapping().set_global(qc).set_module_name_regex("sub.*", None),
        "name": aq.QConfigMapping().set_global(qc).set_module_name("fc", None),
        "order": aq.QConfigMapping().set_global(qc).set_module_name_object_type_order(
            "sub", nn.Linear, 1, None),
        "dict": {"": qc, "module_name": [("sub.0", None)]},
    }


@pytest.mark.parametrize("variant", ["object_type", "regex", "name", "order", "dict"])
def test_qconfig_mapping_variants_agree_with_torch_ao(variant):
    t_model, e_model = _twins(11)

    def mapping(lib, aq):
        return _mapping_variants(lib, aq)[variant]
    (_, tc, t_out), (_, ec, e_out) = _run_both(t_model, e_model, mapping)
    _close(t_out, e_out)
    # the same layers stay float in both: torch.ao keeps them as float nn.Linear
    fused = {n for n, m in tc.named_modules() if type(m).__name__ == "LinearReLU"}
    t_float = sorted(n.rpartition(".")[0] if n.rpartition(".")[0] in fused else n
                     for n, m in tc.named_modules() if type(m) is torch.nn.Linear)
    e_float = sorted(what.split()[-1] for _, what in ec.quantization_report
                     if what.startswith("call_module"))
    assert t_float == e_float, (t_float, e_float)
