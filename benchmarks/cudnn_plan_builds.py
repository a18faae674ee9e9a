"""Where a cuDNN plan build goes, and whether builds on threads overlap (GPU only).

A resnet18 training step (batch 64, 224x224, channels-last, float32 with TF32) asks
cuDNN for ~32 convolutions (forward, input and weight gradients of its 11 distinct conv
shapes); building their plans took 0.36-0.43 s on an H100, one after another. This
prints, for those specs:

- per phase of a build (ember's runtime/cuda/cudnn.py sequence: graph construction,
  validate, build_operation_graph, create_execution_plans (heuristics A + FALLBACK),
  check_support, build_plans), the summed milliseconds;
- heuristics A alone against A + FALLBACK (the fallback list is only needed where A
  has no plan that builds);
- all builds serially on one thread against the same builds on N threads (one cuDNN
  handle per thread): the same wall time means the frontend's Python binding holds the
  GIL while it builds (its pybind11 functions do not release it unless they say so), a
  shorter one that thread-pool builds would pay off.

- with `--serialize`: ember's on-disk cache of built plans (runtime/cuda/
  cudnn_plan_cache.py, through `cudnn.conv_plan` as a compile uses it): whether each
  built plan is stored and deserialized by a later lookup (the frontend's
  `pygraph.serialize()` / `pygraph.deserialize`), the milliseconds of the builds against
  the loads, and whether each deserialized plan's output equals the built one's bit for
  bit on the same random operands. Any plan not deserialized is listed with what its
  entry says (unserializable and why, or no entry).

    python benchmarks/cudnn_plan_builds.py [--threads 4] [--batch 64] [--rounds 3]
        [--serialize]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# run as `python benchmarks/cudnn_plan_builds.py`, this folder is first on sys.path, where
# benchmarks/cuda.py would stand in for NVIDIA's `cuda` package; the repository root
# makes `import ember` work without an install
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

# (Cin, Cout, kernel, stride, input H) of resnet18's distinct convolutions
CONVS = [(3, 64, 7, 2, 224), (64, 64, 3, 1, 56), (64, 128, 3, 2, 56), (64, 128, 1, 2, 56),
         (128, 128, 3, 1, 28), (128, 256, 3, 2, 28), (128, 256, 1, 2, 28),
         (256, 256, 3, 1, 14), (256, 512, 3, 2, 14), (256, 512, 1, 2, 14),
         (512, 512, 3, 1, 7)]


def specs(batch: int) -> list:
    from ember.frontend import cudnn_conv
    from ember.ir.meta import channels_last, strides_for
    found = []
    for cin, cout, k, stride, h in CONVS:
        pad = k // 2
        out = (h + 2 * pad - k) // stride + 1

        def geo(shape):
            return tuple(shape), tuple(strides_for(tuple(shape), channels_last)), "float32"
        x, w, y = geo((batch, cin, h, h)), geo((cout, cin, k, k)), geo((batch, cout, out, out))
        kinds = ("fprop", "wgrad") if cin == 3 else ("fprop", "dgrad", "wgrad")
        for kind in kinds:
            spec = cudnn_conv.spec_for(kind, x, w, y, (stride, stride), (pad, pad), (1, 1))
            if spec is not None:
                found.append(spec)
    return found


def phased_build(cudnn, spec, handle, modes, times: dict) -> None:
    """runtime/cuda/cudnn._build's sequence, each phase timed into `times` (ms)."""
    from ember.runtime.cuda import cudnn as rt
    t = time.perf_counter()

    def lap(name):
        nonlocal t
        now = time.perf_counter()
        times[name] = times.get(name, 0.0) + (now - t) * 1e3
        t = now
    dt = cudnn.data_type
    io = getattr(dt, rt.DTYPES[spec.dtype])
    graph = cudnn.pygraph(io_data_type=io, intermediate_data_type=dt.FLOAT,
                          compute_data_type=dt.FLOAT, handle=handle)

    def tensor(name, geometry):
        return graph.tensor(name=name, dim=list(geometry[0]), stride=list(geometry[1]),
                            data_type=io)
    geometry = dict(padding=list(spec.padding), stride=list(spec.stride),
                    dilation=list(spec.dilation), compute_data_type=dt.FLOAT)
    if spec.kind == "fprop":
        out = graph.conv_fprop(image=tensor("x", spec.x), weight=tensor("w", spec.w),
                               **geometry)
        made = spec.y
    elif spec.kind == "dgrad":
        out = graph.conv_dgrad(loss=tensor("dy", spec.y), filter=tensor("w", spec.w),
                               **geometry)
        made = spec.x
    else:
        out = graph.conv_wgrad(image=tensor("x", spec.x), loss=tensor("dy", spec.y),
                               **geometry)
        made = spec.w
    out.set_output(True).set_dim(list(made[0])).set_stride(list(made[1])).set_data_type(io)
    lap("graph construction")
    graph.validate()
    lap("validate")
    graph.build_operation_graph()
    lap("build_operation_graph")
    graph.create_execution_plans(modes)
    lap("create_execution_plans")
    graph.deselect_numeric_notes(rt._barred_notes(cudnn, spec))
    graph.check_support()
    lap("check_support")
    graph.build_plans(cudnn.build_plan_policy.HEURISTICS_CHOICE)
    lap("build_plans")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serialize", action="store_true",
                        help="time serialize/deserialize of each built plan against its "
                             "build, and compare their outputs")
    args = parser.parse_args()
    import ember
    from ember.runtime.cuda import cudnn as rt, driver
    ember.backends.cuda.matmul.allow_tf32 = True
    cudnn = rt.library()
    if cudnn is None:
        raise SystemExit(f"cuDNN is not available: {rt.unavailable_reason()}")
    driver.context(0)
    todo = specs(args.batch)
    if args.serialize:
        return serialized(cudnn, todo)
    both = [cudnn.heur_mode.A, cudnn.heur_mode.FALLBACK]
    handle = cudnn.create_handle()
    phased_build(cudnn, todo[0], handle, both, {})            # warm-up (library init)
    rows = {"A + FALLBACK": [], "A alone": [], "serial": [], "threads": []}
    phases: dict = {}
    for _ in range(args.rounds):                             # interleaved rounds
        for name, modes in (("A + FALLBACK", both), ("A alone", [cudnn.heur_mode.A])):
            start = time.perf_counter()
            for spec in todo:
                phased_build(cudnn, spec, handle, modes, phases if name != "A alone" else {})
            rows[name].append(time.perf_counter() - start)
        start = time.perf_counter()
        for spec in todo:
            phased_build(cudnn, spec, handle, both, {})
        rows["serial"].append(time.perf_counter() - start)
        handles: dict = {}

        def build(spec):
            import threading
            driver.context(0)
            h = handles.setdefault(threading.get_ident(), cudnn.create_handle())
            phased_build(cudnn, spec, h, both, {})
        with ThreadPoolExecutor(args.threads) as pool:
            start = time.perf_counter()
            list(pool.map(build, todo))
            rows["threads"].append(time.perf_counter() - start)
    print(f"{len(todo)} cuDNN convolution plans (resnet18 batch {args.batch}, channels-last, "
          f"TF32), cuDNN {rt.version()}, {driver.device_name(0)}; median of {args.rounds}:")
    for name, values in rows.items():
        label = name if name != "threads" else f"{args.threads} threads"
        print(f"  {label:<14} {statistics.median(values) * 1e3:8.1f} ms")
    print("per phase (A + FALLBACK, summed over the specs, all rounds / rounds):")
    for name, ms in phases.items():
        print(f"  {name:<24} {ms / args.rounds:8.1f} ms")


