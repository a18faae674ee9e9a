"""What `ember.compile` checks before it reuses a compiled entry, and why it recompiles.

A call's arguments (positional and keyword, nested in lists/tuples/dicts) are flattened
into tensor *leaves* and a *spec* (the structure, with every non-tensor value in it).
The guard key of a call is the spec (non-tensor values by repr), each leaf's shape,
dtype, strides, device and requires_grad, whether grad mode is on, and, for a module,
the train/eval flag of every submodule. A call whose key has an entry reuses it; a new
key compiles a new entry and logs why, at INFO on the logger named "ember.compile"
(`logging.getLogger("ember.compile")`), e.g.

    ember.compile: recompiling forward (model.py:12): tensor 'x' size mismatch at
    index 0: expected 8, actual 16

After `config.cache_size_limit` entries (8 by default, as torch._dynamo's
cache_size_limit; environment variable EMBER_COMPILE_CACHE_SIZE_LIMIT) a new key runs
the function eagerly and warns once on that logger. ember compiles one plan per
distinct shape until a dimension's size changes: then compile_dynamic.py compiles one
symbolic entry for every size (see docs/compile.md, "Dynamic shapes").
"""
from __future__ import annotations

import copy
import dataclasses
import inspect
import logging
import os
from dataclasses import dataclass
from typing import Any, Callable

from ..ir import autocast
from ..ir.symbolic import SymbolicTensor
from ..frontend.autograd import grad_mode
from ..frontend.func.pytree import CUSTOM_NODES
from ..frontend.tensor import Tensor

log = logging.getLogger("ember.compile")


@dataclass
class CompileConfig:
    """ember.compile's knobs (`ember.compile.config`), as torch._dynamo.config's."""
    cache_size_limit: int = int(os.environ.get("EMBER_COMPILE_CACHE_SIZE_LIMIT", "8"))


config = CompileConfig()


# --- flattening arguments and results ---------------------------------------------------------
def _is_leaf(value) -> bool:
    return isinstance(value, (Tensor, SymbolicTensor))


def flatten(value, objects: bool = False) -> tuple[list, Any]:
    """(tensor leaves in order, spec): the spec is `value` with each leaf replaced by a
    marker, so `unflatten(spec, leaves)` rebuilds it with other leaves. objects=True
    (a compiled function's results) also opens other objects that hold tensors in their
    attributes (a key/value cache a model returns), rebuilding copies of them."""
    leaves: list = []
    return leaves, _spec_of(value, leaves, objects)


class _Leaf:
    """The spec's marker for a tensor: one instance, compared by identity, so copies
    and unpickled specs (a deep-copied `ep.module()`) keep it."""
    __slots__ = ()

    def __repr__(self) -> str:
        return "<tensor>"

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        return "LEAF"          # pickled by reference to this module's LEAF


LEAF = _Leaf()


class _DataclassSpec:
    """A dataclass instance in arguments or results (torch.compile accepts them as pytrees):
    its fields' specs, and a copy of the instance holding them (no tensor kept alive) to
    copy when rebuilding."""
    __slots__ = ("value", "fields")

    def __init__(self, value, fields: dict):
        self.value, self.fields = copy.copy(value), fields
        for name, spec in fields.items():
            object.__setattr__(self.value, name, spec)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.fields.items())
        return f"{type(self.value).__qualname__}({inner})"

    def rebuild(self, items: dict):
        out = copy.copy(self.value)
        for name, item in items.items():
            object.__setattr__(out, name, item)      # frozen dataclasses too
        return out


class _NodeSpec:
    """A value of a type registered with torch.utils._pytree.register_pytree_node: its
    children's specs and the context its flatten function gave, to rebuild it with."""
    __slots__ = ("node", "context", "children")

    def __init__(self, node, context, children: list):
        self.node, self.context, self.children = node, context, children

    def __repr__(self) -> str:
        inner = ", ".join(repr(child) for child in self.children)
        return f"{self.node.type.__qualname__}({self.context!r}: {inner})"

    def rebuild(self, items: list):
        return self.node.unflatten_fn(items, self.context)


def _is_dataclass_instance(value) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


class _ObjectSpec(_DataclassSpec):
    """A plain object among a compiled function's results whose attributes hold tensors:
    a copy of it whose attributes are their specs."""
    __slots__ = ()


def _object_spec(value, leaves: list, seen: set):
    """An _ObjectSpec of `value` where its attributes hold tensors (through lists, dicts
    and other such objects), else None. Modules, classes and functions are kept whole."""
    from ..frontend.nn.modules.module import Module
    attributes = getattr(value, "__dict__", None)
    if not attributes or isinstance(value, (Module, type)) or callable(value) or \
            id(value) in seen:
        return None
    seen.add(id(value))
    start = len(leaves)
    fields = {name: _spec_of(item, leaves, seen) for name, item in attributes.items()}
    if len(leaves) == start:
        return None
    return _ObjectSpec(value, fields)


def _spec_of(value, leaves: list, objects=False):
    if _is_leaf(value):
        leaves.append(value)
        return LEAF
    if objects is True:
        objects = set()             # ids of the objects opened so far (cycles)
    node = CUSTOM_NODES.get(type(value))
    if node is not None:
        children, context = node.flatten_fn(value)
        return _NodeSpec(node, context, [_spec_of(child, leaves, objects)
                                         for child in children])
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(_spec_of(v, leaves, objects) for v in value))
    if isinstance(value, (tuple, list)):
        return type(value)(_spec_of(v, leaves, objects) for v in value)
    if isinstance(value, dict):
        return {k: _spec_of(v, leaves, objects) for k, v in value.items()}
    if _is_dataclass_instance(value):
        return _DataclassSpec(value, {f.name: _spec_of(getattr(value, f.name), leaves, objects)
                                      for f in dataclasses.fields(value)})
    if objects is not False:
        spec = _object_spec(value, leaves, objects)
        if spec is not None:
            return spec
    return value


