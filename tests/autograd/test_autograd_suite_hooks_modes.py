"""Autograd behaviours PyTorch's test_autograd.py checks and training code relies on:
tensor / Node / module hooks and their handles, retain_grad, autograd.grad's flags,
retain_graph errors, version-counter checks, views under in-place ops, grad modes as
context managers, decorators (bare or called) and on generators, inference tensors,
detach, .grad assignment checks, saved-tensor hooks, anomaly mode and custom Function
flags. Each case runs the same code with torch and ember and compares values, or the
error kind and the key words of its message."""
from __future__ import annotations

import importlib
import threading
import warnings

import pytest
import torch

import ember

LIBS = pytest.mark.parametrize("lib", [torch, ember], ids=["torch", "ember"])


def L(t):
    return None if t is None else t.detach().tolist()


def both(fn):
    """fn(lib) for torch and ember: equal results, or errors of the same kind."""
    out = {}
    for lib in (torch, ember):
        try:
            out[lib] = ("ok", fn(lib))
        except Exception as exc:            # compared below: kind, not ember's class
            out[lib] = ("err", exc)
    (tk, tv), (ek, ev) = out[torch], out[ember]
    assert tk == ek, f"torch {tk}: {tv!r}; ember {ek}: {ev!r}"
    if tk == "ok":
        _assert_close(ev, tv)
    return tv, ev


def _assert_close(e, t):
    if isinstance(t, float):
        assert e == pytest.approx(t, rel=1e-5)
    elif isinstance(t, (list, tuple)):
        assert len(e) == len(t), (e, t)
        for a, b in zip(e, t):
            _assert_close(a, b)
    else:
        assert e == t


def raises_both(fn, *words, kind=RuntimeError):
    """fn raises for both libraries: torch's error kind (ember's errors subclass
    RuntimeError/ValueError/TypeError as torch's do) and the message's key words."""
    for lib in (torch, ember):
        with pytest.raises(kind) as info:
            fn(lib)
        msg = str(info.value)
        for w in words:
            assert w in msg, f"{lib.__name__}: {w!r} not in {msg!r}"


# --- tensor hooks -------------------------------------------------------------------

def test_hook_return_value_replaces_the_gradient():
    def f(lib):
        x = lib.tensor([1., 2.], requires_grad=True)
        y = x * 2
        y.register_hook(lambda g: g * 3)
        y.sum().backward()
        return L(x.grad)
    both(f)


def test_leaf_hook_handle_remove_and_context_manager():
    def f(lib):
        x = lib.tensor([1., 2.], requires_grad=True)
        h = x.register_hook(lambda g: g * 10)
        (x * 2).sum().backward()
        a = L(x.grad)
        h.remove()
        x.grad = None
        (x * 2).sum().backward()
        b = L(x.grad)
        x.grad = None
        with x.register_hook(lambda g: g * 2):
            (x * 1).sum().backward()
        c = L(x.grad)
        x.grad = None
        (x * 1).sum().backward()
        return a, b, c, L(x.grad)
    both(f)


def test_hooks_run_in_order_and_see_the_gradient():
    def f(lib):
        x = lib.tensor([1., 2.], requires_grad=True)
        y = x * 2
        seen = []
        y.register_hook(lambda g: seen.append(("a", L(g))))
        y.register_hook(lambda g: seen.append(("b", L(g))))
        x.register_hook(lambda g: seen.append(("leaf", L(g))))
        (y * 3).sum().backward()
        return seen
    both(f)


def test_hook_removed_inside_itself_runs_once():
    def f(lib):
        x = lib.tensor([1., 2.], requires_grad=True)
        y = x * 2
        handles = []

        def h(g):
            handles[0].remove()
            return g * 2
        handles.append(y.register_hook(h))
        y.sum().backward(retain_graph=True)
        y.sum().backward()
        return L(x.grad)
    both(f)


def test_hook_on_a_tensor_without_grad_errors():
    raises_both(lambda lib: lib.tensor([1.]).register_hook(lambda g: g),
                "doesn't require")


