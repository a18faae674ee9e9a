"""Tracing behaviours from PyTorch's test/test_fx.py (TestFX), run as the same user code
against torch.fx (the oracle) and ember.fx: each `build(lib)` is written once and both
results are compared — generated code text (with the library name neutralized), node
lists, results, and error kinds and wording."""
import contextlib
import functools
import math
import operator
import pickle
from collections import namedtuple
from math import sqrt
from typing import List, NamedTuple, Tuple

import pytest
import torch
import torch.fx

import ember
import ember.fx

from fx_suite2_common import neutral, same, outcome

Point = namedtuple("Point", ["x", "y"])


def a_lifted_leaf(a, b):
    return a[0] + a[1] + b


def a_lifted_leaf2(a, b):
    return a[0] + a[1] + b


def wrapped_via_decorator(a):
    return a + 1


def fx_int(x):
    return int(x)


def fx_int_x2(x):
    return int(x) * 2


for _lib in (torch, ember):
    _lib.fx.wrap("a_lifted_leaf")
    _lib.fx.wrap(a_lifted_leaf2)
wrapped_via_decorator = ember.fx.wrap(torch.fx.wrap(wrapped_via_decorator))
_REAL = (a_lifted_leaf, a_lifted_leaf2, wrapped_via_decorator)


def test_wrap_by_name_and_by_function_records_a_leaf_call():
    def build(lib):
        def by_name(y):
            return a_lifted_leaf((4, y), 3) + a_lifted_leaf((3, 4), 5) + a_lifted_leaf((y, y), y)

        def by_fn(y):
            return a_lifted_leaf2((4, y), 3) + a_lifted_leaf2((3, 4), 5) + a_lifted_leaf2((y, y), y)
        m, m2 = lib.fx.symbolic_trace(by_name), lib.fx.symbolic_trace(by_fn)
        return neutral(m.code), m(2), neutral(m2.code), m2(2)
    same(build)
    assert (a_lifted_leaf, a_lifted_leaf2, wrapped_via_decorator) == _REAL


def test_wrapped_decorator_survives_retracing():
    def build(lib):
        def to_trace(y):
            return wrapped_via_decorator(y)
        m = lib.fx.symbolic_trace(to_trace)
        retraced = lib.fx.symbolic_trace(m)
        transformed = lib.fx.Transformer(m).transform()
        return (neutral(m.code), m(0), neutral(retraced.code), retraced(0), transformed(0),
                "wrapped_via_decorator" in transformed.code,
                hasattr(wrapped_via_decorator, "__fx_already_patched"))
    same(build)


def test_autowrap_functions_and_modules():
    def build(lib):
        class A(lib.nn.Module):
            def forward(self, x):
                return fx_int(x.shape[0] / 2) + fx_int_x2(x.shape[0] / 2)

        tracer = lib.fx.Tracer(autowrap_functions=(fx_int, fx_int_x2))
        graph = tracer.trace(A())
        gm = lib.fx.GraphModule(tracer.root, graph, "test")

        def f(x):
            return math.sqrt(x.shape[0]) + math.floor(x.shape[1] / 2) + x
        tracer2 = lib.fx.Tracer(autowrap_modules=(math,))
        graph2 = tracer2.trace(f)
        gm2 = lib.fx.GraphModule(tracer2.root, graph2)
        refused = outcome(lambda: lib.fx.Tracer(autowrap_modules=()).trace(f))
        return (neutral(gm.code), gm(lib.ones(4)), type(gm).__name__, neutral(gm2.code),
                gm2(lib.ones(4, 3)).tolist(), "TypeError" in refused[0])
    same(build)


def test_sqrt_from_math_and_imported_name():
    def build(lib):
        class S1(lib.nn.Module):
            def forward(self, x):
                return sqrt(x.size(0))

        class S2(lib.nn.Module):
            def forward(self, x):
                return math.sqrt(x.size(0))

        class S3(lib.nn.Module):
            def forward(self, x):
                return x + math.sqrt(2) + sqrt(2)
        out = []
        for M in (S1, S2, S3):
            t = lib.fx.symbolic_trace(M())
            t.graph.lint()
            out.append((neutral(t.code), str(t(lib.zeros(8)))[:30]))
        return out
    same(build)
    assert math.sqrt is sqrt


