"""nn.RNN/LSTM/GRU and their cells against torch: parameter names (torch state_dicts
load), values and float64 gradients, h0/c0, unbatched input, PackedSequence, errors,
and tracing/compiling (the time loop unrolled into cell ops)."""
import numpy as np
import pytest
import torch

import ember
from ember.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

CONFIGS = [
    ("LSTM", {}),
    ("GRU", {}),
    ("RNN", {}),
    ("RNN", dict(nonlinearity="relu", bias=False)),
    ("LSTM", dict(num_layers=2, bidirectional=True, proj_size=3)),
    ("GRU", dict(num_layers=2, batch_first=True, bidirectional=True)),
    ("LSTM", dict(batch_first=True, bias=False)),
]


def _pair(cls: str, *args, **kwargs):
    torch.manual_seed(0)
    reference = getattr(torch.nn, cls)(*args, **kwargs).double()
    port = getattr(ember.nn, cls)(*args, **kwargs).double()
    assert list(port.state_dict()) == list(reference.state_dict())
    port.load_state_dict({k: ember.tensor(v.numpy()) for k, v in reference.state_dict().items()})
    return reference, port


def _first(state):
    return state[0] if isinstance(state, tuple) else state


def _assert_close(a, b, atol=1e-10):
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), atol=atol, rtol=1e-7)


@pytest.mark.parametrize("cls,kwargs", CONFIGS, ids=[f"{c}-{k}" for c, k in CONFIGS])
def test_values_and_float64_gradients_match_torch(cls, kwargs):
    reference, port = _pair(cls, 5, 6, **kwargs)
    x = np.random.default_rng(0).standard_normal((4, 3, 5))
    tx, ex = torch.tensor(x, requires_grad=True), ember.tensor(x, requires_grad=True)
    (to, th), (eo, eh) = reference(tx), port(ex)
    _assert_close(eo, to)
    for a, b in zip(eh if isinstance(eh, tuple) else (eh,), th if isinstance(th, tuple) else (th,)):
        _assert_close(a, b)
    (to.sum() + _first(th).pow(2).sum()).backward()
    (eo.sum() + _first(eh).pow(2).sum()).backward()
    _assert_close(ex.grad, tx.grad)
    for (name, p), (_, q) in zip(port.named_parameters(), reference.named_parameters()):
        _assert_close(p.grad, q.grad)


def test_initial_states_and_unbatched_input():
    reference, port = _pair("LSTM", 3, 4, num_layers=2)
    rng = np.random.default_rng(1)
    x, h0, c0 = rng.standard_normal((5, 3)), rng.standard_normal((2, 4)), \
        rng.standard_normal((2, 4))
    to, (th, tc) = reference(torch.tensor(x), (torch.tensor(h0), torch.tensor(c0)))
    eo, (eh, ec) = port(ember.tensor(x), (ember.tensor(h0), ember.tensor(c0)))
    for a, b in ((eo, to), (eh, th), (ec, tc)):
        assert tuple(a.shape) == tuple(b.shape)
        _assert_close(a, b)


@pytest.mark.parametrize("cls", ["RNNCell", "LSTMCell", "GRUCell"])
def test_cells_match_torch(cls):
    reference, port = _pair(cls, 3, 5)
    rng = np.random.default_rng(2)
    x, h = rng.standard_normal((4, 3)), rng.standard_normal((4, 5))
    state = (h, rng.standard_normal((4, 5))) if cls == "LSTMCell" else h
    wrap = lambda lib, v: tuple(lib.tensor(s) for s in v) if isinstance(v, tuple) \
        else lib.tensor(v)  # noqa: E731
    got, expected = port(ember.tensor(x), wrap(ember, state)), \
        reference(torch.tensor(x), wrap(torch, state))
    for a, b in zip(got if isinstance(got, tuple) else (got,),
                    expected if isinstance(expected, tuple) else (expected,)):
        _assert_close(a, b)
    unbatched = port(ember.tensor(x[0]))                      # no state: zeros
    _assert_close(_first(unbatched), _first(reference(torch.tensor(x[0]))))


