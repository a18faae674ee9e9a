"""`__torch_function__` on the frontend: Tensor's default, subclasses, modes, routing.

The check itself is ir/torch_function.py's `dispatch_public`. Here:

- `Tensor.__torch_function__` (the default every subclass inherits): run the function
  with subclass dispatch off, and give Tensor results the subclass's type (`_convert`);
  `_disabled_torch_function_impl` (nn.Parameter's: behave as a plain Tensor);
- `DisableTorchFunctionSubclass` / `DisableTorchFunction`, torch._C's context managers;
- Tensor subclasses that take part in the protocol get, when the class is defined, a
  forwarding wrapper for each of Tensor's public methods, operators and properties
  (`Tensor.__init_subclass__`), so `sub.add(y)` calls `__torch_function__` with
  `ember.Tensor.add`; plain Tensor's own methods stay untouched (no cost), except while a
  TorchFunctionMode is active, when Tensor itself carries the same wrappers;
- `route_functions(namespace)`: each public Python function of ember, nn.functional,
  linalg, fft and special asks the check first. The function object stays the same
  (its code becomes a two-line router over a copy of the original), so identity, pickling
  and tables keyed by function are unaffected; the router tests one flag while no class
  with `__torch_function__` exists.
"""
from __future__ import annotations

import types as _types

from ..ir import dispatch as _dispatch
from ..ir import torch_function as _tf
from ..ir.torch_function import NOT_OVERRIDDEN, STATE, dispatch_public
from .tensor import Tensor


# --- torch._C's pieces -------------------------------------------------------------------
def _disabled_torch_function_impl(func, types, args=(), kwargs=None):
    """A class whose `__torch_function__` is this takes no part in the protocol."""
    with _tf.level(_tf.SUBCLASSES_DISABLED):
        return func(*args, **(kwargs or {}))


_tf.DISABLED_IMPL[:] = [_disabled_torch_function_impl]


class DisableTorchFunctionSubclass:
    """`with DisableTorchFunctionSubclass():` subclasses' (and Tensor-likes')
    `__torch_function__` are not called; modes still are."""

    def __enter__(self):
        self._saved = STATE.level
        STATE.level = min(STATE.level, _tf.SUBCLASSES_DISABLED)
        return self

    def __exit__(self, *exc):
        STATE.level = self._saved
        return False


class DisableTorchFunction(DisableTorchFunctionSubclass):
    """`with DisableTorchFunction():` neither subclasses nor modes are called."""

    def __enter__(self):
        self._saved = STATE.level
        STATE.level = _tf.ALL_DISABLED
        return self


def is_torch_function_enabled() -> bool:
    return STATE.level == _tf.ENABLED


def is_torch_function_mode_enabled() -> bool:
    return bool(STATE.modes) and STATE.level != _tf.ALL_DISABLED


# --- Tensor's default __torch_function__ ------------------------------------------------------
def _nowrap_functions() -> tuple:
    """torch.overrides.get_default_nowrap_functions: results returned as they are."""
    return (Tensor._base.__get__, Tensor.grad.__get__)


def _convert(ret, cls):
    """Tensor results (and those inside tuples/lists) as instances of `cls`."""
    if cls is Tensor:
        return ret
    if isinstance(ret, Tensor) and not isinstance(ret, cls):
        return ret.as_subclass(cls)
    if type(ret) in (tuple, list):
        return type(ret)(_convert(r, cls) for r in ret)
    if isinstance(ret, tuple) and hasattr(ret, "_fields"):       # torch.return_types.max
        return type(ret)(*(_convert(r, cls) for r in ret))
    return ret


def _tensor_torch_function(cls, func, types, args=(), kwargs=None):
    if kwargs is None:
        kwargs = {}
    if not all(issubclass(cls, t) for t in types):
        return NotImplemented
    with _tf.level(_tf.SUBCLASSES_DISABLED):
        ret = func(*args, **kwargs)
        if func in _nowrap_functions():
            return ret
        return _convert(ret, cls)


Tensor.__torch_function__ = classmethod(_tensor_torch_function)
_tf.PLAIN_TYPES.add(Tensor)


