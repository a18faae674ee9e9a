"""int8 convolution kernels per resnet18 shape: ember's fused implicit GEMM against torch.ao's
quantized conv (torch.ops.quantized.conv2d, x86 engine) and the VNNI peak.

One thread, CPU time of the calling thread, interleaved rounds, medians. ember's time is the
GEMM kernel on the padded channels-last input (what a converted model runs per conv, less
the input's padding copy, timed separately as "pad"; "in-kernel": the same kernel reading
an unpadded input, the padding in its border tiles, no copy: what a converted model runs
on the padded convs since then, copy included where the host pads); torch.ao's is the whole op on a
channels-last quantized input. The peak is measured: a loop of independent vpdpbusd on
zmm registers (64 multiply-adds each) on this thread.

    python -m benchmarks.qconv_shapes [--batch 8] [--rounds 7]

--amx: ember's AMX tile kernel instead (where the CPU has AMX-INT8), as a converted model
runs each conv (codegen/quantized.conv_runner: the padding read in the kernel where it
does so, the host's padded copy elsewhere, copy included), against torch.ao's op, on
--threads threads (both libraries), process CPU and wall time per call, medians.
The script imports whichever ember PYTHONPATH names, so two trees can be compared:

    PYTHONPATH=/path/to/tree python3 benchmarks/qconv_shapes.py --amx --threads 1
"""
from __future__ import annotations

import argparse
import time

import numpy as np

# (name, cin, cout, k, stride, pad, input hw, count in resnet18)
RESNET18 = [
    ("stem 7x7/2", 3, 64, 7, 2, 3, 224, 1),
    ("l1 3x3", 64, 64, 3, 1, 1, 56, 4),
    ("l2 3x3/2", 64, 128, 3, 2, 1, 56, 1),
    ("l2 3x3", 128, 128, 3, 1, 1, 28, 3),
    ("l2 ds 1x1/2", 64, 128, 1, 2, 0, 56, 1),
    ("l3 3x3/2", 128, 256, 3, 2, 1, 28, 1),
    ("l3 3x3", 256, 256, 3, 1, 1, 14, 3),
    ("l3 ds 1x1/2", 128, 256, 1, 2, 0, 28, 1),
    ("l4 3x3/2", 256, 512, 3, 2, 1, 14, 1),
    ("l4 3x3", 512, 512, 3, 1, 1, 7, 3),
    ("l4 ds 1x1/2", 256, 512, 1, 2, 0, 14, 1),
]


def cpu_ms(fn, reps: int) -> float:
    start = time.thread_time()
    for _ in range(reps):
        fn()
    return (time.thread_time() - start) * 1e3 / reps


def ember_conv(cin, cout, k, stride, pad, hw, batch, rng):
    """(kernel-only fn, pad fn, output) for one conv shape on ember's chosen int8 tile."""
    from ember.codegen import quantized as CQ
    from ember.codegen.llvm import qelementwise as QE
    from ember.codegen.llvm import qgemm as Q
    from ember.runtime import lite_int8 as lite
    # channels-last, as the previous int8 conv leaves it (an NHWC array seen as NCHW)
    x = rng.integers(0, 256, (batch, hw, hw, cin), dtype=np.uint8).transpose(0, 3, 1, 2)
    if cin in (3,):      # the stem's input: a quantized image, contiguous NCHW
        x = np.ascontiguousarray(x)
    w = rng.integers(-127, 128, (cout, cin, k, k), dtype=np.int8)
    cfg = Q.tile_for(Q.active_config(), cout)
    cp, run = lite.conv_k_layout(cin, k, 1)
    packed = Q.PackedWeight(CQ.conv_weight_matrix(w, cp, run), cfg)
    oh, ow = lite.conv_output_size(hw, hw, (k, k), (stride, stride), (pad, pad), (1, 1))
    slack = run - k * cin if run else 0
    pack = QE.pack_nhwc if cin in QE.PACK_CHANNELS and QE.available() else None

    def padded():
        return lite.nhwc_input(x, 3, (pad, pad), cp, slack, pack)
    x_nhwc = padded()
    gather = Q.conv_gather(x_nhwc, (k, k), (stride, stride), (1, 1), (oh, ow), run)
    vectors = packed.epilogue_vectors(3, np.full(cout, 1e-4, np.float32),
                                      rng.standard_normal(cout).astype(np.float32))
    call = Q.prepare(gather, packed, vectors, (1 / 0.05, 100.0, 0.0, 255.0), True)
    return (lambda: call.on_one_thread(x_nhwc)), padded, cfg.name


