"""Run PyTorch's own ModuleInfo database (module_db) against ember.nn.

Each ModuleInfo entry is mapped by class name, as a user porting code would:
`torch.nn.X` -> `ember.nn.X` (and `torch.ao.nn.quantized.X` -> `ember.nn.quantized.X`).
For every ModuleInput the entry's module_inputs_func yields (in training and in eval
mode, float64 and float32), both modules are built from the same constructor arguments
(tensors converted with the same values) and torch's parameters and buffers are loaded
into ember's through state_dict; then compared:

- repr(module) (the extra_repr text) and the state_dict keys (names and order);
- construction with `dtype=float64` (PyTorch's factory kwargs): each parameter's and
  buffer's dtype;
- a copy.deepcopy of the module computes the same outputs;
- the forward outputs;
- the buffers after forward (BatchNorm's running statistics, num_batches_tracked);
- float64 gradients of the inputs and of every parameter, through a fixed random
  cotangent (the outputs' sum weighted by it); in training mode, where the entry says
  the module supports it, the gradients of those gradients too (double backward);
- for the entry's module_error_inputs_func, that ember raises torch's exception type
  (at construction or at forward, as the entry says) with a message matching the
  entry's regex, as PyTorch's own test asks.

    python tools/moduleinfo.py                      # summary over every entry
    python tools/moduleinfo.py nn.LSTM nn.GRU -v    # named entries, every failure
    python tools/moduleinfo.py --json out.json      # the per-entry record, as data
    python tools/moduleinfo.py --write-expected tests/nn/moduleinfo_expected_failures.txt
    python tools/moduleinfo.py --docs docs/nn.md    # rewrite the generated docs section

Needs torch (the test oracle) and expecttest; ember itself never imports torch.
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import sys
import traceback
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import opinfo  # noqa: E402 - the shared torch -> ember conversion and comparison

warnings.filterwarnings("ignore")

DTYPE_NAMES = ("float64", "float32")
# samples per mode (train, eval) and dtype that CI runs; the tool's default is all of them
CI_LIMIT = 3
# modules whose forward draws random numbers (unless given `_random_samples`): torch's
# generator and ember's differ, so only shapes and dtypes are compared
RANDOM_MODULES = {"FractionalMaxPool2d", "FractionalMaxPool3d"}


def _ember():
    import ember  # noqa: PLC0415 - imported late so --help works without it
    return ember


def resolve(info):
    """The ember.nn class a user would reach for ModuleInfo `info`, or None."""
    ember = _ember()
    cls = info.module_cls
    if ".quantized" in cls.__module__:
        space = getattr(ember.nn, "quantized", None)
        return getattr(space, cls.__name__, None) if space is not None else None
    return getattr(ember.nn, cls.__name__, None)


def entries(names=None):
    from torch.testing._internal.common_modules import module_db
    out = {}
    for info in module_db:
        if names and info.name not in names:
            continue
        out.setdefault(info.name, info)
    return out


# --- torch -> ember constructor arguments -------------------------------------------
# torch modules made while a ModuleInput list is built (TransformerEncoder's layer):
# id -> (class, args, kwargs, module), so their ember twins are built from the same
# arguments
_MADE: dict[int, tuple] = {}


class _recording_module_inits:
    """Record the constructor arguments of every torch.nn module class made inside."""

    def __enter__(self):
        import torch
        self.saved = {}
        # a class without its own __init__ (L1Loss) runs its base's (_Loss), which torch.nn
        # does not export: the bases are patched too
        for exported in vars(torch.nn).values():
            if not (isinstance(exported, type) and issubclass(exported, torch.nn.Module)):
                continue
            for cls in exported.__mro__:
                if cls not in self.saved and cls is not torch.nn.Module and \
                        issubclass(cls, torch.nn.Module) and "__init__" in vars(cls):
                    self.saved[cls] = cls.__init__
                    cls.__init__ = _recorded(cls.__init__)
        return self

    def __exit__(self, *exc):
        for cls, init in self.saved.items():
            cls.__init__ = init


def _recorded(init):
    def __init__(self, *args, **kwargs):
        # the outermost __init__ of the object (its own class's) names its arguments; the
        # object is kept alive in the record so that its id is not reused meanwhile
        if id(self) not in _MADE:
            _MADE[id(self)] = (type(self), args, kwargs, self)
        init(self, *args, **kwargs)
    return __init__


def to_ember(v):
    """A constructor argument as ember: tensors/dtypes as opinfo converts them, torch
    functions (activation=F.gelu) as ember's of the same name, torch modules made while
    the inputs were built as ember modules of the same class, arguments and state."""
    import torch
    if isinstance(v, torch.nn.Module) and id(v) in _MADE:
        cls, args, kwargs, _ = _MADE[id(v)]
        twin = getattr(_ember().nn, cls.__name__)(*to_ember(args), **to_ember(kwargs))
        twin.load_state_dict({k: opinfo.to_ember(t.detach().clone())
                              for k, t in v.state_dict().items()})
        return twin
    if callable(v) and not isinstance(v, (type, torch.nn.Module, torch.Tensor)) and \
            getattr(v, "__module__", "") and v.__module__.startswith("torch"):
        return _ember_function(v)
    if isinstance(v, (list, tuple)) and not hasattr(v, "_fields"):
        return type(v)(to_ember(x) for x in v)
    if isinstance(v, dict):
        return {k: to_ember(x) for k, x in v.items()}
    return opinfo.to_ember(v)


def _ember_function(fn):
    """torch.nn.functional.gelu -> ember.nn.functional.gelu (torch.X -> ember.X)."""
    import torch
    ember = _ember()
    for torch_space, ember_space in ((torch.nn.functional, ember.nn.functional),
                                     (torch, ember)):
        if getattr(torch_space, fn.__name__, None) is fn:
            return getattr(ember_space, fn.__name__, fn)
    return fn


# --- one ModuleInput --------------------------------------------------------------
class _Pair:
    """A torch module and its ember twin, built from one ModuleInput's constructor."""

    def __init__(self, info, ember_cls, module_input, dtype_name, training):
        import torch
        ember = _ember()
        args, kwargs = module_input.constructor_input.args, module_input.constructor_input.kwargs
        self.torch = info.module_cls(*args, **kwargs).to(getattr(torch, dtype_name))
        self.ember = ember_cls(*to_ember(args), **to_ember(kwargs))
        self.ember = self.ember.to(getattr(ember, dtype_name))
        self.torch.train(training)
        self.ember.train(training)


