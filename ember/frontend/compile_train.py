"""ember.compile_train_step: a whole training step as one compiled graph.

    step = ember.compile_train_step(model, nn.CrossEntropyLoss(), opt)
    for x, y in batches:
        loss = step(x, y)    # forward + backward + opt.step(), parameters updated in place

is the compiled form of the eager step

    loss = loss_fn(model(x), y); loss.backward(); opt.step(); opt.zero_grad()

A call looks up a plan by its guard (the shapes/dtypes/strides of the arguments, the
model's train/eval mode, the optimizer's hyperparameters and which state it holds); a
new guard compiles a new plan:
1. trace `loss_fn(model(*args[:n]), *args[n:])` with the model's parameters and the
   optimizer's state as placeholders (buffers stay constants: they are read live);
   train-mode BatchNorm's `running_mean.copy_(...)` on a buffer becomes an extra output;
2. differentiate the loss w.r.t. the trainable parameters with the graph autograd
   pass's sweep (`passes.autograd.backprop`, the registry's derivative rules);
3. apply the optimizer's functional update (`optim.functional`) to the symbolic
   parameters, gradients and state: new parameters and new state become outputs.
   Adam's step count is an input, so bias correction is computed per call;
4. run the 'default-training' pipeline (no constant folding: parameters change every
   call) and build the plan with ember.compile's PlanBuilder.

Each call leaves the new parameters, optimizer state and running statistics in the
existing tensors (in place: Parameters keep their identity and storage; update
kernels store straight into them where that is legal, see `in_place_updates`, and the
rest is copied back) and returns the loss. Gradients are not stored in `.grad` (the
step ends with zero_grad()).

The PyTorch-style front door, `compile_train_step(step_fn)` (also a decorator), traces
a whole step function instead (`TracedTrainStep`): while it is traced,
`loss.backward()` on the symbolic loss runs the same sweep over the graph recorded so
far (w.r.t. every trainable Parameter it reads), `opt.step()` records the functional
update, and `opt.zero_grad()` drops the recorded gradients. Parameters and optimizer
state stay graph constants there (read live, never folded) and are updated in place.
Guards: the arguments and the stepped optimizers' hyperparameters and state. Limits of
that door: code between backward() and step() cannot read `.grad` (it stays None);
the model's train/eval mode is not guarded (compile a step per mode); BatchNorm's
num_batches_tracked counts only the traced call; no in-place ops on the gradient path.

Differences from the eager step, by design: Adam's bias corrections are computed in
float32 from the step tensor (torch's capturable=True math) instead of in float64;
parameters that do not reach the loss get zero gradients (eager skips them); one
step count per parameter group. Not supported: BatchNorm with momentum=None (its
factor depends on a counter), step(closure), optimizers other than SGD/Adam/AdamW.
"""
from __future__ import annotations

import operator
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..ir import autodiff, dispatch
from ..ir.errors import AutogradError, EmberError, TraceError
from ..ir.fused import is_fused
from ..ir.graph import Graph, Node, OpKind
from ..ir.meta import meta_of
from ..ir.registry import Tag, is_op
from ..ir.symbolic import GraphBuilder, SymbolicTensor, build_graph
from ..passes import PassContext, register_pipeline, run_passes
from ..passes.autograd import (FORWARD, parameters_replaced, backprop, copy_functional,
                               requires_grad_nodes, symbolic)
from .autograd import grad_mode
from .compile import BACKENDS, CompileStats, PlanBuilder, count_ops, guard_key, wrap_results
from .optim import functional as F
from .tensor import Tensor

# Training graphs keep parameters as inputs, so there is nothing to fold into them;
# layout conversions are left out (the update writes parameters in their own layout).
register_pipeline("default-training", ["simplify", "decompose", "simplify", "cse", "dce",
                                       "fuse", "memplan"])


