"""Block configurations for generated GEMMs: a documented default, or the fastest of a
candidate list timed on the GPU, remembered on disk.

Key: SHA-256 of the GEMM's source generated with the default config (sizes, strides,
dtypes and precision are literals in it) plus the device name, so a tuned result is
reused only for the same problem on the same kind of GPU. Entries are JSON files in
`<cache>/autotune/` (cache.cache_dir()).

Without a GPU (CI, the interpreter) nothing is timed: `gemm_config` returns the stored
result for the device if one exists, else `default_config`:
  BLOCK_M = 128 where M >= 128, else its next power of two (at least 16, tl.dot's
  minimum); BLOCK_N = 256 where N >= 256 (and M >= 128) unless its tiles would fill at
  most half of an H100's 132 SMs (then 128), 128 where N >= 128, else the next power of
  two; BLOCK_K = 32 (64 for 16-bit types on tiles up to 128x128 when
  K >= 64); GROUP_M = 8; num_warps = 8 for tiles of 128x128 or more, else 4;
  num_stages = 3. 128x256x32 float32 with 3 stages uses 144 KiB of shared memory
  (sm_80 has 164 KiB, sm_90 228 KiB).
  Measured on an H100 (Triton 3.6, 4096^3 TF32, B K-major): 128x256x32/8 warps/3-4
  stages 305-306 TFLOP/s, 256x128x32 300-305, 128x128x32 289, 128x128x64 274;
  cuBLAS 380. Row-major B: 143 at best.
"""
from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict
from typing import Callable

from ...ir import compile_times, determinism
from .cache import cache_dir, write_atomic
from .gemm import SMS, GemmConfig, generate_gemm
from .source import literal_sizes, next_pow2

FORMAT = "ember-triton-autotune-1"
CPU_DEVICE = "no-gpu"

# Candidates timed on a GPU (tile shapes from Triton's matmul tutorial plus the K-major
# TF32 shapes measured on the H100); configs that do not fit the problem are skipped.
CANDIDATES = [
    GemmConfig(128, 256, 32, 8, 8, 3), GemmConfig(128, 256, 32, 8, 8, 4),
    GemmConfig(256, 128, 32, 8, 8, 3), GemmConfig(256, 128, 32, 8, 8, 4),
    GemmConfig(128, 128, 32, 8, 8, 4), GemmConfig(128, 128, 64, 8, 8, 3),
    GemmConfig(128, 64, 32, 8, 4, 4), GemmConfig(64, 128, 32, 8, 4, 4),
    GemmConfig(64, 64, 32, 8, 4, 4), GemmConfig(64, 256, 32, 8, 4, 4),
    GemmConfig(64, 32, 32, 8, 4, 4), GemmConfig(32, 64, 32, 8, 4, 4),
]


def default_config(problem) -> GemmConfig:
    block_m = 128 if problem.m >= 128 else max(16, next_pow2(problem.m))
    block_n = 256 if problem.n >= 256 and problem.m >= 128 else \
        128 if problem.n >= 128 else max(16, next_pow2(problem.n))
    if block_n == 256 and _few_tiles(problem, block_m, block_n):
        block_n = 128                   # twice the programs where half the SMs would idle
    wide = problem.dtype.itemsize == 2 and problem.k >= 64
    warps = 8 if block_m * block_n >= 128 * 128 else 4
    return GemmConfig(block_m, block_n, 64 if wide and block_n <= 128 else 32, 8, warps, 3)


