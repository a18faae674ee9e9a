"""Loading torchvision-format weights into ember.vision.models (no downloading)."""
from __future__ import annotations

import os

import numpy as np


def _as_array(value):
    """A state_dict value as numpy: ember tensors, numpy arrays, and any tensor type with
    .detach().cpu().numpy() (so a torchvision state_dict can be passed as it is)."""
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach"):
        value = value.detach()
    if hasattr(value, "cpu"):
        value = value.cpu()
    if hasattr(value, "numpy"):
        return value.numpy()
    return np.asarray(value)


def load_weights(model, weights, name: str):
    """Load `weights` (None, a state_dict mapping, or a .safetensors path) into model."""
    if weights is None:
        return model
    if isinstance(weights, (str, os.PathLike)) and str(weights).endswith(".safetensors"):
        from safetensors.numpy import load_file
        weights = load_file(str(weights))
    if not hasattr(weights, "items"):
        raise ValueError(f"{name}: ember cannot download pretrained weights ({weights!r}); "
                         f"pass weights= a state_dict with torchvision's key names (e.g. "
                         f"torchvision's model.state_dict()) or a .safetensors file path")
    model.load_state_dict({k: _as_array(v) for k, v in weights.items()}, strict=True)
    return model
