"""Custom configs and QAT from PyTorch's TestQuantizeFx, against torch.ao on the same
weights: PrepareCustomConfig (standalone modules, non-traceable modules and classes,
float_to_observed custom modules, input / output quantized indexes, preserved
attributes) and ConvertCustomConfig (observed_to_quantized), their dict forms, and
prepare_qat_fx trained with disable_observer / freeze_bn_stats."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from qfx_suite_common import api, assert_same, batches, count, flow, node_kinds, tensor, twins

pytestmark = pytest.mark.filterwarnings("ignore")


def _default(lib, aq):
    return aq.get_default_qconfig_mapping("x86")


_SUB_CLASSES = {}


def _sub_class(lib):
    """One Sub class per library, so a config can name the class the model uses."""
    if lib.__name__ not in _SUB_CLASSES:
        nn = lib.nn

        class Sub(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(6, 6)

            def forward(self, x):
                return self.fc(x)
        _SUB_CLASSES[lib.__name__] = Sub
    return _SUB_CLASSES[lib.__name__]


def _with_sub(lib):
    nn = lib.nn
    Sub = _sub_class(lib)

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(6, 6)
            self.sub = Sub()
            self.fc2 = nn.Linear(6, 4)
            self.keep_me = 7

        def forward(self, x):
            return self.fc2(self.sub(self.fc1(x)))
    return M()


SHAPE = (5, 6)


def test_non_traceable_module_name_stays_float():
    t, e = flow(_with_sub, _default, SHAPE,
                prepare=lambda lib, aq, cc: cc.PrepareCustomConfig().set_non_traceable_module_names(["sub"]))
    assert_same(t, e)
    assert ("call_module", "Sub") in node_kinds(e[1])
    assert "Quantized" not in repr(e[1].sub.fc)


def test_non_traceable_module_class_stays_float():
    t, e = flow(_with_sub, _default, SHAPE, prepare=lambda lib, aq, cc: cc.PrepareCustomConfig()
                .set_non_traceable_module_classes([_sub_class(lib)]))
    assert_same(t, e)
    assert "Quantized" not in repr(e[1].sub.fc)


def test_non_traceable_module_name_in_the_dict_form():
    t, e = flow(_with_sub, _default, SHAPE,
                prepare=lambda lib, aq, cc: {"non_traceable_module_name": ["sub"]})
    assert_same(t, e)


def test_standalone_module_is_prepared_and_converted_on_its_own():
    def prepare(lib, aq, cc):
        return cc.PrepareCustomConfig().set_standalone_module_name(
            "sub", aq.get_default_qconfig_mapping("x86"), (lib.randn(*SHAPE),), None, None)
    t, e = flow(_with_sub, _default, SHAPE, prepare=prepare)
    # the standalone module: prepared and converted as torch.ao's, float in and out
    assert node_kinds(e[1].sub) == node_kinds(t[1].sub)
    assert list(e[1].sub.state_dict()) == list(t[1].sub.state_dict())
    # after it, torch.ao 2.13 leaves fc2 a reference Linear reading the float output,
    # ember observes fc2's input and lowers it: the values agree
    np.testing.assert_allclose(e[2], t[2], atol=1e-4)


def test_preserved_attributes_survive_prepare_and_convert():
    t, e = flow(_with_sub, _default, SHAPE,
                prepare=lambda lib, aq, cc: cc.PrepareCustomConfig().set_preserved_attributes(["keep_me"]),
                convert=lambda lib, aq, cc: cc.ConvertCustomConfig().set_preserved_attributes(["keep_me"]))
    assert e[0].keep_me == e[1].keep_me == t[1].keep_me == 7


@pytest.mark.parametrize("where", ["input", "output", "both"])
def test_input_and_output_quantized_indexes(where):
    """The model takes a quantized input (no quantize_per_tensor for it) and/or returns
    the quantized output (no dequantize), as torch.ao's graph does."""
    def prepare(lib, aq, cc):
        c = cc.PrepareCustomConfig()
        if where in ("input", "both"):
            c = c.set_input_quantized_indexes([0])
        if where in ("output", "both"):
            c = c.set_output_quantized_indexes([0])
        return c
    t_model, e_model = twins(_with_sub)
    x = batches(SHAPE, n=1)[0]
    got = {}
    for lib, model in ((torch, t_model), (ember, e_model)):
        aq, qfx, cc = api(lib)
        p = qfx.prepare_fx(model, _default(lib, aq), (tensor(lib, x),),
                           prepare_custom_config=prepare(lib, aq, cc))
        p(tensor(lib, x))
        q = qfx.convert_fx(p)
        got[lib.__name__] = (node_kinds(q), q)
    assert got["ember"][0] == got["torch"][0]
    if where == "output":
        assert got["ember"][0][-1] == ("call_module", "Linear")
    t_q, e_q = got["torch"][1], got["ember"][1]
    with torch.no_grad(), ember.no_grad():
        if where in ("input", "both"):
            tx = torch.quantize_per_tensor(torch.from_numpy(x), 0.05, 128, torch.quint8)
            ex = ember.quantize_per_tensor(ember.tensor(x), 0.05, 128, ember.quint8)
        else:
            tx, ex = torch.from_numpy(x), ember.tensor(x)
        ty, ey = t_q(tx), e_q(ex)
    if where in ("output", "both"):
        assert ey.is_quantized and ty.is_quantized
        assert float(ey.q_scale()) == pytest.approx(float(ty.q_scale()), rel=1e-6)
        ty, ey = ty.dequantize(), ey.dequantize()
    np.testing.assert_allclose(ey.numpy(), ty.numpy(), atol=1e-5)