def test_proxy_refusals_name_bool_len_and_iteration():
    def build(lib):
        def branch(x):
            if x.sum() > 0:
                return x
            return -x

        def length(x):
            return len(x)

        def loop(x):
            return [i for i in x]

        def star_star(x):
            return dict(**x)

        def two(x):
            a, b = x
            return a
        out = [outcome(lambda f=f: lib.fx.symbolic_trace(f)) for f in
               (branch, length, loop, star_star)]
        # ember adds which value was refused (and where) after torch's wording
        out = [(k, m[:70]) for k, m in out]
        unpacked = lib.fx.symbolic_trace(two)
        return [(("ValueError" in k or "RuntimeError" in k), m) for k, m in out], \
            neutral(unpacked.code)
    same(build)


def test_tracer_to_bool_iter_and_keys_hooks():
    def build(lib):
        class T(lib.fx.Tracer):
            def to_bool(self, obj):
                return True

            def iter(self, obj):
                return iter([obj[0], obj[1]])

            def keys(self, obj):
                return ["a", "b"]

        def branch(x):
            if x.sum() > 0:
                return x
            return -x

        def unpack(x):
            a, b = x
            return a + b

        def star_star(x):
            def g(a, b):
                return a * b
            return g(**x)
        return [neutral(lib.fx.GraphModule(lib.nn.Module(), T().trace(f)).code)
                for f in (branch, unpack, star_star)]
    same(build)


