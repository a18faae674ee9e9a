"""Run PyTorch's older nn test dicts (common_nn) against ember.nn.

`torch.testing._internal.common_nn` holds three lists of test dicts that PyTorch's own
test_nn.py turns into tests: `module_tests`, `get_new_module_tests()` (modules and
functional forms, each dict a module_name or a constructor with constructor_args, an
input_size or input_fn, a desc or fullname, ...) and `criterion_tests` (losses, with a
target_size or target_fn). Each dict is read through PyTorch's own test classes
(NewModuleTest / CriterionTest give the constructor, its arguments, the input and target)
and checked against ember as a user porting the code would write it:

- the module: `module_name` / a torch.nn class -> the ember.nn class of the same name; a
  constructor lambda is run once under torch with its torch.nn module inits recorded, and
  the module it returns is rebuilt as ember's from the same (converted) arguments; a
  functional form (`wrap_functional(lambda i: F.x(i, ...))`) runs the same lambda with
  `torch`, `F` and `nn` naming ember's and the tensors it closes over converted;
- under the dict's default dtype (float64 where it names none, as test_nn.py sets it;
  ember's default dtype set alike):
  repr(module) equal to torch's, state_dict keys and parameter dtypes equal, torch's
  state loaded into ember's;
- the forward outputs (same input, same target and extra arguments for criterions);
- float64 gradients of the inputs and of every parameter through a fixed random
  cotangent, and, where the dict checks gradgrad, the gradients of those gradients;
- the dict's reference_fn (its formula in torch ops) run with `torch` naming ember, on
  ember's inputs, parameters and module, gives what it gives on torch's;
- `check_inplace` dicts: the module built with `inplace=True` gives the same output;
- modules: the inputs made non-contiguous give the same outputs (PyTorch's test_noncontig);
  where the dict pickles the module, `ember.save`/`ember.load` gives one of the same outputs;
- `.float()` on both and the forward in float32 (criterions: float32 inputs and targets),
  outputs compared at float32 tolerance and parameter dtypes checked.

    python tools/nntests.py                          # every dict: a pass/fail table
    python tools/nntests.py test_Conv2d test_ELU -v  # named entries (torch's test names)
    python tools/nntests.py --json out.json          # the per-entry record, as data
    python tools/nntests.py --write-expected tests/nn/nntests_expected_failures.txt
    python tools/nntests.py --docs docs/nn.md        # rewrite the generated docs section

Needs torch (the test oracle) and expecttest; ember itself never imports torch.
"""
from __future__ import annotations

import argparse
import json
import sys
import traceback
import types
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import moduleinfo  # noqa: E402 - constructor recording, gradient comparison
import opinfo  # noqa: E402 - the shared torch -> ember conversion and comparison

warnings.filterwarnings("ignore")

# modules whose training forward draws random numbers (torch's generator and ember's
# differ): both run in eval mode, where the forward is deterministic
RANDOM_IN_TRAINING = {"RReLU"}


def _ember():
    import ember  # noqa: PLC0415 - imported late so --help works without it
    return ember


# --- the dicts ----------------------------------------------------------------------
_CACHE: dict = {}


def entries(names=None) -> dict:
    """{test name: (kind, params)}, kind 'module' or 'criterion', named as torch's
    test_nn.py names its tests (`test_` + fullname, or + constructor name + `_desc`)."""
    if "all" not in _CACHE:
        import torch
        from torch.testing._internal import common_nn
        state = torch.random.get_rng_state()
        module_dicts = list(common_nn.module_tests) + common_nn.get_new_module_tests()
        torch.random.set_rng_state(state)
        out = {}
        for kind, dicts in (("module", module_dicts),
                            ("criterion", common_nn.criterion_tests)):
            for params in dicts:
                key = _name(params)
                while key in out:              # a repeated name keeps both entries
                    key += "_"
                out[key] = (kind, dict(params))
        _CACHE["all"] = out
    return {k: v for k, v in _CACHE["all"].items() if not names or k in names}


def _name(params) -> str:
    if params.get("fullname"):
        return "test_" + params["fullname"]
    ctor = params.get("constructor")
    base = params.get("module_name") or getattr(ctor, "__name__", "module")
    return "test_" + base + (("_" + params["desc"]) if params.get("desc") else "")


