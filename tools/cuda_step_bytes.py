"""Every GPU activity and per-kernel byte table of a compiled CUDA training step, without
a GPU.

Builds `compile_train_step(model, CrossEntropyLoss(), SGD(momentum=0.9), backend="triton")`
for small_cnn, a conv-BN-ReLU net or resnet18 (channels-last, batch 64 at --size), or
benchmarks/cuda.py's training rows `transformer` (TransformerEncoderLayer(512, 8 heads,
2048, dropout 0, batch_first), batch 32 x 128 tokens, MSELoss, AdamW) and `mlp`
(ember.models.mlp(), batch 64, CrossEntropyLoss, Adam) -- with --bf16 the step traced
under `ember.autocast("cuda", dtype=bfloat16)` as that benchmark's _bf16 rows -- in
emulated CUDA memory (tests/cuda/emulation.py: 'cuda:0' is host memory) and runs the
steady step (momentum buffers present) with every launch, device-to-device memcpy and
memset *recorded instead of run*, CUDA graphs included (call 1 runs step by step, call 2
captures, call 3 replays and is the one recorded; --no-graphs: call 2, step by step):
shapes are static, so the sequence is the GPU's (except convolutions cuDNN would take on
a GPU, which run as ember's Triton kernels here). It first counts the activities (kernel
launches, memcpys, memsets; inside the graph or outside it) and lists, per origin, the
copies and memsets of each plan step and everything launched outside the plan's steps
(the origin: the compiler function that asked, e.g. `GraphedPlan.run > _copy_span` for a
replay's input copies, `write_back`, `count_batchnorm_batches`); --every lists each
activity in order with its origin (`step <graph node>` inside the plan). Per kernel it
then prints

- `bytes`: what it reads and writes in DRAM, counted from its kernel description:
  every stage that walks the reduced space reads the inner-walking loads it uses once
  per walk (a looped Reduce walks once per stage; split phases walk their level's
  stages; the final phase walks once for the stores), a persistent kernel reads each
  load once; loads indexed by kept points only are counted once. Kernels without a
  description (GEMMs, convolutions, transposes, scatters, optimizer updates) count their
  operands once each.
- `minimum`: each distinct buffer it reads or writes, once;
- `ratio` and the plan step (graph node) that launched it,

then totals per kernel family and the launch count. Run where ember imports:

    python tools/cuda_step_bytes.py [--model resnet18|small_cnn|convbn|transformer|mlp]
        [--size 224] [--batch 64] [--bf16] [--top 40] [--json PATH] [--no-graphs] [--every]
        [--show KERNEL] [--cudnn-wgrad] [--roofline] [--profile PROFILE_OUTPUT]

--profile FILE reads `benchmarks/cuda_train_step.py --profile N` output (its ember
section) and gives each launch of a kernel name it lists its measured time, in launch
order: the roofline table then shows measured time and estimate/measured, farthest from
the roofline first. Names the GPU ran as cuDNN kernels match nothing; give --cudnn-wgrad
where the GPU's step took cuDNN weight gradients, so the fused kernels' names and bytes are
the GPU's.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import sys
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("TRITON_INTERPRET", "1")
_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(_ROOT))
sys.path.insert(0, str(_ROOT / "tests" / "cuda"))

import numpy as np  # noqa: E402

import ember  # noqa: E402
from ember import nn  # noqa: E402
from ember.codegen import kernel as K  # noqa: E402
from ember.codegen.triton import conv_wgrad, gemm, source, split_reduce  # noqa: E402
from ember.codegen.triton.reduce_levels import flatten_levels  # noqa: E402

# id(GeneratedKernel) -> (description, role): role None (one kernel), or the split
# phase's level ("partial<n>") / "final"
_DESCRIPTIONS: dict[int, tuple] = {}
SHOW: set = set()              # kernel names whose source --show prints
OPTIONS: dict = {}             # extra compile_train_step options (--cudnn-wgrad)


# id(GeneratedKernel) -> (problem, config, role, splits): role None (one GEMM kernel),
# "partial" (a split-K GEMM's partial products) or "sum" (its sum and epilogue)
_GEMMS: dict[int, tuple] = {}


def _track_gemms(mp) -> None:
    plain, split = gemm.generate_gemm, gemm.generate_split_gemm

    def tracked_gemm(problem, config=None, epilogue=None, name="gemm"):
        made = plain(problem, config, epilogue, name)
        _GEMMS[id(made)] = (problem, config or gemm.GemmConfig(), None, 1)
        return made

    def tracked_split(problem, config, splits, epilogue=None, name="gemm", **kw):
        made = split(problem, config, splits, epilogue, name, **kw)
        for kernel, role in zip(made.kernels, ("partial", "sum")):
            _GEMMS[id(kernel)] = (problem, config, role, made.splits)
        return made
    mp.setattr(gemm, "generate_gemm", tracked_gemm)
    mp.setattr(gemm, "generate_split_gemm", tracked_split)


# id(GeneratedKernel) -> (WeightGradProblem, SplitPlan) of conv_wgrad's partial products
_WGRADS: dict[int, tuple] = {}


def _track_weight_grads(mp) -> None:
    partial = conv_wgrad.partial_kernel

    def tracked(problem, split, name="conv_weight_grad"):
        made = partial(problem, split, name)
        _WGRADS[id(made)] = (problem, split)
        return made
    mp.setattr(conv_wgrad, "partial_kernel", tracked)


def _wgrad_cost(problem, split) -> tuple[int, str, str]:
    """(FLOPs, precision, config) of a weight gradient's partial-product launch."""
    flops = 2 * problem.m * problem.n * problem.k * problem.groups
    config = (f"{split.block_m}x{split.block_n}x{split.block_k}/{split.num_warps}w/"
              f"{split.num_stages}s split-K {split.splits}")
    return flops, problem.precision or problem.dtype.name, config


