"""CPU benchmark: ember's LLVM kernels and compiled models against NumPy, PyTorch eager
and torch.compile, in one run.

    python3 benchmarks/cpu.py [--quick] [--no-compile] [--sections machine,gemm,...] [--save]

The run is a list of named sections (`SECTIONS`); each adds rows to one Bench table
and may record derived rates (GFLOP/s, GB/s) with their formula. A section reads what
earlier ones measured from `Context` (the machine's FMA peak and copy bandwidth), so
`machine` runs first. Rows time ember and its references *interleaved* (one call of
each per round), because the machine is shared: contention then hits every column
alike. Each row keeps the median and quartiles (the table) and the best call;
`ratios` are median-based, `ratios_best` best-of-N (other / ember: > 1, ember faster),
and `first_call_s` is each callable's first call (compile time for ember.compile and
torch.compile). With --save, writes benchmarks/results/cpu.json (rows, rates, machine facts).
--quick: fewer repeats and the large-model rows with fewer rounds. --smoke: 2 rounds of
the `threads`, `train` and `faults` sections only (unless --sections says otherwise), to
prove the script runs.
Timing: benchmarks.common.timed_row (ember.utils.benchmark.Timer blocks, interleaved,
a 10 ms settle before each block).
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("COLUMNS", "180")     # rich: keep the wide tables readable
import torch  # noqa: E402

from benchmarks.common import (SETTLE_S, Bench, bench_args, measure, timed_row,  # noqa: E402
                               torch_resnet18)
from ember.codegen.llvm import gemm as G  # noqa: E402
from ember.codegen.llvm import irutil as u  # noqa: E402
import ember  # noqa: E402
from ember.codegen.llvm.implicit_conv import prepare_conv2d  # noqa: E402
from ember.runtime.plan import page_faults  # noqa: E402
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
        """Median seconds of fn (Timer-timed), with the run's warmup/repeats."""
        return measure(fn, self.args.warmup, self.args.repeats,
                       min_run_time=self.args.min_run_time)["median_s"]

    def row(self, label: str, ember: Callable, repeats: int | None = None,
            **baselines: Callable | None) -> dict:
        """Time ember and the baselines (numpy=, torch=, torch_compile=) interleaved."""
        if self.args.no_compile:
            baselines.pop("torch_compile", None)
        fns = {"ember": ember, **{k: f for k, f in baselines.items() if f is not None}}
        row = timed_row(label, fns, self.args, repeats, settle_s=SETTLE_S,
                        measurements=self.bench.measurements)
        self.bench.rows.append(row)
        return row




@dataclass
class Section:
    name: str
    run: Callable[[Context], None]


def _compiled(fn, **kwargs):
    """torch.compile(fn, **kwargs) with dynamo's caches cleared first: the benchmarks'
    lambdas share code objects, and dynamo would count every new closure as a recompile of
    one function (falling back to eager past its limit). Each compiled fn serves one row."""
    torch._dynamo.reset()
    return torch.compile(fn, **kwargs)


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
def _best(row: dict, key: str = "ember") -> float:
    return row[key]["min_s"]


