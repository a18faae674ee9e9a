"""ember.autograd.functional against torch.autograd.functional: values, output structures
(nested tuples / torch's lists), create_graph, strict-mode errors, vectorize both ways."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.autograd.functional as TF

import ember
import ember.autograd.functional as EF
from ember.ir.errors import AutogradError

from tests.oracle import as_numpy


def _lib(x):
    return torch if isinstance(x, torch.Tensor) else ember


def _real(z):
    return _lib(z).real(z)


# name -> (function, input shapes, complex inputs?); written once, run on both libraries
FUNCTIONS = {
    "scalar_to_scalar": (lambda x: (x * x).sin() * 3, [()], False),
    "vector_to_vector": (lambda x: x.sin() * x.exp(), [(4,)], False),
    "matrix_to_scalar": (lambda x: (x.tanh() * x).sum(), [(2, 3)], False),
    "tuple_in_single_out": (lambda x, y: (x * y.sum()).exp(), [(3,), (2,)], False),
    "single_in_tuple_out": (lambda x: (x.cos(), (x * x).sum()), [(3,)], False),
    "tuple_in_tuple_out": (lambda x, y: (x * y[0], (x.sum() * y).sin()), [(2,), (3,)], False),
    "complex_to_real": (lambda z: _real(z * z.conj() + z * z).sum(), [(3,)], True),
    "complex_to_complex": (lambda z, w: z * w.sum() + z.exp(), [(3,), (2,)], True),
}
SCALAR_OUT = ["scalar_to_scalar", "matrix_to_scalar", "complex_to_real"]


def _inputs(rng, shapes, is_complex):
    arrays = []
    for s in shapes:
        a = rng.standard_normal(s)
        if is_complex:
            a = a + 1j * rng.standard_normal(s)
        arrays.append(np.asarray(a))
    return arrays


def _wrap(arrays, lib, requires_grad=False):
    ts = [lib.tensor(a) for a in arrays]
    if requires_grad:
        ts = [t.requires_grad_(True) for t in ts]
    return ts[0] if len(ts) == 1 else tuple(ts)


def assert_same_structure(e, t, what="result"):
    """Same nesting (tuple vs list vs tensor), same values, same requires_grad."""
    if isinstance(t, torch.Tensor):
        assert isinstance(e, ember.Tensor), f"{what}: expected a Tensor, got {type(e)}"
        assert tuple(e.shape) == tuple(t.shape), f"{what}: shape {e.shape} vs {t.shape}"
        np.testing.assert_allclose(as_numpy(e), as_numpy(t), rtol=1e-7, atol=1e-9,
                                   err_msg=what)
        return
    assert type(e) is type(t), f"{what}: {type(e).__name__} vs torch {type(t).__name__}"
    assert len(e) == len(t), f"{what}: length {len(e)} vs {len(t)}"
    for k, (a, b) in enumerate(zip(e, t)):
        assert_same_structure(a, b, f"{what}[{k}]")


def _both(rng, name, call, **kwargs):
    fn, shapes, is_complex = FUNCTIONS[name]
    arrays = _inputs(rng, shapes, is_complex)
    return (call(EF, fn, _wrap(arrays, ember), ember, arrays, **kwargs),
            call(TF, fn, _wrap(arrays, torch), torch, arrays, **kwargs))


def _v_like(arrays_or_shapes, lib, seed):
    rng = np.random.default_rng(seed)
    vs = [lib.tensor(np.asarray(rng.standard_normal(a.shape)).astype(a.dtype))
          for a in arrays_or_shapes]
    return vs[0] if len(vs) == 1 else tuple(vs)


def _output_arrays(fn, arrays):
    out = fn(*[torch.tensor(a) for a in arrays])
    return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
@pytest.mark.parametrize("create_graph", [False, True])
def test_vjp_and_jvp_match_torch(name, create_graph, rng):
    def vjp(F, fn, inputs, lib, arrays, create_graph):
        return F.vjp(fn, inputs, _v_like(_output_arrays(fn, arrays), lib, 1), create_graph)

    def jvp(F, fn, inputs, lib, arrays, create_graph):
        return F.jvp(fn, inputs, _v_like(arrays, lib, 2), create_graph)
    for call in (vjp, jvp):
        e, t = _both(rng, name, call, create_graph=create_graph)
        assert_same_structure(e, t, call.__name__)
        leaves = [x for part in e for x in (part if isinstance(part, tuple) else (part,))]
        assert all(x.requires_grad is False for x in leaves) or create_graph


@pytest.mark.parametrize("name", sorted(SCALAR_OUT))
def test_v_none_for_scalar_output(name, rng):
    e, t = _both(rng, name, lambda F, fn, inputs, lib, arrays: F.vjp(fn, inputs))
    assert_same_structure(e, t)


@pytest.mark.parametrize("name", sorted(n for n in FUNCTIONS if n != "complex_to_complex"))
@pytest.mark.parametrize("vectorize", [False, True])
def test_jacobian_matches_torch(name, vectorize, rng):
    e, t = _both(rng, name, lambda F, fn, inputs, lib, arrays: F.jacobian(
        fn, inputs, vectorize=vectorize))
    assert_same_structure(e, t, "jacobian")


@pytest.mark.parametrize("name", ["vector_to_vector", "tuple_in_tuple_out",
                                  "single_in_tuple_out"])
def test_forward_mode_jacobian_matches_torch(name, rng):
    e, t = _both(rng, name, lambda F, fn, inputs, lib, arrays: F.jacobian(
        fn, inputs, vectorize=True, strategy="forward-mode"))
    assert_same_structure(e, t, "jacobian(forward-mode)")


HESSIAN_FUNCTIONS = {
    "single": (lambda x: (x.sin() * x * x).sum(), [(3,)]),
    "tuple": (lambda x, y: (x.exp() * y.sum() * y[0]).sum(), [(2,), (3,)]),
    "scalar": (lambda x: x.cos() * x * x, [()]),
}


@pytest.mark.parametrize("name", sorted(HESSIAN_FUNCTIONS))
@pytest.mark.parametrize("mode", ["loop", "vectorized", "forward-over-reverse"])
def test_hessian_matches_torch(name, mode, rng):
    fn, shapes = HESSIAN_FUNCTIONS[name]
    arrays = _inputs(rng, shapes, False)
    kwargs = {"loop": {}, "vectorized": dict(vectorize=True),
              "forward-over-reverse": dict(vectorize=True,
                                           outer_jacobian_strategy="forward-mode")}[mode]
    e = EF.hessian(fn, _wrap(arrays, ember), **kwargs)
    t = TF.hessian(fn, _wrap(arrays, torch), **kwargs)
    detach = (lambda x: x.detach()) if mode == "forward-over-reverse" else (lambda x: x)
    assert_same_structure(_map(e, detach), _map(t, detach), f"hessian {mode}")


def _map(x, f):
    if isinstance(x, (tuple, list)):
        return type(x)(_map(v, f) for v in x)
    return f(x)


@pytest.mark.parametrize("name", sorted(HESSIAN_FUNCTIONS))
@pytest.mark.parametrize("which", ["hvp", "vhp"])
def test_hvp_vhp_match_torch(name, which, rng):
    fn, shapes = HESSIAN_FUNCTIONS[name]
    arrays = _inputs(rng, shapes, False)
    e = getattr(EF, which)(fn, _wrap(arrays, ember), _v_like(arrays, ember, 3))
    t = getattr(TF, which)(fn, _wrap(arrays, torch), _v_like(arrays, torch, 3))
    assert_same_structure(e, t, which)


def test_create_graph_gives_differentiable_results(rng):
    """Third derivatives through hessian(create_graph=True), and the double backward of
    jacobian/vjp/hvp, match torch's."""
    x = rng.standard_normal(3)
    f = lambda a: (a.sin() * a * a).sum()            # noqa: E731
    results = []
    for lib, F in ((ember, EF), (torch, TF)):
        xt = lib.tensor(x).requires_grad_(True)
        h = F.hessian(f, xt, create_graph=True)
        j = F.jacobian(lambda a: a.exp() * a, xt, create_graph=True)
        _, hv = F.hvp(f, xt, lib.tensor(x), create_graph=True)
        _, vj = F.vjp(lambda a: a.tanh(), xt, lib.tensor(x), create_graph=True)
        assert h.requires_grad and j.requires_grad and hv.requires_grad and vj.requires_grad
        results.append(lib.autograd.grad((h * h).sum() + j.sum() + hv.sum() + vj.sum(), xt))
    np.testing.assert_allclose(as_numpy(results[0][0]), as_numpy(results[1][0]), rtol=1e-7)