def compile_train_step(model_or_step, loss_fn: Callable | None = None, optimizer=None, *,
                       backend: str = "llvm", pipeline: str = "default-training",
                       model_inputs: int = 1, options: dict | None = None):
    """Compile a whole training step into one plan; see the module docstring.

    `compile_train_step(model, loss_fn, optimizer)`: the step
    `loss_fn(model(*args[:model_inputs]), *args[model_inputs:])`, backward, optimizer step.
    `compile_train_step(step_fn)`: a PyTorch-style step function (forward, `.backward()`,
    `opt.step()`, `opt.zero_grad()`, return the loss), traced whole."""
    if backend not in BACKENDS:
        raise EmberError(f"ember.compile_train_step: unknown backend {backend!r}; expected "
                         f"one of {list(BACKENDS)}")
    if loss_fn is None and optimizer is None:
        return TracedTrainStep(model_or_step, pipeline, dict(options or {}))
    if loss_fn is None or optimizer is None:
        raise EmberError("ember.compile_train_step: pass a model, a loss_fn and an optimizer, "
                         "or a step function alone")
    rule = _rule_for(optimizer)
    return CompiledTrainStep(model_or_step, loss_fn, optimizer, rule, pipeline, model_inputs,
                             dict(options or {}))


# --- optimizer rules: which state a step reads and how it updates -------------------------
@dataclass
class OptimizerRule:
    """How one optimizer class becomes graph inputs, a functional update and write-backs.

    `state_keys(group, has_state)`: per-parameter state fed to the graph, in order;
    `shared_keys`: state that is one value per group (a step count), fed once;
    `init_state(optimizer, group)`: create state eagerly as the first eager step would;
    `update(group, params, grads, state)`: {key: new values per parameter}, 'params'
    for the parameters themselves; every other key is written to optimizer.state."""
    state_keys: Callable[[dict, bool], list[str]]
    shared_keys: tuple[str, ...]
    init_state: Callable[[Any, dict], None]
    update: Callable[[dict, list, list, dict], dict]


def _sgd_state_keys(group: dict, has_state: bool) -> list[str]:
    return ["momentum_buffer"] if group["momentum"] != 0 and has_state else []


def _sgd_update(group: dict, params, grads, state) -> dict:
    out = F.sgd(params, grads, state.get("momentum_buffer", []),
                weight_decay=group["weight_decay"], momentum=group["momentum"],
                lr=group["lr"], dampening=group["dampening"], nesterov=group["nesterov"],
                maximize=group["maximize"])
    new = {"params": out.params}
    if group["momentum"] != 0:
        new["momentum_buffer"] = out.momentum_buffers
    return new


def _adam_state_keys(group: dict, has_state: bool) -> list[str]:
    return ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if group["amsgrad"] else [])


def _adam_init_state(optimizer, group: dict) -> None:
    from .optim.optimizers import _step_tensor, _zeros_like
    for p in group["params"]:
        st = optimizer.state[p]
        if len(st) == 0:
            st["step"] = _step_tensor()
            st["exp_avg"] = _zeros_like(p)
            st["exp_avg_sq"] = _zeros_like(p)
            if group["amsgrad"]:
                st["max_exp_avg_sq"] = _zeros_like(p)


def _adam_update(decoupled: bool):
    def update(group: dict, params, grads, state) -> dict:
        fn = F.adamw if decoupled else F.adam
        beta1, beta2 = group["betas"]
        steps = [state["step"]] * len(params)
        out = fn(params, grads, state["exp_avg"], state["exp_avg_sq"],
                 state.get("max_exp_avg_sq", []), steps, amsgrad=group["amsgrad"],
                 beta1=beta1, beta2=beta2, lr=group["lr"], weight_decay=group["weight_decay"],
                 eps=group["eps"], maximize=group["maximize"])
        new = {"params": out.params, "exp_avg": out.exp_avgs, "exp_avg_sq": out.exp_avg_sqs,
               "step": out.state_steps}
        if group["amsgrad"]:
            new["max_exp_avg_sq"] = out.max_exp_avg_sqs
        return new
    return update


def _no_init(optimizer, group: dict) -> None:
    return None


def _rules() -> dict:
    from .optim.optimizers import SGD, Adam, AdamW
    return {
        SGD: OptimizerRule(_sgd_state_keys, (), _no_init, _sgd_update),
        Adam: OptimizerRule(_adam_state_keys, ("step",), _adam_init_state, _adam_update(False)),
        AdamW: OptimizerRule(_adam_state_keys, ("step",), _adam_init_state, _adam_update(True)),
    }


def _rule_for(optimizer) -> OptimizerRule:
    rule = _rules().get(type(optimizer))
    if rule is None:
        names = sorted(cls.__name__ for cls in _rules())
        raise EmberError(f"ember.compile_train_step: no functional update for optimizer "
                         f"{type(optimizer).__name__}; supported: {names}")
    return rule


