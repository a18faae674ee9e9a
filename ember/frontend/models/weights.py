"""save_weights / load_weights: a module's state_dict as a safetensors file.

`read_safetensors(path)` is the one reader: a file that is not a safetensors file
(truncated, corrupt header, another format) raises ArtifactError naming the file
and what was wrong, never the parser's bare exception.

Quantized tensors are stored as their integers under their own key, with their scale
(float64) and zero point (int64; float32 for float-qparams embeddings) under
`<key>.__qscale` / `<key>.__qzero_point`, and their dtype and axis in the file's
metadata (`<key>`: "quint8", or "qint8:0" per channel); load_weights rebuilds them.
"""
from __future__ import annotations

import numpy as np

from ...ir.errors import ArtifactError
_SCALE, _ZERO = ".__qscale", ".__qzero_point"


def save_weights(module, path) -> None:
    from safetensors.numpy import save_file
    state, metadata = {}, {}
    for k, v in module.state_dict().items():
        if getattr(v, "is_quantized", False):
            qa = v._qarray()
            state[k] = np.array(qa.int_repr, order="C")
            state[k + _SCALE] = np.atleast_1d(np.asarray(qa.scale, np.float64))
            zero = np.asarray(qa.zero_point)      # float32 for float qparams (embeddings)
            state[k + _ZERO] = np.atleast_1d(zero if zero.dtype.kind == "f" else
                                             zero.astype(np.int64))
            metadata[k] = qa.dtype.name + ("" if qa.axis is None else f":{qa.axis}")
            continue
        # np.array, not ascontiguousarray: that one turns 0-d buffers into shape [1]
        state[k] = np.array(v.detach().numpy(), order="C")
    save_file(state, str(path), metadata=metadata or None)


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
    state = read_safetensors(path)
    from safetensors import safe_open
    with safe_open(str(path), framework="numpy") as f:
        metadata = f.metadata() or {}
    for key, spec in metadata.items():
        if key in state and key + _SCALE in state:
            state[key] = _quantized(state.pop(key), state.pop(key + _SCALE),
                                    state.pop(key + _ZERO), spec)
    return module.load_state_dict(state, strict=strict)


def _quantized(int_repr, scale, zero_point, spec: str):
    from ...ir import dtypes
    from ...ir.quantized import QuantizedArray
    from ..quantized import QuantizedTensor
    name, _, axis = spec.partition(":")
    dtype = dtypes.dtype_from_name(name)
    if axis:
        return QuantizedTensor._wrap(QuantizedArray(int_repr, dtype, scale, zero_point, int(axis)))
    return QuantizedTensor._wrap(QuantizedArray(int_repr, dtype, float(scale[0]),
                                                int(zero_point[0])))
