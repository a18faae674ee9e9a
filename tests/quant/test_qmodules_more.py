"""Quantized modules beyond the tutorial's set, each against torch.ao on the same
weights and inputs: QFunctional's scalar forms, ConvTranspose1d/2d, GroupNorm,
InstanceNorm1d/2d/3d and the dynamic RNN cells."""
import warnings

import numpy as np
import pytest
import torch

import ember
import ember.ao.nn.quantized as enq
import torch.ao.nn.quantized as tnq

warnings.filterwarnings("ignore")

_DT = {torch.quint8: ember.quint8, torch.qint8: ember.qint8}


def _same_quantized(t, e):
    assert t.q_scale() == e.q_scale()
    assert t.q_zero_point() == e.q_zero_point()
    np.testing.assert_array_equal(t.int_repr().numpy(), e.int_repr().numpy())


@pytest.mark.parametrize("dtype", [torch.quint8, torch.qint8])
def test_qfunctional_scalar_ops_are_bit_exact(dtype):
    rng = np.random.default_rng(0)
    for trial in range(60):
        scale = float(np.float32(rng.uniform(0.001, 0.2)))
        zp = int(rng.integers(0, 256) if dtype == torch.quint8 else rng.integers(-128, 128))
        x = (rng.standard_normal(64) * 3).astype(np.float32)
        c = float([0.0, rng.standard_normal() * 0.1, rng.standard_normal() * 10,
                   rng.standard_normal() * 200][trial % 4])
        tx = torch.quantize_per_tensor(torch.from_numpy(x), scale, zp, dtype)
        ex = ember.quantize_per_tensor(ember.tensor(x), scale, zp, _DT[dtype])
        for op in ("add_scalar", "mul_scalar"):
            _same_quantized(getattr(tnq.QFunctional(), op)(tx, c),
                            getattr(enq.QFunctional(), op)(ex, c))


def _eager(lib, q, layers, qconfig):
    model = lib.nn.Sequential(q.QuantStub(), *layers, q.DeQuantStub()).eval()
    model.qconfig = qconfig
    return model


def _convert_both(make, shape, t_qconfig, e_qconfig, seed=0):
    """The same float model built in torch and ember, converted in eager mode with the
    same weights and calibration data; returns (torch's, ember's, the input)."""
    import torch.ao.quantization as tq
    import ember.ao.quantization as eq
    from quant_twins import share_random_weights
    rng = np.random.default_rng(seed)
    t_model = _eager(torch, tq, make(torch.nn), t_qconfig)
    e_model = _eager(ember, eq, make(ember.nn), e_qconfig)
    share_random_weights(t_model, e_model, rng)
    data = rng.standard_normal(shape).astype(np.float32)
    t_p, e_p = tq.prepare(t_model), eq.prepare(e_model)
    t_p(torch.from_numpy(data))
    e_p(ember.tensor(data))
    return tq.convert(t_p), eq.convert(e_p), data


def _within_one_step(t_q, e_q, data):
    t_out = t_q[:-1](torch.from_numpy(data))
    e_out = e_q[:-1](ember.tensor(data))
    assert t_out.q_scale() == pytest.approx(e_out.q_scale(), rel=1e-5)
    diff = np.abs(t_out.int_repr().numpy().astype(int) - e_out.int_repr().numpy())
    assert diff.max() <= 1 and (diff == 0).mean() > 0.95, (diff.max(), (diff == 0).mean())


@pytest.mark.parametrize("ndim", [1, 2])
def test_conv_transpose_group_instance_norm_leaky_relu_agree_with_torch_ao(ndim, monkeypatch):
    import torch.ao.quantization as tq
    import ember.ao.quantization as eq

    def make(nn):
        conv_t = getattr(nn, f"ConvTranspose{ndim}d")
        norm = getattr(nn, f"InstanceNorm{ndim}d")
        return [conv_t(3, 6, 3, stride=2, padding=1, output_padding=1), nn.GroupNorm(3, 6),
                norm(6, affine=True), nn.LeakyReLU(0.2),
                conv_t(6, 4, 2, stride=1, groups=2, bias=False)]
    shape = (2, 3, 7) if ndim == 1 else (2, 3, 5, 5)
    # torch's x86 engine (oneDNN) computes transposed convs with in != out channels
    # wrongly (off its own float result by many steps); its fbgemm engine is the oracle
    monkeypatch.setattr(torch.backends.quantized, "engine", "fbgemm")
    t_q, e_q, data = _convert_both(make, shape, tq.default_qconfig, eq.default_qconfig)
    assert type(e_q[1]).__name__ == f"ConvTranspose{ndim}d"
    assert type(e_q[3]).__name__ == f"InstanceNorm{ndim}d"
    t_w, e_w = t_q[1].weight(), e_q[1].weight()
    np.testing.assert_array_equal(t_w.int_repr().numpy(), e_w.int_repr().numpy())
    assert t_w.q_scale() == e_w.q_scale()
    _within_one_step(t_q, e_q, data)
    # both list a missing bias, as None
    t_sd, e_sd = t_q.state_dict(), e_q.state_dict()
    assert list(t_sd) == list(e_sd)
    assert [k for k, v in t_sd.items() if v is None] == [k for k, v in e_sd.items() if v is None]