# --- forwarding wrappers for Tensor's methods and properties ----------------------------------
# never routed: construction, the protocol itself, attribute machinery, pickling
_NEVER = frozenset({
    "__new__", "__init__", "__init_subclass__", "__torch_function__", "__class__",
    "__dict__", "__slots__", "__weakref__", "__getattribute__", "__getattr__",
    "__setattr__", "__delattr__", "__module__", "__doc__", "__qualname__", "__hash__",
    "__subclasshook__", "__reduce__", "__reduce_ex__", "__getstate__", "__setstate__",
    "__sizeof__", "__dir__", "__class_getitem__", "__annotations__", "_ember_is_tensor",
    "as_subclass", "_make_subclass",
    "__iter__"})                # torch's iterates self.unbind(0), which dispatches itself
_WRAPPERS: dict[str, object] = {}       # name -> the routing attribute (built once)
_ORIGINALS: dict[str, object] = {}      # name -> Tensor's own attribute


def _reflected_operators() -> set:
    from .methods import OPERATORS
    return {d for d, (_, reflected) in OPERATORS.items() if reflected}


def _routed_method(name: str, original):
    def method(self, *args, **kwargs):
        result = dispatch_public(original, (self,) + args, kwargs, True)
        if result is NOT_OVERRIDDEN:
            return original(self, *args, **kwargs)
        return result
    method.__name__ = name
    method.__qualname__ = f"Tensor.{name}"
    method.__doc__ = getattr(original, "__doc__", None)
    method.__wrapped__ = original
    return method


def _routed_operator(name: str, original):
    """Binary operators: a failed dispatch is NotImplemented, so Python tries the other
    operand and then reports the unsupported operand types (as torch's)."""
    def method(self, *args, **kwargs):
        try:
            result = dispatch_public(original, (self,) + args, kwargs, True)
        except _tf.DispatchFailed:
            return NotImplemented
        if result is NOT_OVERRIDDEN:
            return original(self, *args, **kwargs)
        return result
    method.__name__ = name
    method.__qualname__ = f"Tensor.{name}"
    method.__wrapped__ = original
    return method


class _PropertyGet:
    """The function a property read passes to `__torch_function__`: equal to (and
    hashing as) `Tensor.<name>.__get__`, and calling it reads through the protocol
    again, so the next mode on the stack sees the read too (as torch's getters do)."""
    __slots__ = ("getter", "routed")
    __name__ = "__get__"

    def __init__(self, getter):
        self.getter = getter
        self.routed = None                  # the routing property, set once it exists

    def __call__(self, obj, owner=None):
        return self.routed.fget(obj)

    @property
    def __self__(self):
        return self.getter.__self__

    def __eq__(self, other):
        if isinstance(other, _PropertyGet):
            other = other.getter
        return self.getter == other

    def __hash__(self):
        return hash(self.getter)

    def __repr__(self):
        return repr(self.getter)


def _routed_property(descriptor):
    """Reads go through the protocol with `Tensor.<name>.__get__`; writes go straight
    to Tensor's attribute (construction sets them)."""
    getter = descriptor.__get__
    public = _PropertyGet(getter)
    setter = getattr(descriptor, "__set__", None)

    def fget(self):
        result = dispatch_public(public, (self,), None, True)
        if result is NOT_OVERRIDDEN:
            return getter(self, type(self))
        return result

    fset = None
    if setter is not None and (not isinstance(descriptor, property) or descriptor.fset):
        def fset(self, value):
            setter(self, value)
    public.routed = property(fget, fset, doc=getattr(descriptor, "__doc__", None))
    return public.routed, getter


# the Tensor method torch passes for an operator (`x + y` calls Tensor.add, `x += y`
# Tensor.add_, `1 + x` Tensor.add(x, 1)); operators not listed pass themselves
OPERATOR_METHODS = {
    "__add__": "add", "__radd__": "add", "__iadd__": "add_", "__sub__": "sub",
    "__isub__": "sub_", "__mul__": "mul", "__rmul__": "mul", "__imul__": "mul_",
    "__truediv__": "div", "__div__": "div", "__itruediv__": "div_", "__idiv__": "div_",
    "__matmul__": "matmul", "__ifloordiv__": "floor_divide_", "__mod__": "remainder",
    "__imod__": "remainder_", "__rand__": "bitwise_and", "__ror__": "bitwise_or",
    "__rxor__": "bitwise_xor", "__ne__": "ne", "__lt__": "lt", "__le__": "le", "__gt__": "gt",
    "__ge__": "ge", "__neg__": "neg", "__abs__": "abs", "__pos__": "positive",
    "__rtruediv__": "__rdiv__"}
