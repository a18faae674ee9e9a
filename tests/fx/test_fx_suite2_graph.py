"""Graph, GraphModule and Interpreter behaviours from PyTorch's test/test_fx.py (TestFX),
run as the same user code against torch.fx (the oracle) and ember.fx and compared:
generated code text (library name neutralized), node lists, results, error kinds and
wording."""
import contextlib
import copy
import io
import operator
import pickle
import re
import sys
import warnings
from typing import List

import torch
import torch.fx

import ember
import ember.fx

from fx_suite2_common import neutral, same, outcome


def relu_graph(lib):
    g = lib.fx.Graph()
    x = g.create_node("placeholder", "x")
    b = g.create_node("call_function", target=lib.relu, args=(x,))
    g.output(b)
    return g, x, b


def test_graph_copy_then_proxy_appends_and_names_stay_unique():
    def build(lib):
        class M(lib.nn.Module):
            def forward(self, a, b):
                return a + b
        m = M()
        g = lib.fx.symbolic_trace(m).graph
        new, val_map = lib.fx.Graph(), {}
        out = new.graph_copy(g, val_map)
        t = lib.fx.Proxy(out)
        new.output((t + t).node)
        gm = lib.fx.GraphModule(m, new)
        gm.graph.lint()
        manual = lib.fx.Graph()
        a = manual.create_node("placeholder", "x")
        b = manual.create_node("call_module", "linear_mod", args=(a,), name="foo_1_1")
        c = manual.create_node("get_attr", "y_attr", name="foo_1")
        manual.output(manual.create_node("call_function", operator.add, args=(b, c)))
        copied = lib.fx.Graph()
        copied.graph_copy(manual, {})
        return (gm(3, 4), [n.name for n in gm.graph.nodes], neutral(gm.code),
                sorted((k.name, v.name) for k, v in val_map.items()),
                [n.name for n in manual.nodes], [n.name for n in copied.nodes])
    same(build)


def test_inline_one_graph_into_another():
    def build(lib):
        class A(lib.nn.Module):
            def forward(self, x):
                return lib.relu(x)

        class B(lib.nn.Module):
            def forward(self, x):
                return lib.neg(x)
        a, b = lib.fx.symbolic_trace(A()), lib.fx.symbolic_trace(B())
        combined = lib.fx.Graph()
        out = combined.graph_copy(a.graph, {})
        first = list(b.graph.nodes)[0]
        combined.output(combined.graph_copy(b.graph, {first: out}))
        gm = lib.fx.GraphModule(lib.nn.Module(), combined)
        return neutral(gm.code), gm(lib.ones(2)).tolist()
    same(build)


def test_all_input_nodes_and_users_after_reassigning_args():
    def build(lib):
        g = lib.fx.Graph()
        a = g.placeholder("x")
        b = g.call_module("linear_mod", args=(a,))
        c = g.get_attr("y_attr")
        d = g.call_function(operator.add, args=(b, c))
        e = g.call_function(lib.unsqueeze, args=(d, 0))
        g.call_function(lib.cat, args=([a, d],), kwargs={"dim": b})
        g.output(e)
        inputs = [[m.name for m in n.all_input_nodes] for n in g.nodes]
        g2 = lib.fx.Graph()
        x, y = lib.fx.Proxy(g2.placeholder("x")), lib.fx.Proxy(g2.placeholder("y"))
        z = x + y
        zed = z + z + z
        g2.output(zed.node)
        zed.node.args = (zed.node.args[0], x.node)
        first = [n.name for n in x.node.users]
        z.node.args = (y.node, y.node)
        return inputs, first, [n.name for n in x.node.users], [n.name for n in y.node.users]
    same(build)


def test_replace_input_update_arg_and_update_kwarg():
    def build(lib):
        g, x, b = relu_graph(lib)
        y = g.create_node("placeholder", "y")
        x.append(y)
        b.replace_input_with(x, y)
        r1 = lib.fx.GraphModule(lib.nn.Module(), g)(lib.ones(1), -lib.ones(1)).tolist()
        b.update_arg(0, x)
        r2 = lib.fx.GraphModule(lib.nn.Module(), g)(lib.ones(1), -lib.ones(1)).tolist()
        g2 = lib.fx.Graph()
        x2, y2 = g2.placeholder("x"), g2.placeholder("y")
        c = g2.create_node("call_function", target=lib.relu, kwargs={"input": x2})
        g2.output(c)
        c.update_kwarg("input", y2)
        gm2 = lib.fx.GraphModule(lib.nn.Module(), g2)
        return (r1, r2, neutral(gm2.code), [u.name for u in x.users], [u.name for u in y.users],
                len(x2.users))
    same(build)


