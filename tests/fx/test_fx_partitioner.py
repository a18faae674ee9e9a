"""ember.fx.passes' capability partitioner, operator support and fuser utilities against
torch.fx.passes: the same programs partition into the same node sets (and partition
ids), fuse into the same code, and the fused modules compute what the originals do."""
import importlib
import operator

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ember  # noqa: E402

LIBS = {"torch": torch, "ember": ember}


def _fx(lib, path=""):
    return importlib.import_module(f"{lib.__name__}.fx{path}")


def _chain_model(lib):
    class M(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = lib.nn.Linear(4, 4)

        def forward(self, x, y):
            a = x + y
            b = lib.relu(a)
            c = self.lin(b)
            d = c.sigmoid()
            e = d * 2
            return lib.neg(e), a
    return M()


def _branchy(lib):
    def f(x, y):
        a = x + y
        b = a.relu()
        c = lib.sin(b)
        d = c * 2
        e, g = d.chunk(2)
        return e + 1, g, lib.cos(x)
    return f


def _diamond(lib):
    def f(x):
        a = lib.sin(x)
        b = lib.cos(a)
        c = a.exp()           # unsupported in the middle of the diamond
        d = b + c
        e = d * 3
        return lib.tanh(e) - a
    return f


PROGRAMS = {"chain": _chain_model, "branchy": _branchy, "diamond": _diamond}


def _supported_functions(lib):
    """Supports call_function nodes except exp/chunk (both libraries' spellings)."""
    ops = _fx(lib, ".passes.operator_support")

    def supported(submodules, node):
        return node.op == "call_function"
    return ops.create_op_support(supported)


def _partition(lib, program, **options):
    fx = _fx(lib)
    partitioner_mod = _fx(lib, ".passes.infra.partitioner")
    gm = fx.symbolic_trace(PROGRAMS[program](lib))
    p = partitioner_mod.CapabilityBasedPartitioner(gm, _supported_functions(lib), **options)
    return gm, p


def _inputs(lib, program):
    rng = np.random.default_rng(0)
    n = 1 if program == "diamond" else 2
    return [lib.tensor(rng.standard_normal((4, 4)).astype(np.float32)) for _ in range(n)]


@pytest.mark.parametrize("options", [{}, {"allows_single_node_partition": True},
                                     {"skip_horizontal_fusion": True},
                                     {"allowed_single_node_partition_ops": ["_operator.add"]}],
                         ids=["default", "single", "no_horizontal", "allowed_single"])
@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_partitions_and_fused_code_match_torch(program, options):
    results = {}
    for name, lib in LIBS.items():
        gm, p = _partition(lib, program, **options)
        want = gm(*_inputs(lib, program))
        parts = p.propose_partitions()
        listing = [(q.id, [n.name for n in q.nodes]) for q in parts]
        fused = p.fuse_partitions(parts)
        got = fused(*_inputs(lib, program))
        children = {k: m.code for k, m in fused.named_children() if k.startswith("fused_")}
        results[name] = (listing, fused.code, children)
        flat_want = want if isinstance(want, tuple) else (want,)
        flat_got = got if isinstance(got, tuple) else (got,)
        for a, b in zip(flat_want, flat_got):
            np.testing.assert_allclose(b.detach().numpy(), a.detach().numpy(), rtol=1e-6)
    t_listing, t_code, t_children = results["torch"]
    e_listing, e_code, e_children = results["ember"]
    assert e_listing == t_listing
    assert e_code == t_code.replace("torch.", "ember.")
    assert e_children == {k: v.replace("torch.", "ember.") for k, v in t_children.items()}


def test_get_node_target_and_operator_support_table():
    for name, lib in LIBS.items():
        fx = _fx(lib)
        tools = _fx(lib, ".passes.tools_common")
        ops = _fx(lib, ".passes.operator_support")
        shape_prop = _fx(lib, ".passes.shape_prop")
        gm = fx.symbolic_trace(_chain_model(lib))
        shape_prop.ShapeProp(gm).propagate(*_inputs(lib, "chain"))
        subs = dict(gm.named_modules())
        targets = [tools.get_node_target(subs, n) for n in gm.graph.nodes
                   if n.op in tools.CALLABLE_NODE_OPS]
        assert targets == ["_operator.add", f"{name}.relu",
                           f"{name}.nn.modules.linear.Linear", "sigmoid", "_operator.mul",
                           f"{name}.neg"]
        table = ops.OperatorSupport({
            "_operator.add": None,
            f"{name}.relu": ([[lib.float64]], {}),            # float32 input: refused
            "sigmoid": ([[lib.float32]], {}),
        })
        supported = [n.name for n in gm.graph.nodes if table.is_node_supported(subs, n)]
        assert supported == ["x", "y", "add", "sigmoid", "output"]
        both = ops.chain(table, ops.OpSupports.decline_if_node_in_names({"add"}))
        either = ops.any_chain(table, ops.OpSupports.decline_if_input_dtype(lib.float64))
        assert [n.name for n in gm.graph.nodes if both.is_node_supported(subs, n)] == \
            ["x", "y", "sigmoid", "output"]
        assert all(either.is_node_supported(subs, n) for n in gm.graph.nodes)
        with pytest.raises(AssertionError, match="Expect op types"):
            tools.get_node_target(subs, next(iter(gm.graph.nodes)))


def test_fuser_utils_topo_sort_validate_and_explicit_partitions():
    outs = {}
    for name, lib in LIBS.items():
        fx = _fx(lib)
        fuser = _fx(lib, ".passes.utils.fuser_utils")
        gm = fx.symbolic_trace(_diamond(lib))
        nodes = {n.name: n for n in gm.graph.nodes}
        assert [n.name for n in fuser.topo_sort([nodes["add"], nodes["sin"], nodes["cos"]])] \
            == ["sin", "cos", "add"]
        assert not fuser.validate_partition([nodes["sin"], nodes["add"]])    # sin->exp->add
        assert fuser.validate_partition([nodes["cos"], nodes["add"], nodes["mul"]])
        x = _inputs(lib, "diamond")
        want = gm(*x)
        fused = fuser.fuse_by_partitions(gm, [{nodes["cos"]: None, nodes["add"]: None,
                                               nodes["mul"]: None}], prefix="blk_",
                                         always_return_tuple=True)
        np.testing.assert_allclose(fused(*x).numpy(), want.numpy(), rtol=1e-6)
        outs[name] = (fused.code, fused.blk_0.code)
    assert outs["ember"] == tuple(s.replace("torch.", "ember.") for s in outs["torch"])


def test_stable_topological_sort_moves_only_what_it_must():
    for lib in LIBS.values():
        fx = _fx(lib)
        tools = _fx(lib, ".passes.tools_common")
        g = fx.Graph()
        x = g.placeholder("x")
        a = g.call_function(operator.neg, (x,))
        b = g.call_function(operator.abs, (a,))
        c = g.call_function(operator.pos, (x,))
        g.output((b, c))
        a.prepend(b)                  # b before its input
        gm = fx.GraphModule(lib.nn.Module(), g)
        tools.stable_topological_sort(gm)
        assert [n.name for n in gm.graph.nodes] == ["x", "neg", "abs_1", "pos", "output"]
        gm.graph.lint()


def test_remove_bookend_non_compute_ops():
    results = {}
    for name, lib in LIBS.items():
        fx = _fx(lib)
        partitioner_mod = _fx(lib, ".passes.infra.partitioner")

        def f(x):
            a = x.reshape(16)
            b = lib.sin(a)
            c = lib.cos(b)
            return lib.flatten(c)
        gm = fx.symbolic_trace(f)
        p = partitioner_mod.CapabilityBasedPartitioner(
            gm, _supported_functions(lib), non_compute_ops=[f"{name}.flatten"])
        parts = p.propose_partitions()
        before = [[n.name for n in q.nodes] for q in parts]
        p.remove_bookend_non_compute_ops(parts)
        results[name] = (before, [[n.name for n in q.nodes] for q in parts])
    assert results["ember"] == results["torch"]
    assert results["ember"][1] == [["sin", "cos"]]
