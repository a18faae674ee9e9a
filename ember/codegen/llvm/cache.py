"""On-disk cache of compiled object code, keyed by what determines the machine code.

A key is the SHA-256 of the unoptimized IR text, the target CPU name and feature
string, llvmlite's version (which pins LLVM's) and `FORMAT`, so a warm process loads
object code without parsing, optimizing or generating anything. Entries are written
atomically (temporary file, then rename), so concurrent processes never read half a
file, and each carries the SHA-256 of its object code: LLVM's loader crashes the
process on a damaged object file, so a corrupt, truncated or unreadable entry must
be a miss (and is recompiled and overwritten), never a load.

A kernel whose module is built by a function from a few plain arguments (the int8
kernels, the GEMM and conv tiles) is also found by a recipe key: the builder's name, its
arguments' repr, the target, the host CPU, and a digest of every source file of the
package (any edit to ember makes every recipe a miss). The recipe key names the IR key
(an alias file), so a warm process loads such a kernel without building its module or
printing its IR, which cost more than loading it (resnet18's int8 AMX kernels: ~2.5 s of
a warm first call, against ~20 ms to load their object code).

The directory is `EMBER_CACHE_DIR/llvm` (default `~/.cache/ember/llvm`); setting
`EMBER_CACHE_DIR` to an empty string turns the disk cache off.
"""
from __future__ import annotations

import functools
import hashlib
import re
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


def recipe_key(recipe: str, target: Target, host: Target) -> str:
    """The alias key of a module built by `recipe` (builder and arguments) for target."""
    h = hashlib.sha256()
    for part in (FORMAT, "recipe", llvmlite.__version__, _package_digest(), target.cpu,
                 target.features, host.cpu, host.features, recipe):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def _package_digest() -> str:
    """SHA-256 of every source file of the package (paths and contents, in order): what a
    builder's output can depend on beyond its arguments."""
    root = Path(__file__).resolve().parents[2]
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.py")):
        h.update(str(p.relative_to(root)).encode())
        h.update(b"\0")
        h.update(p.read_bytes())
    return h.hexdigest()


_HEX_KEY = re.compile(r"[0-9a-f]{64}")


def load_alias(recipe: str) -> str | None:
    """The IR key stored under a recipe key, or None."""
    d = cache_dir()
    if d is None:
        return None
    try:
        key = (d / f"recipe-{recipe}.key").read_text().strip()
    except OSError:
        return None
    return key if _HEX_KEY.fullmatch(key) else None


def store_alias(recipe: str, key: str) -> None:
    d = cache_dir()
    if d is None:
        return
    try:
        write_atomic(d / f"recipe-{recipe}.key", key.encode())
    except OSError:
        pass


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
