"""How one call of an `ember.compile`d function is served.

    call(args, kwargs)
      inside another trace (symbolic arguments)  -> inline: trace through fn itself
      a training step (backward()/step() seen)   -> compile_step.StepRoute
      guard key (compile_guards) has an entry    -> run it (unless stale: recompile)
      a symbolic entry covers the sizes          -> run it (compile_dynamic: s0 = this size)
      only some sizes changed (or dynamic=True)  -> compile a symbolic entry (compile_dynamic)
      no entry, cache limit reached              -> run fn eagerly, warn once
      no entry                                   -> trace, then compile one of:
          InferenceEntry  grad mode off, or nothing requires grad: the inference plan
                          (constants folded; recompiled if one is modified in place)
          TrainingEntry   grad mode on and something requires grad (compile_autograd)
          BreakEntry      tracing failed: run eagerly, its modules compiled
                          (compile_breaks; fullgraph=True raises instead)

Results have the structure fn returned (tuples, lists, dicts, namedtuples, with
Python values kept); the graph itself returns a flat tuple of tensors.
"""
from __future__ import annotations

import time
import weakref
from dataclasses import dataclass
from typing import Any

from ..ir import compile_times, profiling
from ..ir.errors import AutogradError, TraceError
from ..ir.graph import Graph, OpKind
from ..ir.registry import Tag, is_op
from ..ir.symbolic import SymbolicTensor
from ..passes.partition import PartitionError
from ..frontend.autograd import grad_mode
from .compile import CompileStats, backend_compiling, build_inference_plan
from .compile_autograd import TrainingEntry, build_training_entry, run_training_entry
from .compile_guards import (config, describe_function, flatten, guard_key_of, leaf_names,
                             log, recompile_reasons, unflatten)
from .compile_trace import (ModuleWatcher, SideEffectsBreak, StepFunctionFound, Traced,
                            advance_batchnorm_counters, trace_call)
from .compile_dynamic import MISS
from ..frontend.tensor import Tensor, is_tensor
from .compile_side_effects import PythonGuard


# --- entries ---------------------------------------------------------------------------------
@dataclass
class InferenceEntry:
    plan: Any
    stats: CompileStats
    graph: Graph
    out_spec: Any
    batchnorms: list
    watched: list                     # (name, tensor, version): constants read at compile time
    kind: str = "inference"

    def stale(self) -> str | None:
        for name, tensor, version in self.watched:
            if tensor._version != version:
                return (f"{name} was modified in place after the plan read it (version "
                        f"{version} -> {tensor._version}); inference plans fold constants")
        return None

    def run(self, dispatcher: "Dispatcher", leaves: list, args, kwargs):
        backend = dispatcher.backend
        outputs = self.plan.run([backend.unwrap(t) for t in leaves])
        advance_batchnorm_counters(self.batchnorms)
        return unflatten(self.out_spec, [backend.wrap(v) for v in outputs])


@dataclass
class TrainingRun:
    entry: TrainingEntry
    out_spec: Any
    batchnorms: list
    kind: str = "training"

    @property
    def plan(self):
        return self.entry.forward

    @property
    def stats(self) -> CompileStats:
        return self.entry.stats

    @property
    def graph(self) -> Graph:
        return self.entry.graph

    def stale(self) -> str | None:
        for i, tensor in enumerate(self.entry.lifted):
            if not tensor.requires_grad:
                return f"a parameter read by the function (input lifted{i}) no longer requires grad"
        return None

    def run(self, dispatcher: "Dispatcher", leaves: list, args, kwargs):
        outputs = run_training_entry(self.entry, leaves, dispatcher.backend)
        advance_batchnorm_counters(self.batchnorms)
        return unflatten(self.out_spec, outputs)


# what stops a training compile after a good trace: functionalizing an in-place update
# of an input or a view (AutogradError), a state update other than running statistics
# (TraceError), a joint graph the partitioner cannot split (PartitionError)
_BREAKS_WHILE_BUILDING = (AutogradError, TraceError, PartitionError)


