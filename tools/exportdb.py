"""Run PyTorch's export database (`torch._export.db.examples`) against ember.export.

Each case of the database is a small model written against torch (control flow through
`torch.cond` / `map`, `torch._check`, dynamic shapes through views, slicing and
constructors, pytree inputs and outputs, input mutation, closures, decorators, ...),
with example inputs, optional `dynamic_shapes`, and a support level. The case module's
source runs again with `torch` naming ember (tests/compat/porting.torch_as_ember: the
import change a user makes; `functorch.experimental.control_flow` names
`ember._higher_order_ops`), its weights are copied from torch's model by key, and

- `export`: `ember.export(model, args, kwargs, dynamic_shapes=...)` must succeed;
- `specs`: the program's tensor user inputs and its user outputs are as many as
  torch.export's (ember specializes plain-value inputs, torch lists them too), the
  same input dimensions are symbolic, and the range constraints of those dimensions
  (and any other symbols) agree with torch.export's;
- `values`: `ep.module()` on the example inputs equals torch's eager result (and the
  inputs it mutates equal the ones torch's eager call mutated);
- `graph`: the program's graph itself (`ep.graph_module`, flat tensors in and out) on
  the example inputs gives torch's tensor results;
- `saved`: the same as `values` after `ember.export.save` / `load`;
- `dynamic`: where the case has `dynamic_shapes`, `ep.module()` on inputs of other
  sizes inside torch's range equals torch's eager result on them;
- `auto.*`: a case tagged torch.dynamic-shape without dynamic_shapes of its own is
  exported again with every dim `Dim.AUTO`: `export`, `specs` and `dynamic` as above
  against torch.export's same export (where torch.export takes it);
- NOT_SUPPORTED_YET cases: `refuse`: ember must refuse with an error naming the user's
  line in the case's file, or else give torch's eager values (example and other sizes).

    python tools/exportdb.py                      # every case: a pass/fail line each
    python tools/exportdb.py cond_operands -v
    python tools/exportdb.py --write-expected tests/export/exportdb_expected.txt

Needs torch (the oracle); ember itself never imports torch.
"""
from __future__ import annotations

import copy
import importlib
import io
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(Path(__file__).resolve().parent), str(ROOT / "tests" / "compat")]
import opinfo  # noqa: E402 - torch -> ember values and comparison
import opinfo_dbs  # noqa: E402 - expected-failures file, record printing

PACKAGE = "torch._export.db.examples"
CHECKS = ("port", "export", "specs", "values", "graph", "saved", "dynamic", "auto.export",
          "auto.specs", "auto.dynamic", "refuse")


def _ember():
    import ember  # noqa: PLC0415 - imported late so --help works without it
    return ember


def entries(names=None) -> dict:
    """The database's cases by name (all 36, whatever their support level)."""
    from torch._export.db.examples import all_examples
    return {name: case for name, case in sorted(all_examples().items())
            if not names or name in names}


def is_supported(case) -> bool:
    return case.support_level.name == "SUPPORTED"


# --- the case, re-created on ember ------------------------------------------------------
def _shims() -> dict:
    """Modules the port keeps or renames: the database's own `case` module stays torch's
    (it only holds SupportLevel), functorch's control flow is ember's."""
    import types
    import torch._export.db.case as case_module
    shims = {"torch._export": importlib.import_module("torch._export"),
             "torch._export.db": importlib.import_module("torch._export.db"),
             "torch._export.db.case": case_module}
    try:
        ember_hop = importlib.import_module("ember._higher_order_ops")
    except ModuleNotFoundError:     # an ember without it: those cases fail to port
        return shims
    functorch, experimental = types.ModuleType("functorch"), \
        types.ModuleType("functorch.experimental")
    functorch.experimental, experimental.control_flow = experimental, ember_hop
    return {**shims, "functorch": functorch, "functorch.experimental": experimental,
            "functorch.experimental.control_flow": ember_hop}


