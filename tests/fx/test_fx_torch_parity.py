"""ember.fx records what torch.fx records: the same program, written once against a
library `lib` (torch or ember), traced by both; node kinds, targets (by name), node
names, arguments and the generated code must agree. Transform authors match on
these (`n.target == operator.mul`, a Transformer's call_method("relu")), so any
difference breaks their code."""
from __future__ import annotations

import math
import operator

import numpy as np
import pytest
import torch
import torch.fx

import ember
import ember.fx


# --- comparing two traces ---------------------------------------------------------------------
def _namespaces(lib):
    return [("", lib), ("nn.functional.", lib.nn.functional), ("linalg.", lib.linalg),
            ("fft.", lib.fft)]


def target_key(target, lib):
    """A target as a comparable value: method and module names as they are, Python's own
    functions (operator.add, getattr) themselves, a library function by its path in
    the library ('relu', 'nn.functional.relu')."""
    if isinstance(target, str) or getattr(target, "__module__", None) in (
            "_operator", "operator", "builtins", "math"):
        return target
    for prefix, module in _namespaces(lib):
        for name, value in vars(module).items():
            if value is target and not name.startswith("_"):
                return prefix + name
    if getattr(target, "__name__", "") in ("_assert", "_assert_is_none"):
        return target.__name__
    raise AssertionError(f"{target!r} is not a public function of {lib.__name__}")


def value_key(value):
    """Arguments with nodes as their names and dtypes by name."""
    if isinstance(value, (torch.fx.Node, ember.fx.Node)):
        return ("node", value.name)
    if isinstance(value, (torch.dtype, ember.dtype)):
        return ("dtype", str(value).split(".")[-1])
    if isinstance(value, (list, tuple)):      # torch.fx's immutable_list is a list
        return "list" if isinstance(value, list) else "tuple", tuple(value_key(v) for v in value)
    if isinstance(value, dict):
        return {k: value_key(v) for k, v in value.items()}
    if isinstance(value, slice):
        return ("slice", value_key(value.start), value_key(value.stop), value_key(value.step))
    return value


def node_keys(gm, lib, with_args=True):
    keys = []
    for n in gm.graph.nodes:
        key = (n.op if isinstance(n.op, str) else n.op.value, target_key(n.target, lib), n.name)
        if with_args:
            key += (value_key(n.args), value_key(n.kwargs))
        keys.append(key)
    return keys


def trace_both(build, concrete_args=None):
    torch_gm = torch.fx.symbolic_trace(build(torch), concrete_args=concrete_args)
    ember_gm = ember.fx.symbolic_trace(build(ember), concrete_args=concrete_args)
    return torch_gm, ember_gm


def assert_same_recording(build, concrete_args=None):
    torch_gm, ember_gm = trace_both(build, concrete_args)
    assert node_keys(ember_gm, ember) == node_keys(torch_gm, torch)
    return torch_gm, ember_gm


def same_code(torch_gm, ember_gm):
    """torch's generated code with torch's names spelled as ember's."""
    want = torch_gm.code.replace("torch.", "ember.").replace("_operator_abs", "operator_abs")
    assert ember_gm.code == want


# --- programs, written once for both libraries -----------------------------------------------
def methods_and_operators(lib):
    def f(x, y):
        a = x.relu() * 2
        b = 1 - a / 3 + y ** 2
        c = -b @ y.t()
        d = abs(c) // 2 % 3
        e = (d > 0) & (d <= 5) | ~(d == 1)
        e2 = x.add(1, alpha=2)
        x.add_(1)
        return a, b, c, d, e, e2, x.float(), x.to(lib.float64), +x
    return f


def functions_by_name(lib):
    F = lib.nn.functional

    def f(x, y):
        a = lib.relu(x) + F.relu(y)
        b = lib.cat([a, a], dim=1)
        c = lib.sum(b, 1) + lib.add(x, y, alpha=2).sum(dim=1, keepdim=True)
        d = F.softmax(b, dim=-1) + lib.softmax(b, -1) + b.softmax(-1)
        return c, d, lib.where(x > 0, x, y), lib.zeros_like(x), lib.transpose(x, 0, 1)
    return f


def shapes_and_views(lib):
    def f(x):
        rows = x.shape[0] + 1
        cols = x.size(1)
        v = x.view(rows - 1, cols) + x.reshape(-1).sum()
        unused_dtype = x.dtype        # never used: torch.fx records nothing  # noqa: F841
        x[0]                          # an unused result is still a node  # noqa: B018
        return v, x.t(), x.flatten(1), x.unsqueeze(0).transpose(0, 1)
    return f