def _torch_test(kind, params):
    """PyTorch's own test object for the dict: it makes the arguments, input and target."""
    import torch
    from torch.testing._internal import common_nn
    params = dict(params)
    params.setdefault("default_dtype", torch.float64)     # test_nn.py's global default
    if "constructor" not in params:
        params["constructor"] = getattr(torch.nn, params.pop("module_name"))
    params.pop("decorator", None)
    cls = common_nn.CriterionTest if kind == "criterion" else common_nn.NewModuleTest
    return cls(**params)


# --- the ember twin of a torch module ------------------------------------------------
def ember_twin(t_mod):
    """The ember module a user would write for torch module `t_mod` (made just now, with
    its inits recorded), or raise with the reason."""
    ember = _ember()
    if type(t_mod).__name__ == "FunctionalModule" and \
            type(t_mod).__module__.startswith("torch.testing"):
        return _functional_twin(t_mod)
    if id(t_mod) in moduleinfo._MADE:
        return moduleinfo.to_ember(t_mod)
    cls = getattr(ember.nn, type(t_mod).__name__, None)
    if cls is None:
        raise LookupError(f"ember.nn has no {type(t_mod).__name__}")
    return cls()


def _functional_twin(t_mod):
    """wrap_functional's module: the wrapped function rebound to ember."""
    ember = _ember()
    fwd = type(t_mod).forward
    cells = dict(zip(fwd.__code__.co_freevars,
                     (c.cell_contents for c in fwd.__closure__ or ())))
    fn = rebound(cells["fn"])
    kwargs = moduleinfo.to_ember(cells.get("kwargs", {}))

    class FunctionalModule(ember.nn.Module):
        def forward(self, *args):
            return fn(*args, **kwargs)

    return FunctionalModule()


def rebound(fn):
    """The same Python function with `torch`, `F` and `nn` naming ember's and the values
    it closes over (tensors, torch functions, nested lambdas) converted; the helper
    functions of its module it calls (nllloss_reference) are rebound alike."""
    if not _test_function(fn):
        return moduleinfo.to_ember(fn)        # F.interpolate -> ember's, by name
    cells = None
    if fn.__closure__:
        cells = tuple(types.CellType(_closed_value(c.cell_contents)) for c in fn.__closure__)
    return _retargeted(fn, _ember_scope(fn.__globals__), cells)


def _test_function(fn) -> bool:
    return isinstance(fn, types.FunctionType) and \
        getattr(fn, "__module__", "").startswith("torch.testing")


# id(a test module's globals) -> the same globals naming ember (one per module, shared by
# its rebound functions so that they call each other's rebound versions)
_SCOPES: dict[int, dict] = {}


def _ember_scope(globs) -> dict:
    if id(globs) not in _SCOPES:
        ember = _ember()
        scope = dict(globs)
        scope.update(torch=ember, F=ember.nn.functional, nn=ember.nn)
        _SCOPES[id(globs)] = scope
        for name, v in globs.items():
            if _test_function(v) and v.__globals__ is globs and not v.__closure__:
                scope[name] = _retargeted(v, scope, None)
        for name, v in globs.items():        # loss_reference_fns: a table of them
            if isinstance(v, dict) and v and all(
                    _test_function(getattr(f, "func", f)) for f in v.values()):
                scope[name] = {k: _in_scope(f, scope) for k, f in v.items()}
    return _SCOPES[id(globs)]


def _in_scope(f, scope):
    """A table's function (or functools.partial of one) as its rebound twin."""
    import functools
    if isinstance(f, functools.partial):
        return functools.partial(_in_scope(f.func, scope), *f.args, **f.keywords)
    return scope.get(f.__name__, f) if not f.__closure__ else f


def _retargeted(fn, scope, cells):
    defaults = None if fn.__defaults__ is None else tuple(
        _closed_value(v) for v in fn.__defaults__)      # `lambda f=input_fn: f()`
    twin = types.FunctionType(fn.__code__, scope, fn.__name__, defaults, cells)
    twin.__kwdefaults__ = moduleinfo.to_ember(fn.__kwdefaults__)
    return twin


def _closed_value(v):
    if isinstance(v, types.FunctionType):
        return rebound(v)
    return moduleinfo.to_ember(v)


# --- one dict -------------------------------------------------------------------------
class _Pair:
    def __init__(self, torch_mod, ember_mod):
        self.torch, self.ember = torch_mod, ember_mod


def _default_dtype(test):
    import torch
    return test.default_dtype or torch.get_default_dtype()