def _track_descriptions(mp) -> None:
    generate, split = source.generate, split_reduce.generate_split

    def tracked_generate(kernel, blocks=None):
        made = generate(kernel, blocks)
        blocks = blocks or source.default_blocks(kernel)
        if kernel.inner and not blocks.persistent:
            kernel = flatten_levels(kernel)            # what generate emits
        _DESCRIPTIONS[id(made)] = (kernel, None, blocks)
        return made

    def tracked_split(kernel, plan=None):
        made = split(kernel, plan)
        if made is not None:
            for k in made.kernels:
                _DESCRIPTIONS[id(k)] = (made.kernel, k.name.rsplit("_", 1)[1],
                                        made.plan.blocks)
        return made
    mp.setattr(source, "generate", tracked_generate)
    mp.setattr(split_reduce, "generate_split", tracked_split)


# --- bytes from a kernel description --------------------------------------------------------
def _walks_inner(kernel: K.Kernel, e) -> bool:
    n_outer = len(kernel.outer)
    return any(e.index.coeff(v) for v in range(n_outer, kernel.n_vars))


def _distinct(kernel: K.Kernel, e, buffers: dict) -> int:
    """Bytes of the distinct elements load/store `e` touches over the kernel's space."""
    sizes = list(kernel.outer) + list(kernel.inner)
    used = math.prod(s for v, s in enumerate(sizes) if e.index.coeff(v))
    numel = buffers[e.buffer].numel
    return min(used, numel) * buffers[e.buffer].dtype.itemsize


def _phase_walks(kernel: K.Kernel, role, blocks) -> list[list]:
    """The stages walked together over the inner space, per walk (see source.walks)."""
    if not kernel.inner or blocks.persistent:
        return [list(kernel.stages)]
    if role is None:
        return [stages for _, stages in source.walks(kernel.stages)]
    levels = split_reduce._levels(kernel)
    if role == "final":
        return [[s for s in kernel.stages if not isinstance(s, K.Reduce)]]
    phase = int(role[len("partial"):])
    return [[s for s in kernel.stages
             if isinstance(s, K.Reduce) and levels[s.name] == phase]]


def description_bytes(kernel: K.Kernel, role, blocks) -> tuple[int, int]:
    """(bytes moved, minimum bytes) of one kernel (or split phase) of a description: each
    walk of the inner space reads its distinct inner-walking loads once; loads indexed
    by kept points only, and stores, count once per kernel."""
    buffers = {b.name: b for b in kernel.inputs + kernel.outputs}
    moved, touched, once = 0, {}, set()
    for walk in _phase_walks(kernel, role, blocks):
        seen = set()
        for stage in walk:
            for e in _loads_of(stage.value):
                b = _distinct(kernel, e, buffers)
                touched[e.buffer] = max(touched.get(e.buffer, 0), b)
                key = (e.buffer, repr(e.index))
                inner = not kernel.inner or _walks_inner(kernel, e)
                if key in (seen if inner else once):
                    continue
                (seen if inner else once).add(key)
                moved += b
            if not isinstance(stage, K.Reduce):
                b = _distinct(kernel, stage, buffers)
                touched[stage.buffer] = max(touched.get(stage.buffer, 0), b)
                moved += b
    return moved, sum(touched.values())