def gemm(ctx: Context) -> None:
    rng = np.random.default_rng(0)
    for n in (1024, 2048):
        a, b = rng.standard_normal((2, n, n), dtype=np.float32)
        c = np.empty((n, n), np.float32)
        at, bt, ct = map(torch.from_numpy, (a, b, c))
        mm = _compiled(lambda x, y: x @ y)
        row = ctx.row(f"gemm {n}x{n}x{n} f32", ember=lambda: G.gemm(a, b, c),
                      numpy=lambda: np.matmul(a, b, out=c),
                      torch=lambda: torch.mm(at, bt, out=ct),
                      torch_compile=lambda: mm(at, bt))
        gflops = {who: 2 * n ** 3 / _best(row, who) / 1e9 for who in ("ember", "numpy", "torch")}
        for who, gf in gflops.items():
            ctx.rate(f"gemm {n} {who}", gf, "GFLOP/s", "2 n^3 / best s")
        ctx.rate(f"gemm {n} ember / numpy BLAS", gflops["ember"] / gflops["numpy"], "x",
                 "target >= 0.8")
        if "fma_peak_gflops" in ctx.facts:
            ctx.rate(f"gemm {n} ember / FMA peak", gflops["ember"] / ctx.facts["fma_peak_gflops"],
                     "x", "ember GFLOP/s / measured peak")


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
        row = ctx.row(f"{name} 16M f32", ember=lambda: apply_unary(name, x, out),
                            numpy=None if np_fn is None else (lambda: np_fn(x, out)),
                            torch=lambda: t_fn(xt, outt), torch_compile=lambda: compiled(xt))
        gbps = 2 * x.nbytes / _best(row) / 1e9     # read x, write out
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
    """The kernel compiled plans run (weights packed once, output buffer reused)."""
    rng = np.random.default_rng(3)
    conv_t = torch.nn.functional.conv2d
    for label, n, c, h, co, k, s, p in CONV_LAYERS:
        x = rng.standard_normal((n, c, h, h), dtype=np.float32)
        w = rng.standard_normal((co, c, k, k), dtype=np.float32)
        kernel = prepare_conv2d(w, None, (s, s), (p, p))
        oh = (h + 2 * p - k) // s + 1
        xt, wt = torch.from_numpy(x), torch.from_numpy(w)
        compiled = _compiled(lambda a, b: conv_t(a, b, stride=s, padding=p))
        flops = 2 * n * oh * oh * co * c * k * k
        xt_cl = xt.contiguous(memory_format=torch.channels_last)
        for layout, xt_l in (("NCHW", xt), ("NHWC", xt_cl)):
            x_l = xt_l.numpy()                # (N, C, H, W)-shaped, the layout's strides
            out = np.empty((n, co, oh, oh), np.float32) if layout == "NCHW" else \
                np.empty((n, oh, oh, co), np.float32).transpose(0, 3, 1, 2)
            row = ctx.row(f"conv {label} {layout}", ember=lambda: kernel(x_l, out),
                          torch=lambda: conv_t(xt_l, wt, stride=s, padding=p),
                          torch_compile=lambda: compiled(xt_l, wt))
            ctx.rate(f"conv {label} {layout} ember", flops / _best(row) / 1e9, "GFLOP/s",
                     "2 N OH OW Cout Cin kH kW / best s")


# --- fused pointwise chain, softmax, layernorm (ember.compile) -------------------------------
def _ember_fn(fn, *arrays):
    """ember.compile(fn) on tensors of `arrays`, and torch eager / torch.compile of the
    same function on torch tensors (fn is written against the shared tensor API)."""
    e_args = [ember.tensor(a) for a in arrays]
    t_args = [torch.from_numpy(a) for a in arrays]
    e_fn = ember.compile(lambda *xs: fn(ember_api, *xs))
    t_fn = lambda *xs: fn(torch_api, *xs)        # noqa: E731
    t_compiled = _compiled(t_fn)
    return (lambda: e_fn(*e_args)), (lambda: t_fn(*t_args)), (lambda: t_compiled(*t_args)), \
        e_fn, e_args, t_args


class _Api:
    """The few functions the fused benchmarks need, from ember or torch."""
    def __init__(self, lib):
        self.F = lib.nn.functional
        self.sigmoid = lib.sigmoid


ember_api, torch_api = _Api(ember), _Api(torch)


def _bandwidth_rates(ctx, label, row, nbytes) -> None:
    gbps = nbytes / _best(row) / 1e9
    ctx.rate(f"{label} ember", gbps, "GB/s", "bytes read + written / best s")
    if "copy_gbps" in ctx.facts:
        ctx.rate(f"{label} ember / copy bandwidth", gbps / ctx.facts["copy_gbps"], "x",
                 "target >= 0.6")
    if "torch_compile" in row and "min_s" in row["torch_compile"]:
        ctx.rate(f"{label} torch.compile", nbytes / _best(row, "torch_compile") / 1e9, "GB/s",
                 "bytes read + written / best s")


