"""AMX tiles or the VNNI kernels for one int8 convolution shape, timed once per shape and
host, remembered in this process and on disk (as codegen/triton/autotune.py remembers a
convolution's Triton-or-cuDNN choice).

Why: AMX tiles multiply 16 x 64-byte A rows by 64 x 16 B columns per instruction, so a
convolution's k is padded to a multiple of 64 bytes and its output channels to 32, each
task copies its A rows into a tile buffer, and C tiles go through memory to the
epilogue. A small convolution pays all of it for little work: the digits CNN's first
layer (1 -> 16 channels, k = 12 bytes computed as 64, 16 columns as 32) ran 0.71-0.76 ms
of kernel on AMX against 0.26 ms on the VNNI kernels (one thread, docs/quantization.md
"The small CNN on AMX hosts"). Both kernels give the same int32 sums and the same
epilogue, so the choice changes the time only, never a bit of the result.

The choice is made by timing the layer's own call (its input, weight and thread count)
on each kernel, interleaved, the best of a few rounds each, the first time a shape is
seen. The clock is the process's CPU time (all its threads), not the wall clock: on a
host shared with other jobs a thread taken off its core stops that clock, where wall
times then said anything (at load 20 resnet18's 7x7 x 512 conv timed 8.0 ms of wall on
AMX against 5.2 on VNNI, where its CPU time is ~1.5 ms against ~2.8). AMX tiles, the
default, keep a shape unless VNNI took at most MARGIN of their time (near ties stay
where they were). The winner is kept per description (input shape and layout, weight
shape, stride, padding, dilation, fused add, threads) in this process and in
`<EMBER_CACHE_DIR>/qgemm/choice-<key>.json`, keyed also by the CPU model and the
kernels' sources (a changed kernel is timed again). `EMBER_QGEMM=amx` takes AMX tiles wherever
they apply (no timing), `EMBER_QGEMM=vnni` turns AMX off altogether (qgemm_amx.available).
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import time
import warnings
from pathlib import Path
from typing import Callable

from ..ir.disk_cache import cache_root, write_atomic

FORMAT = "ember-qgemm-choice-2"
KERNELS = ("amx", "vnni")
DEFAULT, MARGIN = "amx", 0.9
# timing: rounds of every kernel (interleaved) until MAX_ROUNDS or BUDGET_S spent
MIN_ROUNDS, MAX_ROUNDS, BUDGET_S = 3, 9, 0.05

_MEMO: dict[str, str] = {}


def forced() -> str | None:
    """The kernel EMBER_QGEMM names ("amx"; "vnni" never reaches here: AMX is off), or
    None for the timed choice."""
    mode = os.environ.get("EMBER_QGEMM", "").lower()
    return mode if mode in KERNELS else None


def choose(description: str, runs: dict[str, Callable[[], object]]) -> str:
    """The faster of runs' kernels ({name: a call of the layer on that kernel}) for the
    convolution `description` names: EMBER_QGEMM's, the one kept in this process or on
    disk, else timed now and kept."""
    mode = forced()
    if mode in runs:
        return mode
    hit = _MEMO.get(description)
    if hit is None:
        hit = _stored(description)
    if hit in runs:
        _MEMO[description] = hit
        return hit
    timings = time_kernels(runs)
    choice = _winner(timings)
    _MEMO[description] = choice
    _record(description, choice, timings)
    return choice


def _winner(timings: dict[str, float]) -> str:
    """The fastest kernel, but DEFAULT unless another took at most MARGIN of its time."""
    best = min(timings, key=timings.get)
    if DEFAULT in timings and timings[best] > MARGIN * timings[DEFAULT]:
        return DEFAULT
    return best


def time_kernels(runs: dict[str, Callable[[], object]]) -> dict[str, float]:
    """{name: least process CPU seconds of one call}: each run once to warm (compile, pack
    the weight, make the prepared call), then rounds of all of them in turn, the least of
    each (the least disturbed: other work on the host slows both alike)."""
    for run in runs.values():
        run()
    best = {name: float("inf") for name in runs}
    start = time.perf_counter()
    for r in range(MAX_ROUNDS):
        for name, run in runs.items():
            t0 = time.process_time()
            run()
            best[name] = min(best[name], time.process_time() - t0)
        if r + 1 >= MIN_ROUNDS and time.perf_counter() - start > BUDGET_S:
            break
    return best


def forget() -> None:
    """Drop the choices kept in this process (tests; the disk entries stay)."""
    _MEMO.clear()


# --- on disk -----------------------------------------------------------------------------------
def _path(description: str) -> Path | None:
    root = cache_root()
    if root is None:
        return None
    key = hashlib.sha256(f"{FORMAT}\n{_host()}\n{_sources()}\n{description}".encode())
    return root / "qgemm" / f"choice-{key.hexdigest()[:32]}.json"


def _stored(description: str) -> str | None:
    path = _path(description)
    if path is None:
        return None
    try:
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT or data.get("choice") not in KERNELS:
            return None         # another version's entry: timed again and rewritten
        return data["choice"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        warnings.warn(f"ember: ignoring a damaged int8 kernel choice ({path}: "
                      f"{type(err).__name__}: {err}); it is timed again", RuntimeWarning,
                      stacklevel=3)
        return None


def _record(description: str, choice: str, timings: dict[str, float]) -> None:
    path = _path(description)
    if path is None:
        return
    record = {"format": FORMAT, "host": _host(), "conv": description, "choice": choice,
              "ms": {k: round(v * 1e3, 4) for k, v in timings.items()}}
    try:
        write_atomic(path, json.dumps(record, indent=1).encode())
    except OSError:         # a read-only cache: the choice is kept in this process only
        pass


@functools.lru_cache(maxsize=1)
def _host() -> str:
    """The CPU model and LLVM's name for its core (a virtual machine's model name may be
    a generic "Intel(R) Xeon(R) Processor"; another core weighs AMX against VNNI
    otherwise)."""
    from .llvm.target import host_target
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f
                          if line.startswith("model name")), "")
    except OSError:
        pass
    return f"{model} ({host_target().cpu})"


@functools.lru_cache(maxsize=1)
def _sources() -> str:
    """A digest of the kernels' and their driver's sources: a changed kernel makes every
    stored choice a miss."""
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for p in (here / "llvm" / "qgemm.py", here / "llvm" / "qgemm_amx.py",
              here.parent / "runtime" / "lite_int8.py"):
        try:
            h.update(p.read_bytes())
        except OSError:
            h.update(str(p).encode())
    return h.hexdigest()[:16]
