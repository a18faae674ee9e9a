"""What torch.ao users print: observers, fake quantizes and converted modules show the
same text as torch.ao's (library name aside), and the switch buffers keep their dtype."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.ao.quantization as tq

import ember
import ember.ao.quantization as eq

pytestmark = pytest.mark.filterwarnings("ignore")

_MAKERS = {
    "MinMaxObserver": lambda Q: Q.MinMaxObserver(),
    "PerChannelMinMaxObserver": lambda Q: Q.PerChannelMinMaxObserver(ch_axis=1),
    "PlaceholderObserver": lambda Q: Q.PlaceholderObserver(),
    "NoopObserver": lambda Q: Q.NoopObserver(),
    "FakeQuantize": lambda Q: Q.FakeQuantize(),
    "FusedMovingAvgObsFakeQuantize": lambda Q: Q.FusedMovingAvgObsFakeQuantize(),
    "FixedQParamsFakeQuantize": lambda Q: Q.default_fixed_qparams_range_0to1_fake_quant(),
    "embedding_fake_quant": lambda Q: Q.default_embedding_fake_quant(),
}


def _text(module, lib: str) -> str:
    return repr(module).replace(lib, "LIB")


@pytest.mark.parametrize("name", sorted(_MAKERS))
def test_observer_and_fake_quantize_repr_match_torch_ao(rng, name):
    x = rng.standard_normal((4, 3, 5)).astype(np.float32)
    t_mod, e_mod = _MAKERS[name](tq), _MAKERS[name](eq)
    assert _text(e_mod, "ember") == _text(t_mod, "torch")
    t_mod(torch.from_numpy(x))
    e_mod(ember.tensor(x))
    assert _text(e_mod, "ember") == _text(t_mod, "torch")


def test_fused_fake_quantize_switches_keep_their_dtype():
    t_mod, e_mod = tq.FusedMovingAvgObsFakeQuantize(), eq.FusedMovingAvgObsFakeQuantize()
    for mod in (t_mod, e_mod):
        mod.disable_fake_quant()
        mod.disable_observer()
    assert str(e_mod.fake_quant_enabled.dtype).split(".")[-1] == \
        str(t_mod.fake_quant_enabled.dtype).split(".")[-1] == "int64"
    assert int(e_mod.observer_enabled.numpy()[0]) == int(t_mod.observer_enabled[0]) == 0


def test_converted_quant_stub_prints_like_torch_ao(rng):
    x = rng.standard_normal((4, 3)).astype(np.float32)
    texts = []
    for lib, Q, name in ((torch, tq, "torch"), (ember, eq, "ember")):
        model = Q.QuantWrapper(lib.nn.Linear(3, 2)).eval()
        model.qconfig = Q.get_default_qconfig("x86")
        prepared = Q.prepare(model)
        prepared(lib.tensor(x))
        quant = Q.convert(prepared).quant
        texts.append(_text(quant, name))
    assert texts[0] == texts[1]
