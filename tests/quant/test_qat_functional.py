"""prepare_qat_fx on F.linear / F.conv2d with parameter weights: the weights train
fake-quantized (as torch.ao inserts a weight fake quantize), and convert uses the
trained observer; compared with torch.ao on the same weights and data."""
import importlib

import numpy as np
import pytest
import torch

import ember

pytestmark = pytest.mark.filterwarnings("ignore")


def _model(lib, relu=False):
    F = lib.nn.functional
    act = (lambda v: F.relu(v)) if relu else (lambda v: v)     # looked up when traced
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((5, 8)) * 0.3).astype(np.float32)
    cw = (rng.standard_normal((4, 3, 3, 3)) * 0.3).astype(np.float32)

    class M(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = lib.nn.Parameter(lib.tensor(w))
            self.b = lib.nn.Parameter(lib.tensor(np.linspace(-1, 1, 5).astype(np.float32)))
            self.cw = lib.nn.Parameter(lib.tensor(cw))

        def forward(self, x, y):      # torch's lowering needs conv2d's arguments spelled out
            return act(F.linear(x, self.w, self.b)), act(F.conv2d(y, self.cw, None, (1, 1),
                                                                  (1, 1), (1, 1), 1))
    return M()


def _run(lib, steps=3, relu=False):
    q = importlib.import_module(f"{lib.__name__}.ao.quantization")
    qfx = importlib.import_module(f"{lib.__name__}.ao.quantization.quantize_fx")
    rng = np.random.default_rng(4)
    xs = [(lib.tensor(rng.standard_normal((6, 8)).astype(np.float32)),
           lib.tensor(rng.standard_normal((2, 3, 5, 5)).astype(np.float32)))
          for _ in range(steps)]
    prepared = qfx.prepare_qat_fx(_model(lib, relu).train(), q.get_default_qat_qconfig_mapping("x86"),
                                  xs[0])
    opt = lib.optim.SGD(prepared.parameters(), lr=0.1)
    train_outs = []
    for x, y in xs:
        out, conv = prepared(x, y)
        loss = (out ** 2).sum() + (conv ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        train_outs += [out.detach().numpy(), conv.detach().numpy()]
    prepared.eval()
    converted = qfx.convert_fx(prepared)
    final = [t.detach().numpy() for t in converted(*xs[0])]
    return train_outs, final, converted


@pytest.mark.parametrize("relu", [False, True])
def test_functional_weights_train_fake_quantized_like_torch(relu):
    """With F.relu after each, torch.ao's fused pattern: one fake quantize after the
    relu (none between), and convert's quantized op applies the relu itself."""
    t_train, t_final, _ = _run(torch, relu=relu)
    e_train, e_final, converted = _run(ember, relu=relu)
    for got, want in zip(e_train, t_train):
        np.testing.assert_allclose(got, want, atol=1e-5)
    for got, want in zip(e_final, t_final):       # within one output quantization step
        np.testing.assert_allclose(got, want, atol=0.05)
    text = ember.ir.print_graph(converted.graph)
    assert "quantized_linear" in text and "quantized_conv2d" in text
    assert "fake_quant" not in text and converted.quantization_report == []
    if relu:
        assert " relu(" not in text and "= relu" not in text, text
