"""torch.distributed.optim.DistributedOptimizer: one local optimizer per parameter owner.

The parameters are RRefs, possibly on several workers. The constructor creates, on each
owner (with `remote`), a local `optimizer_class` over that owner's parameters.
`step(context_id)` asks every owner at once to put the context's gradients (from
`dist_autograd.get_gradients`) in its parameters' `.grad`, step, and put back the `.grad`
it found; it waits for all. A parameter that got no gradient in the context is stepped
with `.grad = None`, so the optimizer skips it, as a local optimizer would.
"""
from __future__ import annotations

from .. import autograd as dist_autograd
from ..rpc import api as rpc


class _LocalOptimizer:
    """Lives on a parameter owner; steps its parameters with a context's gradients."""

    def __init__(self, optimizer_class, param_rrefs, args, kwargs):
        self.params = [r.local_value() for r in param_rrefs]
        self.optim = optimizer_class(self.params, *args, **kwargs)

    def step(self, context_id: int) -> None:
        grads = dist_autograd.get_gradients(context_id)
        saved = [p.grad for p in self.params]
        for p in self.params:
            p.grad = grads.get(p)
        try:
            self.optim.step()
        finally:                       # .grad belongs to local autograd; leave it as found
            for p, g in zip(self.params, saved):
                p.grad = g


def _new_local_optimizer(optimizer_class, param_rrefs, args, kwargs):
    return _LocalOptimizer(optimizer_class, param_rrefs, args, kwargs)


def _step_local(optimizer_rref, context_id: int) -> None:
    optimizer_rref.local_value().step(context_id)


class DistributedOptimizer:
    """DistributedOptimizer(optimizer_class, params_rref, *args, **kwargs)."""

    def __init__(self, optimizer_class, params_rref, *args, **kwargs):
        by_owner: dict[int, list] = {}
        for rref in params_rref:
            by_owner.setdefault(rref._owner_rank, []).append(rref)
        self.remote_optimizers = [
            rpc.remote(owner, _new_local_optimizer,
                       args=(optimizer_class, rrefs, args, kwargs))
            for owner, rrefs in sorted(by_owner.items())]
        for optimizer in self.remote_optimizers:
            optimizer._creation.wait()     # construction errors surface here

    def step(self, context_id: int) -> None:
        """Step every owner's optimizer with the gradients of `context_id`."""
        dist_autograd._retrieve(context_id)        # a clear error for an unknown context
        futures = [rpc.rpc_async(optimizer._owner_rank, _step_local,
                                 args=(optimizer, context_id))
                   for optimizer in self.remote_optimizers]
        errors = []
        for future in futures:
            try:
                future.wait()
            except BaseException as err:     # noqa: BLE001 - wait for all, then raise
                errors.append(err)
        if errors:
            raise errors[0]
