"""ember.hub: torch.hub's download helpers (the cache directory, download_url_to_file,
load_state_dict_from_url). Loading models from GitHub repositories (hub.load) is
not provided."""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import urllib.request
from urllib.parse import urlparse  # noqa: F401 - torch.hub re-exports it

#: the hash prefix in a checkpoint's file name: resnet18-5c106cde.pth -> 5c106cde
HASH_REGEX = re.compile(r"-([a-f0-9]*)\.")

_hub_dir: str | None = None


def _get_torch_home() -> str:
    """$TORCH_HOME, else $XDG_CACHE_HOME/torch (~/.cache/torch): PyTorch's cache root,
    so checkpoints downloaded by either library are shared."""
    cache = os.getenv("XDG_CACHE_HOME", os.path.join("~", ".cache"))
    return os.path.expanduser(os.getenv("TORCH_HOME", os.path.join(cache, "torch")))


def get_dir() -> str:
    """The directory downloaded checkpoints are kept in (set_dir, else <torch home>/hub)."""
    return _hub_dir if _hub_dir is not None else os.path.join(_get_torch_home(), "hub")


def set_dir(d) -> None:
    global _hub_dir
    _hub_dir = os.path.expanduser(os.fspath(d))


def download_url_to_file(url: str, dst: str, hash_prefix: str | None = None,
                         progress: bool = True) -> None:
    """Downloads `url` to `dst` through a temporary file; checks the SHA-256 prefix."""
    dst = os.path.expanduser(dst)
    digest = hashlib.sha256()
    folder = os.path.dirname(dst) or "."
    with tempfile.NamedTemporaryFile(delete=False, dir=folder) as partial:
        try:
            with urllib.request.urlopen(urllib.request.Request(
                    url, headers={"User-Agent": "ember.hub"})) as response:
                while chunk := response.read(1 << 20):
                    partial.write(chunk)
                    digest.update(chunk)
            partial.close()
            if hash_prefix is not None and not digest.hexdigest().startswith(hash_prefix):
                raise RuntimeError(f'invalid hash value (expected "{hash_prefix}", got '
                                   f'"{digest.hexdigest()}")')
            shutil.move(partial.name, dst)
        finally:
            if os.path.exists(partial.name):
                os.remove(partial.name)


def load_state_dict_from_url(url: str, model_dir: str | None = None, map_location=None,
                             progress: bool = True, check_hash: bool = False,
                             file_name: str | None = None, weights_only: bool = False):
    """Downloads a checkpoint once into the hub cache and loads it with ember.load."""
    from .frontend.serialization import load
    model_dir = model_dir or os.path.join(get_dir(), "checkpoints")
    os.makedirs(model_dir, exist_ok=True)
    filename = file_name or os.path.basename(urlparse(url).path)
    cached = os.path.join(model_dir, filename)
    if not os.path.exists(cached):
        match = HASH_REGEX.search(filename) if check_hash else None
        download_url_to_file(url, cached, match.group(1) if match else None, progress)
    return load(cached, map_location=map_location, weights_only=weights_only)
