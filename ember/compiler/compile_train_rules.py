"""How each supported optimizer becomes part of a compiled training step: which state
the step reads, how it is created, and the functional update (`optim.functional`)
applied to symbolic parameters, gradients and state."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..ir.errors import EmberError
from ..frontend.optim import functional as F
from ..frontend.tensor import Tensor


@dataclass
class OptimizerRule:
    """How one optimizer class becomes graph inputs, a functional update and write-backs.

    `state_keys(group, has_state)`: per-parameter state fed to the graph, in order;
    `shared_keys`: state that is one value per group (a step count), fed once;
    `init_state(optimizer, group)`: create state eagerly as the first eager step would;
    `update(group, params, grads, state)`: {key: new values per parameter}, 'params'
    for the parameters themselves; every other key is written to optimizer.state;
    `first_step_state(optimizer, group, params)`: before the step that would create
    state from the gradients (a first step special-cased as in torch), create it now
    where the steady-state update then computes exactly the first step's values, so
    the first call already compiles the one plan every later call runs."""
    state_keys: Callable[[dict, bool], list[str]]
    shared_keys: tuple[str, ...]
    init_state: Callable[[Any, dict], None]
    update: Callable[[dict, list, list, dict], dict]
    first_step_state: Callable[[Any, dict, list], None] = lambda optimizer, group, params: None


def _sgd_state_keys(group: dict, has_state: bool) -> list[str]:
    return ["momentum_buffer"] if group["momentum"] != 0 and has_state else []


def _sgd_first_step_state(optimizer, group: dict, params: list) -> None:
    """SGD's first step sets buf = grad (torch clones the gradient); every later step
    computes buf = momentum * buf + (1 - dampening) * grad. With dampening == 0 and a
    finite momentum > 0 the two agree bit for bit when buf starts as -0.0: momentum *
    -0.0 is -0.0, -0.0 + g is g for every g (a -0.0 gradient included, where +0.0 would
    give +0.0) and g * 1 is g; Nesterov's grad + momentum * buf reads that same buf. So
    the buffers are created here, before the first compiled step, as -0.0 (their values
    after the step equal torch's: the gradient), and call 1 compiles the steady-state
    plan instead of a first-step plan followed by a second compile at call 2. Only when
    every parameter in `params` has no state yet (torch creates the buffers together)."""
    momentum = group["momentum"]
    if not isinstance(momentum, (int, float)) or not 0 < momentum < float("inf") or \
            group["dampening"] != 0:
        return
    if not params or any(len(optimizer.state[p]) > 0 or p.dtype.is_complex for p in params):
        return
    for p in params:
        optimizer.state[p]["momentum_buffer"] = _negative_zeros_like(p)


def _negative_zeros_like(p: Tensor) -> Tensor:
    """-0.0 in p's shape, dtype, strides and device, filled on the host: on a device a
    fill kernel (one per distinct size: sizes are baked into kernels) would compile for
    every parameter shape, where one host-to-device copy each needs none. (No no_grad():
    a traced step refuses it; a factory's result needs no grad.)"""
    from ..frontend.composites.shape import empty_strided
    from ..frontend.factories import full_like
    if p.device.type == "cpu":
        return full_like(p, -0.0)
    host = empty_strided(tuple(p.shape), p.stride(), dtype=p.dtype).fill_(-0.0)
    return host.to(p.device)


def _sgd_update(group: dict, params, grads, state) -> dict:
    out = F.sgd(params, grads, state.get("momentum_buffer", []),
                weight_decay=group["weight_decay"], momentum=group["momentum"],
                lr=group["lr"], dampening=group["dampening"], nesterov=group["nesterov"],
                maximize=group["maximize"])
    new = {"params": out.params}
    if group["momentum"] != 0:
        new["momentum_buffer"] = out.momentum_buffers
    return new


def _adam_state_keys(group: dict, has_state: bool) -> list[str]:
    return ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if group["amsgrad"] else [])


def _adam_init_state(optimizer, group: dict) -> None:
    from ..frontend.optim.optimizers import _step_tensor, _zeros_like
    for p in group["params"]:
        st = optimizer.state[p]
        if len(st) == 0:
            st["step"] = _step_tensor()
            st["exp_avg"] = _zeros_like(p)
            st["exp_avg_sq"] = _zeros_like(p)
            if group["amsgrad"]:
                st["max_exp_avg_sq"] = _zeros_like(p)


def _adam_update(decoupled: bool):
    def update(group: dict, params, grads, state) -> dict:
        # Adam(decoupled_weight_decay=True) is AdamW, as in torch
        fn = F.adamw if group.get("decoupled_weight_decay", decoupled) else F.adam
        beta1, beta2 = group["betas"]
        steps = [state["step"]] * len(params)
        out = fn(params, grads, state["exp_avg"], state["exp_avg_sq"],
                 state.get("max_exp_avg_sq", []), steps, amsgrad=group["amsgrad"],
                 beta1=beta1, beta2=beta2, lr=group["lr"], weight_decay=group["weight_decay"],
                 eps=group["eps"], maximize=group["maximize"])
        new = {"params": out.params, "exp_avg": out.exp_avgs, "exp_avg_sq": out.exp_avg_sqs,
               "step": out.state_steps}
        if group["amsgrad"]:
            new["max_exp_avg_sq"] = out.max_exp_avg_sqs
        return new
    return update


def _no_init(optimizer, group: dict) -> None:
    return None


def _rules() -> dict:
    from ..frontend.optim.optimizers import SGD, Adam, AdamW
    return {
        SGD: OptimizerRule(_sgd_state_keys, (), _no_init, _sgd_update, _sgd_first_step_state),
        Adam: OptimizerRule(_adam_state_keys, ("step",), _adam_init_state, _adam_update(False)),
        AdamW: OptimizerRule(_adam_state_keys, ("step",), _adam_init_state, _adam_update(True)),
    }


def rule_for(optimizer) -> OptimizerRule:
    rule = _rules().get(type(optimizer))
    if rule is None:
        names = sorted(cls.__name__ for cls in _rules())
        raise EmberError(f"ember.compile_train_step: no functional update for optimizer "
                         f"{type(optimizer).__name__}; supported: {names}")
    return rule


def shared_state(optimizer, group_index: int, key: str):
    """The one tensor of `key` (a step count) that a group's parameters share: the first
    parameter's; refused when the others' values differ."""
    group = optimizer.param_groups[group_index]
    tensors = [optimizer.state[p][key] for p in group["params"]]
    first = tensors[0]._values()
    if first.size == 1:         # a step count: compared as Python numbers (NaN differs,
        value = first.item()    # as in array_equal), ~20x cheaper than array_equal
        differ = any(v.size != 1 or v.item() != value
                     for v in (t._values() for t in tensors[1:]))
    else:
        differ = any(not np.array_equal(t._values(), first) for t in tensors[1:])
    if differ:
        raise EmberError(f"ember.compile_train_step: the parameters of group {group_index} "
                         f"have different '{key}' values; a compiled step keeps one per group")
    return tensors[0]


def optimizer_guard(optimizer) -> tuple:
    """Each group's hyperparameters (read at compile time), whether its state exists and
    the state tensors' geometry (a plan's kernels index them with the strides they had
    when it was compiled; load_state_dict may bring others)."""
    groups = []
    for group in optimizer.param_groups:
        hyper = tuple(sorted((k, repr(v)) for k, v in group.items() if k != "params"))
        states = [optimizer.state[p] for p in group["params"]]
        has_state = all(len(state) > 0 for state in states)
        groups.append((hyper, has_state, tuple(_geometry(state) for state in states)))
    return tuple(groups)


def _geometry(state: dict) -> tuple:
    return tuple((key, tuple(value.shape), value.stride(), value.dtype.name)
                 if isinstance(value, Tensor) else key for key, value in state.items())


def group_state(group: dict, g: int, sources: list, values: list) -> dict:
    """{key: symbolic value (shared) or list of values per parameter} for one group."""
    state: dict[str, Any] = {}
    members = {id(p) for p in group["params"]}
    for (source, key), value in zip(sources, values):
        if isinstance(source, int):
            if source == g:
                state[key] = value
        elif id(source) in members:
            state.setdefault(key, []).append(value)
    return state