def ported_scope(case) -> dict:
    """The case module's namespace, its source run with `torch` naming ember."""
    from porting import torch_as_ember
    import linecache
    module = importlib.import_module(f"{PACKAGE}.{case.name}")
    with open(module.__file__) as f:
        source = f.read()
    # the port is the user's own file (outside site-packages, where ember's errors look
    # for the user's line); linecache holds its text for the tracebacks and messages
    path = f"ember_port/{case.name}.py"
    linecache.cache[path] = (len(source), None, source.splitlines(True), path)
    code = compile(source, path, "exec")
    scope = {"__name__": f"ember_port.{case.name}", "__file__": path}
    with torch_as_ember(shims=_shims()):
        exec(code, scope)  # noqa: S102 - PyTorch's own example module
    return scope


def ember_model(case, scope):
    """The ported `model`, holding torch's weights and torch's tensor defaults."""
    from porting import copy_state_dict
    model = scope["model"]
    if hasattr(case.model, "state_dict") and case.model.state_dict():
        copy_state_dict(case.model, model)
    torch_forward = getattr(type(case.model), "forward", None)
    ember_forward = getattr(type(model), "forward", None)
    defaults = getattr(torch_forward, "__defaults__", None)
    if defaults and ember_forward is not None and hasattr(ember_forward, "__defaults__"):
        ember_forward.__defaults__ = tuple(opinfo.to_ember(d) for d in defaults)
    return model


def _copies(case, args=None, kwargs=None):
    """Fresh torch copies of the inputs (a case may mutate them) and their ember twins."""
    args = copy.deepcopy(case.example_args if args is None else args)
    kwargs = copy.deepcopy(case.example_kwargs if kwargs is None else kwargs)
    return (args, kwargs), (opinfo.to_ember(args), opinfo.to_ember(kwargs))


def _err(exc) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"


# --- torch's side -------------------------------------------------------------------------
def torch_export(case):
    import torch
    return torch.export.export(case.model, case.example_args, case.example_kwargs,
                               dynamic_shapes=case.dynamic_shapes, strict=True)


def _bound(value):
    text = str(value)
    return None if text in ("int_oo", "oo", "inf") else int(value)


def torch_facts(ep) -> dict:
    """What the specs check compares: user input/output counts, the symbolic dims of
    each tensor input (by position among the tensor inputs) and their ranges."""
    import torch
    signature = ep.graph_signature
    users = [s for s in signature.input_specs if s.kind.name == "USER_INPUT"]
    placeholders = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
    ranges = {str(k): (_bound(v.lower), _bound(v.upper))
              for k, v in ep.range_constraints.items()}
    dims, position = {}, 0
    for spec in users:
        node = placeholders.get(getattr(spec.arg, "name", None))
        val = node.meta.get("val") if node is not None else None
        if not isinstance(val, torch.Tensor):
            continue
        for d, size in enumerate(val.shape):
            if not isinstance(size, int) and not str(size).isdigit():   # specialized
                dims[(position, d)] = str(size)
        position += 1
    # ember's programs take tensors; a plain value (a str, an int) is specialized into
    # the program, where torch lists it as a constant user input: count tensor inputs
    tensor_inputs = sum(type(s.arg).__name__ == "TensorArgument" for s in users)
    return {"inputs": tensor_inputs,
            "outputs": sum(s.kind.name == "USER_OUTPUT" for s in signature.output_specs),
            "dims": dims, "ranges": ranges}


# --- ember's side -------------------------------------------------------------------------
def ember_export(case, model, ember_inputs):
    ember = _ember()
    args, kwargs = ember_inputs
    return ember.export(model, args, kwargs, dynamic_shapes=_ember_dynamic(case))


def _ember_dynamic(case):
    """The case's dynamic_shapes with torch's Dim objects as ember's."""
    if case.dynamic_shapes is None:
        return None
    Dim = _ember().export.Dim

    def convert(spec):
        if isinstance(spec, dict):
            return {k: convert(v) for k, v in spec.items()}
        if isinstance(spec, (list, tuple)):
            return type(spec)(convert(v) for v in spec)
        if type(spec).__name__ == "Dim" or hasattr(spec, "__name__") and \
                hasattr(spec, "min") and hasattr(spec, "max"):
            upper = spec.max if spec.max is not None and spec.max < 2 ** 62 else None
            return Dim(spec.__name__, min=spec.min, max=upper)
        return spec
    return convert(case.dynamic_shapes)


