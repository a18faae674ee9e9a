"""Shared machinery of the tools that run PyTorch's small OpInfo databases against ember
(`tools/autograd_function_db.py`, `tools/custom_op_db.py`).

Those databases define their ops in Python at module level (autograd.Function classes,
torch.library.custom_op definitions). `ported_module` runs the database module's own
source again with `torch` naming ember (the port a user makes by changing the import:
`import torch` -> ember, `from torch import Tensor` -> ember's; `torch.testing` imports
stay, they only make the sample inputs), without the OpInfo list itself, so ember gets
the same classes and ops defined through ember's API. `check_entry` then compares one
OpInfo entry's ember twin with torch's op:

- values: every sample in float32, float64 and int64 (where the entry supports them);
- gradients: float64 gradients of every input through a fixed random cotangent, and
  the gradients of those gradients (create_graph=True), as PyTorch's gradcheck and
  gradgradcheck tests exercise them;
- forward AD (where the entry supports it): output tangents through dual tensors;
- ember.func (torch.func's transforms, as functorch's tests run these databases): vjp,
  jvp (where forward AD is supported) and vmap over a batch of three samples;
- ember.compile of the call (float32, every tensor an input) against torch's eager values.

A transform torch itself refuses for an entry is not checked (e.g. a Function without
a vmap rule under vmap); everything else must give torch's result.
"""
from __future__ import annotations

import ast
import importlib
import sys
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import opinfo  # noqa: E402 - torch -> ember values and comparison

DTYPES = ("float32", "float64", "int64")
CHECKS = ("values", "grad", "gradgrad", "forward_ad", "func.vjp", "func.jvp", "func.vmap",
          "compile")


def _ember():
    import ember  # noqa: PLC0415 - imported late so --help works without it
    return ember


# --- the database module, ported -----------------------------------------------------
def _ported_import(node):
    """`import torch` / `from torch import X` -> ember's; torch.testing stays torch's."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name == "torch" or alias.name.startswith("torch.") and \
                    not alias.name.startswith("torch.testing"):
                if alias.asname is None and alias.name != "torch":
                    return node        # `import torch.x` binds torch: keep it
                alias.asname = alias.asname or "torch"
                alias.name = "ember" + alias.name[len("torch"):]
    elif isinstance(node, ast.ImportFrom) and node.module and \
            (node.module == "torch" or node.module.startswith("torch.")) and \
            not node.module.startswith("torch.testing"):
        node.module = "ember" + node.module[len("torch"):]
    return node


_PORTED: dict = {}


def ported_scope(modname: str, drop: tuple[str, ...]) -> dict:
    """ported_module once per process (its ops register once); a port that failed is
    raised again for every entry that asks."""
    if modname not in _PORTED:
        try:
            _PORTED[modname] = ported_module(modname, drop)
        except Exception as exc:  # noqa: BLE001
            _PORTED[modname] = exc
    if isinstance(_PORTED[modname], Exception):
        raise _PORTED[modname]
    return _PORTED[modname]


def ported_module(modname: str, drop: tuple[str, ...]) -> dict:
    """The namespace of module `modname`'s source run with torch naming ember, without the
    top-level assignments to the names in `drop` (the OpInfo list)."""
    mod = importlib.import_module(modname)
    path = mod.__file__
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    body = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id in drop for t in node.targets):
            continue
        body.append(_ported_import(node))
    tree.body = body
    scope = {"__name__": "ember_port." + modname.rsplit(".", 1)[-1], "__file__": path}
    exec(compile(tree, path, "exec"), scope)  # noqa: S102 - PyTorch's own test module
    return scope


def twin_of(fn, scope: dict):
    """The ember counterpart of a database op: `Cls.apply` -> the ported class's apply, a
    custom op's overload -> the ported op, a lambda/def of the module -> the same code
    over the ported namespace."""
    owner = getattr(fn, "__self__", None)
    if isinstance(owner, type):
        return getattr(scope[owner.__name__], fn.__name__)
    qualified = getattr(fn, "_name", None) or getattr(fn, "_qualified_op_name", None)
    if type(fn).__name__ in ("OpOverload", "OpOverloadPacket") and qualified:
        namespace, _, name = str(qualified).partition("::")
        return _ember_op(scope, namespace, name.split(".")[0])
    if isinstance(fn, types.FunctionType):
        return types.FunctionType(fn.__code__, scope, fn.__name__, fn.__defaults__,
                                  fn.__closure__)
    raise LookupError(f"no ember twin for {fn!r}")


def _ember_op(scope, namespace, name):
    """`torch.ops.<namespace>.<name>` as ember's `ember.ops.<namespace>.<name>`."""
    return getattr(getattr(_ember().ops, namespace), name)


