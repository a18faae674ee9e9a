"""Generated Triton sources on disk, imported as modules.

`triton.jit` reads a kernel's source with `inspect`, so a generated function must
live in a real file: each kernel is written to `<cache>/src/k_<key>.py` (the key is
the SHA-256 of its text and launch settings, so equal kernels share one file) and
imported from there. Writes are atomic (temporary file, then rename), so parallel
processes never import half a file.

The directory is `EMBER_CACHE_DIR/triton` (default `~/.cache/ember/triton`); cubins
and autotuning results live beside the sources (compile.py, autotune.py).
"""
from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from pathlib import Path

from ...ir.disk_cache import cache_root, write_atomic  # noqa: F401 - autotune/compile write through it
from .source import MODULE_HEADER, GeneratedKernel

_MODULES: dict[str, object] = {}


def cache_dir() -> Path:
    """`EMBER_CACHE_DIR/triton`; generated sources need a directory even when the LLVM
    cache is off (EMBER_CACHE_DIR=''), so '' means a per-user temporary directory."""
    base = cache_root() or Path(tempfile.gettempdir()) / f"ember-{os.getuid()}"
    return base / "triton"


def module_text(kernel: GeneratedKernel) -> str:
    return MODULE_HEADER + "\n\n" + kernel.source


def source_path(kernel: GeneratedKernel) -> Path:
    return cache_dir() / "src" / f"k_{kernel.key()}.py"


def load(kernel: GeneratedKernel):
    """The `@triton.jit` function of a generated kernel (written and imported once)."""
    key = kernel.key()
    module = _MODULES.get(key)
    if module is None:
        path = source_path(kernel)
        text = module_text(kernel)
        if not path.exists() or path.read_text() != text:
            write_atomic(path, text.encode())
        spec = importlib.util.spec_from_file_location(f"ember_triton_k_{key}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module           # Triton resolves globals through the module
        spec.loader.exec_module(module)
        _MODULES[key] = module
    return getattr(module, kernel.name)


def launch(kernel: GeneratedKernel, buffers: list) -> None:
    """Run through Triton's own launcher (the interpreter in tests, or a GPU with Triton):
    `buffers` are tensors in `launch.buffers` order (inputs then outputs)."""
    spec = kernel.launch
    if len(buffers) != len(spec.args):
        raise ValueError(f"{spec.name} takes {len(spec.args)} buffers "
                         f"({', '.join(spec.buffers)}), got {len(buffers)}")
    if spec.grid[0] * spec.grid[1] * spec.grid[2] == 0:
        return                                     # empty iteration space: nothing to launch
    fn = load(kernel)
    # the bound sizes of a shape-generic kernel follow the buffers
    fn[spec.grid](*buffers, *spec.bound(), **spec.constexprs, num_warps=spec.num_warps,
                  num_stages=spec.num_stages)
