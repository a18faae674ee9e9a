"""Dynamic shapes for `ember.compile`: one compile for every size of a dimension.

torch.compile's automatic dynamic shapes: the first call compiles a plan for its exact
shapes; when a later call differs only in the size of some dimensions (or from the
first call with `dynamic=True`; never with `dynamic=False`), those dimensions become
one symbol `s0` and ember compiles ONCE for every size in `s0`'s range, [2, inf) (sizes
0 and 1 are specialized, as torch does).

How the symbolic entry is built (`build_dynamic_entry`):
1. The function is traced and the inference pipeline run at three sizes of `s0`: the
   two sizes seen (the current call's first) and a probe size. No code is generated.
2. The three graphs are walked in step (`_Template`): they must have the same nodes,
   ops and non-integer arguments; every integer that differs (a shape, a stride, a
   `view` size, a kernel's extent) must be `a*s0 + c` with integer `a`, `c` agreeing at
   all three sizes. Anything else specializes, with the op named in the log: the entry
   is refused and one plan per shape is compiled as before (never a wrong result).
3. A call with `s0 = n` instantiates the graph for `n` (the integers re-evaluated),
   and builds its plan with the kernels compiled for the first size: an LLVM kernel takes
   the extent of its first outer loop as a runtime argument (`begin`, `end`), so a
   description that differs only in that extent (and its buffers' element counts) runs
   the same machine code; GEMM and convolution read M (rows = batch) from the arrays at
   call time. The memory plan is sized for `n` when the plan is instantiated. Plans per
   size are cached (`PLANS_PER_ENTRY`, 64, and `PLAN_BYTES_PER_ENTRY`, 1 GiB of buffers);
   only a description that truly differs compiles (`DynamicEntry.kernels_generated`).

`symbolic_graph()` gives the entry's graph with `s0` in its types (`f32[s0,128]`), which
prints, parses and verifies (ir/symdim.py).

Sizes read while tracing at the probe sizes are `TracedSize` ints (ir/symdim.py): a
comparison the traced code makes on one (`if x.shape[0] > 4`, `min(n, 4)`) is recorded
and specializes, as torch would guard on it.

Limits: one symbol per function (every dynamic dimension has the same size in a
call); inference entries only (a training entry specializes per shape); the Triton
backend specializes per shape.
"""
from __future__ import annotations

import dataclasses
import math
import re
from collections import OrderedDict
from typing import Any

import numpy as np

from ..ir.errors import TraceError
from ..ir.fused import FusedGroup
from ..ir.graph import Graph, Node, OpKind
from ..ir.meta import TensorMeta, contiguous_strides, strides_for
from ..ir.symdim import SymDim, TracedSize, instantiate, recording_size_comparisons
from ..passes import PassContext, run_passes
from .compile import CompileStats, PlanBuilder, _with_fusion, count_ops
from .compile_guards import GuardKey, TensorGuard, log
from .compile_trace import ModuleWatcher, SideEffectsBreak, trace_call
from ..frontend.tensor import Tensor

MIN_SIZE = 2                 # s0's range is [2, inf): 0 and 1 are specialized, as in torch
PLANS_PER_ENTRY = 64         # instantiated plans kept per dynamic entry (least recent dropped)
PLAN_BYTES_PER_ENTRY = 1 << 30   # and at most this much of their persistent buffers


class Specialize(Exception):
    """The graph cannot take a symbolic size here; the message says where and why."""


