"""ember.autograd.gradcheck / gradgradcheck: analytical jacobians against finite differences.

Everything is compared as *real* jacobians: a complex input is two real inputs (its real
and imaginary parts), a complex output two real outputs. With torch's convention
(conjugate Wirtinger), the gradient of a real L w.r.t. complex z is dL/dx + i dL/dy, and a
cotangent of 1 (or 1j) on a complex output element selects L = Re (or Im) of it, so:

- numerical[p, q]: central differences of part q of the outputs when part p of one input
  element moves by eps (eps or eps*1j);
- analytical[p, q]: part p of the backward result for a unit cotangent 1 (q = real) or
  1j (q = imaginary) on one output element;
- forward (check_forward_ad): part q of the output tangent for a unit tangent 1 or 1j.

The three agree exactly when the rules follow torch's complex convention. On a mismatch
`GradcheckError` names the output and input indices, the part (for complex), the first
mismatching input and output elements with both values, and prints small jacobians
whole. `fast_mode` compares one random projection u^T J v per (output, input) pair and,
when it fails, reruns the slow check to name the element.
"""
from __future__ import annotations

import warnings

import numpy as np

from ...ir.errors import AutogradError
from ..tensor import Tensor
from . import forward_ad, grad_mode
from .engine import grad as autograd_grad

__all__ = ["gradcheck", "gradgradcheck", "GradcheckError"]

_PRINT_LIMIT = 100      # jacobians up to this many entries are printed whole


class GradcheckError(AutogradError):
    """A gradient check failed: torch.autograd.gradcheck.GradcheckError's counterpart."""


def _as_tuple(x) -> tuple:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _is_diff_tensor(x) -> bool:
    return isinstance(x, Tensor) and x.requires_grad


def _parts(t) -> tuple:
    """(label, scale) per real component: real tensors have one, complex ones two."""
    if t.dtype.is_complex:
        return (("real", 1.0), ("imaginary", 1j))
    return (("", 1.0),)


def _take(values: np.ndarray, label: str) -> np.ndarray:
    return values.imag if label == "imaginary" else values.real


# --- the three jacobians ---------------------------------------------------------------

def _eval_outputs(func, inputs, out_indices) -> list:
    # grad mode stays on: gradgradcheck's function itself calls autograd.grad
    outs = _as_tuple(func(*inputs))
    return [np.array(outs[k].detach().numpy(), copy=True) for k in out_indices]


def _numerical(func, inputs, in_indices, out_indices, eps) -> dict:
    """{(o, i, p_label, q_label): (n_in, n_out) real matrix} by central differences."""
    result = {}
    outs = _eval_outputs(func, inputs, out_indices)
    for i in in_indices:
        arr = inputs[i].detach().numpy()
        for p_label, scale in _parts(inputs[i]):
            cols = [np.zeros((arr.size,) + o.shape, o.dtype) for o in outs]
            for n, idx in enumerate(np.ndindex(arr.shape)):
                old = arr[idx]
                arr[idx] = old + scale * eps
                plus = _eval_outputs(func, inputs, out_indices)
                arr[idx] = old - scale * eps
                minus = _eval_outputs(func, inputs, out_indices)
                arr[idx] = old
                for col, a, b in zip(cols, plus, minus):
                    col[n] = (a - b) / (2 * eps)
            for o, col in enumerate(cols):
                for q_label, _ in _parts_of_array(col):
                    # sizes spelled out: -1 is ambiguous for an empty input or output
                    result[(o, i, p_label, q_label)] = _take(col, q_label).reshape(
                        arr.size, outs[o].size)
    return result


def _parts_of_array(a: np.ndarray) -> tuple:
    return (("real", 1.0), ("imaginary", 1j)) if np.iscomplexobj(a) else (("", 1.0),)


