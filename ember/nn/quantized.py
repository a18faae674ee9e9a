"""ember.nn.quantized: torch.nn.quantized, the older name of ember.ao.nn.quantized."""
from ..ao.nn.quantized import *  # noqa: F401,F403
from ..ao.nn.quantized import FloatFunctional, dynamic  # noqa: F401
