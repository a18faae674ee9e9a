"""The second user-program probe: programs written the way ember's three kinds of users
write them (user_probe2_*.py): torch.fx graph transforms, ahead-of-time compilation
(torch.export, AOTInductor packages, jit.trace / script with save / load, ONNX export
run by onnxruntime) and quantization (FX and eager PTQ / QAT, the numeric suite). Each
case_* runs with torch and with `torch` imported as ember and must return the same
values (tensors to 1e-4, dtypes by name, the rest exactly); probe2_driver.py says how
each side runs. The pt2e program is test_user_probe2_pt2e.py's."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from probe2_driver import cases_of, reference_programs, run_case  # noqa: E402

_reference = reference_programs(["user_probe2_fx", "user_probe2_aot", "user_probe2_quant"])
CASES = cases_of(_reference)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("program,case", CASES, ids=[f"{p}.{c}" for p, c in CASES])
def test_user_probe2_case_matches_torch(program, case, monkeypatch):
    run_case(_reference[program], program, case, monkeypatch)
