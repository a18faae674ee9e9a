"""gradcheck / gradgradcheck: pass on correct functions (real and complex, forward AD too),
fail on deliberately wrong custom Functions with the output, input and element named."""
from __future__ import annotations

import re

import numpy as np
import pytest

import ember
from ember.autograd import Function, GradcheckError, gradcheck, gradgradcheck
from ember.ir.errors import AutogradError


def _real(n, rng, requires_grad=True):
    return ember.tensor(rng.standard_normal(n), requires_grad=requires_grad)


def _complex(n, rng):
    return ember.tensor(rng.standard_normal(n) + 1j * rng.standard_normal(n),
                        requires_grad=True)


class WrongSquare(Function):
    """forward x*x, backward claims 3x (should be 2x): a deliberately wrong rule."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * x * 3


class WrongAtOneElement(Function):
    """Right everywhere except d out[2] / d x[2], which is doubled."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.sin()

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        scale = ember.tensor([1.0, 1.0, 2.0, 1.0], dtype=ember.float64)
        return g * x.cos() * scale


class NoConjugate(Function):
    """exp(z) with the holomorphic derivative but without conj: wrong for complex z."""

    @staticmethod
    def forward(ctx, z):
        out = z.exp()
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g * out


class WrongSecondDerivative(Function):
    """x**3 whose backward is right in value (3 x^2) but built as 3 * x.detach() * x, so its
    own derivative (the second derivative) is off by a factor of 2."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 3 * x.detach() * x


CORRECT = {
    "pointwise": (lambda x: x.sin() * x.exp(), lambda rng: (_real(4, rng),)),
    "two_in_two_out": (lambda x, y: (x * y.sum(), (x.tanh() @ y.reshape(3, 1)).sum()),
                       lambda rng: (_real(3, rng), _real(3, rng))),
    "non_tensor_and_constant_args": (lambda x, k, c: x * k + c,
                                     lambda rng: (_real(3, rng), 2.5, _real(3, rng, False))),
    "complex_in_complex_out": (lambda z: z * z.exp() + z.conj(), lambda rng: (_complex(3, rng),)),
    "complex_in_real_out": (lambda z: ember.real(z * z.conj()) + z.abs(),
                            lambda rng: (_complex(3, rng),)),
    "real_and_complex_in": (lambda x, z: (x * z).sum() * z,
                            lambda rng: (_real(2, rng), _complex(2, rng))),
}


@pytest.mark.parametrize("name", sorted(CORRECT))
@pytest.mark.parametrize("fast_mode", [False, True])
def test_gradcheck_passes_on_correct_functions(name, fast_mode, rng):
    fn, make = CORRECT[name]
    assert gradcheck(fn, make(rng), fast_mode=fast_mode, check_forward_ad=True)


@pytest.mark.parametrize("name", ["pointwise", "complex_in_complex_out", "real_and_complex_in"])
def test_gradgradcheck_passes_on_correct_functions(name, rng):
    fn, make = CORRECT[name]
    assert gradgradcheck(fn, make(rng))


def _mismatch(exc: GradcheckError):
    """(output, input, jacobian row, column, numerical, analytical) from the message."""
    m = re.search(r"mismatch for output (\d+) with respect to input (\d+),\nat jacobian row "
                  r"(\d+) .*?, column (\d+) .*?: numerical: (\S+) analytical: (\S+)", str(exc))
    assert m, f"message does not name the element: {exc}"
    o, i, row, col = (int(g) for g in m.groups()[:4])
    return o, i, row, col, float(m.group(5)), float(m.group(6))


def test_gradcheck_of_a_tuple_of_multi_output_op_results(rng):
    a = ember.tensor(rng.standard_normal((3, 3)), requires_grad=True)
    sym_eigh = lambda a: tuple(ember.linalg.eigh(a + a.transpose(0, 1)))
    assert gradcheck(sym_eigh, (a,))
    assert gradgradcheck(sym_eigh, (a,))
    x = _real(4, rng)
    assert gradcheck(lambda x: x.chunk(2), (x,))


def test_wrong_rule_names_output_input_and_values(rng):
    x = _real(3, rng)
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda a, b: (b * 2, WrongSquare.apply(a)), (x, _real(2, rng)))
    o, i, row, col, numerical, analytical = _mismatch(info.value)
    assert (o, i) == (1, 0) and row == col
    xv = float(x.detach().numpy()[row])
    assert numerical == pytest.approx(2 * xv, rel=1e-5)
    assert analytical == pytest.approx(3 * xv, rel=1e-9)
    assert isinstance(info.value, AutogradError)


def test_wrong_element_is_located(rng):
    x = _real(4, rng)
    with pytest.raises(GradcheckError) as info:
        gradcheck(WrongAtOneElement.apply, (x,))
    o, i, row, col, numerical, analytical = _mismatch(info.value)
    assert (o, i, row, col) == (0, 0, 2, 2)
    assert analytical == pytest.approx(2 * numerical, rel=1e-5)
    assert "input element (2,)" in str(info.value)


def test_fast_mode_failure_reports_the_element(rng):
    with pytest.raises(GradcheckError) as info:
        gradcheck(WrongAtOneElement.apply, (_real(4, rng),), fast_mode=True)
    assert _mismatch(info.value)[:4] == (0, 0, 2, 2)


def test_missing_conjugate_fails_on_the_imaginary_part(rng):
    with pytest.raises(GradcheckError, match="complex") as info:
        gradcheck(NoConjugate.apply, (_complex(3, rng),))
    assert _mismatch(info.value)[:2] == (0, 0)


def test_raise_exception_false_returns_false(rng):
    assert gradcheck(WrongSquare.apply, (_real(3, rng),), raise_exception=False) is False


def test_gradgradcheck_catches_a_wrong_second_derivative(rng):
    x = _real(3, rng)
    assert gradcheck(WrongSecondDerivative.apply, (x,))       # first derivative is right
    with pytest.raises(GradcheckError) as info:
        gradgradcheck(WrongSecondDerivative.apply, (x,))
    o, i, row, col, numerical, analytical = _mismatch(info.value)
    assert (o, i) == (0, 0) and row == col
    assert analytical == pytest.approx(numerical / 2, rel=1e-4)


def test_forward_ad_check_uses_forward_mode(rng):
    """Custom Functions have no forward rule; registry ops do (derived from the VJP)."""
    assert gradcheck(lambda x: x.tanh().cumsum(0), (_real(4, rng),), check_forward_ad=True,
                     check_backward_ad=False)


def test_no_input_requires_grad_is_a_value_error(rng):
    with pytest.raises(ValueError, match="at least one input tensor to require gradient"):
        gradcheck(lambda x: x * 2, (_real(3, rng, requires_grad=False),))


def test_low_precision_inputs_warn(rng):
    x = ember.tensor(rng.standard_normal(3).astype(np.float32), requires_grad=True)
    with pytest.warns(UserWarning, match="not of double precision"):
        gradcheck(lambda a: a * 2, (x,), atol=1e-2, rtol=1e-2, eps=1e-3)


# --- PyTorch's keyword arguments that its own test suites pass ------------------------

def test_grad_is_grads_batched_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    xv, cv = rng.standard_normal((3, 4)), rng.standard_normal((5, 3))
    x = ember.tensor(xv, requires_grad=True)
    (got,) = ember.autograd.grad((x.sin() * x).sum(1), x, ember.tensor(cv),
                                 is_grads_batched=True)
    xt = torch.tensor(xv, requires_grad=True)
    (want,) = torch.autograd.grad((xt.sin() * xt).sum(1), xt, torch.tensor(cv),
                                  is_grads_batched=True)
    assert tuple(got.shape) == tuple(want.shape) == (5, 3, 4)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12, atol=1e-12)


def test_grad_is_grads_batched_rejects_mismatched_batches():
    x = ember.tensor(np.ones(3), requires_grad=True)
    with pytest.raises(AutogradError, match="same batch size"):
        ember.autograd.grad([x * 2, x * 3], x, [ember.ones(2, 3), ember.ones(4, 3)],
                            is_grads_batched=True)


def test_gradcheck_takes_torch_suite_keywords():
    """NewModuleTest passes check_batched_grad / fast_mode / check_forward_ad to gradcheck
    and check_batched_grad / check_fwd_over_rev to gradgradcheck."""
    rng = np.random.default_rng(1)
    conv = ember.nn.Conv2d(2, 3, 2).double()
    x = ember.tensor(rng.standard_normal((1, 2, 4, 4)), requires_grad=True)

    def fn(*a):
        return conv(a[0])
    args = (x,) + tuple(conv.parameters())
    assert gradcheck(fn, args, check_batched_grad=True, fast_mode=None, masked=None)
    assert gradgradcheck(fn, args, check_batched_grad=True, gen_non_contig_grad_outputs=True,
                         check_fwd_over_rev=False)
    with pytest.raises(NotImplementedError, match="check_batched_forward_grad"):
        gradcheck(fn, args, check_batched_forward_grad=True)


def test_gradgradcheck_non_contiguous_grad_outputs_still_catch_wrong_rule():
    rng = np.random.default_rng(2)
    x = _real(4, rng)
    with pytest.raises(GradcheckError):
        gradgradcheck(lambda t: WrongSquare.apply(t) * t, (x,),
                      gen_non_contig_grad_outputs=True)


def _gradcheck_module():
    import importlib
    return importlib.import_module("ember.frontend.autograd.gradcheck")


def test_fast_mode_forward_ad_projects_instead_of_full_jacobian(monkeypatch):
    """fast_mode with check_forward_ad compares J v along a random v (no full numerical
    jacobian)."""
    gc = _gradcheck_module()
    rng = np.random.default_rng(3)
    x = _real(6, rng)
    calls = []
    real = gc._numerical
    monkeypatch.setattr(gc, "_numerical", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert gradcheck(lambda t: (t.sin() * t).cumsum(0), (x,), fast_mode=True,
                     check_forward_ad=True)
    assert not calls


def test_fast_mode_forward_ad_catches_wrong_tangents(monkeypatch):
    """Tangents scaled by 1.5 (a wrong forward rule, simulated) fail the fast check, and
    the element-wise fallback names the forward-mode mismatch."""
    import types
    gc = _gradcheck_module()
    real = gc.forward_ad

    def unpack_dual(t):
        primal, tangent = real.unpack_dual(t)
        return types.SimpleNamespace(primal=primal,
                                     tangent=None if tangent is None else tangent * 1.5)
    monkeypatch.setattr(gc, "forward_ad", types.SimpleNamespace(
        dual_level=real.dual_level, make_dual=real.make_dual, unpack_dual=unpack_dual))
    rng = np.random.default_rng(4)
    x = _real(5, rng)
    with pytest.raises(GradcheckError, match="forward mode"):
        gradcheck(lambda t: t.sin() * t, (x,), fast_mode=True, check_forward_ad=True)


def test_gradcheck_and_gradgradcheck_on_empty_batch():
    """A zero-size input (a conv on an empty batch) has empty jacobians: both pass, as
    torch's do."""
    torch = pytest.importorskip("torch")
    conv = ember.nn.Conv1d(2, 3, 2).double()
    x = ember.zeros(0, 2, 5, dtype=ember.float64, requires_grad=True)

    def fn(*a):
        return conv(a[0])
    args = (x,) + tuple(conv.parameters())
    assert gradcheck(fn, args) and gradgradcheck(fn, args)
    tconv = torch.nn.Conv1d(2, 3, 2).double()
    tx = torch.zeros(0, 2, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: tconv(a[0]), (tx,) + tuple(tconv.parameters()))