def test_insertion_points_prepend_and_append():
    def build(lib):
        g, x, b = relu_graph(lib)
        with g.inserting_before(b):
            neg = g.call_function(the_function=lib.neg, args=(x,))
            b.args = (neg,)
        g2, x2, b2 = relu_graph(lib)
        n2 = g2.call_function(the_function=lib.neg, args=(x2,))
        b2.args = (n2,)
        b2.prepend(n2)
        g3, x3, b3 = relu_graph(lib)
        b3.prepend(b3)
        x3.append(b3)
        g4 = lib.fx.Graph()
        p = lib.fx.Proxy(g4.placeholder("x"))
        relu = lib.relu(p)
        with g4.inserting_before(relu.node):
            tanh = lib.tanh(lib.neg(p))
        g4.output((relu.node, tanh.node))
        g4.lint()
        g5, x5, b5 = relu_graph(lib)
        with g5.inserting_after(x5):
            a5 = g5.call_function(lib.neg, (x5,))
        with g5.inserting_after(a5):
            t5 = g5.call_function(lib.tanh, (a5,))
        b5.args = (t5,)
        g5.lint()
        return (neutral(lib.fx.GraphModule(lib.nn.Module(), g).code),
                neutral(lib.fx.GraphModule(lib.nn.Module(), g2).code),
                [n.name for n in g3.nodes], [n.name for n in g4.nodes], [n.name for n in g5.nodes])
    same(build)


def test_erase_and_replace_all_uses_with_delete_user_cb():
    def build(lib):
        class S(lib.nn.Module):
            def forward(self, x):
                return lib.relu(x + 3.0)
        t = lib.fx.symbolic_trace(S())
        refused = [outcome(lambda n=n: t.graph.erase_node(n)) for n in list(t.graph.nodes)
                   if n.target in (operator.add, lib.relu)]
        g = lib.fx.Graph()
        x = g.placeholder("x")
        relu = g.call_function(lib.relu, (x,))
        neg = g.call_function(lib.neg, (relu,))
        g.output(neg)
        neg.replace_all_uses_with(relu)
        g.erase_node(neg)
        g2 = lib.fx.Graph()
        x2 = g2.placeholder("x")
        a = g2.call_function(lib.relu, (x2,))
        b = g2.call_function(lib.neg, (a,))
        g2.output(g2.call_function(operator.add, (a, b)))
        with g2.inserting_after(a):
            s = g2.call_function(lib.sigmoid, (a,))
        changed = a.replace_all_uses_with(s, delete_user_cb=lambda u: u is not s)
        g2.lint()
        return (refused, neg not in relu.users, [n.name for n in g.nodes],
                [u.name for u in changed],
                [neutral(n.format_node()) for n in g2.nodes])
    same(build)


