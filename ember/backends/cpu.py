"""ember.backends.cpu: torch.backends.cpu.get_cpu_capability(), the widest vector ISA this
CPU offers ("AVX512", "AVX2" or "DEFAULT"), read from the CPU's flags."""
from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def get_cpu_capability() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = next((line.split(":", 1)[1].split() for line in cpuinfo
                          if line.startswith(("flags", "Features"))), [])
    except OSError:        # not Linux: no flags to read
        return "DEFAULT"
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= set(flags):
        return "AVX512"
    if {"avx2", "fma"} <= set(flags):
        return "AVX2"
    if "sve" in flags:
        return "SVE256"
    return "DEFAULT"
