"""Adadelta, Adamax, NAdam, RAdam, Rprop: torch.optim's hyperparameters, defaults, state
keys and update order (its single-tensor path), written as in-place tensor updates under
no_grad. Unlike SGD/Adam there is no pure functional form of these updates (yet), so a
compiled training step cannot include them; eager training uses them as torch does."""
from __future__ import annotations

import math

from ..autograd import no_grad
from ..tensor import Tensor
from .optimizer import Optimizer, check_lr, hyperparameters
from .optimizers import _check, _implementation_flags, _step_tensor


def _zeros_like(p):
    from ... import zeros_like
    return zeros_like(p)


def _real_view(value):
    """A complex tensor's (re, im) pairs as a real view sharing its storage; else itself."""
    if getattr(getattr(value, "dtype", None), "is_complex", False):
        from ... import view_as_real
        return view_as_real(value)
    return value


class _InPlaceOptimizer(Optimizer):
    """step(): for each parameter with a gradient, `_update(param, grad, state, group)`."""
    _state_keys: tuple[str, ...] = ()

    def _init_state(self, p, state: dict, group: dict) -> None:
        state["step"] = _step_tensor()
        for key in self._state_keys:
            state[key] = _zeros_like(p)

    def step(self, closure=None):
        loss = self._closure_loss(closure)
        with no_grad():
            for group in map(hyperparameters, self.param_groups):
                for p in self._params_with_grad(group):
                    state = self.state[p]
                    if len(state) == 0:
                        self._init_state(p, state, group)
                    grad = -p.grad if group.get("maximize") else p.grad
                    state["step"] += 1
                    if p.dtype.is_complex:       # torch updates complex params as (re, im)
                        p, grad, state = _real_view(p), _real_view(grad), {
                            k: _real_view(v) for k, v in state.items()}
                    self._update(p, grad, state, group, state["step"].item())
        return loss

    def _update(self, p, grad, state: dict, group: dict, step: float) -> None:
        raise NotImplementedError


def _check_common(lr, eps, weight_decay, betas=None) -> None:
    check_lr(lr)
    _check(eps >= 0.0, f"Invalid epsilon value: {eps}")
    _check(weight_decay >= 0.0, f"Invalid weight_decay value: {weight_decay}")
    if betas is not None:
        _check(0.0 <= betas[0] < 1.0, f"Invalid beta parameter at index 0: {betas[0]}")
        _check(0.0 <= betas[1] < 1.0, f"Invalid beta parameter at index 1: {betas[1]}")


class Adadelta(_InPlaceOptimizer):
    _state_keys = ("square_avg", "acc_delta")

    def __init__(self, params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0, foreach=None, *, capturable: bool = False,
                 maximize: bool = False, differentiable: bool = False):
        _implementation_flags("Adadelta", differentiable, foreach)
        _check_common(lr, eps, weight_decay)
        _check(0.0 <= rho <= 1.0, f"Invalid rho value: {rho}")
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay,
                                      maximize=maximize, capturable=capturable,
                                      foreach=foreach, differentiable=differentiable))

    def _update(self, p, grad, state, group, step):
        rho, eps = group["rho"], group["eps"]
        if group["weight_decay"] != 0:
            grad = grad.add(p, alpha=group["weight_decay"])
        square_avg, acc_delta = state["square_avg"], state["acc_delta"]
        square_avg.mul_(rho).addcmul_(grad, grad, value=1 - rho)
        std = square_avg.add(eps).sqrt_()
        delta = acc_delta.add(eps).sqrt_().div_(std).mul_(grad)
        acc_delta.mul_(rho).addcmul_(delta, delta, value=1 - rho)
        p.add_(delta, alpha=-group["lr"])


