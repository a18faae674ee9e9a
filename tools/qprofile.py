"""Where a converted int8 model's call goes, per op, at N threads: wall time, the calling
thread's CPU time and the pool workers' CPU time, and the utilisation they give.

    python3 tools/qprofile.py [--model resnet18|mobilenet|small_cnn|mlp] [--threads 2] [--calls 12]
                              [--batch 8] [--hw 224] [--group] [--no-overlap]

The model is ember's own (random weights, seed 0), converted with prepare_fx /
calibration / convert_fx (x86 qconfig mapping), run node by node through ember.fx's
Interpreter over the graph its forward runs (ao/quantization/fx/fused_forward.py: the
residual adds fused into their convs are `residual_conv_add` steps). For each node: the median over --calls calls of its wall time, of the
caller's thread CPU time and of the workers' summed CPU time
(`time.pthread_getcpuclockid` of each pool thread), and `util` = (caller + workers) /
(threads x wall): 1.0 means every thread busy for the whole step, 1/threads means the
step ran on one thread while the others waited. `serial` = wall - (caller + workers) /
threads, the step's wall time beyond a perfect split of its work (on a loaded host it
also counts the time the threads were not scheduled, so read it on a quiet one, or
compare steps with each other). --group sums the steps by kind (op and shape class).

`pool` is the wall time the caller spent inside the thread pool's parallel_for (the
split part of a step) and `alone` the caller's CPU time outside it: the step's serial
work (Python glue, unsplit small kernels, host copies), which on a quiet host is wall
time added at any thread count. `alone` is CPU time, so it stays meaningful on a busy
host, where wall times and util do not (with more runnable threads than cores, two
threads run one at a time: util reads 1/threads). Spinning workers burn CPU while they
wait (runtime/threads.py SPIN_TICKS): their CPU time counts the wait too.

`busy0`, `busy1`, ... are the time each thread (0: the caller) spent running the
step's kernel chunks (the native hand-off's tick counts, runtime/threads.py
busy_seconds: no spinning counted), and `idle` the threads' time inside the pool not
running a chunk: threads x pool - sum(busy), i.e. load imbalance, hand-off latency and
waiting for a descheduled thread. A well split step has busy0 ~ busy1 and idle near 0;
a step whose kernel ran on one thread (too small to split) shows busy1 = 0 and idle =
its pool time. --threads 1 leaves these columns out.

The forward's conv and pool steps may leave their kernel running into the next step
(fused_forward.OVERLAP, ThreadPool.defer; steps marked `*`): the caller's chunk then
runs in a join, outside parallel_for, so `pool` / `alone` no longer separate glue from
kernels and a kernel's time shows in the next row; --no-overlap gives the per-step view
(the whole call's time is then the serial schedule's).
"""
from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ember  # noqa: E402
import ember.ao.quantization as eq  # noqa: E402
import ember.ao.quantization.quantize_fx as eqfx  # noqa: E402
from ember.ao.quantization.fx import fused_forward as FF  # noqa: E402
from ember.ao.quantization.fx.fused_forward import fused_graph  # noqa: E402
from ember.fx import Interpreter  # noqa: E402
from ember.runtime.threads import default_pool  # noqa: E402


def make_model(name: str, batch: int, hw: int | None = None):
    nn = ember.nn
    if name == "resnet18":
        return ember.models.resnet18(), (batch, 3, hw or 224, hw or 224)
    if name == "small_cnn":
        return nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(32, 10)), (batch, 1, 28, 28)
    if name == "mobilenet":     # benchmarks/quant.py's mobilenet-style model (112x112)
        from benchmarks.quant import mobilenet_style
        return mobilenet_style(ember), (batch, 3, hw or 112, hw or 112)
    if name == "mlp":
        return nn.Sequential(nn.Linear(1024, 4096), nn.ReLU(), nn.Linear(4096, 1024)), \
            (batch, 1024)
    raise SystemExit(f"unknown model {name!r}")


