"""ember.compile: trace, optimize, lower, generate, and run a plan.

    fast = ember.compile(model)          # or a function of tensors
    y = fast(x)                          # first call with these shapes compiles

A call looks up a plan by its guard (the shapes, dtypes and strides of the tensor
arguments, and the values of the others); a new guard compiles a new plan:
1. trace the function over the arguments' metadata (`ir.symbolic.build_graph`: no
   data is computed; module parameters become constants);
2. run the pass pipeline ('default-inference': folding, batchnorm folding,
   cleanup, layout, fusion, memory planning);
3. turn every node into a step: fused groups are lowered to kernel descriptions and
   compiled by the backend (LLVM), GEMM/conv run as extern kernels, and the rest
   runs through eager execution on the planned arrays;
4. run the plan (runtime/plan.py) and wrap its arrays as Tensors.

Weights are read at compile time (folding bakes them into new constants), as
`torch.jit.freeze` does; the guard keeps each folded tensor's version counter, so a
weight updated in place (optimizer.step() under no_grad, load_state_dict) recompiles.

Calls go through compile_dispatch.Dispatcher: under grad mode with something that
requires grad a call trains (compile_autograd.py: the joint graph, the min-cut
partition, an autograd node running the compiled backward); code that cannot be traced
runs eagerly with its modules compiled (compile_breaks.py); a step function calling
backward()/opt.step() becomes one compiled step (compile_step.py); guard reasons and
cache_size_limit are in compile_guards.py. docs/compile.md has the whole picture.
"""
from __future__ import annotations

import contextlib
import gc
import operator
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..codegen.extern import conv_epilogue_kernel, extern_kernel, tensor_inputs
from ..codegen.llvm.emit import compile_kernel
from ..codegen.llvm.implicit_conv import SMALL_CHANNELS, conv_tile, k_block
from ..codegen.llvm.target import host_isa
from ..codegen.lowering import lower_group
from ..ir import autocast, compile_times
from ..ir.errors import DeviceError, EmberError, LoweringError
from ..ir.fused import FusedGroup
from ..ir.graph import Graph, Node, OpKind, map_arg
from ..ir.meta import TensorMeta
from ..ir.quantized import QuantizedArray
from ..passes import PassContext
from ..runtime.plan import BufferSpec, Plan, Step
from ..frontend.autograd import grad_mode
from ..frontend.custom_op import graph_step
from . import graph_cache
from .compile_options import check_compile_arguments, resolve_backend
from ..frontend.quantized import QuantizedTensor, is_quantized_tensor
from ..frontend.tensor import Tensor

