"""ember.nn.Module: PyTorch's module contract.

Parameters, buffers and submodules are registered by attribute assignment and kept
in three ordered dicts (`_parameters`, `_buffers`, `_modules`); everything that walks
a model (named_parameters, state_dict, to, train, repr) reads only those dicts, in
registration order, so keys and orders match PyTorch's and state_dicts transfer.
"""
from __future__ import annotations

import itertools
import weakref
from collections import OrderedDict, namedtuple
from typing import Any, Callable, Iterator

import numpy as np

from ....ir import dtypes
from ....ir.errors import EmberError
from ....ir.meta import MemoryFormat, preserve_format
from ...tensor import Tensor
from ...autograd import no_grad
from ..parameter import Parameter, Buffer
from .jit_save import ScriptModuleSave

__all__ = ["Module", "RemovableHandle", "StateDictError", "register_module_forward_pre_hook",
           "register_module_forward_hook", "register_module_buffer_registration_hook",
           "register_module_parameter_registration_hook",
           "register_module_module_registration_hook", "register_module_full_backward_hook",
           "register_module_full_backward_pre_hook"]


class StateDictError(EmberError, RuntimeError):
    """load_state_dict found missing/unexpected keys or shape mismatches."""


class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__


class RemovableHandle:
    """What register_*_hook returns: `.remove()` unregisters the hook."""
    _next_id = itertools.count()

    def __init__(self, *hooks_dicts: dict):
        self.hooks_dicts_ref = [weakref.ref(d) if _weakrefable(d) else (lambda d=d: d)
                                for d in hooks_dicts]
        self.id = next(RemovableHandle._next_id)

    def remove(self) -> None:
        for ref in self.hooks_dicts_ref:
            d = ref()
            if d is not None and self.id in d:
                del d[self.id]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


def _weakrefable(d) -> bool:
    try:
        weakref.ref(d)
        return True
    except TypeError:
        return False


class _HookDict(OrderedDict):
    """An OrderedDict that weakref can point at (plain dicts cannot)."""


class _HookWithModule:
    """hook(module, *args) called as hook(*args): holds the module weakly (a hook must not
    keep its module alive) and pickles with it (a plain closure would not)."""

    def __init__(self, hook, module):
        self.hook = hook
        self.module = weakref.ref(module)

    def __call__(self, *args, **kwargs):
        module = self.module()
        if module is None:
            raise RuntimeError("You are trying to call the hook of a dead Module!")
        return self.hook(module, *args, **kwargs)

    def __getstate__(self):
        return {"hook": self.hook, "module": self.module()}

    def __setstate__(self, state):
        self.hook = state["hook"]
        self.module = weakref.ref(state["module"])


def _addindent(s: str, num_spaces: int) -> str:
    lines = s.split("\n")
    if len(lines) == 1:
        return s
    first = lines.pop(0)
    return first + "\n" + "\n".join(" " * num_spaces + line for line in lines)


def _as_array(value) -> np.ndarray:
    """A state_dict value (ember Tensor, numpy array, or anything array-like) as numpy."""
    if isinstance(value, Tensor):
        return value.detach()._array
    if hasattr(value, "detach") and hasattr(value, "numpy"):   # a foreign tensor
        return np.asarray(value.detach().numpy())
    return np.asarray(value)


def _shape_str(shape) -> str:
    return f"ember.Size({list(shape)})"


def _build_on_given_device(cls) -> None:
    """ember's layers take PyTorch's `device=` argument: their parameters and buffers are
    created on that device (`nn.Linear(3, 4, device="meta")` allocates nothing), by
    running the constructor with it as the default device of factories."""
    import functools
    import inspect
    init = cls.__dict__["__init__"]
    try:
        parameters = inspect.signature(init).parameters
    except (TypeError, ValueError):
        return
    if "device" not in parameters:
        return
    positional = parameters["device"].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    # its index in args (self excluded); keyword-only: never positional
    position = list(parameters).index("device") - 1 if positional else 1 << 30

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        dev = kwargs.get("device", args[position] if len(args) > position else None)
        from ...device import device as Device
        try:
            target = None if dev is None else Device(dev)
        except Exception:                   # noqa: BLE001 - not a device spec ember knows
            target = None
        if target is None:
            return init(self, *args, **kwargs)
        with target:
            return init(self, *args, **kwargs)
    cls.__init__ = __init__


def _traced_update_of(value, buffer) -> bool:
    """True for a traced in-place op's result on `buffer` (what `self.steps += 1` assigns
    back while export or compile traces the module): in eager mode that value is the
    buffer itself, so the assignment changes nothing. The op's operand must be the
    recording builder's constant for this very tensor."""
    from ....ir import dispatch
    from ....ir.registry import Tag
    node = getattr(value, "node", None)
    target = getattr(node, "target", None)
    first = node.args[0] if node is not None and node.args else None
    if buffer is None or Tag.INPLACE not in getattr(target, "tags", ()) or \
            getattr(first, "op", None) != "get_attr":
        return False
    return any(getattr(mode, "_constant_nodes", {}).get(id(buffer)) is first
               for mode in dispatch.active_modes())