def _forward_args(module_input, convert):
    fwd = module_input.forward_input
    return tuple(convert(a) for a in fwd.args), {k: convert(v) for k, v in fwd.kwargs.items()}


def _state_reason(pair) -> str | None:
    """Copy torch's state into ember's; a reason when the keys differ or loading fails."""
    t_keys = list(pair.torch.state_dict().keys())
    e_keys = list(pair.ember.state_dict().keys())
    if set(t_keys) != set(e_keys):
        extra = sorted(set(e_keys) - set(t_keys))
        lacking = sorted(set(t_keys) - set(e_keys))
        return f"state_dict keys: ember has extra {extra[:4]}, lacks {lacking[:4]}"
    if t_keys != e_keys:
        return f"state_dict key order {e_keys[:6]}, torch {t_keys[:6]}"
    state = {k: opinfo.to_ember(v.detach().clone()) for k, v in pair.torch.state_dict().items()}
    pair.ember.load_state_dict(state)
    return None


def _materialize_lazy(pair, module_input):
    """Lazy modules make their parameters on the first forward: one dry run each."""
    import torch
    ember = _ember()
    fresh = copy.deepcopy(module_input.forward_input)
    with torch.no_grad():
        pair.torch(*fresh.args, **fresh.kwargs)
    args, kwargs = _forward_args(module_input, opinfo.to_ember)
    with ember.no_grad():
        pair.ember(*args, **kwargs)


