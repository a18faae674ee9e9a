"""Activation checkpointing: `ember.utils.checkpoint.checkpoint` and
`checkpoint_sequential` (torch.utils.checkpoint's interface).

`checkpoint(fn, *args, use_reentrant=..., **kwargs)` runs `fn` without keeping its
intermediate values, and recomputes it during backward to get them: memory for
compute. The random state is restored for the recomputation (preserve_rng_state),
so dropout draws the same mask twice.

How gradients reach tensors `fn` closes over (a module's parameters): while `fn`
runs the first time, a dispatch mode notes every tensor that requires grad among
the arguments of the ops it calls; those become inputs of the checkpoint's autograd
node too, and its backward returns their gradients (computed on the recomputed graph
with autograd.grad), so the engine accumulates them as for any other node — with
.backward() and autograd.grad alike, and create_graph works.

use_reentrant, as in PyTorch: None warns and means True. True refuses keyword
arguments for `fn` and, when no tensor argument requires grad, warns and returns a
result that does not require grad. (Unlike PyTorch's reentrant variant it works
with autograd.grad, since nothing here re-enters the engine.) False accepts
keyword arguments and non-tensor inputs.
"""
from __future__ import annotations

import contextlib
import warnings

from ...ir import dispatch
from ...ir.symbolic import SymbolicTensor
from ..tensor import Tensor
from . import grad_mode
from .function import Function


def checkpoint(function, *args, use_reentrant: bool | None = None, context_fn=None,
               determinism_check: str = "default", debug: bool = False,
               preserve_rng_state: bool = True, **kwargs):
    """Run `function(*args, **kwargs)`, recomputing it in backward instead of storing
    its intermediates."""
    if use_reentrant is None:
        warnings.warn("ember.utils.checkpoint: the use_reentrant parameter should be passed "
                      "explicitly; use_reentrant=False is recommended, use_reentrant=True "
                      "keeps the current default behavior", UserWarning, stacklevel=2)
        use_reentrant = True
    if use_reentrant and kwargs:
        raise ValueError("Unexpected keyword arguments: " + ",".join(kwargs))
    forward_context, recompute_context = (context_fn or _no_contexts)()
    if any(type(a) is SymbolicTensor for a in args):
        # traced (ember.compile): the ops go into the graph, whose backward the compiler
        # plans; an eager recomputation here would record the forward without gradients
        with forward_context:
            return function(*args, **kwargs)
    if use_reentrant and not any(isinstance(a, Tensor) and a.requires_grad for a in args):
        warnings.warn("None of the inputs have requires_grad=True. Gradients will be None",
                      UserWarning, stacklevel=2)
        with grad_mode.no_grad(), forward_context:
            return function(*args, **kwargs)
    run = _Recomputable(function, args, kwargs, preserve_rng_state, recompute_context)
    with forward_context:
        captured = run.first_run()
    tensors = [a for a in args if isinstance(a, Tensor)] + captured
    return _Checkpoint.apply(run, *tensors)


def checkpoint_sequential(functions, segments: int, input, use_reentrant: bool | None = None,
                          **kwargs):
    """Split `functions` (a Sequential or a list of modules/functions) into `segments`
    consecutive runs; checkpoint each but the last, which runs normally."""
    if hasattr(functions, "children") and not isinstance(functions, (list, tuple)):
        functions = list(functions.children())
    functions = list(functions)
    size = max(len(functions) // segments, 1)
    end = -1
    for start in range(0, size * (segments - 1), size):
        end = start + size - 1
        segment = functions[start:end + 1]
        input = checkpoint(_run_segment(segment), input, use_reentrant=use_reentrant,
                           **kwargs)
    return _run_segment(functions[end + 1:])(input)


def _run_segment(functions: list):
    def run(x):
        for fn in functions:
            x = fn(x)
        return x
    return run


def _no_contexts():
    return contextlib.nullcontext(), contextlib.nullcontext()


class _Recomputable:
    """The checkpointed call: its first run (no grad, noting captured tensors) and its
    recomputation in backward (grad on, same random state)."""

    def __init__(self, function, args, kwargs, preserve_rng_state, recompute_context):
        from ..random import get_rng_state
        self.function = function
        self.args = args
        self.kwargs = kwargs
        self.rng_state = get_rng_state() if preserve_rng_state else None
        self.recompute_context = recompute_context
        self.outputs = None

    def first_run(self) -> list:
        """Run without grad; return the tensors requiring grad `function` read that are
        not among its arguments (the parameters it closes over)."""
        watcher = _RequiresGradWatcher({id(a) for a in self.args if isinstance(a, Tensor)})
        with grad_mode.no_grad(), dispatch.enabled(watcher):
            self.outputs = self.function(*self.args, **self.kwargs)
        return list(watcher.seen.values())

    def recompute(self, detached_args: list):
        from ..random import get_rng_state, set_rng_state
        saved = get_rng_state()
        if self.rng_state is not None:
            set_rng_state(self.rng_state)
        try:
            with grad_mode.enable_grad(), self.recompute_context:
                return self.function(*detached_args, **self.kwargs)
        finally:
            set_rng_state(saved)


class _RequiresGradWatcher:
    """A dispatch mode that notes tensors requiring grad in every op call's arguments."""

    def __init__(self, excluded: set[int]):
        self.excluded = excluded
        self.seen: dict[int, Tensor] = {}

    def handle(self, op, bound: tuple):
        for value in bound:
            for t in value if isinstance(value, (list, tuple)) else (value,):
                if isinstance(t, Tensor) and t.requires_grad and id(t) not in self.excluded:
                    self.seen.setdefault(id(t), t)
        with dispatch.disabled(self):
            return dispatch.dispatch(op, bound)


class _Checkpoint(Function):
    @staticmethod
    def forward(ctx, run: _Recomputable, *tensors):
        ctx.run = run
        ctx.save_for_backward(*tensors)
        outputs = run.outputs
        run.outputs = None               # the node keeps the inputs, not the activations
        return outputs

    @staticmethod
    def backward(ctx, *grad_outputs):
        from .engine import grad
        # recompute on the inputs themselves: autograd.grad stops at them (nothing flows
        # into their history twice), and with create_graph the gradients stay connected
        # to them, so double backward works
        run, tensors = ctx.run, ctx.saved_tensors
        n_args = sum(isinstance(a, Tensor) for a in run.args)
        explicit = iter(tensors[:n_args])
        args = [next(explicit) if isinstance(a, Tensor) else a for a in run.args]
        outputs = run.recompute(args)
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        targets = [a for a in args if isinstance(a, Tensor)] + list(tensors[n_args:])
        wanted = [i for i, t in enumerate(targets) if t.requires_grad]
        pairs = [(o, g) for o, g in zip(outputs, grad_outputs)
                 if isinstance(o, Tensor) and o.requires_grad and g is not None]
        grads = [None] * len(targets)
        if pairs and wanted:
            found = grad([o for o, _ in pairs], [targets[i] for i in wanted],
                         [g for _, g in pairs], allow_unused=True,
                         create_graph=grad_mode.is_grad_enabled())
            for i, g in zip(wanted, found):
                grads[i] = g
        return (None, *grads)