# --- the dispatcher ----------------------------------------------------------------------------
_LIVE: "weakref.WeakSet[Dispatcher]" = weakref.WeakSet()


def reset_all() -> None:
    """torch._dynamo.reset(): every live compiled function compiles again at its next call."""
    for dispatcher in list(_LIVE):
        dispatcher.reset()


class Dispatcher:
    """Guards and entries of one compiled function; see the module docstring."""

    def __init__(self, compiled):
        self.compiled = compiled
        self.fn = compiled.fn
        self.module = owning_module(compiled.fn)
        # whose train/eval flags the guard reads (refreshed at each compile)
        self.submodules = list(self.module.modules()) if self.module is not None else []
        self.backend = compiled.backend
        self.entries: dict = {}
        self.step_route = None            # compile_step.StepRoute once fn is a step
        self.warned_limit = False
        self.children: dict[int, Any] = {}   # compiled submodules, for graph breaks
        self.name = describe_function(compiled.fn)
        self.dynamic = None               # compile_dynamic.DynamicRoute, made on first use
        self.calls = 0                    # counted for EMBER_COMPILE_TIMES (its first two)
        self.python_guard = None          # compile_side_effects.PythonGuard of the entries
        _LIVE.add(self)

    def reset(self) -> None:
        """Forget every compiled entry (ember._dynamo.reset)."""
        self.entries.clear()
        self.children.clear()
        self.compiled.plans.clear()
        self.step_route = self.dynamic = self.python_guard = None
        self.warned_limit = False
        self.calls = 0

    def call(self, args: tuple, kwargs: dict):
        if not compile_times.enabled() or self.calls >= 2:
            return self._call(args, kwargs)
        self.calls += 1
        with compile_times.call(f"ember.compile {self.name} call {self.calls}",
                                getattr(self.backend, "synchronize", None)):
            return self._call(args, kwargs)

    def _call(self, args: tuple, kwargs: dict):
        from .dynamo_names import current_stance
        leaves, spec = flatten((args, kwargs))
        if any(isinstance(t, SymbolicTensor) for t in leaves):
            return self.fn(*args, **kwargs)          # nested in another trace: inline
        stance = current_stance()
        if stance == "force_eager":
            return self.fn(*args, **kwargs)
        if self.step_route is not None:
            return self.step_route.call(args, kwargs)
        if self.python_guard is not None:
            self._check_python_values()
        key = guard_key_of(leaves, spec, self.submodules)
        entry = self.entries.get(key)
        if entry is None and self.dynamic is not None:
            result = self.dynamic.call(key, leaves)    # a symbolic entry covering this call
            if result is not MISS:
                return result
        reason = entry.stale() if entry is not None else None
        if entry is None or reason is not None:
            if stance != "default" and (self.entries or reason is not None):
                return self._recompile_under_stance(stance, key, reason, args, kwargs)
            if entry is None and len(self.entries) >= config.cache_size_limit:
                return self._over_limit(key, args, kwargs)
            self._log_recompile(key, reason, args, kwargs)
            # a profile shows compiling as its own span, so its table still sums to the
            # call's wall time (free when nothing is profiling)
            with profiling.record(f"ember.compile: {self.name}", "compile"):
                dynamic = reason is None and self._try_dynamic(key, leaves, spec, args, kwargs)
                entry = None if dynamic else self._compile(key, leaves, spec, args, kwargs)
            if dynamic:
                return self.dynamic.call(key, leaves)
            if entry is None:                        # routed to a training step
                return self.step_route.call(args, kwargs)
        with compile_times.stage("run (the rest of the call's run)"):
            return entry.run(self, leaves, args, kwargs)

    def _check_python_values(self) -> None:
        """A global, closure value or module attribute the entries baked in changed:
        forget them all, so this call compiles again (logged with the reason)."""
        why = self.python_guard.changed()
        if why is not None:
            log.info("ember.compile: recompiling %s: %s", self.name, why)
            self.reset()

    def _try_dynamic(self, key, leaves, spec, args, kwargs) -> bool:
        """Compile a symbolic entry for this call when its sizes call for one
        (compile_dynamic.py); False: compile one plan for these shapes."""
        from .compile_dynamic import DynamicRoute
        if self.dynamic is None:
            self.dynamic = DynamicRoute(self)
        return self.dynamic.try_compile(key, leaves, spec, leaf_names(self.fn, args, kwargs))

    def _recompile_under_stance(self, stance: str, key, reason, args, kwargs):
        """set_stance("eager_on_recompile"): run eagerly; "fail_on_recompile": refuse."""
        if stance == "eager_on_recompile":
            return self.fn(*args, **kwargs)
        why = reason if reason is not None else self._reasons(key, args, kwargs)
        raise RuntimeError(f"Detected recompile when torch.compile stance is "
                           f"'fail_on_recompile' ({self.name}: {why})")

    def _over_limit(self, key, args, kwargs):
        if not self.warned_limit:
            self.warned_limit = True
            log.warning("ember.compile: %s hit config.cache_size_limit (%d); running it "
                        "eagerly for new arguments. Last reason: %s", self.name,
                        config.cache_size_limit, self._reasons(key, args, kwargs))
        return self.fn(*args, **kwargs)

    def _log_recompile(self, key, stale_reason: str | None, args, kwargs) -> None:
        if stale_reason is not None:
            log.info("ember.compile: recompiling %s: %s", self.name, stale_reason)
        elif self.entries:
            log.info("ember.compile: recompiling %s (entry %d of cache_size_limit %d): %s",
                     self.name, len(self.entries) + 1, config.cache_size_limit,
                     self._reasons(key, args, kwargs))

    def _reasons(self, key, args, kwargs) -> str:
        last = list(self.entries)[-1]
        return "; ".join(recompile_reasons(last, key, leaf_names(self.fn, args, kwargs)))

    def _compile(self, key, leaves: list, spec, args, kwargs):
        from .compile_breaks import BreakEntry, graph_break
        from .compile_step import StepRoute
        start = time.perf_counter()
        if self.module is not None:
            self.submodules = list(self.module.modules())
            key = guard_key_of(leaves, spec, self.submodules)
        for tensor in leaves:           # a tensor on another device is refused before
            self.backend.unwrap(tensor)     # anything compiles
        watcher = ModuleWatcher()
        if self.python_guard is None:
            self.python_guard = PythonGuard(self.fn, is_tensor)
        try:
            # a backend with compile workers may open them now, beside the trace
            with backend_compiling(self.backend, f"ember.compile {self.name} {key!r}"):
                with compile_times.stage("trace"):
                    traced = trace_call(self.fn, leaves, spec, watcher)
                with compile_times.stage("compile (the rest: graph, guards, stats)"):
                    entry = self._build(traced, leaves, start)
        except StepFunctionFound:
            self.step_route = StepRoute(self)
            return None
        except SideEffectsBreak as err:
            return self._first_call_of_side_effects(err, key, leaves, watcher, start)
        except _BREAKS_WHILE_BUILDING as err:
            entry = BreakEntry(graph_break(err, self), self.modules_called(watcher))
        except Exception as err:     # noqa: BLE001 - whatever stops the trace is a break
            if watcher.finished:
                raise                # a compiler failure after a good trace: a bug to see
            entry = BreakEntry(graph_break(err, self), self.modules_called(watcher))
        self.entries[key] = entry
        if entry.kind != "eager":
            self.compiled.plans[key] = (entry.plan, entry.stats, entry.graph)
        from .compile_breaks import record_event
        record_event(self, entry)
        return entry

    def _first_call_of_side_effects(self, err, key, leaves: list, watcher, start: float):
        """The trace made the function's Python changes once for this call (so its
        Python saw is_compiling() as under torch.compile): its graph serves this call,
        later calls run eagerly, each making the changes once."""
        from .compile_breaks import BreakEntry, graph_break, record_event
        try:
            later = BreakEntry(graph_break(err, self), self.modules_called(watcher))
        except BaseException:
            err.state.restore()          # fullgraph=True refuses the function
            raise
        self.entries[key] = later
        record_event(self, later)
        if err.state.holds(lambda v: type(v) is SymbolicTensor):
            err.state.restore()          # it kept traced values: this call runs eagerly too
            return later
        try:
            return self._build(err.traced, leaves, start)
        except Exception:        # noqa: BLE001 - the graph does not build: eager, once
            err.state.restore()
            return later

    def _build(self, traced: Traced, leaves: list, start: float):
        trains = grad_mode.is_grad_enabled() and (
            any(t.requires_grad for t in leaves) or
            any(isinstance(v, Tensor) and v.requires_grad for v in traced.constants.values()))
        options = self.compiled.options
        if trains or _updates_constants(traced.graph):
            # an inference plan would fold the running statistics it updates: without
            # grad mode, the training form runs without a backward
            entry = build_training_entry(traced, leaves, self.backend, options,
                                         differentiable=trains)
            entry.stats.seconds = time.perf_counter() - start
            return TrainingRun(entry, traced.out_spec, traced.batchnorms)
        watched = self._watched_constants(traced)
        plan, stats = build_inference_plan(traced.graph, traced.constants,
                                           self.compiled.pipeline, options, self.backend, start)
        return InferenceEntry(plan, stats, traced.graph, traced.out_spec, traced.batchnorms,
                              watched)

    def _watched_constants(self, traced: Traced) -> list:
        """Constants the plan may fold, with their versions (a graph that updates one in
        place is compiled in the training form instead)."""
        names = self._constant_names()
        return [(names.get(id(t), f"a tensor of shape {list(t.shape)} the function reads"),
                 t, t._version) for t in traced.constants.values() if isinstance(t, Tensor)]

    def _constant_names(self) -> dict[int, str]:
        if self.module is None:
            return {}
        names = {id(t): f"buffer '{n}'" for n, t in self.module.named_buffers()
                 if t is not None}
        names.update({id(t): f"parameter '{n}'" for n, t in self.module.named_parameters()})
        return names

    def modules_called(self, watcher) -> list:
        """Modules a graph break compiles separately: a module's children, else the
        modules the function called before the break and those in its closure."""
        from .compile_breaks import modules_of_function
        if self.module is not None:
            return [m for m in self.module.children()]
        called = list(watcher.top_level) if watcher is not None else []
        return modules_of_function(self.fn, called)


