"""ember.export's dynamic_shapes forms and printed range_constraints against torch.export:
nested specs for list/dict arguments, dict/tuple/list forms, the `{s0: VR[2, int_oo]}`
text (symbol numbers aside: torch's are arbitrary)."""
from __future__ import annotations

import re

import numpy as np
import pytest

import ember

torch = pytest.importorskip("torch")


def _renamed(text: str) -> str:
    """Symbols renumbered in order of appearance (torch names them s31, s97, ...)."""
    names: dict = {}
    return re.sub(r"s\d+", lambda m: names.setdefault(m.group(0), f"s{len(names)}"), text)


def _nested(lib):
    class L(lib.nn.Module):
        def forward(self, xs, d):
            return xs[0] + xs[1] * d["y"]
    rng = np.random.default_rng(0)
    make = lambda n: lib.tensor(rng.standard_normal((n, 2)).astype(np.float32))  # noqa: E731
    b = lib.export.Dim("b", min=2, max=40)
    ep = lib.export.export(L(), ([make(4), make(4)], {"y": make(4)}),
                           dynamic_shapes={"xs": [{0: b}, {0: b}], "d": {"y": {0: b}}})
    xs, y = [make(6), make(6)], make(6)
    bad = [make(6), make(5)]
    try:
        ep.module()(bad, {"y": y})
        refused = False
    except Exception:       # noqa: BLE001 - the class differs by library
        refused = True
    return {"out": ep.module()(xs, {"y": y}).numpy(), "eager": L()(xs, {"y": y}).numpy(),
            "ranges": _renamed(repr(ep.range_constraints)), "refused": refused}


def _forms(lib):
    Dim = lib.export.Dim
    lin = lib.nn.Linear(3, 2)
    x = lib.ones(4, 3)
    texts = []
    for shapes in (({0: Dim.AUTO},), [{0: Dim("b", min=2, max=9)}], {"input": (Dim.DYNAMIC, None)},
                   {"input": {0: Dim("b", min=3, max=9)}}):
        ep = lib.export.export(lin, (x,), dynamic_shapes=shapes)
        texts.append(_renamed(repr(ep.range_constraints)))
    return texts


@pytest.mark.filterwarnings("ignore")
def test_nested_dynamic_shapes_follow_the_arguments():
    got, want = _nested(ember), _nested(torch)
    np.testing.assert_allclose(got["out"], got["eager"], rtol=1e-6)
    np.testing.assert_allclose(want["out"], got["out"], rtol=1e-6)
    assert got["ranges"] == want["ranges"] == "{s0: VR[2, 40]}"
    assert got["refused"] and want["refused"]


@pytest.mark.filterwarnings("ignore")
def test_dynamic_shapes_forms_and_range_text():
    assert _forms(ember) == _forms(torch)


