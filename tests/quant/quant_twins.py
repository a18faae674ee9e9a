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


def converted_twins(t_model, e_model, calib: list, backend: str = "x86"):
    """torch.ao's and ember's convert_fx of the twins after prepare_fx with the default
    qconfig mapping of `backend` and calibration on the same NumPy batches."""
    import torch.ao.quantization as tq
    import torch.ao.quantization.quantize_fx as tqfx
    import ember.ao.quantization as eq
    import ember.ao.quantization.quantize_fx as eqfx
    t_prep = tqfx.prepare_fx(t_model, tq.get_default_qconfig_mapping(backend),
                             (torch.from_numpy(calib[0]),))
    with ember.no_grad():
        e_prep = eqfx.prepare_fx(e_model, eq.get_default_qconfig_mapping(backend),
                                 (ember.tensor(calib[0]),))
        for c in calib:
            t_prep(torch.from_numpy(c))
            e_prep(ember.tensor(c))
        return tqfx.convert_fx(t_prep), eqfx.convert_fx(e_prep)


def int8_layers(gm, op: str | None = None) -> list:
    """(name, module) for the converted model's int8 Linear / conv modules; `op`
    ("linear", "conv2d", "conv3d") keeps one kind."""
    from ember.ao.nn.quantized.modules import Conv2d, Conv3d, Linear, _WeightedQuantized
    kinds = {"linear": Linear, "conv2d": Conv2d, "conv3d": Conv3d}
    want = kinds[op] if op else _WeightedQuantized
    return [(n, m) for n, m in gm.named_modules() if isinstance(m, want)]


def output_scale(gm) -> float:
    """The output scale of the int8 layer whose value the model's output dequantizes."""
    out = next(n for n in gm.graph.nodes if n.op.value == "output")
    node = out.args[0]
    while not (node.op.value == "call_module" and hasattr(
            gm.get_submodule(str(node.target)), "scale")):
        node = node.args[0]
    return float(gm.get_submodule(str(node.target)).scale)


def ao_modules(model) -> list:
    """(name, class name) of a converted model's quantized modules (torch.ao.nn's or
    ember.ao.nn's; torch's Linear holds its packed weight in a `_packed_params` child)."""
    return [(n, type(m).__name__) for n, m in model.named_modules()
            if ".ao.nn." in type(m).__module__ and not n.endswith("_packed_params")]
