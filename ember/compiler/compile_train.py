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
4. run the 'default-training' pipeline (its folding reads no parameter or state: it
   computes only what depends on no input, such as the class indices of the decomposed
   cross entropy and the loss seed) and build the plan with ember.compile's PlanBuilder.
   On the CPU the plan runs, from its second call, through the whole-plan native entry
   point (compiler/native_plan.py), as inference plans do: one foreign call per step,
   the updates stored straight into the parameters and optimizer state.

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
that door: code between backward() and step() cannot read `.grad` (reading or setting
it raises a TraceError: gradient clipping needs an eager step);
the model's train/eval mode is not guarded (compile a step per mode); BatchNorm's
num_batches_tracked counts only the traced call; no in-place ops on the gradient path.

Differences from the eager step, by design: Adam's bias corrections are computed in
float32 from the step tensor (torch's capturable=True math) instead of in float64;
parameters that do not reach the loss get zero gradients (eager skips them); one
step count per parameter group. Not supported: BatchNorm with momentum=None (its
factor depends on a counter), step(closure), optimizers other than SGD/Adam/AdamW.
"""
from __future__ import annotations

import time
from typing import Callable

from ..ir import autocast, autodiff, compile_times
from ..ir.errors import EmberError
from ..ir.graph import Graph, Node
from ..ir.meta import meta_of
from ..ir.symbolic import GraphBuilder, build_graph
from ..passes.autograd import (FORWARD, backprop, copy_functional, parameters_replaced,
                               requires_grad_nodes, symbolic)
from ..frontend.autograd import grad_mode
from .compile import COMPILE_BACKENDS, CompileStats, backend_compiling, guard_key
from .compile_train_graph import (StepLayout, TrainPlan, batchnorm_modules, buffers_restored,
                                  check_batchnorms,
                                  check_scalar_loss, compile_step_graph,
                                  count_batchnorm_batches, extract_buffer_updates, run_step,
                                  substitute_tensors, update_targets, write_back)
from .compile_train_rules import (OptimizerRule, group_state, optimizer_guard, rule_for,
                                  shared_state)
from .compile_train_traced import TracedTrainStep
from ..frontend.tensor import Tensor


def compile_train_step(model_or_step=None, loss_fn: Callable | None = None, optimizer=None,
                       *, backend: str = "llvm", pipeline: str = "default-training",
                       model_inputs: int = 1, options: dict | None = None):
    """Compile a whole training step into one plan; see the module docstring.

    `compile_train_step(model, loss_fn, optimizer)`: the step
    `loss_fn(model(*args[:model_inputs]), *args[model_inputs:])`, backward, optimizer step.
    `compile_train_step(step_fn)`: a PyTorch-style step function (forward, `.backward()`,
    `opt.step()`, `opt.zero_grad()`, return the loss), traced whole; as a decorator
    `@ember.compile_train_step` or `@ember.compile_train_step(backend="triton")`.
    `backend`: "llvm" (the CPU) or "triton" (CUDA: the model's parameters, the
    optimizer's state and the tensor arguments on the GPU)."""
    if backend not in COMPILE_BACKENDS:
        raise EmberError(f"ember.compile_train_step: unknown backend {backend!r}; expected "
                         f"one of {list(COMPILE_BACKENDS)}")
    options = dict(options or {})
    if model_or_step is None:
        return lambda fn: compile_train_step(fn, backend=backend, pipeline=pipeline,
                                             options=options)
    if loss_fn is None and optimizer is None:
        return TracedTrainStep(model_or_step, COMPILE_BACKENDS[backend](), pipeline, options)
    if loss_fn is None or optimizer is None:
        raise EmberError("ember.compile_train_step: pass a model, a loss_fn and an optimizer, "
                         "or a step function alone")
    rule = rule_for(optimizer)
    return CompiledTrainStep(model_or_step, loss_fn, optimizer, rule, COMPILE_BACKENDS[backend](),
                             pipeline, model_inputs, options)


class CompiledTrainStep:
    """`loss_fn(model(...), ...)`, backward and `optimizer.step()` as one plan per guard
    (see the module docstring); `backend` is a compile backend object."""

    def __init__(self, model, loss_fn, optimizer, rule: OptimizerRule, backend, pipeline: str,
                 model_inputs: int, options: dict):
        self.model, self.loss_fn, self.optimizer, self.rule = model, loss_fn, optimizer, rule
        self.backend = backend
        self.pipeline, self.model_inputs, self.options = pipeline, model_inputs, options
        self.plans: dict[tuple, TrainPlan] = {}
        self.calls = 0

    def __call__(self, *args) -> Tensor:
        self.calls += 1
        if self.calls > 2 or not compile_times.enabled():
            return self._call(args)
        with compile_times.call(f"compile_train_step call {self.calls}",
                                getattr(self.backend, "synchronize", None)):
            return self._call(args)

    def _call(self, args: tuple) -> Tensor:
        between = getattr(self.backend, "between_calls", None)
        if between is not None:         # CUDA: choices a compile left to tune (cudnn_conv)
            between()
        for group in self.optimizer.param_groups:
            self.rule.init_state(self.optimizer, group)
            self.rule.first_step_state(self.optimizer, group,
                                       [p for p in group["params"] if p.requires_grad])
        key = self._guard(args)
        entry = self.plans.get(key)
        if entry is None:
            entry = self.plans[key] = self._compile(args)
        targets = update_targets(entry.layout)
        with compile_times.stage("run (the rest of the step's run)"):
            loss, updates, buffers = run_step(entry, self._inputs(entry.layout, args),
                                              self.backend, targets)
            write_back(entry.layout, updates, buffers, self.backend, targets)
        count_batchnorm_batches(self.model, entry.layout.batchnorms,
                                entry.layout.batch_counts)
        return self.backend.wrap(loss)

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
        params = tuple((tuple(p.shape), p.stride(), p.dtype.name, p.requires_grad)
                       for p in self.model.parameters())
        return (guard_key(args), bool(self.model.training), optimizer_guard(self.optimizer),
                params)

    def _inputs(self, layout: StepLayout, args) -> list:
        """The plan's inputs, as the backend holds them: parameters, state, arguments."""
        unwrap = self.backend.unwrap
        values = [unwrap(p) for p in layout.params]
        for source, key in layout.state_inputs:
            if isinstance(source, int):         # shared per group (a step count): may be on
                values.append(self.backend.input(shared_state(self.optimizer, source, key)))
            else:                               # the host while the plan runs on a device
                values.append(unwrap(self.optimizer.state[source][key]))
        return values + [unwrap(a) for a in args if isinstance(a, Tensor)]

    # -- compiling ----------------------------------------------------------------------------
    def _compile(self, args) -> TrainPlan:
        start = time.perf_counter()
        # a backend with compile workers may open them now, beside the trace (CudaBackend)
        what = (f"compile_train_step {type(self.model).__qualname__} "
                f"{type(self.loss_fn).__qualname__} {self._guard(args)!r}")
        with backend_compiling(self.backend, what):
            with compile_times.stage("trace (forward)"):
                graph, constants, layout = self._trace(args)
            with compile_times.stage("compile (the rest: autodiff graph, guards, stats)"):
                return compile_step_graph(graph, constants, layout, self.pipeline,
                                          self.options, start, self.backend)

    def _trace(self, args) -> tuple[Graph, dict, StepLayout]:
        check_batchnorms(self.model)
        with buffers_restored(self.model) as restored, grad_mode.no_grad():
            forward, constants, layout = self._trace_forward(args)
        buffer_updates = extract_buffer_updates(forward, constants)
        layout.buffers = [constants[name] for name, _ in buffer_updates]
        layout.batchnorms = batchnorm_modules(self.model)
        layout.batch_counts = [restored.advanced.get(id(m.num_batches_tracked))
                               for m in layout.batchnorms]
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
            full = substitute_tensors(args, values[n_leading:])
            with parameters_replaced(self.model, params, values[:len(params)]):
                output = self.model(*full[:self.model_inputs])
                return self.loss_fn(output, *full[self.model_inputs:])
        graph, constants = build_graph(run, metas, names)
        check_scalar_loss(graph)
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
        # backward and update keep the forward's dtypes, as PyTorch's step outside autocast
        with autocast.suspended(), builder:
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
            state = group_state(group, g, layout.state_inputs, state_values)
            new = self.rule.update(group, [param_value[id(p)] for p in params],
                                   [grads[id(p)] for p in params], state)
            for key, values in new.items():
                for p, value in zip(params, values):
                    layout.write_backs.append((self.optimizer, p, key))
                    outputs.append(value)
        return outputs



__all__ = ["compile_train_step", "CompiledTrainStep", "OptimizerRule", "TracedTrainStep"]
