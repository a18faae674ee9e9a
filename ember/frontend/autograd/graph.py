"""ember.autograd.graph: hooks on the tensors autograd saves for backward.

`with saved_tensors_hooks(pack, unpack):` every tensor saved for backward while the
block runs is stored as pack(tensor), and backward uses unpack(packed) in its place
(e.g. to offload saved activations, or to save them compressed). `save_on_cpu` packs
to the host. Which tensors an op saves follows ember's derivative rules, which may
save a different set than PyTorch's for the same op; gradients are the same.
"""
from __future__ import annotations

from ...ir.errors import AutogradError
from .engine import SAVED_TENSORS_HOOKS, Node


# messages of the open disable_saved_tensors_hooks blocks (innermost last)
_DISABLED: list = []


class saved_tensors_hooks:
    def __init__(self, pack_hook, unpack_hook):
        self.pack_hook, self.unpack_hook = pack_hook, unpack_hook

    def __enter__(self):
        if _DISABLED:
            raise AutogradError(_DISABLED[-1])
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


class disable_saved_tensors_hooks:
    """Inside, opening saved_tensors_hooks raises `error_message` (for code whose saved
    tensors must stay as they are)."""

    def __init__(self, error_message: str):
        self.error_message = error_message

    def __enter__(self):
        if SAVED_TENSORS_HOOKS:
            raise AutogradError(self.error_message)
        _DISABLED.append(self.error_message)
        return self

    def __exit__(self, *exc):
        _DISABLED.pop()
        return False

    def __call__(self, fn):
        import functools

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with disable_saved_tensors_hooks(self.error_message):
                return fn(*args, **kwargs)
        return wrapper


def increment_version(tensor) -> None:
    """Bump the version counter of `tensor` (or of each tensor in a list): what an
    in-place write autograd did not see should do, so saved copies are checked."""
    for t in (tensor if isinstance(tensor, (list, tuple)) else (tensor,)):
        t._bump_version()


__all__ = ["saved_tensors_hooks", "save_on_cpu", "disable_saved_tensors_hooks",
           "increment_version", "Node"]