def multiple_results(lib):
    def f(x):
        a, b = x.chunk(2, dim=1)
        top = x.max(dim=1)
        return a + b, top.values, x.max(dim=1)[0]
    return f


def math_and_sizes(lib):
    def f(x):
        return x / math.sqrt(x.shape[-1])
    return f


def inplace_operators(lib):
    def f(x):
        y = x * 1
        y += 1          # a Proxy has no __iadd__: recorded as operator.add
        y *= 2
        return y
    return f


def builtin_named_inputs(lib):
    def f(x, sum, input, bias=1.0):    # noqa: A002 - builtin names get node names sum_1, ...
        return x + sum + input + bias
    return f


def with_modules(lib):
    nn = lib.nn

    class Inner(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(lib.ones(4))
            self.register_buffer("Shift", lib.zeros(4))

        def forward(self, x):
            return x * self.scale + self.Shift

    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = Inner()
            self.myLinear = nn.Linear(4, 4)
            self.seq = nn.Sequential(nn.ReLU(), nn.Linear(4, 4))
            self.w = nn.Parameter(lib.ones(4))

        def forward(self, x):
            y = self.inner(x).relu()
            y = self.myLinear(y) + self.inner(y) + self.w + self.w
            y = self.seq(y) @ self.myLinear.weight
            return y.sum(dim=1, keepdim=True), self.inner.Shift + y
    return Outer()


def captured_functions(lib):
    """Functions stored as attributes before tracing (an activation chosen in __init__,
    in the root and in a submodule traced through): recorded as the function, as a
    call by name is, and the attributes are the functions again afterwards."""
    nn, F = lib.nn, lib.nn.functional

    class Block(nn.Module):
        def __init__(self, act):
            super().__init__()
            self.lin, self.act = nn.Linear(4, 4), act

        def forward(self, x):
            return self.act(self.lin(x))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.act, self.gate = F.relu, lib.sigmoid
            self.block = Block(F.silu)

        def forward(self, x):
            return self.block(self.act(x)) * self.gate(x)
    return Net()


CONSTANT = {}


def tensor_constants(lib):
    CONSTANT[lib.__name__] = lib.ones(4)

    def f(x):
        c = CONSTANT[lib.__name__]
        return c + x, c.add(x), x + c
    return f


def specialized(lib):
    def f(x, flag, scale, nothing):
        if flag and nothing is None:
            return x * scale
        return x
    return f


PROGRAMS = [methods_and_operators, functions_by_name, shapes_and_views, multiple_results,
            math_and_sizes, inplace_operators, builtin_named_inputs, with_modules,
            tensor_constants, captured_functions]


@pytest.mark.parametrize("build", PROGRAMS, ids=lambda b: b.__name__)
def test_records_what_torch_fx_records(build):
    assert_same_recording(build)


@pytest.mark.parametrize("build", [methods_and_operators, shapes_and_views, multiple_results,
                                   inplace_operators, builtin_named_inputs, with_modules,
                                   tensor_constants, captured_functions],
                         ids=lambda b: b.__name__)
def test_generated_code_reads_like_torch_fx(build):
    same_code(*trace_both(build))


def test_captured_functions_are_restored_after_tracing():
    model = captured_functions(ember)
    ember.fx.symbolic_trace(model)
    assert model.act is ember.nn.functional.relu and model.gate is ember.sigmoid
    assert model.block.act is ember.nn.functional.silu


def test_concrete_args_are_kept_as_guarded_inputs_as_in_torch_fx():
    concrete = {"flag": True, "scale": 3, "nothing": None}
    torch_gm, ember_gm = assert_same_recording(specialized, concrete)
    x = ember.randn(3)
    np.testing.assert_allclose(ember_gm(x, True, 3, None).numpy(), (x * 3).numpy())
    with pytest.raises(AssertionError, match="scale has been specialized to have value 3"):
        ember_gm(x, True, 4, None)
    with pytest.raises(AssertionError, match="nothing has been specialized to have value None"):
        ember_gm(x, True, 3, 0)


@pytest.mark.parametrize("build,inputs", [
    (methods_and_operators, lambda: (ember.randn(3, 4), ember.randn(3, 4))),
    (functions_by_name, lambda: (ember.randn(3, 4), ember.randn(3, 4))),
    (shapes_and_views, lambda: (ember.randn(3, 4),)),
    (multiple_results, lambda: (ember.randn(3, 4),)),
    (math_and_sizes, lambda: (ember.randn(3, 4),)),
    (builtin_named_inputs, lambda: (ember.randn(3), ember.randn(3), ember.randn(3))),
    (with_modules, lambda: (ember.randn(3, 4),)),
    (tensor_constants, lambda: (ember.randn(4),)),
], ids=lambda v: getattr(v, "__name__", ""))
def test_traced_program_runs_like_eager(build, inputs):
    program = build(ember)
    gm = ember.fx.symbolic_trace(program)
    args = inputs()
    want = program(*[a.clone() for a in args])
    got = gm(*[a.clone() for a in args])
    for w, g in zip(_flat(want), _flat(got)):
        np.testing.assert_allclose(g.detach().numpy(), w.detach().numpy(), rtol=1e-6)
    for w, g in zip(_flat(want), _flat(ember.fx.Interpreter(gm).run(*[a.clone() for a in args]))):
        np.testing.assert_allclose(g.detach().numpy(), w.detach().numpy(), rtol=1e-6)


def _flat(value):
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _flat(v)]
    return [value]


