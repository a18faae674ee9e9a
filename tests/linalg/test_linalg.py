"""ember.linalg beyond the op table: NumPy values, gauge-invariant gradients against torch
for complex eigh/eig/svd, Hermitian-input ops through a symmetrizing wrapper (as torch's
OpInfo), phase errors, singular/non-square errors, and tracing into graphs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
import ember.fx
import ember.linalg as LA
from ember.ir.ops.linalg_common import _distinct_spectrum, _spd, _well_conditioned

from tests.oracle import assert_close


def _both(a, requires_grad=False):
    return (ember.tensor(a, requires_grad=requires_grad),
            torch.tensor(a, requires_grad=requires_grad))


def _grads_match(e_fn, t_fn, arrays, rtol=1e-6, atol=1e-8):
    e_in = [ember.tensor(a, requires_grad=True) for a in arrays]
    t_in = [torch.tensor(a, requires_grad=True) for a in arrays]
    e_out, t_out = e_fn(*e_in), t_fn(*t_in)
    assert_close(e_out, t_out, rtol=rtol, atol=atol, what="value")
    for i, (eg, tg) in enumerate(zip(ember.autograd.grad(e_out, e_in),
                                     torch.autograd.grad(t_out, t_in))):
        assert_close(eg, tg, rtol=1e-5, atol=1e-7, what=f"grad {i}")


# --- values vs NumPy --------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex128])
def test_values_match_numpy_batched(rng, dtype):
    a = _well_conditioned(rng, 2, 3, 4, 4, dtype=dtype)
    b = np.asarray(rng.standard_normal((2, 3, 4, 2)), dtype)
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    x = ember.tensor(a)
    np.testing.assert_allclose(LA.inv(x).numpy(), np.linalg.inv(a), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(LA.det(x).numpy(), np.linalg.det(a), rtol=rtol)
    np.testing.assert_allclose(LA.solve(x, ember.tensor(b)).numpy(), np.linalg.solve(a, b),
                               rtol=rtol, atol=rtol)
    np.testing.assert_allclose(LA.svdvals(x).numpy(), np.linalg.svd(a, compute_uv=False),
                               rtol=rtol)
    np.testing.assert_allclose(LA.pinv(x).numpy(), np.linalg.pinv(a), rtol=rtol * 10,
                               atol=rtol)
    assert LA.eigvals(x).dtype == (ember.complex64 if dtype == np.float32 else ember.complex128)


def test_decompositions_reconstruct(rng):
    a = _well_conditioned(rng, 2, 4, 3, dtype=np.complex128)
    x = ember.tensor(a)
    U, S, Vh = LA.svd(x, full_matrices=False)
    np.testing.assert_allclose((U.numpy() * S.numpy()[..., None, :]) @ Vh.numpy(), a,
                               atol=1e-12)
    Q, R = LA.qr(x)
    np.testing.assert_allclose(Q.numpy() @ R.numpy(), a, atol=1e-12)
    h = _distinct_spectrum(rng, 3, 3, dtype=np.complex128)
    w, V = LA.eigh(ember.tensor(h))
    np.testing.assert_allclose(V.numpy() @ np.diag(w.numpy()) @ V.numpy().conj().T, h,
                               atol=1e-12)
    w, V = LA.eig(ember.tensor(a[0, :3]))
    np.testing.assert_allclose(a[0, :3] @ V.numpy(), V.numpy() * w.numpy(), atol=1e-12)
    # the gauge: each eigenvector's largest entry is real positive
    peak = np.take_along_axis(V.numpy(), np.abs(V.numpy()).argmax(0)[None], 0)
    np.testing.assert_allclose(peak.imag, 0, atol=1e-14)
    assert (peak.real > 0).all()


def test_named_tuples_and_lstsq_outputs(rng):
    a, b = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    sign, logabsdet = LA.slogdet(ember.tensor(a[:3]))
    assert sign.shape == () and logabsdet.dtype == ember.float64
    r = LA.lstsq(ember.tensor(a), ember.tensor(b), driver="gelsd")
    t = torch.linalg.lstsq(torch.tensor(a), torch.tensor(b), driver="gelsd")
    for name in ("solution", "residuals", "rank", "singular_values"):
        assert_close(getattr(r, name), getattr(t, name), rtol=1e-10, atol=1e-10, what=name)


# --- gradients: phase-invariant losses, Hermitian inputs ----------------------------------

def test_complex_svd_eigh_eig_gradients_match_torch(rng):
    a = _well_conditioned(rng, 4, 3, dtype=np.complex128)
    # |U|, |V| and products U diag(S) Vh are phase-invariant
    _grads_match(lambda A: (LA.svd(A, full_matrices=False).U.abs() ** 2).sum() +
                 LA.svd(A, full_matrices=False).S.sum(),
                 lambda A: (torch.linalg.svd(A, full_matrices=False).U.abs() ** 2).sum() +
                 torch.linalg.svd(A, full_matrices=False).S.sum(), [a[:3] * 0 + a[:3]])
    sym = lambda m: (m + m.mH) / 2 if isinstance(m, torch.Tensor) else \
        (m + ember.conj(m.transpose(-2, -1))) / 2
    h = _distinct_spectrum(rng, 3, 3, dtype=np.complex128)
    _grads_match(lambda A: (LA.eigh(sym(A)).eigenvectors.abs()[:, 0]).sum() +
                 LA.eigvalsh(sym(A)).sum(),
                 lambda A: (torch.linalg.eigh(sym(A)).eigenvectors.abs()[:, 0]).sum() +
                 torch.linalg.eigvalsh(sym(A)).sum(), [h])
    _grads_match(lambda A: LA.eig(A).eigenvectors.abs().sum() + ember.real(LA.eigvals(A)).sum(),
                 lambda A: torch.linalg.eig(A).eigenvectors.abs().sum() +
                 torch.linalg.eigvals(A).real.sum(), [a[:3].copy()])


def test_hermitian_input_ops_gradcheck(rng):
    """Gradients of ops reading one triangle, through A -> (A + A^H)/2 (torch's OpInfo way)."""
    spd = _spd(rng, 3, 3)
    sym = lambda m: (m + m.transpose(-2, -1)) * 0.5
    assert ember.autograd.gradcheck(lambda A: LA.cholesky(sym(A)), [ember.tensor(
        spd, requires_grad=True)])
    assert ember.autograd.gradcheck(lambda A: LA.cholesky(sym(A), upper=True), [ember.tensor(
        spd, requires_grad=True)])
    h = _distinct_spectrum(rng, 3, 3)
    # a scalar of both outputs: gradcheck's multi-output path is its own matter
    assert ember.autograd.gradcheck(lambda A: (LA.eigh(sym(A))[1][0] * LA.eigh(sym(A))[0]).sum(),
                                    [ember.tensor(h, requires_grad=True)])
    _grads_match(lambda A: (LA.cholesky(sym(A)) ** 2).sum() +
                 (LA.eigh(sym(A))[1][0] ** 3).abs().sum(),
                 lambda A: (torch.linalg.cholesky(sym(A)) ** 2).sum() +
                 (torch.linalg.eigh(sym(A))[1][0] ** 3).abs().sum(), [spd], rtol=1e-6)


def test_cond_2_norm_gradient_matches_torch(rng):
    a = rng.standard_normal((2, 4, 3))
    _grads_match(lambda A: LA.cond(A).sum(), lambda A: torch.linalg.cond(A).sum(), [a])


def test_norm_gradient_at_zero_is_zero_as_torch():
    e, t = _both(np.zeros((2, 3)), requires_grad=True)
    (ge,) = ember.autograd.grad(LA.vector_norm(e), [e])
    (gt,) = torch.autograd.grad(torch.linalg.vector_norm(t), [t])
    assert_close(ge, gt, what="grad at 0")


def test_phase_dependent_loss_raises_like_torch(rng):
    a = ember.tensor(_well_conditioned(rng, 3, 3, dtype=np.complex128), requires_grad=True)
    with pytest.raises(ember.AutogradError, match="svd_backward: The singular vectors in the "
                                                  "complex case are specified up to"):
        ember.autograd.grad(LA.svd(a).U.sum().abs(), [a])
    with pytest.raises(ember.AutogradError, match="linalg_eig_backward: The eigenvectors"):
        ember.autograd.grad(LA.eig(a).eigenvectors.sum().abs(), [a])
    with pytest.raises(ember.AutogradError, match="linalg_eigh_backward: The eigenvectors"):
        ember.autograd.grad(LA.eigh(a).eigenvectors.sum().abs(), [a])


# --- errors -------------------------------------------------------------------------------

def test_singular_and_indefinite_errors_match_torch():
    singular = np.array([[1.0, 2.0], [2.0, 4.0]])
    for fn in ("inv",):
        with pytest.raises(RuntimeError) as t_err:
            getattr(torch.linalg, fn)(torch.tensor(singular))
        with pytest.raises(LA.LinAlgError) as e_err:
            getattr(LA, fn)(ember.tensor(singular))
        assert str(t_err.value) in str(e_err.value)
    with pytest.raises(LA.LinAlgError, match=r"\(Batch element 1\): The diagonal element 1 is "
                                             r"zero"):
        LA.inv(ember.tensor(np.stack([np.eye(2), np.zeros((2, 2))])))
    with pytest.raises(LA.LinAlgError, match="The solver failed because the input matrix is "
                                             "singular"):
        LA.solve(ember.tensor(singular), ember.tensor(np.ones(2)))
    with pytest.raises(LA.LinAlgError, match=r"leading minor of order 1 is not positive-"
                                             r"definite") as err:
        LA.cholesky(ember.tensor(-np.eye(3)))
    assert "test_linalg.py" in str(err.value)         # the user's line
    info = LA.cholesky_ex(ember.tensor(-np.eye(3))).info
    assert int(info.item()) == 1


@pytest.mark.parametrize("fn,shape,message", [
    ("inv", (2, 3), "A must be batches of square matrices, but they are 2 by 3 matrices"),
    ("det", (3,), "The input tensor A must have at least 2 dimensions."),
    ("eigh", (3, 2), "A must be batches of square matrices, but they are 3 by 2 matrices"),
])
def test_shape_errors_name_the_op(fn, shape, message):
    with pytest.raises(ember.ShapeError, match=f"linalg.{fn}: {message}"):
        getattr(LA, fn)(ember.zeros(shape, dtype=ember.float64))


def test_integer_input_is_refused():
    with pytest.raises(ember.DTypeError, match="Expected a floating point or complex tensor"):
        LA.inv(ember.tensor([[1, 2], [3, 4]]))


# --- graphs -------------------------------------------------------------------------------

def test_linalg_ops_trace_and_run_in_graphs(rng):
    class Fit(ember.nn.Module):
        def forward(self, a, b):
            x = LA.solve(a, b)
            return LA.matrix_norm(x) + LA.slogdet(a).logabsdet + LA.svdvals(a).sum()

    gm = ember.fx.symbolic_trace(Fit())
    text = ember.ir.print_graph(gm.graph)
    assert "linalg_solve(" in text and "linalg_svdvals(" in text
    a, b = _well_conditioned(rng, 3, 3), rng.standard_normal((3, 2))
    got = gm(ember.tensor(a), ember.tensor(b))
    want = Fit()(ember.tensor(a), ember.tensor(b))
    assert_close(got, want, rtol=1e-12, atol=1e-12, what="graph vs eager")
