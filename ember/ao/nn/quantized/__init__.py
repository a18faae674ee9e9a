"""ember.ao.nn.quantized: quantized modules (dynamic quantization's Linear)."""
from . import dynamic  # noqa: F401