# --- which dimensions are dynamic --------------------------------------------------------------
def dynamic_dims(old: GuardKey | None, new: GuardKey, mark_all: bool):
    """[(leaf index, dim)] of the dimensions to make symbolic and their sizes (old, new),
    or (None, reason). `mark_all` (dynamic=True): dim 0 of every tensor whose dim 0 has
    the first tensor's size; else the dims where `old` and `new` differ only in size."""
    if mark_all:
        if not new.tensors or not new.tensors[0].shape:
            return None, "the first tensor argument has no dimensions"
        size = new.tensors[0].shape[0]
        dims = [(i, 0) for i, t in enumerate(new.tensors) if t.shape and t.shape[0] == size]
        return (dims, (size, None)), None
    if old is None or (old.grad_enabled, old.training, old.spec) != \
            (new.grad_enabled, new.training, new.spec) or len(old.tensors) != len(new.tensors):
        return None, None
    dims, sizes = [], set()
    for i, (a, b) in enumerate(zip(old.tensors, new.tensors)):
        if (a.dtype, a.device, a.requires_grad, len(a.shape)) != \
                (b.dtype, b.device, b.requires_grad, len(b.shape)):
            return None, None
        for d, (x, y) in enumerate(zip(a.shape, b.shape)):
            if x != y:
                dims.append((i, d))
                sizes.add((x, y))
    if not dims:
        return None, None
    if len(sizes) > 1:
        return None, ("more than one size changed (ember makes one symbol per function): "
                      + ", ".join(f"{x} -> {y}" for x, y in sorted(sizes)))
    return (dims, sizes.pop()), None


def marked_dims(leaves: list) -> tuple[list, bool]:
    """([(leaf index, dim)] marked by mark_dynamic or maybe_mark_dynamic, whether any
    mark is mark_dynamic's: torch raises when the code specializes such a dim)."""
    marked, strict = [], False
    for i, t in enumerate(leaves):
        hard = getattr(t, "_dynamo_dynamic_indices", ())
        soft = getattr(t, "_dynamo_weak_dynamic_indices", ())
        strict = strict or bool(hard)
        marked += [(i, dim) for dim in sorted(set(hard) | set(soft)) if dim < t.ndim]
    return marked, strict


# --- the entry -----------------------------------------------------------------------------------
class DynamicEntry:
    """A compiled function for every size n >= 2 of the symbol s0 (see module docstring)."""
    kind = "inference"

    def __init__(self, dims, key: GuardKey, template: "_Template", constants: dict,
                 traced, watched: list, backend, stats: CompileStats):
        self.dims, self.key, self.template = dims, key, template
        self.constants, self.out_spec = constants, traced.out_spec
        self.batchnorms, self.watched = traced.batchnorms, watched
        self.reuse = _KernelReuse(backend)
        self.stats = stats
        self.plans: OrderedDict[int, Any] = OrderedDict()
        self.uniform: dict[str, Any] = {}      # constants made per size: name -> its slice
        # the graph with s0 in it: each size's graph is this one with s0 evaluated
        self.symbolic = template.instantiate(SymDim.symbol())

    # the dispatcher's view of an entry
    @property
    def plan(self):
        return next(reversed(self.plans.values())) if self.plans else None

    @property
    def graph(self) -> Graph:
        return self.template.graphs[0]

    @property
    def kernels_generated(self) -> int:
        return self.reuse.generated

    def stale(self) -> str | None:
        for name, tensor, version in self.watched:
            if tensor._version != version:
                return (f"{name} was modified in place after the plan read it (version "
                        f"{version} -> {tensor._version}); inference plans fold constants")
        return None

    def size_of(self, key: GuardKey) -> int | None:
        """s0's value in a call with guard `key`, or None when the entry does not cover it
        (another rank, dtype, static size or stride, or s0 outside [2, inf))."""
        if (key.grad_enabled, key.training, key.spec, len(key.tensors)) != \
                (self.key.grad_enabled, self.key.training, self.key.spec, len(self.key.tensors)):
            return None
        i, d = self.dims[0]
        if len(key.tensors[i].shape) <= d:
            return None
        n = key.tensors[i].shape[d]
        if n < MIN_SIZE:
            return None
        for guard, expected in zip(key.tensors, self.template.input_guards(n)):
            if guard != expected:
                return None
        return n

    def range_reason(self, key: GuardKey, names: list[str]) -> str | None:
        """Why `key` is outside this entry, when the only reason is s0's range."""
        i, d = self.dims[0]
        if len(key.tensors) > i and len(key.tensors[i].shape) > d and \
                key.tensors[i].shape[d] < MIN_SIZE:
            return (f"size {key.tensors[i].shape[d]} of dim {d} of '{names[i]}' is outside "
                    f"s0's range [{MIN_SIZE}, inf) (sizes 0 and 1 are specialized)")
        return None

    def plan_for(self, n: int):
        plan = self.plans.get(n)
        if plan is None:
            graph = instantiate(self.symbolic, n)
            plan = PlanBuilder(graph, self._constants_at(graph), CompileStats(), self.reuse,
                               freeze_constants=True).build()
            plan = self.reuse.backend.finish(plan, {})
            self.plans[n] = plan
            if len(self.plans) > PLANS_PER_ENTRY:
                self.plans.popitem(last=False)
        else:
            self.plans.move_to_end(n)
        return plan

    def _constants_at(self, graph: Graph) -> dict:
        if not self.uniform:
            return self.constants
        constants = dict(self.constants)
        for node in graph.nodes:
            if node.op == OpKind.get_attr and node.target in self.uniform:
                meta = node.meta["val"]
                constants[node.target] = Tensor._adopt(np.ascontiguousarray(
                    np.broadcast_to(self.uniform[node.target], tuple(meta.shape))))
        return constants

    def run(self, dispatcher, leaves: list, args, kwargs):
        i, d = self.dims[0]
        return self.run_sized(dispatcher, leaves, leaves[i].shape[d])

    def run_sized(self, dispatcher, leaves: list, n: int):
        from .compile_guards import unflatten
        from .compile_trace import advance_batchnorm_counters
        backend = dispatcher.backend
        new = n not in self.plans
        outputs = self.plan_for(n).run([backend.unwrap(t) for t in leaves])
        if new:
            self._within_budget()
        advance_batchnorm_counters(self.batchnorms)
        return unflatten(self.out_spec, [backend.wrap(v) for v in outputs])

    def _within_budget(self) -> None:
        """Drop the least recently used plans while their buffers exceed the budget."""
        sizes = {n: _plan_bytes(p) for n, p in self.plans.items()}
        total = sum(sizes.values())
        while total > PLAN_BYTES_PER_ENTRY and len(self.plans) > 1:
            n, _ = self.plans.popitem(last=False)
            total -= sizes[n]

    def symbolic_graph(self) -> Graph:
        """The entry's graph with s0 in its types and integer arguments."""
        return self.symbolic


