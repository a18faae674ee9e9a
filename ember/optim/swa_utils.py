"""ember.optim.swa_utils: re-exports ember.frontend.optim.swa_utils."""
from ..frontend.optim.swa_utils import *  # noqa: F401,F403
from ..frontend.optim.swa_utils import __all__  # noqa: F401
