"""ember.optim.Optimizer: parameter groups, per-parameter state, state_dict.

Same structure and semantics as torch.optim.Optimizer: `param_groups` is a list of
dicts (each with 'params' and every hyperparameter, defaults filled in), `state`
maps a parameter to its dict of buffers, and `state_dict()` replaces parameters by
their index in group order:

    {'state': {0: {'step': tensor(3.), 'exp_avg': ...}, ...},
     'param_groups': [{'lr': 0.001, ..., 'params': [0, 1]}, ...]}

Subclasses implement `step()` by calling their pure function from
`ember.optim.functional` under `no_grad` and writing the results back with
`_write` (an in-place copy into the existing buffer, so the parameter keeps its
identity and anything holding its state, such as a state_dict, sees the new values).
"""
from __future__ import annotations

import copy
import functools
import warnings
from collections import OrderedDict, defaultdict
from itertools import chain

import numpy as np

from ..autograd import no_grad, enable_grad
from ...ir.registry import OPS
from ..tensor import Tensor


class _RequiredParameter:
    def __repr__(self) -> str:
        return "<required parameter>"


required = _RequiredParameter()


def _write(dst: Tensor, src: Tensor) -> None:
    """Copy src's values into dst's storage (an optimizer update; not recorded)."""
    if dst._storage.device != "cpu":            # CUDA or a registered device
        from ..devices import copy_into
        copy_into(dst, src)
    else:
        np.copyto(dst._array, np.asarray(src._array), casting="unsafe")
    dst._bump_version()


def _scalar(value):
    """A hyperparameter as a number. torch's updates keep a 1-element tensor lr (or
    beta) a 0-d tensor, so the scalar math around it (lr / bias_correction,
    1 - lr * weight_decay) runs in its dtype: a float32 tensor becomes a NumPy float32,
    whose arithmetic with Python floats rounds to float32 alike."""
    if not isinstance(value, Tensor):
        return value
    if value.dtype.is_floating_point and value.dtype.itemsize == 4:
        return np.float32(value.item())
    return value.item()


def hyperparameters(group: dict) -> dict:
    """The group's hyperparameters with tensor values (lr, betas) read as numbers."""
    out = {}
    for key, value in group.items():
        if key == "params":
            out[key] = value
        elif isinstance(value, tuple):
            out[key] = tuple(_scalar(v) for v in value)
        else:
            out[key] = _scalar(value)
    return out


def check_lr(lr) -> None:
    """torch's learning-rate check (a tensor lr must hold one element)."""
    if isinstance(lr, Tensor) and lr.numel() != 1:
        raise ValueError("Tensor lr must be 1-element")
    if not 0.0 <= _scalar(lr):
        raise ValueError(f"Invalid learning rate: {lr}")


def dense_grad(grad):
    """A sparse gradient as a dense tensor: SGD's and Adagrad's updates of the rows it
    lacks are zero (momentum decays alike), so the dense step is torch's sparse step."""
    return grad.to_dense() if getattr(grad, "is_sparse", False) else grad


def _check_implementation(optimizer, group: dict, params: list) -> None:
    """What torch's differentiable and fused implementations refuse at step time.
    differentiable=True runs the step with autograd recording, where updating a leaf
    parameter that requires grad in place is an error; fused kernels take real floating
    point parameters only."""
    name = type(optimizer).__name__
    if not optimizer._sparse_grads and any(getattr(p.grad, "is_sparse", False) for p in params):
        hint = ", please consider SparseAdam instead" if name in ("Adam", "AdamW") else ""
        raise RuntimeError(f"{name} does not support sparse gradients{hint}")
    if group.get("differentiable"):
        for p in params:
            if p.requires_grad and p.is_leaf:
                raise RuntimeError(
                    f"{name}(differentiable=True).step(): a leaf Variable that requires "
                    "grad is being used in an in-place operation (differentiable steps "
                    "need parameters that are not leaves requiring grad, as in torch)")
    if group.get("fused"):
        for p in params:
            if not p.dtype.is_floating_point:
                raise RuntimeError(f"`fused=True` requires all the params to be floating "
                                   f"point Tensors of supported devices, but {name} got "
                                   f"a {p.dtype} parameter")


