"""ember.optim.functional: pure optimizer updates (see ember.frontend.optim.functional)."""
from ..frontend.optim.functional import *  # noqa: F401,F403
from ..frontend.optim.functional import __all__  # noqa: F401
