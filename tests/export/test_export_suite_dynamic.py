"""Dynamic shapes, control flow and refusals of torch.export, ported from PyTorch's
test/export/test_export.py and run on both libraries (torch 2.13 is the oracle): `Dim`
with ranges, derived dims (`2*d`, `d+1`), `Dim.AUTO/STATIC/DYNAMIC`, range constraints,
calls inside and outside the range, the error kinds raised for bad dynamic_shapes specs
and for models that contradict them, `torch.cond` (tensor and size predicates) and
`map`, and size-valued results."""
from __future__ import annotations

import re

import numpy as np
import pytest

import ember

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.filterwarnings("ignore")


def _x(lib, *shape, seed=0):
    rng = np.random.default_rng(seed + sum(shape))
    return lib.tensor(rng.standard_normal(shape).astype(np.float32))


def _array(value):
    return value.detach().numpy() if hasattr(value, "detach") else np.asarray(value)


def _ranges(ep) -> list:
    """The range constraints as sorted (lower, upper) pairs (None: unbounded); symbol
    names differ between the libraries."""
    def bound(v):
        return None if str(v) in ("int_oo", "oo", "inf") else int(v)
    return sorted(((bound(r.lower), bound(r.upper)) for r in ep.range_constraints.values()),
                  key=str)