# --- what transform authors write -------------------------------------------------------------
def test_transform_author_idioms_find_the_same_nodes():
    _, ember_gm = trace_both(methods_and_operators)
    graph = ember_gm.graph
    assert next(n for n in graph.nodes if n.target == operator.mul).name == "mul"
    assert [n.name for n in graph.find_nodes(op="call_method", target="relu")] == ["relu"]
    assert [n.name for n in graph.nodes if n.target == operator.add] == ["add"]


@pytest.mark.parametrize("lib", [torch, ember], ids=lambda m: m.__name__)
def test_transformer_call_method_override_fires(lib):
    class ReluToSigmoid(lib.fx.Transformer):
        def call_method(self, target, args, kwargs):
            if target == "relu":
                target = "sigmoid"
            return super().call_method(target, args, kwargs)

    gm = lib.fx.symbolic_trace(lambda x: x.relu() * 2)
    new = ReluToSigmoid(gm).transform()
    assert [n.target for n in new.graph.nodes if n.op == "call_method"] == ["sigmoid"]
    x = lib.randn(5)
    assert np.allclose(np.asarray(new(x)), np.asarray(x.sigmoid() * 2))


def test_transformer_run_node_override_fires():
    seen = []

    class Spy(ember.fx.Transformer):
        def run_node(self, node):
            seen.append(node.op if isinstance(node.op, str) else node.op.value)
            return super().run_node(node)

    Spy(ember.fx.symbolic_trace(lambda x: x.relu() + 1)).transform()
    assert seen == ["placeholder", "call_method", "call_function", "output"]


def test_interpreter_dispatches_each_kind_to_its_method():
    calls = []

    class Counting(ember.fx.Interpreter):
        def call_method(self, target, args, kwargs):
            calls.append(("call_method", target))
            return super().call_method(target, args, kwargs)

        def call_function(self, target, args, kwargs):
            calls.append(("call_function", target))
            return super().call_function(target, args, kwargs)

    gm = ember.fx.symbolic_trace(lambda x: ember.relu(x.exp()) - 1)
    x = ember.randn(4)
    np.testing.assert_allclose(Counting(gm).run(x).numpy(), (ember.relu(x.exp()) - 1).numpy())
    assert calls == [("call_method", "exp"), ("call_function", ember.relu),
                     ("call_function", operator.sub)]


@pytest.mark.parametrize("lib", [torch, ember], ids=lambda m: m.__name__)
def test_replace_pattern_on_methods_and_operators(lib):
    def program(x, y):
        return (x + y).relu() * 2 + (y + x).relu()

    def pattern(a, b):
        return (a + b).relu()

    def replacement(a, b):
        return (a - b).sigmoid()

    gm = lib.fx.symbolic_trace(program)
    assert len(lib.fx.replace_pattern(gm, pattern, replacement)) == 2
    assert [n.target for n in gm.graph.nodes if n.op == "call_method"] == \
        ["sigmoid", "sigmoid"]
    x, y = lib.randn(5), lib.randn(5)
    want = (x - y).sigmoid() * 2 + (y - x).sigmoid()
    assert np.allclose(np.asarray(gm(x, y)), np.asarray(want))


def test_replace_pattern_on_function_calls():
    F = ember.nn.functional
    gm = ember.fx.symbolic_trace(lambda x: F.relu(x) + ember.relu(x))
    matches = ember.fx.replace_pattern(gm, lambda a: F.relu(a), lambda a: F.gelu(a))
    assert len(matches) == 1
    x = ember.randn(6)
    np.testing.assert_allclose(gm(x).numpy(), (F.gelu(x) + ember.relu(x)).numpy(), rtol=1e-6)
