"""CPU codegen benchmark: ember's LLVM kernels against NumPy, PyTorch eager and torch.compile.

    python3 benchmarks/cpu.py [--quick] [--no-compile] [--sections machine,gemm,...]

The run is a list of named sections (`SECTIONS`); each adds rows to one Bench table
and may record derived rates (GFLOP/s, GB/s) with their formula. A section reads what
earlier ones measured from `Context` (the machine's FMA peak and copy bandwidth), so
`machine` runs first. To add a section (fused chains, softmax, resnet18, ...), write
`def my_section(ctx: Context) -> None` and append `Section("name", my_section)`.
Writes benchmarks/results/cpu.json (timings, ratios, rates) beside the printed tables.
"""
from __future__ import annotations

import argparse
import ctypes
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.common import Bench, bench_args, measure  # noqa: E402
from ember.codegen.llvm import gemm as G  # noqa: E402
from ember.codegen.llvm import irutil as u  # noqa: E402
from ember.codegen.llvm.conv import conv2d  # noqa: E402
from ember.codegen.llvm.jit import compile_ir  # noqa: E402
from ember.codegen.llvm.target import host_isa, host_target  # noqa: E402
from ember.codegen.llvm.unary import apply_unary  # noqa: E402
from ember.runtime.threads import default_pool  # noqa: E402
from llvmlite import ir  # noqa: E402


@dataclass
class Context:
    bench: Bench
    args: argparse.Namespace
    facts: dict = field(default_factory=dict)      # measured machine facts, by name
    rates: list = field(default_factory=list)      # derived rates: name, value, unit, formula

    def rate(self, name: str, value: float, unit: str, formula: str) -> None:
        self.rates.append({"name": name, "value": value, "unit": unit, "formula": formula})

    def time(self, fn: Callable) -> float:
        """Median seconds of fn, with the run's warmup/repeats."""
        return measure(fn, self.args.warmup, self.args.repeats)["median_s"]


@dataclass
class Section:
    name: str
    run: Callable[[Context], None]


def _compiled(fn):
    return torch.compile(fn)


# --- machine: FMA peak and copy bandwidth ----------------------------------------------------
FMA_CHAINS = 12        # independent accumulators: > FMA latency x pipes (4 x 2 on Zen 4)
FMA_ITERS = 1 << 20


def _fma_loop_kernel():
    """fma_loop(begin, end, worker, out): FMA_ITERS x FMA_CHAINS vector FMAs per chunk."""
    lanes = host_isa().lanes
    module = ir.Module(name="ember_bench_fma_peak")
    fn, b = u.define(module, "fma_loop", u.VOID, [("begin", u.I64), ("end", u.I64),
                                                  ("worker", u.I64), ("out", u.PTR)])
    vt = u.vec(u.F32, lanes)
    accs = [u.const_like(vt, 1.0 + i) for i in range(FMA_CHAINS)]
    mul, add = u.const_like(vt, 0.999999), u.const_like(vt, 1e-7)
    pre = b.block
    loop, done = b.append_basic_block("loop"), b.append_basic_block("done")
    b.branch(loop)
    b.position_at_end(loop)
    i = b.phi(u.I64)
    i.add_incoming(u.i64(0), pre)
    phis = [b.phi(vt) for _ in accs]
    for phi, init in zip(phis, accs):
        phi.add_incoming(init, pre)
        phi.add_incoming(u.fma(b, phi, mul, add), loop)
    i.add_incoming(b.add(i, u.i64(1)), loop)
    b.cbranch(b.icmp_signed("<", i, u.i64(FMA_ITERS)), loop, done)
    b.position_at_end(done)
    total = phis[0]
    for phi in phis[1:]:
        total = b.fadd(total, phi)           # keep every chain live
    u.store_vec(b, total, fn.args[3], b.mul(fn.args[2], u.i64(lanes)))
    b.ret_void()
    lib = compile_ir(module)
    return lib.function("fma_loop", None, *[ctypes.c_int64] * 3, ctypes.c_void_p), lanes


