"""ember.nn.quantizable: torch.nn.quantizable, the older name of ember.ao.nn.quantizable."""
from ..ao.nn.quantizable import *  # noqa: F401,F403
from ..ao.nn.quantizable import modules  # noqa: F401
