"""torch.nn.utils.parametrize: a tensor of a module computed from unconstrained originals.

`register_parametrization(module, "weight", P())` moves the weight to
`module.parametrizations.weight.original` (or `original0`, `original1`, ... when
P.right_inverse returns several tensors) and swaps the module's class for a subclass whose
`weight` property evaluates the parametrizations in order on every access. State dict keys,
class names and errors follow PyTorch, so checkpoints move between the two.
"""
from __future__ import annotations

import contextlib
import copy

from ... import autograd
from ..modules.container import ModuleDict, ModuleList
from ..modules.module import Module
from ..parameter import Parameter

__all__ = ["register_parametrization", "remove_parametrizations", "is_parametrized",
           "cached", "type_before_parametrizations", "ParametrizationList",
           "transfer_parametrizations_and_params"]

_CACHE: dict | None = None


@contextlib.contextmanager
def cached():
    """Inside the block each parametrized tensor is computed once per module and reused."""
    global _CACHE
    outer = _CACHE
    _CACHE = {} if outer is None else outer
    try:
        yield
    finally:
        _CACHE = outer


class ParametrizationList(ModuleList):
    """The parametrizations of one tensor, and its original(s)."""

    def __init__(self, modules, original, unsafe: bool = False) -> None:
        super().__init__(modules)
        self.unsafe = unsafe
        with autograd.no_grad():
            new = original
            for module in reversed(list(self)):
                if hasattr(module, "right_inverse"):
                    try:
                        new = module.right_inverse(new)
                    except NotImplementedError:
                        pass    # as in torch: a right inverse that cannot be is the identity
        self.is_tensor = not isinstance(new, (tuple, list))
        self.ntensors = 1 if self.is_tensor else len(new)
        if self.is_tensor:
            self._keep_original(original, new)
        else:
            for i, value in enumerate(new):
                requires_grad = original.requires_grad
                setattr(self, f"original{i}", _as_original(value.detach(), requires_grad))
        if not unsafe:
            self._check_consistent(original)

    def _keep_original(self, original, new) -> None:
        """The original Parameter object survives (optimizers holding it still work): it
        takes the right inverse's value in place."""
        if tuple(new.shape) != tuple(original.shape) or new.dtype is not original.dtype:
            raise ValueError(f"When `right_inverse` outputs one tensor, it may not change the "
                             f"shape or dtype: original {list(original.shape)} "
                             f"{original.dtype}, right_inverse {list(new.shape)} {new.dtype}")
        with autograd.no_grad():
            original.copy_(new)
        if isinstance(original, Parameter):
            self.register_parameter("original", original)
        else:
            self.register_buffer("original", original)

    def _check_consistent(self, original) -> None:
        value = self()
        if tuple(value.shape) != tuple(original.shape) or value.dtype is not original.dtype:
            raise ValueError(f"Registering a parametrization may not change the shape or dtype "
                             f"of the tensor, unless `unsafe` is set: unparametrized "
                             f"{list(original.shape)} {original.dtype}, parametrized "
                             f"{list(value.shape)} {value.dtype}")

    def originals(self) -> tuple:
        if self.is_tensor:
            return (self.original,)
        return tuple(getattr(self, f"original{i}") for i in range(self.ntensors))

    def right_inverse(self, value) -> None:
        """Assigning to the parametrized attribute: invert the chain into the originals."""
        with autograd.no_grad():
            for module in reversed(list(self)):
                if hasattr(module, "right_inverse"):
                    value = module.right_inverse(value)
                else:
                    raise RuntimeError(f"parametrization {type(module).__name__} does not "
                                       f"implement right_inverse.")
            values = (value,) if self.is_tensor else tuple(value)
            for original, new in zip(self.originals(), values):
                original.copy_(new)

    def forward(self):
        first, *rest = list(self)
        value = first(*self.originals())
        for module in rest:
            value = module(value)
        return value


def _as_original(value, requires_grad: bool):
    return Parameter(value, requires_grad)


def _compute(module, name: str):
    if _CACHE is None:
        return module.parametrizations[name]()
    key = (id(module), name)
    if key not in _CACHE:
        _CACHE[key] = module.parametrizations[name]()
    return _CACHE[key]


def _refuse_pickling(self):
    raise RuntimeError("Serialization of parametrized modules is only supported through "
                       "state_dict(): save `module.state_dict()` and load it into a module "
                       "parametrized the same way")


def _deepcopy_instance(self, memo):
    """copy.deepcopy of a parametrized module: its __dict__ copied (pickling is refused,
    so the copy cannot go through __getstate__)."""
    if id(self) in memo:
        return memo[id(self)]
    replica = self.__new__(self.__class__)
    memo[id(self)] = replica
    replica.__dict__ = copy.deepcopy(self.__dict__, memo)
    return replica