class Module:
    """Base class of every layer. Subclasses call `super().__init__()` first."""

    training: bool
    save = ScriptModuleSave()       # only on what ember.jit returns (jit_save.py)
    _version: int = 1
    dump_patches: bool = False
    call_super_init: bool = False

    def __init__(self, *args, **kwargs) -> None:
        if kwargs:
            raise TypeError(f"{type(self).__name__}.__init__() got an unexpected keyword "
                            f"argument '{next(iter(kwargs))}'")
        if args:
            raise TypeError(f"{type(self).__name__}.__init__() takes 1 positional argument "
                            f"but {len(args) + 1} were given")
        sa = object.__setattr__
        sa(self, "training", True)
        sa(self, "_parameters", OrderedDict())
        sa(self, "_buffers", OrderedDict())
        sa(self, "_non_persistent_buffers_set", set())
        sa(self, "_modules", OrderedDict())
        sa(self, "_forward_hooks", _HookDict())
        sa(self, "_forward_hooks_with_kwargs", {})
        sa(self, "_forward_hooks_always_called", {})
        sa(self, "_forward_pre_hooks", _HookDict())
        sa(self, "_forward_pre_hooks_with_kwargs", {})
        sa(self, "_state_dict_hooks", _HookDict())
        sa(self, "_load_state_dict_pre_hooks", _HookDict())
        # the rest of PyTorch's per-module hook dicts: code reads them directly
        # (`if module._backward_hooks:`, `m._state_dict_pre_hooks.clear()`)
        sa(self, "_backward_pre_hooks", _HookDict())
        sa(self, "_backward_hooks", _HookDict())
        sa(self, "_is_full_backward_hook", None)
        sa(self, "_state_dict_pre_hooks", _HookDict())
        sa(self, "_load_state_dict_post_hooks", _HookDict())

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__module__.startswith("ember.") and "__init__" in cls.__dict__:
            _build_on_given_device(cls)

    forward: Callable[..., Any]

    def forward(self, *args, **kwargs):  # noqa: F811
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required '
                                  '"forward" function')

    # --- registration -----------------------------------------------------------------
    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign parameter before Module.__init__() call")
        _check_name(name, "parameter")
        if hasattr(self, name) and name not in self._parameters:
            raise KeyError(f"attribute '{name}' already exists")
        if param is None:
            self._parameters[name] = None
            return
        if not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{_typename(param)}' object to parameter '{name}' "
                            "(ember.nn.Parameter or None required)")
        if param.grad_fn is not None:
            raise ValueError(f"Cannot assign non-leaf Tensor to parameter '{name}'. Model "
                             "parameters must be created explicitly. To express "
                             f"'{name}' as a function of another Tensor, compute the value in "
                             "the forward() method.")
        self._parameters[name] = _registered(_global_parameter_registration_hooks, self, name,
                                             param)

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        if "_buffers" not in self.__dict__:
            raise AttributeError("cannot assign buffer before Module.__init__() call")
        _check_name(name, "buffer")
        if hasattr(self, name) and name not in self._buffers:
            raise KeyError(f"attribute '{name}' already exists")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{_typename(tensor)}' object to buffer '{name}' "
                            "(ember Tensor or None required)")
        if isinstance(tensor, Buffer):
            persistent = tensor.persistent
            tensor = Tensor._make(tensor._array, tensor._storage, tensor._base)
        if tensor is not None:
            tensor = _registered(_global_buffer_registration_hooks, self, name, tensor)
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def add_module(self, name: str, module: "Module | None") -> None:
        if not isinstance(module, Module) and module is not None:
            raise TypeError(f"{_typename(module)} is not a Module subclass")
        _check_name(name, "module", allow_dot=False)
        if hasattr(self, name) and name not in self._modules:
            raise KeyError(f"attribute '{name}' already exists")
        self._modules[name] = _registered(_global_module_registration_hooks, self, name, module)

    register_module = add_module

    def get_submodule(self, target: str) -> "Module":
        mod = self
        if target == "":
            return mod
        for item in target.split("."):
            if not hasattr(mod, item):
                raise AttributeError(f"{mod._get_name()} has no attribute `{item}`")
            mod = getattr(mod, item)
            if not isinstance(mod, Module):
                raise AttributeError(f"`{item}` is not an nn.Module")
        return mod

    def set_submodule(self, target: str, module: "Module", strict: bool = False) -> None:
        """Puts `module` at the dotted path `target` (its parent must exist; with strict,
        the attribute too); a non-module attribute there is not replaced."""
        if target == "":
            raise ValueError("Cannot set the submodule without a target name!")
        if not isinstance(module, Module):
            raise ValueError(f"`module` is not an nn.Module, found {type(module)}")
        parent_path, _, name = target.rpartition(".")
        parent = self.get_submodule(parent_path)
        if strict and not hasattr(parent, name):
            raise AttributeError(f"{parent._get_name()} has no attribute `{name}`")
        if hasattr(parent, name) and not isinstance(getattr(parent, name), Module):
            raise AttributeError(f"`{name}` is not an nn.Module")
        setattr(parent, name, module)

    def get_parameter(self, target: str) -> Parameter:
        module_path, _, name = target.rpartition(".")
        mod = self.get_submodule(module_path)
        if not hasattr(mod, name):
            raise AttributeError(f"{mod._get_name()} has no attribute `{name}`")
        if not isinstance(getattr(mod, name), Parameter):
            raise AttributeError(f"`{name}` is not an nn.Parameter")
        return getattr(mod, name)

    def get_buffer(self, target: str) -> Tensor:
        module_path, _, name = target.rpartition(".")
        mod = self.get_submodule(module_path)
        if not hasattr(mod, name):
            raise AttributeError(f"{mod._get_name()} has no attribute `{name}`")
        if name not in mod._buffers:
            raise AttributeError(f"`{name}` is not a buffer")
        return mod._buffers[name]

    # --- attribute protocol -------------------------------------------------------------
    def __getattr__(self, name: str):
        # the three stores unrolled: every `self.weight` in a forward lands here
        d = self.__dict__
        store = d.get("_parameters")
        if store is not None and name in store:
            return store[name]
        store = d.get("_buffers")
        if store is not None and name in store:
            return store[name]
        store = d.get("_modules")
        if store is not None and name in store:
            return store[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __setattr__(self, name: str, value) -> None:
        params = self.__dict__.get("_parameters")
        if isinstance(value, Parameter):
            if params is None:
                raise AttributeError("cannot assign parameters before Module.__init__() call")
            self._remove_from(name, self.__dict__, self._buffers, self._modules,
                              self._non_persistent_buffers_set)
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(f"cannot assign '{_typename(value)}' as parameter '{name}' "
                                "(ember.nn.Parameter or None expected)")
            self.register_parameter(name, value)
        else:
            self._setattr_module_or_buffer(name, value)

    def _setattr_module_or_buffer(self, name: str, value) -> None:
        modules = self.__dict__.get("_modules")
        if isinstance(value, Module):
            if modules is None:
                raise AttributeError("cannot assign module before Module.__init__() call")
            self._remove_from(name, self.__dict__, self._parameters, self._buffers,
                              self._non_persistent_buffers_set)
            modules[name] = _registered(_global_module_registration_hooks, self, name, value)
        elif modules is not None and name in modules:
            if value is not None:
                raise TypeError(f"cannot assign '{_typename(value)}' as child module '{name}' "
                                "(ember.nn.Module or None expected)")
            modules[name] = value
        elif isinstance(value, Buffer) or (self.__dict__.get("_buffers") is not None
                                           and name in self._buffers):
            if value is not None and not isinstance(value, Tensor):
                if _traced_update_of(value, self._buffers.get(name)):
                    return      # `self.steps += 1` under a trace: the graph holds the update
                raise TypeError(f"cannot assign '{_typename(value)}' as buffer '{name}' "
                                "(ember Tensor or None expected)")
            if isinstance(value, Buffer):
                persistent = value.persistent
            else:
                persistent = name not in self._non_persistent_buffers_set
            self._remove_from(name, self.__dict__, self._parameters, self._modules)
            self.register_buffer(name, value, persistent)
        else:
            object.__setattr__(self, name, value)

    @staticmethod
    def _remove_from(name, *stores) -> None:
        for store in stores:
            if name in store:
                if isinstance(store, set):
                    store.discard(name)
                else:
                    del store[name]

    def __delattr__(self, name: str) -> None:
        if name in self._parameters:
            del self._parameters[name]
        elif name in self._buffers:
            del self._buffers[name]
            self._non_persistent_buffers_set.discard(name)
        elif name in self._modules:
            del self._modules[name]
        else:
            object.__delattr__(self, name)

    def __dir__(self):
        keys = list(dir(type(self))) + list(self.__dict__) + list(self._parameters) + \
            list(self._modules) + list(self._buffers)
        return sorted(k for k in set(keys) if not k[0].isdigit())

    def __getstate__(self):
        # a compiled call holds native code: copies and pickles carry how to compile
        # again (module.compile's arguments) instead
        state = dict(self.__dict__)
        state.pop("_compiled_call_impl", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        # a module pickled before some hook dict existed gets it empty (as PyTorch's)
        for name in _HOOK_DICTS:
            if name not in self.__dict__:
                object.__setattr__(self, name, _HookDict())
        if "_compile_arguments" in state:
            args, kwargs = state["_compile_arguments"]
            self.compile(*args, **kwargs)

    # --- calling ------------------------------------------------------------------------
    #: what `module.compile()` made: calls go to it (torch's Module.compile)
    _compiled_call_impl = None

    def __call__(self, *args, **kwargs):
        if self._compiled_call_impl is not None:
            return self._compiled_call_impl(*args, **kwargs)
        if not (self._forward_hooks or self._forward_pre_hooks or _global_forward_hooks
                or _global_forward_pre_hooks or _global_backward_hooks
                or _global_backward_pre_hooks):
            return self.forward(*args, **kwargs)
        return self._call_impl(*args, **kwargs)

    def compile(self, *args, **kwargs) -> None:
        """Compile this module's calls in place: `ember.compile(...)`'s arguments, applied
        to the call (forward with its hooks); the module stays this object."""
        from ....compiler.compile import compile as compile_fn  # the compiler loads on first use
        object.__setattr__(self, "_compile_arguments", (args, kwargs))
        object.__setattr__(self, "_compiled_call_impl",
                           compile_fn(self._call_impl, *args, **kwargs))

    def _call_impl(self, *args, **kwargs):
        global_backward = bool(_global_backward_hooks or _global_backward_pre_hooks)
        if not (self._forward_hooks or self._forward_pre_hooks or _global_forward_hooks
                or _global_forward_pre_hooks or global_backward):
            return self.forward(*args, **kwargs)
        # global backward hooks: this call's tensors pass through the backward-hook
        # identities (a module with hooks of its own has them installed already)
        wrap = global_backward and not self.__dict__.get("_backward_hooks_installed")
        result, called = None, set()
        try:
            args, kwargs = self._run_pre_hooks(args, kwargs)
            if wrap:
                from .backward_hooks import _wrap_inputs
                args = _wrap_inputs(self, args) or args
            result = self.forward(*args, **kwargs)
            for hook_id, hook, with_kwargs in self._all_forward_hooks():
                called.add(hook_id)
                hook_result = hook(self, args, kwargs, result) if with_kwargs else \
                    hook(self, args, result)
                if hook_result is not None:
                    result = hook_result
            if wrap:
                from .backward_hooks import _wrap_outputs
                wrapped, wrap = _wrap_outputs(self, args, result), False
                result = result if wrapped is None else wrapped
            return result
        except Exception:
            if wrap and self.__dict__.get("_backward_hook_calls"):
                self._backward_hook_calls.pop()
            # hooks registered with always_call=True run even when forward (or an
            # earlier hook) raised, as PyTorch's do; their own errors are only warned
            self._run_always_called_hooks(args, kwargs, result, called)
            raise

    def _all_forward_hooks(self):
        """(id, hook, with_kwargs): the global hooks first, then this module's."""
        for hook_id, hook in list(_global_forward_hooks.items()):
            yield hook_id, hook, hook_id in _global_forward_hooks_with_kwargs
        for hook_id, hook in list(self._forward_hooks.items()):
            yield hook_id, hook, hook_id in self._forward_hooks_with_kwargs

    def _run_always_called_hooks(self, args, kwargs, result, called) -> None:
        import warnings
        always = set(_global_forward_hooks_always_called) | \
            set(self._forward_hooks_always_called)
        for hook_id, hook, with_kwargs in self._all_forward_hooks():
            if hook_id not in always or hook_id in called:
                continue
            try:
                hook_result = hook(self, args, kwargs, result) if with_kwargs else \
                    hook(self, args, result)
                if hook_result is not None:
                    result = hook_result
            except Exception as err:  # noqa: BLE001 - the forward's error is the one raised
                warnings.warn("forward hook with ``always_call=True`` raised an exception "
                              f"that was silenced as another error was raised in forward: "
                              f"{err}")

    def _run_pre_hooks(self, args: tuple, kwargs: dict):
        hooks = [(i, h, False) for i, h in list(_global_forward_pre_hooks.items())] + \
            [(i, h, i in self._forward_pre_hooks_with_kwargs)
             for i, h in list(self._forward_pre_hooks.items())]
        for hook_id, hook, with_kwargs in hooks:
            if with_kwargs:
                result = hook(self, args, kwargs)
                if result is not None:
                    if not (isinstance(result, tuple) and len(result) == 2):
                        raise RuntimeError("forward pre-hook must return None or a tuple of "
                                           f"(new_args, new_kwargs), but got {result}.")
                    args, kwargs = result
            else:
                result = hook(self, args)
                if result is not None:
                    args = result if isinstance(result, tuple) else (result,)
        return args, kwargs

    def register_forward_pre_hook(self, hook, *, prepend: bool = False,
                                  with_kwargs: bool = False) -> RemovableHandle:
        """hook(module, args) -> None or new args; with_kwargs: hook(module, args, kwargs)."""
        handle = RemovableHandle(self._forward_pre_hooks, self._forward_pre_hooks_with_kwargs)
        self._forward_pre_hooks[handle.id] = hook
        if with_kwargs:
            self._forward_pre_hooks_with_kwargs[handle.id] = True
        if prepend:
            self._forward_pre_hooks.move_to_end(handle.id, last=False)
        return handle

    def register_forward_hook(self, hook, *, prepend: bool = False, with_kwargs: bool = False,
                              always_call: bool = False) -> RemovableHandle:
        """hook(module, args, output) -> None or a new output."""
        handle = RemovableHandle(self._forward_hooks, self._forward_hooks_with_kwargs,
                                 self._forward_hooks_always_called)
        self._forward_hooks[handle.id] = hook
        if with_kwargs:
            self._forward_hooks_with_kwargs[handle.id] = True
        if always_call:
            self._forward_hooks_always_called[handle.id] = True
        if prepend:
            self._forward_hooks.move_to_end(handle.id, last=False)
        return handle

    def register_full_backward_hook(self, hook, prepend: bool = False) -> RemovableHandle:
        """hook(module, grad_input, grad_output) -> None or a new grad_input, called once
        the gradients of the module's inputs are computed."""
        from .backward_hooks import install
        install(self)
        handle = RemovableHandle(self._backward_hooks)
        self._backward_hooks[handle.id] = hook
        if prepend:
            self._backward_hooks.move_to_end(handle.id, last=False)
        return handle

    def register_backward_hook(self, hook):
        """PyTorch's deprecated form, whose grad_input is that of the module's last
        autograd node rather than the module's inputs: not reproduced; refused by name."""
        raise NotImplementedError(
            f"{type(self).__name__}.register_backward_hook (deprecated in PyTorch) is not "
            "supported: use register_full_backward_hook(hook), which passes the gradients "
            "of the module's inputs and outputs")

    def register_full_backward_pre_hook(self, hook, prepend: bool = False) -> RemovableHandle:
        """hook(module, grad_output) -> None or a new grad_output, called before the
        module's gradients are computed."""
        from .backward_hooks import install
        install(self)
        handle = RemovableHandle(self._backward_pre_hooks)
        self._backward_pre_hooks[handle.id] = hook
        if prepend:
            self._backward_pre_hooks.move_to_end(handle.id, last=False)
        return handle

    # --- iteration ----------------------------------------------------------------------
    def _named_members(self, get_members, prefix="", recurse=True, remove_duplicate=True):
        memo = set()
        modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) \
            if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for k, v in get_members(module):
                if v is None or (remove_duplicate and id(v) in memo):
                    continue
                if remove_duplicate:
                    memo.add(id(v))
                yield (module_prefix + ("." if module_prefix else "") + k, v)

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        return self._named_members(lambda m: m._parameters.items(), prefix, recurse,
                                   remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        return self._named_members(lambda m: m._buffers.items(), prefix, recurse,
                                   remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        memo = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in memo:
                memo.add(id(module))
                yield name, module

    def children(self) -> Iterator["Module"]:
        for _, m in self.named_children():
            yield m

    def named_modules(self, memo: set | None = None, prefix: str = "",
                      remove_duplicate: bool = True):
        if memo is None:
            memo = set()
        if id(self) in memo:
            return
        if remove_duplicate:
            memo.add(id(self))
        yield prefix, self
        for name, module in self._modules.items():
            if module is None:
                continue
            sub_prefix = prefix + ("." if prefix else "") + name
            yield from module.named_modules(memo, sub_prefix, remove_duplicate)

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    # --- modes and gradients -------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        self.training = mode
        for module in self.children():
            module.train(mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            elif getattr(p.grad, "is_sparse", False):
                p.grad = Tensor._from_array(np.zeros_like(p.grad._array))
            else:
                # in place, as PyTorch's: code holding the .grad tensor sees the zeros
                grad = p.grad
                if grad.grad_fn is not None:
                    grad.detach_()
                else:
                    grad.requires_grad_(False)
                with no_grad():
                    grad.zero_()

    def apply(self, fn: Callable[["Module"], None]) -> "Module":
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # --- conversion ---------------------------------------------------------------------
    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> "Module":
        """Replace every parameter's data and every buffer by fn(tensor), keeping the
        Parameter objects (optimizers hold references to them)."""
        if recurse:
            for module in self.children():
                module._apply(fn)
        with no_grad():
            for key, param in self._parameters.items():
                if param is None:
                    continue
                new = fn(param.detach())
                if new is not param.detach():
                    param.data = new
                if param.grad is not None:
                    param.grad = fn(param.grad)
            for key, buf in self._buffers.items():
                if buf is not None:
                    self._buffers[key] = fn(buf)
        return self

    def to(self, *args, **kwargs) -> "Module":
        """to(device), to(dtype), to(tensor), to(memory_format=...): only floating point
        tensors change dtype, and memory_format applies to 4-d/5-d tensors, as in PyTorch."""
        from ...conversions import _parse_to_args
        dtype, device, _, memory_format, _ = _parse_to_args(None, args, dict(kwargs))
        if dtype is not None:
            dtype = dtypes.as_dtype(dtype)
            if not (dtype.is_floating_point or dtype.is_complex):
                raise TypeError("nn.Module.to only accepts floating point or complex dtypes, "
                                f"but got desired dtype={dtype}")
        if isinstance(memory_format, str):
            memory_format = MemoryFormat(memory_format)

        def convert(t: Tensor) -> Tensor:
            cast = dtype if dtype is not None and (t.is_floating_point() or
                                                   t.is_complex()) else None
            fmt = memory_format if t.ndim in (4, 5) else preserve_format
            if t.is_meta and device is not None and str(device).split(":")[0] != "meta":
                raise NotImplementedError(
                    "Cannot copy out of meta tensor; no data! Please use "
                    "nn.Module.to_empty() instead of nn.Module.to() when moving module from "
                    "meta to a different device.")
            return t.to(device=device, dtype=cast, memory_format=fmt)
        return self._apply(convert)

    def _cast_floating(self, dtype) -> "Module":
        return self._apply(lambda t: t.to(dtype) if t.is_floating_point() else t)

    def float(self) -> "Module":
        return self._cast_floating(dtypes.float32)

    def double(self) -> "Module":
        return self._cast_floating(dtypes.float64)

    def half(self) -> "Module":
        return self._cast_floating(dtypes.float16)

    def bfloat16(self) -> "Module":
        return self._cast_floating(dtypes.bfloat16)

    def type(self, dst_type) -> "Module":
        return self._apply(lambda t: t.to(dtypes.as_dtype(dst_type)))

    def cpu(self) -> "Module":
        return self._apply(lambda t: t.to("cpu"))

    def to_empty(self, *, device, recurse: bool = True) -> "Module":
        """Parameters and buffers become uninitialized tensors of the same shapes and
        dtypes on `device` (after building on the 'meta' device; initialize them next)."""
        from ...factories import empty
        return self._apply(lambda t: empty(tuple(t.shape), dtype=t.dtype, device=device),
                           recurse=recurse)

    def cuda(self, device=None) -> "Module":
        return self._apply(lambda t: t.to("cuda" if device is None else device))

    # --- state dict ---------------------------------------------------------------------
    def _save_to_state_dict(self, destination, prefix: str, keep_vars: bool) -> None:
        for name, param in self._parameters.items():
            if param is not None:
                # a lazy layer's uninitialized parameter is saved as itself, as in PyTorch
                keep = keep_vars or getattr(param, "_uninitialized", False)
                destination[prefix + name] = param if keep else param.detach()
        for name, buf in self._buffers.items():
            if buf is not None and name not in self._non_persistent_buffers_set:
                destination[prefix + name] = buf if keep_vars else buf.detach()
        if _has_extra_state(self):
            destination[prefix + _EXTRA_STATE_KEY] = self.get_extra_state()

    def state_dict(self, *args, destination=None, prefix: str = "", keep_vars: bool = False):
        if args:   # PyTorch's deprecated positional form: (destination, prefix, keep_vars)
            destination = args[0]
            prefix = args[1] if len(args) > 1 else prefix
            keep_vars = args[2] if len(args) > 2 else keep_vars
        for hook in self.__dict__.get("_state_dict_pre_hooks", {}).values():
            hook(self, prefix, keep_vars)
        if destination is None:
            destination = OrderedDict()
            destination._metadata = OrderedDict()
        # each module's _version under its prefix, as torch records it: a class that
        # changed its layout reads the version back in _load_from_state_dict
        local_metadata = {"version": self._version}
        if hasattr(destination, "_metadata"):
            destination._metadata[prefix[:-1]] = local_metadata
        self._save_to_state_dict(destination, prefix, keep_vars)
        for name, module in self._modules.items():
            if module is not None:
                module.state_dict(destination=destination, prefix=prefix + name + ".",
                                  keep_vars=keep_vars)
        for hook_id, hook in self._state_dict_hooks.items():
            result = hook(self, destination, prefix, local_metadata)
            if result is not None:
                if hook_id in self.__dict__.get("_public_state_dict_post_hooks", ()):
                    raise RuntimeError("state_dict post-hook must return None")
                destination = result
        return destination

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs):
        """Copy this module's own entries from state_dict; record what did not fit.
        PyTorch's seven arguments; load_state_dict(assign=True) arrives as
        local_metadata['assign_to_params_buffers'], as in PyTorch."""
        assign = bool(local_metadata.get("assign_to_params_buffers", False))
        for hook in self._load_state_dict_pre_hooks.values():
            hook(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                 error_msgs)
        persistent = {k: v for k, v in self._buffers.items()
                      if k not in self._non_persistent_buffers_set}
        local = {k: v for k, v in itertools.chain(self._parameters.items(), persistent.items())
                 if v is not None}
        for name, target in local.items():
            key = prefix + name
            if key not in state_dict:
                if strict:
                    missing_keys.append(key)
                continue
            if getattr(target, "is_quantized", False) or \
                    getattr(state_dict[key], "is_quantized", False):
                self._load_quantized(name, key, target, state_dict[key], error_msgs)
                continue
            value = _as_array(state_dict[key])
            # a Tensor's own shape: a lazy layer's uninitialized entry refuses it
            shape = state_dict[key].shape if isinstance(state_dict[key], Tensor) else value.shape
            if tuple(shape) != tuple(target.shape):
                error_msgs.append(
                    f"size mismatch for {key}: copying a param with shape "
                    f"{_shape_str(value.shape)} from checkpoint, the shape in current model "
                    f"is {_shape_str(target.shape)}.")
                continue
            source = state_dict[key]
            if isinstance(source, Tensor) and "cpu" != source._storage.device or \
                    target._storage.device != "cpu":
                self._copy_across_devices(name, key, target, source, assign)
                continue
            self._copy_into(name, target, value, assign)
        if _has_extra_state(self):
            if prefix + _EXTRA_STATE_KEY in state_dict:
                self.set_extra_state(state_dict[prefix + _EXTRA_STATE_KEY])
            elif strict:
                missing_keys.append(prefix + _EXTRA_STATE_KEY)
        if strict:
            for key in state_dict:
                if key.startswith(prefix) and not (key == prefix + _EXTRA_STATE_KEY
                                                   and _has_extra_state(self)):
                    head, *rest = key[len(prefix):].split(".", 1)
                    # a dotted rest must name a child module; a bare name, an entry here
                    if (head not in self._modules) if rest else (head not in local):
                        unexpected_keys.append(key)

    def _load_quantized(self, name, key, target, value, error_msgs) -> None:
        """A quantized buffer takes the saved tensor whole: integers and qparams."""
        if not (getattr(target, "is_quantized", False) and getattr(value, "is_quantized", False)):
            error_msgs.append(f"dtype mismatch for {key}: copying a {value.dtype} tensor into "
                              f"a {target.dtype} one (quantized and float do not mix)")
            return
        if tuple(value.shape) != tuple(target.shape):
            error_msgs.append(f"size mismatch for {key}: copying a param with shape "
                              f"{_shape_str(value.shape)} from checkpoint, the shape in current "
                              f"model is {_shape_str(target.shape)}.")
            return
        self._buffers[name] = value

    def _copy_into(self, name: str, target: Tensor, value: np.ndarray, assign: bool) -> None:
        if assign:
            new = Tensor._from_array(value)  # the checkpoint's tensor, its dtype included
            if name in self._parameters:
                self._parameters[name] = Parameter(new, target.requires_grad)
            else:
                self._buffers[name] = new
            return
        target._array[...] = value.astype(target._array.dtype, copy=False)
        target._bump_version()

    def _copy_across_devices(self, name: str, key: str, target: Tensor, source,
                             assign: bool) -> None:
        """A load where the entry or the module's tensor is not on the CPU (meta, CUDA):
        assign takes the entry's tensor where it is; a copy into a meta tensor is a no-op
        PyTorch warns about; other copies go through copy_ (reading a meta entry raises)."""
        if not isinstance(source, Tensor):
            source = Tensor._from_array(_as_array(source))
        if assign:
            new = source.detach()
            if name in self._parameters:
                self._parameters[name] = Parameter(new, target.requires_grad)
            else:
                self._buffers[name] = new
            return
        if target._storage.device == "meta":
            if source._storage.device != "meta":
                import warnings
                warnings.warn(f"for {key}: copying from a non-meta parameter in the checkpoint "
                              "to a meta parameter in the current model, which is a no-op. "
                              "(Did you mean to pass `assign=True` to assign items in the "
                              "state dictionary to their corresponding key in the module "
                              "instead of copying them in place?)", UserWarning, stacklevel=4)
            return
        with no_grad():
            target.copy_(source)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Copy parameters and buffers from `state_dict` (values: ember Tensors or numpy
        arrays). strict: keys must match exactly. Returns (missing_keys, unexpected_keys).

        As PyTorch's: each module (shared ones once per path) gets only the entries under
        its prefix, its load pre-hooks then its `_load_from_state_dict`, then its
        children; its post-hooks run after its children's."""
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict)}.")
        missing, unexpected, errors = [], [], []
        metadata = getattr(state_dict, "_metadata", None)
        state_dict = OrderedDict(state_dict)    # load hooks may edit it: not the caller's
        if metadata is not None:
            state_dict._metadata = metadata

        def load(module, local_state_dict, prefix=""):
            local_metadata = dict((metadata or {}).get(prefix[:-1], {}))
            if assign:
                local_metadata["assign_to_params_buffers"] = True
            module._load_from_state_dict(local_state_dict, prefix, local_metadata, True,
                                         missing, unexpected, errors)
            for name, child in module._modules.items():
                if child is not None:
                    child_prefix = prefix + name + "."
                    load(child, {k: v for k, v in local_state_dict.items()
                                 if k.startswith(child_prefix)}, child_prefix)
            keys = _IncompatibleKeys(missing, unexpected)
            for hook in list(module.__dict__.get("_load_state_dict_post_hooks", {}).values()):
                if hook(module, keys) is not None:
                    raise AssertionError(
                        "Hooks registered with ``register_load_state_dict_post_hook`` are not "
                        "expected to return new values, if incompatible_keys need to be "
                        "modified, it should be done inplace.")

        load(self, state_dict)
        if strict:
            if unexpected:
                errors.insert(0, "Unexpected key(s) in state_dict: "
                              + ", ".join(f'"{k}"' for k in unexpected) + ". ")
            if missing:
                errors.insert(0, "Missing key(s) in state_dict: "
                              + ", ".join(f'"{k}"' for k in missing) + ". ")
        if errors:
            raise StateDictError(f"Error(s) in loading state_dict for {self._get_name()}:\n\t"
                                 + "\n\t".join(errors))
        return _IncompatibleKeys(missing, unexpected)

    def get_extra_state(self):
        """State beyond parameters and buffers for state_dict (under `_extra_state`);
        a subclass that overrides it must override set_extra_state too."""
        raise RuntimeError("Reached a code path in Module.get_extra_state() that should "
                           "never be called.")

    def set_extra_state(self, state) -> None:
        raise RuntimeError("Reached a code path in Module.set_extra_state() that should "
                           "never be called.")

    def share_memory(self) -> "Module":
        """Moves parameters and buffers to shared memory (ember's host tensors: as is)."""
        return self._apply(lambda t: t.share_memory_())

    def _hooks_named(self, name: str) -> "_HookDict":
        """The hook dict `name`, made on first registration (modules built before the
        dict existed, or unpickled, lack it)."""
        if name not in self.__dict__:
            object.__setattr__(self, name, _HookDict())
        return self.__dict__[name]

    def register_state_dict_pre_hook(self, hook) -> RemovableHandle:
        """hook(module, prefix, keep_vars), called before this module's state_dict."""
        hooks = self._hooks_named("_state_dict_pre_hooks")
        handle = RemovableHandle(hooks)
        hooks[handle.id] = hook
        return handle

    def register_state_dict_post_hook(self, hook) -> RemovableHandle:
        """hook(module, state_dict, prefix, local_metadata) -> None, after this module's
        entries (and its children's) are in state_dict; it edits state_dict in place."""
        handle = self._register_state_dict_hook(hook)
        self._hooks_named("_public_state_dict_post_hooks")[handle.id] = True
        return handle

    def register_load_state_dict_pre_hook(self, hook) -> RemovableHandle:
        """hook(module, state_dict, prefix, local_metadata, strict, missing_keys,
        unexpected_keys, error_msgs), before this module copies its entries."""
        return self._register_load_state_dict_pre_hook(hook, with_module=True)

    def register_load_state_dict_post_hook(self, hook) -> RemovableHandle:
        """hook(module, incompatible_keys) -> None, after load_state_dict loaded this
        module and its children."""
        hooks = self._hooks_named("_load_state_dict_post_hooks")
        handle = RemovableHandle(hooks)
        hooks[handle.id] = hook
        return handle

    def _register_state_dict_hook(self, hook) -> RemovableHandle:
        handle = RemovableHandle(self._state_dict_hooks)
        self._state_dict_hooks[handle.id] = hook
        return handle

    def _register_load_state_dict_pre_hook(self, hook, with_module=False) -> RemovableHandle:
        handle = RemovableHandle(self._load_state_dict_pre_hooks)
        self._load_state_dict_pre_hooks[handle.id] = \
            _HookWithModule(hook, self) if with_module else hook
        return handle

    # --- printing -----------------------------------------------------------------------
    def _get_name(self) -> str:
        return type(self).__name__

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({key}): " + _addindent(repr(module), 2)
                       for key, module in self._modules.items()]
        lines = extra_lines + child_lines
        main = self._get_name() + "("
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                main += extra_lines[0]
            else:
                main += "\n  " + "\n  ".join(lines) + "\n"
        return main + ")"


