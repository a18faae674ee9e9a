"""ember.aot.compile_and_package(exported, path, target="cuda"): a CUDA artifact.

The plan is the one `ember.compile(..., backend="triton")` builds (the same pipeline, the
same PlanBuilder, the same CUDA backend choices: generated Triton kernels for fused groups,
the Triton GEMM / implicit-GEMM conv with the epilogue fused, frozen weights repacked into
the layout the GEMM template is fast in, split-K GEMMs, K-major TF32 operand copies, split
reductions, cuDNN convolutions where cuDNN was timed faster), built on the host: no GPU is
needed but for the cuDNN choices (`cudnn_choices`: made on a GPU of the target
architecture, else every convolution is Triton's). Every
generated kernel is compiled by Triton for the target architecture (sm_90 for H100/H200
unless `options={"cuda_arch": ...}` says otherwise, or the local GPU's; `"cuda_graphs"`:
True, False or "auto", how the runtime replays the launches) through the same
cubin cache and compile jobs the in-process backend uses, so the artifact's machine code
is the in-process plan's, bit for bit. What it writes, besides the manifest:

  graph.ir             the graph after the pipeline (for reading)
  weights.safetensors  every constant the launches read (plan constants, repacked GEMM
                       and conv weights), each as the flat span of its own geometry
                       ("c<slot>", "f<step>_<operand>"), 64-byte aligned
  memory_plan.json     one device arena: inputs, intermediate values (regions shared as
                       the memory planner decided) and results, at fixed byte offsets
  plan.json            the launch table, in the in-process plan's launch order: per
                       launch the kernel (or a cuDNN convolution: its spec and engine
                       config tag, rebuilt at load) and each pointer argument
                       as (region, byte offset) with region "arena" or "weights"; the
                       inputs' and outputs' geometry; per kernel its launch metadata
                       (entry name, grid, block = 32 * num_warps threads, dynamic shared
                       memory, argument types, scratch sizes, pointer alignment)
  kernels/k<i>.cubin   the machine code, one cubin per distinct (kernel, alignment)

The manifest's target is {"kind": "cuda", "arch": "sm_90", "capability": [9, 0]}; the
lite runtime (runtime/lite_cuda.py) refuses a GPU of another architecture before loading
anything. Every pointer is fixed when packaging, so a call is: copy the inputs into
their arena regions, replay the launches (one CUDA graph), copy the results out.

A step the in-process plan would run eagerly (an op with no Triton kernel), a view whose
result is not a view of its input, and dynamic dimensions are refused, naming the step.
"""
from __future__ import annotations

import dataclasses
import json

import numpy as np

from ..codegen.triton import device_compile
from ..codegen.triton.source import literal_sizes
from ..ir.errors import LoweringError
from ..ir.graph import OpKind
from ..ir.printer import print_graph
from ..passes import PassContext, run_passes
from ..runtime import lite, lite_cuda
from ..runtime.cuda.module import LaunchMetadata
from .compile import CompileStats, CpuBackend, PlanBuilder, _with_fusion
from .compile_cuda import CudaBackend, CudnnConvStep, GemmStep, PlanKernel, SplitPlanKernel, \
    upload_exact
from .export import ExportedProgram

DEFAULT_ARCH = 90                 # H100 / H200
CUDNN_PACKAGE = lite_cuda.CUDNN_PACKAGE   # what an artifact with cuDNN steps requires
ALIGNMENT = device_compile.ALIGNMENT


def parse_arch(value) -> int:
    """90 from 90, "90", "sm_90" or "9.0"."""
    text = str(value).strip().lower().removeprefix("sm_")
    try:
        if "." in text:
            major, minor = text.split(".", 1)
            return int(major) * 10 + int(minor)
        arch = int(text)
    except ValueError:
        raise LoweringError(f"ember.aot: CUDA architecture {value!r} is not one like "
                            "'sm_90', 90 or '9.0'") from None
    if arch < 70:
        raise LoweringError(f"ember.aot: CUDA architecture sm_{arch} is older than Triton "
                            "supports (sm_70 and newer)")
    return arch


def default_arch() -> int:
    """This machine's GPU when there is one, else sm_90."""
    try:
        from ..runtime.cuda import driver
        if driver.is_available():
            major, minor = driver.capability(0)
            return major * 10 + minor
    except Exception:   # noqa: BLE001 - no driver, no bindings: package for the default
        pass
    return DEFAULT_ARCH


