"""F.linear / F.conv2d with attribute weights through convert_fx and
convert_to_reference_fx: the converted model's state as torch.ao's (the weight's qparams
take a `<scope>_scale_N` before the output's; lowered, the float weight and bias leave
the model and the packed weight holds both; reference, the weight is read through
quantize_per_channel -> dequantize with its qparams as buffers), and that state loads back."""
import warnings

import numpy as np
import pytest
import torch

import ember
import ember.ao.quantization as eq
import ember.ao.quantization.quantize_fx as eqfx
import torch.ao.quantization as tq
import torch.ao.quantization.quantize_fx as tqfx
from quant_twins import share_random_weights

warnings.filterwarnings("ignore")


def _model(lib):
    nn, F = lib.nn, lib.nn.functional

    class Block(nn.Module):          # two functional linears in one scope
        def __init__(self):
            super().__init__()
            self.w1 = nn.Parameter(lib.randn(6, 6))
            self.b1 = nn.Parameter(lib.randn(6))
            self.w2 = nn.Parameter(lib.randn(4, 6))
            self.b2 = nn.Parameter(lib.randn(4))

        def forward(self, x):
            return F.linear(F.linear(x, self.w1, self.b1), self.w2, self.b2)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.cw = nn.Parameter(lib.randn(3, 2, 3, 3))
            self.cb = nn.Parameter(lib.randn(3))
            self.block = Block()

        def forward(self, x):
            y = F.conv2d(x, self.cw, self.cb, (1, 1), (0, 0), (1, 1), 1)
            return self.block(y)      # linear over the last dim
    return Net().eval()


def _converted(lib, q, fx, model, data, reference):
    x = lib.tensor(data[0])
    prepared = fx.prepare_fx(model, q.get_default_qconfig_mapping("fbgemm"), (x,))
    for d in data:
        prepared(lib.tensor(d))
    return (fx.convert_to_reference_fx if reference else fx.convert_fx)(prepared)


def _twins(reference, seed=3):
    rng = np.random.default_rng(seed)
    data = [rng.standard_normal((2, 2, 3, 8)).astype(np.float32) for _ in range(3)]
    t_model, e_model = _model(torch), _model(ember)
    share_random_weights(t_model, e_model, rng)
    return (_converted(torch, tq, tqfx, t_model, data, reference),
            _converted(ember, eq, eqfx, e_model, data, reference), data)


@pytest.mark.parametrize("reference", [False, True])
def test_functional_state_dict_keys_and_outputs_as_torch_ao(reference):
    t_c, e_c, data = _twins(reference)
    assert sorted(e_c.state_dict()) == sorted(t_c.state_dict())
    t_state, e_state = t_c.state_dict(), e_c.state_dict()
    for key, value in t_state.items():      # the qparams (reference: the weights' too)
        if "scale" in key or "zero_point" in key:
            np.testing.assert_allclose(e_state[key].numpy(), value.numpy(), rtol=1e-6)
    with torch.no_grad(), ember.no_grad():
        t_out = t_c(torch.from_numpy(data[0]))
        e_out = e_c(ember.tensor(data[0]))
    step = float(t_state["block_scale_3"])
    np.testing.assert_allclose(e_out.numpy(), t_out.numpy(), atol=1.01 * step)


def test_reference_reads_the_weight_through_quantize_per_channel():
    _, e_c, _ = _twins(reference=True)
    code = e_c.code
    assert code.count("ember.quantize_per_channel(") == 3
    assert "block_w1 = self.block.w1" in code


def test_lowered_functional_state_round_trips():
    """The packed entry carries (weight, bias): loading another conversion's state gives
    that conversion's outputs, biases included."""
    _, e_a, data = _twins(False, seed=3)
    _, e_b, _ = _twins(False, seed=4)
    state = e_a.state_dict()
    weight, bias = state["_packed_weight_0"]
    assert weight.is_quantized and tuple(bias.shape) == (3,)   # the conv's
    x = ember.tensor(data[1])
    with ember.no_grad():
        want = e_a(x).numpy()
        assert not np.allclose(e_b(x).numpy(), want)
        e_b.load_state_dict(state)
        np.testing.assert_array_equal(e_b(x).numpy(), want)
