"""Behaviours PyTorch's own torch.fx test-suite checks, run as the same user code
against torch.fx (the oracle) and ember.fx: the program is written once against a
library `lib` and both results are compared."""
from __future__ import annotations

import contextlib
import importlib
import io
import operator

import numpy as np
import pytest
import torch
import torch.fx

import ember
import ember.fx

LIBS = [torch, ember]


def both(fn):
    """fn(torch) and fn(ember), for comparison."""
    return fn(torch), fn(ember)


def sub(lib, path):
    return importlib.import_module(lib.__name__ + path)


def kinds_and_names(graph):
    return [(str(n.op), n.name) for n in graph.nodes]


def neutral(text: str) -> str:
    return text.replace("torch", "LIB").replace("ember", "LIB")


# --- tracing ---------------------------------------------------------------------------------
def test_star_args_and_kwargs_become_placeholders():
    def build(lib):
        class M(lib.nn.Module):
            def forward(self, x, *args, **kwargs):
                return x + args[0] + kwargs["foo"]

        class Star(lib.nn.Module):
            def forward(self, *args):
                return args[0] * args[1]
        gm = lib.fx.symbolic_trace(M())
        targets = [n.target for n in gm.graph.nodes if n.op == "placeholder"]
        out = gm(lib.ones(2), lib.ones(2) * 2, foo=lib.ones(2) * 3)
        star = lib.fx.symbolic_trace(Star())
        interp = lib.fx.Interpreter(star).run(lib.ones(2) * 2, lib.ones(2) * 3)
        return kinds_and_names(gm.graph), targets, gm.code, out.tolist(), interp.tolist()
    torch_result, ember_result = both(build)
    assert ember_result == torch_result


def test_proxy_of_a_bare_graph_appends_to_it():
    def build(lib):
        g = lib.fx.Graph()
        p = lib.fx.Proxy(g.placeholder("x"))
        g.output(((p + p).relu() * 2).node)
        g.lint()
        return [(str(n.op), n.name, str(n.target)) for n in g.nodes if n.op != "call_function"], \
            [n.name for n in g.nodes]
    torch_result, ember_result = both(build)
    assert ember_result == torch_result


def test_tracer_hooks_see_every_node_and_make_the_proxies():
    def build(lib):
        class TaggedProxy(lib.fx.Proxy):
            pass

        class T(lib.fx.Tracer):
            def create_node(self, *args, **kwargs):
                node = super().create_node(*args, **kwargs)
                node.tag = "seen"
                return node

            def proxy(self, node):
                return TaggedProxy(node, self)
        kinds = []

        def f(x):
            kinds.append(type(x).__name__)
            y = x.relu() + 1
            kinds.append(type(y).__name__)
            return y
        graph = T().trace(f)
        return [getattr(n, "tag", None) for n in graph.nodes], kinds
    torch_result, ember_result = both(build)
    assert ember_result == torch_result == (["seen"] * 4, ["TaggedProxy"] * 2)


