"""Fusion plans remembered on disk: a warm compile skips the greedy grouping search.

`plan_groups` tries every merge of a node into its producers' groups and asks codegen's
group checker (a full lowering of the candidate group) whether the result is still one
kernel: about a thousand lowerings for resnet18's training step, most of the host time
of its passes. The plan it returns depends only on the graph's structure (ops, arguments,
value metadata), the `pool_conversions_apart` option and ember's own code, so it is
stored under a hash of those: `<cache>/fuse/<key>.json` holds the groups as node
positions. A hit rebuilds the same groups without lowering anything; a different graph,
shape, dtype, layout or device, or an edited ember, has another key. A damaged entry is
ignored with a warning (and rewritten); `EMBER_CACHE_DIR=''` turns the cache off, and
graphs under MIN_NODES nodes are planned without it.

The directory is `EMBER_CACHE_DIR` (default `~/.cache/ember`), beside the kernel caches.
"""
from __future__ import annotations

import functools
import hashlib
import json
import operator
import os
import warnings
from pathlib import Path
from typing import Callable

from ..ir.disk_cache import cache_root, write_atomic
from ..ir.graph import Graph, Node
from ..ir.meta import TensorMeta

FORMAT = "ember-fuse-plan-1"
MIN_NODES = 200        # smaller graphs plan in milliseconds: not worth a file each


def cached_plan(graph: Graph, pool_conversions_apart: bool,
                plan: Callable[[Graph, bool], list]) -> list[list[Node]]:
    """`plan(graph, pool_conversions_apart)`'s groups, from the disk cache when this graph
    was planned before."""
    root = cache_root()
    nodes = list(graph.nodes)
    if root is None or len(nodes) < MIN_NODES:
        return plan(graph, pool_conversions_apart)
    path = root / "fuse" / f"{graph_key(nodes, pool_conversions_apart)}.json"
    found = _load(path, nodes)
    if found is not None:
        return found
    groups = plan(graph, pool_conversions_apart)
    position = {n: i for i, n in enumerate(nodes)}
    record = {"format": FORMAT, "nodes": len(nodes),
              "groups": [[position[n] for n in members] for members in groups]}
    try:
        write_atomic(path, json.dumps(record).encode())
    except OSError:
        pass                               # a read-only cache: plan again next time
    return groups


def _load(path: Path, nodes: list[Node]) -> list[list[Node]] | None:
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        return _damaged(path, f"{type(err).__name__}: {err}")
    try:
        if record["format"] != FORMAT or record["nodes"] != len(nodes):
            raise ValueError("another format or graph")
        groups = [[nodes[i] for i in members] for members in record["groups"]]
    except (KeyError, TypeError, IndexError, ValueError) as err:
        return _damaged(path, f"{type(err).__name__}: {err}")
    if any(not members for members in groups) or \
            len({id(n) for g in groups for n in g}) != sum(map(len, groups)):
        return _damaged(path, "empty or overlapping groups")
    return groups


def _damaged(path: Path, why: str) -> None:
    warnings.warn(f"ember: ignoring a damaged entry of the fusion plan cache ({path}: {why}); "
                  "fusion is planned again", RuntimeWarning, stacklevel=4)
    return None


# --- keys --------------------------------------------------------------------------------------
def graph_key(nodes: list[Node], pool_conversions_apart: bool) -> str:
    """SHA-256 of ember's code, the option and each node: its kind, target, arguments (nodes
    by position), users and value metadata (shape, dtype, strides, device)."""
    from ..ir.fused import _group_checker           # the code generator's legality check
    checker = ",".join(f"{getattr(c, '__module__', '?')}.{getattr(c, '__qualname__', '?')}"
                       for c in _group_checker)
    h = hashlib.sha256(f"{FORMAT}\n{code_fingerprint()}\n{checker}\n"
                       f"{pool_conversions_apart}\n".encode())
    position = {n: i for i, n in enumerate(nodes)}
    for i, node in enumerate(nodes):
        users = sorted(position.get(u, -1) for u in node.users)
        h.update(f"{i}|{node.op.value}|{_target(node.target)}|{_value(node.args, position)}|"
                 f"{_value(node.kwargs, position)}|{users}|"
                 f"{_meta(node.meta.get('val'))}\n".encode())
    return h.hexdigest()[:40]


def _target(target) -> str:
    if target is operator.getitem:
        return "getitem"
    name = getattr(target, "name", None)
    if isinstance(name, str):
        return f"{type(target).__name__}:{name}"
    if isinstance(target, str):
        return target
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', type(target).__name__)}"


def _value(value, position: dict) -> str:
    if isinstance(value, Node):
        return f"%{position.get(value, value.name)}"
    if isinstance(value, (list, tuple)):
        inner = ",".join(_value(v, position) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner})"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k!r}:{_value(v, position)}" for k, v in value.items()) + "}"
    if isinstance(value, TensorMeta):
        return _meta(value)
    if hasattr(value, "shape") and hasattr(value, "dtype"):     # an inline tensor or array:
        return f"{type(value).__name__}{tuple(value.shape)}{value.dtype}"   # its values don't
    return f"{type(value).__name__}:{value!r}"                # change the grouping


def _meta(val) -> str:
    if isinstance(val, TensorMeta):
        return f"T{val.shape}{val.dtype.name}{val.device}{val.strides}{val.memory_format}"
    if isinstance(val, (list, tuple)):
        return "(" + ",".join(_meta(v) for v in val) + ")"
    return f"{type(val).__name__}:{val!r}" if isinstance(val, (int, float, bool, str)) or \
        val is None else type(val).__name__


@functools.lru_cache(maxsize=None)
def code_fingerprint() -> str:
    """Size and modification time of every source file of ember: a plan made by other code
    is never reused."""
    package = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for folder, dirs, files in os.walk(package):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(".py"):
                stat = os.stat(os.path.join(folder, name))
                h.update(f"{folder[len(str(package)):]}/{name}:{stat.st_size}:"
                         f"{stat.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]
