"""ember.nn.qat: torch.nn.qat, the older name of ember.ao.nn.qat."""
from ..ao.nn.qat import *  # noqa: F401,F403