def ember_facts(ep) -> dict:
    from ember.ir.symdim import poly_text
    ranges = {str(k): (v.lower, None if v.upper == float("inf") else int(v.upper))
              for k, v in ep.range_constraints.items()}
    if ep.dim_exprs:
        dims = {key: poly_text(p) for key, p in ep.dim_exprs.items()}
    else:
        dims = {tuple(key): next(iter(ep.range_constraints), "s0") for key in ep.dynamic_dims}
    signature = ep.graph_signature
    return {"inputs": len(signature.user_inputs), "outputs": len(signature.user_outputs),
            "dims": {k: str(v) for k, v in dims.items()}, "ranges": ranges}


def compare_specs(mine: dict, theirs: dict, more_dynamic=False) -> str | None:
    """`more_dynamic` (Dim.AUTO): ember may keep symbolic a dim torch.export specialized
    (the program then takes more sizes, which the dynamic check tries)."""
    for key in ("inputs", "outputs"):
        if mine[key] != theirs[key]:
            return f"{mine[key]} user {key}, torch.export has {theirs[key]}"
    if more_dynamic and set(mine["dims"]) > set(theirs["dims"]):
        theirs = dict(theirs, dims={**{k: None for k in mine["dims"]}, **theirs["dims"]},
                      ranges={**mine["ranges"], **theirs["ranges"]})
    if set(mine["dims"]) != set(theirs["dims"]):
        return (f"symbolic dims (input, dim) {sorted(mine['dims'])}, torch.export has "
                f"{sorted(theirs['dims'])}")
    for key, symbol in theirs["dims"].items():
        want = theirs["ranges"].get(symbol) if symbol is not None else None
        got = mine["ranges"].get(mine["dims"][key])
        if want is not None and got != want:
            return f"range of input {key[0]} dim {key[1]}: {got}, torch.export has {want}"
    if not more_dynamic and sorted(mine["ranges"].values(), key=str) != \
            sorted(theirs["ranges"].values(), key=str):
        return f"range constraints {mine['ranges']}, torch.export has {theirs['ranges']}"
    return None


def _leaves(value):
    if isinstance(value, dict):
        return [x for v in value.values() for x in _leaves(v)]
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in _leaves(v)]
    return [value]


def _flat_graph_call(ep):
    """The program's graph itself (ep.graph_module: tensor inputs in, the flat tuple of
    tensor results out), called with the tensors of the call's arguments."""
    def run(*args, **kwargs):
        ember = _ember()
        tensors = [t for t in _leaves((args, kwargs)) if isinstance(t, ember.Tensor)]
        return ep.graph_module(*tensors)
    return run


def compare_call(run, case, args=None, kwargs=None, tensors_only=False) -> str | None:
    """None when `run(*args, **kwargs)` on ember gives torch eager's result and leaves
    the inputs as torch's call leaves them, else the reason. `tensors_only`: compare
    the flat tensor results (a graph's outputs) with torch's."""
    import torch
    (t_args, t_kwargs), (e_args, e_kwargs) = _copies(case, args, kwargs)
    expected = copy.deepcopy(case.model)(*t_args, **t_kwargs)
    actual = run(*e_args, **e_kwargs)
    if tensors_only:
        expected = [t for t in _leaves(expected) if isinstance(t, torch.Tensor)]
        actual = list(_leaves(actual))
    a, e = _leaves(actual), _leaves(expected)
    if len(a) != len(e):
        return f"{len(a)} results, torch has {len(e)}"
    if type(actual) is not type(expected) and not hasattr(expected, "shape"):
        return f"result is a {type(actual).__name__}, torch's a {type(expected).__name__}"
    for i, (x, y) in enumerate(zip(a, e)):
        if not hasattr(y, "shape"):
            if x != y:
                return f"result {i} is {x!r}, torch's {y!r}"
            continue
        why = opinfo.compare(x, y, str(y.dtype).split(".")[-1])
        if why:
            return f"result: {why}"
    why = opinfo.compare(_leaves((e_args, e_kwargs)), _leaves((t_args, t_kwargs)), "float32")
    return f"inputs after the call differ from torch's: {why}" if why else None