def _np_softmax(x, out):
    np.subtract(x, x.max(axis=1, keepdims=True), out=out)
    np.exp(out, out=out)
    out /= out.sum(axis=1, keepdims=True)


def _np_layernorm(x, w, b, out):
    mean = x.mean(axis=1, keepdims=True)
    np.subtract(x, mean, out=out)
    inv = 1.0 / np.sqrt((out * out).mean(axis=1, keepdims=True) + 1e-5)
    out *= inv
    out *= w
    out += b


def fused(ctx: Context) -> None:
    rng = np.random.default_rng(4)
    rows, cols = 4096, 4096                               # 16M floats, 64 MiB
    x = rng.standard_normal((rows, cols), dtype=np.float32)
    w = rng.standard_normal(cols, dtype=np.float32)
    b = rng.standard_normal(cols, dtype=np.float32)
    out = np.empty_like(x)
    vec_bytes = 2 * 4 * cols                              # w and b, read once

    def chain(api, x, w, b):
        return api.F.gelu(x * w + b) * api.sigmoid(x)
    e, t, tc, *_ = _ember_fn(chain, x, w, b)
    row = ctx.row("gelu(x*w+b)*sigmoid(x) 16M f32", ember=e, torch=t, torch_compile=tc)
    _bandwidth_rates(ctx, "fused gelu chain", row, 2 * x.nbytes + vec_bytes)

    e, t, tc, *_ = _ember_fn(lambda api, x: api.F.softmax(x, dim=-1), x)
    row = ctx.row("softmax 4096x4096 f32", ember=e, numpy=lambda: _np_softmax(x, out),
                  torch=t, torch_compile=tc)
    _bandwidth_rates(ctx, "softmax", row, 2 * x.nbytes)

    e, t, tc, *_ = _ember_fn(lambda api, x, w, b: api.F.layer_norm(x, (cols,), w, b), x, w, b)
    row = ctx.row("layer_norm 4096x4096 f32", ember=e,
                  numpy=lambda: _np_layernorm(x, w, b, out), torch=t, torch_compile=tc)
    _bandwidth_rates(ctx, "layer_norm", row, 2 * x.nbytes + vec_bytes)


# --- models ----------------------------------------------------------------------------------
def _torch_small_cnn():
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(32, 10))


def _torch_mlp():
    nn = torch.nn
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128),
                         nn.ReLU(), nn.Linear(128, 10))


TRANSFORMER = dict(d_model=256, nhead=8, dim_feedforward=1024, dropout=0.0, batch_first=True)


def _same_weights(e_model, t_model):
    """Both models in eval mode holding the ember model's weights (and BN statistics)."""
    state = {k: torch.from_numpy(np.array(v.numpy())) for k, v in e_model.state_dict().items()}
    t_model.load_state_dict(state)
    return e_model.eval(), t_model.eval()


def _model_row(ctx, label, e_model, t_model, x: np.ndarray, channels_last=False,
               repeats=None):
    xe, xt = ember.tensor(x), torch.from_numpy(x)
    if channels_last:
        xe = xe.contiguous(memory_format=ember.channels_last)
        xt = xt.contiguous(memory_format=torch.channels_last)
        t_model = t_model.to(memory_format=torch.channels_last)
    compiled = ember.compile(e_model)
    t_compiled = _compiled(t_model)
    with ember.no_grad(), torch.no_grad():
        row = ctx.row(label, ember=lambda: compiled(xe), torch=lambda: t_model(xt),
                      torch_compile=lambda: t_compiled(xt), repeats=repeats)
        got, want = compiled(xe).numpy(), t_model(xt).numpy()
    row["max_abs_diff_vs_torch"] = float(np.abs(got - want).max())
    row["compile_stats"] = {"seconds": compiled.stats.seconds, "kernels": compiled.stats.kernels,
                            "externs": compiled.stats.externs,
                            "fallbacks": len(compiled.stats.fallbacks)}
    with ember.no_grad():
        row["page_faults_per_call"] = _faults_per_call(lambda: compiled(xe))
    return row