class _default_dtypes:
    """torch's and ember's default dtype set to the dict's for the block."""

    def __init__(self, dtype):
        self.dtype = dtype

    def __enter__(self):
        import torch
        ember = _ember()
        self.saved = (torch.get_default_dtype(), ember.get_default_dtype())
        torch.set_default_dtype(self.dtype)
        ember.set_default_dtype(opinfo.to_ember(self.dtype))

    def __exit__(self, *exc):
        import torch
        torch.set_default_dtype(self.saved[0])
        _ember().set_default_dtype(self.saved[1])


def check(kind, params) -> tuple[int, list[str]]:
    """(checks passed, failures) for one dict."""
    import torch
    test = _torch_test(kind, params)
    torch.manual_seed(0)
    with _default_dtypes(_default_dtype(test)):
        moduleinfo._MADE.clear()
        with moduleinfo._recording_module_inits():
            args = test.constructor_args
            t_mod = test.constructor(*args)
        try:
            e_mod = ember_twin(t_mod)
        except Exception as exc:  # noqa: BLE001
            return 0, [f"construct: {moduleinfo._exc_line(exc)}"]
        finally:
            moduleinfo._MADE.clear()
        return _check_pair(test, kind, _Pair(t_mod, e_mod))


def _check_pair(test, kind, pair):
    passed, failures = 0, []
    if type(pair.torch).__name__ in RANDOM_IN_TRAINING:
        pair.torch.eval()
        pair.ember.eval()
    if repr(pair.ember) != repr(pair.torch):
        return passed, [f"repr {moduleinfo._first_diff_line(repr(pair.ember), repr(pair.torch))}"]
    reason = _dtype_reason(pair) or moduleinfo._state_reason(pair)
    if reason:
        return passed, [reason]
    passed += 1
    t_inputs = test._get_input()
    t_inputs = t_inputs if isinstance(t_inputs, tuple) else (t_inputs,)
    extra = (test._get_target(),) + tuple(test.extra_args) if kind == "criterion" else ()
    mapping = {}
    e_inputs = tuple(_grad_leaf(v, mapping) for v in t_inputs)
    e_extra = tuple(opinfo.to_ember(v) for v in extra)
    dtype_name = str(_default_dtype(test)).split(".")[-1]
    expected = pair.torch(*t_inputs, *extra)
    try:
        actual = pair.ember(*e_inputs, *e_extra)
    except Exception as exc:  # noqa: BLE001
        return passed, [f"forward: {moduleinfo._exc_line(exc)}"]
    reason = opinfo.compare(moduleinfo._plain(actual), moduleinfo._plain(expected), dtype_name)
    if reason:
        return passed, [f"forward {reason}"]
    passed += 1
    if dtype_name == "float64" and not getattr(test, "check_forward_only", False):
        try:
            reason = moduleinfo._grads_reason(
                pair, mapping, moduleinfo._plain(actual), moduleinfo._plain(expected),
                gradgrad=test.check_gradgrad)
        except Exception as exc:  # noqa: BLE001
            reason = f"grad: {moduleinfo._exc_line(exc)}"
        if reason:
            failures.append(reason)
        else:
            passed += 1
    for name, extra_check in (("gradcheck", _gradcheck_reason),
                              ("reference_fn", _reference_reason),
                              ("noncontiguous", _noncontig_reason),
                              ("pickle", _pickle_reason), ("inplace", _inplace_reason),
                              ("float32", _float_reason)):
        try:
            reason = extra_check(test, kind, pair, t_inputs, expected)
        except Exception as exc:  # noqa: BLE001
            reason = f"{name}: {moduleinfo._exc_line(exc)}"
        if reason:
            failures.append(reason)
        elif reason is None:
            passed += 1
    return passed, failures


def _grad_leaf(v, mapping):
    """One ember leaf per torch input that requires grad, so gradients can be paired."""
    import torch
    if isinstance(v, torch.Tensor) and v.requires_grad:
        mapping.setdefault(id(v), (v, opinfo.to_ember(v, requires_grad=True)))
        return mapping[id(v)][1]
    if isinstance(v, (list, tuple)):
        return type(v)(_grad_leaf(x, mapping) for x in v)
    return opinfo.to_ember(v)


def _dtype_reason(pair):
    """Parameters and buffers made in the dtype torch makes them (the default dtype)."""
    e_state = pair.ember.state_dict()
    for name, t in pair.torch.state_dict().items():
        e = e_state.get(name)
        if e is not None and str(e.dtype).split(".")[-1] != str(t.dtype).split(".")[-1]:
            return f"{name} made as {e.dtype}, torch {t.dtype} (default dtype)"
    return None


