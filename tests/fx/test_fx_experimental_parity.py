"""ember.fx.experimental's normalize and symbolic_shapes helpers against torch's."""
import importlib
import operator

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ember  # noqa: E402

LIBS = {"torch": torch, "ember": ember}


def _model(lib, mul=False):
    F = importlib.import_module(f"{lib.__name__}.nn.functional")

    class M(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = lib.nn.Linear(3, 3)

        def forward(self, x):
            return (F.relu(self.lin(x), inplace=True), lib.sigmoid(x), x.sum(1),
                    lib.mul(x, 2) if mul else x * 3, x + 1, self.lin.weight)
    return M()


def _traced(lib, mul=False):
    gm = importlib.import_module(f"{lib.__name__}.fx").symbolic_trace(_model(lib, mul))
    return gm, lib.tensor(np.arange(6, dtype=np.float32).reshape(2, 3) - 2)


@pytest.mark.parametrize("only_kwargs", [True, False])
def test_normalize_args_matches_torch(only_kwargs):
    codes = {}
    for name, lib in LIBS.items():
        normalize = importlib.import_module(f"{name}.fx.experimental.normalize")
        gm, x = _traced(lib)
        out = normalize.NormalizeArgs(gm, normalize_to_only_use_kwargs=only_kwargs).transform()
        for a, b in zip(out(x), gm(x)):
            np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy())
        codes[name] = out.code
    assert codes["ember"] == codes["torch"].replace("torch.", "ember.")


def test_normalize_operators_turns_binary_calls_into_operators():
    codes = {}
    for name, lib in LIBS.items():
        normalize = importlib.import_module(f"{name}.fx.experimental.normalize")
        gm, x = _traced(lib, mul=True)       # torch.mul: torch cannot normalize its args
        out = normalize.NormalizeOperators(gm).transform()
        for a, b in zip(out(x), gm(x)):
            np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy())
        codes[name] = out.code
    assert "mul = x * 2" in codes["ember"]
    assert "relu : ember.Tensor = ember.nn.functional.relu(" in codes["ember"]
    # ember.nn's layers declare no return annotation on forward (torch's say -> Tensor)
    want = codes["torch"].replace("lin : torch.Tensor = self.lin", "lin = self.lin")
    assert codes["ember"] == want.replace("torch.", "ember.")


def test_normalize_keeps_a_call_whose_extra_arguments_matter():
    fx = importlib.import_module("ember.fx")
    normalize = importlib.import_module("ember.fx.experimental.normalize")
    gm = fx.symbolic_trace(lambda x: ember.add(x, 2, alpha=3))
    out = normalize.NormalizeOperators(gm).transform()
    assert "ember.add(x, 2, alpha = 3)" in out.code        # x + 2 would drop alpha
    assert out(ember.ones(1)).tolist() == [7.0]


def test_functions_take_input_by_keyword():
    x = np.array([1.0, -2.0], dtype=np.float32)
    for name in ("sigmoid", "abs"):
        want = getattr(torch, name)(input=torch.tensor(x))
        got = getattr(ember, name)(input=ember.tensor(x))
        np.testing.assert_allclose(got.numpy(), want.numpy())
    assert ember.sum(input=ember.tensor(x), dim=0).item() == torch.sum(
        input=torch.tensor(x), dim=0).item()


def test_interpreter_map_nodes_to_values():
    for name, lib in LIBS.items():
        fx = importlib.import_module(f"{name}.fx")
        gm = fx.symbolic_trace(lambda x: x + 1)
        interp = fx.Interpreter(gm)
        interp.run(lib.ones(1))
        nodes = list(gm.graph.nodes)
        interp.env = {nodes[0]: 5}
        assert interp.map_nodes_to_values((nodes[0], [nodes[0], 2]), nodes[1]) == (5, [5, 2])
        with pytest.raises(RuntimeError, match="referenced nonexistent value"):
            interp.map_nodes_to_values((nodes[1],), nodes[2])