def other_sizes(case, facts: dict) -> list:
    """Inputs of other sizes inside torch's ranges: every symbol of a dynamic input dim
    takes the example size +1, +3 and -1 (kept inside the range and >= 2)."""
    import torch
    tensors = [t for t in _leaves((case.example_args, case.example_kwargs))
               if isinstance(t, torch.Tensor)]
    examples = {symbol: tensors[i].shape[d] for (i, d), symbol in facts["dims"].items()}
    out = []
    for step in (1, 3, -1):
        sizes = {}
        for symbol, size in examples.items():
            lo, hi = facts["ranges"].get(symbol, (0, None))
            new = size + step
            if new >= max(lo or 0, 2) and (hi is None or new <= hi):
                sizes[symbol] = new
        if len(sizes) == len(examples) and sizes:
            out.append(_resized_inputs(case, facts, sizes))
    return out


def declared_facts(case) -> dict:
    """The dynamic dims and ranges the case's own dynamic_shapes declare (for a case
    torch.export refuses, so that ember's program is still tried at other sizes)."""
    import inspect
    import torch
    bound = inspect.signature(case.model.forward).bind(*case.example_args,
                                                       **case.example_kwargs)
    dims, ranges, position = {}, {}, 0
    for name, value in bound.arguments.items():
        spec = (case.dynamic_shapes or {}).get(name)
        for leaf in _leaves(value):
            if not isinstance(leaf, torch.Tensor):
                continue
            for d, dim in (spec or {}).items() if isinstance(spec, dict) else ():
                dims[(position, d)] = dim.__name__
                upper = dim.max if dim.max is not None and dim.max < 2 ** 62 else None
                ranges[dim.__name__] = (dim.min, upper)
            position += 1
    return {"dims": dims, "ranges": ranges}


