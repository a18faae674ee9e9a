"""Per-conv and per-GEMM speed of a model's compiled CPU plan: shape, time, GFLOP/s and
% of the machine's float32 FMA peak, one row per step of the packaged plan.

    python3 tools/conv_gflops.py [--model resnet18] [--shape 8x3x224x224] [--threads 1]
                                 [--cpu-time] [--repeats 7] [--peak-gflops 220] [--all]

The model (an `ember.models` factory) is exported and packaged to a temporary artifact
(the same plan `ember.compile` runs on the CPU), each step is timed by the artifact's
own stamps (`LiteModel.profile`: median of --repeats calls) and the flops of each conv
(2 * N*OH*OW * C_out * C_in*KH*KW) and GEMM (2*M*N*K) are computed from the plan's
shapes. --cpu-time stamps the calling thread's CPU time: with --threads 1 that is each
step's whole work, unaffected by other processes on a shared host. --peak-gflops is
the float32 FMA peak of the cores used (default: 240 per core, this host's Zen 5: two
512-bit FMA pipes, 64 flops a cycle at ~3.7 GHz; its direct convs measure 240-247 on
one core's thread CPU time), times --threads. GFLOP/s counts a conv's direct flops, so
a Winograd conv (llvm/winograd.py: 4x fewer multiplies) can read above the peak.
--all also lists the steps that are neither (pools, copies, elementwise kernels).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PEAK_PER_CORE = 240.0      # GFLOP/s float32: 2 FMA pipes x 16 lanes x 2 flops x ~3.7 GHz


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet18", help="an ember.models factory")
    p.add_argument("--shape", default="8x3x224x224", help="the input's shape, e.g. 64x1x28x28")
    p.add_argument("--threads", type=int, default=1, help="the artifact pool's threads")
    p.add_argument("--cpu-time", action="store_true",
                   help="stamp the calling thread's CPU time (use with --threads 1)")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--peak-gflops", type=float, default=None)
    p.add_argument("--all", action="store_true", help="list every step, not only convs/GEMMs")
    return p.parse_args(argv)


def step_flops(step: dict, shapes: dict) -> tuple[str, float]:
    """(a description of the product, its flops) for a conv or GEMM step, else ('', 0)."""
    specs = step.get("out_specs") or [{}]
    out = specs[0].get("shape")
    if step["kind"] == "conv" and out:
        n, c_out, oh, ow = out
        c_in = shapes.get(step["inputs"][0], [0, 0])[1]
        kh, kw = step["kernel"]
        how = f"winograd {step['wino_mr']}x{step['wino_nr']}" if "wino_packed" in step \
            else f"tile {step['mr']}x{step['nr']}"
        what = f"{kh}x{kw}/s{step['stride'][0]} {c_in:>3}->{c_out:<3} {oh}x{ow} {how}"
        return what, 2.0 * n * oh * ow * c_out * c_in * kh * kw
    if step["kind"] == "gemm" and out:
        a = shapes.get(step["inputs"][0])
        k = a[-1] if a else 0
        m = int(np.prod(out[:-1]))
        return f"gemm {m}x{out[-1]}x{k} tile {step['mr']}x{step['nr']}", 2.0 * m * out[-1] * k
    return "", 0.0


def slot_shapes(plan: dict, inputs: list) -> dict:
    """slot -> shape: the plan's inputs, then every step's outputs."""
    shapes = {slot: spec["shape"] for slot, spec in zip(plan["input_slots"], inputs)}
    for step in plan["steps"]:
        for slot, spec in zip(step.get("outputs", []), step.get("out_specs", [])):
            shapes[slot] = spec["shape"]
    return shapes


def main(argv=None) -> None:
    args = parse_args(argv)
    os.environ["EMBER_NUM_THREADS"] = str(args.threads)
    import ember
    from ember.runtime.lite import load_package
    shape = tuple(int(s) for s in args.shape.split("x"))
    model = getattr(ember.models, args.model)().eval()
    x = ember.randn(*shape)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.ember")
        ember.aot.compile_and_package(ember.export(model, (x,)), path)
        lite = load_package(path)
        arrays = [np.random.default_rng(0).standard_normal(s["shape"]).astype(s["dtype"])
                  for s in lite.inputs]
        lite(*arrays)
        timings = lite.profile(*arrays, repeats=args.repeats, thread_cpu=args.cpu_time)
        with zipfile.ZipFile(path) as z:
            plan = json.loads(z.read("plan.json"))
    steps = plan["steps"]
    shapes = slot_shapes(plan, lite.inputs)
    peak = args.peak_gflops or PEAK_PER_CORE * args.threads
    total = sum(t for _, _, t in timings)
    flops_all = time_all = 0.0
    print(f"{args.model} {args.shape}, {args.threads} thread(s), "
          f"{'thread CPU' if args.cpu_time else 'wall'} time, peak {peak:.0f} GFLOP/s")
    print(f"{'step':<10} {'what':<44} {'ms':>8} {'GFLOP/s':>8} {'%peak':>6} {'%time':>6}")
    for step, (name, kind, seconds) in zip(steps, timings):
        what, flops = step_flops(step, shapes)
        if flops:
            flops_all += flops
            time_all += seconds
        if not flops and not args.all:
            continue
        rate = flops / seconds / 1e9 if seconds > 0 and flops else 0.0
        print(f"{name:<10} {(what or kind)[:44]:<44} {seconds * 1e3:8.3f} "
              f"{rate:8.1f} {100 * rate / peak:6.1f} {100 * seconds / max(total, 1e-12):6.1f}")
    rate = flops_all / max(time_all, 1e-12) / 1e9
    print(f"convs/GEMMs: {time_all * 1e3:.2f} ms of {total * 1e3:.2f} ms, "
          f"{flops_all / 1e9:.2f} GFLOP, {rate:.1f} GFLOP/s ({100 * rate / peak:.1f}% of peak)")


if __name__ == "__main__":
    main()