def serialized(cudnn, todo: list) -> None:
    """Per spec, through ember's own path (runtime/cuda/cudnn.conv_plan with its disk
    cache, runtime/cuda/cudnn_plan_cache.py) over a fresh cache directory: build and
    store, then as a new process would (no plan in memory) deserialize; run both on the
    same operands and compare bit for bit."""
    import os
    import tempfile
    import ember
    from ember.frontend.devices import data_ptr
    from ember.runtime.cuda import cudnn as rt, cudnn_plan_cache, driver
    os.environ["EMBER_CACHE_DIR"] = tempfile.mkdtemp(prefix="ember-cudnn-plans-")
    os.environ.pop("EMBER_CUDNN_PLAN_CACHE", None)
    rt._build(cudnn, todo[0], rt._handle(0))             # warm-up (library init)
    builds, loads, built_plans = [], [], []
    for spec in todo:
        start = time.perf_counter()
        built_plans.append(rt.conv_plan(spec, 0))
        builds.append(time.perf_counter() - start)
    rt._plans.clear()                                     # as a new process over the cache
    unequal, not_loaded = [], []
    for spec, built in zip(todo, built_plans):
        start = time.perf_counter()
        loaded = rt.conv_plan(spec, 0)
        loads.append(time.perf_counter() - start)
        if not all(isinstance(t, int) for t in loaded.tensors):    # built, not loaded
            not_loaded.append(f"{spec.describe()}: {_entry(cudnn_plan_cache, cudnn, spec)}")
            continue
        geometries = [spec.x, spec.w, spec.y]
        buffers = [ember.empty_strided(shape, strides, device="cuda").copy_(
            ember.randn(*shape)) for shape, strides in geometries]   # ConvSpec: (shape, strides)
        written = {"fprop": 2, "dgrad": 0, "wgrad": 1}[spec.kind]
        outputs = []
        for plan in (built, loaded):
            plan.run(tuple(data_ptr(b) for b in buffers), 0)
            ember.cuda.synchronize()
            outputs.append(buffers[written].cpu().numpy().copy())
        if not (outputs[0] == outputs[1]).all():
            unequal.append(spec.describe())
    print(f"{len(todo)} cuDNN convolution plans, cuDNN {rt.version()}, frontend "
          f"{getattr(cudnn, '__version__', '?')}, {driver.device_name(0)}:")
    print(f"  build and store: {sum(builds) * 1e3:.1f} ms in all; from disk: "
          f"{sum(loads) * 1e3:.1f} ms for all {len(loads)} "
          f"({len(todo) - len(not_loaded)} deserialized, the rest built)")
    print(f"  not deserialized: {len(not_loaded)}; output not bit-equal: {len(unequal)}")
    for line in not_loaded + [f"unequal: {u}" for u in unequal]:
        print("   ", line)


def _entry(cache, cudnn, spec) -> str:
    """What the disk cache holds for `spec` (why a plan was built instead of loaded)."""
    path = cache._path(cudnn, spec, 0)
    try:
        data = path.read_bytes()
    except (OSError, AttributeError) as err:
        return f"no entry ({type(err).__name__})"
    return data[len(cache.MAGIC):].partition(b"\n")[0].decode(errors="replace")[:200]


if __name__ == "__main__":
    main()