def _analytical(outputs, diff_inputs, in_indices, nondet_tol, check_grad_dtypes) -> dict:
    """{(o, i, p, q): matrix}: one backward per real component of each output element."""
    from ..factories import zeros_like
    result = {}
    for o, out in enumerate(outputs):
        for q_label, scale in _parts(out):
            mats = {}
            for k in range(out.numel()):
                cot = zeros_like(out)
                cot.detach().numpy().reshape(-1)[k] = scale   # contiguous fresh tensor
                grads = _backward_twice(out, diff_inputs, cot, nondet_tol, o)
                for i, x, g in zip(in_indices, diff_inputs, grads):
                    _check_grad_meta(g, x, i, check_grad_dtypes)
                    g = np.zeros(tuple(x.shape), x.dtype.np_dtype) if g is None \
                        else g.detach().numpy()
                    for p_label, _ in _parts(x):
                        mats.setdefault((o, i, p_label, q_label),
                                        np.zeros((x.numel(), out.numel())))[:, k] = \
                            _take(g, p_label).reshape(-1)
            result.update(mats)
    return result


def _backward_twice(out, inputs, cot, nondet_tol, o):
    """The VJP, run twice: the two must agree within nondet_tol (a reentrant backward)."""
    first = autograd_grad(out, inputs, cot, retain_graph=True, allow_unused=True)
    second = autograd_grad(out, inputs, cot, retain_graph=True, allow_unused=True)
    for i, (a, b) in enumerate(zip(first, second)):
        if (a is None) != (b is None) or a is not None and not np.allclose(
                a.detach().numpy(), b.detach().numpy(), rtol=0, atol=nondet_tol):
            raise GradcheckError(f"Backward is not reentrant, i.e., running backward with same "
                                 f"input and grad_output multiple times gives different values, "
                                 f"although analytical gradient matches numerical gradient. "
                                 f"The tolerance for nondeterminism was {nondet_tol} "
                                 f"(output {o}, input {i}).")
    return first


def _check_grad_meta(g, x, i, check_grad_dtypes) -> None:
    if g is None:
        return
    if tuple(g.shape) != tuple(x.shape):
        raise GradcheckError(f"Gradient for input {i} has shape {list(g.shape)}, expected "
                             f"{list(x.shape)}")
    if check_grad_dtypes and g.dtype != x.dtype:
        raise GradcheckError(f"Gradient has dtype mismatch for input {i}: got {g.dtype}, "
                             f"expected {x.dtype}")


def _forward(func, inputs, in_indices, out_indices) -> dict:
    """{(o, i, p, q): matrix} from forward-mode AD, one dual pass per real input component."""
    from ..factories import zeros_like
    result = {}
    for i in in_indices:
        x = inputs[i]
        for p_label, scale in _parts(x):
            for n in range(x.numel()):
                tangent = zeros_like(x)
                tangent.numpy().reshape(-1)[n] = scale
                with forward_ad.dual_level():
                    args = list(inputs)
                    args[i] = forward_ad.make_dual(x.detach(), tangent)
                    outs = _as_tuple(func(*args))
                    tans = [forward_ad.unpack_dual(outs[k]).tangent for k in out_indices]
                for o, (k, t) in enumerate(zip(out_indices, tans)):
                    t = np.zeros(tuple(outs[k].shape), outs[k].dtype.np_dtype) if t is None \
                        else t.detach().numpy()
                    for q_label, _ in _parts(outs[k]):
                        result.setdefault((o, i, p_label, q_label),
                                          np.zeros((x.numel(), outs[k].numel())))[n] = \
                            _take(t, q_label).reshape(-1)
    return result


# --- comparison and the report ---------------------------------------------------------

def _compare(numerical, other, shapes, atol, rtol, what="Jacobian") -> None:
    for key, num in numerical.items():
        ana = other.get(key, np.zeros_like(num))
        if np.allclose(ana, num, rtol=rtol, atol=atol):
            continue
        raise GradcheckError(_mismatch_message(key, num, ana, shapes, atol, rtol, what))


