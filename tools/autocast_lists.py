"""Run PyTorch's autocast op lists (torch.testing._internal.autocast_test_lists) on ember.

`AutocastCPUTestLists` holds what PyTorch's CPU autocast tests run: ops with arguments
grouped by the policy they must follow (`torch_16` / `nn_16`: run in the autocast
dtype; `torch_fp32` / `nn_fp32`: run in float32; `torch_need_autocast_promote`: mixed
float inputs promoted to the widest; `*_expect_builtin_promote`: ordinary type
promotion). Each entry runs as PyTorch's `_run_autocast_outofplace` runs it, once with
bfloat16 and once with float16 as the autocast dtype, through the `torch.*` function
(for the nn lists torch.nn.functional's, or torch._C._nn's where F has none) and the
Tensor method where both libraries have one, and is checked:

- the result dtype is torch's under torch.autocast("cpu") (which is the list's);
- the result equals ember's own control: the arguments cast to the list's dtype by
  hand, autocast off (PyTorch's test asks for bitwise equality; so does this one);
- the values agree with torch's autocast result (tolerance of the result dtype).

`AutocastTestLists` (the CUDA lists) cannot run here; they are checked as a
policy/dtype table: each entry's CPU tensors run under ember.autocast("cpu", float16)
with the CUDA policy table swapped in, and the result dtype must be the list's
(float16 for the *_fp16 lists, float32 for the *_fp32 and promote lists, the entry's
own for builtin promotion, an error for `banned`).

    python tools/autocast_lists.py                       # every case: a pass/fail table
    python tools/autocast_lists.py torch_16.conv1d -v    # cases whose key starts so
    python tools/autocast_lists.py --write-expected tests/frontend/autocast_lists_expected.txt

Needs torch (the oracle); ember itself never imports torch.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import opinfo  # noqa: E402 - torch -> ember values and comparison

# aten ops torch._C._nn exposes whose ember counterpart is a torch.nn.functional call
NN_ALIASES = {
    "reflection_pad1d": lambda F: lambda x, padding: F.pad(x, padding, mode="reflect"),
    # torch._C._nn.nll_loss2d(input, target, weight=None, reduction=Mean, ignore_index=-100):
    # its binding parses the default `Mean` as 0, so an omitted reduction is 'none'
    "nll_loss2d": lambda F: lambda input, target, weight=None, reduction=0, ignore_index=-100:
        F.nll_loss(input, target, weight, ignore_index=ignore_index,
                   reduction=("none", "mean", "sum")[reduction]),
}
# CUDA list names that are methods or aten spellings of ember policy names
CUDA_NAMES = {"__matmul__": "matmul", "__pow__": "pow"}


def _ember():
    import ember  # noqa: PLC0415 - imported late so --help works without it
    return ember


# --- the cases ------------------------------------------------------------------------
def cpu_cases() -> dict:
    """{key: case}: one case per CPU list entry and autocast dtype, as PyTorch's
    TestAutocastCPU runs them."""
    import torch
    from torch.testing._internal.autocast_test_lists import AutocastCPUTestLists
    torch.manual_seed(0)
    lists = AutocastCPUTestLists("cpu")
    cases = {}

    def add(list_name, op, args, kwargs, run_as, amp, out_type=None, nn=False):
        n = sum(1 for c in cases.values() if c["list"] == list_name and c["op"] == op
                and c["amp"] == amp)
        key = f"{list_name}.{op}" + (f"[{n}]" if n else "") + f".{amp}"
        cases[key] = {"list": list_name, "op": op, "args": args, "kwargs": kwargs or {},
                      "run_as": run_as, "amp": amp, "out_type": out_type or run_as,
                      "nn": nn}

    bf16, fp16, fp32 = torch.bfloat16, torch.float16, torch.float32
    for name in ("torch_expect_builtin_promote", "methods_expect_builtin_promote"):
        for op, a1, a2, out in getattr(lists, name):
            add(name, op, a1, {}, fp32, "bfloat16", out)
            add(name, op, a2, {}, fp32, "float16", out)
    for name, nn in (("torch_16", False), ("nn_16", True)):
        for entry in getattr(lists, name):
            op, args, kwargs = entry[0], entry[1], (entry[2] if len(entry) > 2 else {})
            add(name, op, args, kwargs, bf16, "bfloat16", nn=nn)
            add(name, op, args, kwargs, fp16, "float16", nn=nn)
    for name, nn in (("torch_fp32", False), ("nn_fp32", True)):
        for entry in getattr(lists, name):
            op, args, kwargs = entry[0], entry[1], (entry[2] if len(entry) > 2 else {})
            add(name, op, args, kwargs, fp32, "bfloat16", nn=nn)
            add(name, op, args, kwargs, fp32, "float16", nn=nn)
    for op, a1, a2 in lists.torch_need_autocast_promote:
        add("torch_need_autocast_promote", op, a1, {}, fp32, "bfloat16")
        add("torch_need_autocast_promote", op, a2, {}, fp32, "float16")
    return cases


def cuda_cases() -> dict:
    """{key: case} of the CUDA lists, checked as a policy/dtype table."""
    import torch
    from torch.testing._internal.autocast_test_lists import AutocastTestLists
    torch.manual_seed(0)
    lists = AutocastTestLists("cpu")
    want = {"torch_fp16": "float16", "nn_fp16": "float16", "linalg_fp16": "float16",
            "methods_fp16": "float16", "torch_fp32": "float32", "nn_fp32": "float32",
            "methods_fp32": "float32", "torch_need_autocast_promote": "float32",
            "torch_expect_builtin_promote": None, "methods_expect_builtin_promote": None,
            "banned": "error"}
    cases = {}
    for list_name, dtype in want.items():
        for entry in getattr(lists, list_name):
            op = entry[0]
            if op.startswith("cudnn_") or op == "_convolution":
                continue           # CUDA-only aten entry points with no ember twin
            args, rest = entry[1], entry[2:]
            if op == "einsum":      # ("einsum", equation, operands)
                args, rest = (entry[1],) + tuple(entry[2]), entry[3:]
            kwargs = rest[0] if rest and isinstance(rest[0], dict) else {}
            out = rest[0] if rest and isinstance(rest[0], torch.dtype) else None
            if not _torch_accepts(op, args, kwargs, list_name):
                continue           # an entry torch's own call refuses (einsum's 4-d spec)
            n = sum(1 for c in cases.values() if c["list"] == list_name and c["op"] == op)
            key = f"cuda.{list_name}.{op}" + (f"[{n}]" if n else "")
            cases[key] = {"list": list_name, "op": op, "args": args, "kwargs": kwargs,
                          "want": str(out).split(".")[-1] if out is not None else dtype,
                          "nn": list_name.startswith("nn_") or list_name == "banned"}
    return cases


def _torch_accepts(op, args, kwargs, list_name) -> bool:
    """Whether torch runs the entry's call (no autocast) on these CPU tensors."""
    nn = list_name.startswith("nn_") or list_name == "banned"
    calls = _calls(op, nn, "torch")
    if not calls:
        return True
    try:
        calls[0][1](*args, **kwargs)
    except Exception:  # noqa: BLE001
        return False
    return True