def test_leaf_hook_applies_before_accumulation():
    def f(lib):
        x = lib.tensor([1., 2.], requires_grad=True)
        x.grad = lib.ones(2)
        x.register_hook(lambda g: g * 2)
        (x * 1).sum().backward()
        return L(x.grad)
    both(f)


def test_retain_grad_and_nonleaf_grad_warning():
    def f(lib):
        x = lib.tensor([1., 2.], requires_grad=True)
        y = x * 2
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            before = y.grad
        warned = any("not a leaf" in str(m.message) for m in w)
        y.retain_grad()
        (y * y).sum().backward()
        return before, warned, L(y.grad), y.retains_grad, x.retains_grad
    tv, _ = both(f)
    assert tv[1] is True


def test_post_accumulate_grad_hook():
    def f(lib):
        x = lib.tensor([1., 2.], requires_grad=True)
        seen = []
        x.register_post_accumulate_grad_hook(lambda t: seen.append(L(t.grad)))
        (x * 2).sum().backward()
        (x * 2).sum().backward()
        return seen
    both(f)
    raises_both(lambda lib: (lib.ones(2, requires_grad=True) * 2)
                .register_post_accumulate_grad_hook(lambda t: None), "leaf")


# --- Node hooks and graph introspection ---------------------------------------------

def test_node_prehook_and_hook_order_and_arguments():
    def f(lib):
        x = lib.tensor([1., 2.], requires_grad=True)
        y = x * lib.tensor([2., 2.])
        seen = []
        y.register_hook(lambda g: seen.append(("tensor", L(g))))
        y.grad_fn.register_prehook(lambda go: seen.append(("pre", [L(g) for g in go])))
        h = y.grad_fn.register_hook(
            lambda gi, go: seen.append(("post", [L(g) for g in gi], [L(g) for g in go])))
        y.sum().backward(retain_graph=True)
        h.remove()
        y.sum().backward()
        return seen
    both(f)


def test_node_hooks_replace_gradients():
    def f(lib):
        x = lib.tensor([1., 2.], requires_grad=True)
        y = x * lib.tensor([2., 2.])
        y.grad_fn.register_prehook(lambda go: (go[0] * 5,))
        y.grad_fn.register_hook(lambda gi, go: (gi[0] + 1, gi[1]))
        y.sum().backward()
        return L(x.grad)
    both(f)


def test_node_hook_returning_wrong_count_errors():
    def f(lib):
        x = lib.tensor([1., 2.], requires_grad=True)
        y = x * lib.tensor([2., 2.])
        y.grad_fn.register_hook(lambda gi, go: (gi[0],))
        y.sum().backward()
    raises_both(f, "incorrect number of values")


def test_grad_fn_name_next_functions_and_metadata():
    def f(lib):
        x = lib.tensor([1., 2.], requires_grad=True)
        y = (x.view(2) * 2).sum()
        acc = y.grad_fn.next_functions[0][0].next_functions[0][0].next_functions[0][0]
        y.grad_fn.metadata["tag"] = 1
        return (y.grad_fn.name(), y.grad_fn.next_functions[0][0].name(),
                [i for _, i in y.grad_fn.next_functions], acc.variable is x,
                x.grad_fn, y.grad_fn.metadata)
    both(f)


# --- autograd.grad and backward -------------------------------------------------------

def test_retain_graph_second_backward_errors_and_retain_graph_works():
    def twice(lib):
        x = lib.tensor([1., 2.], requires_grad=True)
        y = x.exp().sum()
        y.backward()
        y.backward()
    raises_both(twice, "second time")

    def ok(lib):
        x = lib.tensor([1., 2.], requires_grad=True)
        y = x.exp().sum()
        y.backward(retain_graph=True)
        y.backward()
        return L(x.grad)
    both(ok)