_EXTRA_STATE_KEY = "_extra_state"
_EXTRA_STATE_KEY_SUFFIX = _EXTRA_STATE_KEY     # torch.nn.modules.module's name for it

_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
               "_state_dict_hooks", "_state_dict_pre_hooks", "_load_state_dict_pre_hooks",
               "_load_state_dict_post_hooks")

# hooks every module runs (torch.nn.modules.module's register_module_forward_*_hook)
_global_forward_pre_hooks: _HookDict = _HookDict()
_global_forward_hooks: _HookDict = _HookDict()
_global_forward_hooks_with_kwargs: dict = {}
_global_forward_hooks_always_called: dict = {}


_global_buffer_registration_hooks: _HookDict = _HookDict()
_global_parameter_registration_hooks: _HookDict = _HookDict()
_global_module_registration_hooks: _HookDict = _HookDict()


def _registered(hooks: dict, module, name: str, value):
    """`value` after every global registration hook: hook(module, name, value) -> None
    (keep it) or what to register instead."""
    for hook in list(hooks.values()):
        output = hook(module, name, value)
        if output is not None:
            value = output
    return value


def register_module_buffer_registration_hook(hook) -> RemovableHandle:
    """hook(module, name, buffer) -> None or a replacement, on every buffer registration."""
    handle = RemovableHandle(_global_buffer_registration_hooks)
    _global_buffer_registration_hooks[handle.id] = hook
    return handle


