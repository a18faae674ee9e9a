"""The PyTorch-style front door of `ember.compile_train_step`: a whole step function
(forward, `loss.backward()`, `opt.step()`, `opt.zero_grad()`, return the loss) traced
into one graph. See compile_train.py's docstring for what a step does and its limits."""
from __future__ import annotations

import time
from typing import Any, Callable

from ..ir import autodiff, dispatch
from ..ir.errors import AutogradError, TraceError
from ..ir.graph import Graph, Node, OpKind
from ..ir.meta import meta_of
from ..ir.registry import Tag, is_op
from ..ir.symbolic import GraphBuilder, SymbolicTensor
from ..passes.autograd import backprop, requires_grad_nodes
from ..passes.cleanup import may_alias_input
from ..frontend.autograd import grad_mode
from .compile import guard_key, wrap_results
from .compile_train_graph import (StepLayout, TrainPlan, compile_step_graph,
                                  extract_buffer_updates, run_step, substitute_tensors,
                                  update_targets, where, write_back)
from .compile_train_rules import OptimizerRule, optimizer_guard, rule_for, shared_state
from ..frontend.tensor import Tensor


class TracedTrainStep:
    """`def step(x, y): loss = ...; loss.backward(); opt.step(); opt.zero_grad(); return
    loss`, compiled whole. While it is traced, `.backward()` on a symbolic loss runs the
    graph autograd sweep (gradients of the Parameters the graph reads) and `opt.step()`
    records the optimizer's functional update; parameters and optimizer state stay
    graph constants, read live by the plan (never folded) and updated in place."""

    def __init__(self, fn: Callable, backend, pipeline: str, options: dict,
                 store_grads: bool = False):
        self.fn, self.backend, self.pipeline, self.options = fn, backend, pipeline, options
        self.plans: dict[tuple, TrainPlan] = {}
        self.optimizers: list = []          # those the traced step called .step() on
        # ember.compile's door (compile_step.py): leave .grad as eager does, refuse
        # what the trace cannot reproduce (reading .grad, zero_grad(set_to_none=False))
        self.store_grads = store_grads

    def __call__(self, *args):
        between = getattr(self.backend, "between_calls", None)
        if between is not None:         # CUDA: choices a compile left to tune (cudnn_conv)
            between()
        return self.run(self.entry_for(args), args)

    def entry_for(self, args) -> TrainPlan:
        """The plan for these arguments, compiled on first use."""
        for optimizer in self.optimizers:
            rule = rule_for(optimizer)
            for g, group in enumerate(optimizer.param_groups):
                rule.init_state(optimizer, group)
                for key in rule.shared_keys:
                    shared_state(optimizer, g, key)
        key = (guard_key(args), tuple(optimizer_guard(o) for o in self.optimizers))
        entry = self.plans.get(key)
        if entry is None:
            entry = self._compile(args)
            key = (guard_key(args), tuple(optimizer_guard(o) for o in self.optimizers))
            self.plans[key] = entry
        return entry

    def run(self, entry: TrainPlan, args):
        inputs = [self.backend.unwrap(a) for a in args if isinstance(a, Tensor)]
        inputs += [self.backend.input(t) for t in entry.layout.extra_inputs]
        targets = update_targets(entry.layout)
        output, updates, buffers = run_step(entry, inputs, self.backend, targets)
        write_back(entry.layout, updates, buffers, self.backend, targets)
        if self.store_grads:
            output, grads = output
            _store_grads(entry.layout.grad_params, grads, self.backend)
        return wrap_results(output, self.backend)

    def grads_in_the_way(self, entry: TrainPlan) -> list:
        """Parameters whose existing .grad the step would add to (no zero_grad() before its
        backward()) but holds: the compiled step ignores incoming gradients."""
        return [p for p in entry.layout.grads_read if p.grad is not None]

    last = property(lambda self: list(self.plans.values())[-1])
    stats = property(lambda self: self.last.stats)
    graph = property(lambda self: self.last.graph)

    def _compile(self, args) -> TrainPlan:
        start = time.perf_counter()
        builder = GraphBuilder()
        recorder = _StepRecorder(builder, strict=self.store_grads)
        with builder, grad_mode.no_grad(), recorder.recording():
            inputs = [builder.placeholder(f"arg{i}", meta_of(a))
                      for i, a in enumerate(args) if isinstance(a, Tensor)]
            output = self.fn(*substitute_tensors(args, inputs))
            if self.store_grads:        # what eager leaves in .grad after the step
                output = (output, tuple(recorder.grads.values()))
            builder.output((output, tuple(value for _, value in recorder.updates)))
        recorder.check_late_reads()
        if not recorder.updates:
            raise TraceError("ember.compile_train_step: the step function updated nothing "
                             "(no opt.step() after loss.backward() while it was traced)")
        self.optimizers = recorder.optimizers
        graph, constants = builder.graph, builder.constants
        buffer_updates = extract_buffer_updates(graph, constants)
        (output, updates), buffers = graph.output_node.args[0]
        graph.output_node.args = ((output, updates, buffers),)
        layout = StepLayout([], [], [target for target, _ in recorder.updates],
                            [constants[name] for name, _ in buffer_updates], constants,
                            [tensor for tensor, _ in recorder.shared_inputs.values()])
        layout.grad_params = [recorder.params[i] for i in recorder.grads]
        layout.grads_read = list(recorder.reads_incoming.values())
        return compile_step_graph(graph, constants, layout, self.pipeline, self.options, start,
                                  self.backend)