class _KernelReuse:
    """The backend, with generated kernels reused across sizes: a description equal to
    one already compiled except for its first outer extent (and element counts, which
    the machine code never reads) runs the same code with that extent."""

    def __init__(self, backend):
        self.backend = backend
        self.kernels: dict[str, Any] = {}
        self.generated = 0
        self.first_plan_built = False      # after it, a new kernel is a per-size one: logged

    def __getattr__(self, name: str):
        return getattr(self.backend, name)

    def extern(self, node: Node, constant=None):
        """GEMM/conv externs read their sizes (M = rows) from the arrays at call time and
        pack constant weights when made: one per node, whatever s0 is."""
        key = ("extern", _static_key([node]))
        if key not in self.kernels:
            self.kernels[key] = self.backend.extern(node, constant)
        return self.kernels[key]

    def fused_extern(self, graph: Graph, constant=None):
        fused = getattr(self.backend, "fused_extern", None)
        if fused is None:
            return None
        key = ("fused_extern", _static_key(graph.nodes))
        if key not in self.kernels:
            found = fused(graph, constant)
            # remembered by input names: each size has its own copy of the group graph
            self.kernels[key] = found and (found[0], [n.name for n in found[1]])
        found = self.kernels[key]
        if not found:
            return found
        by_name = {n.name: n for n in graph.nodes}
        return found[0], [by_name[name] for name in found[1]]

    def kernel(self, lowered):
        k = lowered.kernel
        key = _extent_free(k)
        compiled = self.kernels.get(key)
        if compiled is None:
            if self.first_plan_built:
                log.debug("ember.compile: kernel %s depends on s0 beyond its outer extent (for "
                          "example a reduction over the dynamic dim): compiled for outer=%s "
                          "inner=%s", k.name, list(k.outer), list(k.inner))
            compiled = self.kernels[key] = self.backend.kernel(lowered)
            self.generated += 1
            return compiled
        extent = k.outer[0] if k.outer else 1
        work = math.prod(k.outer) * max(1, math.prod(k.inner)) * max(1, len(k.stages))
        return dataclasses.replace(compiled, kernel=k, split_extent=extent, work=work)


