"""More of PyTorch's test_autograd.py behaviours, torch vs ember: how gradients land in
.grad (in place after the first backward, never shared between leaves, laid out as the
parameter), leaf hooks under autograd.grad, retain_grad and mark_dirty errors, the
graph module's increment_version / disable_saved_tensors_hooks, complex roots, backward
from several threads, and forward-mode AD basics."""
from __future__ import annotations

import threading
import warnings

import pytest
import torch

import ember
from tests.autograd.test_autograd_suite_hooks_modes import L, both, raises_both


def test_grad_accumulates_in_place_after_the_first_backward():
    def f(lib):
        x = lib.tensor([1., 2.], requires_grad=True)
        (x * 2).sum().backward()
        g = x.grad
        g.zero_()
        (x * 3).sum().backward()
        return g is x.grad, L(g)
    both(f)


def test_leaves_never_share_gradient_memory():
    def f(lib):
        a = lib.ones(2, requires_grad=True)
        b = lib.ones(2, requires_grad=True)
        ((a + b) * 2).sum().backward()
        a.grad.zero_()
        return L(a.grad), L(b.grad)
    both(f)

    def retained(lib):
        x = lib.ones(2, requires_grad=True)
        y = x + 0
        y.retain_grad()
        (y * 2).sum().backward()
        x.grad.mul_(5)
        return L(y.grad), L(x.grad)
    both(retained)


@pytest.mark.parametrize("layout", ["channels_last", "transposed", "expanded"])
def test_first_gradient_takes_the_parameters_layout(layout):
    def f(lib):
        if layout == "channels_last":
            x = lib.zeros(2, 3, 4, 5).to(memory_format=lib.channels_last).requires_grad_()
            (x * 2).sum().backward()
        elif layout == "transposed":
            x = lib.zeros(4, 3).t().detach().requires_grad_()
            (x * 2).sum().backward()
        else:
            x = lib.zeros(3, 4, requires_grad=True)
            x.backward(lib.ones(1, 4).expand(3, 4))
        (x * 2).sum().backward()
        return x.grad.stride(), L(x.grad)
    both(f)


def test_leaf_hooks_run_under_autograd_grad():
    def f(lib):
        x = lib.tensor([1., 2.], requires_grad=True)
        x.register_hook(lambda g: g * 10)
        y = x * 1
        y.register_hook(lambda g: g + 1)
        return L(lib.autograd.grad((y * 2).sum(), x)[0]), x.grad
    both(f)


def test_retain_grad_and_mark_dirty_errors():
    raises_both(lambda lib: lib.ones(2).retain_grad(), "requires_grad=False")

    def dirty_leaf(lib):
        class AddOne(lib.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                x.add_(1)
                ctx.mark_dirty(x)
                return x

            @staticmethod
            def backward(ctx, g):
                return g
        AddOne.apply(lib.tensor([1., 2.], requires_grad=True))
    raises_both(dirty_leaf, "leaf Variable that requires grad", "in-place")


def test_graph_increment_version_and_disable_saved_tensors_hooks():
    def bump(lib):
        x = lib.tensor([1., 2.], requires_grad=True)
        y = x * 1
        z = y * y
        lib.autograd.graph.increment_version(y)
        return y._version, z.sum().backward()
    raises_both(bump, "modified by an inplace operation")

    def disabled(lib):
        with lib.autograd.graph.disable_saved_tensors_hooks("no hooks here"):
            with lib.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t):
                pass
    raises_both(disabled, "no hooks here")


def test_complex_root_needs_a_gradient():
    def f(lib):
        x = lib.tensor([1 + 2j], requires_grad=True)
        (x * 2).sum().backward()
    raises_both(f, "real scalar outputs")

    def ok(lib):
        x = lib.tensor([3 + 4j, 1 - 1j], requires_grad=True)
        x.abs().sum().backward()
        return [complex(v) for v in x.grad.tolist()]
    both(ok)


def test_backward_from_several_threads():
    def separate(lib):
        out = [None] * 4

        def work(i):
            x = lib.tensor([float(i), 2.], requires_grad=True)
            (x * x).sum().backward()
            out[i] = L(x.grad)
        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return out
    both(separate)

    def grad_mode(lib):
        out = []

        def work():
            lib.set_grad_enabled(False)
            out.append(lib.is_grad_enabled())
        t = threading.Thread(target=work)
        t.start()
        t.join()
        return out, lib.is_grad_enabled()
    both(grad_mode)


def test_forward_mode_basics():
    def f(lib):
        fwAD = lib.autograd.forward_ad
        p = lib.tensor([1., 2.], requires_grad=True)
        with fwAD.dual_level():
            x = fwAD.make_dual(p, lib.tensor([1., 0.]))
            y = (x * x).sin()
            primal, tangent = fwAD.unpack_dual(y)
            plain = fwAD.unpack_dual(lib.ones(1)).tangent
            buf = lib.zeros(4)
            buf[:2].copy_(x)
            buf.mul_(3)
            viewed = L(fwAD.unpack_dual(buf).tangent)
            t = fwAD.unpack_dual((x * x).sum()).tangent
        t.backward()
        return L(primal), L(tangent), plain, viewed, L(p.grad)
    both(f)

    def outside(lib):
        lib.autograd.forward_ad.make_dual(lib.ones(2), lib.ones(2))
    raises_both(outside, "no level exists")

    def shape(lib):
        fwAD = lib.autograd.forward_ad
        with fwAD.dual_level():
            fwAD.make_dual(lib.ones(2), lib.ones(3))
    raises_both(shape, "different size")


def test_anomaly_mode_names_the_forward_line():
    def f(lib):
        x = lib.tensor([1., 2.], requires_grad=True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with lib.autograd.detect_anomaly():
                y = (x * 0).log()      # the forward line the report must show
                try:
                    (y * 0).sum().backward()
                except RuntimeError as exc:
                    error = str(exc)
        reports = [str(w.message) for w in caught if "Error detected in" in str(w.message)]
        return error, len(reports), "LogBackward0" in reports[0], \
            "the forward line the report must show" in reports[0] or \
            "test_autograd_suite_accumulate.py" in reports[0]
    both(f)


def test_retain_grad_follows_in_place_updates():
    def f(lib):
        x = lib.tensor([1., 2.], requires_grad=True)
        a = x * 1
        a.retain_grad()
        seen = []
        a.register_hook(lambda g: seen.append(("before", L(g))))
        a.mul_(2)
        a.register_hook(lambda g: seen.append(("after", L(g))))
        a.mul_(3)
        (a * 2).sum().backward()
        b = (x * 1)
        b.retain_grad()
        b[:1].mul_(5)                  # in place through a view: the base's history moves
        (b * 4).sum().backward()
        return L(a.grad), L(x.grad), seen, L(b.grad)
    both(f)