#: hooks every optimizer's step runs (torch.optim.optimizer.register_optimizer_step_*)
_GLOBAL_STEP_PRE_HOOKS: OrderedDict = OrderedDict()
_GLOBAL_STEP_POST_HOOKS: OrderedDict = OrderedDict()


def _handle(hooks: OrderedDict, hook, prepend: bool = False):
    from ..nn.modules.module import RemovableHandle
    handle = RemovableHandle(hooks)
    hooks[handle.id] = hook
    if prepend:
        hooks.move_to_end(handle.id, last=False)
    return handle


def register_optimizer_step_pre_hook(hook):
    """hook(optimizer, args, kwargs) -> None or (args, kwargs), before every step."""
    return _handle(_GLOBAL_STEP_PRE_HOOKS, hook)


def register_optimizer_step_post_hook(hook):
    """hook(optimizer, args, kwargs), after every optimizer's step."""
    return _handle(_GLOBAL_STEP_POST_HOOKS, hook)


def _with_step_hooks(step):
    """A subclass's step, running the global and the optimizer's step hooks around the
    outermost call (a step that calls super().step() runs them once)."""
    @functools.wraps(step)
    def hooked(*args, **kwargs):
        # as in torch, the hooks see the optimizer as args[0] too
        self = args[0]
        self._opt_called = True           # (LR schedulers warn when stepped before this)
        local_pre = self.__dict__.get("_optimizer_step_pre_hooks")
        local_post = self.__dict__.get("_optimizer_step_post_hooks")
        if self.__dict__.get("_in_hooked_step") or not (
                _GLOBAL_STEP_PRE_HOOKS or _GLOBAL_STEP_POST_HOOKS or local_pre or local_post):
            return step(*args, **kwargs)
        self._in_hooked_step = True
        try:
            for hook in chain(list(_GLOBAL_STEP_PRE_HOOKS.values()),
                              list((local_pre or {}).values())):
                result = hook(self, args, kwargs)
                if result is not None:
                    if not (isinstance(result, tuple) and len(result) == 2):
                        raise RuntimeError(f"{hook} must return None or a tuple of "
                                           f"(new_args, new_kwargs), but got {result}.")
                    args, kwargs = result
            out = step(*args, **kwargs)
            for hook in chain(list(_GLOBAL_STEP_POST_HOOKS.values()),
                              list((local_post or {}).values())):
                hook(self, args, kwargs)
            return out
        finally:
            self._in_hooked_step = False
    hooked._ember_step_hooks = True
    return hooked


