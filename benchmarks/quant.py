"""Quantization benchmark: float vs int8 for an MLP (static and dynamic), a small CNN and
a mobilenet-style model (depthwise int8 convolutions), ember against torch.ao (x86
backend) and torch float, on the same weights.

    python3 benchmarks/quant.py [--quick] [--resnet] [--threads N [--cpu-time]] [--save]

Rows come in pairs: "<model> float" times ember float eager against torch float; "<model>
int8 ..." times ember's converted model against torch.ao's (static rows add an
ember_compile column: the converted model through ember.compile, residual adds fused into
their convolutions). Ratios are other / ember
(> 1: ember faster). Beside each int8 row: argmax agreement with torch.ao's int8 model
and the largest logit difference in output quantization steps; after the table, ember's
int8 / float speedup. --resnet adds a resnet18-shaped model at batch 8, 224x224 (slow).
--conv-shapes adds one row per resnet18 convolution shape (the int8 kernels alone).
--threads N runs both libraries on N threads (torch.set_num_threads, ember.set_num_threads);
--cpu-time (with --threads 1) times each call by its thread's CPU time instead of the wall
clock: on a host shared with other jobs that measures the work, not the waiting.
--alone times each library in a process of its own (the other library's threads never
run there: torch's OpenMP workers spin and take cores from ember's, and ember's from
torch's), one process after the other for --rounds rounds; it prints each library's
median wall time per call and its process CPU time per call (all threads), the load
average beside each round, and the int8 rows only (static and dynamic MLP, small CNN,
--resnet adds resnet18 b8, --mobilenet the mobilenet-style model at batch 8, 112x112):

    python3 benchmarks/quant.py --alone --threads 2 --rounds 5 [--resnet] [--mobilenet]
                                [--only small_cnn]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("COLUMNS", "180")

import torch  # noqa: E402
import torch.ao.quantization as tq  # noqa: E402
import torch.ao.quantization.quantize_fx as tqfx  # noqa: E402

import ember  # noqa: E402
import ember.ao.quantization as eq  # noqa: E402
import ember.ao.quantization.quantize_fx as eqfx  # noqa: E402
from benchmarks import common  # noqa: E402
from benchmarks.common import Bench, bench_args, torch_resnet18  # noqa: E402

def mlp(lib):
    nn = lib.nn
    return nn.Sequential(nn.Linear(1024, 4096), nn.ReLU(), nn.Linear(4096, 1024))


def small_cnn(lib):
    nn = lib.nn
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(32, 10))


def mobilenet_style(lib):
    """MobileNetV2's shape at a small scale: inverted residual blocks (1x1 expand, 3x3
    depthwise, 1x1 project, residual add where shapes allow) with ReLU6."""
    nn = lib.nn

    def conv_bn(cin, cout, k, stride=1, groups=1, act=True):
        layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                  nn.BatchNorm2d(cout)]
        return layers + [nn.ReLU6()] if act else layers

    class InvertedResidual(nn.Module):
        def __init__(self, cin, cout, stride, expand):
            super().__init__()
            hidden = cin * expand
            layers = conv_bn(cin, hidden, 1) if expand != 1 else []
            layers += conv_bn(hidden, hidden, 3, stride, groups=hidden)
            layers += conv_bn(hidden, cout, 1, act=False)
            self.body = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            return x + self.body(x) if self.residual else self.body(x)

    blocks = [(32, 16, 1, 1), (16, 24, 2, 6), (24, 24, 1, 6), (24, 32, 2, 6), (32, 32, 1, 6),
              (32, 64, 2, 6), (64, 64, 1, 6)]
    return nn.Sequential(*conv_bn(3, 32, 3, 2),
                         *[InvertedResidual(*b) for b in blocks],
                         *conv_bn(64, 256, 1), nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
                         nn.Linear(256, 10))


def twins(make, rng):
    """The same random float weights in a torch and an ember model (eval mode)."""
    t_model = (torch_resnet18() if make == "resnet18" else make(torch)).eval()
    e_model = (ember.models.resnet18() if make == "resnet18" else make(ember)).eval()
    state = {}
    for k, v in t_model.state_dict().items():
        if v.dtype.is_floating_point:
            arr = rng.standard_normal(tuple(v.shape)).astype(np.float32)
            arr *= 1.0 / np.sqrt(max(1, int(np.prod(v.shape[1:])))) if v.ndim > 1 else 0.1
            if "running_var" in k:
                arr = np.abs(arr) + 1.0
            v = torch.from_numpy(arr)
        state[k] = v
    t_model.load_state_dict(state)
    e_model.load_state_dict({k: ember.tensor(v.numpy()) for k, v in state.items()})
    return t_model, e_model


def agreement(t_out, e_out, float_out) -> dict:
    step = float(np.abs(float_out).max()) / 127
    return {"argmax_agreement": float((t_out.argmax(1) == e_out.argmax(1)).mean()),
            "max_diff_steps": float(np.abs(t_out - e_out).max() / step)}


def static_pair(name, make, shape, b: Bench, rng, calib_batches=4):
    t_model, e_model = twins(make, rng)
    x = rng.standard_normal(shape).astype(np.float32)
    tx, ex = torch.from_numpy(x), ember.tensor(x)
    with torch.no_grad(), ember.no_grad():
        b.row(f"{name} float", ember=lambda: e_model(ex), torch=lambda: t_model(tx))
        calib = [rng.standard_normal(shape).astype(np.float32) for _ in range(calib_batches)]
        t_prep = tqfx.prepare_fx(t_model, tq.get_default_qconfig_mapping("x86"), (tx,))
        e_prep = eqfx.prepare_fx(e_model, eq.get_default_qconfig_mapping("x86"), (ex,))
        for c in calib:
            t_prep(torch.from_numpy(c))
            e_prep(ember.tensor(c))
        t_q, e_q = tqfx.convert_fx(t_prep), eqfx.convert_fx(e_prep)
        # ember_compile: the converted model through ember.compile, whose plan fuses each
        # residual add into its conv's epilogue (passes/qfuse.py); same integers as eager
        compiled = ember.compile(e_q)
        if not np.array_equal(compiled(ex).numpy(), e_q(ex).numpy()):
            raise AssertionError(f"{name}: ember.compile's int8 result differs from eager's")
        row = b.row(f"{name} int8 static (torch = torch.ao x86)", ember=lambda: e_q(ex),
                    torch=lambda: t_q(tx), ember_compile=lambda: compiled(ex))
        row.update(agreement(t_q(tx).numpy(), e_q(ex).numpy(), t_model(tx).numpy()))
    return row


def dynamic_row(name, make, shape, b: Bench, rng):
    t_model, e_model = twins(make, rng)
    x = rng.standard_normal(shape).astype(np.float32)
    tx, ex = torch.from_numpy(x), ember.tensor(x)
    t_q = tq.quantize_dynamic(t_model, {torch.nn.Linear}, dtype=torch.qint8)
    e_q = eq.quantize_dynamic(e_model, {ember.nn.Linear}, dtype=ember.qint8)
    with torch.no_grad(), ember.no_grad():
        row = b.row(f"{name} int8 dynamic (torch = torch.ao)", ember=lambda: e_q(ex),
                    torch=lambda: t_q(tx))
        row.update(agreement(t_q(tx).numpy(), e_q(ex).numpy(), t_model(tx).numpy()))
    return row


def conv_shape_rows(b: Bench, rng) -> None:
    """resnet18's convolution shapes at batch 8: ember's fused GEMM (the kernel on the
    padded channels-last input) against torch.ops.quantized.conv2d; each row records its
    multiply-adds and the VNNI peak measured on this thread."""
    from benchmarks import qconv_shapes as S
    peak = S.vnni_peak_gmacs() if ember_has_vnni() else None
    for name, cin, cout, k, s, pad, hw, count in S.RESNET18:
        e_fn, _, tile = S.ember_conv(cin, cout, k, s, pad, hw, 8, rng)
        oh = (hw + 2 * pad - k) // s + 1
        row = b.row(f"resnet18 conv {name} {cin}->{cout} b8 int8 kernel ({tile}; torch = "
                    f"torch.ao op)", ember=e_fn, torch=S.torch_conv(cin, cout, k, s, pad, hw, 8,
                                                                   rng))
        row["gmac"] = 8 * oh * oh * cout * cin * k * k / 1e9
        row["count_in_resnet18"] = count
        if peak and "median_s" in row.get("ember", {}):
            row["vnni_peak_gmacs"] = peak
            row["share_of_peak"] = row["gmac"] / row["ember"]["median_s"] / peak
            print(f"{name}: {row['gmac'] / row['ember']['median_s']:.0f} G MAC/s, "
                  f"{100 * row['share_of_peak']:.0f}% of the measured one-thread VNNI peak "
                  f"({peak:.0f} G MAC/s)")


def ember_has_vnni() -> bool:
    from ember.codegen.llvm import qgemm
    return qgemm.has_vnni()


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--resnet", action="store_true", help="add resnet18 at batch 8 (slow)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for both libraries (default: each library's own)")
    p.add_argument("--conv-shapes", action="store_true",
                   help="add one row per resnet18 convolution shape (batch 8): ember's int8 "
                        "GEMM kernel against torch.ao's quantized conv op, with the share "
                        "of the measured VNNI peak (benchmarks/qconv_shapes.py)")
    p.add_argument("--cpu-time", action="store_true",
                   help="time by the calling thread's CPU time (needs --threads 1)")
    p.add_argument("--alone", action="store_true",
                   help="each library in its own process, one after the other (int8 rows)")
    p.add_argument("--rounds", type=int, default=5, help="--alone: rounds of both processes")
    p.add_argument("--mobilenet", action="store_true",
                   help="--alone: add the mobilenet-style model (depthwise int8 convs)")
    p.add_argument("--only", metavar="NAME", default=None,
                   help="--alone: only the int8 rows whose name contains NAME (e.g. "
                        "small_cnn, mlp, resnet18)")
    p.add_argument("--worker", choices=("ember", "torch"), help=argparse.SUPPRESS)
    args = bench_args("quant", argv, p)
    if args.cpu_time and args.threads != 1:
        p.error("--cpu-time needs --threads 1 (other threads' work would not be counted)")
    return args


ALONE_MODELS = {"mlp static": (mlp, (64, 1024), False),
                "mlp dynamic": (mlp, (64, 1024), True),
                "small_cnn static": (small_cnn, (64, 1, 28, 28), False),
                "mobilenet-style b8 static": (mobilenet_style, (8, 3, 112, 112), False),
                "resnet18 b8 static": ("resnet18", (8, 3, 224, 224), False)}


def alone_worker(args) -> None:
    """One library's int8 models timed in this process; the other library only builds
    (its ops on one thread, before the clock starts). Prints one JSON line."""
    mine = args.worker
    torch.set_num_threads(args.threads if mine == "torch" else 1)
    ember.set_num_threads(args.threads if mine == "ember" else 1)
    rng = np.random.default_rng(0)
    results = {}
    for name, (make, shape, dynamic) in ALONE_MODELS.items():
        if name.startswith("resnet18") and not args.resnet or \
                name.startswith("mobilenet") and not args.mobilenet or \
                args.only and args.only not in name:
            continue
        t_q, e_q = int8_twins(make, shape, dynamic, rng)
        x = rng.standard_normal(shape).astype(np.float32)
        fn = (lambda: e_q(ember.tensor(x))) if mine == "ember" else \
            (lambda: t_q(torch.from_numpy(x)))
        results[name] = time_calls(fn, 0.5 if name.startswith("resnet") else 0.25)
    print("ALONE " + json.dumps(results))


def int8_twins(make, shape, dynamic, rng):
    """torch.ao's and ember's int8 models of the same float weights."""
    t_model, e_model = twins(make, rng)
    if dynamic:
        return (tq.quantize_dynamic(t_model, {torch.nn.Linear}, dtype=torch.qint8),
                eq.quantize_dynamic(e_model, {ember.nn.Linear}, dtype=ember.qint8))
    x = rng.standard_normal(shape).astype(np.float32)
    with torch.no_grad(), ember.no_grad():
        t_prep = tqfx.prepare_fx(t_model, tq.get_default_qconfig_mapping("x86"),
                                 (torch.from_numpy(x),))
        e_prep = eqfx.prepare_fx(e_model, eq.get_default_qconfig_mapping("x86"),
                                 (ember.tensor(x),))
        for _ in range(2):
            c = rng.standard_normal(shape).astype(np.float32)
            t_prep(torch.from_numpy(c))
            e_prep(ember.tensor(c))
        return tqfx.convert_fx(t_prep), eqfx.convert_fx(e_prep)


def time_calls(fn, seconds: float) -> dict:
    """Median wall and process-CPU milliseconds per call over 7 batches of calls."""
    with torch.no_grad(), ember.no_grad():
        for _ in range(5):
            fn()
        t0 = time.perf_counter()
        fn()
        calls = max(3, int(seconds / 7 / max(time.perf_counter() - t0, 1e-6)))
        walls, cpus = [], []
        for _ in range(7):
            w0, c0 = time.perf_counter(), time.process_time()
            for _ in range(calls):
                fn()
            walls.append((time.perf_counter() - w0) / calls * 1e3)
            cpus.append((time.process_time() - c0) / calls * 1e3)
    return {"wall_ms": float(np.median(walls)), "cpu_ms": float(np.median(cpus))}


def alone_main(args) -> None:
    """--alone: each library in its own subprocess, alternating, --rounds rounds."""
    base = [sys.executable, str(Path(__file__).resolve()), "--threads", str(args.threads or 2)]
    base += ["--resnet"] if args.resnet else []
    base += ["--mobilenet"] if args.mobilenet else []
    base += ["--only", args.only] if args.only else []
    runs = {"ember": [], "torch": []}
    for r in range(args.rounds):
        for lib in ("ember", "torch") if r % 2 == 0 else ("torch", "ember"):
            load = os.getloadavg()[0]
            out = subprocess.run(base + ["--worker", lib], capture_output=True, text=True,
                                 check=True).stdout
            line = next(ln for ln in out.splitlines() if ln.startswith("ALONE "))
            runs[lib].append(json.loads(line[6:]))
            print(f"round {r} {lib:5s} load {load:5.2f}: " + ", ".join(
                f"{k} {v['wall_ms']:.3f} ms (cpu {v['cpu_ms']:.3f})"
                for k, v in runs[lib][-1].items()), flush=True)
    print(f"\nmedians over {args.rounds} rounds, {args.threads or 2} threads "
          "(wall ms per call; process CPU ms per call in brackets; torch / ember > 1: "
          "ember faster)")
    for name in runs["ember"][0]:
        med = {lib: {k: float(np.median([run[name][k] for run in runs[lib]]))
                     for k in ("wall_ms", "cpu_ms")} for lib in runs}
        print(f"  {name:20s} ember {med['ember']['wall_ms']:7.3f} ({med['ember']['cpu_ms']:.3f})"
              f"  torch.ao {med['torch']['wall_ms']:7.3f} ({med['torch']['cpu_ms']:.3f})"
              f"  torch.ao / ember {med['torch']['wall_ms'] / med['ember']['wall_ms']:.2f}x")


def use_threads(args) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
        ember.set_num_threads(args.threads)
    if args.cpu_time:     # every column's clock: this thread's CPU time
        common.clock_for = lambda key: time.thread_time


def main(argv=None):
    warnings.filterwarnings("ignore")        # torch.ao's deprecation notices, per call
    torch.backends.quantized.engine = "x86"  # here, not at import: importing changes nothing
    args = parse_args(argv)
    if args.worker:
        return alone_worker(args)
    if args.alone:
        return alone_main(args)
    use_threads(args)
    rng = np.random.default_rng(0)
    b = Bench("quant", args)
    if not args.smoke:                       # --smoke: the small_cnn pair only
        static_pair("mlp 1024-4096-1024 b64", mlp, (64, 1024), b, rng)
        dynamic_row("mlp 1024-4096-1024 b64", mlp, (64, 1024), b, rng)
    static_pair("small_cnn b64 1x28x28", small_cnn, (64, 1, 28, 28), b, rng)
    if not args.smoke:
        static_pair("mobilenet-style b8 112", mobilenet_style, (8, 3, 112, 112), b, rng)
    if args.resnet:
        static_pair("resnet18 b8 224", "resnet18", (8, 3, 224, 224), b, rng, calib_batches=1)
    if args.conv_shapes:
        conv_shape_rows(b, rng)
    b.finish()
    floats = {r["name"].split(" float")[0]: r for r in b.rows if r["name"].endswith("float")}
    for r in b.rows:
        if "argmax_agreement" not in r:
            continue
        base = floats.get(r["name"].split(" int8")[0])
        speed = ""
        if base:
            ratio = base["ember"]["median_s"] / r["ember"]["median_s"]
            speed = f"; ember float time / ember int8 time: {ratio:.2f}x"
        print(f"{r['name']}: argmax agreement with torch.ao {r['argmax_agreement']:.3f}, "
              f"max logit difference {r['max_diff_steps']:.2f} steps{speed}")


if __name__ == "__main__":
    main()
