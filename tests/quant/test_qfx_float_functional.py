"""FX graph mode on models written for eager mode: FloatFunctional becomes
FXFloatFunctional before tracing (the graph holds the plain add / mul / cat, and an add
followed by a ReLU module is one add_relu), and a shortcut module (nn.Identity) reading
a model input another layer reads runs on the same quantized input, as torch.ao's
prepare_fx / convert_fx do."""
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


def _model(lib, op):
    nn = lib.nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)
            self.shortcut = nn.Identity()
            self.ff = nn.quantized.FloatFunctional()
            self.relu = nn.ReLU()
            self.pool = nn.AdaptiveAvgPool2d(1)

        def forward(self, x):
            a, b = self.conv(x), self.shortcut(x)
            if op == "cat":
                y = self.ff.cat([a, b], 1)
            else:
                y = getattr(self.ff, op)(a, b)
            return self.pool(self.relu(y)).flatten(1)
    return Block().eval()


@pytest.mark.parametrize("op", ["add", "mul", "cat", "add_relu"])
def test_float_functional_shortcut_as_torch_ao(op):
    rng = np.random.default_rng(5)
    data = [rng.standard_normal((2, 3, 4, 4)).astype(np.float32) for _ in range(3)]
    t_model, e_model = _model(torch, op), _model(ember, op)
    share_random_weights(t_model, e_model, rng)
    results = []
    for lib, q, fx, model in ((torch, tq, tqfx, t_model), (ember, eq, eqfx, e_model)):
        prepared = fx.prepare_fx(model, q.get_default_qconfig_mapping("fbgemm"),
                                 (lib.tensor(data[0]),))
        assert type(model.ff).__name__ == "FXFloatFunctional"    # swapped in place
        for d in data:
            prepared(lib.tensor(d))
        converted = fx.convert_fx(prepared)
        calls = [n.name for n in converted.graph.nodes
                 if n.op in ("call_function", "call_module", "call_method")]
        results.append((calls, sorted(converted.state_dict()),
                        converted(lib.tensor(data[1])).detach().numpy()))
    (t_calls, t_keys, t_out), (e_calls, e_keys, e_out) = results
    assert e_keys == t_keys
    assert "shortcut" in e_calls and not any("activation_post_process" in c for c in e_calls)
    if op in ("add", "add_relu"):
        assert any(c.startswith("add_relu") for c in e_calls)     # fused with the ReLU
    step = float(t_out.max() - min(t_out.min(), 0)) / 255      # the output's 8-bit step
    np.testing.assert_allclose(e_out, t_out, atol=1.01 * step + 1e-6)