_PUBLIC: dict = {}                      # Tensor attribute -> the function torch passes
_METHOD_CODES: set = set()              # code of methods.py's generated Tensor methods


def _public_function(func, args, kwargs):
    _build_wrappers()
    try:
        public = _PUBLIC.get(func)
    except TypeError:
        public = None
    if public is not None:
        return public, args, kwargs
    if hasattr(func, "schema"):          # a registry op: called by a Tensor method?
        import sys
        try:        # this <- handle <- dispatch_public <- OpDef.__call__ <- the caller
            frame = sys._getframe(4)
        except ValueError:
            frame = None
        if frame is not None and frame.f_code in _METHOD_CODES:
            local = frame.f_locals
            self = local.get("self")
            method = _ORIGINALS.get(getattr(local.get("op"), "python_name", None))
            if method is not None and self is not None:
                return method, (self,) + tuple(local.get("args", ())), \
                    dict(local.get("kwargs", {}))
    return func, args, kwargs


STATE.public_function = _public_function


def _build_wrappers() -> None:
    if _WRAPPERS:
        return
    from .methods import METHOD_CODES
    _METHOD_CODES.update(METHOD_CODES)
    skip = _reflected_operators()
    from .methods import OPERATORS
    for name, value in list(vars(Tensor).items()):
        if name in _NEVER or name in skip or \
                (name.startswith("_") and not (name.startswith("__") and name.endswith("__"))
                 and name not in ("_base",)):
            continue
        if isinstance(value, (staticmethod, classmethod)):
            continue
        if isinstance(value, (property, _types.MemberDescriptorType,
                              _types.GetSetDescriptorType)):
            wrapper, getter = _routed_property(value)
            _tf.PUBLIC_NAMES[getter] = f"ember.Tensor.{name}.__get__"
        elif callable(value):
            make = _routed_operator if name in OPERATORS else _routed_method
            wrapper = make(name, value)
            try:
                _tf.PUBLIC_NAMES[value] = f"ember.Tensor.{name}"
            except TypeError:
                pass
        else:
            continue
        _ORIGINALS[name] = value
        _WRAPPERS[name] = wrapper
    tensor_attributes = vars(Tensor)
    for dunder, method in OPERATOR_METHODS.items():
        if dunder in tensor_attributes and method in tensor_attributes:
            _PUBLIC[tensor_attributes[dunder]] = tensor_attributes[method]


def _install_routing(cls) -> None:
    """Give `cls` (a subclass) the wrappers for names no class between it and Tensor
    defines itself (a user's own method or an inherited wrapper wins)."""
    _build_wrappers()
    own: set = set()
    for klass in cls.__mro__:
        if klass is Tensor:
            break
        own.update(vars(klass))
    for name, wrapper in _WRAPPERS.items():
        if name not in own:
            setattr(cls, name, wrapper)


def _tensor_init_subclass(cls, **kwargs):
    super(Tensor, cls).__init_subclass__(**kwargs)
    if _tf.overrides(cls):
        _install_routing(cls)
    else:
        _tf.PLAIN_TYPES.add(cls)


Tensor.__init_subclass__ = classmethod(_tensor_init_subclass)


