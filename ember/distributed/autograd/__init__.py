"""ember.distributed.autograd: torch.distributed.autograd's contexts across RPC workers.

Inside `with context() as context_id:`, every RPC records its autograd edge: the caller
remembers which of its tensors it sent (those requiring grad) and the callee turns them
into leaves and keeps the call's outputs under a record id. The caller's copy of the
outputs hangs off one `_RemoteCall` autograd node whose inputs are the sent tensors.
`backward(context_id, roots)` runs the local graph; when it reaches a `_RemoteCall`, the
output gradients go to the callee, which runs its part of the graph (and any RPCs made
there, recursively) and answers with the gradients of the tensors it received. Every
leaf reached that did not arrive by RPC (parameters) accumulates its gradient in the
context, on the worker that owns it: `get_gradients(context_id)` returns them and `.grad`
is never touched.

Each callee keeps its graph (retained) until the context is released: leaving the
`with` block tells every worker the context reached to drop it.
"""
from __future__ import annotations

import itertools
import threading

from ...frontend.autograd.engine import AccumulateGrad, edge_of
from ...frontend.autograd.engine import grad as _autograd_grad
from ...frontend.autograd.function import Function
from ...frontend.autograd.grad_mode import enable_grad
from ...frontend.factories import zeros, zeros_like
from ...frontend.tensor import Tensor

_contexts: dict[int, "DistAutogradContext"] = {}
_contexts_lock = threading.Lock()
_local = threading.local()
_counter = itertools.count(1)


class DistAutogradContext:
    """One context on one worker: the calls it served, the gradients it accumulated."""

    def __init__(self, context_id: int):
        self.id = context_id
        self.records: dict[int, tuple[list, list]] = {}   # record id -> (arg leaves, outputs)
        self.grads: dict[int, tuple[Tensor, Tensor]] = {}  # id(leaf) -> (leaf, gradient)
        self.workers: set[int] = set()                     # ranks this context sent to
        self.anchor = zeros((), requires_grad=True)        # gives _RemoteCall a grad input
        self.lock = threading.Lock()
        self._record_ids = itertools.count()

    def _context_id(self) -> int:
        return self.id

    def record(self, arg_leaves: list, outputs: list) -> int:
        with self.lock:
            rid = next(self._record_ids)
            self.records[rid] = (arg_leaves, outputs)
        return rid

    def run_backward(self, roots: list, grad_outputs, arg_leaves: list, retain_graph: bool):
        """Gradients of `arg_leaves`; every other leaf reached accumulates into the context."""
        skip = {id(t) for t in arg_leaves} | {id(self.anchor)}
        params = [t for t in _reached_leaves(roots) if id(t) not in skip]
        # The anchor is always an input: with no other leaves here, the pass must still
        # run to reach the _RemoteCall nodes (and its own gradient is dropped).
        inputs = list(arg_leaves) + params + [self.anchor]
        previous = getattr(_local, "context", None)
        _local.context = self
        try:
            with enable_grad():
                grads = _autograd_grad(roots, inputs, grad_outputs, retain_graph=retain_graph,
                                       allow_unused=True)
        finally:
            _local.context = previous
        with self.lock:
            for leaf, g in zip(params, grads[len(arg_leaves):]):
                if g is None:
                    continue
                held = self.grads.get(id(leaf))
                self.grads[id(leaf)] = (leaf, g if held is None else held[1] + g)
        return list(grads[:len(arg_leaves)])


def _reached_leaves(roots: list) -> list:
    stack = [edge_of(t)[0] for t in roots]
    seen, leaves = set(), []
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, AccumulateGrad):
            leaves.append(node.variable)
        stack.extend(n for n, _ in node.next_functions)
    return leaves


class context:  # noqa: N801 - PyTorch's name
    """`with dist_autograd.context() as context_id:` - a new distributed autograd context."""

    def __enter__(self) -> int:
        if getattr(_local, "context", None) is not None:
            raise RuntimeError("Already have an autograd context id for this thread.")
        from ..rpc import api
        agent = api._require_agent("dist_autograd.context")
        context_id = (agent.rank << 48) | next(_counter)
        self._ctx = _create(context_id)
        _local.context = self._ctx
        return context_id

    def __exit__(self, *exc) -> None:
        _local.context = None
        _release(self._ctx.id, propagate=True)


def _create(context_id: int) -> DistAutogradContext:
    with _contexts_lock:
        ctx = _contexts.get(context_id)
        if ctx is None:
            ctx = _contexts[context_id] = DistAutogradContext(context_id)
        return ctx


def _retrieve(context_id: int) -> DistAutogradContext:
    with _contexts_lock:
        ctx = _contexts.get(context_id)
    if ctx is None:
        raise RuntimeError(f"Could not find autograd context with id: {context_id}")
    return ctx


def _release(context_id: int, propagate: bool) -> None:
    with _contexts_lock:
        ctx = _contexts.pop(context_id, None)
    if ctx is None or not propagate:
        return
    from ..rpc import api
    api._release_context_on(ctx.workers, context_id)


def current_context() -> DistAutogradContext | None:
    """The context active on this thread (inside `with context()` or a served call)."""
    return getattr(_local, "context", None)


def backward(context_id: int, roots, retain_graph: bool = False) -> None:
    """torch.distributed.autograd.backward: from scalar `roots` through every worker."""
    roots = [roots] if isinstance(roots, Tensor) else list(roots)
    for root in roots:
        if root.numel() != 1:
            raise RuntimeError("dist_autograd.backward: the roots must be scalars, got a "
                               f"tensor of shape {tuple(root.shape)}")
        if not root.requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have "
                               "a grad_fn")
    _retrieve(context_id).run_backward(roots, None, [], retain_graph)


def get_gradients(context_id: int) -> dict:
    """{tensor: gradient} of the leaves on this worker that got a gradient in the context."""
    ctx = _retrieve(context_id)
    with ctx.lock:
        return {leaf: g for leaf, g in ctx.grads.values()}


class _RemoteCall(Function):
    """The caller's side of an RPC in a context: outputs from the callee, inputs sent."""

    @staticmethod
    def forward(fctx, info, anchor, *sent):
        fctx.info = info
        return tuple(t.detach() for t in info.outputs)

    @staticmethod
    def backward(fctx, *grads):
        info = fctx.info
        grads = [g if g is not None else zeros_like(o) for g, o in zip(grads, info.outputs)]
        from ..rpc import api
        arg_grads = api._remote_backward(info, grads)
        return (None, None, *arg_grads)


class _CallInfo:
    def __init__(self, context_id: int, rank: int, rid: int, outputs: list):
        self.context_id, self.rank, self.rid, self.outputs = context_id, rank, rid, outputs


def _attach(ctx: DistAutogradContext, rank: int, rid: int, sent: list, outputs: list) -> list:
    """Tie the outputs an RPC returned into this worker's graph; the new output tensors."""
    info = _CallInfo(ctx.id, rank, rid, outputs)
    with enable_grad():
        result = _RemoteCall.apply(info, ctx.anchor, *sent)
    return [result] if isinstance(result, Tensor) else list(result)
