"""The third user-program probe: programs as GitHub repos and blog posts write them
(user_probe3_*.py), unlike the tutorials the earlier probes ported: fx pruning, layer
surgery, checkpoint / hook insertion by graph rewrite, FLOPs and memory Interpreters,
torch.fx.experimental helpers; torch.export with torch.cond, graph signatures,
unflatten, strict=False, custom decomposition tables, save / load, AOTInductor packages
with several inputs; quantization of shared modules, functional ops, residual adds,
LSTMs, QAT loops, custom per-channel ranges, fixed-qparams ops and converted state_dicts
loaded into fresh models. Each case_* runs with torch and with `torch` imported as
ember and must return the same values; probe2_driver.py says how each side runs."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from probe2_driver import cases_of, reference_programs, run_case  # noqa: E402

_reference = reference_programs(["user_probe3_fx", "user_probe3_aot", "user_probe3_quant"])
CASES = cases_of(_reference)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("program,case", CASES, ids=[f"{p}.{c}" for p, c in CASES])
def test_user_probe3_case_matches_torch(program, case, monkeypatch):
    run_case(_reference[program], program, case, monkeypatch, patch_compile=False)
