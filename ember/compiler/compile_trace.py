"""Tracing a call for `ember.compile`: the graph, and what the trace saw on the way.

`trace_call(fn, leaves, spec)` runs `fn` once on symbolic values (ir.symbolic's
GraphBuilder; nothing is computed) and returns a `Traced`: the graph, whose output is
the flat tuple of the result's tensor leaves, the result's structure (`out_spec`),
the constants (real tensors the function read: parameters, buffers, closures), and
the modules it called. While it runs:

- `Module.__call__` is watched: the modules called (the top-level ones are what a
  graph break compiles separately), and train-mode BatchNorms, whose
  `num_batches_tracked` counter forward advances on real data (not an op): the trace
  undoes that, and the compiled entry advances it per call instead.
- `t.detach()` on a traced value records the `detach` op (graph autograd stops there);
- `loss.backward()` on a symbolic value, or `optimizer.step()`, raises
  `StepFunctionFound`: the function is a training step (compile_step.py).
"""
from __future__ import annotations

import contextlib

from dataclasses import dataclass, field
from typing import Any, Callable

from ..ir.errors import TraceError, format_frame, user_frame
from ..ir.graph import Graph
from ..ir.meta import meta_of
from ..ir.symbolic import GraphBuilder, SymbolicTensor
from ..frontend.autograd import grad_mode
from .compile_guards import flatten, unflatten
from .compile_side_effects import PythonState
from .compile_train_traced import _patched, _subclasses, scheduler_step_refusals


class StepFunctionFound(Exception):
    """The traced function calls backward() or optimizer.step(): a training step."""


@dataclass
class Traced:
    graph: Graph
    constants: dict
    out_spec: Any                                      # the result with tensors as markers
    top_modules: list = field(default_factory=list)    # modules called from fn itself
    batchnorms: list = field(default_factory=list)     # train-mode BN with a counter


# how many ember.compile / ember.export traces are recording (torch.compiler.is_compiling
# and is_exporting read these; model code uses them to skip checks a trace cannot run)
TRACING = {"compile": 0, "export": 0}


@contextlib.contextmanager
def tracing(kind: str):
    TRACING[kind] += 1
    try:
        yield
    finally:
        TRACING[kind] -= 1


# (builder, example input leaves) of each trace_call running, innermost last: what
# `run_on_examples` evaluates traced values with
_EXAMPLES: list = []


def trace_call(fn: Callable, leaves: list, spec, watcher: "ModuleWatcher", *,
               side_effects_break: bool = True) -> Traced:
    """Trace `fn(*args, **kwargs)`, (args, kwargs) = unflatten(spec, placeholders);
    `watcher` keeps what it saw even when the trace fails. Python state the trace
    changed (compile_side_effects.py) raises SideEffectsBreak: the plan would not change
    it again on later calls (ember.export, which traces once for a
    program, passes side_effects_break=False and keeps what the trace did)."""
    if not side_effects_break:
        return _trace(fn, leaves, spec, watcher, contextlib.nullcontext())
    state = PythonState(fn)
    try:
        traced = _trace(fn, leaves, spec, watcher, _seeding_breaks())
    except BaseException:
        state.restore()             # the eager run a break falls back to changes it once
        raise
    changed = state.changed()
    if changed:
        raise SideEffectsBreak(
            f"{getattr(fn, '__qualname__', type(fn).__name__)} changes Python state on each "
            f"call ({', '.join(changed)}), which a compiled graph would not repeat on later "
            f"calls: they run eagerly (a graph break)", traced, state)
    return traced


class SideEffectsBreak(TraceError):
    """The trace changed Python state (compile_side_effects.PythonState). It made that
    change once for the call being compiled, whose graph (`traced`) may serve that call;
    later calls run eagerly. `state.restore()` undoes the change if the graph is not
    used."""

    def __init__(self, message: str, traced: "Traced", state: PythonState):
        super().__init__(message)
        self.traced, self.state = traced, state


def _refuse_reseeding(seed: int) -> None:
    frame = user_frame()
    where = f"\n  at {format_frame(frame)}" if frame else ""
    raise TraceError(f"manual_seed({seed}) inside a compiled function: the seed is set once "
                     f"while tracing, not before the random ops of each call; the function "
                     f"runs eagerly (a graph break){where}")


@contextlib.contextmanager
def _seeding_breaks():
    """Seeding the generator inside the function is a graph break (`_refuse_reseeding`)."""
    from ..frontend.random import ON_RESEED
    ON_RESEED.append(_refuse_reseeding)
    try:
        yield
    finally:
        ON_RESEED.remove(_refuse_reseeding)


def _trace(fn: Callable, leaves: list, spec, watcher: "ModuleWatcher", seeding) -> Traced:
    with tracing("compile"), watcher.watching(), seeding, _GradModeBuilder() as builder:
        if watcher.calls is not None:     # ember.export: nodes record their module calls
            builder.module_stack = watcher.stack
        _EXAMPLES.append((builder, leaves))
        try:
            inputs = [builder.placeholder(f"arg{i}", meta_of(t))
                      for i, t in enumerate(leaves)]
            for value, t in zip(inputs, leaves):
                if getattr(t, "requires_grad", False):
                    value.requires_grad = True      # `if x.requires_grad:` reads eager's answer
            args, kwargs = unflatten(spec, inputs)
            out_leaves, out_spec = flatten(fn(*args, **kwargs), objects=True)
        finally:
            _EXAMPLES.pop()
        builder.output(tuple(out_leaves))
    watcher.finished = True
    return Traced(builder.graph, builder.constants, out_spec, watcher.top_level,
                  watcher.batchnorms)