def machine(ctx: Context) -> None:
    kernel, lanes = _fma_loop_kernel()
    pool = default_pool()
    sink = np.zeros(lanes * pool.n_threads, np.float32)
    flops_per_thread = 2 * lanes * FMA_CHAINS * FMA_ITERS
    for threads in (1, pool.n_threads):
        s = ctx.time(lambda: pool.parallel_for(kernel, threads, sink.ctypes.data))
        ctx.rate(f"FMA peak, {threads} thread(s)", threads * flops_per_thread / s / 1e9,
                 "GFLOP/s", "2 * lanes * chains * iters * threads / s")
    ctx.facts["fma_peak_gflops"] = ctx.rates[-1]["value"]
    src = np.ones(16 << 20, np.float32)                # 64 MiB, reused: no page faults
    dst, dst_t = np.empty_like(src), torch.empty(src.size)
    src_t = torch.from_numpy(src)
    bytes_moved = 2 * src.nbytes                       # read src, write dst
    s_np = ctx.time(lambda: np.copyto(dst, src))
    s_t = ctx.time(lambda: dst_t.copy_(src_t))
    ctx.rate("copy 64 MiB, numpy", bytes_moved / s_np / 1e9, "GB/s", "2 * bytes / s")
    ctx.rate("copy 64 MiB, torch (threaded)", bytes_moved / s_t / 1e9, "GB/s", "2 * bytes / s")
    ctx.facts["copy_gbps"] = bytes_moved / min(s_np, s_t) / 1e9


# --- GEMM ------------------------------------------------------------------------------------
def gemm(ctx: Context) -> None:
    rng = np.random.default_rng(0)
    for n in (1024, 2048):
        a, b = rng.standard_normal((2, n, n), dtype=np.float32)
        c = np.empty((n, n), np.float32)
        at, bt, ct = map(torch.from_numpy, (a, b, c))
        mm = _compiled(lambda x, y: x @ y)
        row = ctx.bench.row(f"gemm {n}x{n}x{n} f32", ember=lambda: G.gemm(a, b, c),
                            numpy=lambda: np.matmul(a, b, out=c),
                            torch=lambda: torch.mm(at, bt, out=ct),
                            torch_compile=lambda: mm(at, bt))
        flops = 2 * n ** 3
        for who in ("ember", "numpy", "torch"):
            gf = flops / row[who]["median_s"] / 1e9
            ctx.rate(f"gemm {n} {who}", gf, "GFLOP/s", "2 n^3 / s")
        ember_gf = flops / row["ember"]["median_s"] / 1e9
        ctx.rate(f"gemm {n} ember / numpy BLAS", ember_gf / (flops / row["numpy"]["median_s"] / 1e9),
                 "x", "numpy_s / ember_s")
        if "fma_peak_gflops" in ctx.facts:
            ctx.rate(f"gemm {n} ember / FMA peak", ember_gf / ctx.facts["fma_peak_gflops"], "x",
                     "ember GFLOP/s / measured peak")


def threads(ctx: Context) -> None:
    """GEMM 1024 on 1 thread vs all: the pool's scaling."""
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 1024, 1024), dtype=np.float32)
    c = np.empty((1024, 1024), np.float32)
    times = {t: ctx.time(lambda: G.gemm(a, b, c, threads=t))
             for t in sorted({1, default_pool().n_threads})}
    for t, s in times.items():
        ctx.rate(f"gemm 1024, {t} thread(s)", 2 * 1024 ** 3 / s / 1e9, "GFLOP/s", "2 n^3 / s")
    ctx.rate("thread scaling (gemm 1024)", times[1] / times[max(times)], "x", "t(1) / t(all)")


# --- vecmath ---------------------------------------------------------------------------------
def _vecmath_baselines():
    F = torch.nn.functional
    return {  # name -> (numpy fn(x, out) or None, torch fn(x, out), torch fn for compile)
        "exp": (lambda x, o: np.exp(x, out=o), lambda x, o: torch.exp(x, out=o), torch.exp),
        "log": (lambda x, o: np.log(x, out=o), lambda x, o: torch.log(x, out=o), torch.log),
        "tanh": (lambda x, o: np.tanh(x, out=o), lambda x, o: torch.tanh(x, out=o), torch.tanh),
        "sigmoid": (None, lambda x, o: torch.sigmoid(x, out=o), torch.sigmoid),
        "erf": (None, lambda x, o: torch.erf(x, out=o), torch.erf),
        "gelu": (None, lambda x, o: o.copy_(F.gelu(x)), F.gelu),
    }


def vecmath(ctx: Context) -> None:
    rng = np.random.default_rng(2)
    x = (rng.random(16 << 20, dtype=np.float32) * 8 + 0.01).astype(np.float32)  # log needs > 0
    out = np.empty_like(x)
    xt, outt = torch.from_numpy(x), torch.from_numpy(out.copy())
    for name, (np_fn, t_fn, c_fn) in _vecmath_baselines().items():
        compiled = _compiled(c_fn)
        row = ctx.bench.row(f"{name} 16M f32", ember=lambda: apply_unary(name, x, out),
                            numpy=None if np_fn is None else (lambda: np_fn(x, out)),
                            torch=lambda: t_fn(xt, outt), torch_compile=lambda: compiled(xt))
        gbps = 2 * x.nbytes / row["ember"]["median_s"] / 1e9     # read x, write out
        ctx.rate(f"{name} ember", gbps, "GB/s", "2 * 4 * n / s (read x, write out)")
        if "copy_gbps" in ctx.facts:
            ctx.rate(f"{name} ember / copy bandwidth", gbps / ctx.facts["copy_gbps"], "x",
                     "ember GB/s / measured copy GB/s")