def register_module_parameter_registration_hook(hook) -> RemovableHandle:
    """hook(module, name, param) -> None or a replacement, on every parameter registration."""
    handle = RemovableHandle(_global_parameter_registration_hooks)
    _global_parameter_registration_hooks[handle.id] = hook
    return handle


def register_module_module_registration_hook(hook) -> RemovableHandle:
    """hook(module, name, submodule) -> None or a replacement, on every submodule
    registration."""
    handle = RemovableHandle(_global_module_registration_hooks)
    _global_module_registration_hooks[handle.id] = hook
    return handle


_global_backward_pre_hooks: _HookDict = _HookDict()
_global_backward_hooks: _HookDict = _HookDict()


def register_module_full_backward_pre_hook(hook) -> RemovableHandle:
    """hook(module, grad_output) -> None or a new grad_output, for every module (before
    the module's own backward pre-hooks)."""
    handle = RemovableHandle(_global_backward_pre_hooks)
    _global_backward_pre_hooks[handle.id] = hook
    return handle


def register_module_full_backward_hook(hook) -> RemovableHandle:
    """hook(module, grad_input, grad_output) -> None or a new grad_input, for every module
    (before the module's own full backward hooks)."""
    handle = RemovableHandle(_global_backward_hooks)
    _global_backward_hooks[handle.id] = hook
    return handle


