"""Channels-last column reductions on a GPU: ember's generated Triton kernels for BatchNorm
forward (training statistics + normalize + ReLU, one fused kernel), BatchNorm's input
gradient (ReLU mask, two per-channel sums, the pointwise pass) and a plain sum over N, H, W,
against torch eager on the same GPU, at resnet18's BatchNorm shapes (batch 64, 224x224).

    python benchmarks/cuda_reduce_cl.py [--batch 64] [--sweep] [--quick] [--write]

Each ember kernel is the one `lower_group` + `source.generate` build for the fused group
(what a compiled training step launches); "ember" uses the default blocks
(`source.default_blocks`: column tiles for these kernels), "rows (before)" the blocks the
previous rule chose (one strided row a program). --sweep also times other column tiles
[XBLOCK, RBLOCK] so the constants in source.py (COLUMN_SECTOR_BYTES, COLUMN_TARGET_PROGRAMS,
COLUMN_TILE) can be set from measurements. Times are GPU milliseconds per call: `reps` calls
captured into one CUDA graph, replays timed with CUDA events, median of 5 (host overhead
out). torch: F.batch_norm(training=True) + relu; aten.native_batch_norm_backward after a
relu mask; x.sum((0, 2, 3)). Every row first checks ember's result against torch's
(relative Frobenius error, column "err"). The ratio is torch's time over ember's (above 1:
ember faster). Rows "split xS" launch the reduction split into S chunks of the reduced
space (split_reduce.py: what a compiled plan launches where it splits). --write saves benchmarks/results/cuda_reduce_cl_<gpu>.json.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]   # cuda.bindings
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402

import ember  # noqa: E402
from ember.codegen.lowering import lower_group  # noqa: E402
from ember.codegen.triton import source, split_reduce  # noqa: E402
from ember.frontend import eager_cuda  # noqa: E402
from ember.ir.meta import meta_of  # noqa: E402
from ember.ir.symbolic import build_graph  # noqa: E402

from benchmarks.cuda_conv_wgrad import _ember_graph_ms, _rel_err, _torch_graph_ms  # noqa: E402

F = ember.nn.functional
EPS = 1e-5
# resnet18's BatchNorm inputs (C, H, W) at 224x224
SHAPES = [("conv1", (64, 112, 112)), ("layer1", (64, 56, 56)), ("layer2", (128, 28, 28)),
          ("layer3", (256, 14, 14)), ("layer4", (512, 7, 7))]
QUICK = {"conv1", "layer1", "layer4"}
SWEEP = [(2, 4096), (4, 2048), (4, 4096), (8, 512), (8, 1024), (8, 2048), (16, 256),
         (16, 512), (32, 128), (32, 256), (64, 64), (64, 128)]


def bn_forward(x, w, b):
    return F.relu(F.batch_norm(x, None, None, w, b, training=True, eps=EPS))


def bn_backward(dy, y, x, mean, invstd, w):
    """Input gradient of relu(batch_norm(x)) from the saved statistics, as the training
    graph's fused backward group computes it."""
    n = x.shape[0] * x.shape[2] * x.shape[3]
    g = ember.where(y > 0, dy, 0.0)
    invstd = invstd.reshape(1, -1, 1, 1)
    xhat = (x - mean.reshape(1, -1, 1, 1)) * invstd
    g_mean = g.sum((0, 2, 3), keepdim=True) / n
    gx_mean = (g * xhat).sum((0, 2, 3), keepdim=True) / n
    return w.reshape(1, -1, 1, 1) * invstd * (g - g_mean - xhat * gx_mean)


def column_sum(x):
    return x.sum((0, 2, 3))