def strided_accesses(kernel: K.Kernel) -> list[str]:
    """Buffers a kernel reads or writes with no unit stride along the axes a program's
    tile spans (uncoalesced: each lane of a warp touches another 32-byte sector): the
    fastest-varying outer variable (a pointwise kernel's flat index runs the last outer
    axis first), and for a reduction the fastest inner variable too (Triton orders a
    2-D tile along whichever of its axes is contiguous)."""
    def last(sizes, first: int) -> list[int]:
        vs = [first + i for i, size in enumerate(sizes) if size > 1]
        return vs[-1:]
    tile_vars = last(kernel.outer, 0) + last(kernel.inner, len(kernel.outer))
    bad = []
    accesses = [e for st in kernel.stages for e in _loads_of(st.value)]
    accesses += [st for st in kernel.stages if not isinstance(st, K.Reduce)]
    for e in accesses:
        coeffs = [abs(e.index.coeff(v)) for v in tile_vars]
        if any(coeffs) and 1 not in coeffs and e.buffer not in bad:
            bad.append(e.buffer)
    return bad


def _loads_of(value) -> list:
    return [e for e in K._walk(value, set()) if isinstance(e, (K.Load, K.MaskedLoad))]


# --- GEMM costs -------------------------------------------------------------------------------
def gemm_bytes(generated, tensors, role) -> int:
    """A GEMM launch's DRAM bytes, each operand once (tiles re-read from L2 are not
    counted): a split-K GEMM's partial kernel reads A and B and writes the workspace, its
    sum kernel reads the workspace and the epilogue's inputs and writes its outputs."""
    from ember import Tensor
    names = generated.launch.buffers
    skip = {"partial": lambda n: n not in ("a", "b", "workspace"),
            "sum": lambda n: n in ("a", "b")}.get(role, lambda n: False)
    return sum(_tensor_bytes(t) for n, t in zip(names, tensors)
               if isinstance(t, Tensor) and not skip(n))


def gemm_cost(problem, config, role, splits) -> tuple[int, str, str]:
    """(FLOPs, tl.dot precision or the 16-bit type, which operands are not K-major)."""
    m, n, k, batch = problem.m, problem.n, problem.k, problem.batch
    if role == "sum":
        return splits * m * n * batch, "fp32 sum", ""
    precision = gemm._precision(problem) or problem.dtype.name
    a_kmajor = getattr(problem, "a_strides", (0, 0, 1))[2] == 1
    b_kmajor = getattr(problem, "b_strides", (0, 1, 0))[1] == 1
    layout = "".join(name for name, ok in (("A", a_kmajor), ("B", b_kmajor)) if not ok)
    return 2 * m * n * k * batch, precision, layout and f"{layout} MN-major"


def _config_text(gemm_row) -> str:
    if gemm_row is None:
        return ""
    _, c, role, splits = gemm_row
    if role == "sum":
        return f"sum of {splits}"
    text = f"{c.block_m}x{c.block_n}x{c.block_k}/{c.num_warps}w/{c.num_stages}s"
    return text + (f" split-K {splits}" if role == "partial" else "")


# --- a roofline for an H100 -----------------------------------------------------------------
SMS = 132                  # H100 SXM
DRAM_BPS = 3.0e12          # HBM3, what a well-occupied kernel reaches
LAUNCH_S = 2e-6            # a kernel launched from a CUDA graph, back to back
# dense tensor-core FLOP/s of the whole GPU by tl.dot precision (H100 SXM: TF32 ~400 T
# in practice, 16-bit twice that, IEEE float32 on the CUDA cores ~60 T)
PEAK = {"tf32": 400e12, "tf32x3": 133e12, "ieee": 60e12, "float16": 800e12,
        "bfloat16": 800e12, "fp32 sum": 60e12}
# Hopper's wgmma takes TF32 operands only K-major in shared memory: an MN-major float32
# operand costs Triton a transposing path (measured on an H100, Triton 3.6, 4096^3 with
# B row-major: 143 TFLOP/s against 305 with B K-major)
MN_MAJOR_TF32 = 143 / 305


