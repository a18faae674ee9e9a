"""Eager-mode static quantization of nn.MultiheadAttention against torch.ao (the oracle):
`prepare` swaps it for the quantizable MHA (separate linear_Q/K/V and out_proj, observed),
`convert` for the quantized one (int8 projections, float attention between Quantize and
DeQuantize). Twins with the same weights and calibration data: the same reprs, state_dict
keys and observer qparams, and the same converted outputs; `dequantize()` gives back a
float nn.MultiheadAttention with the int8 weights' values."""
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

E, HEADS, L, S, N = 8, 2, 5, 6, 2


def _model(nn, Q, **mha_kwargs):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.quant_q, self.quant_k, self.quant_v = Q.QuantStub(), Q.QuantStub(), \
                Q.QuantStub()
            self.mha = nn.MultiheadAttention(E, HEADS, **mha_kwargs)
            self.dequant = Q.DeQuantStub()

        def forward(self, q, k, v, **call_kwargs):
            out, weights = self.mha(self.quant_q(q), self.quant_k(k), self.quant_v(v),
                                    **call_kwargs)
            return self.dequant(out), (None if weights is None else self.dequant(weights))
    return M().eval()


def _inputs(rng, mha_kwargs) -> list:
    kdim, vdim = mha_kwargs.get("kdim", E), mha_kwargs.get("vdim", E)
    bf = mha_kwargs.get("batch_first", False)
    shape = lambda seq, dim: (N, seq, dim) if bf else (seq, N, dim)  # noqa: E731
    return [rng.standard_normal(shape(L, E)).astype(np.float32),
            rng.standard_normal(shape(S, kdim)).astype(np.float32),
            rng.standard_normal(shape(S, vdim)).astype(np.float32)]


def _twins(seed: int, **mha_kwargs):
    rng = np.random.default_rng(seed)
    t_model, e_model = _model(torch.nn, tq, **mha_kwargs), _model(ember.nn, eq, **mha_kwargs)
    share_random_weights(t_model, e_model, rng)
    t_model.qconfig, e_model.qconfig = tq.get_default_qconfig("x86"), \
        eq.get_default_qconfig("x86")
    calib = [_inputs(rng, mha_kwargs) for _ in range(2)]
    return tq.prepare(t_model), eq.prepare(e_model), calib


def _run(model, inputs, lib, **call_kwargs):
    args = [torch.from_numpy(a) for a in inputs] if lib is torch else \
        [ember.tensor(a) for a in inputs]
    with (torch.no_grad() if lib is torch else ember.no_grad()):
        return [None if o is None else o.numpy() for o in model(*args, **call_kwargs)]


def _text(module, lib: str) -> str:
    return repr(module).replace(lib, "LIB")


def _without_qparams(text: str) -> str:
    return re.sub(r"scale=[^,)]+|zero_point=[^,)]+", "", text)


def _observer_qparams(model) -> dict:
    out = {}
    for name, mod in model.named_modules():
        post = getattr(mod, "activation_post_process", None)
        if post is not None and hasattr(post, "calculate_qparams"):
            scale, zero_point = post.calculate_qparams()
            out[name] = (np.asarray(scale.numpy(), np.float64).reshape(-1),
                         np.asarray(zero_point.numpy()).reshape(-1))
    return out


CONFIGS = {"default": {}, "batch_first": {"batch_first": True},
           "bias_kv": {"add_bias_kv": True}, "zero_attn": {"add_zero_attn": True},
           "no_bias": {"bias": False}, "kdim_vdim": {"kdim": 4, "vdim": 6}}


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_mha_prepare_calibrate_convert_match_torch_ao(config):
    t_prep, e_prep, calib = _twins(0, **CONFIGS[config])
    assert _text(e_prep, "ember") == _text(t_prep, "torch")
    assert list(e_prep.state_dict()) == list(t_prep.state_dict())
    for inputs in calib:
        for got, want in zip(_run(e_prep, inputs, ember), _run(t_prep, inputs, torch)):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    t_q, e_q = _observer_qparams(t_prep), _observer_qparams(e_prep)
    assert sorted(e_q) == sorted(t_q)
    for name in t_q:      # observers see each library's float matmuls: ulps apart
        np.testing.assert_allclose(e_q[name][0], t_q[name][0], rtol=1e-5, err_msg=name)
        np.testing.assert_array_equal(e_q[name][1], t_q[name][1], err_msg=name)
    t_conv, e_conv = tq.convert(t_prep), eq.convert(e_prep)
    assert e_conv.mha._get_name() == "QuantizedMultiheadAttention"
    assert _without_qparams(_text(e_conv, "ember")) == _without_qparams(_text(t_conv, "torch"))
    assert list(e_conv.state_dict()) == list(t_conv.state_dict())
    assert not hasattr(e_conv.mha, "in_proj_weight")
    step = t_conv.mha.out_proj.scale
    got, want = _run(e_conv, calib[0], ember), _run(t_conv, calib[0], torch)
    np.testing.assert_allclose(got[0], want[0], atol=2 * step)
    assert np.mean(np.abs(got[0] - want[0]) <= step / 2) > 0.9   # mostly the same int8
    w_step = float(t_conv.mha.quant_attn_output_weights.scale)
    np.testing.assert_allclose(got[1], want[1], atol=2 * w_step)


