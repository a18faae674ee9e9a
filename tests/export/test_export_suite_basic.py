"""Behaviours PyTorch users rely on from torch.export, ported from PyTorch's
test/export/test_export.py and run on both libraries (torch 2.13 is the oracle): each
case is written once against `lib` (torch or ember), exports the same model with the
same weights, and the two sides' outputs, graph-signature kinds, ep.module() behaviour,
run_decompositions, unflatten and save/load results are compared.

Static shapes here; dynamic shapes, control flow and error kinds are in
test_export_suite_dynamic.py."""
from __future__ import annotations

import io

import numpy as np
import pytest

import ember

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.filterwarnings("ignore")


def _array(value):
    return value.detach().numpy() if hasattr(value, "detach") else np.asarray(value)


def _tensor(lib, array):
    return lib.tensor(np.ascontiguousarray(array))


def _values(result):
    """A result's tensors as arrays, in its pytree's order (plain values kept)."""
    if isinstance(result, dict):
        return {k: _values(v) for k, v in result.items()}
    if isinstance(result, (tuple, list)):
        return [_values(v) for v in result]
    return _array(result) if hasattr(result, "shape") else result


def _assert_same(got, want, rtol=1e-5, atol=1e-6):
    if isinstance(want, dict):
        assert isinstance(got, dict) and list(got) == list(want)
        for k in want:
            _assert_same(got[k], want[k], rtol, atol)
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want)
        for a, b in zip(got, want):
            _assert_same(a, b, rtol, atol)
    elif isinstance(want, np.ndarray):
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
    else:
        assert got == want


def _same_weights(ember_model, torch_model):
    state = {k: ember.tensor(v.detach().numpy().copy())
             for k, v in torch_model.state_dict().items()}
    ember_model.load_state_dict(state)
    return ember_model


def _both(case):
    """case(lib) -> dict of results; torch's and ember's must agree."""
    torch.manual_seed(0)
    want = case(torch)
    got = case(ember)
    assert set(got) == set(want)
    for key in want:
        _assert_same(got[key], want[key])
    return got


def _kinds(ep) -> list:
    """(kind, target) of every input, then every output, as torch names the kinds."""
    sig = ep.graph_signature
    return [(s.kind.name, s.target) for s in sig.input_specs] + \
        [(s.kind.name, s.target) for s in sig.output_specs]


def _inputs(lib, *shapes, seed=0):
    rng = np.random.default_rng(seed)
    return tuple(_tensor(lib, rng.standard_normal(s).astype(np.float32)) for s in shapes)