def check_sample(info, ember_cls, module_input, dtype_name, training, grad,
                 gradgrad=True) -> str | None:
    """None when ember's module matches torch's on this ModuleInput, else the reason."""
    import torch
    ember = _ember()
    try:
        pair = _Pair(info, ember_cls, module_input, dtype_name, training)
    except Exception as exc:  # noqa: BLE001
        return f"construct: {_exc_line(exc)}"
    if repr(pair.ember) != repr(pair.torch):
        return f"repr {_first_diff_line(repr(pair.ember), repr(pair.torch))}"
    if info.is_lazy:
        _materialize_lazy(pair, module_input)
    reason = _state_reason(pair)
    if reason:
        return reason
    if dtype_name == "float64" and training and not info.is_lazy:
        reason = _factory_reason(info, ember_cls, module_input)
        if reason:
            return reason
    twin = copy.deepcopy(pair.ember) if dtype_name == "float64" and training else None

    mapping = {}

    def convert(v):          # one ember leaf per torch leaf, so gradients can be paired
        if isinstance(v, torch.Tensor) and v.requires_grad:
            if id(v) not in mapping:
                mapping[id(v)] = (v, opinfo.to_ember(v, requires_grad=True))
            return mapping[id(v)][1]
        if isinstance(v, (list, tuple)) and not hasattr(v, "_fields"):
            return type(v)(convert(x) for x in v)
        if isinstance(v, dict):
            return {k: convert(x) for k, x in v.items()}
        return opinfo.to_ember(v)

    e_args, e_kwargs = _forward_args(module_input, convert)
    t_args, t_kwargs = _forward_args(module_input, lambda v: v)
    values = type(pair.torch).__name__ not in RANDOM_MODULES or \
        "_random_samples" in module_input.constructor_input.kwargs
    expected = pair.torch(*t_args, **t_kwargs)
    try:
        actual = pair.ember(*e_args, **e_kwargs)
    except Exception as exc:  # noqa: BLE001
        return f"forward: {_exc_line(exc)}"
    reason = opinfo.compare(_plain(actual), _plain(expected), dtype_name, values)
    if reason:
        return f"forward {reason}"
    reason = _buffers_reason(pair, dtype_name)
    if reason:
        return reason
    if twin is not None and values:
        reason = _deepcopy_reason(twin, module_input, expected, dtype_name)
        if reason:
            return reason
    if not grad or not values:
        return None
    return _grads_reason(pair, mapping, _plain(actual), _plain(expected),
                         gradgrad=gradgrad and info.supports_gradgrad and training)


def _factory_reason(info, ember_cls, module_input) -> str | None:
    """`Module(..., dtype=float64)` (PyTorch's factory kwargs): every parameter and buffer
    made in the dtype torch makes it."""
    import inspect
    import torch
    ember = _ember()
    args, kwargs = module_input.constructor_input.args, module_input.constructor_input.kwargs
    try:
        takes_dtype = "dtype" in inspect.signature(info.module_cls.__init__).parameters
    except (TypeError, ValueError):
        return None
    if not takes_dtype or "dtype" in kwargs:
        return None
    want = info.module_cls(*args, **kwargs, dtype=torch.float64)
    try:
        got = ember_cls(*to_ember(args), **to_ember(kwargs), dtype=ember.float64)
    except Exception as exc:  # noqa: BLE001
        return f"construct with dtype=float64: {_exc_line(exc)}"
    t_dtypes = {n: str(t.dtype).split(".")[-1] for n, t in want.state_dict().items()}
    e_dtypes = {n: str(t.dtype).split(".")[-1] for n, t in got.state_dict().items()}
    for name, dt in t_dtypes.items():
        if e_dtypes.get(name, dt) != dt:
            return f"dtype=float64 constructor: {name} is {e_dtypes[name]}, torch {dt}"
    return None


def _deepcopy_reason(twin, module_input, expected, dtype_name) -> str | None:
    """copy.deepcopy of the module (made before its first forward) computes the same."""
    ember = _ember()
    args, kwargs = _forward_args(module_input, opinfo.to_ember)
    with ember.no_grad():
        out = twin(*args, **kwargs)
    reason = opinfo.compare(_plain(out), _plain(expected), dtype_name)
    return f"deepcopy of the module: forward {reason}" if reason else None


def _plain(out):
    """Outputs as nested tuples of tensors (PackedSequence and other named tuples too)."""
    if isinstance(out, tuple) and hasattr(out, "_fields"):
        return tuple(_plain(x) for x in out)
    if isinstance(out, (list, tuple)):
        return type(out)(_plain(x) for x in out)
    return out


