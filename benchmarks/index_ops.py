"""Index kernels (codegen/llvm/index_ops.py) against the NumPy reference they replace,
an ember.aot artifact, PyTorch eager and torch.compile, on the two shapes they were
built for:

- a GNN layer's message sum: messages (E, F) scatter-added onto (N, F) node rows by a
  destination index expanded over the features (`h.scatter_add(0, dst[:, None]
  .expand(-1, F), msgs)`), and the same sum as `h.index_add(0, dst, msgs)` (h, the
  node state, an input);
- an embedding bag: rows of a (V, D) table gathered for (B, L) token ids, summed per bag
  (`embedding(ids, table).sum(1)`), and the same rows through `gather` / `x[ids]`.

    python -m benchmarks.index_ops [--quick] [--no-compile] [--torch-threads N] [--save]

Columns: ember = ember.compile (the native entry point, index kernels); reference =
ember.compile with EMBER_INDEX_KERNELS=0 (the NumPy kernel called from the plan, what
compiled plans ran before); aot = the packaged artifact through the lite runtime;
torch / torch_compile. Ratios are other / ember (> 1: ember faster). Nothing is written
without --save (benchmarks/results/index_ops.json).
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import ember  # noqa: E402
from benchmarks.common import Bench, bench_args  # noqa: E402


def _cases(rng, smoke: bool):
    """(label, fn(lib, *tensors), numpy inputs)."""
    n, e, f = (200, 1000, 16) if smoke else (10_000, 200_000, 64)
    msgs = rng.standard_normal((e, f)).astype(np.float32)
    dst = rng.integers(0, n, e)
    v, d, b, length = (1000, 16, 32, 8) if smoke else (50_000, 64, 512, 32)
    table = rng.standard_normal((v, d)).astype(np.float32)
    ids = rng.integers(0, v, (b, length))
    h = rng.standard_normal((n, f)).astype(np.float32)
    return [
        (f"GNN scatter_add E={e} N={n} F={f}",
         lambda m, h, x, i: h.scatter_add(0, i.unsqueeze(1).expand(-1, f), x),
         (h, msgs, dst)),
        (f"GNN index_add E={e} N={n} F={f}",
         lambda m, h, x, i: h.index_add(0, i, x), (h, msgs, dst)),
        (f"embedding bag sum V={v} D={d} B={b} L={length}",
         lambda m, w, i: m.nn.functional.embedding(i, w).sum(1), (table, ids)),
        (f"rows x[ids] V={v} D={d} n={b * length}",
         lambda m, w, i: w[i.reshape(-1)], (table, ids)),
        (f"gather along dim 1 ({b}x{v // 100} of {b}x{v // 10})",
         lambda m, w, i: m.gather(w, 1, i % (v // 10)),
         (rng.standard_normal((b, v // 10)).astype(np.float32),
          rng.integers(0, v // 10, (b, v // 100)))),
    ]


def _compiled(fn, arrays, kernels: bool):
    """ember.compile's plan, built with or without the index kernels (the choice is made
    while the plan is built), warmed to its native entry."""
    previous = os.environ.get("EMBER_INDEX_KERNELS")
    os.environ["EMBER_INDEX_KERNELS"] = "1" if kernels else "0"
    try:
        compiled = ember.compile(lambda *xs: fn(ember, *xs))
        args = [ember.tensor(a) for a in arrays]
        with ember.no_grad():
            compiled(*args)
            compiled(*args)
    finally:
        if previous is None:
            os.environ.pop("EMBER_INDEX_KERNELS")
        else:
            os.environ["EMBER_INDEX_KERNELS"] = previous

    def run():
        with ember.no_grad():
            return compiled(*args)
    return run


def _artifact(fn, arrays, where: str):
    class Model(ember.nn.Module):
        def forward(self, *xs):
            return fn(ember, *xs)
    args = tuple(ember.tensor(a) for a in arrays)
    path = os.path.join(where, "model.ember")
    ember.aot.compile_and_package(ember.export(Model(), args), path)
    from ember.runtime import lite
    model = lite.load_package(path)
    return lambda: model.run(list(arrays))


def _check(label, results):
    """Every column's result must be torch's (to float32 rounding: the sums' order is
    torch's for the kernels, the reference's np.add.at adds in the same order)."""
    want = results.pop("torch")
    for key, got in results.items():
        if not np.allclose(got, want, rtol=1e-5, atol=1e-5):
            raise AssertionError(f"{label}: {key} differs from torch by "
                                 f"{np.abs(got - want).max()}")


def _numpy(value):
    if isinstance(value, (list, tuple)):
        value = value[0]
    return value.detach().numpy() if hasattr(value, "detach") else np.asarray(value)


def main(argv=None):
    import argparse
    parser = argparse.ArgumentParser(description="benchmark: index_ops")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch.set_num_threads (default: torch's own; on a loaded "
                             "2-core host one thread is often faster)")
    args = bench_args("index_ops", argv, parser)
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    b = Bench("index_ops", args)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as where:
        for label, fn, arrays in _cases(rng, args.smoke):
            t_args = [torch.from_numpy(a) for a in arrays]
            fns = {"ember": _compiled(fn, arrays, True),
                   "reference": _compiled(fn, arrays, False),
                   "aot": _artifact(fn, arrays, where),
                   "torch": lambda fn=fn, t=t_args: fn(torch, *t)}
            if not args.no_compile:
                compiled = torch.compile(lambda *xs, fn=fn: fn(torch, *xs))
                fns["torch_compile"] = lambda c=compiled, t=t_args: c(*t)
            _check(label, {k: _numpy(f()) for k, f in fns.items()})
            b.row(label, **fns)
    b.finish()


if __name__ == "__main__":
    main()