CALLS = [
    ("is_concrete_int", (3,)), ("is_concrete_int", (True,)), ("is_concrete_int", (2.0,)),
    ("is_concrete_bool", (True,)), ("is_concrete_bool", (1,)), ("is_concrete_float", (2.0,)),
    ("is_symbolic", (3,)), ("guard_int", (3,)), ("guard_int", (2.5,)), ("guard_float", (2,)),
    ("guard_bool", (1,)), ("guard_scalar", (2.5,)), ("guard_scalar", (True,)),
    ("guard_or_false", (True,)), ("guard_or_true", (2,)), ("expect_true", (True,)),
    ("statically_known_true", (True,)), ("statically_known_true", (3,)),
    ("statically_known_false", (False,)), ("has_free_symbols", (3,)),
    ("has_free_symbols", ([1, 2],)), ("sym_eq", ([1, 2], [1, 2])), ("sym_eq", ([1], [1, 2])),
    ("sym_eq", ((1, 2), [1, 2])), ("sym_eq", (3, 3)), ("sym_eq", (3, [3])),
]


@pytest.mark.parametrize("name,args", CALLS, ids=[f"{n}{a}" for n, a in CALLS])
def test_symbolic_shapes_helpers_on_concrete_values(name, args):
    results = {}
    for lib in ("torch", "ember"):
        module = importlib.import_module(f"{lib}.fx.experimental.symbolic_shapes")
        try:
            results[lib] = ("ok", getattr(module, name)(*args))
        except AssertionError as error:
            results[lib] = ("error", str(error))
    assert results["ember"] == results["torch"]


def test_symbolic_shapes_free_symbols():
    from ember.fx.experimental import symbolic_shapes as ss
    from ember.ir.symdim import SymDim
    assert ss.free_symbols(3) == set() and ss.free_symbols([SymDim(2, 1), 4]) == {"s0"}
    assert ss.is_symbolic(SymDim()) and not ss.is_concrete_int(SymDim())


def _rewrite_add(lib):
    fx = importlib.import_module(f"{lib.__name__}.fx")

    class AddToNegMul(fx.Transformer):
        def call_function(self, target, args, kwargs):
            if target is operator.add:
                product = super().call_function(operator.mul, args, kwargs)
                return super().call_function(operator.neg, (product,), {})
            return super().call_function(target, args, kwargs)
    gm = fx.symbolic_trace(lambda x: x + 1)
    for n in gm.graph.nodes:
        n.meta.update(custom={"k": n.name}, nn_module_stack={"m": 1})
    return AddToNegMul, gm


def test_transformer_carries_node_meta_to_every_new_node():
    seen = {}
    for name, lib in LIBS.items():
        transformer, gm = _rewrite_add(lib)
        out = transformer(gm).transform()
        seen[name] = [(n.name, n.meta.get("custom"), n.meta.get("nn_module_stack"))
                      for n in out.graph.nodes]
    assert seen["ember"] == seen["torch"]
    assert seen["ember"][1] == ("mul", {"k": "add"}, {"m": 1})


def test_traceback_preserve_node_meta_and_annotate():
    for name in LIBS:
        fx = importlib.import_module(f"{name}.fx")
        tb = importlib.import_module(f"{name}.fx.traceback")
        assert not tb.has_preserved_node_meta()
        with tb.preserve_node_meta():
            assert tb.has_preserved_node_meta() and tb.get_current_meta() == {}
            with tb.annotate({"a": 1}):
                tracer = fx.Tracer()
                tracer.graph = fx.Graph()
                proxy = tracer.create_proxy("placeholder", "x", (), {})
                assert tb.get_current_meta() == {"custom": {"a": 1}}
                assert proxy.node.meta["custom"] == {"a": 1}
            assert tb.get_current_meta() == {}
            tb.set_stack_trace(["line one\n", "line two\n"])
            assert tb.format_stack() == ["line one\nline two\n"]
        assert not tb.has_preserved_node_meta()


def test_make_fx_names_inputs_as_torch():
    def add(a, b):
        return a + b

    def first_twice(*args):
        return args[0] * 2
    for fn, n_inputs in ((add, 2), (first_twice, 1)):
        names = {}
        for name, lib in LIBS.items():
            make_fx = importlib.import_module(
                f"{name}.fx.experimental.proxy_tensor").make_fx
            inputs = [lib.ones(2) for _ in range(n_inputs)]
            gm = make_fx(fn)(*inputs)
            names[name] = [(n.name, n.target) for n in gm.graph.nodes if n.op == "placeholder"]
            assert gm(*inputs).tolist() == fn(*inputs).tolist()
        assert names["ember"] == names["torch"]
