"""Eager execution of registry ops on CUDA tensors.

eager.run_op runs the meta rule (shapes, dtypes, errors) and records autograd exactly
as on the CPU; for CUDA operands it asks `compute(op, args, out_meta)` for the values.
Each call takes the first route that applies:

1. views (Tag.VIEW): the op's NumPy reference runs on a *shadow* of the storage (an
   anonymous mmap of the same size, never read), which yields the view's strides and
   offset; the result shares the CUDA storage. References that copy fall through.
2. GEMM (mm, bmm, matmul, linear, addmm) and conv2d: ember.codegen.triton.gemm's
   kernels (TF32 per ember.backends.cuda), for the operand layouts they take
   (eager_cuda_gemm.py chooses the problem); conv2d runs cuDNN instead where it is the
   faster for the shape (cudnn_conv.py).
3. ops with a lowering rule (codegen.lowering.RULES or ARG_RULES): the one-op graph is built with
   `build_graph` over the operands' TensorMetas, lowered to a kernel description,
   turned into Triton source, compiled to a cubin with Triton (cached per source,
   launch settings, operand alignment and device) and launched through the runtime
   (runtime/cuda/module.py) on the current stream with device pointers. A long
   reduction over few kept points (a sum over a whole tensor, BatchNorm's per-channel
   sums) runs as split_reduce.py's phases over hundreds of programs with a workspace.
4. ops a training step needs that have no rule (eager_cuda_training.py): kernels built
   for them, or exact rewrites into ops that have kernels (convolution backward as
   convolutions, losses through log_softmax and one-hot masks).
5. everything else runs on the host: operands are copied to the CPU, the op runs
   eagerly there, results are copied back; a one-time warning names the op.

Plans (the route, the compiled kernel, which operand feeds which buffer) are cached
per op, argument values and operand geometry, so a repeated call only packs pointers
and launches.
"""
from __future__ import annotations

import functools
import math
import mmap
import os
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..ir.errors import EmberError, LoweringError, user_frame
from ..ir.meta import TensorMeta, meta_of
from ..ir.registry import OpDef, Tag
from .autograd import grad_mode
from .devices import (DeviceArray, cuda_view, data_ptr, empty_cuda, tensor_index, to_host,
                      upload)
from .tensor import Tensor

_PLANS: dict = {}
_KERNELS: dict = {}
# (compiled code, device) -> its loaded kernel: kernels that differ only in their name share
# one cubin (device_compile.CompileJob.key) and so one module load
_LOADED: dict = {}
_WARNED: set[str] = set()
ALIGNMENT = 16          # bytes; Triton specializes pointers divisible by 16 (vector loads)
GEMM_OPS = ("mm", "bmm", "matmul", "linear", "addmm", "conv2d")


def compute(op: OpDef, args: tuple, out_meta):
    """The outputs of `op(*args)` for operands on one CUDA device (no autograd here)."""
    index = _device_index(op, args)
    args = _scalars_to_device(op, args, index)
    device_kernel = getattr(op, "cuda_kernel", None)   # custom ops' register_kernel("cuda")
    if device_kernel is not None:
        return device_kernel(args, out_meta)
    if op.has_tag(Tag.VIEW):
        views = _views(op, args)
        if views is not None:
            return views
    if op.name in _FILLS and not out_meta.dtype.is_complex:
        return _fill(out_meta, _FILLS[op.name](args), index)
    if op.name in ("contiguous", "clone"):
        moved = _dense_copy(args[0], out_meta, index)
        if moved is None:
            moved = _layout_changing_copy(args[0], out_meta, index)
        if moved is not None:
            return moved
    if op.name == "copy" and isinstance(args[1], Tensor):
        # copy_'s functional form: copy_into makes a layout change one tiled transpose
        # (the generic kernel of copy's lowering rule reads one element per sector there)
        out = empty_cuda(out_meta.shape, out_meta.strides, out_meta.dtype, index)
        copy_into(out, args[1].expand(list(out_meta.shape)))
        return out
    key = _plan_key(op, args)
    if key not in _PLANS:
        _PLANS[key] = _make_plan(op, args, out_meta)
    plan = _PLANS[key]
    if plan is not None:
        try:
            return plan.run(args, index)
        except LoweringError as err:            # Triton refused the kernel: never again
            _PLANS[key] = None
            _warn_at_user_line(f"{op.name}: {err}")
    from . import eager_cuda_training        # ops a training step needs that have no rule
    result = eager_cuda_training.run(op, args, out_meta, index)
    if result is not None:
        return result
    return _on_host(op, args, index)


