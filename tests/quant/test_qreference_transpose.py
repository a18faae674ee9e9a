"""convert_to_reference_fx on the modules convert_fx swaps whole (Conv1d, ConvTranspose):
reference modules (`QuantizedConvTranspose2d(Reference)`) computing with the q/dq weight,
as torch.ao's reference graph has them; and the qnnpack engine's zero bias of quantized
modules built without one."""
import warnings

import numpy as np
import pytest
import torch

import ember
import ember.ao.nn.quantized as enq
import ember.ao.quantization as eq
import ember.ao.quantization.quantize_fx as eqfx
import torch.ao.nn.quantized as tnq
import torch.ao.quantization as tq
import torch.ao.quantization.quantize_fx as tqfx
from quant_twins import share_random_weights

warnings.filterwarnings("ignore")


def _model(lib, kind):
    nn = lib.nn
    layer = {"convt2d": lambda: nn.ConvTranspose2d(3, 4, 3, stride=2),
             "convt1d": lambda: nn.ConvTranspose1d(3, 4, 3),
             "conv1d": lambda: nn.Conv1d(3, 4, 3)}[kind]
    # Conv1d + ReLU fuse (ConvReLU1d); the transposed convolutions stand alone
    return (nn.Sequential(layer(), nn.ReLU()) if kind == "conv1d" else
            nn.Sequential(layer())).eval()


@pytest.mark.parametrize("kind", ["convt2d", "convt1d", "conv1d"])
def test_reference_swapped_modules_as_torch_ao(kind):
    rng = np.random.default_rng(2)
    shape = (2, 3, 5, 5) if kind == "convt2d" else (2, 3, 7)
    data = [rng.standard_normal(shape).astype(np.float32) for _ in range(3)]
    t_model, e_model = _model(torch, kind), _model(ember, kind)
    share_random_weights(t_model, e_model, rng)
    out = []
    for lib, q, fx, model in ((torch, tq, tqfx, t_model), (ember, eq, eqfx, e_model)):
        prepared = fx.prepare_fx(model, q.get_default_qconfig_mapping("fbgemm"),
                                 (lib.tensor(data[0]),))
        for d in data:
            prepared(lib.tensor(d))
        ref = fx.convert_to_reference_fx(prepared)
        out.append((ref, ref(lib.tensor(data[1])).detach().numpy()))
    (t_ref, t_out), (e_ref, e_out) = out
    assert e_ref.get_submodule("0")._get_name() == t_ref.get_submodule("0")._get_name()
    assert sorted(e_ref.state_dict()) == sorted(t_ref.state_dict())
    t_state, e_state = t_ref.state_dict(), e_ref.state_dict()
    (key,) = [k for k in t_state if k.endswith("weight_scale")]
    np.testing.assert_allclose(e_state[key].numpy(), t_state[key].numpy(), rtol=1e-6)
    step = float(t_state["0_scale_0"])            # the output's quantization step
    np.testing.assert_allclose(e_out, t_out, atol=1.01 * step + 1e-6)


@pytest.mark.parametrize("engine", ["qnnpack", "fbgemm"])
def test_quantized_modules_without_bias_under_each_engine(engine):
    """qnnpack packs a zero bias where none is given (bias(), state_dict and repr show
    it); fbgemm keeps None."""
    t_engine, e_engine = torch.backends.quantized.engine, ember.backends.quantized.engine
    torch.backends.quantized.engine = ember.backends.quantized.engine = engine
    try:
        for name, args in (("Linear", (3, 5)), ("Conv1d", (3, 5, 3)), ("Conv2d", (3, 5, 3)),
                           ("ConvTranspose1d", (3, 5, 3)), ("ConvTranspose2d", (3, 5, 3))):
            kw = {"bias_": False} if name == "Linear" else {"bias": False}
            t_mod, e_mod = getattr(tnq, name)(*args, **kw), getattr(enq, name)(*args, **kw)
            t_bias, e_bias = t_mod.bias(), e_mod.bias()
            assert (e_bias is None) == (t_bias is None), name
            if t_bias is not None:
                np.testing.assert_array_equal(e_bias.numpy(), t_bias.numpy())
            assert ("bias=False" in repr(e_mod)) == ("bias=False" in repr(t_mod)), name
            assert list(e_mod.state_dict()) == list(t_mod.state_dict()), name
    finally:
        torch.backends.quantized.engine, ember.backends.quantized.engine = t_engine, e_engine