def _inplace_reason(test, kind, pair, t_inputs, expected):
    """`inplace=True` gives the out-of-place output; "" when the dict does not ask."""
    if not getattr(test, "check_inplace", False):
        return ""
    import torch
    with _default_dtypes(_default_dtype(test)):
        moduleinfo._MADE.clear()
        with moduleinfo._recording_module_inits():
            t_ip = test.constructor(*test.constructor_args, inplace=True)
        e_ip = ember_twin(t_ip)
        moduleinfo._MADE.clear()
    x = opinfo.to_ember(t_inputs[0].detach().clone())
    out = e_ip(x)
    with torch.no_grad():
        want = pair.torch(t_inputs[0].detach().clone())
    reason = opinfo.compare(out, want, str(want.dtype).split(".")[-1])
    return f"inplace=True: forward {reason}" if reason else None


# "full": the dict's own gradcheck settings; "fast": fast_mode (one random projection per
# output and input: CI's setting); "off": none
GRADCHECK_MODE = {"mode": "full"}


def _gradcheck_reason(test, kind, pair, t_inputs, expected):
    """ember.autograd.gradcheck / gradgradcheck on ember's module, called as PyTorch's
    NewModuleTest / CriterionTest call torch's (inputs and parameters together, the dict's
    check_batched_grad, fast mode and forward-AD flags); "" where they do not apply."""
    import torch
    ember = _ember()
    mode = GRADCHECK_MODE["mode"]
    if mode == "off" or getattr(test, "check_forward_only", False) or \
            getattr(test, "has_sparse_gradients", False) or \
            _default_dtype(test) != torch.float64:
        return ""
    leaves = tuple(_fresh_leaf(t) for t in t_inputs)
    extra = ()
    if kind == "criterion":
        extra = (opinfo.to_ember(test._get_target()),) + tuple(
            opinfo.to_ember(a) for a in test.extra_args)
    params = tuple(pair.ember.parameters())
    if not any(getattr(x, "requires_grad", False) for x in leaves + params):
        return ""
    n = len(leaves)

    def fn(*args):
        return pair.ember(*args[:n], *extra)

    fast = True if mode == "fast" else getattr(test, "gradcheck_fast_mode", None)
    batched = getattr(test, "check_batched_grad", True)
    fwd = kind == "module" and getattr(test, "supports_forward_ad", False)
    try:
        ember.autograd.gradcheck(fn, leaves + params, check_batched_grad=batched,
                                 fast_mode=fast, check_forward_ad=fwd)
        if test.check_gradgrad:
            ember.autograd.gradgradcheck(
                fn, leaves + params, check_batched_grad=batched, fast_mode=fast,
                check_fwd_over_rev=getattr(test, "supports_fwgrad_bwgrad", False))
    except Exception as exc:  # noqa: BLE001
        return f"gradcheck: {moduleinfo._exc_line(exc)}"
    return None


def _fresh_leaf(t):
    import torch
    if isinstance(t, torch.Tensor):
        return opinfo.to_ember(t.detach(), requires_grad=False).requires_grad_(
            t.requires_grad) if t.requires_grad else opinfo.to_ember(t.detach())
    return opinfo.to_ember(t)


def _reference_reason(test, kind, pair, t_inputs, expected):
    """The dict's reference_fn (a user's own formula in torch ops) run on ember, with
    `torch` naming ember, computes what it computes on torch; "" without one."""
    import copy
    import torch
    ref = test.reference_fn
    if ref is None:
        return ""
    with _default_dtypes(_default_dtype(test)), torch.no_grad():
        t_ins = copy.deepcopy(tuple(t.detach() if isinstance(t, torch.Tensor) else t
                                    for t in t_inputs))
        e_ins = tuple(opinfo.to_ember(t) for t in t_ins)
        if kind == "criterion":
            target, extra = test._get_target(), tuple(test.extra_args)
            want = ref(*t_ins, target, *extra, pair.torch)
            args = e_ins + (opinfo.to_ember(target),) + tuple(opinfo.to_ember(extra))
            got = rebound(ref)(*args, pair.ember)
        else:
            t_in = t_ins if isinstance(test._get_input(), tuple) else t_ins[0]
            e_in = e_ins if isinstance(test._get_input(), tuple) else e_ins[0]
            want = ref(t_in, [p.detach() for p in pair.torch.parameters()],
                       copy.deepcopy(pair.torch))
            got = rebound(ref)(e_in, [p.detach() for p in pair.ember.parameters()],
                               copy.deepcopy(pair.ember))
    reason = opinfo.compare(moduleinfo._plain(got), moduleinfo._plain(want),
                            str(_default_dtype(test)).split(".")[-1])
    return f"reference_fn on ember: {reason}" if reason else None