def _modes_changed(active: bool) -> None:
    """While a TorchFunctionMode is active, plain Tensor's methods route too (the mode
    sees `x.add(y)`, `x + y`, `x.shape`), and every registry call takes the full path
    (a pass-through dispatch mode keeps eager's seen-call shortcuts off)."""
    if active:
        _build_wrappers()
        for name, wrapper in _WRAPPERS.items():
            setattr(Tensor, name, wrapper)
        _PASS_THROUGH.context = _dispatch.enabled(_PASS_THROUGH)
        _PASS_THROUGH.context.__enter__()
        for namespace, name, plain, routed in _MODE_ONLY:
            if namespace.get(name) is plain:
                namespace[name] = routed
    else:
        for name, original in _ORIGINALS.items():
            setattr(Tensor, name, original)
        for namespace, name, plain, routed in _MODE_ONLY:
            if namespace.get(name) is routed:
                namespace[name] = plain
        context, _PASS_THROUGH.context = _PASS_THROUGH.context, None
        if context is not None:
            context.__exit__(None, None, None)


class _PassThrough:
    """A dispatch mode that handles nothing: its presence turns off eager's shortcuts."""
    context = None

    def handle(self, op, args):
        with _dispatch.disabled(self):
            return _dispatch.dispatch(op, args)


_PASS_THROUGH = _PassThrough()
STATE.on_modes_changed = _modes_changed


# --- routing public Python functions ------------------------------------------------------
# Each routed function's code becomes a router with the function's own signature
# (generated once at import), so a plain call costs one flag test and one call:
#
#     def relu(input, inplace=False):
#         if _ember_tf_state.on:
#             return _ember_tf_call(<relu>, <copy of relu>, (input, inplace), {})
#         try:
#             return <copy of relu>(input, inplace)
#         except Exception:            # a Tensor-like argument seen for the first time
#             ...
#
# The names it reads are module globals of the function's own module (code keeps its
# function's globals), private and numbered.

def _call(public, impl, args: tuple, kwargs: dict):
    result = dispatch_public(public, args, kwargs)
    if result is NOT_OVERRIDDEN:
        return impl(*args, **kwargs)
    return result


def _discovered(args: tuple, kwargs: dict) -> bool:
    """After a failure while no overriding class was known: was an argument of a
    Tensor-like class not seen before the cause (its `__torch_function__` must run)?"""
    if STATE.on:
        return False
    return bool(_tf.overloaded_args(args + tuple(kwargs.values()))) and STATE.on


_ROUTED: set = set()
_COUNTER = [0]


def _parameter_source(signature) -> tuple[str, str, str, str]:
    """(parameter list, call arguments, args tuple, kwargs dict) source for a signature."""
    import inspect
    P = inspect.Parameter
    params, call, args, kwargs, kwonly = [], [], [], [], []
    posonly_done = star_done = False
    kinds = [p.kind for p in signature.parameters.values()]
    for p in signature.parameters.values():
        name = p.name
        default = "" if p.default is P.empty else "=None"
        if p.kind is not P.POSITIONAL_ONLY and not posonly_done and P.POSITIONAL_ONLY in kinds:
            params.append("/")
            posonly_done = True
        if p.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD):
            params.append(name + default)
            call.append(name)
            args.append(name)
        elif p.kind is P.VAR_POSITIONAL:
            params.append("*" + name)
            call.append("*" + name)
            args.append("*" + name)
            star_done = True
        elif p.kind is P.KEYWORD_ONLY:
            if not star_done:
                params.append("*")
                star_done = True
            params.append(name + default)
            kwonly.append(name)
            kwargs.append(f"{name!r}: {name}")
        else:
            params.append("**" + name)
            call.append("**" + name)
            kwargs.append("**" + name)
    if P.POSITIONAL_ONLY in kinds and not posonly_done:
        params.append("/")
    # the fast call passes keyword-only parameters by position (see _flat_copy)
    positional = [c for c in call if not c.startswith("*")] + kwonly + \
        [c for c in call if c.startswith("*") and not c.startswith("**")]
    call = positional + [c for c in call if c.startswith("**")]
    return (", ".join(params), ", ".join(call), "(" + "".join(a + ", " for a in args) + ")",
            "{" + ", ".join(kwargs) + "}")


def _flat_copy(func):
    """A copy of `func` whose keyword-only parameters are positional, after the others
    (the code's own local order: positional, keyword-only, *args, **kwargs): the router
    calls it with every argument by position, the cheapest call CPython makes."""
    code = func.__code__
    flat = code.replace(co_argcount=code.co_argcount + code.co_kwonlyargcount,
                        co_kwonlyargcount=0)
    return _types.FunctionType(flat, func.__globals__, func.__name__, None, func.__closure__)