def test_packed_sequences_match_torch():
    reference, port = _pair("GRU", 3, 4, bidirectional=True, batch_first=True)
    x = np.random.default_rng(3).standard_normal((3, 5, 3))
    lengths = [2, 5, 3]
    tp = torch.nn.utils.rnn.pack_padded_sequence(torch.tensor(x), lengths, batch_first=True,
                                                 enforce_sorted=False)
    ep = pack_padded_sequence(ember.tensor(x), lengths, batch_first=True, enforce_sorted=False)
    _assert_close(ep.data, tp.data)
    assert ep.batch_sizes.tolist() == tp.batch_sizes.tolist()
    (to, th), (eo, eh) = reference(tp), port(ep)
    _assert_close(eh, th)
    t_out, t_len = torch.nn.utils.rnn.pad_packed_sequence(to, batch_first=True)
    e_out, e_len = pad_packed_sequence(eo, batch_first=True)
    assert e_len.tolist() == t_len.tolist()
    _assert_close(e_out, t_out)


def test_arguments_are_checked_as_torch_does():
    with pytest.raises(ValueError, match="proj_size argument is only supported for LSTM"):
        ember.nn.GRU(3, 4, proj_size=2)
    with pytest.raises(ValueError, match="proj_size has to be smaller than hidden_size"):
        ember.nn.LSTM(3, 4, proj_size=4)
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        ember.nn.LSTM(3, 4, dropout=0.5)
    with pytest.raises(RuntimeError, match=r"Expected hidden size \(1, 2, 4\)"):
        ember.nn.RNN(3, 4)(ember.randn(5, 2, 3), ember.zeros(1, 3, 4))
    lstm = ember.nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    bound = 1 / 2                          # 1/sqrt(hidden_size): torch's init
    assert all(float(p.abs().max()) <= bound for p in lstm.parameters())
    assert repr(lstm) == repr(torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True))


def test_lstm_traces_and_compiles():
    _, port = _pair("LSTM", 4, 6, num_layers=2, batch_first=True)
    port = port.float().eval()
    x = ember.randn(3, 5, 4)
    fast = ember.compile(port)
    with ember.no_grad():
        out, (h, c) = fast(x)
        ref_out, (ref_h, ref_c) = port(x)
    for a, b in ((out, ref_out), (h, ref_h), (c, ref_c)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)
    assert [type(e).__name__ for e in fast.dispatcher.entries.values()] == ["InferenceEntry"]
    # torch.fx keeps a standard layer as one call_module node inside a traced model
    wrapper = ember.nn.Sequential(port)
    kinds = [n.op for n in ember.fx.symbolic_trace(wrapper).graph.nodes]
    assert "call_module" in kinds


def test_gru_trains_compiled_like_eager():
    _, port = _pair("GRU", 3, 4)
    port = port.float()
    x = ember.randn(5, 2, 3)
    out, _ = ember.compile(port)(x)
    out.sum().backward()
    compiled_grads = [p.grad.numpy().copy() for p in port.parameters()]
    port.zero_grad()
    port(x)[0].sum().backward()
    for a, p in zip(compiled_grads, port.parameters()):
        np.testing.assert_allclose(a, p.grad.numpy(), atol=1e-5)


def test_packed_lstm_with_initial_state_and_sorted_input_matches_torch():
    reference, port = _pair("LSTM", 3, 4, num_layers=2)
    rng = np.random.default_rng(4)
    x, h0, c0 = (rng.standard_normal(s) for s in ((4, 3, 3), (2, 3, 4), (2, 3, 4)))
    lengths = [4, 3, 1]
    tp = torch.nn.utils.rnn.pack_padded_sequence(torch.tensor(x), lengths)
    ep = pack_padded_sequence(ember.tensor(x), lengths)
    (to, (th, tc)) = reference(tp, (torch.tensor(h0), torch.tensor(c0)))
    (eo, (eh, ec)) = port(ep, (ember.tensor(h0), ember.tensor(c0)))
    assert eo.sorted_indices is None and to.sorted_indices is None
    for a, b in ((eo.data, to.data), (eh, th), (ec, tc)):
        _assert_close(a, b)


def test_dropout_between_layers_only_in_training():
    reference, port = _pair("GRU", 3, 4, num_layers=2, dropout=0.5)
    x = np.random.default_rng(5).standard_normal((4, 2, 3))
    port.eval()
    reference.eval()
    _assert_close(port(ember.tensor(x))[0], reference(torch.tensor(x))[0])
    port.train()
    ember.manual_seed(0)
    trained = port(ember.tensor(x))[0]
    assert not np.allclose(trained.detach().numpy(), reference(torch.tensor(x))[0].detach().numpy())