def _symbolic_dims(ep, lib) -> list:
    """(input position, dim) of each symbolic dimension of the tensor user inputs."""
    if lib is ember:
        return sorted(tuple(d) for d in ep.dynamic_dims)
    users = [s.arg.name for s in ep.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
    nodes = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
    out = []
    for i, name in enumerate(users):
        for d, size in enumerate(nodes[name].meta["val"].shape):
            if not str(size).isdigit():
                out.append((i, d))
    return out


def _both(case):
    want, got = case(torch), case(ember)
    assert set(got) == set(want)
    for key, value in want.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_allclose(got[key], value, rtol=1e-5, atol=1e-6)
        elif isinstance(value, list) and value and isinstance(value[0], np.ndarray):
            for a, b in zip(got[key], value):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        else:
            assert got[key] == value, key
    return got


def _refuses(lib, fn) -> str:
    """The kind of error fn raises, by the class torch's user catches."""
    try:
        fn()
    except Exception as err:  # noqa: BLE001 - the kind is the result
        user_error = torch._dynamo.exc.UserError if lib is torch else ember._dynamo.exc.UserError
        if isinstance(err, user_error):
            return "UserError"
        for kind in (AssertionError, RuntimeError, ValueError, TypeError, IndexError):
            if isinstance(err, kind):
                return kind.__name__
        return type(err).__name__
    return "accepted"


def _add(lib):
    class Add(lib.nn.Module):
        def forward(self, x, y):
            return x + y
    return Add()


def _double(lib):
    class Double(lib.nn.Module):
        def forward(self, x):
            return (x * 2).sum(-1)
    return Double()


# --- Dim ranges and calls -----------------------------------------------------------------
def test_dim_with_range_runs_every_size_inside_it():
    def case(lib):
        b = lib.export.Dim("b", min=2, max=8)
        ep = lib.export.export(_double(lib), (_x(lib, 4, 3),), dynamic_shapes={"x": {0: b}})
        m = ep.module()
        return {"ranges": _ranges(ep), "dims": _symbolic_dims(ep, lib),
                "outs": [_array(m(_x(lib, n, 3))) for n in (2, 5, 8)],
                "above": _refuses(lib, lambda: m(_x(lib, 9, 3))),
                "static_dim": _refuses(lib, lambda: m(_x(lib, 4, 4)))}
    got = _both(case)
    assert got["above"] == "AssertionError"


def test_shared_dim_across_inputs():
    def case(lib):
        b = lib.export.Dim("b", max=64)
        ep = lib.export.export(_add(lib), (_x(lib, 3, 2), _x(lib, 3, 2, seed=1)),
                               dynamic_shapes={"x": {0: b}, "y": {0: b}})
        m = ep.module()
        return {"ranges": _ranges(ep)[-1:], "dims": _symbolic_dims(ep, lib),
                "out": _array(m(_x(lib, 7, 2), _x(lib, 7, 2, seed=1))),
                "unequal": _refuses(lib, lambda: m(_x(lib, 7, 2), _x(lib, 6, 2)))}
    _both(case)


def test_two_independent_dims():
    def case(lib):
        class MatMul(lib.nn.Module):
            def forward(self, a, b):
                return a @ b
        Dim = lib.export.Dim
        m_, k, n = Dim("m", max=32), Dim("k", max=32), Dim("n", max=32)
        ep = lib.export.export(MatMul(), (_x(lib, 3, 4), _x(lib, 4, 5)),
                               dynamic_shapes={"a": (m_, k), "b": (k, n)})
        return {"n_symbols": len(ep.range_constraints), "dims": _symbolic_dims(ep, lib),
                "out": _array(ep.module()(_x(lib, 6, 7), _x(lib, 7, 2)))}
    _both(case)


def test_derived_dims():
    def case(lib):
        class Shift(lib.nn.Module):
            def forward(self, x, y):
                return x[1:] + y

        class Halves(lib.nn.Module):
            def forward(self, x, y):
                return x.reshape(-1, 2, x.shape[-1]).sum(1) * y
        Dim = lib.export.Dim
        d = Dim("d", min=2, max=20)
        ep1 = lib.export.export(Shift(), (_x(lib, 5, 3), _x(lib, 4, 3)),
                                dynamic_shapes={"x": {0: d + 1}, "y": {0: d}})
        e = Dim("e", min=2, max=20)
        ep2 = lib.export.export(Halves(), (_x(lib, 8, 3), _x(lib, 4, 3)),
                                dynamic_shapes={"x": {0: 2 * e}, "y": {0: e}})
        return {"shift": _array(ep1.module()(_x(lib, 10, 3), _x(lib, 9, 3))),
                "halves": _array(ep2.module()(_x(lib, 12, 3), _x(lib, 6, 3))),
                "dims1": _symbolic_dims(ep1, lib), "dims2": _symbolic_dims(ep2, lib),
                "bad": _refuses(lib, lambda: ep2.module()(_x(lib, 12, 3), _x(lib, 5, 3))),
                "not_of_form": _refuses(lib, lambda: lib.export.export(
                    Halves(), (_x(lib, 9, 3), _x(lib, 4, 3)),
                    dynamic_shapes={"x": {0: 2 * e}, "y": {0: e}}))}
    got = _both(case)
    assert got["not_of_form"] == "UserError"


def test_dim_hints_auto_static_dynamic():
    def case(lib):
        Dim = lib.export.Dim
        lin = lib.nn.Linear(3, 2)
        x = _x(lib, 4, 3)
        auto = lib.export.export(lin, (x,), dynamic_shapes={"input": (Dim.AUTO, Dim.AUTO)})
        static = lib.export.export(lin, (x,), dynamic_shapes={"input": (Dim.STATIC, None)})
        dynamic = lib.export.export(lin, (x,), dynamic_shapes={"input": (Dim.DYNAMIC, None)})
        return {"auto": (_ranges(auto), _symbolic_dims(auto, lib)),
                "static": (_ranges(static), _symbolic_dims(static, lib)),
                "dynamic": (_ranges(dynamic), _symbolic_dims(dynamic, lib)),
                "dynamic_specialized": _refuses(lib, lambda: lib.export.export(
                    lin, (x,), dynamic_shapes={"input": (None, Dim.DYNAMIC)}))}
    got = _both(case)
    assert got["auto"] == ([(2, None)], [(0, 0)])
    assert got["dynamic_specialized"] == "UserError"


def test_auto_on_size_one_stays_static():
    def case(lib):
        ep = lib.export.export(_double(lib), (_x(lib, 1, 3),),
                               dynamic_shapes={"x": {0: lib.export.Dim.AUTO}})
        return {"dims": _symbolic_dims(ep, lib), "ranges": _ranges(ep)}
    _both(case)


def test_dynamic_shapes_forms_tuple_and_nested():
    def case(lib):
        class M(lib.nn.Module):
            def forward(self, xs, scale):
                return xs[0] * scale + xs[1]
        b = lib.export.Dim("b", min=2, max=16)
        args = ([_x(lib, 4, 2), _x(lib, 4, 2, seed=1)], _x(lib, 4, 2, seed=2))
        ep = lib.export.export(M(), args, dynamic_shapes=([{0: b}, {0: b}], {0: b}))
        call = ([_x(lib, 9, 2), _x(lib, 9, 2, seed=1)], _x(lib, 9, 2, seed=2))
        return {"out": _array(ep.module()(*call)), "dims": _symbolic_dims(ep, lib)}
    _both(case)


def test_size_valued_results():
    def case(lib):
        class Sizes(lib.nn.Module):
            def forward(self, x):
                return x.sum(), x.shape[0] * 2 + 1
        b = lib.export.Dim("b", min=2, max=50)
        m = lib.export.export(Sizes(), (_x(lib, 3, 2),), dynamic_shapes={"x": {0: b}}).module()
        out = m(_x(lib, 7, 2))
        return {"size": int(out[1]), "sum": _array(out[0])}
    got = _both(case)
    assert got["size"] == 15


# --- refusals: their kind (the class a torch user catches) -----------------------------------
def test_bad_dynamic_shapes_specs_are_user_errors():
    def case(lib):
        Dim = lib.export.Dim
        x = _x(lib, 3, 4)
        model = _double(lib)
        return {
            "args_not_tuple": _refuses(lib, lambda: lib.export.export(model, x)),
            "unknown_name": _refuses(lib, lambda: lib.export.export(
                model, (x,), dynamic_shapes={"y": {0: Dim("b")}})),
            "example_outside_range": _refuses(lib, lambda: lib.export.export(
                model, (x,), dynamic_shapes={"x": {0: Dim("b", min=5)}})),
        }
    want, got = case(torch), case(ember)
    assert got["args_not_tuple"] == want["args_not_tuple"] == "UserError"
    assert got["unknown_name"] == want["unknown_name"] == "UserError"
    # torch raises its ConstraintViolationError (a RuntimeError); ember's UserError is one
    assert want["example_outside_range"] == "RuntimeError"
    assert got["example_outside_range"] in ("UserError", "RuntimeError")


def test_constraint_violations_are_user_errors():
    def case(lib):
        Dim = lib.export.Dim

        class Lin(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = lib.nn.Linear(4, 3)

            def forward(self, x):
                return self.lin(x)

        class Branch(lib.nn.Module):
            def forward(self, x):
                if x.shape[0] > 4:
                    return x * 2
                return x + 1
        x = _x(lib, 3, 4)
        return {
            "specialized_by_model": _refuses(lib, lambda: lib.export.export(
                Lin(), (x,), dynamic_shapes={"x": {1: Dim("k")}})),
            "two_dims_made_equal": _refuses(lib, lambda: lib.export.export(
                _add(lib), (x, x.clone()), dynamic_shapes={"x": {0: Dim("a")}, "y": {0: Dim("b")}})),
            "python_branch_on_size": _refuses(lib, lambda: lib.export.export(
                Branch(), (x,), dynamic_shapes={"x": {0: Dim("b")}})),
        }
    want, got = case(torch), case(ember)
    assert want == got == {k: "UserError" for k in want}


def test_refusal_names_the_users_line():
    class Branch(ember.nn.Module):
        def forward(self, x):
            if x.shape[0] > 4:
                return x * 2
            return x + 1
    with pytest.raises(ember._dynamo.exc.UserError,
                       match=r"test_export_suite_dynamic.py:\d+ \(gt with 4\)"):
        ember.export.export(Branch(), (_x(ember, 3, 2),),
                            dynamic_shapes={"x": {0: ember.export.Dim("b")}})


def test_data_dependent_branch_is_refused():
    def case(lib):
        class M(lib.nn.Module):
            def forward(self, x):
                if x.sum() > 0:
                    return x * 2
                return x + 1
        return {"kind": _refuses(lib, lambda: lib.export.export(M(), (_x(lib, 3),)))}
    _both(case)


# --- control flow ----------------------------------------------------------------------------
def test_cond_on_a_tensor_predicate():
    def case(lib):
        class M(lib.nn.Module):
            def forward(self, x, y):
                return lib.cond(x.sum() > 0, lambda a, b: a * b, lambda a, b: a - b, (x, y))
        x, y = _x(lib, 3, 2), _x(lib, 3, 2, seed=1)
        m = lib.export.export(M(), (x, y)).module()
        return {"pos": _array(m(x.abs(), y)), "neg": _array(m(-x.abs(), y))}
    _both(case)


def test_cond_on_a_dynamic_size_keeps_both_branches():
    def case(lib):
        class M(lib.nn.Module):
            def forward(self, x):
                return lib.cond(x.shape[0] > 4, lambda a: a.cos(), lambda a: a.sin(), (x,))
        ep = lib.export.export(M(), (_x(lib, 3, 2),),
                               dynamic_shapes={"x": {0: lib.export.Dim("b", min=2, max=9)}})
        m = ep.module()
        return {"small": _array(m(_x(lib, 3, 2))), "large": _array(m(_x(lib, 7, 2))),
                "dims": _symbolic_dims(ep, lib), "ranges": _ranges(ep)}
    _both(case)


def test_cond_with_a_submodule_branch_and_tuple_output():
    def factory(lib):
        class M(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = lib.nn.Linear(2, 2)

            def forward(self, x):
                return lib.cond(x.mean() > 0, lambda a: (self.lin(a), a + 1),
                                lambda a: (a * 3, a - 1), (x,))
        return M()

    def case(lib):
        torch.manual_seed(0)
        tm = factory(torch)
        model = tm if lib is torch else factory(ember)
        if lib is ember:
            model.load_state_dict({k: ember.tensor(v.detach().numpy().copy())
                                   for k, v in tm.state_dict().items()})
        x = _x(lib, 3, 2)
        m = lib.export.export(model, (x,)).module()
        return {"pos": [_array(v) for v in m(x.abs())],
                "neg": [_array(v) for v in m(-x.abs())]}
    _both(case)


def test_map_over_the_first_dimension():
    def case(lib):
        from_lib = torch._higher_order_ops.map if lib is torch else ember._higher_order_ops.map

        class M(lib.nn.Module):
            def forward(self, xs, y):
                return from_lib(lambda x, y: x * y + 1, xs, y)
        xs, y = _x(lib, 4, 3), _x(lib, 3, seed=1)
        ep = lib.export.export(M(), (xs, y),
                               dynamic_shapes={"xs": {0: lib.export.Dim("n", max=32)},
                                               "y": None})
        return {"out": _array(ep.module()(_x(lib, 6, 3), y)), "dims": _symbolic_dims(ep, lib)}
    _both(case)


def test_check_on_static_values_passes_through():
    def case(lib):
        class M(lib.nn.Module):
            def forward(self, x):
                lib._check(x.shape[0] == 3)
                lib._check_is_size(x.shape[1])
                return x + 1
        return {"out": _array(lib.export.export(M(), (_x(lib, 3, 2),)).module()(_x(lib, 3, 2)))}
    _both(case)


def test_save_load_keeps_dynamic_dims():
    import io

    def case(lib):
        d = lib.export.Dim("d", min=2, max=30)
        ep = lib.export.export(_add(lib), (_x(lib, 5, 3), _x(lib, 5, 3, seed=1)),
                               dynamic_shapes={"x": {0: d}, "y": {0: d}})
        buf = io.BytesIO()
        lib.export.save(ep, buf)
        buf.seek(0)
        loaded = lib.export.load(buf)
        return {"out": _array(loaded.module()(_x(lib, 11, 3), _x(lib, 11, 3, seed=1))),
                "ranges": _ranges(loaded), "dims": _symbolic_dims(loaded, lib)}
    _both(case)


def test_size_in_a_view_and_a_constructor():
    def case(lib):
        class M(lib.nn.Module):
            def forward(self, x):
                n = x.shape[0]
                return x.view(n, -1).sum(1) + lib.arange(n) + lib.ones(n)
        ep = lib.export.export(M(), (_x(lib, 3, 2, 2),),
                               dynamic_shapes={"x": {0: lib.export.Dim("n", min=2, max=20)}})
        return {"out": _array(ep.module()(_x(lib, 9, 2, 2)))}
    _both(case)


def test_checks_and_branches_the_declared_range_settles():
    """`torch._check(x.shape[0] > 4)` and `if x.shape[0] >= 5` decide nothing when the
    Dim's range already fixes them: both libraries export; with a range that does not,
    both refuse (UserError)."""
    def case(lib):
        Dim = lib.export.Dim

        class M(lib.nn.Module):
            def forward(self, x):
                lib._check(x.shape[0] > 4)
                lib._check(x.shape[0] <= 10)
                if x.shape[0] >= 5:
                    return x * 2
                return x + 1

        class Two(lib.nn.Module):
            def forward(self, x, y):
                if x.shape[0] + y.shape[1] > 3:
                    return x.sum(0) + y.sum(1)
                return x.sum(0)
        ep = lib.export.export(M(), (_x(lib, 6, 2),),
                               dynamic_shapes={"x": {0: Dim("b", min=5, max=10)}})
        ep2 = lib.export.export(Two(), (_x(lib, 6, 2), _x(lib, 2, 3)),
                                dynamic_shapes={"x": {0: Dim("a", min=2)},
                                                "y": {1: Dim("c", min=2, max=9)}})
        return {"ranges": _ranges(ep), "out": _array(ep.module()(_x(lib, 9, 2))),
                "two": _array(ep2.module()(_x(lib, 3, 2), _x(lib, 2, 7))),
                "ranges2": _ranges(ep2),
                "unsettled": _refuses(lib, lambda: lib.export.export(
                    M(), (_x(lib, 6, 2),), dynamic_shapes={"x": {0: Dim("b")}}))}
    got = _both(case)
    assert got["unsettled"] == "UserError" and got["ranges"] == [(5, 10)]


def test_item_bounded_by_check_decides_a_branch_and_is_checked_at_run_time():
    """`.item()` then `torch._check` bounds: the bounds decide the branch; a call whose
    value breaks them is refused (torch's runtime assertion, a RuntimeError)."""
    def case(lib):
        class M(lib.nn.Module):
            def forward(self, x, y):
                a = (x * 2).sum().item()
                lib._check_is_size(a)
                lib._check(a <= 20)
                if a < 21:
                    return y.sin()
                return y.cos()
        y = _x(lib, 2, 3)
        m = lib.export.export(M(), (lib.tensor([1, 2]), y)).module()
        try:
            m(lib.tensor([30, 4]), y)
            broken = "accepted"
        except RuntimeError:        # torch's runtime assertion; ember's GuardError is one
            broken = "RuntimeError"
        return {"out": _array(m(lib.tensor([3, 4]), y)), "broken": broken}
    got = _both(case)
    assert got["broken"] == "RuntimeError"


def test_item_without_bounds_in_a_branch_is_refused_with_the_line():
    def case(lib):
        class M(lib.nn.Module):
            def forward(self, x, y):
                if x.item() > 2:
                    return y * 2
                return y
        return {"kind": _refuses(lib, lambda: lib.export.export(
            M(), (lib.tensor(4), _x(lib, 2)))).replace("UserError", "RuntimeError")}
    _both(case)

    class M(ember.nn.Module):
        def forward(self, x, y):
            if x.item() > 2:
                return y * 2
            return y
    with pytest.raises(RuntimeError, match=r"\.item\(\) > 2 .*test_export_suite_dynamic.py:\d+"):
        ember.export.export(M(), (ember.tensor(4), _x(ember, 2)))


def test_size_compared_unequal_to_a_constant_is_a_guard_on_auto_dims():
    """`if x.shape[0] == 4` found false (or `x.size(0) not in [4, 5]`) on a Dim.AUTO /
    Dim.DYNAMIC dim is torch's guard `s0 != 4`: the program exports and refuses that
    size per call (AssertionError); on a named Dim both refuse the export."""
    def case(lib):
        Dim = lib.export.Dim

        class M(lib.nn.Module):
            def forward(self, x):
                assert x.size(0) not in [4, 5]
                if x.shape[0] == 6:
                    return x * 2
                return x + 1
        out = {"named": _refuses(lib, lambda: lib.export.export(
            M(), (_x(lib, 3, 2),), dynamic_shapes={"x": {0: Dim("b")}}))}
        for hint in ("AUTO", "DYNAMIC"):
            ep = lib.export.export(M(), (_x(lib, 3, 2),),
                                   dynamic_shapes={"x": {0: getattr(Dim, hint)}})
            m = ep.module()
            out[hint] = (_ranges(ep), _symbolic_dims(ep, lib),
                         [_refuses(lib, lambda n=n: m(_x(lib, n, 2))) for n in (4, 5, 6, 7)])
        out["values"] = _array(m(_x(lib, 9, 2)))
        return out
    got = _both(case)
    assert got["named"] == "UserError"
    assert got["AUTO"][2] == ["AssertionError"] * 3 + ["accepted"]


def test_transformer_layer_with_a_dynamic_sequence_length():
    """One Dim whose sizes enter the graph squared (attention's seq x seq scores): the
    program takes every length of the range, as torch's does."""
    def factory(lib):
        return lib.nn.TransformerEncoderLayer(d_model=8, nhead=2, dim_feedforward=16,
                                              dropout=0.0, batch_first=True).eval()

    def case(lib):
        torch.manual_seed(0)
        model = factory(torch)
        if lib is ember:
            state = {k: ember.tensor(v.detach().numpy().copy())
                     for k, v in model.state_dict().items()}
            model = factory(ember)
            model.load_state_dict(state)
        ep = lib.export.export(model, (_x(lib, 2, 5, 8),),
                               dynamic_shapes={"src": {1: lib.export.Dim("seq", max=64)}})
        with lib.no_grad():
            return {"outs": [_array(ep.module()(_x(lib, 2, n, 8))) for n in (3, 11)],
                    "ranges": _ranges(ep), "dims": _symbolic_dims(ep, lib)}
    _both(case)


def test_auto_dims_narrow_to_the_side_a_comparison_takes():
    """On a Dim.AUTO/DYNAMIC dim, `if x.shape[0] > 4` and `torch._check(x.shape[0] <= 10)`
    narrow the range (torch's [5, int_oo] and [2, 10]); calls outside are refused."""
    def case(lib):
        Dim = lib.export.Dim

        class Branch(lib.nn.Module):
            def forward(self, x):
                if x.shape[0] > 4:
                    return x * 2
                return x + 1

        class Check(lib.nn.Module):
            def forward(self, x):
                lib._check(x.shape[0] <= 10)
                return x + 1
        out = {}
        for name, model in (("branch", Branch()), ("check", Check())):
            for hint in ("AUTO", "DYNAMIC"):
                ep = lib.export.export(model, (_x(lib, 6, 2),),
                                       dynamic_shapes={"x": {0: getattr(Dim, hint)}})
                m = ep.module()
                out[name + hint] = (_ranges(ep), _array(m(_x(lib, 8, 2))),
                                    _refuses(lib, lambda m=m: m(_x(lib, 4, 2))),
                                    _refuses(lib, lambda m=m: m(_x(lib, 11, 2))))
        return {k: (v[0], v[2], v[3]) for k, v in out.items()} | \
            {k + "_out": v[1] for k, v in out.items()}
    got = _both(case)
    assert got["branchAUTO"] == ([(5, None)], "AssertionError", "accepted")
    assert got["checkAUTO"] == ([(2, 10)], "accepted", "AssertionError")