def _faults_per_call(fn, calls: int = 5) -> float:
    fn()
    before = page_faults()
    for _ in range(calls):
        fn()
    return (page_faults() - before) / calls


def models(ctx: Context) -> None:
    rng = np.random.default_rng(5)
    big = 3 if ctx.args.quick else 10                     # rounds for the big models
    e, t = _same_weights(ember.models.mlp(), _torch_mlp())
    _model_row(ctx, "mlp 784-256-128-10, batch 256", e, t,
               rng.standard_normal((256, 1, 28, 28), dtype=np.float32))
    e, t = _same_weights(ember.models.small_cnn(), _torch_small_cnn())
    _model_row(ctx, "small_cnn, batch 64, 1x28x28", e, t,
               rng.standard_normal((64, 1, 28, 28), dtype=np.float32))
    x = rng.standard_normal((8, 3, 224, 224), dtype=np.float32)
    for cl in (False, True):
        e, t = _same_weights(ember.models.resnet18(), torch_resnet18())
        _model_row(ctx, f"resnet18 batch 8 224x224 {'channels-last' if cl else 'NCHW'}", e, t,
                   x, channels_last=cl, repeats=big)
    ember.manual_seed(0)
    e, t = _same_weights(ember.nn.TransformerEncoderLayer(**TRANSFORMER),
                         torch.nn.TransformerEncoderLayer(**TRANSFORMER))
    _model_row(ctx, "transformer encoder layer (d 256, 8 heads, ff 1024), 8x128", e, t,
               rng.standard_normal((8, 128, 256), dtype=np.float32))


def train_step(ctx: Context) -> None:
    """benchmarks/train_step.py's MLP step (compiled ember vs torch eager / torch.compile)."""
    from benchmarks import train_step as ts
    x, y, t_models = ts.same_start(torch)
    step, _ = ts.ember_compiled_step(ts.ember_model_like(t_models[0]), ember.tensor(x),
                                     ember.tensor(y))
    xt, yt = torch.tensor(x), torch.tensor(y)
    row = ctx.row(f"mlp train step (b={ts.BATCH}, Adam)", ember=step,
                  torch=ts.torch_step(t_models[0], xt, yt),
                  torch_compile=ts.torch_step(t_models[1], xt, yt, compiled=True))
    row["page_faults_per_call"] = _faults_per_call(step)


# --- ember.compile as a drop-in: training loop, dynamic batch --------------------------------
def _loop_step(model, opt, loss_fn, x, y):
    """The eager-style training loop body; `model` may be a compiled module."""
    def step():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return step


def drop_in(ctx: Context) -> None:
    """`model = ember.compile(model)` in an ordinary training loop (forward and backward
    compiled, loss and Adam eager) against the same loop with torch eager and with
    `torch.compile(model)` (the dynamic-batch row is its own section, dynamic_batch)."""
    from benchmarks import train_step as ts
    rng = np.random.default_rng(0)
    x = rng.standard_normal((ts.BATCH, ts.SIZES[0])).astype(np.float32)
    y = rng.integers(0, ts.SIZES[-1], ts.BATCH).astype(np.int64)
    torch.manual_seed(0)
    t_models = [ts.mlp(torch.nn) for _ in range(2)]
    t_models[1].load_state_dict(t_models[0].state_dict())
    e_model = ember.compile(ts.ember_model_like(t_models[0]))
    t_compiled = _compiled(t_models[1])
    xe, ye, xt, yt = ember.tensor(x), ember.tensor(y), torch.tensor(x), torch.tensor(y)
    steps = {"ember": _loop_step(e_model, ember.optim.Adam(e_model.parameters(), lr=1e-3),
                                 ember.nn.CrossEntropyLoss(), xe, ye),
             "torch": _loop_step(t_models[0], torch.optim.Adam(t_models[0].parameters(),
                                                               lr=1e-3),
                                 torch.nn.CrossEntropyLoss(), xt, yt),
             "torch_compile": _loop_step(t_compiled, torch.optim.Adam(
                 t_compiled.parameters(), lr=1e-3), torch.nn.CrossEntropyLoss(), xt, yt)}
    ctx.row(f"mlp train loop, model = compile(model) (b={ts.BATCH}, Adam)", **steps)


