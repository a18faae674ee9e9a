"""The pass manager: registry, pipelines from strings, requirements, verify-each,
the report table and IR dumps."""
from __future__ import annotations

import io

import pytest

from ember.ir.errors import VerifyError
from ember.ir.parser import parse
from ember.passes import PASSES, PIPELINES, PassContext, PassError, PassManager, register_pass
from ember.passes.manager import at_node

GRAPH = """\
graph(%x: f32[4,8], %y: f32[4,8]):
  %0 = add(%x, %y) : f32[4,8] loc("model.py:3 in forward")
  %1 = add(%y, %x) : f32[4,8] loc("model.py:4 in forward")
  %2 = mul(%0, %1) : f32[4,8] loc("model.py:5 in forward")
  %3 = exp(%x) : f32[4,8]
  return %2
"""


@pytest.fixture
def temporary_pass():
    """Register passes for one test only."""
    added = []

    def register(name, fn, **contract):
        register_pass(name, **contract)(fn)
        added.append(name)
    yield register
    for name in added:
        del PASSES[name]


def test_pipeline_from_string_runs_in_order_and_counts_changes():
    graph = parse(GRAPH)
    report = PassManager.from_string("cse, dce").run(graph)
    # normalize (fx's recording -> registry ops) always runs first; here it finds nothing
    assert [r.name for r in report.records] == ["normalize", "cse", "dce"]
    assert report.changes("normalize") == 0
    assert report.changes("cse") == 1 and report.changes("dce") == 1
    assert len(graph) == 5
    table = report.table()
    assert "cse" in table and "dce" in table and "total" in table and "4 -> 3" not in table


def test_named_pipelines_expand():
    manager = PassManager.from_string("cleanup")
    assert manager.names == PIPELINES["cleanup"]
    inference = PassManager.from_string("default-inference").names
    assert {"fold", "fold-bn", "decompose", "cse", "dce"} <= set(inference)


def test_unknown_pass_lists_the_known_ones():
    with pytest.raises(PassError, match=r"unknown pass 'cse2'.*known passes: .*cse.*dce"):
        PassManager.from_string("dce,cse2")
    with pytest.raises(PassError, match="empty pipeline"):
        PassManager.from_string(" , ")


def test_unmet_requirement_names_pass_and_property(temporary_pass):
    temporary_pass("needs-magic", lambda g, ctx: 0, requires=("magic",))
    temporary_pass("makes-magic", lambda g, ctx: 0, provides=("magic",))
    temporary_pass("breaks-magic", lambda g, ctx: 0, preserves=("shapes",))
    with pytest.raises(PassError, match=r"pass 'needs-magic' requires magic.*makes-magic"):
        PassManager.from_string("dce,needs-magic")
    PassManager.from_string("makes-magic,dce,needs-magic")     # dce preserves everything
    with pytest.raises(PassError, match="'needs-magic' requires magic"):
        PassManager.from_string("makes-magic,breaks-magic,needs-magic")


def _break_types(graph, ctx):
    """A wrong pass: retypes the mul node as if it produced another shape."""
    node = next(n for n in graph.nodes if n.op == "call_function" and n.target.name == "mul")
    node.meta["val"] = node.meta["val"].with_(shape=(8, 4))
    return 1


def test_verify_each_names_the_pass_the_node_and_its_line(temporary_pass):
    temporary_pass("retype", _break_types)
    graph = parse(GRAPH)
    with pytest.raises(VerifyError) as info:
        PassManager.from_string("cse,retype,dce", verify_each=True).run(graph)
    message = str(info.value)
    assert message.startswith("after 'retype': ")
    assert "mul(" in message and "model.py:5 in forward" in message
    PassManager.from_string("retype").run(parse(GRAPH))     # without verify_each: no check


def test_verify_each_checks_the_input_first():
    bad = GRAPH.replace("%2 = mul(%0, %1) : f32[4,8]", "%2 = mul(%0, %1) : f32[4,9]")
    with pytest.raises(VerifyError, match="input graph"):
        PassManager.from_string("dce", verify_each=True).run(parse(bad))