def _mismatch_message(key, num, ana, shapes, atol, rtol, what) -> str:
    o, i, p_label, q_label = key
    excess = np.abs(ana - num) - (atol + rtol * np.abs(num))
    row, col = np.unravel_index(int(np.argmax(excess)), num.shape)
    in_shape, out_shape = shapes[i], shapes[("out", o)]
    in_elem = np.unravel_index(row, in_shape) if in_shape else ()
    out_elem = np.unravel_index(col, out_shape) if out_shape else ()
    parts = [f"the {label} part of complex {kind}"
             for label, kind in ((q_label, "outputs"), (p_label, "inputs")) if label]
    prefix = f"While considering {' and '.join(parts)} only, " if parts else ""
    text = (f"{prefix}{what} mismatch for output {o} with respect to input {i},\n"
            f"at jacobian row {row} (input element {tuple(int(e) for e in in_elem)}), "
            f"column {col} (output element {tuple(int(e) for e in out_elem)}): "
            f"numerical: {num[row, col]:.10g} analytical: {ana[row, col]:.10g}\n")
    if num.size <= _PRINT_LIMIT:
        text += f"numerical:\n{num}\nanalytical:\n{ana}\n"
    return text


def _fast_projection(func, inputs, outputs, diff_inputs, in_indices, out_indices, eps, rng):
    """(numerical, analytical) u^T J v per (o, i), with random real u and v components."""
    from ..factories import tensor
    pairs = {}
    for i, x in zip(in_indices, diff_inputs):
        v = _random_like(rng, x)
        arr = x.detach().numpy()
        old = arr.copy()
        arr += eps * v
        plus = _eval_outputs(func, inputs, out_indices)
        arr[...] = old - eps * v
        minus = _eval_outputs(func, inputs, out_indices)
        arr[...] = old
        for o, out in enumerate(outputs):
            u = _random_like(rng, out)
            diff = (plus[o] - minus[o]) / (2 * eps)
            numerical = float(np.sum(u.real * diff.real + u.imag * diff.imag))
            (g,) = autograd_grad(out, [x], tensor(u), retain_graph=True, allow_unused=True)
            g = np.zeros_like(v) if g is None else g.detach().numpy()
            analytical = float(np.sum(g.real * v.real + g.imag * v.imag))
            pairs[(o, i)] = (numerical, analytical)
    return pairs


def _random_like(rng, t) -> np.ndarray:
    shape = tuple(t.shape)
    values = rng.uniform(-1, 1, shape)
    if t.dtype.is_complex:
        values = values + 1j * rng.uniform(-1, 1, shape)
    return values.astype(t.dtype.np_dtype)


# --- gradcheck -------------------------------------------------------------------------

def gradcheck(func, inputs, *, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              raise_exception: bool = True, nondet_tol: float = 0.0,
              check_undefined_grad: bool = True, check_grad_dtypes: bool = False,
              check_batched_grad: bool = False, check_batched_forward_grad: bool = False,
              check_forward_ad: bool = False, check_backward_ad: bool = True,
              fast_mode: bool = False, masked=None) -> bool:
    """True when the analytical (and, if asked, forward-mode) jacobians of `func` at
    `inputs` match float64 central differences; otherwise raise GradcheckError (or
    return False with raise_exception=False). Inputs that require grad are checked.
    check_batched_grad: gradients for a batch of cotangents (autograd.grad's
    is_grads_batched) must equal the gradients of each cotangent alone."""
    func, inputs = _over_sparse_values(func, _as_tuple(inputs))
    _refuse_unsupported(check_batched_forward_grad, False)
    try:
        _gradcheck(func, _as_tuple(inputs), eps, atol, rtol, nondet_tol, check_undefined_grad,
                   check_grad_dtypes, check_forward_ad, check_backward_ad, fast_mode)
        if check_batched_grad and check_backward_ad:
            _check_batched_grads(func, _as_tuple(inputs), atol, rtol)
    except GradcheckError:
        if raise_exception:
            raise
        return False
    return True


