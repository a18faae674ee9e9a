"""Shared by the quantization tests: a torch model and its ember twin with the same
random float weights (BatchNorm variances kept positive)."""
from __future__ import annotations

import numpy as np
import torch

import ember


def share_random_weights(t_model, e_model, rng) -> None:
    state = {}
    for k, v in t_model.state_dict().items():
        if v.dtype.is_floating_point:
            arr = rng.standard_normal(v.shape).astype(np.float32) * 0.3
            if "running_var" in k:
                arr = np.abs(arr) + 0.5
            v = torch.from_numpy(arr)
        state[k] = v
    t_model.load_state_dict(state)
    e_model.load_state_dict({k: ember.tensor(v.numpy()) for k, v in state.items()})