# --- the CUDA backend, on the host ------------------------------------------------------------
class _View:
    """A view step: its NumPy reference, run on a host array of the input's geometry to
    learn the result's (offset, shape, strides)."""

    def __init__(self, op, rest: tuple):
        self.op, self.rest = op, rest
        self.fn = CpuBackend().view(op, rest)


class _Scratch:
    """A float32 buffer of a step's own (a split's workspace, a TF32 operand's K-major
    copy), described: the artifact gives it a region of the arena's scratch area."""

    def __init__(self, numel: int):
        self.numel = int(numel)


def _describe(numel: int, index: int) -> _Scratch:
    return _Scratch(numel)


class _HostGemmStep(GemmStep):
    buffer = staticmethod(_describe)


class _HostSplitStep(SplitPlanKernel):
    buffer = staticmethod(_describe)


class HostCudaBackend(CudaBackend):
    """CudaBackend's plan choices without a device: constants stay host arrays (repacked
    on the host, as CudaBackend._repack lays them out on the device), kernels are not
    compiled here, views are described, eager steps are refused. Split-K GEMMs, K-major
    TF32 operand copies and split reductions are chosen as ember.compile chooses them;
    their buffers are described (_Scratch) and placed in the arena when packaging."""
    precompile = False
    gemm_step, split_step = _HostGemmStep, _HostSplitStep

    def __init__(self, arch: int = DEFAULT_ARCH, cudnn="auto"):
        super().__init__()
        self.buffers = None                   # the plan is described, never run
        self.cudnn = cudnn_choices(arch, cudnn)

    # -- cuDNN convolutions: ember.compile's choice, made on this machine's GPU ------------------
    def _cudnn_spec(self, problem, timed, epilogue: bool):
        """CudaBackend's choice between cuDNN and the Triton kernel for a convolution (the
        choice cache's record, or timed on this GPU), where `cudnn_choices` allows it."""
        if not self.cudnn:
            return None
        self.precompile = True                # CudaBackend times only where it compiles
        try:
            return super()._cudnn_spec(problem, timed, epilogue)
        finally:
            self.precompile = False

    def _time_conv(self, spec, problem, timed):
        from ..frontend import cudnn_conv
        known = cudnn_conv.timings(spec, self.index)
        if known is None and timed is not None and timed.fixed:   # repacked on the host
            timed = dataclasses.replace(timed, fixed={
                j: upload_exact(np.asarray(v), self.index) for j, v in timed.fixed.items()})
        return known if known is not None else super()._time_conv(spec, problem, timed)

    def constant(self, value):
        return CpuBackend().constant(value)

    def is_array(self, value) -> bool:
        return isinstance(value, np.ndarray)

    def _repack(self, value, strides) -> np.ndarray:
        host = np.asarray(value)
        packed = np.lib.stride_tricks.as_strided(
            np.empty(max(1, host.size), host.dtype), host.shape,
            [s * host.itemsize for s in strides])
        packed[...] = host
        return packed

    def view(self, op, rest: tuple):
        return _View(op, rest)

    def eager(self, node):
        what = getattr(node.target, "name", str(node.target))
        raise LoweringError(f"ember.aot (target='cuda'): step {node.name} ({what}) has no "
                            "Triton kernel in ember's CUDA backend (ember.compile would run "
                            "it eagerly), so it cannot be packaged: the artifact runs "
                            "kernels only")


def cudnn_choices(arch: int, mode) -> bool:
    """Whether packaging makes ember.compile's cuDNN-or-Triton choice per convolution:
    options["cudnn"] "auto" (the default) where this machine's GPU is the target
    architecture and cuDNN loads (the choice is a timing on that GPU, as ember.compile's
    is; anywhere else every convolution is Triton's), False never (an artifact that needs
    no cuDNN, whatever ember.compile would choose)."""
    if mode is False:
        return False
    if mode != "auto":
        raise LoweringError(f"ember.aot.compile_and_package: options['cudnn'] must be 'auto' "
                            f"or False, got {mode!r}")
    from ..frontend import cudnn_conv
    return default_arch() == arch and _has_gpu() and cudnn_conv.usable()


def _has_gpu() -> bool:
    try:
        from ..runtime.cuda import driver
        return bool(driver.is_available())
    except Exception:   # noqa: BLE001 - no driver, no bindings: no GPU
        return False


