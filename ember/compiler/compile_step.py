"""`ember.compile(step)` where step is a whole training step: forward, `loss.backward()`,
`opt.step()` (and `opt.zero_grad()`).

The first trace of such a function stops at backward() (compile_trace's watcher); the
function is then served by compile_train_step's traced door (`TracedTrainStep`, one
graph for forward, backward and the optimizer update) in its `store_grads` form, which
keeps eager's observable state: after a call `.grad` holds what eager's step leaves
there (the gradients of the last backward() not cleared by a later zero_grad()).

Patterns that one graph cannot reproduce run the step eagerly instead, with the
modules it uses compiled (compile_breaks: their forward and backward compiled, the
optimizer eager), as a graph break, logged with the reason:
- code that reads or sets `.grad` while traced (gradient clipping, logging),
  `zero_grad(set_to_none=False)`, `.item()` or other data-dependent Python;
- optimizers without a functional rule (only SGD, Adam and AdamW have one);
- keyword arguments to the step;
- a call where a parameter still holds a `.grad` the step would accumulate onto (no
  zero_grad() before its backward(), as in gradient accumulation): that call only.
"""
from __future__ import annotations

from ..frontend.autograd import grad_mode
from .compile_breaks import BreakEntry, compiled_modules, graph_break, modules_of_function
from .compile_guards import log
from .compile_train_traced import TracedTrainStep


class StepRoute:
    """Serves the calls of a compiled training-step function (see the module doc)."""

    TRAINING_PIPELINE = "default-training"

    def __init__(self, dispatcher):
        self.dispatcher = dispatcher
        self.step = TracedTrainStep(dispatcher.fn, dispatcher.backend, self.TRAINING_PIPELINE,
                                    dispatcher.compiled.options, store_grads=True)
        self.broken: BreakEntry | None = None
        self.modules = modules_of_function(dispatcher.fn, [])
        self.logged_grads = False
        self.recorded: set[int] = set()      # plans explain() has been told of

    def call(self, args: tuple, kwargs: dict):
        if self.broken is not None:
            return self.broken.run(self.dispatcher, [], args, kwargs)
        if kwargs or not grad_mode.is_grad_enabled():
            why = "keyword arguments" if kwargs else "grad mode is off"
            return self._break_now(RuntimeError(f"a compiled training step with {why}"),
                                   args, kwargs)
        try:
            entry = self.step.entry_for(args)
        except Exception as err:        # noqa: BLE001 - a step the graph cannot express
            return self._break_now(err, args, kwargs)
        self._record(entry)
        in_the_way = self.step.grads_in_the_way(entry)
        if in_the_way:
            return self._eager_once(in_the_way, args, kwargs)
        return self.step.run(entry, args)

    def _break_now(self, err: BaseException, args, kwargs):
        self.broken = BreakEntry(graph_break(err, self.dispatcher), self.modules)
        from .compile_breaks import record_event
        record_event(self.dispatcher, self.broken)
        return self.broken.run(self.dispatcher, [], args, kwargs)

    def _eager_once(self, params: list, args, kwargs):
        if not self.logged_grads:
            self.logged_grads = True
            log.info("ember.compile: %s runs eagerly while %d parameter(s) hold a .grad its "
                     "backward() would accumulate onto (no zero_grad() before it)",
                     self.dispatcher.name, len(params))
        with compiled_modules(self.dispatcher, self.modules):
            return self.dispatcher.fn(*args, **kwargs)

    def _record(self, entry) -> None:
        if id(entry) in self.recorded:
            return
        self.recorded.add(id(entry))
        from .compile_breaks import record_event
        record_event(self.dispatcher, _StepEvent(entry.graph, entry.stats))


class _StepEvent:
    kind = "training step"

    def __init__(self, graph, stats):
        self.graph, self.stats = graph, stats
