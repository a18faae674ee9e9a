"""Complex autograd for every complex-capable differentiable registry op, against torch.

Each op's samples are turned complex128 (every floating array gets a random imaginary
part); the loss is a real function of the outputs,
    L = sum(w * |out|^2) + 0.7 sum(Re out) + 0.3 sum(Im out),
so both the conjugate-Wirtinger gradient and the real/imaginary split are exercised. Values
and gradients must match torch's. Ops whose torch gradient is known to differ
(`torch_grad_differs`) are checked with ember's own gradcheck on the complex inputs.

Ops where complex is meaningless (or that torch has no complex kernel for) are listed in
NOT_COMPLEX with the reason; `test_listed_ops_reject_complex_in_torch` keeps that list
honest. Ember-side gaps are xfail(strict) in EMBER_GAPS, so fixing one turns the test red
until the entry is removed.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from ember.ir.registry import OPS, Tag

from tests.oracle import as_numpy, flat_tensors, kwargs_to_torch, to_ember_value, \
    to_torch_value
from tests.ops.test_op_table import outputs, torch_fn

_UNORDERED = "complex numbers are unordered (comparisons, rounding, max/min, clamping)"
_NO_KERNEL = "torch has no complex kernel for it"
_REAL_LOSS = "a loss over real predictions or probabilities"
_REAL_FFT = "a transform defined for real inputs only"
_NO_COMPLEX_GRAD = "torch does not differentiate it for complex outputs"

NOT_COMPLEX = {
    **{name: _UNORDERED for name in (
        "amax", "amin", "ceil", "clamp", "clamp_max", "clamp_min", "copysign", "cummax",
        "cummin", "floor", "fmax", "fmin", "fmod", "frac", "hardsigmoid", "hardswish",
        "hardtanh", "kthvalue", "max", "max_dim", "max_pool2d", "max_pool2d_with_indices",
        "max_pool2d_with_indices_backward", "maximum", "median", "median_dim", "min",
        "min_dim", "minimum", "relu", "relu6", "remainder", "round", "sign", "sort", "topk",
        "trunc", "mode", "nanmedian", "nanmedian_dim")},
    **{name: _NO_KERNEL for name in (
        "adaptive_avg_pool2d", "adaptive_avg_pool2d_backward", "atan2", "avg_pool2d",
        "avg_pool2d_backward", "batch_norm", "celu", "convolution", "convolution_backward_input",
        "convolution_backward_weight", "elu", "erf", "erfc", "erfinv", "gelu", "group_norm",
        "hypot", "layer_norm", "leaky_relu", "log_sigmoid", "log_softmax", "mish", "nanmean",
        "nansum", "scaled_dot_product_attention", "selu", "softmax", "softplus", "xlogy")},
    **{name: _REAL_LOSS for name in (
        "binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy",
        "huber_loss", "kl_div", "mse_loss", "nll_loss", "smooth_l1_loss")},
    **{name: _REAL_FFT for name in (
        "fft_ihfft", "fft_ihfft2", "fft_ihfftn", "fft_rfft", "fft_rfft2", "fft_rfftn")},
    **{name: _NO_COMPLEX_GRAD for name in (
        "embedding", "nan_to_num", "native_dropout", "select_scatter", "silu",
        "slice_scatter")},
    # pooling and resampling beyond 2-d (issue 13)
    **{name: _UNORDERED for name in (
        "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
        "fractional_max_pool2d", "fractional_max_pool3d", "max_pool1d",
        "max_pool1d_with_indices", "max_pool3d", "max_pool3d_with_indices",
        "max_pool3d_with_indices_backward", "max_unpool2d", "max_unpool3d")},
    **{name: _NO_KERNEL for name in (
        "adaptive_avg_pool1d", "adaptive_avg_pool3d", "adaptive_avg_pool3d_backward",
        "avg_pool1d", "avg_pool3d", "avg_pool3d_backward",
        *(f"{op}{suffix}" for op in (
            "upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d",
            "_upsample_nearest_exact1d", "_upsample_nearest_exact2d",
            "_upsample_nearest_exact3d", "upsample_linear1d", "upsample_bilinear2d",
            "upsample_trilinear3d", "upsample_bicubic2d", "_upsample_bilinear2d_aa",
            "_upsample_bicubic2d_aa") for suffix in ("", "_backward")))},
    # the math families (pointwise_math, gamma, bessel, special): real functions
    **{name: _NO_KERNEL for name in (
        "deg2rad", "digamma", "frexp", "i0", "lgamma", "logaddexp2", "logit", "mvlgamma",
        "nextafter", "polygamma", "rad2deg", "special_digamma", "special_entr", "special_erf",
        "special_erfc", "special_erfcx", "special_erfinv", "special_gammaln", "special_i0",
        "special_i0e", "special_i1", "special_i1e", "special_log_ndtr",
        "special_log_softmax", "special_logit", "special_multigammaln", "special_ndtr",
        "special_ndtri", "special_polygamma", "special_psi", "special_softmax",
        "special_xlog1py", "special_xlogy", "special_zeta")},
    "special_round": _UNORDERED,
    **{name: "its inputs are real by definition (it builds the complex result)" for name in (
        "complex", "polar", "view_as_complex")},
    "scatter_reduce": _NO_COMPLEX_GRAD,
}

# torch refuses these gradients for complex inputs unless the loss is invariant to the
# arbitrary phase of each eigen/singular vector; tests/linalg checks gauge-invariant losses
GAUGE_DEPENDENT = {"linalg_svd", "linalg_eig"}

EMBER_GAPS: dict[str, str] = {}


def _candidates():
    for op in sorted(OPS.values(), key=lambda o: o.name):
        if op.has_tag(Tag.INPLACE) or not op.is_differentiable:
            continue
        if op.samples is None or op.torch_ref is None or op.name in NOT_COMPLEX:
            continue
        if op.name in GAUGE_DEPENDENT:
            continue
        marks = [pytest.mark.xfail(reason=EMBER_GAPS[op.name], strict=True)] \
            if op.name in EMBER_GAPS else []
        yield pytest.param(op, id=op.name, marks=marks)


def _complexify(value, rng):
    if isinstance(value, np.ndarray) and value.dtype.kind in "fc":
        imag = rng.standard_normal(value.shape)
        return np.asarray(value.astype(np.complex128) + 1j * imag, dtype=np.complex128)
    if isinstance(value, (list, tuple)):
        return type(value)(_complexify(v, rng) for v in value)
    return value


def _complex_samples(op, rng, limit=3):
    """Samples with differentiable arrays, complex128; a real `dtype=` makes no sense."""
    out = []
    for sample in op.samples(rng):
        arrays = [a for a in flat_tensors(sample.args) if isinstance(a, np.ndarray)]
        if not sample.grad or "dtype" in sample.kwargs:
            continue
        if not any(a.dtype.kind in "fc" for a in arrays):
            continue
        out.append((_complexify(sample.args, rng), sample.kwargs))
    return out[:limit]


def _loss(outs, weights, lib):
    total = 0
    for o, w in zip(outs, weights):
        total = total + (lib.real(o * o.conj()) * lib.tensor(w)).sum() + lib.real(o).sum() * 0.7
        if o.is_complex():
            total = total + lib.imag(o).sum() * 0.3
    return total


def _differentiable(outs):
    return [o for o in outs if (o.is_floating_point() or o.is_complex())]


@pytest.mark.parametrize("op", list(_candidates()))
def test_complex_gradients_match_torch(op, rng):
    checked = 0
    for args, kwargs in _complex_samples(op, rng):
        t_args = to_torch_value(args, requires_grad=True)
        t_inputs = [a for a in flat_tensors(t_args) if getattr(a, "requires_grad", False)]
        if not t_inputs:
            continue
        try:
            t_out = torch_fn(op)(*t_args, **kwargs_to_torch(kwargs))
        except (RuntimeError, TypeError, ValueError) as err:
            pytest.skip(f"torch rejects complex {op.name}: {str(err).splitlines()[0]}"
                        " (add it to NOT_COMPLEX with a reason)")
        e_args = to_ember_value(args, requires_grad=True)
        e_out = op(*e_args, **kwargs)
        t_outs, e_outs = _differentiable(outputs(t_out)), _differentiable(
            outputs(e_out))
        for k, (e, t) in enumerate(zip(e_outs, t_outs)):
            np.testing.assert_allclose(as_numpy(e), as_numpy(t), rtol=1e-7, atol=1e-9,
                                       err_msg=f"{op.name}: complex output {k}")
        e_inputs = [a for a in flat_tensors(e_args) if getattr(a, "requires_grad", False)]
        if op.torch_grad_differs:
            _check_with_gradcheck(op, e_args, kwargs, e_inputs)
        else:
            _compare_grads(op, e_outs, t_outs, e_inputs, t_inputs, rng)
        checked += 1
    if not checked:
        pytest.skip(f"{op.name}: no sample with complex-differentiable inputs")


def _compare_grads(op, e_outs, t_outs, e_inputs, t_inputs, rng):
    weights = [rng.standard_normal(tuple(o.shape)) for o in t_outs]
    t_grads = torch.autograd.grad(_loss(t_outs, weights, torch), t_inputs, allow_unused=True)
    e_grads = ember.autograd.grad(_loss(e_outs, weights, ember), e_inputs, allow_unused=True)
    for i, (eg, tg) in enumerate(zip(e_grads, t_grads)):
        what = f"{op.name}: gradient of input {i}"
        if tg is None:
            assert eg is None or not np.any(as_numpy(eg)), what
            continue
        assert eg is not None, f"{what}: ember gives none"
        np.testing.assert_allclose(as_numpy(eg), as_numpy(tg), rtol=1e-6, atol=1e-8,
                                   err_msg=what)


def _check_with_gradcheck(op, e_args, kwargs, e_inputs):
    """torch's own gradient is wrong here (op.torch_grad_differs): ember's must pass
    gradcheck on the complex inputs instead."""
    def call(*inputs):
        it = iter(inputs)
        args = _replace_inputs(e_args, it)
        return tuple(_differentiable(outputs(op(*args, **kwargs))))
    assert ember.autograd.gradcheck(call, tuple(e_inputs), fast_mode=True)


def _replace_inputs(value, it):
    if isinstance(value, ember.Tensor) and value.requires_grad:
        return next(it)
    if isinstance(value, (list, tuple)):
        return type(value)(_replace_inputs(v, it) for v in value)
    return value


@pytest.mark.parametrize("name", sorted(n for n in NOT_COMPLEX if n in OPS))
def test_listed_ops_reject_complex_in_torch(name, rng):
    """Every NOT_COMPLEX entry is one torch really refuses (values or gradients)."""
    op = OPS[name]
    samples = _complex_samples(op, rng, limit=1)
    if not samples:
        pytest.skip(f"{name}: no differentiable sample to try")
    args, kwargs = samples[0]
    with pytest.raises((RuntimeError, TypeError, NotImplementedError)):
        t_args = to_torch_value(args, requires_grad=True)
        out = torch_fn(op)(*t_args, **kwargs_to_torch(kwargs))
        outs = [o for o in outputs(out) if o.requires_grad]
        loss = sum(torch.real(o).sum() for o in outs)
        torch.autograd.grad(loss, [a for a in flat_tensors(t_args)
                                   if getattr(a, "requires_grad", False)], allow_unused=True)