def _inject_class(module) -> None:
    cls = module.__class__
    namespace = {"_ember_original_class": cls, "__module__": cls.__module__,
                 "__getstate__": _refuse_pickling}
    if not hasattr(cls, "__deepcopy__"):
        namespace["__deepcopy__"] = _deepcopy_instance
    module.__class__ = type(f"Parametrized{cls.__name__}", (cls,), namespace)


def _inject_property(module, name: str) -> None:
    def getter(self):
        return _compute(self, name)

    def setter(self, value):
        self.parametrizations[name].right_inverse(value)

    setattr(module.__class__, name, property(getter, setter))


def register_parametrization(module, tensor_name: str, parametrization, *,
                             unsafe: bool = False):
    """Parametrize `module.<tensor_name>` (a parameter or buffer) by `parametrization`;
    a second call on the same tensor appends to the chain."""
    if not isinstance(parametrization, Module):
        raise TypeError(f"register_parametrization(): the parametrization must be an "
                        f"nn.Module, got {type(parametrization).__name__}")
    if is_parametrized(module, tensor_name):
        plist = module.parametrizations[tensor_name]
        if not unsafe:
            current = getattr(module, tensor_name)
            value = parametrization(current)
            if tuple(value.shape) != tuple(current.shape) or value.dtype is not current.dtype:
                raise ValueError(f"Registering a parametrization may not change the shape or "
                                 f"dtype of the tensor, unless `unsafe` is set: "
                                 f"{list(current.shape)} -> {list(value.shape)}")
        plist.append(parametrization)
        plist.unsafe |= unsafe
        return module
    if tensor_name in module._parameters or tensor_name in module._buffers:
        original = getattr(module, tensor_name)
        plist = ParametrizationList([parametrization], original, unsafe=unsafe)
        delattr(module, tensor_name)
        if not is_parametrized(module):
            _inject_class(module)
            module.parametrizations = ModuleDict()
        module.parametrizations[tensor_name] = plist
        _inject_property(module, tensor_name)
        return module
    raise ValueError(f"Module '{module}' does not have a parameter, a buffer, or a "
                     f"parametrized element with name '{tensor_name}'")


def is_parametrized(module, tensor_name: str | None = None) -> bool:
    parametrizations = module.__dict__.get("_modules", {}).get("parametrizations")
    if parametrizations is None or not isinstance(parametrizations, ModuleDict):
        return False
    return len(parametrizations) > 0 if tensor_name is None else \
        tensor_name in parametrizations


def type_before_parametrizations(module) -> type:
    return getattr(type(module), "_ember_original_class", type(module))


def remove_parametrizations(module, tensor_name: str, leave_parametrized: bool = True):
    """Undo the parametrization of `tensor_name`: keep its current value
    (leave_parametrized=True) or its original as a plain parameter again."""
    if not is_parametrized(module, tensor_name):
        raise ValueError(f"Module {module} does not have a parametrization on {tensor_name}")
    plist = module.parametrizations[tensor_name]
    if plist.is_tensor:
        original = plist.original
        if leave_parametrized:
            with autograd.no_grad():
                value = getattr(module, tensor_name)
            if tuple(value.shape) == tuple(original.shape) and value.dtype is original.dtype:
                with autograd.no_grad():
                    original.copy_(value)
            else:
                original = Parameter(value.detach(), original.requires_grad)
    else:
        if not leave_parametrized:
            raise ValueError("Cannot leave unparametrized (`leave_parametrized=False`) a "
                             "tensor that is parametrized in terms of a sequence of tensors.")
        with autograd.no_grad():
            value = getattr(module, tensor_name)
        original = Parameter(value.detach(), plist.original0.requires_grad)
    delattr(module.__class__, tensor_name)
    del module.parametrizations[tensor_name]
    if isinstance(original, Parameter):
        module.register_parameter(tensor_name, original)
    else:
        module.register_buffer(tensor_name, original)
    if not is_parametrized(module):
        delattr(module, "parametrizations")
        module.__class__ = type_before_parametrizations(module)
    return module


def transfer_parametrizations_and_params(from_module, to_module, tensor_name=None):
    """Give `to_module` the parametrizations (and originals) of `from_module`."""
    names = [tensor_name] if tensor_name else list(from_module.parametrizations)
    for name in names:
        source = from_module.parametrizations[name]
        if not is_parametrized(to_module, name):
            if not hasattr(to_module, name):
                setattr(to_module, name, Parameter(getattr(from_module, name).detach()))
            for parametrization in source:
                register_parametrization(to_module, name, parametrization, unsafe=True)
        target = to_module.parametrizations[name]
        with autograd.no_grad():
            for mine, theirs in zip(target.originals(), source.originals()):
                mine.copy_(theirs)
    return to_module