def ember_conv_in_kernel(cin, cout, k, stride, pad, hw, batch, rng):
    """The same conv with the padding read in the kernel (what a converted model runs
    where lite.pads_in_kernel holds): the unpadded channels-last input read in place (the
    stem's NCHW input interleaved, unpadded), no padded copy. None where the host pads."""
    from ember.codegen import quantized as CQ
    from ember.codegen.llvm import qelementwise as QE
    from ember.codegen.llvm import qgemm as Q
    from ember.runtime import lite_int8 as lite
    cp, run = lite.conv_k_layout(cin, k, 1)
    oh, ow = lite.conv_output_size(hw, hw, (k, k), (stride, stride), (pad, pad), (1, 1))
    if not lite.pads_in_kernel(run, (pad, pad), (hw, hw), (oh, ow), (k, k), (stride, stride),
                               (1, 1)):
        return None
    x = rng.integers(0, 256, (batch, hw, hw, cin), dtype=np.uint8).transpose(0, 3, 1, 2)
    if cin in (3,):
        x = np.ascontiguousarray(x)
    w = rng.integers(-127, 128, (cout, cin, k, k), dtype=np.int8)
    cfg = Q.tile_for(Q.active_config(), cout)
    packed = Q.PackedWeight(CQ.conv_weight_matrix(w, cp, run), cfg)
    oh, ow = lite.conv_output_size(hw, hw, (k, k), (stride, stride), (pad, pad), (1, 1))
    slack = run - k * cin
    pack = QE.pack_nhwc if cin in QE.PACK_CHANNELS and QE.available() else None
    x_nhwc = lite.nhwc_input(x, 3, (0, 0), cp, slack, pack)
    gather = lite.conv_gather_unpadded(x_nhwc, (k, k), (stride, stride), (1, 1), (oh, ow),
                                       run, (pad, pad), 3)
    vectors = packed.epilogue_vectors(3, np.full(cout, 1e-4, np.float32),
                                      rng.standard_normal(cout).astype(np.float32))
    call = Q.prepare(gather, packed, vectors, (1 / 0.05, 100.0, 0.0, 255.0), True)

    def run_call():       # the stem's input is interleaved on each call (no padding)
        src = lite.nhwc_input(x, 3, (0, 0), cp, slack, pack) if cin == 3 else x_nhwc
        return call.on_one_thread(src)
    return run_call


def torch_conv(cin, cout, k, stride, pad, hw, batch, rng):
    import torch
    x = torch.quantize_per_tensor(torch.rand(batch, cin, hw, hw), 0.02, 3, torch.quint8)
    x = x.contiguous(memory_format=torch.channels_last)
    w = torch.quantize_per_channel(torch.randn(cout, cin, k, k), torch.full((cout,), 0.01),
                                   torch.zeros(cout, dtype=torch.long), 0, torch.qint8)
    packed = torch.ops.quantized.conv2d_prepack(w, torch.randn(cout), [stride] * 2, [pad] * 2,
                                                [1, 1], 1)
    return lambda: torch.ops.quantized.conv2d(x, packed, 0.05, 100)


def vnni_peak_gmacs(reps: int = 3) -> float:
    """Single-thread int8 multiply-adds per second of a dependency-free vpdpbusd loop."""
    from llvmlite import ir
    from ember.codegen.llvm import irutil as u
    from ember.codegen.llvm.jit import compile_ir
    from ember.codegen.llvm.target import Isa, target_for
    import ctypes
    module = ir.Module(name="vnni_peak")
    v32 = u.vec(u.I32, 16)
    fn, b = u.define(module, "peak", u.VOID, [("iters", u.I64), ("out", u.PTR)])
    dot = ir.Function(module, ir.FunctionType(v32, [v32] * 3), name="llvm.x86.avx512.vpdpbusd.512")
    a = ir.Constant(v32, [0x01010101] * 16)
    bb = ir.Constant(v32, [0x02020202] * 16)
    accs = [ir.Constant(v32, [i] * 16) for i in range(24)]
    accs = u.carried_loop(b, u.i64(0), fn.args[0], accs,
                          lambda i, flat: [b.call(dot, [acc, a, bb]) for acc in flat], "it")
    total = accs[0]
    for acc in accs[1:]:
        total = b.add(total, acc)
    b.store(total, fn.args[1], align=4)
    b.ret_void()
    lib = compile_ir(module, target_for(Isa.AVX512))
    run = lib.function("peak", None, ctypes.c_int64, ctypes.c_void_p)
    out = np.zeros(16, np.int32)
    iters = 2_000_000
    best = []
    for _ in range(reps):
        start = time.thread_time()
        run(iters, out.ctypes.data)
        best.append(time.thread_time() - start)
    return iters * 24 * 64 / min(best) / 1e9


def ember_amx_runner(cin, cout, k, stride, pad, hw, batch, rng):
    """A converted model's conv call on this process's int8 GEMM (AMX tiles here):
    codegen/quantized.conv_runner over a channels-last uint8 input (the stem's NCHW)."""
    from ember.codegen import quantized as CQ
    from ember.ir import dtypes
    from ember.ir.quantized import QuantizedArray
    xs = rng.integers(0, 256, (batch, hw, hw, cin), dtype=np.uint8).transpose(0, 3, 1, 2)
    if cin == 3:
        xs = np.ascontiguousarray(xs)
    x = QuantizedArray(xs, dtypes.quint8, 0.02, 3)
    w_int = rng.integers(-127, 128, (cout, cin, k, k), dtype=np.int8)
    w = QuantizedArray(w_int, dtypes.qint8, np.full(cout, 0.01), np.zeros(cout, np.int64), axis=0)
    bias = rng.standard_normal(cout).astype(np.float32)
    args = [x, w, bias, [stride] * 2, [pad] * 2, [1, 1], 1, 0.05, 100, True]
    runner = CQ.conv_runner(args, {})
    return lambda: runner(xs, bias)


