"""ember.fx against torch.fx: the printed forms users read and match on.

`str(graph)`, `node.format_node()`, `gm.code`, `print_readable()`, the error texts of
graph editing, `concrete_args` signatures and the torch.fx helper modules. Each test
builds the same program with both libraries and compares, with `torch.` read as
`ember.` (the only spelling difference ember keeps).
"""
import operator

import pytest

torch = pytest.importorskip("torch")
import torch.fx as tfx  # noqa: E402

import ember  # noqa: E402
import ember.fx as efx  # noqa: E402


def _same(torch_text: str, ember_text: str) -> None:
    assert ember_text == torch_text.replace("torch.", "ember.")


def _both(build):
    """`build(lib, fx)` with torch and with ember."""
    return build(torch, tfx), build(ember, efx)


def _program(lib, fx):
    class Block(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = lib.nn.Linear(3, 3)
            self.register_buffer("scale", lib.ones(3))

        def forward(self, x: lib.Tensor, n=2):
            a = self.lin(x) * self.scale
            b = a.view(-1, 3).sum(dim=1, keepdim=True)
            c = lib.cat([a, b], dim=1)[:, 1:]
            return lib.relu(c) + n, a.to(lib.float64), {"k": "s"}
    return fx.symbolic_trace(Block())


def test_graph_str_is_torch_listing():
    tgm, egm = _both(_program)
    _same(str(tgm.graph), str(egm.graph))
    assert str(egm.graph).startswith("graph():\n    %x : ember.Tensor [num_users=1] = ")


def test_format_node_per_node_and_types():
    def build(lib, fx):
        g = fx.Graph()
        a = g.placeholder("a", type_expr=lib.Tensor)
        k = g.placeholder("k", type_expr=int, default_value=3)
        s = g.call_function(getattr, (a, "shape"))
        r = g.call_function(lib.relu, (a,), type_expr=lib.Tensor)
        m = g.call_method("mul", (r, k), {"out": None})
        w = g.get_attr("w.weight")
        g.output((m, s, w))
        return g
    tg, eg = _both(build)
    _same(str(tg), str(eg))
    for tn, en in zip(tg.nodes, eg.nodes):
        _same(tn.format_node(), en.format_node())
    assert "call_function[target=builtins.getattr]" in str(eg)


def test_code_and_typed_intermediates():
    def build(lib, fx):
        g = fx.Graph()
        a = g.placeholder("a", type_expr=lib.Tensor)
        r = g.call_function(lib.relu, (a,), type_expr=lib.Tensor)
        g.output(r, type_expr=lib.Tensor)
        return fx.GraphModule(lib.nn.Module(), g)
    tgm, egm = _both(build)
    _same(tgm.code, egm.code)
    assert egm(ember.tensor([-1.0, 2.0])).tolist() == [0.0, 2.0]


def test_print_readable_without_stack_traces():
    tgm, egm = _both(_program)
    _same(tgm.print_readable(print_output=False), egm.print_readable(print_output=False))
    assert "# No stacktrace found for following nodes" in egm.print_readable(False)
    assert all(n.stack_trace is None for n in egm.graph.nodes)


def _traced_with_stacks(lib, fx):
    class M(lib.nn.Module):
        def forward(self, x):
            y = x + 1
            return y.relu()
    tracer = fx.Tracer()
    tracer.record_stack_traces = True
    graph = tracer.trace(M())
    return fx.GraphModule(tracer.root, graph)


def test_record_stack_traces_fills_node_stack_trace():
    egm = _traced_with_stacks(ember, efx)
    traces = {n.name: n.stack_trace for n in egm.graph.nodes}
    assert traces["x"] is None and traces["output"] is None
    assert 'line' in traces["add"] and "y = x + 1" in traces["add"]
    assert traces["add"].startswith('File "') and "in forward" in traces["add"]
    text = egm.print_readable(print_output=False)
    lines = [line.strip() for line in text.splitlines()]
    add_at = lines.index("add = x + 1;  x = None")
    assert lines[add_at - 1].startswith("# File: ") and lines[add_at - 1].endswith(
        "in forward, code: y = x + 1")
    assert lines[add_at + 1] == "" and lines[add_at + 2].endswith("code: return y.relu()")
    # gm.code stays free of comments, as torch's
    assert "#" not in egm.code


def test_erase_node_with_users_message():
    def build(lib, fx):
        g = fx.Graph()
        x = g.placeholder("x")
        a = g.call_function(operator.neg, (x,))
        g.call_function(operator.abs, (a,))
        g.call_function(operator.pos, (a,))
        with pytest.raises(RuntimeError) as info:
            g.erase_node(a)
        return str(info.value)
    torch_msg, ember_msg = _both(build)
    assert ember_msg == torch_msg


def test_lint_reports_use_before_definition_as_torch():
    def build(lib, fx):
        g = fx.Graph()
        x = g.placeholder("x")
        a = g.call_function(operator.neg, (x,))
        b = g.call_function(operator.abs, (a,))
        g.output(b)
        a.prepend(b)
        with pytest.raises(RuntimeError) as info:
            g.lint()
        return str(info.value)
    torch_msg, ember_msg = _both(build)
    assert ember_msg == torch_msg


@pytest.mark.parametrize("concrete", [
    {"y": None, "w": True},
    {"y": None, "z": "PH", "w": False},
])
def test_concrete_args_signature_keeps_defaults(concrete):
    def build(lib, fx):
        def f(x, y, z=3, w=True):
            return x + (0 if y is None else 1) + z * (2 if w else 1)
        args = {k: (fx.PH if v == "PH" else v) for k, v in concrete.items()}
        return fx.symbolic_trace(f, concrete_args=args)
    tgm, egm = _both(build)
    _same(tgm.code, egm.code)
    placeholders = [(n.name, n.target, n.args) for n in egm.graph.nodes if n.op == "placeholder"]
    assert placeholders == [(n.name, n.target, n.args) for n in tgm.graph.nodes
                            if n.op == "placeholder"]
    x = [1.0, 2.0]
    want = tgm(torch.tensor(x), None, 3, concrete.get("w", True))
    assert egm(ember.tensor(x), None, 3, concrete.get("w", True)).tolist() == want.tolist()


def test_is_fx_tracing():
    seen = []

    def build(lib, fx, module):
        def f(x):
            seen.append(module.is_fx_tracing())
            return x + 1
        fx.symbolic_trace(f)
        return module.is_fx_tracing()
    import torch.fx._symbolic_trace as tst
    import ember.fx._symbolic_trace as est
    assert build(torch, tfx, tst) is False and build(ember, efx, est) is False
    assert seen == [True, True]


def test_immutable_collections_refuse_mutation():
    from torch.fx.immutable_collections import immutable_dict as tdict, immutable_list as tlist
    from ember.fx.immutable_collections import immutable_dict, immutable_list
    for make_list, make_dict in ((tlist, tdict), (immutable_list, immutable_dict)):
        lst, dct = make_list([3, 4]), make_dict({"a": 1})
        for mutate in (lambda: lst.__setitem__(0, 4), lambda: lst.append(1),
                       lambda: dct.__setitem__("a", 2), lambda: dct.update(b=1)):
            with pytest.raises(TypeError, match="new_args|args"):
                mutate()
        assert lst == [3, 4] and dct == {"a": 1}
        assert hash(lst) == hash(make_list([3, 4]))


def test_has_side_effect_is_exported_and_kept_by_dce():
    for lib, fx in ((torch, tfx), (ember, efx)):
        def noisy(x):
            return x
        fx.has_side_effect(noisy)
        g = fx.Graph()
        x = g.placeholder("x")
        g.call_function(noisy, (x,))
        g.call_function(operator.neg, (x,))
        g.output(x)
        g.eliminate_dead_code()
        assert [n.name for n in g.nodes] == ["x", "noisy", "output"]


def _normalizable(lib, fx):
    import importlib
    F = importlib.import_module(f"{lib.__name__}.nn.functional")

    class M(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = lib.nn.Linear(2, 2)

        def forward(self, x):
            return _scaled(F.relu(self.lin(x)), 5).relu(), lib.sigmoid(x)
    return fx.symbolic_trace(M())


def _scaled(a, b=2, *, c=3):
    return a * b * c


tfx.wrap("_scaled")
efx.wrap("_scaled")


@pytest.mark.parametrize("only_kwargs", [False, True])
def test_normalized_arguments_match_torch(only_kwargs):
    tgm, egm = _both(_normalizable)
    for tn, en in zip(tgm.graph.nodes, egm.graph.nodes):
        want = tn.normalized_arguments(tgm, normalize_to_only_use_kwargs=only_kwargs)
        got = en.normalized_arguments(egm, normalize_to_only_use_kwargs=only_kwargs)
        assert (got is None) == (want is None), en.name
        if want is not None:
            show = lambda pair: (repr(pair.args), repr(pair.kwargs))  # noqa: E731
            assert show(got) == show(want), en.name
            assert type(got).__name__ == "ArgsKwargsPair"


def test_registry_op_normalizes_through_its_schema():
    gm = efx.symbolic_trace(lambda x: ember.add(x, x, alpha=2))
    node = next(n for n in gm.graph.nodes if n.op == "call_function")
    pair = node.normalized_arguments(gm, normalize_to_only_use_kwargs=True)
    assert list(pair.kwargs) == ["input", "other", "alpha"] and pair.kwargs["alpha"] == 2


def test_node_op_reads_as_a_plain_string():
    egm = efx.symbolic_trace(lambda x: x + 1)
    tgm = tfx.symbolic_trace(lambda x: x + 1)
    assert repr([n.op for n in egm.graph.nodes]) == repr([n.op for n in tgm.graph.nodes])
    assert [f"{n.op}" for n in egm.graph.nodes] == [n.op for n in tgm.graph.nodes]


def test_dict_root_missing_target_message():
    def build(lib, fx):
        g = fx.Graph()
        x = g.placeholder("x")
        g.output(g.call_function(operator.add, (g.call_module("lin", (x,)), g.get_attr("w"))))
        with pytest.raises(RuntimeError) as info:
            fx.GraphModule({"lin": lib.nn.Linear(2, 2)}, g)
        return str(info.value)
    torch_msg, ember_msg = _both(build)
    assert ember_msg == torch_msg


def test_node_rename_keeps_names_unique():
    for fx in (tfx, efx):
        g = fx.Graph()
        x = g.placeholder("x")
        a = g.call_function(operator.neg, (x,))
        b = g.call_function(operator.abs, (a,))
        g.output(b)
        b._rename("neg")
        a._rename("neg")
        assert (a.name, b.name) == ("neg", "neg_1")
        a._rename("fresh")
        assert a.name == "fresh"


def test_names_reserved_like_torch():
    def build(lib, fx):
        g = fx.Graph()
        x = g.placeholder("x")
        names = [g.create_node("call_function", operator.neg, (x,), name=n).name
                 for n in ("x", "add", "add_1", "add", "sum", "1abc", "a.b-c", "torch")]
        return names
    torch_names, ember_names = _both(build)
    assert ember_names == torch_names


def test_replace_all_uses_with_propagate_meta():
    def build(lib, fx):
        g = fx.Graph()
        x = g.placeholder("x")
        a = g.call_function(operator.neg, (x,))
        a.meta["tag"] = 1
        b = g.call_function(operator.abs, (x,))
        c = g.call_function(operator.pos, (x,))
        out = g.output((a, a))
        changed = a.replace_all_uses_with(b, propagate_meta=True)
        c.meta["other"] = 2
        with pytest.raises(AssertionError, match="already has .meta keys") as info:
            b.replace_all_uses_with(c, propagate_meta=True)
        return [n.name for n in changed], dict(b.meta), str(info.value), out.args
    torch_result, ember_result = _both(build)
    assert repr(ember_result) == repr(torch_result)


def test_erase_node_twice_warns():
    for fx in (tfx, efx):
        g = fx.Graph()
        x = g.placeholder("x")
        a = g.call_function(operator.neg, (x,))
        g.output(x)
        g.erase_node(a)
        with pytest.warns(UserWarning, match="already erased"):
            g.erase_node(a)
        assert [n.name for n in g.nodes] == ["x", "output"]


def test_print_readable_nests_graph_module_children():
    def build(lib, fx):
        split_module = __import__(f"{lib.__name__}.fx.passes.split_module",
                                  fromlist=["split_module"]).split_module

        class M(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.l = lib.nn.Linear(2, 2)

            def forward(self, x):
                return self.l(x).relu() + 1
        m = M()
        gm = fx.symbolic_trace(m)
        parts = split_module(gm, m, lambda n: 0 if n.op == "call_module" else 1)
        return parts.print_readable(print_output=False)
    torch_text, ember_text = _both(build)
    _same(torch_text, ember_text)
    assert "\n    class submod_1(ember.nn.Module):\n" in ember_text


def test_tracer_getattr_hook_gets_torch_arguments():
    for lib, fx in ((torch, tfx), (ember, efx)):
        seen = []

        class Spy(fx.Tracer):
            def getattr(self, attr, attr_val, parameter_proxy_cache):
                seen.append((attr, isinstance(parameter_proxy_cache, dict)))
                return super().getattr(attr, attr_val, parameter_proxy_cache)

        class Sub(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.l = lib.nn.Linear(2, 2)

            def forward(self, x):
                return self.l(x)
        Spy().trace(Sub())
        assert seen == [("l", True)]


def test_graph_module_meta_dict():
    for fx in (tfx, efx):
        gm = fx.symbolic_trace(lambda x: x + 1)
        assert gm.meta == {}
        gm.meta["pass"] = "done"
        import copy
        assert copy.deepcopy(gm).meta == {"pass": "done"}
        assert fx.GraphModule(gm, gm.graph).meta == {}
