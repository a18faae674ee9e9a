"""Converted (int8) models through ember.compile: equal to the eager converted model. The
quantized ops run as eager steps of the plan on their native kernels (nothing fuses
integers as if they were values); float parts around them compile as usual."""
from __future__ import annotations

import numpy as np
import pytest

import ember
import ember.ao.quantization as eq
import ember.ao.quantization.quantize_fx as eqfx
from tests.quant.test_fx_e2e import INPUTS, twin_models

pytestmark = pytest.mark.filterwarnings("ignore")


def converted(name, rng):
    _, model = twin_models(name, rng)
    x = ember.tensor(rng.standard_normal((4,) + INPUTS[name]).astype(np.float32))
    with ember.no_grad():
        prepared = eqfx.prepare_fx(model, eq.get_default_qconfig_mapping("x86"), (x,))
        prepared(x)
        return eqfx.convert_fx(prepared), x


@pytest.mark.parametrize("name", ["mlp", "resnetish"])
def test_compiled_converted_model_equals_eager(rng, name):
    model, x = converted(name, rng)
    with ember.no_grad():
        want = model(x).numpy()
        compiled = ember.compile(model)
        np.testing.assert_array_equal(compiled(x).numpy(), want)
        x2 = ember.tensor(rng.standard_normal(tuple(x.shape)).astype(np.float32))
        np.testing.assert_array_equal(compiled(x2).numpy(), model(x2).numpy())
    assert "quantized_linear" in compiled.stats.fallbacks


def test_compiled_float_tail_after_dequantize(rng):
    model, x = converted("mlp", rng)
    with ember.no_grad():
        want = ember.tanh(model(x) * 2.0 + 1.0).numpy()
        got = ember.compile(lambda t: ember.tanh(model(t) * 2.0 + 1.0))(x).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
