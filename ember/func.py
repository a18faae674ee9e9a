"""ember.func: torch.func's composable transforms (see ember/frontend/func)."""
from .frontend.func import *  # noqa: F401,F403
from .frontend.func import __all__  # noqa: F401
