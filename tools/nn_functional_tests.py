"""Run PyTorch's `nn_functional_tests` (torch.testing._internal.jit_metaprogramming_utils)
against ember.nn.functional.

`get_nn_functional_tests()` is the list PyTorch's test_jit.py turns into one test per
torch.nn.functional call: (name, self size or tensor, args, variant, ...), each argument
a shape (a random tensor that requires grad), a tensor, `non_differentiable(tensor)` or a
plain value, made by the module's own `create_input`. Each entry is checked as PyTorch's
test builds it (torch.manual_seed(2), the same inputs) with `F.<name>` naming ember's:

- values: the float32 call gives torch's result (outputs of random functions: dropout,
  gumbel_softmax, fractional_max_pool2d; only shapes and dtypes);
- compile: the float32 call through ember.compile (every tensor argument an input)
  gives torch's eager result (PyTorch's test scripts each call; ember compiles it);
- gradients: the same call in float64 (every floating input cast), gradients of every
  input that requires grad through a fixed random cotangent against torch's
  ('inplace' variants are not differentiated, as PyTorch's test does not);
- second derivatives: check_against_reference's grad-grad case (gradients of
  allSum(grads) * allSum(outputs), float64), except where PyTorch's test skips it.

    python tools/nn_functional_tests.py                      # every entry
    python tools/nn_functional_tests.py test_nn_interpolate_area_4d -v
    python tools/nn_functional_tests.py --write-expected tests/nn/nn_functional_tests_expected.txt

Needs torch (the oracle); ember itself never imports torch.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import opinfo  # noqa: E402 - torch -> ember values and comparison

# functions whose outputs depend on random draws (torch's generator and ember's differ)
RANDOM = {"dropout", "alpha_dropout", "dropout2d", "dropout3d", "feature_alpha_dropout",
          "gumbel_softmax", "fractional_max_pool2d", "rrelu"}


def _ember():
    import ember  # noqa: PLC0415 - imported late so --help works without it
    return ember


def entries(names=None) -> dict:
    """{test name: entry}, named as test_jit.py names them (test_nn_<name>[_<variant>])."""
    from torch.testing._internal.jit_metaprogramming_utils import get_nn_functional_tests
    out = {}
    for entry in get_nn_functional_tests():
        name, variant = entry[0], entry[3] if len(entry) > 3 else ""
        key = "test_nn_" + name + (f"_{variant}" if variant else "")
        while key in out:
            key += "_"
        if not names or key in names:
            out[key] = entry
    return out


def _inputs(entry, dtype):
    """(args, kwargs) as test_jit.py makes them: self then the entry's arguments."""
    import torch
    from torch.testing._internal.jit_metaprogramming_utils import create_input
    name, self_size, args = entry[:3]
    kwargs = entry[7] if len(entry) > 7 else None
    torch.manual_seed(2)
    self_var = create_input((self_size,), dtype=dtype)[0][0]
    args_var, kwargs_var = create_input(args, call_kwargs=kwargs, dtype=dtype)
    return (self_var,) + args_var, kwargs_var


def _is_random(entry) -> bool:
    name, args = entry[0], entry[2]
    if name == "rrelu":                   # training=False: deterministic
        return bool(args[3]) if len(args) > 3 else False
    return name in RANDOM


def _as_float64(v):
    """A float tensor argument in float64 (keeping whether it requires grad)."""
    import torch
    if isinstance(v, torch.Tensor) and v.is_floating_point():
        out = v.detach().double()
        return out.requires_grad_(v.requires_grad)
    if isinstance(v, (list, tuple)) and not isinstance(v, torch.Size):
        return type(v)(_as_float64(x) for x in v)
    return v


