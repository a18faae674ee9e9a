"""The rest of torch.jit's user API over ember.jit.trace's GraphModules (frontend/jit.py):
save/load in ember's own format, trace_module, freeze, optimize_for_inference, the
ScriptModule/ScriptFunction types for isinstance checks, fork/wait, jit.isinstance, the
Attribute annotation, and the fuser switches code sets.

ember has no TorchScript: a "script module" here is what ember.jit.trace made (or
ember.jit.load loaded), and it runs as Python (ember.compile compiles it)."""
from __future__ import annotations

import collections.abc
import contextlib
import copy
import typing

from .jit import trace as _trace
from .nn.modules.module import Module

_MARK = "_ember_jit_kind"     # "module" / "function" on what trace and load return


class _ScriptType(type):
    def __instancecheck__(cls, obj):
        return getattr(obj, _MARK, None) == cls._kind


class ScriptModule(metaclass=_ScriptType):
    """isinstance(m, ember.jit.ScriptModule): m came from ember.jit.trace(module),
    trace_module, freeze or ember.jit.load."""
    _kind = "module"


class ScriptFunction(metaclass=_ScriptType):
    """isinstance(f, ember.jit.ScriptFunction): f came from ember.jit.trace(function)."""
    _kind = "function"


RecursiveScriptModule = TopLevelTracedModule = TracedModule = ScriptModule


def trace(fn_or_module, example_inputs=None, optimize=None, check_trace: bool = False,
          check_inputs=None, check_tolerance: float = 1e-5, strict: bool = True,
          _force_outplace: bool = False, _module_class=None, _compilation_unit=None,
          example_kwarg_inputs: dict | None = None, _store_inputs: bool = True):
    """ember.jit.trace (frontend/jit.py) with torch.jit.trace's signature, its result
    marked as torch marks its ScriptModule/ScriptFunction. `example_kwarg_inputs` are
    passed by forward's parameter order; `strict`, `optimize` and the TorchScript
    options change nothing (ember's trace accepts dict and list outputs either way)."""
    if example_inputs is None and example_kwarg_inputs is not None:
        example_inputs = _by_parameter_order(fn_or_module, example_kwarg_inputs)
    if example_inputs is None:
        raise ValueError("ember.jit.trace: give example_inputs or example_kwarg_inputs")
    out = _trace(fn_or_module, example_inputs, check_trace=check_trace)
    setattr(out, _MARK, "module" if isinstance(fn_or_module, Module) else "function")
    return out


def _by_parameter_order(fn, kwargs: dict) -> tuple:
    import inspect
    target = fn.forward if isinstance(fn, Module) else fn
    names = [name for name in inspect.signature(target).parameters if name in kwargs]
    if len(names) != len(kwargs):
        unknown = sorted(set(kwargs) - set(names))
        raise TypeError(f"ember.jit.trace: example_kwarg_inputs {unknown} are not "
                        "parameters of the traced function")
    return tuple(kwargs[name] for name in names)


def trace_module(mod, inputs: dict, **kwargs):
    """Trace the methods named in `inputs` ({name: example inputs}); 'forward' is the
    module's call, any other traced method becomes an attribute of the result."""
    if "forward" in inputs:
        out = trace(mod, inputs["forward"], **kwargs)
    else:
        out = copy.deepcopy(mod)
        setattr(out, _MARK, "module")
    for name, example in inputs.items():
        if name != "forward":
            traced = _trace(getattr(mod, name), example,
                            check_trace=kwargs.get("check_trace", False))
            object.__setattr__(out, name, traced)
    return out


_FORMAT_KEY = "ember.jit"


def save(m, f, _extra_files=None) -> None:
    """Write a traced module (or any picklable module) and `_extra_files` {name: str} to `f`
    (a path or binary file) in ember.save's format; ember.jit.load reads it back."""
    from .serialization import save as save_object
    extra = {name: (value if isinstance(value, (str, bytes)) else str(value))
             for name, value in (_extra_files or {}).items()}
    save_object({_FORMAT_KEY: m, "extra_files": extra}, f)


