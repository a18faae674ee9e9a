"""Eager prepare / prepare_qat give training-mode Sigmoid, Tanh, Hardsigmoid and Softmax a
FixedQParamsFakeQuantize (sigmoid-like 1/256, zp 0; tanh 2/256, zp 128) as torch.ao does,
whatever the qconfig's activation; eval-mode prepare and modules without a qconfig get
none. The quantizable LSTM's gates (prepared with prepare_qat for a training LSTM) get
them too. Checked against torch.ao (the oracle): module tree reprs, observer types and
qparams, fake-quantized outputs, and the converted model's outputs."""
from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch
import torch.ao.quantization as tq

import ember
import ember.ao.quantization as eq
from quant_twins import share_random_weights

pytestmark = pytest.mark.filterwarnings("ignore")
warnings.filterwarnings("ignore")


def _model(nn, Q, with_lstm: bool, with_softmax: bool = True):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.quant = Q.QuantStub()
            self.fc = nn.Linear(4, 4)
            self.sig, self.tanh = nn.Sigmoid(), nn.Tanh()
            # (torch.ao's eager convert leaves Softmax float, which then fails on int8)
            self.hs = nn.Hardsigmoid()
            self.sm = nn.Softmax(dim=-1) if with_softmax else nn.Identity()
            self.lstm = nn.LSTM(4, 3) if with_lstm else None
            self.dequant = Q.DeQuantStub()

        def forward(self, x):
            x = self.fc(self.quant(x))
            x = self.sm(self.hs(self.tanh(self.sig(x))))
            if self.lstm is not None:
                x, _ = self.lstm(x)
            return self.dequant(x)
    return M()


def _twins(seed: int, with_lstm: bool = False, training: bool = True,
           with_softmax: bool = True):
    t_model = _model(torch.nn, tq, with_lstm, with_softmax)
    e_model = _model(ember.nn, eq, with_lstm, with_softmax)
    share_random_weights(t_model, e_model, np.random.default_rng(seed))
    return t_model.train(training), e_model.train(training)


def _shape_of(text: str, lib: str) -> str:
    """A converted model's repr without its trained scales / zero points (float noise)."""
    return re.sub(r"(scale|zero_point)=[^,)]+", r"\1=?", text.replace(lib, "LIB"))


def _posts(model) -> dict:
    out = {}
    for name, mod in model.named_modules():
        post = mod._modules.get("activation_post_process")
        if post is not None:
            scale, zero_point = post.calculate_qparams() if type(post).__name__ != \
                "FusedMovingAvgObsFakeQuantize" else (post.scale, post.zero_point)
            out[name] = (type(post).__name__, np.asarray(scale.numpy(), np.float64).ravel(),
                         np.asarray(zero_point.numpy()).ravel())
    return out


def _assert_same_posts(t_model, e_model):
    t_posts, e_posts = _posts(t_model), _posts(e_model)
    assert sorted(t_posts) == sorted(e_posts)
    for name, (kind, scale, zp) in t_posts.items():
        assert e_posts[name][0] == kind, name
        if kind.startswith("FixedQParams"):
            np.testing.assert_allclose(e_posts[name][1], scale, rtol=0, atol=0)
            np.testing.assert_array_equal(e_posts[name][2], zp)


@pytest.mark.parametrize("with_lstm", [False, True])
def test_prepare_qat_fixed_qparams_tree(with_lstm):
    t_model, e_model = _twins(0, with_lstm)
    t_model.qconfig, e_model.qconfig = tq.get_default_qat_qconfig("x86"), \
        eq.get_default_qat_qconfig("x86")
    t_prep, e_prep = tq.prepare_qat(t_model), eq.prepare_qat(e_model)
    assert repr(e_prep).replace("ember", "LIB") == repr(t_prep).replace("torch", "LIB")
    _assert_same_posts(t_prep, e_prep)
    assert type(e_prep.sig.activation_post_process) is eq.FixedQParamsFakeQuantize
    assert type(e_prep.tanh.activation_post_process.activation_post_process) is \
        eq.FixedQParamsObserver


@pytest.mark.parametrize("training", [False, True])
def test_prepare_fixed_qparams_only_in_training(training):
    """Post-training prepare of a training-mode model also gets fixed-qparams fake
    quantizes; in eval mode Sigmoid & co. get no observer at all (as torch.ao)."""
    t_model, e_model = _twins(1, training=training)
    t_model.qconfig, e_model.qconfig = tq.default_qconfig, eq.default_qconfig
    t_model.tanh.qconfig = e_model.tanh.qconfig = None       # no qconfig: not observed
    t_prep, e_prep = tq.prepare(t_model), eq.prepare(e_model)
    _assert_same_posts(t_prep, e_prep)
    assert ("sig" in _posts(e_prep)) is training
    assert "tanh" not in _posts(e_prep)