def test_grad_allow_unused_and_materialize_grads():
    def inputs(lib):
        x = lib.tensor([1., 2.], requires_grad=True)
        z = lib.tensor([1., 2.], requires_grad=True)
        return x, z, (x * 2).sum()

    def unused(lib):
        x, z, y = inputs(lib)
        return lib.autograd.grad(y, [x, z])
    raises_both(unused, "not have been used")

    def allowed(lib):
        x, z, y = inputs(lib)
        return [L(g) for g in lib.autograd.grad(y, [x, z], allow_unused=True)]
    both(allowed)

    def materialized(lib):
        x, z, y = inputs(lib)
        return [L(g) for g in lib.autograd.grad(y, [x, z], materialize_grads=True)]
    both(materialized)

    def conflicting(lib):
        x, z, y = inputs(lib)
        return lib.autograd.grad(y, [x, z], allow_unused=False, materialize_grads=True)
    raises_both(conflicting, "allow_unused", kind=ValueError)


def test_grad_outputs_only_inputs_and_batched_grads():
    def f(lib):
        x = lib.tensor([1., 2.], requires_grad=True)
        w = lib.tensor([3., 4.], requires_grad=True)
        y = x * x * w
        g1 = lib.autograd.grad(y, x, grad_outputs=lib.tensor([1., 3.]), retain_graph=True)
        g2 = lib.autograd.grad(y.sum(), x, only_inputs=True, retain_graph=True)
        g3 = lib.autograd.grad(y, x, grad_outputs=lib.eye(2), is_grads_batched=True)
        return L(g1[0]), L(g2[0]), L(g3[0]), w.grad
    both(f)


def test_non_scalar_outputs_need_grad_outputs():
    def backward(lib):
        x = lib.tensor([1., 2.], requires_grad=True)
        (x * x).backward()
    raises_both(backward, "scalar outputs")

    def grad(lib):
        x = lib.tensor([1., 2.], requires_grad=True)
        lib.autograd.grad(x * x, x)
    raises_both(grad, "scalar outputs")


def test_backward_errors_on_graphless_outputs_and_inputs():
    def no_graph(lib):
        x = lib.tensor([1., 2.], requires_grad=True)
        (x.detach() * 2).sum().backward()
    raises_both(no_graph, "does not require grad")

    def no_grad_input(lib):
        x = lib.tensor([1., 2.])
        lib.autograd.grad((x * 2).sum(), x)
    raises_both(no_grad_input, "does not require grad")

    def wrong_shape(lib):
        x = lib.tensor([1., 2.], requires_grad=True)
        (x * 2).backward(lib.ones(3))
    raises_both(wrong_shape, "Mismatch in shape")


def test_create_graph_double_backward():
    def f(lib):
        x = lib.tensor([1., 2.], requires_grad=True)
        g, = lib.autograd.grad((x ** 3).sum(), x, create_graph=True)
        g.sum().backward()
        return L(x.grad), g.requires_grad
    both(f)


def test_backward_inputs_and_multiple_roots():
    def f(lib):
        x = lib.tensor([1., 2.], requires_grad=True)
        w = lib.tensor([3., 4.], requires_grad=True)
        (x * w).sum().backward(inputs=[x])
        a, b = x * 2, x * 3
        lib.autograd.backward([a, b], [lib.ones(2), lib.ones(2) * 2])
        return L(x.grad), w.grad
    both(f)


# --- in-place, versions, views --------------------------------------------------------

def test_modified_saved_tensor_errors():
    def f(lib):
        x = lib.tensor([1., 2.], requires_grad=True)
        y = x * 1
        z = y * y
        y.add_(1)
        z.sum().backward()
    raises_both(f, "modified by an inplace operation")


def test_version_counter_is_shared_by_views():
    def f(lib):
        x = lib.tensor([1., 2.])
        v0 = x._version
        x.add_(1)
        x[0] = 3
        v = x.view(2)
        v.mul_(2)
        d = x.detach()
        d.add_(1)
        return v0, x._version, v._version, d._version
    both(f)


