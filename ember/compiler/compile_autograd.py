"""Training through `ember.compile`: a compiled forward that eager autograd differentiates.

When grad mode is on and a tensor argument or a tensor the function reads (a module's
parameters, a closure) requires grad, a call compiles a `TrainingEntry` from the
traced forward graph instead of an inference plan:

1. every constant that requires grad is *lifted* to a graph input (fed from the
   tensor each call, so `optimizer.step()`'s in-place updates are seen by the next
   call: nothing is folded); train-mode BatchNorm's `running_mean.copy_(...)` becomes an
   extra output written back after the call (compile_train_graph's
   `extract_buffer_updates`);
2. `passes.autograd.joint_graph` builds the joint forward+backward graph w.r.t. the
   inputs that require grad, with one cotangent input per differentiable output;
3. `passes.partition.min_cut_partition` splits it: the forward graph returns the
   outputs and the values the backward needs (the cheapest set to save; cheap ops are
   recomputed), the backward graph maps (saved values, cotangents) to the gradients;
4. both graphs run through the `default-training` pipeline and become plans.

A call runs the forward plan and returns its outputs with a `CompiledFunctionBackward`
node as grad_fn, whose edges are those of the inputs (their grad_fn, or the
AccumulateGrad of a leaf): `out.backward()` runs the backward plan and the eager engine
accumulates the gradients into `.grad` exactly as for eager ops (hooks, retain_graph,
autograd.grad included). An input the outputs do not depend on gets no gradient (its
`.grad` stays None), as in eager. A saved input modified in place before backward
raises eager's version-counter error. Double backward (create_graph=True) through a
compiled function is refused, as torch.compile's AOT autograd does.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..ir import autodiff
from ..ir.errors import AutogradError
from ..ir.graph import Graph, Node, OpKind, nodes_in
from ..ir.meta import TensorMeta
from ..passes import PassContext, run_passes
from ..passes.autograd import is_differentiable_meta, joint_graph, requires_grad_nodes
from ..passes.partition import PartitionReport, min_cut_partition
from ..frontend.autograd import grad_mode
from ..frontend.autograd.engine import Node as BackwardNode, SavedTensor, _device_of, edge_of
from .compile import CompileStats, PlanBuilder, count_ops
from .compile_train_graph import extract_buffer_updates
from .compile_trace import Traced
from ..frontend.tensor import Tensor

TRAINING_PIPELINE = "default-training"


@dataclass
class TrainingEntry:
    """A compiled forward and backward for one guard; see the module docstring."""
    forward: Any                   # Plan: inputs -> (outputs, new buffers, saved values)
    backward: Any                  # Plan: (saved values, cotangents) -> gradients
    stats: CompileStats
    graph: Graph                   # the forward graph after passes
    backward_graph: Graph
    partition: PartitionReport
    lifted: list[Tensor]           # tensors read as constants, fed after the arguments
    buffers: list[Tensor]          # running statistics the forward overwrites
    n_outputs: int
    cotangent_of: list             # per output: its cotangent position, or None
    cotangent_metas: list          # (shape, dtype) per cotangent (zeros when none came)
    output_requires_grad: list[bool]
    wrt: list[int]                 # inputs (arguments, then lifted) that get gradients
    reached: list[bool]            # per wrt: does any output depend on it
    saved_input: list              # per saved value: the input index it is, or None


def build_training_entry(traced: Traced, leaves: list, backend, options: dict,
                         differentiable: bool = True) -> TrainingEntry:
    """`differentiable=False`: no gradients (grad mode off), only the live parameters and
    the buffer write-back (a train-mode BatchNorm under no_grad)."""
    start = time.perf_counter()
    graph, constants = traced.graph, dict(traced.constants)
    updates = extract_buffer_updates(graph, constants)
    buffers = [constants[name] for name, _ in updates]
    lifted = _lift_trainable_constants(graph, constants)
    _detach_no_grad_values(graph)
    inputs = list(leaves) + lifted
    placeholders = graph.placeholders
    wrt = [i for i, (t, p) in enumerate(zip(inputs, placeholders))
           if differentiable and t.requires_grad and is_differentiable_meta(p.meta.get("val"))]
    outputs, new_buffers = graph.output_node.args[0]
    needs = requires_grad_nodes(list(graph.nodes), [placeholders[i] for i in wrt])
    output_requires_grad = [n in needs for n in outputs]
    reached = _reached_sources(graph, [placeholders[i] for i in wrt], outputs, needs)
    joint = joint_graph(graph, wrt)
    fwd, bwd, report = min_cut_partition(joint)
    cotangent_of, cotangent_metas = _cotangents(outputs, new_buffers)
    fwd_inputs = fwd.placeholders       # copies of `placeholders`, in order
    saved_input = [fwd_inputs.index(n) if n in fwd_inputs else None
                   for n in _saved_sources(fwd)]    # before passes rewrite the graph
    stats = CompileStats(original_ops=count_ops(graph))
    forward_plan = _plan(fwd, constants, options, stats, backend)
    backward_plan = _plan(bwd, constants, options, CompileStats(original_ops=count_ops(bwd)),
                          backend)
    stats.seconds = time.perf_counter() - start
    return TrainingEntry(forward_plan, backward_plan, stats, fwd, bwd, report, lifted, buffers,
                         len(outputs), cotangent_of, cotangent_metas, output_requires_grad,
                         wrt, reached, saved_input)


def _lift_trainable_constants(graph: Graph, constants: dict) -> list[Tensor]:
    """Turn get_attr nodes of tensors that require grad into placeholders (after the
    existing ones); returns those tensors in placeholder order."""
    lifted = []
    for node in list(graph.nodes):
        value = constants.get(node.target) if node.op == OpKind.get_attr else None
        if not (isinstance(value, Tensor) and value.requires_grad):
            continue
        with graph.inserting_after(graph.placeholders[-1] if graph.placeholders else None):
            placeholder = graph.placeholder(f"lifted{len(lifted)}")
        placeholder.meta = dict(node.meta)
        node.replace_all_uses_with(placeholder)
        graph.erase_node(node)
        del constants[node.target]
        lifted.append(value)
    return lifted


def _detach_no_grad_values(graph: Graph) -> None:
    """Values computed under no_grad() inside the function carry no gradient: their
    users read them through a detach node (the eager tape records nothing there)."""
    from ..ir.registry import OPS
    for node in list(graph.nodes):
        if not node.meta.get("no_grad") or not is_differentiable_meta(node.meta.get("val")):
            continue
        users = list(node.users)
        with graph.inserting_after(node):
            stop = graph.call_function(OPS["detach"], (node,))
        stop.meta = {"val": node.meta["val"], "loc": node.meta.get("loc")}
        for user in users:
            user.replace_input_with(node, stop)


def _reached_sources(graph: Graph, sources: list[Node], outputs, needs: set) -> list[bool]:
    """Per source: does a differentiable path lead from it to an output (else eager
    leaves its .grad None)."""
    reached: set[Node] = set()
    stack = [n for n in outputs if n in needs]
    while stack:
        node = stack.pop()
        if node in reached:
            continue
        reached.add(node)
        stack.extend(i for i in node.all_input_nodes if i in needs)
    return [s in reached for s in sources]


def _cotangents(outputs, new_buffers) -> tuple[list, list]:
    """joint_graph makes one cotangent per differentiable output leaf, in order (outputs,
    then buffer updates); map each user output to its position."""
    positions, metas, count = [], [], 0
    for node in nodes_in((outputs, new_buffers)):
        meta = node.meta.get("val")
        if is_differentiable_meta(meta):
            positions.append(count)
            metas.append((tuple(meta.shape), meta.dtype))
            count += 1
        else:
            positions.append(None)
    return positions[:len(outputs)], metas


def _saved_sources(fwd: Graph) -> list[Node]:
    (_, saved) = fwd.output_node.args[0]
    return list(saved)


def _plan(graph: Graph, constants: dict, options: dict, stats: CompileStats, backend):
    ctx = PassContext(constants=dict(constants), options=dict(options), inference=False)
    run_passes(graph, TRAINING_PIPELINE, ctx)
    plan = PlanBuilder(graph, ctx.constants, stats, backend).build()
    return backend.finish(plan, options)


# --- running ---------------------------------------------------------------------------------
def run_training_entry(entry: TrainingEntry, leaves: list, backend) -> list:
    """Run the forward plan; returns the output leaves as Tensors, wired to autograd."""
    inputs = list(leaves) + entry.lifted
    (outputs, new_buffers), saved = entry.forward.run([backend.unwrap(t) for t in inputs])
    with grad_mode.no_grad():
        for buffer, value in zip(entry.buffers, new_buffers):
            backend.copy_into(buffer, value)
            buffer._bump_version()
    results = [_wrap(v, backend) for v in outputs]
    if not any(entry.output_requires_grad):
        return results
    saved_values = [SavedTensor(inputs[i]) if i is not None else value
                    for i, value in zip(entry.saved_input, saved)]
    node = CompiledFunctionBackward(entry, [inputs[i] for i in entry.wrt], saved_values,
                                    backend)
    for nr, (tensor, needs) in enumerate(zip(results, entry.output_requires_grad)):
        if needs and isinstance(tensor, Tensor):
            tensor.requires_grad = True
            tensor.grad_fn = node
            tensor._output_nr = nr
    return results


def _wrap(value, backend):
    if value is None or isinstance(value, (bool, int, float, complex)):
        return value
    return backend.wrap(value)


class CompiledFunctionBackward(BackwardNode):
    """The tape node of one compiled call: runs the backward plan."""
    name = "CompiledFunctionBackward"

    def __init__(self, entry: TrainingEntry, sources: list[Tensor], saved: list, backend):
        super().__init__()
        self.entry, self.backend = entry, backend
        self.saved: list | None = saved
        self.next_functions = tuple(edge_of(t) for t in sources)
        self.n_outputs = entry.n_outputs

    def release(self) -> None:
        super().release()
        self.saved = None

    def apply(self, grads):
        if self.saved is None:
            raise AutogradError(
                "Trying to backward through the graph a second time (or directly access saved "
                "tensors after they have already been freed). Saved intermediate values of the "
                "graph are freed when you call .backward() or autograd.grad(); function: "
                f"{self.name}. Specify retain_graph=True if you need to backward through the "
                "graph a second time.")
        if grad_mode.is_grad_enabled():
            raise AutogradError("ember.compile does not support double backward "
                                "(create_graph=True) through a compiled function; run that "
                                "part eagerly")
        values = [s.unpack(self) if isinstance(s, SavedTensor) else s for s in self.saved]
        inputs = [self.backend.unwrap(v) if isinstance(v, Tensor) else v for v in values]
        inputs += self._cotangents(grads)
        result = self.entry.backward.run(_with_planned_strides(inputs, self.entry))
        return tuple(_wrap(g, self.backend) if reached else None
                     for g, reached in zip(result, self.entry.reached))

    def _cotangents(self, grads) -> list:
        entry = self.entry
        cotangents: list = [None] * len(entry.cotangent_metas)
        for g, position in zip(grads, entry.cotangent_of):
            if position is not None and g is not None:
                cotangents[position] = self.backend.unwrap(g.contiguous())
        with _device_of([g for g in grads if g is not None]):   # zeros where grads live
            for i, (shape, dtype) in enumerate(entry.cotangent_metas):
                if cotangents[i] is None:
                    cotangents[i] = self.backend.unwrap(autodiff.zeros(shape, dtype))
        return cotangents


def _with_planned_strides(arrays: list, entry: TrainingEntry) -> list:
    """The backward plan's inputs laid out as its kernels were compiled for. The forward
    plan returns a saved value held in its reused buffers as a compact copy, while the
    backward was compiled for the value's strides there (a `chunk` piece has its parent's
    row stride): such a copy is laid out again with the planned strides."""
    from ..runtime.plan import array_for
    metas = [n.meta.get("val") for n in entry.backward_graph.placeholders]
    out = []
    for array, meta in zip(arrays, metas):
        if isinstance(array, np.ndarray) and isinstance(meta, TensorMeta) and \
                array.shape == tuple(meta.shape) and array.size > 1 and \
                tuple(s // array.itemsize for s in array.strides) != tuple(meta.strides):
            laid_out = array_for(meta)
            np.copyto(laid_out, array)
            array = laid_out
        out.append(array)
    return out + list(arrays[len(metas):])


__all__ = ["TrainingEntry", "build_training_entry", "run_training_entry",
           "CompiledFunctionBackward"]