# --- samples -------------------------------------------------------------------------
def _samples(info, dtype_name, requires_grad=False, limit=4):
    import torch
    dtype = getattr(torch, dtype_name)
    if dtype not in info.supported_dtypes("cpu"):
        return []
    torch.manual_seed(0)
    return list(info.sample_inputs("cpu", dtype, requires_grad=requires_grad))[:limit]


def _tensors(sample):
    import torch
    return [t for t in opinfo.flatten([sample.input, list(sample.args),
                                       list(sample.kwargs.values())])
            if isinstance(t, torch.Tensor) and t.requires_grad]


def _err(exc) -> str:
    text = str(exc).splitlines()[0][:160] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"


# --- the checks ----------------------------------------------------------------------
def check_values(info, fn):
    passed, failures = 0, []
    for dt in DTYPES:
        p, f = opinfo.check_values(info, fn, dt, limit=4)
        passed += p
        failures += [f"values {x}" for x in f]
    return passed, failures


def check_grads(info, fn):
    if not info.supports_autograd:
        return 0, []
    p, f = opinfo.check_grads(info, fn, limit=4)
    return p, [f"grad: {x}" for x in f]


def _leaf_inputs(sample, convert, ember_side):
    """(positional args, kwargs, leaves) of `sample`, tensors converted by `convert` (one
    leaf per input that requires grad), other values by to_ember on ember's side."""
    import torch
    leaves = {}

    def conv(v):
        if isinstance(v, torch.Tensor) and v.requires_grad:
            if id(v) not in leaves:
                leaves[id(v)] = convert(v)
            return leaves[id(v)]
        if isinstance(v, (list, tuple)) and not hasattr(v, "_fields"):
            return type(v)(conv(x) for x in v)
        if isinstance(v, torch.Tensor):
            return convert(v)
        return opinfo.to_ember(v) if ember_side else v
    args = [conv(sample.input)] + [conv(a) for a in sample.args]
    kwargs = {k: conv(v) for k, v in sample.kwargs.items()}
    return args, kwargs, list(leaves.values())


def _torch_leaf(v):
    return v.detach().clone().requires_grad_(v.requires_grad)


def _ember_leaf(v):
    return opinfo.to_ember(v.detach(), requires_grad=False).requires_grad_(v.requires_grad) \
        if v.requires_grad else opinfo.to_ember(v.detach())


def _diff_outputs(out):
    return [o for o in opinfo.flatten(out)
            if hasattr(o, "requires_grad") and o.requires_grad]


def _gradgrad(lib, op, sample, convert, seed):
    """Second derivatives: d/dx <grad(out, x, cot), v> for fixed random cot and v."""
    import torch
    args, kwargs, leaves = _leaf_inputs(sample, convert, lib is not torch)
    outs = _diff_outputs(sample.output_process_fn_grad(op(*args, **kwargs)))
    gen = torch.Generator().manual_seed(seed)
    cots = [torch.randn(tuple(o.shape), dtype=torch.float64, generator=gen) for o in outs]
    vs = [torch.randn(tuple(x.shape), dtype=torch.float64, generator=gen) for x in leaves]
    if lib is not torch:
        cots, vs = [opinfo.to_ember(c) for c in cots], [opinfo.to_ember(v) for v in vs]
    grads = lib.autograd.grad(outs, leaves, cots, create_graph=True, allow_unused=True)
    pairs = [(g, v) for g, v in zip(grads, vs) if g is not None and g.requires_grad]
    if not pairs:
        return None
    total = sum((g * v).sum() for g, v in pairs)
    return lib.autograd.grad(total, leaves, allow_unused=True)