# --- ember's callables ------------------------------------------------------------------
def ember_function(op: str, nn: bool):
    """The `torch.<op>` / `torch._C._nn.<op>` counterpart in ember, or None."""
    ember = _ember()
    if op.startswith("__"):
        return None
    if op.startswith("linalg_"):
        return getattr(ember.linalg, op[len("linalg_"):], None)
    if nn:
        if op in NN_ALIASES:
            return NN_ALIASES[op](ember.nn.functional)
        return getattr(ember.nn.functional, op, None) or _aten(op)
    return getattr(ember, op, None) or _aten(op)


def _aten(op: str):
    try:
        return getattr(_ember().ops.aten, op)
    except AttributeError:
        return None


def _torch_function(op: str, nn: bool):
    """torch.<op>; for the nn lists the public torch.nn.functional.<op> where there is
    one (torch._C._nn's bindings take aten's raw arguments), else torch._C._nn.<op>."""
    import torch
    if op.startswith("__"):
        return None                       # dunder methods: the Tensor method only
    if op.startswith("linalg_"):
        return getattr(torch.linalg, op[len("linalg_"):], None)
    if nn:
        return getattr(torch.nn.functional, op, None) or getattr(torch._C._nn, op, None)
    return getattr(torch, op, None)


def _calls(op, nn, lib):
    """[(variant, callable)]: the module function and the Tensor method, where `lib` has
    them (torch's test runs both)."""
    out = []
    fn = _torch_function(op, nn) if lib == "torch" else ember_function(op, nn)
    if fn is not None and (lib == "ember" or _torch_function(op, nn) is not None):
        out.append(("function", fn))
    import torch
    owner = torch.Tensor if lib == "torch" else _ember().Tensor
    if hasattr(torch.Tensor, op) and hasattr(owner, op):
        out.append(("method", lambda *a, **k: getattr(a[0], op)(*a[1:], **k)))
    return out