def roofline(row: dict) -> dict:
    """The launch's time on an H100 if it ran at the machine's limits for its grid: its
    FLOPs over the SMs its programs occupy (whole waves: a program's work over one SM's
    share of the peak), its bytes at DRAM bandwidth scaled by the SMs it occupies, and a
    launch's floor. Adds `programs`, `est_s`, `bound` and `occupancy` to the row."""
    if row["family"] in ("memcpy", "memset"):
        est = row["bytes"] / DRAM_BPS
        return {**row, "programs": 0, "est_s": est, "bound": "memory", "occupancy": 1.0}
    programs = math.prod(row["grid"]) or 1
    occupancy = min(1.0, programs / SMS)
    rate = PEAK.get(row.get("precision") or "", PEAK["ieee"]) / SMS
    if row.get("layout") and row.get("precision") == "tf32":
        rate *= MN_MAJOR_TF32
    compute = math.ceil(programs / SMS) * (row.get("flops", 0) / programs) / rate
    memory = row["bytes"] / (DRAM_BPS * occupancy)
    est, bound = max((compute, "compute"), (memory, "memory"), (LAUNCH_S, "launch"))
    return {**row, "programs": programs, "est_s": est, "bound": bound,
            "occupancy": occupancy}


_PROFILE_LINE = re.compile(r"^\s*([\d.]+) ms/step\s+x\s*([\d.]+)\s+(\S+)(?:\s+\[([^\]]*)\])?")


def parse_profile(text: str) -> dict[str, list[float]]:
    """Seconds per launch of each kernel name in the `[profile ember compiled]` section
    of benchmarks/cuda_train_step.py --profile output (per-launch lists in launch order
    where the line has one, else the total spread evenly over its count)."""
    found: dict[str, list[float]] = {}
    inside = False
    for line in text.splitlines():
        if line.startswith("[profile"):
            inside = line.startswith("[profile ember")
            continue
        match = _PROFILE_LINE.match(line) if inside else None
        if not match:
            continue
        total, count, name, each = match.groups()
        if each:
            found[name] = [float(v) / 1e3 for v in each.split(",")]
        else:
            n = max(1, round(float(count)))
            found[name] = [float(total) / 1e3 / n] * n
    return found


def attach_measured(rows: list[dict], measured: dict[str, list[float]]) -> list[str]:
    """Give each launch its measured seconds (`meas_s`, in launch order) where the profile
    lists its kernel name as often as the step launches it; returns the names whose
    counts differ (some of those launches ran as cuDNN kernels on the GPU: which ones, the
    order cannot tell), left unmatched."""
    launched: dict[str, list[dict]] = {}
    for row in rows:
        launched.setdefault(row.get("gpu_name", row.get("kernel", "")), []).append(row)
    differ = []
    for name, times in measured.items():
        mine = launched.get(name)
        if not mine:
            continue
        if len(mine) != len(times):
            differ.append(f"{name} ({len(times)} on the GPU, {len(mine)} here)")
            continue
        for row, seconds in zip(mine, times):
            row["meas_s"] = seconds
    return differ


def print_roofline(rows: list[dict], top: int) -> None:
    """Each launch by its estimated H100 time: where the step's time should go. Where
    launches carry measured times (--profile), the table adds them and sorts by the
    measured time over the estimate: the launches farthest from their roofline first."""
    costed = [roofline(r) for r in rows]
    measured = any("meas_s" in r for r in costed)
    total = sum(r["est_s"] for r in costed)
    flops = sum(r.get("flops", 0) for r in costed)
    print(f"H100 roofline ({SMS} SMs, TF32 {PEAK['tf32'] / 1e12:.0f} TFLOP/s, 16-bit "
          f"{PEAK['bfloat16'] / 1e12:.0f}, {DRAM_BPS / 1e12:.0f} TB/s, {LAUNCH_S * 1e6:.0f} us a "
          f"launch): {len(costed)} activities, {flops / 1e9:.1f} GFLOP, estimate "
          f"{total * 1e3:.3f} ms a step")
    if measured:
        timed = [r for r in costed if "meas_s" in r]
        print(f"measured (profile): {len(timed)} launches matched by name, "
              f"{sum(r['meas_s'] for r in timed) * 1e3:.3f} ms against their estimate "
              f"{sum(r['est_s'] for r in timed) * 1e3:.3f} ms")
    print(f"\n{'meas us  est/meas ' if measured else ''}{'est us':>7} {'bound':>7} "
          f"{'progs':>6} {'occ':>4} {'GFLOP':>6} {'MB':>6}  "
          "kernel  [plan step]  precision/layout  config")
    order = (lambda r: -(r.get("meas_s", 0) - r["est_s"])) if measured else \
        (lambda r: -r["est_s"])
    for r in sorted(costed, key=order)[:top]:
        note = " ".join(x for x in (r.get("precision") or "", r.get("layout") or "") if x)
        if measured:
            meas = r.get("meas_s")
            print(f"{meas * 1e6:7.1f} {r['est_s'] / meas * 100:8.0f}% " if meas else
                  f"{'-':>7} {'-':>9} ", end="")
        print(f"{r['est_s'] * 1e6:7.1f} {r['bound']:>7} {r['programs']:6d} "
              f"{r['occupancy'] * 100:3.0f}% {r.get('flops', 0) / 1e9:6.2f} "
              f"{r['bytes'] / 1e6:6.1f}  {r['kernel'][:30]}  [{r['step'][:26]}]  {note}  "
              f"{r.get('config', '')}")