def converted(name: str, batch: int, hw: int | None = None):
    model, shape = make_model(name, batch, hw)
    model.eval()
    rng = np.random.default_rng(0)
    state = {}
    for k, v in model.state_dict().items():
        arr = v.numpy()
        if arr.dtype.kind == "f":
            arr = rng.standard_normal(arr.shape).astype(np.float32)
            arr *= 1.0 / np.sqrt(max(1, int(np.prod(arr.shape[1:])))) if arr.ndim > 1 else 0.1
            if "running_var" in k:
                arr = np.abs(arr) + 1.0
        state[k] = ember.tensor(arr)
    model.load_state_dict(state)
    x = ember.tensor(rng.standard_normal(shape).astype(np.float32))
    with ember.no_grad():
        prepared = eqfx.prepare_fx(model, eq.get_default_qconfig_mapping("x86"), (x,))
        for _ in range(2):
            prepared(ember.tensor(rng.standard_normal(shape).astype(np.float32)))
        return eqfx.convert_fx(prepared), x


class _Clocks:
    """The pool workers' CPU clocks (the caller's is time.thread_time)."""

    def __init__(self):
        self.ids = [time.pthread_getcpuclockid(t.ident) for t in default_pool()._workers]

    def workers(self) -> float:
        return sum(time.clock_gettime(c) for c in self.ids)


class _Inside:
    """Wall and caller CPU seconds spent inside the pool's parallel_for (the parallel
    part of a step; the rest of its time is the caller's alone)."""

    def __init__(self):
        self.wall = self.cpu = 0.0
        pool = default_pool()
        plain = pool.parallel_for

        def timed(*args, **kwargs):
            w0, c0 = time.perf_counter(), time.thread_time()
            try:
                return plain(*args, **kwargs)
            finally:
                self.wall += time.perf_counter() - w0
                self.cpu += time.thread_time() - c0
        pool.parallel_for = timed


class Profiler(Interpreter):
    N_SAMPLE = 5        # wall, caller, workers, pool, alone; then each thread's busy time

    def __init__(self, module, clocks: _Clocks, inside: _Inside):
        # the graph the converted model's forward runs (its residual adds fused into
        # their convs: residual_conv_add steps), or its own where nothing is fused
        super().__init__(module, graph=fused_graph(module) or module.graph)
        self.clocks, self.inside = clocks, inside
        self.samples: dict = collections.defaultdict(list)

    def run_node(self, node):
        i, pool = self.inside, default_pool()
        b0 = pool.busy_seconds()
        w0, c0, k0 = time.perf_counter(), time.thread_time(), self.clocks.workers()
        iw0, ic0 = i.wall, i.cpu
        value = super().run_node(node)
        w1, c1, k1 = time.perf_counter(), time.thread_time(), self.clocks.workers()
        busy = [after - before for before, after in zip(b0, pool.busy_seconds())]
        self.samples[node.name].append((w1 - w0, c1 - c0, k1 - k0, i.wall - iw0,
                                        (c1 - c0) - (i.cpu - ic0), *busy))
        return value


def with_fused_clamps(model, fn, *args):
    """fn(*args) with the converted model's relu6 / hardtanh clamps fused into their
    convs' epilogues, as its own forward runs them (quantize_fx: the clamp nodes then
    copy nothing), so the interpreted steps are the ones a plain call takes."""
    from ember.ao.nn.quantized.modules import call_with_graph_clamps
    from ember.ao.quantization import quantize_fx as qfx
    clamps = {id(conv): bounds for conv, _, bounds in qfx._clamp_fusions(model)
              if conv.__dict__.get("_fused_clamp") == bounds}
    return call_with_graph_clamps(clamps, fn, *args)


def describe(node, value) -> str:
    target = node.target if isinstance(node.target, str) else \
        getattr(node.target, "__name__", str(node.target))
    if node.op.value == "call_function" and node.target in FF.STEPS:    # name the layer
        kind = {FF.conv_step: "conv", FF.pool_step: "pool",
                FF.quantize_conv_step: "qconv", FF.conv_pool_step: "conv+pool",
                FF.pool_linear_dequantize: "tail"}.get(node.target, "pair")
        target = f"{kind}:{node.args[0].target}{'*' if FF.step_overlaps(node) else ''}"
    shape = tuple(getattr(value, "shape", ()) or ())
    return f"{node.op.value[:6]}:{target} {'x'.join(map(str, shape))}"


