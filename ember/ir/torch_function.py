"""PyTorch's `__torch_function__` protocol: the one check every public entry point makes.

A public function (`ember.add`, `ember.nn.functional.linear`, `ember.Tensor.add`,
`ember.Tensor.__add__`, `ember.Tensor.shape.__get__`, ...) called with an argument whose
type defines `__torch_function__` (a Tensor subclass, or any "Tensor-like" class), or
while a TorchFunctionMode is active, calls
`__torch_function__(func, types, args, kwargs)` instead of running: the innermost mode
first (with itself popped while it runs), then the overriding arguments' types, most
derived first; NotImplemented passes to the next; when every one answers
NotImplemented, TypeError names the function and the types, as torch's does.

`dispatch_public(func, args, kwargs)` is that check: it returns `NOT_OVERRIDDEN` when
the call should just run. Plain tensors never pay for it on eager's fast paths:

- registry ops (`OpDef.__call__`) ask it only on the full path (the seen-call path
  takes plain tensors only);
- Python functions of the public namespaces and Tensor's reflected operators ask it
  only while `STATE.on` (set once a class with `__torch_function__` is defined or
  seen, or a mode is entered);
- Tensor's methods and properties are routed through it only on Tensor *subclasses*
  (their class gets forwarding wrappers when it is defined), and on Tensor itself only
  while a mode is active (frontend/torch_function.py installs and removes them).

The frontend registers what "plain" means (Tensor, and subclasses that disable the
protocol, such as nn.Parameter) in `PLAIN_TYPES`, and the disabled implementation's
function in `DISABLED_IMPL`; `ir` imports nothing above it.
"""
from __future__ import annotations

import contextlib

ENABLED, SUBCLASSES_DISABLED, ALL_DISABLED = 2, 1, 0


class _State:
    __slots__ = ("on", "level", "modes", "on_modes_changed", "public_function")

    def __init__(self):
        self.on = False             # some class overriding the protocol exists, or a mode
        self.level = ENABLED        # DisableTorchFunctionSubclass / DisableTorchFunction
        self.modes: list = []       # TorchFunctionMode stack, innermost last
        self.on_modes_changed = None   # frontend callback(active: bool)
        # frontend: (func, args, kwargs) -> the (func, args, kwargs) torch passes: operators
        # as Tensor's methods (`x + y` is Tensor.add), an op called by a Tensor method as
        # that method
        self.public_function = None


STATE = _State()
NOT_OVERRIDDEN = object()
# exact types that never dispatch (Tensor, nn.Parameter, ...): filled by the frontend
PLAIN_TYPES: set = {int, float, bool, complex, str, bytes, type(None), type(Ellipsis),
                    slice, range, dict, set, frozenset, type}
DISABLED_IMPL: list = []            # [the frontend's _disabled_torch_function_impl]
_OVERRIDES: dict[type, bool] = {}   # type -> overrides the protocol (computed once per type)


def forget_type(cls: type) -> None:
    """A class whose `__torch_function__` changed after it was first seen."""
    _OVERRIDES.pop(cls, None)


def is_disabled_impl(method) -> bool:
    return bool(DISABLED_IMPL) and getattr(method, "__func__", method) is DISABLED_IMPL[0]


def overrides(cls: type) -> bool:
    """True when values of `cls` take part in the protocol."""
    try:
        return _OVERRIDES[cls]
    except KeyError:
        pass
    method = getattr(cls, "__torch_function__", None)
    result = method is not None and cls not in PLAIN_TYPES and not is_disabled_impl(method)
    _OVERRIDES[cls] = result
    if result:
        STATE.on = True
    return result


def _add(found: list, value) -> None:
    """torch's order: one argument per type, a subclass before its base classes."""
    cls = type(value)
    for old in found:
        if type(old) is cls:
            return
    for i, old in enumerate(found):
        if issubclass(cls, type(old)):
            found.insert(i, value)
            return
    found.append(value)


def overloaded_args(values) -> list:
    """The arguments whose types override the protocol, one level into lists/tuples."""
    found: list = []
    for v in values:
        cls = type(v)
        if cls in PLAIN_TYPES:
            continue
        if cls is list or cls is tuple:
            for x in v:
                if type(x) not in PLAIN_TYPES and overrides(type(x)):
                    _add(found, x)
        elif overrides(cls):
            _add(found, v)
    return found


def has_override(values) -> bool:
    """Whether a call with these argument values would dispatch (a mode or a type)."""
    if STATE.level == ALL_DISABLED:
        return False
    if STATE.modes:
        return True
    return STATE.level == ENABLED and bool(overloaded_args(values))