# --- recording a step ----------------------------------------------------------------------
# frames that only carry a launch or a copy to the driver: the origin is their caller
_PLUMBING = {"_copy_span", "copy", "copy_into", "_copy_into", "_launch", "_map", "launch",
             "__call__", "_call", "_run_step", "named", "<genexpr>"}


def _origin() -> str:
    """Who asked for a launch or copy made outside every plan step: the innermost
    compiler frame that is not plumbing ('write_back', 'GraphedPlan.run', ...), with the
    compiler's plumbing it went through ('GraphedPlan.run > copy')."""
    frame = sys._getframe(2)
    fallback, via = None, []
    while frame is not None:
        path, name = frame.f_code.co_filename, frame.f_code.co_name
        if "/ember/" in path and fallback is None and name not in _PLUMBING:
            fallback = name
        if "/ember/compiler/" in path:
            if name not in _PLUMBING:
                owner = frame.f_locals.get("self")
                where = type(owner).__name__ + "." if owner is not None else ""
                return " > ".join([f"{where}{name}"] + via[-1:])
            via.append(name)
        frame = frame.f_back
    return fallback or "?"


_FIRST_NAMES: dict[str, str] = {}     # a kernel's text without its name -> first name


def _gpu_name(generated) -> str:
    """The name a GPU profile shows for this launch: kernels whose text differs only in
    their name (the two blocks of a resnet layer) run as the first one's."""
    body = "\n".join(line for line in generated.source.replace(generated.name, "@").splitlines()
                     if not line.lstrip().startswith("#"))
    return _FIRST_NAMES.setdefault(body, generated.name)


class _Recorder:
    """Every GPU activity of a step: kernel launches, device-to-device copies and memsets,
    each with its origin (the plan step, i.e. graph node, that made it, or the code
    around the plan) and whether a CUDA graph replays it."""

    def __init__(self):
        self.rows: list[dict] = []
        self.step: str | None = None          # the plan step running now
        self.capturing: list | None = None    # rows a CUDA-graph capture records

    def _add(self, row: dict) -> None:
        row["origin"] = f"step {self.step}" if self.step is not None else _origin()
        row["step"] = self.step or "-"
        row["graph"] = self.capturing is not None
        (self.capturing if self.capturing is not None else self.rows).append(row)

    def launch(self, generated, tensors) -> None:
        from ember import Tensor
        operands = [t for t in tensors if isinstance(t, Tensor)]
        described = _DESCRIPTIONS.get(id(generated))
        gemm_row = _GEMMS.get(id(generated))
        wgrad = _WGRADS.get(id(generated))
        flops, precision, layout, config = 0, None, "", _config_text(gemm_row)
        if described is not None:
            moved, minimum = description_bytes(*described)
            strided = strided_accesses(described[0])
            layout = f"strided {','.join(strided)}" if strided else ""
        elif gemm_row is not None:
            moved = minimum = gemm_bytes(generated, tensors, gemm_row[2])
            flops, precision, layout = gemm_cost(*gemm_row)
        else:
            moved = minimum = sum(_tensor_bytes(t) for t in operands)
            if wgrad is not None:
                flops, precision, config = _wgrad_cost(*wgrad)
        if generated.name in SHOW:
            SHOW.discard(generated.name)
            print(generated.source)
        self._add({"kernel": generated.name, "family": _family(generated.name),
                   "gpu_name": _gpu_name(generated),
                   "bytes": moved, "minimum": minimum, "grid": list(generated.launch.grid),
                   "shapes": [list(t.shape) for t in (operands[:-1] if gemm_row and
                                                       gemm_row[2] else operands)][:4],
                   "flops": flops, "precision": precision, "layout": layout,
                   "warps": generated.launch.num_warps, "stages": generated.launch.num_stages,
                   "config": config})

    def copy(self, nbytes: int) -> None:
        self._add({"kernel": "memcpy", "family": "memcpy", "bytes": 2 * nbytes,
                   "minimum": 2 * nbytes, "grid": [], "shapes": [[nbytes]]})

    def memset(self, nbytes: int) -> None:
        self._add({"kernel": "memset", "family": "memset", "bytes": nbytes,
                   "minimum": nbytes, "grid": [], "shapes": [[nbytes]]})


