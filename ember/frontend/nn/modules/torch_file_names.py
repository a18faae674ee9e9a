"""torch.nn.modules' file names that ember's layout lacks, as modules of the same layers.

Library code imports layers from the file PyTorch defines them in (`from
torch.nn.modules.batchnorm import BatchNorm2d, _BatchNorm`); ember groups its layers
differently, so each such name is a module here holding the same classes. The lazy
placeholders are also put into ember.nn.parameter, where torch has them.
"""
from __future__ import annotations

import sys
import types

from . import activation_extra, normalization, normalization_extra, resampling

_FILES = {
    "batchnorm": (normalization, ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm",
                                  "LazyBatchNorm1d", "LazyBatchNorm2d", "LazyBatchNorm3d",
                                  "_BatchNorm")),
    "instancenorm": (normalization_extra, ("InstanceNorm1d", "InstanceNorm2d",
                                           "InstanceNorm3d", "LazyInstanceNorm1d",
                                           "LazyInstanceNorm2d", "LazyInstanceNorm3d",
                                           "_InstanceNorm")),
    "upsampling": (resampling, ("Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d")),
    "pixelshuffle": (resampling, ("PixelShuffle", "PixelUnshuffle")),
    "channelshuffle": (activation_extra, ("ChannelShuffle",)),
    "distance": (activation_extra, ("PairwiseDistance", "CosineSimilarity")),
    "fold": (resampling, ("Fold", "Unfold")),
}


def _register() -> None:
    from .. import modules as package
    for file_name, (_, names) in _FILES.items():
        module = types.ModuleType(f"{package.__name__}.{file_name}",
                                  f"torch.nn.modules.{file_name}'s layers")
        for name in names:
            setattr(module, name, getattr(package, name, None) or _lookup(name))
        module.__all__ = [name for name in names if not name.startswith("_")]
        sys.modules[module.__name__] = module
        setattr(package, file_name, module)


def _lookup(name: str):
    """A layer not re-exported by ember.nn.modules (a private base class)."""
    for home, _ in _FILES.values():
        if hasattr(home, name):
            return getattr(home, name)
    raise AttributeError(f"ember.nn has no layer named {name!r}")


def _parameter_names() -> None:
    """torch.nn.parameter also holds the lazy placeholders, which ember defines with the
    lazy layers (they subclass Parameter, so parameter.py cannot import them)."""
    from .. import parameter
    from . import lazy
    parameter.UninitializedParameter = lazy.UninitializedParameter
    parameter.UninitializedBuffer = lazy.UninitializedBuffer
    parameter.is_lazy = _is_lazy


def _is_lazy(tensor) -> bool:
    """torch.nn.parameter.is_lazy: a parameter or buffer a lazy layer has not sized yet."""
    from . import lazy
    return isinstance(tensor, (lazy.UninitializedParameter, lazy.UninitializedBuffer))


_register()
_parameter_names()
