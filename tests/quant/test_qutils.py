"""ember.ao.quantization.utils against torch.ao.quantization.utils (the oracle)."""
import warnings

import numpy as np
import pytest
import torch
import torch.ao.quantization.utils as tu

import ember
import ember.ao.quantization.utils as eu

SCHEMES = ["per_tensor_affine", "per_tensor_symmetric", "per_channel_affine",
           "per_channel_symmetric", "per_channel_affine_float_qparams"]


def test_parent_name_and_fqn():
    for target in ["a.b.c", "a", "layer1.0.conv1"]:
        assert eu._parent_name(target) == tu._parent_name(target)
    m = ember.nn.Sequential(ember.nn.Sequential(ember.nn.Linear(2, 2)))
    assert eu.getattr_from_fqn(m, "0.0.weight") is m[0][0].weight
    assert eu.get_combined_dict({"a": 1}, {"a": 2, "b": 3}) == \
        tu.get_combined_dict({"a": 1}, {"a": 2, "b": 3})


@pytest.mark.parametrize("dtype", ["qint8", "quint8", "qint32", "int8", "uint8", "int16"])
@pytest.mark.parametrize("reduce_range", [False, True])
def test_calculate_qmin_qmax(dtype, reduce_range):
    got = eu.calculate_qmin_qmax(None, None, False, getattr(ember, dtype), reduce_range)
    assert got == tu.calculate_qmin_qmax(None, None, False, getattr(torch, dtype), reduce_range)
    got = eu.calculate_qmin_qmax(-8, 7, True, getattr(ember, dtype), reduce_range)
    assert got == tu.calculate_qmin_qmax(-8, 7, True, getattr(torch, dtype), reduce_range)


def test_qmin_qmax_errors_match():
    for lo, hi in [(1, 5), (0, 0)]:
        with pytest.raises(AssertionError):
            tu.validate_qmin_qmax(lo, hi)
        with pytest.raises(AssertionError):
            eu.validate_qmin_qmax(lo, hi)
    with pytest.raises(AssertionError):
        eu.calculate_qmin_qmax(-200, 200, True, ember.qint8, False)


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("dtype", ["quint8", "qint8"])
@pytest.mark.parametrize("custom", [False, True])
def test_determine_qparams_bit_exact(scheme, dtype, custom):
    rng = np.random.default_rng(len(scheme) + len(dtype))
    shape = () if "tensor" in scheme else (6,)
    lo = (rng.standard_normal(shape) - 1).astype(np.float32)
    hi = (lo + np.abs(rng.standard_normal(shape))).astype(np.float32)
    qmin, qmax = (0, 15) if custom else tu.calculate_qmin_qmax(None, None, False,
                                                                getattr(torch, dtype), False)
    eps = np.array([np.finfo(np.float32).eps], np.float32)
    ts, tz = tu.determine_qparams(torch.tensor(lo), torch.tensor(hi), qmin, qmax,
                                  getattr(torch, dtype), torch.tensor(eps), custom,
                                  getattr(torch, scheme))
    es, ez = eu.determine_qparams(ember.tensor(lo), ember.tensor(hi), qmin, qmax,
                                  getattr(ember, dtype), ember.tensor(eps), custom,
                                  getattr(ember, scheme))
    assert str(es.dtype).split(".")[-1] == str(ts.dtype).split(".")[-1]
    assert str(ez.dtype).split(".")[-1] == str(tz.dtype).split(".")[-1]
    np.testing.assert_array_equal(es.numpy(), ts.numpy())
    np.testing.assert_array_equal(ez.numpy(), tz.numpy())


def test_check_min_max_valid():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert eu.check_min_max_valid(ember.tensor(float("inf")), ember.tensor(float("-inf"))) \
            == tu.check_min_max_valid(torch.tensor(float("inf")), torch.tensor(float("-inf")))
        assert eu.check_min_max_valid(ember.tensor([]), ember.tensor([])) is False
    assert eu.check_min_max_valid(ember.tensor([0.0, 1.0]), ember.tensor([1.0, 2.0]))
    with pytest.raises(AssertionError):
        eu.check_min_max_valid(ember.tensor([2.0]), ember.tensor([1.0]))