def dispatch_public(func, args: tuple, kwargs: dict | None, native: bool = False):
    """Run `func(*args, **kwargs)`'s overrides; NOT_OVERRIDDEN when nothing claims it.
    `native`: func is a registry op or a Tensor method (torch's C++ bindings, whose
    failure message differs from its Python functions')."""
    level = STATE.level
    if level == ALL_DISABLED:
        return NOT_OVERRIDDEN
    if level == ENABLED:
        values = list(args)
        if kwargs:
            values.extend(kwargs.values())
        found = overloaded_args(values)
    else:
        found = []
    if not found and not STATE.modes:
        return NOT_OVERRIDDEN
    return handle(func, found, args, kwargs or {}, native)


class DispatchFailed(TypeError):
    """Every override answered NotImplemented (binary operators turn it into
    NotImplemented, so Python reports the unsupported operand types)."""


def handle(func, found: list, args: tuple, kwargs: dict, native: bool = False):
    """torch.overrides.handle_torch_function's rules, for the overriding `found`."""
    if native and STATE.public_function is not None:
        func, args, kwargs = STATE.public_function(func, args, kwargs)
    types = tuple(type(v) for v in found)
    if STATE.modes and STATE.level != ALL_DISABLED:
        with popped_mode() as mode:
            result = mode.__torch_function__(func, types, args, kwargs)
        if result is not NotImplemented:
            return result
    for value in found:
        method = value.__torch_function__     # (a plain method works too, as in torch)
        if is_disabled_impl(method):
            continue
        result = method(func, types, args, kwargs)
        if result is not NotImplemented:
            return result
    modes_on = STATE.modes and STATE.level != ALL_DISABLED
    if native:
        lines = [f"  - mode object {STATE.modes[-1]}"] if modes_on else []
        lines += [f"  - tensor subclass {type(v)}" for v in found]
        raise DispatchFailed(
            f"Multiple dispatch failed for '{public_name(func)}'; all __torch_function__ "
            f"handlers returned NotImplemented:\n\n" + "\n".join(lines) +
            "\n\nFor more information, try re-running with TORCH_LOGS=not_implemented")
    message = (f"no implementation found for '{public_name(func)}' on types that implement "
               f"__torch_function__: {[type(v) for v in found]}")
    if modes_on:
        message += f" nor in mode {STATE.modes[-1]}"
    raise DispatchFailed(message)


PUBLIC_NAMES: dict = {}              # Tensor methods: function -> "ember.Tensor.add"


def public_name(func) -> str:
    """`ember.add`, `ember.Tensor.add`, `ember.nn.functional.linear`: the user's name."""
    try:
        name = PUBLIC_NAMES.get(func)
    except TypeError:                   # unhashable
        name = None
    if name is not None:
        return name
    schema = getattr(func, "schema", None)
    if schema is not None and hasattr(func, "python_name"):          # a registry op
        space = getattr(func, "namespace", "")
        return f"ember.{space}.{func.python_name}" if space else f"ember.{func.python_name}"
    owner = getattr(func, "__self__", None)
    if owner is not None and type(func).__name__ == "method-wrapper":   # prop.__get__
        fget = getattr(owner, "fget", None)
        name = getattr(fget, "__name__", None) or getattr(owner, "__name__", "?")
        return f"ember.Tensor.{name}.{func.__name__}"
    module = getattr(func, "__module__", None) or "ember"
    qualname = getattr(func, "__qualname__", None) or getattr(func, "__name__", repr(func))
    if "<locals>" in qualname:
        qualname = func.__name__
    return f"{module}.{qualname}"


@contextlib.contextmanager
def popped_mode():
    """The innermost mode, off the stack while its own __torch_function__ runs."""
    mode = STATE.modes.pop()
    try:
        yield mode
    finally:
        STATE.modes.append(mode)


def push_mode(mode) -> None:
    STATE.modes.append(mode)
    STATE.on = True
    if len(STATE.modes) == 1 and STATE.on_modes_changed is not None:
        STATE.on_modes_changed(True)


def pop_mode():
    if not STATE.modes:
        raise RuntimeError("Trying to pop from an empty mode stack")
    mode = STATE.modes.pop()
    if not STATE.modes and STATE.on_modes_changed is not None:
        STATE.on_modes_changed(False)
    return mode


@contextlib.contextmanager
def level(value: int):
    """Run a block with the protocol at `value` (never raising a disabled level)."""
    saved = STATE.level
    STATE.level = min(saved, value)
    try:
        yield
    finally:
        STATE.level = saved