def test_conv_transpose_refuses_per_channel_weights_as_torch_ao():
    import ember.ao.quantization as eq
    model = _eager(ember, eq, [ember.nn.ConvTranspose2d(2, 2, 3)], eq.get_default_qconfig("x86"))
    prepared = eq.prepare(model)
    prepared(ember.randn(1, 2, 4, 4))
    with pytest.raises(RuntimeError, match="per-channel weight observers are not supported"):
        eq.convert(prepared)


@pytest.mark.parametrize("kind", ["LSTMCell", "GRUCell", "RNNCell", "RNNCell-relu"])
def test_dynamic_rnn_cells_agree_with_torch_ao(kind):
    """quantize_dynamic's default takes the cells too; one step from a given state runs
    both gate matmuls as the dynamic int8 linear: equal to float rounding."""
    import torch.ao.quantization as tq
    import ember.ao.quantization as eq
    name, _, act = kind.partition("-")
    kwargs = {"nonlinearity": act} if act else {}
    t_model = torch.nn.Sequential(getattr(torch.nn, name)(12, 20, **kwargs))
    e_model = ember.nn.Sequential(getattr(ember.nn, name)(12, 20, **kwargs))
    e_model.load_state_dict({k: ember.tensor(v.numpy()) for k, v in
                             t_model.state_dict().items()})
    t_q, e_q = tq.quantize_dynamic(t_model), eq.quantize_dynamic(e_model)
    assert type(e_q[0]).__name__ == name and e_q[0].weight_ih.dtype is ember.qint8
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 12)).astype(np.float32)
    h = rng.standard_normal((5, 20)).astype(np.float32) * 0.5
    t_state = (torch.from_numpy(h), torch.from_numpy(h * 2)) if name == "LSTMCell" else \
        torch.from_numpy(h)
    e_state = (ember.tensor(h), ember.tensor(h * 2)) if name == "LSTMCell" else ember.tensor(h)
    t_out, e_out = t_q[0](torch.from_numpy(x), t_state), e_q[0](ember.tensor(x), e_state)
    for t, e in zip(t_out if name == "LSTMCell" else [t_out],
                    e_out if name == "LSTMCell" else [e_out]):
        np.testing.assert_allclose(e.numpy(), t.detach().numpy(), atol=2e-5)
    # the default zero state (torch.ao's dynamic cells take batched input only)
    t1 = t_q[0](torch.from_numpy(x))
    e1 = e_q[0](ember.tensor(x))
    np.testing.assert_allclose((e1[0] if name == "LSTMCell" else e1).numpy(),
                               (t1[0] if name == "LSTMCell" else t1).detach().numpy(),
                               atol=2e-5)


def test_float16_dynamic_quantization_agrees_with_torch_ao():
    """dtype=float16: weights rounded to half precision, computed in float32."""
    import torch.ao.quantization as tq
    import ember.ao.quantization as eq

    def make(nn):
        return nn.Sequential(nn.Linear(16, 24), nn.ReLU(), nn.Linear(24, 8), nn.LSTMCell(8, 6))
    t_model, e_model = make(torch.nn), make(ember.nn)
    e_model.load_state_dict({k: ember.tensor(v.numpy()) for k, v in
                             t_model.state_dict().items()})
    t_q = tq.quantize_dynamic(t_model, dtype=torch.float16)
    e_q = eq.quantize_dynamic(e_model, dtype=ember.float16)
    assert e_q[0].weight().dtype is ember.float16 and e_q[3].weight_ih.dtype is ember.float16
    x = np.random.default_rng(5).standard_normal((4, 16)).astype(np.float32)
    t_y, e_y = t_q[:3](torch.from_numpy(x)), e_q[:3](ember.tensor(x))
    np.testing.assert_allclose(e_y.numpy(), t_y.detach().numpy(), atol=1e-5)
    t_h, t_c = t_q[3](t_y)
    e_h, e_c = e_q[3](e_y)
    np.testing.assert_allclose(e_h.numpy(), t_h.detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(e_c.numpy(), t_c.detach().numpy(), atol=1e-5)
    with pytest.raises(Exception, match="dtype must be ember.qint8 or ember.float16"):
        eq.quantize_dynamic(e_model, dtype=ember.quint8)
