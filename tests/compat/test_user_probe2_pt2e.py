"""The second user-program probe's pt2e program (user_probe2_pt2e.py): torch 2.13's pt2e
lives in torchao (its import costs ~10 s, hence a file of its own); the program imports
torch.ao's names first, as older scripts do, and ember has them there. Its cases end in
_close: ember's X86InductorQuantizer lowering requantizes values torchao's leaves float
(docs/compat.md), so tensors are compared within two output quantization steps."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchao")

from probe2_driver import cases_of, reference_programs, run_case  # noqa: E402

_reference = reference_programs(["user_probe2_pt2e"])
CASES = cases_of(_reference)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("program,case", CASES, ids=[f"{p}.{c}" for p, c in CASES])
def test_user_probe2_pt2e_case_matches_torch(program, case, monkeypatch):
    run_case(_reference[program], program, case, monkeypatch)