class CpuBackend:
    """What a compiled plan needs from a device: kernels, externs, views, an eager
    fallback, and where buffers live. The CUDA backend provides the same methods."""
    name = "llvm"
    buffers = None          # the runtime's HostBuffers (the Plan's default)

    def kernel(self, lowered):
        return compile_kernel(lowered.kernel)

    def extern(self, node: Node, constant=None):
        return extern_kernel(node, constant)

    def fused_extern(self, graph: Graph, constant=None):
        """A group whose epilogue the extern applies itself (conv + bias/residual/relu):
        (fn, inner input nodes), or None."""
        return conv_epilogue_kernel(graph, constant)

    def view(self, op, rest: tuple):
        """A view runs its NumPy reference (a numpy view: no data moves, no dispatch)."""
        return lambda x: op.reference(x, *rest)

    def eager(self, node: Node):
        return _eager_step(node)

    def constant(self, value):
        if is_quantized_tensor(value):
            qa = value._qarray()
            # a weight's packed forms live in its kernel cache (codegen/quantized.py); the
            # plan's constant shares it, or every call would pack every weight again
            qa.__dict__["_kernel_cache"] = value.__dict__.setdefault("_kernel_cache", {})
            return qa
        return value._array if isinstance(value, Tensor) else value

    def unwrap(self, tensor: Tensor):
        if tensor._storage.device != "cpu":
            raise DeviceError(
                f"ember.compile(backend='llvm'): an input is on {tensor.device}, but the CPU "
                "backend compiles CPU tensors; move the inputs with .cpu(), or compile with "
                "the device's backend (backend='triton' for CUDA, or the callable/name a "
                "device package registers)")
        if is_quantized_tensor(tensor):
            # a quantized input (a compiled module after a graph break reads the previous
            # module's int8 result): the plan's quantized steps take its integers with
            # their qparams, as they take a quantized constant
            return tensor._qarray()
        return tensor._array

    def wrap(self, value):
        if isinstance(value, QuantizedArray):
            return QuantizedTensor._wrap(value)
        if isinstance(value, (tuple, list)):    # a custom op's (List[Tensor], int) output
            values = [self.wrap(v) for v in value]
            return values if isinstance(value, list) else tuple(values)
        if isinstance(value, (bool, int, float)):
            return value
        return Tensor._adopt(value)

    # a training step's state, which may live elsewhere than the plan runs
    def input(self, tensor: Tensor):
        """A plan input from a tensor wherever it lives (unwrap refuses another device)."""
        return tensor._values()

    def holds(self, tensor: Tensor) -> bool:
        """True when a kernel of this plan may store straight into `tensor` (Plan.bind)."""
        return not tensor.is_cuda

    def copy_into(self, tensor: Tensor, value) -> None:
        """tensor[...] = a plan value, in place (cast to tensor's dtype)."""
        if tensor.is_cuda:
            with grad_mode.no_grad():
                tensor.copy_(Tensor._adopt(value))
        else:
            np.copyto(tensor._array, value, casting="unsafe")

    def is_array(self, value) -> bool:
        """True for a constant value an extern may read at build time (a frozen weight)."""
        return isinstance(value, np.ndarray)

    def finish(self, plan: Plan, options: dict):
        """The runnable plan (a device backend may wrap it, e.g. for graph replay)."""
        return plan


COMPILE_BACKENDS: dict[str, Callable] = {"llvm": CpuBackend}
BACKENDS = tuple(COMPILE_BACKENDS)


def compile(model=None, *, fullgraph: bool = False, dynamic: bool | None = None,
            backend: str = "llvm", mode: str | None = None, options: dict | None = None,
            disable: bool = False, pipeline: str = "default-inference", **unknown):
    """Compile a module or a function of tensors; returns a callable with its signature.

    torch.compile's signature (compiler/compile_options.py: what each argument does here);
    `pipeline` (ember's) names the pass pipeline. As a decorator: `@ember.compile` or
    `@ember.compile(mode="max-autotune")`. disable=True returns `model` itself. Under grad
    mode with inputs or parameters that require grad, calls train (compile_autograd.py);
    code that cannot be traced runs eagerly around compiled parts (compile_breaks.py)
    unless `fullgraph=True`; `ember.compile.explain(fn, *args)` lists the breaks."""
    backend = resolve_backend(backend, "llvm")
    merged = check_compile_arguments(unknown, fullgraph=fullgraph, dynamic=dynamic,
                                     backend=backend, mode=mode, options=options,
                                     disable=disable, backends=COMPILE_BACKENDS)
    if model is None:
        return lambda fn: compile(fn, fullgraph=fullgraph, dynamic=dynamic, backend=backend,
                                  mode=mode, options=options, disable=disable,
                                  pipeline=pipeline)
    if disable or getattr(model, "_ember_compile_disabled", False):
        return model        # ember.compiler.disable(fn): always eager
    if not isinstance(backend, str) or backend not in COMPILE_BACKENDS:
        from .compile_custom import CustomBackendFunction   # a callable or registered name
        return CustomBackendFunction(model, backend, fullgraph=fullgraph)
    return CompiledFunction(model, backend, pipeline, merged, fullgraph=fullgraph,
                            dynamic=dynamic)