def cudnn_engine(spec, index: int = 0) -> str:
    """The cuDNN engine config (its tag) ember.compile runs for `spec`: the heuristics'
    choice - the config the in-process build itself selects (ConvPlan's `_build`, then
    `_selected_plan`), else the first config whose plan builds (runtime/lite_cudnn.py,
    what that build picks in cuDNN's frontend) - or under cudnn.benchmark the config this
    process's timing chose."""
    from ..runtime import lite_cudnn
    from ..runtime.cuda import cudnn as runtime_cudnn
    module = runtime_cudnn.library()
    if spec.benchmark:
        plan = runtime_cudnn._plans.get((spec, index))
        chosen = getattr(plan, "chosen", None)
        if chosen is None:
            raise LoweringError(f"ember.aot (target='cuda'): {spec.describe()} runs on cuDNN "
                                "with ember.backends.cudnn.benchmark on, and no call in this "
                                "process has timed its engines yet: call the compiled model "
                                "once before packaging, or package with benchmark off")
        return str(plan.graph.get_plan_name_at_index(chosen))
    runtime_cudnn.finish_builds()      # the builder thread is done with the handle
    handle = runtime_cudnn._handle(index)
    try:
        graph, tensors = runtime_cudnn._build(module, spec, handle)     # as ConvPlan builds
        chosen = _selected_plan(module, graph, tensors, spec, handle, index)
    except Exception:  # noqa: BLE001 - the frontend's errors have no common base
        chosen = -1
    if chosen < 0:            # no plan ran by index: the frontend's rule, first that builds
        graph, _ = lite_cudnn.conv_graph(module, spec, handle,
                                         runtime_cudnn._barred_notes(module, spec))
        chosen = lite_cudnn.first_buildable(graph)
    if chosen < 0:
        raise LoweringError(f"ember.aot (target='cuda'): cuDNN builds no plan for "
                            f"{spec.describe()}")
    return str(graph.get_plan_name_at_index(chosen))


def _selected_plan(module, graph, tensors, spec, handle, index: int) -> int:
    """The engine config a heuristics'-choice build selected: the built plan, the one
    index whose execution runs (plans not built refuse), tried in order on zeroed scratch
    buffers of the convolution's geometry; -1 where none runs."""
    from ..ir import dtypes
    from ..runtime.cuda.stream import current_stream
    from .compile_cuda import _scratch
    from ..frontend.devices import data_ptr
    dtype = getattr(dtypes, spec.dtype)
    cout = spec.w[0][0]
    shapes = [spec.x, spec.w, spec.y] + ([((1, cout, 1, 1), (cout, 1, 1, 1))]
                                         if spec.bias else []) + \
        ([spec.y] if "add" in spec.epilogue else [])
    buffers = [_scratch(shape, strides, dtype, index) for shape, strides in shapes]
    size = int(graph.get_workspace_size())
    workspace = _scratch((size,), (1,), dtypes.uint8, index) if size > 0 else None
    stream = current_stream(index)
    module.set_stream(handle, stream.handle)
    pack = dict(zip(tensors, [data_ptr(b) for b in buffers]))
    try:
        for i in range(int(graph.get_execution_plan_count())):
            try:
                graph.execute_plan_at_index(pack, None if workspace is None else
                                            data_ptr(workspace), i, handle=handle)
            except Exception:  # noqa: BLE001 - a plan not built (or barred) refuses
                continue
            return i
        return -1
    finally:
        stream.synchronize()


# --- geometry of every value ----------------------------------------------------------------
class _Where:
    """Where a value lives: region ("arena" | "weights" | "weight:<name>"), byte offset,
    shape, element strides, dtype."""

    def __init__(self, region, offset, shape, strides, dtype):
        self.region, self.offset = region, int(offset)
        self.shape, self.strides = tuple(int(s) for s in shape), tuple(int(s) for s in strides)
        self.dtype = np.dtype(dtype)

    def extent(self) -> int:
        if not all(self.shape):
            return 0
        return 1 + sum((s - 1) * st for s, st in zip(self.shape, self.strides))

    def json(self) -> dict:
        return {"region": self.region, "offset": self.offset, "shape": list(self.shape),
                "strides": list(self.strides), "dtype": self.dtype.str}


def _meta_where(region, offset, meta) -> _Where:
    return _Where(region, offset, meta.shape, meta.strides, meta.dtype.np_dtype)


