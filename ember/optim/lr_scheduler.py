"""ember.optim.lr_scheduler: re-exports ember.frontend.optim.lr_scheduler."""
from ..frontend.optim.lr_scheduler import *  # noqa: F401,F403
from ..frontend.optim.lr_scheduler import __all__, _LRScheduler  # noqa: F401