class _StepRecorder:
    """What `.backward()` and `opt.step()` do while a step function is traced."""

    def __init__(self, builder: GraphBuilder, strict: bool = False):
        self.builder = builder
        self.strict = strict
        self.grads: dict[int, Any] = {}      # id(Parameter) -> symbolic gradient
        self.params: dict[int, Tensor] = {}  # id(Parameter) -> Parameter
        self.cleared: set[int] = set()       # ids zero_grad() cleared before this point
        self.reads_incoming: dict[int, Tensor] = {}   # accumulate onto the incoming .grad
        self.updates: list[tuple] = []       # ((optimizer, param, key), new symbolic value)
        self.optimizers: list = []
        self.shared_inputs: dict[int, tuple] = {}   # id(step count) -> (tensor, placeholder)
        # temporaries an in-place op updated before backward() (made functional there):
        # node -> (the in-place op, its readers when backward() returned)
        self.functionalized: dict[Node, tuple] = {}

    def recording(self):
        """Route SymbolicTensor.backward and every optimizer's step/zero_grad here."""
        from ..frontend.optim.optimizer import Optimizer
        patches = [(SymbolicTensor, "backward", self.backward)]
        for cls in _subclasses(Optimizer):
            patches.append((cls, "step", self.step))
        patches.append((Optimizer, "zero_grad", self.zero_grad))
        patches += scheduler_step_refusals()
        patches.append((SymbolicTensor, "detach", _record_detach))   # stops gradients
        if self.strict:
            from ..frontend.autograd.grad_mode import no_grad
            patches.append((no_grad, "__enter__", _refuse_no_grad))
        # .grad stays None while the step is traced: gradient clipping or a manual update
        # reading it would silently do nothing in the compiled step, so reading it stops
        # the trace (for either door)
        return _both(_patched(patches), _grad_attribute_refused())

    def backward(self, loss, gradient=None, retain_graph=None, create_graph=False,
                 inputs=None):
        if gradient is not None or create_graph or inputs is not None:
            raise TraceError("ember.compile_train_step: a traced step supports "
                             "loss.backward() only (no gradient=, create_graph=, inputs=)")
        if loss.numel() != 1:
            raise TraceError(f"ember.compile_train_step: grad can be implicitly created only "
                             f"for scalar outputs; the loss has shape {list(loss.shape)}")
        graph = loss.node.graph
        forward = list(graph.nodes)
        sources = dict(_graph_parameters(graph, self.builder.constants))
        temporaries = _functionalize_temporaries(forward)
        req = requires_grad_nodes(forward, sources)
        _check_functional_gradient_path(forward, req)
        found = backprop(forward, req, {loss.node: autodiff.ones_like_value(loss)})
        for node, op in temporaries:            # what may read them: see check_late_reads
            self.functionalized[node] = (op, set(node.users))
        for node, param in sources.items():
            g = found.get(node)
            if g is not None:
                self.params[id(param)] = param
                if id(param) not in self.grads and id(param) not in self.cleared:
                    self.reads_incoming[id(param)] = param
                have = self.grads.get(id(param))
                self.grads[id(param)] = g if have is None else have + g

    def check_late_reads(self) -> None:
        """A temporary made functional before backward() must not be read after it: that
        read would see the value before the in-place update, where eager sees it after."""
        for node, (op, readers) in self.functionalized.items():
            late = [u for u in node.users if u not in readers]
            if late:
                raise AutogradError(
                    f"ember.compile_train_step: a tensor updated in place by {op.name} "
                    f"before loss.backward() is read after it{where(late[0])}; a traced step "
                    f"needs the out-of-place op there (e.g. ReLU(inplace=False)), or use "
                    f"compile_train_step(model, loss_fn, optimizer)")

    def step(self, optimizer, closure=None):
        if closure is not None:
            raise TraceError("ember.compile_train_step: opt.step(closure) is not supported")
        rule = rule_for(optimizer)
        if optimizer not in self.optimizers:
            self.optimizers.append(optimizer)
        for group in optimizer.param_groups:
            with dispatch.disabled(self.builder):    # real state tensors, as eager makes them
                rule.init_state(optimizer, group)
            params = [p for p in group["params"] if id(p) in self.grads]   # .grad is not None
            if params:
                self._update(optimizer, rule, group, params)

    def _update(self, optimizer, rule: OptimizerRule, group: dict, params: list) -> None:
        with dispatch.disabled(self.builder):    # real state tensors, as eager makes them
            rule.first_step_state(optimizer, group, params)
        has_state = all(len(optimizer.state[p]) > 0 for p in params)
        state: dict[str, Any] = {key: self._shared_input(optimizer.state[params[0]][key])
                                 for key in rule.shared_keys}
        for key in rule.state_keys(group, has_state):
            state[key] = [optimizer.state[p][key] for p in params]
        new = rule.update(group, params, [self.grads[id(p)] for p in params], state)
        for key, values in new.items():
            for p, value in zip(params, values):
                self.updates.append(((optimizer, p, key), value))

    def _shared_input(self, tensor: Tensor):
        """A group's step count as a graph input, read every call (not a constant: it
        changes each step, and it lives on the host even when the plan runs on CUDA)."""
        found = self.shared_inputs.get(id(tensor))
        if found is None:
            graph = self.builder.graph
            first = next(n for n in graph.nodes if n.op != OpKind.placeholder)
            with graph.inserting_before(first):
                value = self.builder.placeholder(f"state{len(self.shared_inputs)}",
                                                meta_of(tensor))
            found = self.shared_inputs[id(tensor)] = (tensor, value)
        return found[1]

    def zero_grad(self, optimizer, set_to_none: bool = True):
        if self.strict and not set_to_none:
            raise TraceError("opt.zero_grad(set_to_none=False) leaves zero tensors in .grad, "
                             "which a compiled step does not reproduce")
        for group in optimizer.param_groups:
            for p in group["params"]:
                self.grads.pop(id(p), None)
                self.cleared.add(id(p))