def _recording_graph(recorder: _Recorder):
    """CudaGraph as the driver makes one: capture records the activities, each launch
    replays them (here: appends them to the step's rows)."""
    class RecordedGraph:
        def __init__(self, rows, result):
            self.rows, self.result, self.launches = rows, result, 0

        @classmethod
        def capture(cls, work, device=0):
            recorder.capturing = []
            try:
                result = work()
                return cls(recorder.capturing, result)
            finally:
                recorder.capturing = None

        @property
        def node_count(self):
            return len(self.rows)

        def launch(self, stream=None):
            recorder.rows.extend(dict(r) for r in self.rows)
            self.launches += 1
    return RecordedGraph


def _tensor_bytes(t) -> int:
    return int(t._array.extent()) * t.dtype.itemsize


def _family(name: str) -> str:
    name = re.sub(r"_\d+", "_N", name)
    return re.sub(r"N_(partial\d|final)$", r"N_\1", name)


@contextlib.contextmanager
def recording(recorder: _Recorder):
    """Emulated CUDA where launches, device copies and memsets are recorded, not run,
    and CUDA graphs record what their capture queued."""
    import pytest
    from emulation import emulated_cuda
    from ember.compiler import compile_cuda
    from ember.frontend import cuda as cuda_api, eager_cuda
    from ember.runtime import plan as plan_mod
    from ember.runtime.cuda import graph as cuda_graph, stream as S
    run_step = plan_mod.Plan._run_step

    def named(self, step, values):
        outer, recorder.step = recorder.step, step.name
        try:
            return run_step(self, step, values)
        finally:
            recorder.step = outer
    with emulated_cuda(8 << 30), pytest.MonkeyPatch.context() as mp:
        _track_descriptions(mp)
        _track_gemms(mp)
        _track_weight_grads(mp)
        mp.setattr(cuda_api, "is_available", lambda: True)   # autocast('cuda') asks
        mp.setattr(compile_cuda.CudaBackend, "precompile", False)
        mp.setattr(compile_cuda, "_launch", lambda k, ts: recorder.launch(k.generated, ts))
        mp.setattr(eager_cuda, "launch", lambda g, ts, i: recorder.launch(g, ts))
        mp.setattr(S, "copy_device_to_device", lambda d, s, n, st: recorder.copy(n))
        mp.setattr(S, "memset", lambda ptr, value, n, st: recorder.memset(n))
        mp.setattr(cuda_graph, "CudaGraph", _recording_graph(recorder))
        mp.setattr(plan_mod.Plan, "_run_step", named)
        yield


# --- models ------------------------------------------------------------------------------------
def convbn():
    return nn.Sequential(nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False),
                         nn.BatchNorm2d(64), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1,
                                                                  bias=False),
                         nn.BatchNorm2d(64), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(64, 10))


MODELS = {"resnet18": lambda: ember.models.resnet18(num_classes=10),
          "small_cnn": lambda: ember.models.small_cnn(in_channels=3),
          "convbn": convbn}


# benchmarks/cuda.py's training rows: (model, input shape at `batch`, target, loss, optimizer)
def _transformer(batch):
    layer = nn.TransformerEncoderLayer(512, 8, 2048, dropout=0.0, batch_first=True)
    return (layer, (batch, 128, 512), lambda: ember.randn(batch, 128, 512), nn.MSELoss(),
            lambda m: ember.optim.AdamW(m.parameters(), lr=1e-3))


def _mlp(batch):
    return (ember.models.mlp(), (batch, 784), lambda: ember.randint(0, 10, (batch,)),
            nn.CrossEntropyLoss(), lambda m: ember.optim.Adam(m.parameters(), lr=1e-3))


SEQUENCE_MODELS = {"transformer": _transformer, "mlp": _mlp}