def _noncontig_reason(test, kind, pair, t_inputs, expected):
    """The same inputs as non-contiguous tensors (every other element of a wider one)
    give the same outputs and input gradients, as PyTorch's test_noncontig asks; "" for
    criterions and inputs without values."""
    import torch
    ember = _ember()
    if kind == "criterion" or getattr(test, "check_forward_only", False) or not all(
            isinstance(t, torch.Tensor) and t.numel() > 0 for t in t_inputs):
        return ""
    leaves = [opinfo.to_ember(t.detach()) for t in t_inputs]
    strided = []
    for t, leaf in zip(t_inputs, leaves):
        if t.requires_grad:
            leaf.requires_grad_(True)
        wide = ember.stack([leaf, leaf], -1)
        strided.append(wide[..., 0])
    got = pair.ember(*strided)
    with torch.no_grad():
        want = pair.torch(*(t.detach() for t in t_inputs))
    reason = opinfo.compare(moduleinfo._plain(got), moduleinfo._plain(want),
                            str(t_inputs[0].dtype).split(".")[-1]
                            if t_inputs[0].is_floating_point() else "float64")
    return f"noncontiguous input: forward {reason}" if reason else None


def _pickle_reason(test, kind, pair, t_inputs, expected):
    """`ember.save(module)` / `ember.load` gives a module of the same outputs, where the
    dict's module pickles (torch.save / torch.load in PyTorch's test)."""
    import io
    import torch
    ember = _ember()
    if kind == "criterion" or not getattr(test, "should_test_pickle", False):
        return ""
    buf = io.BytesIO()
    ember.save(pair.ember, buf)
    buf.seek(0)
    copy = ember.load(buf, weights_only=False)
    ins = tuple(opinfo.to_ember(t.detach() if isinstance(t, torch.Tensor) else t)
                for t in t_inputs)
    with ember.no_grad():
        got, want = copy(*ins), pair.ember(*ins)
    reason = opinfo.compare(moduleinfo._plain(got), moduleinfo._plain(want), "float64")
    return f"save/load: forward {reason}" if reason else None


def _float_reason(test, kind, pair, t_inputs, expected):
    """PyTorch's tests run `.float()` (modules) or float32 inputs and targets (criterions)
    and the forward again: outputs and parameter dtypes compared."""
    import torch

    def single(t):
        return t.detach().float() if isinstance(t, torch.Tensor) and \
            t.is_floating_point() else t

    ins = tuple(single(t) for t in t_inputs)
    if kind == "criterion":
        ins += (single(test._get_target()),) + tuple(single(a) for a in test.extra_args)
    pair.torch.float()
    pair.ember.float()
    for name, p in pair.ember.named_parameters():
        if str(p.dtype).split(".")[-1] != str(dict(pair.torch.named_parameters())[name].dtype
                                              ).split(".")[-1]:
            return f"float32: .float() leaves {name} {p.dtype}"
    with torch.no_grad():
        want = pair.torch(*ins)
    got = pair.ember(*(opinfo.to_ember(t) for t in ins))
    reason = opinfo.compare(moduleinfo._plain(got), moduleinfo._plain(want), "float32")
    return f"float32: forward {reason}" if reason else None


def check_entry(key, kind, params, native=False) -> dict:
    record = {"name": key, "kind": kind, "passed": 0, "failures": []}
    try:
        record["passed"], record["failures"] = (native_check if native else check)(
            kind, params)
    except _Skipped as why:
        record["skipped"] = str(why)
    except Exception as exc:  # noqa: BLE001 - recorded as the failure
        record["failures"] = [f"torch side: {moduleinfo._exc_line(exc)}"]
    return record


# --- PyTorch's own test code, run with `torch` naming ember ---------------------------
# `--native`: NewModuleTest / CriterionTest themselves (their __call__, test_noncontig,
# _check_gradients, the float()/double() round trip, pickling through save/load, the
# reference_fn comparison) rebuilt with common_nn's globals naming ember, and run on the
# dict made ember's (constructor, arguments, input and target functions rebound). No
# torch result is involved: this is PyTorch's test asking ember for its own invariants.

NATIVE_SPARSE_SKIP = ("PyTorch's check_jacobian (sparse gradients) reads torch's "
                      "numerical-jacobian internals")


