"""ember.backends.mkldnn: torch.backends.mkldnn's switches.

ember's CPU kernels are its own (NumPy eagerly, LLVM when compiled), not oneDNN's, so
is_available() is False, as on a PyTorch build without oneDNN. `enabled` and
`deterministic` are the flags scripts set (`torch.backends.mkldnn.enabled = False`);
`flags(...)` sets them for a block and restores them after.
"""
from __future__ import annotations

import contextlib

enabled = True
deterministic = False
allow_tf32 = False


def is_available() -> bool:
    return False


@contextlib.contextmanager
def flags(enabled: bool = False, deterministic: bool = False, allow_tf32: bool = False):
    module = globals()
    saved = {name: module[name] for name in ("enabled", "deterministic", "allow_tf32")}
    module.update(enabled=enabled, deterministic=deterministic, allow_tf32=allow_tf32)
    try:
        yield
    finally:
        module.update(saved)