def check_entry(key, entry) -> dict:
    import torch
    ember = _ember()
    name, variant = entry[0], entry[3] if len(entry) > 3 else ""
    record = {"name": key, "passed": 0, "failures": []}
    fn = getattr(ember.nn.functional, name, None)
    if fn is None:
        record["failures"].append(f"missing: ember.nn.functional has no {name}")
        return record
    t_fn = getattr(torch.nn.functional, name)
    random = _is_random(entry)
    process = entry[6] if len(entry) > 6 else (lambda x: x)
    # values, float32
    args, kwargs = _inputs(entry, torch.float)
    try:
        e_args, e_kwargs = opinfo.to_ember(_detached(args)), opinfo.to_ember(kwargs)
        want = t_fn(*_detached(args), **kwargs)
        got = fn(*e_args, **e_kwargs)
        reason = opinfo.compare(process(got), process(want), "float32", values=not random)
    except Exception as exc:  # noqa: BLE001
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
    if reason:
        record["failures"].append(f"values: {reason}")
    else:
        record["passed"] += 1
    if COMPILE["on"] and not random and variant != "inplace":
        try:
            reason = _compile_reason(fn, t_fn, entry, process)
        except Exception as exc:  # noqa: BLE001
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
        if reason:
            record["failures"].append(f"compile: {reason}")
        else:
            record["passed"] += 1
    if variant == "inplace":
        return record
    # gradients, float64
    try:
        reason = _grad_reason(fn, t_fn, entry, process, random)
    except Exception as exc:  # noqa: BLE001
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
    if reason:
        record["failures"].append(f"grad: {reason}")
    elif reason is None:
        record["passed"] += 1
    if random or key in _single_grad():
        return record
    try:
        reason = _gradgrad_reason(fn, t_fn, entry, process)
    except Exception as exc:  # noqa: BLE001
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
    if reason:
        record["failures"].append(f"gradgrad: {reason}")
    elif reason is None:
        record["passed"] += 1
    return record


def _single_grad() -> frozenset:
    """The entries PyTorch's check_against_reference differentiates only once."""
    from torch.testing._internal.common_jit import nn_functional_single_grad
    return nn_functional_single_grad


def _all_sum(values, lib):
    """PyTorch's check_against_reference `allSum`: the sum of every tensor's sum."""
    total = 0
    for v in opinfo.flatten(values):
        if isinstance(v, lib.Tensor) and (v.dtype.is_floating_point or v.dtype.is_complex):
            total = total + v.sum()
    return total


def _gradgrad_reason(fn, t_fn, entry, process):
    """check_against_reference's grad-grad case in float64: the gradients of
    allSum(grads) * allSum(outputs), grads taken with create_graph=True."""
    import torch
    ember = _ember()
    args, kwargs = _inputs(entry, torch.double)
    args = tuple(_as_float64(a) for a in args)
    leaves = [a for a in opinfo.flatten(list(args)) if isinstance(a, torch.Tensor)
              and a.requires_grad]
    if not leaves:
        return ""
    mapping = {id(t): opinfo.to_ember(t, requires_grad=True) for t in leaves}

    def conv(v):
        if isinstance(v, torch.Tensor) and id(v) in mapping:
            return mapping[id(v)]
        if isinstance(v, (list, tuple)) and not isinstance(v, torch.Size):
            return type(v)(conv(x) for x in v)
        return opinfo.to_ember(v)

    def second(lib, call, xs):
        l1 = _all_sum(process(call()), lib)
        if not getattr(l1, "requires_grad", False):
            return None
        grads = lib.autograd.grad(l1, xs, create_graph=True, allow_unused=True)
        l2 = _all_sum([g for g in grads if g is not None], lib) * l1
        if not getattr(l2, "requires_grad", False):
            return None
        return lib.autograd.grad(l2, xs, allow_unused=True)
    want = second(torch, lambda: t_fn(*args, **kwargs), leaves)
    e_leaves = [mapping[id(t)] for t in leaves]
    got = second(ember, lambda: fn(*(conv(a) for a in args), **opinfo.to_ember(kwargs)),
                 e_leaves)
    if want is None or got is None:
        return None if (want is None) == (got is None) else \
            f"second derivative {'missing' if got is None else 'present'}, torch " \
            f"{'has one' if want is not None else 'none'}"
    for k, (g, w) in enumerate(zip(got, want)):
        if g is None or w is None:
            zero = (w is not None and not w.any()) or (g is not None and
                                                         not g.detach().numpy().any())
            if (g is None) != (w is None) and not zero:
                return f"input {k}: {'None' if g is None else 'a value'}, torch " \
                       f"{'None' if w is None else 'a value'}"
            continue
        reason = opinfo.compare(g, w, "float32")   # PyTorch's test: atol 5e-4, rtol 1e-4
        if reason:
            return f"input {k}: {reason}"
    return None


# ember.compile of each call (float32 values against torch's eager result)
COMPILE = {"on": True}


