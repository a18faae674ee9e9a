"""ember.autograd.graph: hooks on the tensors autograd saves for backward.

`with saved_tensors_hooks(pack, unpack):` every tensor saved for backward while the
block runs is stored as pack(tensor), and backward uses unpack(packed) in its place
(e.g. to offload saved activations, or to save them compressed). `save_on_cpu` packs
to the host. Which tensors an op saves follows ember's derivative rules, which may
save a different set than PyTorch's for the same op; gradients are the same.
"""
from __future__ import annotations

from .engine import SAVED_TENSORS_HOOKS, Node


class saved_tensors_hooks:
    def __init__(self, pack_hook, unpack_hook):
        self.pack_hook, self.unpack_hook = pack_hook, unpack_hook

    def __enter__(self):
        SAVED_TENSORS_HOOKS.append((self.pack_hook, self.unpack_hook))
        return self

    def __exit__(self, *exc):
        SAVED_TENSORS_HOOKS.pop()
        return False


class save_on_cpu(saved_tensors_hooks):
    """Saved tensors are kept on the CPU and moved back to their device in backward."""

    def __init__(self, pin_memory: bool = False, device_type: str = "cuda"):
        def pack(t):
            return (t.device, t.detach().cpu())

        def unpack(packed):
            device, t = packed
            return t.to(device)
        super().__init__(pack, unpack)


__all__ = ["saved_tensors_hooks", "save_on_cpu", "Node"]