def _static_key(nodes) -> str:
    """What an extern is made from besides sizes: names, ops and non-tensor arguments (the
    same at every s0 unless a size is an argument, which then shows in the key)."""
    from ..ir.graph import map_arg
    return repr([(n.name, str(n.op), getattr(n.target, "name", str(n.target)),
                  map_arg((n.args, n.kwargs), lambda m: f"%{m.name}")) for n in nodes])


def _plan_bytes(plan) -> int:
    """Bytes of a plan's persistent buffers (an arena counted once, at its largest)."""
    arenas: dict = {}
    total = 0
    for step in getattr(plan, "steps", ()):
        for spec in step.out_specs:
            if not spec.persistent:
                continue
            nbytes = math.prod(spec.meta.shape) * spec.meta.dtype.itemsize
            if spec.arena is None:
                total += nbytes
            else:
                arenas[spec.arena] = max(arenas.get(spec.arena, 0), nbytes)
    return total + sum(arenas.values())


def _extent_free(k) -> str:
    bufs = lambda specs: [dataclasses.replace(b, numel=0) for b in specs]  # noqa: E731
    return repr(dataclasses.replace(k, outer=(None,) + tuple(k.outer[1:]), inputs=bufs(k.inputs),
                                    outputs=bufs(k.outputs)))


# --- building -------------------------------------------------------------------------------------
def build_dynamic_entry(dispatcher, key: GuardKey, leaves: list, spec, dims_and_sizes,
                        names: list[str]):
    """The symbolic entry for this call, or raise Specialize."""
    dims, (old_size, new_size) = dims_and_sizes
    current = leaves[dims[0][0]].shape[dims[0][1]]
    seen = [s for s in (current, old_size, new_size) if s is not None and s >= MIN_SIZE]
    sizes = [current]
    for s in seen + [current + 1, current + 2, max(seen) + 3]:
        if s not in sizes and len(sizes) < 3:
            sizes.append(s)
    compiled = dispatcher.compiled
    graphs, constants, traced0 = [], [], None
    for s in sizes:
        probe = [_resized(t, i, dims, s) for i, t in enumerate(leaves)]
        try:
            with recording_size_comparisons() as compared:
                traced = trace_call(dispatcher.fn, probe, spec, ModuleWatcher())
        except SideEffectsBreak as err:
            err.state.restore()          # a probe trace is no call: undo what it changed
            raise Specialize("the function changes Python state while traced") from None
        if compared:
            raise Specialize(f"the function compares a dynamic size at {compared[0]} (a "
                             "branch that may change with the size)")
        if traced0 is not None and repr(traced.out_spec) != repr(traced0.out_spec):
            raise Specialize(f"the function returns a Python value that depends on the size "
                             f"({traced0.out_spec!r} at size {sizes[0]}, {traced.out_spec!r} "
                             f"at {s})")
        if any(isinstance(t, Tensor) and t.requires_grad for t in traced.constants.values()) \
                and _grad_enabled():
            raise Specialize("training entries (grad mode with tensors that require grad) "
                             "specialize per shape")
        if _updates_constants(traced.graph):
            raise Specialize("the function updates a buffer in place (batch norm in training "
                             "mode): training-form entries specialize per shape")
        ctx = PassContext(constants=dict(traced.constants), options=dict(compiled.options),
                          inference=True)
        run_passes(traced.graph, _with_fusion(compiled.pipeline), ctx)
        graphs.append(traced.graph)
        constants.append(ctx.constants)
        traced0 = traced0 or traced
    template = _Template(graphs, sizes, key.tensors)
    uniform = template.check_constants(constants)
    stats = CompileStats(original_ops=count_ops(traced0.graph))
    watched = dispatcher._watched_constants(traced0)
    entry = DynamicEntry(dims, key, template, constants[0], traced0, watched,
                         dispatcher.backend, stats)
    entry.uniform = uniform
    entry.plan_for(current)
    entry.reuse.first_plan_built = True
    stats.kernels = entry.kernels_generated
    return entry


