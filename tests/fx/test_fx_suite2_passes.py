"""Pass behaviours from PyTorch's test/fx/test_subgraph_rewriter.py, test_matcher_utils.py,
test_dce_pass.py, test_pass_infra.py, test_fx_const_fold.py and test_fx_split.py, run as
the same user code against torch.fx (the oracle) and ember.fx and compared: generated code
text (library name neutralized), match counts and node maps, results, error kinds."""
import copy
import importlib
import operator

import pytest
import torch
import torch.fx

import ember
import ember.fx

from fx_suite2_common import neutral, same


def sub(lib, path):
    return importlib.import_module(lib.__name__ + path)


def rounded(t):
    return [round(v, 4) for v in t.reshape(-1).tolist()]


def wrapped_gemm_bias_mul(a, b, bias):
    lib = torch if isinstance(a, torch.Tensor) else ember
    lin_res = lib.nn.functional.linear(a, b, bias=bias)
    return lin_res, lin_res * a


for _lib in (torch, ember):
    _lib.fx.wrap("wrapped_gemm_bias_mul")


# --- replace_pattern: torch's rewriter cases ---------------------------------------------
def _single(lib):
    class M(lib.nn.Module):
        def forward(self, x):
            val = lib.neg(x) + lib.relu(x)
            return lib.add(val, val)

    def pattern(x):
        return lib.neg(x) + lib.relu(x)
    return M(), pattern, lambda x: lib.relu(x), (lib.ones(1, 3),)


def _same_pattern(lib):
    m, pattern, _, inputs = _single(lib)
    return m, pattern, pattern, inputs


def _multiple(lib):
    class M(lib.nn.Module):
        def forward(self, x, w1, w2):
            m1 = lib.cat([w1, w2]).sum()
            m2 = lib.cat([w1, w2]).sum()
            return x + lib.max(m1) + lib.max(m2)
    return (M(), lambda w1, w2: lib.cat([w1, w2]).sum(), lambda w1, w2: lib.stack([w1, w2]),
            (lib.ones(1, 3), lib.ones(1, 3), lib.ones(1, 3)))


def _argument_order(lib):
    class M(lib.nn.Module):
        def forward(self, x, y):
            return lib.mm(x, y)
    return M(), lambda x, y: lib.mm(x, y), lambda x, y: lib.mm(x, y), (lib.ones(3, 4),
                                                                       lib.ones(4, 5))


def _correct_output(lib):
    class M(lib.nn.Module):
        def forward(self, x, y):
            val = lib.neg(y) + lib.relu(x)
            return lib.add(val, val)
    return M(), lambda x: lib.relu(x), lambda x: lib.neg(x), (lib.ones(2), lib.ones(2))


def _traced_callables(lib):
    class M(lib.nn.Module):
        def forward(self, x):
            val = lib.neg(x) + lib.relu(x)
            return lib.add(val, val)

    class P(lib.nn.Module):
        def forward(self, x):
            return lib.neg(x) + lib.relu(x)

    class R(lib.nn.Module):
        def forward(self, x):
            return lib.sigmoid(x)
    return M(), lib.fx.symbolic_trace(P()), lib.fx.symbolic_trace(R()), (lib.zeros(2),)


def _entire_graph(lib):
    class M(lib.nn.Module):
        def forward(self, x):
            a = lib.neg(x)
            return lib.add(a, a)

    def pattern(x):
        a = lib.neg(x)
        return lib.add(a, a)

    def replacement(x):
        a = lib.sigmoid(x)
        return lib.cat([a, a])
    return M(), pattern, replacement, (lib.zeros(2),)


def _output_with_other_users(lib):
    class M(lib.nn.Module):
        def forward(self, x):
            y = lib.relu(x)
            return lib.neg(y) - y
    return M(), lambda x: lib.relu(x), lambda x: lib.sigmoid(x), (lib.zeros(2),)


def _consecutive(lib):
    def f(x):
        return lib.sigmoid(lib.sigmoid(lib.sigmoid(x)))
    return f, lambda x: lib.sigmoid(x), lambda x: lib.exp(x), (lib.zeros(2),)


