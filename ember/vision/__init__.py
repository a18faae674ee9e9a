"""ember.vision: torchvision's names (transforms, io, ops, models, utils, tv_tensors) over
ember tensors.

`import ember.vision as torchvision`-style code runs with the package name changed.
Submodules load on first use, so importing ember.vision needs no image codec.
"""
import importlib as _importlib

__all__ = ["transforms", "io", "ops", "models", "utils", "tv_tensors"]


def __getattr__(name):
    if name in __all__:
        return _importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'ember.vision' has no attribute '{name}'")