def _compile_reason(fn, t_fn, entry, process):
    """The float32 call through ember.compile (every tensor argument an input of the
    compiled function, the rest fixed) gives torch's eager result."""
    import torch
    args, kwargs = _inputs(entry, torch.float)
    args = _detached(args)
    want = t_fn(*args, **kwargs)
    slots = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor)]
    fixed = list(opinfo.to_ember(args))
    e_kwargs = opinfo.to_ember(kwargs)

    def call(*tensors):
        full = list(fixed)
        for i, t in zip(slots, tensors):
            full[i] = t
        return fn(*full, **e_kwargs)
    got = _ember().compile(call)(*(fixed[i] for i in slots))
    return opinfo.compare(process(got), process(want), "float32")


def _detached(args):
    import torch
    return tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in args)


def _grad_reason(fn, t_fn, entry, process, random):
    """None when ember's float64 gradients are torch's; "" when there is nothing to
    differentiate."""
    import torch
    ember = _ember()
    args, kwargs = _inputs(entry, torch.double)
    args = tuple(_as_float64(a) for a in args)
    leaves = [a for a in opinfo.flatten(list(args)) if isinstance(a, torch.Tensor)
              and a.requires_grad]
    out = process(t_fn(*args, **kwargs))
    outs = [o for o in opinfo.flatten(out) if isinstance(o, torch.Tensor) and o.requires_grad]
    if not leaves or not outs:
        return ""
    gen = torch.Generator().manual_seed(0)
    cots = [torch.randn(o.shape, dtype=o.dtype, generator=gen) for o in outs]
    want = torch.autograd.grad(outs, leaves, cots, allow_unused=True)
    mapping = {id(t): opinfo.to_ember(t, requires_grad=True) for t in leaves}

    def conv(v):
        if isinstance(v, torch.Tensor) and id(v) in mapping:
            return mapping[id(v)]
        if isinstance(v, (list, tuple)) and not isinstance(v, torch.Size):
            return type(v)(conv(x) for x in v)
        return opinfo.to_ember(v)
    e_out = process(fn(*(conv(a) for a in args), **opinfo.to_ember(kwargs)))
    e_outs = [o for o in opinfo.flatten(e_out) if isinstance(o, ember.Tensor)
              and o.requires_grad]
    if len(e_outs) != len(outs):
        return f"{len(e_outs)} differentiable outputs, torch has {len(outs)}"
    e_leaves = [mapping[id(t)] for t in leaves]
    got = ember.autograd.grad(e_outs, e_leaves, [opinfo.to_ember(c) for c in cots],
                              allow_unused=True)
    for k, (g, w) in enumerate(zip(got, want)):
        if w is None or g is None:
            zero = (w is not None and not w.any()) or (g is not None and
                                                         not g.detach().numpy().any())
            if (w is None) != (g is None) and not zero:
                return f"input {k}: {'None' if g is None else 'a value'}, torch " \
                       f"{'None' if w is None else 'a value'}"
            continue
        reason = opinfo.compare(g, w, "float64", values=not random)
        if reason:
            return f"input {k}: {reason}"
    return None


def write_expected(records, path) -> None:
    lines = ["# nn_functional_tests.py: the entries ember does not pass yet, first reason.",
             "# Generated by `python tools/nn_functional_tests.py --write-expected <this file>`;",
             "# tests/nn/test_nn_functional_tests.py fails when one of these starts passing,",
             "# or when an entry not listed here fails."]
    lines += [f"{r['name']}\t{r['failures'][0]}" for r in records if r["failures"]]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def read_expected(path) -> dict:
    return opinfo.read_expected(path)


def main(argv=None):
    warnings.filterwarnings("ignore")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="test names (default: all)")
    ap.add_argument("--verbose", "-v", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--write-expected", metavar="FILE")
    args = ap.parse_args(argv)
    records = [check_entry(k, e) for k, e in entries(set(args.names)).items()]
    for r in records:
        status = "ok" if not r["failures"] else f"FAIL({len(r['failures'])})"
        print(f"{r['name']:60s} {status:8s} passed={r['passed']}", flush=True)
        for f in r["failures"] if args.verbose else r["failures"][:1]:
            print("    " + f)
    print(f"\n{len(records)} entries: {sum(not r['failures'] for r in records)} pass values "
          f"and gradients")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)
    if args.write_expected:
        write_expected(records, args.write_expected)
    return 0


if __name__ == "__main__":
    sys.exit(main())
