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