def previous_blocks(kernel) -> source.Blocks:
    """The blocks the rule before column tiles chose (one strided row a program)."""
    x, r = math.prod(kernel.outer), math.prod(kernel.inner)
    persistent = r <= source.MAX_PERSISTENT
    if not persistent and x < source.FEW_ROWS:
        return source.Blocks(1, source.FEW_ROWS_RBLOCK, False, 16)
    rblock = source.next_pow2(r) if persistent else source.LOOP_RBLOCK
    xblock = min(source.next_pow2(x), max(1, source.TILE_ELEMENTS // rblock))
    return source.Blocks(xblock, rblock, persistent, source._warps(xblock * rblock))


def _kernel(fn, tensors):
    graph, _ = build_graph(fn, [meta_of(t) for t in tensors])
    lowered = lower_group(graph, "k")
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    return lowered.kernel, [placeholders.index(n) for n in lowered.inputs]


def _runner(kernel, order, tensors, out_shape, blocks):
    """A call launching the generated kernel on `tensors`, writing a channels-last (or flat)
    output, and that output."""
    generated = source.generate(kernel, blocks)
    if len(out_shape) == 4:
        out = ember.empty(out_shape, device="cuda", memory_format=ember.channels_last)
    else:
        out = ember.empty(out_shape, device="cuda")
    args = [tensors[i] for i in order] + [out]
    return (lambda: eager_cuda.launch(generated, args, 0)), out


def _split_runner(kernel, order, tensors, out_shape):
    """A call launching the split reduction's phase kernels (split_reduce.py, what a
    compiled plan launches), its output, and its programs per phase; None if not split."""
    from ember.frontend.devices import empty_cuda
    from ember.ir.dtypes import float32
    split = split_reduce.generate_split(kernel)
    if split is None:
        return None
    out = ember.empty(out_shape, device="cuda", memory_format=ember.channels_last) \
        if len(out_shape) == 4 else ember.empty(out_shape, device="cuda")
    ws = empty_cuda((split.workspace,), (1,), float32, 0)
    args = [tensors[i] for i in order] + [out, ws]

    def call():
        for generated in split.kernels:
            eager_cuda.launch(generated, args, 0)
    grid = split.kernels[0].launch.grid
    return call, out, grid[0] * grid[1], split.plan


def _blocks_variants(kernel, sweep):
    yield "ember", source.default_blocks(kernel)
    yield "rows (before)", previous_blocks(kernel)
    if sweep:
        r = math.prod(kernel.inner)
        for xb, rb in SWEEP:
            persistent = source.next_pow2(r) <= rb
            rb = source.next_pow2(r) if persistent else rb
            yield f"[{xb}, {rb}]", source.Blocks(xb, rb, persistent, source._warps(xb * rb))


def _host(t) -> np.ndarray:
    return t.cpu().numpy()


def cases(torch, batch, c, h, w):
    """(case name, ember kernel, input order, ember inputs, output shape, torch fn) per case."""
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal((batch, c, h, w), dtype=np.float32)
    dy_np = rng.standard_normal((batch, c, h, w), dtype=np.float32)
    w_np = np.linspace(0.5, 1.5, c, dtype=np.float32)
    b_np = np.linspace(-0.2, 0.3, c, dtype=np.float32)

    def cl_e(a):
        return ember.tensor(a).cuda().contiguous(memory_format=ember.channels_last)

    def cl_t(a):
        return torch.from_numpy(a).cuda().contiguous(memory_format=torch.channels_last)

    xe, dye, we, be = cl_e(x_np), cl_e(dy_np), ember.tensor(w_np).cuda(), ember.tensor(b_np).cuda()
    xt, dyt = cl_t(x_np), cl_t(dy_np)
    wt, bt = torch.from_numpy(w_np).cuda(), torch.from_numpy(b_np).cuda()
    mean_t = xt.mean((0, 2, 3))
    invstd_t = torch.rsqrt(xt.var((0, 2, 3), unbiased=False) + EPS)
    yt = torch.relu(torch.nn.functional.batch_norm(xt, None, None, wt, bt, training=True))
    me, ie = ember.tensor(mean_t.cpu().numpy()).cuda(), ember.tensor(invstd_t.cpu().numpy()).cuda()
    ye = cl_e(yt.cpu().numpy())
    shape = (batch, c, h, w)

    def torch_bwd():
        g = torch.where(yt > 0, dyt, 0.0)
        return torch.ops.aten.native_batch_norm_backward(
            g, xt, wt, None, None, mean_t, invstd_t, True, EPS, [True, False, False])[0]

    forward = (lambda: torch.relu(torch.nn.functional.batch_norm(xt, None, None, wt, bt,  # noqa
                                                                  training=True)))
    yield ("bn forward+relu", bn_forward, [xe, we, be], shape, forward)
    yield ("bn backward", bn_backward, [dye, ye, xe, me, ie, we], shape, torch_bwd)
    yield ("sum over N,H,W", column_sum, [xe], (c,), lambda: xt.sum((0, 2, 3)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--sweep", action="store_true", help="time other column tiles too")
    parser.add_argument("--quick", action="store_true", help="conv1, layer1, layer4 only")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    import torch
    gpu = torch.cuda.get_device_name()
    print(f"# {gpu}, batch {args.batch}, float32 channels-last, ms per call (CUDA graph)")
    print(f"{'shape':8} {'case':16} {'blocks':14} {'grid':>5} {'ms':>8} {'torch':>8} "
          f"{'ratio':>6} {'err':>8}")
    rows = []
    for name, (c, h, w) in SHAPES:
        if args.quick and name not in QUICK:
            continue
        for case, fn, tensors, out_shape, torch_fn in cases(torch, args.batch, c, h, w):
            kernel, order = _kernel(fn, tensors)
            torch_ms = _torch_graph_ms(torch, torch_fn, args.reps)
            want = torch_fn().float().cpu().numpy()
            for label, blocks in _blocks_variants(kernel, args.sweep):
                call, out = _runner(kernel, order, tensors, out_shape, blocks)
                call()
                err = _rel_err(_host(out), want)
                ms = _ember_graph_ms(call, args.reps)
                grid = math.ceil(math.prod(kernel.outer) / blocks.xblock)
                print(f"{name:8} {case:16} {label:14} {grid:5d} {ms:8.4f} {torch_ms:8.4f} "
                      f"{torch_ms / ms:6.2f} {err:8.1e}", flush=True)
                rows.append(dict(shape=name, case=case, blocks=label, xblock=blocks.xblock,
                                 rblock=blocks.rblock, persistent=blocks.persistent,
                                 ember_ms=ms, torch_ms=torch_ms, rel_err=err))
            found = _split_runner(kernel, order, tensors, out_shape)
            if found is not None:
                call, out, programs, plan = found
                call()
                err = _rel_err(_host(out), want)
                ms = _ember_graph_ms(call, args.reps)
                label = f"split x{plan.splits}"
                print(f"{name:8} {case:16} {label:14} {programs:5d} {ms:8.4f} {torch_ms:8.4f} "
                      f"{torch_ms / ms:6.2f} {err:8.1e}", flush=True)
                rows.append(dict(shape=name, case=case, blocks=label, xblock=plan.blocks.xblock,
                                 rblock=plan.blocks.rblock, splits=plan.splits,
                                 chunk=plan.chunk, ember_ms=ms, torch_ms=torch_ms,
                                 rel_err=err))
    if args.write:
        out = _HERE / "results" / f"cuda_reduce_cl_{gpu.replace(' ', '_')}.json"
        out.write_text(json.dumps(dict(gpu=gpu, batch=args.batch, rows=rows), indent=1))
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
