"""ember.compile on a pt2e-converted program: the lower-qdq pass rewrites torch's q/dq
patterns into ember's int8 ops (ember/passes/qdq_lower.py), as Inductor does for
torch.compile. Checked as text (which ops the pass leaves) and by value against the q/dq
graph run eagerly and torch's convert_pt2e model.

One step: the int8 kernels sum integer products exactly and requantize in float32, the
q/dq graph sums dequantized floats in float32 (another rounding order), so a value on a
rounding boundary may land one quantization step apart; nearly all land on the same."""
from __future__ import annotations

import pathlib

import numpy as np
import pytest
import torch

import ember
from ember.ir.graph import OpKind
from ember.ir.parser import parse
from ember.ir.printer import print_graph
from ember.ir.symbolic import call_graph
from ember.passes import PassContext, PassManager
from tests.passes.test_golden import file_check, parse_cases
from tests.quant.test_pt2e_x86_parity import _converted_twins, _x86, tao_pt2e  # noqa: F401
from tests.quant.quant_twins import share_random_weights

pytestmark = pytest.mark.filterwarnings("ignore")


def _compiled(conv, x, pipeline="default-inference"):
    with ember.no_grad():
        compiled = ember.compile(conv, pipeline=pipeline)
        return compiled, compiled(ember.tensor(x))


def _ops(graph) -> list[str]:
    return [getattr(n.target, "name", str(n.target)) for n in graph.nodes
            if n.op == "call_function"]


def test_block_graph_text_after_lower_qdq(rng):
    """(ember.compile appends fusion: the float conv + add + ReLU print as one fused
    group.) conv+ReLU and linear+ReLU become int8 ops; the pool and flatten run on the
    integers; the conv feeding the residual add, the add, and the last linear (float
    outputs in torch's recipe) stay float ops between dequantizes."""
    _, e_conv, calib = _converted_twins("block", rng, _x86)
    compiled, _ = _compiled(e_conv, calib[0], "normalize,lower-qdq,dce")
    text = print_graph(compiled.graph)
    ops = _ops(compiled.graph)
    assert ops.count("quantized_conv2d") == 1 and ops.count("quantized_linear") == 1, text
    lines = [line.split("=", 1)[1].strip() for line in text.splitlines() if "=" in line]
    order = [op for op in ("quantized_conv2d(", "conv2d(", "add(", "max_pool2d(",
                           "flatten(", "quantized_linear(", "linear(")
             if any(line.startswith(op) for line in lines)]
    assert order == ["quantized_conv2d(", "conv2d(", "add(", "max_pool2d(", "flatten(",
                     "quantized_linear(", "linear("], text
    pool = next(line for line in lines if line.startswith("max_pool2d("))
    assert pool.endswith(": qu8[2,8,3,3]"), text          # the pool of the integers


def _chain(lib):
    """Every value quantized up to the output: conv+ReLU, conv+ReLU, max pool."""
    nn = lib.nn

    class Chain(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.r1 = nn.Conv2d(3, 8, 3, padding=1), nn.ReLU()
            self.c2, self.r2 = nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()
            self.pool = nn.MaxPool2d(2)

        def forward(self, x):
            return self.pool(self.r2(self.c2(self.r1(self.c1(x)))))
    return Chain().eval()


def _chain_twins(rng):
    from ember.ao.quantization import quantize_pt2e as em_pt2e
    t_model, e_model = _chain(torch), _chain(ember)
    share_random_weights(t_model, e_model, rng)
    calib = [rng.standard_normal((2, 3, 8, 8)).astype(np.float32) for _ in range(2)]
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as tao_x86
    from ember.ao.quantization.quantizer import x86_inductor_quantizer as em_x86
    t_prep = tao_pt2e.prepare_pt2e(
        torch.export.export(t_model, (torch.from_numpy(calib[0]),)).module(),
        _x86(torch, tao_x86, None))
    e_prep = em_pt2e.prepare_pt2e(ember.export(e_model, (ember.tensor(calib[0]),)),
                                  _x86(ember, em_x86, None))
    with torch.no_grad(), ember.no_grad():
        for c in calib:
            t_prep(torch.from_numpy(c))
            e_prep(ember.tensor(c))
    return tao_pt2e.convert_pt2e(t_prep), em_pt2e.convert_pt2e(e_prep), calib


def _steps(a, b, scale) -> np.ndarray:
    return np.rint(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)) / scale)


