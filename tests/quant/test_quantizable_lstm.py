"""Eager-mode static quantization of nn.LSTM against torch.ao (the oracle): `prepare`
swaps nn.LSTM for the quantizable LSTM (torch.ao's default custom module config), whose
Linear / FloatFunctional pieces get observers; `convert` turns it into the quantized LSTM.
Twins with the same float weights and calibration batches give the same module tree,
reprs and state_dict keys, the same observer qparams, and outputs within a few
quantization steps; torch.ao's converted state_dict loads into ember's model."""
from __future__ import annotations

import copy
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


def _model(nn, Q, **lstm_kwargs):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.quant = Q.QuantStub()
            self.lstm = nn.LSTM(4, 3, **lstm_kwargs)
            self.dequant = Q.DeQuantStub()

        def forward(self, x, hidden=None):
            y, (h, c) = self.lstm(self.quant(x), hidden)
            return self.dequant(y), self.dequant(h), self.dequant(c)
    return M().eval()


def _prepared_twins(seed: int, **lstm_kwargs):
    rng = np.random.default_rng(seed)
    t_model, e_model = _model(torch.nn, tq, **lstm_kwargs), _model(ember.nn, eq, **lstm_kwargs)
    share_random_weights(t_model, e_model, rng)
    t_model.qconfig, e_model.qconfig = tq.get_default_qconfig("x86"), \
        eq.get_default_qconfig("x86")
    shape = (2, 4, 4) if lstm_kwargs.get("batch_first") else (4, 2, 4)
    calib = [rng.standard_normal(shape).astype(np.float32) for _ in range(2)]
    return tq.prepare(t_model), eq.prepare(e_model), calib


def _calibrated_twins(seed: int, **lstm_kwargs):
    t_prep, e_prep, calib = _prepared_twins(seed, **lstm_kwargs)
    with torch.no_grad(), ember.no_grad():
        for batch in calib:
            t_prep(torch.from_numpy(batch))
            e_prep(ember.tensor(batch))
    return t_prep, e_prep, calib


def _text(module, lib: str) -> str:
    return repr(module).replace(lib, "LIB")


def _observer_qparams(model) -> dict:
    out = {}
    for name, mod in model.named_modules():
        post = getattr(mod, "activation_post_process", None)
        if post is not None and hasattr(post, "calculate_qparams"):
            scale, zero_point = post.calculate_qparams()
            out[name] = (np.asarray(scale.numpy(), np.float64).reshape(-1),
                         np.asarray(zero_point.numpy()).reshape(-1))
    return out


def _outputs(model, x, lib):
    with (torch.no_grad() if lib is torch else ember.no_grad()):
        return [o.numpy() for o in model(lib.tensor(x) if lib is ember else torch.from_numpy(x))]


def _ogate_scales(converted) -> float:
    return max(m.scale for n, m in converted.named_modules() if n.endswith("ogate_cy"))


CONFIGS = {"default": {}, "two_layers": {"num_layers": 2},
           "bidirectional": {"bidirectional": True}, "batch_first": {"batch_first": True},
           "no_bias": {"bias": False},
           "two_layers_bidirectional": {"num_layers": 2, "bidirectional": True}}


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_prepared_lstm_matches_torch_ao(config):
    t_prep, e_prep, _ = _prepared_twins(0, **CONFIGS[config])
    assert type(e_prep.lstm).__name__ == "LSTM"
    assert type(e_prep.lstm).__module__.startswith("ember.ao.nn.quantizable")
    assert _text(e_prep, "ember") == _text(t_prep, "torch")
    assert list(e_prep.state_dict()) == list(t_prep.state_dict())


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_calibrated_observers_and_converted_lstm_match_torch_ao(config):
    t_prep, e_prep, calib = _calibrated_twins(1, **CONFIGS[config])
    t_q, e_q = _observer_qparams(t_prep), _observer_qparams(e_prep)
    assert sorted(e_q) == sorted(t_q)
    for name in t_q:
        # the observers see float values computed by each library's own kernels
        np.testing.assert_allclose(e_q[name][0], t_q[name][0], rtol=1e-4, err_msg=name)
        np.testing.assert_allclose(e_q[name][1], t_q[name][1], atol=1, err_msg=name)
    t_conv, e_conv = tq.convert(t_prep), eq.convert(e_prep)
    assert type(e_conv.lstm).__name__ == "LSTM"
    assert e_conv.lstm._get_name() == "QuantizedLSTM"
    assert re.sub(r"scale=[0-9.e-]+|zero_point=\d+", "", _text(e_conv, "ember")) == \
        re.sub(r"scale=[0-9.e-]+|zero_point=\d+", "", _text(t_conv, "torch"))
    assert list(e_conv.state_dict()) == list(t_conv.state_dict())
    # quantized outputs: the int8 pieces round the same way; a value one step off in a
    # gate (from the float observers above) can move an output by a few steps of ogate_cy
    step = _ogate_scales(t_conv)
    for got, want in zip(_outputs(e_conv, calib[0], ember), _outputs(t_conv, calib[0], torch)):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=4 * step)
        assert np.mean(np.abs(got - want) <= step / 2) > 0.9