# --- the compiled step ------------------------------------------------------------------------
@dataclass
class StepLayout:
    """Where each graph input comes from and each output goes, fixed per plan."""
    params: list[Tensor]                 # placeholders 0..n-1 (all model parameters)
    state_inputs: list[tuple]            # (param or group index, key) per state placeholder
    write_backs: list[tuple]             # (optimizer, param, key) per updated value
    buffers: list[Tensor]                # running statistics the step overwrites
    constants: dict = field(default_factory=dict)   # a traced step's get_attr values


@dataclass
class TrainPlan:
    plan: Any
    stats: CompileStats
    graph: Graph
    layout: StepLayout
    bindings: list[tuple[int, int]]      # (plan slot, write-back index): stored in place


class CompiledTrainStep:
    def __init__(self, model, loss_fn, optimizer, rule: OptimizerRule, pipeline: str,
                 model_inputs: int, options: dict):
        self.model, self.loss_fn, self.optimizer, self.rule = model, loss_fn, optimizer, rule
        self.pipeline, self.model_inputs, self.options = pipeline, model_inputs, options
        self.plans: dict[tuple, TrainPlan] = {}

    def __call__(self, *args) -> Tensor:
        for group in self.optimizer.param_groups:
            self.rule.init_state(self.optimizer, group)
        key = self._guard(args)
        entry = self.plans.get(key)
        if entry is None:
            entry = self.plans[key] = self._compile(args)
        loss, updates, buffers = _run(entry, self._input_arrays(entry.layout, args))
        _write_back(entry.layout, updates, buffers)
        _count_batchnorm_batches(self.model)
        return Tensor._adopt(loss)

    # -- introspection -------------------------------------------------------------------
    @property
    def last(self) -> TrainPlan:
        return list(self.plans.values())[-1]

    @property
    def stats(self) -> CompileStats:
        return self.last.stats

    @property
    def graph(self) -> Graph:
        return self.last.graph

    # -- guards and data movement -----------------------------------------------------------
    def _guard(self, args) -> tuple:
        params = tuple((tuple(p.shape), p.dtype.name, p.requires_grad)
                       for p in self.model.parameters())
        return (guard_key(args), bool(self.model.training), _optimizer_guard(self.optimizer),
                params)

    def _input_arrays(self, layout: StepLayout, args) -> list[np.ndarray]:
        arrays = [p._array for p in layout.params]
        for source, key in layout.state_inputs:
            if isinstance(source, int):         # shared per group: the first parameter's
                arrays.append(_shared_state(self.optimizer, source, key))
            else:
                arrays.append(self.optimizer.state[source][key]._array)
        return arrays + [a._array for a in args if isinstance(a, Tensor)]

    # -- compiling ----------------------------------------------------------------------------
    def _compile(self, args) -> TrainPlan:
        start = time.perf_counter()
        graph, constants, layout = self._trace(args)
        return _compile_graph(graph, constants, layout, self.pipeline, self.options, start)

    def _trace(self, args) -> tuple[Graph, dict, StepLayout]:
        _check_batchnorms(self.model)
        with _buffers_restored(self.model), grad_mode.no_grad():
            forward, constants, layout = self._trace_forward(args)
        buffer_updates = _extract_buffer_updates(forward, constants)
        layout.buffers = [constants[name] for name, _ in buffer_updates]
        graph, extra = self._build_step_graph(forward, buffer_updates, layout)
        constants.update(extra)
        return graph, constants, layout

    def _trace_forward(self, args):
        params = list(self.model.parameters())
        state_metas, state_inputs = self._state_inputs(params)
        tensor_args = [a for a in args if isinstance(a, Tensor)]
        metas = [meta_of(p) for p in params] + state_metas + [meta_of(a) for a in tensor_args]
        names = [f"param{i}" for i in range(len(params))] + \
            [f"state{i}" for i in range(len(state_metas))] + \
            [f"arg{i}" for i in range(len(tensor_args))]
        n_leading = len(params) + len(state_metas)

        def run(*values):
            full = _substitute_tensors(args, values[n_leading:])
            with parameters_replaced(self.model, params, values[:len(params)]):
                output = self.model(*full[:self.model_inputs])
                return self.loss_fn(output, *full[self.model_inputs:])
        graph, constants = build_graph(run, metas, names)
        _check_scalar_loss(graph)
        return graph, constants, StepLayout(params, state_inputs, [], [])

    def _state_inputs(self, params: list) -> tuple[list, list]:
        metas, sources = [], []
        for g, group in enumerate(self.optimizer.param_groups):
            has_state = all(len(self.optimizer.state[p]) > 0 for p in group["params"])
            for key in self.rule.shared_keys:
                metas.append(meta_of(self.optimizer.state[group["params"][0]][key]))
                sources.append((g, key))
            for key in self.rule.state_keys(group, has_state):
                for p in group["params"]:
                    metas.append(meta_of(self.optimizer.state[p][key]))
                    sources.append((p, key))
        return metas, sources

    def _build_step_graph(self, forward: Graph, buffer_updates, layout: StepLayout):
        """forward (loss, new buffers) -> (loss, updated values, new buffers)."""
        builder = GraphBuilder(record_locations=False)
        with builder:
            env, (loss, new_buffers) = copy_functional(forward, builder)
            placeholders = [env[p] for p in forward.placeholders]
            grads = self._gradients(builder, loss, placeholders[:len(layout.params)], layout)
            updates = self._update(placeholders, grads, layout)
            builder.output((loss, tuple(updates), tuple(new_buffers)))
        return builder.graph, builder.constants

    def _gradients(self, builder: GraphBuilder, loss: Node, param_nodes: list,
                   layout: StepLayout) -> dict:
        """{param: its gradient (symbolic)} for every parameter the optimizer trains."""
        trained = {id(p) for g in self.optimizer.param_groups for p in g["params"]}
        wrt = [n for p, n in zip(layout.params, param_nodes)
               if id(p) in trained and p.requires_grad]
        forward = [n for n in builder.graph.nodes if n.meta.get("phase") == FORWARD]
        req = requires_grad_nodes(forward, wrt)
        seed = autodiff.ones_like_value(symbolic(loss))
        found = backprop(forward, req, {loss: seed})
        by_node = {}
        for node in wrt:
            g = found.get(node)
            meta = node.meta["val"]
            by_node[node] = g if g is not None else autodiff.zeros(meta.shape, meta.dtype)
        return {id(p): by_node[n] for p, n in zip(layout.params, param_nodes) if n in by_node}

    def _update(self, placeholders: list, grads: dict, layout: StepLayout) -> list:
        """Run each group's functional update on symbolic values; fills layout.write_backs."""
        n_params = len(layout.params)
        param_value = {id(p): symbolic(n) for p, n in zip(layout.params, placeholders)}
        state_values = [symbolic(n) for n in placeholders[n_params:n_params +
                                                           len(layout.state_inputs)]]
        outputs = []
        for g, group in enumerate(self.optimizer.param_groups):
            params = [p for p in group["params"] if id(p) in grads]
            if len(params) != len(group["params"]):
                missing = len(group["params"]) - len(params)
                raise EmberError(f"ember.compile_train_step: {missing} parameter(s) of "
                                 f"optimizer group {g} are not trainable parameters of the "
                                 f"model (requires_grad=False or not in model.parameters())")
            state = _group_state(group, g, layout.state_inputs, state_values)
            new = self.rule.update(group, [param_value[id(p)] for p in params],
                                   [grads[id(p)] for p in params], state)
            for key, values in new.items():
                for p, value in zip(params, values):
                    layout.write_backs.append((self.optimizer, p, key))
                    outputs.append(value)
        return outputs


