"""`ember.export` — torch.export's module: `export`, `Dim`, `ExportedProgram`, `save`,
`load` (implemented in ember/compiler/export.py and export_dynamic.py).

The module itself is callable too, as ember's own spelling `ember.export(model, args)`.
"""
import sys as _sys
import types as _types

from ..compiler.export import (ExportGraphSignature, ExportedProgram, export,  # noqa: F401
                               load, save, UnflattenedModule, ModuleCallEntry,
                               ModuleCallSignature)
from ..compiler.export import unflatten_program as unflatten  # noqa: F401
from ..compiler.export_dynamic import (AdditionalInputs, Dim, ShapesCollection,  # noqa: F401
                                       dims)
from ..compiler.export import draft_export  # noqa: F401

__all__ = ["export", "Dim", "ExportedProgram", "ExportGraphSignature", "save", "load",
           "default_decompositions", "unflatten", "UnflattenedModule", "dims",
           "ShapesCollection", "AdditionalInputs", "draft_export", "ModuleCallEntry",
           "ModuleCallSignature"]


def default_decompositions() -> dict:
    """torch.export.default_decompositions: the table run_decompositions takes. ember's
    decompositions are its op registry's, so the table is empty and
    `ep.run_decompositions(default_decompositions())` decomposes as without one."""
    return {}


class _CallableModule(_types.ModuleType):
    def __call__(self, model, args: tuple = (), kwargs: dict | None = None, *,
                 dynamic_shapes=None, strict: bool = True) -> ExportedProgram:
        return export(model, args, kwargs, dynamic_shapes=dynamic_shapes, strict=strict)


_sys.modules[__name__].__class__ = _CallableModule