def _build(model_name: str, size: int, batch: int):
    """(model on the device, x, y, loss, optimizer); the conv nets channels-last with
    their momentum buffers present (the steady step)."""
    if model_name in SEQUENCE_MODELS:
        model, shape, target, loss, make_opt = SEQUENCE_MODELS[model_name](batch)
        model = model.cuda()
        return model, ember.randn(*shape).cuda(), target().cuda(), loss, make_opt(model)
    model = MODELS[model_name]().to(memory_format=ember.channels_last).cuda()
    opt = ember.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    for p in model.parameters():
        opt.state[p]["momentum_buffer"] = ember.zeros_like(p)
    x = ember.randn(batch, 3, size, size).contiguous(memory_format=ember.channels_last)
    y = ember.randint(0, 10, (batch,))
    return model, x.cuda(), y.cuda(), nn.CrossEntropyLoss(), opt


def _compile_step(model, loss_fn, opt, graphs: bool, bf16: bool):
    """compile_train_step as benchmarks/cuda.py builds it (bf16: a traced step function
    with autocast around the forward and the loss)."""
    options = {"cuda_graphs": graphs, **OPTIONS}
    if not bf16:
        return ember.compile_train_step(model, loss_fn, opt, backend="triton",
                                        options=options)

    @ember.compile_train_step(backend="triton", options=options)
    def step(x, y):
        with ember.autocast("cuda", dtype=ember.bfloat16):
            loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss
    return step


def _count_steps(opt, n: int) -> None:
    """Adam's step counts (host tensors) come back from device memory no kernel wrote
    (launches are recorded, not run): garbage, NaN at times, which the next call would
    refuse as differing within a group. Set them to the count they would have."""
    for state in opt.state.values():
        if "step" in state:
            state["step"].fill_(float(n))


def step_rows(model_name: str, size: int, batch: int, graphs=True, bf16=False,
              tf32=True) -> list[dict]:
    """The steady step's activities: with `graphs`, the third call (call 1 runs step by
    step, call 2 captures, call 3 replays), else the second (Adam's state exists after
    the first). `tf32`: float32 GEMMs take TF32 (benchmarks/cuda.py's setting)."""
    recorder = _Recorder()
    with recording(recorder), _tf32(tf32):
        ember.manual_seed(0)
        model, x, y, loss_fn, opt = _build(model_name, size, batch)
        step = _compile_step(model, loss_fn, opt, graphs, bf16)
        for n in range(2 if graphs else 1):
            step(x, y)
            _count_steps(opt, n + 1)
        recorder.rows.clear()
        step(x, y)
    return recorder.rows


@contextlib.contextmanager
def _tf32(on: bool):
    flag = ember.backends.cuda.matmul
    saved, flag.allow_tf32 = flag.allow_tf32, on
    try:
        yield
    finally:
        flag.allow_tf32 = saved