def test_chain_compiled_equals_qdq_graph_and_torch_within_one_step(rng):
    t_conv, e_conv, calib = _chain_twins(rng)
    scale = next(float(n.args[1]) for n in reversed(list(e_conv.graph.nodes))
                 if getattr(n.target, "__name__", "") == "quantize_per_tensor")
    for x in calib + [2 * calib[0]]:
        compiled, got = _compiled(e_conv, x)
        assert _ops(compiled.graph).count("quantized_conv2d") == 2
        with ember.no_grad(), torch.no_grad():
            reference = e_conv(ember.tensor(x)).numpy()
            torch_out = t_conv(torch.from_numpy(x)).numpy()
        got = got.numpy()
        for other in (reference, torch_out):
            steps = _steps(got, other, scale)
            assert steps.max() <= 1 and (steps == 0).mean() >= 0.95, steps.max()


def test_block_compiled_matches_torch_convert_pt2e(rng):
    """Float outputs after int8 layers: one step inside moves them by at most a few of
    the coarsest activation's steps (as the parity test allows torch against ember)."""
    t_conv, e_conv, calib = _converted_twins("block", rng, _x86)
    step = max(float(n.args[1]) for n in e_conv.graph.nodes
               if getattr(n.target, "__name__", "") == "quantize_per_tensor")
    for x in calib:
        _, got = _compiled(e_conv, x)
        with torch.no_grad():
            want = [t.numpy() for t in t_conv(torch.from_numpy(x))]
        for g, w in zip(got, want):
            diff = np.abs(g.numpy() - w)
            assert (diff <= 1e-5 + 1e-5 * np.abs(w)).mean() >= 0.9
            assert diff.max() <= 1e-5 + 4 * step


def test_graph_without_qdq_is_untouched():
    def f(x, w):
        return ember.relu(ember.nn.functional.conv2d(x, w))
    with ember.no_grad():
        compiled = ember.compile(f, pipeline="normalize,lower-qdq")
        compiled(ember.randn(1, 2, 5, 5), ember.randn(3, 2, 3, 3))
    text = print_graph(compiled.graph)
    assert "quantized" not in text and "= conv2d(" in text, text


GOLDEN = pathlib.Path(__file__).parent / "golden" / "lower_qdq.ir"


def _golden_value(meta, rng):
    data = ember.tensor(rng.standard_normal(meta.shape).astype(np.float32))
    if str(meta.dtype).endswith("qint8"):           # a converted weight
        return ember.quantize_per_tensor(data * 0.3, 0.01, 0, ember.qint8)
    return data


@pytest.mark.parametrize("case", parse_cases(GOLDEN), ids=lambda c: c.name)
def test_lower_qdq_golden(case, rng):
    """The pass's output as text (FileCheck lines in golden/lower_qdq.ir), and the graph
    before and after giving the same values on random data, within one step of the
    output's scale."""
    graph = parse(case.ir)
    values = {n: _golden_value(n.meta["val"], rng) for n in graph.nodes
              if n.op in (OpKind.placeholder, OpKind.get_attr)}
    inputs = [v for n, v in values.items() if n.op == OpKind.placeholder]
    constants = {str(n.target): v for n, v in values.items() if n.op == OpKind.get_attr}
    before = call_graph(graph, inputs, constants).numpy()
    output = list(graph.nodes)[-1].args[0]
    output = output[0] if isinstance(output, (tuple, list)) else output
    scale = output.args[0].args[1]              # dequantize(quantize_per_tensor(v, scale..))
    PassManager.from_string(case.pipeline, verify_each=True).run(graph, PassContext())
    file_check(print_graph(graph), case.checks)
    after = call_graph(graph, inputs, constants).numpy()
    steps = _steps(before, after, scale)
    assert steps.max() <= 1 and (steps == 0).mean() >= 0.9
