"""The table-driven op suite: every registry op, against PyTorch, on its samples.

For each op: values, result dtype, shape and memory format against torch; gradients
against torch's; gradients against float64 central finite differences; second
derivatives against torch's. Adding an op with samples adds all of these.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from ember.ir.registry import OPS, Tag, NOT_DIFFERENTIABLE

from tests.oracle import (TORCH_DTYPES, QUANTIZED_TORCH_DTYPES, as_numpy, assert_close, flat_tensors, kwargs_to_torch,
                          to_ember_value, to_torch_value, torch_fn)

# ops on quantized operands have no NumPy samples; tests/quant checks them against torch.ao.
# Users' custom ops ("namespace::name", registered by other test modules at import) are
# not ember's: tests/utils checks them.
TABLE = sorted((op for op in OPS.values() if not op.has_tag(Tag.INPLACE)
                and not op.has_tag(Tag.QUANTIZED) and "::" not in op.name),
               key=lambda op: op.name)
TESTED = [op for op in TABLE if op.samples is not None and op.torch_ref is not None]


def samples_of(op, rng):
    return op.samples(rng)


def tol(op, kind="fwd"):
    base = {"fwd": dict(rtol=1e-5, atol=1e-5), "grad": dict(rtol=1e-4, atol=1e-5),
            "fd": dict(rtol=1e-4, atol=1e-6)}[kind]
    return {**base, **op.tol.get(kind, {})}


def run_both(op, sample, requires_grad=False):
    e_args = to_ember_value(sample.args, requires_grad)
    t_args = to_torch_value(sample.args, requires_grad)
    e_out = op(*e_args, **sample.kwargs)
    with torch.no_grad() if not requires_grad else torch.enable_grad():
        t_out = torch_fn(op)(*t_args, **kwargs_to_torch(sample.kwargs))
    return e_args, t_args, e_out, t_out


def outputs(v):
    if isinstance(v, (tuple, list)):
        return list(v)
    return [v]


@pytest.mark.parametrize("op", TESTED, ids=lambda op: op.name)
def test_forward_matches_torch(op, rng):
    for sample in samples_of(op, rng):
        _, _, e_out, t_out = run_both(op, sample)
        for i, (e, t) in enumerate(zip(outputs(e_out), outputs(t_out))):
            what = f"{op.name} {sample} output {i}"
            torch_dtype = {**TORCH_DTYPES, **QUANTIZED_TORCH_DTYPES}[e.dtype]
            assert torch_dtype == t.dtype, f"{what}: dtype {e.dtype} vs {t.dtype}"
            assert tuple(e.shape) == tuple(t.shape), f"{what}: shape"
            assert_close(e, t, **tol(op), what=what)
            if e.ndim == 4:
                assert e.is_contiguous(memory_format=ember.channels_last) == \
                    t.is_contiguous(memory_format=torch.channels_last), f"{what}: memory format"
            if op.has_tag(Tag.VIEW) and t._base is not None:
                assert tuple(e.stride()) == tuple(t.stride()), f"{what}: view strides"


def _differentiable_samples(op, rng):
    for sample in samples_of(op, rng):
        if sample.grad and any(isinstance(a, np.ndarray) and a.dtype.kind == "f"
                               for a in flat_tensors(sample.args)):
            yield sample


def _float_outputs(v):
    return [o for o in outputs(v) if o.dtype.is_floating_point or o.dtype.is_complex]


def _grad_inputs(args):
    return [a for a in flat_tensors(args) if getattr(a, "requires_grad", False)]


def _real_sum(v, real):
    """sum(v), its real part when complex: autograd needs a real scalar loss, so a
    complex output o with cotangent c contributes Re(sum(o * c))."""
    total = v.sum()
    return real(total) if total.is_complex() else total


def _cotangent(rng, out, dtype=None):
    """A random cotangent (of `out`'s dtype unless given); complex outputs get a complex
    one, so the gradients of both parts are checked."""
    dtype = np.dtype(dtype or as_numpy(out).dtype)
    c = rng.standard_normal(tuple(out.shape))
    if out.is_complex():
        c = c + 1j * rng.standard_normal(tuple(out.shape))
        dtype = np.result_type(dtype, np.complex64)
    return c.astype(dtype)


DIFFERENTIABLE = [op for op in TESTED if op.is_differentiable]
TORCH_GRAD_OK = [op for op in DIFFERENTIABLE if not op.torch_grad_differs]


@pytest.mark.parametrize("op", TORCH_GRAD_OK, ids=lambda op: op.name)
def test_gradients_match_torch(op, rng):
    for sample in _differentiable_samples(op, rng):
        e_args, t_args, e_out, t_out = run_both(op, sample, requires_grad=True)
        e_outs, t_outs = _float_outputs(e_out), [o for o in outputs(t_out)
                                                 if o.is_floating_point() or o.is_complex()]
        cots = [_cotangent(rng, o) for o in e_outs]
        e_in, t_in = _grad_inputs(e_args), _grad_inputs(t_args)
        e_loss = sum(_real_sum(o * ember.tensor(c), ember.real) for o, c in zip(e_outs, cots))
        t_loss = sum(_real_sum(o * torch.from_numpy(c), torch.real)
                     for o, c in zip(t_outs, cots))
        e_grads = ember.autograd.grad(e_loss, e_in, allow_unused=True)
        t_grads = torch.autograd.grad(t_loss, t_in, allow_unused=True)
        for i, (eg, tg) in enumerate(zip(e_grads, t_grads)):
            what = f"{op.name} {sample} grad of input {i}"
            if tg is None:
                assert eg is None or np.allclose(as_numpy(eg), 0), what
                continue
            assert eg is not None, f"{what}: ember returned no gradient"
            assert_close(eg, tg, **tol(op, "grad"), what=what)


def _as_float64(sample):
    def conv(v):
        if isinstance(v, np.ndarray) and v.dtype.kind == "f":
            return v.astype(np.float64)
        if isinstance(v, (list, tuple)):
            return type(v)(conv(x) for x in v)
        return v
    return type(sample)(conv(sample.args), sample.kwargs, sample.grad, sample.note)


@pytest.mark.parametrize("op", DIFFERENTIABLE, ids=lambda op: op.name)
def test_gradients_match_finite_differences(op, rng):
    """Analytic float64 gradients against central differences at a few elements."""
    for sample in _differentiable_samples(op, rng):
        sample = _as_float64(sample)
        args = to_ember_value(sample.args, requires_grad=True)
        inputs = _grad_inputs(args)
        outs = _float_outputs(op(*args, **sample.kwargs))
        cots = [ember.tensor(_cotangent(rng, o, np.float64)) for o in outs]
        loss = sum(_real_sum(o * c, ember.real) for o, c in zip(outs, cots))
        grads = ember.autograd.grad(loss, inputs, allow_unused=True)

        def f():
            with ember.no_grad():
                outs = _float_outputs(op(*args, **sample.kwargs))
                return float(sum(_real_sum(o * c, ember.real) for o, c in zip(outs, cots)).item())
        for k, (x, g) in enumerate(zip(inputs, grads)):
            arr = x.detach().numpy()
            flat = arr.reshape(-1)
            for idx in rng.choice(flat.size, size=min(4, flat.size), replace=False):
                old = flat[idx]
                eps = 1e-6 * max(1.0, abs(old))
                flat[idx] = old + eps
                up = f()
                flat[idx] = old - eps
                down = f()
                flat[idx] = old
                numeric = (up - down) / (2 * eps)
                analytic = 0.0 if g is None else float(g.detach().numpy().reshape(-1)[idx])
                np.testing.assert_allclose(
                    analytic, numeric, **tol(op, "fd"),
                    err_msg=f"{op.name} {sample}: d/d input{k}[{idx}]")


@pytest.mark.parametrize("op", TORCH_GRAD_OK, ids=lambda op: op.name)
def test_second_derivatives_match_torch(op, rng):
    for sample in list(_differentiable_samples(op, rng))[:2]:
        sample = _as_float64(sample)
        e_args, t_args, e_out, t_out = run_both(op, sample, requires_grad=True)
        e_outs = _float_outputs(e_out)
        t_outs = [o for o in outputs(t_out) if o.is_floating_point() or o.is_complex()]
        e_in, t_in = _grad_inputs(e_args), _grad_inputs(t_args)
        e_loss = sum(_real_sum(o * o, ember.real) for o in e_outs)
        t_loss = sum(_real_sum(o * o, torch.real) for o in t_outs)
        try:
            t_g = torch.autograd.grad(t_loss, t_in, create_graph=True, allow_unused=True)
            t_pairs = [(i, g) for i, g in enumerate(t_g) if g is not None and g.requires_grad]
            if not t_pairs:
                continue
            t_gg = torch.autograd.grad(sum((g * g).sum() for _, g in t_pairs), t_in,
                                       allow_unused=True)
        except RuntimeError:
            continue      # torch has no double backward here either
        e_g = ember.autograd.grad(e_loss, e_in, create_graph=True, allow_unused=True)
        e_pairs = [e_g[i] for i, _ in t_pairs]
        assert all(g is not None and g.requires_grad for g in e_pairs), \
            f"{op.name}: first derivative is not differentiable"
        e_gg = ember.autograd.grad(sum((g * g).sum() for g in e_pairs), e_in, allow_unused=True)
        for i, (eg, tg) in enumerate(zip(e_gg, t_gg)):
            if tg is None:
                continue
            assert eg is not None, f"{op.name}: no second derivative for input {i}"
            assert_close(eg, tg, rtol=1e-6, atol=1e-8, what=f"{op.name} d2/dinput{i}")


def test_every_op_is_in_the_table():
    """Each op has samples, a torch reference and a derivative decision."""
    # random samplers with no deterministic parameters (cauchy, geometric, log_normal)
    # cannot be compared with torch by value; tests/ops/test_sampling.py checks them
    missing = [op.name for op in TABLE if (op.samples is None or op.torch_ref is None)
               and not op.has_tag(Tag.RANDOM)]
    assert not missing, f"ops without samples/torch_ref: {missing}"
    undecided = [op.name for op in TABLE if op.derivative is None]
    assert not undecided, f"ops with no derivative rule and not declared NOT_DIFFERENTIABLE: " \
                          f"{undecided}"


@pytest.mark.parametrize("op", TESTED, ids=lambda op: op.name)
def test_meta_rule_matches_eager(op, rng):
    """The shape rule alone (what ShapeProp runs) predicts eager's shapes and dtypes."""
    from ember.ir.meta import meta_of
    for sample in samples_of(op, rng):
        args = to_ember_value(sample.args)
        bound = op.schema.bind(tuple(args), dict(sample.kwargs))
        metas = tuple(_to_meta(v) for v in bound)
        if op.has_tag(Tag.DYNAMIC_SHAPE) and not _shape_given(op, bound):
            with pytest.raises(ember.ShapeError, match="data-dependent"):
                op.meta(*metas)        # no values, no shape: refused, not guessed
            metas = bound              # with values the rule must predict eager's shapes
        predicted = outputs(op.meta(*metas))
        actual = outputs(op(*args, **sample.kwargs))
        for p, a in zip(predicted, actual):
            assert tuple(p.shape) == tuple(a.shape) and p.dtype is a.dtype, \
                f"{op.name} {sample}: meta {p} vs eager {meta_of(a)}"


def _shape_given(op, bound) -> bool:
    """A DYNAMIC_SHAPE op told its output size (repeat_interleave's output_size)."""
    args = op.schema.as_kwargs(bound)
    return args.get("output_size") is not None


def _to_meta(v):
    from ember.ir.meta import meta_of
    if isinstance(v, ember.Tensor):
        return meta_of(v)
    if isinstance(v, (list, tuple)) and any(isinstance(x, ember.Tensor) for x in v):
        return type(v)(meta_of(x) if isinstance(x, ember.Tensor) else x for x in v)
    return v