def _buffers_reason(pair, dtype_name):
    t_bufs = dict(pair.torch.named_buffers())
    e_bufs = dict(pair.ember.named_buffers())
    for name, t in t_bufs.items():
        if name not in e_bufs:
            return f"buffer {name} missing after forward"
        if t is None or e_bufs[name] is None:
            if (t is None) != (e_bufs[name] is None):
                return f"buffer {name}: None on one side only"
            continue
        reason = opinfo.compare(e_bufs[name], t, dtype_name)
        if reason:
            return f"buffer {name} after forward: {reason}"
    return None


def _grads_reason(pair, mapping, actual, expected, gradgrad=False):
    """Gradients of inputs and parameters through a fixed random cotangent; with
    `gradgrad`, also the gradients of those gradients (through a second cotangent), as
    a gradient penalty takes them."""
    import torch
    ember = _ember()
    t_outs = [o for o in opinfo.flatten(expected) if isinstance(o, torch.Tensor)
              and o.requires_grad]
    e_outs = [o for o in opinfo.flatten(actual) if isinstance(o, ember.Tensor)
              and o.requires_grad]
    if not t_outs:
        return None
    if len(e_outs) != len(t_outs):
        return f"grad: {len(e_outs)} differentiable outputs, torch has {len(t_outs)}"
    t_params = dict(pair.torch.named_parameters())
    e_params = dict(pair.ember.named_parameters())
    if set(t_params) != set(e_params):
        return f"parameters: ember {sorted(e_params)[:4]}, torch {sorted(t_params)[:4]}"
    names = sorted(t_params)
    t_leaves = [t for t, _ in mapping.values()] + [t_params[n] for n in names]
    e_leaves = [e for _, e in mapping.values()] + [e_params[n] for n in names]
    labels = [f"input {i}" for i in range(len(mapping))] + [f"param {n}" for n in names]
    gen = torch.Generator().manual_seed(0)
    cots = [torch.randn(o.shape, dtype=o.dtype, generator=gen) for o in t_outs]
    want = torch.autograd.grad(t_outs, t_leaves, cots, allow_unused=True,
                               create_graph=gradgrad)
    try:
        got = ember.autograd.grad(e_outs, e_leaves, [opinfo.to_ember(c) for c in cots],
                                  allow_unused=True, create_graph=gradgrad)
    except Exception as exc:  # noqa: BLE001
        return f"backward: {_exc_line(exc)}"
    reason = _compare_grads("grad", labels, got, want)
    if reason or not gradgrad:
        return reason
    pairs = [(g, w) for g, w in zip(got, want) if w is not None and w.requires_grad
             and g is not None]
    if not pairs:
        return None
    cots2 = [torch.randn(w.shape, dtype=w.dtype, generator=gen) for _, w in pairs]
    try:
        want2 = torch.autograd.grad([w for _, w in pairs], t_leaves, cots2,
                                    allow_unused=True)
    except RuntimeError:        # torch has no double backward here (ctc_loss, flash SDPA)
        return None
    # a first gradient ember leaves outside the graph is constant in the leaves (bias's
    # sum of the cotangent; torch keeps it in the graph with zero second derivatives)
    live = [(g, c) for (g, _), c in zip(pairs, cots2) if g.requires_grad]
    try:
        got2 = ember.autograd.grad([g for g, _ in live], e_leaves,
                                   [opinfo.to_ember(c) for _, c in live],
                                   allow_unused=True) if live else [None] * len(e_leaves)
    except Exception as exc:  # noqa: BLE001
        return f"double backward: {_exc_line(exc)}"
    return _compare_grads("gradgrad", labels, got2, want2)


def _compare_grads(kind, labels, got, want):
    for label, g, w in zip(labels, got, want):
        if w is None or g is None:
            zero = (w is not None and not w.any()) or (g is not None and not
                                                         g.detach().numpy().any())
            if (w is None) != (g is None) and not zero:
                return f"{kind} {label}: {'None' if g is None else 'a value'}, torch " \
                       f"{'None' if w is None else 'a value'}"
            continue
        reason = opinfo.compare(g, w, "float64")
        if reason:
            return f"{kind} {label}: {reason}"
    return None


