"""The fourth user-program probe (user_probe4_*.py): fx transform writers (pickled and
saved GraphModules, a Transformer swapping targets, node editing APIs, dead code,
split_module across partitions, GraphModule from a dict), deployers (Dims shared and
named by argument, nested dynamic inputs, Dim.AUTO / STATIC, save / load with extra
files, run_decompositions of a causal encoder with a dynamic length, torch.onnx.export
from a batch-1 dummy with dynamic_axes) and quantization users (QConfigMapping by name,
type, regex and order, custom prepare / convert configs, nested fuse_modules, QAT
fusion, quantize_dynamic with set specs and float16, the FX numeric suite). Each case_*
runs with torch and with `torch` imported as ember and must return the same values;
probe2_driver.py says how each side runs."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from probe2_driver import cases_of, reference_programs, run_case  # noqa: E402

_reference = reference_programs(["user_probe4_fx", "user_probe4_aot", "user_probe4_quant"])
CASES = cases_of(_reference)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("program,case", CASES, ids=[f"{p}.{c}" for p, c in CASES])
def test_user_probe4_case_matches_torch(program, case, monkeypatch):
    run_case(_reference[program], program, case, monkeypatch, patch_compile=False)