def _over_sparse_values(func, inputs: tuple):
    """Sparse inputs checked over their stored values (torch's masked=True semantics: the
    unspecified elements are not perturbed), sparse outputs over their dense values: a
    gradcheck of dense tensors. Inputs and outputs without sparse tensors pass through."""
    from ..sparse_coo import SparseCOOTensor
    if not any(isinstance(x, SparseCOOTensor) for x in inputs):
        return func, inputs
    templates = {k: x for k, x in enumerate(inputs) if isinstance(x, SparseCOOTensor)}
    dense_inputs = tuple(x._values() if k in templates else x for k, x in enumerate(inputs))

    def over_values(*args):
        rebuilt = [SparseCOOTensor(templates[k]._indices(), a, templates[k].shape,
                                   templates[k].is_coalesced()) if k in templates else a
                   for k, a in enumerate(args)]
        out = func(*rebuilt)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        dense = tuple(o.to_dense() if isinstance(o, SparseCOOTensor) else o for o in outs)
        return dense if isinstance(out, (tuple, list)) else dense[0]
    return over_values, dense_inputs


def _refuse_unsupported(check_batched_forward_grad, masked) -> None:
    if check_batched_forward_grad:
        raise NotImplementedError("gradcheck: check_batched_forward_grad=True is not "
                                  "supported (ember has no batched forward-mode AD)")
    if masked:
        raise NotImplementedError("gradcheck: masked=True (sparse-input semantics) is not "
                                  "supported")


def _check_batched_grads(func, inputs, atol, rtol, batch: int = 2) -> None:
    """autograd.grad(..., is_grads_batched=True) over `batch` random cotangents per output
    against one autograd.grad per cotangent (torch's check_batched_grad)."""
    from ..factories import tensor
    from .. import random as ember_random
    leaves = [x for x in inputs if _is_diff_tensor(x)]
    with grad_mode.enable_grad():
        outputs = [o for o in _as_tuple(func(*inputs)) if _is_diff_tensor(o)]
    if not outputs:
        return
    rng = ember_random.numpy_rng()
    cots = [tensor(np.stack([_random_like(rng, o) for _ in range(batch)])) for o in outputs]
    try:
        batched = autograd_grad(outputs, leaves, cots, retain_graph=True, allow_unused=True,
                                is_grads_batched=True)
    except Exception as exc:  # noqa: BLE001 - reported in gradcheck's words
        raise GradcheckError(f"While computing batched gradients, got: {exc}") from exc
    for b in range(batch):
        single = autograd_grad(outputs, leaves, [c[b] for c in cots], retain_graph=True,
                               allow_unused=True)
        for i, (many, one) in enumerate(zip(batched, single)):
            if (many is None) != (one is None):
                raise GradcheckError(f"Batched grad check failed for input {i}: the batched "
                                     f"gradient is {'None' if many is None else 'defined'}, "
                                     f"the unbatched one is not")
            if one is not None and not np.allclose(many[b].detach().numpy(),
                                                   one.detach().numpy(), rtol=rtol, atol=atol):
                raise GradcheckError(f"Batched grad check failed for input {i}, batch row "
                                     f"{b}: the batched gradient differs from the gradient "
                                     f"of that cotangent alone")