# --- models (one definition each, against `lib`) -------------------------------------------
def _mlp(lib):
    class MLP(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = lib.nn.Linear(4, 8)
            self.fc2 = lib.nn.Linear(8, 3)

        def forward(self, x):
            return self.fc2(lib.relu(self.fc1(x)))
    return MLP()


def _weights_from_torch(lib, model, torch_model):
    return model if lib is torch else _same_weights(model, torch_model)


def _model(lib, factory):
    """factory's model with torch's seeded weights (a fresh torch model each time:
    torch's exported module shares its parameters with the model, as ember's does)."""
    torch.manual_seed(0)
    torch_model = factory(torch).eval()
    return torch_model if lib is torch else _same_weights(factory(ember).eval(), torch_model)


# --- TestExport: outputs and signatures -------------------------------------------------------
def test_basic_module_outputs_and_signature():
    def case(lib):
        model = _model(lib, _mlp)
        x, = _inputs(lib, (5, 4))
        ep = lib.export.export(model, (x,))
        return {"out": _values(ep.module()(x)), "eager": _values(model(x)),
                "kinds": _kinds(ep), "user_inputs": list(ep.graph_signature.user_inputs),
                "params": list(ep.graph_signature.parameters),
                "state": sorted(ep.state_dict)}
    got = _both(case)
    assert got["kinds"][:4] == [("PARAMETER", "fc1.weight"), ("PARAMETER", "fc1.bias"),
                                ("PARAMETER", "fc2.weight"), ("PARAMETER", "fc2.bias")]


def test_plain_function_inputs_in_forward_order():
    def case(lib):
        class M(lib.nn.Module):
            def forward(self, x, y, z):
                return x * y - z
        x, y, z = _inputs(lib, (3,), (3,), (3,))
        ep = lib.export.export(M(), (x, y, z))
        return {"out": _values(ep.module()(x, y, z)),
                "user_inputs": list(ep.graph_signature.user_inputs), "kinds": _kinds(ep)}
    _both(case)


def test_kwargs_inputs():
    def case(lib):
        class M(lib.nn.Module):
            def forward(self, x, *, scale, shift=None):
                return x * scale + (0 if shift is None else shift)
        x, s, t = _inputs(lib, (2, 3), (3,), (2, 3))
        ep = lib.export.export(M(), (x,), {"scale": s, "shift": t})
        return {"out": _values(ep.module()(x, scale=s, shift=t)),
                "n_user": len(ep.graph_signature.user_inputs)}
    _both(case)


def test_var_positional_and_var_keyword_inputs():
    def case(lib):
        class M(lib.nn.Module):
            def forward(self, *args, **kwargs):
                return args[0] + args[1] * kwargs["k"]
        x, y, k = _inputs(lib, (2, 3), (2, 3), (3,))
        ep = lib.export.export(M(), (x, y), {"k": k})
        return {"out": _values(ep.module()(x, y, k=k)),
                "names": list(ep.graph_signature.user_inputs)}
    got = _both(case)
    assert got["names"] == ["args_0", "args_1", "k"]


def test_pytree_inputs_and_outputs():
    def case(lib):
        class M(lib.nn.Module):
            def forward(self, xs, d):
                a = xs[0] + d["y"]
                return {"sum": a, "pair": (xs[1] * 2, [a.sum(), d["z"].relu()])}
        a, b, y, z = _inputs(lib, (2, 2), (3,), (2, 2), (4,))
        args = ([a, b], {"y": y, "z": z})
        ep = lib.export.export(M(), args)
        out = ep.module()(*args)
        return {"out": _values(out), "keys": list(out), "pair_type": type(out["pair"]).__name__,
                "n_out": len(ep.graph_signature.user_outputs),
                "n_in": len(ep.graph_signature.user_inputs)}
    _both(case)


def test_nested_modules_and_state_dict_keys():
    def factory(lib):
        class Block(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = lib.nn.Linear(4, 4)
                self.norm = lib.nn.LayerNorm(4)

            def forward(self, x):
                return self.norm(self.lin(x)).relu()

        class Net(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.blocks = lib.nn.Sequential(Block(), Block())
                self.head = lib.nn.Linear(4, 2)

            def forward(self, x):
                return self.head(self.blocks(x))
        return Net()

    def case(lib):
        model = _model(lib, factory)
        x, = _inputs(lib, (3, 4))
        ep = lib.export.export(model, (x,))
        m = ep.module()
        return {"out": _values(m(x)), "eager": _values(model(x)),
                "params": list(ep.graph_signature.parameters),
                "module_keys": sorted(m.state_dict()),
                "is_module": isinstance(m, lib.nn.Module)}
    got = _both(case)
    assert "blocks.0.lin.weight" in got["params"]


def test_buffers_and_constants_signature_kinds():
    def factory(lib):
        class M(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.register_buffer("scale", lib.full((3,), 2.0))
                self.register_buffer("offset", lib.ones(3), persistent=False)
                self.table = lib.arange(3.0)          # a plain tensor attribute: a constant
                self.lin = lib.nn.Linear(3, 3)

            def forward(self, x):
                return self.lin(x) * self.scale + self.offset + self.table
        return M()

    def case(lib):
        model = _model(lib, factory)
        x, = _inputs(lib, (2, 3))
        ep = lib.export.export(model, (x,))
        persistent = {s.target: s.persistent for s in ep.graph_signature.input_specs
                      if s.kind.name == "BUFFER"}
        return {"out": _values(ep.module()(x)), "kinds": _kinds(ep),
                "buffers": sorted(ep.graph_signature.buffers), "persistent": persistent,
                "constants": sorted(ep.constants),
                "named_buffers": sorted(n for n, _ in ep.named_buffers())}
    _both(case)


def test_batchnorm_eval_lifts_every_buffer():
    def factory(lib):
        return lib.nn.Sequential(lib.nn.Conv2d(3, 4, 3), lib.nn.BatchNorm2d(4), lib.nn.ReLU())

    def case(lib):
        model = _model(lib, factory)
        x, = _inputs(lib, (2, 3, 6, 6))
        ep = lib.export.export(model, (x,))
        return {"out": _values(ep.module()(x)), "kinds": _kinds(ep)}
    _both(case)


def test_buffer_mutation_updates_the_module_buffer():
    def factory(lib):
        class Counter(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.register_buffer("count", lib.zeros(3))

            def forward(self, x):
                self.count.add_(x.sum(0))
                return x * self.count
        return Counter()

    def case(lib):
        x, = _inputs(lib, (2, 3))
        ep = lib.export.export(factory(lib), (x,))
        m = ep.module()
        first, second = _values(m(x)), _values(m(x))
        return {"first": first, "second": second, "after": _array(m.count),
                "program_state": _array(ep.state_dict["count"])}
    _both(case)


def test_bn_training_mode_running_stats_mutated():
    def case(lib):
        torch.manual_seed(0)
        bn = lib.nn.BatchNorm1d(3)
        x, = _inputs(lib, (5, 3))
        ep = lib.export.export(bn, (x,))
        m = ep.module()
        out = _values(m(x))
        return {"out": out, "mean": _array(m.running_mean), "var": _array(m.running_var)}
    _both(case)


def test_user_input_mutation():
    def case(lib):
        class M(lib.nn.Module):
            def forward(self, x, y):
                x.mul_(2)
                return x + y
        x, y = _inputs(lib, (3,), (3,))
        ep = lib.export.export(M(), (x.clone(), y))
        x2 = x.clone()
        out = ep.module()(x2, y)
        return {"out": _values(out), "mutated": _array(x2)}
    _both(case)


def test_non_tensor_inputs_are_specialized():
    def case(lib):
        class M(lib.nn.Module):
            def forward(self, x, n, mode="add"):
                return x + n if mode == "add" else x * n
        x, = _inputs(lib, (3,))
        ep = lib.export.export(M(), (x, 3), {"mode": "mul"})
        return {"out": _values(ep.module()(x, 3, mode="mul"))}
    _both(case)
    x, = _inputs(ember, (3,))

    class M(ember.nn.Module):
        def forward(self, x, n):
            return x + n
    ep = ember.export.export(M(), (x, 3))
    with pytest.raises(ember.EmberError, match="specialized to 3"):
        ep.module()(x, 4)


def test_constant_results_and_none_outputs():
    def case(lib):
        class M(lib.nn.Module):
            def forward(self, x):
                return x + 1, None, 3
        x, = _inputs(lib, (2,))
        return {"out": _values(lib.export.export(M(), (x,)).module()(x))}
    _both(case)


def test_strict_and_non_strict_agree():
    def case(lib):
        model = _model(lib, _mlp)
        x, = _inputs(lib, (2, 4))
        a = lib.export.export(model, (x,), strict=True)
        b = lib.export.export(model, (x,), strict=False)
        return {"strict": _values(a.module()(x)), "non_strict": _values(b.module()(x)),
                "kinds": _kinds(b)}
    _both(case)


def test_module_call_guards_the_input_shape_and_count():
    for lib in (torch, ember):
        x, = _inputs(lib, (2, 4))
        m = lib.export.export(_model(lib, _mlp), (x,)).module()
        with pytest.raises(AssertionError):
            m(_inputs(lib, (3, 4))[0])
        with pytest.raises((AssertionError, TypeError, ValueError, RuntimeError)):
            m(x, x)


def test_exported_module_load_state_dict_changes_results():
    def case(lib):
        model = _model(lib, _mlp)
        x, = _inputs(lib, (2, 4))
        m = lib.export.export(model, (x,)).module()
        state = {k: v * 0.5 for k, v in m.state_dict().items()}
        m.load_state_dict(state)
        return {"out": _values(m(x))}
    _both(case)


# --- run_decompositions, unflatten, save/load -------------------------------------------------
def test_run_decompositions_keeps_results_and_signature():
    def factory(lib):
        return lib.nn.Sequential(lib.nn.Linear(4, 4), lib.nn.GELU(), lib.nn.LayerNorm(4),
                                 lib.nn.Softmax(-1))

    def case(lib):
        model = _model(lib, factory)
        x, = _inputs(lib, (3, 4))
        ep = lib.export.export(model, (x,))
        dec = ep.run_decompositions()
        return {"out": _values(dec.module()(x)), "eager": _values(model(x)),
                "kinds": _kinds(dec), "same_kinds": _kinds(dec) == _kinds(ep)}
    _both(case)


def test_run_decompositions_lists_buffer_mutations():
    def case(lib):
        torch.manual_seed(0)
        bn = lib.nn.BatchNorm1d(3)
        x, = _inputs(lib, (4, 3))
        dec = lib.export.export(bn, (x,)).run_decompositions()
        # running_mean and running_var (ember does not count num_batches_tracked in
        # an exported program: left out, see docs/aot.md)
        mutated = sorted(s.target for s in dec.graph_signature.output_specs
                         if s.kind.name == "BUFFER_MUTATION" and "running" in s.target)
        return {"mutated": mutated}
    _both(case)


def test_unflatten_keeps_the_module_hierarchy():
    def factory(lib):
        class Inner(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = lib.nn.Linear(3, 3)
                self.register_buffer("shift", lib.ones(3))

            def forward(self, x):
                return self.lin(x) + self.shift

        class Outer(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.inner = Inner()
                self.out = lib.nn.Linear(3, 2)

            def forward(self, x):
                return self.out(self.inner(x))
        return Outer()

    def case(lib):
        model = _model(lib, factory)
        x, = _inputs(lib, (2, 3))
        ep = lib.export.export(model, (x,))
        u = lib.export.unflatten(ep)
        return {"out": _values(u(x)), "keys": sorted(u.state_dict()),
                "inner_weight": _array(u.inner.lin.weight),
                "is_module": isinstance(u.inner, lib.nn.Module)}
    _both(case)


def test_preserve_module_call_signature_is_accepted():
    def factory(lib):
        class Outer(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.sub = lib.nn.Linear(3, 3)

            def forward(self, x):
                return self.sub(x).relu()
        return Outer()

    def case(lib):
        model = _model(lib, factory)
        x, = _inputs(lib, (2, 3))
        ep = lib.export.export(model, (x,), preserve_module_call_signature=("sub",))
        u = lib.export.unflatten(ep)
        return {"out": _values(u(x)), "module": _values(ep.module()(x))}
    _both(case)
    x, = _inputs(ember, (2, 3))
    u = ember.export.unflatten(ember.export.export(_model(ember, factory), (x,),
                                                   preserve_module_call_signature=("sub",)))
    u.sub = ember.nn.Linear(3, 3)       # torch would run the new module; ember refuses
    with pytest.raises(ember.EmberError, match="submodule 'sub' was replaced"):
        u(x)
    with pytest.raises(ember._dynamo.exc.UserError, match="not submodules"):
        ember.export.export(_model(ember, factory), (x,),
                            preserve_module_call_signature=("nope",))


def test_save_load_round_trip():
    def factory(lib):
        class M(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = lib.nn.Linear(4, 3)
                self.register_buffer("b", lib.arange(3.0))

            def forward(self, x, d):
                return {"y": self.lin(x) + self.b + d["k"]}
        return M()

    def case(lib):
        model = _model(lib, factory)
        x, k = _inputs(lib, (2, 4), (3,))
        ep = lib.export.export(model, (x, {"k": k}))
        buf = io.BytesIO()
        lib.export.save(ep, buf, extra_files={"note.txt": "hello"})
        buf.seek(0)
        extra = {"note.txt": ""}
        loaded = lib.export.load(buf, extra_files=extra)
        return {"out": _values(loaded.module()(x, {"k": k})), "kinds": _kinds(loaded),
                "extra": extra["note.txt"]}
    _both(case)


def test_exported_program_state_views():
    def case(lib):
        model = _model(lib, _mlp)
        x, = _inputs(lib, (2, 4))
        ep = lib.export.export(model, (x,))
        return {"named": [n for n, _ in ep.named_parameters()],
                "n_params": len(list(ep.parameters())),
                "inputs_to_parameters": sorted(ep.graph_signature.inputs_to_parameters.values()),
                "example": _values(ep.example_inputs[0][0])}
    _both(case)


def test_graph_module_runs_on_flat_inputs():
    """ep.graph_module takes the lifted state as well in torch; ember's reads it from
    get_attr: both give the same result for the user inputs with state bound."""
    model = _model(ember, _mlp)
    x, = _inputs(ember, (2, 4))
    ep = ember.export.export(model, (x,))
    out = ep.graph_module(x)
    out = out[0] if isinstance(out, (tuple, list)) else out
    np.testing.assert_allclose(_array(out), _array(model(x)), rtol=1e-6)
    assert "fc1.weight" in ep.graph_module.code or "fc1" in ep.graph_module.code


def test_exported_module_keeps_its_mode_and_is_not_callable_as_a_program():
    """torch refuses train()/eval() on ep.module() and calling the ExportedProgram
    itself; ember accepts the mode the program was traced in (a no-op) and refuses
    the other, since the graph would go on running the traced mode."""
    for lib in (torch, ember):
        x, = _inputs(lib, (2, 4))
        ep = lib.export.export(lib.nn.Dropout(0.5).eval(), (x,))
        with pytest.raises(NotImplementedError):
            ep.module().train()
        with pytest.raises(RuntimeError, match="module()"):
            ep(x)
    ep = ember.export.export(ember.nn.Dropout(0.5).eval(), (_inputs(ember, (2, 4))[0],))
    assert ep.module().eval() is not None
    buf = io.BytesIO()
    ember.export.save(ep, buf)
    buf.seek(0)
    with pytest.raises(NotImplementedError, match="exported in eval mode"):
        ember.export.load(buf).module().train()