def _resized(tensor, index: int, dims, size: int) -> TensorMeta:
    """The probe input: `tensor`'s metadata with its dynamic dims of size `size`."""
    shape = list(tensor.shape)
    for i, d in dims:
        if i == index:
            shape[d] = TracedSize(size, 1, 0)
    fmt = _layout_of(tensor)
    return TensorMeta(tuple(shape), tensor.dtype, str(tensor.device), fmt,
                      strides_for(tuple(shape), fmt))


def _layout_of(tensor):
    from ..ir.meta import channels_last, contiguous_format
    shape, strides = tuple(tensor.shape), tuple(tensor.stride())
    if strides == contiguous_strides(shape):
        return contiguous_format
    if len(shape) == 4 and strides == strides_for(shape, channels_last):
        return channels_last
    raise Specialize(f"a tensor argument of shape {list(shape)} has strides {list(strides)} "
                     "(dynamic shapes take contiguous or channels_last inputs)")


def _grad_enabled() -> bool:
    from ..frontend.autograd import grad_mode
    return grad_mode.is_grad_enabled()


def _updates_constants(graph: Graph) -> bool:
    from .compile_dispatch import _updates_constants as updates
    return updates(graph)


# --- the template: three graphs walked in step ---------------------------------------------
class _Template:
    """Graphs traced at sizes s_0, s_1, s_2; `instantiate(n)` rebuilds the first with every
    varying integer re-evaluated as a*n + c (n may be SymDim.symbol())."""

    def __init__(self, graphs: list[Graph], sizes: list[int], key_tensors: tuple):
        self.graphs, self.sizes, self.key_tensors = graphs, sizes, key_tensors
        self._guards: dict[int, tuple] = {}

    def check_constants(self, constants: list[dict]) -> dict:
        """Constants must be the same at every size, except tensors that repeat one slice
        along the dims that vary (a folded `zeros(n, h) @ w + b` initial state):
        {name: that slice}, broadcast per size."""
        first, uniform = constants[0], {}
        for name, value in first.items():
            others = [c.get(name) for c in constants[1:]]
            if all(_same_constant(value, o) for o in others):
                continue
            slices = [_repeated_slice(value, o) for o in others]
            if any(sl is None for sl in slices) or \
                    not all(np.array_equal(slices[0], sl) for sl in slices[1:]):
                raise Specialize(f"the constant {name!r} ({self._reader(name)}) depends on "
                                 f"the dynamic size")
            uniform[name] = slices[0]
        return uniform

    def _reader(self, name: str) -> str:
        for node in self.graphs[0].nodes:
            if node.op == OpKind.get_attr and node.target == name:
                users = list(node.users)
                return f"read by {_describe(users[0])}" if users else "unused"
        return "not in the graph"

    def input_guards(self, n: int) -> tuple:
        """The TensorGuard each input has when s0 = n (what a covered call must match)."""
        guards = self._guards.get(n)
        if guards is None:
            metas = [self._value([p.meta["val"] for p in nodes], n, "an input")
                     for nodes in zip(*(g.placeholders for g in self.graphs))]
            guards = tuple(TensorGuard(tuple(m.shape), m.dtype.name, tuple(m.strides),
                                       str(m.device), old.requires_grad)
                           for m, old in zip(metas, self.key_tensors))
            if len(self._guards) < 64:
                self._guards[n] = guards
        return guards

    def instantiate(self, n) -> Graph:
        return self._graph(self.graphs, n)

    def _graph(self, graphs: list[Graph], n) -> Graph:
        if len({len(g) for g in graphs}) != 1:
            raise Specialize(f"the graph has a different number of nodes at sizes "
                             f"{self.sizes}: {_first_difference(graphs)}")
        out = Graph()
        env: dict[Node, Node] = {}
        indexed = [{m: i for i, m in enumerate(g.nodes)} for g in graphs]
        for nodes in zip(*(g.nodes for g in graphs)):
            first = nodes[0]
            where = _describe(first)
            if len({x.op for x in nodes}) != 1 or not _same_target(nodes):
                raise Specialize(f"{where} differs between sizes {self.sizes}")
            for a, idx in zip(nodes[1:], indexed[1:]):
                _check_node_refs(first, a, indexed[0], idx, where)
            target = self._target(nodes, n)
            args = self._value([x.args for x in nodes], n, where, env)
            kwargs = self._value([x.kwargs for x in nodes], n, where, env)
            node = out.create_node(first.op, target, args, kwargs, name=first.name)
            node.meta = dict(first.meta)
            if "val" in first.meta:
                node.meta["val"] = self._value([x.meta.get("val") for x in nodes], n, where)
            env[first] = node
        return out

    def _target(self, nodes, n):
        first = nodes[0]
        if isinstance(first.target, FusedGroup):
            graph = self._graph([x.target.graph for x in nodes], n)
            return FusedGroup(first.target.name, graph, first.target.kind)
        return first.target

    def _value(self, values, n, where: str, env: dict | None = None):
        values = list(values)
        a = values[0]
        if isinstance(a, Node):
            return env[a] if env is not None else a
        if isinstance(a, bool) or a is None:
            return self._same(values, where)
        if isinstance(a, int):
            return self._affine(values, n, where)
        if isinstance(a, TensorMeta):
            if any(not isinstance(v, TensorMeta) for v in values):
                raise Specialize(f"{where} has different types at sizes {self.sizes}")
            self._same([(v.dtype, v.device, v.memory_format) for v in values], where)
            shape = self._value([v.shape for v in values], n, where)
            strides = self._strides(values, shape, n, where)
            return TensorMeta(shape, a.dtype, a.device, a.memory_format, strides)
        if isinstance(a, (tuple, list)):
            if len({len(v) if isinstance(v, (tuple, list)) else -1 for v in values}) != 1:
                raise Specialize(f"{where} has arguments of different lengths at sizes "
                                 f"{self.sizes}")
            items = [self._value(parts, n, where, env) for parts in zip(*values)]
            return type(a)(*items) if hasattr(a, "_fields") else type(a)(items)
        if isinstance(a, dict):
            if len({tuple(v) for v in values}) != 1:
                raise Specialize(f"{where} has different keyword arguments at sizes {self.sizes}")
            return {k: self._value([v[k] for v in values], n, where, env) for k in a}
        if isinstance(a, slice):
            parts = [self._value([getattr(v, f) for v in values], n, where, env)
                     for f in ("start", "stop", "step")]
            return slice(*parts)
        return self._same(values, where)

    def _strides(self, metas, shape, n, where: str):
        """The strides of a value whose strides at every traced size are the contiguous
        ones of its shape: those of the symbolic shape, products of sizes where needed
        (T*T for the [B, T, T] scores of attention over a dynamic length), which no
        a*s0 + c fits; other strides are fitted one by one."""
        if all(tuple(m.strides) == contiguous_strides(m.shape) for m in metas):
            return contiguous_strides(shape)
        return self._value([m.strides for m in metas], n, where)

    def _same(self, values, where: str):
        first = values[0]
        for v in values[1:]:
            if type(v) is not type(first) or not _equal(v, first):
                raise Specialize(f"{where} takes {first!r} at size {self.sizes[0]} and {v!r} "
                                 f"at another size")
        return first

    def _affine(self, values, n, where: str):
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise Specialize(f"{where} has arguments of different types at sizes {self.sizes}")
        (s0, s1, s2), (v0, v1, v2) = self.sizes, values
        if any(isinstance(v, TracedSize) and v.a is None for v in values):
            raise Specialize(f"{where} uses an integer computed from the dynamic size that "
                             f"is not a*s0 + c (nonlinear in the dynamic size): {v0} at size "
                             f"{s0}")
        v0, v1, v2 = int(v0), int(v1), int(v2)
        if v0 == v1 == v2:
            return v0
        a, rest = divmod(v1 - v0, s1 - s0)
        c = v0 - a * s0
        if rest or a * s2 + c != v2:
            raise Specialize(f"{where} uses the integer {v0} at size {s0}, {v1} at {s1} and "
                             f"{v2} at {s2}: not a*s0 + c (nonlinear in the dynamic size)")
        if isinstance(n, SymDim):
            return n * a + c
        value = a * n + c
        if value < 0:
            raise Specialize(f"{where} would use {value} at size {n}")
        return value