def _times(fn, reps: int):
    """(process CPU ms, wall ms) per call over reps calls."""
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(reps):
        fn()
    return ((time.process_time() - cpu) * 1e3 / reps, (time.perf_counter() - wall) * 1e3 / reps)


def main_amx(args) -> None:
    import torch
    import ember
    from ember.codegen import quantized as CQ
    torch.set_num_threads(args.threads)
    torch.backends.quantized.engine = "x86"
    ember.set_num_threads(args.threads)
    print(f"ember GEMM: {CQ.gemm_config().name}, {args.threads} thread(s), "
          f"ember from {ember.__file__}")
    print(f"{'shape':14} {'GMAC':>6} {'ember cpu':>9} {'wall':>7} {'torch cpu':>9} {'wall':>7}"
          f" {'wall t/e':>8}")
    rng = np.random.default_rng(0)
    tot = np.zeros(4)
    for name, cin, cout, k, s, pad, hw, count in RESNET18:
        if args.only and args.only not in name:
            continue
        e_fn = ember_amx_runner(cin, cout, k, s, pad, hw, args.batch, rng)
        t_fn = torch_conv(cin, cout, k, s, pad, hw, args.batch, rng)
        oh = (hw + 2 * pad - k) // s + 1
        macs = args.batch * oh * oh * cout * cin * k * k / 1e9
        reps = max(2, int(0.03 / max(macs / 1000, 1e-5)))
        e_fn(), t_fn()
        es, ts = [], []
        for _ in range(args.rounds):
            es.append(_times(e_fn, reps))
            ts.append(_times(t_fn, reps))
        e, t = np.median(es, axis=0), np.median(ts, axis=0)
        tot += count * np.concatenate([e, t])
        print(f"{name:14} {macs:6.3f} {e[0]:9.3f} {e[1]:7.3f} {t[0]:9.3f} {t[1]:7.3f}"
              f" {t[1] / e[1]:7.2f}x")
    print(f"{'resnet18 sum':14} {'':6} {tot[0]:9.2f} {tot[1]:7.2f} {tot[2]:9.2f} {tot[3]:7.2f}"
          f" {tot[3] / tot[1]:7.2f}x")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--only", default=None, help="substring of the shape names to run")
    p.add_argument("--amx", action="store_true", help="ember's AMX kernel as a model runs it")
    p.add_argument("--threads", type=int, default=1, help="with --amx: threads of both")
    args = p.parse_args(argv)
    if args.amx:
        main_amx(args)
        return
    import torch
    torch.set_num_threads(1)
    torch.backends.quantized.engine = "x86"
    rng = np.random.default_rng(0)
    peak = vnni_peak_gmacs()
    print(f"VNNI peak (one thread, measured): {peak:.0f} G int8 MAC/s")
    print(f"{'shape':14} {'tile':9} {'GMAC':>6} {'ember ms':>9} {'pad ms':>7} {'in-kernel':>9}"
          f" {'torch ms':>9} {'torch/ember':>11} {'ember %peak':>11}")
    tot_e = tot_t = tot_p = tot_k = 0.0
    for name, cin, cout, k, s, pad, hw, count in RESNET18:
        if args.only and args.only not in name:
            continue
        e_fn, pad_fn, tile = ember_conv(cin, cout, k, s, pad, hw, args.batch, rng)
        k_fn = ember_conv_in_kernel(cin, cout, k, s, pad, hw, args.batch, rng)
        t_fn = torch_conv(cin, cout, k, s, pad, hw, args.batch, rng)
        oh = (hw + 2 * pad - k) // s + 1
        macs = args.batch * oh * oh * cout * cin * k * k / 1e9
        reps = max(1, int(0.02 / max(macs / 300, 1e-5)))
        e_fn(), t_fn()
        es, ts, ps, ks = [], [], [], []
        for _ in range(args.rounds):
            es.append(cpu_ms(e_fn, reps))
            ts.append(cpu_ms(t_fn, reps))
            ps.append(cpu_ms(pad_fn, reps))
            ks.append(cpu_ms(k_fn, reps) if k_fn else es[-1] + ps[-1])
        e, t, pd, kp = (float(np.median(v)) for v in (es, ts, ps, ks))
        tot_e, tot_t, tot_p = tot_e + count * e, tot_t + count * t, tot_p + count * pd
        tot_k += count * kp
        print(f"{name:14} {tile:9} {macs:6.3f} {e:9.3f} {pd:7.3f} {kp:9.3f} {t:9.3f}"
              f" {t / e:11.2f}x {100 * macs / (e / 1e3) / peak:10.0f}%")
    print(f"{'resnet18 sum':14} {'':9} {'':6} {tot_e:9.2f} {tot_p:7.2f} {tot_k:9.2f}"
          f" {tot_t:9.2f} {tot_t / tot_e:11.2f}x")


if __name__ == "__main__":
    main()