def keep_function_names(wrapper, fn) -> None:
    """A compiled plain function keeps fn's __name__, __doc__, ... and __wrapped__, as
    torch.compile's (functools.wraps); a compiled module forwards its attributes instead."""
    import functools
    from ..frontend.nn.modules.module import Module
    if not isinstance(fn, Module) and hasattr(fn, "__name__"):
        functools.update_wrapper(wrapper, fn, updated=())


@dataclass
class CompileStats:
    seconds: float = 0.0
    original_ops: int = 0
    groups: int = 0
    kernels: int = 0
    externs: int = 0
    fallbacks: list[str] = field(default_factory=list)


class CompiledFunction:
    """What `ember.compile` returns: calls go through compile_dispatch.Dispatcher (guards,
    inference/training entries, graph breaks); attributes of a compiled module
    (`parameters()`, `train()`, `state_dict()`...) are the module's."""

    def __init__(self, fn, backend: str, pipeline: str, options: dict, *,
                 fullgraph: bool = False, dynamic: bool | None = None):
        from .compile_dispatch import Dispatcher
        self.fn, self.pipeline, self.options = fn, pipeline, options
        self.fullgraph, self.dynamic = fullgraph, dynamic
        self.backend = COMPILE_BACKENDS[backend]()
        self.backend_name = backend
        # (plan, stats, graph) of each compiled entry (a training entry: its forward)
        self.plans: dict[tuple, tuple[Plan, CompileStats, Graph]] = {}
        self.dispatcher = Dispatcher(self)
        keep_function_names(self, fn)

    def __call__(self, *args, **kwargs):
        return self.dispatcher.call(args, kwargs)

    def __getattr__(self, name: str):
        from .compile_dispatch import forward_attribute
        return forward_attribute(self, name)

    @property
    def _orig_mod(self):
        """What was compiled (torch's OptimizedModule._orig_mod)."""
        return self.fn

    # -- introspection ------------------------------------------------------------------
    @property
    def last(self) -> tuple[Plan, CompileStats, Graph]:
        if not self.plans:
            raise EmberError("ember.compile: nothing is compiled yet (a plan is compiled at "
                             "the first call with new input shapes); call the function first")
        return list(self.plans.values())[-1]

    @property
    def stats(self) -> CompileStats:
        """The latest plan's statistics; all zero before the first call."""
        return self.last[1] if self.plans else CompileStats()

    @property
    def graph(self) -> Graph:
        return self.last[2]


def cpu_pass_options(options: dict) -> dict:
    """The pass options of a CPU inference plan: the layout pass leaves a conv's input
    of fewer channels than the conv's padded-copy bound as it is (the conv copies it
    into a padded channels-last buffer from either layout); the memory planner writes a
    conv's result over its residual where the conv sums all of K before its epilogue;
    fusion leaves a pool's layout conversion to a kernel of its own (the pool kernel
    then reads and writes one layout)."""
    return {"entry_channels": SMALL_CHANNELS - 1, "residual_in_place": whole_k_conv,
            "pool_conversions_apart": True, **options}


def whole_k_conv(conv) -> bool:
    """A groups=1 conv2d node whose implicit GEMM takes all of K in one block on this
    machine (implicit_conv.k_block), so its epilogue reads the residual before anything
    is stored at the output: the output may take the residual's buffer."""
    args = conv.target.schema.as_kwargs(conv.target.schema.bind(conv.args, conv.kwargs))
    w = getattr(args["weight"], "meta", {}).get("val")
    if not isinstance(w, TensorMeta) or len(w.shape) != 4 or args["groups"] != 1:
        return False
    c_out, c_in, kh, kw = w.shape
    isa = host_isa()
    nr = conv_tile(isa, c_in, c_out)[1]
    k = c_in * kh * kw
    # the output's rows pick the column order's K blocks (never fewer values of k than
    # the row order's: without the rows, the row order's answer is a safe one)
    out = conv.meta.get("val")
    shape = out.shape if isinstance(out, TensorMeta) and len(out.shape) == 4 else ()
    m = shape[0] * shape[2] * shape[3] if shape and all(
        isinstance(d, int) for d in shape) else None
    return k_block(k, c_out, nr, m=m) >= k


