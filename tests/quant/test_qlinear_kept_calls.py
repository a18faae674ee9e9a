"""A statically quantized Linear's kept GEMM call (codegen/quantized.py _LinearCall: made
once per input shape and qparams, the bias read in place): results equal torch.ao's
converted model call after call, with and without bias, at widths the packed weight pads
(the general path) and does not, and a bias changed in place is seen."""
import numpy as np
import pytest
import torch
import torch.ao.quantization as tq
import torch.ao.quantization.quantize_fx as tqfx

import ember
import ember.ao.quantization as eq
import ember.ao.quantization.quantize_fx as eqfx
from ember.codegen.llvm import qgemm as Q

pytestmark = pytest.mark.skipif(Q.active_config() is None, reason="no int8 GEMM kernel here")


def _twins(in_f, out_f, bias, rng):
    t_model = torch.nn.Sequential(torch.nn.Linear(in_f, out_f, bias=bias), torch.nn.ReLU(),
                                  torch.nn.Linear(out_f, 8))
    e_model = ember.nn.Sequential(ember.nn.Linear(in_f, out_f, bias=bias), ember.nn.ReLU(),
                                  ember.nn.Linear(out_f, 8))
    t_model.eval()
    e_model.eval()
    e_model.load_state_dict({k: ember.tensor(v.detach().numpy())
                             for k, v in t_model.state_dict().items()})
    x = rng.standard_normal((16, in_f)).astype(np.float32)
    with torch.no_grad(), ember.no_grad():
        t_prep = tqfx.prepare_fx(t_model, tq.get_default_qconfig_mapping("x86"),
                                 (torch.from_numpy(x),))
        e_prep = eqfx.prepare_fx(e_model, eq.get_default_qconfig_mapping("x86"),
                                 (ember.tensor(x),))
        for _ in range(3):
            c = rng.standard_normal((16, in_f)).astype(np.float32)
            t_prep(torch.from_numpy(c))
            e_prep(ember.tensor(c))
        return tqfx.convert_fx(t_prep), eqfx.convert_fx(e_prep)


@pytest.mark.parametrize("in_f,out_f", [(64, 128), (36, 50)])
@pytest.mark.parametrize("bias", [True, False])
def test_static_linear_calls_match_torch_ao(in_f, out_f, bias):
    # torch's Linear init draws from torch's global generator: seeded, so each run is the
    # same case (the requantization is torch.ao's bit for bit, ties included)
    torch.manual_seed(in_f * out_f + bias)
    rng = np.random.default_rng(in_f * out_f)
    t_q, e_q = _twins(in_f, out_f, bias, rng)
    for batch in (16, 16, 5):       # the kept call, again, then a new shape
        x = rng.standard_normal((batch, in_f)).astype(np.float32)
        with torch.no_grad(), ember.no_grad():
            # the same integers (a step is ~1e-2): the dequantized floats within 1e-6
            np.testing.assert_allclose(e_q(ember.tensor(x)).numpy(),
                                       t_q(torch.from_numpy(x)).numpy(), rtol=1e-6, atol=1e-6)


def test_static_linear_sees_its_bias_changed_in_place():
    rng = np.random.default_rng(0)
    _, e_q = _twins(64, 64, True, rng)
    layer = getattr(e_q, "0")
    x = ember.tensor(rng.standard_normal((4, 64)).astype(np.float32))
    with ember.no_grad():
        before = layer(ember.quantize_per_tensor(x, 0.05, 60, ember.quint8))
        layer._bias._array[:] += np.float32(100.0)      # as an in-place add would
        after = layer(ember.quantize_per_tensor(x, 0.05, 60, ember.quint8))
    assert (after.int_repr().numpy().astype(int) >= before.int_repr().numpy()).all()
    assert (after.int_repr().numpy() != before.int_repr().numpy()).any()