def test_fixed_qparams_fake_quant_outputs_and_convert():
    t_model, e_model = _twins(2, with_lstm=True, with_softmax=False)
    t_model.qconfig, e_model.qconfig = tq.get_default_qat_qconfig("x86"), \
        eq.get_default_qat_qconfig("x86")
    t_prep, e_prep = tq.prepare_qat(t_model), eq.prepare_qat(e_model)
    rng = np.random.default_rng(3)
    batches = [rng.standard_normal((5, 2, 4)).astype(np.float32) for _ in range(3)]
    for batch in batches:          # training steps: observers move, outputs fake quantized
        t_out = t_prep(torch.from_numpy(batch)).detach().numpy()
        e_out = e_prep(ember.tensor(batch)).detach().numpy()
        np.testing.assert_allclose(e_out, t_out, atol=2e-2)
    # the sigmoid's output is on its fixed 1/256 grid
    x = rng.standard_normal((5, 2, 4)).astype(np.float32)
    sig_out = e_prep.sig(ember.tensor(x)).detach().numpy()
    np.testing.assert_allclose(sig_out * 256, np.rint(sig_out * 256), atol=1e-4)
    t_conv = tq.convert(t_prep.eval())
    e_conv = eq.convert(e_prep.eval())
    assert _shape_of(repr(e_conv), "ember") == _shape_of(repr(t_conv), "torch")
    with torch.no_grad(), ember.no_grad():
        t_out = t_conv(torch.from_numpy(x)).numpy()
        e_out = e_conv(ember.tensor(x)).numpy()
    np.testing.assert_allclose(e_out, t_out, atol=3e-2)


def _fx_model(lib):
    nn = lib.nn

    class Heads(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.sig, self.tanh, self.hs = nn.Sigmoid(), nn.Tanh(), nn.Hardsigmoid()
            self.sm = nn.Softmax(dim=1)
            self.fc2 = nn.Linear(4, 4)

        def forward(self, x):
            x = self.fc(x)
            y = self.sig(x) + self.tanh(x) + self.hs(x) + self.sm(x)
            return self.fc2(y + lib.sigmoid(x) + x.tanh())
    return Heads().train()


def _fx_fixed_posts(gm) -> dict:
    """{observed node: (fake quantize type, scale, zero point)} for fixed-qparams ones."""
    modules = dict(gm.named_modules())
    out = {}
    for node in gm.graph.nodes:
        post = modules.get(str(node.target)) if node.op == "call_module" else None
        if post is not None and type(post).__name__ == "FixedQParamsFakeQuantize":
            out[node.args[0].name] = (float(post.scale.numpy().ravel()[0]),
                                      int(post.zero_point.numpy().ravel()[0]))
    return out


def test_prepare_qat_fx_fixed_qparams():
    import torch.ao.quantization.quantize_fx as tqfx
    import ember.ao.quantization.quantize_fx as eqfx
    t_model, e_model = _fx_model(torch), _fx_model(ember)
    share_random_weights(t_model, e_model, np.random.default_rng(4))
    x = np.random.default_rng(5).standard_normal((3, 4)).astype(np.float32)
    t_prep = tqfx.prepare_qat_fx(t_model, tq.get_default_qat_qconfig_mapping("x86"),
                                 (torch.from_numpy(x),))
    e_prep = eqfx.prepare_qat_fx(e_model, eq.get_default_qat_qconfig_mapping("x86"),
                                 (ember.tensor(x),))
    t_posts, e_posts = _fx_fixed_posts(t_prep), _fx_fixed_posts(e_prep)
    assert len(t_posts) == 6 and e_posts == t_posts


def _softmax_model(nn):
    class Scores(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.sm, self.fc2 = nn.Linear(4, 4), nn.Softmax(dim=1), nn.Linear(4, 4)

        def forward(self, x):
            return self.fc2(self.sm(self.fc(x)))
    return Scores()


@pytest.mark.parametrize("qat", [False, True])
def test_convert_fx_quantized_softmax_module(qat):
    """convert_fx swaps nn.Softmax (fixed output qparams 1/256, 0) for torch.ao's
    quantized Softmax, which takes and returns int8 values and saves no state."""
    import torch.ao.quantization.quantize_fx as tqfx
    import ember.ao.quantization.quantize_fx as eqfx
    t_model, e_model = _softmax_model(torch.nn), _softmax_model(ember.nn)
    share_random_weights(t_model, e_model, np.random.default_rng(6))
    t_model.train(qat), e_model.train(qat)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    t_prep_fn, e_prep_fn = (tqfx.prepare_qat_fx, eqfx.prepare_qat_fx) if qat else \
        (tqfx.prepare_fx, eqfx.prepare_fx)
    t_map = tq.get_default_qat_qconfig_mapping("x86") if qat else \
        tq.get_default_qconfig_mapping("x86")
    e_map = eq.get_default_qat_qconfig_mapping("x86") if qat else \
        eq.get_default_qconfig_mapping("x86")
    t_prep = t_prep_fn(t_model, t_map, (torch.from_numpy(x),))
    e_prep = e_prep_fn(e_model, e_map, (ember.tensor(x),))
    for _ in range(2):
        batch = rng.standard_normal((8, 4)).astype(np.float32)
        t_prep(torch.from_numpy(batch))
        e_prep(ember.tensor(batch))
    t_q, e_q = tqfx.convert_fx(t_prep.eval()), eqfx.convert_fx(e_prep.eval())
    assert repr(e_q.sm) == repr(t_q.sm) == "QuantizedSoftmax(dim=1)"
    assert (e_q.sm.scale, e_q.sm.zero_point) == (t_q.sm.scale, t_q.sm.zero_point)
    assert sorted(e_q.state_dict()) == sorted(t_q.state_dict())
    sm_node = next(n for n in e_q.graph.nodes if n.target == "sm")
    assert sm_node.args[0].target == "fc"         # int8 in, int8 out
    with torch.no_grad(), ember.no_grad():
        t_out = t_q(torch.from_numpy(x)).numpy()
        e_out = e_q(ember.tensor(x)).numpy()
    np.testing.assert_allclose(e_out, t_out, atol=0.05)