def test_print_ir_before_and_after_a_chosen_pass():
    dump = io.StringIO()
    PassManager.from_string("cse,dce", print_ir_before=["dce"], print_ir_after=["cse"],
                            dump_to=dump).run(parse(GRAPH))
    text = dump.getvalue()
    assert text.count("# IR ") == 2
    assert text.index("# IR after 'cse'") < text.index("# IR before 'dce'")
    dumped = text.split("# IR before 'dce'\n")[1]
    assert "exp(" in dumped and parse(dumped)        # dumps are parseable IR
    with pytest.raises(PassError, match="unknown pass 'nope'"):
        PassManager.from_string("dce", print_ir_after=["nope"])


def test_pass_failure_is_annotated_with_the_pass(temporary_pass):
    def explode(graph, ctx):
        raise ValueError("boom")
    temporary_pass("explode", explode)
    with pytest.raises(ValueError) as info:
        PassManager.from_string("explode").run(parse(GRAPH))
    assert "in pass 'explode'" in "".join(info.value.__notes__)


def test_pass_failure_names_the_node_and_the_user_line(temporary_pass):
    def explode_at_exp(graph, ctx):
        for node in graph.nodes:
            if getattr(node.target, "name", "") == "exp":
                raise ValueError("boom")
        return 0
    temporary_pass("explode-at-exp", explode_at_exp)
    graph = parse(GRAPH)
    exp = next(n for n in graph.nodes if getattr(n.target, "name", "") == "exp")
    exp.meta["loc"] = "model.py:7 in forward"
    with pytest.raises(ValueError) as info:
        PassManager.from_string("explode-at-exp").run(graph)
    note = "".join(info.value.__notes__)
    assert "in pass 'explode-at-exp' at\n  %" in note and "= exp(" in note
    assert "from model.py:7 in forward" in note


def test_at_node_marks_the_node_a_pass_names(temporary_pass):
    def explode(graph, ctx):
        first = graph.placeholders[0]
        with at_node(first):
            raise ValueError("boom")
    temporary_pass("explode-marked", explode)
    with pytest.raises(ValueError) as info:
        PassManager.from_string("explode-marked").run(parse(GRAPH))
    assert "at\n  %x = placeholder" in "".join(info.value.__notes__)


def test_registering_a_name_twice_is_refused():
    with pytest.raises(PassError, match="registered twice"):
        register_pass("dce")(lambda g, ctx: 0)


def test_context_prunes_only_constants_passes_added():
    graph = parse("graph(%x: f32[2]):\n  %0 = full([2], 3.0) : f32[2]\n"
                  "  %1 = add(%x, %0) : f32[2]\n  return %1\n")
    ctx = PassContext({"user_entry": 1})
    PassManager.from_string("fold,dce").run(graph, ctx)
    folded = [n.target for n in graph.nodes if n.op == "get_attr"]
    assert len(folded) == 1 and set(ctx.constants) == {"user_entry", folded[0]}


def test_context_from_a_traced_module_folds_its_parameters():
    import numpy as np

    import ember
    import ember.fx
    from ember.ir.symbolic import call_graph

    class Scale(ember.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = ember.nn.Parameter(ember.randn(4))

        def forward(self, x):
            return x * self.w.exp()

    module, x = Scale(), ember.randn(3, 4)
    gm = ember.fx.symbolic_trace(module)
    ember.fx.ShapeProp(gm).propagate(x)
    ctx = PassContext.from_module(gm)
    assert "w" in ctx.constants
    report = PassManager.from_string("fold,dce", verify_each=True).run(gm.graph, ctx)
    assert report.changes("fold") == 1
    assert not any(getattr(n.target, "name", "") == "exp" for n in gm.graph.nodes)
    np.testing.assert_allclose(call_graph(gm.graph, [x], ctx.constants).detach().numpy(),
                               module(x).detach().numpy(), rtol=1e-6)
