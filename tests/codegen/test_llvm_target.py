"""ISA selection: the host's best, EMBER_ISA forcing a lower one, clear errors otherwise."""
import pytest

from ember.codegen.llvm.target import Isa, host_isa, supported_isas, target_for
from ember.ir.errors import LoweringError


def test_portable_is_always_supported_and_last():
    isas = supported_isas()
    assert isas[-1] is Isa.PORTABLE
    assert isas == sorted(isas, key=[Isa.AVX512, Isa.AVX2, Isa.PORTABLE].index)


def test_host_isa_is_the_best_unless_forced(monkeypatch):
    monkeypatch.delenv("EMBER_ISA", raising=False)
    assert host_isa() is supported_isas()[0]
    monkeypatch.setenv("EMBER_ISA", "portable")
    assert host_isa() is Isa.PORTABLE


def test_forcing_an_unknown_isa_names_the_choices(monkeypatch):
    monkeypatch.setenv("EMBER_ISA", "sse9")
    with pytest.raises(LoweringError, match=r"EMBER_ISA='sse9': expected one of \['avx512'"):
        host_isa()


@pytest.mark.skipif(Isa.AVX2 not in supported_isas(), reason="this CPU has no AVX2")
def test_avx2_target_turns_avx512_off():
    features = target_for(Isa.AVX2).features.split(",")
    assert "+avx2" in features and "+fma" in features
    assert not [f for f in features if f.startswith("+avx512")]


def test_lanes_per_isa():
    assert [isa.lanes for isa in Isa] == [16, 8, 4]