class Adamax(_InPlaceOptimizer):
    _state_keys = ("exp_avg", "exp_inf")

    def __init__(self, params, lr: float = 2e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, foreach=None, *, maximize: bool = False,
                 differentiable: bool = False, capturable: bool = False):
        _implementation_flags("Adamax", differentiable, foreach)
        _check_common(lr, eps, weight_decay, betas)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      foreach=foreach, maximize=maximize,
                                      differentiable=differentiable, capturable=capturable))

    def _update(self, p, grad, state, group, step):
        from ... import maximum
        beta1, beta2 = group["betas"]
        if group["weight_decay"] != 0:
            grad = grad.add(p, alpha=group["weight_decay"])
        exp_avg, exp_inf = state["exp_avg"], state["exp_inf"]
        exp_avg.lerp_(grad, 1 - beta1)
        exp_inf.copy_(maximum(exp_inf.mul_(beta2), grad.abs().add_(group["eps"])))
        p.addcdiv_(exp_avg, exp_inf, value=-group["lr"] / (1 - beta1 ** step))


class NAdam(_InPlaceOptimizer):
    _state_keys = ("exp_avg", "exp_avg_sq")

    def __init__(self, params, lr: float = 2e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, momentum_decay: float = 4e-3,
                 decoupled_weight_decay: bool = False, *, foreach=None,
                 maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False):
        _implementation_flags("NAdam", differentiable, foreach)
        _check_common(lr, eps, weight_decay, betas)
        _check(momentum_decay >= 0.0, f"Invalid momentum_decay value: {momentum_decay}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      momentum_decay=momentum_decay,
                                      decoupled_weight_decay=decoupled_weight_decay,
                                      maximize=maximize, foreach=foreach,
                                      capturable=capturable, differentiable=differentiable))

    def _init_state(self, p, state, group):
        super()._init_state(p, state, group)
        state["mu_product"] = _step_tensor(1.0)

    def _update(self, p, grad, state, group, step):
        lr, (beta1, beta2) = group["lr"], group["betas"]
        if group["weight_decay"] != 0:
            if group["decoupled_weight_decay"]:
                p.mul_(1 - lr * group["weight_decay"])
            else:
                grad = grad.add(p, alpha=group["weight_decay"])
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * group["momentum_decay"]))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * group["momentum_decay"]))
        state["mu_product"] *= mu                  # a float32 product, as in torch
        mu_product = state["mu_product"].item()
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = exp_avg_sq.div(1 - beta2 ** step).sqrt().add_(group["eps"])
        p.addcdiv_(grad, denom, value=-lr * (1.0 - mu) / (1.0 - mu_product))
        p.addcdiv_(exp_avg, denom, value=-lr * mu_next / (1.0 - mu_product * mu_next))


class RAdam(_InPlaceOptimizer):
    _state_keys = ("exp_avg", "exp_avg_sq")

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, decoupled_weight_decay: bool = False, *,
                 foreach=None, maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False):
        _implementation_flags("RAdam", differentiable, foreach)
        _check_common(lr, eps, weight_decay, betas)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      maximize=maximize, foreach=foreach,
                                      capturable=capturable,
                                      decoupled_weight_decay=decoupled_weight_decay,
                                      differentiable=differentiable))

    def _update(self, p, grad, state, group, step):
        lr, (beta1, beta2) = group["lr"], group["betas"]
        if group["weight_decay"] != 0:
            if group["decoupled_weight_decay"]:
                p.mul_(1 - lr * group["weight_decay"])
            else:
                grad = grad.add(p, alpha=group["weight_decay"])
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        bias_correction2 = 1 - beta2 ** step
        corrected_avg = exp_avg / (1 - beta1 ** step)
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * step * (beta2 ** step) / bias_correction2
        if rho_t > 5.0:           # the variance is tractable: rectified adaptive step
            rect = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf
                             / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
            adaptive_lr = math.sqrt(bias_correction2) / exp_avg_sq.sqrt().add_(group["eps"])
            p.add_(corrected_avg * lr * adaptive_lr * rect, alpha=-1.0)
        else:
            p.add_(corrected_avg * lr, alpha=-1.0)