def check_error_input(info, ember_cls, case) -> str | None:
    """None when ember raises torch's exception type where the entry says torch does."""
    from torch.testing._internal.common_modules import ModuleErrorEnum
    mi = case.module_error_input
    args, kwargs = mi.constructor_input.args, mi.constructor_input.kwargs
    try:                                   # torch must still raise here
        m = info.module_cls(*args, **kwargs)
        if case.error_on == ModuleErrorEnum.FORWARD_ERROR:
            fresh = copy.deepcopy(mi.forward_input)
            m(*fresh.args, **fresh.kwargs)
        return None
    except Exception:  # noqa: BLE001
        pass
    stage = "construct"
    try:
        m = ember_cls(*to_ember(args), **to_ember(kwargs))
        if case.error_on == ModuleErrorEnum.FORWARD_ERROR:
            stage = "forward"
            e_args, e_kwargs = _forward_args(mi, opinfo.to_ember)
            m(*e_args, **e_kwargs)
        return f"{stage}: no error (torch raises {case.error_type.__name__})"
    except case.error_type as exc:
        # PyTorch's own test matches the message too (assertRaisesRegex)
        if case.error_regex and not re.search(case.error_regex, str(exc)):
            return f"{stage}: message {str(exc)[:100]!r} does not match torch's " \
                   f"{case.error_regex!r}"
        return None
    except Exception as exc:  # noqa: BLE001
        return f"{stage}: {type(exc).__name__} where torch raises " \
               f"{case.error_type.__name__}: {_exc_line(exc, with_type=False)}"


def _exc_line(exc, with_type=True) -> str:
    text = str(exc).splitlines()[0][:160] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if with_type else text


def _first_diff_line(a: str, b: str) -> str:
    for x, y in zip(a.splitlines(), b.splitlines()):
        if x != y:
            return f"{x.strip()[:90]!r}, torch {y.strip()[:90]!r}"
    return f"{a[:90]!r}, torch {b[:90]!r}"


def check_entry(info, *, dtypes=DTYPE_NAMES, grad=True, errors=True, limit=None):
    """{'name', 'exists', 'passed', 'failures'} over the entry's ModuleInputs."""
    import torch
    ember_cls = resolve(info)
    record = {"name": info.name, "exists": ember_cls is not None, "passed": 0,
              "failures": []}
    if ember_cls is None:
        return record
    for dtype_name in dtypes:
        dtype = getattr(torch, dtype_name)
        if dtype not in info.dtypes:
            continue
        for training in (True, False):
            torch.manual_seed(0)
            _MADE.clear()
            with _recording_module_inits():
                inputs = info.module_inputs_func(info, device="cpu", dtype=dtype,
                                                 requires_grad=True, training=training)
            for i, mi in enumerate(inputs[:limit]):
                try:
                    reason = check_sample(info, ember_cls, mi, dtype_name, training,
                                          grad and dtype_name == "float64")
                except Exception as exc:  # noqa: BLE001 - recorded as the failure
                    reason = f"torch side: {_exc_line(exc)}"
                if reason is None:
                    record["passed"] += 1
                else:
                    mode = "train" if training else "eval"
                    record["failures"].append(
                        f"{dtype_name} {mode} input {i} {mi.desc or ''!s}: {reason}")
    if errors and info.module_error_inputs_func is not None:
        cases = info.module_error_inputs_func(info, device="cpu", dtype=torch.float32,
                                              requires_grad=False, training=True)
        for i, case in enumerate(cases[:limit]):
            reason = check_error_input(info, ember_cls, case)
            if reason is None:
                record["passed"] += 1
            else:
                record["failures"].append(f"error input {i}: {reason}")
    return record


def status(record) -> str:
    if not record["exists"]:
        return "missing"
    return "pass" if not record["failures"] else "failing"


