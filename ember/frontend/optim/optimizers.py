"""SGD, Adam, AdamW, Adagrad, RMSprop: PyTorch's hyperparameters, defaults and state.

Each `step()` gathers the group's tensors, calls the pure update from
`functional.py` under no_grad, and writes the new values back in place. State
keys and layout match torch.optim (e.g. Adam: 'step' as a 0-d float32 tensor,
'exp_avg', 'exp_avg_sq', 'max_exp_avg_sq' when amsgrad), so state_dicts line up.
"""
from __future__ import annotations

from ..autograd import no_grad
from .optimizer import Optimizer, _write, check_lr, dense_grad, hyperparameters
from . import functional as F
from . import inplace_cpu, multi_tensor_cuda


def _zeros_like(p):
    from ... import zeros_like
    return zeros_like(p)


def _step_tensor(value: float = 0.0):
    from ... import tensor, float32
    return tensor(value, dtype=float32)


def _implementation_flags(name: str, differentiable: bool = False, foreach=None,
                          fused=None) -> None:
    """torch's foreach / fused / capturable choose among kernels that compute the same
    update. On CUDA parameters ember updates a group with one multi-tensor kernel
    (multi_tensor_cuda) unless foreach=False asks for the per-tensor loop; for Adam/AdamW,
    fused=True or capturable=True keep the step count on the device, as in torch. The
    flags are kept in the param groups as torch keeps them. differentiable=True is
    accepted; its step refuses leaf parameters that require grad, as torch's does
    (optimizer.py), and takes the per-tensor path."""
    if fused and foreach:
        raise RuntimeError("`fused` and `foreach` cannot be `True` together.")
    if fused and differentiable:
        raise RuntimeError("`fused` does not support `differentiable`")


def _check_tensor_betas(betas, foreach, capturable, lr) -> None:
    """torch's checks of tensor lr/betas for Adam-like optimizers."""
    from ..tensor import Tensor
    if isinstance(lr, Tensor) and foreach and not capturable:
        raise ValueError("lr as a Tensor is not supported for capturable=False and "
                         "foreach=True")
    if isinstance(betas[0], Tensor) != isinstance(betas[1], Tensor):
        raise ValueError("betas must be either both floats or both Tensors")
    if any(isinstance(b, Tensor) for b in betas):
        if foreach and not capturable:
            raise ValueError("betas[0] as a Tensor is not supported for capturable=False "
                             "and foreach=True")
        for i, b in enumerate(betas):
            if isinstance(b, Tensor) and b.numel() != 1:
                raise ValueError(f"Tensor betas[{i}] must be 1-element")


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


def _write_all(dsts, srcs) -> None:
    for d, s in zip(dsts, srcs):
        if d is not None and s is not None:
            _write(d, s)


def _init_states(state, params, keys) -> list:
    """Each param's state, created on its first step as torch does: a 0-d float32 'step'
    and zeros like the param for each of `keys`."""
    states = []
    for p in params:
        st = state[p]
        if len(st) == 0:
            st["step"] = _step_tensor()
            for key in keys:
                st[key] = _zeros_like(p)
        states.append(st)
    return states


def _column(states, key) -> list:
    return [s[key] for s in states]


def _write_back(params, states, out, fields: dict) -> None:
    """Write the update's new params, and state[key] from `out.<field>`, in place."""
    _write_all(params, out.params)
    for key, field in fields.items():
        _write_all(_column(states, key), getattr(out, field))