def _few_tiles(problem, block_m: int, block_n: int) -> bool:
    """True where the output tiles fill at most half the SMs (gemm.split_k splits such
    GEMMs over K as well, when K is long)."""
    tiles = -(-problem.m // block_m) * -(-problem.n // block_n) * problem.batch
    return 2 * tiles <= SMS


def tuning_key(problem, device: str) -> str:
    with literal_sizes():       # the problem's sizes are in the text (one entry per shape)
        text = generate_gemm(problem, default_config(problem)).source
    return hashlib.sha256(f"{FORMAT}\n{device}\n{text}".encode()).hexdigest()[:32]


def _entry_path(problem, device: str):
    return cache_dir() / "autotune" / f"{tuning_key(problem, device)}.json"


@compile_times.timed("autotune cache lookups")
def stored_config(problem, device: str) -> GemmConfig | None:
    path = _entry_path(problem, device)
    try:
        data = json.loads(path.read_text())
        return GemmConfig(**data["config"]) if data.get("format") == FORMAT else None
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        return _damaged(path, err)   # a damaged entry: a miss with a warning, never an error


def _damaged(path, err: Exception) -> None:
    import warnings
    warnings.warn(f"ember: ignoring a damaged autotune cache entry ({path}: "
                  f"{type(err).__name__}: {err}); the default choice is used", RuntimeWarning,
                  stacklevel=3)
    return None


def gemm_config(problem, device: str | None = None) -> GemmConfig:
    """The stored tuned config for this problem and device, else the default.
    Deterministic mode always takes the default: a config tuned by timing on this
    machine may sum K in other blocks than another machine's."""
    if determinism.enabled():
        return default_config(problem)
    return stored_config(problem, device or current_device()) or default_config(problem)


def candidates_for(problem) -> list[GemmConfig]:
    """Candidates whose tiles are not much larger than the problem (tiny GEMMs skip huge
    tiles); the default is always among them."""
    fits = [c for c in CANDIDATES if c.block_m <= max(16, next_pow2(problem.m)) and
            c.block_n <= max(16, next_pow2(problem.n))]
    default = default_config(problem)
    return fits + ([default] if default not in fits else [])


def autotune_gemm(problem, bench: Callable[[GemmConfig], float], device: str) -> GemmConfig:
    """Time every candidate with `bench(config) -> milliseconds` (the caller launches on
    its own device buffers), store and return the fastest. Failing candidates (out of
    shared memory, ...) are skipped."""
    timings = {}
    for config in candidates_for(problem):
        try:
            timings[config] = float(bench(config))
        except Exception:      # noqa: BLE001 - a config that cannot run is not a candidate
            timings[config] = float("inf")
    best = min(timings, key=timings.get)
    record = {"format": FORMAT, "device": device, "config": asdict(best),
              "timings_ms": [[asdict(c), t] for c, t in timings.items()]}
    write_atomic(_entry_path(problem, device), json.dumps(record, indent=1).encode())
    return best


@functools.lru_cache(maxsize=None)
def current_device() -> str:
    """The GPU kind for cache keys ("cuda-90"), or CPU_DEVICE when there is none (CI, the
    interpreter). A runtime that knows the device's marketing name may pass it instead.
    Asked once per process: Triton's driver lookup imports torch where it is installed."""
    from .mathlib import INTERPRETED
    if INTERPRETED:
        return CPU_DEVICE
    try:
        import triton
        target = triton.runtime.driver.active.get_current_target()
        return f"{target.backend}-{target.arch}"
    except Exception:          # noqa: BLE001 - no driver / no device: untimed defaults
        return CPU_DEVICE


# --- convolutions: ember's Triton kernels or cuDNN ------------------------------------------
CHOICE_FORMAT = "ember-conv-choice-2"


def _choice_path(description: str, device: str):
    key = hashlib.sha256(f"{CHOICE_FORMAT}\n{device}\n{description}".encode()).hexdigest()[:32]
    return cache_dir() / "autotune" / f"conv-{key}.json"


@compile_times.timed("autotune cache lookups")
def stored_choice(description: str, device: str) -> dict | None:
    """The recorded winner for a convolution (`description` names it exactly: direction,
    dtype, shapes, strides, padding, stride, dilation, TF32, determinism, the cuDNN
    version) on `device`: {"choice": "triton" | "cudnn", "triton_ms", "cudnn_ms"}, or None."""
    path = _choice_path(description, device)
    try:
        data = json.loads(path.read_text())
        if data.get("format") != CHOICE_FORMAT:
            return None      # another version's entry: timed again and rewritten
        if data.get("choice") not in ("triton", "cudnn"):
            raise ValueError(f"choice {data.get('choice')!r}")
        return data
    except FileNotFoundError:
        return None
    except (OSError, ValueError, AttributeError) as err:
        return _damaged(path, err)   # timed again and rewritten


def record_choice(description: str, device: str, choice: str, triton_ms: float,
                  cudnn_ms: float) -> dict:
    record = {"format": CHOICE_FORMAT, "device": device, "conv": description,
              "choice": choice, "triton_ms": triton_ms, "cudnn_ms": cudnn_ms}
    write_atomic(_choice_path(description, device), json.dumps(record, indent=1).encode())
    return record
