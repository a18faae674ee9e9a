"""ember.lobpcg against torch.lobpcg: eigenpairs (standard and generalized, largest and
smallest), the eigenvalues' gradient, and the size check."""
import numpy as np
import pytest
import torch

import ember


def _spd(rng, m, shift):
    M = rng.standard_normal((m, m))
    return M @ M.T + shift * np.eye(m)


@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize("generalized", [False, True])
def test_lobpcg_matches_torch(largest, generalized):
    rng = np.random.default_rng(0)
    A, B = _spd(rng, 30, 30.0), _spd(rng, 30, 30.0)
    X0 = rng.standard_normal((30, 3))

    def run(lib):
        return lib.lobpcg(lib.tensor(A), k=3, B=lib.tensor(B) if generalized else None,
                          X=lib.tensor(X0), largest=largest)
    (e, x), (te, tx) = run(ember), run(torch)
    np.testing.assert_allclose(e.numpy(), te.numpy(), rtol=1e-8)
    gram = tx.numpy().T @ (B if generalized else np.eye(30)) @ x.numpy()
    np.testing.assert_allclose(np.abs(gram), np.eye(3), atol=1e-6)   # same vectors, up to sign


def test_lobpcg_eigenvalue_gradient_matches_torch():
    rng = np.random.default_rng(1)
    A = _spd(rng, 24, 24.0)
    a, ta = ember.tensor(A, requires_grad=True), torch.tensor(A, requires_grad=True)
    ember.lobpcg(a, k=2)[0].sum().backward()
    torch.lobpcg(ta, k=2)[0].sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy(), atol=1e-6)


def test_lobpcg_refuses_too_small_a_matrix():
    A = np.eye(5)
    with pytest.raises(ValueError) as want:
        torch.lobpcg(torch.tensor(A), k=2)
    with pytest.raises(ValueError) as got:
        ember.lobpcg(ember.tensor(A), k=2)
    assert str(got.value) == str(want.value)
