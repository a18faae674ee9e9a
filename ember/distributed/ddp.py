"""DistributedDataParallel: one model replica per process, gradients averaged in backward.

The wrapped module's parameters and buffers are broadcast from rank 0 at construction,
so every replica starts equal; each synchronizing forward broadcasts the buffers again
(`broadcast_buffers`) and arms the reducer (reducer.py), which averages gradients over
the group while backward runs. After `loss.backward()` every rank holds the same
averaged `.grad`, so identical optimizer steps keep the replicas equal.
"""
from __future__ import annotations

import contextlib

from ..frontend import autograd
from ..frontend.factories import tensor as ember_tensor
from ..frontend.nn.modules.module import Module
from ..ir.errors import TraceError
from . import c10d
from .algorithms.join import Join, Joinable, JoinHook
from .reducer import Reducer


class DistributedDataParallel(Module, Joinable):
    def __init__(self, module: Module, device_ids=None, output_device=None, dim: int = 0,
                 broadcast_buffers: bool = True, process_group=None,
                 bucket_cap_mb: float | None = None, find_unused_parameters: bool = False,
                 check_reduction: bool = False, gradient_as_bucket_view: bool = False,
                 static_graph: bool = False, **unsupported):
        Module.__init__(self)
        Joinable.__init__(self)
        if unsupported:
            raise TypeError("DistributedDataParallel got unsupported arguments: "
                            f"{sorted(unsupported)}")
        params = [p for p in module.parameters() if p.requires_grad]
        if not params:
            raise RuntimeError("DistributedDataParallel is not needed when a module doesn't "
                               "have any parameter that requires a gradient.")
        if device_ids is not None and any(p.is_cuda for p in params) is False:
            raise ValueError("DistributedDataParallel device_ids and output_device arguments "
                             "only work with single-device/multiple-device GPU modules or "
                             f"CPU modules, but got device_ids {device_ids}, output_device "
                             f"{output_device}, and module parameters on the CPU.")
        self.module = module
        self.process_group = process_group if process_group is not None else c10d.group.WORLD
        if self.process_group is None:
            c10d._require_init("DistributedDataParallel")
        self.dim = dim
        self.broadcast_buffers = broadcast_buffers
        self.find_unused_parameters = find_unused_parameters
        self.gradient_as_bucket_view = gradient_as_bucket_view
        self.static_graph = static_graph
        self.require_backward_grad_sync = True
        self.bucket_bytes_cap = int((25 if bucket_cap_mb is None else bucket_cap_mb) * 2**20)
        engine = c10d._engine(self.process_group, "DistributedDataParallel")
        self._sync_module_states()
        self.reducer = Reducer(params, engine, self.process_group,
                               bucket_cap_bytes=self.bucket_bytes_cap,
                               gradient_as_bucket_view=gradient_as_bucket_view,
                               find_unused_parameters=find_unused_parameters)
        self._comm_hook_registered = False
        self._divide_by_initial = True     # join()'s option, while inside it

    # --- forward -----------------------------------------------------------------------
    def forward(self, *inputs, **kwargs):
        _refuse_tracing(inputs, kwargs)
        sync = autograd.grad_mode.is_grad_enabled() and self.require_backward_grad_sync
        if sync and self._join_config.enable:
            self._notify_join()
        if self.broadcast_buffers and sync:
            self._sync_buffers(active=True)
        output = self.module(*inputs, **kwargs)
        if sync:
            self.reducer.prepare_for_backward(output)
        else:
            self.reducer.deactivate()
        return output

    @contextlib.contextmanager
    def no_sync(self):
        """Forwards inside accumulate gradients locally; the next synced backward averages."""
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    # --- uneven inputs (algorithms/join.py's protocol) ---------------------------------
    def join(self, divide_by_initial_world_size: bool = True, enable: bool = True,
             throw_on_early_termination: bool = False):
        """Train on a different number of batches per rank: `Join([self], ...)`.

        Inside the context each synchronizing forward first all-reduces a 1 (how many
        ranks still train). A rank whose inputs ran out shadows the others' collectives
        (zero gradients) until every rank has run out; then the parameters and buffers
        of the last rank to join (one that trained longest) are broadcast to all.
        Gradients are divided by the initial world size, or by the ranks still training
        when `divide_by_initial_world_size=False`.
        """
        return Join([self], enable, throw_on_early_termination,
                    divide_by_initial_world_size=divide_by_initial_world_size)

    def join_hook(self, **kwargs) -> JoinHook:
        self._divide_by_initial = kwargs.get("divide_by_initial_world_size", True)
        return _DDPJoinHook(self)

    @property
    def join_device(self):
        return next(iter(self.module.parameters())).device

    @property
    def join_process_group(self):
        return self.process_group

    def _notify_join(self) -> None:
        """Count this iteration in an active Join; scale gradients by the ranks still
        training when asked (divide_by_initial_world_size=False)."""
        work = Join.notify_join_context(self)
        if work is None:
            return
        work.wait()                   # a tiny all-reduce: waiting costs nothing here
        if self._divide_by_initial:
            self.reducer.grad_scale = None
            return
        active = int(work.result()[0].item())
        self.reducer.grad_scale = c10d.get_world_size(self.process_group) / active

    def _common_rank(self, candidate: bool) -> int:
        """The highest group rank among those passing `candidate` (an all-reduce)."""
        rank = ember_tensor([c10d.get_rank(self.process_group) if candidate else -1])
        c10d.all_reduce(rank, c10d.ReduceOp.MAX, group=self.process_group)
        return int(rank.item())

    def _sync_buffers(self, active: bool) -> None:
        """Broadcast the buffers before a forward: from rank 0, or inside a Join from
        the highest rank still training (PyTorch's choice; a joined rank's are stale)."""
        buffers = list(self.module.buffers())
        if not buffers:
            return
        src = self._common_rank(active) if self._join_config.enable else 0
        self._broadcast(buffers, src)

    def _sync_from_last_joiner(self, is_last_joiner: bool) -> None:
        src = self._common_rank(is_last_joiner)
        self._broadcast(list(self.module.parameters()) + list(self.module.buffers()), src)

    # --- communication hooks ---------------------------------------------------------
    def register_comm_hook(self, state, hook) -> None:
        """hook(state, bucket: GradBucket) -> Future[Tensor], run for every bucket."""
        if self._comm_hook_registered:
            raise RuntimeError("register_comm_hook or register_builtin_comm_hook can only be "
                               "called once.")
        if not callable(hook):
            raise TypeError(f"Communication hook must be callable, got {type(hook).__name__}")
        self.reducer.comm_hook, self.reducer.comm_state = hook, state
        self._comm_hook_registered = True

    # --- internals -------------------------------------------------------------------
    def _sync_module_states(self) -> None:
        tensors = list(self.module.parameters()) + list(self.module.buffers())
        self._broadcast(tensors)

    def _broadcast(self, tensors: list, group_src: int = 0) -> None:
        if not tensors or c10d.get_world_size(self.process_group) == 1:
            return
        src = c10d.get_global_rank(self.process_group, group_src)
        with autograd.no_grad():
            works = [c10d.broadcast(t.detach(), src, group=self.process_group,
                                    async_op=True) for t in tensors]
        for w in works:
            w.wait()


