"""An in-place op whose derivative reads its result (relu_, sigmoid_, exp_, ...) saves the
written tensor itself, as torch does: writing it again before backward raises torch's
"modified by an inplace operation" error (found by the user-program probe:
nn.ReLU(inplace=True) followed by nn.LeakyReLU(inplace=True) trained silently)."""
import pytest

torch = pytest.importorskip("torch")
import ember  # noqa: E402


def _chain(lib, steps):
    x = lib.ones(2, 3, requires_grad=True)
    y = x * 2
    for step in steps:
        y = step(lib, y)
    try:
        y.sum().backward()
    except RuntimeError as error:
        assert "modified by an inplace operation" in str(error)
        return "raises"
    return x.grad.tolist()


CHAINS = {
    "relu_then_leaky_relu_inplace": [lambda lib, y: lib.nn.ReLU(inplace=True)(y),
                                     lambda lib, y: lib.nn.LeakyReLU(0.1, inplace=True)(y)],
    "relu_then_dropout0_inplace": [lambda lib, y: lib.nn.ReLU(inplace=True)(y),
                                   lambda lib, y: lib.nn.Dropout(0.0, inplace=True)(y)],
    "sigmoid_then_mul_": [lambda lib, y: y.sigmoid_(), lambda lib, y: y.mul_(2)],
    "exp_then_add_": [lambda lib, y: y.exp_(), lambda lib, y: y.add_(1)],
    "relu_alone": [lambda lib, y: lib.relu_(y)],
    "tanh_then_read": [lambda lib, y: y.tanh_(), lambda lib, y: y * 3],
}


@pytest.mark.parametrize("name", sorted(CHAINS))
def test_rewriting_a_saved_inplace_result_matches_torch(name):
    assert _chain(ember, CHAINS[name]) == _chain(torch, CHAINS[name])


def test_inplace_on_a_view_still_differentiates():
    def grad(lib):
        x = lib.tensor([0.5, 1.0, 1.5], requires_grad=True)
        y = x * 1
        y[1:].exp_()
        (y * y).sum().backward()
        return x.grad.tolist()
    assert grad(ember) == pytest.approx(grad(torch), rel=1e-6)
