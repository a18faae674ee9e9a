"""The normalize pass: torch.fx's recording (call_method, operator.*, ember's Python
functions) -> the registry-op form every other pass reads. The golden cases are in
golden/normalize.ir; these check it on traced programs, inside the pass manager and
where it must leave a node alone."""
from __future__ import annotations

import numpy as np

import ember
import ember.fx as fx
import ember.nn as nn
from ember.ir.graph import OpKind
from ember.ir.meta import meta_of
from ember.ir.parser import parse
from ember.ir.registry import is_op
from ember.ir.symbolic import build_graph, call_graph
from ember.passes import PassContext, PassManager, run_passes

F = ember.nn.functional


class Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(ember.randn(4))

    def forward(self, x):
        y = F.gelu(x.relu() * self.w) - 1
        a, b = y.chunk(2, dim=1)
        return ember.cat([b, a], dim=1).sum(dim=1, keepdim=True) / x.shape[-1]


def normalized(module, x):
    gm = fx.symbolic_trace(module)
    fx.ShapeProp(gm).propagate(x)
    run_passes(gm.graph, "normalize", PassContext.from_module(gm))
    return gm


def test_a_traced_module_normalizes_to_the_compilers_ops():
    module, x = Scaled(), ember.randn(3, 4)
    gm = normalized(module, x)
    computing = [n for n in gm.graph.nodes if n.op in (OpKind.call_function,
                                                        OpKind.call_method)]
    assert all(is_op(n.target) for n in computing
               if n.target not in (getattr, __import__("operator").getitem)), \
        [n.format() for n in computing]
    compiler_graph, _ = build_graph(module, [meta_of(x)])
    ops = [n.target.name for n in gm.graph.nodes if is_op(n.target)]
    assert ops == [n.target.name for n in compiler_graph.nodes if is_op(n.target)]
    got = call_graph(gm.graph, [x], dict(module.named_parameters()))
    np.testing.assert_allclose(got.detach().numpy(), module(x).detach().numpy(), rtol=1e-6)


def test_normalize_is_idempotent():
    module, x = Scaled(), ember.randn(3, 4)
    gm = normalized(module, x)
    report = PassManager(["normalize"]).run(gm.graph, PassContext.from_module(gm))
    assert report.changes("normalize") == 0


def test_every_pipeline_normalizes_first():
    module, x = Scaled(), ember.randn(3, 4)
    gm = fx.symbolic_trace(module)
    fx.ShapeProp(gm).propagate(x)
    manager = PassManager.from_string("cse,dce", verify_each=True)
    assert manager.names[0] == "normalize"
    report = manager.run(gm.graph, PassContext.from_module(gm))
    assert report.changes("normalize") > 0
    assert not any(n.op == OpKind.call_method for n in gm.graph.nodes)


def test_an_untyped_python_function_stays_a_call():
    graph = parse('graph(%x):\n  %0 = call_function "ember.nn.functional.relu"(%x)\n'
                  '  %1 = call_method "exp"(%0)\n  return %1')
    assert run_passes(graph, "normalize").changes("normalize") == 1     # exp only
    targets = [n.target for n in graph.nodes if n.op == OpKind.call_function]
    assert targets == [F.relu, ember.exp]
    x = ember.randn(5)
    np.testing.assert_allclose(call_graph(graph, [x]).numpy(), x.relu().exp().numpy())


def checked(x):
    ember._assert(x.sum() > -1e9, "huge")
    return x


def test_a_function_that_needs_a_value_stays_a_call():
    module = fx.symbolic_trace(checked)
    fx.ShapeProp(module).propagate(ember.randn(3))
    run_passes(module.graph, "normalize")
    assert any(n.target is ember._assert for n in module.graph.nodes)


def test_cli_opt_normalizes_fx_text(tmp_path):
    from click.testing import CliRunner
    from ember.cli import main
    text = ('graph(%x: f32[2,3]):\n  %0 = call_method "relu"(%x) : f32[2,3]\n'
            '  %1 = call_function "operator.mul"(%0, 2.0) : f32[2,3]\n  return %1\n')
    result = CliRunner().invoke(main, ["opt", "--passes=dce"], input=text)
    assert result.exit_code == 0, result.output
    assert "relu(%x)" in result.output and "mul(%0, 2.0)" in result.output


def test_compiling_a_traced_graph_module_matches_eager():
    module, x = Scaled(), ember.randn(3, 4)
    gm = fx.symbolic_trace(module)
    compiled = ember.compile(gm)
    np.testing.assert_allclose(compiled(x).detach().numpy(), module(x).detach().numpy(),
                               rtol=1e-5, atol=1e-6)
    assert compiled.graph.nodes and not any(n.op == OpKind.call_method
                                            for n in compiled.graph.nodes)