def _graph_parameters(graph: Graph, constants: dict) -> list[tuple[Node, Tensor]]:
    """(get_attr node, Parameter) for every trainable Parameter the graph reads."""
    from ..frontend.nn.parameter import Parameter
    found = []
    for node in graph.nodes:
        if node.op == OpKind.get_attr:
            value = constants.get(node.target)
            if isinstance(value, Parameter) and value.requires_grad:
                found.append((node, value))
    return found


def _functionalize_temporaries(nodes: list) -> list[tuple[Node, Any]]:
    """`relu_(t)` -> `relu(t)` where t is a temporary that only the in-place op reads
    (ReLU(inplace=True) after a convolution or BatchNorm, as in torchvision's ResNets),
    the op keeps t's dtype, and t is no view: the functional op computes the same value
    and the gradient sweep can read t. Returns [(t, the in-place op)]."""
    done = []
    for node in nodes:
        op = node.target
        if node.op != OpKind.call_function or not is_op(op) or \
                not op.has_tag(Tag.INPLACE) or op.functional is None:
            continue
        target = node.args[0] if node.args else None
        if not (isinstance(target, Node) and target.op == OpKind.call_function and
                set(target.users) == {node} and not may_alias_input(target)):
            continue
        dtype = target.meta["val"].dtype
        if any(getattr(a.meta.get("val"), "dtype", dtype) != dtype
               for a in node.all_input_nodes):
            continue
        node.target = op.functional
        done.append((target, op))
    return done