def build_inference_plan(graph: Graph, constants: dict, pipeline: str, options: dict,
                         backend, start: float) -> tuple[Plan, CompileStats]:
    """A traced graph -> its inference plan: the pipeline (folding: constants are read
    now), then one step per node (PlanBuilder, weights frozen)."""
    stats = CompileStats(original_ops=count_ops(graph))
    ctx = PassContext(constants=dict(constants), options=cpu_pass_options(options)
                      if isinstance(backend, CpuBackend) else dict(options), inference=True)
    graph_cache.passes_cached(graph, _with_fusion(pipeline), ctx, backend)
    native = None
    if type(backend) is CpuBackend:        # the whole-plan native entry point's hook
        from . import native_plan as native
        native = native if native.enabled(options) else None
    plan = PlanBuilder(graph, ctx.constants, stats,
                       native.describing_backend() if native else backend,
                       freeze_constants=True).build()
    plan = backend.finish(plan, options)
    if native is not None:
        native.attach(plan, graph)
    stats.seconds = time.perf_counter() - start
    return plan, stats


def _with_fusion(pipeline: str) -> str:
    """The pipeline, with the fusion pass appended when it has none."""
    from ..passes.manager import lookup
    names = [p.name for part in pipeline.split(",") if part.strip() for p in lookup(part.strip())]
    return pipeline if "fuse" in names else pipeline + ",fuse"


def count_ops(graph: Graph) -> int:
    """The graph's op calls (getitem of a multi-output node not counted): CompileStats'
    original_ops."""
    return sum(1 for n in graph.nodes if n.op == OpKind.call_function and
               n.target is not operator.getitem)


def guard_key(args) -> tuple:
    """The plan-cache key of a call's arguments: shape, dtype and strides of each tensor,
    the repr of every other value, and the autocast regions active (a new key compiles a
    new plan)."""
    key = [("autocast", autocast.state_key())] if autocast.ACTIVE else []
    for a in args:
        if isinstance(a, Tensor):
            key.append(("T", tuple(a.shape), a.dtype.name, tuple(a.stride())))
        else:
            key.append(("V", repr(a)))
    return tuple(key)


@contextlib.contextmanager
def backend_compiling(backend, what: str):
    """The context of one compile of a call (trace to plan) that the backend wants around it,
    if any: CudaBackend opens its compile workers at the start (`what` names the call).
    The objects alive before it are left out of the garbage collector's full collections
    meanwhile (`_collect_new_only`)."""
    hook = getattr(backend, "compiling", None)
    with _collect_new_only(), (hook(what) if hook is not None else contextlib.nullcontext()):
        yield


_FROZEN = [0]                        # compiles open that froze the heap (threads, nesting)


@contextlib.contextmanager
def _collect_new_only():
    """gc.freeze() for the compile: a compile allocates enough (graphs, kernels' expression
    trees) to set off full collections, each of which walked every object of the process
    (the program's modules and model too: ~40 ms each, three in a resnet18 training step's
    first call, ~10% of its host CPU) though only the compile's own can be garbage. The
    frozen objects return to the oldest generation after it (gc.unfreeze). A program that
    froze objects itself (a pre-fork pattern) is left as it is."""
    if _FROZEN[0] == 0 and gc.get_freeze_count():
        yield
        return
    if _FROZEN[0] == 0:
        gc.freeze()
    _FROZEN[0] += 1
    try:
        yield
    finally:
        _FROZEN[0] -= 1
        if _FROZEN[0] == 0:
            gc.unfreeze()


def wrap_results(value, backend=None):
    """Plan results (nested tuples/lists of buffers) as Tensors: host arrays are adopted,
    the backend wraps its own buffers, Python scalars and None pass through."""
    if isinstance(value, (tuple, list)):
        return type(value)(wrap_results(v, backend) for v in value)
    if isinstance(value, np.ndarray):
        return Tensor._adopt(value)
    if isinstance(value, QuantizedArray):
        return QuantizedTensor._wrap(value)
    if backend is not None and value is not None and not isinstance(value, (int, float, bool)):
        return backend.wrap(value)
    return value


