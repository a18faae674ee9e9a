"""ember.fx against torch.fx on the same programs: ShapeProp's tuples and quantized
qparams, print_tabular's target text, CodeGen / PythonCode / the pytree codegen and
experimental.optimization."""
import warnings

import pytest

torch = pytest.importorskip("torch")
import torch.fx as tfx  # noqa: E402
from torch.fx.passes.shape_prop import ShapeProp as TShapeProp  # noqa: E402

import ember  # noqa: E402
import ember.fx as efx  # noqa: E402
from ember.fx.passes.shape_prop import ShapeProp as EShapeProp  # noqa: E402


def _split_program(lib):
    class M(lib.nn.Module):
        def forward(self, x):
            return x.split(2), lib.chunk(x, 2), x.unbind(0)
    return M()


def test_shape_prop_records_tuples_for_split_chunk_unbind():
    tgm = tfx.symbolic_trace(_split_program(torch))
    egm = efx.symbolic_trace(_split_program(ember))
    TShapeProp(tgm).propagate(torch.randn(4, 3))
    EShapeProp(egm).propagate(ember.randn(4, 3))
    for tn, en in zip(tgm.graph.nodes, egm.graph.nodes):
        _same_metadata(tn.meta["tensor_meta"], en.meta["tensor_meta"])


def _same_metadata(tm, em):
    assert type(em).__name__ == type(tm).__name__     # tuple, or TensorMetadata
    if hasattr(tm, "_fields"):
        assert (list(em.shape), em.stride) == (list(tm.shape), tm.stride)
    else:
        assert len(em) == len(tm)
        for t, e in zip(tm, em):
            _same_metadata(t, e)


def _quantized(lib, per_channel):
    x = lib.tensor([[0.5, -1.0, 2.0], [0.25, 1.5, -0.75]])
    if per_channel:
        return lib.quantize_per_channel(x, lib.tensor([0.1, 0.2]), lib.tensor([1, 2]),
                                        0, lib.qint8)
    return lib.quantize_per_tensor(x, 0.1, 3, lib.quint8)


@pytest.mark.parametrize("per_channel", [False, True])
def test_shape_prop_qparams_of_a_quantized_input(per_channel):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tq = _quantized(torch, per_channel)
    eq = _quantized(ember, per_channel)
    tgm = tfx.symbolic_trace(lambda x: x.dequantize())
    egm = efx.symbolic_trace(lambda x: x.dequantize())
    TShapeProp(tgm).propagate(tq)
    EShapeProp(egm).propagate(eq)
    for tn, en in zip(tgm.graph.nodes, egm.graph.nodes):
        tm, em = tn.meta["tensor_meta"], en.meta["tensor_meta"]
        assert em.is_quantized == tm.is_quantized
        assert set(em.qparams) == set(tm.qparams)
        for key, value in tm.qparams.items():
            if key == "qscheme":
                assert str(em.qparams[key]) == str(value).replace("torch.", "ember.")
            else:
                assert em.qparams[key] == pytest.approx(value)


def _tabular(lib, fx):
    import contextlib
    import io

    class M(lib.nn.Module):
        def forward(self, x):
            return lib.nn.functional.relu(lib.relu(x)) + 1
    gm = fx.symbolic_trace(M())
    rows = [[n.op, n.name, str(n.target)] for n in gm.graph.nodes]
    buf = io.StringIO()
    if lib is ember:
        with contextlib.redirect_stdout(buf):
            gm.graph.print_tabular()
    return rows, buf.getvalue()


def _shape_of_target(text):
    """The form of a target's text, with the address taken out."""
    import re
    return re.sub(r" at 0x[0-9a-f]+", " at ADDR", text)


def test_print_tabular_target_text_has_torch_form():
    trows, _ = _tabular(torch, tfx)
    _, printed = _tabular(ember, efx)
    ember_targets = [r for r in printed.splitlines()[2:]]
    for trow, line in zip(trows, ember_targets):
        op, name, target = trow
        assert line.split()[:2] == [op, name]
        assert _shape_of_target(target) in _shape_of_target(line)