# --- the expected-status file and the docs section ---------------------------------
def write_expected(records, path) -> None:
    """One line per entry that does not pass: `name<TAB>first reason`."""
    lines = ["# ModuleInfo entries ember does not pass yet, with the first reason.",
             f"# Generated by `python tools/moduleinfo.py --limit {CI_LIMIT} "
             "--write-expected <this file>`;",
             "# tests/nn/test_moduleinfo.py fails when one of these starts passing, or when",
             "# an entry not listed here fails."]
    for r in records:
        if status(r) == "pass":
            continue
        why = "not in ember" if not r["exists"] else r["failures"][0]
        lines.append(f"{r['name']}\t{why}")
    Path(path).write_text("\n".join(lines) + "\n")


def read_expected(path) -> dict[str, str]:
    out = {}
    for line in Path(path).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, why = line.partition("\t")
            out[key] = why
    return out


DOCS_BEGIN = "<!-- BEGIN moduleinfo table (generated by tools/moduleinfo.py --docs) -->"
DOCS_END = "<!-- END moduleinfo table -->"


def docs_section(records, limit) -> str:
    n = len(records)
    counts = {s: sum(status(r) == s for r in records) for s in ("pass", "failing", "missing")}
    scope = "every ModuleInput" if limit is None else f"the first {limit} ModuleInputs"
    lines = [DOCS_BEGIN, "",
             f"PyTorch's module_db: {n} entries, {counts['pass']} pass, "
             f"{counts['failing']} failing, {counts['missing']} missing "
             f"({scope} per mode and dtype).", "",
             "| entry | status | passed checks | first failure |",
             "|---|---|---|---|"]
    for r in records:
        why = "" if status(r) == "pass" else (
            "not in ember" if not r["exists"] else r["failures"][0])
        why = why.replace("|", "\\|").replace("\n", " ")[:160]
        lines.append(f"| {r['name']} | {status(r)} | {r['passed']} | {why} |")
    lines += ["", DOCS_END]
    return "\n".join(lines)


def write_docs(records, path, limit) -> None:
    """Replace the generated section of `path` (appended when it has none)."""
    p = Path(path)
    text = p.read_text() if p.exists() else ""
    section = docs_section(records, limit)
    if DOCS_BEGIN in text and DOCS_END in text:
        head, _, rest = text.partition(DOCS_BEGIN)
        _, _, tail = rest.partition(DOCS_END)
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    p.write_text(text)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="ModuleInfo names, e.g. nn.Conv2d (default: all)")
    ap.add_argument("--limit", type=int, default=None,
                    help=f"ModuleInputs per mode and dtype (CI: {CI_LIMIT}; default: all)")
    ap.add_argument("--no-grad", action="store_true", help="no gradient comparison")
    ap.add_argument("--dtypes", default=",".join(DTYPE_NAMES))
    ap.add_argument("--verbose", "-v", action="store_true", help="print every failure")
    ap.add_argument("--json", help="write the per-entry records here")
    ap.add_argument("--write-expected", metavar="FILE",
                    help="write every entry that does not pass, with its first reason")
    ap.add_argument("--docs", metavar="FILE", help="rewrite the generated table in FILE")
    args = ap.parse_args(argv)
    dtypes = tuple(d for d in args.dtypes.split(",") if d)
    records = []
    for name, info in entries(set(args.names) or None).items():
        try:
            rec = check_entry(info, dtypes=dtypes, grad=not args.no_grad, limit=args.limit)
        except Exception as exc:  # noqa: BLE001 - the harness itself must go on
            rec = {"name": name, "exists": True, "passed": 0,
                   "failures": [f"harness: {_exc_line(exc)}"]}
            if args.verbose:
                traceback.print_exc()
        records.append(rec)
        first = f"  {rec['failures'][0][:110]}" if rec["failures"] and not args.verbose else ""
        print(f"{name:32s} {status(rec):8s} passed={rec['passed']}{first}", flush=True)
        if args.verbose:
            for f in rec["failures"]:
                print("    " + f)
    counts = {s: sum(status(r) == s for r in records) for s in ("pass", "failing", "missing")}
    print(f"\n{len(records)} entries: {counts['pass']} pass, {counts['failing']} failing, "
          f"{counts['missing']} missing")
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1))
    if args.write_expected:
        write_expected(records, args.write_expected)
    if args.docs:
        write_docs(records, args.docs, args.limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