def _hierarchy(lib):
    class Sub(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = lib.nn.Linear(3, 3)

        def forward(self, x):
            return self.lin(x).relu()

    class M(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = Sub(), Sub()
            self.register_buffer("k", lib.ones(3))

        def forward(self, x):
            return self.b(self.a(x)) + self.k
    lib.manual_seed(0)
    m = M()
    x = lib.tensor(np.random.default_rng(1).standard_normal((2, 3)).astype(np.float32))
    u = lib.export.unflatten(lib.export.export(m, (x,)))
    return {"is_module": isinstance(u, lib.nn.Module), "children": [n for n, _ in
                                                                   u.named_children()],
            "state": sorted(u.state_dict()), "out": u(x).detach().numpy(),
            "eager": m(x).detach().numpy()}


@pytest.mark.filterwarnings("ignore")
def test_unflatten_keeps_the_module_hierarchy():
    got, want = _hierarchy(ember), _hierarchy(torch)
    for key in ("is_module", "children", "state"):
        assert got[key] == want[key]
    np.testing.assert_allclose(got["out"], got["eager"], rtol=1e-6)


def _collections(lib):
    E = lib.export

    class M(lib.nn.Module):
        def forward(self, x, ys):
            return x.sum(0) + ys[0].sum(0) * ys[1].sum(0)
    rng = np.random.default_rng(2)
    make = lambda n: lib.tensor(rng.standard_normal((n, 3)).astype(np.float32))  # noqa: E731
    x, ys = make(4), [make(5), make(6)]
    sc = E.ShapesCollection()
    a, b = E.dims("a", "b", max=50)
    sc[x] = {0: a}
    sc[ys[0]] = {0: b}
    ep = E.export(M(), (x, ys), dynamic_shapes=sc)
    call = (make(7), [make(9), make(6)])
    out = {"sc_ranges": len(ep.range_constraints), "sc": ep.module()(*call).numpy(),
           "sc_eager": M()(*call).numpy()}
    ai = E.AdditionalInputs()
    ai.add((make(8), [make(5), make(2)]))
    ep = E.export(M(), (x, ys), dynamic_shapes=ai)
    ai.verify(ep)
    call = (make(7), [make(5), make(9)])
    out.update(ai_ranges=len(ep.range_constraints), ai=ep.module()(*call).numpy(),
               ai_eager=M()(*call).numpy(),
               draft=type(E.draft_export(M(), (x, ys))).__name__)
    return out


@pytest.mark.filterwarnings("ignore")
def test_shapes_collection_additional_inputs_dims_and_draft_export():
    got, want = _collections(ember), _collections(torch)
    for key in want:
        if isinstance(want[key], np.ndarray):
            np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6)
        else:
            assert got[key] == want[key], key


def _batch_of_one(lib):
    Dim = lib.export.Dim
    lib.manual_seed(0)
    model = lib.nn.Sequential(lib.nn.Linear(4, 3), lib.nn.ReLU(), lib.nn.Linear(3, 2))
    x = lib.tensor(np.random.default_rng(3).standard_normal((8, 4)).astype(np.float32))
    one = x[:1].clone()
    out = {}
    for name, dim in (("named", Dim("batch")), ("auto", Dim.AUTO),
                      ("min_one", Dim("b", min=1, max=64))):
        ep = lib.export.export(model, (x,), dynamic_shapes=({0: dim},))
        out[name] = ep.module()(one).detach().numpy()
    ep = lib.export.export(model, (x,), dynamic_shapes=({0: Dim("b", min=4, max=64)},))
    try:
        ep.module()(one)
        out["min_four"] = "ran"
    except Exception:       # noqa: BLE001 - the class differs by library
        out["min_four"] = "refused"
    out["eager"] = model(one).detach().numpy()
    return out


@pytest.mark.filterwarnings("ignore")
def test_a_batch_of_one_runs_as_in_torch():
    got, want = _batch_of_one(ember), _batch_of_one(torch)
    assert got["min_four"] == want["min_four"] == "refused"
    for key in ("named", "auto", "min_one"):
        np.testing.assert_allclose(got[key], got["eager"], rtol=1e-6)
        np.testing.assert_allclose(want[key], want["eager"], rtol=1e-6)
        assert got[key].shape == want[key].shape == (1, 2)


def _program_fields(lib):
    import io

    class M(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = lib.nn.Linear(3, 2)
            self.register_buffer("b", lib.ones(2))
            self.c = lib.ones(2) * 2

        def forward(self, x, ys):
            return self.lin(x) + self.b + self.c + ys[0] * ys[1]
    args = (lib.ones(4, 3), [lib.ones(4, 2), lib.ones(4, 2)])
    model = M()
    ep = lib.export.export(model, args)
    buf = io.BytesIO()
    lib.export.save(ep, buf, extra_files={"meta.txt": "hello"})
    buf.seek(0)
    extra = {"meta.txt": ""}
    loaded = lib.export.load(buf, extra_files=extra)
    sig = ep.graph_signature
    return {"inputs": str(sig).split("# outputs")[0],
            "example": [type(part).__name__ for part in ep.example_inputs],
            "parameters": [n for n, _ in ep.named_parameters()],
            "buffers": [n for n, _ in ep.named_buffers()],
            "constants": sorted(ep.constants), "n_parameters": len(list(ep.parameters())),
            "dialects": [ep.dialect, ep.run_decompositions().dialect], "extra": extra,
            "loaded_equal": bool(np.allclose(loaded.module()(*args).detach().numpy(),
                                             model(*args).detach().numpy(), rtol=1e-6))}


@pytest.mark.filterwarnings("ignore")
def test_program_fields_and_save_extra_files():
    assert _program_fields(ember) == _program_fields(torch)


def _mutation(lib):
    class Buf(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("count", lib.zeros(3))

        def forward(self, x):
            self.count.add_(1)
            return x + self.count
    ep = lib.export.export(Buf(), (lib.ones(3),))
    decomposed = ep.run_decompositions()
    module = ep.module()
    first, second = module(lib.ones(3)), module(lib.ones(3))
    return {"training": [(s.kind.name, s.target) for s in ep.graph_signature.output_specs],
            "decomposed": [(s.kind.name, s.target)
                           for s in decomposed.graph_signature.output_specs],
            "mutated": sorted(decomposed.graph_signature.buffers_to_mutate.values()),
            "calls": [first.tolist(), second.tolist()]}


@pytest.mark.filterwarnings("ignore")
def test_buffer_mutation_in_the_signature():
    assert _mutation(ember) == _mutation(torch)