class _DDPJoinHook(JoinHook):
    """A joined rank's side of DDP's iteration: the buffer broadcast and the gradient
    all-reduces (zeros) a training rank issues, in its order; at the end, the model of
    the last rank to join goes to every rank."""

    def __init__(self, ddp: DistributedDataParallel):
        self.ddp = ddp

    def main_hook(self) -> None:
        if self.ddp.broadcast_buffers:
            self.ddp._sync_buffers(active=False)
        self.ddp.reducer.shadow_iteration()

    def post_hook(self, is_last_joiner: bool) -> None:
        self.ddp.reducer.grad_scale = None
        self.ddp._sync_from_last_joiner(is_last_joiner)


def _refuse_tracing(inputs: tuple, kwargs: dict) -> None:
    """DDP's forward must run eagerly on every call: it arms the gradient reduction.

    Under ember.compile this TraceError is a graph break: the call runs DDP's forward
    eagerly and compiles the wrapped module on its own (its backward still reaches the
    parameters' AccumulateGrad hooks). With fullgraph=True it is raised instead.
    """
    from ..ir.symbolic import SymbolicTensor
    values = list(inputs) + list(kwargs.values())
    if any(isinstance(v, SymbolicTensor) for v in values):
        raise TraceError("DistributedDataParallel.forward cannot be traced into one graph: "
                         "it starts the gradient all-reduce of every call eagerly; the "
                         "wrapped module is compiled on its own")