# --- the PyTorch-style front door: a whole step function, traced ------------------------------
class TracedTrainStep:
    """`def step(x, y): loss = ...; loss.backward(); opt.step(); opt.zero_grad(); return
    loss`, compiled whole. While it is traced, `.backward()` on a symbolic loss runs the
    graph autograd sweep (gradients of the Parameters the graph reads) and `opt.step()`
    records the optimizer's functional update; parameters and optimizer state stay
    graph constants, read live by the plan (never folded) and updated in place."""

    def __init__(self, fn: Callable, pipeline: str, options: dict):
        self.fn, self.pipeline, self.options = fn, pipeline, options
        self.plans: dict[tuple, TrainPlan] = {}
        self.optimizers: list = []          # those the traced step called .step() on

    def __call__(self, *args):
        for optimizer in self.optimizers:
            rule = _rule_for(optimizer)
            for g, group in enumerate(optimizer.param_groups):
                rule.init_state(optimizer, group)
                for key in rule.shared_keys:
                    _shared_state(optimizer, g, key)
        key = (guard_key(args), tuple(_optimizer_guard(o) for o in self.optimizers))
        entry = self.plans.get(key)
        if entry is None:
            entry = self._compile(args)
            key = (guard_key(args), tuple(_optimizer_guard(o) for o in self.optimizers))
            self.plans[key] = entry
        output, updates, buffers = _run(entry, [a._array for a in args if isinstance(a, Tensor)])
        _write_back(entry.layout, updates, buffers)
        return wrap_results(output)

    last = property(lambda self: list(self.plans.values())[-1])
    stats = property(lambda self: self.last.stats)
    graph = property(lambda self: self.last.graph)

    def _compile(self, args) -> TrainPlan:
        start = time.perf_counter()
        builder = GraphBuilder()
        recorder = _StepRecorder(builder)
        with builder, grad_mode.no_grad(), recorder.recording():
            inputs = [builder.placeholder(f"arg{i}", meta_of(a))
                      for i, a in enumerate(args) if isinstance(a, Tensor)]
            output = self.fn(*_substitute_tensors(args, inputs))
            builder.output((output, tuple(value for _, value in recorder.updates)))
        if not recorder.updates:
            raise TraceError("ember.compile_train_step: the step function updated nothing "
                             "(no opt.step() after loss.backward() while it was traced)")
        self.optimizers = recorder.optimizers
        graph, constants = builder.graph, builder.constants
        buffer_updates = _extract_buffer_updates(graph, constants)
        (output, updates), buffers = graph.output_node.args[0]
        graph.output_node.args = ((output, updates, buffers),)
        layout = StepLayout([], [], [target for target, _ in recorder.updates],
                            [constants[name] for name, _ in buffer_updates], constants)
        return _compile_graph(graph, constants, layout, self.pipeline, self.options, start)