def _same_target(nodes) -> bool:
    first = nodes[0].target
    if isinstance(first, FusedGroup):
        return all(isinstance(x.target, FusedGroup) and x.target.name == first.name and
                   x.target.kind == first.kind for x in nodes)
    return all(x.target is first or x.target == first for x in nodes)


def _check_node_refs(a: Node, b: Node, index_a: dict, index_b: dict, where: str) -> None:
    refs_a = [index_a[m] for m in a.all_input_nodes]
    refs_b = [index_b[m] for m in b.all_input_nodes]
    if refs_a != refs_b:
        raise Specialize(f"{where} reads different values at different sizes")


def _equal(x, y) -> bool:
    try:
        result = x == y
        return bool(result) if not isinstance(result, np.ndarray) else bool(result.all())
    except Exception:       # noqa: BLE001 - values that cannot compare are not the same
        return x is y


def _same_constant(x, y) -> bool:
    if isinstance(x, Tensor) and isinstance(y, Tensor):
        return x is y or (tuple(x.shape) == tuple(y.shape) and x.dtype == y.dtype and
                          np.array_equal(x._values(), y._values(), equal_nan=True))
    if isinstance(x, np.ndarray) and isinstance(y, np.ndarray):
        return x.shape == y.shape and np.array_equal(x, y, equal_nan=True)
    return _equal(x, y)


