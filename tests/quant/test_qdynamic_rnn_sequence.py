"""Dynamically quantized LSTM / GRU over whole sequences match torch.ao's numbers: torch's
CPU kernel projects a layer's whole input sequence through W_ih in one dynamic int8
linear (one activation range for every step), so quantizing step by step differs
(found by the user-program probe: tests/compat/user_probe_quant.py)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import ember  # noqa: E402


def _quantized(lib, cell, rng_seed, **kwargs):
    model = lib.nn.Sequential(getattr(lib.nn, cell)(6, 5, **kwargs))
    with lib.no_grad():
        for i, (_, p) in enumerate(sorted(model.named_parameters())):
            values = np.random.default_rng(rng_seed + i).standard_normal(tuple(p.shape))
            p.copy_(lib.tensor((values * 0.3).astype(np.float32)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lib.ao.quantization.quantize_dynamic(model, {getattr(lib.nn, cell)},
                                                    dtype=lib.qint8)


def _run(lib, model, x, lengths):
    inp = lib.tensor(x)
    if lengths is not None:
        inp = lib.nn.utils.rnn.pack_padded_sequence(inp, lib.tensor(lengths),
                                                    enforce_sorted=False)
    out, hidden = model(inp)
    if lengths is not None:
        out = lib.nn.utils.rnn.pad_packed_sequence(out)[0]
    hidden = hidden if isinstance(hidden, tuple) else (hidden,)
    return [out.detach().numpy()] + [h.detach().numpy() for h in hidden]


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
@pytest.mark.parametrize("kwargs,lengths", [
    ({}, None),
    ({"num_layers": 2, "bidirectional": True}, None),
    ({"num_layers": 2}, [5, 2, 4]),
])
def test_dynamic_rnn_sequence_matches_torch(cell, kwargs, lengths):
    x = np.random.default_rng(1).standard_normal((5, 3, 6)).astype(np.float32)
    want = _run(torch, _quantized(torch, cell, 10, **kwargs), x, lengths)
    got = _run(ember, _quantized(ember, cell, 10, **kwargs), x, lengths)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