class SGD(Optimizer):
    _sparse_grads = True

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, *, maximize: bool = False,
                 foreach=None, differentiable: bool = False, fused=None):
        _implementation_flags("SGD", differentiable, foreach, fused)
        self._multi_tensor = (bool(fused) or foreach is not False) and not differentiable
        check_lr(lr)
        _check(momentum >= 0.0, f"Invalid momentum value: {momentum}")
        _check(weight_decay >= 0.0, f"Invalid weight_decay value: {weight_decay}")
        _check(not nesterov or (momentum > 0 and dampening == 0),
               "Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize, foreach=foreach,
                                      differentiable=differentiable, fused=fused))

    def step(self, closure=None):
        loss = self._closure_loss(closure)
        with no_grad():
            for group in map(hyperparameters, self.param_groups):
                params = self._params_with_grad(group)
                bufs = [self.state[p].get("momentum_buffer") for p in params] \
                    if group["momentum"] != 0 else []
                if group["weight_decay"] and any(getattr(p.grad, "is_sparse", False)
                                                 for p in params):
                    # torch adds the dense parameter to the sparse gradient, which it
                    # refuses (sparse + dense)
                    raise RuntimeError("SGD: weight_decay with a sparse gradient: add(sparse, "
                                       "dense) is not supported. Use add(dense, sparse) "
                                       "instead.")
                grads = [dense_grad(p.grad) for p in params]
                if self._cuda_sgd(group, params, grads, bufs):
                    continue
                if inplace_cpu.applies(params, grads) and all(
                        b is None or inplace_cpu._state_ok([b], p._array)
                        for p, b in zip(params, bufs)):
                    new_bufs = inplace_cpu.sgd(
                        params, grads, bufs, weight_decay=group["weight_decay"],
                        momentum=group["momentum"], lr=group["lr"],
                        dampening=group["dampening"], nesterov=group["nesterov"],
                        maximize=group["maximize"])
                    if group["momentum"] != 0:
                        for p, buf in zip(params, new_bufs):
                            self.state[p]["momentum_buffer"] = buf
                    continue
                out = F.sgd(params, grads, bufs,
                            weight_decay=group["weight_decay"], momentum=group["momentum"],
                            lr=group["lr"], dampening=group["dampening"],
                            nesterov=group["nesterov"], maximize=group["maximize"])
                _write_all(params, out.params)
                if group["momentum"] != 0:
                    for p, old, new in zip(params, bufs, out.momentum_buffers):
                        if old is None:
                            self.state[p]["momentum_buffer"] = new
                        else:
                            _write(old, new)
        return loss

    def _cuda_sgd(self, group, params, grads, bufs) -> bool:
        """The group updated by one multi-tensor kernel (CUDA parameters), or False."""
        if not self.__dict__.get("_multi_tensor", True):
            return False
        new_bufs = multi_tensor_cuda.sgd(
            params, grads, bufs, weight_decay=group["weight_decay"],
            momentum=group["momentum"], lr=group["lr"], dampening=group["dampening"],
            nesterov=group["nesterov"], maximize=group["maximize"])
        if new_bufs is None:
            return False
        if group["momentum"] != 0:
            for p, buf in zip(params, new_bufs):
                self.state[p]["momentum_buffer"] = buf
        return True


class Adam(Optimizer):
    _decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, amsgrad: bool = False, *, maximize: bool = False,
                 foreach=None, capturable: bool = False, differentiable: bool = False,
                 fused=None, decoupled_weight_decay: bool = False):
        _implementation_flags(type(self).__name__, differentiable, foreach, fused)
        self._multi_tensor = (bool(fused) or foreach is not False) and not differentiable
        self._device_step = bool(fused) or bool(capturable)
        check_lr(lr)
        _check_tensor_betas(betas, foreach, capturable, lr)
        _check(eps >= 0.0, f"Invalid epsilon value: {eps}")
        _check(0.0 <= betas[0] < 1.0, f"Invalid beta parameter at index 0: {betas[0]}")
        _check(0.0 <= betas[1] < 1.0, f"Invalid beta parameter at index 1: {betas[1]}")
        _check(weight_decay >= 0.0, f"Invalid weight_decay value: {weight_decay}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize, foreach=foreach,
                                      capturable=capturable, differentiable=differentiable,
                                      fused=fused,
                                      decoupled_weight_decay=decoupled_weight_decay))

    def step(self, closure=None):
        loss = self._closure_loss(closure)
        with no_grad():
            for group in map(hyperparameters, self.param_groups):
                decoupled = group.get("decoupled_weight_decay", self._decoupled)
                fn = F.adamw if decoupled else F.adam
                params = self._params_with_grad(group)
                amsgrad = group["amsgrad"]
                fields = {"exp_avg": "exp_avgs", "exp_avg_sq": "exp_avg_sqs",
                          "step": "state_steps"}
                if amsgrad:
                    fields["max_exp_avg_sq"] = "max_exp_avg_sqs"
                states = _init_states(self.state, params, [k for k in fields if k != "step"])
                beta1, beta2 = group["betas"]
                grads = [p.grad for p in params]
                if self.__dict__.get("_multi_tensor", True) and multi_tensor_cuda.adam(
                        params, grads, states, amsgrad=amsgrad, beta1=beta1, beta2=beta2,
                        lr=group["lr"], weight_decay=group["weight_decay"], eps=group["eps"],
                        maximize=group["maximize"], decoupled=decoupled,
                        device_step=self.__dict__.get("_device_step", False),
                        counters=self.__dict__.setdefault("_multi_tensor_counters", {}),
                        name=type(self).__name__):
                    continue
                if inplace_cpu.applies(params, grads) and inplace_cpu.adam(
                        params, grads, states, amsgrad=amsgrad, beta1=beta1, beta2=beta2,
                        lr=group["lr"], weight_decay=group["weight_decay"], eps=group["eps"],
                        maximize=group["maximize"], decoupled=decoupled):
                    continue
                out = fn(params, [p.grad for p in params], _column(states, "exp_avg"),
                         _column(states, "exp_avg_sq"),
                         _column(states, "max_exp_avg_sq") if amsgrad else [],
                         _column(states, "step"), amsgrad=amsgrad, beta1=beta1,
                         beta2=beta2, lr=group["lr"], weight_decay=group["weight_decay"],
                         eps=group["eps"], maximize=group["maximize"])
                _write_back(params, states, out, fields)
        return loss