# --- CodeGen, set_codegen and the pytree codegen ---------------------------------------------
def _pytree_fn(d, t):
    return d["a"] + d["b"][0] * t + d["b"][1]


def test_concrete_args_pytree_gives_torchs_pytree_codegen():
    tgm = tfx.symbolic_trace(_pytree_fn, concrete_args={"d": {"a": tfx.PH, "b": (tfx.PH, 3)}})
    egm = efx.symbolic_trace(_pytree_fn, concrete_args={"d": {"a": efx.PH, "b": (efx.PH, 3)}})
    assert egm.code == tgm.code.replace("torch.", "ember.")
    assert type(egm.graph._codegen).__name__ == "_PyTreeCodeGen"
    assert egm.graph._codegen.pytree_info.orig_args == tgm.graph._codegen.pytree_info.orig_args
    assert egm._in_spec.num_leaves == tgm._in_spec.num_leaves
    tx, ex = torch.tensor([1.0, 2.0]), ember.tensor([1.0, 2.0])
    expected = tgm({"b": (tx, 3), "a": tx}, tx)      # dict read by the spec's keys
    assert egm({"b": (ex, 3), "a": ex}, ex).tolist() == expected.tolist()
    assert [type(v).__name__ for v in egm.graph.process_inputs({"a": ex, "b": (ex, 3)}, ex)] \
        == ["Tensor", "Tensor", "int", "Tensor"]
    with pytest.raises(AssertionError, match="specialized to have value 3"):
        egm({"a": ex, "b": (ex, 4)}, ex)


def _dict_fn(d, t):
    return {"out": d["a"] + t[0], "z": (t[1] * 2,)}


def test_make_fx_of_dicts_and_tuples_keeps_the_structures():
    from torch.fx.experimental.proxy_tensor import make_fx as tmake_fx
    from ember.fx.experimental.proxy_tensor import make_fx as emake_fx
    tx, ex = torch.tensor([1.0, 2.0]), ember.tensor([1.0, 2.0])
    tgm = tmake_fx(_dict_fn)({"a": tx}, (tx, tx))
    egm = emake_fx(_dict_fn)({"a": ex}, (ex, ex))
    tlines, elines = tgm.code.strip().splitlines(), egm.code.strip().splitlines()
    assert elines[:2] == tlines[:2] and elines[-1] == tlines[-1]
    assert [n.name for n in egm.graph.nodes if n.op == "placeholder"] == \
        [n.name for n in tgm.graph.nodes if n.op == "placeholder"]
    tout, eout = tgm({"a": tx}, (tx, tx)), egm({"a": ex}, (ex, ex))
    assert set(eout) == set(tout) and isinstance(eout["z"], tuple)
    assert eout["out"].tolist() == tout["out"].tolist()
    assert eout["z"][0].tolist() == tout["z"][0].tolist()
    # Interpreter and Transformer see the same structures
    assert efx.Interpreter(egm).run({"a": ex}, (ex, ex))["out"].tolist() == tout["out"].tolist()
    again = efx.Transformer(egm).transform()
    assert again({"a": ex}, (ex, ex))["z"][0].tolist() == tout["z"][0].tolist()


def _list_codegen(fx_graph):
    class ListCodeGen(fx_graph.CodeGen):
        def gen_fn_def(self, free_vars, maybe_return_annotation):
            return (f"def {self._func_name}(self, args_list){maybe_return_annotation}:\n"
                    f"    {', '.join(free_vars)} = args_list")

        def process_inputs(self, *inputs):
            assert len(inputs) == 1
            return inputs[0]
    return ListCodeGen()


