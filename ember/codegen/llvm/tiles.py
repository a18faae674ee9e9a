"""CPU register-tile autotuning for the GEMM and the implicit-GEMM conv (`ember tune`).

gemm.tile_for(isa, n) picks a product's register tile (MR x NR) from a fixed table by
its column count n (conv: its output channels). This module times other tiles on this
machine for the products a model actually runs and records the fastest per (ISA, n)
in the on-disk cache, `<EMBER_CACHE_DIR>/llvm/cpu-tiles-<isa>.json`; tile_for reads
that record first. Packaging and ember.compile read it when they build a plan (a
built plan or artifact keeps the tile it was built with).

The tile never changes results: each element of C is one FMA chain over k in the same
order whatever the tile (K blocking is the same), so a tuned plan is bit for bit an
untuned one (tests/aot/test_tune.py checks it on every candidate).
"""
from __future__ import annotations

import functools
import json
import os
import threading
import time
from pathlib import Path
from typing import Callable

from .target import Isa

# (MR, NR) candidates per ISA: NR a multiple of the vector width dividing the 512-wide
# B block, and MR * NR / lanes accumulators within the vector registers (32 zmm, 16 ymm).
CANDIDATES = {
    Isa.AVX512: ((6, 64), (4, 64), (12, 32), (14, 32), (8, 32), (12, 16), (24, 16), (16, 16)),
    Isa.AVX2: ((6, 16), (4, 16), (12, 8), (3, 32)),
    Isa.PORTABLE: ((4, 8),),
}
FORMAT = "ember-cpu-tiles-1"

_TUNED: dict[str, dict[int, tuple[int, int]]] = {}
_LOCK = threading.Lock()


def tuned_path(isa: Isa) -> Path | None:
    return _tuned_path(isa, os.environ.get("EMBER_CACHE_DIR"), os.environ.get("HOME"))


@functools.lru_cache(maxsize=64)
def _tuned_path(isa: Isa, cache_env: str | None, home: str | None) -> Path | None:
    """Per cache setting (eager builds a conv per call: no path arithmetic each time)."""
    from .cache import cache_dir
    d = cache_dir()
    return None if d is None else d / f"cpu-tiles-{isa.value}.json"


def tuned_tiles(isa: Isa) -> dict[int, tuple[int, int]]:
    """n -> (MR, NR) recorded by `ember tune` for this ISA (empty when none)."""
    path = tuned_path(isa)
    if path is None:
        return {}
    key = str(path)
    with _LOCK:
        if key not in _TUNED:
            _TUNED[key] = _read(path)
        return _TUNED[key]


def _read(path: Path) -> dict[int, tuple[int, int]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return {}
    out = {}
    for n, tile in data.get("tiles", {}).items():
        if isinstance(tile, list) and len(tile) == 2 and all(isinstance(t, int) for t in tile):
            out[int(n)] = (tile[0], tile[1])
    return out


def record(isa: Isa, tiles: dict[int, tuple[int, int]], times: dict | None = None) -> Path:
    """Merge `tiles` into this ISA's record on disk (atomically) and in this process."""
    path = tuned_path(isa)
    if path is None:
        raise OSError("EMBER_CACHE_DIR is '' (the disk cache is off): nowhere to record "
                      "tuned tiles")
    merged = dict(_read(path))
    merged.update(tiles)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"format": FORMAT, "isa": isa.value,
            "tiles": {str(n): list(t) for n, t in sorted(merged.items())},
            "seconds": {str(n): s for n, s in (times or {}).items()}}
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(body, indent=1))
    os.replace(tmp, path)
    with _LOCK:
        _TUNED[str(path)] = merged
    return path


def time_tile(isa: Isa, tile: tuple[int, int], m: int, n: int, k: int,
              repeats: int = 3) -> float:
    """Median seconds of one (m x k) @ (k x n) float32 product with `tile` on the pool."""
    import numpy as np
    from ...runtime.threads import default_pool
    from .gemm import _run, gemm_kernel
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    out = np.empty((m, n), np.float32)
    kernel = gemm_kernel(isa, *tile)
    _run(kernel, a, b, out, m, n, k, False, default_pool(), None)      # warm: compile, pages
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        _run(kernel, a, b, out, m, n, k, False, default_pool(), None)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def tune(problems: list[tuple[int, int, int]], isa: Isa, candidates=None, repeats: int = 3,
         step: Callable[[str], None] | None = None) -> dict[int, tuple[tuple[int, int], dict]]:
    """For each distinct n among `problems` (m, n, k), the candidate tile with the least
    total time over that n's problems: n -> (tile, {tile: seconds})."""
    candidates = tuple(candidates or CANDIDATES[isa])
    by_n: dict[int, list] = {}
    for m, n, k in problems:
        if m > 0 and n > 0 and k > 0 and (m, n, k) not in by_n.setdefault(n, []):
            by_n[n].append((m, n, k))
    best = {}
    for n, shapes in sorted(by_n.items()):
        seconds = {}
        for tile in candidates:
            seconds[tile] = sum(time_tile(isa, tile, m, n_, k, repeats) for m, n_, k in shapes)
            if step is not None:
                step(f"n={n} tile {tile[0]}x{tile[1]}")
        best[n] = (min(seconds, key=seconds.get), seconds)
    return best


def work(problems, candidates_count: int) -> int:
    """How many timings tune() makes (for a progress bar)."""
    return len({n for _, n, _ in problems if n > 0}) * candidates_count