class _Skipped(Exception):
    """A dict the mode cannot run (recorded as skipped, with the reason)."""


def native_check(kind, params) -> tuple[int, list[str]]:
    import unittest
    classes = _native_classes()
    cls = classes["CriterionTest"] if kind == "criterion" else classes["NewModuleTest"]
    if params.get("has_sparse_gradients"):
        raise _Skipped(NATIVE_SPARSE_SKIP)
    try:
        test = cls(**_native_params(params))
    except Exception as exc:  # noqa: BLE001
        return 0, [f"native construct: {moduleinfo._exc_line(exc)}"]
    _ember().manual_seed(0)
    try:
        test(_native_case())
    except unittest.SkipTest:
        return 0, []
    except Exception as exc:  # noqa: BLE001
        frames = traceback.extract_tb(exc.__traceback__)
        ours = [f for f in frames if "common_nn" in f.filename] or frames
        where = f"{ours[-1].name}:{ours[-1].lineno}"
        if ours[-1] is not frames[-1]:
            where += f" -> {frames[-1].name}"
        return 0, [f"native: {moduleinfo._exc_line(exc)} (at {where})"]
    return 1, []


def _native_params(params) -> dict:
    """The dict with ember in torch's place: module_name / torch.nn classes as ember.nn
    classes, wrap_functional modules rebuilt over the rebound function, lambdas rebound,
    tensors and dtypes converted."""
    ember = _ember()
    import torch
    out = {"default_dtype": ember.float64}      # test_nn.py's global default
    for key, value in params.items():
        if key == "decorator":
            continue
        if key == "module_name":
            out["constructor"] = getattr(ember.nn, value)
        elif key == "constructor":
            out[key] = _native_constructor(value)
        elif isinstance(value, types.FunctionType):
            out[key] = rebound(value)
        elif key == "default_dtype":
            out[key] = opinfo.to_ember(value)
        elif isinstance(value, (torch.Tensor, tuple, list, dict)) and key != "input_size" \
                and not key.endswith("_size"):
            out[key] = moduleinfo.to_ember(value)
        else:
            out[key] = value
    return out


def _native_constructor(ctor):
    import torch
    ember = _ember()
    if isinstance(ctor, type) and issubclass(ctor, torch.nn.Module):
        if ctor.__name__ == "FunctionalModule" and ctor.__module__.startswith("torch.testing"):
            return _functional_class(ctor)
        return getattr(ember.nn, ctor.__name__)
    return rebound(ctor)


def _functional_class(ctor):
    ember = _ember()
    fwd = ctor.forward
    cells = dict(zip(fwd.__code__.co_freevars,
                     (c.cell_contents for c in fwd.__closure__ or ())))
    fn = rebound(cells["fn"])
    kwargs = moduleinfo.to_ember(cells.get("kwargs", {}))

    class FunctionalModule(ember.nn.Module):
        def forward(self, *args):
            return fn(*args, **kwargs)

    return FunctionalModule


_NATIVE: dict = {}


def _native_classes() -> dict:
    """common_nn's test classes rebuilt over the ember-naming scope."""
    if not _NATIVE:
        from torch.testing._internal import common_nn
        scope = _ember_scope(common_nn.__dict__)
        _native_globals(scope)
        for name in ("TestBase", "ModuleTest", "InputVariableMixin", "NewModuleTest",
                     "CriterionTest", "NNTestCase"):
            cls = getattr(common_nn, name)
            bases = tuple(_NATIVE.get(b.__name__, object) if b.__module__ ==
                          common_nn.__name__ or b.__name__ == "TestCase" else b
                          for b in cls.__bases__)
            _NATIVE[name] = _rebuilt_class(cls, bases, scope)
            scope[name] = _NATIVE[name]
    return _NATIVE


def _rebuilt_class(cls, bases, scope):
    """`cls` with every method's code run in `scope`; `super()` cells name the new class."""
    class_cells, ns = [], {}
    for key, value in vars(cls).items():
        if key in ("__dict__", "__weakref__"):
            continue
        if isinstance(value, property):
            value = property(*(_rebuilt_method(f, scope, class_cells) if f else None
                               for f in (value.fget, value.fset, value.fdel)))
        elif isinstance(value, types.FunctionType):
            value = _rebuilt_method(value, scope, class_cells)
        ns[key] = value
    new = type(cls.__name__, bases, ns)
    for cell in class_cells:
        cell.cell_contents = new
    return new