def _custom_module_classes(lib):
    nn = lib.nn

    class FloatCustom(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(6, 6)

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
        def __init__(self, linear):
            super().__init__()
            self.linear = linear

        def forward(self, x):
            return self.linear(x)

        @classmethod
        def from_observed(cls, observed):
            qconfig = observed.qconfig
            observed.linear.qconfig = qconfig
            observed.linear.activation_post_process = observed.activation_post_process
            nnq = __import__(f"{lib.__name__}.ao.nn.quantized", fromlist=["Linear"])
            return cls(nnq.Linear.from_float(observed.linear))

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Linear(6, 6)
            self.custom = FloatCustom()

        def forward(self, x):
            return self.custom(self.conv(x))
    return M, FloatCustom, ObservedCustom, QuantizedCustom


def test_float_to_observed_to_quantized_custom_module():
    results = {}
    x = batches(SHAPE, n=1)[0]
    for lib in (torch, ember):
        M, Float, Observed, Quantized = _custom_module_classes(lib)
        aq, qfx, cc = api(lib)
        model = M().eval()
        results[lib.__name__ + "_model"] = model
    # same weights
    from quant_twins import share_random_weights
    share_random_weights(results["torch_model"], results["ember_model"], np.random.default_rng(0))
    for lib in (torch, ember):
        M, Float, Observed, Quantized = _custom_module_classes(lib)
        model = results[lib.__name__ + "_model"]
        model.custom.__class__ = Float
        aq, qfx, cc = api(lib)
        pcc = cc.PrepareCustomConfig().set_float_to_observed_mapping(Float, Observed)
        ccc = cc.ConvertCustomConfig().set_observed_to_quantized_mapping(Observed, Quantized)
        p = qfx.prepare_fx(model, _default(lib, aq), (tensor(lib, x),), prepare_custom_config=pcc)
        assert type(p.custom) is Observed
        p(tensor(lib, x))
        q = qfx.convert_fx(p, convert_custom_config=ccc)
        assert type(q.custom) is Quantized
        with torch.no_grad(), ember.no_grad():
            results[lib.__name__] = (node_kinds(q), q(tensor(lib, x)).numpy())
    assert results["ember"][0] == results["torch"][0]
    np.testing.assert_allclose(results["ember"][1], results["torch"][1], atol=1e-5)


def test_custom_config_dict_forms_round_trip():
    for lib in (torch, ember):
        aq, qfx, cc = api(lib)
        M, Float, Observed, Quantized = _custom_module_classes(lib)
        pcc = (cc.PrepareCustomConfig().set_non_traceable_module_names(["a"])
               .set_non_traceable_module_classes([Float])
               .set_float_to_observed_mapping(Float, Observed)
               .set_input_quantized_indexes([0]).set_output_quantized_indexes([0])
               .set_preserved_attributes(["attr"]))
        d = pcc.to_dict()
        assert d["non_traceable_module_name"] == ["a"]
        assert d["float_to_observed_custom_module_class"] == {"static": {Float: Observed}}
        assert d["input_quantized_idxs"] == [0] and d["output_quantized_idxs"] == [0]
        assert cc.PrepareCustomConfig.from_dict(d).to_dict() == d
        ccc = cc.ConvertCustomConfig().set_observed_to_quantized_mapping(Observed, Quantized) \
            .set_preserved_attributes(["attr"])
        assert cc.ConvertCustomConfig.from_dict(ccc.to_dict()).to_dict() == ccc.to_dict()


def _qat_model(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn, self.relu = nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU()
            self.fc = nn.Linear(16, 3)

        def forward(self, x):
            return self.fc(self.relu(self.bn(self.conv(x))).flatten(1))
    return M()


def test_prepare_qat_fx_trains_with_disable_observer_and_freeze_bn_stats_like_torch():
    t_model, e_model = twins(_qat_model)
    data = batches((4, 2, 4, 4), n=5, seed=4)
    target = batches((4, 3), n=5, seed=5)
    outs = {}
    for lib, model in ((torch, t_model), (ember, e_model)):
        aq, qfx, _ = api(lib)
        model.train()
        p = qfx.prepare_qat_fx(model, aq.get_default_qat_qconfig_mapping("x86"),
                               (tensor(lib, data[0]),))
        opt = lib.optim.SGD(p.parameters(), lr=0.05)
        losses = []
        for step, (x, y) in enumerate(zip(data, target)):
            if step == 2:
                p.apply(aq.disable_observer)
            if step == 3:
                p.apply(__import__(f"{lib.__name__}.ao.nn.intrinsic.qat",
                                   fromlist=["freeze_bn_stats"]).freeze_bn_stats)
            opt.zero_grad()
            loss = ((p(tensor(lib, x)) - tensor(lib, y)) ** 2).mean()
            loss.backward()
            opt.step()
            losses.append(float(loss))
        p.eval()
        q = qfx.convert_fx(p)
        with torch.no_grad(), ember.no_grad():
            outs[lib.__name__] = (losses, q(tensor(lib, data[0])).numpy(), node_kinds(q))
    np.testing.assert_allclose(outs["ember"][0], outs["torch"][0], rtol=1e-4)
    assert outs["ember"][2] == outs["torch"][2]
    np.testing.assert_allclose(outs["ember"][1], outs["torch"][1], atol=2e-2)