def register_module_forward_pre_hook(hook) -> RemovableHandle:
    """hook(module, args) -> None or new args, before every module's forward (before the
    module's own pre-hooks)."""
    handle = RemovableHandle(_global_forward_pre_hooks)
    _global_forward_pre_hooks[handle.id] = hook
    return handle


def register_module_forward_hook(hook, *, with_kwargs: bool = False,
                                 always_call: bool = False) -> RemovableHandle:
    """hook(module, args, output) -> None or a new output, after every module's forward
    (before the module's own hooks)."""
    handle = RemovableHandle(_global_forward_hooks, _global_forward_hooks_with_kwargs,
                             _global_forward_hooks_always_called)
    _global_forward_hooks[handle.id] = hook
    if with_kwargs:
        _global_forward_hooks_with_kwargs[handle.id] = True
    if always_call:
        _global_forward_hooks_always_called[handle.id] = True
    return handle


def _has_extra_state(module: Module) -> bool:
    return type(module).get_extra_state is not Module.get_extra_state


def _check_name(name, kind: str, allow_dot: bool = False) -> None:
    if not isinstance(name, str):
        raise TypeError(f"{kind} name should be a string. Got {type(name).__name__}")
    if "." in name and not allow_dot:
        raise KeyError(f'{kind} name can\'t contain ".", got: {name}')
    if name == "":
        raise KeyError(f'{kind} name can\'t be empty string ""')


def _typename(obj) -> str:
    t = type(obj)
    return f"{t.__module__}.{t.__qualname__}" if t.__module__ != "builtins" else t.__qualname__