def _repeated_slice(a, b):
    """When constants `a` and `b` differ in shape only where each repeats its first slice
    (the dims that vary with s0): that slice (size 1 there), else None."""
    a, b = (v._values() if isinstance(v, Tensor) else v for v in (a, b))
    if not isinstance(a, np.ndarray) or not isinstance(b, np.ndarray) or a.ndim != b.ndim \
            or a.dtype != b.dtype or 0 in a.shape or 0 in b.shape:
        return None
    axes = tuple(d for d in range(a.ndim) if a.shape[d] != b.shape[d])
    if not axes:
        return None
    first_a = a[tuple(slice(0, 1) if d in axes else slice(None) for d in range(a.ndim))]
    first_b = b[tuple(slice(0, 1) if d in axes else slice(None) for d in range(b.ndim))]
    if not np.array_equal(first_a, first_b, equal_nan=True) or \
            not np.array_equal(np.broadcast_to(first_a, a.shape), a, equal_nan=True) or \
            not np.array_equal(np.broadcast_to(first_b, b.shape), b, equal_nan=True):
        return None
    return first_a.copy()


def _describe(node: Node) -> str:
    """'the op linear (model.py:12)': a node as the log names it."""
    if node.op == OpKind.call_function:
        target = node.target
        if isinstance(target, FusedGroup):
            ops = ", ".join(getattr(t, "name", str(t)) for t in target.ops)
            what = f"the fused group {target.name} ({ops})"
        else:
            what = f"the op {getattr(target, 'name', None) or getattr(target, '__name__', target)}"
    else:
        what = f"the {node.op.value} {node.target}"
    loc = node.meta.get("loc")
    return f"{what} ({loc})" if loc else what


def _first_difference(graphs: list[Graph]) -> str:
    for nodes in zip(*(g.nodes for g in graphs)):
        if len({x.op for x in nodes}) != 1 or not _same_target(nodes):
            return f"first at {_describe(nodes[0])}"
    return "one graph is longer"


# --- the dispatcher's side -----------------------------------------------------------------------
MISS = object()     # DynamicRoute.call: no symbolic entry covers the call


