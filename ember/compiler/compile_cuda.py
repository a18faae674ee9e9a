"""ember.compile(..., backend="triton"): compiled plans on CUDA.

`CudaBackend` is what PlanBuilder (compile.py) asks for device-specific pieces:
- fused groups -> generated Triton kernels (codegen/triton/source.py), compiled for the
  device by Triton once per source and operand alignment (eager_cuda.compile_kernel's
  cache) and launched through ember's runtime (`cuLaunchKernel`, runtime/cuda/module.py),
  never through Triton's Python launcher: a plan step is one packed launch;
- GEMM/conv anchors -> the Triton GEMM / implicit-GEMM conv (codegen/triton/gemm.py),
  with the group's epilogue (bias, activation, residual) fused into the tile store when
  the group is one (`fused_extern`); precision per `ember.backends.cuda.matmul` at build;
- operand layouts: a frozen (inference) weight that a GEMM would read row-major is stored
  K-major instead, a conv weight OHWI (channels-last), the layouts the template is fast in
  (an H100 measured 142 TFLOP/s for row-major B against 296-299 K-major);
- buffers from the CUDA caching allocator (arenas are device blocks, values are
  geometry-only views into them), views as geometry-only DeviceArray views (computed once
  per input geometry), ops without generated code through eager CUDA ops;
- the plan is wrapped in `GraphedPlan`: after its first call, its launches are captured
  into one CUDA graph (runtime/cuda/graph.py) and later calls copy their inputs into the
  plan's own input buffers, replay the graph, and copy the results out (fresh tensors, as
  every compiled call returns). Plans with host-side steps (eager fallbacks) run as plain
  launches. `options={"cuda_graphs": False}` turns replay off, True forces it; the
  default "auto" skips it where copying the inputs and results would cost more than the
  launches it saves (large tensors through few kernels).

Values in a CUDA plan are CUDA Tensors (DeviceArray geometry over DeviceStorage).
Nothing here imports Triton or the CUDA bindings until a plan is built or run.
"""
from __future__ import annotations

import contextlib
import dataclasses
import types

import numpy as np

from ..codegen.extern import tensor_inputs
from ..codegen.lowering import has_anchor, lower_group
from ..ir import autocast, compile_times
from ..ir.errors import DeviceError, EmberError, LoweringError
from ..ir.graph import Graph, Node, OpKind
from ..ir.meta import TensorMeta, channels_last, strides_for
from ..frontend import cudnn_conv, eager_cuda
from ..frontend.autograd import grad_mode
from .compile import call_node_eagerly
from ..frontend.devices import cuda_view, data_ptr, empty_cuda, tensor_index
from ..frontend.eager_cuda_training import deferred_index_checks
from ..frontend.tensor import Tensor


# --- kernels as plan steps ---------------------------------------------------------------
class PlanKernel:
    """A generated kernel as a plan step: `step([step inputs..., outputs...])`.

    `order[j]` is the step input feeding the kernel's j-th input buffer (None: the step's
    inputs in order); `fixed[j]` replaces that operand by a tensor made at build time (a
    weight repacked into the fast layout)."""
    graph_safe = True                    # only launches: a CUDA graph may record it

    def __init__(self, generated, index: int, order: list[int] | None = None,
                 n_inputs: int = 0, fixed: dict | None = None):
        self.generated, self.index = generated, index
        self.order, self.n_inputs, self.fixed = order, n_inputs, fixed or {}
        self.compiled: dict[tuple, object] = {}

    def operands(self, values: list) -> list:
        if self.order is None:
            return values
        ins = [self.fixed.get(j, values[i] if i is not None else None)
               for j, i in enumerate(self.order)]
        return ins + values[self.n_inputs:]

    def __call__(self, values: list) -> None:
        _launch(self, self.operands(values))


def _launch(kernel: PlanKernel, tensors: list) -> None:
    """cuLaunchKernel of the kernel's cubin for these operands' alignment (compiled once)."""
    pointers = [data_ptr(t) for t in tensors]
    alignment = tuple(eager_cuda.aligned(p) for p in pointers)
    compiled = kernel.compiled.get(alignment)
    if compiled is None:
        compiled = kernel.compiled[alignment] = eager_cuda.compile_kernel(
            kernel.generated, list(alignment), kernel.index)
    compiled.launch(kernel.generated.launch.grid, pointers + kernel.generated.launch.bound())


def _float32_buffer(numel: int, index: int) -> Tensor:
    from ..ir.dtypes import float32
    return empty_cuda((numel,), (1,), float32, index)


class GemmStep(PlanKernel):
    """A GEMM of several launches as one plan step: copies staging TF32 operands K-major
    (codegen/triton/gemm.py kmajor_staging) into buffers of the step's own, then the GEMM
    itself, or the kernels of a GEMM split over K (SplitGemm: partial products into a
    float32 workspace, then the fixed-order sum applying the bias and the epilogue).
    Buffers are made when the plan is built (steps run in stream order, so a step reuses
    them every call). Launches only: a CUDA graph may record it."""

    def __init__(self, main, copies: list, index: int, order: list[int] | None = None,
                 n_inputs: int = 0, fixed: dict | None = None):
        kernels = main.kernels if _is_split(main) else [main]
        super().__init__(kernels[-1], index, order, n_inputs, fixed)
        self.parts = [PlanKernel(generated, index) for generated in kernels]
        self.workspace = [self.buffer(main.workspace, index)] if _is_split(main) else []
        self.copies = [(c.operand, PlanKernel(c.kernel, index),      # TF32: float32 operands
                        self.buffer(c.numel, index)) for c in copies]

    # a float32 buffer of the step's own (ember.aot's host plan describes it instead)
    buffer = staticmethod(_float32_buffer)

    @property
    def kernels(self) -> list:
        return [k for _, k, _ in self.copies] + self.parts

    def __call__(self, values: list) -> None:
        operands = list(self.operands(values))
        for j, copy, staged in self.copies:
            _launch(copy, [operands[j], staged])
            operands[j] = staged
        for part in self.parts:
            _launch(part, operands + self.workspace)


def _is_split(generated) -> bool:
    from ..codegen.triton.gemm import SplitGemm       # no codegen import at module load
    return isinstance(generated, SplitGemm)


class CudnnConvStep(PlanKernel):
    """A conv anchor run by cuDNN (frontend/cudnn_conv.py chose it for the shape): the same
    operand order and repacked weights as the Triton step it replaces; launches only, so
    a CUDA graph may record it."""

    def __init__(self, spec, index: int, order: list[int], n_inputs: int, fixed: dict):
        super().__init__(None, index, order, n_inputs, fixed)
        self.spec = spec

    def __call__(self, values: list) -> None:
        from ..frontend.cudnn_conv import execute
        ops = self.operands(values)
        execute(self.spec, ops[0], ops[1], ops[-1], self.index,
                ops[2] if self.spec.bias else None)


