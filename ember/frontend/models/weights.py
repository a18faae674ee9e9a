"""save_weights / load_weights: a module's state_dict as a safetensors file.

`read_safetensors(path)` is the one reader: a file that is not a safetensors file
(truncated, corrupt header, another format) raises ArtifactError naming the file
and what was wrong, never the parser's bare exception.
"""
from __future__ import annotations

import numpy as np

from ...ir.errors import ArtifactError


def save_weights(module, path) -> None:
    from safetensors.numpy import save_file
    # np.array, not ascontiguousarray: that one turns 0-d buffers into shape [1]
    state = {k: np.array(v.detach().numpy(), order="C")
             for k, v in module.state_dict().items()}
    save_file(state, str(path))


def read_safetensors(path) -> dict[str, np.ndarray]:
    """name -> array of a safetensors file; ArtifactError naming `path` when it is not one."""
    from safetensors.numpy import load_file
    try:
        return load_file(str(path))
    except OSError as err:
        raise ArtifactError(f"{path}: cannot read weights: {err.strerror or err}") from None
    except Exception as err:  # noqa: BLE001 - safetensors' SafetensorError is a bare Exception
        raise ArtifactError(f"{path}: not a valid safetensors file ({err})") from None


def load_weights(module, path, strict: bool = True):
    """Load a safetensors file into `module`; returns (missing_keys, unexpected_keys)."""
    return module.load_state_dict(read_safetensors(path), strict=strict)