class DynamicRoute:
    """A compiled function's symbolic entries, and when to make one."""

    def __init__(self, dispatcher):
        self.dispatcher = dispatcher
        self.entries: list[DynamicEntry] = []
        self.refused: set = set()

    def call(self, key: GuardKey, leaves: list):
        """Run the symbolic entry covering this call; MISS when none does."""
        for entry in list(self.entries):
            n = entry.size_of(key)
            if n is None:
                continue
            reason = entry.stale()
            if reason is not None:
                log.info("ember.compile: recompiling %s: %s", self.dispatcher.name, reason)
                self.entries.remove(entry)
                continue
            return entry.run_sized(self.dispatcher, leaves, n)
        return MISS

    def try_compile(self, key: GuardKey, leaves: list, spec, names: list[str]) -> bool:
        """Make a symbolic entry covering this call when the sizes call for one."""
        d = self.dispatcher
        mode = d.compiled.dynamic
        marked, strict = marked_dims(leaves)
        if mode is False or (mode is None and not d.entries and not marked):
            return False
        found, reason = self._marked(key, marked) if marked else self._dims(key)
        if found is None:
            if reason:
                log.info("ember.compile: %s: no dynamic dimension: %s; compiling one plan "
                         "per shape", d.name, reason)
            return False
        dims = found[0]
        what = ", ".join(f"dim {dim} of '{names[i]}'" for i, dim in dims)
        signature = (key.spec, tuple(dims))
        for entry in self.entries:
            if (entry.key.spec, tuple(entry.dims)) == signature:
                why = entry.range_reason(key, names) or \
                    "the symbolic entry for it does not cover this call (another stride or size)"
                log.info("ember.compile: %s: %s: %s; compiling a plan for this shape", d.name,
                         what, why)
                return False
        if signature in self.refused:
            return False
        i, dim = dims[0]
        if key.tensors[i].shape[dim] < MIN_SIZE:
            log.info("ember.compile: %s: size %d of %s is specialized (s0's range is [%d, inf))",
                     d.name, key.tensors[i].shape[dim], what, MIN_SIZE)
            return False
        refusal = self._refusal(key)
        if refusal is None:
            log.info("ember.compile: %s: making %s dynamic (s0, range [%d, inf)): one plan "
                     "for every size", d.name, what, MIN_SIZE)
            try:
                entry = build_dynamic_entry(d, key, leaves, spec, found, names)
            except Specialize as err:
                refusal = str(err)
            except Exception as err:      # noqa: BLE001 - the per-shape compile reports it
                refusal = f"tracing at other sizes failed ({type(err).__name__}: {err})"
        if refusal is not None:
            self.refused.add(signature)
            # torch raises where the code fixes the size (== / != with a number);
            # other comparisons it guards, ember compiles per shape
            if strict and re.search(r"\((eq|ne) with -?\d+\)", refusal):
                raise TraceError(
                    f"ember.compile: {d.name}: constraints violated: you marked {what} as "
                    f"dynamic (torch._dynamo.mark_dynamic) but your code specialized it "
                    f"({refusal}); remove the mark or use maybe_mark_dynamic")
            log.info("ember.compile: %s: cannot make %s dynamic: %s; compiling one plan per "
                     "shape", d.name, what, refusal)
            return False
        self.entries.append(entry)
        d.entries[key] = entry
        d.compiled.plans[key] = (entry.plan, entry.stats, entry.graph)
        return True

    def _marked(self, key: GuardKey, marked: list):
        """The dims torch._dynamo.mark_dynamic / maybe_mark_dynamic marked on this call's
        tensors: symbolic from the first call (one symbol: they must share a size)."""
        sizes = {key.tensors[i].shape[dim] for i, dim in marked}
        if len(sizes) != 1:
            return None, ("the dims marked dynamic have different sizes "
                          f"{sorted(sizes)} (ember makes one symbol per function)")
        return (marked, (sizes.pop(), None)), None

    def _dims(self, key: GuardKey):
        mode = self.dispatcher.compiled.dynamic
        if mode is True:
            return dynamic_dims(None, key, True)
        for old in reversed(list(self.dispatcher.entries)):
            found, reason = dynamic_dims(old, key, False)
            if found is not None or reason is not None:
                return found, reason
        return None, None

    def _refusal(self, key: GuardKey) -> str | None:
        """Why this call cannot have a symbolic entry before anything is traced."""
        from ..frontend.autograd import grad_mode
        d = self.dispatcher
        if d.compiled.backend_name != "llvm":
            return (f"the {d.compiled.backend_name} backend compiles one plan per shape "
                    "(symbolic sizes are built for the LLVM backend)")
        if grad_mode.is_grad_enabled():
            params = d.module.parameters() if d.module is not None else []
            if any(t.requires_grad for t in key.tensors) or \
                    any(p.requires_grad for p in params):
                return "training entries (grad mode with tensors that require grad) " \
                       "specialize per shape"
        return None
