"""torch.autograd.Function behaviours ember.autograd.Function keeps (found running
PyTorch's autograd_function_db): forward AD through a Function's jvp staticmethod with
ctx.save_for_forward, setup_context seeing forward's defaults, gradients summed down to
an input's shape, numpy() on a tensor that requires grad inside no_grad, and NumPy's
keyword spellings (axis=, keepdims=) that torch's functions accept."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember


def _cube_class(lib):
    class Cube(lib.autograd.Function):
        @staticmethod
        def forward(x, scale=2.0):
            return x ** 3 * scale

        @staticmethod
        def setup_context(ctx, inputs, output):
            x, scale = inputs             # forward's default filled in
            ctx.save_for_backward(x)
            ctx.save_for_forward(x)
            ctx.scale = scale

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * 3 * x ** 2 * ctx.scale, None

        @staticmethod
        def jvp(ctx, t, _):
            (x,) = ctx.saved_tensors
            return t * 7.0                # deliberately not the true derivative
    return Cube


@pytest.mark.parametrize("lib", [torch, ember], ids=["torch", "ember"])
def test_forward_ad_uses_the_functions_jvp(lib):
    Cube = _cube_class(lib)
    fwAD = lib.autograd.forward_ad
    x = lib.tensor([1.0, 2.0], dtype=lib.float64)
    with fwAD.dual_level():
        y = Cube.apply(fwAD.make_dual(x, lib.ones(2, dtype=lib.float64)))
        tangent = fwAD.unpack_dual(y).tangent
    np.testing.assert_allclose(np.asarray(tangent.tolist()), [7.0, 7.0])


def test_default_args_and_backward_match_torch():
    x_t = torch.tensor([1.0, 2.0], requires_grad=True)
    x_e = ember.tensor([1.0, 2.0], requires_grad=True)
    _cube_class(torch).apply(x_t).sum().backward()
    _cube_class(ember).apply(x_e).sum().backward()
    np.testing.assert_allclose(x_e.grad.numpy(), x_t.grad.numpy())


@pytest.mark.parametrize("lib", [torch, ember], ids=["torch", "ember"])
def test_broadcast_gradient_is_summed_to_the_input_shape(lib):
    class TooBig(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, g):
            return lib.ones(3, *g.shape, dtype=g.dtype)

    x = lib.ones(4, requires_grad=True)
    TooBig.apply(x).sum().backward()
    assert tuple(x.grad.shape) == (4,)
    np.testing.assert_allclose(np.asarray(x.grad.tolist()), [3.0] * 4)


@pytest.mark.parametrize("lib", [torch, ember], ids=["torch", "ember"])
def test_a_gradient_that_does_not_broadcast_is_an_error(lib):
    class Wrong(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, g):
            return lib.ones(5, dtype=g.dtype)

    x = lib.ones(4, requires_grad=True)
    with pytest.raises(RuntimeError, match="invalid gradient at index 0"):
        Wrong.apply(x).sum().backward()


@pytest.mark.parametrize("lib", [torch, ember], ids=["torch", "ember"])
def test_numpy_of_a_grad_tensor_inside_no_grad(lib):
    x = lib.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError):
        x.numpy()
    with lib.no_grad():
        assert x.numpy().tolist() == [1.0, 1.0]


def test_numpy_keyword_spellings_as_torch():
    a = np.arange(12.0).reshape(3, 4)[:, ::-1].copy()
    t, e = torch.tensor(a), ember.tensor(a)
    pairs = [(lambda m, x: m.sum(x, axis=1, keepdims=True)),
             (lambda m, x: m.argsort(x, axis=1)),
             (lambda m, x: m.mean(x, axis=0)),
             (lambda m, x: m.abs(x=x)),
             (lambda m, x: m.mul(x, x2=x))]
    for f in pairs:
        np.testing.assert_allclose(f(ember, e).numpy(), f(torch, t).numpy())