def test_node_construction_and_lint_errors():
    def build(lib):
        out = []
        g = lib.fx.Graph()
        x = g.placeholder("x")
        out.append(outcome(lambda: g.call_method(lib.relu, (x,)))[0])
        out.append(outcome(lambda: g.call_function("relu", (x,)))[0])
        out.append(outcome(lambda: lib.fx.Node(graph=g, name="foo", op="call_function",
                                               target="foo", args=(), kwargs={}))[0])

        class M(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = lib.nn.Linear(1, 1)

        def owned(kind, target):
            gm = lib.fx.GraphModule(M(), lib.fx.Graph())
            g = gm.graph
            x = g.placeholder("x")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")      # (torch's call_module raises here)
                r = g.create_node("call_module", target, (x,)) if kind == "m" \
                    else g.get_attr(target)
            g.output(r)
            return g
        for kind, target in (("m", "missing"), ("m", "lin.missing"), ("a", "lin.nope"),
                             ("a", "lin.weight"), ("m", "lin")):
            g = owned(kind, target)
            out.append(outcome(lambda: g.lint()))
        g = owned("m", "lin")
        [n for n in g.nodes if n.op == "call_module"][0].target = lib.relu
        out.append(outcome(lambda: g.lint())[0])
        g = owned("m", "lin")
        [n for n in g.nodes if n.op == "call_module"][0].name = "x"
        out.append(outcome(lambda: g.lint()))

        class S(lib.nn.Module):
            def forward(self, x):
                return lib.relu(x + 3.0)
        copied = lib.fx.Graph()
        for node in lib.fx.symbolic_trace(S()).graph.nodes:
            copied.node_copy(node)
        out.append(outcome(lambda: copied.lint())[0])
        g, x, b = relu_graph(lib)
        nodes = list(g.nodes)
        nodes[2].append(nodes[1])
        out.append(outcome(lambda: g.lint())[0])
        return out
    same(build)


def test_get_attr_and_call_module_warn_without_a_reference():
    def build(lib):
        class M(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = lib.nn.Linear(1, 1)

            def forward(self, x):
                return self.lin(x)
        gm = lib.fx.symbolic_trace(M())
        seen = []
        for make in (lambda g: g.get_attr("lin.weight"), lambda g: g.get_attr("nope"),
                     lambda g: g.call_module("lin", ())):
            with warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                gm.graph.erase_node(make(gm.graph))
            seen.append([str(x.message)[:60] for x in w])
        return seen
    same(build)


def test_dead_code_elimination_and_impure_nodes():
    def build(lib):
        class M(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.d = lib.nn.Dropout(0.5)

            def forward(self, x, y):
                a = x + 1
                b = lib.relu(y)
                lib._assert(x.shape[0] > 0, "m")
                c = lib.rand(3)
                e = self.d(x)
                return y
        gm = lib.fx.symbolic_trace(M())
        changed = gm.graph.eliminate_dead_code()
        gm.recompile()
        return changed, [n.name for n in gm.graph.nodes], neutral(gm.code)
    same(build)


def test_output_node_find_nodes_and_python_code():
    def build(lib):
        class M(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = lib.nn.Linear(2, 2)

            def forward(self, x, y=3):
                a = lib.relu(x)
                b = lib.relu(a)
                return self.lin(b.neg()).clamp(min=0) + y
        gm = lib.fx.symbolic_trace(M())
        g = gm.graph
        out = g.output_node()
        return (out.name, [n.name for n in g.find_nodes(op="call_function", target=lib.relu)],
                [n.name for n in g.find_nodes(op="placeholder")],
                [n.name for n in g.find_nodes(op="call_method", target="neg")],
                neutral(g.python_code(root_module="self").src))
    same(build)


def test_format_node_str_and_custom_repr():
    def build(lib):
        class M(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.param = lib.nn.Parameter(lib.rand(3, 4))
                self.linear = lib.nn.Linear(4, 5)

            def forward(self, x, y: int = 2):
                return self.linear(x[y] + self.param).clamp(min=0.0, max=1.0)

        class Thing:
            def _custom_fx_repr_fn(self):
                return "Thing(3)"

        class K(lib.nn.Module):
            def forward(self, x):
                return lib.squeeze(x + 3.0, dim=2)

        class P(lib.nn.Module):
            def forward(self, x):
                return lib.add(x.foo + x.bar, 3.0)
        g = lib.fx.Graph()
        x = g.placeholder("x")
        g.output(g.call_function(operator.add, (x, 1), {"extra": Thing()}))
        g2 = lib.fx.Graph()
        x2 = g2.create_node("placeholder", "x")
        g2.output(g2.create_node("call_function", target=lib.relu, args=(x2,),
                                 type_expr=List[float]))
        return ([neutral(n.format_node()) for n in lib.fx.symbolic_trace(M()).graph.nodes],
                neutral(g), neutral(str(g2)), neutral(str(lib.fx.symbolic_trace(K()).graph)),
                neutral(str(lib.fx.symbolic_trace(P()).graph)))
    same(build)


def test_graph_module_from_graph_functions_and_a_dict_root():
    def build(lib):
        g = lib.fx.Graph()
        a = g.placeholder("a")
        b = g.call_module("linear", (a,))
        c = g.get_attr("bias")
        d = g.call_method("add", (b, c))
        g.output(g.call_function(lib.sin, (d,)))
        mod = lib.nn.Module()
        mod.linear = lib.nn.Linear(3, 4)
        mod.bias = lib.rand(4)
        gm = lib.fx.GraphModule(mod, g)
        i = lib.rand(3)
        ok = bool((gm(i) - lib.sin(mod.linear(i) + mod.bias)).abs().max() < 1e-6)
        g2 = lib.fx.Graph()
        x = g2.create_node("placeholder", "x")
        y = g2.create_node("call_module", "foo.bar.baz", args=(x,))
        z = g2.create_node("get_attr", "zip.zap.zam")
        g2.output(g2.create_node("call_function", operator.add, args=(y, z)))
        lin, p = lib.nn.Linear(3, 4), lib.rand(3, 4)
        gm2 = lib.fx.GraphModule({"foo.bar.baz": lin, "zip.zap.zam": p}, g2)
        x = lib.rand(3, 3)
        empty = lib.fx.GraphModule(lib.nn.Module(), lib.fx.Graph())
        return (neutral(gm.code), ok, neutral(gm2.code),
                bool(((gm2(x) - (lin(x) + p)).abs() < 1e-6).all()), empty(), neutral(empty.code))
    same(build)


def test_graph_module_keeps_buffers_and_parameters_from_either_root():
    def build(lib):
        class M(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.register_buffer("my_buff", lib.rand(3, 4))
                self.register_parameter("my_param", lib.nn.Parameter(lib.rand(3, 4)))

            def forward(self, x):
                return x + self.my_buff + self.my_param
        mod = M()
        traced = lib.fx.symbolic_trace(mod)
        buff, param = traced.get_buffer("my_buff"), traced.get_parameter("my_param")
        out = []
        for root in ({"my_buff": buff, "my_param": param}, mod):
            gm = lib.fx.GraphModule(root, traced.graph)
            x = lib.rand(3, 4)
            out.append((gm.get_buffer("my_buff") is buff, type(gm.get_parameter("my_param")).__name__,
                        [k for k, _ in gm.named_buffers()], [k for k, _ in gm.named_parameters()],
                        bool((gm(x) - traced(x)).abs().max() == 0)))
        return out
    same(build)


def test_submodule_manipulation_api():
    def build(lib):
        class C(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = lib.nn.Conv2d(16, 33, 3, stride=2)
                self.param = lib.nn.Parameter(lib.rand(2, 3))

            def forward(self, x):
                return self.conv(lib.cat([self.param, x]))

        class B(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.linear = lib.nn.Linear(100, 200)
                self.register_buffer("buf", lib.randn(2, 3))
                self.net_c = C()

            def forward(self, x):
                return self.linear(lib.cat([self.buf, self.net_c(x)]))

        class A(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.net_b = B()
                self.param = lib.nn.Parameter(lib.rand(2, 3))

            def forward(self, x):
                return self.net_b(x) + self.param
        a = lib.fx.symbolic_trace(A())
        res = [a.add_submodule("net_b.net_c.dropout", lib.nn.Dropout(p=0.2))]
        conv = [n for n in a.graph.nodes if n.target == "net_b.net_c.conv"][-1]
        with a.graph.inserting_before(conv):
            dropout = a.graph.call_module(module_name="net_b.net_c.dropout", args=conv.args)
        conv.replace_all_uses_with(dropout)
        a.graph.erase_node(conv)
        a.recompile()
        names = lambda: [n for n, _ in a.named_modules()]  # noqa: E731
        res += [names(), a.delete_submodule("net_b.net_c.conv"), a.delete_submodule("no.x"),
                names(), outcome(lambda: a.get_submodule("net_b.net_c.conv"))[0]]
        cat = [n for n in a.graph.nodes if n.target == lib.cat][-1]
        with a.graph.inserting_before(cat):
            param = a.graph.get_attr(qualified_name="net_b.net_c.param")
        cat.args = (*cat.args, param)
        a.recompile()
        a.graph.lint()
        a.add_submodule("net_b.embedding", lib.nn.Embedding(10, 3))
        a.add_submodule("batch_norm_2d", lib.nn.BatchNorm2d(100))
        a.delete_all_unused_submodules()
        res += [names(), [n for n, _ in a.named_parameters()], [n for n, _ in a.named_buffers()],
                neutral(a.code)]
        return res
    same(build)


def test_delete_all_unused_submodules_keeps_a_leaf_s_children():
    def build(lib):
        class Sub(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.linear = lib.nn.Linear(10, 10)
                self.relu = lib.nn.ReLU()

            def forward(self, x):
                return self.relu(self.linear(x))

        class Model(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.submod = Sub()

            def forward(self, x):
                return self.submod(x)

        class T(lib.fx.Tracer):
            def is_leaf_module(self, m, qualname):
                return qualname == "submod"
        m = Model()
        gm = lib.fx.GraphModule(m, T().trace(m))
        gm.delete_all_unused_submodules()
        x = lib.ones(1, 10)
        return [n for n, _ in gm.named_modules()], bool((gm(x) - m(x)).abs().max() < 1e-6)
    same(build)


def test_recompile_graph_setter_and_deepcopy_edits():
    def build(lib):
        def f(x):
            return lib.relu(x) + 1
        gm = lib.fx.symbolic_trace(f)
        copied = copy.deepcopy(gm)
        for n in copied.graph.nodes:
            if n.target == lib.relu:
                n.target = lib.neg
            if n.target == operator.add:
                n.target = operator.mul
        code = copied.recompile()
        gm.recompile()
        g = lib.fx.Graph()
        x = g.placeholder("x")
        g.output(g.call_function(operator.mul, (x, 5)))
        other = lib.fx.symbolic_trace(f)
        other.graph = g
        x = -lib.ones(2)
        return (gm(x).tolist(), copied(x).tolist(), type(code).__name__, neutral(code.src),
                neutral(copied.code), neutral(other.code), other(lib.ones(1)).tolist(),
                other.graph.owning_module is other)
    same(build)


def test_pickle_deepcopy_copy_and_replicas():
    def build(lib):
        class M(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = lib.nn.Linear(2, 2)
                self.register_buffer("b", lib.ones(2))

            def forward(self, x):
                return lib.sin(self.lin(x) + self.b)
        gm = lib.fx.symbolic_trace(M())
        gm.meta["k"] = 1
        made = [copy.deepcopy(gm), pickle.loads(pickle.dumps(gm)), copy.copy(gm),
                gm._replicate_for_data_parallel()]
        x = lib.ones(1, 2)
        g = lib.fx.Graph()
        v = g.placeholder("x")
        for _ in range(sys.getrecursionlimit() + 20):
            v = g.call_function(lib.relu, (v,))
        g.output(v)
        deep = copy.deepcopy(g)
        return ([neutral(m.code) for m in made],
                [sorted(k for k, _ in m.named_parameters()) for m in made],
                [bool((m(x) - gm(x)).abs().max() < 1e-6) for m in made], made[0].meta,
                getattr(made[3], "_is_replica", None), len(deep.nodes))
    same(build)


def test_error_in_generated_code_reports_the_line():
    def build(lib):
        class M(lib.nn.Module):
            def forward(self, x):
                y = x + 1
                return y.relu()
        t = lib.fx.symbolic_trace(M())
        buf = io.StringIO()
        with contextlib.redirect_stderr(buf):
            kind = outcome(lambda: t(5))[0]
        text = buf.getvalue()
        report = text[text.index("Call using"):] if "Call using" in text else ""

        class Sub(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.linear = lib.nn.Linear(3, 4)

            def forward(self, x):
                return self.linear(x)
        s = lib.fx.symbolic_trace(Sub())
        buf2 = io.StringIO()
        with contextlib.redirect_stderr(buf2):
            outcome(lambda: s(lib.rand(5, 5)))
        return (kind, bool(re.search(r"Call using an FX-traced Module, line .* of the traced "
                                     r"Module's generated forward function:", text)),
                report, "Call using" in buf2.getvalue())
    same(build)


def test_interpreter_partial_eval_swaps_and_env():
    def build(lib):
        class M(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.param = lib.nn.Parameter(lib.rand(3, 4))
                self.linear = lib.nn.Linear(4, 5)

            def forward(self, x):
                return self.linear(x + self.param).clamp(min=0.0, max=1.0)
        gm = lib.fx.symbolic_trace(M())
        env = {n: lib.arange(0, 12, 1).reshape(3, 4) - 6.0 for n in gm.graph.nodes
               if n.op == "call_module"}
        partial = lib.fx.Interpreter(gm).run(lib.randn(3, 4), initial_env=env)

        def fn(x):
            return lib.sigmoid(x).neg()
        g2 = lib.fx.symbolic_trace(fn)

        class Swap(lib.fx.Interpreter):
            def call_function(self, target, args, kwargs):
                if target == lib.sigmoid:
                    return lib.neg(*args, **kwargs)
                return super().call_function(target, args, kwargs)

            def call_method(self, target, args, kwargs):
                if target == "neg":
                    s, *rest = args
                    return s.sigmoid(*rest, **kwargs)
                return super().call_method(target, args, kwargs)

        class SwapX(lib.fx.Transformer):
            call_function = Swap.call_function
            call_method = Swap.call_method
        x = lib.ones(2)
        t = SwapX(g2).transform()
        interp = lib.fx.Interpreter(gm)
        interp.run(lib.ones(3, 4))
        kept = lib.fx.Interpreter(gm, garbage_collect_values=False)
        kept.run(lib.ones(3, 4))
        return (partial.tolist(), [round(v, 5) for v in Swap(g2).run(x).tolist()],
                [round(v, 5) for v in t(x).tolist()], neutral(t.code),
                sorted(n.name for n in interp.env), sorted(n.name for n in kept.env))
    same(build)


def test_interpreter_fetch_args_boxed_run_and_errors():
    def build(lib):
        def f(x, y):
            return lib.relu(x) + y * 2
        gm = lib.fx.symbolic_trace(f)

        class Logging(lib.fx.Interpreter):
            def __init__(self, m):
                super().__init__(m)
                self.log = []

            def run_node(self, n):
                args, kwargs = self.fetch_args_kwargs_from_env(n)
                self.log.append((n.name, [type(a).__name__ for a in args], sorted(kwargs)))
                n.cached = True
                return super().run_node(n)
        i = Logging(gm)
        r = i.run(lib.ones(2), lib.ones(2))
        args = [lib.ones(2), lib.ones(2)]
        boxed = lib.fx.Interpreter(gm).boxed_run(args)

        class Boom(lib.fx.Interpreter):
            def call_function(self, target, args, kwargs):
                raise RuntimeError("boom")
        return (i.log, r.tolist(), boxed.tolist(), args,
                all(getattr(n, "cached", False) for n in gm.graph.nodes),
                outcome(lambda: lib.fx.Interpreter(gm).run(lib.ones(2))),
                outcome(lambda: Boom(gm).run(lib.ones(2), lib.ones(2))))
    same(build)


def test_transformer_keeps_attributes_defaults_and_multi_outputs():
    def build(lib):
        class M(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.w = lib.nn.Parameter(lib.ones(2))
                self.linear = lib.nn.Linear(2, 2)

            def forward(self, x, y=2):
                x = x * self.w + y
                return x, self.linear(x)
        gm = lib.fx.symbolic_trace(M())
        t = lib.fx.Transformer(gm).transform()
        x = lib.ones(2)
        return (neutral(t.code), [bool((a - b).abs().max() == 0) for a, b in zip(t(x), gm(x))],
                [str(n.op) for n in t.graph.nodes])
    same(build)


def test_in_place_operators_are_augmented_assignments():
    def build(lib):
        g = lib.fx.Graph()
        a, b = g.placeholder("a"), g.placeholder("b")
        g.call_function(operator.imul, (a, b), {})
        g.output(a)
        gm = lib.fx.GraphModule({}, g)
        g2 = lib.fx.Graph()
        a, b = g2.placeholder("a"), g2.placeholder("b")
        g2.output(g2.call_function(operator.iadd, (a, b), {}))
        gm2 = lib.fx.GraphModule({}, g2)
        return gm(2, 3), neutral(gm.code), gm2(2, 3), neutral(gm2.code)
    assert same(build)[0] == 6


def test_deepcopy_of_a_tracer_and_of_a_self_referencing_module():
    def build(lib):
        def fn(x, y):
            return (x + y).relu().sin()
        tracer = lib.fx.Tracer()
        before = copy.deepcopy(tracer)
        tracer.trace(fn)
        after = copy.deepcopy(tracer)
        gm = lib.fx.symbolic_trace(fn)
        gm.meta["hello"] = gm
        copied = copy.deepcopy(gm)
        return (str(tracer.graph) == str(after.graph),
                getattr(before, "graph", None) is None, copied.meta["hello"] is copied)
    same(build)


class AddTorch(torch.nn.Module):        # module level: pickled by reference
    def forward(self, x):
        return x + x


class AddEmber(ember.nn.Module):
    def forward(self, x):
        return x + x


def test_pickle_keeps_unused_submodules_buffers_and_parameters():
    def build(lib):
        Add = AddTorch if lib is torch else AddEmber
        gm = lib.fx.symbolic_trace(Add())
        gm.add_submodule("foo", Add())
        gm.register_buffer("dummy_buffer", lib.empty(1))
        gm.register_parameter("dummy_parameter", lib.nn.Parameter(lib.empty(1)))
        loaded = pickle.loads(pickle.dumps(gm))
        return (hasattr(loaded, "foo"), [k for k, _ in loaded.named_buffers()],
                [k for k, _ in loaded.named_parameters()])
    same(build)


def _list_codegen(lib):
    class ListCodeGen(lib.fx.graph.CodeGen):
        def gen_fn_def(self, free_vars, maybe_return_annotation):
            return (f"\ndef forward(self, args_list: List[{lib.__name__}.Tensor])"
                    f"{maybe_return_annotation}:\n    {', '.join(free_vars)} = args_list")

        def additional_globals(self):
            return [("List", list)]

        def process_inputs(self, *inputs):
            assert len(inputs) == 1
            return inputs[0]
    return ListCodeGen


def test_custom_codegen_with_transformer_and_interpreter():
    def build(lib):
        def f(a, b):
            return a + b
        nf = lib.fx.symbolic_trace(f)
        nf.graph.set_codegen(_list_codegen(lib)())
        nf.recompile()
        vals = [lib.ones(2), lib.ones(2) * 2]
        bare = lib.fx.GraphModule({}, copy.deepcopy(nf.graph))
        bare.graph.set_codegen(lib.fx.graph.CodeGen())
        bare.recompile()
        transformed = lib.fx.Transformer(nf).transform()

        class ListOut(_list_codegen(lib)):
            def generate_output(self, output_args):
                return f"return list({repr(output_args)})"

            def process_outputs(self, outputs):
                return list(outputs)

        def f2(a, b):
            a = a + b
            b = a + b
            return a, b
        nf2 = lib.fx.symbolic_trace(f2)
        nf2.graph.set_codegen(ListOut())
        nf2.recompile()
        return (neutral(nf.code), nf(vals).tolist(),
                nf.graph.process_outputs(bare(*nf.graph.process_inputs(vals))).tolist(),
                transformed(vals).tolist(), neutral(transformed.code), neutral(nf2.code),
                [x.tolist() for x in lib.fx.Interpreter(nf2).run(vals)],
                [x.tolist() for x in nf2(vals)])
    same(build)


def _helper_multiply(a, b):
    return a * b


def test_proxy_deepcopy_with_and_without_a_tracer():
    def build(lib):
        class M(lib.nn.Module):
            def forward(self, x):
                return 2 * x

        class Named(lib.fx.Tracer):
            def __init__(self, name):
                super().__init__()
                self.name = name
        node = list(lib.fx.symbolic_trace(M()).graph.nodes)[-2]
        out = []
        for tracer in (None, Named("mytracer")):
            p = lib.fx.Proxy(node, tracer)
            node.proxy = p
            p2 = copy.deepcopy(p)
            out.append((isinstance(p2, lib.fx.Proxy), p2.node.name, p2.node is not node,
                        getattr(p2.tracer, "name", None)))
        return out
    same(build)


def test_traced_func_name_and_stack_traces():
    def build(lib):
        class Foo(lib.nn.Module):
            def forward(self, a, b):
                c = a + b
                c = _helper_multiply(a, c)
                return c

            def minus_forward(self, x, y):
                return x - y
        f = Foo()
        tracer = lib.fx.Tracer()
        tracer.record_stack_traces = True
        graph = tracer.trace(f)
        traces = "\n".join(n.meta.get("stack_trace", "") or "" for n in graph.nodes)
        gm = lib.fx.GraphModule(tracer.root, graph)
        transformed = lib.fx.Transformer(gm).transform()
        tracer.traced_func_name = "minus_forward"
        minus = lib.fx.GraphModule(f, tracer.trace(f))(lib.ones(1), lib.ones(1)).tolist()
        tracer.traced_func_name = "add_forward"
        return (traces.count("c = a + b"), traces.count("c = _helper_multiply(a, c)"),
                traces.count("return a * b"),
                ["test_fx_suite2_graph.py" in (n.stack_trace or "")
                 for n in transformed.graph.nodes if n.op not in ("placeholder", "output")],
                minus, outcome(lambda: tracer.trace(f)))
    same(build)


def test_node_and_graph_pickle_keep_types():
    def build(lib):
        g = lib.fx.Graph()
        n = g.placeholder("x")
        n.type = lib.Tensor
        node = pickle.loads(pickle.dumps(n))
        graph = pickle.loads(pickle.dumps(g))
        return node.type is lib.Tensor, node.type != node.target, \
            next(iter(graph.nodes)).type is lib.Tensor
    same(build)


def test_lineno_map_and_prologue_start():
    def build(lib):
        class M(lib.nn.Module):
            def forward(self, a, b):
                a = lib.sin(a)
                b = lib.cos(b)
                return a + b
        tracer = lib.fx.Tracer()
        graph = tracer.trace(M())
        gm = lib.fx.GraphModule(tracer.root, graph)
        first = (dict(gm._lineno_map), gm._prologue_start)
        gm.graph.on_generate_code(lambda _: (lambda code: ["print('hello!')\n", *code]))
        gm.recompile()
        return first, dict(gm._lineno_map), gm._prologue_start, neutral(gm.code)
    same(build)


def test_print_readable_with_an_inner_graph_module():
    def build(lib):
        class Inner(lib.nn.Module):
            def forward(self, x):
                return x + 1
        inner = lib.fx.symbolic_trace(Inner())

        class Outer(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.subgraph_0 = inner
        g = lib.fx.Graph()
        x = g.placeholder("x")
        g.output(g.call_function(lib.mul, (g.call_module("subgraph_0", (x,)), 2)))
        text = lib.fx.GraphModule(Outer(), g).print_readable(print_output=False)
        return [line for line in text.split("\n") if line != line.rstrip()], neutral(text)
    same(build)


def test_custom_use_filter_prepend_and_tuple_inputs():
    import gc
    import weakref

    def build(lib):
        g = lib.fx.Graph()
        x = g.placeholder("x")
        relu = g.call_function(lib.relu, (x,))
        neg = g.call_function(lib.neg, (relu,))
        g.output(neg)
        neg.replace_all_uses_with(relu, lambda user: user != neg)
        kept = neg in relu.users
        g2 = lib.fx.Graph()
        x2 = g2.placeholder("x")
        r2, n2 = g2.call_function(lib.relu, (x2,)), g2.call_function(lib.neg, (x2,))
        r2.prepend(n2)
        ref = weakref.ref(n2)
        g2.erase_node(n2)
        del g2, x2, r2, n2
        gc.collect()

        def first(x: tuple):
            return x[0]
        traced = pickle.loads(pickle.dumps(lib.fx.symbolic_trace(first)))
        return kept, ref() is None, neutral(traced.code), traced((lib.ones(2),)).tolist()
    same(build)


def test_type_expressions_in_listings_and_signatures():
    import typing

    def build(lib):
        listed = []
        for t in (list[float], typing.List[float], float | lib.Tensor | None,
                  typing.Optional[int], dict[str, int]):
            g = lib.fx.Graph()
            x = g.create_node("placeholder", "x")
            g.output(g.create_node("call_function", target=lib.relu, args=(x,), type_expr=t))
            listed.append(neutral(str(g)).split("\n")[2])

        class R(lib.nn.Module):
            def other(self, x: list[str]) -> list[str]:
                return x

            def forward(self, x: list[str], y: int | None = None) -> list[str]:
                return self.other(x)
        return listed, neutral(lib.fx.symbolic_trace(R())._code)
    same(build)