class _StepRecorder:
    """What `.backward()` and `opt.step()` do while a step function is traced."""

    def __init__(self, builder: GraphBuilder):
        self.builder = builder
        self.grads: dict[int, Any] = {}      # id(Parameter) -> symbolic gradient
        self.updates: list[tuple] = []       # ((optimizer, param, key), new symbolic value)
        self.optimizers: list = []

    def recording(self):
        """Route SymbolicTensor.backward and every optimizer's step/zero_grad here."""
        from .optim.optimizer import Optimizer
        patches = [(SymbolicTensor, "backward", self.backward)]
        for cls in _subclasses(Optimizer):
            patches.append((cls, "step", self.step))
        patches.append((Optimizer, "zero_grad", self.zero_grad))
        return _patched(patches)

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
        req = requires_grad_nodes(forward, sources)
        _check_functional_gradient_path(forward, req)
        found = backprop(forward, req, {loss.node: autodiff.ones_like_value(loss)})
        for node, param in sources.items():
            g = found.get(node)
            if g is not None:
                have = self.grads.get(id(param))
                self.grads[id(param)] = g if have is None else have + g

    def step(self, optimizer, closure=None):
        if closure is not None:
            raise TraceError("ember.compile_train_step: opt.step(closure) is not supported")
        rule = _rule_for(optimizer)
        if optimizer not in self.optimizers:
            self.optimizers.append(optimizer)
        for group in optimizer.param_groups:
            with dispatch.disabled(self.builder):    # real state tensors, as eager makes them
                rule.init_state(optimizer, group)
            params = [p for p in group["params"] if id(p) in self.grads]   # .grad is not None
            if params:
                self._update(optimizer, rule, group, params)

    def _update(self, optimizer, rule: OptimizerRule, group: dict, params: list) -> None:
        has_state = all(len(optimizer.state[p]) > 0 for p in params)
        state: dict[str, Any] = {key: optimizer.state[params[0]][key]
                                 for key in rule.shared_keys}
        for key in rule.state_keys(group, has_state):
            state[key] = [optimizer.state[p][key] for p in params]
        new = rule.update(group, params, [self.grads[id(p)] for p in params], state)
        for key, values in new.items():
            for p, value in zip(params, values):
                self.updates.append(((optimizer, p, key), value))

    def zero_grad(self, optimizer, set_to_none: bool = True):
        for group in optimizer.param_groups:
            for p in group["params"]:
                self.grads.pop(id(p), None)


def _graph_parameters(graph: Graph, constants: dict) -> list[tuple[Node, Tensor]]:
    """(get_attr node, Parameter) for every trainable Parameter the graph reads."""
    from .nn.parameter import Parameter
    found = []
    for node in graph.nodes:
        if node.op == OpKind.get_attr:
            value = constants.get(node.target)
            if isinstance(value, Parameter) and value.requires_grad:
                found.append((node, value))
    return found


