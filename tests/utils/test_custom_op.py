"""ember.library.custom_op: eager, gradients, fx tracing, compile, profiler, errors."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import ember
import ember.fx
from ember import Tensor
from ember.ir.registry import OPS
from ember.profiler import profile

_ids = itertools.count()


@pytest.fixture(autouse=True)
def _forget_test_ops():
    """Remove the ops a test defined: other tests enumerate the whole registry."""
    before = set(OPS)
    yield
    for name in set(OPS) - before:
        del OPS[name]


def _unique(name: str) -> str:
    """Registry names are process-global: each test defines fresh ops."""
    return f"testlib::{name}_{next(_ids)}"


def _scaled_sin(with_fake=True, with_autograd=True):
    @ember.library.custom_op(_unique("scaled_sin"), mutates_args=())
    def scaled_sin(x: Tensor, scale: float) -> Tensor:
        return ember.sin(x) * scale

    if with_fake:
        @scaled_sin.register_fake
        def _(x, scale):
            return ember.empty_like(x)

    if with_autograd:
        def setup_context(ctx, inputs, output):
            x, scale = inputs
            ctx.save_for_backward(x)
            ctx.scale = scale

        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * ember.cos(x) * ctx.scale, None

        scaled_sin.register_autograd(backward, setup_context=setup_context)
    return scaled_sin


def test_eager_values_and_gradients_match_torch(rng):
    op = _scaled_sin()
    data = rng.standard_normal((4, 5)).astype(np.float32)
    x = ember.tensor(data, requires_grad=True)
    tx = torch.tensor(data, requires_grad=True)
    y, ty = op(x, 1.5), torch.sin(tx) * 1.5
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-6)
    y.sum().backward()
    ty.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-6)
    assert "ScaledSin" in repr(y.grad_fn) and "::" not in repr(y.grad_fn)
    namespace, name = op.name.split("::")
    assert getattr(getattr(ember.ops, namespace), name) is op.op


def test_gradcheck_in_float64(rng):
    op = _scaled_sin()
    x = ember.tensor(rng.standard_normal(6), dtype=ember.float64, requires_grad=True)
    assert ember.autograd.gradcheck(lambda t: op(t, 0.7), (x,))
    assert ember.autograd.gradgradcheck(lambda t: op(t, 0.7), (x,))


def test_traces_into_fx_as_one_node_and_compiles(rng):
    op = _scaled_sin()

    def f(t):
        return op(t * 2, 3.0) + 1

    gm = ember.fx.symbolic_trace(f)
    calls = [n for n in gm.graph.nodes if n.op == "call_function"]
    assert [n.target for n in calls].count(op.op) == 1
    assert f"ember.ops.{op.name.replace('::', '.')}(" in gm.code
    x = ember.tensor(rng.standard_normal((3, 4)).astype(np.float32))
    want = f(x).numpy()
    np.testing.assert_allclose(gm(x).numpy(), want, rtol=1e-6)
    compiled = ember.compile(f, fullgraph=True)
    np.testing.assert_allclose(compiled(x).numpy(), want, rtol=1e-6)
    with profile() as prof:
        compiled(x)
    steps = next(e for e in prof.events() if e.name == "CompiledFunction").cpu_children
    assert any(s.category == "fallback" for s in steps)   # the op: an external call
    with profile() as prof:
        op(x, 2.0)
    assert op.name in [e.name for e in prof.events()]


def test_compiled_training_through_the_custom_op(rng):
    op = _scaled_sin()
    w = ember.tensor(rng.standard_normal((4,)).astype(np.float32), requires_grad=True)

    def loss_fn(x):
        return op(x * w, 2.0).sum()

    x = ember.tensor(rng.standard_normal((3, 4)).astype(np.float32))
    loss_fn(x).backward()
    eager_grad = w.grad.numpy().copy()
    w.grad = None
    ember.compile(loss_fn)(x).backward()
    np.testing.assert_allclose(w.grad.numpy(), eager_grad, rtol=1e-5)


def test_registering_an_op_twice_is_an_error():
    op = _scaled_sin()
    with pytest.raises(RuntimeError, match="already registered"):
        ember.library.custom_op(op.name, mutates_args=())(lambda x: x)
    with pytest.raises(RuntimeError, match="already registered"):
        op.register_fake(lambda x, scale: x)


def _annotated(fn, **hints):
    """`fn` with real (not string) annotations: this module's are postponed."""
    fn.__annotations__ = hints
    return fn