def test_in_place_on_leaf_requiring_grad():
    raises_both(lambda lib: lib.tensor([1., 2.], requires_grad=True).add_(1),
                "leaf Variable that requires grad")

    def view_of_leaf(lib):
        x = lib.tensor([1., 2., 3., 4.], requires_grad=True)
        x[:2].mul_(3)
    raises_both(view_of_leaf, "leaf Variable that requires grad")

    def under_no_grad(lib):
        x = lib.tensor([1., 2.], requires_grad=True)
        with lib.no_grad():
            x.add_(1)
        return L(x), x.requires_grad, x.is_leaf
    both(under_no_grad)


def test_in_place_on_a_view_rebases_the_base_history():
    def f(lib):
        x = lib.tensor([1., 2., 3., 4.], requires_grad=True)
        y = x * 1
        v = y[:2]
        v.mul_(3)
        base_ok = v._base is y
        (y * lib.arange(4.)).sum().backward()
        return L(x.grad), base_ok, v._is_view(), y._is_view(), y._base is None
    both(f)


# --- grad modes -----------------------------------------------------------------------

def test_grad_mode_context_managers_nest():
    def f(lib):
        x = lib.tensor([1., 2.], requires_grad=True)
        out = []
        with lib.no_grad():
            out.append((x * 2).requires_grad)
            with lib.enable_grad():
                out.append((x * 2).requires_grad)
            out.append(lib.is_grad_enabled())
        with lib.set_grad_enabled(False):
            out.append((x * 2).requires_grad)
        lib.set_grad_enabled(False)
        out.append(lib.is_grad_enabled())
        lib.set_grad_enabled(True)
        out.append(lib.is_grad_enabled())
        with lib.no_grad():
            t = lib.ones(2, requires_grad=True)
            out.append((t.requires_grad, (t * 2).requires_grad, t.is_leaf))
        return out
    both(f)


def test_grad_mode_decorators_bare_called_and_on_generators():
    def f(lib):
        @lib.no_grad()
        def called(x):
            return x * 2

        @lib.no_grad
        def bare(x):
            return x * 2

        @lib.enable_grad()
        def enabled(x):
            return x * 2

        @lib.set_grad_enabled(False)
        def disabled(x):
            return x * 2

        @lib.inference_mode
        def inference(x):
            return (x * 2).is_inference()

        @lib.no_grad()
        def gen(x):
            for _ in range(2):
                yield (x * 2).requires_grad, lib.is_grad_enabled()

        x = lib.tensor([1.], requires_grad=True)
        with lib.no_grad():
            under = enabled(x).requires_grad
        steps = []
        for item in gen(x):
            steps.append((item, lib.is_grad_enabled()))
        return (called(x).requires_grad, bare(x).requires_grad, under,
                disabled(x).requires_grad, lib.is_grad_enabled(), inference(x), steps)
    both(f)


def test_grad_mode_is_per_thread():
    def f(lib):
        out = []
        with lib.no_grad():
            t = threading.Thread(target=lambda: out.append(lib.is_grad_enabled()))
            t.start()
            t.join()
        return out
    both(f)


def test_inference_mode_tensors():
    def f(lib):
        x = lib.tensor([1., 2.], requires_grad=True)
        with lib.inference_mode():
            y = x * 2
            inside = (y.requires_grad, y.is_inference(), lib.is_inference_mode_enabled(),
                      lib.is_grad_enabled())
        with lib.inference_mode(False):
            z = lib.ones(2)
        return inside, x.is_inference(), z.is_inference(), lib.is_inference_mode_enabled()
    both(f)

    def make(lib):
        with lib.inference_mode():
            return lib.ones(2)

    def saved(lib):
        x = lib.tensor([1., 2.], requires_grad=True)
        (x * make(lib)).sum().backward()
    raises_both(saved, "Inference tensors cannot be saved for backward")
    raises_both(lambda lib: make(lib).add_(1), "Inplace update to inference tensor")
    raises_both(lambda lib: make(lib).requires_grad_(),
                "Setting requires_grad=True on inference tensor")