class AdamW(Adam):
    _decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False, foreach=None, capturable: bool = False,
                 differentiable: bool = False, fused=None):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize, foreach=foreach,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)


class Adagrad(Optimizer):
    _sparse_grads = True

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0,
                 weight_decay: float = 0, initial_accumulator_value: float = 0,
                 eps: float = 1e-10, foreach=None, *, maximize: bool = False,
                 differentiable: bool = False, fused=None):
        _implementation_flags("Adagrad", differentiable, foreach, fused)
        check_lr(lr)
        _check(lr_decay >= 0.0, f"Invalid lr_decay value: {lr_decay}")
        _check(weight_decay >= 0.0, f"Invalid weight_decay value: {weight_decay}")
        _check(initial_accumulator_value >= 0.0,
               f"Invalid initial_accumulator_value value: {initial_accumulator_value}")
        _check(eps >= 0.0, f"Invalid epsilon value: {eps}")
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, eps=eps,
                                      weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      foreach=foreach, maximize=maximize,
                                      differentiable=differentiable, fused=fused))
        for group in self.param_groups:   # PyTorch creates Adagrad's state eagerly
            for p in group["params"]:
                self._init_state(p, group)

    def _init_state(self, p, group: dict) -> None:
        """'step' and 'sum' (the initial accumulator value; both components of a complex
        parameter's); groups added later get theirs on their first step, as in torch."""
        from ... import full_like
        st = self.state[p]
        st["step"] = _step_tensor()
        init = group["initial_accumulator_value"]
        if p.dtype.is_complex:
            init = complex(init, init)
        st["sum"] = full_like(p, init)

    def step(self, closure=None):
        loss = self._closure_loss(closure)
        with no_grad():
            for group in map(hyperparameters, self.param_groups):
                params = self._params_with_grad(group)
                for p in params:
                    if len(self.state[p]) == 0:
                        self._init_state(p, group)
                states = [self.state[p] for p in params]
                if group["weight_decay"] and any(getattr(p.grad, "is_sparse", False)
                                                 for p in params):
                    raise RuntimeError("weight_decay option is not compatible with sparse "
                                       "gradients")
                out = F.adagrad(params, [dense_grad(p.grad) for p in params],
                                _column(states, "sum"),
                                _column(states, "step"), lr=group["lr"],
                                weight_decay=group["weight_decay"],
                                lr_decay=group["lr_decay"], eps=group["eps"],
                                maximize=group["maximize"])
                _write_back(params, states, out, {"sum": "state_sums", "step": "state_steps"})
        return loss


class RMSprop(Optimizer):
    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0, momentum: float = 0, centered: bool = False,
                 capturable: bool = False, foreach=None, maximize: bool = False,
                 differentiable: bool = False):
        _implementation_flags("RMSprop", differentiable, foreach)
        check_lr(lr)
        _check(eps >= 0.0, f"Invalid epsilon value: {eps}")
        _check(momentum >= 0.0, f"Invalid momentum value: {momentum}")
        _check(weight_decay >= 0.0, f"Invalid weight_decay value: {weight_decay}")
        _check(alpha >= 0.0, f"Invalid alpha value: {alpha}")
        super().__init__(params, dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps,
                                      centered=centered, weight_decay=weight_decay,
                                      capturable=capturable, foreach=foreach,
                                      maximize=maximize, differentiable=differentiable))

    def step(self, closure=None):
        loss = self._closure_loss(closure)
        with no_grad():
            for group in map(hyperparameters, self.param_groups):
                params = self._params_with_grad(group)
                centered, momentum = group["centered"], group["momentum"]
                fields = {"square_avg": "square_avgs", "step": "state_steps"}
                if momentum > 0:
                    fields["momentum_buffer"] = "momentum_buffers"
                if centered:
                    fields["grad_avg"] = "grad_avgs"
                states = _init_states(self.state, params, [k for k in fields if k != "step"])
                out = F.rmsprop(params, [p.grad for p in params], _column(states, "square_avg"),
                                _column(states, "grad_avg") if centered else [],
                                _column(states, "momentum_buffer") if momentum > 0 else [],
                                _column(states, "step"), lr=group["lr"],
                                alpha=group["alpha"], eps=group["eps"],
                                weight_decay=group["weight_decay"], momentum=momentum,
                                centered=centered, maximize=group["maximize"])
                _write_back(params, states, out, fields)
        return loss


__all__ = ["SGD", "Adam", "AdamW", "Adagrad", "RMSprop"]