def _rebuilt_method(fn, scope, class_cells):
    cells = []
    for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
        if name == "__class__":
            fresh = types.CellType()
            class_cells.append(fresh)
            cells.append(fresh)
        else:
            cells.append(types.CellType(_closed_value(cell.cell_contents)))
    return _retargeted(fn, scope, tuple(cells) or None)


def _native_globals(scope) -> None:
    """The names common_nn imports from torch's test utilities, as ember's."""
    import contextlib
    ember = _ember()

    @contextlib.contextmanager
    def set_default_dtype(dtype):
        saved = ember.get_default_dtype()
        ember.set_default_dtype(dtype)
        try:
            yield
        finally:
            ember.set_default_dtype(saved)

    @contextlib.contextmanager
    def freeze_rng_state():
        state = ember.get_rng_state()
        try:
            yield
        finally:
            ember.set_rng_state(state)

    def gradcheck(*args, **kwargs):
        if GRADCHECK_MODE["mode"] == "fast":
            kwargs["fast_mode"] = True
        return ember.autograd.gradcheck(*args, **kwargs)

    def gradgradcheck(*args, **kwargs):
        if GRADCHECK_MODE["mode"] == "fast":
            kwargs["fast_mode"] = True
        return ember.autograd.gradgradcheck(*args, **kwargs)

    scope.update(set_default_dtype=set_default_dtype, freeze_rng_state=freeze_rng_state,
                 gradcheck=gradcheck, gradgradcheck=gradgradcheck, TEST_CUDA=False,
                 Variable=lambda t, *a, **k: t, _Reduction=ember.nn._reduction)


def _native_case():
    """A unittest.TestCase with the hooks PyTorch's TestNN gives NNTestCase (forward,
    backward, parameters and their gradients) and an assertEqual over ember values."""
    import unittest
    ember = _ember()
    base = _native_classes()["NNTestCase"]

    class Case(base, unittest.TestCase):
        def runTest(self):
            pass

        def _forward(self, module, input):
            # the RNG state is restored after each forward (as PyTorch's TestNN does), so
            # modules that draw random numbers (RReLU) repeat their draws
            state = ember.get_rng_state()
            try:
                return module(*input) if isinstance(input, tuple) else module(input)
            finally:
                ember.set_rng_state(state)

        def _get_parameters(self, module):
            params = list(module.parameters())
            return params, [p.grad for p in params]

        def _zero_grad_parameters(self, module):
            for p in module.parameters():
                if p.grad is not None:
                    with ember.no_grad():
                        p.grad.zero_()
                    p.grad.detach_()

        def _backward(self, module, input, output, grad_output, create_graph=False):
            output.backward(grad_output, retain_graph=True, create_graph=create_graph)
            if isinstance(input, tuple):
                return tuple(None if i.grad is None else i.grad.data for i in input)
            return None if input.grad is None else input.grad.data

        def _forward_criterion(self, criterion, input, target, extra_args=None):
            extra = tuple(extra_args or ())
            if isinstance(input, tuple):
                return criterion(*input, target, *extra)
            return criterion(input, target, *extra)

        def assertEqual(self, x, y, msg=None, *, atol=None, rtol=None,
                        exact_dtype=True, **kwargs):
            reason = _native_equal(x, y, atol, rtol)
            if reason:
                raise AssertionError(msg or reason)

    return Case()


_NATIVE_TOL = {"float64": (1e-7, 1e-7), "float32": (1.3e-6, 1e-5),
               "float16": (1e-3, 1e-5), "bfloat16": (1.6e-2, 1e-5),
               "complex128": (1e-7, 1e-7), "complex64": (1.3e-6, 1e-5)}


def _native_equal(x, y, atol, rtol) -> str | None:
    """None when x and y (ember tensors, numbers, nested sequences, None) are equal within
    torch's default tolerances for their dtype; else the reason."""
    import numpy as np
    ember = _ember()
    if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
        if len(x) != len(y):
            return f"length {len(x)} vs {len(y)}"
        for a, b in zip(x, y):
            reason = _native_equal(a, b, atol, rtol)
            if reason:
                return reason
        return None
    if x is None or y is None:
        return None if x is y else f"{x!r} vs {y!r}"
    xa = x.detach().numpy() if isinstance(x, ember.Tensor) else np.asarray(x)
    ya = y.detach().numpy() if isinstance(y, ember.Tensor) else np.asarray(y)
    if xa.size != ya.size or (xa.shape != ya.shape and xa.size != 1):
        return f"shape {xa.shape} vs {ya.shape}"
    dt = str(xa.dtype) if isinstance(x, ember.Tensor) else str(ya.dtype)
    r, a = _NATIVE_TOL.get(dt, (0.0, 0.0))
    r, a = (r if rtol is None else rtol), (a if atol is None else atol)
    if xa.dtype.kind in "fc" or ya.dtype.kind in "fc":
        ok = np.allclose(xa.astype(np.complex128), ya.astype(np.complex128).reshape(xa.shape),
                         rtol=r, atol=a, equal_nan=True)
    else:
        ok = np.array_equal(xa, ya.reshape(xa.shape))
    if ok:
        return None
    diff = np.abs(xa.astype(np.complex128) - ya.astype(np.complex128).reshape(xa.shape))
    return f"values differ: max abs diff {np.nanmax(diff):.3g} (rtol {r}, atol {a})"


