"""Jacobians and Hessians: ember's vmap-vectorized transforms vs its row loop vs torch.

    python3 benchmarks/autograd_functional.py [--quick]

Two problems, as in issue #5:
- jacobian of g(x) = tanh(W x) + sin(x), 256 -> 256 inputs/outputs (float64);
- hessian of f(x) = sum(tanh(W x)) + sum(x sin(x)), a scalar function of 256 inputs.
For each: ember.func.jacrev / ember.func.hessian (one batched graph: vmap over vjp and
jvp), ember.autograd.functional.jacobian/hessian(vectorize=True) when it exists, and
ember's eager row loop (one backward pass per output row through ember.autograd.grad),
each against torch.autograd.functional with vectorize=True ("torch" column). The
"row loop / vectorized" ratio (> 1: vectorizing pays) is printed and stored per row.
With --save, writes benchmarks/results/autograd_functional.json.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.autograd.functional as TAF  # noqa: E402

import ember  # noqa: E402
import ember.func as EF  # noqa: E402
from benchmarks.common import Bench, bench_args  # noqa: E402

N = 256


def problems(seed: int = 0, n: int = N):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((n, n)) / np.sqrt(n)
    x = rng.standard_normal(n)
    we, xe = ember.tensor(w), ember.tensor(x)
    wt, xt = torch.tensor(w), torch.tensor(x)
    jac_e = lambda v: ember.tanh(we @ v) + ember.sin(v)              # noqa: E731
    jac_t = lambda v: torch.tanh(wt @ v) + torch.sin(v)              # noqa: E731
    hess_e = lambda v: ember.tanh(we @ v).sum() + (v * ember.sin(v)).sum()   # noqa: E731
    hess_t = lambda v: torch.tanh(wt @ v).sum() + (v * torch.sin(v)).sum()   # noqa: E731
    return (jac_e, jac_t, hess_e, hess_t), xe, xt


def jacobian_row_loop(fn, x):
    """One reverse pass per output row: what vectorize=False does."""
    x = x.detach().requires_grad_(True)
    y = fn(x)
    rows = [ember.autograd.grad(y[i], x, retain_graph=True)[0] for i in range(y.shape[0])]
    return ember.stack(rows)


def hessian_row_loop(fn, x):
    x = x.detach().requires_grad_(True)
    (g,) = ember.autograd.grad(fn(x), x, create_graph=True)
    rows = [ember.autograd.grad(g[i], x, retain_graph=True)[0] for i in range(g.shape[0])]
    return ember.stack(rows)


def _functional():
    try:
        from ember.autograd import functional
        return functional
    except ImportError:
        return None


def check_agreement(fns, xe, xt) -> None:
    """Every ember variant equals torch before anything is timed."""
    jac_e, jac_t, hess_e, hess_t = fns
    want_j = TAF.jacobian(jac_t, xt, vectorize=True).numpy()
    want_h = TAF.hessian(hess_t, xt, vectorize=True).numpy()
    for got, want in ((EF.jacrev(jac_e)(xe), want_j), (jacobian_row_loop(jac_e, xe), want_j),
                      (EF.hessian(hess_e)(xe), want_h), (hessian_row_loop(hess_e, xe), want_h)):
        np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-8, atol=1e-10)


def parse_args(argv=None):
    return bench_args("autograd_functional", argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    n = 16 if args.smoke else N                 # --smoke: a 16-dim problem proves it runs
    fns, xe, xt = problems(n=n)
    jac_e, jac_t, hess_e, hess_t = fns
    check_agreement(fns, xe, xt)
    bench = Bench("autograd_functional", args)
    torch_jac = lambda: TAF.jacobian(jac_t, xt, vectorize=True)     # noqa: E731
    torch_hess = lambda: TAF.hessian(hess_t, xt, vectorize=True)    # noqa: E731
    loop_j = bench.row(f"jacobian {n}->{n}: ember row loop", ember=lambda: jacobian_row_loop(
        jac_e, xe), torch=torch_jac)
    vec_j = bench.row(f"jacobian {n}->{n}: ember.func.jacrev (vmap)",
                      ember=lambda: EF.jacrev(jac_e)(xe), torch=torch_jac)
    loop_h = bench.row(f"hessian of R^{n}->R: ember row loop", ember=lambda: hessian_row_loop(
        hess_e, xe), torch=torch_hess)
    vec_h = bench.row(f"hessian of R^{n}->R: ember.func.hessian (vmap)",
                      ember=lambda: EF.hessian(hess_e)(xe), torch=torch_hess)
    _functional_rows(bench, jac_e, hess_e, xe, torch_jac, torch_hess, loop_j, loop_h)
    for loop, vec in ((loop_j, vec_j), (loop_h, vec_h)):
        vec["ratios"]["ember_row_loop"] = loop["ember"]["median_s"] / vec["ember"]["median_s"]
    bench.finish()
    for row in bench.rows:
        if "ember_row_loop" in row["ratios"]:
            print(f"{row['name']}: row loop / vectorized = "
                  f"{row['ratios']['ember_row_loop']:.3g}x, "
                  f"torch(vectorize=True) / ember = {row['ratios']['torch']:.3g}x")


def _functional_rows(bench, jac_e, hess_e, xe, torch_jac, torch_hess, loop_j, loop_h):
    """ember.autograd.functional(vectorize=True) rows, when that module can do it."""
    functional = _functional()
    cases = (("jacobian", jac_e, torch_jac, loop_j), ("hessian", hess_e, torch_hess, loop_h))
    for name, fn, torch_fn, loop in cases:
        label = f"{name}: ember.autograd.functional.{name}(vectorize=True)"
        try:
            getattr(functional, name)(fn, xe, vectorize=True)
        except Exception as e:  # noqa: BLE001 - report the row as skipped, keep the others
            bench.skipped.append({"name": label, "reason": f"{type(e).__name__}: {e}"[:200]})
            continue
        row = bench.row(label, ember=lambda: getattr(functional, name)(fn, xe, vectorize=True),
                        torch=torch_fn)
        row["ratios"]["ember_row_loop"] = loop["ember"]["median_s"] / row["ember"]["median_s"]


if __name__ == "__main__":
    main()
