"""torch.quantization, the older name of torch.ao.quantization: the same objects, and
`ember.quantization.quantize_fx` importable as a submodule."""
import sys as _sys

from .ao import quantization as _ao_quantization
from .ao.quantization import *  # noqa: F401,F403
from .ao.quantization import quantize_fx  # noqa: F401

_sys.modules.setdefault(__name__ + ".quantize_fx", quantize_fx)
__all__ = getattr(_ao_quantization, "__all__", [n for n in dir(_ao_quantization)
                                                 if not n.startswith("_")])