EPILOGUE_GBPS = 2500       # H100 copy bandwidth, for the epilogue pass cuDNN would add


@dataclasses.dataclass
class TimedKernel:
    """The Triton side of a conv's timing against cuDNN: a kernel, and (for a GEMM with a
    fused epilogue) the geometry of each of its operands, inputs then output, with the
    repacked weights the plan passes (`fixed`); geometry None: the anchor's own operands
    (x, w, bias, y)."""
    generated: object
    geometry: list | None = None
    fixed: dict = dataclasses.field(default_factory=dict)


def _scratch(shape, strides, dtype, index: int) -> Tensor:
    """A zero-filled device tensor of this geometry for timing."""
    from ..runtime.cuda.stream import current_stream, memset
    t = empty_cuda(tuple(shape), tuple(strides), dtype, index)
    memset(data_ptr(t), 0, t._storage.nbytes, current_stream(index))
    return t


class SplitPlanKernel:
    """A reduction split along its reduced space (codegen/triton/split_reduce.py) as one
    plan step: its phase kernels launched in order on the step's operands plus a float32
    workspace made when the plan is built (stream-ordered reuse: steps run in order)."""
    graph_safe = True

    def __init__(self, split, index: int):
        self.parts = [PlanKernel(generated, index) for generated in split.kernels]
        self.workspace = self.buffer(split.workspace, index)

    buffer = staticmethod(_float32_buffer)    # ember.aot's host plan describes it instead

    def __call__(self, values: list) -> None:
        operands = list(values) + [self.workspace]
        for part in self.parts:
            _launch(part, operands)


# --- horizontal fusion -----------------------------------------------------------------------
def merge_horizontal(plan, index: int) -> tuple[set, list]:
    """Replace each run of consecutive, independent kernel steps by one step launching
    them as a horizontal kernel (codegen/triton/multi_tensor.py): a training step's
    per-parameter optimizer updates and running-statistic updates, which the
    sink-updates pass put next to each other, become a few launches. Returns (ids of
    the replaced PlanKernels, the new PlanKernels) for batch_compile.

    A step joins a run when it is a plain generated kernel (operands in step order, no
    repacked weight) with a 1-D grid (the launch takes the parts' largest number of
    warps: each part's block shapes work with any); its outputs are plan-owned buffers
    outside the memory plan's arenas or fresh per call; it reads no output of the run;
    and no tensor the caller or a constant supplies (a parameter, a state tensor: what
    an in-place update may write) reaches two steps of the run, directly or through
    host-side steps (a view, an eager op that may return its input), so no program of
    the launch reads what another writes."""
    from ..codegen.triton.multi_tensor import MAX_PARTS, MAX_POINTERS, horizontal_kernel
    from ..runtime.plan import Step
    origins = _supplied_origins(plan)
    steps, run, parts, made = [], [], set(), []

    def flush():
        kernel = horizontal_kernel(tuple(st.fn.generated for st in run),
                                   tuple(len(st.inputs) for st in run)) \
            if len(run) > 1 else None
        if kernel is None:
            steps.extend(run)
        else:
            merged = PlanKernel(kernel, index)
            parts.update(id(st.fn) for st in run)
            made.append(merged)
            steps.append(Step(f"horizontal({run[0].name}..{run[-1].name})", merged,
                              tuple(i for st in run for i in st.inputs),
                              tuple(o for st in run for o in st.outputs), kernel=True,
                              out_specs=tuple(sp for st in run for sp in st.out_specs),
                              kind="kernel",
                              source=tuple(x for st in run for x in st.source)))
        run.clear()

    for step in plan.steps:
        if not _joinable(step):
            flush()
            steps.append(step)
            continue
        if run and (len(run) == MAX_PARTS or not _joins(run, step, origins, MAX_POINTERS)):
            flush()
        run.append(step)
    flush()
    plan.steps = steps
    return parts, made


def _supplied_origins(plan) -> dict[int, frozenset]:
    """Per slot, the supplied tensors (input slots, constants by identity) it may share
    memory with: itself for an input or a constant, what its inputs may share for a
    host-side step's result, nothing for a kernel's output (a buffer of its own)."""
    origins = {i: frozenset({("slot", i)}) for i in plan.input_slots}
    origins.update({i: frozenset({id(v)}) for i, v in plan.constants.items()})
    for step in plan.steps:
        if step.kernel:
            continue
        shared = frozenset().union(*(origins.get(i, frozenset()) for i in step.inputs))
        for o in step.outputs:
            origins[o] = shared
    return origins


def _joinable(step) -> bool:
    fn = step.fn
    return step.kernel and type(fn) is PlanKernel and fn.order is None and not fn.fixed \
        and fn.generated.launch.grid[1:] == (1, 1) and \
        all(spec.arena is None for spec in step.out_specs)


def _joins(run: list, step, origins: dict, max_pointers: int) -> bool:
    """`step` may launch together with `run` (see merge_horizontal)."""
    if sum(len(st.fn.generated.launch.args) for st in run) + \
            len(step.fn.generated.launch.args) > max_pointers:
        return False
    written = {o for st in run for o in st.outputs}
    if any(i in written for i in step.inputs):
        return False

    def supplied(st) -> frozenset:
        return frozenset().union(*(origins.get(i, frozenset()) for i in st.inputs))
    read = frozenset().union(*(supplied(st) for st in run))
    return not (supplied(step) & read)


# --- buffers -------------------------------------------------------------------------------
class CudaBuffers:
    """The plan's buffer interface (runtime/plan.py's HostBuffers) over device memory."""

    def __init__(self, backend: "CudaBackend"):
        self.backend = backend

    def allocate(self, meta: TensorMeta) -> Tensor:
        return empty_cuda(meta.shape, meta.strides, meta.dtype, self.backend.index)

    def arena(self, nbytes: int) -> Tensor:
        from ..ir.dtypes import uint8
        return empty_cuda((max(nbytes, 1),), (1,), uint8, self.backend.index)

    def view(self, arena: Tensor, meta: TensorMeta) -> Tensor:
        return cuda_view(arena, meta.shape, meta.strides, 0, meta.dtype.np_dtype)

    def overlaps(self, a, b) -> bool:
        if not (isinstance(a, Tensor) and isinstance(b, Tensor) and a.is_cuda and b.is_cuda):
            return False
        if a._storage is not b._storage:
            return False
        (a0, a1), (b0, b1) = _byte_span(a), _byte_span(b)
        return a0 < b1 and b0 < a1

    def copy(self, value):
        if not isinstance(value, Tensor):
            return value
        out = empty_cuda(tuple(value.shape), tuple(value.stride()), value.dtype,
                         tensor_index(value))
        _copy_span(out, value)
        return out


