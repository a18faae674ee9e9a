"""CUDA tests: those marked `cuda` need an NVIDIA GPU and are skipped, with the reason
printed (pytest -ra), where ember.cuda.is_available() is False. The rest of this
directory runs everywhere (allocator policy on host memory, cubin metadata, and the
CUDA frontend path emulated on the CPU)."""
from __future__ import annotations

import functools

import pytest


@functools.lru_cache(maxsize=None)
def no_gpu_reason() -> str | None:
    import ember
    from ember.runtime.cuda import driver
    if ember.cuda.is_available():
        return None
    why = driver._state["init"]
    detail = f" ({why})" if isinstance(why, Exception) else ""
    return f"no CUDA GPU: ember.cuda.is_available() is False{detail}"


def pytest_report_header(config):
    reason = no_gpu_reason()
    if reason is None:
        import ember
        return f"ember CUDA: {ember.cuda.get_device_name()}"
    return f"ember CUDA: tests marked 'cuda' are skipped: {reason}"


def pytest_runtest_setup(item):
    if item.get_closest_marker("cuda") is not None:
        reason = no_gpu_reason()
        if reason is not None:
            pytest.skip(reason)