class _GradModeBuilder(GraphBuilder):
    """Records under the caller's grad mode, marking what it records while grad mode is
    off (`with no_grad():` inside the function): meta['no_grad'], which the training
    compile turns into detach nodes, as the eager tape records nothing there."""

    module_stack: list | None = None

    def record(self, op, bound: tuple):
        value = super().record(op, bound)
        if self.module_stack:
            stack = tuple((id(m), type(m)) for m in self.module_stack)
            for leaf in flatten(value)[0]:
                leaf.node.meta.setdefault("module_stack_ids", stack)
        if not grad_mode.is_grad_enabled():
            for leaf in flatten(value)[0]:
                leaf.node.meta["no_grad"] = True
        elif op.name != "detach" and any(getattr(t, "requires_grad", False)
                                         for t in flatten(bound)[0]):
            for leaf in flatten(value)[0]:      # as the eager tape: differentiable results
                if leaf.dtype.is_floating_point or leaf.dtype.is_complex:
                    leaf.requires_grad = True
        return value


def _record_detach(value):
    from ..ir.registry import OPS
    return OPS["detach"](value)


class ModuleWatcher:
    """Records module calls during a trace; refuses training-step calls (see module doc)."""

    def __init__(self, record_calls: bool = False):
        self.depth = 0
        self.top_level: list = []
        self.batchnorms: list = []
        self.saved_counters: list = []
        self.finished = False          # the trace ran to the end
        # ember.export: {id(module): [(input nodes, output nodes, output spec), ...]},
        # the graph values crossing each module call (unflatten runs a submodule on them)
        self.calls: dict | None = {} if record_calls else None
        self.stack: list = []          # the module calls now running (export's metadata)

    def watching(self):
        from ..frontend.nn.modules.module import Module
        from ..frontend.optim.optimizer import Optimizer
        watcher = self
        original_call = Module.__call__

        def call(module, *args, **kwargs):
            watcher.enter(module)
            watcher.depth += 1
            watcher.stack.append(module)
            try:
                result = original_call(module, *args, **kwargs)
            finally:
                watcher.depth -= 1
                watcher.stack.pop()
            if watcher.calls is not None:
                watcher.record_call(module, (args, kwargs), result)
            return result
        patches = [(Module, "__call__", call), (SymbolicTensor, "backward", _found_step),
                   (SymbolicTensor, "detach", _record_detach)]
        patches += [(cls, "step", _found_step) for cls in [Optimizer] + _subclasses(Optimizer)
                    if "step" in cls.__dict__]
        patches += scheduler_step_refusals()
        return _Watching(self, _patched(patches))

    def enter(self, module) -> None:
        if self.depth == 0 and all(m is not module for m in self.top_level):
            self.top_level.append(module)
        counter = getattr(module, "num_batches_tracked", None)
        if counter is None or not module.training or \
                not getattr(module, "track_running_stats", False):
            return
        if module.momentum is None:
            raise TraceError(f"{type(module).__name__} with momentum=None (a cumulative "
                             "average whose factor changes every call) cannot be compiled "
                             "in train mode")
        if all(m is not module for m in self.batchnorms):
            self.batchnorms.append(module)
            self.saved_counters.append((counter, counter._values().copy()))

    def record_call(self, module, inputs, result) -> None:
        """The nodes of a call's symbolic inputs and results (None where a leaf is not
        a graph value: the call cannot be run apart)."""
        in_leaves, _ = flatten(inputs)
        out_leaves, out_spec = flatten(result)
        nodes = [getattr(t, "node", None) for t in in_leaves], \
            [getattr(t, "node", None) for t in out_leaves]
        self.calls.setdefault(id(module), []).append((*nodes, out_spec))

    def restore(self) -> None:
        for counter, value in self.saved_counters:
            counter._values()[...] = value


class _Watching:
    def __init__(self, watcher: ModuleWatcher, patches):
        self.watcher, self.patches = watcher, patches

    def __enter__(self):
        self.patches.__enter__()

    def __exit__(self, *exc):
        self.patches.__exit__(*exc)
        self.watcher.restore()


def _found_step(self, *args, **kwargs):
    what = "backward" if isinstance(self, SymbolicTensor) else "step"
    raise StepFunctionFound(f"{type(self).__name__}.{what}()")


def advance_batchnorm_counters(batchnorms: list) -> None:
    """What train-mode BatchNorm.forward does to its counter, once per compiled call."""
    with grad_mode.no_grad():
        for module in batchnorms:
            module.num_batches_tracked.add_(1)


def run_on_examples(fn: Callable, args: tuple, kwargs: dict):
    """`fn(*args, **kwargs)` with every traced tensor in the arguments replaced by its
    value at the example inputs of the trace running (the graph recorded so far runs
    eagerly on them), and fn itself run eagerly, recording nothing: torch._dynamo's
    assume_constant_result, whose result the trace then holds as a constant. Outside
    a trace (or with no traced argument) it is the plain call."""
    import copy
    from ..ir import dispatch
    from ..ir.symbolic import call_graph
    leaves, spec = flatten((args, kwargs))
    traced = [i for i, v in enumerate(leaves) if isinstance(v, SymbolicTensor)]
    if not _EXAMPLES:
        return fn(*args, **kwargs)
    builder, examples = _EXAMPLES[-1]
    with dispatch.disabled(builder):
        if traced:
            memo: dict = {}
            graph = copy.deepcopy(builder.graph, memo)
            graph.output(tuple(memo[id(leaves[i].node)] for i in traced))
            graph.eliminate_dead_code()
            values = call_graph(graph, examples, builder.constants)
            for i, value in zip(traced, values):
                leaves[i] = value
        args, kwargs = unflatten(spec, leaves)
        return fn(*args, **kwargs)