def _check_functional_gradient_path(nodes: list, req: set) -> None:
    for node in nodes:
        if node in req and node.op == OpKind.call_function and is_op(node.target) and \
                node.target.has_tag(Tag.INPLACE) and \
                not (isinstance(node.args[0], Node) and node.args[0].op == OpKind.get_attr):
            raise AutogradError(f"ember.compile_train_step: in-place {node.target.name} on "
                                f"the gradient path{_where(node)}; a traced step needs "
                                f"out-of-place ops there (e.g. ReLU(inplace=False)), or use "
                                f"compile_train_step(model, loss_fn, optimizer)")


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


def _as_method(fn):
    def method(self, *args, **kwargs):
        return fn(self, *args, **kwargs)
    return method


def _shared_state(optimizer, group_index: int, key: str) -> np.ndarray:
    """The one value of `key` (a step count) that a group's parameters share."""
    group = optimizer.param_groups[group_index]
    values = [optimizer.state[p][key]._array for p in group["params"]]
    if any(not np.array_equal(v, values[0]) for v in values[1:]):
        raise EmberError(f"ember.compile_train_step: the parameters of group {group_index} "
                         f"have different '{key}' values; a compiled step keeps one per group")
    return values[0]


def _optimizer_guard(optimizer) -> tuple:
    """Each group's hyperparameters (read at compile time) and whether its state exists."""
    groups = []
    for group in optimizer.param_groups:
        hyper = tuple(sorted((k, repr(v)) for k, v in group.items() if k != "params"))
        has_state = all(len(optimizer.state[p]) > 0 for p in group["params"])
        groups.append((hyper, has_state))
    return tuple(groups)


def _compile_graph(graph: Graph, constants: dict, layout: StepLayout, pipeline: str,
                   options: dict, start: float) -> TrainPlan:
    stats = CompileStats(original_ops=count_ops(graph))
    ctx = PassContext(constants=dict(constants), options=dict(options), inference=False)
    run_passes(graph, pipeline, ctx)
    plan, bindings = _build_plan(graph, ctx.constants, stats, layout)
    stats.seconds = time.perf_counter() - start
    return TrainPlan(plan, stats, graph, layout, bindings)


def _build_plan(graph: Graph, constants: dict, stats: CompileStats, layout: StepLayout):
    """The plan, with in-place updates bound where legal; if a group chosen for one did
    not become a kernel with plan-owned outputs (it fell back to eager), rebuild with
    every update copied back instead."""
    all_outputs = graph.output_node.args
    in_place = in_place_updates(graph, _update_sources(graph, layout))
    builder = PlanBuilder(graph, constants, stats)
    plan = builder.build()
    bindings = [(_slot_of(builder, group, index), position)
                for group, index, position in in_place]
    if all(slot in _owned_kernel_slots(plan) for slot, _ in bindings):
        return plan, bindings
    graph.output_node.args = all_outputs
    stats.__init__(original_ops=stats.original_ops)
    return PlanBuilder(graph, constants, stats).build(), []


def _slot_of(builder: PlanBuilder, group: Node, index: int) -> int:
    slot = builder.slot[group]
    return slot if isinstance(slot, int) else slot[index]


def _owned_kernel_slots(plan) -> set[int]:
    return {slot for step in plan.steps if step.kernel
            for slot, spec in zip(step.outputs, step.out_specs) if spec.persistent}


def _group_state(group: dict, g: int, sources: list, values: list) -> dict:
    """{key: symbolic value (shared) or list of values per parameter} for one group."""
    state: dict[str, Any] = {}
    members = {id(p) for p in group["params"]}
    for (source, key), value in zip(sources, values):
        if isinstance(source, int):
            if source == g:
                state[key] = value
        elif id(source) in members:
            state.setdefault(key, []).append(value)
    return state


# --- tracing helpers ---------------------------------------------------------------------------
def _substitute_tensors(args, tensors) -> list:
    values = iter(tensors)
    return [next(values) if isinstance(a, Tensor) else a for a in args]


def _check_scalar_loss(graph: Graph) -> None:
    out = graph.output_node.args[0]
    meta = out.meta.get("val") if isinstance(out, Node) else None
    if meta is None or not hasattr(meta, "shape") or meta.numel() != 1 or \
            not meta.dtype.is_floating_point:
        raise TraceError(f"ember.compile_train_step: loss_fn must return a one-element "
                         f"floating tensor, got {meta if meta is not None else out!r}")