def activity_counts(rows: list[dict]) -> dict:
    """Kernel launches, memcpys and memsets per step, in the graph and outside it."""
    counts = {"activities": len(rows)}
    for kind in ("launches", "memcpys", "memsets"):
        picked = [r for r in rows if _kind(r) == kind]
        counts[kind] = len(picked)
        counts[f"{kind}_outside_graph"] = sum(1 for r in picked if not r["graph"])
    counts["memcpy_bytes"] = sum(r["bytes"] // 2 for r in rows if _kind(r) == "memcpys")
    return counts


def _kind(row: dict) -> str:
    return {"memcpy": "memcpys", "memset": "memsets"}.get(row["family"], "launches")


def print_activities(rows: list[dict], every: bool) -> None:
    """Per origin outside the plan's steps, and per plan step for copies and memsets (or,
    with `every`, each activity in order)."""
    c = activity_counts(rows)
    print(f"{c['activities']} GPU activities/step: {c['launches']} kernel launches "
          f"({c['launches_outside_graph']} outside the CUDA graph), {c['memcpys']} "
          f"device-to-device memcpys ({c['memcpys_outside_graph']} outside; "
          f"{c['memcpy_bytes'] / 1e6:.1f} MB), {c['memsets']} memsets")
    if every:
        print(f"\n{'#':>4} {'graph':>5}  kind      kernel  [origin]  shapes")
        for i, r in enumerate(rows):
            print(f"{i:4d} {'yes' if r['graph'] else 'no':>5}  {_kind(r):8s}  "
                  f"{r['kernel'][:40]}  [{r['origin'][:48]}]  {r['shapes'][:2]}")
        return
    by = defaultdict(lambda: [0, 0, 0])
    for r in rows:
        if r["step"] != "-" and _kind(r) == "launches":
            continue                              # plan steps' kernels: the byte table
        key = (r["origin"], r["graph"])
        by[key][("launches", "memcpys", "memsets").index(_kind(r))] += 1
    print(f"\n{'launches':>8} {'memcpys':>7} {'memsets':>7} {'graph':>5}  origin "
          "(copies and memsets by plan step, everything outside the plan's steps)")
    for (origin, graph), (n, m, z) in sorted(by.items(), key=lambda kv: -sum(kv[1])):
        print(f"{n:8d} {m:7d} {z:7d} {'yes' if graph else 'no':>5}  {origin}")


def print_table(rows: list[dict], top: int) -> None:
    total = sum(r["bytes"] for r in rows)
    least = sum(r["minimum"] for r in rows)
    print(f"{len(rows)} activities/step; {total / 1e6:.1f} MB moved against a minimum of "
          f"{least / 1e6:.1f} MB ({total / max(least, 1):.2f}x); at 3 TB/s "
          f"{total / 3e9:.2f} ms vs {least / 3e9:.2f} ms")
    print(f"\n{'MB':>9} {'min MB':>8} {'x':>5}  kernel  [plan step]  grid  shapes")
    for r in sorted(rows, key=lambda r: -r["bytes"])[:top]:
        print(f"{r['bytes'] / 1e6:9.1f} {r['minimum'] / 1e6:8.1f} "
              f"{r['bytes'] / max(r['minimum'], 1):5.2f}  {r['kernel'][:48]}  [{r['step'][:40]}]"
              f"  {r['grid']}  {r['shapes'][:2]}")
    families = defaultdict(lambda: [0, 0, 0])
    for r in rows:
        f = families[r["family"]]
        f[0] += 1
        f[1] += r["bytes"]
        f[2] += r["minimum"]
    print(f"\n{'launches':>8} {'MB':>9} {'min MB':>9}  family")
    for name, (n, b, m) in sorted(families.items(), key=lambda kv: -kv[1][1])[:top]:
        print(f"{n:8d} {b / 1e6:9.1f} {m / 1e6:9.1f}  {name}")



def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=list(MODELS) + list(SEQUENCE_MODELS),
                   default="resnet18")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, help="default: 32 for transformer, else 64")
    p.add_argument("--bf16", action="store_true",
                   help="the step under ember.autocast('cuda', dtype=bfloat16)")
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--json", type=Path, help="write the rows here")
    p.add_argument("--no-graphs", action="store_true",
                   help="options={'cuda_graphs': False}: launches step by step")
    p.add_argument("--every", action="store_true",
                   help="list every activity of the step in order, with its origin")
    p.add_argument("--show", action="append", default=[], metavar="KERNEL",
                   help="print this kernel's generated source (repeatable)")
    p.add_argument("--ieee", action="store_true",
                   help="float32 GEMMs in IEEE float32 (default: TF32, as benchmarks/cuda.py)")
    p.add_argument("--roofline", action="store_true",
                   help="only the H100 roofline table (every launch by estimated time)")
    p.add_argument("--cudnn-wgrad", action="store_true",
                   help="the step a GPU with cuDNN builds: float32 weight gradients keep "
                        "channels-last operands (no NCHW stores in their producers; "
                        "cudnn_conv.wgrad_wants_nchw); cuDNN's there, ember's route "
                        "(with its own NCHW copies) here")
    p.add_argument("--profile", type=Path, metavar="FILE",
                   help="benchmarks/cuda_train_step.py --profile output: the roofline table "
                        "adds each matched launch's measured time and sorts by the gap")
    args = p.parse_args(argv)
    SHOW.update(args.show)
    if args.cudnn_wgrad:
        OPTIONS["wgrad_nchw"] = False
    if args.batch is None:
        args.batch = 32 if args.model == "transformer" else 64
    rows = step_rows(args.model, args.size, args.batch, graphs=not args.no_graphs,
                     bf16=args.bf16, tf32=not args.ieee)
    if args.profile:
        differ = attach_measured(rows, parse_profile(args.profile.read_text()))
        if differ:
            print("profile names launched a different number of times here (unmatched): "
                  + ", ".join(differ))
    shape = ("" if args.model in SEQUENCE_MODELS
             else f" {args.size}x{args.size} channels-last")
    print(f"{args.model} batch {args.batch}{shape}{' bf16 autocast' if args.bf16 else ''}, "
          "compile_train_step(backend='triton'), steady step"
          f"{'' if args.no_graphs else ' (CUDA-graph replay)'}:")
    if not args.roofline:
        print_activities(rows, args.every)
        print()
        print_table(rows, args.top)
        print()
    print_roofline(rows, args.top)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
