"""torch.distributed.nn.RemoteModule: a module built and run on another RPC worker.

`RemoteModule("worker1/cpu", nn.Linear, args=(8, 2))` creates the module on worker1 (with
`rpc.remote`); `forward` sends the inputs there with `rpc_sync` (so inside a distributed
autograd context the gradients flow back), `forward_async` with `rpc_async`.
`remote_parameters()` gives RRefs of its parameters, for `DistributedOptimizer`.
"""
from __future__ import annotations

from ...frontend.nn.modules.module import Module
from ..rpc import api as rpc


def _create(module_cls, args, kwargs):
    return module_cls(*args, **kwargs)


def _forward(module_rref, args, kwargs):
    return module_rref.local_value()(*args, **kwargs)


def _parameter_rrefs(module_rref, recurse: bool):
    return [rpc.RRef(p) for p in module_rref.local_value().parameters(recurse=recurse)]


def _parse_remote_device(remote_device: str) -> tuple[str, str]:
    worker, _, device = remote_device.partition("/")
    device = device or "cpu"
    if not worker or device != "cpu":
        raise ValueError(f"RemoteModule: remote_device must be 'workername/cpu' or "
                         f"'workername', got {remote_device!r} (only CPU modules for now)")
    return worker, device


class RemoteModule(Module):
    """RemoteModule(remote_device, module_cls, args=None, kwargs=None)."""

    def __init__(self, remote_device: str, module_cls, args=None, kwargs=None):
        super().__init__()
        self.on, self.device = _parse_remote_device(remote_device)
        self.module_rref = rpc.remote(self.on, _create,
                                      args=(module_cls, tuple(args or ()), dict(kwargs or {})))
        self.module_rref._creation.wait()       # a failing constructor raises here

    def forward(self, *args, **kwargs):
        return rpc.rpc_sync(self.on, _forward, args=(self.module_rref, args, kwargs))

    def forward_async(self, *args, **kwargs):
        return rpc.rpc_async(self.on, _forward, args=(self.module_rref, args, kwargs))

    def remote_parameters(self, recurse: bool = True) -> list:
        return rpc.rpc_sync(self.on, _parameter_rrefs, args=(self.module_rref, recurse))

    def get_module_rref(self):
        return self.module_rref