def _span(array: np.ndarray) -> tuple[np.ndarray, tuple]:
    """The flat span a device copy of `array` occupies (upload_exact's layout: element
    strides kept when non-negative, else contiguous), and those strides."""
    array = np.asarray(array)
    item = array.itemsize
    if any(s < 0 or s % item for s in array.strides):
        array = np.ascontiguousarray(array)
    strides = tuple(s // item for s in array.strides)
    extent = 1 + sum((n - 1) * s for n, s in zip(array.shape, strides)) if all(array.shape) else 0
    span = np.zeros(max(extent, 1), array.dtype)
    if extent:
        np.lib.stride_tricks.as_strided(span, array.shape, array.strides)[...] = array
    return span, strides


class _Layout:
    """Arena regions and weights, walking the plan's steps in order."""

    def __init__(self, plan, graph):
        from .aot import _memory_plan
        self.plan, self.where, self.weights = plan, {}, {}
        memory = _memory_plan(plan)           # the in-process plan's persistent regions
        self.persistent = {b["slot"]: b["offset"] for b in memory["buffers"]}
        self.arena_bytes = memory["arena_bytes"]
        self.regions = memory["regions"]
        placeholders = [n for n in graph.nodes if n.op == OpKind.placeholder]
        self.inputs = []
        for slot, node in zip(plan.input_slots, placeholders):
            meta = node.meta["val"]
            where = _meta_where("arena", self._own(_nbytes(meta)), meta)
            self.where[slot] = where
            self.inputs.append(where)
        for slot, value in plan.constants.items():
            if isinstance(value, np.ndarray):
                self.where[slot] = self._weight(f"c{slot}", value)
            else:
                raise LoweringError(f"ember.aot (target='cuda'): constant slot {slot} is a "
                                    f"{type(value).__name__}, not an array")

    def _own(self, nbytes: int) -> int:
        offset = self.arena_bytes
        self.arena_bytes += -(-max(nbytes, 1) // lite.ALIGN) * lite.ALIGN
        self.regions += 1
        return offset

    def _weight(self, name: str, array: np.ndarray) -> _Where:
        span, strides = _span(array)
        self.weights[name] = span
        return _Where(f"weight:{name}", 0, array.shape, strides, array.dtype)

    def output(self, slot: int, spec) -> _Where:
        offset = self.persistent.get(slot) if spec.persistent else None
        if offset is None:
            offset = self._own(_nbytes(spec.meta))
        where = self.where[slot] = _meta_where("arena", offset, spec.meta)
        return where

    def fixed(self, name: str, array) -> _Where:
        return self._weight(name, np.asarray(array))

    def view(self, step, x: _Where) -> _Where:
        """The view's geometry: its reference run on a host array shaped like `x`."""
        base = np.zeros(max(x.extent(), 1), x.dtype)
        arg = np.lib.stride_tricks.as_strided(base, x.shape,
                                              [s * x.dtype.itemsize for s in x.strides])
        y = step.fn.fn(arg)
        if not isinstance(y, np.ndarray) or y.dtype != x.dtype or \
                (y.size and not np.shares_memory(arg, y)):
            raise LoweringError(f"ember.aot (target='cuda'): view step {step.name} does not "
                                "produce a view of its input; it cannot be packaged")
        delta = y.ctypes.data - base.ctypes.data if y.size else 0
        if delta % x.dtype.itemsize or any(s % x.dtype.itemsize or s < 0 for s in y.strides):
            raise LoweringError(f"ember.aot (target='cuda'): view step {step.name} is not "
                                "element-aligned with non-negative strides")
        return _Where(x.region, x.offset + delta, y.shape,
                      [s // x.dtype.itemsize for s in y.strides], x.dtype)


def _nbytes(meta) -> int:
    extent = 1 + sum((s - 1) * st for s, st in zip(meta.shape, meta.strides)) \
        if all(meta.shape) else 1
    return max(1, extent) * meta.dtype.itemsize


# --- packaging ----------------------------------------------------------------------------------
def package_cuda(exported: ExportedProgram, package_path, options: dict | None,
                 pipeline: str) -> str:
    """compile_and_package's target="cuda" (see the module doc)."""
    from .aot import _copy_graph, _manifest, _safetensors, _write_zip
    from ..codegen.llvm.target import host_isa
    options = dict(options or {})
    arch = parse_arch(options.pop("cuda_arch")) if "cuda_arch" in options else default_arch()
    graphs = options.pop("cuda_graphs", "auto")
    cudnn = options.pop("cudnn", "auto")
    if graphs not in (True, False, "auto"):
        raise LoweringError(f"ember.aot.compile_and_package: options['cuda_graphs'] must be "
                            f"True, False or 'auto', got {graphs!r}")
    if exported.symbolic_graph is not None:
        raise LoweringError("ember.aot.compile_and_package: target='cuda' does not support "
                            "dynamic dimensions yet; export with static shapes")
    graph = _copy_graph(exported.graph)
    ctx = PassContext(constants=dict(exported.tensors), options=options, inference=True)
    run_passes(graph, _with_fusion(pipeline), ctx)
    # sizes baked into the kernels: a launch record carries pointers only, and a kernel
    # entry its one grid (codegen/triton/source.py: literal_sizes)
    with literal_sizes():
        plan = PlanBuilder(graph, ctx.constants, CompileStats(), HostCudaBackend(arch, cudnn),
                           freeze_constants=True).build()
    layout = _Layout(plan, graph)
    launches, jobs, convs = _launches(plan, layout, arch)
    binaries = device_compile.compile_many(list(jobs.values()))
    kernels, members = [], {}
    for i, (job, binary) in enumerate(zip(jobs.values(), binaries)):
        if not isinstance(binary, device_compile.DeviceBinary):
            raise LoweringError(f"ember.aot: Triton could not compile {job.kernel.name} for "
                                f"sm_{arch}: {binary}")
        kernels.append(_kernel_json(job, binary, f"kernels/k{i}.cubin"))
        members[f"kernels/k{i}.cubin"] = binary.cubin
    outputs = [layout.where[s].json() for s in _flat(plan.output_slots)]
    used = {a[0] for launch in launches for a in launch["args"] if a is not None} | \
        {o["region"] for o in outputs}
    layout.weights = {name: span for name, span in layout.weights.items()
                      if f"weight:{name}" in used}     # a weight only repacked is stored once
    table = {"format": "ember-cuda-plan-1", "arch": f"sm_{arch}", "cuda_graphs": graphs,
             "arena_bytes": layout.arena_bytes,
             "inputs": [w.json() for w in layout.inputs], "outputs": outputs,
             "weights": sorted(layout.weights), "kernels": kernels, "cudnn": convs,
             "launches": launches}
    memory = {"arena_bytes": layout.arena_bytes, "regions": layout.regions,
              "scratch_bytes": layout.scratch_bytes,
              "inputs": table["inputs"], "outputs": outputs,
              "values": {str(s): w.json() for s, w in layout.where.items()}}
    members = {"graph.ir": print_graph(graph).encode(),
               "weights.safetensors": _safetensors(layout.weights),
               "memory_plan.json": json.dumps(memory, indent=1).encode(),
               "plan.json": json.dumps(table, indent=1).encode(), **members}
    manifest = _manifest(exported, host_isa(), members)
    manifest["target"] = {"kind": "cuda", "arch": f"sm_{arch}",
                          "capability": [arch // 10, arch % 10], "required_features": [],
                          "triton_version": device_compile._triton_version()}
    if convs:           # the lite runtime rebuilds these engine configs: the same cuDNN
        from ..runtime.cuda import cudnn as runtime_cudnn
        manifest["requires"] = [CUDNN_PACKAGE]
        manifest["target"]["cudnn_version"] = runtime_cudnn.version()
    _write_zip(package_path, manifest, members)
    return str(package_path)


def _launches(plan, layout: _Layout, arch: int) -> tuple[list, dict, list]:
    """plan.json's launches (in the order the in-process plan launches them), the compile
    job of each distinct (kernel, alignment), and each distinct cuDNN convolution."""
    walk = _Walk(arch)
    for i, step in enumerate(plan.steps):
        fn = step.fn
        if isinstance(fn, _View):
            (slot,) = step.outputs
            layout.where[slot] = layout.view(step, layout.where[step.inputs[0]])
            continue
        if not isinstance(fn, (PlanKernel, SplitPlanKernel)):
            raise LoweringError(f"ember.aot (target='cuda'): step {step.name} is not a kernel "
                                "launch or a view (a host step), so it cannot be packaged")
        ins = [layout.where[s] for s in step.inputs]
        outs = [layout.output(s, spec) for s, spec in zip(step.outputs, step.out_specs)]
        walk.step(step.name, fn, ins + outs, layout, i)
    if walk.scratch_bytes:            # one scratch area: steps run in order on one stream
        base = layout._own(walk.scratch_bytes)
        for launch in walk.launches:
            launch["args"] = [["arena", base + a[1]] if a is not None and a[0] == "scratch"
                              else a for a in launch["args"]]
    layout.scratch_bytes = walk.scratch_bytes
    return walk.launches, walk.jobs, walk.cudnn


class _Walk:
    """The launches of each plan step, as the in-process step makes them (compile_cuda's
    PlanKernel, GemmStep, SplitPlanKernel): a step's own buffers at offsets in a scratch
    area ("scratch" region until the arena places it)."""

    def __init__(self, arch: int):
        self.arch, self.launches, self.jobs, self.scratch_bytes = arch, [], {}, 0
        self.cudnn, self.cudnn_specs = [], []      # plan.json's "cudnn": one per spec

    def step(self, name: str, fn, values: list, layout: _Layout, i: int) -> None:
        offset = 0

        def scratch(buffer: _Scratch) -> _Where:
            nonlocal offset
            where = _Where("scratch", offset, (buffer.numel,), (1,), np.float32)
            offset += -(-max(buffer.numel * 4, 1) // lite.ALIGN) * lite.ALIGN
            self.scratch_bytes = max(self.scratch_bytes, offset)
            return where
        if isinstance(fn, SplitPlanKernel):                 # a split reduction's phases
            workspace = scratch(fn.workspace)
            for part in fn.parts:
                self.launch(name, part.generated, values + [workspace])
            return
        fixed = {j: layout.fixed(f"f{i}_{j}", v) for j, v in fn.fixed.items()}
        operands = list(PlanKernel(fn.generated, fn.index, fn.order, fn.n_inputs,
                                   fixed).operands(values))
        if isinstance(fn, CudnnConvStep):                  # x, w, y (, bias): ConvPlan's order
            bias = [operands[2]] if fn.spec.bias else []
            self.cudnn_launch(name, fn.spec, [operands[0], operands[1], operands[-1]] + bias)
            return
        if not isinstance(fn, GemmStep):
            self.launch(name, fn.generated, operands)
            return
        for j, copy, staged in fn.copies:                   # TF32 operands copied K-major
            staged = scratch(staged)
            self.launch(name, copy.generated, [operands[j], staged])
            operands[j] = staged
        workspace = [scratch(w) for w in fn.workspace]      # split-K: partials, then the sum
        for part in fn.parts:
            self.launch(name, part.generated, operands + workspace)

    def cudnn_launch(self, name: str, spec, operands: list) -> None:
        """A cuDNN convolution: its spec and engine config once per distinct spec."""
        from ..runtime import lite_cudnn
        if spec not in self.cudnn_specs:
            self.cudnn_specs.append(spec)
            self.cudnn.append({"spec": lite_cudnn.spec_json(spec), "describe": spec.describe(),
                               "engine": cudnn_engine(spec)})
        self.launches.append({"step": name, "cudnn": self.cudnn_specs.index(spec),
                              "args": [[w.region, w.offset] for w in operands]})

    def launch(self, name: str, generated, operands: list) -> None:
        args = [None if w is None else [w.region, w.offset] for w in operands]
        alignment = tuple(w is None or w.offset % ALIGNMENT == 0 for w in operands)
        job = device_compile.CompileJob(generated, alignment, self.arch)
        index = list(self.jobs).index(job.key()) if job.key() in self.jobs else len(self.jobs)
        self.jobs.setdefault(job.key(), job)
        self.launches.append({"step": name, "kernel": index, "args": args})


def _kernel_json(job, binary, member: str) -> dict:
    spec = job.kernel.launch
    meta = LaunchMetadata.from_dict(binary.metadata, [t for _, t in spec.args])
    return {"cubin": member, **meta.to_json(), "grid": list(spec.grid),
            "block": [32 * meta.num_warps, 1, 1], "buffers": list(spec.buffers),
            "alignment": list(job.alignment), "source_key": job.kernel.key()}


def _flat(slots) -> list:
    if isinstance(slots, int):
        return [slots]
    return [s for part in slots for s in _flat(part)]