def test_quantized_bias_kv_match_torch_ao():
    """torch.ao quantizes bias_k with qparams from its own range and bias_v with qparams
    from the quantized bias_k's range; ember does the same, bit for bit."""
    t_prep, e_prep, calib = _twins(1, add_bias_kv=True)
    _run(t_prep, calib[0], torch), _run(e_prep, calib[0], ember)
    t_conv, e_conv = tq.convert(t_prep), eq.convert(e_prep)
    for name in ("bias_k", "bias_v"):
        t_b, e_b = getattr(t_conv.mha, name), getattr(e_conv.mha, name)
        assert e_b.q_scale() == t_b.q_scale() and e_b.q_zero_point() == t_b.q_zero_point()
        np.testing.assert_array_equal(e_b.int_repr().numpy(), t_b.int_repr().numpy())


@pytest.mark.parametrize("call", [{"need_weights": False}, {"average_attn_weights": False},
                                  {"attn_mask": "bool"}, {"attn_mask": "float"},
                                  {"key_padding_mask": True}])
def test_converted_mha_call_options_match_torch_ao(call):
    t_prep, e_prep, calib = _twins(2)
    for inputs in calib:
        _run(t_prep, inputs, torch), _run(e_prep, inputs, ember)
    t_conv, e_conv = tq.convert(t_prep), eq.convert(e_prep)
    rng = np.random.default_rng(3)
    t_call, e_call = dict(call), dict(call)
    if call.get("attn_mask") == "bool":
        mask = rng.random((L, S)) < 0.3
        mask[:, 0] = False
        t_call["attn_mask"], e_call["attn_mask"] = torch.from_numpy(mask), ember.tensor(mask)
    elif call.get("attn_mask") == "float":
        mask = rng.standard_normal((L, S)).astype(np.float32)
        t_call["attn_mask"], e_call["attn_mask"] = torch.from_numpy(mask), ember.tensor(mask)
    elif call.get("key_padding_mask"):
        mask = np.zeros((N, S), bool)
        mask[1, -2:] = True
        t_call["key_padding_mask"] = torch.from_numpy(mask)
        e_call["key_padding_mask"] = ember.tensor(mask)
    got = _run(e_conv, calib[1], ember, **e_call)
    want = _run(t_conv, calib[1], torch, **t_call)
    step = t_conv.mha.out_proj.scale
    np.testing.assert_allclose(got[0], want[0], atol=2 * step)
    if want[1] is None:
        assert got[1] is None
    else:
        assert got[1].shape == want[1].shape
        np.testing.assert_allclose(got[1], want[1],
                                   atol=2 * float(t_conv.mha.quant_attn_output_weights.scale))


