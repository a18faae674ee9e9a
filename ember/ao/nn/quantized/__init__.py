"""ember.ao.nn.quantized: quantized modules (dynamic quantization's Linear)."""
from . import dynamic  # noqa: F401
from .functional_modules import FloatFunctional  # noqa: F401,E402
