"""ember.autograd.forward_ad against torch.autograd.forward_ad: tangents through ops
(derived from VJP rules), views, in-place ops on views and bases, complex, nesting with
reverse mode, and the API's errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.autograd.forward_ad as tfw

import ember
import ember.autograd.forward_ad as efw
from ember.ir.errors import AutogradError

from tests.oracle import as_numpy


def _lib(x):
    return torch if isinstance(x, torch.Tensor) else ember


def _inplace_on_view(x):
    y = x * 1.0
    y[0].mul_(x[1])          # in-place on a view: the base's tangent changes too
    y[1:].add_(x[0] * 2)
    return y


def _inplace_on_base_seen_by_view(x):
    y = x.exp()
    v = y[1]                 # a view taken before the base changes
    y.mul_(x)
    return v * 3, y


def _copy_into_plain_tensor(x):
    lib = _lib(x)
    y = lib.zeros(x.shape, dtype=x.dtype)
    y[1].copy_(x[0].sin())   # a tensor without tangent gets one through a view
    return y


FUNCTIONS = {
    "pointwise": lambda x: x.sin() * x.exp() + x / (1 + x * x),
    "reductions": lambda x: (x.sum(0), (x * x).mean(), x.logsumexp(1)),
    "matmul": lambda x: x @ x.t(),
    "views": lambda x: (x.t()[1:], x.reshape(-1)[::2], x.unsqueeze(0).expand(2, 3, 4), x[0]),
    "softmax": lambda x: _lib(x).nn.functional.softmax(x, 1),
    "multi_output": lambda x: x.max(1).values * 2,
    "inplace_on_view": _inplace_on_view,
    "inplace_on_base_seen_by_view": _inplace_on_base_seen_by_view,
    "copy_into_plain_tensor": _copy_into_plain_tensor,
    "cat_stack": lambda x: (_lib(x).cat([x, x * 2], 0), _lib(x).stack([x, x.cos()])),
}


def _tangents(fn, x, v, fw, lib):
    with fw.dual_level():
        out = fn(fw.make_dual(lib.tensor(x), lib.tensor(v)))
        outs = out if isinstance(out, tuple) else (out,)
        return [(fw.unpack_dual(o).primal, fw.unpack_dual(o).tangent) for o in outs]


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_tangents_match_torch(name, rng):
    x, v = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    got = _tangents(FUNCTIONS[name], x, v, efw, ember)
    want = _tangents(FUNCTIONS[name], x, v, tfw, torch)
    assert len(got) == len(want)
    for k, ((ep, et), (tp, tt)) in enumerate(zip(got, want)):
        np.testing.assert_allclose(as_numpy(ep), as_numpy(tp), rtol=1e-10,
                                   err_msg=f"{name} primal {k}")
        assert et is not None, f"{name}: output {k} has no tangent"
        np.testing.assert_allclose(as_numpy(et), as_numpy(tt), rtol=1e-9, atol=1e-12,
                                   err_msg=f"{name} tangent {k}")


def test_complex_tangents_match_torch(rng):
    z = rng.standard_normal(5) + 1j * rng.standard_normal(5)
    v = rng.standard_normal(5) + 1j * rng.standard_normal(5)

    def fn(x):
        return (x * x.conj() + x.exp() * x, _lib(x).real(x * x).sum(), x.abs())
    got = _tangents(fn, z, v, efw, ember)
    want = _tangents(fn, z, v, tfw, torch)
    for (_, et), (_, tt) in zip(got, want):
        np.testing.assert_allclose(as_numpy(et), as_numpy(tt), rtol=1e-9, atol=1e-12)


def test_tangent_shares_storage_with_views():
    with efw.dual_level():
        x = efw.make_dual(ember.zeros(3, 2, dtype=ember.float64),
                          ember.ones(3, 2, dtype=ember.float64))
        row = x[1]
        row.mul_(0)          # tangent of x's row 1 becomes 0 as well
        tangent = efw.unpack_dual(x).tangent
    assert tangent.numpy().tolist() == [[1, 1], [0, 0], [1, 1]]


def test_forward_over_reverse_hvp(rng):
    """The tangent of a gradient (forward-mode through backward rules) is H v."""
    x, v = rng.standard_normal(4), rng.standard_normal(4)
    results = []
    for lib, fw in ((ember, efw), (torch, tfw)):
        with fw.dual_level():
            xd = fw.make_dual(lib.tensor(x).requires_grad_(True), lib.tensor(v))
            (g,) = lib.autograd.grad((xd.sin() * xd * xd).sum(), xd, create_graph=True)
            results.append(fw.unpack_dual(g).tangent)
    np.testing.assert_allclose(as_numpy(results[0]), as_numpy(results[1]), rtol=1e-9)


def test_tangent_is_differentiable_in_reverse_mode(rng):
    """Reverse over forward: d/dx <J(x) v, 1> matches torch."""
    x, v = rng.standard_normal(4), rng.standard_normal(4)
    results = []
    for lib, fw in ((ember, efw), (torch, tfw)):
        xt = lib.tensor(x).requires_grad_(True)
        with fw.dual_level():
            t = fw.unpack_dual((fw.make_dual(xt, lib.tensor(v)).tanh() ** 2)).tangent
            results.append(lib.autograd.grad(t.sum(), xt)[0])
    np.testing.assert_allclose(as_numpy(results[0]), as_numpy(results[1]), rtol=1e-9)


def test_level_exit_strips_tangents():
    with efw.dual_level():
        x = efw.make_dual(ember.ones(2, dtype=ember.float64), ember.ones(2, dtype=ember.float64))
        y = x * 2
        assert efw.unpack_dual(y).tangent is not None
    assert efw.unpack_dual(y).tangent is None
    assert efw.unpack_dual(x * 3).tangent is None


def test_unpack_dual_is_a_namedtuple():
    with efw.dual_level():
        p, t = ember.ones(2, dtype=ember.float64), ember.zeros(2, dtype=ember.float64)
        unpacked = efw.unpack_dual(efw.make_dual(p, t))
        assert type(unpacked).__name__ == "UnpackedDualTensor"
        assert unpacked.tangent is t and unpacked.primal.numpy().tolist() == [1, 1]


def test_enter_exit_functions():
    level = efw.enter_dual_level()
    try:
        x = efw.make_dual(ember.ones(2, dtype=ember.float64), ember.ones(2, dtype=ember.float64),
                          level=level)
        assert efw.unpack_dual((x * x).sum(), level=level).tangent.item() == 4.0
    finally:
        efw.exit_dual_level(level=level)


ERRORS = {
    "no_level": (lambda: efw.make_dual(ember.ones(2), ember.ones(2)),
                 "no level exists, make sure to enter_dual_level"),
    "nested": (lambda: _nested(), "Nested forward mode AD is not supported"),
    "shape": (lambda: _in_level(lambda: efw.make_dual(ember.ones(2), ember.ones(3))),
              "different size"),
    "dtype": (lambda: _in_level(lambda: efw.make_dual(ember.ones(2),
                                                      ember.ones(2, dtype=ember.float64))),
              "same dtype"),
    "integer_primal": (lambda: _in_level(lambda: efw.make_dual(ember.ones(2, dtype=ember.int64),
                                                               ember.ones(2,
                                                                          dtype=ember.int64))),
                       "floating point or complex"),
}


def _in_level(fn):
    with efw.dual_level():
        fn()


def _nested():
    with efw.dual_level():
        with efw.dual_level():
            pass


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_errors(case):
    fn, match = ERRORS[case]
    with pytest.raises(AutogradError, match=match):
        fn()