def unflatten(spec, leaves) -> Any:
    it = iter(leaves)
    return _rebuild(spec, it)


def _rebuild(spec, it):
    if spec is LEAF:
        return next(it)
    if isinstance(spec, tuple) and hasattr(spec, "_fields"):
        return type(spec)(*(_rebuild(s, it) for s in spec))
    if isinstance(spec, (tuple, list)):
        return type(spec)(_rebuild(s, it) for s in spec)
    if isinstance(spec, dict):
        return {k: _rebuild(v, it) for k, v in spec.items()}
    if isinstance(spec, _DataclassSpec):
        return spec.rebuild({k: _rebuild(v, it) for k, v in spec.fields.items()})
    if isinstance(spec, _NodeSpec):
        return spec.rebuild([_rebuild(child, it) for child in spec.children])
    return spec


# --- the guard key ----------------------------------------------------------------------------
@dataclass(frozen=True)
class TensorGuard:
    shape: tuple
    dtype: str
    stride: tuple
    device: str
    requires_grad: bool


@dataclass(frozen=True)
class GuardKey:
    grad_enabled: bool
    training: tuple             # train flags of the module's submodules (() for functions)
    spec: str                   # repr of the argument structure with its non-tensor values
    tensors: tuple              # TensorGuard per leaf
    autocast: tuple = ()        # the enabled autocast regions: (device type, dtype) pairs


def guard_key_of(leaves: list, spec, modules: list) -> GuardKey:
    """The key of a call; `modules`: the compiled module's submodules (train flags)."""
    tensors = tuple(TensorGuard(tuple(t.shape), t.dtype.name, tuple(t.stride()),
                                str(t.device), bool(t.requires_grad)) for t in leaves)
    return GuardKey(grad_mode.is_grad_enabled(), tuple(m.training for m in modules),
                    repr(spec), tensors, autocast.state_key())


def leaf_names(fn: Callable, args: tuple, kwargs: dict) -> list[str]:
    """A readable name per tensor leaf of the call: 'x', 'xs[1]', "batch['y']"."""
    if not inspect.isroutine(fn) and callable(getattr(fn, "forward", None)):
        fn = fn.forward                 # a module: its forward's parameter names
    try:
        bound = inspect.signature(fn).bind(*args, **kwargs)
        named = list(bound.arguments.items())
    except (TypeError, ValueError):
        named = [(f"args[{i}]", a) for i, a in enumerate(args)] + list(kwargs.items())
    names: list[str] = []
    for name, value in named:
        _name_leaves(value, name, names)
    return names


def _name_leaves(value, path: str, names: list[str]) -> None:
    if _is_leaf(value):
        names.append(path)
    elif isinstance(value, (tuple, list)):
        for i, v in enumerate(value):
            _name_leaves(v, f"{path}[{i}]", names)
    elif isinstance(value, dict):
        for k, v in value.items():
            _name_leaves(v, f"{path}[{k!r}]", names)


def recompile_reasons(old: GuardKey, new: GuardKey, names: list[str]) -> list[str]:
    """Why `new` does not match the entry compiled for `old`, in torch's guard wording;
    `names`: the tensor arguments' names (leaf_names)."""
    reasons = []
    if old.grad_enabled != new.grad_enabled:
        reasons.append(f"grad mode changed: expected {old.grad_enabled}, actual "
                       f"{new.grad_enabled}")
    if old.training != new.training:
        reasons.append("module train/eval mode changed")
    if old.autocast != new.autocast:
        reasons.append(f"autocast state changed: expected {old.autocast or 'disabled'}, "
                       f"actual {new.autocast or 'disabled'}")
    if old.spec != new.spec:
        reasons.append(f"non-tensor arguments changed: expected {old.spec}, actual {new.spec}")
    if len(old.tensors) != len(new.tensors):
        reasons.append(f"number of tensor arguments changed: expected {len(old.tensors)}, "
                       f"actual {len(new.tensors)}")
        return reasons
    for a, b, name in zip(old.tensors, new.tensors, names):
        reasons.extend(_tensor_reasons(a, b, name))
    return reasons or ["no entry for these arguments"]


def _tensor_reasons(a: TensorGuard, b: TensorGuard, name: str) -> list[str]:
    found = []
    if len(a.shape) != len(b.shape):
        found.append(f"tensor '{name}' rank mismatch: expected {len(a.shape)}, actual "
                     f"{len(b.shape)}")
    else:
        found.extend(f"tensor '{name}' size mismatch at index {i}: expected {x}, actual {y}"
                     for i, (x, y) in enumerate(zip(a.shape, b.shape)) if x != y)
    for field_name in ("dtype", "device", "requires_grad"):
        x, y = getattr(a, field_name), getattr(b, field_name)
        if x != y:
            found.append(f"tensor '{name}' {field_name} mismatch: expected {x}, actual {y}")
    if a.shape == b.shape and a.stride != b.stride:
        found.append(f"tensor '{name}' stride mismatch: expected {a.stride}, actual "
                     f"{b.stride}")
    return found


def describe_function(fn) -> str:
    """'forward (model.py:12)': the function a log line is about."""
    target = getattr(fn, "forward", fn) if not inspect.isfunction(fn) else fn
    code = getattr(getattr(target, "__func__", target), "__code__", None)
    name = getattr(target, "__qualname__", None) or type(fn).__name__
    if code is None:
        return name
    return f"{name} ({os.path.basename(code.co_filename)}:{code.co_firstlineno})"