def dynamic_batch(ctx: Context) -> None:
    """A dynamic-batch inference sweep (batch 1..64, one call each): ember.compile (size 1
    specialized, then one symbolic plan for s0 in [2, inf), compiled at the second size)
    against torch eager and torch.compile(dynamic=True). Every call counts, compiles too
    (first_call_s is the first sweep)."""
    from benchmarks import train_step as ts
    torch.manual_seed(1)
    t_model = ts.mlp(torch.nn).eval()
    e_model = ts.ember_model_like(t_model).eval()
    e_compiled, t_compiled = ember.compile(e_model), _compiled(t_model, dynamic=True)
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((b, ts.SIZES[0])).astype(np.float32) for b in range(1, 65)]
    xes, xts = [ember.tensor(x) for x in xs], [torch.tensor(x) for x in xs]

    def sweep(fn, inputs):
        return lambda: [fn(x) for x in inputs]
    with ember.no_grad(), torch.no_grad():
        row = ctx.row("mlp inference, batch 1..64 (64 calls, one per size)",
                      ember=sweep(e_compiled, xes), torch=sweep(t_model, xts),
                      torch_compile=sweep(t_compiled, xts), repeats=max(3, ctx.args.repeats // 4))
        diff = max(float(np.abs(e_compiled(a).numpy() - t_model(b).numpy()).max())
                   for a, b in zip(xes, xts))
    row["max_abs_diff_vs_torch"] = diff
    entries = list(e_compiled.dispatcher.entries.values())
    row["ember_entries"] = [type(e).__name__ for e in entries]   # Inference (b=1), Dynamic
    row["ember_kernels_generated"] = sum(getattr(e, "kernels_generated", 0) for e in entries)


# --- compile times ---------------------------------------------------------------------------
_COMPILE_SCRIPT = """
import json, time
t0 = time.perf_counter()
import ember
imported = time.perf_counter() - t0
model = ember.models.resnet18().eval()
x = ember.randn(8, 3, 224, 224)
compiled = ember.compile(model)
t0 = time.perf_counter()
with ember.no_grad():
    compiled(x)
first = time.perf_counter() - t0
print(json.dumps({"import_s": imported, "compile_s": compiled.stats.seconds,
                  "first_call_s": first}))
"""


def _fresh_process_compile(cache_dir: str) -> dict:
    env = dict(os.environ, EMBER_CACHE_DIR=cache_dir)
    root = Path(__file__).resolve().parents[1]
    env["PYTHONPATH"] = str(root) + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, "-c", _COMPILE_SCRIPT], env=env, cwd=root,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def compile_times(ctx: Context) -> None:
    """resnet18 (batch 8) compile in fresh processes: cold (an empty kernel cache: every
    kernel through LLVM O3) then warm (object code from that cache). `compile_s` is
    ember.compile's own time (trace, passes, kernels, plan); `first_call_s` adds the
    first run. Also one GEMM module cold and warm, in this process."""
    with tempfile.TemporaryDirectory(prefix="ember-cache-") as cache:
        for kind in ("cold", "warm"):
            got = _fresh_process_compile(cache)
            ctx.facts[f"resnet18_{kind}_compile"] = got
            ctx.rate(f"resnet18 {kind} compile (fresh process)", got["compile_s"], "s",
                     "target < 10 s cold, < 1 s warm")
            ctx.rate(f"resnet18 {kind} first call incl. compile", got["first_call_s"], "s",
                     "compile + one batch-8 forward")
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


def faults(ctx: Context) -> None:
    """Page faults per steady-state call of compiled plans (rows record their own too)."""
    for row in ctx.bench.rows:
        if "page_faults_per_call" in row:
            ctx.rate(f"page faults per call: {row['name']}", row["page_faults_per_call"],
                     "faults", "ru_minflt delta / calls (target ~0)")


SECTIONS = [Section("machine", machine), Section("fused", fused), Section("gemm", gemm),
            Section("threads", threads), Section("vecmath", vecmath), Section("conv", conv),
            Section("models", models), Section("train", train_step),
            Section("drop_in", drop_in), Section("dynamic_batch", dynamic_batch),
            Section("compile", compile_times), Section("faults", faults)]


def _best_ratios_table(rows):
    from rich.table import Table
    t = Table(title="best-of-N ratios (other / ember; > 1: ember faster) and first calls")
    for col in ("benchmark", "ember best", "numpy", "torch", "torch.compile",
                "first call: ember / torch.compile"):
        t.add_column(col, justify="left" if col == "benchmark" else "right")
    for r in rows:
        cells = [r["name"], f"{r['ember']['min_s'] * 1e3:.3g} ms"]
        for key in ("numpy", "torch", "torch_compile"):
            ratio = r.get("ratios_best", {}).get(key)
            cells.append("-" if ratio is None else f"{ratio:.3g}x")
        first = r.get("first_call_s", {})
        cells.append(f"{first.get('ember', float('nan')):.3g} s / "
                     f"{first.get('torch_compile', float('nan')):.3g} s")
        t.add_row(*cells)
    return t


def _rates_table(rates):
    from rich.table import Table
    t = Table(title="cpu: derived rates")
    for col in ("rate", "value", "unit", "formula"):
        t.add_column(col, justify="right" if col == "value" else "left")
    for r in rates:
        t.add_row(r["name"], f"{r['value']:.4g}", r["unit"], r["formula"])
    return t


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="benchmark: cpu")
    p.add_argument("--sections", default=None,
                   help="comma-separated, of: " + ",".join(s.name for s in SECTIONS))
    args = bench_args("cpu", argv, p)
    if args.sections is None:       # --smoke: the cheapest timed sections
        args.sections = ("threads,train,faults" if args.smoke
                         else ",".join(s.name for s in SECTIONS))
    return args


