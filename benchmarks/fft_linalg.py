"""ember.fft / ember.linalg against NumPy, PyTorch eager and torch.compile: fft, rfft,
solve, eigh and svd at a few sizes (float64 on the CPU; complex128 for fft).

    python -m benchmarks.fft_linalg [--quick] [--no-compile]

Ratios are other / ember (> 1: ember faster). ember's eager kernels are NumPy's, so the
ratio against NumPy measures ember's per-call overhead (meta rule, dispatch, wrapping);
against torch it compares LAPACK/pocketfft builds as well. torch.compile has no codegen
for these ops (they stay calls into ATen's LAPACK/FFT kernels), so its column measures
the compiled wrapper around the same kernels.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import ember  # noqa: E402
import ember.fft  # noqa: E402,F401 - ember.fft.* resolved by name below
import ember.linalg  # noqa: E402,F401
from benchmarks.common import Bench, bench_args  # noqa: E402


def _cases(rng, smoke: bool = False):
    """(label, ember fn, numpy fn, torch fn) for each op and size (the smallest with smoke)."""
    cases = []
    for n in (256,) if smoke else (256, 4096, 65536):
        x = rng.standard_normal(n) + 1j * rng.standard_normal(n)
        r = rng.standard_normal(n)
        cases.append((f"fft n={n}", "fft.fft", np.fft.fft, x))
        cases.append((f"rfft n={n}", "fft.rfft", np.fft.rfft, r))
    for n in (16,) if smoke else (16, 128, 512):
        a = rng.standard_normal((n, n)) + n * np.eye(n)
        b = rng.standard_normal((n, 4))
        s = a @ a.T
        cases.append((f"solve {n}x{n}, 4 rhs", "linalg.solve", np.linalg.solve, (a, b)))
        cases.append((f"eigh {n}x{n}", "linalg.eigh", np.linalg.eigh, s))
        cases.append((f"svd {n}x{n}", "linalg.svd", lambda m: np.linalg.svd(m, False), a))
    return cases


def _resolve(root, path):
    obj = root
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _calls(path, np_fn, data, compile_):
    args = data if isinstance(data, tuple) else (data,)
    e_args = [ember.tensor(a) for a in args]
    t_args = [torch.from_numpy(np.ascontiguousarray(a)) for a in args]
    e_fn = _resolve(ember, path)
    t_fn = _resolve(torch, path)
    extra = {"full_matrices": False} if path.endswith("svd") else {}
    compiled = torch.compile(lambda *xs: t_fn(*xs, **extra)) if compile_ else None
    return (lambda: e_fn(*e_args, **extra), lambda: np_fn(*args),
            lambda: t_fn(*t_args, **extra),
            (lambda: compiled(*t_args)) if compiled else None)


def parse_args(argv=None):
    return bench_args("fft_linalg", argv)


def main(argv=None):
    args = parse_args(argv)
    b = Bench("fft_linalg", args)
    rng = np.random.default_rng(0)
    for label, path, np_fn, data in _cases(rng, args.smoke):
        try:
            e, n, t, tc = _calls(path, np_fn, data, not args.no_compile)
            e()
        except Exception as err:  # an op missing (e.g. ember.fft not landed) skips its rows
            print(f"skipping {label}: ember failed: {type(err).__name__}: {str(err)[:200]}")
            b.skipped.append({"name": label, "error": f"{type(err).__name__}: {str(err)[:300]}"})
            continue
        b.row(label, ember=e, numpy=n, torch=t, torch_compile=tc)
    b.finish()


if __name__ == "__main__":
    main()