def kind_of(label: str) -> str:
    """A step's group for --group: its op, and for convolutions their output shape."""
    op = label.split()[0].split(":")[-1]
    return label if "conv" in label.lower() or op.startswith("layer") else op


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="resnet18")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--calls", type=int, default=12)
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--group", action="store_true")
    p.add_argument("--hw", type=int, default=None,
                   help="resnet18's image size (small: the per-op glue alone)")
    p.add_argument("--no-overlap", action="store_true",
                   help="every conv step finishes its kernel before it returns (by default "
                        "a step may leave it running: its time then shows in the next "
                        "step's, fused_forward.OVERLAP)")
    args = p.parse_args(argv)
    FF.OVERLAP[0] = not args.no_overlap
    batch = args.batch or {"resnet18": 8, "small_cnn": 64, "mlp": 64}.get(args.model, 8)
    ember.set_num_threads(args.threads)
    model, x = converted(args.model, batch, args.hw)
    default_pool().profiling = True     # chunks run through Python count as busy too
    clocks = _Clocks()
    prof = Profiler(model, clocks, _Inside())
    with ember.no_grad():
        for _ in range(3):          # warm: runners made, weights packed
            model(x)
        prof.samples.clear()
        totals = []
        for _ in range(args.calls):
            w0, c0, k0 = time.perf_counter(), time.thread_time(), clocks.workers()
            with_fused_clamps(model, prof.run, x)
            totals.append((time.perf_counter() - w0, time.thread_time() - c0,
                           clocks.workers() - k0))
        plain = []
        for _ in range(args.calls):
            t0 = time.perf_counter()
            model(x)
            plain.append(time.perf_counter() - t0)
    nodes = {node.name: node for node in prof.graph.nodes}
    values = _values(model, prof.graph, x)
    n = args.threads
    width = Profiler.N_SAMPLE + n
    rows = []
    for name, samples in prof.samples.items():
        med = [statistics.median(s[i] for s in samples) * 1e3 for i in range(width)]
        rows.append((describe(nodes[name], values.get(name)), *med))
    if args.group:
        grouped = collections.OrderedDict()
        for label, *vals in rows:
            g = grouped.setdefault(kind_of(label), [0] + [0.0] * width)
            g[0] += 1
            for i, v in enumerate(vals):
                g[i + 1] += v
        rows = [(f"{k} (x{g[0]})", *g[1:]) for k, g in grouped.items()]
    print(f"{args.model} batch {batch}, {n} thread(s), median of {args.calls} calls, "
          f"load {os.getloadavg()[0]:.2f}; ms. pool: wall inside parallel_for; alone: the "
          "caller's CPU outside it (serial work); busy<i>: thread i running chunks; "
          "idle: threads x pool - busy")
    threaded = n > 1
    head = ("step", "wall", "caller", "workers", "util", "pool", "alone") + \
        (tuple(f"busy{i}" for i in range(n)) + ("idle",) if threaded else ())
    print(f"{head[0]:56s}" + "".join(f"{h:>8s}" for h in head[1:]))
    sums = [0.0] * width
    for label, *vals in rows:
        sums = [a + b for a, b in zip(sums, vals)]
        print(_row(label, vals, n))
    print(_row("sum of steps", sums, n))
    med = [statistics.median(t[i] for t in totals) * 1e3 for i in range(3)]
    print(f"{'whole interpreted call':56s}{med[0]:8.3f}{med[1]:8.3f}{med[2]:8.3f}")
    print(f"{'whole call (GraphModule, no interpreter)':56s}"
          f"{statistics.median(plain) * 1e3:8.3f}")


def _row(label: str, vals, n: int) -> str:
    """One printed row: wall, caller, workers, util, pool, alone (and per-thread busy and
    idle at several threads)."""
    wall, caller, workers, pool, alone = vals[:5]
    util = (caller + workers) / (n * wall) if wall > 0 else 0.0
    line = f"{label[:56]:56s}{wall:8.3f}{caller:8.3f}{workers:8.3f}{util:8.2f}" \
        f"{pool:8.3f}{alone:8.3f}"
    if n > 1:
        busy = vals[5:5 + n]
        line += "".join(f"{b:8.3f}" for b in busy) + f"{max(0.0, n * pool - sum(busy)):8.3f}"
    return line


def _values(model, graph, x) -> dict:
    """node name -> its value (one interpreted call; for the shapes)."""
    values = {}

    class Values(Interpreter):
        def run_node(self, node):
            value = values[node.name] = super().run_node(node)
            return value
    with ember.no_grad():
        with_fused_clamps(model, Values(model, graph=graph).run, x)
    return values


if __name__ == "__main__":
    main()