def _check_functional_gradient_path(nodes: list, req: set) -> None:
    for node in nodes:
        if node in req and node.op == OpKind.call_function and is_op(node.target) and \
                node.target.has_tag(Tag.INPLACE) and \
                not (isinstance(node.args[0], Node) and node.args[0].op == OpKind.get_attr):
            raise AutogradError(f"ember.compile_train_step: in-place {node.target.name} on "
                                f"the gradient path{where(node)}; a traced step needs "
                                f"out-of-place ops there (e.g. ReLU(inplace=False)), or use "
                                f"compile_train_step(model, loss_fn, optimizer)")


def scheduler_step_refusals() -> list:
    """Patches that stop a trace at an lr scheduler's step(): it advances Python state
    (the epoch count, the next lr) on every call, which a graph traced once would not
    do again, so the caller runs that code eagerly instead (a graph break)."""
    from ..frontend.optim.lr_scheduler import LRScheduler
    return [(cls, "step", _refuse_scheduler_step) for cls in [LRScheduler] +
            _subclasses(LRScheduler) if "step" in cls.__dict__]


def _refuse_scheduler_step(self, *args, **kwargs):
    raise TraceError(f"{type(self).__name__}.step() while traced: an lr scheduler advances "
                     "its epoch and the optimizer's lr in Python on every call, which a "
                     "compiled graph would not repeat; it runs eagerly")


def _subclasses(cls) -> list:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


class _patched:
    """Set attributes for the duration of a trace (the tracing mode), then restore."""

    def __init__(self, patches: list):
        self.patches = patches
        self.saved: list = []

    def __enter__(self):
        for owner, name, fn in self.patches:
            self.saved.append((owner, name, owner.__dict__.get(name, _MISSING)))
            setattr(owner, name, _as_method(fn))
        return self

    def __exit__(self, *exc):
        for owner, name, old in reversed(self.saved):
            if old is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, old)


_MISSING = object()


class _both:
    """Two context managers as one."""

    def __init__(self, first, second):
        self.first, self.second = first, second

    def __enter__(self):
        self.first.__enter__()
        self.second.__enter__()
        return self

    def __exit__(self, *exc):
        self.second.__exit__(*exc)
        self.first.__exit__(*exc)


class _grad_attribute_refused:
    """While a step function is traced for ember.compile, `.grad` has no value yet
    (gradients are symbolic): reading or writing it (gradient clipping, logging) would
    silently see None, so it stops the trace instead."""

    def __enter__(self):
        slot = self.slot = Tensor.__dict__["grad"]

        def refuse():
            raise TraceError("a compiled training step cannot read or set .grad between "
                             "backward() and step() (gradients exist only in the graph; "
                             "e.g. clip_grad_norm_ needs an eager step)")

        def get(tensor):
            if _requires_grad(tensor):
                refuse()
            return slot.__get__(tensor, Tensor)

        def set_(tensor, value):
            if _requires_grad(tensor):
                refuse()
            slot.__set__(tensor, value)
        Tensor.grad = property(get, set_)
        return self

    def __exit__(self, *exc):
        Tensor.grad = self.slot


def _record_detach(value):
    """`t.detach()` on a traced value: the detach op, where graph autograd stops."""
    from ..ir.registry import OPS
    return OPS["detach"](value)


def _refuse_no_grad(context):
    raise TraceError("no_grad() inside a compiled training step: the traced step cannot "
                     "tell which values it must not differentiate")


def _requires_grad(tensor) -> bool:
    """Only tensors that can have gradients are refused (new tensors set .grad = None
    before their requires_grad exists)."""
    try:
        return bool(tensor.requires_grad)
    except AttributeError:
        return False


def _store_grads(params: list, grads, backend) -> None:
    """Leave each parameter's gradient in .grad, as eager's backward() does."""
    from .compile_train_graph import _fresh_tensor
    for param, value in zip(params, grads):
        param.grad = _fresh_tensor(value, backend)


def _as_method(fn):
    def method(self, *args, **kwargs):
        return fn(self, *args, **kwargs)
    return method
