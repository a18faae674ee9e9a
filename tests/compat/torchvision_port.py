"""torchvision (and torchaudio) imported against ember, for the compat tests.

`ported_torchvision()` returns torchvision's own Python package imported with `torch`
aliased to `ember` (porting.torch_as_ember), next to the real one (the oracle, loaded by
domain_oracles). The parts of torchvision that only exist to wire its C++ extension into
PyTorch's dispatcher and TorchScript ONNX exporter are replaced by empty modules, as they
would be on an install without the extension: the fake/autograd kernel registrations of
`torchvision::` ops and the ONNX symbolic functions for them; the one kernel detection
needs, NMS, is ember's own (ember.vision.ops.nms). Model code is untouched.
"""
from __future__ import annotations

import types

from domain_oracles import import_torchaudio, import_torchvision
from porting import torch_as_ember


def _empty(name: str, **attributes) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    return module


def _torchvision_shims() -> dict[str, types.ModuleType]:
    return {
        "torchvision._meta_registrations": _empty("torchvision._meta_registrations"),
        "torchvision._autograd_registrations": _empty("torchvision._autograd_registrations"),
        "torchvision.ops._register_onnx_ops": _empty(
            "torchvision.ops._register_onnx_ops", _register_custom_op=lambda: None),
    }


def _torchaudio_shims() -> dict[str, types.ModuleType]:
    extension = _empty("torchaudio._extension", _IS_TORCHAUDIO_EXT_AVAILABLE=False,
                       _IS_ALIGN_AVAILABLE=False, fail_if_no_align=lambda func: func)
    return {"torchaudio._extension": extension}


def reference_and_port(package: str):
    """(the torch-bound package, the ember-bound package), or None when not installed."""
    load = {"torchvision": import_torchvision, "torchaudio": import_torchaudio}[package]
    reference = load()
    if reference is None:
        return None
    shims = _torchvision_shims() if package == "torchvision" else _torchaudio_shims()
    with torch_as_ember(package, shims=shims) as ported:
        if package == "torchvision":
            _use_embers_nms(ported[package])
        return reference, ported[package]


def _use_embers_nms(torchvision) -> None:
    """torchvision.ops.nms calls the C++ kernel `torch.ops.torchvision.nms`; ember has its
    own NMS (ember.vision.ops.nms), put where batched_nms looks it up."""
    import ember.vision.ops
    torchvision.ops.boxes.nms = ember.vision.ops.nms