def _halve_with_wrong_fake(lib, name):
    halve = lib.library.custom_op(name, mutates_args=())(_annotated(
        lambda x: x[: x.shape[0] // 2].clone(), x=lib.Tensor, **{"return": lib.Tensor}))

    @halve.register_fake
    def _(x):
        return lib.empty_like(x)            # wrong: the kernel halves dim 0
    return halve


def test_eager_runs_the_kernel_only_as_torch():
    """torch runs the fake function only under tracing: an eager call's result is the
    kernel's, even where the fake function disagrees."""
    name = _unique("halve")
    ours = _halve_with_wrong_fake(ember, name)(ember.arange(4.))
    theirs = _halve_with_wrong_fake(torch, name.replace("testlib", "embertestlib"))(
        torch.arange(4.))
    assert list(ours.shape) == list(theirs.shape) == [2]
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_eager_result_dtype_is_the_kernels():
    calls = []

    @ember.library.custom_op(_unique("mul_scalar"), mutates_args=())
    def mul_scalar(x: Tensor, *, scalar: float) -> Tensor:
        calls.append(1)
        return ember.tensor(x.numpy() * scalar)          # int64 * float: NumPy's float64

    @mul_scalar.register_fake
    def _(x, *, scalar):
        return (x * scalar).contiguous()                 # float32 (the default dtype)

    out = mul_scalar(ember.arange(4), scalar=3.14)
    assert out.dtype == ember.float64 and len(calls) == 1    # the kernel ran once
    np.testing.assert_allclose(out.numpy(), np.arange(4) * 3.14)


def test_compiled_call_with_a_disagreeing_fake_is_an_error():
    halve = _halve_with_wrong_fake(ember, _unique("halve"))
    with pytest.raises(RuntimeError, match=r"fake gives f32\[4\], the kernel gives f32\[2\]"):
        ember.compile(lambda x: halve(x) * 2)(ember.ones(4))


def test_list_and_int_output_runs_and_differentiates_as_torch():
    """A `(List[Tensor], int)` return: a list of tensors and a Python int, and backward
    gets the list's gradients as one list and None for the int, as in torch."""
    def define(lib, name):
        def kernel(x, splits, dim):
            return [lib.tensor(a) for a in np.split(x.detach().numpy(), splits, dim)], \
                len(splits)
        split_n = lib.library.custom_op(name, mutates_args=())(_annotated(
            kernel, x=lib.Tensor, splits=list[int], dim=int,
            **{"return": tuple[list[lib.Tensor], int]}))

        @split_n.register_fake
        def _(x, splits, dim):
            return [p.clone() for p in lib.tensor_split(x, splits, dim)], len(splits)

        def setup(ctx, inputs, output):
            ctx.dim = inputs[2]

        def backward(ctx, grads, count):
            assert isinstance(grads, list) and count is None
            return lib.cat(grads, ctx.dim), None, None
        split_n.register_autograd(backward, setup_context=setup)
        return split_n

    name = _unique("split_n")
    results = []
    for lib, ns in ((ember, name), (torch, name.replace("testlib", "embertestlib"))):
        x = lib.tensor(np.arange(18.).reshape(2, 9), requires_grad=True)
        parts, n = define(lib, ns)(x, [1, 3, 6], 1)
        (parts[0].sum() + (2 * parts[2]).sum() + parts[3].pow(2).sum()).backward()
        results.append(([p.detach().numpy() for p in parts], n, type(parts), x.grad.numpy()))
    (ours, n, kind, grad), (theirs, t_n, t_kind, t_grad) = results
    assert n == t_n == 3 and kind is t_kind is list
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(grad, t_grad)
    # compiled: returned as it is, or used inside the graph
    split_n = OPS[name].custom
    x = ember.tensor(np.arange(18.).reshape(2, 9))
    parts, n = ember.compile(lambda t: split_n(t, [1, 3, 6], 1))(x)
    assert n == 3 and isinstance(parts, list)
    for a, b in zip(parts, theirs):
        np.testing.assert_array_equal(a.numpy(), b)
    scaled = ember.compile(lambda t: split_n(t, [1, 3, 6], 1)[0][2] * 2)(x)
    np.testing.assert_array_equal(scaled.numpy(), theirs[2] * 2)


def test_missing_autograd_formula_is_an_error_at_backward():
    op = _scaled_sin(with_autograd=False)
    x = ember.ones(3, requires_grad=True)
    y = op(x, 2.0)                           # forward works
    with pytest.raises(RuntimeError, match=f"backward through {op.name} but no autograd "
                                           "formula was registered"):
        y.sum().backward()


def test_missing_fake_runs_eagerly_but_cannot_trace():
    op = _scaled_sin(with_fake=False)
    x = ember.ones(3)
    np.testing.assert_allclose(op(x, 2.0).numpy(), np.sin(np.ones(3)) * 2, rtol=1e-6)
    with pytest.raises(Exception, match="has no fake"):
        ember.compile(lambda t: op(t, 2.0), fullgraph=True)(x)


def test_bad_definitions_are_rejected():
    with pytest.raises(RuntimeError, match="namespace::op_name"):
        ember.library.custom_op("noseparator", mutates_args=())
    with pytest.raises(RuntimeError, match="mutates_args"):
        ember.library.custom_op(_unique("m"), mutates_args=("x",))
    with pytest.raises(RuntimeError, match="type annotation"):
        ember.library.custom_op(_unique("u"), mutates_args=())(lambda x: x)


def test_infer_schema_matches_torch():
    def f(x: Tensor, ys: list[Tensor], k: int, alpha: float = 1.0, flag: bool = False) -> Tensor:
        ...

    def g(x: torch.Tensor, ys: list[torch.Tensor], k: int, alpha: float = 1.0,
          flag: bool = False) -> torch.Tensor:
        ...

    # ember has no symbolic sizes: PyTorch's SymInt is a plain int here
    want = torch.library.infer_schema(g, mutates_args=()).replace("SymInt", "int")
    assert ember.library.infer_schema(f) == want



def test_graph_text_names_the_op_and_parses_back():
    from ember.ir.parser import parse
    from ember.ir.printer import print_graph
    op = _scaled_sin()
    gm = ember.fx.symbolic_trace(lambda t: op(t, 2.0) + 1)
    text = print_graph(gm.graph)
    assert f"{op.name}(%t, 2.0)" in text
    assert print_graph(parse(text)) == text
    with pytest.raises(Exception, match="unknown op 'testlib::missing'"):
        parse(text.replace(op.name, "testlib::missing"))
