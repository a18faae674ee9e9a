"""The FX quantization pipeline's models as torch.ao prints them: fuse_fx, prepare_fx,
convert_fx and convert_to_reference_fx return a `GraphModule(...)` (not the model's class
name), and the converted graph's node names follow torch.ao's."""
import warnings

import numpy as np
import torch

import ember
import ember.ao.quantization as eq
import ember.ao.quantization.quantize_fx as eqfx
import torch.ao.quantization as tq
import torch.ao.quantization.quantize_fx as tqfx
from quant_twins import converted_twins, share_random_weights

warnings.filterwarnings("ignore")


def _model(nn):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.fc = nn.Linear(6, 6)

        def forward(self, x):
            y = self.conv(x)
            z = self.fc(y)
            return z + y
    return Net().eval()


def _stages(lib, q, fx):
    data = lib.tensor(np.random.default_rng(0).standard_normal((2, 3, 8, 8))
                      .astype(np.float32))
    fused = fx.fuse_fx(_model(lib.nn))
    prepared = fx.prepare_fx(_model(lib.nn), q.get_default_qconfig_mapping("x86"), (data,))
    prepared(data)
    return fused, prepared, fx.convert_to_reference_fx(prepared), fx.convert_fx(prepared)


def test_pipeline_models_are_named_graph_module_as_torch_ao():
    t_names = [type(m).__name__ for m in _stages(torch, tq, tqfx)]
    e_stages = _stages(ember, eq, eqfx)
    assert [type(m).__name__ for m in e_stages] == t_names == ["GraphModule"] * 4
    assert all(repr(m).startswith("GraphModule(") for m in e_stages)