def load(f, map_location=None, _extra_files=None):
    """Read what ember.jit.save wrote; `_extra_files`' keys are filled with the saved
    contents, as torch.jit.load does. The file holds pickled code: load only trusted files
    (torch.jit.load likewise runs the file's code)."""
    from .serialization import load as load_object
    record = load_object(f, map_location=map_location, weights_only=False)
    if not isinstance(record, dict) or _FORMAT_KEY not in record:
        raise ValueError("ember.jit.load: the file was not written by ember.jit.save")
    if _extra_files is not None:
        for name in _extra_files:
            value = record["extra_files"].get(name, "")     # bytes, as torch gives them
            _extra_files[name] = value.encode() if isinstance(value, str) else value
    module = record[_FORMAT_KEY]
    if isinstance(module, Module) and getattr(module, _MARK, None) is None:
        setattr(module, _MARK, "module")
    return module


def freeze(mod, preserved_attrs=None, optimize_numerics: bool = True):
    """A copy of an eval-mode module whose parameters are constants (requires_grad=False),
    as torch.jit.freeze inlines them."""
    if mod.training:
        raise RuntimeError("Freezing is currently only implemented for modules in eval mode. "
                           "Please call .eval() on your module before freezing.")
    frozen = copy.deepcopy(mod)
    for parameter in frozen.parameters():
        parameter.requires_grad_(False)
    setattr(frozen, _MARK, "module")
    return frozen


def optimize_for_inference(mod, other_methods=None):
    """freeze(mod.eval()) unless mod is frozen already (torch.jit.optimize_for_inference)."""
    if any(p.requires_grad for p in mod.parameters()) or mod.training:
        return freeze(mod.eval())
    return mod


def run_frozen_optimizations(mod, optimize_numerics: bool = True, preserved_methods=None):
    """Nothing further to do on a frozen ember module (torch folds constants here)."""
    return None


def fork(func, *args, **kwargs):
    """Runs `func(*args, **kwargs)` now and returns a completed Future (torch.jit.fork runs
    it asynchronously only inside TorchScript)."""
    from ..futures import Future
    future = Future()
    try:
        future.set_result(func(*args, **kwargs))
    except Exception as error:  # noqa: BLE001 - wait() re-raises it, as torch's future does
        future.set_exception(error)
    return future


def wait(future):
    return future.wait()


class Attribute(typing.NamedTuple):
    """torch.jit.Attribute(value, type): TorchScript's attribute annotation."""
    value: typing.Any
    type: typing.Any


def interface(obj):
    """Decorator: a TorchScript interface; eagerly the class as written."""
    return obj


def script_method(fn):
    return fn


class Error(RuntimeError):
    """torch.jit.Error: raised by TorchScript's `raise` statements."""


def jit_isinstance(obj, target_type) -> bool:
    """torch.jit.isinstance: checks containers' element types too (List[int], Dict[str,
    Tensor], Optional[T], Tuple[...])."""
    origin, args = typing.get_origin(target_type), typing.get_args(target_type)
    if origin is None:
        return target_type is typing.Any or isinstance(obj, target_type)
    if origin is typing.Union:
        return any(jit_isinstance(obj, arg) for arg in args)
    if origin in (list, collections.abc.Sequence) and isinstance(obj, list):
        return not args or all(jit_isinstance(item, args[0]) for item in obj)
    if origin is tuple and isinstance(obj, tuple):
        return not args or (len(args) == len(obj) and
                            all(jit_isinstance(item, arg) for item, arg in zip(obj, args)))
    if origin is dict and isinstance(obj, dict):
        return not args or all(jit_isinstance(k, args[0]) and jit_isinstance(v, args[1])
                               for k, v in obj.items())
    return False


# the fuser switches (ember.compile does its own fusion; these keep the settings code reads)
_FUSION = {"strategy": [("STATIC", 2), ("DYNAMIC", 10)], "onednn": False}


def set_fusion_strategy(strategy: list) -> list:
    """Sets the strategy and returns the previous one."""
    previous, _FUSION["strategy"] = _FUSION["strategy"], list(strategy)
    return previous


def enable_onednn_fusion(enabled: bool) -> None:
    _FUSION["onednn"] = bool(enabled)


def onednn_fusion_enabled() -> bool:
    return _FUSION["onednn"]


@contextlib.contextmanager
def optimized_execution(should_optimize: bool):
    yield


@contextlib.contextmanager
def fuser(name: str):
    yield