def status(record) -> str:
    if record.get("skipped"):
        return "skipped"
    return "pass" if not record["failures"] else "failing"


# --- the expected-status file and the docs section ---------------------------------
def write_expected(records, path) -> None:
    lines = ["# common_nn test dicts ember does not pass yet, with the first reason.",
             "# Generated by `python tools/nntests.py --write-expected <this file>`;",
             "# tests/nn/test_common_nn_dicts.py fails when one of these starts passing, or",
             "# when an entry not listed here fails."]
    lines += [f"{r['name']}\t{r['failures'][0]}" for r in records if status(r) == "failing"]
    Path(path).write_text("\n".join(lines) + "\n")


def read_expected(path) -> dict[str, str]:
    return moduleinfo.read_expected(path)


DOCS_BEGIN = "<!-- BEGIN nntests table (generated by tools/nntests.py --docs) -->"
DOCS_END = "<!-- END nntests table -->"


def docs_section(records) -> str:
    n = len(records)
    npass = sum(status(r) == "pass" for r in records)
    lines = [DOCS_BEGIN, "",
             f"PyTorch's common_nn test dicts: {n} entries, {npass} pass, {n - npass} failing.",
             ""]
    failing = [r for r in records if status(r) != "pass"]
    if failing:
        lines += ["| entry | first failure |", "|---|---|"]
        for r in failing:
            why = r["failures"][0].replace("|", "\\|").replace("\n", " ")[:160]
            lines.append(f"| {r['name']} | {why} |")
        lines.append("")
    lines.append(DOCS_END)
    return "\n".join(lines)


def write_docs(records, path) -> None:
    p = Path(path)
    text = p.read_text() if p.exists() else ""
    section = docs_section(records)
    if DOCS_BEGIN in text and DOCS_END in text:
        head, _, rest = text.partition(DOCS_BEGIN)
        _, _, tail = rest.partition(DOCS_END)
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    p.write_text(text)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="test names, e.g. test_Conv2d (default: all)")
    ap.add_argument("--verbose", "-v", action="store_true", help="print every failure")
    ap.add_argument("--json", help="write the per-entry records here")
    ap.add_argument("--native", action="store_true",
                    help="run PyTorch's own NewModuleTest/CriterionTest code with torch "
                         "naming ember (no torch results involved)")
    ap.add_argument("--gradcheck", choices=("full", "fast", "off"), default="full",
                    help="ember.autograd.gradcheck/gradgradcheck as PyTorch's test calls "
                         "them (fast: fast_mode, as CI runs)")
    ap.add_argument("--write-expected", metavar="FILE")
    ap.add_argument("--docs", metavar="FILE", help="rewrite the generated table in FILE")
    args = ap.parse_args(argv)
    GRADCHECK_MODE["mode"] = args.gradcheck
    records = []
    for key, (kind, params) in entries(set(args.names) or None).items():
        rec = check_entry(key, kind, params, native=args.native)
        if args.verbose and rec["failures"] and rec["failures"][0].startswith("torch side"):
            traceback.print_exc()
        records.append(rec)
        first = f"  {rec['failures'][0][:110]}" if rec["failures"] and not args.verbose else ""
        print(f"{key:48s} {status(rec):8s} passed={rec['passed']}{first}", flush=True)
        if args.verbose:
            for f in rec["failures"]:
                print("    " + f)
    npass = sum(status(r) == "pass" for r in records)
    nskip = sum(status(r) == "skipped" for r in records)
    print(f"\n{len(records)} entries: {npass} pass, {len(records) - npass - nskip} failing, "
          f"{nskip} skipped")
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1))
    if args.write_expected:
        write_expected(records, args.write_expected)
    if args.docs:
        write_docs(records, args.docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