# --- conv2d ----------------------------------------------------------------------------------
CONV_LAYERS = [  # (label, N, C_in, H, C_out, k, stride, padding): resnet18 at batch 8
    ("stem 7x7/2", 8, 3, 224, 64, 7, 2, 3),
    ("layer1 3x3", 8, 64, 56, 64, 3, 1, 1),
    ("layer2 3x3", 8, 128, 28, 128, 3, 1, 1),
    ("layer3 3x3", 8, 256, 14, 256, 3, 1, 1),
    ("layer2 1x1/2 downsample", 8, 64, 56, 128, 1, 2, 0),
]


def conv(ctx: Context) -> None:
    rng = np.random.default_rng(3)
    for label, n, c, h, co, k, s, p in CONV_LAYERS:
        x = rng.standard_normal((n, c, h, h), dtype=np.float32)
        w = rng.standard_normal((co, c, k, k), dtype=np.float32)
        x_cl = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        xt, wt = torch.from_numpy(x), torch.from_numpy(w)
        xt_cl = xt.contiguous(memory_format=torch.channels_last)
        conv_t = torch.nn.functional.conv2d
        compiled = _compiled(lambda a, b: conv_t(a, b, stride=s, padding=p))
        ctx.bench.row(f"conv {label} NCHW", ember=lambda: conv2d(x, w, stride=s, padding=p),
                      torch=lambda: conv_t(xt, wt, stride=s, padding=p),
                      torch_compile=lambda: compiled(xt, wt))
        ctx.bench.row(f"conv {label} NHWC", ember=lambda: conv2d(x_cl, w, stride=s, padding=p,
                                                                  layout="nhwc"),
                      torch=lambda: conv_t(xt_cl, wt, stride=s, padding=p),
                      torch_compile=lambda: compiled(xt_cl, wt))


# --- compile times ---------------------------------------------------------------------------
def compile_times(ctx: Context) -> None:
    """Cold (LLVM O3 + codegen) and warm (object code from the disk cache) GEMM builds."""
    module = G.gemm_module(G.CONFIGS[host_isa()])
    t0 = time.perf_counter()
    compile_ir(module, host_target(), use_cache=False, reuse_loaded=False)
    cold = time.perf_counter() - t0
    compile_ir(module, host_target(), reuse_loaded=False)       # make sure it is on disk
    t0 = time.perf_counter()
    warm = compile_ir(module, host_target(), reuse_loaded=False)
    warm_s = time.perf_counter() - t0
    ctx.rate("gemm kernel cold compile", cold * 1e3, "ms", "IR -> O3 -> object -> load")
    ctx.rate("gemm kernel warm load", warm_s * 1e3, "ms",
             f"disk cache -> load (from_cache={warm.from_cache})")


SECTIONS = [Section("machine", machine), Section("gemm", gemm), Section("threads", threads),
            Section("vecmath", vecmath), Section("conv", conv),
            Section("compile", compile_times)]


def _rates_table(rates):
    from rich.table import Table
    t = Table(title="cpu: derived rates")
    for col in ("rate", "value", "unit", "formula"):
        t.add_column(col, justify="right" if col == "value" else "left")
    for r in rates:
        t.add_row(r["name"], f"{r['value']:.4g}", r["unit"], r["formula"])
    return t


def main(argv=None):
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--sections", default=",".join(s.name for s in SECTIONS))
    own, rest = p.parse_known_args(argv)
    args = bench_args("cpu", rest)
    wanted = own.sections.split(",")
    unknown = set(wanted) - {s.name for s in SECTIONS}
    if unknown:
        raise SystemExit(f"unknown sections {sorted(unknown)}; known: {[s.name for s in SECTIONS]}")
    ctx = Context(Bench("cpu", args), args)
    for section in SECTIONS:
        if section.name in wanted:
            section.run(ctx)
    from rich.console import Console
    Console().print(_rates_table(ctx.rates))
    path = ctx.bench.finish()
    if path is not None:          # add the rates and facts beside the timings
        import json
        data = json.loads(path.read_text())
        data.update(rates=ctx.rates, facts=ctx.facts, isa=host_isa().value,
                    threads=default_pool().n_threads)
        path.write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
