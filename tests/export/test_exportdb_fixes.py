"""The ember fixes the export database (tools/exportdb.py) called for, each against
torch: control flow's `map`, `round()` of a dynamic size, attributes set on a traced
tensor."""
from __future__ import annotations

import numpy as np
import pytest

import ember

torch = pytest.importorskip("torch")


def _pair(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    return [torch.tensor(a) for a in arrays], [ember.tensor(a) for a in arrays]


def test_map_over_first_dim_with_extra_args_and_pytrees():
    from torch._higher_order_ops import map as torch_map
    from ember._higher_order_ops import map as ember_map
    (tx, ty, tz), (ex, ey, ez) = _pair((4, 3), (3,), (4, 3))

    def body(xs, y):
        a, b = xs
        return {"sum": a + y, "prod": (a * b, b - y)}
    want = torch_map(body, (tx, tz), ty)
    got = ember_map(body, (ex, ez), ey)
    np.testing.assert_allclose(got["sum"].numpy(), want["sum"].numpy(), rtol=1e-6)
    for g, w in zip(got["prod"], want["prod"]):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-6)


def test_map_exports_and_compiles():
    from ember._higher_order_ops import map as ember_map
    (tx, ty), (ex, ey) = _pair((3, 2), (2,))

    def f(xs, y):
        return ember_map(lambda x, y: x.sin() * y, xs, y)
    want = (tx.sin() * ty).numpy()
    np.testing.assert_allclose(ember.export(f, (ex, ey)).module()(ex, ey).numpy(), want,
                               rtol=1e-6)
    np.testing.assert_allclose(ember.compile(f)(ex, ey).numpy(), want, rtol=1e-6)


def test_map_refuses_mismatched_first_dims():
    from ember._higher_order_ops import map as ember_map
    with pytest.raises(ember.EmberError, match="same first dimension"):
        ember_map(lambda xs: xs[0], (ember.ones(2, 3), ember.ones(3, 3)))


def test_functorch_control_flow_names_are_ember_ops():
    import functorch.experimental.control_flow as torch_cf
    import ember._higher_order_ops as hop
    assert {"cond", "map"} <= set(dir(torch_cf)) and {"cond", "map"} <= set(hop.__all__)
    assert hop.cond is ember.cond


def test_round_of_a_dynamic_size_is_refused_with_the_line():
    """round(n / 2) is 2 at n = 3, 4 and 5, the sizes export traces at: it must not be
    baked in as a constant (torch.export refuses it too)."""
    def f(x):
        return x[: round(x.shape[0] / 2)]
    x = ember.randn(3, 2)
    with pytest.raises(ember.EmberError, match=r"test_exportdb_fixes.py:\d+ \(round\)"):
        ember.export(f, (x,), dynamic_shapes=({0: ember.export.Dim("n")},))
    with pytest.raises(Exception):      # noqa: B017 - torch's class is its own
        torch.export.export(f, (torch.randn(3, 2),),
                            dynamic_shapes=({0: torch.export.Dim("n")},))
    # static: round runs on the example's size, as in torch
    ep = ember.export(f, (x,))
    assert list(ep.module()(x).shape) == list(f(torch.randn(3, 2)).shape) == [2, 2]


def test_dynamic_size_divided_and_not_rounded_still_exports():
    def f(x):
        return x * (x.shape[0] / 2)
    x = ember.randn(4, 2)
    ep = ember.export(f, (x,))
    np.testing.assert_allclose(ep.module()(x).numpy(), x.numpy() * 2.0)


def test_setattr_on_a_traced_input_as_torch_allows():
    class M(ember.nn.Module):
        def forward(self, x, attr):
            setattr(x, attr, ember.ones(3, 2))
            return x + 4

    class T(torch.nn.Module):
        def forward(self, x, attr):
            setattr(x, attr, torch.ones(3, 2))
            return x + 4
    (tx,), (ex,) = _pair((3, 2))
    torch_ep = torch.export.export(T(), (tx, "attr"))
    ep = ember.export(M(), (ex, "attr"))
    np.testing.assert_allclose(ep.module()(ex, "attr").numpy(),
                               torch_ep.module()(tx, "attr").numpy(), rtol=1e-6)
    np.testing.assert_allclose(ember.compile(M())(ex, "attr").numpy(), tx.numpy() + 4,
                               rtol=1e-6)