def _route(func):
    """`func` asks the protocol first. The same object, with the router as its code; a
    closure (whose code cannot be swapped) is replaced by a new function."""
    if id(func) in _ROUTED:
        return func
    signature = _signature_of(func)
    if signature is None or \
            any(p.name.startswith("_ember_tf") for p in signature.parameters.values()):
        return func
    impl = _types.FunctionType(func.__code__, func.__globals__, func.__name__,
                               func.__defaults__, func.__closure__)
    impl.__kwdefaults__ = func.__kwdefaults__
    impl.__dict__.update(func.__dict__)
    impl.__qualname__, impl.__module__, impl.__doc__ = \
        func.__qualname__, func.__module__, func.__doc__
    _COUNTER[0] += 1
    n = _COUNTER[0]
    params, call, args, kwargs = _parameter_source(signature)
    source = (f"def _ember_routed({params}):\n"
              f"    if _ember_tf_state.on:\n"
              f"        return _ember_tf_call(_ember_tf_public_{n}, _ember_tf_impl_{n}, "
              f"{args}, {kwargs})\n"
              f"    try:\n"
              f"        return _ember_tf_fast_{n}({call})\n"
              f"    except Exception:\n"
              f"        if _ember_tf_discovered({args}, {kwargs}):\n"
              f"            return _ember_tf_call(_ember_tf_public_{n}, _ember_tf_impl_{n}, "
              f"{args}, {kwargs})\n"
              f"        raise\n")
    scratch: dict = {}
    exec(compile(source, f"<ember routing {func.__qualname__}>", "exec"), scratch)
    code = scratch["_ember_routed"].__code__.replace(co_name=func.__name__,
                                                       co_qualname=func.__qualname__)
    defaults, kwdefaults = func.__defaults__, func.__kwdefaults__
    if func.__code__.co_freevars:
        module_globals = {"__name__": func.__module__, "__builtins__": __builtins__}
        routed = _types.FunctionType(code, module_globals, func.__name__, defaults)
        routed.__qualname__, routed.__module__, routed.__doc__ = \
            func.__qualname__, func.__module__, func.__doc__
        routed.__dict__.update(func.__dict__)
        func = routed
    else:
        module_globals = func.__globals__
        func.__code__ = code
        func.__defaults__ = defaults
    func.__kwdefaults__ = kwdefaults
    module_globals.setdefault("_ember_tf_state", STATE)
    module_globals.setdefault("_ember_tf_call", _call)
    module_globals.setdefault("_ember_tf_discovered", _discovered)
    module_globals[f"_ember_tf_public_{n}"] = func
    module_globals[f"_ember_tf_impl_{n}"] = impl
    module_globals[f"_ember_tf_fast_{n}"] = _flat_copy(impl)
    func.__wrapped__ = impl
    _ROUTED.add(id(func))
    return func


def _signature_of(impl):
    import inspect
    try:
        return inspect.signature(impl, follow_wrapped=False)
    except (TypeError, ValueError):
        return None


def route_functions(namespace: dict, skip=frozenset(), mode_only=frozenset()) -> None:
    """Route every public function of a module namespace (dict), in place. Those in
    `mode_only` (factories: no argument can be a Tensor-like) are routed only while a
    TorchFunctionMode is active (a routed copy takes their place), so plain creation
    calls pay nothing."""
    for name, value in list(namespace.items()):
        if name.startswith("_") or name in skip or type(value) is not _types.FunctionType:
            continue
        if name in mode_only:
            copy = _types.FunctionType(value.__code__, value.__globals__, value.__name__,
                                       value.__defaults__, value.__closure__)
            copy.__kwdefaults__ = value.__kwdefaults__
            copy.__dict__.update(value.__dict__)
            copy.__qualname__, copy.__module__, copy.__doc__ = \
                value.__qualname__, value.__module__, value.__doc__
            _MODE_ONLY.append((namespace, name, value, _route(copy)))
        else:
            namespace[name] = _route(value)


_MODE_ONLY: list = []                  # (namespace, name, plain function, routed copy)
