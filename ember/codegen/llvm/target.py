"""The host CPU as LLVM sees it, and the instruction sets ember's kernels are written for.

An `Isa` is a closed set: AVX-512 (16 float32 lanes, 32 vector registers), AVX2+FMA
(8 lanes, 16 registers) and a portable fallback (4 lanes, which LLVM legalizes on any
target). `host_isa()` picks the best one the CPU has; `EMBER_ISA` (avx512, avx2,
portable) forces a lower one, which is how tests run the AVX2 path on an AVX-512 host.

A `Target` couples an ISA with the CPU name and feature string LLVM compiles for; the
pair (cpu, features) is part of every disk-cache key.
"""
from __future__ import annotations

import enum
import functools
import os
from dataclasses import dataclass

import llvmlite.binding as llvm

from ...ir.errors import LoweringError


class Isa(enum.Enum):
    AVX512 = "avx512"
    AVX2 = "avx2"
    PORTABLE = "portable"

    @property
    def lanes(self) -> int:
        """float32 lanes in one vector register."""
        return {Isa.AVX512: 16, Isa.AVX2: 8, Isa.PORTABLE: 4}[self]


# What each ISA needs from the CPU, in LLVM's feature names.
_REQUIRED = {
    Isa.AVX512: {"avx512f", "avx512dq", "avx512bw", "avx512vl", "fma", "avx2"},
    Isa.AVX2: {"avx2", "fma"},
    Isa.PORTABLE: set(),
}
_ORDER = (Isa.AVX512, Isa.AVX2, Isa.PORTABLE)


@functools.cache
def _init_llvm() -> None:
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()


@functools.cache
def host_features() -> dict[str, bool]:
    """LLVM's feature map of this CPU: {'avx2': True, 'avx512f': True, ...}."""
    _init_llvm()
    return dict(llvm.get_host_cpu_features())


def supported_isas() -> list[Isa]:
    """ISAs this CPU can run, best first (PORTABLE is always there)."""
    return list(_supported_isas())


@functools.cache
def _supported_isas() -> tuple[Isa, ...]:
    # once per process: every GEMM call asks (eager runs thousands of them)
    have = {name for name, on in host_features().items() if on}
    return tuple(isa for isa in _ORDER if _REQUIRED[isa] <= have)


def host_isa() -> Isa:
    """The best ISA of this CPU, or the one `EMBER_ISA` names (which the CPU must have)."""
    forced = os.environ.get("EMBER_ISA")
    if not forced:
        return supported_isas()[0]
    try:
        isa = Isa(forced.lower())
    except ValueError:
        raise LoweringError(f"EMBER_ISA={forced!r}: expected one of "
                            f"{[i.value for i in Isa]}") from None
    if isa not in supported_isas():
        raise LoweringError(f"EMBER_ISA={forced!r}: this CPU lacks {sorted(_REQUIRED[isa])}")
    return isa


@dataclass(frozen=True)
class Target:
    """What one compile is for: the ISA, LLVM's CPU name and feature string."""
    isa: Isa
    cpu: str
    features: str

    def machine(self) -> llvm.TargetMachine:
        _init_llvm()
        target = llvm.Target.from_triple(llvm.get_process_triple())
        # jit=True: code models and relocations fit the in-process loader.
        return target.create_target_machine(cpu=self.cpu, features=self.features, opt=3,
                                            reloc="pic", codemodel="jitdefault", jit=True)


def _features_without_avx512() -> str:
    feats = host_features()
    return ",".join(("+" if on and not name.startswith("avx512") else "-") + name
                    for name, on in sorted(feats.items()))


@functools.cache
def target_for(isa: Isa) -> Target:
    """The compile target of `isa` on this host: the host CPU, features cut down to `isa`.

    AVX2 on an AVX-512 host keeps the host's CPU name (scheduling model) but turns every
    avx512* feature off; PORTABLE compiles for generic x86-64 (or the host CPU elsewhere).
    """
    _init_llvm()
    if isa not in supported_isas():
        raise LoweringError(f"target_for({isa.value}): this CPU lacks {sorted(_REQUIRED[isa])}")
    cpu = llvm.get_host_cpu_name()
    if isa is Isa.AVX512:
        return Target(isa, cpu, llvm.get_host_cpu_features().flatten())
    if isa is Isa.AVX2:
        return Target(isa, cpu, _features_without_avx512())
    generic = "x86-64" if llvm.get_process_triple().startswith("x86_64") else cpu
    return Target(isa, generic, "")


def host_target() -> Target:
    """The target kernels compile for by default (see `host_isa`)."""
    return target_for(host_isa())