class Optimizer:
    #: whether per-parameter 'step' counts are 0-d tensors (SparseAdam keeps an int)
    _tensor_step = True
    #: whether sparse gradients (Embedding(sparse=True)) are taken, as torch's SGD,
    #: Adagrad and SparseAdam take them; the others refuse them, as torch's do
    _sparse_grads = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        step = cls.__dict__.get("step")
        if step is not None and not getattr(step, "_ember_step_hooks", False):
            cls.step = _with_step_hooks(step)

    def _hooks(self, name: str) -> OrderedDict:
        if name not in self.__dict__:
            self.__dict__[name] = OrderedDict()
        return self.__dict__[name]

    def register_step_pre_hook(self, hook):
        """hook(optimizer, args, kwargs) -> None or (args, kwargs), before step."""
        return _handle(self._hooks("_optimizer_step_pre_hooks"), hook)

    def register_step_post_hook(self, hook):
        """hook(optimizer, args, kwargs), after step."""
        return _handle(self._hooks("_optimizer_step_post_hooks"), hook)

    def register_state_dict_pre_hook(self, hook, prepend: bool = False):
        """hook(optimizer), before state_dict() packs the state."""
        return _handle(self._hooks("_optimizer_state_dict_pre_hooks"), hook, prepend)

    def register_state_dict_post_hook(self, hook, prepend: bool = False):
        """hook(optimizer, state_dict) -> None or a state_dict to return instead."""
        return _handle(self._hooks("_optimizer_state_dict_post_hooks"), hook, prepend)

    def register_load_state_dict_pre_hook(self, hook, prepend: bool = False):
        """hook(optimizer, state_dict) -> None or the state_dict to load instead."""
        return _handle(self._hooks("_optimizer_load_state_dict_pre_hooks"), hook, prepend)

    def register_load_state_dict_post_hook(self, hook, prepend: bool = False):
        """hook(optimizer), after load_state_dict() loaded."""
        return _handle(self._hooks("_optimizer_load_state_dict_post_hooks"), hook, prepend)

    def _run_hooks(self, name: str, *args):
        return [hook(self, *args) for hook in list(self.__dict__.get(name, {}).values())]

    def __init__(self, params, defaults: dict):
        self.defaults = defaults
        self.state: defaultdict = defaultdict(dict)
        self.param_groups: list[dict] = []
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable "
                            f"of Tensors or dicts, but got {type(params).__name__}")
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for group in param_groups:
            self.add_param_group(group)

    # --- groups --------------------------------------------------------------------
    def add_param_group(self, param_group: dict) -> None:
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            param_group["params"] = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections,"
                            " but the ordering of tensors in sets will change between runs. "
                            "Please use a list instead.")
        else:
            param_group["params"] = list(params)
        self._split_param_names(param_group)
        for p in param_group["params"]:
            if getattr(p, "is_sparse", False):     # a sparse tensor: the optimizer decides
                continue
            if not isinstance(p, Tensor):
                raise TypeError("optimizer can only optimize Tensors, but one of the params "
                                f"is {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                raise ValueError(f"parameter group didn't specify a value of required "
                                 f"optimization parameter {name}")
            param_group.setdefault(name, default)
        if len({id(p) for p in param_group["params"]}) != len(param_group["params"]):
            warnings.warn("optimizer contains a parameter group with duplicate parameters; "
                          "in future, this will cause an error; see "
                          "github.com/pytorch/pytorch/issues/40967 for more information",
                          stacklevel=3)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in param_group["params"]):
            raise ValueError("some parameters appear in more than one parameter group")
        if self.param_groups and \
                ("param_names" in self.param_groups[0]) != ("param_names" in param_group):
            raise ValueError("all optimizer param groups should be with/without names. "
                             "cannot add param group " +
                             ("with" if "param_names" in param_group else "without") +
                             " names to the optimizer")
        self.param_groups.append(param_group)

    @staticmethod
    def _split_param_names(param_group: dict) -> None:
        """torch accepts named parameters, (name, tensor) pairs: the names go to the
        group's 'param_names', the tensors to its 'params'."""
        params = param_group["params"]
        named = [isinstance(p, tuple) for p in params]
        if not any(named):
            return
        if not all(named):
            raise ValueError("all optimizer params should be with/without names. Some param "
                             "names are missing")
        param_group["param_names"] = [name for name, _ in params]
        param_group["params"] = [p for _, p in params]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                elif getattr(p.grad, "is_sparse", False):     # no entries left, as torch
                    p.grad = OPS["zeros_like"](p).to_sparse()
                else:
                    if p.grad.grad_fn is not None:
                        p.grad = p.grad.detach()
                    if p.grad._storage.device != "cpu":
                        _write(p.grad, OPS["zeros_like"](p.grad))
                    else:
                        p.grad._array[...] = 0
                        p.grad._bump_version()

    def step(self, closure=None):
        raise NotImplementedError

    def _closure_loss(self, closure):
        if closure is None:
            return None
        with enable_grad():
            return closure()

    def _params_with_grad(self, group: dict) -> list:
        params = [p for p in group["params"] if p.grad is not None]
        _check_implementation(self, group, params)
        return params

    # --- state_dict ----------------------------------------------------------------
    def state_dict(self) -> dict:
        self._run_hooks("_optimizer_state_dict_pre_hooks")
        state_dict = self._packed_state_dict()
        for hook in list(self.__dict__.get("_optimizer_state_dict_post_hooks", {}).values()):
            result = hook(self, state_dict)
            if result is not None:
                state_dict = result
        return state_dict

    def _packed_state_dict(self) -> dict:
        index: dict[int, int] = {}
        start = 0
        packed_groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for i, p in enumerate(group["params"], start):
                index.setdefault(id(p), i)
            packed["params"] = [index[id(p)] for p in group["params"]]
            start += len(packed["params"])
            packed_groups.append(packed)
        packed_state = {(index[id(k)] if isinstance(k, Tensor) else k): v
                        for k, v in self.state.items()}
        return {"state": packed_state, "param_groups": packed_groups}

    def load_state_dict(self, state_dict: dict) -> None:
        for hook in list(self.__dict__.get("_optimizer_load_state_dict_pre_hooks",
                                           {}).values()):
            result = hook(self, state_dict)
            if result is not None:
                state_dict = result
        self._load_packed_state_dict(state_dict)
        self._run_hooks("_optimizer_load_state_dict_post_hooks")

    def _load_packed_state_dict(self, state_dict: dict) -> None:
        state_dict = copy.deepcopy(state_dict)
        groups, saved_groups = self.param_groups, state_dict["param_groups"]
        if len(groups) != len(saved_groups):
            raise ValueError("loaded state dict has a different number of parameter groups "
                             f"({len(saved_groups)} vs {len(groups)})")
        for g, sg in zip(groups, saved_groups):
            if len(g["params"]) != len(sg["params"]):
                raise ValueError("loaded state dict contains a parameter group that doesn't "
                                 f"match the size of optimizer's group ({len(sg['params'])} "
                                 f"vs {len(g['params'])})")
        id_map = dict(zip(chain.from_iterable(g["params"] for g in saved_groups),
                          chain.from_iterable(g["params"] for g in groups)))

        def cast(param, value, key=None):
            if isinstance(value, Tensor):
                if key != "step" and param.dtype.is_floating_point and \
                        value.dtype.is_floating_point:
                    return value.to(param.dtype)
                return value
            if isinstance(value, dict):
                return {k: cast(param, v, k) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return type(value)(cast(param, v) for v in value)
            return value

        state: defaultdict = defaultdict(dict)
        for k, v in state_dict["state"].items():
            if k in id_map:
                param = id_map[k]
                state[param] = cast(param, v)
            else:
                state[k] = v
        self.state = state
        # a state_dict from an older torch lacks newer flags (foreach, differentiable...):
        # those keep this optimizer's values, as torch's __setstate__ fills them
        self.param_groups = [{**g, **sg, "params": g["params"]}
                             for g, sg in zip(groups, saved_groups)]
        if self._tensor_step:
            self._steps_as_tensors()

    def _steps_as_tensors(self) -> None:
        """Older state_dicts keep 'step' as a Python number; torch turns it into the
        0-d float32 tensor its updates expect."""
        from ... import tensor, float32
        for st in self.state.values():
            if isinstance(st, dict) and "step" in st and not isinstance(st["step"], Tensor):
                st["step"] = tensor(float(st["step"]), dtype=float32)

    # --- printing ------------------------------------------------------------------
    def __getstate__(self):
        return {"defaults": self.defaults, "state": self.state, "param_groups": self.param_groups}
    # (hooks are not pickled, as in torch)

    def __setstate__(self, state):
        self.__dict__.update(state)

    def __repr__(self) -> str:
        lines = [type(self).__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            if i:
                lines.append("")      # torch separates the groups by a blank line
            lines.append(f"Parameter Group {i}")
            for key in sorted(group):
                if key != "params":
                    lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)


__all__ = ["Optimizer", "required", "no_grad", "register_optimizer_step_pre_hook",
           "register_optimizer_step_post_hook"]
