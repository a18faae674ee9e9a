"""Where ember's on-disk caches live, and how their entries are written: one place for
every layer that keeps one (LLVM object code, Triton sources and cubins, autotune
choices, fusion plans).

`EMBER_CACHE_DIR` names the root (default `~/.cache/ember`); set to '' it turns the
caches off (`cache_root()` is None)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def cache_root() -> Path | None:
    """The cache root, or None when `EMBER_CACHE_DIR` is ''."""
    root = os.environ.get("EMBER_CACHE_DIR")
    if root == "":
        return None
    return Path(root) if root else Path.home() / ".cache" / "ember"


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename, so a reader (another
    process) sees the old entry or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