def _overlapping(lib):
    def f(x):
        return lib.sigmoid(lib.sigmoid(lib.sigmoid(lib.sigmoid(x))))
    return f, lambda x: lib.sigmoid(lib.sigmoid(x)), lambda x: lib.neg(x), (lib.zeros(2),)


def _multiple_outputs(lib):
    def f(x):
        return lib.sigmoid(x) + lib.relu(x)
    return (f, lambda a: (lib.sigmoid(a), lib.relu(a)), lambda x: (lib.exp(x), lib.abs(x)),
            (lib.zeros(2),))


def _unused_args(lib):
    class M(lib.nn.Module):
        def forward(self, x, y, z):
            return x + y
    return M(), lambda x, y: x + y, lambda x, y: x - y, (lib.ones(1),) * 3


def _call_methods(lib):
    class M(lib.nn.Module):
        def forward(self, x):
            return x.dequantize().sigmoid().to(lib.float16)
    return M(), lambda x: x.dequantize().sigmoid().to(lib.float16), lambda x: x, (lib.zeros(2),)


def _kwargs_and_wrapped_replacement(lib):
    class M(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.w0 = lib.nn.Parameter(lib.ones(4, 4))
            self.b0 = lib.nn.Parameter(lib.ones(4))

        def forward(self, in0):
            lin_res = lib.nn.functional.linear(in0, self.w0, bias=self.b0)
            return in0 * lin_res + in0

    def pattern(a, b, bias):
        lin_res = lib.nn.functional.linear(a, b, bias=bias)
        return lin_res, a * lin_res

    def replacement(a, b, bias):
        lin_res, mul_res = wrapped_gemm_bias_mul(a, b, bias)
        return lin_res, mul_res
    return M(), pattern, replacement, (lib.ones(2, 4),)


def _submodules(lib):
    class M(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.sigmoid = lib.nn.Sigmoid()
            self.submod = lib.nn.ReLU()

        def forward(self, x):
            return self.submod(self.sigmoid(x + 1))

    class P(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.sigmoid = lib.nn.Sigmoid()
            self.submod = lib.nn.ReLU()

        def forward(self, x):
            return self.submod(self.sigmoid(x))

    class R(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.tanh = lib.nn.Tanh()
            self.submod = lib.nn.ReLU()

        def forward(self, x):
            return self.submod(self.tanh(x))
    return M(), P(), R(), (lib.zeros(2),)


def _attributes(lib):
    class M(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = lib.tensor([1])
            self.b = lib.tensor([2])

        def forward(self, x):
            return x + self.a - self.b

    class P(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = lib.tensor([1])

        def forward(self, x):
            return x + self.a

    class R(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.c = lib.tensor([3])

        def forward(self, x):
            return x - self.c
    return M(), P(), R(), (lib.zeros(1),)


@pytest.mark.parametrize("case", [
    _single, _same_pattern, _multiple, _argument_order, _correct_output, _traced_callables,
    _entire_graph, _output_with_other_users, _consecutive, _overlapping, _multiple_outputs,
    _unused_args, _call_methods, _kwargs_and_wrapped_replacement, _submodules, _attributes])
def test_replace_pattern_as_torch(case):
    def build(lib):
        root, pattern, replacement, inputs = case(lib)
        gm = lib.fx.symbolic_trace(root)
        matches = lib.fx.subgraph_rewriter.replace_pattern(gm, pattern, replacement)
        gm.graph.lint()
        out = gm(*inputs)
        outs = out if isinstance(out, tuple) else (out,)
        return (neutral(gm.code), [rounded(o) for o in outs], [type(m).__name__ for m in matches],
                [m.anchor.name for m in matches],
                [sorted((k.name, str(v)) for k, v in m.nodes_map.items()) for m in matches],
                [n for n, _ in gm.named_modules()],
                sorted(k for k in ("a", "b", "c") if hasattr(gm, k)))
    same(build)


def test_replace_pattern_with_filters_literals_and_callback():
    def build(lib):
        class M(lib.nn.Module):
            def forward(self, x, y):
                x = lib.add(x, 2).relu()
                z = x + 1
                return lib.add(x, z).relu()

        def pattern(x, num):
            return lib.add(x, num).relu()

        def replacement(x, num):
            return lib.mul(x, num)

        def second_is_scalar(match, original_graph, pattern_graph):
            ph = [n for n in pattern_graph.nodes if n.op == "placeholder"]
            return isinstance(match.nodes_map[ph[1]], (int, float))
        out = []
        for filters in (None, [second_is_scalar]):
            gm = lib.fx.symbolic_trace(M())
            res = lib.fx.subgraph_rewriter.replace_pattern_with_filters(gm, pattern,
                                                                        replacement, filters)
            out.append((len(res), [n.name for n in gm.graph.nodes if n.target == lib.mul],
                        [r.name for m in res for r in m.replacements], neutral(gm.code),
                        type(res[0]).__name__))
        gm = lib.fx.symbolic_trace(M())
        res = lib.fx.subgraph_rewriter.replace_pattern_with_filters(gm, pattern, replacement,
                                                                    ignore_literals=True)
        out.append((len(res), neutral(gm.code)))

        def f(x):
            return lib.relu(x) + lib.sigmoid(x)
        seen = []

        def callback(match, original_graph, pattern_graph):
            seen.append(sorted(n.name for n in match.nodes_map.values()))
            return lib.fx.symbolic_trace(lambda x: lib.neg(x)).graph
        gm = lib.fx.symbolic_trace(f)
        res = lib.fx.subgraph_rewriter.replace_pattern_with_filters(
            gm, lambda x: lib.relu(x), None, replacement_callback=callback)
        out.append((seen, neutral(gm.code), len(res)))
        return out
    same(build)


def test_subgraph_matcher_as_torch():
    def build(lib):
        Matcher = sub(lib, ".fx.passes.utils.matcher_utils").SubgraphMatcher

        class Large(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self._weight = lib.nn.Parameter(lib.ones(3, 3))
                self._bias = lib.nn.Parameter(lib.ones(3, 3))

            def forward(self, x):
                return lib.addmm(self._bias, x, self._weight)

        class Pattern(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self._weight_1 = lib.nn.Parameter(lib.ones(5, 5))
                self._bias_1 = lib.nn.Parameter(lib.ones(5, 5))

            def forward(self, x):
                return lib.addmm(self._bias_1, x, self._weight_1)
        trace = lambda f: lib.fx.symbolic_trace(f).graph  # noqa: E731
        out = [len(Matcher(trace(Pattern())).match(trace(Large())))]
        original = trace(lambda x, y: lib.reshape(x, [5, y.shape[0]]))
        out.append(len(Matcher(trace(lambda x, y, z: lib.reshape(x, [z, y.shape[0]])))
                       .match(original)))
        out.append(len(Matcher(trace(lambda x, y, z: lib.reshape(x, [z, y.shape[0], 3])))
                       .match(original)))
        plus_one, plus_two = trace(lambda x: x + 1), trace(lambda x: x + 2)
        out.append((len(Matcher(plus_two).match(plus_one)),
                    len(Matcher(plus_two, ignore_literals=True).match(plus_one))))

        def o3(x, y):
            a = lib.relu(x)
            b = lib.relu(y)
            return a + b, lib.relu(a)
        g3, relu = trace(o3), trace(lambda x: lib.relu(x))
        matches = Matcher(relu).match(g3)
        out.append(sorted(sorted((k.name, v.name) for k, v in m.nodes_map.items())
                          for m in matches))
        out.append([sorted(n.name for n in m.returning_nodes) for m in matches])
        out.append((len(Matcher(relu, match_output=True).match(g3)),
                    len(Matcher(relu, match_placeholder=True).match(g3))))
        out.append([[(k.name, v.name) for k, v in m.nodes_map.items()]
                    for m in Matcher(trace(lambda x: lib.relu(lib.relu(x)))).match(g3)])
        chain = trace(lambda x: lib.sigmoid(lib.sigmoid(lib.sigmoid(x))))
        two = trace(lambda x: lib.sigmoid(lib.sigmoid(x)))
        out.append((len(Matcher(two).match(chain)),
                    len(Matcher(two, remove_overlapping_matches=False).match(chain))))
        first = matches[0]
        out.append((sorted(a.name for a in first.anchors),
                    [n.name for n in first.placeholder_nodes], type(first).__name__))
        return out
    same(build)


def _dce(lib, m, leafs=(), custom=None):
    class T(lib.fx.Tracer):
        def is_leaf_module(self, mod, qualname):
            return type(mod) in leafs or super().is_leaf_module(mod, qualname)
    traced = lib.fx.GraphModule(m, T().trace(m))
    before = [n.name for n in traced.graph.nodes]
    changed = traced.graph.eliminate_dead_code(is_impure_node=custom) if custom \
        else traced.graph.eliminate_dead_code()
    traced.recompile()
    inputs = [lib.tensor([1.5])] * sum(n.op == "placeholder" for n in traced.graph.nodes)
    return (before, changed, [n.name for n in traced.graph.nodes], neutral(traced.code),
            lib.equal(m(*copy.deepcopy(inputs)), traced(*copy.deepcopy(inputs))))


def test_dead_code_elimination_cases():
    def build(lib):
        class Chain(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.attr_1 = lib.nn.Parameter(lib.tensor([-0.9]))

            def forward(self, x):
                a = x + 1
                b = a * 7
                c = a * self.attr_1
                return x + self.attr_1

        class DeadPlaceholderUser(lib.nn.Module):
            def forward(self, x, y):
                a = y + 2
                return x + 7

        class ReLUImpure(lib.nn.ReLU):
            _is_impure = True

        class ImpureModule(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.relu = ReLUImpure()

            def forward(self, a):
                r = self.relu(a)
                return a * 2

        class Assert(lib.nn.Module):
            def forward(self, a):
                lib._assert(lib.equal(a, a), "a must equal a")
                return a * 2

        class Custom(lib.nn.Module):
            def forward(self, a):
                b = a + 1
                c = lib.add(b, b)
                return a

        def custom(node):
            return node.is_impure() or node.target == lib.add
        return [_dce(lib, Chain()), _dce(lib, DeadPlaceholderUser()),
                _dce(lib, ImpureModule(), (ReLUImpure,)), _dce(lib, Assert()),
                _dce(lib, Custom(), custom=custom)]
    same(build)


def test_pass_manager_runs_checks_orders_and_reports():
    def build(lib):
        PM = sub(lib, ".fx.passes.infra.pass_manager")
        PB = sub(lib, ".fx.passes.infra.pass_base")

        def swap(src, dst):
            def rewrite(gm):
                modified = False
                for n in gm.graph.nodes:
                    if n.op == "call_function" and n.target == src:
                        n.target = dst
                        modified = True
                return PB.PassResult(gm, modified)
            return rewrite
        add_to_mul, mul_to_div = swap(operator.add, operator.mul), swap(operator.mul,
                                                                         operator.truediv)
        add_to_mul.__name__, mul_to_div.__name__ = "add_to_mul", "mul_to_div"

        class Nothing(PB.PassBase):
            def call(self, gm):
                return PB.PassResult(gm, False)

        def f(x):
            return x + 1
        res = PM.PassManager(passes=[add_to_mul, mul_to_div, Nothing()], steps=5)(
            lib.fx.symbolic_trace(f))
        out = [type(res).__name__, res.modified, neutral(res.graph_module.code),
               res.graph_module(lib.ones(1) * 4).tolist()]
        pm = PM.PassManager([mul_to_div, add_to_mul], constraints=[
            PM.this_before_that_pass_constraint(add_to_mul, mul_to_div)])
        try:
            pm.validate_constraints()
            out.append("valid")
        except RuntimeError:
            out.append("RuntimeError")
        unsolved = PM.PassManager([mul_to_div, add_to_mul], constraints=[
            PM.this_before_that_pass_constraint(add_to_mul, mul_to_div)])
        out.append(neutral(unsolved(lib.fx.symbolic_trace(f)).graph_module.code))
        pm.solve_constraints()
        out.append([p.__name__ for p in pm.passes])

        def no_div(gm):
            if any(n.target == operator.truediv for n in gm.graph.nodes):
                raise ValueError("no div allowed")
        checked = PM.PassManager([add_to_mul, mul_to_div], run_checks_after_each_pass=True)
        checked.add_checks(no_div)
        try:
            checked(lib.fx.symbolic_trace(f))
        except Exception as e:     # noqa: BLE001 - torch raises a bare Exception
            out.append((type(e).__name__, str(e), type(e.__cause__).__name__))
        wrapped = PM.pass_result_wrapper(lambda gm: None)(lib.fx.symbolic_trace(f))
        out.append((type(wrapped).__name__, wrapped.modified))
        return out
    same(build)


def test_const_fold_splits_and_runs_folding():
    def build(lib):
        CF = sub(lib, ".fx.experimental.const_fold")

        class M(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.attr_1 = lib.nn.Parameter(lib.tensor([[-0.9]]))
                self.attr_2 = lib.nn.Parameter(lib.tensor([[17.1]]))

            def forward(self, x, y):
                a = self.attr_1 + self.attr_1
                x = x - a
                return x * y + self.attr_2

        class Nothing(lib.nn.Module):
            def forward(self, x):
                return x + 1

        class Two(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.a = lib.nn.Parameter(lib.ones(2))
                self.b = lib.nn.Parameter(lib.ones(2) * 2)

            def forward(self, x):
                return x + self.a * 2, x - (self.b + self.a)
        mod = M()
        folded = CF.split_const_subgraphs(mod)
        x, y = lib.tensor([[-0.9]]), lib.tensor([[2.0]])
        const = folded.const_subgraph_module
        nothing = CF.split_const_subgraphs(Nothing())
        two = CF.split_const_subgraphs(Two())
        two.run_folding()
        return (type(folded).__name__, neutral(folded.code), rounded(const().detach()),
                rounded(folded(x, y).detach()), rounded(mod(x, y).detach()),
                nothing.const_subgraph_module is None, neutral(nothing.code), neutral(two.code),
                [t.tolist() for t in two(lib.zeros(2))])
    with pytest.warns(UserWarning):     # torch's const_fold warns about its own get_attr
        same(build)


def test_split_module_orders_and_names():
    def build(lib):
        SM = sub(lib, ".fx.passes.split_module")

        class M(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = lib.nn.Linear(2, 2)
                self.register_buffer("b", lib.ones(2))

            def forward(self, x, y):
                a = self.lin(x)
                b = a.relu() + self.b
                return (b * y).sum(), a
        m = M()
        gm = lib.fx.symbolic_trace(m)
        parts = {"lin": 0, "relu": 0, "add": 1, "b": 1, "mul": 2, "sum_1": 2}
        by_name = lambda n: parts.get(n.name, 0)  # noqa: E731
        qualnames = {}
        plain = SM.split_module(gm, m, by_name)
        ordered = SM.split_module(gm, m, by_name, qualname_map=qualnames,
                                  keep_original_order=True)
        named = SM.split_module(gm, m, by_name, keep_original_node_name=True)
        x, y = lib.ones(1, 2), lib.ones(1, 2)
        return (neutral(plain.code), [neutral(getattr(plain, f"submod_{i}").code) for i in range(3)],
                neutral(ordered.code), qualnames,
                [neutral(getattr(named, f"submod_{i}").code) for i in range(3)],
                [bool((s(x, y)[0] - gm(x, y)[0]).abs() < 1e-5) for s in (plain, ordered, named)])
    same(build)


def test_capability_partitioner_keeps_graph_order_across_runs():
    def build(lib):
        Partitioner = sub(lib, ".fx.passes.infra.partitioner").CapabilityBasedPartitioner
        OperatorSupport = sub(lib, ".fx.passes.operator_support").OperatorSupport

        class Everything(OperatorSupport):
            def is_node_supported(self, submodules, node):
                return True

        class M(lib.nn.Module):
            def forward(self, x):
                y = lib.add(x, x)
                return lib.add(y, x)

        def propose():
            gm = lib.fx.symbolic_trace(M())
            parts = Partitioner(gm, Everything(),
                                allows_single_node_partition=True).propose_partitions()
            return [[n.name for n in p.nodes] for p in parts]
        first = propose()
        return first, all(propose() == first for _ in range(3))
    same(build)