def test_unpacking_a_proxy_into_a_call_is_refused():
    def build(lib):
        class SomeArgs(lib.nn.Module):
            def forward(self, a, b):
                return a

        class UnpacksList(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.sa = SomeArgs()

            def forward(self, x: list):
                return self.sa(*x)

        class UnpacksDict(UnpacksList):
            def forward(self, x: dict):
                return self.sa(**x)
        out = []
        for M in (UnpacksList, UnpacksDict):
            try:
                lib.fx.symbolic_trace(M())
                out.append("no error")
            except lib.fx.proxy.TraceError as e:
                out.append("Proxy object cannot be iterated." in str(e))
        return out
    assert same(build) == [True, True]


def test_leaf_modules_and_tracer_hooks():
    def build(lib):
        class Sub(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = lib.nn.Linear(2, 2)

            def forward(self, x):
                return self.lin(x).relu()

        class M(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.sub = Sub()
                self.act = lib.nn.ReLU()
                self.seq = lib.nn.Sequential(lib.nn.ReLU(), lib.nn.ReLU())

            def forward(self, x):
                return self.seq(self.act(self.sub(x)))

        class SubLeaf(lib.fx.Tracer):
            def is_leaf_module(self, m, qualname):
                return qualname == "sub" or super().is_leaf_module(m, qualname)

        class Recording(lib.fx.Tracer):
            def __init__(self):
                super().__init__()
                self.seen = []

            def call_module(self, m, forward, args, kwargs):
                self.seen.append((self.path_of_module(m), type(m).__name__, len(args)))
                return super().call_module(m, forward, args, kwargs)
        m = M()
        rec = Recording()
        codes = [neutral(lib.fx.GraphModule(m, g).code)
                 for g in (lib.fx.Tracer().trace(m), SubLeaf().trace(m), rec.trace(m))]
        base = lib.fx.Tracer()
        return codes, rec.seen, [base.is_leaf_module(x, "") for x in
                                 (m.act, m.sub, m.seq, lib.nn.Linear(1, 1))]
    same(build)


def test_graph_modules_as_leaf_submodules_keep_their_call():
    def build(lib):
        class A(lib.nn.Module):
            def forward(self, t):
                return t + t

        class B(lib.nn.Module):
            def __init__(self):
                super(type(self), self).__init__()
                self.calling = False
                self.called = False

            def forward(self, t):
                if self.calling:
                    return t - t
                return t + t

            def __call__(self, *args):
                self.called = True
                self.calling = True
                return super(type(self), self).__call__(*args)

        class M(lib.nn.Module):
            def __init__(self, a, b):
                super().__init__()
                self.a = a
                self.b = b

            def forward(self, t):
                return self.a(t) + self.b(t)

        class AllLeaves(lib.fx.Tracer):
            def is_leaf_module(self, module, name):
                return True

        class LeavesButB(lib.fx.Tracer):
            def is_leaf_module(self, module, name):
                return "b" not in name
        a = lib.fx.symbolic_trace(A())
        m = M(a, B())
        gm = lib.fx.GraphModule(m, LeavesButB().trace(m))
        first = (isinstance(gm.get_submodule("a"), lib.fx.GraphModule), hasattr(gm, "b"),
                 neutral(gm.code))
        b = B()
        m = M(lib.fx.symbolic_trace(A()), b)
        gm = lib.fx.GraphModule(m, AllLeaves().trace(m))
        return first, neutral(gm.code), b.called, gm.get_submodule("b").called
    same(build)


def test_param_shapes_constant_gives_concrete_shapes():
    def build(lib):
        class M(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.w = lib.nn.Parameter(lib.ones(3, 4))

            def forward(self, x):
                if self.w.shape[0] == 3 and self.w.size()[1] == 4 and self.w.dim() == 2 \
                        and self.w.ndim == 2 and self.w.numel() == 12:
                    return x + self.w
                return x
        g = lib.fx.Tracer(param_shapes_constant=True).trace(M())
        refused = outcome(lambda: lib.fx.Tracer().trace(M()))
        return neutral(lib.fx.GraphModule(M(), g).code), "ValueError" in refused[0], \
            refused[1].split(" (")[0]
    same(build)


def test_concrete_args_values_none_and_ph():
    def build(lib):
        def f(x, y=None, flag=True, mode="a"):
            if y is None:
                y = x
            if flag and mode == "a":
                return x + y
            return x - y
        gm = lib.fx.symbolic_trace(f, concrete_args={"y": None, "flag": True, "mode": "a"})
        gm2 = lib.fx.symbolic_trace(f, concrete_args={"x": lib.fx.PH, "flag": False})
        wrong = outcome(lambda: gm(lib.ones(2), None, False))
        return (neutral(gm.code), gm(lib.ones(2)).tolist(), neutral(gm2.code),
                [str(n.op) for n in gm2.graph.nodes], wrong)
    same(build)


def test_partial_trace_asserts_the_specialized_value():
    def build(lib):
        class Foo(lib.nn.Module):
            def forward(self, x, y):
                if y:
                    return 2 * x
                return x
        on = lib.fx.symbolic_trace(Foo(), concrete_args={"y": True})
        off = lib.fx.symbolic_trace(Foo(), concrete_args={"y": False})
        out = [on(3, True), off(3, False), outcome(lambda: on(3, False))[0],
               outcome(lambda: off(3, True))[0]]

        def f_higher(a, f):
            return f(a)
        nf = lib.fx.symbolic_trace(f_higher, concrete_args={"f": lambda x: x * 2})
        return out, nf(3, lambda x: x * 2), neutral(on.code), neutral(nf.code)
    with pytest.warns(UserWarning):
        same(build)


def test_custom_ph_base_tags_its_placeholder():
    def build(lib):
        PHBase = lib.fx._symbolic_trace.PHBase

        class TagPH(PHBase):
            def __init__(self, tag):
                super().__init__()
                self.tag = tag

        def f(x, y):
            return x * y
        gm = lib.fx.symbolic_trace(f, concrete_args={"x": lib.fx.PH, "y": TagPH("hello")})
        ph = [n for n in gm.graph.nodes if n.op == "placeholder"]
        keyed = lib.fx._symbolic_trace.PHWithMeta(ph_key="k")
        gm2 = lib.fx.symbolic_trace(f, concrete_args={"x": keyed, "y": lib.fx.PH})
        return (neutral(gm.code), [(n.name, getattr(n, "tag", None)) for n in ph],
                [getattr(n, "ph_key", None) for n in gm2.graph.nodes])
    same(build)


def test_pytree_concrete_args_retrace_and_pickle():
    def build(lib):
        PH = lib.fx.PH
        pytree = __import__(lib.__name__ + ".utils._pytree", fromlist=["tree_map"])

        def f_sum(x):
            return sum(x)

        def f_sum_dict(x):
            out = 0
            for k, v in x.items():
                out += v
            return out

        def f_dict_list_map(x):
            new = {}
            for k, v in x.items():
                new[k] = [i + 1 for i in v]
            return new

        def f_dict_add(x):
            return x["a"] + sum(x["z"])

        def f_namedtuple_add(x):
            return x.x + x.y
        cases = [(f_sum, [PH, PH, PH]), (f_sum, []), (f_sum_dict, {"a": PH, "b": PH, "c": PH}),
                 (f_dict_list_map, {"a": (PH, PH), "b": [PH], "c": []}),
                 (f_dict_list_map, {5: (PH, PH, PH)}), (f_dict_add, {"a": PH, "z": (PH, PH, PH)}),
                 (f_dict_add, {"a": PH, "z": []}), (f_namedtuple_add, Point(PH, PH))]
        out = []
        for f, inp in cases:
            val = pytree.tree_map(lambda x: lib.ones(3) if x == PH else x, inp)
            nf = lib.fx.symbolic_trace(f, concrete_args={"x": inp})
            retraced = lib.fx.symbolic_trace(nf)
            again = lib.fx.symbolic_trace(retraced, concrete_args={"x": inp})
            loaded = pickle.loads(pickle.dumps(again))
            results = {str(m(val)) for m in (nf, retraced, again, loaded)}
            out.append((len(results), neutral(nf.code), neutral(retraced.code),
                        sum(n.op == "placeholder" for n in retraced.graph.nodes)))

        def choose(b, a):
            if b:
                return a["a"]
            return a["z"]
        inp = {"a": {"a": PH, "z": PH}, "b": True}
        nf = lib.fx.symbolic_trace(choose, concrete_args=inp)
        val = pytree.tree_map(lambda x: lib.ones(3) if x == PH else x, inp)
        out.append((neutral(nf.code), nf(**val).tolist(), lib.fx.symbolic_trace(nf)(**val).tolist()))
        return out
    same(build)


def test_named_tuples_are_built_by_a_node():
    def build(lib):
        class N(lib.nn.Module):
            def forward(self, x):
                return Point(x, x + 1)
        t = lib.fx.symbolic_trace(N())
        r = t(lib.ones(1))
        g = lib.fx.Graph()
        p = lib.fx.Proxy(g.placeholder("x"))
        g.output(Point(p, p).x.node if False else (p + 1).node)
        return neutral(t.code), type(r).__name__, r.y.tolist(), [str(n.op) for n in t.graph.nodes]
    same(build)


def test_proxyable_classes_literal_dynamic_and_control_flow():
    def build(lib):
        class TensorPair(metaclass=lib.fx.ProxyableClassMeta):
            def __init__(self, left, right):
                self.left, self.right = left, right

            def add(self, other):
                return TensorPair(self.left + other.left, self.right + other.right)

            def mul(self, other):
                return TensorPair(self.left * other.left, self.right * other.right)

        class ZeroTensor(metaclass=lib.fx.ProxyableClassMeta):
            def __init__(self, inp):
                if inp.sum() == 0:
                    self.is_zero = True
                    self.tensor = lib.tensor([])
                else:
                    self.is_zero = False
                    self.tensor = inp

        def use_literal(x: TensorPair):
            return x.add(TensorPair(lib.zeros(2), lib.zeros(2))).mul(x)

        def use_ctor(x: TensorPair, y):
            return x.add(TensorPair(y, y)).mul(x)

        def use_zero(x, y):
            return ZeroTensor(x + y)
        x = TensorPair(lib.ones(2) * 2, lib.ones(2) * 3)
        lit, ctor = lib.fx.symbolic_trace(use_literal), lib.fx.symbolic_trace(use_ctor)
        zero = lib.fx.symbolic_trace(use_zero)
        a, b = lit(x), ctor(x, lib.ones(2))
        return (a.left.tolist(), a.right.tolist(), b.left.tolist(),
                [(str(n.op), n.name, str(n.target)) for n in lit.graph.nodes if n.op == "get_attr"],
                [str(n.op) for n in ctor.graph.nodes],
                zero(lib.ones(2), lib.ones(2)).is_zero, zero(lib.ones(2), -lib.ones(2)).is_zero)
    same(build)


def test_fx_create_arg_protocol_with_a_leaf():
    def build(lib):
        class CustomArgObject:
            def __init__(self, x, y):
                self.x = x
                self.y = y

            def __fx_create_arg__(self, tracer):
                return tracer.create_node("call_function", CustomArgObject,
                                          args=(tracer.create_arg(self.x),
                                                tracer.create_arg(self.y)), kwargs={})

        class Leaf(lib.nn.Module):
            def forward(self, o):
                for x in o.x:
                    o.y += x
                return o.y

        class Root(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.inner = Leaf()

            def forward(self, x, y):
                return self.inner(CustomArgObject(x, y))

        class T(lib.fx.Tracer):
            def is_leaf_module(self, m, qualname):
                return type(m) is Leaf
        m = Root()
        return neutral(lib.fx.GraphModule(m, T().trace(m)).code)
    same(build)


def test_tensor_constants_attributes_and_getattr_names():
    def build(lib):
        val = lib.tensor(5)

        def twice(x):
            return x + val + val
        val2 = lib.tensor(5)

        def fresh(x):
            v = lib.tensor(5)
            return x + v + val2

        class TA(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.tensor = lib.ones(3, 4)

        class Wrapper(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.ta = TA()

            def forward(self, a):
                return a.foo.bar.baz, self.ta.tensor + 1

        class Direct(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.b = lib.nn.Parameter(lib.rand(4, 3))

            def forward(self, x):
                return self.b, self.b.t(), self.b.view(12)
        t1, t2 = lib.fx.symbolic_trace(twice), lib.fx.symbolic_trace(fresh)
        w, d = lib.fx.symbolic_trace(Wrapper()), lib.fx.symbolic_trace(Direct())
        tracer = lib.fx.Tracer()
        g = tracer.trace(fresh)           # a Tracer's root holds the constants it stored
        via_root = lib.fx.GraphModule(tracer.root, g)
        return ([(str(n.op), str(n.target)) for n in t1.graph.nodes if n.op == "get_attr"],
                neutral(t2.code), t2(lib.ones(1)).tolist(), via_root(lib.ones(1)).tolist(),
                neutral(w.code), [(n.name, str(n.target)) for n in d.graph.nodes])
    same(build)


def test_default_args_and_literal_returns():
    def build(lib):
        class M1(lib.nn.Module):
            def forward(self, y=1):
                return y

        class M2(lib.nn.Module):
            def forward(self, y=1, z=2):
                return y + z

        class M3(lib.nn.Module):
            def forward(self, x, y=1):
                return x + y

        class M4(lib.nn.Module):
            def forward(self):
                return "foo"
        g = [lib.fx.symbolic_trace(M()) for M in (M1, M2, M3, M4)]
        return ([neutral(x.code) for x in g], g[0](), g[0](3), g[1](), g[1](3), g[1](3, 4),
                g[2](2), g[2](2, 3), g[3]())
    same(build)


def test_annotations_in_the_generated_signature():
    def build(lib):
        class A:
            def __call__(self, x):
                return lib.add(x, x)

        class R(lib.nn.Module):
            def other(self, x: List[str]) -> List[str]:
                return x

            def forward(self, x: List[str]) -> List[str]:
                return self.other(x)

        class E(lib.nn.Module):
            def forward(self, x: Tuple[()], y: Tuple[str, Tuple[()]]):
                return "foo"

        class M(lib.nn.Module):
            def forward(self, x: List[lib.Tensor], a: A) -> lib.Tensor:
                return a(x[0])
        r, e, m = (lib.fx.symbolic_trace(X()) for X in (R, E, M))
        return neutral(r.code), neutral(e.code), e((), ("bar", ())), neutral(m.code), \
            m([lib.ones(1)], A()).tolist()
    same(build)


def test_wrapped_forward_and_context_manager_decorators():
    def build(lib):
        def wrap_with_relu(fn):
            @functools.wraps(fn)
            def wrapper(*args, **kwargs):
                return lib.relu(fn(*args, **kwargs))
            return wrapper

        @contextlib.contextmanager
        def do_nothing():
            yield

        class Foo(lib.nn.Module):
            @wrap_with_relu
            def forward(self, x, w):
                return lib.matmul(x, w)

        class M(lib.nn.Module):
            @do_nothing()
            def forward(self, x):
                return lib.relu(x)
        return neutral(lib.fx.symbolic_trace(Foo()).code), neutral(lib.fx.symbolic_trace(M()).code)
    same(build)


def test_snake_case_names_of_module_dict_children():
    def build(lib):
        class M(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.activations = lib.nn.ModuleDict([
                    ["snake_case", lib.nn.ReLU()], ["PascalCase", lib.nn.LeakyReLU()],
                    ["ALL_CAPS", lib.nn.PReLU()]])

            def forward(self, x):
                a = self.activations
                return a["snake_case"](x), a["PascalCase"](x), a["ALL_CAPS"](x)
        return [(n.name, n.target) for n in lib.fx.symbolic_trace(M()).graph.nodes]
    same(build)


def test_special_floats_ellipsis_and_negative_constants_in_code():
    def build(lib):
        class M(lib.nn.Module):
            def forward(self, x, y):
                return x + y[:, 1:10, ...]

        class F(lib.nn.Module):
            def forward(self, x):
                return x + float("inf"), x + float("-inf"), x + float("nan"), x + -1, -2.5 - x

        g = lib.fx.Graph()
        x = g.create_node("placeholder", "x")
        b = g.create_node("call_function", operator.add, (x, float("inf")), {}, name="inf")
        c = g.create_node("call_function", operator.add, (x, float("nan")), {}, name="nan")
        g.output((b, c))
        gm = lib.fx.GraphModule(lib.nn.Module(), g)
        f = lib.fx.symbolic_trace(F())
        return (neutral(lib.fx.symbolic_trace(M()).code), neutral(f.code),
                str(f(lib.ones(1))), neutral(gm.code), str(gm(lib.ones(1))))
    same(build)


def test_negative_base_of_a_power_is_parenthesized():
    # torch.fx writes `-1 ** x`, which Python reads as -(1 ** x); ember writes (-1) ** x
    def f(x):
        return (-1) ** x
    gm = ember.fx.symbolic_trace(f)
    assert "(-1) ** x" in gm.code
    assert gm(ember.tensor([2.0, 3.0])).tolist() == [1.0, -1.0]


def test_magic_method_calls_are_named_without_underscores():
    def build(lib):
        class A:
            def __call__(self, x):
                return x

        class M(lib.nn.Module):
            def forward(self, x, a):
                return a(x)
        return [n.name for n in lib.fx.symbolic_trace(M()).graph.nodes]
    assert same(build) == ["x", "a", "call", "output"]


def test_enum_members_reach_a_leaf_as_constants():
    import enum

    class Foo(enum.Enum):
        A = 1
        B = 2

    def build(lib):
        def leaf_fn(arr, enum_val):
            arr.append(enum_val)
            return arr[-1].value

        def foo(x):
            return leaf_fn(x, Foo.A)
        traced = lib.fx.symbolic_trace(foo)
        return foo([]), traced([]), neutral(traced.code)
    same(build)


def test_placeholder_metadata_and_tags_from_ph_subclasses():
    def build(lib):
        PHWithMeta = lib.fx._symbolic_trace.PHWithMeta
        PHBase = lib.fx._symbolic_trace.PHBase

        def f_sum(a: int, b: int) -> int:
            return a + b

        def f_dict(a):
            return a["f1"] == a["f2"]
        g1 = lib.fx.symbolic_trace(f_sum, concrete_args={"a": PHWithMeta(ph_key="a"),
                                                         "b": PHWithMeta(ph_key="b")})
        g2 = lib.fx.symbolic_trace(f_dict, concrete_args={
            "a": {"f1": PHWithMeta(ph_key="f1"), "f2": PHWithMeta(ph_key="f2")}})

        class Tagging(lib.fx.Tracer):
            def create_node(self, kind, target, args, kwargs, name=None, type_expr=None):
                n = super().create_node(kind, target, args, kwargs, name)
                n.tag = "foo"
                return n

        class PHWithTag(PHBase):
            def __init__(self, tag):
                super().__init__()
                self.tag = tag

        class PHTest(PHBase):
            pass
        g = Tagging().trace(f_sum, concrete_args={"a": PHWithTag(tag="bar"),
                                                  "b": PHWithTag(tag="bar")})
        summed = lib.fx.symbolic_trace(lambda x: sum(x),
                                       concrete_args={"x": [PHTest(), PHTest(), PHTest()]})
        return ([(n.name, getattr(n, "ph_key", None)) for n in g1.graph.nodes],
                [(n.name, getattr(n, "ph_key", None)) for n in g2.graph.nodes],
                [n.tag for n in g.nodes], neutral(g1.code), neutral(summed.code),
                summed([lib.ones(1)] * 3).tolist())
    same(build)


Pt = namedtuple("Pt", ["x", "y"])


def wrapped_named_tup(p1, *, p2):
    return p1.x + p2.y


def _decorator(f):
    @functools.wraps(f)
    def wrapper_inside_decorator(*args, **kwargs):
        return f(*args, **kwargs)
    return wrapper_inside_decorator


@_decorator
def wrapped_decorated_fn(x):
    return x


for _lib in (torch, ember):
    _lib.fx.wrap(wrapped_named_tup)
wrapped_decorated_fn = ember.fx.wrap(torch.fx.wrap(wrapped_decorated_fn))


def test_generated_forward_names_the_traced_file():
    def build(lib):
        class M(lib.nn.Module):
            def forward(self, a):
                return a * 2
        return "test_fx_suite2_tracing.py" in lib.fx.symbolic_trace(M()).forward.__code__.co_filename
    assert same(build)


def test_star_args_with_concrete_tuple_and_self_in_star_args():
    def build(lib):
        class T(lib.nn.Module):
            def forward(self, *args, **kwargs):
                return args[0] + args[1]

        class NoSelf(lib.nn.Module):
            def forward(*args, **kwargs):  # noqa: N805
                return lib.relu(args[1])

        class Max(lib.nn.Module):
            def forward(self, A):
                m, idx = lib.max(A, 0)
                return m + 1, idx + 1

        class Mixed(lib.nn.Module):
            def forward(self, A, b=4, *args, c=5, **kwargs):
                return A + 1 + args[0] + kwargs["3"]
        gm = lib.fx.symbolic_trace(T(), concrete_args=(lib.fx.PH, lib.fx.PH))
        gm.graph.lint()
        mx = lib.fx.symbolic_trace(Max())
        return (neutral(gm.code), gm(lib.ones(1), lib.ones(1)).tolist(),
                outcome(lambda: lib.fx.symbolic_trace(NoSelf())), neutral(mx.code),
                [v.tolist() for v in mx(lib.tensor([[1.0, 5.0], [3.0, 2.0]]))],
                neutral(lib.fx.symbolic_trace(Mixed()).code))
    same(build)


def test_bitwise_dict_and_constant_matmul_programs():
    def build(lib):
        class Bits(lib.nn.Module):
            def forward(self, x):
                return x << 3, x >> 3, x & x, x | x

        class D(lib.nn.Module):
            def forward(self, d):
                return d["3"].relu(), {"4": d["3"].neg()}
        const = lib.ones(3)

        def mm(x):
            return x @ const, const @ x
        a, b, c = lib.fx.symbolic_trace(Bits()), lib.fx.symbolic_trace(D()), lib.fx.symbolic_trace(mm)
        return (neutral(a.code), [t.tolist() for t in a(lib.tensor([1, 2, 3]))], neutral(b.code),
                b({"3": -lib.ones(2)})[1]["4"].tolist(), neutral(c.code),
                [t.tolist() for t in c(lib.ones(3))])
    same(build)


def test_a_tracer_refusing_in_place_calls():
    def build(lib):
        class NoMutation(lib.fx.Tracer):
            def create_node(self, kind, target, args, kwargs, name=None, type_expr=None):
                shown = target if isinstance(target, str) else target.__name__
                if shown[-1] == "_":
                    raise RuntimeError("In-place operations are not supported")
                return super().create_node(kind, target, args, kwargs, name)

        class Method(lib.nn.Module):
            def forward(self, x):
                x.add_(3.0)
                return x

        class Function(lib.nn.Module):
            def forward(self, x):
                lib.log_(x)
                return x

        class OnAConstant(lib.nn.Module):
            def forward(self, x):
                y = lib.ones(3, 4)
                y.add_(x)
                return x
        return [outcome(lambda M=M: NoMutation().trace(M())) for M in
                (Method, Function, OnAConstant)]
    same(build)


def test_wrapped_functions_with_keyword_only_and_decorated():
    def build(lib):
        def f(x):
            p = Pt(x, x)
            return wrapped_named_tup(p, p2=p)

        def g(x):
            return wrapped_decorated_fn(x)
        a, b = lib.fx.symbolic_trace(f), lib.fx.symbolic_trace(g)
        return neutral(a.code), a(lib.ones(1)).tolist(), neutral(b.code), b(lib.ones(1)).tolist()
    same(build)


class PairRepr(NamedTuple):
    x: object
    y: object

    def _custom_fx_repr_fn(self):
        fmt = ember.fx.node._format_arg if isinstance(self.x, ember.fx.Node) or \
            isinstance(self.y, ember.fx.Node) else torch.fx.node._format_arg
        return f"Pair(x={fmt(self.x)}, y={fmt(self.y)})"


def test_dataclass_and_named_tuple_results_are_built_by_nodes():
    from dataclasses import dataclass

    @dataclass
    class MyOutput:
        foo: object
        bar: object

    class NT(NamedTuple):
        foo: object
        bar: object

    def build(lib):
        class R(lib.nn.Module):
            def forward(self, d):
                return MyOutput(foo=d + d, bar=d * 3)

        class Calls(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.m = R()

            def forward(self, x):
                tmp = self.m(x)
                return MyOutput(foo=tmp.foo, bar=tmp.bar)

        class RN(lib.nn.Module):
            def forward(self, d):
                return NT(foo=d, bar=d)
        out = []
        for m in (R(), Calls(), RN()):
            gm = lib.fx.GraphModule(m, lib.fx.symbolic_trace(m).graph)
            r = gm(lib.ones(1))
            out.append((neutral(gm.code), type(r).__name__, r.foo.tolist(), r.bar.tolist()))
        return out
    same(build)


def test_named_tuple_arguments_inlined_and_formatted():
    def build(lib):
        class M(lib.nn.Module):
            def forward(self, inp):
                return wrapped_named_tup(PairRepr(inp, 1.2), p2=PairRepr(3.4, inp))
        traced = lib.fx.symbolic_trace(M())
        ref = traced(lib.ones(1)).tolist()
        ph = call = None
        for node in traced.graph.nodes:
            if node.op == "placeholder":
                ph = node
            elif node.op == "call_function" and node.target is wrapped_named_tup:
                node.update_arg(0, PairRepr(ph, 1.2))
                node.update_kwarg("p2", PairRepr(3.4, ph))
                call = node
                break
        fmt = lib.fx.node._format_arg
        formatted = (isinstance(call.args[0], PairRepr), fmt(call.args[0]), fmt(call.kwargs["p2"]))
        traced.graph.eliminate_dead_code()
        traced.recompile()
        return neutral(traced.code), ref, traced(lib.ones(1)).tolist(), formatted
    same(build)
