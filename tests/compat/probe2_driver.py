"""The second user-program probe's driver (test_user_probe2_programs.py,
test_user_probe2_pt2e.py): run one case_* of a user_probe2_*.py program with torch and
with `torch` imported as ember, and compare.

On torch's side torch.compile runs eagerly, and AOTInductor's aoti_compile_and_package /
aoti_load_package save and load the ExportedProgram (inductor's C++ build would cost
the suite minutes; the package must compute what the program does). ember's side runs
inside the torch-as-ember block, so what the program pickles (jit.save of a scripted
module) finds its classes under their module's name. Cases named *_close compare
tensors within two output quantization steps (docs/compat.md says where and why)."""
from __future__ import annotations

import importlib
import warnings

import numpy as np

from porting import assert_same, plain, torch_as_ember


def reference_programs(names: list) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {name: importlib.import_module(name) for name in names}


def cases_of(programs: dict) -> list:
    return [(program, case) for program, module in programs.items()
            for case in sorted(vars(module)) if case.startswith("case_")]


def _eager_compile(model=None, **options):
    """torch.compile's call forms without compiling (inductor would cost minutes)."""
    return (lambda fn: fn) if model is None else model


def _package_exported(ep, package_path=None, **options):
    import torch
    torch.export.save(ep, package_path)
    return package_path


def _load_package(path, *args, **kwargs):
    import torch
    return torch.export.load(path).module()


def run_case(reference, program: str, case: str, monkeypatch,
             patch_compile: bool = True) -> None:
    """`patch_compile=False` keeps torch.compile itself (eager torch.cond calls it, and
    the identity stand-in leaks its functional tensors)."""
    import torch
    import torch._inductor
    with monkeypatch.context() as patch:
        patch.setattr(torch._inductor, "aoti_compile_and_package", _package_exported)
        patch.setattr(torch._inductor, "aoti_load_package", _load_package)
        if patch_compile:
            patch.setattr(torch, "compile", _eager_compile)
        want = plain(getattr(reference, case)())
    with torch_as_ember(program) as ported:
        got = plain(getattr(ported[program], case)())
    if case.endswith("_close"):
        _assert_close(got, want)
    else:
        assert_same(got, want)


def _assert_close(got, want, atol=0.06):
    """Arrays within `atol` (two steps of a quantized output), the rest exactly."""
    if isinstance(want, np.ndarray) and want.ndim:
        np.testing.assert_allclose(got, want, rtol=0, atol=atol)
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want)
        for g, w in zip(got, want):
            _assert_close(g, w, atol)
    else:
        assert_same(got, want)