# --- plan building ---------------------------------------------------------------------------
class PlanBuilder:
    """Graph (after passes) -> Plan: one step per node, slots for every value."""

    def __init__(self, graph: Graph, constants: dict, stats: CompileStats, backend=None,
                 freeze_constants: bool = False):
        self.graph, self.constants, self.stats = graph, constants, stats
        # inference plans read weights once (externs pack them at build time); a training
        # step updates its constants in place, so there they are read every call
        self.freeze_constants = freeze_constants
        self.backend = backend or CpuBackend()
        self.slot: dict[Node, Any] = {}
        self.n_slots = 0
        self.plan = Plan(0, [], None)
        if self.backend.buffers is not None:
            self.plan.buffers = self.backend.buffers
        self.results = _result_nodes(graph)
        self.quantized = _quantized_nodes(graph)
        self.rebuilt = False         # built again once already (conv choices, build())
        # id(fused group) -> (group, its LoweredKernel): a build again (conv choices, a
        # kernel Triton refused) lowers each group once; the lowering is a function of the
        # group's graph alone, and a backend may keep what it generated from it there
        self.lowered: dict[int, tuple] = {}

    def new_slot(self) -> int:
        self.n_slots += 1
        return self.n_slots - 1

    @compile_times.timed("plan build (lowering, steps)")
    def build(self) -> Plan:
        batch = getattr(self.backend, "batch_compile", contextlib.nullcontext)
        with batch() as record:             # CUDA: the plan's kernels compiled together
            self._add_steps()
            if record is not None:          # (with those its eager steps will launch)
                self.plan.n_slots = self.n_slots
                record.plan = self.plan
                record.inputs = [n.meta.get("val") for n in self.graph.placeholders]
                record.again = self.rebuilt     # this graph was built before (choices known)
        if record is not None and record.failed:
            # Triton refused a kernel: build again kernel by kernel so that one becomes an
            # eager step (the others are compiled and cached already)
            self._restart()
            self._add_steps()
        elif getattr(record, "rebuild", False) and not self.rebuilt:
            # convolutions timed after the batch compile chose cuDNN: build again with the
            # choices known, in a batch again (kernels new to it compile together)
            self._restart()
            self.rebuilt = True
            return self.build()
        self.plan.n_slots = self.n_slots
        return self.plan

    def _restart(self) -> None:
        rebuilt, lowered = getattr(self, "rebuilt", False), self.lowered
        self.__init__(self.graph, self.constants, self.stats, self.backend,
                      self.freeze_constants)
        self.rebuilt, self.lowered = rebuilt, lowered
        self.stats.__init__(original_ops=self.stats.original_ops)

    def _add_steps(self) -> None:
        with autocast.suspended():          # the graph's dtypes are final (casts traced)
            for node in self.graph.nodes:
                handler = getattr(self, f"_{node.op.value}")
                first_new = len(self.plan.steps)
                handler(node)
                _describe_steps(self.plan.steps[first_new:], node)

    # -- node kinds --------------------------------------------------------------------------
    def _placeholder(self, node: Node) -> None:
        slot = self.slot[node] = self.new_slot()
        self.plan.input_slots.append(slot)

    def _get_attr(self, node: Node) -> None:
        value = self.constants[str(node.target)]
        slot = self.slot[node] = self.new_slot()
        self.plan.constants[slot] = self.backend.constant(value)

    def _output(self, node: Node) -> None:
        self.plan.output_slots = map_arg(node.args[0], lambda n: self.slot[n])

    def _call_method(self, node: Node) -> None:
        self._fallback(node)

    def _call_module(self, node: Node) -> None:
        raise LoweringError(f"ember.compile: call_module node {node.name} left after tracing")

    def _call_function(self, node: Node) -> None:
        target = node.target
        if node in self.quantized and target is not operator.getitem:
            self._fallback(node)
        elif isinstance(target, FusedGroup):
            self._fused(node)
        elif target is operator.getitem:
            self._getitem(node)
        elif (fn := self.backend.extern(node, self._frozen)) is not None:
            self.stats.externs += 1
            self._kernel_step(node.name, fn, tensor_inputs(node), [node])
        elif _is_view(node):
            self._view(node)
        else:
            self._fallback(node)

    def _view(self, node: Node) -> None:
        op = node.target
        bound = op.schema.bind(node.args, node.kwargs)
        slot = self.slot[node] = self.new_slot()
        self.plan.steps.append(Step(node.name, self.backend.view(op, bound[1:]),
                                    (self.slot[bound[0]],), (slot,)))

    def _getitem(self, node: Node) -> None:
        source, index = node.args
        produced = self.slot[source]
        if isinstance(produced, tuple):          # a multi-output kernel: slots per output
            self.slot[node] = produced[index]
            return
        slot = self.slot[node] = self.new_slot()
        self.plan.steps.append(Step(node.name, _ItemOf(index), (produced,), (slot,)))

    def _frozen(self, node: Node):
        """`node`'s value when it is a constant the plan may treat as fixed, else None."""
        if not self.freeze_constants or node.op != OpKind.get_attr:
            return None
        value = self.plan.constants.get(self.slot[node])
        return value if self.backend.is_array(value) else None

    def _fused(self, node: Node) -> None:
        group: FusedGroup = node.target
        self.stats.groups += 1
        if self._fused_extern(node):
            return
        try:
            lowered = self._lower(group)
            compiled = self.backend.kernel(lowered)
        except LoweringError as err:
            self.stats.fallbacks.append(f"{group.name}: {err}")
            return self._fallback(node)
        outer_of = dict(zip(group.graph.placeholders, node.args))
        if lowered.anchor is not None:
            anchor_slot = self._anchor(lowered.anchor, outer_of, group.name)
        inputs = []
        for inner in lowered.inputs:
            inputs.append(anchor_slot if inner is lowered.anchor else self.slot[outer_of[inner]])
        self.stats.kernels += 1
        outputs = [self.new_slot() for _ in lowered.outputs]
        keep = node in self.results
        arenas = _arenas(node, len(lowered.outputs))
        specs = tuple(BufferSpec(o.meta["val"], persistent=not keep, arena=a)
                      for o, a in zip(lowered.outputs, arenas))
        self.plan.steps.append(Step(group.name, compiled, tuple(inputs), tuple(outputs),
                                    kernel=True, out_specs=specs, kind="kernel"))
        self.slot[node] = outputs[0] if group.n_outputs == 1 else tuple(outputs)

    def _lower(self, group: FusedGroup):
        found = self.lowered.get(id(group))
        if found is None:
            found = self.lowered[id(group)] = (group, lower_group(group.graph, group.name))
        return found[1]

    def _fused_extern(self, node: Node) -> bool:
        """One step for a group the extern finishes itself (no separate epilogue kernel)."""
        group: FusedGroup = node.target
        fused = getattr(self.backend, "fused_extern", None)
        outer_of = dict(zip(group.graph.placeholders, node.args))
        found = fused and fused(group.graph, lambda inner: self._frozen(outer_of[inner]))
        if not found:
            return False
        fn, inner_inputs = found
        self.stats.externs += 1
        inputs = [outer_of[n] for n in inner_inputs]
        if group.n_outputs == 1:
            self._kernel_step(group.name, fn, inputs, [node])
            return True
        # a GEMM whose epilogue stores several values (an activation and its mask, say):
        # one slot per output, as a multi-output kernel's (getitem picks them)
        metas = [o.meta["val"] for o in group.graph.output_node.args[0]]
        slots = tuple(self.new_slot() for _ in metas)
        keep = node in self.results
        specs = tuple(BufferSpec(m, persistent=not keep, arena=a)
                      for m, a in zip(metas, _arenas(node, len(metas))))
        self.plan.steps.append(Step(group.name, fn, tuple(self.slot[n] for n in inputs), slots,
                                    kernel=True, out_specs=specs, kind="extern"))
        self.slot[node] = slots
        return True

    def _anchor(self, anchor: Node, outer_of: dict, name: str) -> int:
        fn = self.backend.extern(anchor, lambda inner: self._frozen(outer_of[inner]))
        inputs = [self.slot[outer_of[n]] for n in tensor_inputs(anchor)]
        slot = self.new_slot()
        if fn is None:
            eager = self.backend.eager(anchor)
            self.plan.steps.append(Step(f"{name}.anchor", eager, tuple(inputs), (slot,)))
            self.stats.fallbacks.append(f"{name}: anchor {anchor.target.name} ran eagerly")
            return slot
        self.stats.externs += 1
        # every anchor's result dies in the very next step: all of them share one arena
        self.plan.steps.append(Step(f"{name}.anchor", fn, tuple(inputs), (slot,), kernel=True,
                                    out_specs=(BufferSpec(anchor.meta["val"], arena="anchor"),),
                                    kind="extern"))
        return slot

    def _kernel_step(self, name, fn, inputs: list[Node], outputs: list[Node]) -> None:
        slots = tuple(self.new_slot() for _ in outputs)
        specs = tuple(BufferSpec(o.meta["val"], persistent=o not in self.results,
                                 arena=_arenas(o, 1)[0]) for o in outputs)
        self.plan.steps.append(Step(name, fn, tuple(self.slot[n] for n in inputs), slots,
                                    kernel=True, out_specs=specs, kind="extern"))
        for node, slot in zip(outputs, slots):
            self.slot[node] = slot

    def _fallback(self, node: Node) -> None:
        """Run the node's op eagerly on the planned arrays (ops without generated code)."""
        inputs = tensor_inputs(node)
        fn = self.backend.eager(node)
        slot = self.slot[node] = self.new_slot()
        self.plan.steps.append(Step(node.name, fn, tuple(self.slot[n] for n in inputs), (slot,)))
        if node.op == OpKind.call_function and isinstance(node.target, FusedGroup):
            return
        self.stats.fallbacks.append(getattr(node.target, "name", str(node.target)))