def _to_ember(value):
    """A torch state entry as ember's (quantized tensors rebuilt from their values and
    qparams, tuples item by item, dtypes by name)."""
    if value is None:
        return None
    if isinstance(value, tuple):
        return tuple(_to_ember(v) for v in value)
    if isinstance(value, torch.dtype):
        return getattr(ember, str(value).split(".")[-1])
    if not value.is_quantized:
        return ember.tensor(value.detach().numpy())
    dtype = getattr(ember, str(value.dtype).split(".")[-1])
    real = ember.tensor(value.dequantize().numpy())
    if value.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
        return ember.quantize_per_channel(
            real, ember.tensor(value.q_per_channel_scales().numpy()),
            ember.tensor(value.q_per_channel_zero_points().numpy()),
            value.q_per_channel_axis(), dtype)
    return ember.quantize_per_tensor(real, value.q_scale(), value.q_zero_point(), dtype)


@pytest.mark.parametrize("config", ["default", "two_layers_bidirectional"])
def test_torch_ao_state_dict_loads_and_gives_its_outputs(config):
    """With torch.ao's qparams and int8 weights loaded, every step is an int8 op with
    the same inputs: the outputs agree to a quantization step (torch's requantize rounds
    through float32 in places where ember's rounding can land one step apart)."""
    t_prep, e_prep, calib = _calibrated_twins(2, **CONFIGS[config])
    t_conv, e_conv = tq.convert(t_prep), eq.convert(e_prep)
    e_conv.load_state_dict({k: _to_ember(v) for k, v in t_conv.state_dict().items()})
    assert repr(e_conv).replace("ember", "torch") == repr(t_conv)
    step = _ogate_scales(t_conv)
    for got, want in zip(_outputs(e_conv, calib[1], ember), _outputs(t_conv, calib[1], torch)):
        np.testing.assert_allclose(got, want, atol=2 * step)
        assert np.mean(got == want) > 0.9


def test_quantized_hidden_state_input_matches_torch_ao():
    t_prep, e_prep, calib = _calibrated_twins(3, num_layers=2)
    t_conv, e_conv = tq.convert(t_prep), eq.convert(e_prep)
    e_conv.load_state_dict({k: _to_ember(v) for k, v in t_conv.state_dict().items()})
    rng = np.random.default_rng(4)
    h0, c0 = (rng.uniform(-0.5, 0.5, (2, 2, 3)).astype(np.float32) for _ in range(2))
    t_hidden = tuple(torch.quantize_per_tensor(torch.from_numpy(a), 1 / 128, 128, torch.quint8)
                     for a in (h0, c0))
    e_hidden = tuple(ember.quantize_per_tensor(ember.tensor(a), 1 / 128, 128, ember.quint8)
                     for a in (h0, c0))
    with torch.no_grad(), ember.no_grad():
        want = t_conv(torch.from_numpy(calib[0]), t_hidden)
        got = e_conv(ember.tensor(calib[0]), e_hidden)
    step = _ogate_scales(t_conv)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w.numpy(), atol=2 * step)


