"""The ISAs this machine can run, as pytest params: AVX-512 and AVX2 are each tested
where the CPU has them (AVX2 is forced on AVX-512 hosts), and skipped with the reason
where it does not; the portable path runs everywhere."""
import pytest

from ember.codegen.llvm.target import Isa, supported_isas


def isa_params(*isas: Isa) -> list:
    have = supported_isas()
    return [pytest.param(isa, id=isa.value,
                         marks=pytest.mark.skipif(isa not in have,
                                                  reason=f"this CPU has no {isa.value}"))
            for isa in isas or tuple(Isa)]
