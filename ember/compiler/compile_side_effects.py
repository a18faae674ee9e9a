"""Python side effects of a traced call: what a compiled plan would not repeat.

A trace runs the function's Python once; the plan then replays only its tensor ops. A
function that changes Python state on each call (appends to a list in its closure,
counts calls in a global dict, `self.calls += 1` in a forward) would do that once, at
compile time, where torch.compile replays the change every call. `PythonState` keeps a
shallow copy of the state such code reaches (the containers in the function's closure
cells, the mutable globals its code names, the plain attributes of the module or object
it is bound to) before the trace; `changed()` names what the trace changed, and
`restore()` puts it back so the eager run the graph break falls back to makes the change
exactly once.

`PythonGuard` is the other half: the Python values a plan baked in (a global scale, a
closure's tensor, a module's flag), checked at each call so that a changed one compiles
again, as torch.compile's guards do.
"""
from __future__ import annotations

import types
from typing import Any, Callable

_CONTAINERS = (list, dict, set)
_PLAIN = (int, float, complex, str, bool, type(None))


def _codes(code: types.CodeType):
    """code and the code objects nested in it (inner functions, comprehensions)."""
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)


def _function_and_owner(fn):
    """(the Python function whose closure and globals the call reads, the object its
    attributes hang on, or None)."""
    if isinstance(fn, types.FunctionType):
        return fn, None
    if isinstance(fn, types.MethodType):
        func = fn.__func__
        return (func if isinstance(func, types.FunctionType) else None), fn.__self__
    forward = getattr(type(fn), "forward", None)       # a module: its class's forward
    if forward is not None:
        return (forward if isinstance(forward, types.FunctionType) else None), fn
    return None, None


class PythonState:
    """The Python state a call may change, copied shallowly before the trace: the
    contents of containers it reaches, and the owner's attributes (set, rebound or
    deleted by the call: `self.last = y` would otherwise keep a traced value)."""

    def __init__(self, fn):
        self.containers: list = []       # (name, container, shallow copy)
        func, owner = _function_and_owner(fn)
        if func is not None:
            self._watch_function(func)
        self.owner = owner
        self.attributes = _own_attributes(owner) if owner is not None else {}
        for key, value in self.attributes.items():
            if type(value) in _CONTAINERS:
                self.containers.append((f"self.{key}", value, _copy(value)))

    def _watch_function(self, func: types.FunctionType) -> None:
        for name, cell in zip(func.__code__.co_freevars, func.__closure__ or ()):
            try:
                value = cell.cell_contents
            except ValueError:          # a cell not yet filled
                continue
            if type(value) in _CONTAINERS:
                self.containers.append((name, value, _copy(value)))
        names = {n for code in _codes(func.__code__) for n in code.co_names}
        for name in sorted(names):
            value = func.__globals__.get(name)
            if type(value) in _CONTAINERS:
                self.containers.append((name, value, _copy(value)))

    def changed(self) -> list[str]:
        """What the trace changed: 'log (a list)', 'self.calls'."""
        out = [f"{name} (a {type(value).__name__})" for name, value, before in self.containers
               if not _same(value, before)]
        if self.owner is not None:
            now = _own_attributes(self.owner)
            for key in sorted(set(now) | set(self.attributes), key=str):
                if not _same_plain(now.get(key, _MISSING), self.attributes.get(key, _MISSING)):
                    out.append(f"self.{key}")
        return out

    def holds(self, is_traced: Callable[[Any], bool]) -> bool:
        """Does the changed state hold a traced value (`self.last = y`, `log.append(y)`)?
        Then the trace's changes cannot stand for the call's."""
        values = [v for _, value, before in self.containers if not _same(value, before)
                  for v in (value.values() if isinstance(value, dict) else value)]
        if self.owner is not None:
            now = _own_attributes(self.owner)
            values += [v for k, v in now.items()
                       if not _same_plain(v, self.attributes.get(k, _MISSING))]
        return any(_contains(v, is_traced) for v in values)

    def restore(self) -> None:
        for _, value, before in self.containers:
            if not _same(value, before):
                _put_back(value, before)
        if self.owner is not None:
            state = vars(self.owner)
            for key in set(_own_attributes(self.owner)) - set(self.attributes):
                del state[key]
            state.update(self.attributes)


