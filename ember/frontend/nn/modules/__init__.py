"""ember.nn layers: one file per family, all re-exported here."""
from .module import Module, RemovableHandle, StateDictError  # noqa: F401
