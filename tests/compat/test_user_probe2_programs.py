"""The second user-program probe: programs written the way ember's three kinds of users
write them (user_probe2_*.py): torch.fx graph transforms, ahead-of-time compilation
(torch.export, AOTInductor packages, jit.trace / script with save / load, ONNX export
run by onnxruntime) and quantization (FX and pt2e PTQ / QAT, eager QuantStub flows,
the numeric suite). Each case_* runs with torch and with `torch` imported as ember and
must return the same values (tensors to 1e-4, dtypes by name, the rest exactly).

On torch's side, AOTInductor's aoti_compile_and_package / aoti_load_package save and
load the ExportedProgram (inductor's C++ build would cost the suite minutes; the
package must compute what the program does). ember's side runs inside the
torch-as-ember block, so what the program pickles (jit.save of a scripted module)
finds its classes under their module's name. torch.compile runs eagerly on torch's
side. user_probe2_pt2e imports torch's pt2e from torchao (torch 2.13 moved it there);
its cases end in _close (docs/compat.md says why)."""
from __future__ import annotations

import importlib
import importlib.util
import warnings

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from porting import assert_same, plain, torch_as_ember  # noqa: E402

PROGRAMS = ["user_probe2_fx", "user_probe2_aot", "user_probe2_quant"]
if importlib.util.find_spec("torchao") is not None:    # torch's pt2e lives there
    PROGRAMS.append("user_probe2_pt2e")

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    _reference = {name: importlib.import_module(name) for name in PROGRAMS}

CASES = [(program, case) for program in PROGRAMS
         for case in sorted(vars(_reference[program])) if case.startswith("case_")]


def _eager_compile(model=None, **options):
    """torch.compile's call forms without compiling (inductor would cost minutes)."""
    return (lambda fn: fn) if model is None else model


def _package_exported(ep, package_path=None, **options):
    torch.export.save(ep, package_path)
    return package_path


def _load_package(path, *args, **kwargs):
    return torch.export.load(path).module()


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("program,case", CASES, ids=[f"{p}.{c}" for p, c in CASES])
def test_user_probe2_case_matches_torch(program, case, monkeypatch):
    import torch._inductor
    with monkeypatch.context() as patch:
        patch.setattr(torch._inductor, "aoti_compile_and_package", _package_exported)
        patch.setattr(torch._inductor, "aoti_load_package", _load_package)
        patch.setattr(torch, "compile", _eager_compile)
        want = plain(getattr(_reference[program], case)())
    with torch_as_ember(program) as ported:
        got = plain(getattr(ported[program], case)())
    if case.endswith("_close"):
        _assert_close(got, want)
    else:
        assert_same(got, want)


def _assert_close(got, want, atol=0.06):
    """Arrays within `atol` (two steps of a quantized output), the rest exactly."""
    import numpy as np
    if isinstance(want, np.ndarray) and want.ndim:
        np.testing.assert_allclose(got, want, rtol=0, atol=atol)
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want)
        for g, w in zip(got, want):
            _assert_close(g, w, atol)
    else:
        assert_same(got, want)
