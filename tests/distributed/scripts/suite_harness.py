"""Run each case of a suite as the same program under torch and under ember, per rank.

A case is a function of one argument `x` (an `Impl`): it uses `x.torch` (the `torch` or
`ember` module), `x.dist` (its `distributed` package), `x.imp("nn.parallel")` (the
framework's submodule of that name), `x.R`/`x.W` and `x.tensor(numpy_array)`. It returns
what should agree; the harness turns tensors into (dtype name, numpy array) pairs, walks
lists/tuples/dicts, and compares. A raised exception is a result too: `errors="fn"` says
both frameworks must raise (ember's error of torch's builtin class or a subclass, with
"fn" in its message), otherwise both must return.

Each rank runs every case (the torch program first, then the ember one: both are
collective, so every rank calls them in the same order) and prints one line per case:
`CASE <rank> <name> OK` or `CASE <rank> <name> FAIL <why>`. The pytest file parses them.

Where gloo lacks a feature ember has (AVG, reduce_scatter, ...), a case passes
`oracle=fn`: a torch program computing the same answer from what gloo has.
"""
from __future__ import annotations

import datetime
import importlib
import json
import os
import sys
import time
import traceback

import numpy as np

TIMEOUT = datetime.timedelta(seconds=30)   # a hung case ends the job this soon
CASES: list = []


class Case:
    def __init__(self, name, fn, errors=None, oracle=None, tol=0.0):
        self.name, self.fn, self.errors, self.oracle, self.tol = name, fn, errors, oracle, tol


def case(name: str, errors: str | None = None, oracle=None, tol: float = 0.0):
    """Register `fn(x)` as case `name` (names must be unique within a suite)."""
    def register(fn):
        assert name not in [c.name for c in CASES], f"duplicate case name {name!r}"
        CASES.append(Case(name, fn, errors, oracle, tol))
        return fn
    return register


class Impl:
    """One framework as the cases see it."""

    def __init__(self, name: str):
        self.name = name
        self.torch = importlib.import_module(name)
        self.dist = importlib.import_module(f"{name}.distributed")
        self.R = int(os.environ["RANK"])
        self.W = int(os.environ["WORLD_SIZE"])
        self.is_torch = name == "torch"
        self.scratch = {}                 # a case's state kept for a later case

    def imp(self, path: str):
        return importlib.import_module(f"{self.name}.{path}")

    def tensor(self, array, **kwargs):
        return self.torch.tensor(np.asarray(array), **kwargs)

    def dtype(self, name: str):
        return getattr(self.torch, name)


def data(rank: int, shape=(2, 3), dtype: str = "float32", seed: int = 0) -> np.ndarray:
    """Rank-dependent values any rank can recompute; floats are multiples of 1/4 so sums
    and small products are exact in any order."""
    rng = np.random.default_rng(1000 * seed + rank + 7)
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype.startswith("int") or dtype.startswith("uint"):
        return rng.integers(1 if seed % 2 else -4, 5, size=shape).astype(dtype)
    return (np.round(rng.standard_normal(shape) * 4) / 4 + (0.5 if seed % 2 else 0)).astype(dtype)


# --- results ---------------------------------------------------------------------------
class Raised:
    def __init__(self, err: BaseException):
        self.err = err

    def __repr__(self):
        return f"raised {type(self.err).__name__}: {str(self.err)[:300]}"


def plain(value):
    """A comparable form of a case's result: tensors become ('tensor', dtype, array)."""
    if isinstance(value, Raised):
        return value
    if isinstance(value, str):
        return str(value)              # str subclasses (dist.Backend) by their text
    if type(value).__name__ in ("dtype", "DType"):
        return "dtype " + str(value).split(".")[-1]
    if hasattr(value, "detach") and hasattr(value, "dtype") and hasattr(value, "shape"):
        t = value.detach()
        name = str(t.dtype).split(".")[-1]
        if name == "bfloat16":
            t, name = t.float(), "bfloat16"
        return ("tensor", name, np.array(t.numpy(), copy=True))
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    if type(value).__module__.split(".")[0] in ("torch", "ember"):
        return f"<{type(value).__name__}>"
    return value


