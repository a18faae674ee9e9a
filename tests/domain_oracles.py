"""torchvision and torchaudio as test oracles, importable even where their C++ extensions
cannot load.

The wheels that pip offers next to torch 2.13 (CPU) are built against other torch/CUDA
builds: torchvision's `_C` and torchaudio's `_torchaudio` fail to load, and the packages
then fail at import (torchvision registers fake kernels for `torchvision::nms`, which the
missing extension should have defined). Their model, transform and box code is pure Python
on top of torch, so for tests we import them without the extensions:

- torchvision: `torchvision._meta_registrations` is replaced by an empty module, and
  `torchvision.ops.boxes.nms` (the one op the detection models need from the extension) by
  a greedy NMS written here from its definition, in torch.
- torchaudio: `torchaudio._extension` is replaced by a module saying "no extension".

Anything else that reaches for the extensions raises, as it would on a broken install.
Each function returns the module, or None where the package is not installed.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types


def _forget(package: str) -> None:
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        del sys.modules[name]


def _greedy_nms(boxes, scores, iou_threshold: float):
    """Indices of the boxes kept by greedy NMS, by decreasing score (torchvision.ops.nms's
    definition: a box is dropped when its IoU with a kept, higher-scoring box exceeds the
    threshold)."""
    import torch
    order = torch.argsort(scores, descending=True, stable=True)
    x1, y1, x2, y2 = boxes.unbind(1)
    areas = (x2 - x1) * (y2 - y1)
    suppressed = torch.zeros(len(boxes), dtype=torch.bool)
    keep = []
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        w = (torch.minimum(x2[i], x2) - torch.maximum(x1[i], x1)).clamp(min=0)
        h = (torch.minimum(y2[i], y2) - torch.maximum(y1[i], y1)).clamp(min=0)
        inter = w * h
        suppressed |= inter / (areas[i] + areas - inter) > iou_threshold
    return torch.tensor(keep, dtype=torch.int64)


def import_torchvision():
    """torchvision, or None if it is not installed."""
    if importlib.util.find_spec("torchvision") is None:
        return None
    try:
        return importlib.import_module("torchvision")
    except (RuntimeError, OSError, ImportError):
        _forget("torchvision")
    sys.modules["torchvision._meta_registrations"] = types.ModuleType(
        "torchvision._meta_registrations")
    torchvision = importlib.import_module("torchvision")
    boxes = importlib.import_module("torchvision.ops.boxes")
    boxes.nms = _greedy_nms          # batched_nms looks nms up in this module
    return torchvision


def import_torchaudio():
    """torchaudio, or None if it is not installed."""
    if importlib.util.find_spec("torchaudio") is None:
        return None
    try:
        return importlib.import_module("torchaudio")
    except (RuntimeError, OSError, ImportError):
        _forget("torchaudio")
    stub = types.ModuleType("torchaudio._extension")
    stub._IS_TORCHAUDIO_EXT_AVAILABLE = False
    stub._IS_ALIGN_AVAILABLE = False
    stub.fail_if_no_align = lambda func: func
    sys.modules["torchaudio._extension"] = stub
    return importlib.import_module("torchaudio")
