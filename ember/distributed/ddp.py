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
from .reducer import Reducer


class DistributedDataParallel(Module):
    def __init__(self, module: Module, device_ids=None, output_device=None, dim: int = 0,
                 broadcast_buffers: bool = True, process_group=None,
                 bucket_cap_mb: float | None = None, find_unused_parameters: bool = False,
                 check_reduction: bool = False, gradient_as_bucket_view: bool = False,
                 static_graph: bool = False, **unsupported):
        super().__init__()
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
        self._join = None                  # the join() options while inside it

    # --- forward -----------------------------------------------------------------------
    def forward(self, *inputs, **kwargs):
        _refuse_tracing(inputs, kwargs)
        sync = autograd.grad_mode.is_grad_enabled() and self.require_backward_grad_sync
        if sync and self._join is not None:
            self._count_active_ranks(active=True)
        if self.broadcast_buffers and sync:
            self._broadcast(list(self.module.buffers()))
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

    # --- uneven inputs -----------------------------------------------------------------
    @contextlib.contextmanager
    def join(self, divide_by_initial_world_size: bool = True, enable: bool = True,
             throw_on_early_termination: bool = False):
        """Train on a different number of batches per rank.

        Inside the context each synchronizing forward first all-reduces how many ranks
        are still training. A rank whose inputs ran out shadows the others' collectives
        (zero gradients) until every rank has run out; then the parameters and buffers
        of a rank that trained longest are broadcast to all. Gradients are divided by
        the initial world size, or by the ranks still training when
        `divide_by_initial_world_size=False`.
        """
        if not enable:
            yield
            return
        self._join = {"divide_by_initial": divide_by_initial_world_size,
                      "throw": throw_on_early_termination, "iterations": 0}
        try:
            yield
        except BaseException:
            self._join = None
            raise
        self._shadow_until_all_joined()
        self._join = None

    def _count_active_ranks(self, active: bool) -> int:
        count = ember_tensor([1 if active else 0])
        c10d.all_reduce(count, group=self.process_group)
        n, world = int(count.item()), c10d.get_world_size(self.process_group)
        if self._join["throw"] and n < world:
            raise RuntimeError(f"Rank {c10d.get_rank()} exhausted all inputs." if not active
                               else "Detected at least one rank that exhausted inputs. "
                               "Throwing across all ranks.")
        if active:
            self._join["iterations"] += 1
            divide_by_initial = self._join["divide_by_initial"]
            self.reducer.grad_scale = None if divide_by_initial else world / n
        return n

    def _shadow_until_all_joined(self) -> None:
        while self._count_active_ranks(active=False) > 0:
            if self.broadcast_buffers:
                self._broadcast(list(self.module.buffers()))
            self.reducer.shadow_iteration()
        self.reducer.grad_scale = None
        self._sync_from_longest_trained_rank()

    def _sync_from_longest_trained_rank(self) -> None:
        iterations = ember_tensor([self._join["iterations"]])
        c10d.all_reduce(iterations, c10d.ReduceOp.MAX, group=self.process_group)
        mine = c10d.get_rank(self.process_group)
        longest = self._join["iterations"] == int(iterations.item())
        src = ember_tensor([mine if longest else -1])
        c10d.all_reduce(src, c10d.ReduceOp.MAX, group=self.process_group)
        src_global = c10d.get_global_rank(self.process_group, int(src.item()))
        tensors = list(self.module.parameters()) + list(self.module.buffers())
        with autograd.no_grad():
            works = [c10d.broadcast(t.detach(), src_global, group=self.process_group,
                                    async_op=True) for t in tensors]
        for w in works:
            w.wait()

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

    def _broadcast(self, tensors: list) -> None:
        if not tensors or c10d.get_world_size(self.process_group) == 1:
            return
        src = c10d.get_global_rank(self.process_group, 0)
        with autograd.no_grad():
            works = [c10d.broadcast(t.detach(), src, group=self.process_group,
                                    async_op=True) for t in tensors]
        for w in works:
            w.wait()


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
