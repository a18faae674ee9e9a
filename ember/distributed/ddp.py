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
from ..frontend.nn.modules.module import Module
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

    # --- forward -----------------------------------------------------------------------
    def forward(self, *inputs, **kwargs):
        sync = autograd.grad_mode.is_grad_enabled() and self.require_backward_grad_sync
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
