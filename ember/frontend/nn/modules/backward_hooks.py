"""Module full backward hooks: register_full_backward_hook / register_full_backward_pre_hook.

As in PyTorch, a module with such hooks passes its tensor inputs and its outputs through
identity autograd Functions on every call. The outputs' identity runs first in backward:
it records grad_output and lets the pre-hooks, hook(module, grad_output), replace it.
The inputs' identity runs once all gradients for the module's inputs are known: it
calls hook(module, grad_input, grad_output), whose result, if not None, replaces
grad_input. grad_input has one entry per positional argument (None where the
argument is not a tensor, zeros where it is a tensor that needs no gradient).

The wrapping is installed as one forward pre-hook and one forward hook per module, so a
module without backward hooks pays nothing on its calls.
"""
from __future__ import annotations

from ...autograd import Function, is_grad_enabled
from ...tensor import Tensor


class _CallState:
    """One module call: where its tensor inputs sit and the grad_output seen in backward."""

    def __init__(self, module, n_args: int):
        self.module = module
        self.n_args = n_args
        self.input_positions: list[int] = []
        self.no_grad_positions: set[int] = set()
        self.grad_outputs: tuple | None = None
        self.inputs_wrapped = False

    def grad_input(self, grads) -> tuple:
        packed = [None] * self.n_args
        for position, grad in zip(self.input_positions, grads):
            # PyTorch reports zeros for a tensor argument that needs no gradient
            packed[position] = grad.new_zeros(grad.shape) \
                if position in self.no_grad_positions and grad is not None else grad
        return tuple(packed)


def _replaced(result, grads: tuple, module, hook_kind: str, what: str) -> tuple:
    """The gradients a backward (pre) hook returned in place of `grads`, checked as torch
    checks them; None keeps `grads`."""
    if result is None:
        return grads
    result = tuple(result) if isinstance(result, (tuple, list)) else (result,)
    if len(result) != len(grads):
        raise RuntimeError(f"{hook_kind} of {type(module).__name__} returned an invalid "
                           f"number of {what}, got {len(result)}, but expected {len(grads)}")
    return result


def _hooks(module, kind: str) -> list:
    """The global hooks of `kind` (register_module_full_backward_*), then the module's."""
    from . import module as module_py
    everywhere = module_py._global_backward_hooks if kind == "_backward_hooks" else \
        module_py._global_backward_pre_hooks
    return list(everywhere.values()) + list(module.__dict__.get(kind, {}).values())


class _InputsIdentity(Function):
    @staticmethod
    def forward(ctx, state, *tensors):
        ctx.state = state
        return tuple(t.view_as(t) for t in tensors)

    @staticmethod
    def backward(ctx, *grads):
        state = ctx.state
        grad_input = state.grad_input(grads)
        for hook in _hooks(state.module, "_backward_hooks"):
            grad_input = _replaced(hook(state.module, grad_input, state.grad_outputs),
                                   grad_input, state.module, "Backward hook", "grad_input")
        return (None, *(grad_input[i] for i in state.input_positions))


class _OutputsIdentity(Function):
    @staticmethod
    def forward(ctx, state, *tensors):
        ctx.state = state
        return tuple(t.view_as(t) for t in tensors)

    @staticmethod
    def backward(ctx, *grads):
        state, module = ctx.state, ctx.state.module
        for hook in _hooks(module, "_backward_pre_hooks"):
            grads = _replaced(hook(module, grads), grads, module, "Backward pre hook",
                              "grad_output")
        state.grad_outputs = grads
        if not state.inputs_wrapped:     # no input needs a gradient: hooks run now
            empty = state.grad_input(())
            for hook in _hooks(module, "_backward_hooks"):
                result = hook(module, empty, grads)
                if result is not None and any(g is not None for g in result):
                    raise RuntimeError("Backward hook for Modules where no input requires "
                                       "gradient should always return None or None for all "
                                       "gradients.")
        return (None, *grads)


def _wrap_inputs(module, args):
    state = _CallState(module, len(args))
    module.__dict__.setdefault("_backward_hook_calls", []).append(state)
    if not is_grad_enabled():
        return None
    state.input_positions = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
    if not any(args[i].requires_grad for i in state.input_positions):
        state.input_positions = []
        return None
    state.inputs_wrapped = True
    state.no_grad_positions = {i for i in state.input_positions if not args[i].requires_grad}
    wrapped = _InputsIdentity.apply(state, *(args[i] for i in state.input_positions))
    args = list(args)
    for position, tensor in zip(state.input_positions, wrapped):
        args[position] = tensor
    return tuple(args)


def _wrap_outputs(module, args, output):
    state = module._backward_hook_calls.pop()
    if not is_grad_enabled():
        return None
    single = isinstance(output, Tensor)
    if not (single or isinstance(output, (tuple, list))):
        import warnings
        warnings.warn("For backward hooks to be called, module output should be a Tensor or a "
                      f"tuple of Tensors but received {type(output)}")
    items = [output] if single else list(output) if isinstance(output, (tuple, list)) else []
    positions = [i for i, o in enumerate(items) if isinstance(o, Tensor) and o.requires_grad]
    if not positions:
        return None
    wrapped = _OutputsIdentity.apply(state, *(items[i] for i in positions))
    for position, tensor in zip(positions, wrapped):
        items[position] = tensor
    return items[0] if single else type(output)(items)


def install(module) -> None:
    """Give `module` its hook dicts and, once, the pair of forward hooks that wrap calls."""
    from .module import _HookDict
    if module.__dict__.get("_backward_hooks_installed"):
        return
    object.__setattr__(module, "_backward_hooks_installed", True)
    for name in ("_backward_hooks", "_backward_pre_hooks"):
        if name not in module.__dict__:       # a module built without Module.__init__
            object.__setattr__(module, name, _HookDict())
    object.__setattr__(module, "_is_full_backward_hook", True)
    module.register_forward_pre_hook(_wrap_inputs)
    module.register_forward_hook(_wrap_outputs, prepend=True, always_call=True)