def _resized_inputs(case, facts, sizes):
    import torch
    generator = torch.Generator().manual_seed(sum(sizes.values()))
    position = [0]

    def resize(value):
        if isinstance(value, torch.Tensor):
            i = position[0]
            position[0] += 1
            shape = [sizes[facts["dims"][(i, d)]] if (i, d) in facts["dims"] else s
                     for d, s in enumerate(value.shape)]
            if value.is_floating_point():
                return torch.randn(shape, generator=generator, dtype=value.dtype)
            return torch.randint(0, 5, shape, generator=generator, dtype=value.dtype)
        if isinstance(value, dict):
            return {k: resize(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(resize(v) for v in value)
        return value
    return resize((case.example_args, case.example_kwargs))


def _saved(ep):
    ember = _ember()
    buffer = io.BytesIO()
    ember.export.save(ep, buffer)
    buffer.seek(0)
    return ember.export.load(buffer)


def names_user_line(exc, case) -> bool:
    """The error names a line of the case's own file (`dynamic_shape_round.py:13`)."""
    return re.search(rf"{re.escape(case.name)}\.py(:|\", line )\d+", str(exc)) is not None


# --- one case -----------------------------------------------------------------------------
def check_entry(case) -> dict:
    record = {"name": case.name, "passed": 0, "failures": []}

    def attempt(check, fn):
        try:
            why = fn()
        except Exception as exc:  # noqa: BLE001 - the harness goes on
            why = _err(exc)
        if why:
            record["failures"].append(f"{check}: {why}")
        else:
            record["passed"] += 1
        return not why

    scope = {}
    if not attempt("port", lambda: scope.update(ported_scope(case))):
        return record
    model = ember_model(case, scope)
    try:
        reference = torch_export(case)
    except Exception as exc:  # noqa: BLE001 - torch refuses the case (NOT_SUPPORTED_YET)
        reference = exc
    facts = torch_facts(reference) if not isinstance(reference, Exception) else None
    if not is_supported(case):
        attempt("refuse", lambda: _check_refusal(case, model, facts))
        return record
    holder = {}

    def export():
        holder["ep"] = ember_export(case, model, _copies(case)[1])
    if not attempt("export", export):
        return record
    ep = holder["ep"]
    if facts is not None:
        attempt("specs", lambda: compare_specs(ember_facts(ep), facts))
    attempt("values", lambda: compare_call(ep.module(), case))
    attempt("graph", lambda: compare_call(_flat_graph_call(ep), case, tensors_only=True))
    attempt("saved", lambda: compare_call(_saved(ep).module(), case))
    if case.dynamic_shapes is not None and facts is not None:
        attempt("dynamic", lambda: _check_sizes(case, ep, facts))
    if case.dynamic_shapes is None and "torch.dynamic-shape" in case.tags:
        _check_auto(case, model, attempt)
    return record


def auto_shapes(case, lib):
    """dynamic_shapes making every dim of every tensor input `Dim.AUTO` (by forward's
    parameter names, as torch matches them)."""
    import inspect
    import torch
    bound = inspect.signature(case.model.forward).bind(*case.example_args,
                                                       **case.example_kwargs)

    def mark(value):
        if isinstance(value, torch.Tensor):
            return {d: lib.export.Dim.AUTO for d in range(value.dim())} or None
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(mark(v) for v in value)
        return None
    return {name: mark(value) for name, value in bound.arguments.items()}


def _check_auto(case, model, attempt) -> None:
    """A case about dynamic shapes without dynamic_shapes of its own: exported with every
    dim Dim.AUTO (torch.export keeps symbolic the dims the model does not fix), the
    symbolic dims and ranges must be torch's and other sizes must give torch's values.
    Not checked where torch.export itself refuses that export."""
    import torch
    try:
        reference = torch.export.export(case.model, case.example_args, case.example_kwargs,
                                        dynamic_shapes=auto_shapes(case, torch), strict=True)
    except Exception:  # noqa: BLE001 - torch refuses: nothing to compare with
        return
    facts = torch_facts(reference)
    holder = {}

    def export():
        args, kwargs = _copies(case)[1]
        holder["ep"] = _ember().export(model, args, kwargs,
                                       dynamic_shapes=auto_shapes(case, _ember()))
    if not attempt("auto.export", export):
        return
    mine = ember_facts(holder["ep"])
    attempt("auto.specs", lambda: compare_specs(mine, facts, more_dynamic=True))
    # the sizes ember's program claims to take (where each of its dims is one symbol)
    sizes_from = mine if all(s in mine["ranges"] for s in mine["dims"].values()) else facts
    if sizes_from["dims"]:
        attempt("auto.dynamic", lambda: _check_sizes(case, holder["ep"], sizes_from))


def _check_sizes(case, ep, facts) -> str | None:
    inputs = other_sizes(case, facts)
    if not inputs:
        return "no other size lies inside torch's range"
    for args, kwargs in inputs:
        why = compare_call(ep.module(), case, args, kwargs)
        if why:
            shapes = [list(t.shape) for t in _leaves((args, kwargs)) if hasattr(t, "shape")]
            return f"at input shapes {shapes}: {why}"
    return None


def _check_refusal(case, model, facts) -> str | None:
    """A case torch does not support yet: ember refuses naming the user's line, or gets
    it right."""
    try:
        ep = ember_export(case, model, _copies(case)[1])
    except Exception as exc:  # noqa: BLE001 - the refusal under test
        if names_user_line(exc, case):
            return None
        return f"refused without naming the line in {case.name}.py: {_err(exc)}"
    why = compare_call(ep.module(), case)
    if why is None and case.dynamic_shapes is not None:
        why = _check_sizes(case, ep, facts or declared_facts(case))
    return f"exported, but: {why}" if why else None


def main(argv=None) -> int:
    import warnings
    warnings.filterwarnings("ignore")
    import logging
    logging.disable(logging.CRITICAL)     # torch.export logs the refusals it raises
    return opinfo_dbs.main(argv, __doc__.splitlines()[0], entries,
                           lambda case: check_entry(case), "exportdb.py",
                           "tests/export/test_exportdb.py")


if __name__ == "__main__":
    sys.exit(main())
