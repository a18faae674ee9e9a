"""A training step's graph -> its plan, and running it: shared by both front doors of
`ember.compile_train_step` (compile_train.py's explicit form, compile_train_traced.py's
traced step function).

The step graph's output is `(loss, (updated values...), (new buffer values...))`; a
`StepLayout` says which tensor each input comes from and where each update goes.
Everything that depends on the device goes through the compile backend
(compile.CpuBackend / compile_cuda.CudaBackend): reading tensors as plan inputs
(`unwrap`, and `input` for state that may live on the host, such as Adam's step
count), binding in-place outputs to the tensors' own buffers (`Plan.bind` with
`unwrap`), copying the rest back (`copy_into`), and wrapping results (`wrap`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..ir.errors import EmberError, TraceError
from ..ir.graph import Graph, Node, OpKind
from ..ir.registry import Tag, is_op
from ..passes import PassContext
from ..passes.in_place import in_place_updates
from .compile import CompileStats, PlanBuilder, count_ops
from . import graph_cache
from ..frontend.tensor import Tensor


@dataclass
class StepLayout:
    """Where each graph input comes from and each output goes, fixed per plan."""
    params: list[Tensor]                 # placeholders 0..n-1 (all model parameters)
    state_inputs: list[tuple]            # (param or group index, key) per state placeholder
    write_backs: list[tuple]             # (optimizer, param, key) per updated value
    buffers: list[Tensor]                # running statistics the step overwrites
    constants: dict = field(default_factory=dict)   # a traced step's get_attr values
    extra_inputs: list = field(default_factory=list)   # a traced step's step counts,
    #                                                    placeholders after its arguments
    grad_params: list = field(default_factory=list)    # store_grads: whose .grad it sets
    grads_read: list = field(default_factory=list)     # store_grads: whose .grad must be
    #                                                    None (no zero_grad() before backward)
    batchnorms: list = field(default_factory=list)     # modules with a batch counter
    batch_counts: list = field(default_factory=list)   # per module: runs per step


@dataclass
class TrainPlan:
    plan: Any
    stats: CompileStats
    graph: Graph
    layout: StepLayout
    bindings: list[tuple[int, int]]      # (plan slot, write-back index): stored in place


# --- compiling -------------------------------------------------------------------------------
def compile_step_graph(graph: Graph, constants: dict, layout: StepLayout, pipeline: str,
                       options: dict, start: float, backend) -> TrainPlan:
    """Run the pipeline over a step graph and build its plan on `backend`."""
    stats = CompileStats(original_ops=count_ops(graph))
    # a backend's pass defaults (CUDA: the backward recomputes cheap forward values)
    ctx = PassContext(constants=dict(constants), inference=False,
                      options={**getattr(backend, "pass_defaults", {}), **options})
    graph_cache.passes_cached(graph, pipeline, ctx, backend)   # or their stored result
    native = _native_entry(backend, options)
    if hasattr(backend, "horizontal"):     # CUDA: the sunk updates launch together
        backend.horizontal = bool(ctx.options.get("sink_updates"))
    plan, bindings = _build_plan(graph, ctx.constants, stats, layout,
                                 native.describing_backend() if native else backend)
    plan = backend.finish(plan, options)
    if hasattr(plan, "resident"):    # graph replay reads parameters and state in place
        plan.resident = len(layout.params) + len(layout.state_inputs)
    if native is not None:      # from the second call: one foreign call per step
        native.attach(plan, graph, bound=[slot for slot, _ in bindings])
    stats.seconds = time.perf_counter() - start
    return TrainPlan(plan, stats, graph, layout, bindings)


def _native_entry(backend, options: dict):
    """compiler/native_plan for a CPU plan (the whole-plan entry point inference plans
    use), None for another backend or when it is turned off."""
    from .compile import CpuBackend
    if type(backend) is not CpuBackend:
        return None
    from . import native_plan
    return native_plan if native_plan.enabled(options) else None


def _build_plan(graph: Graph, constants: dict, stats: CompileStats, layout: StepLayout,
                backend):
    """The plan, with in-place updates bound where legal; if a group chosen for one did
    not become a kernel with plan-owned outputs (it fell back to eager), rebuild with
    every update copied back instead."""
    all_outputs = graph.output_node.args
    in_place = in_place_updates(graph, _update_sources(graph, layout, backend),
                                _buffer_sources(graph, constants, layout, backend))
    builder = PlanBuilder(graph, constants, stats, backend)
    plan = builder.build()
    bindings = [(_slot_of(builder, group, index), position)
                for group, index, position in in_place]
    if all(slot in _owned_kernel_slots(plan) for slot, _ in bindings):
        return plan, bindings
    graph.output_node.args = all_outputs
    stats.__init__(original_ops=stats.original_ops)
    return PlanBuilder(graph, constants, stats, backend).build(), []


def _slot_of(builder: PlanBuilder, group: Node, index: int) -> int:
    slot = builder.slot[group]
    return slot if isinstance(slot, int) else slot[index]


def _owned_kernel_slots(plan) -> set[int]:
    return {slot for step in plan.steps if step.kernel
            for slot, spec in zip(step.outputs, step.out_specs) if spec.persistent}


def _update_sources(graph: Graph, layout: StepLayout, backend) -> list[Node | None]:
    """Per updated value, the graph input (placeholder, or constant of a traced step)
    holding the tensor it replaces; None where there is none (state a step creates) or
    the tensor lives where the plan cannot store (a host step count of a CUDA plan)."""
    placeholders = graph.placeholders
    param_index = {id(p): i for i, p in enumerate(layout.params)}
    state_index = {(id(src), key): len(layout.params) + i
                   for i, (src, key) in enumerate(layout.state_inputs)
                   if not isinstance(src, int)}
    constant_of = {id(layout.constants[n.target]): n for n in graph.nodes
                   if n.op == OpKind.get_attr and n.target in layout.constants}
    sources = []
    for optimizer, p, key in layout.write_backs:
        target = target_tensor(optimizer, p, key)
        index = param_index.get(id(p)) if key == "params" else state_index.get((id(p), key))
        if target is None or not backend.holds(target):
            sources.append(None)
        elif index is not None:
            sources.append(placeholders[index])
        else:
            sources.append(constant_of.get(id(target)))
    return sources


def _buffer_sources(graph: Graph, constants: dict, layout: StepLayout,
                    backend) -> list[Node | None]:
    """Per new buffer value (a running statistic), the graph constant reading the buffer
    it replaces; None where the plan cannot store into it."""
    reads = {id(constants[n.target]): n for n in graph.nodes
             if n.op == OpKind.get_attr and n.target in constants}
    return [reads.get(id(b)) if backend.holds(b) else None for b in layout.buffers]


# --- running ---------------------------------------------------------------------------------
def run_step(entry: TrainPlan, inputs: list, backend, targets: list | None = None):
    """Run the plan with its in-place outputs bound to the tensors' current buffers;
    returns (loss or the step function's output, updates, new buffers) as plan values.
    `targets`: update_targets(entry.layout), when the caller looked them up already."""
    targets = update_targets(entry.layout) if targets is None else targets
    bind = entry.plan.bind
    for slot, position in entry.bindings:
        bind(slot, backend.unwrap(targets[position]))
    if getattr(entry.plan, "capturable", None) is not None:    # CUDA-graph replay
        counts = [target is not None and _host_count(key, target, backend)
                  for (_, _, key), target in zip(entry.layout.write_backs, targets)]
        if any(counts):      # write_back adds to them on the host: no copy out
            return entry.plan.run(inputs, (False, tuple(counts), False))
    return entry.plan.run(inputs)


def update_targets(layout: StepLayout) -> list:
    """The tensor each update replaces, looked up now (optimizer state may have been
    replaced since the last step, e.g. by load_state_dict; None where the step creates
    it), then the buffers the new running statistics replace (a binding's position
    counts both)."""
    return [param if key == "params" else optimizer.state[param].get(key)
            for optimizer, param, key in layout.write_backs] + list(layout.buffers)


def target_tensor(optimizer, param, key: str):
    """The tensor an update replaces: the parameter, or its optimizer state (None when
    this step creates it)."""
    return param if key == "params" else optimizer.state[param].get(key)


def write_back(layout: StepLayout, updates, buffers, backend,
               targets: list | None = None) -> None:
    """Leave the step's new values in the existing tensors (those a kernel did not
    already store in place), and create the state a first step makes. `targets`:
    update_targets(layout), as run_step used them."""
    targets = update_targets(layout) if targets is None else targets
    counted: set[int] = set()
    for (optimizer, param, key), value, target in zip(layout.write_backs, updates, targets):
        if target is not None and _host_count(key, target, backend):
            if id(target) not in counted:       # a tensor shared by parameters: once
                counted.add(id(target))
                np.add(target._array, 1, out=target._array, casting="unsafe")
                target._bump_version()
        elif value is None:                     # the kernel stored it in place
            target._bump_version()
        elif target is not None:
            _copy_into(target, value, backend)
        else:                                   # state the first step creates (SGD momentum)
            optimizer.state[param][key] = _fresh_tensor(value, backend)
    for buffer, value in zip(layout.buffers, buffers):
        if value is None:                       # the kernel stored it in place
            buffer._bump_version()
        else:
            _copy_into(buffer, value, backend)


def _host_count(key: str, target: Tensor, backend) -> bool:
    """An optimizer's step count kept on the host while the plan runs on a device (Adam's
    'step', a CPU tensor as in torch's non-capturable Adam): optim.functional's update
    returns it incremented by one, from the very value the plan was given (every
    parameter of a group holds the same count: shared_state refuses others), so the
    host adds 1 itself, as torch does, instead of reading the device's result back (a
    synchronizing device-to-host copy per parameter, every step)."""
    return key == "step" and not backend.holds(target) and not getattr(target, "is_cuda", True) \
        and target.numel() == 1 and isinstance(target._array, np.ndarray)


def _copy_into(dst: Tensor, value, backend) -> None:
    backend.copy_into(dst, value)
    dst._bump_version()


def _fresh_tensor(value, backend) -> Tensor:
    """A tensor of its own (never a buffer the plan reuses) holding `value`."""
    from ..frontend.autograd import grad_mode
    with grad_mode.no_grad():
        return backend.wrap(value).clone()


# --- tracing helpers ---------------------------------------------------------------------------
def substitute_tensors(args, tensors) -> list:
    """`args` with its Tensors replaced, in order, by `tensors` (symbolic values)."""
    values = iter(tensors)
    return [next(values) if isinstance(a, Tensor) else a for a in args]


def check_scalar_loss(graph: Graph) -> None:
    """Refuse a traced loss that is not a one-element floating tensor."""
    out = graph.output_node.args[0]
    meta = out.meta.get("val") if isinstance(out, Node) else None
    if meta is None or not hasattr(meta, "shape") or meta.numel() != 1 or \
            not meta.dtype.is_floating_point:
        raise TraceError(f"ember.compile_train_step: loss_fn must return a one-element "
                         f"floating tensor, got {meta if meta is not None else out!r}")


def extract_buffer_updates(graph: Graph, constants: dict) -> list[tuple[str, Node]]:
    """`copy_(buffer, new)` on a constant -> an extra graph output; the output becomes
    (loss, (new buffer values...)). Returns [(constant name, new value node)], one per
    buffer: a module run twice in the step (the same BatchNorm applied twice) updates
    its statistics twice, and what it reads after the first update is that update, as
    in eager mode, so the last value is the buffer's new value."""
    updates: dict[str, Node] = {}
    for node in list(graph.nodes):
        if _is_buffer_copy(node):
            target, new = node.args[0], node.args[1]
            if node.target.name != "copy_" or \
                    target.meta["val"].dtype != new.meta["val"].dtype:
                raise TraceError(f"ember.compile_train_step: {node.target.name} updates "
                                 f"module state {target.target} in place{where(node)}; only "
                                 f"a same-dtype copy_ (running statistics) can become an "
                                 f"output of the step")
            updates[str(target.target)] = new
            node.replace_all_uses_with(new)
            graph.erase_node(node)
            continue
        for arg in node.all_input_nodes:       # a read after an update reads its value
            if arg.op == OpKind.get_attr and str(arg.target) in updates:
                node.replace_input_with(arg, updates[str(arg.target)])
    output = graph.output_node
    output.args = ((output.args[0], tuple(updates.values())),)
    return list(updates.items())