def test_plain_tensor_attributes_are_read_by_their_path():
    def build(lib):
        class Inner(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.scale = lib.ones(3) * 2

            def forward(self, x):
                return x * self.scale

        class M(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.t = lib.ones(3)
                self.inner = Inner()
                self.register_buffer("b", lib.ones(3))

            def forward(self, x):
                return self.inner(x + self.t + self.b) + lib.tensor([1.0, 2.0, 3.0])
        gm = lib.fx.symbolic_trace(M())
        return kinds_and_names(gm.graph), \
            [n.target for n in gm.graph.nodes if n.op == "get_attr"], gm(lib.ones(3)).tolist()
    torch_result, ember_result = both(build)
    assert ember_result == torch_result


WRAP_SOURCE = """
import {lib}
import {lib}.fx
{lib}.fx.wrap("len")

def f(x):
    return x + len(x)
"""


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
def test_wrap_of_a_builtin_records_it(lib):
    namespace = {}
    exec(compile(WRAP_SOURCE.format(lib=lib.__name__), f"<wrap_{lib.__name__}>", "exec"),
         namespace)
    gm = lib.fx.symbolic_trace(namespace["f"])
    assert [(str(n.op), n.name) for n in gm.graph.nodes][1] == ("call_function", "len_1")
    assert gm(lib.ones(3)).tolist() == [4.0, 4.0, 4.0]
    assert "len" not in namespace       # the builtin is visible again after the trace


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("code, error, message", [
    ("for _ in x:\n    pass", "TraceError", "Proxy object cannot be iterated"),
    ("if x.sum() > 0:\n    pass", "TraceError",
     "symbolically traced variables cannot be used as inputs to control flow"),
    ("len(x)", RuntimeError, "'len' is not supported in symbolic tracing by default"),
])
def test_refusals_use_torch_fx_wording(lib, code, error, message):
    namespace = {}
    body = "\n".join("    " + line for line in code.splitlines())
    exec(f"def f(x):\n{body}\n    return x\n", namespace)
    if error == "TraceError":
        error = sub(lib, ".fx.proxy").TraceError
    with pytest.raises(error, match=message):
        lib.fx.symbolic_trace(namespace["f"])


# --- graph editing -----------------------------------------------------------------------------
def test_node_order_comparisons_and_insert_arg():
    def build(lib):
        gm = lib.fx.symbolic_trace(lambda x, y: lib.cat([x, y]) * 2)
        x, y, cat, mul, out = gm.graph.nodes
        cat.insert_arg(1, 0)
        order = (x < y, mul > cat, x <= x, out >= mul, sorted([out, x, mul]) == [x, mul, out])
        gm.recompile()
        return order, neutral(gm.code), gm(lib.ones(2), lib.ones(2)).tolist()
    torch_result, ember_result = both(build)
    assert ember_result == torch_result


def test_print_tabular_layout():
    def build(lib):
        def f(x, y):
            return (x + y).relu().sum(dim=1)
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            lib.fx.symbolic_trace(f).graph.print_tabular()
        return buf.getvalue()
    # torch prints through the optional tabulate package; the layout it gives:
    expected = """\
opcode         name    target                   args      kwargs
-------------  ------  -----------------------  --------  ----------
placeholder    x       x                        ()        {}
placeholder    y       y                        ()        {}
call_function  add     <built-in function add>  (x, y)    {}
call_method    relu    relu                     (add,)    {}
call_method    sum_1   sum                      (relu,)   {'dim': 1}
output         output  output                   (sum_1,)  {}
"""
    assert build(ember) == expected


# --- Interpreter ----------------------------------------------------------------------------------
def test_interpreter_missing_input_boxed_run_and_freeing():
    def build(lib):
        gm = lib.fx.symbolic_trace(lambda x, y: (x + y) * 2)
        with pytest.raises(RuntimeError) as err:
            lib.fx.Interpreter(gm).run(lib.ones(2))
        inputs = [lib.ones(2), lib.ones(2)]
        interp = lib.fx.Interpreter(gm)
        result = interp.boxed_run(inputs)
        return (str(err.value).splitlines()[0], result.tolist(), inputs,
                sorted(n.name for n in interp.env))
    torch_result, ember_result = both(build)
    assert ember_result == torch_result


def test_shape_prop_tensor_metadata_fields():
    def build(lib):
        class M(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = lib.nn.Linear(3, 4)

            def forward(self, x, idx):
                y = self.lin(x).relu().transpose(0, 1)
                detached = (self.lin(x).detach() * 2).unsqueeze(0).unsqueeze(0)
                return y, x.argmax(dim=1) + idx, detached
        gm = lib.fx.symbolic_trace(M())
        sub(lib, ".fx.passes.shape_prop").ShapeProp(gm).propagate(
            lib.ones(2, 3), lib.zeros(2, dtype=lib.int64))
        rows = []
        for n in gm.graph.nodes:
            tm = n.meta.get("tensor_meta")
            if n.op == "output" or tm is None:
                continue
            rows.append((n.name, type(tm).__name__, tm._fields, tuple(tm.shape),
                         str(tm.dtype).split(".")[-1], tm.requires_grad, tuple(tm.stride),
                         str(tm.memory_format).split(".")[-1], tm.is_quantized, tm.qparams))
        return rows
    torch_result, ember_result = both(build)
    assert ember_result == torch_result


# --- subgraph rewriting ---------------------------------------------------------------------------
def test_subgraph_matcher_finds_torch_fx_matches():
    def build(lib):
        matcher_utils = sub(lib, ".fx.passes.utils.matcher_utils")

        def f(x, y):
            a = (x + 1).relu()
            b = (y * 2).relu()
            c = (a + b).relu()
            return c, a.sigmoid()

        def pattern(x):
            return x.relu()
        gm = lib.fx.symbolic_trace(f)
        found = []
        for kw in ({}, {"match_placeholder": True}):
            matcher = matcher_utils.SubgraphMatcher(lib.fx.symbolic_trace(pattern).graph, **kw)
            found.append([(m.anchors[0].name, [n.name for n in m.placeholder_nodes],
                           [n.name for n in m.returning_nodes],
                           sorted((p.name, g.name) for p, g in m.nodes_map.items()))
                          for m in matcher.match(gm.graph)])
        return found
    torch_result, ember_result = both(build)
    assert ember_result == torch_result


def test_replace_pattern_keeps_unrelated_dead_code_and_multi_output():
    def build(lib):
        sr = sub(lib, ".fx.subgraph_rewriter")

        def f(x, w):
            unused = x * 3      # noqa: F841 - not the rewriter's to remove
            a = lib.add(x, w)
            b = lib.relu(a)
            return b * 2, a.neg()

        def pattern(x, w):
            a = lib.add(x, w)
            return lib.relu(a), a

        def replacement(x, w):
            s = lib.sub(x, w)
            return lib.sigmoid(s), s
        gm = lib.fx.symbolic_trace(f)
        matches = sr.replace_pattern(gm, pattern, replacement)
        gm.graph.lint()
        return [type(m).__name__ for m in matches], [m.anchor.name for m in matches], \
            kinds_and_names(gm.graph), gm(lib.ones(2), lib.ones(2))[0].tolist()
    torch_result, ember_result = both(build)
    assert ember_result == torch_result


def test_replace_pattern_with_filters_and_literals():
    def build(lib):
        sr = sub(lib, ".fx.subgraph_rewriter")

        def f(x):
            return (x + 1) * (x + 2)

        def pattern(x):
            return x + 1

        def replacement(x):
            return x - 1
        seen = []

        def only_first(match, original_graph, pattern_graph):
            seen.append((type(original_graph).__name__, type(pattern_graph).__name__,
                         len(list(pattern_graph.nodes))))
            return match.returning_nodes[0].name == "add"
        out = []
        for ignore_literals, filters in ((False, []), (True, [only_first]), (True, [])):
            gm = lib.fx.symbolic_trace(f)
            replaced = sr.replace_pattern_with_filters(gm, pattern, replacement,
                                                       match_filters=filters,
                                                       ignore_literals=ignore_literals)
            out.append(([type(r).__name__ for r in replaced],
                        [sorted(n.name for n in r.replacements) for r in replaced],
                        gm(lib.ones(1)).tolist()))
        return out, seen
    torch_result, ember_result = both(build)
    assert ember_result == torch_result


# --- dead-code elimination ------------------------------------------------------------------------
def test_dead_code_elimination_keeps_guards_and_impure_modules():
    def build(lib):
        class Impure(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self._is_impure = True

            def forward(self, x):
                return x + 1

        class M(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.impure = Impure()
                self.pure = lib.nn.ReLU()

            def forward(self, x, flag):
                self.impure(x)
                self.pure(x)
                unused = x * 2      # noqa: F841
                return x - 1 if flag else x

        class T(lib.fx.Tracer):
            def is_leaf_module(self, m, qualname):
                return True
        root = M()
        gm = lib.fx.GraphModule(root, T().trace(root, concrete_args={"flag": True}))
        changed = gm.graph.eliminate_dead_code()
        return changed, kinds_and_names(gm.graph)
    torch_result, ember_result = both(build)
    assert ember_result == torch_result


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
def test_dead_code_elimination_lints_first(lib):
    gm = lib.fx.symbolic_trace(lambda x: (x + 1) * 2)
    x, add, mul, out = gm.graph.nodes
    mul.append(add)          # add now follows its user
    with pytest.raises(RuntimeError, match="used before it has been defined|before it is defined"):
        gm.graph.eliminate_dead_code()


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
def test_has_side_effect_marks_a_function(lib):
    node_module = sub(lib, ".fx.node")

    def log_value(x):
        return None
    node_module.has_side_effect(log_value)
    g = lib.fx.Graph()
    x = g.placeholder("x")
    g.call_function(log_value, (x,))
    g.call_function(operator.neg, (x,))
    g.output(x)
    g.eliminate_dead_code()
    assert [n.name for n in g.nodes] == ["x", "log_value", "output"]


# --- const_fold -----------------------------------------------------------------------------------
def _const_fold_model(lib):
    class M(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = lib.nn.Parameter(lib.arange(3.0))
            self.register_buffer("b", lib.ones(3))

        def forward(self, x):
            scale = (self.w + 1).relu()         # attributes only: folded
            shift = self.b * 2                  # folded
            return x * scale + shift + self.b   # self.b is also read directly
    return M()


def test_const_fold_splits_attribute_only_work():
    def build(lib):
        const_fold = sub(lib, ".fx.experimental.const_fold")
        folded = const_fold.split_const_subgraphs(_const_fold_model(lib))
        x = lib.arange(3.0) + 1
        before = folded.has_folding_been_run
        out = folded(x)
        attrs = getattr(folded, folded.fx_const_folded_attrs_name)
        return (isinstance(folded, const_fold.FoldedGraphModule), before,
                folded.has_folding_been_run, folded.fx_const_folded_attrs_name,
                type(attrs).__name__, [a.tolist() for a in attrs],
                sorted(str(n.op) for n in folded.graph.nodes), out.tolist(),
                _const_fold_model(lib)(x).tolist())
    torch_result, ember_result = both(build)
    assert ember_result == torch_result


def test_const_fold_skips_and_finds_nothing():
    def build(lib):
        const_fold = sub(lib, ".fx.experimental.const_fold")
        skipped = const_fold.split_const_subgraphs(
            _const_fold_model(lib), skip_folding_node_fn=lambda n: n.target is operator.mul)
        nothing = const_fold.split_const_subgraphs(lib.nn.ReLU())
        x = lib.ones(3)
        # the same nodes (torch's split-and-inline orders them differently)
        return (sorted((str(n.op), n.target if n.op == "get_attr" else "")
                       for n in skipped.graph.nodes), skipped(x).tolist(),
                nothing.const_subgraph_module is None, nothing(x).tolist())
    torch_result, ember_result = both(build)
    assert ember_result == torch_result


# --- more tracing behaviours ----------------------------------------------------------------------
def test_annotations_are_node_types_and_appear_in_the_code():
    from typing import Tuple

    def build(lib):
        class M(lib.nn.Module):
            def forward(self, x, y=2):
                return x + y, x
        # real types, as a module without `from __future__ import annotations` has them
        M.forward.__annotations__ = {"x": lib.Tensor, "y": int,
                                     "return": Tuple[lib.Tensor, lib.Tensor]}

        g = lib.fx.Graph()
        a = g.placeholder("a", type_expr=lib.Tensor)
        b = g.call_function(operator.add, (a, 1), type_expr=lib.Tensor)
        g.output(b, type_expr=lib.Tensor)
        gm = lib.fx.symbolic_trace(M())
        types = [n.type for n in gm.graph.nodes if n.op == "placeholder"]
        return neutral(gm.code), types == [lib.Tensor, int], \
            neutral(g.python_code("self").src), gm(lib.ones(1))[0].tolist()
    torch_result, ember_result = both(build)
    assert ember_result == torch_result


def test_nn_module_stack_and_traced_func_name():
    def build(lib):
        class Inner(lib.nn.Module):
            def forward(self, x):
                return x.relu()

        class M(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.inner = Inner()
                self.lin = lib.nn.Linear(2, 2)

            def forward(self, x):
                return self.lin(self.inner(self.inner(x)))

            def other(self, x):
                return x - 1
        gm = lib.fx.symbolic_trace(M())
        stacks = [(n.name, [(k, v[0], v[1].__name__) for k, v in
                            n.meta.get("nn_module_stack", {}).items()])
                  for n in gm.graph.nodes]

        class T(lib.fx.Tracer):
            traced_func_name = "other"
        return stacks, kinds_and_names(T().trace(M()))
    torch_result, ember_result = both(build)
    assert ember_result == torch_result


def test_proxyable_classes_and_fx_create_arg():
    def build(lib):
        class Pair(metaclass=lib.fx.ProxyableClassMeta):
            def __init__(self, left, right):
                self.left, self.right = left, right

            def add(self, other):
                return Pair(self.left + other.left, self.right + other.right)

        class Packed:
            def __init__(self, x, y):
                self.x, self.y = x, y

            def __fx_create_arg__(self, tracer):
                return tracer.create_node("call_function", Packed,
                                          (tracer.create_arg(self.x), tracer.create_arg(self.y)),
                                          {})

        class Leaf(lib.nn.Module):
            def forward(self, packed):
                return packed.x * packed.y

        class Root(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.leaf = Leaf()

            def forward(self, x, y):
                return self.leaf(Packed(x, y))

        class T(lib.fx.Tracer):
            def is_leaf_module(self, m, qualname):
                return isinstance(m, Leaf)

        def use(p: Pair, y):
            return p.add(Pair(y, y))
        pair_gm = lib.fx.symbolic_trace(use)
        out = pair_gm(Pair(lib.ones(2), lib.ones(2) * 2), lib.ones(2))
        root = Root()
        packed_gm = lib.fx.GraphModule(root, T().trace(root))
        return (kinds_and_names(pair_gm.graph), out.left.tolist(), out.right.tolist(),
                kinds_and_names(packed_gm.graph), "Packed(" in packed_gm.code,
                packed_gm(lib.ones(1) * 2, lib.ones(1) * 3).tolist())
    torch_result, ember_result = both(build)
    assert ember_result == torch_result


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
def test_dict_unpacking_of_a_proxy_is_refused_as_iteration(lib):
    class Takes(lib.nn.Module):
        def forward(self, x=3, y=4):
            return x

    class Unpacks(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.takes = Takes()

        def forward(self, d):
            return self.takes(**d)
    with pytest.raises(sub(lib, ".fx.proxy").TraceError, match="Proxy object cannot be iterated"):
        lib.fx.symbolic_trace(Unpacks())


def test_graph_keeps_its_tracer_class_through_deepcopy():
    import copy

    def build(lib):
        class T(lib.fx.Tracer):
            pass
        g = lib.fx.Graph(tracer_cls=T)
        g.output(g.placeholder("x"))
        traced = lib.fx.symbolic_trace(lambda x: x + 1).graph
        return copy.deepcopy(g)._tracer_cls is T, traced._tracer_cls is lib.fx.Tracer
    torch_result, ember_result = both(build)
    assert ember_result == torch_result == (True, True)


def test_generated_code_names_a_local_function_by_module_and_name():
    def build(lib):
        def local_leaf(a, b):
            return a * b
        g = lib.fx.Graph()
        g.output(g.call_function(local_leaf, (g.placeholder("x"), g.placeholder("y"))))
        gm = lib.fx.GraphModule(lib.nn.Module(), g)
        return gm.code, gm(lib.ones(1) * 2, lib.ones(1) * 3).tolist()
    torch_result, ember_result = both(build)
    assert ember_result == torch_result


# --- graph checks, ShapeProp aggregates, generated code -------------------------------------------
@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
def test_lint_and_node_construction_errors_use_torch_fx_wording(lib):
    g = lib.fx.Graph()
    with pytest.raises(ValueError):
        lib.fx.Node(graph=g, name="foo", op="call_function", target="foo", args=(), kwargs={})
    x = g.placeholder("x")
    neg = g.call_function(operator.neg, (x,))
    add = g.call_function(operator.add, (neg, x))
    g.output(add)
    add.append(neg)
    with pytest.raises(RuntimeError, match="was used before it has been defined"):
        g.lint()
    source = lib.fx.symbolic_trace(lambda x: x + 1).graph
    copied = lib.fx.Graph()
    for node in source.nodes:
        copied.node_copy(node)          # no arg_transform: arguments still in `source`
    with pytest.raises(RuntimeError, match="does not belong to this Graph"):
        copied.lint()


def test_shape_prop_keeps_non_tensor_results_of_a_leaf_module():
    def build(lib):
        class ReturnTwo(lib.nn.Module):
            def forward(self, x):
                return 3, lib.sum(x)

        class Root(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.rt = ReturnTwo()

            def forward(self, x):
                return self.rt(x)

        class T(lib.fx.Tracer):
            def is_leaf_module(self, m, qualname):
                return type(m) is ReturnTwo
        root = Root()
        gm = lib.fx.GraphModule(root, T().trace(root))
        sub(lib, ".fx.passes.shape_prop").ShapeProp(gm).propagate(lib.ones(3, 4))
        meta = [n.meta["tensor_meta"] for n in gm.graph.nodes if n.op == "call_module"][0]
        return meta[0], tuple(meta[1].shape), [n.meta.get("type") is lib.Tensor
                                              for n in gm.graph.nodes if n.op == "placeholder"]
    torch_result, ember_result = both(build)
    assert ember_result == torch_result


def test_generated_code_for_layouts_reserved_names_and_empty_graphs():
    def build(lib):
        gm = lib.fx.symbolic_trace(
            lambda x: lib.empty_like(x, layout=lib.strided, pin_memory=False).fill_(0))
        g = lib.fx.Graph()
        x = g.placeholder("x")
        inf = g.create_node("call_function", operator.add, (x, float("inf")), {}, name="inf")
        nan = g.create_node("call_function", operator.add, (x, float("nan")), {}, name="nan")
        g.output((inf, nan))
        named = lib.fx.GraphModule(lib.nn.Module(), g)
        empty = lib.fx.GraphModule(lib.nn.Module(), lib.fx.Graph())
        return (neutral(gm.code), gm(lib.ones(2)).tolist(), [n.name for n in g.nodes],
                [str(t.tolist()) for t in named(lib.ones(1))], empty(), empty.code)
    torch_result, ember_result = both(build)
    assert ember_result == torch_result


# --- replace_pattern on torch's own rewriter cases ------------------------------------------------
def _rewrite(lib, root, pattern, replacement, inputs):
    traced = lib.fx.symbolic_trace(root)
    matches = sub(lib, ".fx.subgraph_rewriter").replace_pattern(traced, pattern, replacement)
    traced.graph.lint()
    out = traced(*inputs)
    values = [o.tolist() for o in out] if isinstance(out, tuple) else out.tolist()
    return len(matches), kinds_and_names(traced.graph), values


def _case_same_pattern_twice(lib):
    def f(x, w1, w2):
        return x + lib.max(lib.cat([w1, w2]).sum()) + lib.max(lib.cat([w1, w2]).sum())
    return _rewrite(lib, f, lambda w1, w2: lib.cat([w1, w2]).sum(),
                    lambda w1, w2: lib.stack([w1, w2]), [lib.ones(1, 3)] * 3)


def _case_interior_used_outside(lib):
    def f(x, w1, w2, b1, b2):
        m1, m2 = lib.cat([w1, w2]), lib.cat([x, b2])
        t0 = lib.addmm(b1, m1, m2.t())
        return lib.sum(lib.sum(w1, 1)), lib.sum(lib.addmm(b1, m1, m2.t())), t0

    def pattern(x, w1, w2, b1, b2):
        return lib.addmm(b1, lib.cat([w1, w2]), lib.cat([x, b2]).t())
    return _rewrite(lib, f, pattern, lambda x, w1, w2, b1, b2: lib.cat([x, w1, w2]),
                    [lib.ones(1, 2), lib.ones(1, 2), lib.ones(1, 2), lib.ones(2, 2),
                     lib.ones(1, 2)])


def _case_placeholder_matches_a_computed_value(lib):
    class M(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.dtype = lib.float16

        def forward(self, x):
            x += 3
            return lib.sigmoid(x.dequantize()).to(self.dtype)
    return _rewrite(lib, M(), lambda x: lib.sigmoid(x.dequantize()).to(lib.float16),
                    lambda x: x, [lib.ones(2)])


def _case_overlapping_and_consecutive(lib):
    def f(x):
        return lib.sigmoid(lib.sigmoid(lib.sigmoid(lib.sigmoid(x))))
    return _rewrite(lib, f, lambda x: lib.sigmoid(lib.sigmoid(x)), lambda x: lib.neg(x),
                    [lib.zeros(2)])


def _case_duplicated_outputs(lib):
    def f(x1, x2):
        x = x1 - x2
        return lib.sigmoid(x) + lib.relu(x)

    def pattern(a1, a2):
        a = a1 - a2
        return lib.sigmoid(a), lib.relu(a), a

    def replacement(x1, x2):
        y2 = lib.abs(x2)
        return y2, y2, lib.exp(x1)
    return _rewrite(lib, f, pattern, replacement, [lib.ones(2), lib.ones(2) * -2])


def _case_unused_input(lib):
    return _rewrite(lib, lambda x, y, z: x + y, lambda x, y: x + y, lambda x, y: x - y,
                    [lib.ones(1), lib.ones(1) * 3, lib.ones(1)])


@pytest.mark.parametrize("case", [_case_same_pattern_twice, _case_interior_used_outside,
                                  _case_placeholder_matches_a_computed_value,
                                  _case_overlapping_and_consecutive, _case_duplicated_outputs,
                                  _case_unused_input], ids=lambda f: f.__name__[6:])
def test_replace_pattern_cases(case):
    torch_count, torch_names, torch_values = case(torch)
    ember_count, ember_names, ember_values = case(ember)
    assert (ember_count, ember_names) == (torch_count, torch_names)
    assert np.allclose(_flat(ember_values), _flat(torch_values))


def _flat(values) -> list:
    if isinstance(values, (list, tuple)):
        return [x for v in values for x in _flat(v)]
    return [float(values)]


def test_replace_pattern_with_modules_moves_submodules_and_attributes():
    def build(lib):
        class M(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.sigmoid = lib.nn.Sigmoid()
                self.submod = lib.nn.ReLU()
                self.a = lib.tensor([1])

            def forward(self, x):
                return self.submod(self.sigmoid(x + self.a))

        class Pattern(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.sigmoid = lib.nn.Sigmoid()
                self.submod = lib.nn.ReLU()

            def forward(self, x):
                return self.submod(self.sigmoid(x))

        class Replacement(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.tanh = lib.nn.Tanh()
                self.submod = lib.nn.ReLU()
                self.c = lib.tensor([3.0])

            def forward(self, x):
                return self.submod(self.tanh(x)) - self.c
        traced = lib.fx.symbolic_trace(M())
        matches = sub(lib, ".fx.subgraph_rewriter").replace_pattern(traced, Pattern(),
                                                                    Replacement())
        with pytest.raises(AttributeError, match="has no attribute"):
            traced.get_submodule("sigmoid")
        return (len(matches), type(traced.get_submodule("tanh")).__name__,
                kinds_and_names(traced.graph), round(traced(lib.zeros(1)).item(), 5))
    torch_result, ember_result = both(build)
    assert ember_result == torch_result


# --- pass infrastructure --------------------------------------------------------------------------
def test_pass_manager_checks_constraints_and_order():
    def build(lib):
        pass_manager = sub(lib, ".fx.passes.infra.pass_manager")

        def add_to_mul(gm):
            for n in gm.graph.nodes:
                if n.op == "call_function" and n.target == lib.add:
                    n.target = lib.mul
            gm.recompile()
            return pass_manager.PassResult(gm, True)

        def mul_to_div(gm):
            for n in gm.graph.nodes:
                if n.op == "call_function" and n.target == lib.mul:
                    n.target = lib.div
            gm.recompile()
            return pass_manager.PassResult(gm, True)

        def check_div(gm):
            if any(n.op == "call_function" and n.target != lib.div for n in gm.graph.nodes):
                raise ValueError("Target should be div!")

        def trace():
            return lib.fx.symbolic_trace(lambda x: lib.add(lib.add(x, x), x))
        gm = trace()
        result = pass_manager.PassManager([add_to_mul, mul_to_div], steps=5)(gm)
        targets = [n.target == lib.div for n in gm.graph.nodes if n.op == "call_function"]
        checked = pass_manager.PassManager([add_to_mul, mul_to_div])
        checked.add_checks(check_div)
        with pytest.raises(ValueError):
            checked(trace())            # checks run before the passes too
        with pytest.raises(TypeError):
            checked.add_checks(lambda gm, extra: None)
        ordered = pass_manager.PassManager(
            [add_to_mul, mul_to_div],
            constraints=[pass_manager.this_before_that_pass_constraint(mul_to_div, add_to_mul)])
        with pytest.raises(RuntimeError):
            ordered.validate_constraints()
        ordered.solve_constraints()
        return targets, result.modified, [p.__name__ for p in ordered.passes]
    torch_result, ember_result = both(build)
    assert ember_result == torch_result


# --- split_by_tags --------------------------------------------------------------------------------
def test_split_by_tags_names_submodules_after_tags():
    def build(lib):
        class M(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.linear1 = lib.nn.Linear(2, 3)
                self.linear2 = lib.nn.Linear(4, 3)
                self.linear3 = lib.nn.Linear(6, 3)
                self.linear4 = lib.nn.Linear(3, 6)

            def forward(self, x1, x2, x3):
                v = lib.cat([self.linear1(x1), self.linear2(x2), self.linear3(x3)])
                return self.linear4(v)
        tags = ["red", "blue", "green"]
        gm = lib.fx.symbolic_trace(M())
        for node in gm.graph.nodes:
            node.meta["name"] = node.name
            node.tag = tags[0] if "linear1" in node.name else \
                tags[1] if "linear2" in node.name else tags[2]
        split, mapping = sub(lib, ".fx.passes.split_utils").split_by_tags(
            gm, tags, return_fqn_mapping=True)
        calls = {name: [n.name for n in m.graph.nodes if n.op == "call_module"]
                 for name, m in split.named_children()}
        kept_meta = all(n.meta.get("name") == n.name for m in split.children()
                        for n in m.graph.nodes if n.op != "output")
        x = (lib.ones(1, 2), lib.ones(1, 4) * 2, lib.ones(1, 6) * 3)
        same = bool(lib.allclose(split(*x), gm(*x)))
        return calls, mapping, kept_meta, [(str(n.op), n.target) for n in split.graph.nodes], same
    torch_result, ember_result = both(build)
    assert ember_result == torch_result


def test_tracer_control_flow_hooks_and_annotate():
    def build(lib):
        class Optimist(lib.fx.Tracer):
            def to_bool(self, obj):
                return True

        def f(x):
            if x.sum() > 0:
                return x + 1
            return x - 1

        def g(x):
            y = sub(lib, ".fx.annotate").annotate(x, int)
            return lib.add(x, y)
        branch = [(str(n.op), n.name) for n in Optimist().trace(f).nodes]
        annotated = lib.fx.symbolic_trace(g)
        readable = annotated.print_readable(print_output=False, include_stride=True,
                                            include_device=True)
        return branch, [n.type for n in annotated.graph.nodes if n.op == "placeholder"], \
            neutral(annotated.code), "def forward" in readable
    torch_result, ember_result = both(build)
    assert ember_result == torch_result


def test_graph_editing_api_takes_torch_fx_keyword_names():
    def build(lib):
        g = lib.fx.Graph()
        x = g.placeholder(name="x")
        y = g.placeholder(name="y")
        relu = g.call_function(the_function=lib.relu, args=(x,))
        w = g.get_attr(qualified_name="w")
        add = g.call_method(method_name="add", args=(relu, w))
        g.output(result=g.call_module(module_name="lin", args=(add,)))
        with g.inserting_before(n=relu):
            neg = g.call_function(the_function=lib.neg, args=(x,), kwargs={})
        relu.replace_all_uses_with(replace_with=neg)
        g.erase_node(to_erase=relu)
        neg.update_arg(idx=0, arg=y)
        neg.replace_input_with(old_input=y, new_input=x)
        copy_target = lib.fx.Graph()
        copy_target.graph_copy(g=g, val_map={})
        return [n.name for n in g.nodes], [n.name for n in copy_target.nodes]
    torch_result, ember_result = both(build)
    assert ember_result == torch_result


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
def test_a_proxy_cannot_be_a_dictionary_key(lib):
    class TakesDict(lib.nn.Module):
        def forward(self, d):
            return d[42]

    class Calls(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = TakesDict()

        def forward(self, x):
            return self.m({x: x})

    class T(lib.fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return isinstance(m, TakesDict)
    with pytest.raises(RuntimeError, match="cannot contain a Node"):
        T().trace(Calls())


# --- fx-using library code ------------------------------------------------------------------------
def test_feature_extraction_tracer_and_graph_module_subclass():
    """The shape of torchvision's feature extraction: a Tracer that tracks the module
    being traced through, and a GraphModule subclass whose __init__ skips
    GraphModule's and switches graphs on train()/eval()."""
    def build(lib):
        fx = lib.fx
        graph_module = sub(lib, ".fx.graph_module")

        class NodePathTracer(fx.Tracer):
            def __init__(self):
                super().__init__()
                self.current = ""
                self.node_to_qualname = {}

            def call_module(self, m, forward, args, kwargs):
                old, self.current = self.current, self.path_of_module(m)
                try:
                    if not self.is_leaf_module(m, self.current):
                        return forward(*args, **kwargs)
                    return self.create_proxy("call_module", self.current, args, kwargs)
                finally:
                    self.current = old

            def create_proxy(self, kind, target, args, kwargs, name=None, type_expr=None,
                             *_, **__):
                proxy = super().create_proxy(kind, target, args, kwargs, name, type_expr)
                prefix = f"{self.current}." if self.current else ""
                self.node_to_qualname[proxy.node] = prefix + proxy.node.name
                return proxy

        class Dual(fx.GraphModule):
            def __init__(self, root, train_graph, eval_graph, class_name="GraphModule"):
                super(fx.GraphModule, self).__init__()
                self.__class__.__name__ = class_name
                self.train_graph, self.eval_graph = train_graph, eval_graph
                for node in list(train_graph.nodes) + list(eval_graph.nodes):
                    if node.op in ("get_attr", "call_module"):
                        graph_module._copy_attr(root, self, node.target)
                self.graph = train_graph

            def train(self, mode=True):
                if mode != self.training:
                    self.graph = self.train_graph if mode else self.eval_graph
                return super().train(mode=mode)

        class Block(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = lib.nn.Conv2d(3, 3, 1)

            def forward(self, x):
                return lib.relu(self.conv(x)) + x

        class Net(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.layer1, self.layer2 = Block(), Block()

            def forward(self, x):
                return self.layer2(self.layer1(x)).sum()
        net = Net()
        tracer = NodePathTracer()
        graph = tracer.trace(net)
        wanted = [n for n in graph.nodes if tracer.node_to_qualname.get(n) == "layer1.add"]
        graph.output_node().args = ({"feat": wanted[0]},)   # a method in torch.fx
        extractor = fx.GraphModule(net, graph, "FeatureExtractor")
        extractor.graph.eliminate_dead_code()
        extractor.recompile()
        extractor.delete_all_unused_submodules()
        plus = fx.symbolic_trace(lambda x: x + 1)
        times = fx.symbolic_trace(lambda x: x * 10)
        a, b = Dual(plus, plus.graph, times.graph, "A"), Dual(times, times.graph, plus.graph, "B")
        one = lib.ones(1)
        switched = [a(one).item(), b(one).item(), a.eval()(one).item(), b(one).item()]
        return (sorted(tracer.node_to_qualname.values()), kinds_and_names(extractor.graph),
                sorted(n for n, _ in extractor.named_modules()),
                tuple(extractor(lib.ones(1, 3, 2, 2))["feat"].shape), switched,
                type(a).__name__, type(extractor).__name__)
    torch_result, ember_result = both(build)
    assert ember_result == torch_result


def test_const_fold_keeps_node_meta_and_handles_collisions():
    def build(lib):
        const_fold = sub(lib, ".fx.experimental.const_fold")

        class M(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.add_1__CF = lib.nn.Parameter(lib.tensor([[1.0]]))
                self._FX_CONST_FOLDED_ATTRS = lib.nn.Parameter(lib.tensor([[2.0]]))

            def forward(self, x):
                return (x - (self.add_1__CF + self.add_1__CF)) * self._FX_CONST_FOLDED_ATTRS
        gm = lib.fx.symbolic_trace(M())
        for idx, node in enumerate(gm.graph.nodes):
            if node.op != "output":
                node.meta["meta_idx"] = idx
        folded = const_fold.split_const_subgraphs(gm)
        x = lib.tensor([[5.0]])
        return (folded.fx_const_folded_attrs_name,
                sorted(n.meta.get("meta_idx", -1) for n in folded.graph.nodes
                       if n.op != "output"),
                folded(x).tolist(), M()(x).tolist())
    torch_result, ember_result = both(build)
    assert ember_result == torch_result


def test_transformer_keeps_node_meta():
    def build(lib):
        gm = lib.fx.symbolic_trace(lambda x: (x + 1).relu())
        for n in gm.graph.nodes:
            n.meta["custom"] = n.name
        new = lib.fx.Transformer(gm).transform()
        return [(n.name, n.meta.get("custom")) for n in new.graph.nodes]
    torch_result, ember_result = both(build)
    assert ember_result == torch_result


def test_str_of_a_graph_module_is_torch_fx_layout():
    def build(lib):
        class M(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.l1 = lib.nn.Linear(3, 3)

            def forward(self, x):
                return self.l1(x)
        return neutral(str(lib.fx.symbolic_trace(M())))
    torch_result, ember_result = both(build)
    assert ember_result == torch_result