def check_gradgrad(info, fn):
    import torch
    if not info.supports_autograd or not getattr(info, "supports_gradgrad", True):
        return 0, []
    ember = _ember()
    passed, failures = 0, []
    wrapped_t = opinfo._grad_wrapped(info, info.op)
    wrapped_e = opinfo._grad_wrapped(info, fn)
    for i, sample in enumerate(_samples(info, "float64", requires_grad=True)):
        try:
            expected = _gradgrad(torch, wrapped_t, sample, _torch_leaf, i)
        except Exception:  # noqa: BLE001 - torch refuses it too (once_differentiable)
            continue
        try:
            actual = _gradgrad(ember, wrapped_e, sample, _ember_leaf, i)
            reason = _compare_grads(actual, expected)
        except Exception as exc:  # noqa: BLE001
            reason = _err(exc)
        if reason:
            failures.append(f"gradgrad sample {i}: {reason}")
        else:
            passed += 1
    return passed, failures


def _compare_grads(actual, expected):
    if expected is None or actual is None:
        return None if (expected is None) == (actual is None) else \
            f"{'no' if actual is None else 'a'} second derivative, torch " \
            f"{'none' if expected is None else 'has one'}"
    for k, (a, e) in enumerate(zip(actual, expected)):
        if a is None or e is None:
            zero = (e is not None and not e.any()) or (a is not None and not
                                                         a.detach().numpy().any())
            if (a is None) != (e is None) and not zero:
                return f"input {k}: {'None' if a is None else 'a value'}, torch " \
                       f"{'None' if e is None else 'a value'}"
            continue
        reason = opinfo.compare(a, e, "float64")
        if reason:
            return f"input {k}: {reason}"
    return None


def _tangents(leaves, seed):
    import torch
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(tuple(x.shape), dtype=torch.float64, generator=gen) for x in leaves]


def _forward_ad(lib, op, sample, convert, seed):
    import torch
    fwAD = lib.autograd.forward_ad
    with fwAD.dual_level():
        tangents = _tangents(_tensors(sample), seed)
        if lib is not torch:
            tangents = [opinfo.to_ember(t) for t in tangents]
        duals = {}

        def dual(v):
            t = convert(v)
            if v.requires_grad:
                t = fwAD.make_dual(t.detach(), tangents[len(duals)])
                duals[id(v)] = t
            return t
        args, kwargs, _ = _leaf_inputs(sample, dual, lib is not torch)
        out = op(*args, **kwargs)
        return [fwAD.unpack_dual(o) for o in opinfo.flatten(out) if hasattr(o, "shape")]


def check_forward_ad(info, fn):
    import torch
    if not info.supports_forward_ad:
        return 0, []
    passed, failures = 0, []
    for i, sample in enumerate(_samples(info, "float64", requires_grad=True)):
        try:
            expected = _forward_ad(torch, info.op, sample, _torch_leaf, i)
        except Exception:  # noqa: BLE001
            continue
        try:
            actual = _forward_ad(_ember(), fn, sample, _ember_leaf, i)
            reason = _compare_duals(actual, expected)
        except Exception as exc:  # noqa: BLE001
            reason = _err(exc)
        if reason:
            failures.append(f"forward_ad sample {i}: {reason}")
        else:
            passed += 1
    return passed, failures


def _compare_duals(actual, expected):
    if len(actual) != len(expected):
        return f"{len(actual)} outputs, torch has {len(expected)}"
    for k, (a, e) in enumerate(zip(actual, expected)):
        reason = opinfo.compare(a.primal, e.primal, str(e.primal.dtype).split(".")[-1])
        if reason:
            return f"output {k} primal: {reason}"
        if (a.tangent is None) != (e.tangent is None):
            return f"output {k}: tangent {'None' if a.tangent is None else 'set'}, torch " \
                   f"{'None' if e.tangent is None else 'set'}"
        if e.tangent is not None:
            reason = opinfo.compare(a.tangent, e.tangent, "float64")
            if reason:
                return f"output {k} tangent: {reason}"
    return None