class Rprop(_InPlaceOptimizer):
    def __init__(self, params, lr: float = 1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50),
                 *, capturable: bool = False, foreach=None, maximize: bool = False,
                 differentiable: bool = False):
        _implementation_flags("Rprop", differentiable, foreach)
        check_lr(lr)
        _check(0.0 < etas[0] < 1.0 < etas[1], f"Invalid eta values: {etas[0]}, {etas[1]}")
        super().__init__(params, dict(lr=lr, etas=etas, step_sizes=step_sizes,
                                      foreach=foreach, maximize=maximize,
                                      differentiable=differentiable, capturable=capturable))

    def _init_state(self, p, state, group):
        from ... import full_like
        state["step"] = _step_tensor()
        state["prev"] = _zeros_like(p)
        lr = group["lr"]                   # both components of a complex step size
        state["step_size"] = full_like(p, complex(lr, lr) if p.dtype.is_complex else lr)

    def _update(self, p, grad, state, group, step):
        from ... import where
        eta_minus, eta_plus = group["etas"]
        low, high = group["step_sizes"]
        agreement = (grad * state["prev"]).sign()
        from ... import full_like
        # the factors in the parameter's dtype (float32 constants would round 1.2 etc.)
        factor = where(agreement > 0, full_like(p, eta_plus),
                       where(agreement < 0, full_like(p, eta_minus), full_like(p, 1.0)))
        state["step_size"].mul_(factor).clamp_(low, high)
        grad = where(agreement < 0, 0.0, grad).to(p.dtype)   # a sign flip skips this step
        p.addcmul_(grad.sign(), state["step_size"], value=-1)
        state["prev"].copy_(grad)


__all__ = ["Adadelta", "Adamax", "NAdam", "RAdam", "Rprop"]


def _float32(value: float) -> float:
    import numpy as np
    return float(np.float32(value))


class ASGD(_InPlaceOptimizer):
    """Averaged SGD: SGD with a decaying step eta and a running average 'ax' of the
    iterates (a plain copy until step t0, then the mean since t0)."""

    def __init__(self, params, lr: float = 1e-2, lambd: float = 1e-4, alpha: float = 0.75,
                 t0: float = 1e6, weight_decay: float = 0, foreach=None,
                 maximize: bool = False, differentiable: bool = False,
                 capturable: bool = False):
        _implementation_flags("ASGD", differentiable, foreach)
        check_lr(lr)
        _check(weight_decay >= 0.0, f"Invalid weight_decay value: {weight_decay}")
        super().__init__(params, dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0,
                                      weight_decay=weight_decay, foreach=foreach,
                                      maximize=maximize, differentiable=differentiable,
                                      capturable=capturable))

    def _init_state(self, p, state, group):
        state["step"] = _step_tensor()
        state["eta"] = _step_tensor(group["lr"])      # float32 0-d tensors, as torch's
        state["mu"] = _step_tensor(1.0)
        state["ax"] = _zeros_like(p)

    def _update(self, p, grad, state, group, step):
        lr, lambd = group["lr"], group["lambd"]
        if group["weight_decay"] != 0:
            grad = grad.add(p, alpha=group["weight_decay"])
        eta, ax, mu = state["eta"].item(), state["ax"], state["mu"]
        if group["foreach"]:
            # torch's foreach kernel regroups the same update (and rounds differently):
            # param -= eta * (grad + lambd * param); ax += mu * (param - ax)
            p.add_(grad.add(p, alpha=lambd), alpha=-eta)
            ax.add_(p.sub(ax).mul_(mu.item()))
        else:
            p.mul_(1 - lambd * eta)
            p.add_(grad, alpha=-eta)
            if mu.item() != 1:
                ax.add_(p.sub(ax).mul_(mu))
            else:
                ax.copy_(p)
        # torch makes the new values float32 tensors first: a float64 state (after a
        # load_state_dict cast it) holds float32-rounded values too
        if group["foreach"]:      # torch's foreach path computes eta in float32 tensor ops
            import numpy as np
            f = np.float32
            decayed = (f(lambd * lr) * f(step) + f(1)) ** f(group["alpha"])
            state["eta"].fill_(float((f(1) / decayed) * f(lr)))   # lr / t is t⁻¹ * lr
        else:
            state["eta"].fill_(_float32(lr / ((1 + lambd * lr * step) ** group["alpha"])))
        state["mu"].fill_(_float32(1 / max(1, step - group["t0"])))


