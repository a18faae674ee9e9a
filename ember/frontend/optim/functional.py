"""Pure optimizer updates: the math of each optimizer as a function over tensors.

Each function mirrors `torch.optim._functional.<name>` (same argument names, same
order of floating-point operations as PyTorch's single-tensor CPU path), with one
difference that ember documents as an extension: nothing is mutated. Every function
returns a NamedTuple of *new* tensors (new params, new state), so a traced/compiled
training step can include the update as ordinary graph nodes. The stateful
optimizers in `ember.optim` call these under `no_grad` and write the results back.

`state_steps` are the step counts *before* this update (Python numbers or 0-d
tensors); the functions return the incremented counts. A Python number is a
constant for a tracer; pass 0-d tensors to keep the step symbolic later.

Ops used are ember ops (`+ - * /`, `sqrt`, `maximum`), never numpy, so the same code
serves eager execution and tracing.
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple, Sequence

from ...ir import dtypes


def _value(step, param=None):
    """A step count as a Python number (0-d tensors are read). A symbolic step (a traced
    training step's input) stays a tensor, so the bias corrections become graph ops:
    torch's capturable=True math, computed in the step's dtype, widened to `param`'s
    float64 where the step is narrower: eager torch computes bias corrections as Python
    floats (double), and float32 corrections would move a float64 model's update by
    ~1e-7 relative."""
    if getattr(step, "is_symbolic", False):
        param_dtype = getattr(param, "dtype", None)
        if param_dtype == dtypes.float64 and step.dtype != param_dtype:
            return step.to(param_dtype)
        return step
    return step.item() if hasattr(step, "item") else step


def _sqrt(x):
    return x.sqrt() if hasattr(x, "sqrt") else math.sqrt(x)


def _next_step(step):
    return step + 1


def _lerp(start, end, weight: float):
    """torch.lerp's CPU formula for a scalar weight (kept for float32 bit-parity)."""
    if weight < 0.5:
        return start + (end - start) * weight
    return end - (end - start) * (1 - weight)


def _is_complex(x) -> bool:
    dtype = getattr(x, "dtype", None)
    return bool(getattr(dtype, "is_complex", False))


def _as_real(x):
    """torch.view_as_real as a value: complex [...] -> real [..., 2] (re, im)."""
    if not _is_complex(x):
        return x
    from ... import imag, real, stack
    return stack([real(x), imag(x)], -1)


def _as_complex(x):
    """Inverse of `_as_real`."""
    return x[..., 0] + x[..., 1] * 1j


def _complex_params_as_real_pairs(update):
    """Run `update` on complex parameters as PyTorch does: every complex tensor (param,
    grad, state) is viewed as real (re, im) pairs, so second moments are per component
    (re(g)^2, im(g)^2), not the complex g*g. Results come back complex; steps stay real."""
    @functools.wraps(update)
    def wrapper(params, *per_param_lists, **options):
        complex_at = [_is_complex(p) for p in params]
        if not any(complex_at):
            return update(params, *per_param_lists, **options)
        real_lists = [[_as_real(x) for x in seq] for seq in (params, *per_param_lists)]
        result = update(*real_lists, **options)
        return type(result)(*(
            field if name == "state_steps" else
            [_as_complex(x) if x is not None and was_complex else x
             for x, was_complex in zip(field, complex_at)]
            for name, field in zip(result._fields, result)))
    return wrapper


class SGDResult(NamedTuple):
    params: list
    momentum_buffers: list


class AdamResult(NamedTuple):
    params: list
    exp_avgs: list
    exp_avg_sqs: list
    max_exp_avg_sqs: list
    state_steps: list


class AdagradResult(NamedTuple):
    params: list
    state_sums: list
    state_steps: list


class RMSpropResult(NamedTuple):
    params: list
    square_avgs: list
    grad_avgs: list
    momentum_buffers: list
    state_steps: list


def sgd(params: Sequence, d_p_list: Sequence, momentum_buffer_list: Sequence, *,
        weight_decay: float, momentum: float, lr: float, dampening: float,
        nesterov: bool, maximize: bool) -> SGDResult:
    """SGD with optional momentum/Nesterov; a None momentum buffer starts as the grad."""
    new_params, new_bufs = [], []
    for i, param in enumerate(params):
        grad = d_p_list[i] if not maximize else -d_p_list[i]
        if weight_decay != 0:
            grad = grad + param * weight_decay
        buf = None
        if momentum != 0:
            buf = momentum_buffer_list[i] if i < len(momentum_buffer_list) else None
            if buf is None:
                buf = grad.clone()
            else:
                buf = buf * momentum + grad * (1 - dampening)
            grad = grad + buf * momentum if nesterov else buf
        new_params.append(param + grad * (-lr))
        new_bufs.append(buf)
    return SGDResult(new_params, new_bufs)


def _adam_like(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps, *,
               amsgrad, beta1, beta2, lr, weight_decay, eps, maximize, decoupled):
    out = AdamResult([], [], [], [], [])
    for i, param in enumerate(params):
        grad = grads[i] if not maximize else -grads[i]
        step_t = _next_step(state_steps[i])
        if weight_decay != 0:
            if decoupled:
                param = param * (1 - lr * weight_decay)
            else:
                grad = grad + param * weight_decay
        exp_avg = _lerp(exp_avgs[i], grad, 1 - beta1)
        exp_avg_sq = exp_avg_sqs[i] * beta2 + grad * grad * (1 - beta2)
        step = _value(step_t, param)
        bias_correction1 = 1 - beta1 ** step
        bias_correction2 = 1 - beta2 ** step
        step_size = lr / bias_correction1
        bias_correction2_sqrt = _sqrt(bias_correction2)
        max_sq = None
        if amsgrad:
            from ... import maximum
            max_sq = maximum(max_exp_avg_sqs[i], exp_avg_sq)
            denom = max_sq.sqrt() / bias_correction2_sqrt + eps
        else:
            denom = exp_avg_sq.sqrt() / bias_correction2_sqrt + eps
        out.params.append(param + (exp_avg / denom) * (-step_size))
        out.exp_avgs.append(exp_avg)
        out.exp_avg_sqs.append(exp_avg_sq)
        out.max_exp_avg_sqs.append(max_sq)
        out.state_steps.append(step_t)
    return out


@_complex_params_as_real_pairs
def adam(params: Sequence, grads: Sequence, exp_avgs: Sequence, exp_avg_sqs: Sequence,
         max_exp_avg_sqs: Sequence, state_steps: Sequence, *, amsgrad: bool, beta1: float,
         beta2: float, lr: float, weight_decay: float, eps: float,
         maximize: bool) -> AdamResult:
    """Adam (L2 weight decay added to the gradient). `max_exp_avg_sqs` is read only
    when amsgrad=True (pass [] otherwise)."""
    return _adam_like(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps,
                      amsgrad=amsgrad, beta1=beta1, beta2=beta2, lr=lr,
                      weight_decay=weight_decay, eps=eps, maximize=maximize, decoupled=False)


@_complex_params_as_real_pairs
def adamw(params: Sequence, grads: Sequence, exp_avgs: Sequence, exp_avg_sqs: Sequence,
          max_exp_avg_sqs: Sequence, state_steps: Sequence, *, amsgrad: bool, beta1: float,
          beta2: float, lr: float, weight_decay: float, eps: float,
          maximize: bool) -> AdamResult:
    """AdamW: Adam with decoupled weight decay (param *= 1 - lr * weight_decay first)."""
    return _adam_like(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps,
                      amsgrad=amsgrad, beta1=beta1, beta2=beta2, lr=lr,
                      weight_decay=weight_decay, eps=eps, maximize=maximize, decoupled=True)


@_complex_params_as_real_pairs
def adagrad(params: Sequence, grads: Sequence, state_sums: Sequence, state_steps: Sequence,
            *, lr: float, weight_decay: float, lr_decay: float, eps: float,
            maximize: bool) -> AdagradResult:
    out = AdagradResult([], [], [])
    for i, param in enumerate(params):
        step_t = _next_step(state_steps[i])
        step = _value(step_t, param)
        grad = grads[i] if not maximize else -grads[i]
        if weight_decay != 0:
            grad = grad + param * weight_decay
        clr = lr / (1 + (step - 1) * lr_decay)
        state_sum = state_sums[i] + grad * grad
        std = state_sum.sqrt() + eps
        out.params.append(param + (grad / std) * (-clr))
        out.state_sums.append(state_sum)
        out.state_steps.append(step_t)
    return out


@_complex_params_as_real_pairs
def rmsprop(params: Sequence, grads: Sequence, square_avgs: Sequence, grad_avgs: Sequence,
            momentum_buffer_list: Sequence, state_steps: Sequence, *, lr: float,
            alpha: float, eps: float, weight_decay: float, momentum: float, centered: bool,
            maximize: bool) -> RMSpropResult:
    """RMSprop; `grad_avgs` is read only when centered, `momentum_buffer_list` only when
    momentum > 0 (pass [] otherwise)."""
    out = RMSpropResult([], [], [], [], [])
    for i, param in enumerate(params):
        grad = grads[i] if not maximize else -grads[i]
        step_t = _next_step(state_steps[i])
        if weight_decay != 0:
            grad = grad + param * weight_decay
        square_avg = square_avgs[i] * alpha + grad * grad * (1 - alpha)
        grad_avg = None
        if centered:
            grad_avg = _lerp(grad_avgs[i], grad, 1 - alpha)
            avg = (square_avg - grad_avg * grad_avg).sqrt()
        else:
            avg = square_avg.sqrt()
        avg = avg + eps
        buf = None
        if momentum > 0:
            buf = momentum_buffer_list[i] * momentum + grad / avg
            new_param = param + buf * (-lr)
        else:
            new_param = param + (grad / avg) * (-lr)
        out.params.append(new_param)
        out.square_avgs.append(square_avg)
        out.grad_avgs.append(grad_avg)
        out.momentum_buffers.append(buf)
        out.state_steps.append(step_t)
    return out


__all__ = ["sgd", "adam", "adamw", "adagrad", "rmsprop", "SGDResult", "AdamResult",
           "AdagradResult", "RMSpropResult"]