# --- ember.func ----------------------------------------------------------------------
def _positional(op, sample, convert, every_tensor=False):
    """(f(*tensors), tensors): the sample's call with every tensor that requires grad (or
    every tensor) an argument of f and the rest fixed."""
    import torch
    order = []

    def mark(v):
        if isinstance(v, torch.Tensor) and (v.requires_grad or every_tensor):
            order.append(v)
            return ("__leaf__", len(order) - 1)
        if isinstance(v, (list, tuple)) and not hasattr(v, "_fields"):
            return type(v)(mark(x) for x in v)
        return convert(v) if isinstance(v, torch.Tensor) else (
            v if convert is _plain_torch else opinfo.to_ember(v))
    args = [mark(sample.input)] + [mark(a) for a in sample.args]
    kwargs = {k: mark(v) for k, v in sample.kwargs.items()}

    def fill(v, xs):
        if isinstance(v, tuple) and len(v) == 2 and v[0] == "__leaf__":
            return xs[v[1]]
        if isinstance(v, (list, tuple)):
            return type(v)(fill(x, xs) for x in v)
        return v

    def f(*xs):
        return sample.output_process_fn_grad(
            op(*fill(args, xs), **{k: fill(v, xs) for k, v in kwargs.items()}))
    return f, [convert(t) for t in order]


def _plain_torch(v):
    return v.detach().clone()


def _plain_ember(v):
    return opinfo.to_ember(v.detach())


def _func_vjp(lib, op, sample, convert, seed):
    import torch
    f, xs = _positional(op, sample, convert)
    out, vjp_fn = lib.func.vjp(f, *xs)
    outs = opinfo.flatten(out)
    gen = torch.Generator().manual_seed(seed)
    cots = [torch.randn(tuple(o.shape), dtype=torch.float64, generator=gen)
            if o.dtype.is_floating_point else torch.zeros(tuple(o.shape)) for o in outs]
    if lib is not torch:
        cots = [opinfo.to_ember(c) if o.dtype.is_floating_point else
                lib.zeros(tuple(o.shape), dtype=o.dtype) for c, o in zip(cots, outs)]
    else:
        cots = [c if o.dtype.is_floating_point else torch.zeros_like(o)
                for c, o in zip(cots, outs)]
    cot = cots[0] if not isinstance(out, (tuple, list)) else type(out)(cots) \
        if len(cots) == len(out) else tuple(cots)
    return (out, vjp_fn(cot))


def _func_jvp(lib, op, sample, convert, seed):
    import torch
    f, xs = _positional(op, sample, convert)
    tangents = _tangents(xs, seed)
    if lib is not torch:
        tangents = [opinfo.to_ember(t) for t in tangents]
    return lib.func.jvp(f, tuple(xs), tuple(tangents))


def _func_vmap(lib, op, sample, convert, seed):
    """vmap over a batch of three: the first tensor scaled by 1, 1.5 and 0.5."""
    import torch
    f, xs = _positional(op, sample, convert)
    if not xs:
        return None
    scales = (1.0, 1.5, 0.5)
    batched = lib.stack([xs[0].detach() * s for s in scales])
    rest = [x.detach() for x in xs[1:]]
    dims = (0,) + (None,) * len(rest)
    return lib.func.vmap(f, in_dims=dims)(batched, *rest)


def _compiled(lib, op, sample, convert, seed):
    """ember.compile of the call (every tensor an input) against torch's eager result."""
    f, xs = _positional(op, sample, convert, every_tensor=True)
    if lib.__name__ == "torch":
        return f(*xs)
    return lib.compile(f)(*xs)


def _fx_traced(lib, op, sample, convert, seed):
    """ember.fx.symbolic_trace of the call (every tensor an input), the GraphModule run
    on the values, against torch's eager result."""
    f, xs = _positional(op, sample, convert, every_tensor=True)
    if lib.__name__ == "torch":
        return f(*xs)
    names = [f"x{i}" for i in range(len(xs))]
    scope = {"f": f}
    exec(f"def traced({', '.join(names)}):\n    return f({', '.join(names)})", scope)  # noqa: S102
    return lib.fx.symbolic_trace(scope["traced"])(*xs)


FUNC_CHECKS = {"compile": _compiled, "fx": _fx_traced, "func.vjp": _func_vjp, "func.jvp": _func_jvp, "func.vmap": _func_vmap}


def check_func(info, fn, which):
    import torch
    if which == "func.jvp" and not info.supports_forward_ad:
        return 0, []
    if which == "func.vjp" and not info.supports_autograd:
        return 0, []
    run = FUNC_CHECKS[which]
    passed, failures = 0, []
    grad = which not in ("compile", "fx")
    for i, sample in enumerate(_samples(info, "float64" if grad else "float32",
                                        requires_grad=grad)):
        try:
            expected = run(torch, info.op, sample, _plain_torch, i)
        except Exception:  # noqa: BLE001 - torch refuses the transform for this entry
            continue
        if expected is None:
            continue
        try:
            actual = run(_ember(), fn, sample, _plain_ember, i)
            reason = opinfo.compare(_leaves(actual), _leaves(expected),
                                    "float64" if grad else "float32")
        except Exception as exc:  # noqa: BLE001
            reason = _err(exc)
        if reason:
            failures.append(f"{which} sample {i}: {reason}")
        else:
            passed += 1
    return passed, failures


