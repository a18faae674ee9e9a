"""On-disk cache of compiled object code, keyed by what determines the machine code.

A key is the SHA-256 of the unoptimized IR text, the target CPU name and feature
string, llvmlite's version (which pins LLVM's) and `FORMAT`, so a warm process loads
object code without parsing, optimizing or generating anything. Entries are written
atomically (temporary file, then rename), so concurrent processes never read half a
file, and each carries the SHA-256 of its object code: LLVM's loader crashes the
process on a damaged object file, so a corrupt, truncated or unreadable entry must
be a miss (and is recompiled and overwritten), never a load.

The directory is `EMBER_CACHE_DIR/llvm` (default `~/.cache/ember/llvm`); setting
`EMBER_CACHE_DIR` to an empty string turns the disk cache off.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import llvmlite

from ...ir.disk_cache import cache_root, write_atomic
from .target import Target

FORMAT = "ember-llvm-obj-1"   # bump when what the cache stores changes meaning
_MAGIC = b"EMBERLLVMOBJ1\n"
_DIGEST = 32


def cache_dir() -> Path | None:
    """Where object code lives, or None when `EMBER_CACHE_DIR` is set to ''."""
    root = cache_root()
    return None if root is None else root / "llvm"


def cache_key(ir_text: str, target: Target) -> str:
    h = hashlib.sha256()
    for part in (FORMAT, llvmlite.__version__, target.cpu, target.features, ir_text):
        h.update(part.encode())
        h.update(b"\0")          # separator: ("ab","c") and ("a","bc") hash differently
    return h.hexdigest()


def load(key: str) -> bytes | None:
    """The object code stored under `key`, or None."""
    d = cache_dir()
    if d is None:
        return None
    try:
        data = (d / f"{key}.o").read_bytes()
    except OSError:
        return None
    header = len(_MAGIC) + _DIGEST
    if not data.startswith(_MAGIC) or len(data) <= header:
        return None
    obj = data[header:]
    if hashlib.sha256(obj).digest() != data[len(_MAGIC):header]:
        return None
    return obj


def store(key: str, object_code: bytes) -> None:
    """Save object code under `key`; a read-only or full disk only costs the next compile."""
    d = cache_dir()
    if d is None:
        return
    try:
        write_atomic(d / f"{key}.o",
                     _MAGIC + hashlib.sha256(object_code).digest() + object_code)
    except OSError:
        pass
