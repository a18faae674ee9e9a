"""Built cuDNN convolution plans on disk: a warm call deserializes them instead of
running cuDNN's heuristics and building (runtime/cuda/cudnn.ConvPlan).

A warm resnet18 training step built ~28 cuDNN plans on an H100 (0.24 s of its ~1 s
first call, all host work). The cuDNN frontend serializes a graph with a built plan
(`pygraph.serialize()`) and loads one back without heuristics or a build
(`pygraph.deserialize`), after which the plan is executed by tensor uid. So after a
build, the plan is serialized to `EMBER_CACHE_DIR/cudnn/<key>.plan` with the uids of
its tensors in ember's pointer order (x, w, y, bias, residual), and a later process
deserializes it.

- The key is SHA-256 of the spec (ConvSpec: direction, dtype, geometry, TF32,
  determinism, epilogue), the GPU (name and compute capability), cuDNN's backend
  version and the frontend's version: a plan is only reused where the build would
  have picked the same engine config (the heuristics depend on nothing else).
- Benchmark-mode specs (`cudnn.benchmark`: plans timed on the call's buffers) are
  neither stored nor loaded.
- A plan the frontend cannot serialize (older frontends serialize only some engines)
  is recorded as such, so later processes build it without trying again; a blob that
  fails to deserialize (a frontend that changed under the same version, a driver
  update) is a miss: the plan is built, and the entry rewritten. A damaged entry
  (wrong hash, unreadable header) is ignored with a `RuntimeWarning` and rewritten.
- `EMBER_CUDNN_PLAN_CACHE=0` turns this cache off; `EMBER_CACHE_DIR=''` turns it off
  with the others.

File layout: one header line of JSON (`uids`, `sha256` of the blob; or `unserializable`
with the reason), then the frontend's blob.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings

from ...ir import compile_times
from ...ir.disk_cache import cache_root, write_atomic
from . import driver

MAGIC = b"ember-cudnn-plan 1\n"


def enabled() -> bool:
    return os.environ.get("EMBER_CUDNN_PLAN_CACHE", "1") != "0" and cache_root() is not None


def _path(cudnn, spec, index: int):
    """The entry's file for `spec` on device `index` (see the module's docstring), or None
    where the device cannot be named (no entry is read or written then)."""
    try:
        device = driver.device_name(index), driver.capability(index)
    except Exception:  # noqa: BLE001 - a device the driver cannot describe: no cache
        return None
    identity = repr((spec, device, int(cudnn.backend_version()),
                     getattr(cudnn, "__version__", "?")))
    digest = hashlib.sha256(identity.encode()).hexdigest()[:32]
    return cache_root() / "cudnn" / f"{digest}.plan"


def load(cudnn, spec, index: int, handle):
    """(graph with its plan built, tensor uids in pointer order) from disk, or None (a
    miss, an entry that says the plan does not serialize, one that fails to load)."""
    if not enabled():
        return None
    path = _path(cudnn, spec, index)
    if path is None:
        return None
    try:
        data = path.read_bytes()
    except OSError:
        return None
    entry = _parse(data, path)
    if entry is None or "uids" not in entry[0]:
        return None
    header, blob = entry
    with compile_times.stage("cuDNN plans from disk (deserialize)"):
        try:
            graph = cudnn.pygraph(handle=handle)
            _deserialize(graph, handle, blob)
            int(graph.get_workspace_size())          # a plan that did not load says so here
        except Exception:  # noqa: BLE001 - the frontend's errors have no common base
            return None                               # built, and the entry rewritten
    compile_times.note("cuDNN plans from disk", 1)
    return graph, tuple(header["uids"])


def _deserialize(graph, handle, blob: bytes) -> None:
    """Load `blob` into `graph` through whichever form this frontend takes, the first that
    works: `deserialize(handle, data)` with the data as bytes (the Python `pygraph` of
    frontend 1.3x) or as a list of ints (the pybind11 binding casts them to a
    `std::vector<uint8_t>`, which it does not make from `bytes`; a `str` would be read as
    the graph's JSON, not a built plan), then the older `deserialize(data)`. Raises the
    last form's error when none works."""
    forms = ((handle, blob), (handle, list(blob)), (list(blob),))
    for i, args in enumerate(forms):
        try:
            graph.deserialize(*args)
            return
        except Exception:  # noqa: BLE001 - the frontend's errors have no common base
            if i == len(forms) - 1:
                raise


def _parse(data: bytes, path):
    """(header, blob) of an entry, or None with a warning when it is damaged."""
    try:
        if not data.startswith(MAGIC):
            raise ValueError("not a plan entry")
        line, _, blob = data[len(MAGIC):].partition(b"\n")
        header = json.loads(line)
        if not isinstance(header, dict):
            raise ValueError("its header is not an object")
    except ValueError as err:
        return _damaged(path, f"{type(err).__name__}: {err}")
    if "uids" in header and hashlib.sha256(blob).hexdigest() != header.get("sha256"):
        return _damaged(path, "its hash is not the one recorded in it")
    return header, blob


def _damaged(path, why: str) -> None:
    warnings.warn(f"ember: ignoring a damaged entry of the cuDNN plan cache ({path}: {why}); "
                  "the plan is built again", RuntimeWarning, stacklevel=4)
    return None


def store(cudnn, spec, index: int, graph, tensors) -> None:
    """Write the built plan of `graph` for later processes (nothing when the cache is off;
    an entry saying it does not serialize when the frontend refuses)."""
    if not enabled():
        return
    path = _path(cudnn, spec, index)
    if path is None or _unserializable(path):
        return                                    # known: serializing fails again
    try:
        blob = bytes(graph.serialize())
        header = {"uids": [int(t.get_uid()) for t in tensors],
                  "sha256": hashlib.sha256(blob).hexdigest()}
    except Exception as err:  # noqa: BLE001 - the frontend's errors have no common base
        blob, header = b"", {"unserializable": f"{type(err).__name__}: {str(err)[:200]}"}
    try:
        write_atomic(path, MAGIC + json.dumps(header).encode() + b"\n" + blob)
    except OSError:
        pass                                      # a read-only cache: builds next time too


def _unserializable(path) -> bool:
    marker = MAGIC + b'{"unserializable"'
    try:
        with open(path, "rb") as f:
            return f.read(len(marker)) == marker
    except OSError:
        return False
