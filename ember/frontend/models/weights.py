"""save_weights / load_weights: a module's state_dict as a safetensors file.

`read_safetensors(path)` is the one reader: a file that is not a safetensors file
(truncated, corrupt header, another format) raises ArtifactError naming the file
and what was wrong, never the parser's bare exception.

Quantized tensors are stored as their integers under their own key, with their scale
(float64) and zero point (int64; float32 for float-qparams embeddings) under
`<key>.__qscale` / `<key>.__qzero_point`, and their dtype and axis in the file's
metadata (`<key>`: "quint8", or "qint8:0" per channel); load_weights rebuilds them.
torch.ao's non-tensor state entries (None, a dtype, a (weight, bias) tuple) are kept in
the metadata too (see _flat_state).
"""
from __future__ import annotations

import numpy as np

from ...ir.errors import ArtifactError
_SCALE, _ZERO = ".__qscale", ".__qzero_point"


def save_weights(module, path) -> None:
    from safetensors.numpy import save_file
    state, metadata = {}, {}
    for k, v in _flat_state(module.state_dict(), metadata).items():
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


def _flat_state(state: dict, metadata: dict) -> dict:
    """The tensors of a state_dict, with torch.ao's non-tensor entries recorded in
    `metadata`: None (an absent conv bias) as "none", a dtype (a quantized Linear's
    `_packed_params.dtype`) as "dtype:<name>", and a tuple of tensors (its
    `_packed_params._packed_params`) as "tuple:<n>" with its items under `<key>.<i>`."""
    flat = {}
    for k, v in state.items():
        if v is None:
            metadata[k] = "none"
        elif isinstance(v, tuple):
            metadata[k] = f"tuple:{len(v)}"
            flat.update(_flat_state({f"{k}.{i}": item for i, item in enumerate(v)}, metadata))
        elif not hasattr(v, "numpy"):                       # a dtype
            metadata[k] = "dtype:" + str(v).split(".")[-1]
        else:
            flat[k] = v
    return flat


def _unflat_state(state: dict, metadata: dict) -> dict:
    """Inverse of _flat_state (quantized tensors already rebuilt)."""
    from ...ir import dtypes
    for key, spec in sorted(metadata.items(), key=lambda kv: -kv[0].count(".")):
        if spec == "none":
            state[key] = None
        elif spec.startswith("dtype:"):
            state[key] = dtypes.dtype_from_name(spec[len("dtype:"):])
        elif spec.startswith("tuple:"):
            state[key] = tuple(state.pop(f"{key}.{i}") for i in range(int(spec[6:])))
    return state


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
    return module.load_state_dict(_unflat_state(state, metadata), strict=strict)


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