class Adafactor(Optimizer):
    """Adafactor (torch.optim.Adafactor): second moments factored into row and column
    statistics for parameters of 2+ dimensions (a full 'variance' for vectors), a
    relative step size min(lr, 1/sqrt(step)) scaled by the parameter's RMS, updates
    clipped to RMS d. Real parameters only, as in torch."""

    def __init__(self, params, lr: float = 1e-2, beta2_decay: float = -0.8,
                 eps=(None, 1e-3), d: float = 1.0, weight_decay: float = 0.0, *,
                 foreach=None, maximize: bool = False):
        from ..tensor import Tensor
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        _check(0.0 <= float(lr), f"Learning rate should be >= 0 but is: {lr}")
        _check(0.0 >= beta2_decay, f"beta2_decay should be <= 0 but is: {beta2_decay}")
        _check(eps[0] is None or 0.0 <= eps[0], f"epsilon1 should be >= 0 but is: {eps[0]}")
        _check(0.0 <= eps[1], f"epsilon2 should be >= 0 but is: {eps[1]}")
        _check(1.0 <= d, f"Clipping threshold d should be >= 1 but is: {d}")
        _check(0.0 <= weight_decay, f"weight_decay should be >= 0 but is: {weight_decay}")
        super().__init__(params, dict(lr=lr, beta2_decay=beta2_decay, eps=eps, d=d,
                                      weight_decay=weight_decay, foreach=foreach,
                                      maximize=maximize))

    @staticmethod
    def _init_state(p, state):
        from ... import zeros
        state["step"] = _step_tensor()
        if p.grad.dim() > 1:        # factored: a row statistic and a column statistic
            shape = list(p.grad.shape)
            state["row_var"] = zeros(shape[:-1] + [1], dtype=p.dtype, device=p.device)
            state["col_var"] = zeros(shape[:-2] + [1, shape[-1]], dtype=p.dtype,
                                     device=p.device)
        else:
            state["variance"] = _zeros_like(p)

    def step(self, closure=None):
        loss = self._closure_loss(closure)
        with no_grad():
            for group in map(hyperparameters, self.param_groups):
                for p in self._params_with_grad(group):
                    if p.dtype.is_complex:
                        raise RuntimeError("Adafactor does not support complex parameters")
                    state = self.state[p]
                    if len(state) == 0:
                        self._init_state(p, state)
                    state["step"] += 1
                    self._update(p, state, group, state["step"].item())
        return loss

    @staticmethod
    def _update(p, state, group, step):
        import numpy as np
        lr, d, weight_decay = group["lr"], group["d"], group["weight_decay"]
        eps1, eps2 = group["eps"]
        if eps1 is None:
            eps1 = float(np.finfo(np.dtype(str(p.dtype).split(".")[-1])).eps)
        grad = -p.grad if group["maximize"] else p.grad
        one_minus_beta2 = step ** group["beta2_decay"]
        rho = min(lr, 1 / (step ** 0.5))
        alpha = max(eps2, p.norm(2).item() / (p.numel() ** 0.5)) * rho
        if weight_decay != 0:
            p.mul_(1 - lr * weight_decay)
        if grad.dim() > 1:
            row_mean = grad.norm(dim=-1, keepdim=True).square().div(grad.size(-1))
            state["row_var"].lerp_(row_mean, one_minus_beta2)
            col_mean = grad.norm(dim=-2, keepdim=True).square().div(grad.size(-2))
            state["col_var"].lerp_(col_mean, one_minus_beta2)
            var_estimate = state["row_var"] @ state["col_var"]
            var_estimate = var_estimate.div(
                state["row_var"].mean(dim=-2, keepdim=True).clamp(min=eps1))
        else:
            state["variance"].lerp_(grad * grad, one_minus_beta2)
            var_estimate = state["variance"].clone()
        update = var_estimate.clamp(min=eps1 * eps1).rsqrt().mul(grad)
        denom = max(1.0, update.norm(2).item() / ((update.numel() ** 0.5) * d))
        p.add_(update, alpha=-alpha / denom)


