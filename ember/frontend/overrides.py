"""ember.overrides: torch.overrides' API over ember's `__torch_function__` protocol.

The protocol itself is ir/torch_function.py (the check) and frontend/torch_function.py
(Tensor's default, subclasses' routing, modes). Here: the helpers library code calls
(`has_torch_function*`, `handle_torch_function`, `wrap_torch_function`), the tables
(`get_overridable_functions`, `get_ignored_functions`, `get_testing_overrides`), and
`TorchFunctionMode`.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import types as _types

from ..ir import torch_function as _tf
from ..ir.registry import OpDef
from ..ir.torch_function import STATE
from .tensor import Tensor
from .torch_function import _ORIGINALS, _build_wrappers, _nowrap_functions

__all__ = ["get_ignored_functions", "get_overridable_functions", "get_testing_overrides",
           "handle_torch_function", "has_torch_function", "resolve_name", "is_tensor_like",
           "is_tensor_method_or_property", "wrap_torch_function", "enable_reentrant_dispatch",
           "TorchFunctionMode", "BaseTorchFunctionMode", "has_torch_function_unary",
           "has_torch_function_variadic", "get_default_nowrap_functions"]


# --- checks and dispatch -------------------------------------------------------------------
def has_torch_function(relevant_args) -> bool:
    """Whether a call with these arguments goes to `__torch_function__` (a mode counts)."""
    return _tf.has_override(tuple(relevant_args))


def has_torch_function_unary(obj) -> bool:
    return _tf.has_override((obj,))


def has_torch_function_variadic(*args) -> bool:
    return _tf.has_override(args)


def _get_overloaded_args(relevant_args, get_type_fn=None) -> list:
    """The arguments whose `__torch_function__` would be called, in calling order."""
    if get_type_fn is None:
        return _tf.overloaded_args(tuple(relevant_args))
    found: list = []
    for arg in relevant_args:
        cls = get_type_fn(arg)
        if not (hasattr(cls, "__torch_function__") and cls not in _tf.PLAIN_TYPES) or \
                any(get_type_fn(a) is cls for a in found):
            continue
        index = next((i for i, old in enumerate(found) if issubclass(cls, get_type_fn(old))),
                     len(found))
        found.insert(index, arg)
    return found


def handle_torch_function(public_api, relevant_args, *args, **kwargs):
    """torch.overrides.handle_torch_function: the modes, then the overriding arguments'
    `__torch_function__(public_api, types, args, kwargs)`; TypeError when all decline."""
    found = _tf.overloaded_args(tuple(relevant_args)) if STATE.level == _tf.ENABLED else []
    return _tf.handle(public_api, found, args, kwargs)


def wrap_torch_function(dispatcher):
    """Decorator: `dispatcher(*args, **kwargs)` names the relevant arguments; the wrapped
    function dispatches through `__torch_function__` when one of them overrides."""
    def inner(func):
        @functools.wraps(func)
        def wrapped(*args, **kwargs):
            relevant_args = dispatcher(*args, **kwargs)
            if has_torch_function(relevant_args):
                return handle_torch_function(wrapped, relevant_args, *args, **kwargs)
            return func(*args, **kwargs)
        return wrapped
    return inner


def is_tensor_like(inp) -> bool:
    """A Tensor, or any value whose type defines `__torch_function__`."""
    return type(inp) is Tensor or hasattr(inp, "__torch_function__")


def is_tensor_method_or_property(func) -> bool:
    """`ember.Tensor.add`, `ember.Tensor.shape.__get__`, ...: called with the tensor first."""
    return func in _tensor_methods() or getattr(func, "__name__", None) == "__get__"


def resolve_name(f):
    """`'ember.add'` for `ember.add`: the name a function is reached by, or None."""
    try:
        return _tf.public_name(f)
    except Exception:                                    # noqa: BLE001 - any odd object
        return None


def get_default_nowrap_functions() -> set:
    """Functions whose results Tensor.__torch_function__ returns without converting."""
    return set(_nowrap_functions())


@contextlib.contextmanager
def enable_reentrant_dispatch():
    """torch's switch for re-entering its C++ dispatcher; ember has one Python dispatcher."""
    yield


# --- modes ---------------------------------------------------------------------------------
class TorchFunctionMode:
    """A context manager whose `__torch_function__(func, types, args, kwargs)` sees every
    public call made inside it (with itself popped while it runs); modes stack."""

    inner: "TorchFunctionMode"

    def __init__(self):
        pass

    def __torch_function__(self, func, types, args=(), kwargs=None):
        raise NotImplementedError()

    def __enter__(self):
        _push_mode(self)
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        _pop_mode()

    @classmethod
    def push(cls, *args, **kwargs):
        import warnings
        warnings.warn("`Mode.push()` is no longer necessary and can be replaced with just "
                      "`with Mode()`")
        return cls(*args, **kwargs)


