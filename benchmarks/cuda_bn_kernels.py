"""Split BatchNorm kernels alone on a GPU, phase by phase, against torch's batch_norm.

resnet18's stem BatchNorm at batch 64 (64 channels of 64x112x112, float32 channels-last,
205 MB): the forward (training statistics + normalize + ReLU) and the input gradient (ReLU
mask, per-channel sums, the pointwise pass) that a compiled training step fuses, each
split along N*H*W (codegen/triton/split_reduce.py) into a partial phase and a final phase.
Every variant's phases are timed alone and together:

    ember           the plan a compiled step takes (split_reduce.plan, factored sums)
    before          the previous plan: [32, 256] tiles at 16 warps, sums not factored
                    (five accumulators and three divisions an element in the backward);
                    NCHW (--layout nchw): [1, 8192] rows at 16 warps
    --sweep         other [XBLOCK, RBLOCK] tiles / warps / splits

Times are GPU milliseconds per call: `reps` calls captured into one CUDA graph, replays
timed with CUDA events, median of 5. torch: F.batch_norm(training=True) + relu, and
aten.native_batch_norm_backward after the relu mask (cuDNN's NHWC kernels). "err" is the
relative Frobenius error of ember's output against torch's. "GB/s" counts each phase's
DRAM bytes once per tensor it walks (partial: its inputs; final: inputs and the output).

    python benchmarks/cuda_bn_kernels.py [--shape stem|layer1|...|all] [--sweep] [--reps 10]
        [--layout channels_last|nchw] [--out results.json]

Runs in well under a minute on an H100 (default: the stem shape, two variants).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]   # cuda.bindings
sys.path.insert(0, str(_HERE.parent))

import ember  # noqa: E402
from ember.codegen.triton import reduce_levels, source, split_reduce  # noqa: E402
from ember.frontend import eager_cuda  # noqa: E402

from benchmarks.cuda_conv_wgrad import _ember_graph_ms, _rel_err, _torch_graph_ms  # noqa: E402
from benchmarks.cuda_reduce_cl import SHAPES, _kernel  # noqa: E402

F = ember.nn.functional
EPS = 1e-5

NAMES = {"stem": "conv1", **{n: n for n, _ in SHAPES}}
# (label, xblock, rblock, warps, splits) tried by --sweep
SWEEP = [("[32,64] w8", 32, 64, 8, 256), ("[64,32] w4", 64, 32, 4, 256),
         ("[16,64] w4 x132", 16, 64, 4, 132), ("[32,32] w4 x128", 32, 32, 4, 128),
         ("[32,128] w8", 32, 128, 8, 256)]


def bn_forward(x, w, b):
    return F.relu(F.batch_norm(x, None, None, w, b, training=True, eps=EPS))


def bn_backward(mask, dy, x, mean, std, w):
    """BatchNorm + ReLU's input gradient and its weight and bias gradients, written as the
    training step's backward kernel computes them: the ReLU mask the forward stored,
    x - mean recomputed from the saved statistics, divisions by per-channel values where
    autograd's formulas divide (the variance's gradient, x-hat)."""
    n = x.shape[0] * x.shape[2] * x.shape[3]
    c = (1, -1, 1, 1)
    mean, std, w = mean.reshape(c), std.reshape(c), w.reshape(c)
    g = ember.where(mask, 0.0, dy)
    centered = x - mean
    gw = g * w
    dvar = (-gw * centered / (2.0 * std * std * std)).sum((0, 2, 3), keepdim=True)
    dmean = (-gw / std).sum((0, 2, 3), keepdim=True) + \
        dvar * (-2.0 * centered).sum((0, 2, 3), keepdim=True) / n
    dx = gw / std + dvar * 2.0 * centered / n + dmean / n
    return dx, (g * (centered / std)).sum((0, 2, 3)), g.sum((0, 2, 3))


def cases(torch, batch, c, h, w, layout="channels_last"):
    """(case, ember fn, ember inputs, output shape, torch fn) for the forward and the
    backward at one shape, in `layout` (channels_last or nchw)."""
    import numpy as np
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal((batch, c, h, w), dtype=np.float32)
    dy_np = rng.standard_normal((batch, c, h, w), dtype=np.float32)
    w_np = np.linspace(0.5, 1.5, c, dtype=np.float32)
    b_np = np.linspace(-0.2, 0.3, c, dtype=np.float32)

    nchw = layout == "nchw"

    def cl_e(a):
        t = ember.tensor(a).cuda()
        return t.contiguous() if nchw else t.contiguous(memory_format=ember.channels_last)

    def cl_t(a):
        t = torch.from_numpy(a).cuda()
        return t.contiguous() if nchw else t.contiguous(memory_format=torch.channels_last)
    xt, dyt = cl_t(x_np), cl_t(dy_np)
    wt, bt = torch.from_numpy(w_np).cuda(), torch.from_numpy(b_np).cuda()
    mean_t = xt.mean((0, 2, 3))
    var_t = xt.var((0, 2, 3), unbiased=False)
    invstd_t = torch.rsqrt(var_t + EPS)
    yt = torch.relu(torch.nn.functional.batch_norm(xt, None, None, wt, bt, training=True))
    mask_t = yt <= 0
    xe, dye = cl_e(x_np), cl_e(dy_np)
    we, be = ember.tensor(w_np).cuda(), ember.tensor(b_np).cuda()
    mean_e = ember.tensor(mean_t.cpu().numpy()).cuda()
    std_e = ember.tensor(torch.sqrt(var_t + EPS).cpu().numpy()).cuda()
    mask_e = cl_e(mask_t.cpu().numpy())
    shape = (batch, c, h, w)

    def torch_forward():
        return torch.relu(torch.nn.functional.batch_norm(xt, None, None, wt, bt,
                                                          training=True))

    def torch_backward():
        g = torch.where(mask_t, 0.0, dyt)
        return torch.ops.aten.native_batch_norm_backward(
            g, xt, wt, None, None, mean_t, invstd_t, True, EPS, [True, True, True])[0]
    yield "bn forward+relu", bn_forward, [xe, we, be], shape, torch_forward
    yield "bn backward", bn_backward, [mask_e, dye, xe, mean_e, std_e, we], shape, \
        torch_backward


@contextlib.contextmanager
def unfactored():
    """The sums as they were before factor_sums (kept-point factors inside the loop)."""
    factor = reduce_levels.factor_sums
    reduce_levels.factor_sums = lambda kernel: kernel
    try:
        yield
    finally:
        reduce_levels.factor_sums = factor


def _plan(kernel, xblock, rblock, warps, splits) -> split_reduce.SplitPlan:
    r = math.prod(kernel.inner)
    splits = max(1, min(splits, r // rblock))
    chunk = math.ceil(math.ceil(r / splits) / rblock) * rblock
    return split_reduce.SplitPlan(source.Blocks(xblock, rblock, False, warps),
                                  math.ceil(r / chunk), chunk)


def variants(kernel, sweep: bool):
    yield "ember", None, False
    if not source.is_column_reduction(kernel):
        # NCHW rows before: one row a program, [1, 8192] at 16 warps, sums not factored
        x = math.prod(kernel.outer)
        yield "before", _plan(kernel, 1, 8192, 16, min(256, math.ceil(528 / x))), True
        return
    yield "before", _plan(kernel, 32, 256, 16, 256), True
    if sweep:
        for label, *blocks in SWEEP:
            yield label, _plan(kernel, *blocks), False


def _phase_bytes(kernel, role: str) -> int:
    inputs = sum(b.numel * b.dtype.itemsize for b in kernel.inputs)
    if role.startswith("partial"):
        return inputs
    return inputs + sum(b.numel * b.dtype.itemsize for b in kernel.outputs)


def run_variant(kernel, order, tensors, out_shape, plan, old: bool, reps: int,
                layout: str = "channels_last"):
    """(split, output, {phase role: ms}, total ms) for one variant."""
    from ember.frontend.devices import empty_cuda
    from ember.ir.dtypes import float32
    with unfactored() if old else contextlib.nullcontext():
        split = split_reduce.generate_split(kernel, plan)
    if split is None:
        return None
    fmt = ember.contiguous_format if layout == "nchw" else ember.channels_last
    outs = [ember.empty(out_shape, device="cuda", memory_format=fmt)
            if spec.numel == math.prod(out_shape) else ember.empty(spec.numel, device="cuda")
            for spec in split.kernel.outputs]
    out = next(o for o in outs if o.ndim == 4)
    ws = empty_cuda((split.workspace,), (1,), float32, 0)
    args = [tensors[i] for i in order] + outs + [ws]

    def launcher(generated):
        return lambda: eager_cuda.launch(generated, args, 0)

    def whole():
        for generated in split.kernels:
            eager_cuda.launch(generated, args, 0)
    whole()
    ember.cuda.synchronize()
    phases = {g.name.rsplit("_", 1)[1]: _ember_graph_ms(launcher(g), reps)
              for g in split.kernels}
    return split, out, phases, _ember_graph_ms(whole, reps)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", default="stem", choices=["all", *NAMES])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--sweep", action="store_true", help="time other tiles and splits too")
    p.add_argument("--layout", choices=["channels_last", "nchw"], default="channels_last")
    p.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = p.parse_args(argv)
    import torch
    gpu = torch.cuda.get_device_name()
    wanted = {NAMES[args.shape]} if args.shape != "all" else set(NAMES.values())
    print(f"# {gpu}, batch {args.batch}, float32 {args.layout}, ms per call (CUDA graph)")
    print(f"{'shape':7} {'case':16} {'variant':16} {'tile':>14} {'progs':>6} {'phase':>9} "
          f"{'ms':>8} {'GB/s':>6} {'torch':>8} {'ratio':>6} {'err':>8}")
    rows = []
    for name, (c, h, w) in SHAPES:
        if name not in wanted:
            continue
        for case, fn, tensors, out_shape, torch_fn in cases(torch, args.batch, c, h, w,
                                                                  args.layout):
            kernel, order = _kernel(fn, tensors)
            torch_ms = _torch_graph_ms(torch, torch_fn, args.reps)
            want = torch_fn().float().cpu().numpy()
            for label, plan, old in variants(kernel, args.sweep):
                found = run_variant(kernel, order, tensors, out_shape,
                                    plan, old, args.reps, args.layout)
                if found is None:
                    print(f"{name:7} {case:16} {label:16} not split at this shape")
                    continue
                split, out, phases, total = found
                err = _rel_err(out.cpu().numpy(), want)
                b = split.plan.blocks
                tile = f"[{b.xblock},{b.rblock}]w{b.num_warps}x{split.plan.splits}"
                grid = split.kernels[0].launch.grid
                programs = grid[0] * grid[1]
                for role, ms in [*phases.items(), ("total", total)]:
                    gbs = (sum(_phase_bytes(split.kernel, r) for r in phases)
                           if role == "total" else _phase_bytes(split.kernel, role)) / ms / 1e6
                    shown_torch = torch_ms if role == "total" else float("nan")
                    print(f"{name:7} {case:16} {label:16} {tile:>14} {programs:6d} {role:>9} "
                          f"{ms:8.4f} {gbs:6.0f} {shown_torch:8.4f} "
                          f"{torch_ms / ms if role == 'total' else float('nan'):6.2f} "
                          f"{err:8.1e}", flush=True)
                    rows.append(dict(shape=name, case=case, variant=label, xblock=b.xblock,
                                     rblock=b.rblock, warps=b.num_warps,
                                     splits=split.plan.splits, programs=programs, phase=role,
                                     ember_ms=ms, gb_per_s=gbs, torch_ms=torch_ms,
                                     rel_err=err))
    if args.out:
        args.out.write_text(json.dumps(dict(gpu=gpu, batch=args.batch, rows=rows), indent=1))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
