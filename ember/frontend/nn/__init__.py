"""ember.nn: Module, Parameter, layers, functional and init, with PyTorch's names.

Users import it as `ember.nn` (see ember/nn/__init__.py, a thin alias package).
"""
from .parameter import Parameter, Buffer  # noqa: F401
from .modules import *  # noqa: F401,F403
from .modules import Module, RemovableHandle, StateDictError  # noqa: F401
from . import functional, init  # noqa: F401