def test_float_hidden_state_during_calibration_matches_torch_ao():
    t_prep, e_prep, calib = _prepared_twins(5, bidirectional=True)
    rng = np.random.default_rng(6)
    h0, c0 = (rng.standard_normal((2, 2, 3)).astype(np.float32) for _ in range(2))
    with torch.no_grad(), ember.no_grad():
        want = t_prep(torch.from_numpy(calib[0]), (torch.from_numpy(h0), torch.from_numpy(c0)))
        got = e_prep(ember.tensor(calib[0]), (ember.tensor(h0), ember.tensor(c0)))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-5, atol=1e-6)


def test_quantizable_lstm_from_float_and_api_match_torch_ao():
    import torch.ao.nn.quantizable as tnnqa
    import torch.ao.nn.quantized as tnnq
    import ember.ao.nn.quantizable as ennqa
    import ember.ao.nn.quantized as ennq
    t_lstm, e_lstm = torch.nn.LSTM(5, 4, 2), ember.nn.LSTM(5, 4, 2)
    share_random_weights(t_lstm, e_lstm, np.random.default_rng(7))
    t_lstm.qconfig, e_lstm.qconfig = tq.get_default_qconfig("x86"), \
        eq.get_default_qconfig("x86")
    t_obs, e_obs = tnnqa.LSTM.from_float(t_lstm.eval()), ennqa.LSTM.from_float(e_lstm.eval())
    assert _text(e_obs, "ember") == _text(t_obs, "torch")
    x = np.random.default_rng(8).standard_normal((3, 2, 5)).astype(np.float32)
    with torch.no_grad(), ember.no_grad():
        want, (wh, wc) = t_obs(torch.from_numpy(x))
        got, (gh, gc) = e_obs(ember.tensor(x))
    for g, w in ((got, want), (gh, wh), (gc, wc)):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(NotImplementedError):
        ennq.LSTM.from_float(e_obs)
    with pytest.raises(NotImplementedError):
        ennqa.LSTM.from_observed(e_obs)
    with pytest.raises(NotImplementedError):
        tnnq.LSTM.from_float(t_obs)
    # torch.ao's default custom module config, with ember's classes
    config = eq.get_default_custom_config_dict()
    assert config["float_to_observed_custom_module_class"][ember.nn.LSTM] is ennqa.LSTM
    assert config["observed_to_quantized_custom_module_class"][ennqa.LSTM] is ennq.LSTM
    assert ember.nn.quantizable.LSTM is ennqa.LSTM


def test_quantizable_lstm_cell_matches_torch_ao():
    import torch.ao.nn.quantizable as tnnqa
    import ember.ao.nn.quantizable as ennqa
    for split in (False, True):
        t_cell, e_cell = torch.nn.LSTMCell(4, 3), ember.nn.LSTMCell(4, 3)
        share_random_weights(t_cell, e_cell, np.random.default_rng(9))
        t_cell.qconfig, e_cell.qconfig = tq.default_qconfig, eq.default_qconfig
        t_obs = tnnqa.LSTMCell.from_float(t_cell, split_gates=split)
        e_obs = ennqa.LSTMCell.from_float(e_cell, split_gates=split)
        assert _text(e_obs, "ember") == _text(t_obs, "torch")
        assert list(e_obs.state_dict()) == list(t_obs.state_dict())
        x = np.random.default_rng(10).standard_normal((2, 4)).astype(np.float32)
        with torch.no_grad(), ember.no_grad():
            want = t_obs(torch.from_numpy(x))
            got = e_obs(ember.tensor(x))
        for g, w in zip(got, want):
            np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-5, atol=1e-6)


def test_qat_prepare_swaps_lstm_like_torch_ao():
    t_model, e_model = _model(torch.nn, tq), _model(ember.nn, eq)
    share_random_weights(t_model, e_model, np.random.default_rng(11))
    t_model.qconfig, e_model.qconfig = tq.get_default_qat_qconfig("x86"), \
        eq.get_default_qat_qconfig("x86")
    t_prep, e_prep = tq.prepare_qat(t_model.train()), eq.prepare_qat(e_model.train())
    # torch.ao's QAT prepare also gives a training-mode Sigmoid/Tanh a fixed-qparams fake
    # quantize (its special activation post-processes), which ember's prepare_qat does
    # not yet do for any model: compared without those
    special = re.compile(r"\.(input|forget|cell|output)_gate\.activation_post_process")
    kinds = lambda m: [(n, type(c).__name__) for n, c in m.named_modules()  # noqa: E731
                       if not special.search(n)]
    assert kinds(e_prep) == kinds(t_prep)
    assert type(e_prep.lstm.layers[0].layer_fw.cell.igates).__name__ == "Linear"
    assert hasattr(e_prep.lstm.layers[0].layer_fw.cell.igates, "weight_fake_quant")