__all__ += ["ASGD", "Adafactor"]


class SparseAdam(Optimizer):
    """Adam for sparse gradients (nn.Embedding(sparse=True)): only the rows (entries)
    the gradient holds are updated, their moments included; 'step' is a Python int,
    as torch keeps it. Dense gradients are refused, as torch refuses them."""
    _tensor_step = False
    _sparse_grads = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 maximize: bool = False):
        check_lr(lr)
        _check(0.0 < eps, f"Invalid epsilon value: {eps}")
        _check(0.0 <= betas[0] < 1.0, f"Invalid beta parameter at index 0: {betas[0]}")
        _check(0.0 <= betas[1] < 1.0, f"Invalid beta parameter at index 1: {betas[1]}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, maximize=maximize))
        flat = [p for group in self.param_groups for p in group["params"]]
        sparse = [i for i, p in enumerate(flat) if getattr(p, "is_sparse", False)]
        if sparse:
            raise ValueError(f"Sparse params at indices {sparse}: SparseAdam requires "
                             "dense parameter tensors")
        complex_ = [i for i, p in enumerate(flat) if p.dtype.is_complex]
        if complex_:
            raise ValueError(f"Complex params at indices {complex_}: SparseAdam does not "
                             "support complex parameters")

    def step(self, closure=None):
        loss = self._closure_loss(closure)
        with no_grad():
            for group in map(hyperparameters, self.param_groups):
                for p in self._params_with_grad(group):
                    if not getattr(p.grad, "is_sparse", False):
                        raise RuntimeError("SparseAdam does not support dense gradients, "
                                           "please consider Adam instead")
                    state = self.state[p]
                    if len(state) == 0:
                        state["step"] = 0
                        state["exp_avg"] = _zeros_like(p)
                        state["exp_avg_sq"] = _zeros_like(p)
                    state["step"] += 1
                    self._update(p, state, group)
        return loss

    @staticmethod
    def _update(p, state, group):
        beta1, beta2 = group["betas"]
        grad = p.grad.coalesce()
        if group["maximize"]:
            grad = -grad
        indices, values = grad.indices(), grad.values()
        if values.numel() == 0:
            return
        at = tuple(indices[k] for k in range(indices.shape[0]))   # the entries it holds
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        old_avg, old_avg_sq = exp_avg[at], exp_avg_sq[at]
        avg_update = values.sub(old_avg).mul(1 - beta1)
        exp_avg[at] = old_avg + avg_update
        avg_sq_update = values.pow(2).sub(old_avg_sq).mul(1 - beta2)
        exp_avg_sq[at] = old_avg_sq + avg_sq_update
        numer = avg_update.add(old_avg)
        denom = avg_sq_update.add(old_avg_sq).sqrt().add(group["eps"])
        step = state["step"]
        step_size = group["lr"] * math.sqrt(1 - beta2 ** step) / (1 - beta1 ** step)
        p[at] = p[at] + numer.div(denom) * -step_size


__all__ += ["SparseAdam"]


def _orthogonalized(grad, coefficients, steps: int, eps: float):
    """Muon's quintic Newton-Schulz iteration toward the orthogonal factor of a 2-D
    gradient, in bfloat16 as torch runs it (each product accumulated in float32 and
    rounded once: torch's CPU bfloat16 addmm rounds exactly as a float64 product and sum
    rounded to bfloat16 does, a float32 one differs in ~1 case in 1000)."""
    from ... import bfloat16, float32, float64
    if steps >= 100:
        raise ValueError("Number of steps must be less than 100 for computational "
                         "efficiency")
    if grad.dim() != 2:
        raise ValueError("Input tensor gradient must be a 2D matrix")
    if len(coefficients) != 3:
        raise ValueError("Coefficients must be a tuple of exactly 3 values")
    a, b, c = coefficients
    tall = grad.size(0) > grad.size(1)
    x = grad.to(bfloat16)
    if tall:
        x = x.T
    # the norm accumulated in float32 and rounded once, as torch's bfloat16 norm
    x = x.div(x.to(float32).norm().to(bfloat16).clamp(min=eps))
    for _ in range(steps):
        xf = x.to(float64)
        gram = (xf @ xf.T).to(bfloat16).to(float64)
        gram_update = (gram * b + (gram @ gram) * c).to(bfloat16).to(float64)
        x = (xf * a + gram_update @ xf).to(bfloat16)
    return x.T if tall else x


def _adjusted_lr(lr: float, adjust_lr_fn, shape) -> float:
    """Muon's per-matrix scale: sqrt(max(1, A/B)) ('original', the default) or
    0.2 sqrt(max(A, B)) ('match_rms_adamw')."""
    rows, cols = shape[:2]
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        return lr * math.sqrt(max(1, rows / cols))
    if adjust_lr_fn == "match_rms_adamw":
        return lr * 0.2 * math.sqrt(max(rows, cols))
    return lr


class Muon(Optimizer):
    """Muon (torch.optim.Muon): momentum (Nesterov by default) whose update is
    orthogonalized by a Newton-Schulz iteration, for 2-D parameters only."""

    def __init__(self, params, lr: float = 1e-3, weight_decay: float = 0.1,
                 momentum: float = 0.95, nesterov: bool = True,
                 ns_coefficients=(3.4445, -4.775, 2.0315), eps: float = 1e-7,
                 ns_steps: int = 5, adjust_lr_fn=None):
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        _check(0.0 <= float(lr), f"Learning rate should be >= 0 but is: {lr}")
        _check(0.0 <= momentum, f"momentum should be >= 0 but is: {momentum}")
        _check(0.0 <= weight_decay, f"weight decay should be >= 0 but is: {weight_decay}")
        _check(adjust_lr_fn in (None, "original", "match_rms_adamw"),
               f"Adjust learning rate function {adjust_lr_fn} is not supported")
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum,
                                      nesterov=nesterov, ns_coefficients=ns_coefficients,
                                      eps=eps, ns_steps=ns_steps, adjust_lr_fn=adjust_lr_fn))
        for group in self.param_groups:
            for p in group["params"]:
                if p.dim() != 2:
                    raise ValueError("Muon only supports 2D parameters whereas we found a "
                                     f"parameter with size: {tuple(p.shape)}")

    def step(self, closure=None):
        loss = self._closure_loss(closure)
        with no_grad():
            for group in map(hyperparameters, self.param_groups):
                for p in self._params_with_grad(group):
                    if p.dtype.is_complex:
                        raise RuntimeError("Muon does not support complex parameters")
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = _zeros_like(p.grad)
                    self._update(p, state["momentum_buffer"], group)
        return loss

    @staticmethod
    def _update(p, buf, group):
        grad, momentum = p.grad, group["momentum"]
        if grad.dim() != 2:
            raise ValueError("Param gradient must be a 2D matrix")
        buf.lerp_(grad, 1 - momentum)
        update = grad.lerp(buf, momentum) if group["nesterov"] else buf
        update = _orthogonalized(update, group["ns_coefficients"], group["ns_steps"],
                                 group["eps"])
        lr = group["lr"]      # (a NumPy float32 for a tensor lr: float32 math, as torch)
        p.mul_(float(1 - lr * group["weight_decay"]))
        p.add_(update.to(p.dtype), alpha=-float(_adjusted_lr(lr, group["adjust_lr_fn"],
                                                             p.shape)))


__all__ += ["Muon"]
