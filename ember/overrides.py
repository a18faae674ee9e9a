"""ember.overrides: torch.overrides (the `__torch_function__` protocol's helpers and
tables); implemented in ember/frontend/overrides.py."""
from .frontend import overrides as _impl
from .frontend.overrides import *  # noqa: F401,F403
from .frontend.overrides import (__all__, _get_overloaded_args, _push_mode,  # noqa: F401
                                 _pop_mode, _pop_mode_temporarily, _get_current_function_mode,
                                 _get_current_function_mode_stack,
                                 _is_torch_function_mode_enabled)
from .frontend.public import publish_functions as _publish

_publish(_impl, "ember.overrides")          # ember.overrides.has_torch_function.__module__
for _cls in (TorchFunctionMode, BaseTorchFunctionMode):  # noqa: F405
    _cls.__module__ = "ember.overrides"