# --- operands ----------------------------------------------------------------------------
def _slots(op: OpDef, args: tuple) -> list[tuple[int, int | None]]:
    """Where the tensors are: (argument position, index in a tensor list or None)."""
    slots = []
    for i in op.schema.tensor_arg_indices:
        value = args[i]
        if isinstance(value, (list, tuple)):
            slots += [(i, j) for j, v in enumerate(value) if isinstance(v, Tensor)]
        elif isinstance(value, Tensor):
            slots.append((i, None))
    return slots


def _get(args, slot):
    i, j = slot
    return args[i] if j is None else args[i][j]


def _replace(args: tuple, slots, values) -> list:
    out = [list(a) if isinstance(a, (list, tuple)) else a for a in args]
    for (i, j), v in zip(slots, values):
        if j is None:
            out[i] = v
        else:
            out[i][j] = v
    return [type(a)(o) if isinstance(a, tuple) else o for a, o in zip(args, out)]


def _call(op: OpDef, bound) -> object:
    """Call `op` with a bound argument tuple (keyword-only arguments back as keywords)."""
    positional, keywords = op.schema.unbind(tuple(bound))
    return op(*positional, **keywords)


def _device_index(op, args) -> int:
    for slot in _slots(op, args):
        t = _get(args, slot)
        if t.is_cuda:
            return tensor_index(t)
    from .devices import creation_target, device_index       # a factory: its device=
    return device_index(creation_target(op, args))


def _scalars_to_device(op, args, index: int) -> tuple:
    """0-dim CPU tensors may join CUDA ops (as in PyTorch): copy them over."""
    slots = [s for s in _slots(op, args) if not _get(args, s).is_cuda]
    if not slots:
        return args
    moved = [upload(_get(args, s)._array, None, index) for s in slots]
    return tuple(_replace(args, slots, moved))