def differ(want, got, tol: float, where: str = "result") -> str | None:
    """Why `got` (ember) differs from `want` (torch), or None."""
    if isinstance(want, tuple) and len(want) == 3 and want[:1] == ("tensor",):
        if not (isinstance(got, tuple) and len(got) == 3 and got[0] == "tensor"):
            return f"{where}: torch gave a {want[1]} tensor, ember gave {got!r:.200}"
        if want[1] != got[1]:
            return f"{where}: dtype {got[1]} != torch's {want[1]}"
        a, b = want[2], got[2]
        if a.shape != b.shape:
            return f"{where}: shape {b.shape} != torch's {a.shape}"
        same = (np.allclose(b, a, rtol=tol, atol=tol, equal_nan=True)
                if a.dtype.kind == "f" else np.array_equal(a, b))
        return None if same else f"{where}: {b.tolist()!r:.300} != torch's {a.tolist()!r:.300}"
    if isinstance(want, dict):
        if not isinstance(got, dict) or list(want) != list(got):
            return f"{where}: keys {list(got) if isinstance(got, dict) else got!r:.300} != " \
                   f"torch's {list(want)!r:.300}"
        for k in want:
            why = differ(want[k], got[k], tol, f"{where}[{k!r}]")
            if why:
                return why
        return None
    if isinstance(want, (list, tuple)):
        if not isinstance(got, (list, tuple)) or len(got) != len(want):
            return f"{where}: {got!r:.300} != torch's {want!r:.300}"
        for i, (a, b) in enumerate(zip(want, got)):
            why = differ(a, b, tol, f"{where}[{i}]")
            if why:
                return why
        return None
    if isinstance(want, float) and isinstance(got, float):
        return None if abs(want - got) <= tol * (1 + abs(want)) else \
            f"{where}: {got!r} != torch's {want!r}"
    return None if want == got else f"{where}: {got!r:.300} != torch's {want!r:.300}"


def _builtin_base(err: BaseException) -> type:
    for cls in type(err).__mro__:
        if cls.__module__ == "builtins":
            return cls
    return Exception


def verdict(c: Case, want, got) -> str | None:
    if c.errors is not None:
        if not isinstance(want, Raised):
            return f"torch did not raise (gave {want!r:.200}); the case is wrong"
        if not isinstance(got, Raised):
            return f"ember did not raise; torch {want!r}"
        base = _builtin_base(want.err)
        if not isinstance(got.err, base):
            return f"ember {got!r} is not a {base.__name__} as torch's: {want!r}"
        if c.errors not in str(got.err):
            return f"ember's message does not name {c.errors!r}: {got!r}"
        return None
    if isinstance(want, Raised):
        return f"torch {want!r}; the case is wrong"
    if isinstance(got, Raised):
        return f"ember {got!r}\n{got.tb}"
    return differ(want, got, c.tol)


def run_one(c: Case, fn, x: Impl):
    try:
        return plain(fn(x))
    except Exception as err:  # noqa: BLE001 - a raised error is a result to compare
        r = Raised(err)
        r.tb = "".join(traceback.format_exception(err)[-3:-1])[-600:]
        return r


def report(rank: int, name: str, why: str | None) -> None:
    status = "OK" if why is None else "FAIL " + json.dumps(why)
    print(f"CASE {rank} {name} {status}", flush=True)


def main(cases=None, init=True) -> None:
    """Initialize both default groups (torch: gloo over a TCPStore on MASTER_PORT;
    ember: the launcher's MPI job) and run every case."""
    rank = int(os.environ["RANK"])
    impls = [Impl("torch"), Impl("ember")]
    if init:
        for impl in impls:
            impl.dist.init_process_group("gloo", timeout=TIMEOUT)
    only = os.environ.get("SUITE_ONLY")
    start, spent = time.perf_counter(), {"torch": 0.0, "ember": 0.0}
    for c in CASES if cases is None else cases:
        if only and only not in c.name:
            continue
        t0 = time.perf_counter()
        want = run_one(c, c.oracle or c.fn, impls[0])
        t1 = time.perf_counter()
        got = run_one(c, c.fn, impls[1])
        spent["torch"] += t1 - t0
        spent["ember"] += time.perf_counter() - t1
        report(rank, c.name, verdict(c, want, got))
        if os.environ.get("SUITE_TIMES"):
            print(f"TIME {rank} {t1 - t0:.3f} {time.perf_counter() - t1:.3f} {c.name}")
    sys.stdout.flush()
    for impl in impls:
        if impl.dist.is_initialized():
            impl.dist.barrier()
            impl.dist.destroy_process_group()
    print(f"SUITE DONE {rank}: cases {time.perf_counter() - start:.1f} s (torch "
          f"{spent['torch']:.1f} s, ember {spent['ember']:.1f} s)", flush=True)