def _error_pair(call):
    """Run `call(F, lib)` in ember and torch; both must raise; return both messages."""
    with pytest.raises(AutogradError) as e_info:
        call(EF, ember)
    with pytest.raises(RuntimeError) as t_info:
        call(TF, torch)
    return str(e_info.value), str(t_info.value)


STRICT_CASES = {
    "vjp_unused_input": (lambda F, lib: F.vjp(lambda x, y: x * 2, (lib.ones(2), lib.ones(2)),
                                              (lib.ones(2)), strict=True),
                         "independent of input 1"),
    "jacobian_unused_input": (lambda F, lib: F.jacobian(lambda x, y: x * 2,
                                                        (lib.ones(2), lib.ones(2)),
                                                        strict=True),
                              "Output 0 of the user-provided function is independent of "
                              "input 1"),
    "output_without_grad": (lambda F, lib: F.jacobian(lambda x: lib.ones(2), lib.ones(2),
                                                      strict=True),
                            "Output 0 of the user-provided function does not require "
                            "gradients"),
    "jvp_constant_output": (lambda F, lib: F.jvp(lambda x: (x * 0).detach() + 1, lib.ones(2),
                                                 lib.ones(2), strict=True),
                            "Output 0 of the user-provided function does not require "
                            "gradients"),
    "vhp_linear": (lambda F, lib: F.vhp(lambda x: (x * 3).sum(), lib.ones(2), lib.ones(2),
                                        strict=True),
                   "jacobian of the user-provided function with respect to input"),
    "hessian_linear": (lambda F, lib: F.hessian(lambda x, y: (x * 3).sum() + (y * y).sum(),
                                                (lib.ones(2), lib.ones(2)), strict=True),
                       "jacobian of the user-provided function with respect to input"),
}


