"""torch's top-level RNN cell functions (lstm_cell, gru_cell, rnn_tanh_cell, rnn_relu_cell)
and nn.LSTM / GRU / RNN and their cells under CPU autocast, against torch."""
import numpy as np
import pytest
import torch

import ember

CELLS = [("lstm_cell", 4), ("gru_cell", 3), ("rnn_tanh_cell", 1), ("rnn_relu_cell", 1)]


def _args(name, chunks, lib, with_bias):
    rng = np.random.default_rng(chunks)
    x, h, c = (rng.standard_normal(s).astype(np.float32) for s in ((3, 4), (3, 5), (3, 5)))
    w_ih = rng.standard_normal((5 * chunks, 4)).astype(np.float32)
    w_hh = rng.standard_normal((5 * chunks, 5)).astype(np.float32)
    b_ih, b_hh = (rng.standard_normal(5 * chunks).astype(np.float32) for _ in range(2))
    t = lib.tensor
    hx = (t(h), t(c)) if name == "lstm_cell" else t(h)
    args = [t(x), hx, t(w_ih), t(w_hh)]
    return args + [t(b_ih), t(b_hh)] if with_bias else args


def _flat(out):
    return [z for y in out for z in _flat(y)] if isinstance(out, (tuple, list)) else [out]


def _dtype(t):
    return str(t.dtype).split(".")[-1]


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("name,chunks", CELLS)
def test_cell_function_matches_torch(name, chunks, with_bias):
    ours = _flat(getattr(ember, name)(*_args(name, chunks, ember, with_bias)))
    theirs = _flat(getattr(torch, name)(*_args(name, chunks, torch, with_bias)))
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,chunks", CELLS)
def test_cell_function_cpu_autocast_dtype_matches_torch(name, chunks):
    with ember.autocast("cpu", dtype=ember.bfloat16):
        ours = _flat(getattr(ember, name)(*_args(name, chunks, ember, True)))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        theirs = _flat(getattr(torch, name)(*_args(name, chunks, torch, True)))
    assert [_dtype(a) for a in ours] == [_dtype(b) for b in theirs]
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.float().numpy(), b.float().numpy(), rtol=0.05, atol=0.1)


def test_lstm_cell_rejects_a_single_state():
    args = _args("gru_cell", 4, ember, True)
    with pytest.raises(RuntimeError, match="hx"):
        ember.lstm_cell(*args)


@pytest.mark.parametrize("module", ["LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell"])
def test_recurrent_modules_under_cpu_autocast_match_torch(module):
    torch.manual_seed(0)
    theirs_m = getattr(torch.nn, module)(4, 6)
    ours_m = getattr(ember.nn, module)(4, 6)
    ours_m.load_state_dict({k: ember.tensor(v.detach().numpy())
                            for k, v in theirs_m.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((5, 3, 4) if "Cell" not in module
                                                 else (3, 4)).astype(np.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        theirs = _flat(theirs_m(torch.tensor(x)))
    with ember.autocast("cpu", dtype=ember.bfloat16):
        ours = _flat(ours_m(ember.tensor(x)))
    assert [_dtype(a) for a in ours] == [_dtype(b) for b in theirs]
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.detach().float().numpy(), b.detach().float().numpy(),
                                   rtol=0.02, atol=0.02)


def test_lstm_under_autocast_gives_float32_parameter_gradients():
    lstm = ember.nn.LSTM(4, 6)
    x = ember.randn(5, 3, 4)
    with ember.autocast("cpu", dtype=ember.bfloat16):
        out, _ = lstm(x)
    assert out.dtype == ember.bfloat16
    out.float().sum().backward()
    grad = lstm.weight_ih_l0.grad
    assert grad is not None and grad.dtype == ember.float32
    assert float(grad.abs().sum()) > 0
