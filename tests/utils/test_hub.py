"""ember.hub: the checkpoint cache directory and download_url_to_file (a file:// URL,
so the test needs no network), as torch.hub."""
from __future__ import annotations

import hashlib
import os

import pytest
import torch

import ember
import ember.hub


def test_get_dir_and_hash_regex_match_torch(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert ember.hub.get_dir() == torch.hub.get_dir() == os.path.join(str(tmp_path), "hub")
    assert ember.hub.HASH_REGEX.pattern == torch.hub.HASH_REGEX.pattern
    assert ember.hub.HASH_REGEX.search("resnet18-5c106cde.pth").group(1) == "5c106cde"


def test_download_url_to_file_checks_the_hash(tmp_path):
    source = tmp_path / "weights.bin"
    source.write_bytes(b"ember weights")
    digest = hashlib.sha256(b"ember weights").hexdigest()
    target = tmp_path / "copy.bin"
    ember.hub.download_url_to_file(source.as_uri(), str(target), hash_prefix=digest[:8])
    assert target.read_bytes() == b"ember weights"
    with pytest.raises(RuntimeError, match="invalid hash value"):
        ember.hub.download_url_to_file(source.as_uri(), str(tmp_path / "bad.bin"),
                                       hash_prefix="00000000")
    assert not (tmp_path / "bad.bin").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.bin", "weights.bin"]