def _is_buffer_copy(node: Node) -> bool:
    """An in-place op writing a module constant (a buffer)."""
    return node.op == OpKind.call_function and is_op(node.target) and \
        node.target.has_tag(Tag.INPLACE) and bool(node.args) and \
        isinstance(node.args[0], Node) and node.args[0].op == OpKind.get_attr


def where(node: Node) -> str:
    """' (at file:line)' for a node with a recorded source location, else ''."""
    loc = node.meta.get("loc")
    return f" (at {loc})" if loc else ""


class buffers_restored:
    """Tracing runs module code once; undo what it wrote to buffers outside of ops
    (BatchNorm's num_batches_tracked counter), so the trace has no side effects."""

    def __init__(self, model):
        self.saved = [(b, b._values().copy(), b._version) for b in _buffers(model)]
        self.advanced: dict[int, int] = {}   # id(buffer) -> in-place writes the trace
        #                                      made to it (a batch counter's add_ calls)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        from ..frontend.autograd import grad_mode
        for buffer, value, version in self.saved:
            self.advanced[id(buffer)] = buffer._version - version
            if not np.array_equal(buffer._values(), value):
                with grad_mode.no_grad():
                    buffer.copy_(Tensor._adopt(value).to(buffer.device))


def _buffers(model) -> list:
    named = getattr(model, "buffers", None)
    return [b for b in named() if b is not None] if callable(named) else []