class BaseTorchFunctionMode(TorchFunctionMode):
    """A mode that runs every call unchanged (a base for modes overriding a few)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if kwargs is None:
            kwargs = {}
        return func(*args, **kwargs)


def _push_mode(mode) -> None:
    _tf.push_mode(mode)


def _pop_mode():
    return _tf.pop_mode()


@contextlib.contextmanager
def _pop_mode_temporarily():
    with _tf.popped_mode() as mode:
        yield mode


def _get_current_function_mode():
    return STATE.modes[-1] if STATE.modes else None


def _get_current_function_mode_stack() -> list:
    return list(STATE.modes)


def _is_torch_function_mode_enabled() -> bool:
    return bool(STATE.modes) and STATE.level != _tf.ALL_DISABLED


# --- the tables ----------------------------------------------------------------------------
_UTILITY_NAMES = frozenset({
    "is_tensor", "is_storage", "typename", "promote_types", "can_cast", "save", "load",
    "save_weights", "load_weights", "manual_seed", "seed", "initial_seed",
    "use_deterministic_algorithms", "clear_autocast_cache", "compile", "vmap",
    "broadcast_shapes", "from_numpy", "from_dlpack", "to_dlpack", "frombuffer",
    "while_loop", "cond", "result_type"})


# creation functions: no argument is a tensor, so only a mode can claim their calls
FACTORY_NAMES = frozenset({
    "tensor", "as_tensor", "asarray", "scalar_tensor", "zeros", "ones", "empty", "full",
    "arange", "range", "linspace", "logspace", "eye", "rand", "randn", "randint", "randperm",
    "empty_strided", "empty_permuted", "tril_indices", "triu_indices", "bartlett_window",
    "blackman_window", "hamming_window", "hann_window", "kaiser_window"})


def is_utility(name: str) -> bool:
    """ember functions that are not tensor functions (settings, I/O, seeds): never routed,
    as torch leaves them out of its protocol."""
    return name in _UTILITY_NAMES or name.startswith(("get_", "set_", "are_", "sym_")) or \
        (name.startswith("is_") and name.endswith("_enabled"))


def _namespaces() -> dict:
    import sys
    root = sys.modules["ember"]
    from ..nn import functional
    return {"ember": root, "ember.nn.functional": functional, "ember.linalg": root.linalg,
            "ember.fft": root.fft, "ember.special": root.special}


def _public_functions(module, name: str):
    for attr in dir(module):
        if attr.startswith("_"):
            continue
        try:
            value = getattr(module, attr)
        except AttributeError:
            continue
        if isinstance(value, OpDef) or type(value) is _types.FunctionType:
            yield attr, value


def _dispatches(attr: str, value) -> bool:
    """Registry ops and the routed Python functions; the factories (routed only under
    a mode), utilities and lazily loaded tools (ember.compile, sparse_coo_tensor) not."""
    from .torch_function import _ROUTED
    return not is_utility(attr) and attr not in FACTORY_NAMES and \
        (isinstance(value, OpDef) or id(value) in _ROUTED)


@functools.lru_cache(maxsize=None)
def _tables() -> tuple:
    overridable: dict = {}
    ignored: list = []
    for name, module in _namespaces().items():
        found = []
        for attr, value in _public_functions(module, name):
            (found if _dispatches(attr, value) else ignored).append(value)
        overridable[module] = found
    _build_wrappers()
    methods = []
    for name, original in _ORIGINALS.items():
        if isinstance(original, (property, _types.MemberDescriptorType,
                                 _types.GetSetDescriptorType)):
            methods.append(original.__get__)
        else:
            methods.append(original)
    overridable[Tensor] = methods
    ignored.extend(vars(Tensor)[n] for n in ("__new__", "__init_subclass__", "as_subclass",
                                             "_make_subclass") if n in vars(Tensor))
    return overridable, ignored


def _tensor_methods() -> set:
    return set(_tables()[0][Tensor])


def get_overridable_functions() -> dict:
    """{namespace: [functions]}: every function that dispatches through the protocol."""
    return {k: list(v) for k, v in _tables()[0].items()}


def get_ignored_functions() -> set:
    """Public functions that never dispatch (settings, I/O, construction)."""
    return set(_tables()[1])


def _schema_signature(op, first: str) -> inspect.Signature:
    """A registry op's schema as a Python signature (a keyword name gets a trailing _)."""
    import keyword
    params = []
    for i, arg in enumerate(op.schema.args):
        kind = (inspect.Parameter.KEYWORD_ONLY if arg.kwarg_only
                else inspect.Parameter.POSITIONAL_OR_KEYWORD)
        name = first if i == 0 and arg.name == "self" else arg.name
        if keyword.iskeyword(name):
            name += "_"
        default = arg.default if arg.has_default else inspect.Parameter.empty
        params.append(inspect.Parameter(name, kind, default=default))
    return inspect.Signature(params)


def _signature(func):
    if isinstance(func, OpDef):
        return _schema_signature(func, "input")
    op = _op_of_method(func)
    if op is not None:                     # a generated Tensor method: the op's schema
        return _schema_signature(op, "self")
    if getattr(func, "__name__", None) == "__get__":
        return inspect.Signature([inspect.Parameter(
            "self", inspect.Parameter.POSITIONAL_OR_KEYWORD)])
    try:
        return inspect.signature(func)
    except (TypeError, ValueError):
        return None


def _op_of_method(func):
    for cell in getattr(func, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:
            continue
        if isinstance(value, OpDef):
            return value
    return None


def get_testing_overrides() -> dict:
    """{function: a dummy with the same signature returning -1}, for every overridable
    function: what a test's Tensor-like class answers from `__torch_function__`."""
    result = {}
    for funcs in _tables()[0].values():
        for func in funcs:
            signature = _signature(func)

            def override(*args, **kwargs):
                return -1
            if signature is not None:
                override.__signature__ = signature
            override.__name__ = getattr(func, "__name__", "override")
            result[func] = override
    return result