def _updates_constants(graph: Graph) -> bool:
    """Does the graph update a tensor it reads as a constant in place (running stats)?"""
    return any(n.op == OpKind.call_function and is_op(n.target) and
               n.target.has_tag(Tag.INPLACE) and getattr(n.args[0], "op", None) ==
               OpKind.get_attr for n in graph.nodes)


def owning_module(fn):
    """The nn.Module `fn` is, or whose bound method it is; None for other functions."""
    from ..frontend.nn.modules.module import Module
    if isinstance(fn, Module):
        return fn
    owner = getattr(fn, "__self__", None)
    return owner if isinstance(owner, Module) else None


def forward_attribute(compiled, name: str):
    """`compiled.parameters()` etc. reach the compiled module (as torch's OptimizedModule);
    a method that returns the module itself (`.train()`, `.cuda()`) returns the wrapper."""
    fn = compiled.__dict__.get("fn")
    if fn is None or name.startswith("__"):
        raise AttributeError(name)
    value = getattr(fn, name)
    if not callable(value) or owning_module(fn) is not fn:
        return value

    def method(*args, **kwargs):
        result = value(*args, **kwargs)
        return compiled if result is fn else result
    return method


__all__ = ["Dispatcher", "InferenceEntry", "TrainingRun", "owning_module"]