def _gradcheck(func, inputs, eps, atol, rtol, nondet_tol, check_undefined_grad,
               check_grad_dtypes, check_forward_ad, check_backward_ad, fast_mode) -> None:
    in_indices = [k for k, x in enumerate(inputs) if _is_diff_tensor(x)]
    if not in_indices:
        raise ValueError("gradcheck expects at least one input tensor to require gradient, "
                         "but none of the them have requires_grad=True.")
    _warn_low_precision(inputs, in_indices)
    leaves = [inputs[k] for k in in_indices]
    with grad_mode.enable_grad():
        all_outputs = _as_tuple(func(*inputs))
    out_indices = [k for k, o in enumerate(all_outputs) if _is_diff_tensor(o)]
    outputs = [all_outputs[k] for k in out_indices]
    if not outputs:
        return _check_no_differentiable_outputs(func, inputs, all_outputs, in_indices, eps)
    shapes = {i: tuple(inputs[i].shape) for i in in_indices}
    shapes.update({("out", o): tuple(out.shape) for o, out in enumerate(outputs)})
    numerical = None
    if check_backward_ad and not (fast_mode and _fast_check_passes(
            func, inputs, outputs, leaves, in_indices, out_indices, eps, atol, rtol)):
        numerical = _numerical(func, inputs, in_indices, out_indices, eps)
        analytical = _analytical(outputs, leaves, in_indices, nondet_tol, check_grad_dtypes)
        _compare(numerical, analytical, shapes, atol, rtol)
        if fast_mode:
            raise GradcheckError("Jacobian mismatch in fast mode (u^T J v with random u, v) "
                                 "although every element is within tolerance: the errors "
                                 "add up over the projection.")
    if check_forward_ad:
        if numerical is None and fast_mode and _fast_forward_passes(
                func, inputs, in_indices, out_indices, eps, atol, rtol):
            return _check_undefined(check_undefined_grad, check_backward_ad, outputs, leaves,
                                    in_indices)
        if numerical is None:
            numerical = _numerical(func, inputs, in_indices, out_indices, eps)
        fwd = _forward(func, inputs, in_indices, out_indices)
        _compare(numerical, fwd, shapes, atol, rtol, "Jacobian computed with forward mode")
    _check_undefined(check_undefined_grad, check_backward_ad, outputs, leaves, in_indices)


def _check_undefined(check_undefined_grad, check_backward_ad, outputs, leaves,
                     in_indices) -> None:
    if check_undefined_grad and check_backward_ad:
        _check_zero_cotangents(outputs, leaves, in_indices)


def _fast_forward_passes(func, inputs, in_indices, out_indices, eps, atol, rtol) -> bool:
    """fast_mode's forward-AD check: per input, the output tangent of one random tangent
    v against the central difference along v, projected on a random u (J v, not J)."""
    from ..factories import tensor
    rng = np.random.default_rng(1)
    for i in in_indices:
        x = inputs[i]
        v = _random_like(rng, x)
        arr = x.detach().numpy()
        old = arr.copy()
        arr += eps * v
        plus = _eval_outputs(func, inputs, out_indices)
        arr[...] = old - eps * v
        minus = _eval_outputs(func, inputs, out_indices)
        arr[...] = old
        with forward_ad.dual_level():
            args = list(inputs)
            args[i] = forward_ad.make_dual(x.detach(), tensor(v))
            outs = _as_tuple(func(*args))
            tans = [forward_ad.unpack_dual(outs[k]).tangent for k in out_indices]
        for o, t in enumerate(tans):
            u = _random_like(rng, outs[out_indices[o]])
            diff = (plus[o] - minus[o]) / (2 * eps)
            jv = np.zeros_like(diff) if t is None else t.detach().numpy()
            numerical = float(np.sum(u.real * diff.real + u.imag * diff.imag))
            analytical = float(np.sum(u.real * jv.real + u.imag * jv.imag))
            if abs(analytical - numerical) > atol + rtol * abs(numerical):
                return False
    return True


def _fast_check_passes(func, inputs, outputs, leaves, in_indices, out_indices, eps, atol,
                       rtol) -> bool:
    """One random projection per (output, input); a failure falls back to the slow check,
    which names the element."""
    pairs = _fast_projection(func, inputs, outputs, leaves, in_indices, out_indices, eps,
                             np.random.default_rng(0))
    return all(abs(a - n) <= atol + rtol * abs(n) for n, a in pairs.values())


def _warn_low_precision(inputs, in_indices) -> None:
    for k in in_indices:
        if inputs[k].dtype.name not in ("float64", "complex128"):
            warnings.warn(f"Input #{k} requires gradient and is not a double precision "
                          "floating point or complex. This check will likely fail if all the "
                          "inputs are not of double precision floating point or complex.",
                          stacklevel=3)


