"""Converted models keep activation scales and zero points as state, as torch.ao's do:
state_dict lists them (float32 / int64 tensors), load_state_dict of a model calibrated on
other data gives that model's outputs, and eager-mode quantized modules use torch.ao's
keys."""
import copy
import warnings

import numpy as np
import pytest
import torch

import ember
import ember.ao.quantization as eq
import torch.ao.quantization as tq
from ember.ao.quantization.quantize_fx import convert_fx, convert_to_reference_fx, prepare_fx
from quant_twins import share_random_weights

warnings.filterwarnings("ignore")


def _fx_model(nn):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.fc = nn.Linear(4 * 6 * 6, 5)
            self.fc2 = nn.Linear(5, 5)

        def forward(self, x):
            x = self.conv(x).relu()
            x = self.fc(x.flatten(1))
            return self.fc2(x) + x
    return M()


def _converted(model, data, convert=convert_fx):
    prepared = prepare_fx(model, eq.get_default_qconfig_mapping("x86"), (data,))
    prepared(data)
    return convert(prepared)


@pytest.mark.parametrize("convert", [convert_fx, convert_to_reference_fx])
def test_fx_qparams_round_trip_through_state_dict(convert):
    rng = np.random.default_rng(0)
    model = _fx_model(ember.nn).eval()
    a = ember.tensor(rng.standard_normal((4, 3, 8, 8)).astype(np.float32))
    b = ember.tensor(3 * rng.standard_normal((4, 3, 8, 8)).astype(np.float32) + 1)
    qa, qb = _converted(model, a, convert), _converted(model, b, convert)
    sd = qb.state_dict()
    scales = [k for k in sd if (k.endswith("scale") or "_scale_" in k) and
              not k.endswith("weight_scale")]     # (a reference module's weight qparams)
    assert len(scales) >= 4
    for k in scales:
        assert sd[k].dtype == ember.float32 and sd[k].shape == ()
        assert sd[k.replace("scale", "zero_point")].dtype == ember.int64
    assert not np.array_equal(qa(a).numpy(), qb(a).numpy())
    qa.load_state_dict(sd)
    np.testing.assert_array_equal(qa(a).numpy(), qb(a).numpy())
    for k, v in qa.state_dict().items():          # and qa now saves what it loaded
        _assert_same_entry(v, sd[k])


def _assert_same_entry(a, b):
    """Equal state entries: tensors (quantized or not), (weight, bias) tuples, dtypes, None."""
    if isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same_entry(x, y)
    elif a is None or not hasattr(a, "numpy"):
        assert a == b
    else:
        np.testing.assert_array_equal(a.dequantize().numpy() if a.is_quantized else a.numpy(),
                                      b.dequantize().numpy() if b.is_quantized else b.numpy())


def test_fx_qparams_survive_save_weights_and_deepcopy(tmp_path):
    rng = np.random.default_rng(1)
    model = _fx_model(ember.nn).eval()
    a = ember.tensor(rng.standard_normal((4, 3, 8, 8)).astype(np.float32))
    b = ember.tensor(2 * rng.standard_normal((4, 3, 8, 8)).astype(np.float32))
    qa, qb = _converted(model, a), _converted(model, b)
    ember.save_weights(qb, tmp_path / "q.safetensors")
    fresh = copy.deepcopy(qa)
    ember.load_weights(fresh, tmp_path / "q.safetensors")
    np.testing.assert_array_equal(fresh(a).numpy(), qb(a).numpy())
    assert not np.array_equal(qa(a).numpy(), qb(a).numpy())    # the copy changed, qa not


def _eager_model(torch_like, q):
    nn = torch_like.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.quant = q.QuantStub()
            self.conv = nn.Conv2d(3, 4, 3)
            self.conv1 = nn.Conv1d(4, 4, 3)
            self.fc = nn.Linear(4 * 4, 5)
            self.hs = nn.Hardswish()
            self.ff = nn.quantized.FloatFunctional()
            self.dq = q.DeQuantStub()

        def forward(self, x):
            x = self.conv(self.quant(x)).flatten(2)
            x = self.conv1(x[:, :, :6])
            x = self.hs(self.fc(x.flatten(1)))
            return self.dq(self.ff.add(x, x))
    return M().eval()


def _eager_convert(lib, q, model, data):
    model.qconfig = q.get_default_qconfig("x86")
    prepared = q.prepare(model)
    prepared(data)
    return q.convert(prepared)


def test_eager_state_dict_keys_dtypes_and_values_match_torch():
    rng = np.random.default_rng(2)
    t_model, e_model = _eager_model(torch, tq), _eager_model(ember, eq)
    share_random_weights(t_model, e_model, rng)
    data = rng.standard_normal((3, 3, 8, 8)).astype(np.float32)
    t_q = _eager_convert(torch, tq, t_model, torch.from_numpy(data))
    e_q = _eager_convert(ember, eq, e_model, ember.tensor(data))
    t_sd, e_sd = t_q.state_dict(), e_q.state_dict()
    assert list(t_sd) == list(e_sd)           # torch.ao's keys, in torch.ao's order
    # a Linear keeps its weight dtype and a (weight, bias) tuple under `_packed_params`
    assert str(e_sd["fc._packed_params.dtype"]) == "ember.qint8"
    (t_w, t_b), (e_w, e_b) = t_sd["fc._packed_params._packed_params"], \
        e_sd["fc._packed_params._packed_params"]
    np.testing.assert_array_equal(t_w.int_repr().numpy(), e_w.int_repr().numpy())
    np.testing.assert_allclose(t_b.detach().numpy(), e_b.numpy(), rtol=1e-6)
    for k in (k for k in t_sd if "_packed_params" not in k):
        t, e = t_sd[k], e_sd[k]
        assert tuple(t.shape) == tuple(e.shape), k
        assert str(t.dtype).split(".")[-1] == str(e.dtype).split(".")[-1], k
        if t.is_quantized:
            np.testing.assert_array_equal(t.int_repr().numpy(), e.int_repr().numpy())
        elif k == "quant.scale" or k.endswith("zero_point") and k.startswith("quant"):
            np.testing.assert_array_equal(t.numpy(), e.numpy(), err_msg=k)   # raw input
        elif k.endswith("zero_point"):        # observed float outputs differ by rounding
            assert abs(int(t) - int(e)) <= 1, k
        else:
            np.testing.assert_allclose(t.detach().numpy(), e.numpy(), rtol=1e-5, err_msg=k)


def test_eager_load_state_dict_takes_other_calibration():
    rng = np.random.default_rng(3)
    model = _eager_model(ember, eq)
    a = ember.tensor(rng.standard_normal((3, 3, 8, 8)).astype(np.float32))
    b = ember.tensor(4 * rng.standard_normal((3, 3, 8, 8)).astype(np.float32))
    qa = _eager_convert(ember, eq, copy.deepcopy(model), a)
    qb = _eager_convert(ember, eq, copy.deepcopy(model), b)
    assert not np.array_equal(qa(a).numpy(), qb(a).numpy())
    qa.load_state_dict(qb.state_dict())
    np.testing.assert_array_equal(qa(a).numpy(), qb(a).numpy())
    assert qa.conv.scale == qb.conv.scale and qa.quant.zero_point == qb.quant.zero_point
    with pytest.raises(Exception, match="conv.scale"):
        sd = qb.state_dict()
        del sd["conv.scale"]
        qa.load_state_dict(sd)
