"""The int8 MLP's (1024-4096-1024, batch 64) kernels alone: ember's fused GEMM against
fbgemm's (torch.ops.quantized.linear, x86 engine), each against the VNNI peak, and the
dynamic linear's input pass (range + quantize) against torch.quantize_per_tensor_dynamic.
Where the process may use AMX tiles, the AMX linear kernel (qgemm_amx.prepare_linear,
what eager mode runs there) gets a row of its own per shape.

One thread, CPU time of the calling thread (a host shared with other jobs still
inflates it: caches), interleaved rounds, medians. The peak is measured as in
benchmarks/qconv_shapes.py: a loop of independent vpdpbusd on zmm registers.

    python -m benchmarks.qgemm_mlp [--rounds 7]
"""
from __future__ import annotations

import argparse
import os

import numpy as np

from benchmarks.qconv_shapes import cpu_ms, vnni_peak_gmacs

SHAPES = [(64, 1024, 4096), (64, 4096, 1024)]        # (M, K, N) of the MLP's two layers


def ember_gemm(m, k, n, rng):
    from ember.codegen.llvm import qgemm as Q
    w = rng.integers(-127, 128, (n, k), dtype=np.int8)
    a = rng.integers(0, 256, (m, k), dtype=np.uint8)
    packed = Q.PackedWeight(w, Q.tile_for(Q.active_config(), n))
    run = Q.prepare(Q.linear_gather(a, k // 4), packed,
                    packed.epilogue_vectors(3, np.full(n, 1e-3, np.float32),
                                            np.zeros(n, np.float32)),
                    (10.0, 3.0, 0.0, 255.0), True)
    return lambda: run.on_one_thread(a)


def ember_amx_gemm(m, k, n, rng):
    """The AMX linear kernel (uint8 out) on the calling thread, or None without AMX."""
    from ember.codegen.llvm import qgemm as Q
    from ember.codegen.llvm import qgemm_amx as QA
    if not QA.available():
        return None
    w = rng.integers(-127, 128, (n, k), dtype=np.int8)
    a = rng.integers(0, 256, (m, k), dtype=np.uint8)
    packed = Q.PackedWeight(w, QA.AMX)
    run = QA.prepare_linear(QA.linear_rows(m, k, packed), packed,
                            packed.epilogue_vectors(3, np.full(n, 1e-3, np.float32),
                                                    np.zeros(n, np.float32)),
                            (10.0, 3.0, 0.0, 255.0), True)
    return lambda: run.on_one_thread(a)


def torch_gemm(m, k, n, rng):
    import torch
    w = rng.integers(-127, 128, (n, k)).astype(np.float32) * 0.01
    wq = torch.quantize_per_tensor(torch.from_numpy(w), 0.01, 0, torch.qint8)
    packed = torch.ops.quantized.linear_prepack(wq, torch.zeros(n))
    a = torch.quantize_per_tensor(torch.from_numpy(rng.standard_normal((m, k)).astype(np.float32)),
                                  0.02, 128, torch.quint8)
    return lambda: torch.ops.quantized.linear(a, packed, 0.1, 3)


def input_pass(m, k, rng):
    import torch
    from ember.codegen.llvm import qgemm_input as QI
    x = rng.standard_normal((m, k)).astype(np.float32)
    tx = torch.from_numpy(x)
    return (lambda: QI.quantize_dynamic_input(x),
            lambda: torch.quantize_per_tensor_dynamic(tx, torch.quint8, True))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args(argv)
    import torch
    import ember
    from ember.codegen.llvm import qgemm as Q
    if Q.active_config() is not Q.VNNI:
        raise SystemExit("qgemm_mlp: needs AVX-512 VNNI")
    torch.set_num_threads(1)
    ember.set_num_threads(1)
    rng = np.random.default_rng(0)
    peak = vnni_peak_gmacs()
    print(f"VNNI peak (one thread, measured): {peak:.0f} G int8 MAC/s; load "
          f"{os.getloadavg()[0]:.1f}")
    print(f"{'GEMM M x K x N':>20} {'ember ms':>9} {'fbgemm ms':>9} {'fbgemm/ember':>12}"
          f" {'ember %peak':>11} {'fbgemm %peak':>12}")
    for m, k, n in SHAPES:
        fns = {"ember": ember_gemm(m, k, n, rng), "torch": torch_gemm(m, k, n, rng)}
        amx = ember_amx_gemm(m, k, n, rng)
        if amx is not None:
            fns["amx"] = amx
        times = {key: [] for key in fns}
        for _ in range(args.rounds):
            for key, fn in fns.items():
                fn()
                times[key].append(cpu_ms(fn, 20))
        e, t = (float(np.median(times[key])) for key in ("ember", "torch"))
        macs = m * k * n
        print(f"{f'{m} x {k} x {n}':>20} {e:9.3f} {t:9.3f} {t / e:11.2f}x"
              f" {100 * macs / (e / 1e3) / peak / 1e9:10.0f}% "
              f"{100 * macs / (t / 1e3) / peak / 1e9:11.0f}%")
        if amx is not None:
            a = float(np.median(times["amx"]))
            print(f"{'  AMX linear kernel':>20} {a:9.3f} {t:9.3f} {t / a:11.2f}x"
                  f" {100 * macs / (a / 1e3) / peak / 1e9:10.0f}%")
    print(f"{'dynamic input M x K':>20} {'ember us':>9} {'torch us':>9} {'torch/ember':>12}")
    for m, k in [(64, 1024), (64, 4096)]:
        fns = dict(zip(("ember", "torch"), input_pass(m, k, rng)))
        times = {key: [] for key in fns}
        for _ in range(args.rounds):
            for key, fn in fns.items():
                fn()
                times[key].append(cpu_ms(fn, 200) * 1e3)
        e, t = (float(np.median(times[key])) for key in ("ember", "torch"))
        print(f"{f'{m} x {k}':>20} {e:9.1f} {t:9.1f} {t / e:11.2f}x")


if __name__ == "__main__":
    main()