# --- detach, requires_grad_, .grad ----------------------------------------------------

def test_detach_and_detach_():
    def f(lib):
        x = lib.tensor([1., 2.], requires_grad=True)
        y = x * 2
        d = y.detach()
        y.detach_()
        return d.requires_grad, y.requires_grad, y.grad_fn, y.is_leaf, \
            d.data_ptr() == y.data_ptr()
    both(f)


def test_requires_grad_rules():
    def nonleaf(lib):
        (lib.tensor([1., 2.], requires_grad=True) * 2).requires_grad_(False)
    raises_both(nonleaf, "leaf variables")
    raises_both(lambda lib: lib.tensor([1, 2]).requires_grad_(), "floating point")

    def prop(lib):
        a, b = lib.ones(2), lib.ones(2, requires_grad=True)
        return (a + b).requires_grad, (a + a).requires_grad, (b > 0).requires_grad, \
            b.argmax().requires_grad
    both(prop)


def test_grad_assignment_is_checked():
    def shape(lib):
        lib.tensor([1., 2.], requires_grad=True).grad = lib.ones(3)
    raises_both(shape, "attempting to assign a gradient", "size")

    def dtype(lib):
        lib.tensor([1., 2.], requires_grad=True).grad = lib.ones(2, dtype=lib.float64)
    raises_both(dtype, "attempting to assign a gradient", "dtype")


def test_gradient_accumulation_and_zero_grad():
    def f(lib):
        x = lib.tensor([1., 2.], requires_grad=True)
        for _ in range(3):
            (x * x).sum().backward()
        m = lib.nn.Linear(2, 2)
        m(lib.ones(1, 2)).sum().backward()
        m.zero_grad(set_to_none=False)
        zeroed = L(m.weight.grad)
        m.zero_grad()
        y = lib.zeros(3, 4, requires_grad=True)
        y.backward(lib.ones(4, 3).t())
        return L(x.grad), zeroed, m.weight.grad, y.grad.stride()
    both(f)


# --- saved tensors hooks, anomaly mode ------------------------------------------------

def test_saved_tensors_hooks_and_save_on_cpu():
    def f(lib):
        seen = []

        def pack(t):
            seen.append("pack")
            return t * 1

        def unpack(t):
            seen.append("unpack")
            return t
        x = lib.tensor([1., 2.], requires_grad=True)
        with lib.autograd.graph.saved_tensors_hooks(pack, unpack):
            y = x.exp()
        y.sum().backward()
        with lib.autograd.graph.save_on_cpu():
            z = (x * x).sum()
        z.backward()
        return L(x.grad), "pack" in seen, "unpack" in seen
    both(f)