def _check_no_differentiable_outputs(func, inputs, all_outputs, in_indices, eps) -> None:
    float_outs = [k for k, o in enumerate(all_outputs)
                  if isinstance(o, Tensor) and (o.dtype.is_floating_point or o.dtype.is_complex)]
    numerical = _numerical(func, inputs, in_indices, float_outs, eps)
    for (o, i, _, _), mat in numerical.items():
        if not np.allclose(mat, 0):
            raise GradcheckError(f"Numerical gradient for function expected to be zero "
                                 f"(output {float_outs[o]} does not require grad), but input "
                                 f"{i} changes it.")


def _check_zero_cotangents(outputs, leaves, in_indices) -> None:
    """Backward with all-zero output gradients must give zero (or no) input gradients.
    (ember's engine materializes an undefined output gradient as zeros, so this is the
    form torch's undefined-grad check takes here.)"""
    from ..factories import zeros_like
    grads = autograd_grad(outputs, leaves, [zeros_like(o) for o in outputs],
                          retain_graph=True, allow_unused=True)
    for i, g in zip(in_indices, grads):
        if g is not None and np.any(g.detach().numpy() != 0):
            raise GradcheckError(f"Expected backward function to handle undefined output "
                                 f"grads. Please look at \"Notes about undefined output "
                                 f"gradients\": zero output gradients gave a nonzero gradient "
                                 f"for input {i}.")


# --- gradgradcheck ---------------------------------------------------------------------

def gradgradcheck(func, inputs, grad_outputs=None, *, eps: float = 1e-6, atol: float = 1e-5,
                  rtol: float = 1e-3, raise_exception: bool = True, nondet_tol: float = 0.0,
                  check_undefined_grad: bool = True, check_grad_dtypes: bool = False,
                  gen_non_contig_grad_outputs: bool = False,
                  check_batched_grad: bool = False,
                  check_fwd_over_rev: bool = False, check_rev_over_rev: bool = True,
                  fast_mode: bool = False, masked: bool = False) -> bool:
    """gradcheck of the function (inputs, grad_outputs) -> d<outputs, grad_outputs>/d inputs:
    second derivatives against finite differences of the first. Random grad_outputs
    (requiring grad) are drawn from ember's generator when none are given (non-contiguous
    ones with gen_non_contig_grad_outputs)."""
    inputs = _as_tuple(inputs)
    grad_outputs = _grad_outputs_for(func, inputs, grad_outputs, gen_non_contig_grad_outputs)
    n_in = len(inputs)
    diff_in = [k for k, x in enumerate(inputs) if _is_diff_tensor(x)]

    def first_derivative(*args):
        outs = [o for o in _as_tuple(func(*args[:n_in])) if _is_diff_tensor(o)]
        grads = autograd_grad(outs, [args[k] for k in diff_in], list(args[n_in:]),
                              create_graph=True, allow_unused=True)
        return tuple(g for g in grads if g is not None)
    return gradcheck(first_derivative, inputs + grad_outputs, eps=eps, atol=atol, rtol=rtol,
                     raise_exception=raise_exception, nondet_tol=nondet_tol,
                     check_undefined_grad=check_undefined_grad,
                     check_grad_dtypes=check_grad_dtypes, check_batched_grad=check_batched_grad,
                     check_forward_ad=check_fwd_over_rev,
                     check_backward_ad=check_rev_over_rev, fast_mode=fast_mode, masked=masked)


def _grad_outputs_for(func, inputs, grad_outputs, non_contiguous=False) -> tuple:
    if grad_outputs is not None:
        return _as_tuple(grad_outputs)
    from ..factories import tensor
    from ..random import numpy_rng
    with grad_mode.enable_grad():
        outs = [o for o in _as_tuple(func(*inputs)) if _is_diff_tensor(o)]
    rng = numpy_rng()
    values = [_random_like(rng, o) for o in outs]
    if not non_contiguous:
        return tuple(tensor(v, requires_grad=True) for v in values)
    # every other element of a tensor twice as wide in the last dim: a strided leaf
    return tuple(tensor(np.stack([v, v], -1)).detach()[..., 0].requires_grad_(True)
                 if v.ndim else tensor(v, requires_grad=True) for v in values)