def _contains(value, is_traced, depth: int = 3) -> bool:
    if is_traced(value):
        return True
    if depth and isinstance(value, (list, tuple, set)):
        return any(_contains(v, is_traced, depth - 1) for v in value)
    if depth and isinstance(value, dict):
        return any(_contains(v, is_traced, depth - 1) for v in value.values())
    return False


def _own_attributes(owner) -> dict:
    """The owner's attributes a call of user code may set: for a module, not its
    registries (parameters, buffers, submodules, hooks: ember's own bookkeeping)."""
    return {k: v for k, v in vars(owner).items() if k not in _module_internals()}


def _module_internals() -> frozenset:
    global _MODULE_INTERNALS
    if _MODULE_INTERNALS is None:
        from ..frontend.nn.modules.module import Module
        _MODULE_INTERNALS = frozenset(k for k in vars(Module()) if k != "training")
    return _MODULE_INTERNALS


_MODULE_INTERNALS: frozenset | None = None


_MISSING = object()


def _copy(value):
    if isinstance(value, dict):
        return list(value.items())
    if isinstance(value, (list, set)):
        return list(value)
    return value


def _same(value, before) -> bool:
    """Unchanged: the same items, by identity (tensors have no plain ==)."""
    if isinstance(value, set):
        return value == set(before)
    items = list(value.items()) if isinstance(value, dict) else list(value)
    return len(items) == len(before) and all(
        _item_same(a, b) for a, b in zip(items, before))


def _item_same(a, b) -> bool:
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b) == 2:
        return a[0] == b[0] and _same_plain(a[1], b[1])      # dict items
    return _same_plain(a, b)


def _same_plain(a, b) -> bool:
    return a is b or (isinstance(a, _PLAIN) and type(a) is type(b) and a == b)


def _put_back(value, before) -> None:
    if isinstance(value, dict):
        value.clear()
        value.update(before)
    elif isinstance(value, list):
        value[:] = before
    else:
        value.clear()
        value.update(before)


class PythonGuard:
    """What a compiled plan baked in from Python and must be guarded on, as torch.compile
    guards it: the plain values (numbers, strings, None) and the tensors, by identity, in
    the globals the function's code names, its closure cells and the plain attributes of
    the module (or object) it is bound to, as they were when it was traced. A later call
    that finds one changed (`SCALE = 3.0`, a closure rebound, `model.scale = 4.0`, a
    global tensor replaced) compiles again; nothing is compared when nothing is read."""

    def __init__(self, fn, is_tensor: Callable[[Any], bool]):
        self.checks: list = []          # (name, read() -> value, value at trace time)
        func, owner = _function_and_owner(fn)
        if func is not None:
            self._watch(func, is_tensor)
        if owner is not None:
            for key, value in vars(owner).items():
                if _guardable(value, is_tensor):
                    self.checks.append((f"self.{key}", _attribute_reader(owner, key), value))

    def _watch(self, func, is_tensor) -> None:
        for name, cell in zip(func.__code__.co_freevars, func.__closure__ or ()):
            try:
                value = cell.cell_contents
            except ValueError:
                continue
            if _guardable(value, is_tensor):
                self.checks.append((name, _cell_reader(cell), value))
        names = {n for code in _codes(func.__code__) for n in code.co_names}
        glob = func.__globals__
        for name in sorted(names):
            value = glob.get(name, _MISSING)
            if value is not _MISSING and _guardable(value, is_tensor):
                self.checks.append((f"global {name!r}", _global_reader(glob, name), value))

    def changed(self) -> str | None:
        """Why the compiled entries no longer fit (None: they do)."""
        for name, read, before in self.checks:
            now = read()
            if not _same_plain(now, before):
                if isinstance(before, _PLAIN) and isinstance(now, _PLAIN):
                    return f"{name} changed: expected {before!r}, actual {now!r}"
                return f"{name} is another object than when the function was compiled"
        return None


def _guardable(value, is_tensor) -> bool:
    return isinstance(value, _PLAIN) or is_tensor(value)


def _attribute_reader(owner, key):
    return lambda: vars(owner).get(key, _MISSING)


def _cell_reader(cell):
    def read():
        try:
            return cell.cell_contents
        except ValueError:
            return _MISSING
    return read


def _global_reader(glob: dict, name: str):
    return lambda: glob.get(name, _MISSING)