@pytest.mark.parametrize("config", ["default", "kdim_vdim"])
def test_dequantize_gives_float_mha_with_the_int8_weights(config):
    """torch.ao's dequantize() fails in this torch (an in-place write into a leaf that
    requires grad), so the oracle is a float torch MHA given torch.ao's dequantized
    weights by hand; ember's float module (packed projection and linear_Q/K/V both set)
    must compute what it computes."""
    kwargs = CONFIGS[config]
    t_prep, e_prep, calib = _twins(4, **kwargs)
    _run(t_prep, calib[0], torch), _run(e_prep, calib[0], ember)
    t_conv, e_conv = tq.convert(t_prep), eq.convert(e_prep)
    fp = e_conv.mha.dequantize()
    # torch.ao builds it with the quantized class's _FLOAT_MODULE: the quantizable MHA
    assert type(fp).__name__ == type(t_conv.mha._FLOAT_MODULE(E, HEADS)).__name__
    assert isinstance(fp, ember.nn.MultiheadAttention)
    assert _text(fp, "ember") == _text(t_conv.mha._FLOAT_MODULE(E, HEADS, **kwargs), "torch")
    ref = torch.nn.MultiheadAttention(E, HEADS, **kwargs).eval()
    wq, wk, wv = (lin.weight().dequantize() for lin in
                  (t_conv.mha.linear_Q, t_conv.mha.linear_K, t_conv.mha.linear_V))
    with torch.no_grad():
        if ref._qkv_same_embed_dim:
            ref.in_proj_weight.copy_(torch.cat([wq, wk, wv]))
        else:
            ref.q_proj_weight.copy_(wq), ref.k_proj_weight.copy_(wk), ref.v_proj_weight.copy_(wv)
        ref.in_proj_bias.copy_(torch.cat([lin.bias() for lin in (
            t_conv.mha.linear_Q, t_conv.mha.linear_K, t_conv.mha.linear_V)]))
        ref.out_proj.weight.copy_(t_conv.mha.out_proj.weight().dequantize())
        ref.out_proj.bias.copy_(t_conv.mha.out_proj.bias())
    q, k, v = calib[1]
    with torch.no_grad(), ember.no_grad():
        want = ref(torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(v))
        got = fp(ember.tensor(q), ember.tensor(k), ember.tensor(v))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-5, atol=1e-5)


def test_quantizable_mha_api_matches_torch_ao():
    import torch.ao.nn.quantizable as tnnqa
    import torch.ao.nn.quantized as tnnq
    import ember.ao.nn.quantizable as ennqa
    import ember.ao.nn.quantized as ennq
    t_mha, e_mha = torch.nn.MultiheadAttention(E, HEADS), ember.nn.MultiheadAttention(E, HEADS)
    share_random_weights(t_mha, e_mha, np.random.default_rng(5))
    t_mha.qconfig, e_mha.qconfig = tq.default_qconfig, eq.default_qconfig
    t_obs, e_obs = tnnqa.MultiheadAttention.from_float(t_mha), \
        ennqa.MultiheadAttention.from_float(e_mha)
    assert _text(e_obs, "ember") == _text(t_obs, "torch")
    assert isinstance(e_obs, ember.nn.MultiheadAttention)
    for cls, lib_cls in ((ennq.MultiheadAttention, tnnq.MultiheadAttention),):
        with pytest.raises(NotImplementedError):
            lib_cls.from_float(t_obs)
        with pytest.raises(NotImplementedError):
            cls.from_float(e_obs)
    with pytest.raises(NotImplementedError):
        ennqa.MultiheadAttention.from_observed(e_obs)
    config = eq.get_default_custom_config_dict()
    assert config["float_to_observed_custom_module_class"][ember.nn.MultiheadAttention] is \
        ennqa.MultiheadAttention
    assert config["observed_to_quantized_custom_module_class"][ennqa.MultiheadAttention] is \
        ennq.MultiheadAttention