def test_anomaly_mode_flags_and_nan_in_backward():
    def flags(lib):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with lib.autograd.detect_anomaly():
                a = lib.is_anomaly_enabled()
        with lib.autograd.set_detect_anomaly(True):
            b = lib.is_anomaly_enabled()
        return a, b, lib.is_anomaly_enabled()
    both(flags)

    def nan(lib):
        class NanBack(lib.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return x * 1

            @staticmethod
            def backward(ctx, g):
                return g * float("nan")
        x = lib.tensor([1., 2.], requires_grad=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with lib.autograd.detect_anomaly():
                NanBack.apply(x).sum().backward()
    raises_both(nan, "NanBackBackward", "returned nan values")


# --- custom Function flags ------------------------------------------------------------

def test_function_mark_dirty_and_non_differentiable():
    def dirty(lib):
        class Double(lib.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                x.mul_(2)
                ctx.mark_dirty(x)
                return x

            @staticmethod
            def backward(ctx, g):
                return g * 2
        x = lib.tensor([1., 2.], requires_grad=True)
        y = x * 1
        z = Double.apply(y)
        same = z is y
        z.sum().backward()
        return L(x.grad), same, L(y)
    both(dirty)

    def nondiff(lib):
        class TwoOut(lib.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                a, b = x * 2, x.argmax()
                ctx.mark_non_differentiable(b)
                return a, b

            @staticmethod
            def backward(ctx, ga, gb):
                return ga * 2
        x = lib.tensor([1., 2.], requires_grad=True)
        a, b = TwoOut.apply(x)
        a.sum().backward()
        return b.requires_grad, L(x.grad)
    both(nondiff)


def test_function_set_materialize_grads():
    def f(lib, materialize):
        seen = []

        class TwoOut(lib.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.set_materialize_grads(materialize)
                return x * 2, x * 3

            @staticmethod
            def backward(ctx, ga, gb):
                seen.append((ga is None, L(gb)))
                return ga * 2
        x = lib.tensor([1., 2.], requires_grad=True)
        a, _ = TwoOut.apply(x)
        a.sum().backward()
        return seen
    both(lambda lib: f(lib, False))
    both(lambda lib: f(lib, True))


def test_function_once_differentiable_and_grad_count_checks():
    def once(lib):
        od = importlib.import_module(lib.__name__ + ".autograd.function").once_differentiable

        class Square(lib.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(x)
                return x * x

            @staticmethod
            @od
            def backward(ctx, g):
                x, = ctx.saved_tensors
                return g * 2 * x
        x = lib.tensor([1., 2.], requires_grad=True)
        g, = lib.autograd.grad(Square.apply(x).sum(), x, create_graph=True)
        g.sum().backward()
    raises_both(once, "does not require grad")

    def count(lib):
        class Mul(lib.autograd.Function):
            @staticmethod
            def forward(ctx, x, y):
                return x * y

            @staticmethod
            def backward(ctx, g):
                return g
        x = lib.tensor([1., 2.], requires_grad=True)
        Mul.apply(x, x).sum().backward()
    raises_both(count, "incorrect number of gradients")

    def needs(lib):
        seen = []

        class Scale(lib.autograd.Function):
            @staticmethod
            def forward(ctx, x, y, k):
                seen.append(ctx.needs_input_grad)
                return x * y * k

            @staticmethod
            def backward(ctx, g):
                return g, g, None
        x = lib.tensor([1., 2.], requires_grad=True)
        Scale.apply(x, lib.ones(2), 3).sum().backward()
        return seen, Scale.apply(x, lib.ones(2), 3).grad_fn.name()
    both(needs)


def test_grad_fn_types_are_named_as_torch():
    def f(lib):
        class MyFn(lib.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return x * 2

            @staticmethod
            def backward(ctx, g):
                return g
        x = lib.tensor([1., 2.], requires_grad=True)
        nodes = [(x * 2).grad_fn, x.view(2).grad_fn, x.sum().grad_fn, MyFn.apply(x).grad_fn]
        return [(type(n).__name__, n.name()) for n in nodes], \
            all(isinstance(n, lib.autograd.graph.Node) for n in nodes)
    both(f)


def test_saved_values_on_grad_fn():
    def f(lib):
        x = lib.tensor([1., 2.], requires_grad=True)
        y = x.pow(2)
        z = x.exp()
        return L(y.grad_fn._saved_self), y.grad_fn._saved_exponent, \
            L(z.grad_fn._saved_result)
    both(f)

    def freed(lib):
        x = lib.tensor([1., 2.], requires_grad=True)
        y = x.pow(2)
        y.sum().backward()
        return y.grad_fn._saved_self
    raises_both(freed, "after they have already been freed")


def test_inference_mode_false_turns_grad_mode_back_on():
    def f(lib):
        x = lib.ones(2, requires_grad=True)
        with lib.inference_mode():
            with lib.inference_mode(False):
                y = x * 2
                inner = (lib.is_inference_mode_enabled(), lib.is_grad_enabled(),
                         y.requires_grad, y.is_inference())
            outer = (lib.is_inference_mode_enabled(), lib.is_grad_enabled())
        with lib.no_grad():
            with lib.inference_mode(False):
                in_no_grad = lib.is_grad_enabled()
        return inner, outer, in_no_grad
    both(f)