# --- 1. views --------------------------------------------------------------------------
def _shadow(t: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(storage, view): host arrays over an unread mmap with t's storage size and geometry."""
    geometry: DeviceArray = t._array
    count = max(1, t._storage.nbytes // geometry.itemsize)
    buffer = mmap.mmap(-1, count * geometry.itemsize)
    storage = np.frombuffer(buffer, geometry.dtype, count)
    view = np.lib.stride_tricks.as_strided(storage[geometry.offset:], geometry.shape,
                                           geometry.strides) if geometry.size else \
        np.empty(geometry.shape, geometry.dtype)
    return storage, view


def _views(op: OpDef, args: tuple):
    source = args[0]
    if not isinstance(source, Tensor):
        return None
    storage, view = _shadow(source)
    slots = _slots(op, args)
    shadows = [view if _get(args, s) is source else _shadow(_get(args, s))[1] for s in slots]
    result = op.reference(*_replace(args, slots, shadows))
    results = result if isinstance(result, (list, tuple)) else [result]
    if not all(isinstance(r, np.ndarray) and _inside(r, storage) for r in results):
        return None
    try:
        views = [_as_view(source, r, storage) for r in results]
    except LoweringError:
        return None
    if isinstance(result, (list, tuple)):
        return tuple(views) if op.schema.returns_tuple else views
    return views[0]


def _inside(arr: np.ndarray, storage: np.ndarray) -> bool:
    if arr.size == 0:
        return True
    return np.shares_memory(arr, storage) and min(arr.strides, default=0) >= 0


def _as_view(source: Tensor, arr: np.ndarray, storage: np.ndarray) -> Tensor:
    itemsize = arr.itemsize
    start = arr.ctypes.data - storage.ctypes.data
    if start % itemsize:
        raise LoweringError("view offset is not a whole number of elements")
    offset = start // itemsize if arr.size else 0
    strides = [s // itemsize for s in arr.strides] if arr.size else \
        list(_contiguous(arr.shape))
    return cuda_view(source, arr.shape, strides, offset, arr.dtype)


def _contiguous(shape):
    from ..ir.meta import contiguous_strides
    return contiguous_strides(tuple(shape))


# --- compiled kernels --------------------------------------------------------------------
def aligned(ptr: int) -> bool:
    return ptr % ALIGNMENT == 0


def compile_kernel(generated, alignment: list[bool], index: int):
    """A launchable CubinKernel for a GeneratedKernel: Triton compiles it to a cubin for this
    device, pointers marked 16-byte divisible where `alignment` says so."""
    key = (generated.key(), tuple(alignment), index)
    kernel = _KERNELS.get(key)
    if kernel is None:
        from ..codegen.triton import device_compile
        job = _job(generated, alignment, index)
        try:
            binary = device_compile.compile_cached(job)
        except Exception as err:  # noqa: BLE001 - Triton's errors have no common base
            raise LoweringError(f"Triton could not compile {generated.name}: "
                                f"{type(err).__name__}: {str(err)[:500]}") from err
        kernel = _install(key, job, binary, index)
    return kernel


def compile_kernels(requests: list[tuple], index: int) -> list[bool]:
    """Compile many (generated, alignment) pairs for device `index` at once: disk-cached
    cubins, the rest in parallel worker processes (codegen/triton/device_compile.py).
    Per request, whether it compiled; a failure is left for compile_kernel to raise."""
    from ..codegen.triton import device_compile
    todo = [(generated, tuple(alignment)) for generated, alignment in requests
            if (generated.key(), tuple(alignment), index) not in _KERNELS]
    jobs = [_job(generated, alignment, index) for generated, alignment in todo]
    for (generated, alignment), job, result in zip(todo, jobs, device_compile.compile_many(jobs)):
        if isinstance(result, device_compile.DeviceBinary):
            _install((generated.key(), alignment, index), job, result, index)
    return [(g.key(), tuple(a), index) in _KERNELS for g, a in requests]


def start_compiles(requests: list[tuple], index: int) -> None:
    """Begin compiling (generated, alignment) pairs in the worker pool without waiting
    (device_compile.start): a plan's kernels as it generates them, so that the compiles
    overlap the rest of its build; compile_kernels collects them. Not under Triton's
    interpreter (nothing is compiled there)."""
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        return
    from ..codegen.triton import device_compile
    device_compile.start([_job(generated, alignment, index) for generated, alignment in requests
                          if (generated.key(), tuple(alignment), index) not in _KERNELS])


def compiles_running(requests: list[tuple], index: int) -> int:
    """How many of the (generated, alignment) pairs started by `start_compiles` are still
    compiling in the workers (0: collecting them waits for nothing)."""
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        return 0
    from ..codegen.triton import device_compile
    return device_compile.running([_job(generated, alignment, index)
                                   for generated, alignment in requests
                                   if (generated.key(), tuple(alignment), index) not in _KERNELS])


def open_compile_workers(what: str, index: int) -> bool:
    """Open the compile worker pool now, before a call's trace, where `what` (the call) was
    not compiled before over this cache (device_compile.open_early). Not under Triton's
    interpreter (nothing is compiled there)."""
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        return False
    from ..codegen.triton import device_compile
    from ..runtime.cuda import driver
    major, minor = driver.capability(index)
    return device_compile.open_early(what, major * 10 + minor)


def compiled_once(what: str) -> None:
    """`what` compiled over this cache: a later process opens no workers early for it."""
    if os.environ.get("TRITON_INTERPRET", "0") in ("", "0"):
        from ..codegen.triton import device_compile
        device_compile.compiled_once(what)


def _job(generated, alignment, index: int):
    from ..codegen.triton.device_compile import CompileJob
    from ..runtime.cuda import driver
    major, minor = driver.capability(index)
    return CompileJob(generated, tuple(bool(a) for a in alignment), major * 10 + minor)


def _install(key: tuple, job, binary, index: int):
    """The loaded kernel of `binary` under `key`: loaded once per distinct compiled code
    (cuModuleLoadData costs a driver call and device memory per module)."""
    from ..runtime.cuda.module import CubinKernel, LaunchMetadata
    loaded = (job.key(), index)
    kernel = _LOADED.get(loaded)
    if kernel is None:
        spec = job.kernel.launch
        meta = LaunchMetadata.from_dict(binary.metadata, spec.arg_types())
        kernel = _LOADED[loaded] = CubinKernel(binary.cubin, meta, index)
    _KERNELS[key] = kernel
    return kernel


def compile_cubin(generated, alignment: list[bool], capability: tuple[int, int]):
    """(cubin bytes, Triton's metadata dict) for a GeneratedKernel on `capability`."""
    compiled = compile_triton(generated, alignment, capability)
    meta = compiled.metadata
    meta = meta._asdict() if hasattr(meta, "_asdict") else dict(meta)
    return compiled.asm["cubin"], meta


def compile_triton(generated, alignment: list[bool], capability: tuple[int, int]):
    """Triton's CompiledKernel for a GeneratedKernel on a CUDA `capability` (major, minor).
    Runs without a GPU (ptxas ships with Triton), so CI tests it."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from ..codegen.triton import cache
    spec = generated.launch
    fn = cache.load(generated)
    attrs = spec.divisibility_attrs(alignment)       # pointers, then the bound sizes
    source = ASTSource(fn, spec.signature(), constexprs=dict(spec.constexprs), attrs=attrs)
    major, minor = capability
    return triton.compile(source, target=GPUTarget("cuda", major * 10 + minor, 32),
                          options={"num_warps": spec.num_warps, "num_stages": spec.num_stages})


def launch(generated, tensors: list[Tensor], index: int) -> None:
    """Run a GeneratedKernel on CUDA tensors given in its buffer order (a Python number
    passes through as a scalar argument: the multi-tensor optimizer kernels' hyperparameters;
    a shape-generic kernel's bound sizes follow them).
    Inside `kernels_collected()` nothing compiles or runs: the request is recorded."""
    values = [data_ptr(t) if isinstance(t, Tensor) else t for t in tensors]
    alignment = [isinstance(t, Tensor) and aligned(v) for t, v in zip(tensors, values)]
    if _COLLECTING:
        _COLLECTING[-1].append((generated, alignment))
        return
    kernel = compile_kernel(generated, alignment, index)
    kernel.launch(generated.launch.grid, values + generated.launch.bound())


_COLLECTING: list[list] = []


class kernels_collected:
    """Inside, `launch` records (generated, alignment) in the list it yields and launches
    nothing: a compiled plan's dry run learns which kernels its eager steps will need, so
    they compile together in parallel instead of one by one as the first call meets them
    (compile_cuda.prefetch_eager_kernels)."""

    def __enter__(self) -> list:
        _COLLECTING.append([])
        return _COLLECTING[-1]

    def __exit__(self, *exc) -> None:
        _COLLECTING.pop()


# --- 2./3. planned kernels ---------------------------------------------------------------
@dataclass
class _Plan:
    generated: object                     # codegen.triton GeneratedKernel
    inputs: list[int]                     # operand slot feeding each input buffer
    outputs: list[TensorMeta]             # one fresh tensor per output buffer
    results: list[int]                    # output buffer of each op result, in order
    structure: str                        # "single", "tuple" or "list"
    # a reduction split along its reduced space (codegen/triton/split_reduce.py): these
    # phase kernels run in order on the buffers and a float32 workspace of this many
    # elements; `generated` is then the first phase
    phases: list = field(default_factory=list)
    workspace: int = 0

    def run(self, args: tuple, index: int):
        operands = [_get(args, s) for s in _operand_slots(args)]
        outs = [empty_cuda(m.shape, m.strides, m.dtype, index) for m in self.outputs]
        buffers = [operands[i] for i in self.inputs] + outs
        if self.phases:
            from ..ir.dtypes import float32
            workspace = empty_cuda((self.workspace,), (1,), float32, index)
            for generated in self.phases:
                launch(generated, buffers + [workspace], index)
        else:
            launch(self.generated, buffers, index)
        values = [outs[i] for i in self.results]
        if self.structure == "single":
            return values[0]
        return tuple(values) if self.structure == "tuple" else values


def _operand_slots(args):
    """Tensor slots of the argument tuple in order (the op is implied by the plan)."""
    slots = []
    for i, a in enumerate(args):
        if isinstance(a, Tensor):
            slots.append((i, None))
        elif isinstance(a, (list, tuple)):
            slots += [(i, j) for j, v in enumerate(a) if isinstance(v, Tensor)]
    return slots


def _plan_key(op: OpDef, args: tuple) -> tuple:
    parts = [op.name]
    for a in args:
        values = a if isinstance(a, (list, tuple)) else (a,)
        for v in values:
            if isinstance(v, Tensor):
                parts.append((tuple(v.shape), tuple(v.stride()), v.dtype.name,
                              aligned(data_ptr(v))))
            else:
                parts.append(repr(v))
        parts.append("|")
    from ..backends import cudnn
    from ..backends.cuda import get_float32_matmul_precision
    parts.append((get_float32_matmul_precision(), cudnn.allow_tf32))
    return tuple(parts)


def _make_plan(op: OpDef, args: tuple, out_meta) -> _Plan | None:
    if not _triton_available():
        return None
    try:
        if op.name in GEMM_OPS:
            plan = _gemm_plan(op, args, out_meta)
            if plan is not None:
                return plan
        return _lowered_plan(op, args)
    except (EmberError, ValueError):   # not lowerable (LoweringError, a decomposition's
        return None                     # PassError) or refused by kernel.validate


@functools.lru_cache(maxsize=None)
def _triton_available() -> bool:
    """Triton is installed (found, not imported: importing it cost ~0.15-0.35 s of a warm
    first call, whose cubins all come from the disk cache without Triton). Looked up once:
    a search of sys.path per eager op was ~0.5 ms of each (45 in a step's dry run)."""
    import importlib.util
    return importlib.util.find_spec("triton") is not None


def _lowered_plan(op: OpDef, args: tuple) -> _Plan | None:
    from ..codegen.lowering import ARG_RULES, RULES, lower_group
    from ..codegen.triton.source import generate
    from ..codegen.triton.split_reduce import generate_split
    from ..ir.graph import OpKind
    from ..ir.symbolic import build_graph
    if op.name not in RULES and op.name not in ARG_RULES and op.decomposition is None:
        return None
    slots = _operand_slots(args)
    if any(_get(args, s).dtype.is_complex for s in slots):
        return None

    def one_op(*placeholders):
        return _call(op, _replace(args, slots, placeholders))
    graph, constants = build_graph(one_op, [meta_of(_get(args, s)) for s in slots])
    if constants:
        return None
    if op.name not in RULES and op.name not in ARG_RULES:   # composite: into primitives
        from ..passes.decompose import decompose_composites
        from ..passes.manager import PassContext
        keep = set(RULES) | set(ARG_RULES)
        decompose_composites(graph, PassContext(options={"decompose_keep": keep}))
    lowered = lower_group(graph, op.name)
    if lowered.anchor is not None:
        return None
    placeholders = [n for n in graph.nodes if n.op == OpKind.placeholder]
    output = next(n for n in graph.nodes if n.op == OpKind.output).args[0]
    results = list(output) if isinstance(output, (list, tuple)) else [output]
    if any(r not in lowered.outputs for r in results):
        return None
    structure = "single" if not isinstance(output, (list, tuple)) else \
        ("tuple" if op.schema.returns_tuple else "list")
    # a long reduction over few kept points (a sum over a whole tensor, per-channel sums
    # of BatchNorm) runs split over hundreds of programs, as compiled plans run it
    split = generate_split(lowered.kernel)
    phases = split.kernels if split is not None else []
    return _Plan(phases[0] if phases else generate(lowered.kernel),
                 [placeholders.index(n) for n in lowered.inputs],
                 [n.meta["val"] for n in lowered.outputs],
                 [lowered.outputs.index(r) for r in results], structure, phases,
                 split.workspace if split is not None else 0)


def _gemm_plan(op: OpDef, args: tuple, out_meta) -> _Plan | None:
    from .eager_cuda_gemm import gemm_kernel
    found = gemm_kernel(op, args, out_meta, [_get(args, s) for s in _operand_slots(args)])
    if found is None:
        return None
    generated, inputs = found
    plan = _Plan(generated, inputs, [out_meta], [0], "single")
    if op.name == "conv2d":                 # cuDNN where it is the faster for the shape
        from .cudnn_conv import ChoosingConv2d
        return ChoosingConv2d(plan, args, out_meta)
    return plan


# --- 4. the host fallback ---------------------------------------------------------------
def _on_host(op: OpDef, args: tuple, index: int):
    if op.name not in _WARNED:
        _WARNED.add(op.name)
        _warn_at_user_line(f"{op.name}: no CUDA kernel for these arguments; it runs on the "
                           "host (operands copied to the CPU and results back)")
    from .devices import creating_on_host
    slots = _slots(op, args)
    host = _replace(args, slots, [to_host(_get(args, s)) for s in slots])
    names = [a.name for a in op.schema.args]
    if "device" in names:
        host[names.index("device")] = "cpu"
    with grad_mode.no_grad(), creating_on_host():
        result = _call(op, host)
    if isinstance(result, (list, tuple)):
        moved = [_back(r, index) for r in result]
        return tuple(moved) if isinstance(result, tuple) else moved
    return _back(result, index)


def _warn_at_user_line(message: str) -> None:
    frame = user_frame()
    if frame is None:
        warnings.warn(message, stacklevel=2)
    else:
        warnings.warn_explicit(message, UserWarning, frame.filename, frame.lineno or 0)


def _back(value, index: int):
    if not isinstance(value, Tensor):
        return value
    from .devices import _layout_for
    return upload(value._array, _layout_for(value), index)


# --- fills ----------------------------------------------------------------------------
# ops whose result is a constant of the meta's shape: value from the bound arguments
_FILLS = {"full": lambda args: args[1], "zeros_like": lambda args: 0, "ones_like": lambda args: 1,
          "empty_like": lambda args: 0, "full_like": lambda args: args[1]}


def _fill(meta: TensorMeta, value, index: int) -> Tensor:
    out = empty_cuda(meta.shape, meta.strides, meta.dtype, index)
    if out.numel():
        value = _python_scalar(value.item() if isinstance(value, Tensor) else value, meta.dtype)
        negative = isinstance(value, float) and math.copysign(1.0, value) < 0   # -0.0 != 0.0
        shape, strides = tuple(meta.shape), tuple(out.stride())
        if out._array.extent() == out.numel():
            if value == 0 and not negative:
                # zeros (every dtype's 0 is all zero bytes): one memset, no kernel to
                # compile (a cold first call compiled `fill` for the optimizer's state)
                from ..runtime.cuda.stream import current_stream, memset
                memset(data_ptr(out), 0, out.numel() * out._array.itemsize,
                       current_stream(index))
                return out
            # dense in any dim order (channels-last zeros): one run over memory; walking
            # the logical order would store one element per 32-byte sector
            shape, strides = (out.numel(),), (1,)
        generated = _fill_source(shape, strides, out._array.extent(), meta.dtype, value,
                                 negative)
        launch(generated, [out], index)
    return out


@functools.lru_cache(maxsize=512)
def _fill_source(shape, strides, extent, dtype, value, negative: bool):
    """The generated kernel that stores one constant over a strided tensor (cached: eager
    fills repeat, and emitting source costs more than launching). `negative` keeps -0.0 and
    0.0 apart, which compare equal as cache keys."""
    from ..codegen import kernel as K
    from ..codegen.triton.source import generate
    return generate(K.Kernel("fill", shape or (1,), (), [],
                             [K.BufferSpec("out0", dtype, max(1, extent))],
                             [K.Store("out0", K.strided_index(strides or (0,)),
                                      K.Const(value, dtype))]))


def _python_scalar(value, dtype):
    if dtype.is_floating_point:
        return float(value)
    return bool(value) if dtype.name == "bool" else int(value)


# --- in-place writes ---------------------------------------------------------------------
def copy_into(target: Tensor, source: Tensor) -> None:
    """target[...] = source (same shape; cast to target's dtype), on the current stream."""
    if not source.is_cuda:
        source = upload(source._values(), None, tensor_index(target))
    if target.numel() == 0 or _transposed_copy(target, source):
        return
    shape, src_strides, dst_strides = _in_target_order(
        tuple(target.shape), tuple(source.stride()), tuple(target.stride()))
    generated = _copy_source(shape, src_strides, source.dtype, source._array.extent(),
                             dst_strides, target.dtype, target._array.extent())
    launch(generated, [source, target], tensor_index(target))


@functools.lru_cache(maxsize=512)
def _copy_source(shape, src_strides, src_dtype, src_extent, dst_strides, dst_dtype,
                 dst_extent):
    from ..codegen.triton.source import generate
    return generate(strided_copy_kernel(shape, src_strides, src_dtype, src_extent, dst_strides,
                                        dst_dtype, dst_extent))


def _in_target_order(shape, src_strides, dst_strides):
    """The copy's dims reordered by the target's strides, largest first: the kernel walks
    the target's memory in order (a channels-last target is written a whole sector at a
    time instead of one element per sector). A copy may run in any order."""
    order = sorted(range(len(shape)), key=lambda d: -abs(dst_strides[d]))
    if order == list(range(len(shape))):
        return shape, src_strides, dst_strides
    return (tuple(shape[d] for d in order), tuple(src_strides[d] for d in order),
            tuple(dst_strides[d] for d in order))


# --- copies between NCHW and channels-last ---------------------------------------------------
def _layout_changing_copy(x, out_meta, index: int):
    """contiguous/clone that moves a dense 4-D tensor between NCHW and channels-last: the
    tiled transpose (None for every other copy)."""
    if not isinstance(x, Tensor) or x.dtype != out_meta.dtype or \
            _transpose_dims(tuple(x.shape), tuple(x.stride()), tuple(out_meta.strides)) is None:
        return None
    out = empty_cuda(out_meta.shape, out_meta.strides, out_meta.dtype, index)
    return out if _transposed_copy(out, x) else None


def _transpose_dims(shape, src_strides, dst_strides):
    """(batch, rows, cols) when a copy from src_strides to dst_strides is a per-sample
    transpose of a dense [rows, cols] matrix (NCHW <-> channels-last), else None."""
    from ..ir.meta import channels_last_strides, contiguous_strides
    if len(shape) != 4 or 0 in shape:
        return None
    n, c, h, w = shape
    if c == 1 or h * w == 1:
        return None                      # both layouts are the same order of memory
    nhwc, nchw = channels_last_strides(shape), contiguous_strides(shape)
    if (src_strides, dst_strides) == (nhwc, nchw):
        return n, h * w, c
    if (src_strides, dst_strides) == (nchw, nhwc):
        return n, c, h * w
    return None


def _transposed_copy(target: Tensor, source: Tensor) -> bool:
    """target[...] = source as a tiled batched transpose (codegen/triton/layout_copy.py)
    where it is one: the strided copy reads or writes one element per 32-byte sector
    there. False (nothing done) otherwise."""
    if source.dtype != target.dtype or source.dtype.is_complex or \
            tuple(source.shape) != tuple(target.shape):
        return False
    dims = _transpose_dims(tuple(target.shape), tuple(source.stride()), tuple(target.stride()))
    if dims is None:
        return False
    from ..codegen.triton import layout_copy
    if not layout_copy.fits(*dims):
        return False
    try:
        generated = _transpose_source(dims, target.dtype)
    except LoweringError:                # a dtype the Triton backend has no type for
        return False
    launch(generated, [source, target], tensor_index(target))
    return True


@functools.lru_cache(maxsize=256)
def _transpose_source(dims, dtype):
    from ..codegen.triton.layout_copy import batched_transpose
    return batched_transpose(*dims, dtype)


def strided_copy_kernel(shape, src_strides, src_dtype, src_extent, dst_strides, dst_dtype,
                        dst_extent):
    """A kernel description: out0 (dst strides, dst dtype) = in0 (src strides), cast."""
    from ..codegen import kernel as K
    value = K.Load("in0", K.strided_index(src_strides or (0,)), src_dtype)
    if src_dtype != dst_dtype:
        value = K.Cast(value, dst_dtype)
    return K.Kernel("copy_", shape or (1,), (),
                    [K.BufferSpec("in0", src_dtype, max(1, src_extent))],
                    [K.BufferSpec("out0", dst_dtype, max(1, dst_extent))],
                    [K.Store("out0", K.strided_index(dst_strides or (0,)), value)])


def _dense_copy(x: Tensor, out_meta, index: int) -> Tensor | None:
    """A copy of a dense tensor (its elements fill its span once) into the same strides:
    one device-to-device memcpy, where a copy kernel would need a Triton compile per
    shape (a training step clones every parameter and buffer shape once: a cold first
    call compiled ~20 such kernels one by one)."""
    n = x.numel()
    if not isinstance(x, Tensor) or n == 0 or x._array.extent() != n or \
            out_meta.dtype != x.dtype or tuple(out_meta.strides) != tuple(x.stride()):
        return None
    from ..runtime.cuda.stream import copy_device_to_device, current_stream
    out = empty_cuda(tuple(x.shape), tuple(x.stride()), x.dtype, index)
    copy_device_to_device(data_ptr(out), data_ptr(x), n * x._array.itemsize,
                          current_stream(index))
    return out


def clone(t: Tensor) -> Tensor:
    """A fresh CUDA tensor with t's values and dense strides of its memory format."""
    from ..ir.meta import strides_for
    out = empty_cuda(tuple(t.shape), strides_for(tuple(t.shape), t.memory_format), t.dtype,
                     tensor_index(t))
    copy_into(out, t)
    return out