def _cast(value, dtype, lib):
    """The arguments' floating tensors cast to `dtype` (PyTorch's test's `cast`)."""
    if hasattr(value, "is_floating_point") and hasattr(value, "dtype"):
        return value.to(dtype) if value.is_floating_point() else value
    if isinstance(value, (list, tuple)):
        return type(value)(_cast(v, dtype, lib) for v in value)
    return value


def _dtype_name(dtype) -> str:
    return str(dtype).split(".")[-1]


def _tensors(value) -> list:
    return [v for v in opinfo.flatten(value) if hasattr(v, "dtype") and hasattr(v, "shape")]


# --- checking one case ------------------------------------------------------------------
def check_cpu_case(case) -> list[str]:
    """Failures of one CPU case ([] when it passes)."""
    import torch
    ember = _ember()
    op, nn, args, kwargs = case["op"], case["nn"], case["args"], case["kwargs"]
    t_amp = getattr(torch, case["amp"])
    e_amp = getattr(ember, case["amp"])
    run_as = case["run_as"]
    t_calls, e_calls = dict(_calls(op, nn, "torch")), dict(_calls(op, nn, "ember"))
    if not e_calls:
        return [f"missing: ember has no {op}"]
    failures = []
    for variant, t_fn in t_calls.items():
        e_fn = e_calls.get(variant)
        if e_fn is None:
            failures.append(f"{variant}: missing in ember")
            continue
        with torch.autocast("cpu", dtype=t_amp):
            want = t_fn(*args, **kwargs)
        e_args = opinfo.to_ember(args)
        e_kwargs = opinfo.to_ember(kwargs)
        try:
            with ember.autocast("cpu", dtype=e_amp):
                got = e_fn(*e_args, **e_kwargs)
        except Exception as exc:  # noqa: BLE001
            failures.append(f"{variant}: {type(exc).__name__}: {str(exc).splitlines()[0][:150]}")
            continue
        reason = _dtype_reason(got, want)
        if reason:
            failures.append(f"{variant}: dtype {reason}")
            continue
        try:
            control = e_fn(*_cast(e_args, opinfo.to_ember(run_as), "ember"), **e_kwargs)
            reason = _equal_reason(got, control)
        except Exception as exc:  # noqa: BLE001
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:150]}"
        if reason:
            failures.append(f"{variant}: differs from ember's control (args cast to "
                            f"{_dtype_name(run_as)}, autocast off): {reason}")
            continue
        reason = _values_reason(got, want)
        if reason:
            failures.append(f"{variant}: values vs torch: {reason}")
    return failures


def _dtype_reason(got, want):
    g, w = _tensors(got), _tensors(want)
    if len(g) != len(w):
        return f"{len(g)} tensor outputs, torch {len(w)}"
    for i, (a, b) in enumerate(zip(g, w)):
        if _dtype_name(a.dtype) != _dtype_name(b.dtype):
            return f"output {i} is {_dtype_name(a.dtype)}, torch {_dtype_name(b.dtype)}"
    return None


def _equal_reason(got, control):
    for i, (a, b) in enumerate(zip(_tensors(got), _tensors(control))):
        an, bn = opinfo.as_numpy(a), opinfo.as_numpy(b)
        if an.shape != bn.shape or str(an.dtype) != str(bn.dtype):
            return f"output {i}: {an.dtype}{list(an.shape)} vs {bn.dtype}{list(bn.shape)}"
        if not np.array_equal(an.astype(np.float64) if an.dtype.kind != "b" else an,
                              bn.astype(np.float64) if bn.dtype.kind != "b" else bn,
                              equal_nan=an.dtype.kind == "f" or str(an.dtype) == "bfloat16"):
            return f"output {i}: not bitwise equal"
    return None


# 16-bit GEMMs and convolutions accumulate in a different order than torch's kernels:
# a few units in the last place of a bfloat16/float16 result
VALUE_TOLERANCE = {"bfloat16": (3e-2, 3e-2), "float16": (4e-3, 4e-3)}