def test_fx_custom_module_mha_matches_torch_ao_eager():
    """prepare_fx/convert_fx with the MHA as a custom module: its query/key/value inputs
    observed, no observer on its (output, weights) tuple. (torch.ao's own FX flow puts an
    observer on that tuple and fails at calibration, so the oracle is torch.ao's eager
    flow with QuantStubs where FX puts the input observers.)"""
    import ember.ao.nn.quantizable as ennqa
    import ember.ao.nn.quantized as ennq
    import ember.ao.quantization.quantize_fx as eqfx

    class Plain(ember.nn.Module):
        def __init__(self):
            super().__init__()
            self.mha = ember.nn.MultiheadAttention(E, HEADS)

        def forward(self, q, k, v):
            out, weights = self.mha(q, k, v)
            return out, weights

    rng = np.random.default_rng(6)
    t_model, e_model = _model(torch.nn, tq), Plain().eval()
    share_random_weights(t_model, e_model, rng)      # the same keys: mha.*
    t_model.qconfig = tq.get_default_qconfig("x86")
    t_prep = tq.prepare(t_model)
    calib = [_inputs(rng, {}) for _ in range(2)]
    e_prep = eqfx.prepare_fx(
        e_model, eq.get_default_qconfig_mapping("x86"), tuple(map(ember.tensor, calib[0])),
        prepare_custom_config=eq.PrepareCustomConfig().set_float_to_observed_mapping(
            ember.nn.MultiheadAttention, ennqa.MultiheadAttention))
    for inputs in calib:
        _run(t_prep, inputs, torch), _run(e_prep, inputs, ember)
    t_conv = tq.convert(t_prep)
    e_conv = eqfx.convert_fx(e_prep, convert_custom_config=eq.ConvertCustomConfig()
                             .set_observed_to_quantized_mapping(ennqa.MultiheadAttention,
                                                                ennq.MultiheadAttention))
    assert type(e_conv.mha).__name__ == "MultiheadAttention" and \
        e_conv.mha._get_name() == "QuantizedMultiheadAttention"
    got, want = _run(e_conv, calib[1], ember), _run(t_conv, calib[1], torch)
    np.testing.assert_allclose(got[0], want[0], atol=2 * t_conv.mha.out_proj.scale)
    np.testing.assert_allclose(got[1], want[1],
                               atol=2 * float(t_conv.mha.quant_attn_output_weights.scale))


def test_fx_custom_module_tuple_used_whole():
    """An MHA's (out, weights) returned whole: convert dequantizes both (a tuple rebuilt
    from getitems, as torch.ao does for the LSTM) and gives what unpacking it gives;
    with need_weights=False the layout is not known and prepare_fx refuses."""
    import ember.ao.nn.quantizable as ennqa
    import ember.ao.nn.quantized as ennq
    import ember.ao.quantization.quantize_fx as eqfx

    class Whole(ember.nn.Module):
        def __init__(self, **call):
            super().__init__()
            self.mha = ember.nn.MultiheadAttention(E, HEADS)
            self.call = call

        def forward(self, q):
            return self.mha(q, q, q, **self.call)

    class Unpacked(Whole):
        def forward(self, q):
            out, weights = self.mha(q, q, q)
            return out, weights

    prepare = eq.PrepareCustomConfig().set_float_to_observed_mapping(
        ember.nn.MultiheadAttention, ennqa.MultiheadAttention)
    convert = eq.ConvertCustomConfig().set_observed_to_quantized_mapping(
        ennqa.MultiheadAttention, ennq.MultiheadAttention)
    x = ember.randn(L, N, E)
    whole, unpacked = Whole().eval(), Unpacked().eval()
    unpacked.load_state_dict(whole.state_dict())
    results = []
    for model in (whole, unpacked):
        prepared = eqfx.prepare_fx(model, eq.get_default_qconfig_mapping("x86"), (x,),
                                   prepare_custom_config=prepare)
        prepared(x)
        converted = eqfx.convert_fx(prepared, convert_custom_config=convert)
        results.append(converted(x))
    assert isinstance(results[0], tuple) and len(results[0]) == 2
    for got, want in zip(*results):
        assert not got.is_quantized
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    with pytest.raises(ValueError, match="uses whole"):
        eqfx.prepare_fx(Whole(need_weights=False).eval(), eq.get_default_qconfig_mapping("x86"),
                        (x,), prepare_custom_config=prepare)


@pytest.mark.parametrize("config", ["default", "kdim_vdim"])
def test_torch_ao_mha_state_dict_loads_and_gives_its_outputs(config):
    from test_quantizable_lstm import _to_ember
    t_prep, e_prep, calib = _twins(7, **CONFIGS[config])
    _run(t_prep, calib[0], torch), _run(e_prep, calib[0], ember)
    t_conv, e_conv = tq.convert(t_prep), eq.convert(e_prep)
    e_conv.load_state_dict({k: _to_ember(v) for k, v in t_conv.state_dict().items()})
    assert _text(e_conv, "ember") == _text(t_conv, "torch")
    got, want = _run(e_conv, calib[1], ember), _run(t_conv, calib[1], torch)
    step = t_conv.mha.out_proj.scale
    np.testing.assert_allclose(got[0], want[0], atol=step * 1.01)
    assert np.mean(got[0] == want[0]) > 0.9
    np.testing.assert_allclose(got[1], want[1],
                               atol=1.01 * float(t_conv.mha.quant_attn_output_weights.scale))
