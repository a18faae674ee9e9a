"""save_weights / load_weights: a module's state_dict as a safetensors file."""
from __future__ import annotations

import numpy as np


def save_weights(module, path) -> None:
    from safetensors.numpy import save_file
    # np.array, not ascontiguousarray: that one turns 0-d buffers into shape [1]
    state = {k: np.array(v.detach().numpy(), order="C")
             for k, v in module.state_dict().items()}
    save_file(state, str(path))


def load_weights(module, path, strict: bool = True):
    """Load a safetensors file into `module`; returns (missing_keys, unexpected_keys)."""
    from safetensors.numpy import load_file
    return module.load_state_dict(load_file(str(path)), strict=strict)