def _describe_steps(steps: list, node: Node) -> None:
    """Tag steps made for `node` with the profiler's category (kernels and externs were
    tagged where they were made) and the user lines they came from: a fused kernel
    names every distinct line of its fused ops, in order."""
    source = _source_lines(node)
    for step in steps:
        if step.kind == "call":
            viewish = node.op == OpKind.call_function and \
                (node.target is operator.getitem or _is_view(node))
            step.kind = "view" if viewish else "fallback"
        step.source = source


def _source_lines(node: Node, follow_users: bool = True) -> tuple[str, ...]:
    if node.op == OpKind.call_function and isinstance(node.target, FusedGroup):
        locs = [n.meta.get("loc") for n in node.target.graph.nodes]
    else:
        locs = [node.meta.get("loc")]
    found = tuple(dict.fromkeys(loc for loc in locs if loc))
    if not found and follow_users:
        # an op a pass inserted (e.g. a layout change of an input) has no line of its
        # own: name the lines of the ops it serves, so its kernel is attributed too
        found = tuple(dict.fromkeys(loc for user in node.users
                                    for loc in _source_lines(user, follow_users=False)))
    return found


def _quantized_nodes(graph: Graph) -> set:
    """Nodes that produce or read a quantized value. Plans hold plain arrays, so these
    run eagerly on quantized tensors (their slots hold `QuantizedArray`s, integers with
    their qparams): the quantized ops' own kernels (codegen/quantized.py) do the work."""
    def quantized(node) -> bool:
        val = node.meta.get("val")
        return getattr(getattr(val, "dtype", None), "is_quantized", False)
    return {n for n in graph.nodes if n.op in (OpKind.call_function, OpKind.call_method) and
            (quantized(n) or any(quantized(a) for a in n.all_input_nodes))}


