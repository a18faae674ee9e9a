"""torch.ao's state_dict layout for quantized modules whose qparams are Python numbers.

The quantized modules keep their output `scale` / `zero_point` as Python numbers (the
kernels and the compilers read them as constants), but torch.ao saves them as tensors
(`<module>.scale`: float32, `<module>.zero_point`: int64; 0-d, or shape [1] for
Quantize) and loads them back. `QParamsState` adds those entries to `state_dict` and
reads them in `load_state_dict`, so a converted model's state round-trips as torch.ao's
does: loading another calibration's state_dict gives that calibration's outputs.

`_STATE_TENSORS` names extra entries a module saves under torch's key rather than its
attribute's (a quantized conv's `weight`/`bias`, None for an absent bias as torch saves
it; a Linear's `_packed_params.dtype` and `_packed_params._packed_params`, the
(weight, bias) tuple); the module's `_state_tensors()` returns them and
`_load_state_tensors(values)` installs them.
"""
from __future__ import annotations

import numpy as np

from ....frontend.tensor import Tensor


def _scalar_tensor(value, np_dtype, shape) -> Tensor:
    return Tensor._from_array(np.full(shape, value, dtype=np_dtype))


def _detached(value, keep_vars: bool):
    """A state entry as torch.ao saves it: tensors detached, tuples element-wise, None and
    dtypes as they are (a conv's absent bias, a Linear's `_packed_params.dtype`)."""
    if isinstance(value, tuple):
        return tuple(_detached(v, keep_vars) for v in value)
    if isinstance(value, Tensor) and not keep_vars:
        return value.detach()
    return value


def _number(value, kind):
    arr = value.detach().numpy() if hasattr(value, "detach") else np.asarray(value)
    return kind(np.asarray(arr).reshape(-1)[0])


class QParamsState:
    """Mixin for nn.Module subclasses with `self.scale` / `self.zero_point` numbers."""

    _QPARAMS_SHAPE: tuple = ()
    _STATE_TENSORS: tuple = ()            # torch keys the module saves itself
    _HIDDEN_BUFFERS: tuple = ()           # own buffers those keys replace in state_dict
    _SAVES_QPARAMS = True                 # False where torch.ao keeps them out (ELU)
    _QPARAMS_FIRST = False                # torch.ao's Linear saves scale before its weight

    def _state_tensors(self) -> dict:
        return {}

    def _load_state_tensors(self, values: dict) -> None:
        pass

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        hidden = {k: self._buffers[k] for k in self._HIDDEN_BUFFERS if k in self._buffers}
        for k in hidden:
            self._buffers.pop(k)
        try:
            super()._save_to_state_dict(destination, prefix, keep_vars)
        finally:
            self._buffers.update(hidden)
        if self._QPARAMS_FIRST:
            self._save_qparams(destination, prefix)
        for key, value in self._state_tensors().items():
            destination[prefix + key] = _detached(value, keep_vars)
        if not self._QPARAMS_FIRST:
            self._save_qparams(destination, prefix)

    def _save_qparams(self, destination, prefix) -> None:
        if not self._SAVES_QPARAMS:
            return
        destination[prefix + "scale"] = _scalar_tensor(self.scale, np.float32,
                                                       self._QPARAMS_SHAPE)
        destination[prefix + "zero_point"] = _scalar_tensor(self.zero_point, np.int64,
                                                            self._QPARAMS_SHAPE)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs):
        own = (("scale", "zero_point") if self._SAVES_QPARAMS else ()) + \
            tuple(self._STATE_TENSORS)
        rest = {k: v for k, v in state_dict.items()
                if not (k.startswith(prefix) and k[len(prefix):] in own)}
        hidden = {k: self._buffers.pop(k) for k in self._HIDDEN_BUFFERS if k in self._buffers}
        try:
            super()._load_from_state_dict(rest, prefix, local_metadata, strict, missing_keys,
                                          unexpected_keys, error_msgs)
        finally:
            self._buffers.update(hidden)
        found = {}
        for name in own:
            if prefix + name in state_dict:
                found[name] = state_dict[prefix + name]
            elif strict and not (name in self._STATE_TENSORS and
                                 self._state_tensors().get(name) is None):
                missing_keys.append(prefix + name)
        if "scale" in found:
            self.scale = _number(found.pop("scale"), float)
        if "zero_point" in found:
            self.zero_point = _number(found.pop("zero_point"), int)
        if found:
            self._load_state_tensors(found)