def _prepared_node_kinds(gm) -> dict:
    """How many of each call_module class and call_function target a prepared graph has
    (getitems aside: the model's own ones are left in place, dead, differently)."""
    modules = dict(gm.named_modules())
    counts = {}
    for node in gm.graph.nodes:
        op = str(getattr(node.op, "value", node.op))
        if op == "call_module":
            key = type(modules[str(node.target)]).__name__
        elif op == "call_function" and not node.name.startswith("getitem"):
            key = getattr(node.target, "__name__", str(node.target))
        else:
            continue
        counts[key] = counts.get(key, 0) + 1
    return counts


def _fx_lstm_model(nn):
    class M(nn.Module):
        """torch.ao's static-LSTM FX test shape: the output tuple's tensors each feed a
        Linear."""

        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(4, 3, 1)
            self.linear1, self.linear2, self.linear3 = (nn.Linear(3, 2) for _ in range(3))

        def forward(self, x, h0, c0):
            out, (h, c) = self.lstm(x, (h0, c0))
            return self.linear1(out), (self.linear2(h), self.linear3(c))
    return M().eval()


def test_fx_custom_module_lstm_matches_torch_ao():
    """prepare_fx/convert_fx with the LSTM as a custom module (Prepare/ConvertCustomConfig):
    x, h0 and c0 observed, no observer on the LSTM's tuple output; converted, the LSTM
    takes and returns quantized tensors and each Linear reads its tensor as it is."""
    from torch.ao.quantization.fx.custom_config import ConvertCustomConfig as TConvert
    from torch.ao.quantization.fx.custom_config import PrepareCustomConfig as TPrepare
    import torch.ao.nn.quantizable as tnnqa
    import torch.ao.nn.quantized as tnnq
    import torch.ao.quantization.quantize_fx as tqfx
    import ember.ao.nn.quantizable as ennqa
    import ember.ao.nn.quantized as ennq
    import ember.ao.quantization.quantize_fx as eqfx
    rng = np.random.default_rng(12)
    t_model, e_model = _fx_lstm_model(torch.nn), _fx_lstm_model(ember.nn)
    share_random_weights(t_model, e_model, rng)
    data = [[rng.standard_normal(s).astype(np.float32) for s in ((5, 2, 4), (1, 2, 3),
                                                                (1, 2, 3))] for _ in range(2)]
    t_prep = tqfx.prepare_fx(
        t_model, tq.get_default_qconfig_mapping("x86"), tuple(map(torch.from_numpy, data[0])),
        prepare_custom_config=TPrepare().set_float_to_observed_mapping(torch.nn.LSTM,
                                                                       tnnqa.LSTM))
    e_prep = eqfx.prepare_fx(
        e_model, eq.get_default_qconfig_mapping("x86"), tuple(map(ember.tensor, data[0])),
        prepare_custom_config=eq.PrepareCustomConfig().set_float_to_observed_mapping(
            ember.nn.LSTM, ennqa.LSTM))
    assert _prepared_node_kinds(e_prep) == _prepared_node_kinds(t_prep)
    with torch.no_grad(), ember.no_grad():
        for batch in data:
            t_prep(*map(torch.from_numpy, batch))
            e_prep(*map(ember.tensor, batch))
    t_config = TConvert().set_observed_to_quantized_mapping(tnnqa.LSTM, tnnq.LSTM)
    e_config = eq.ConvertCustomConfig().set_observed_to_quantized_mapping(ennqa.LSTM,
                                                                          ennq.LSTM)
    t_ref = tqfx.convert_to_reference_fx(copy.deepcopy(t_prep), convert_custom_config=t_config)
    e_ref = eqfx.convert_to_reference_fx(e_prep, convert_custom_config=e_config)
    t_conv = tqfx.convert_fx(t_prep, convert_custom_config=t_config)
    e_conv = eqfx.convert_fx(e_prep, convert_custom_config=e_config)
    modules = lambda m: [(n, type(c).__name__) for n, c in m.named_modules()  # noqa: E731
                         if n and not n.endswith("_packed_params")]
    assert modules(e_conv) == modules(t_conv)
    with torch.no_grad(), ember.no_grad():
        want = t_conv(*map(torch.from_numpy, data[1]))
        got = e_conv(*map(ember.tensor, data[1]))
    want, got = [want[0], *want[1]], [got[0], *got[1]]
    for g, w, linear in zip(got, want, ("linear1", "linear2", "linear3")):
        step = getattr(t_conv, linear).scale
        np.testing.assert_allclose(g.numpy(), w.numpy(), atol=4 * step)
    # the reference form: the quantized LSTM between quantize and dequantize, the
    # Linears in float on dequantized values
    ref_graph = e_ref.code
    assert "self.lstm(quantize_per_tensor" in ref_graph
    with torch.no_grad(), ember.no_grad():
        want = t_ref(*map(torch.from_numpy, data[1]))
        got = e_ref(*map(ember.tensor, data[1]))
    want, got = [want[0], *want[1]], [got[0], *got[1]]
    for g, w, linear in zip(got, want, ("linear1", "linear2", "linear3")):
        np.testing.assert_allclose(g.numpy(), w.numpy(), atol=4 * getattr(t_conv, linear).scale)