def _is_view(node: Node) -> bool:
    from ..ir.registry import Tag
    op = node.target
    return getattr(op, "tags", None) is not None and Tag.VIEW in op.tags and \
        op.promotion is None and isinstance(op.schema.bind(node.args, node.kwargs)[0], Node) \
        and not any(isinstance(a, Node) for a in op.schema.bind(node.args, node.kwargs)[1:])


def _arenas(node: Node, n_outputs: int) -> list:
    """The memory plan's slot for each output of `node` (None: a buffer of its own)."""
    planned = node.meta.get("buffer")
    if planned is None:
        return [None] * n_outputs
    if n_outputs == 1 and not isinstance(planned[0], tuple):
        return [planned[0]]
    return [p[0] if p is not None else None for p in planned]


def _result_nodes(graph: Graph) -> set:
    out = graph.output_node
    found: set = set()
    if out is not None:
        map_arg(out.args[0], lambda n: found.add(n) or n)
    # a getitem of a multi-output node that is a result makes its source a result too
    for n in list(found):
        if n.op == OpKind.call_function and n.target is operator.getitem:
            found.add(n.args[0])
    return found


def _eager_step(node: Node) -> Callable:
    """A callable on arrays that runs `node` eagerly (no autograd) and returns arrays."""
    native = _native_quantized_step(node)
    if native is not None:
        return native

    def run(*arrays):
        return _unwrap(call_node_eagerly(node, [_adopt(a) for a in arrays]))
    return run