def test_dtype_and_qscheme_helpers():
    for name in ["quint8", "qint8", "qint32", "uint8", "int8"]:
        assert str(eu.to_underlying_dtype(getattr(ember, name))).split(".")[-1] == \
            str(tu.to_underlying_dtype(getattr(torch, name))).split(".")[-1]
    with pytest.raises(AssertionError):
        eu.to_underlying_dtype(ember.float32)
    for scheme in SCHEMES:
        assert eu.is_per_tensor(getattr(ember, scheme)) == tu.is_per_tensor(getattr(torch, scheme))
        assert eu.is_per_channel(getattr(ember, scheme)) == \
            tu.is_per_channel(getattr(torch, scheme))


QCONFIGS = {
    "static": lambda q: q.get_default_qconfig("x86"),
    "qat": lambda q: q.get_default_qat_qconfig("x86"),
    "dynamic": lambda q: q.default_dynamic_qconfig,
    "fp16_dynamic": lambda q: q.float16_dynamic_qconfig,
    "fp16_static": lambda q: q.float16_static_qconfig,
    "weight_only": lambda q: q.float_qparams_weight_only_qconfig,
}


@pytest.mark.parametrize("kind", list(QCONFIGS))
def test_qconfig_questions(kind):
    eq, tq = QCONFIGS[kind](ember.ao.quantization), QCONFIGS[kind](torch.ao.quantization)
    for name in ["activation_is_statically_quantized", "activation_is_dynamically_quantized",
                 "activation_is_int8_quantized", "activation_is_int32_quantized",
                 "weight_is_quantized", "weight_is_statically_quantized",
                 "op_is_int8_dynamically_quantized"]:
        assert getattr(eu, name)(eq) == getattr(tu, name)(tq), name
    assert eu.get_quant_type(eq).name == tu.get_quant_type(tq).name


def test_get_qparam_dict_after_observing():
    x = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
    eobs = ember.ao.quantization.PerChannelMinMaxObserver(qscheme=ember.per_channel_symmetric,
                                                          dtype=ember.qint8)
    tobs = torch.ao.quantization.PerChannelMinMaxObserver(qscheme=torch.per_channel_symmetric,
                                                          dtype=torch.qint8)
    eobs(ember.tensor(x))
    tobs(torch.tensor(x))
    ed, td = eu.get_qparam_dict(eobs), tu.get_qparam_dict(tobs)
    assert set(ed) == set(td)
    assert str(ed["qscheme"]).split(".")[-1] == str(td["qscheme"]).split(".")[-1]
    assert ed["axis"] == td["axis"] and ed["quant_min"] == td["quant_min"]
    np.testing.assert_array_equal(ed["scale"].numpy(), td["scale"].numpy())


def _fqn_model(lib):
    class Sub(lib.nn.Module):
        def forward(self, x, k=3, j=4):
            return x * k

    class KwOnly(lib.nn.Module):
        def forward(self, x, *, k=3, j=4):
            return x * k

    class M(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = lib.nn.Linear(3, 3)
            self.sub = Sub()
            self.kw = KwOnly()

        def forward(self, x):
            return self.kw(self.sub(self.lin(x), j=6), j=7)

    return M()


def test_get_fqn_to_example_inputs():
    x = np.ones((2, 3), np.float32)
    got = eu.get_fqn_to_example_inputs(_fqn_model(ember), (ember.tensor(x),))
    want = tu.get_fqn_to_example_inputs(_fqn_model(torch), (torch.tensor(x),))
    assert set(got) == set(want)
    for fqn in want:       # torch.ao's flattening, keyword-only defaults included
        assert len(got[fqn]) == len(want[fqn]) and got[fqn][1:] == want[fqn][1:], fqn
    assert ember.nn.Module.__call__.__name__ == "__call__"     # restored
