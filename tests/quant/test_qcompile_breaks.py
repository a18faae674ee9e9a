"""ember.compile of converted (int8) models whose Python breaks the graph between
quantized layers (a data-dependent branch, `.item()`, `.tolist()`): the call runs
eagerly and each module is compiled on its own, so a compiled module after the break
takes the previous one's quantized tensor as its input. Its plan reads the integers with
their qparams, and the result equals the eager converted model bit for bit (and torch.ao's
within a step or two)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from quant_twins import share_random_weights

pytestmark = pytest.mark.filterwarnings("ignore")
torch.backends.quantized.engine = "x86"


def branchy_convs(lib, tq):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.quant, self.dequant = tq.QuantStub(), tq.DeQuantStub()
            self.c1 = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), nn.ReLU())
            self.c2 = nn.Conv2d(8, 8, 3, 1, 1)
            self.c3 = nn.Conv2d(8, 4, 1)

        def forward(self, x):
            y = self.c1(self.quant(x))
            if y.dequantize().mean().item() > 0.05:     # data-dependent: a graph break
                y = self.c2(y)
            return self.dequant(self.c3(y))
    return M().eval()


def listy_linears(lib, tq):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.quant, self.dequant = tq.QuantStub(), tq.DeQuantStub()
            self.fc1 = nn.Linear(16, 32)
            self.relu = nn.ReLU()
            self.fc2 = nn.Linear(32, 8)

        def forward(self, x):
            h = self.relu(self.fc1(self.quant(x)))
            self.seen = h.dequantize().max().tolist()    # Python reads a value
            return self.dequant(self.fc2(h))
    return M().eval()


def residual_blocks(lib, tq):
    """The break inside a child block: the block runs eagerly, its convs compiled."""
    nn = lib.nn
    functional = lib.ao.nn.quantized.FloatFunctional

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1), nn.ReLU())
            self.skip = functional()

        def forward(self, x):
            y = self.conv(x)
            if int(y.dequantize().max().item() * 10) % 2:       # a data-dependent branch
                y = self.skip.add(y, x)
            return y

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.quant, self.dequant = tq.QuantStub(), tq.DeQuantStub()
            self.stem = nn.Conv2d(3, 8, 3, 1, 1)
            self.blocks = nn.Sequential(Block(), Block())
            self.head = nn.Conv2d(8, 4, 1)

        def forward(self, x):
            return self.dequant(self.head(self.blocks(self.stem(self.quant(x)))))
    return M().eval()


MODELS = {"branchy_convs": (branchy_convs, (3, 10, 10)),
          "listy_linears": (listy_linears, (16,)),
          "residual_blocks": (residual_blocks, (3, 8, 8))}


def eager_converted_twins(name, rng):
    import torch.ao.quantization as tq
    import ember.ao.quantization as eq
    build, shape = MODELS[name]
    t_model, e_model = build(torch, tq), build(ember, eq)
    share_random_weights(t_model, e_model, rng)
    t_model.qconfig = tq.get_default_qconfig("x86")
    e_model.qconfig = eq.get_default_qconfig("x86")
    t_prep, e_prep = tq.prepare(t_model), eq.prepare(e_model)
    with ember.no_grad():
        for _ in range(3):
            c = rng.standard_normal((4,) + shape).astype(np.float32)
            t_prep(torch.from_numpy(c))
            e_prep(ember.tensor(c))
        return tq.convert(t_prep), eq.convert(e_prep), shape


@pytest.mark.parametrize("name", sorted(MODELS))
def test_compiled_model_with_a_break_equals_eager_and_torch_ao(rng, name):
    t_q, e_q, shape = eager_converted_twins(name, rng)
    compiled = ember.compile(e_q)
    with ember.no_grad():
        for batch in (4, 4, 2):     # cached compiled modules, then another batch size
            x = rng.standard_normal((batch,) + shape).astype(np.float32)
            want = e_q(ember.tensor(x)).numpy()
            got = compiled(ember.tensor(x)).numpy()
            np.testing.assert_array_equal(got, want)
            expected = t_q(torch.from_numpy(x)).numpy()
            step = float(np.abs(expected).max()) / 255
            assert np.abs(expected - got).max() <= 2 * step + 1e-6
        report = ember.compile.explain(e_q, ember.tensor(x))
    assert report.graph_break_count >= 1 and report.graph_count >= 2


def test_compiled_quantized_module_takes_quantized_inputs_of_any_qparams(rng):
    """A compiled module called with quantized tensors (what a break hands it): the plan
    reads each call's scale and zero point, as the eager module does."""
    _, e_q, _ = eager_converted_twins("branchy_convs", rng)
    conv = ember.compile(e_q.c2)
    with ember.no_grad():
        for scale, zero_point in ((0.05, 3), (0.11, 128), (0.02, 0)):
            x = ember.tensor(rng.standard_normal((2, 8, 6, 6)).astype(np.float32))
            q = ember.quantize_per_tensor(x, scale, zero_point, ember.quint8)
            got, want = conv(q), e_q.c2(q)
            assert got.is_quantized and got.dtype == ember.quint8
            assert (got.q_scale(), got.q_zero_point()) == (want.q_scale(), want.q_zero_point())
            np.testing.assert_array_equal(got.int_repr().numpy(), want.int_repr().numpy())


def test_convert_fx_models_around_a_break_compile_to_eager_results(rng):
    """Two convert_fx models (their conv -> relu6 pairs fused in eager calls) with
    Python between them: each is compiled on its own and the result is eager's."""
    from test_qclamp_fusion import twins
    t_a, e_a, _ = twins(rng)
    t_b, e_b, _ = twins(rng)

    class Pipeline(ember.nn.Module):
        def __init__(self, first, second):
            super().__init__()
            self.first, self.second = first, second

        def forward(self, x):
            y = self.first(x)
            if y.mean().item() > 1.0:               # data-dependent: a graph break
                y = y * 0.5
            return self.second(y[:, :3].repeat(1, 1, 2, 2))

    model = Pipeline(e_a, e_b)
    compiled = ember.compile(model)
    x = rng.standard_normal((2, 3, 20, 20)).astype(np.float32)
    with ember.no_grad():
        want = model(ember.tensor(x)).numpy()
        np.testing.assert_array_equal(compiled(ember.tensor(x)).numpy(), want)
        assert ember.compile.explain(model, ember.tensor(x)).graph_break_count >= 1
    y = t_a(torch.from_numpy(x))
    if y.mean().item() > 1.0:
        y = y * 0.5
    expected = t_b(y[:, :3].repeat(1, 1, 2, 2)).numpy()
    step = float(np.abs(expected).max()) / 255
    assert np.abs(expected - want).max() <= 4 * step + 1e-6