def _native_quantized_step(node: Node) -> Callable | None:
    """An int8 GEMM/conv/add node as a direct call of its eager kernel choice on the
    plan's QuantizedArrays (frontend/quantized.py native_step): no tensor wrapping,
    dispatch or meta per call (the work of an int8 model's plan is mostly these)."""
    from ..frontend.quantized import native_step
    op = node.target
    if node.op != OpKind.call_function or not hasattr(op, "schema"):
        return None
    run = native_step(op)
    if run is None:
        return None

    def step(*values):
        it = iter(values)
        args = map_arg(node.args, lambda n: next(it))
        kwargs = map_arg(node.kwargs, lambda n: next(it))
        return run(*op.schema.bind(args, kwargs))
    return step


class _ItemOf:
    """A getitem step: picks one result of a multi-output step (host bookkeeping only, so
    a CUDA graph may record the plan around it)."""
    graph_safe = True

    def __init__(self, index: int):
        self.index = index

    def __call__(self, seq):
        return seq[self.index]


def call_node_eagerly(node: Node, values) -> Any:
    """Run `node`'s function or method without autograd, `values` standing for its Node
    arguments in order (args, then kwargs); shared with the CUDA backend's eager steps."""
    it = iter(values)
    args = map_arg(node.args, lambda n: next(it))
    kwargs = map_arg(node.kwargs, lambda n: next(it))
    with grad_mode.no_grad(), graph_step():
        if node.op == OpKind.call_method:
            self_, *rest = args
            return getattr(self_, node.target)(*rest, **kwargs)
        return node.target(*args, **kwargs)


def _adopt(value):
    if isinstance(value, QuantizedArray):
        return QuantizedTensor._wrap(value)
    return Tensor._adopt(value)


def _unwrap(value):
    if is_quantized_tensor(value):
        return value._qarray()
    if isinstance(value, Tensor):
        return value._array
    if isinstance(value, (tuple, list)):
        values = [_unwrap(v) for v in value]
        return values if isinstance(value, list) else tuple(values)   # a list stays one
    return value


from . import compile_cuda  # noqa: E402,F401 - registers COMPILE_BACKENDS["triton"]
from .compile_breaks import explain  # noqa: E402 - ember.compile.explain
from .compile_guards import config  # noqa: E402 - ember.compile.config

compile.explain = explain
compile.config = config