@pytest.mark.parametrize("case", sorted(STRICT_CASES))
def test_strict_mode_errors_name_the_index(case):
    call, expected = STRICT_CASES[case]
    ember_msg, torch_msg = _error_pair(call)
    assert expected in ember_msg and expected in torch_msg, (ember_msg, torch_msg)
    if "{i}" not in torch_msg:      # torch forgets to format one of its messages
        assert ember_msg == torch_msg


BAD_ARGUMENTS = {
    "v_wrong_size": lambda F, lib: F.vjp(lambda x: x * 2, lib.ones(3), lib.ones(2)),
    "v_tuple_wrong_length": lambda F, lib: F.jvp(lambda x, y: x * y, (lib.ones(2),
                                                                      lib.ones(2)),
                                                 (lib.ones(2),)),
    "v_none_nonscalar": lambda F, lib: F.vjp(lambda x: x * 2, lib.ones(3)),
    "hessian_of_vector": lambda F, lib: F.hessian(lambda x: x * x, lib.ones(3)),
    "hvp_tuple_output": lambda F, lib: F.hvp(lambda x: (x.sum(), x.sum()), lib.ones(3),
                                             lib.ones(3)),
    "strict_and_vectorize": lambda F, lib: F.jacobian(lambda x: x * 2, lib.ones(3),
                                                      strict=True, vectorize=True),
}


@pytest.mark.parametrize("case", sorted(BAD_ARGUMENTS))
def test_bad_arguments_raise_torchs_messages(case):
    ember_msg, torch_msg = _error_pair(BAD_ARGUMENTS[case])
    assert _same_words(ember_msg, torch_msg), (ember_msg, torch_msg)


def _same_words(a: str, b: str) -> bool:
    """Messages equal once library names and Size spellings are taken out."""
    def norm(s):
        for name in ("torch.autograd.functional.", "ember.autograd.functional.", "torch.",
                     "ember."):
            s = s.replace(name, "")
        return s
    return norm(a) == norm(b)


def test_non_tensor_input_is_a_type_error():
    for F, lib in ((EF, ember), (TF, torch)):
        with pytest.raises(TypeError, match="must be either a Tensor or a tuple of Tensors"):
            F.jacobian(lambda x: x, (lib.ones(2), 3.0))


def test_forward_mode_needs_vectorize():
    for F, lib in ((EF, ember), (TF, torch)):
        with pytest.raises(NotImplementedError, match="only implemented for `vectorize=True`"):
            F.jacobian(lambda x: x * 2, lib.ones(2), strategy="forward-mode")


def test_complex_output_jacobian_follows_torch(rng):
    """An implicit cotangent of 1 on a complex output is refused (it would give conj(J));
    the vectorized jacobian, which passes basis cotangents, matches torch's."""
    z = rng.standard_normal(3) + 1j * rng.standard_normal(3)
    ember_msg, torch_msg = _error_pair(lambda F, lib: F.jacobian(lambda a: a * a.exp(),
                                                                 lib.tensor(z)))
    assert _same_words(ember_msg, torch_msg), (ember_msg, torch_msg)
    e = EF.jacobian(lambda a: a * a.exp(), ember.tensor(z), vectorize=True)
    t = TF.jacobian(lambda a: a * a.exp(), torch.tensor(z), vectorize=True)
    assert_same_structure(e, t, "complex jacobian (vectorized)")