def _values_reason(got, want):
    for i, (a, b) in enumerate(zip(_tensors(got), _tensors(want))):
        an, bn = opinfo.as_numpy(a), opinfo.as_numpy(b)
        if an.dtype.kind in "biu" or an.size == 0:
            if not np.array_equal(an, bn):
                return f"output {i}: not equal"
            continue
        rtol, atol = VALUE_TOLERANCE.get(str(an.dtype), (1e-5, 1e-5))
        x, y = an.astype(np.float64), bn.astype(np.float64)
        scale = max(1.0, float(np.nanmax(np.abs(y), initial=0)))
        if not np.allclose(x, y, rtol=rtol, atol=atol * scale, equal_nan=True):
            return f"output {i}: max abs diff {np.nanmax(np.abs(x - y)):.3g}"
    return None


@contextlib.contextmanager
def cuda_policies_on_cpu():
    """ember's CUDA autocast policy table in force for CPU tensors (the CUDA lists run
    without a GPU)."""
    from ember.ir import autocast as table
    saved = table.POLICIES["cpu"]
    table.POLICIES["cpu"] = table.POLICIES["cuda"]
    try:
        yield
    finally:
        table.POLICIES["cpu"] = saved


def check_cuda_case(case) -> list[str]:
    ember = _ember()
    op = CUDA_NAMES.get(case["op"], case["op"])
    calls = dict(_calls(op, case["nn"], "ember"))
    if case["op"].startswith("__"):
        calls = {"method": lambda *a, **k: getattr(a[0], case["op"])(*a[1:], **k)}
    if not calls:
        return [f"missing: ember has no {op}"]
    variant, fn = next(iter(calls.items()))
    args = opinfo.to_ember(case["args"])
    kwargs = opinfo.to_ember(case["kwargs"])
    try:
        with cuda_policies_on_cpu(), ember.autocast("cpu", dtype=ember.float16):
            out = fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001
        if case["want"] == "error":
            return []
        return [f"{variant}: {type(exc).__name__}: {str(exc).splitlines()[0][:150]}"]
    if case["want"] == "error":
        return [f"{variant}: no error (torch's CUDA autocast refuses {op})"]
    tensors = _tensors(out)
    if not tensors:
        return []
    got = _dtype_name(tensors[0].dtype)
    if got != case["want"]:
        return [f"{variant}: dtype {got}, the CUDA list says {case['want']}"]
    return []


def cases(names=None) -> dict:
    out = {**cpu_cases(), **cuda_cases()}
    if names:
        out = {k: v for k, v in out.items() if any(k.startswith(n) for n in names)}
    return out


def check(key, case) -> list[str]:
    try:
        if key.startswith("cuda."):
            return check_cuda_case(case)
        return check_cpu_case(case)
    except Exception as exc:  # noqa: BLE001 - the harness goes on
        return [f"harness: {type(exc).__name__}: {str(exc).splitlines()[0][:150]}"]


def write_expected(records: dict, path) -> None:
    lines = ["# autocast_lists.py: the cases ember does not pass yet, first reason.",
             "# Generated by `python tools/autocast_lists.py --write-expected <this file>`;",
             "# tests/frontend/test_autocast_lists.py fails when one of these starts",
             "# passing, or when a case not listed here fails."]
    lines += [f"{k}\t{f[0]}" for k, f in records.items() if f]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def read_expected(path) -> dict:
    return opinfo.read_expected(path)


def main(argv=None):
    warnings.filterwarnings("ignore")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="case key prefixes (default: all)")
    ap.add_argument("--verbose", "-v", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--write-expected", metavar="FILE")
    args = ap.parse_args(argv)
    records = {}
    for key, case in cases(args.names).items():
        records[key] = check(key, case)
        status = "ok" if not records[key] else "FAIL"
        if records[key] or args.verbose:
            print(f"{key:60s} {status}", flush=True)
            for f in records[key] if args.verbose else records[key][:1]:
                print("    " + f)
    cpu = [k for k in records if not k.startswith("cuda.")]
    cuda = [k for k in records if k.startswith("cuda.")]
    print(f"\nCPU lists: {len(cpu)} cases, {sum(not records[k] for k in cpu)} pass; "
          f"CUDA lists (policy table): {len(cuda)} cases, "
          f"{sum(not records[k] for k in cuda)} pass")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)
    if args.write_expected:
        write_expected(records, args.write_expected)
    return 0


if __name__ == "__main__":
    sys.exit(main())
