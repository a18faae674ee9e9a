"""torch._inductor's AOT entry points under their names, over ember.aot:
`aoti_compile_and_package(ep, package_path=...)` writes an artifact of an
ExportedProgram (a temporary .pt2 path when none is given) and returns its path;
`aoti_load_package(path)` loads it as a callable."""
from __future__ import annotations

import os
import tempfile


def aoti_compile_and_package(exported_program, _deprecated_unused_args=None,
                             _deprecated_unused_kwargs=None, *, package_path=None,
                             inductor_configs=None) -> str:
    from .aot import compile_and_package
    if package_path is None:
        handle, package_path = tempfile.mkstemp(suffix=".pt2")
        os.close(handle)
    return str(compile_and_package(exported_program, package_path))


def aoti_load_package(path, run_single_threaded: bool = False, device_index: int = -1,
                      model_name: str | None = None):
    from .aot import load_package
    return load_package(path, model_name=model_name)
