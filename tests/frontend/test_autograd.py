"""Eager autograd against torch.autograd: accumulation, graphs, grad modes, hooks,
autograd.grad, in-place rules, and custom Functions."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember


def pair(a, requires_grad=True):
    a = np.asarray(a, dtype=np.float64)
    return (ember.tensor(a, requires_grad=requires_grad),
            torch.tensor(a, requires_grad=requires_grad))


def close(e, t, rtol=1e-7, atol=1e-9):
    assert e is not None and t is not None, (e, t)
    np.testing.assert_allclose(e.detach().numpy(), t.detach().numpy(), rtol=rtol, atol=atol)


# --- backward -------------------------------------------------------------------------

def test_backward_accumulates_like_torch(rng):
    a = rng.standard_normal((3, 4))
    (ex, tx) = pair(a)
    for _ in range(3):
        (ex * ex).sum().backward()
        (tx * tx).sum().backward()
    close(ex.grad, tx.grad)
    ex.grad = None
    tx.grad = None
    (ex.exp() * 2).mean().backward()
    (tx.exp() * 2).mean().backward()
    close(ex.grad, tx.grad)


def test_backward_shared_subexpressions_and_broadcast(rng):
    (ex, tx), (ey, ty) = pair(rng.standard_normal((3, 1))), pair(rng.standard_normal(4))
    def f(x, y):
        z = x * y + x.sin()
        return (z * z.tanh() - y).sum()
    f(ex, ey).backward()
    f(tx, ty).backward()
    close(ex.grad, tx.grad)
    close(ey.grad, ty.grad)


def test_backward_non_scalar_needs_gradient(rng):
    ex, tx = pair(rng.standard_normal(3))
    with pytest.raises(RuntimeError, match="scalar outputs"):
        (ex * 2).backward()
    g = np.array([1.0, -2.0, 0.5])
    (ex * ex).backward(ember.tensor(g))
    (tx * tx).backward(torch.tensor(g))
    close(ex.grad, tx.grad)
    with pytest.raises(RuntimeError, match=r"Mismatch in shape.*\[2\].*\[3\]"):
        (ex * ex).backward(ember.tensor([1.0, 2.0]))


def test_backward_inputs_argument(rng):
    (ex, tx), (ey, ty) = pair(rng.standard_normal(2)), pair(rng.standard_normal(2))
    (ex * ey).sum().backward(inputs=[ex])
    (tx * ty).sum().backward(inputs=[tx])
    close(ex.grad, tx.grad)
    assert ey.grad is None and ty.grad is None


def test_retain_graph_and_freed_graph_error(rng):
    ex, tx = pair(rng.standard_normal(3))
    ey, ty = (ex * ex).sum(), (tx * tx).sum()
    ey.backward(retain_graph=True)
    ty.backward(retain_graph=True)
    ey.backward()
    ty.backward()
    close(ex.grad, tx.grad)
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        ty.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time") as info:
        ey.backward()
    assert "mul" in str(info.value).lower()      # names the op whose node was freed


def test_no_requires_grad_backward_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        ember.tensor([1.0]).sum().backward()


# --- higher order ---------------------------------------------------------------------

def test_create_graph_double_backward(rng):
    ex, tx = pair(rng.standard_normal(4))
    def f(x):
        return (x ** 3 + x.sin() * x).sum()
    (ge,) = ember.autograd.grad(f(ex), ex, create_graph=True)
    (gt,) = torch.autograd.grad(f(tx), tx, create_graph=True)
    close(ge, gt)
    assert ge.requires_grad and ge.grad_fn is not None
    (ge * ge).sum().backward()
    (gt * gt).sum().backward()
    close(ex.grad, tx.grad)


def test_backward_create_graph_sets_grad_with_history(rng):
    ex, tx = pair(rng.standard_normal(3))
    (ex.exp() * ex).sum().backward(create_graph=True)
    (tx.exp() * tx).sum().backward(create_graph=True)
    close(ex.grad, tx.grad)
    assert ex.grad.requires_grad == tx.grad.requires_grad
    (g2e,) = ember.autograd.grad(ex.grad.sum(), ex)
    (g2t,) = torch.autograd.grad(tx.grad.sum(), tx)
    close(g2e, g2t)


def test_third_derivative(rng):
    ex, tx = pair(rng.standard_normal(3))
    ge, gt = ex.tanh().sum(), tx.tanh().sum()
    for _ in range(3):
        (ge,) = ember.autograd.grad(ge.sum(), ex, create_graph=True)
        (gt,) = torch.autograd.grad(gt.sum(), tx, create_graph=True)
        close(ge, gt, rtol=1e-6)


# --- autograd.grad --------------------------------------------------------------------

def test_grad_with_grad_outputs_and_multiple(rng):
    (ex, tx), (ey, ty) = pair(rng.standard_normal((2, 3))), pair(rng.standard_normal(3))
    go = rng.standard_normal((2, 3))
    oe, ot = ex * ey, tx * ty
    re = ember.autograd.grad([oe, ey.sum()], [ex, ey],
                             grad_outputs=[ember.tensor(go), ember.tensor(2.0, dtype=ember.float64)])
    rt = torch.autograd.grad([ot, ty.sum()], [tx, ty],
                             grad_outputs=[torch.tensor(go), torch.tensor(2.0, dtype=torch.float64)])
    for a, b in zip(re, rt):
        close(a, b)
    assert ex.grad is None                     # grad() does not touch .grad


def test_grad_of_several_outputs_of_one_multi_output_op(rng):
    (ex, tx) = pair(rng.standard_normal(4))
    go = [rng.standard_normal(2), rng.standard_normal(2)]
    ea, eb = ex.chunk(2)
    ta, tb = tx.chunk(2)
    re = ember.autograd.grad((ea, eb), ex, [ember.tensor(g) for g in go])
    rt = torch.autograd.grad((ta, tb), tx, [torch.tensor(g) for g in go])
    close(re[0], rt[0])
    ea, eb = ex.chunk(2)
    ta, tb = tx.chunk(2)
    (ge,) = ember.autograd.grad([ea, eb.sum()], [ex], [ember.tensor(go[0]), None])
    (gt,) = torch.autograd.grad([ta, tb.sum()], [tx], [torch.tensor(go[0]), None])
    close(ge, gt)


def test_grad_allow_unused_and_materialize(rng):
    (ex, _), (ey, _) = pair(rng.standard_normal(2)), pair(rng.standard_normal(2))
    with pytest.raises(RuntimeError, match="allow_unused"):
        ember.autograd.grad((ex * 2).sum(), [ex, ey])
    gx, gy = ember.autograd.grad((ex * 2).sum(), [ex, ey], allow_unused=True)
    assert gy is None and gx.tolist() == [2.0, 2.0]
    gx, gy = ember.autograd.grad((ex * 2).sum(), [ex, ey], materialize_grads=True)
    assert gy.tolist() == [0.0, 0.0]


def test_grad_non_scalar_output_requires_grad_outputs(rng):
    ex, tx = pair(rng.standard_normal(3))
    with pytest.raises(RuntimeError, match="scalar outputs"):
        ember.autograd.grad(ex * 2, ex)
    with pytest.raises(RuntimeError, match="scalar outputs"):
        torch.autograd.grad(tx * 2, tx)
    (g,) = ember.autograd.grad(ex * 2, ex, grad_outputs=ember.ones(3, dtype=ember.float64))
    assert g.tolist() == [2.0] * 3


def test_grad_of_non_leaf_input(rng):
    ex, tx = pair(rng.standard_normal(3))
    ye, yt = ex * 3, tx * 3
    (ge,) = ember.autograd.grad((ye * ye).sum(), ye)
    (gt,) = torch.autograd.grad((yt * yt).sum(), yt)
    close(ge, gt)


# --- grad modes -----------------------------------------------------------------------

def test_no_grad_enable_grad_set_grad_enabled():
    x = ember.tensor([1.0], requires_grad=True)
    with ember.no_grad():
        assert not ember.is_grad_enabled()
        y = x * 2
        with ember.enable_grad():
            z = x * 2
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad
    with ember.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert ember.is_grad_enabled()
    ember.set_grad_enabled(False)
    assert not ember.is_grad_enabled()
    ember.set_grad_enabled(True)
    assert ember.is_grad_enabled()


def test_grad_modes_as_decorators():
    x = ember.tensor([1.0], requires_grad=True)

    @ember.no_grad()
    def f(v):
        return v * 2

    @ember.enable_grad()
    def g(v):
        return v * 2

    @ember.set_grad_enabled(False)
    def h(v):
        return v * 2

    @ember.inference_mode()
    def k(v):
        return v * 2

    assert not f(x).requires_grad and not h(x).requires_grad and not k(x).requires_grad
    with ember.no_grad():
        assert g(x).requires_grad
    assert ember.is_grad_enabled()
    assert f.__name__ == "f"


def test_inference_mode():
    x = ember.tensor([1.0], requires_grad=True)
    with ember.inference_mode():
        assert ember.is_inference_mode_enabled() and not ember.is_grad_enabled()
        assert not (x * 2).requires_grad
    assert not ember.is_inference_mode_enabled()
    with ember.inference_mode(False):
        assert ember.is_grad_enabled()


# --- detach, requires_grad_, leaves ---------------------------------------------------

def test_detach_and_requires_grad_(rng):
    ex, tx = pair(rng.standard_normal(3))
    ye, yt = ex * 2, tx * 2
    de, dt = ye.detach(), yt.detach()
    assert not de.requires_grad and de.is_leaf and de.grad_fn is None
    ((ye + de) * ex).sum().backward()
    ((yt + dt) * tx).sum().backward()
    close(ex.grad, tx.grad)
    with pytest.raises(RuntimeError, match="leaf variables"):
        ye.requires_grad_(False)
    z = ember.zeros(2)
    assert z.requires_grad_() is z and z.requires_grad
    with pytest.raises(RuntimeError, match="floating point"):
        ember.zeros(2, dtype=ember.int64).requires_grad_()
    w = ember.tensor([1.0, 2.0], requires_grad=True) * 1
    w.detach_()
    assert not w.requires_grad and w.is_leaf


def test_is_leaf_and_int_outputs():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    assert x.is_leaf and not (x * 2).is_leaf
    assert not (x > 1).requires_grad
    assert ember.tensor([1.0]).is_leaf


# --- hooks and retain_grad ------------------------------------------------------------

def test_leaf_hook_modifies_grad(rng):
    ex, tx = pair(rng.standard_normal(3))
    seen_e, seen_t = [], []
    he = ex.register_hook(lambda g: (seen_e.append(g.detach().numpy().copy()), g * 2)[1])
    tx.register_hook(lambda g: (seen_t.append(g.detach().numpy().copy()), g * 2)[1])
    (ex * ex).sum().backward()
    (tx * tx).sum().backward()
    close(ex.grad, tx.grad)
    np.testing.assert_allclose(seen_e[0], seen_t[0])
    he.remove()
    ex.grad = None
    (ex * 1).sum().backward()
    assert ex.grad.tolist() == [1.0] * 3


def test_non_leaf_hook_and_retain_grad(rng):
    ex, tx = pair(rng.standard_normal(3))
    ye, yt = ex * 3, tx * 3
    ye.register_hook(lambda g: g + 1)
    yt.register_hook(lambda g: g + 1)
    ye.retain_grad()
    yt.retain_grad()
    assert ye.retains_grad and yt.retains_grad
    (ye * ye).sum().backward()
    (yt * yt).sum().backward()
    close(ex.grad, tx.grad)
    close(ye.grad, yt.grad)


def test_hook_on_non_requires_grad_raises():
    with pytest.raises(RuntimeError, match="doesn't require"):
        ember.tensor([1.0]).register_hook(lambda g: g)


def test_non_leaf_grad_is_none_without_retain():
    x = ember.tensor([1.0], requires_grad=True)
    y = x * 2
    y.sum().backward()
    assert y.grad is None and x.grad.tolist() == [2.0]


# --- in-place rules -------------------------------------------------------------------

def test_inplace_on_saved_tensor_raises():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()          # exp saves its output
    z = y * y            # mul saves y
    y.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation") as info:
        z.sum().backward()
    msg = str(info.value)
    assert "version 1" in msg and "expected version 0" in msg and "MulBackward0" in msg
    tx = torch.tensor([1.0, 2.0], requires_grad=True)
    ty = tx.exp()
    tz = ty * ty
    ty.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        tz.sum().backward()


def test_inplace_on_leaf_requiring_grad_raises():
    x = ember.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        x.add_(1)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        x.view(1).mul_(2)
    with ember.no_grad():
        x.add_(1)          # allowed under no_grad, as in torch
    assert x.detach().tolist() == [2.0] and x._version == 1


def test_inplace_on_non_leaf_gradients(rng):
    ex, tx = pair(rng.standard_normal(3))
    def f(x):
        y = x * 2
        y.mul_(x)
        y.add_(1)
        y.exp_()
        return y.sum()
    f(ex).backward()
    f(tx).backward()
    close(ex.grad, tx.grad)


def test_self_aliased_inplace_gives_out_of_place_gradient(rng):
    """ember extension: torch refuses `y.mul_(y)` on a saved y; ember computes y * y."""
    ex, tx = pair(rng.standard_normal(3))
    y = ex.sin()
    y.mul_(y)
    y.sum().backward()
    (tx.sin() * tx.sin()).sum().backward()
    close(ex.grad, tx.grad)


@pytest.mark.parametrize("case", ["transpose", "view", "unsqueeze", "expand_src"])
def test_inplace_on_view_of_non_leaf(rng, case):
    ex, tx = pair(rng.standard_normal((2, 3)))
    (ew, tw) = pair(rng.standard_normal((3, 2)))
    def f(x, w):
        y = x * 1.5
        if case == "transpose":
            v = y.transpose(0, 1)
            v.mul_(w)
        elif case == "view":
            v = y.view(6)
            v.add_(w.reshape(6) * 2)
        elif case == "unsqueeze":
            v = y.unsqueeze(0)
            v.mul_(w.transpose(0, 1).unsqueeze(0))
        else:
            v = y.view(2, 3)
            v.add_(w.sum(1).unsqueeze(0).expand(2, 3))
        return (y * y).sum() + v.sum()
    f(ex, ew).backward()
    f(tx, tw).backward()
    close(ex.grad, tx.grad)
    if tw.grad is not None:
        close(ew.grad, tw.grad)


# --- custom Functions -----------------------------------------------------------------

def _make_functions(ns):
    """The same custom functions, written once against `ns` (ember or torch)."""
    F = ns.autograd.Function

    class MyExp(F):
        @staticmethod
        def forward(ctx, x):
            y = x.exp()
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, g):
            (y,) = ctx.saved_tensors
            return g * y

    class MulScale(F):
        @staticmethod
        def forward(ctx, x, w, scale):
            ctx.save_for_backward(x, w)
            ctx.scale = scale
            return x * w * scale

        @staticmethod
        def backward(ctx, g):
            x, w = ctx.saved_tensors
            gx = g * w * ctx.scale if ctx.needs_input_grad[0] else None
            gw = g * x * ctx.scale if ctx.needs_input_grad[1] else None
            return gx, gw, None

    class Cube(F):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * 3 * x * x

    class TwoOut(F):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            ctx.set_materialize_grads(True)
            return x * 2, x.sin()

        @staticmethod
        def backward(ctx, g1, g2):
            (x,) = ctx.saved_tensors
            return g1 * 2 + g2 * x.cos()

    class ArgmaxLike(F):
        @staticmethod
        def forward(ctx, x):
            idx = (x > 0)
            ctx.mark_non_differentiable(idx)
            return x * 1, idx

        @staticmethod
        def backward(ctx, g, gidx):
            return g

    class NoMaterialize(F):
        @staticmethod
        def forward(ctx, x):
            ctx.set_materialize_grads(False)
            return x * 1, x * 2

        @staticmethod
        def backward(ctx, g1, g2):
            ctx.got = (g1 is None, g2 is None)
            out = None
            for g, k in ((g1, 1), (g2, 2)):
                if g is not None:
                    out = g * k if out is None else out + g * k
            return out

    return dict(MyExp=MyExp, MulScale=MulScale, Cube=Cube, TwoOut=TwoOut,
                ArgmaxLike=ArgmaxLike, NoMaterialize=NoMaterialize)


EF, TF = _make_functions(ember), _make_functions(torch)


def test_function_forward_backward(rng):
    ex, tx = pair(rng.standard_normal(4))
    ye, yt = EF["MyExp"].apply(ex), TF["MyExp"].apply(tx)
    close(ye, yt)
    assert ye.grad_fn.name == type(yt.grad_fn).__name__ == "MyExpBackward"
    (ye * 2).sum().backward()
    (yt * 2).sum().backward()
    close(ex.grad, tx.grad)


def test_function_needs_input_grad_and_non_tensor_args(rng):
    (ex, tx), (ew, tw) = pair(rng.standard_normal(3)), pair(rng.standard_normal(3), False)
    ye, yt = EF["MulScale"].apply(ex, ew, 2.5), TF["MulScale"].apply(tx, tw, 2.5)
    close(ye, yt)
    ye.sum().backward()
    yt.sum().backward()
    close(ex.grad, tx.grad)
    assert ew.grad is None and tw.grad is None


def test_function_double_backward(rng):
    ex, tx = pair(rng.standard_normal(3))
    (ge,) = ember.autograd.grad(EF["Cube"].apply(ex).sum(), ex, create_graph=True)
    (gt,) = torch.autograd.grad(TF["Cube"].apply(tx).sum(), tx, create_graph=True)
    close(ge, gt)
    (ge * ge).sum().backward()
    (gt * gt).sum().backward()
    close(ex.grad, tx.grad)


def test_function_multiple_outputs_and_materialize(rng):
    ex, tx = pair(rng.standard_normal(3))
    (ae, be), (at, bt) = EF["TwoOut"].apply(ex), TF["TwoOut"].apply(tx)
    be.sum().backward()                 # only the second output used: g1 materialized
    bt.sum().backward()
    close(ex.grad, tx.grad)
    ex.grad = tx.grad = None
    (ae, be), (at, bt) = EF["TwoOut"].apply(ex), TF["TwoOut"].apply(tx)
    (ae * be).sum().backward()
    (at * bt).sum().backward()
    close(ex.grad, tx.grad)


def test_function_set_materialize_grads_false(rng):
    ex, tx = pair(rng.standard_normal(3))
    (ae, _), (at, _) = EF["NoMaterialize"].apply(ex), TF["NoMaterialize"].apply(tx)
    ae.sum().backward()
    at.sum().backward()
    close(ex.grad, tx.grad)
    assert ae.grad_fn.ctx.got == (False, True)


def test_function_mark_non_differentiable(rng):
    ex, tx = pair(rng.standard_normal(3))
    (ve, ie), (vt, it) = EF["ArgmaxLike"].apply(ex), TF["ArgmaxLike"].apply(tx)
    assert ie.requires_grad == it.requires_grad == False  # noqa: E712
    assert ve.requires_grad and vt.requires_grad
    ve.sum().backward()
    vt.sum().backward()
    close(ex.grad, tx.grad)


def test_function_without_grad_and_under_no_grad(rng):
    e = ember.tensor([1.0, 2.0])
    y = EF["MyExp"].apply(e)
    assert not y.requires_grad and y.grad_fn is None
    x = ember.tensor([1.0], requires_grad=True)
    with ember.no_grad():
        assert not EF["MyExp"].apply(x).requires_grad


def test_function_saved_tensors_freed_and_version_checked():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    y = EF["MyExp"].apply(x)
    s = y.sum()
    s.backward()
    with pytest.raises(RuntimeError, match="second time"):
        s.backward()
    x2 = ember.tensor([1.0, 2.0], requires_grad=True)
    h = x2 * 1
    y2 = EF["Cube"].apply(h)
    h.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y2.sum().backward()


def test_function_wrong_number_of_grads():
    class Bad(ember.autograd.Function):
        @staticmethod
        def forward(ctx, x, y):
            return x * y

        @staticmethod
        def backward(ctx, g):
            return g

    x = ember.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="incorrect number of gradients"):
        Bad.apply(x, x).sum().backward()


def test_function_returning_input_and_once_differentiable(rng):
    class Ident(ember.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x

        @staticmethod
        @ember.autograd.once_differentiable
        def backward(ctx, g):
            return g * 2

    x = ember.tensor([1.0, 3.0], requires_grad=True)
    y = Ident.apply(x)
    assert y is not x and y.grad_fn is not None and x.is_leaf
    (g,) = ember.autograd.grad(y.sum(), x, create_graph=True)
    assert g.tolist() == [2.0, 2.0] and not g.requires_grad


def test_function_setup_context_style(rng):
    class Sq(ember.autograd.Function):
        @staticmethod
        def forward(x):
            return x * x

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(inputs[0])

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 2 * x * g

    x = ember.tensor([1.0, 3.0], requires_grad=True)
    Sq.apply(x).sum().backward()
    assert x.grad.tolist() == [2.0, 6.0]


def test_sgn_is_differentiable_like_torch(rng):
    x = ember.tensor([1.0, -2.0, 0.0], requires_grad=True)
    y = x.sgn()
    assert y.requires_grad and y.grad_fn.name == "SgnBackward0"
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0]           # real: piecewise constant
    z = rng.standard_normal(4) + 1j * rng.standard_normal(4)
    z[1] = 0                                           # torch: zero gradient at 0
    g = rng.standard_normal(4) + 1j * rng.standard_normal(4)
    ez, tz = ember.tensor(z, requires_grad=True), torch.tensor(z, requires_grad=True)
    (ge,) = ember.autograd.grad(ez.sgn(), ez, ember.tensor(g))
    (gt,) = torch.autograd.grad(tz.sgn(), tz, torch.tensor(g))
    close(ge, gt)