def _training_batchnorms(model) -> list:
    return [m for m in (model.modules() if hasattr(model, "modules") else ())
            if getattr(m, "num_batches_tracked", None) is not None and m.training and
            getattr(m, "track_running_stats", False)]


def check_batchnorms(model) -> None:
    """Refuse train-mode BatchNorm with momentum=None (its factor changes every step)."""
    for module in _training_batchnorms(model):
        if module.momentum is None:
            raise EmberError(f"ember.compile_train_step: {module!r} has momentum=None (a "
                             f"cumulative average whose factor changes every step); "
                             f"set a momentum to compile its training step")


def batchnorm_modules(model) -> list:
    """The modules with a batch counter (BatchNorm), in train mode or not: found once
    per plan (the plan was traced through these modules), so a step does not walk the
    module tree again."""
    return [m for m in (model.modules() if hasattr(model, "modules") else ())
            if getattr(m, "num_batches_tracked", None) is not None]


def count_batchnorm_batches(model, modules: list | None = None,
                            counts: list | None = None) -> None:
    """The compiled step does what train-mode BatchNorm.forward does to its counter;
    `modules`: batchnorm_modules(model), when the caller kept it; `counts`: per module,
    how many times the traced step ran it (a module run twice counts twice; None: once)."""
    from ..frontend.autograd import grad_mode
    from ..frontend.optim.multi_tensor_cuda import increment
    candidates = batchnorm_modules(model) if modules is None else modules
    counts = counts or [None] * len(candidates)
    training = [(m.num_batches_tracked, 1 if n is None else n)
                for m, n in zip(candidates, counts)
                if m.training and getattr(m, "track_running_stats", False)]
    for round_ in range(max((n for _, n in training), default=0)):
        counters = [c for c, n in training if n > round_]
        if increment(counters):          # CUDA counters: one launch for all of them
            for counter in counters:
                counter._bump_version()
            continue
        with grad_mode.no_grad():
            for counter in counters:
                counter.add_(1)
