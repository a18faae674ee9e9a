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


def _ste_class(lib):
    class RoundSTE(lib.autograd.Function):      # a straight-through estimator
        @staticmethod
        def forward(ctx, x):
            return x.round()

        @staticmethod
        def backward(ctx, g):
            return g * 3

    return RoundSTE


def _ste_loss(lib):
    ste = _ste_class(lib)
    return lambda x: (ste.apply(x) * x).sum()


def test_traced_function_keeps_its_backward_under_compile_and_func():
    x = np.array([0.2, 1.7, -2.4])
    t = torch.tensor(x, requires_grad=True)
    _ste_loss(torch)(t).backward()
    e = ember.tensor(x, requires_grad=True)
    ember.compile(_ste_loss(ember))(e).backward()
    np.testing.assert_allclose(e.grad.numpy(), t.grad.numpy())
    # torch.func refuses a Function without setup_context; ember's transforms take it and
    # give the eager gradient
    np.testing.assert_allclose(ember.func.grad(_ste_loss(ember))(ember.tensor(x)).numpy(),
                               t.grad.numpy())


def _numpy_square(lib):
    class NumpySquare(lib.autograd.Function):
        @staticmethod
        def forward(x):
            return lib.tensor(x.numpy() ** 2)

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(inputs[0])
            ctx.save_for_forward(inputs[0])

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 2 * x * g

        @staticmethod
        def jvp(ctx, t):
            (x,) = ctx.saved_tensors
            return 5 * x * t              # deliberately not the true derivative

        @staticmethod
        def vmap(info, in_dims, x):
            return NumpySquare.apply(x), in_dims[0]

    return NumpySquare


@pytest.mark.parametrize("transform", ["vjp", "jvp", "vmap"])
def test_numpy_function_under_func_transforms_as_torch(transform):
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    got, want = [], []
    for lib, out in ((torch, want), (ember, got)):
        sq = _numpy_square(lib).apply
        v = lib.tensor(x)
        if transform == "vjp":
            value, fn = lib.func.vjp(sq, v)
            out += [value, fn(lib.ones_like(v))[0]]
        elif transform == "jvp":
            out += list(lib.func.jvp(sq, (v,), (lib.ones_like(v),)))
        else:
            out.append(lib.func.vmap(sq, in_dims=1)(v))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w.numpy())