def _byte_span(t: Tensor) -> tuple[int, int]:
    start = data_ptr(t)
    return start, start + max(1, t._array.extent()) * t._array.itemsize


def _copy_span(dst: Tensor, src: Tensor) -> None:
    """dst's bytes = src's (same geometry): one async device-to-device copy."""
    from ..runtime.cuda.stream import copy_device_to_device, current_stream
    nbytes = src._array.extent() * src._array.itemsize
    copy_device_to_device(data_ptr(dst), data_ptr(src), nbytes, current_stream(tensor_index(dst)))


@compile_times.timed("constant uploads (host to device)")
def upload_exact(arr: np.ndarray, index: int) -> Tensor:
    """A CUDA tensor with `arr`'s values and element strides (a graph constant's meta must
    match its buffer); negative or non-element strides become contiguous."""
    from ..ir.dtypes import from_numpy_dtype
    from ..runtime.cuda.stream import copy_host_to_device, current_stream
    arr = np.asarray(arr)
    item = arr.itemsize
    if any(s < 0 or s % item for s in arr.strides):
        arr = np.ascontiguousarray(arr)
    strides = tuple(s // item for s in arr.strides)
    out = empty_cuda(arr.shape, strides, from_numpy_dtype(arr.dtype), index)
    extent = out._array.extent()
    if extent:
        span = np.zeros(extent, arr.dtype)
        np.lib.stride_tricks.as_strided(span, arr.shape, arr.strides)[...] = arr
        copy_host_to_device(data_ptr(out), span, current_stream(index))
    return out


# --- the backend -----------------------------------------------------------------------------
class CudaBackend:
    """PlanBuilder's device interface for CUDA (see compile.CpuBackend for the methods)."""
    name = "triton"
    precompile = True          # compile each kernel for the device when the plan is built
    # steps of several kernels sharing a workspace: long reductions over few kept points
    # (split_reduce.py) and matmuls whose tiles leave most SMs idle (split over K)
    split_reductions = True
    # float32 matmuls under TF32 read operands whose K axis is not contiguous from K-major
    # copies (gemm.kmajor_staging; the copies are part of the GEMM's step)
    stage_tf32_operands = True
    # training steps: the backward recomputes cheap forward values from those written
    # anyway (passes/recompute.py) instead of reading them back, and the kernels that
    # produce a float32 weight gradient's operands also write them NCHW
    # (passes/train_layout.py) instead of a transpose copying them, except where cuDNN
    # can take the channels-last operands (cudnn_conv.wgrad_wants_nchw); the optimizer
    # and running-statistic updates move to the step's end (passes/in_place.py) where
    # they launch as horizontal kernels (merge_horizontal)
    pass_defaults = {"recompute": True, "wgrad_nchw": cudnn_conv.wgrad_wants_nchw,
                     "sink_updates": True}
    graph_cache = True      # graphs after the passes kept on disk (compiler/graph_cache.py)
    # the step classes of multi-kernel steps (ember.aot's host plan: subclasses describing
    # their buffers instead of allocating them; the plan's choices stay CudaBackend's)
    gemm_step, split_step, cudnn_step = GemmStep, SplitPlanKernel, CudnnConvStep

    def __init__(self):
        self.index = 0
        self.horizontal = False    # merge runs of independent kernels (merge_horizontal)
        self.buffers = CudaBuffers(self)
        self._host: dict[int, np.ndarray] = {}       # id(uploaded constant) -> host values
        # id(host tensor read every call) -> (that tensor, its device copy): see input()
        self._mirrors: dict[int, tuple[Tensor, Tensor]] = {}
        self._deferred: list[PlanKernel] | None = None   # kernels awaiting a batch compile
        # conv timings (cuDNN against Triton) waiting for the batch to compile their Triton
        # kernel: (spec, problem, generated kernel, epilogue?)
        self._pending_timings: list[tuple] = []
        self._dried = None       # the last batch's dry run (_eager_dry_run): a build again's

    @contextlib.contextmanager
    def compiling(self, what: str):
        """Around one compile of a call, trace to plan (compile.backend_compiling): the
        compile workers open at its start, so their start overlaps the trace and passes,
        unless `what` was compiled before over this cache (eager_cuda.open_compile_workers);
        a compile that finishes marks it. A convolution choice whose winner is expected is
        taken untimed inside it (cudnn_conv.expecting; timed later: `between_calls`)."""
        opened = self.precompile and eager_cuda.open_compile_workers(what, self.index)
        with cudnn_conv.expecting():
            yield
        if self.precompile:
            eager_cuda.compiled_once(what)
        compile_times.note("compile workers opened before the trace", int(opened))

    def between_calls(self) -> None:
        """At the start of each call of a compiled step: the convolution choices a compile
        took untimed are tuned (cudnn_conv.tune_expected: their losing side compiles in the
        workers after the first call, and a later call times them once compiled)."""
        if cudnn_conv.untuned():
            with compile_times.stage("conv timings (expected winners, tuned later)"):
                cudnn_conv.tune_expected(self.index)

    @contextlib.contextmanager
    def batch_compile(self):
        """While a plan is built: kernels are collected, then compiled together (disk cache,
        then parallel workers) on exit. Yields a record whose `failed` says whether Triton
        refused one: the builder then builds again kernel by kernel, so that kernel becomes
        an eager step as always (the rest come from the cache)."""
        record = types.SimpleNamespace(failed=False, rebuild=False)
        if not self.precompile or self._deferred is not None:
            yield record
            if self._deferred is None and self.horizontal and hasattr(record, "plan"):
                merge_horizontal(record.plan, self.index)
            return
        self._deferred, self._pending_timings = [], []
        try:
            yield record
            steps, pending = self._deferred, self._pending_timings
        finally:
            self._deferred, self._pending_timings = None, []
        if self.horizontal and hasattr(record, "plan"):    # parts compile as one kernel
            parts, merged = merge_horizontal(record.plan, self.index)
            steps = [s for s in steps if id(s) not in parts] + merged
        requests = [(step.generated, [True] * len(step.generated.launch.args)) for step in steps]
        timing = [(t.generated, [True] * len(t.generated.launch.args)) for _, _, t, _ in pending]
        plan = getattr(record, "plan", None)
        eager, wanted = self._eager_dry_run(plan, record)
        # every kernel in the workers first; this thread then works while they compile:
        # the cuDNN plan builds, and the pending conv timings as soon as their own kernels
        # are in (after the whole batch, a cold resnet18 step spent ~1 s on them alone)
        eager_cuda.start_compiles(requests + timing + eager, self.index)
        specs = _cudnn_specs(plan, pending, wanted, self.index)
        if specs:     # built while the workers compile (a build holds this thread only)
            _build_cudnn_plans(specs, self.index)
        if timing:
            eager_cuda.compile_kernels(timing, self.index)
        record.rebuild = self._time_pending(pending)
        done = eager_cuda.compile_kernels(requests + timing + eager, self.index)
        for step, (generated, alignment), ok in zip(steps, requests, done):
            if ok:
                step.compiled[tuple(alignment)] = eager_cuda.compile_kernel(
                    generated, alignment, self.index)       # installed: a dict lookup
        record.failed = not all(done[:len(requests)])

    def _eager_dry_run(self, plan, record) -> tuple[list, list]:
        """(the eager steps' kernel requests, the cuDNN specs they ask for) from a dry run
        of the plan (_eager_requests). A build again of the same graph (`record.again`:
        convolutions that chose cuDNN after the batch) has the same eager steps on the
        same geometry, and the dry run skips kernel steps, the only ones the choices
        change: the first build's dry run answers for it (on the H100 a cold resnet18
        step dry-ran twice; both runs ask for the same kernels and specs)."""
        from ..frontend import cudnn_conv
        if getattr(record, "again", False) and plan is not None and \
                getattr(self, "_dried", None) is not None:
            eager, wanted, prefetched = self._dried
            plan.prefetched = prefetched
            return eager, wanted
        with compile_times.stage("dry run (the eager steps' kernels)"), \
                cudnn_conv.specs_wanted() as wanted:
            eager = [] if plan is None else _eager_requests(plan, record.inputs, self.index)
        self._dried = None if plan is None else \
            (eager, list(wanted), getattr(plan, "prefetched", False))
        return eager, wanted

    def _time_pending(self, pending: list) -> bool:
        """Time the convolutions whose choice waited for the batch (their Triton kernels
        compiled in it, in parallel, instead of one by one while the plan was built);
        True where cuDNN won one: the plan, built with Triton there, is built again with
        the choices known (PlanBuilder.build; its kernels come from the cache)."""
        changed = False
        for spec, problem, timed, epilogue in pending:
            try:
                timings = self._time_conv(spec, problem, timed)
            except (EmberError, LoweringError):
                continue                  # the plan keeps Triton, as it was built
            changed |= timings is not None and self._cudnn_wins(problem, timings, epilogue)
        return changed

    # -- values -----------------------------------------------------------------------------
    def unwrap(self, tensor: Tensor) -> Tensor:
        if not tensor.is_cuda:
            raise DeviceError(f"ember.compile(backend='triton'): an input is on {tensor.device} "
                              f"but the compiled plan runs on cuda:{self.index}; Expected all "
                              "tensors to be on the same device, but found at least two "
                              f"devices, cuda:{self.index} and {tensor.device}!")
        self.index = tensor_index(tensor)
        return tensor

    def wrap(self, value):
        return value

    # a training step's state (compile_train_graph.py)
    def input(self, tensor: Tensor) -> Tensor:
        """A plan input from a tensor wherever it lives: host state (Adam's step count
        is a CPU tensor, as in PyTorch) is uploaded for this call, into the same device
        buffer every call: a captured CUDA graph reads its inputs at fixed addresses, and
        a fresh upload each call made every training step with Adam capture its graph
        again (a transformer layer's step: 25x slower than replaying it)."""
        if tensor.is_cuda:
            return tensor
        host = tensor._array
        found = self._mirrors.get(id(tensor))
        if found is not None and found[0] is tensor:
            mirror = found[1]
            if (mirror._array.shape, mirror._array.dtype) == (host.shape, host.dtype) and \
                    host.flags.c_contiguous:
                from ..runtime.cuda.stream import copy_host_to_device, current_stream
                copy_host_to_device(data_ptr(mirror), np.asarray(host), current_stream(self.index))
                return mirror
        mirror = upload_exact(host, self.index)
        self._mirrors[id(tensor)] = (tensor, mirror)
        return mirror

    def holds(self, tensor: Tensor) -> bool:
        """True when a kernel of this plan may store straight into `tensor` (Plan.bind)."""
        return tensor.is_cuda and tensor_index(tensor) == self.index

    def copy_into(self, tensor: Tensor, value: Tensor) -> None:
        """tensor[...] = a plan value, in place (cast to tensor's dtype), on either side."""
        if not tensor.is_cuda:
            np.copyto(tensor._array, value._values(), casting="unsafe")
        elif (value.dtype, tuple(value.shape), value.stride()) == \
                (tensor.dtype, tuple(tensor.shape), tensor.stride()):
            _copy_span(tensor, value)
        else:
            eager_cuda.copy_into(tensor, value)

    def constant(self, value):
        if isinstance(value, Tensor):
            if value.is_cuda:
                return value
            value = value._array
        if not isinstance(value, np.ndarray):
            return value
        uploaded = upload_exact(value, self.index)
        self._host[id(uploaded)] = value
        return uploaded

    def is_array(self, value) -> bool:
        return isinstance(value, Tensor) and value.is_cuda

    def finish(self, plan, options: dict):
        mode = options.get("cuda_graphs", "auto")
        if mode not in (True, False, "auto"):
            raise EmberError(f"ember.compile: options['cuda_graphs'] must be True, False or "
                             f"'auto', got {mode!r}")
        return GraphedPlan(plan, self, mode)

    # -- kernels ----------------------------------------------------------------------------
    def kernel(self, lowered):
        from ..codegen.triton.source import generate
        from ..codegen.triton.split_reduce import generate_split
        # a plan built again (PlanBuilder.build: convolutions that chose cuDNN after the
        # batch) lowers each group once (PlanBuilder.lowered) and generates its source
        # once: the text is a function of the lowered kernel (a cold resnet18 step built
        # its plan twice on the H100, 164 kernels generated each time)
        made = lowered.__dict__.get("_triton")
        if made is None or made[0] != self.split_reductions:
            with compile_times.stage("Triton source generation"):
                split = generate_split(lowered.kernel) if self.split_reductions else None
                generated = generate(lowered.kernel) if split is None else None
            made = lowered.__dict__["_triton"] = (self.split_reductions, split, generated)
        split, generated = made[1], made[2]
        if split is not None:
            step = self.split_step(split, self.index)
            for part in step.parts:
                self._ready(part)
            return step
        return self._ready(PlanKernel(generated, self.index))

    def extern(self, node: Node, constant=None):
        """A GEMM/conv node as one Triton GEMM step (inputs in tensor_inputs order), or a
        cuDNN convolution step where cuDNN is the faster for the shape."""
        found = self._gemm(node, None, constant or (lambda n: None))
        if found is None:
            return None
        generated, operands, fixed, problem = found
        inputs = tensor_inputs(node)
        order = [inputs.index(n) for n in operands]
        generated, copies = generated
        if copies or _is_split(generated):
            return self._ready_parts(self.gemm_step(generated, copies, self.index, order,
                                                    len(inputs), fixed))
        spec = self._cudnn_spec(problem, TimedKernel(generated), epilogue=False)
        if spec is not None:
            return self.cudnn_step(spec, self.index, order, len(inputs), fixed)
        return self._ready(PlanKernel(generated, self.index, order, len(inputs), fixed))

    def fused_extern(self, graph: Graph, constant=None):
        """A GEMM/conv group with its epilogue fused into the tile store: (step, inner inputs)."""
        if not has_anchor(graph):    # most groups: no lowering only to find no anchor
            return None
        try:
            lowered = lower_group(graph, "epilogue")
        except LoweringError:
            return None
        if lowered.anchor is None:
            return None
        found = self._gemm(lowered.anchor, lowered.kernel, constant or (lambda n: None))
        if found is None:
            return None
        generated, operands, fixed, problem = found
        inner = operands + [n for n in lowered.inputs if n is not lowered.anchor]
        if any(n.op != OpKind.placeholder for n in inner):
            return None
        generated, copies = generated
        if copies or _is_split(generated):      # a matmul: no cuDNN alternative to time
            step = self.gemm_step(generated, copies, self.index, list(range(len(inner))),
                                  len(inner), fixed)
            return self._ready_parts(step), inner
        # timed as the plan would run it (epilogue included: no kernel compiled only to be
        # timed) against cuDNN's conv plus the epilogue's own pass
        geometry = [n.meta.get("val") for n in inner + list(lowered.outputs)]
        if all(isinstance(m, TensorMeta) for m in geometry):
            timed = TimedKernel(generated, geometry, fixed)
        else:
            timed = None                     # the anchor alone
        if self._cudnn_spec(problem, timed, epilogue=True) is not None:
            return None     # cuDNN's convolution, then the epilogue as a kernel of its own
        step = PlanKernel(generated, self.index, list(range(len(inner))), len(inner), fixed)
        return self._ready(step), inner

    def _gemm(self, anchor: Node, epilogue, constant):
        """((generated kernel, or a SplitGemm where the GEMM's tiles leave most SMs idle
        and K is long; the K-major staging copies of TF32 operands), operand nodes,
        repacked operands, the problem) or None (not a Triton GEMM). A plain kernel
        (`extern`'s cuDNN timing, ember.aot) has neither splits nor copies."""
        from ..codegen.triton.autotune import gemm_config
        from ..codegen.triton.gemm import anchor_problem, generate_gemm, generate_split_gemm, \
            kmajor_staging, split_k
        try:
            problem, operands = anchor_problem(anchor)
            problem, fixed = self._fast_layouts(problem, operands, constant)
            name = f"{anchor.target.name}_epilogue" if epilogue is not None else anchor.target.name
            copies = []
            if self.split_reductions and self.stage_tf32_operands:
                problem, copies = kmajor_staging(problem, name)
            config = gemm_config(problem, self.device_key())
            splits = split_k(problem, config) if self.split_reductions else 1
            with compile_times.stage("Triton source generation"):
                generated = generate_gemm(problem, config, epilogue, name) if splits == 1 \
                    else generate_split_gemm(problem, config, splits, epilogue, name)
            return (generated, copies), operands, fixed, problem
        except LoweringError:
            return None

    def _ready_parts(self, step: "GemmStep") -> "GemmStep":
        for part in step.kernels:
            self._ready(part)
        return step

    def _cudnn_spec(self, problem, timed, epilogue: bool):
        """The cuDNN ConvSpec where a conv anchor runs faster in cuDNN than in the Triton
        kernel (timed once per shape on scratch buffers, frontend/cudnn_conv.py), else
        None. With an epilogue the Triton kernel applies it in its store, while cuDNN
        needs a kernel of its own reading and writing the result again: cuDNN must win by
        the time of that pass at the copy bandwidth (`EPILOGUE_GBPS`)."""
        from ..frontend import cudnn_conv
        if not hasattr(problem, "x_shape") or not self.precompile or not cudnn_conv.usable():
            return None
        n, cout = problem.x_shape[0], problem.w_shape[0]
        out_shape = (n, cout) + tuple(problem.out_hw)
        dt, out_dt = problem.dtype.name, problem.out_dtype.name
        bias = ((cout,), (1,), problem.bias.name) if problem.bias is not None else None
        spec = cudnn_conv.spec_for(
            "fprop", (problem.x_shape, problem.x_strides, dt),
            (problem.w_shape, problem.w_strides, dt), (out_shape, problem.out_strides, out_dt),
            problem.stride, problem.padding, problem.dilation, bias)
        if spec is None:
            return None
        if self._deferred is not None:       # building a batch: its kernels compile later
            timings = cudnn_conv.timings(spec, self.index)
            if timings is None:              # timed once the batch has compiled the kernel
                timed = timed or TimedKernel(self._anchor_kernel(problem))
                self._pending_timings.append((spec, problem, timed, epilogue))
                kernel = timed.generated
                eager_cuda.start_compiles([(kernel, [True] * len(kernel.launch.args))],
                                          self.index)
                return None
        else:
            timings = self._time_conv(spec, problem, timed)
        if timings is None:
            return None
        return spec if self._cudnn_wins(problem, timings, epilogue) else None

    @staticmethod
    def _cudnn_wins(problem, timings: tuple, epilogue: bool) -> bool:
        triton_ms, cudnn_ms = timings
        if epilogue:
            n, cout = problem.x_shape[0], problem.w_shape[0]
            out_shape = (n, cout) + tuple(problem.out_hw)
            nbytes = 2 * int(np.prod(out_shape)) * problem.out_dtype.itemsize
            cudnn_ms += nbytes / (EPILOGUE_GBPS * 1e6)
        return cudnn_ms < triton_ms

    def _anchor_kernel(self, problem):
        """The conv anchor's Triton kernel alone (a fused group's epilogue off)."""
        from ..codegen.triton.autotune import gemm_config
        from ..codegen.triton.gemm import generate_gemm
        return generate_gemm(problem, gemm_config(problem, self.device_key()), None, "conv2d")

    def _time_conv(self, spec, problem, timed):
        """(Triton ms, cuDNN ms) for a conv, from the choice cache or timed on scratch
        buffers: the Triton side is `timed` (a TimedKernel: the plan's own kernel, with
        its epilogue where it has one), or the anchor alone where it is None."""
        from ..frontend import cudnn_conv
        known = cudnn_conv.timings(spec, self.index)
        if known is not None:
            return known
        timed = timed or TimedKernel(self._anchor_kernel(problem))
        i = self.index
        n, cout = problem.x_shape[0], problem.w_shape[0]
        x = _scratch(problem.x_shape, problem.x_strides, problem.dtype, i)
        w = _scratch(problem.w_shape, problem.w_strides, problem.dtype, i)
        y = _scratch((n, cout) + tuple(problem.out_hw), problem.out_strides, problem.out_dtype, i)
        b = _scratch((cout,), (1,), problem.bias, i) if spec.bias else None
        if timed.geometry is None:           # the anchor's own operands: x, w, (b), y
            operands = [x, w] + ([b] if b is not None else []) + [y]
        else:
            operands = [timed.fixed[j] if j in timed.fixed else
                        _scratch(m.shape, m.strides, m.dtype, i)
                        for j, m in enumerate(timed.geometry)]
        generated = timed.generated
        cudnn_conv.prefers_cudnn(spec, i, lambda: eager_cuda.launch(generated, operands, i),
                                 lambda: cudnn_conv.execute(spec, x, w, y, i, b))
        return cudnn_conv.timings(spec, i)

    def synchronize(self) -> None:
        """Wait for the plan's stream (the stage timer's end of a call)."""
        from ..runtime.cuda.stream import current_stream
        current_stream(self.index).synchronize()

    def device_key(self) -> str:
        """The autotune cache's device name ("cuda-90"), from ember's driver: asking
        Triton's (autotune.current_device) would build its drivers, which imports torch
        where it is installed: seconds of every warm compile. Without a driver (the
        emulated device of CI) it is Triton's answer, "no-gpu" there."""
        from ..codegen.triton.autotune import current_device
        from ..runtime.cuda import driver
        try:
            major, minor = driver.capability(self.index)
        except DeviceError:
            return current_device()
        return f"cuda-{major * 10 + minor}"

    def _fast_layouts(self, problem, operands: list, constant):
        """Frozen weights repacked into the layout the GEMM template is fast in: B K-major
        for a matmul, OHWI (channels-last) for a conv weight."""
        weight = operands[1]
        value = constant(weight)
        if value is None or not isinstance(weight, Node):
            return problem, {}
        shape = tuple(weight.meta["val"].shape)
        if hasattr(problem, "w_strides"):
            wanted = strides_for(shape, channels_last) if len(shape) == 4 else None
            if wanted is None or tuple(problem.w_strides) == tuple(wanted):
                return problem, {}
            repacked = self._repack(value, wanted)
            return dataclasses.replace(problem, w_strides=tuple(wanted)), {1: repacked}
        if problem.batch != 1 or len(shape) != 2 or problem.b_layout == "kmajor":
            return problem, {}
        k, n = shape
        repacked = self._repack(value, (1, k))
        return dataclasses.replace(problem, b_strides=(0, 1, k)), {1: repacked}

    def _repack(self, value: Tensor, strides) -> Tensor:
        host = self._host.get(id(value))
        if host is None:
            host = value.cpu()._array
        itemsize = host.itemsize
        packed = np.lib.stride_tricks.as_strided(
            np.empty(max(1, host.size), host.dtype), host.shape, [s * itemsize for s in strides])
        packed[...] = host
        return upload_exact(packed, self.index)

    def _ready(self, step: PlanKernel) -> PlanKernel:
        """Compile for the device now (a Triton failure becomes the eager fallback)."""
        if not self.precompile:
            return step
        if self._deferred is not None:              # batch_compile compiles it with the rest
            self._deferred.append(step)               # (started now where it is not cached)
            generated = step.generated
            eager_cuda.start_compiles([(generated, [True] * len(generated.launch.args))],
                                      self.index)
            return step
        n = len(step.generated.launch.args)
        key = tuple([True] * n)
        step.compiled[key] = eager_cuda.compile_kernel(step.generated, list(key), self.index)
        return step

    # -- views and fallbacks --------------------------------------------------------------
    def view(self, op, rest: tuple):
        """A geometry-only view: the op runs eagerly once per input geometry to learn the
        result's geometry; later calls only make a DeviceArray view of the same storage.
        A view that must copy (a reshape of a non-contiguous tensor) runs eagerly every
        call; it stays graph_safe while its copy is a device kernel."""
        from ..runtime.cuda.stream import host_transfers
        geometry: dict[tuple, tuple] = {}

        def run(x: Tensor) -> Tensor:
            key = (x._array.shape, x._array.strides, x._array.offset, x._array.dtype)
            found = geometry.get(key)
            if found is not None:
                return cuda_view(x, *found)
            before = host_transfers()
            with grad_mode.no_grad():
                out = eager_cuda._call(op, (x,) + tuple(rest))
            if isinstance(out, Tensor) and out._storage is x._storage:
                geometry[key] = (out._array.shape, out._array.element_strides(),
                                 out._array.offset, out._array.dtype)
            elif host_transfers() != before:    # the op copied through the host
                run.graph_safe = False
            return out
        run.graph_safe = True
        return run

    def eager(self, node: Node):
        """Run `node`'s op eagerly on CUDA tensors (eager CUDA ops; may use the host).

        The step is `graph_safe` (a CUDA graph may record it) once it has run and every
        run queued only device work: no host<->device copy, no synchronization (eager CUDA
        routes launch kernels on the current stream, which a capture records; a host
        fallback or an upload of host values would be replayed stale or break the
        capture). A deterministic factory with no tensor inputs (a loss's class arange)
        runs once: its device tensor is reused by every call."""
        from ..runtime.cuda.stream import host_transfers
        run = self._eager_run(node)
        if _is_pure_factory(node):
            made: list = []

            def factory(*values):
                if not made:
                    made.append(run(*values))
                return made[0]
            factory.graph_safe = True
            factory.uncached = run          # a dry run must not keep its unwritten result
            return factory

        def counted(*values):
            before = host_transfers()
            result = run(*values)
            counted.graph_safe = counted.graph_safe is not False and host_transfers() == before
            return result
        counted.graph_safe = None                       # unknown until it has run
        return counted

    def _eager_run(self, node: Node):
        def run(*values):
            with deferred_index_checks():       # no read-back: the step may be captured
                result = call_node_eagerly(node, values)
            if isinstance(result, (tuple, list)):      # a multi-output op: a plain tuple
                return tuple(self._on_device(v) for v in result)
            return self._on_device(result)
        return run

    def _on_device(self, value):
        """A host tensor an eager step made (a factory a derivative rule called without
        device=, such as nll_loss's class arange) moved to the plan's device: kernels
        read only device memory."""
        if isinstance(value, Tensor) and not value.is_cuda:
            return upload_exact(value._array, self.index)
        return value


def _is_pure_factory(node: Node) -> bool:
    """A registry factory (arange, zeros, full, eye, ...) that reads no tensor and no
    generator: every call makes the same values."""
    from ..ir.registry import Tag
    tags = getattr(node.target, "tags", ())
    if Tag.FACTORY not in tags or Tag.RANDOM in tags or node.all_input_nodes:
        return False
    return not any(_may_write(user) for user in node.users)    # reused: must stay unchanged


def _may_write(user: Node) -> bool:
    """An in-place op, or the graph's output (the caller could write into it)."""
    from ..ir.registry import Tag
    if user.op == OpKind.output:
        return True
    if user.op == OpKind.call_method:
        return str(user.target).endswith("_") and not str(user.target).endswith("__")
    return Tag.INPLACE in getattr(user.target, "tags", ())


# --- CUDA-graph replay ---------------------------------------------------------------------
class GraphedPlan:
    """A Plan that, from its second call on, replays its launches as one CUDA graph.

    Call 1 runs the plan step by step (kernels compile, views learn their geometry).
    Call 2 copies its inputs into buffers the plan owns, captures a plain run over them
    (nothing executes during capture) and launches the graph; later calls copy inputs,
    launch, and copy the results out of the captured output buffers (results are fresh
    tensors, never overwritten by a later call). A plan with host-side steps (eager
    fallbacks, views that copy) always runs step by step.

    The first `resident` inputs (a training step's parameters and optimizer state:
    device tensors that stay where they are from step to step) are not copied: the
    graph reads them in place, as a step-by-step run does, so whatever the caller did to
    them between steps (`p.data.mul_()`, `load_state_dict`) is what the next replay
    reads. A resident input that moved (another tensor, new storage, another geometry)
    drops the graph: the next call captures it again over the new tensors.

    `mode` "auto" (the default) replays only where that saves time: when the bytes the
    replay copies in and out are at most COPY_BYTES_PER_STEP per plan step (a copy of
    that size costs about what launching one step from Python does); True always
    replays, False never."""
    COPY_BYTES_PER_STEP = 8 << 20

    def __init__(self, plan, backend: CudaBackend, mode):
        self.plan, self.backend, self.mode = plan, backend, mode
        self.graph = None
        self.static_inputs: list = []
        self.copied_bytes = 0             # per call, measured on the first call
        self.bound: dict[int, object] = {}  # slot -> buffer bound to it (a training step's)
        self.resident = 0                 # leading inputs read in place (not copied)
        self._resident_at: list = []      # where they were when the graph was captured

    def __getattr__(self, name):
        return getattr(self.plan, name)

    def bind(self, slot: int, value) -> None:
        """Plan.bind. A captured graph stores into the buffers bound when it was
        captured: binding another one drops the graph (captured again next call)."""
        if self.graph is not None and self.bound.get(slot) is not value:
            self.graph = None
        self.bound[slot] = value
        self.plan.bind(slot, value)

    @property
    def capturable(self) -> bool:
        return all(step.kernel or getattr(step.fn, "graph_safe", False)
                   for step in self.plan.steps)

    def worth_replaying(self) -> bool:
        if self.mode == "auto":
            return self.copied_bytes <= self.COPY_BYTES_PER_STEP * len(self.plan.steps)
        return bool(self.mode)

    def run(self, inputs: list, skip=None):
        """`skip`: results the caller will not read, as a mask of the result's nesting
        (True: that result, or everything under it, is not copied out of a replayed
        graph and comes back as None; a training step's host-side step counts)."""
        if self.plan.calls == 0:
            if self.backend.precompile and not getattr(self.plan, "prefetched", False):
                with compile_times.stage("dry run (the eager steps' kernels)"):
                    prefetch_eager_kernels(self.plan, inputs, self.backend.index)
            with compile_times.stage("first run (launches, eager steps)"):
                result = self.plan.run(inputs)
            self.copied_bytes = sum(_nbytes(v) for v in
                                    _leaves(inputs[self.resident:]) + _leaves(result))
            return result
        if not (self.graph is not None or self.worth_replaying() and self.capturable):
            return self.plan.run(inputs)
        if self.graph is not None and self.resident and \
                _places(inputs[:self.resident]) != self._resident_at:
            self.graph = None                 # a parameter or state tensor was replaced
        if self.graph is None:
            try:
                with compile_times.stage("CUDA graph capture"):
                    self._capture(inputs)
            except DeviceError as err:      # the driver refused to record some step
                self._give_up_replay(err)
                return self.plan.run(inputs)
        else:
            for static, given in zip(self.static_inputs[self.resident:],
                                     inputs[self.resident:]):
                _copy_span(static, given)
            self.plan.calls += 1
        with compile_times.stage("graph replay (launch)"):
            self.graph.launch()
        return _map(self.backend.buffers.copy, self.graph.result, skip)

    def _give_up_replay(self, err: DeviceError) -> None:
        """Run step by step from now on (nothing ran during the failed capture, so the
        plan's state is as the last call left it)."""
        import warnings
        self.mode, self.graph = False, None
        warnings.warn(f"ember.compile: recording this plan as a CUDA graph failed ({err}); "
                      "it runs step by step instead", stacklevel=4)

    def _capture(self, inputs: list) -> None:
        from ..runtime.cuda import graph
        buffers = self.backend.buffers
        resident = list(inputs[:self.resident])
        self.static_inputs = resident + [buffers.copy(x) for x in inputs[self.resident:]]
        self._resident_at = _places(resident)
        self.graph = graph.CudaGraph.capture(lambda: self.plan.run(self.static_inputs),
                                             self.backend.index)


def _places(tensors: list) -> list:
    """Where each tensor's elements are: address and geometry (what a graph bakes in)."""
    return [(data_ptr(t), t._array.shape, t._array.strides, t._array.dtype)
            if isinstance(t, Tensor) else id(t) for t in tensors]


# --- the first call's eager kernels, compiled together --------------------------------------
class _HostTransferInDryRun(Exception):
    pass


def _cudnn_specs(plan, pending: list, wanted: list, index: int) -> list:
    """The cuDNN convolutions a plan's first call will build a cuDNN plan for: its cuDNN
    steps, the convs whose choice is timed after the batch (`pending`), and those its eager
    steps ask cuDNN for (`wanted`: recorded by the dry run, cudnn_conv.specs_wanted);
    once each, without those not built yet in benchmark mode (they time cuDNN's plans on
    the call's own buffers) or already built."""
    from ..runtime.cuda import cudnn
    if cudnn.library() is None:
        return []
    found = [step.fn.spec for step in (plan.steps if plan is not None else [])
             if isinstance(step.fn, CudnnConvStep)]
    found += [spec for spec, _, _, _ in pending] + list(wanted)
    out: dict = {}
    for spec in found:
        if not spec.benchmark and (spec, index) not in cudnn._plans:
            out.setdefault(spec, None)
    return list(out)


def _build_cudnn_plans(specs: list, index: int) -> None:
    """Build the cuDNN plans for `specs` now (runtime/cuda/cudnn.conv_plan keeps them for
    the process): the batch compile calls this after handing its kernels to the compile
    workers and before waiting for them, so on a cold call the builds (~15 ms each on an
    H100, 24-32 for a resnet18 training step) overlap the compiles instead of following
    them in the first run. A spec cuDNN refuses is remembered as refused there and runs
    on Triton, as it would at the first call. With EMBER_CUDNN_BUILD_THREAD=1 they are
    handed to cuDNN's builder thread instead (runtime/cuda/cudnn.start_builds), and
    conv_plan collects each where it is first needed."""
    from ..runtime.cuda import cudnn
    from ..runtime.cuda.cudnn import CudnnUnsupported, conv_plan
    if cudnn.build_thread_enabled():
        cudnn.start_builds(specs, index)
        return
    for spec in specs:
        try:
            conv_plan(spec, index)
        except CudnnUnsupported:
            continue


def _eager_requests(plan, metas: list, index: int) -> list:
    """The eager steps' kernels, from a dry run over fresh inputs of the plan's input
    geometry, for CudaBackend.batch_compile to compile with the plan's own (one batch
    keeps every worker busy to the end); the plan is marked so its first call does not
    dry-run again."""
    if not all(isinstance(m, TensorMeta) for m in metas):
        return []                        # the first call's dry run has the real inputs
    inputs = [empty_cuda(m.shape, m.strides, m.dtype, index) for m in metas]
    requests: list = []
    prefetch_eager_kernels(plan, inputs, index, requests.extend)
    plan.prefetched = True
    return requests


def prefetch_eager_kernels(plan, inputs: list, index: int, compile=None) -> int:
    """Compile, in one parallel batch, the kernels the plan's eager steps will launch on
    its first call; returns how many were requested.

    A plan's own kernels compile together when it is built (CudaBackend.batch_compile),
    but an eager step (a convolution's backward, a loss, ...) chooses its kernels only
    when it runs, and compiled one at a time they made most of a cold first call
    (resnet18's training step: ~120 of its ~230 cubins). So the plan is dry-run, when
    it is built (`_eager_requests`: the kernels join the plan's own batch) or else
    before its first call: the plan's kernel steps are skipped, eager steps run with
    eager_cuda.launch recording what it would compile instead of launching
    (`kernels_collected`), then all of them compile at once (disk cache, worker pool;
    `compile` replaces that last part).
    Nothing is written: no kernel runs, device copies and memsets are skipped, cuDNN is
    not asked (its timing against Triton would time launches that never happen, so the
    Triton routes are recorded: the first call times both), a step that would read
    device memory on the host stops the dry run there (what was recorded still
    compiles), and the host random generator is restored. Kernel choices depend on shapes, dtypes and
    strides only, so the real call finds its kernels compiled."""
    from ..frontend import cudnn_conv, eager_cuda_training
    from ..frontend.random import get_rng_state, set_rng_state
    from ..runtime.cuda import stream
    if not any(not step.kernel for step in plan.steps):
        return 0
    rng = get_rng_state()
    replaced = {name: getattr(stream, name) for name in
                ("copy_device_to_host", "copy_device_to_device", "memset")}

    def refuse(*args, **kwargs):
        raise _HostTransferInDryRun()
    # device state an eager step creates on first use (the index-check flags) would be
    # left unwritten by the skipped memsets: what the dry run creates is dropped
    flags = dict(eager_cuda_training._INDEX_FLAGS)
    cudnn_conv._TRITON_ONLY[0] += 1
    try:
        stream.copy_device_to_host = refuse             # values would steer the host
        stream.copy_device_to_device = stream.memset = lambda *args, **kwargs: None
        with eager_cuda.kernels_collected() as requests:
            try:
                _dry_run(plan, inputs)
            except Exception:      # noqa: BLE001 - the real call meets the same error
                pass
    finally:
        for name, fn in replaced.items():
            setattr(stream, name, fn)
        cudnn_conv._TRITON_ONLY[0] -= 1
        set_rng_state(rng)
        eager_cuda_training._INDEX_FLAGS.clear()
        eager_cuda_training._INDEX_FLAGS.update(flags)
    if requests:                    # failures are left for the real launch to report
        (compile or (lambda found: eager_cuda.compile_kernels(found, index)))(requests)
    return len(requests)


def _dry_run(plan, inputs: list) -> None:
    """Plan.run's walk over the steps with kernel steps skipped (their outputs are the
    buffers the real call writes, unwritten here)."""
    if not plan._fixed:
        plan.prepare()
    values: list = [None] * plan.n_slots
    for slot, value in plan.constants.items():
        values[slot] = value
    for slot, value in zip(plan.input_slots, inputs):
        values[slot] = value
    with grad_mode.no_grad(), autocast.suspended():
        for step in plan.steps:
            if step.kernel:
                for s, spec in zip(step.outputs, step.out_specs):
                    values[s] = plan._fixed[s] if spec.persistent else \
                        plan.buffers.allocate(spec.meta)
                continue
            fn = getattr(step.fn, "uncached", step.fn)
            result = fn(*[values[s] for s in step.inputs])
            if len(step.outputs) == 1:
                values[step.outputs[0]] = result
            else:
                for s, value in zip(step.outputs, result):
                    values[s] = value


def _leaves(value) -> list:
    if isinstance(value, (tuple, list)):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


def _nbytes(value) -> int:
    return value._array.extent() * value._array.itemsize if isinstance(value, Tensor) else 0


def _map(fn, value, skip=None):
    """fn over the leaves of nested tuples/lists; None where the `skip` mask (same
    nesting, or True for a whole subtree) says so."""
    if skip is True:
        return None
    if isinstance(value, (tuple, list)):
        masks = skip if isinstance(skip, (tuple, list)) and len(skip) == len(value) \
            else [None] * len(value)
        return type(value)(_map(fn, v, m) for v, m in zip(value, masks))
    return fn(value)


def _register() -> None:
    from .compile import COMPILE_BACKENDS
    COMPILE_BACKENDS["triton"] = CudaBackend


_register()