def _extract_buffer_updates(graph: Graph, constants: dict) -> list[tuple[str, Node]]:
    """`copy_(buffer, new)` on a constant -> an extra graph output; the output becomes
    (loss, (new buffer values...)). Returns [(constant name, new value node)]."""
    updates = []
    for node in list(graph.nodes):
        if not (node.op == OpKind.call_function and is_op(node.target) and
                node.target.has_tag(Tag.INPLACE)):
            continue
        target, *rest = node.args
        if not (isinstance(target, Node) and target.op == OpKind.get_attr):
            continue
        if node.target.name != "copy_" or target.meta["val"].dtype != rest[0].meta["val"].dtype:
            raise TraceError(f"ember.compile_train_step: {node.target.name} updates module "
                             f"state {target.target} in place{_where(node)}; only a same-dtype "
                             f"copy_ (running statistics) can become an output of the step")
        updates.append((str(target.target), rest[0]))
        node.replace_all_uses_with(rest[0])
        graph.erase_node(node)
    output = graph.output_node
    output.args = ((output.args[0], tuple(new for _, new in updates)),)
    return updates


def _where(node: Node) -> str:
    loc = node.meta.get("loc")
    return f" (at {loc})" if loc else ""


class _buffers_restored:
    """Tracing runs module code once; undo what it wrote to buffers outside of ops
    (BatchNorm's num_batches_tracked counter), so the trace has no side effects."""

    def __init__(self, model):
        self.saved = [(b, b._array.copy()) for b in _buffers(model)]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for buffer, value in self.saved:
            if not np.array_equal(buffer._array, value):
                np.copyto(buffer._array, value)


def _buffers(model) -> list:
    named = getattr(model, "buffers", None)
    return [b for b in named() if b is not None] if callable(named) else []


def _training_batchnorms(model) -> list:
    return [m for m in (model.modules() if hasattr(model, "modules") else ())
            if getattr(m, "num_batches_tracked", None) is not None and m.training and
            getattr(m, "track_running_stats", False)]


def _check_batchnorms(model) -> None:
    for module in _training_batchnorms(model):
        if module.momentum is None:
            raise EmberError(f"ember.compile_train_step: {module!r} has momentum=None (a "
                             f"cumulative average whose factor changes every step); "
                             f"set a momentum to compile its training step")


def _count_batchnorm_batches(model) -> None:
    """The compiled step does what train-mode BatchNorm.forward does to its counter."""
    for module in _training_batchnorms(model):
        module.num_batches_tracked._array += 1
        module.num_batches_tracked._bump_version()


def _run(entry: TrainPlan, inputs: list):
    """Run the plan with its in-place outputs bound to the tensors' current buffers."""
    for slot, position in entry.bindings:
        entry.plan.bind(slot, _target_tensor(*entry.layout.write_backs[position])._array)
    return entry.plan.run(inputs)


def _target_tensor(optimizer, param, key: str):
    """The tensor an update replaces: the parameter, or its optimizer state (None when
    this step creates it)."""
    return param if key == "params" else optimizer.state[param].get(key)


def _write_back(layout: StepLayout, updates, buffers) -> None:
    for (optimizer, param, key), value in zip(layout.write_backs, updates):
        target = _target_tensor(optimizer, param, key)
        if value is None:                       # the kernel stored it in place
            target._bump_version()
        elif target is not None:
            _copy_into(target, value)
        else:                                   # state the first step creates (SGD momentum)
            optimizer.state[param][key] = Tensor._adopt(np.array(value))
    for buffer, value in zip(layout.buffers, buffers):
        _copy_into(buffer, value)


def _copy_into(dst: Tensor, value: np.ndarray) -> None:
    np.copyto(dst._array, value, casting="unsafe")
    dst._bump_version()


# --- in-place updates: kernels that write straight into the tensors they replace -----------
def _update_sources(graph: Graph, layout: StepLayout) -> list[Node | None]:
    """Per updated value, the graph input (placeholder, or constant of a traced step)
    holding the tensor it replaces; None where there is none (state a step creates)."""
    placeholders = graph.placeholders
    param_index = {id(p): i for i, p in enumerate(layout.params)}
    state_index = {(id(src), key): len(layout.params) + i
                   for i, (src, key) in enumerate(layout.state_inputs)
                   if not isinstance(src, int)}
    constant_of = {id(layout.constants[n.target]): n for n in graph.nodes
                   if n.op == OpKind.get_attr and n.target in layout.constants}
    sources = []
    for optimizer, p, key in layout.write_backs:
        index = param_index.get(id(p)) if key == "params" else state_index.get((id(p), key))
        if index is not None:
            sources.append(placeholders[index])
        else:
            target = _target_tensor(optimizer, p, key)
            sources.append(constant_of.get(id(target)) if target is not None else None)
    return sources


