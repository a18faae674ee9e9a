"""ember.export with several dynamic sizes (compiler/export_symbols.py): independent
`Dim`s, `Dim.AUTO`/`Dim.DYNAMIC`, derived dims, against torch.export running the same
program (results at other sizes, which calls are refused, how many symbols)."""
from __future__ import annotations

import io

import numpy as np
import pytest

import ember

torch = pytest.importorskip("torch")


def _data(lib, *shape, seed=1):
    return lib.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def _refused(fn, *args) -> bool:
    try:
        fn(*args)
    except Exception:       # noqa: BLE001 - the class differs by library
        return True
    return False


def _both(program):
    """program(lib) run with torch and with ember: (ember's result, torch's result)."""
    return program(ember), program(torch)


def _same(got, want):
    assert type(got) is type(want) or isinstance(want, (list, tuple)), (got, want)
    if isinstance(want, dict):
        assert set(got) == set(want)
        for k in want:
            _same(got[k], want[k])
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want)
        for a, b in zip(got, want):
            _same(a, b)
    elif isinstance(want, np.ndarray):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    else:
        assert got == want


def _np(t):
    return t.detach().numpy()


class _Pair:
    """a + b with a Linear on a: the module each library builds."""

    @staticmethod
    def make(lib):
        class M(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = lib.nn.Linear(6, 3)

            def forward(self, a, b):
                return self.lin(a + b)
        lib.manual_seed(0)
        m = M()
        with lib.no_grad():
            m.lin.weight.copy_(_data(lib, 3, 6, seed=7))
            m.lin.bias.copy_(_data(lib, 3, seed=8))
        return m


def test_named_dims_found_equal_are_refused_and_one_shared_dim_runs():
    def program(lib):
        Dim = lib.export.Dim
        m = _Pair.make(lib)
        args = (_data(lib, 4, 6), _data(lib, 4, 6, seed=2))
        distinct = _refused(lambda: lib.export.export(
            m, args, dynamic_shapes=({0: Dim("n")}, {0: Dim("m")})))
        n = Dim("n", max=10)
        ep = lib.export.export(m, args, dynamic_shapes=({0: n}, {0: n}))
        a, b = _data(lib, 7, 6, seed=3), _data(lib, 7, 6, seed=4)
        return {"distinct": distinct, "symbols": len(ep.range_constraints),
                "out": _np(ep.module()(a, b)), "eager": _np(m(a, b)),
                "mismatch": _refused(ep.module(), _data(lib, 5, 6), _data(lib, 4, 6)),
                "too_big": _refused(ep.module(), _data(lib, 11, 6), _data(lib, 11, 6))}
    _same(*_both(program))


def test_independent_auto_dims_with_a_product_and_a_specialized_feature():
    def program(lib):
        Dim = lib.export.Dim
        m = _Pair.make(lib)

        def fn(w, x, z):
            return m.lin(w), (x * 2).flatten() + z
        mod = _Fn.of(lib, fn)
        args = (_data(lib, 5, 6), _data(lib, 3, 4, seed=2), _data(lib, 12, seed=3))
        ep = lib.export.export(mod, args, dynamic_shapes=(
            (Dim.AUTO, Dim.AUTO), (Dim.AUTO, Dim.AUTO), (Dim.AUTO,)))
        other = (_data(lib, 2, 6, seed=4), _data(lib, 5, 2, seed=5), _data(lib, 10, seed=6))
        return {"symbols": len(ep.range_constraints),
                "out": [_np(o) for o in ep.module()(*other)],
                "eager": [_np(o) for o in fn(*other)],
                "static_feature": _refused(ep.module(), _data(lib, 2, 7), *other[1:]),
                "bad_product": _refused(ep.module(), other[0], other[1], _data(lib, 11))}
    _same(*_both(program))


class _Fn:
    @staticmethod
    def of(lib, fn):
        class Wrap(lib.nn.Module):
            def forward(self, a, b, c):
                return fn(a, b, c)
        return Wrap()


def test_derived_dims():
    def program(lib):
        d = lib.export.Dim("d", max=20)
        mod = _Fn.of(lib, lambda a, b, c: (a[1:] + b, c.reshape(-1, 2).sum(1)))
        args = (_data(lib, 5, 3), _data(lib, 4, 3, seed=2), _data(lib, 8, seed=3))
        ep = lib.export.export(mod, args, dynamic_shapes=({0: d + 1}, {0: d}, {0: 2 * d}))
        other = (_data(lib, 8, 3, seed=4), _data(lib, 7, 3, seed=5), _data(lib, 14, seed=6))
        return {"ranges": len(ep.range_constraints),
                "out": [_np(o) for o in ep.module()(*other)],
                "eager": [_np(o) for o in mod(*other)],
                "inconsistent": _refused(ep.module(), other[0], other[1], _data(lib, 12))}
    _same(*_both(program))


def test_a_named_dim_the_code_fixes_is_refused_and_auto_becomes_static():
    def program(lib):
        Dim = lib.export.Dim
        lin = _Pair.make(lib).lin
        x = _data(lib, 4, 6)
        named = _refused(lambda: lib.export.export(lin, (x,),
                                                   dynamic_shapes=({1: Dim("f")},)))
        dynamic = _refused(lambda: lib.export.export(lin, (x,),
                                                     dynamic_shapes=({1: Dim.DYNAMIC},)))
        ep = lib.export.export(lin, (x,), dynamic_shapes=({0: Dim.AUTO, 1: Dim.AUTO},))
        return {"named": named, "dynamic": dynamic, "symbols": len(ep.range_constraints),
                "out": _np(ep.module()(_data(lib, 9, 6, seed=2))),
                "eager": _np(lin(_data(lib, 9, 6, seed=2)))}
    _same(*_both(program))


def test_several_symbols_save_load_and_their_text():
    Dim = ember.export.Dim
    mod = _Fn.of(ember, lambda x, y, z: (x + y).flatten() + z)
    args = (ember.randn(4), ember.randn(8, 4), ember.randn(32))
    ep = ember.export(mod, args, dynamic_shapes=((Dim.AUTO,), (Dim.AUTO, Dim.AUTO), (Dim.AUTO,)))
    from ember.ir.printer import print_graph
    assert "f32[s0*s1]" in print_graph(ep.symbolic_graph)
    buf = io.BytesIO()
    ember.export.save(ep, buf)
    buf.seek(0)
    loaded = ember.export.load(buf)
    other = (ember.randn(3), ember.randn(5, 3), ember.randn(15))
    np.testing.assert_array_equal(loaded.module()(*other).numpy(), mod(*other).numpy())
    assert loaded.range_constraints == ep.range_constraints
    with pytest.raises(ember.EmberError, match=r"must be s0\*s1 = 15 in this call, got 16"):
        loaded.module()(other[0], other[1], ember.randn(16))



def test_an_artifact_of_several_dynamic_sizes(tmp_path):
    """A native program at the example sizes; other sizes through ember.compile of the
    exported program the artifact carries (the lite runtime alone takes the example's)."""
    from ember.runtime import lite
    Dim = ember.export.Dim
    ember.manual_seed(0)
    layer = ember.nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=24,
                                             dropout=0.0, batch_first=True).eval()
    x = ember.randn(3, 5, 16)
    ep = ember.export(layer, (x,), dynamic_shapes={"src": {0: Dim("batch"), 1: Dim("seq")}})
    path = ember.aot.compile_and_package(ep, tmp_path / "m.ember")
    run = ember.aot.load_package(path)
    # a named Dim's range starts at its min, 0 by default (torch's text)
    assert run.manifest["dynamic_sizes"] == {"s0": "VR[0, int_oo]", "s1": "VR[0, int_oo]"}
    with ember.no_grad():
        for shape in ((3, 5, 16), (2, 7, 16)):
            y = ember.randn(*shape)
            want = ember.compile(layer, dynamic=False)(y).numpy()
            np.testing.assert_allclose(run(y).numpy(), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(lite.load_package(path)(x.numpy())[0], run(x).numpy())
    with pytest.raises(ember.ArtifactError, match=r"must be float32\[3, 5, 16\]"):
        lite.load_package(path)(np.zeros((2, 7, 16), np.float32))


def test_auto_on_a_size_one_dim_stays_static_while_named_and_dynamic_are_refused():
    def program(lib):
        Dim = lib.export.Dim
        lin = _Pair.make(lib).lin
        x = _data(lib, 1, 6)
        ep = lib.export.export(lin, (x,), dynamic_shapes=({0: Dim.AUTO},))
        return {"auto_ranges": len(ep.range_constraints),
                "dynamic": _refused(lambda: lib.export.export(
                    lin, (x,), dynamic_shapes=({0: Dim.DYNAMIC},))),
                "named": _refused(lambda: lib.export.export(
                    lin, (x,), dynamic_shapes=({0: Dim("b")},))),
                "other_size": _refused(ep.module(), _data(lib, 2, 6))}
    _same(*_both(program))


def test_batch_and_sequence_dims_of_a_transformer_layer():
    def program(lib):
        Dim = lib.export.Dim
        lib.manual_seed(0)
        layer = lib.nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=24,
                                               dropout=0.0, batch_first=True).eval()
        ep = lib.export.export(layer, (_data(lib, 3, 5, 16),),
                               dynamic_shapes={"src": {0: Dim("batch"), 1: Dim("seq")}})
        out = {"symbols": len(ep.range_constraints)}
        with lib.no_grad():
            for b, s in ((2, 7), (4, 3), (1, 4)):       # a batch of 1 runs as in torch
                x = _data(lib, b, s, 16, seed=b + s)
                out[f"{b}x{s}"] = bool(np.allclose(_np(ep.module()(x)), _np(layer(x)),
                                                   rtol=1e-5, atol=1e-6))
        return out
    _same(*_both(program))