def _leaves(v):
    return [x for x in opinfo.flatten(v) if x is not None]


def check_entry(info, fn, checks=CHECKS) -> dict:
    record = {"name": info.name, "passed": 0, "failures": []}
    runners = {"values": check_values, "grad": check_grads, "gradgrad": check_gradgrad,
               "forward_ad": check_forward_ad}
    for which in checks:
        try:
            if which in runners:
                p, f = runners[which](info, fn)
            else:
                p, f = check_func(info, fn, which)
        except Exception as exc:  # noqa: BLE001 - the harness goes on
            p, f = 0, [f"{which}: harness {_err(exc)}"]
        record["passed"] += p
        record["failures"] += f
    return record


# --- the expected-failures file ------------------------------------------------------
def write_expected(records, path, tool: str, test: str) -> None:
    """One line per entry and check that fails: `entry check<TAB>first reason`."""
    lines = [f"# {tool}: the entries and checks ember does not pass yet, first reason.",
             f"# Generated by `python tools/{tool} --write-expected <this file>`;",
             f"# {test} fails when one of these starts passing, or when a",
             "# check not listed here fails."]
    for r in records:
        for key, why in failing_checks(r).items():
            lines.append(f"{key}\t{why}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def failing_checks(record) -> dict:
    """{'<entry> <check>': first reason} for a record."""
    out = {}
    for f in record["failures"]:
        check = f.split(" ", 1)[0].rstrip(":")
        out.setdefault(f"{record['name']} {check}", f)
    return out


def read_expected(path) -> dict:
    return opinfo.read_expected(path)


def assert_as_expected(record, expected: dict) -> None:
    """A database test's check of one entry's record: the checks failing are exactly
    the ones the expected-failures list names for that entry (new failures and fixed
    ones both fail the test, so the list stays true)."""
    failing = failing_checks(record)
    listed = {k for k in expected if k.split(" ")[0] == record["name"]}
    new = {k: v for k, v in failing.items() if k not in listed}
    fixed = sorted(listed - set(failing))
    assert not new, f"checks failing that the expected list lacks: {new}"
    assert not fixed, f"listed as failing but pass now (regenerate the list): {fixed}"


def assert_no_stale_entries(expected: dict, entries) -> None:
    """Every entry the expected-failures list names is still in the database."""
    stale = sorted({k.split(" ")[0] for k in expected} - set(entries))
    assert not stale, f"the expected-failures file names entries the database lacks: {stale}"


def print_record(record, verbose=False) -> None:
    status = "ok" if not record["failures"] else f"FAIL({len(record['failures'])})"
    print(f"{record['name']:45s} {status:9s} passed={record['passed']}", flush=True)
    for f in record["failures"] if verbose else record["failures"][:1]:
        print("    " + f)


def main(argv, description: str, entries, check_entry, tool: str, test_file: str) -> int:
    """The command line of a database tool (autograd_function_db.py, custom_op_db.py): a
    pass/fail line per entry, a summary, and optionally the records as JSON and the
    expected-failures file its test reads."""
    import argparse
    import json
    import warnings
    warnings.filterwarnings("ignore")
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("names", nargs="*", help="entry names (default: all)")
    ap.add_argument("--verbose", "-v", action="store_true", help="print every failure")
    ap.add_argument("--json", help="write the per-entry records here")
    ap.add_argument("--write-expected", metavar="FILE")
    args = ap.parse_args(argv)
    records = [check_entry(info) for info in entries(set(args.names)).values()]
    for r in records:
        print_record(r, args.verbose)
    checks = sum(len(failing_checks(r)) for r in records)
    print(f"\n{len(records)} entries: {sum(not r['failures'] for r in records)} pass every "
          f"check; {sum(r['passed'] for r in records)} sample checks pass, {checks} "
          f"(entry, check) pairs fail")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)
    if args.write_expected:
        write_expected(records, args.write_expected, tool, test_file)
    return 0