def in_place_updates(graph: Graph, sources: list) -> list[tuple[Node, int, int]]:
    """Find updates a fused kernel can store straight into the input (`sources`: one
    node or None per update) it replaces, and drop them from the graph's output;
    returns (group node, output index, position among the updates).

    Legal when (1) the group reads that input only through pointwise ops of the
    store's shape and layout, so element i is read before element i is written, by the
    same iteration; (2) every other reader of the input, or of a view of it, runs
    before the group; (3) no other argument of the group may alias it. A group is
    bound all-or-nothing: a group with a result that stays a result allocates fresh
    outputs each call, so none of its outputs can be bound."""
    output = graph.output_node
    loss, updates, buffers = output.args[0]
    order = {n: i for i, n in enumerate(graph.nodes)}
    candidates: dict[Node, list[tuple[int, int]]] = {}
    for position, (value, source) in enumerate(zip(updates, sources)):
        found = _group_output(value) if source is not None else None
        if found is not None and _can_write_into(found, source, order):
            candidates.setdefault(found[0], []).append((position, found[1]))
    bound, kept = [], list(updates)
    for group, entries in candidates.items():
        if _results_of(group, updates) != len(entries) or \
                _results_of(group, (loss, *buffers)):
            continue
        for position, index in entries:
            kept[position] = None
            bound.append((group, index, position))
    output.args = ((loss, tuple(kept), buffers),)
    return bound


def _results_of(group: Node, values) -> int:
    """How many of `values` are outputs of `group`."""
    return sum(1 for v in values if (_group_output(v) or (None,))[0] is group)


def _group_output(value) -> tuple[Node, int] | None:
    """(fused group node, output index) when `value` is a fused group's output."""
    if not isinstance(value, Node) or value.op != OpKind.call_function:
        return None
    if value.target is operator.getitem and is_fused(value.args[0].target):
        return value.args[0], value.args[1]
    if is_fused(value.target) and value.target.n_outputs == 1:
        return value, 0
    return None


def _can_write_into(found: tuple[Node, int], source: Node, order: dict) -> bool:
    group_node, index = found
    group = group_node.target
    out_meta = group.graph.output_node.args[0]
    out_meta = (out_meta[index] if isinstance(out_meta, (tuple, list)) else out_meta)
    out_meta = out_meta.meta["val"]
    if group.kind not in ("pointwise", "epilogue") or not _same_layout(source, out_meta):
        return False
    aliases = _aliases(source)
    if [a for a in group_node.args if a in aliases] != [source]:
        return False
    inner = group.graph.placeholders[list(group_node.args).index(source)]
    if not all(_is_pointwise(u) and u.meta["val"].shape == out_meta.shape
               for u in inner.users):
        return False
    readers = {u for a in aliases for u in a.users} - {group_node}
    return all(order[r] < order[group_node] for r in readers)


def _aliases(source: Node) -> set[Node]:
    """`source` and every value that may share its storage: outputs of nodes that are
    not kernels (views, eager fallbacks), transitively. Kernels write fresh buffers; a
    group of views alone might run eagerly and return a view, so it counts as one."""
    found, todo = {source}, [source]
    while todo:
        for user in todo.pop().users:
            if user.op == OpKind.call_function and user not in found and \
                    not _computes_fresh_values(user):
                found.add(user)
                todo.append(user)
    return found


def _computes_fresh_values(node: Node) -> bool:
    return is_fused(node.target) and any(
        inner.op == OpKind.call_function and is_op(inner.target) and
        Tag.VIEW not in inner.target.tags for inner in node.target.graph.nodes)


def _is_pointwise(node: Node) -> bool:
    return node.op == OpKind.call_function and is_op(node.target) and \
        Tag.POINTWISE in node.target.tags and Tag.INPLACE not in node.target.tags


def _same_layout(source: Node, meta) -> bool:
    have = source.meta.get("val")
    return have is not None and tuple(have.shape) == tuple(meta.shape) and \
        have.dtype == meta.dtype and tuple(have.strides) == tuple(meta.strides)


__all__ = ["compile_train_step", "CompiledTrainStep", "OptimizerRule"]