def test_set_codegen_with_a_user_codegen():
    import torch.fx.graph as tgraph
    import ember.fx.graph as egraph
    tgm = tfx.symbolic_trace(lambda a, b: a + b)
    egm = efx.symbolic_trace(lambda a, b: a + b)
    for gm, graph_mod in ((tgm, tgraph), (egm, egraph)):
        gm.graph.set_codegen(_list_codegen(graph_mod))
        gm.recompile()
    assert egm.code == tgm.code
    ex = ember.tensor([1.0, 2.0])
    assert egm([ex, ex]).tolist() == [2.0, 4.0]
    assert efx.Interpreter(egm).run([ex, ex]).tolist() == [2.0, 4.0]
    assert isinstance(egm.graph.python_code("self"), egraph.PythonCode)
    assert type(efx.symbolic_trace(lambda a: a).graph._codegen) is egraph.CodeGen


# --- experimental.optimization ---------------------------------------------------------------
def _dropout_program(lib):
    class M(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = lib.nn.Conv2d(2, 4, 3)
            self.bn = lib.nn.BatchNorm2d(4)
            self.d = lib.nn.Dropout(0.5)

        def forward(self, x):
            return self.d(self.bn(self.conv(x)).relu()) * 2
    return M().eval()


def test_extract_subgraph_and_remove_dropout_as_torch():
    from torch.fx.experimental import optimization as topt
    from ember.fx.experimental import optimization as eopt
    texts = []
    for lib, fx, opt in ((torch, tfx, topt), (ember, efx, eopt)):
        model = _dropout_program(lib)
        gm = fx.symbolic_trace(model)
        nodes = list(gm.graph.nodes)
        sub = opt.extract_subgraph(gm, nodes[2:5], [nodes[1]], [nodes[3], nodes[4]])
        texts.append((sub.code, opt.remove_dropout(model).code))
    assert texts[1] == texts[0]


def test_optimize_for_inference_folds_bn_and_drops_dropout():
    from ember.fx.experimental.optimization import optimize_for_inference
    tmodel, emodel = _dropout_program(torch), _dropout_program(ember)
    with torch.no_grad():
        tmodel.bn.running_mean.uniform_(-1, 1)
        tmodel.bn.running_var.uniform_(0.5, 2)
    emodel.load_state_dict({k: ember.tensor(v.numpy()) for k, v in tmodel.state_dict().items()})
    x = torch.randn(2, 2, 6, 6)
    gm = optimize_for_inference(emodel)
    used = [n.target for n in gm.graph.nodes if n.op == "call_module"]
    assert used == ["conv"]
    got = gm(ember.tensor(x.numpy())).detach().numpy()
    assert got == pytest.approx(tmodel(x).detach().numpy(), abs=1e-4)


def test_union_find_as_torch():
    from torch.fx.experimental.optimization import UnionFind as TUnionFind
    from ember.fx.experimental.optimization import UnionFind as EUnionFind
    sets = []
    for cls in (TUnionFind, EUnionFind):
        uf = cls(6)
        for v in range(6):
            uf.make_set(v)
        for a, b in ((0, 1), (2, 3), (1, 3), (4, 5), (3, 3)):
            uf.join(a, b)
        sets.append(([uf.find(v) == uf.find(0) for v in range(6)], uf.find(4) == uf.find(5),
                     sorted(uf.size[uf.find(v)] for v in range(6))))
    assert sets[1] == sets[0]


# --- Proxy refusals: torch's exception types and wording -------------------------------------
_REFUSALS = {
    "bool": lambda x: x if x else x,
    "iter": lambda x: [a for a in x],
    "len": lambda x: len(x),
    "int": lambda x: int(x),
    "float": lambda x: float(x),
    "index": lambda x: [1, 2][x],
}


@pytest.mark.parametrize("case", sorted(_REFUSALS))
def test_proxy_refusals_raise_what_torch_raises(case):
    with pytest.raises(Exception) as terr:
        tfx.symbolic_trace(_REFUSALS[case])
    with pytest.raises(Exception) as eerr:
        efx.symbolic_trace(_REFUSALS[case])
    for kind in (TypeError, ValueError, RuntimeError):
        if isinstance(terr.value, kind):
            assert isinstance(eerr.value, kind), (case, kind)
    if case in ("bool", "iter", "len"):     # torch's message starts ember's
        first = str(terr.value).split(". ")[0].replace("torch.", "ember.")
        assert str(eerr.value).startswith(first)


# --- print_readable's meta annotations --------------------------------------------------------
def _converting(lib):
    class N(lib.nn.Module):
        def forward(self, x, n: int):
            a, b = x.split(2)
            return a.to(lib.int64) + b.bool(), x.shape[0], x.t(), x.double().half().long()
    return N()


def test_print_readable_annotates_shape_prop_meta_as_torch():
    tgm, egm = tfx.symbolic_trace(_converting(torch)), efx.symbolic_trace(_converting(ember))
    TShapeProp(tgm).propagate(torch.randn(4, 3), 2)
    EShapeProp(egm).propagate(ember.randn(4, 3), 2)
    for options in ({}, {"include_stride": True, "include_device": True}):
        expected = tgm.print_readable(print_output=False, **options)
        assert egm.print_readable(print_output=False, **options) == \
            expected.replace("torch.", "ember.")


def test_print_readable_annotates_make_fx_values_as_torch():
    from torch.fx.experimental.proxy_tensor import make_fx as tmake_fx
    from ember.fx.experimental.proxy_tensor import make_fx as emake_fx

    def f(x, y):
        return (x.sin() * y).sum(1)
    tgm = tmake_fx(f)(torch.randn(2, 3), torch.randn(2, 3))
    egm = emake_fx(f)(ember.randn(2, 3), ember.randn(2, 3))
    for options in ({}, {"include_stride": True, "include_device": True}):
        tlines = tgm.print_readable(print_output=False, **options).splitlines()
        elines = egm.print_readable(print_output=False, **options).splitlines()
        assert elines[1] == tlines[1]           # the signature's annotations
        # each value's annotation (the ops differ: ATen there, registry ops here)
        assert [line.split(" = ")[0] for line in elines[3:]] == \
            [line.split(" = ")[0] for line in tlines[3:]]


def _dict_module(lib):
    class M(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = lib.nn.Linear(2, 2)

        def forward(self, d):
            return [self.lin(d["a"]), d["b"]]
    return M()


def test_concrete_args_pytree_of_a_module_forward_as_torch():
    tgm = tfx.symbolic_trace(_dict_module(torch), concrete_args={"d": {"a": tfx.PH, "b": tfx.PH}})
    egm = efx.symbolic_trace(_dict_module(ember), concrete_args={"d": {"a": efx.PH, "b": efx.PH}})
    assert egm.code == tgm.code.replace("torch.", "ember.")
    assert egm.graph._codegen.pytree_info.orig_args == tgm.graph._codegen.pytree_info.orig_args
    x = ember.ones(2)
    out = egm({"a": x, "b": x})
    assert isinstance(out, list) and out[1] is x
    assert efx.Interpreter(egm).run({"a": x, "b": x})[1] is x


def test_to_folder_of_a_pytree_graph_module(tmp_path, monkeypatch):
    import importlib
    egm = efx.symbolic_trace(_pytree_fn, concrete_args={"d": {"a": efx.PH, "b": (efx.PH, 3)}})
    egm.to_folder(str(tmp_path / "fx4_pytree_pkg"), "Saved")
    monkeypatch.syspath_prepend(str(tmp_path))
    saved = importlib.import_module("fx4_pytree_pkg").Saved()
    x = ember.tensor([1.0, 2.0])
    tx = torch.tensor([1.0, 2.0])
    expected = _pytree_fn({"a": tx, "b": (tx, 3)}, tx)
    assert saved({"a": x, "b": (x, 3)}, x).tolist() == expected.tolist()


def test_on_generate_code_transforms_the_body_as_torch():
    def build(fx):
        gm = fx.symbolic_trace(lambda x: (x + 1).relu())

        def insert(body):
            return ["seen = []\n", *body]
        with gm.graph.on_generate_code(lambda previous: insert):
            gm.recompile()
            inside = gm.code
        gm.recompile()
        return inside, gm.code
    assert build(efx) == build(tfx)