def main(argv=None):
    args = parse_args(argv)
    wanted = args.sections.split(",")
    unknown = set(wanted) - {s.name for s in SECTIONS}
    if unknown:
        raise SystemExit(f"unknown sections {sorted(unknown)}; known: {[s.name for s in SECTIONS]}")
    ctx = Context(Bench("cpu", args), args)
    for section in SECTIONS:
        if section.name in wanted:
            section.run(ctx)
    from rich.console import Console
    Console().print(_rates_table(ctx.rates))
    Console().print(_best_ratios_table(ctx.bench.rows))
    partial = set(wanted) != {s.name for s in SECTIONS}
    kept_rows = _unmeasured("rows", ctx.bench.rows) if partial else []
    kept_rates = _unmeasured("rates", ctx.rates) if partial else []
    path = ctx.bench.finish()
    if path is not None:          # add the rates and facts beside the timings
        data = json.loads(path.read_text())
        data["rows"] = kept_rows + data["rows"]
        data.update(rates=kept_rates + ctx.rates, facts=ctx.facts, isa=host_isa().value,
                    threads=default_pool().n_threads)
        path.write_text(json.dumps(data, indent=2) + "\n")


def _unmeasured(key: str, measured: list) -> list:
    """A --save of some sections keeps the saved rows (or rates) of the others."""
    from benchmarks.common import RESULTS
    path = RESULTS / "cpu.json"
    if not path.exists():
        return []
    names = {r["name"] for r in measured}
    return [r for r in json.loads(path.read_text()).get(key, []) if r["name"] not in names]


if __name__ == "__main__":
    main()