@pytest.mark.parametrize("first", ["ember.nn.quantizable", "ember.ao.nn.quantized.rnn"])
def test_each_module_path_imports_first(first):
    """The quantized LSTM/MHA subclass the quantizable ones, which use the quantized
    FloatFunctional: whichever a program imports first, both load."""
    import subprocess
    import sys
    code = (f"import {first}; import ember.ao.nn.quantized as q, ember.ao.nn.quantizable as "
            f"qa; assert issubclass(q.LSTM, qa.LSTM) and issubclass(q.MultiheadAttention, "
            f"qa.MultiheadAttention)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def _split_gates_config(nn, nnqa, nnq):
    class QuantizableLSTMSplitGates(nnqa.LSTM):
        @classmethod
        def from_float(cls, other, qconfig=None):
            return super().from_float(other, qconfig, split_gates=True)
    return {"float_to_observed_custom_module_class": {nn.LSTM: QuantizableLSTMSplitGates},
            "observed_to_quantized_custom_module_class": {QuantizableLSTMSplitGates: nnq.LSTM}}


def test_user_quantizable_subclass_with_split_gates_matches_torch_ao():
    """PyTorch's own LSTM test: a quantizable subclass building split-gate cells, given
    as the custom module config dicts of prepare and convert."""
    import torch.ao.nn.quantizable as tnnqa
    import torch.ao.nn.quantized as tnnq
    import ember.ao.nn.quantizable as ennqa
    import ember.ao.nn.quantized as ennq
    rng = np.random.default_rng(13)
    t_model, e_model = _model(torch.nn, tq, bidirectional=True), \
        _model(ember.nn, eq, bidirectional=True)
    share_random_weights(t_model, e_model, rng)
    t_model.qconfig, e_model.qconfig = tq.get_default_qconfig("x86"), \
        eq.get_default_qconfig("x86")
    t_cfg = _split_gates_config(torch.nn, tnnqa, tnnq)
    e_cfg = _split_gates_config(ember.nn, ennqa, ennq)
    t_prep = tq.prepare(t_model, prepare_custom_config_dict=t_cfg)
    e_prep = eq.prepare(e_model, prepare_custom_config_dict=e_cfg)
    assert e_prep.lstm.layers[0].layer_bw.cell.split_gates
    assert _text(e_prep, "ember") == _text(t_prep, "torch")
    calib = [rng.standard_normal((6, 2, 4)).astype(np.float32) for _ in range(2)]
    for batch in calib:
        for got, want in zip(_outputs(e_prep, batch, ember), _outputs(t_prep, batch, torch)):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    t_conv = tq.convert(t_prep, convert_custom_config_dict=t_cfg)
    e_conv = eq.convert(e_prep, convert_custom_config_dict=e_cfg)
    assert type(e_conv.lstm) is ennq.LSTM
    assert list(e_conv.state_dict()) == list(t_conv.state_dict())
    step = _ogate_scales(t_conv)
    for got, want in zip(_outputs(e_conv, calib[0], ember), _outputs(t_conv, calib[0], torch)):
        np.testing.assert_allclose(got, want, atol=4 * step)


@pytest.mark.parametrize("consume", ["whole", "hidden"])
def test_fx_lstm_tuple_consumed_whole_matches_torch_ao(consume):
    """PyTorch's FX test of a module consuming the LSTM's output tuple (or its (h, c)
    tuple) whole: the tuple is rebuilt from dequantized tensors (torch.ao: from
    DeQuantStubs), with the same count of quantize and dequantize nodes."""
    from torch.ao.quantization.fx.custom_config import ConvertCustomConfig as TConvert
    from torch.ao.quantization.fx.custom_config import PrepareCustomConfig as TPrepare
    import torch.ao.nn.quantizable as tnnqa
    import torch.ao.nn.quantized as tnnq
    import torch.ao.quantization.quantize_fx as tqfx
    import ember.ao.nn.quantizable as ennqa
    import ember.ao.nn.quantized as ennq
    import ember.ao.quantization.quantize_fx as eqfx

    def model(nn):
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = nn.LSTM(4, 3, 1)
                self.after = nn.Identity()

            def forward(self, x, h0, c0):
                y = self.lstm(x, (h0, c0))
                return self.after(y if consume == "whole" else y[1])
        return M().eval()

    rng = np.random.default_rng(14)
    t_model, e_model = model(torch.nn), model(ember.nn)
    share_random_weights(t_model, e_model, rng)
    data = [rng.standard_normal(s).astype(np.float32) for s in ((5, 2, 4), (1, 2, 3), (1, 2, 3))]
    t_prep = tqfx.prepare_fx(t_model, tq.get_default_qconfig_mapping("x86"),
                             tuple(map(torch.from_numpy, data)),
                             prepare_custom_config=TPrepare().set_float_to_observed_mapping(
                                 torch.nn.LSTM, tnnqa.LSTM))
    e_prep = eqfx.prepare_fx(e_model, eq.get_default_qconfig_mapping("x86"),
                             tuple(map(ember.tensor, data)),
                             prepare_custom_config=eq.PrepareCustomConfig()
                             .set_float_to_observed_mapping(ember.nn.LSTM, ennqa.LSTM))
    # torch.ao's prepared graph: a DeQuantStub after each tensor of the tuple, the tuple
    # rebuilt from them
    assert _prepared_node_kinds(e_prep) == _prepared_node_kinds(t_prep)
    with torch.no_grad(), ember.no_grad():
        t_prep(*map(torch.from_numpy, data))
        e_prep(*map(ember.tensor, data))
    t_conv = tqfx.convert_fx(t_prep, convert_custom_config=TConvert()
                             .set_observed_to_quantized_mapping(tnnqa.LSTM, tnnq.LSTM))
    e_conv = eqfx.convert_fx(e_prep, convert_custom_config=eq.ConvertCustomConfig()
                             .set_observed_to_quantized_mapping(ennqa.LSTM, ennq.LSTM))
    counts = lambda code: (code.count("quantize_per_tensor("),  # noqa: E731
                           code.count(".dequantize()"), code.count("tuple(["))
    assert counts(e_conv.code) == counts(t_conv.code)
    with torch.no_grad(), ember.no_grad():
        want = t_conv(*map(torch.from_numpy, data))
        got = e_conv(*map(ember.tensor, data))
    flat = lambda r: [r[0], *r[1]] if consume == "whole" else list(r)  # noqa: E731
    step = t_conv.lstm.layers[0].layer_fw.cell.ogate_cy.scale * 4 + \
        t_conv.lstm.layers[0].layer_fw.cell.fgate_cx_igate_cgate.scale * 4
    for g, w in zip(flat(got), flat(want)):
        assert not g.is_quantized
        np.testing.assert_allclose(g.numpy(), w.numpy(), atol=step)
