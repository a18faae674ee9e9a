"""`import ember.fx` — re-exports ember.frontend.fx."""
from .frontend.fx import *  # noqa: F401,F403
from .frontend.fx import __all__  # noqa: F401
