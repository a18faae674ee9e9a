"""User programs written for PyTorch (data_loading_port, module_utils_port,
tensor_idioms_port, architectures_port, graph_sparse_port, training_scripts_port,
research_idioms_port) run with torch and with `torch` imported as
ember: every case_* function must return the same values (tensors to 1e-4, dtypes by
name, everything else exactly)."""
from __future__ import annotations

import contextlib
import importlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from porting import torch_as_ember  # noqa: E402

PROGRAMS = ["data_loading_port", "module_utils_port", "tensor_idioms_port",
            "architectures_port", "graph_sparse_port", "training_scripts_port",
            "research_idioms_port"]

_reference = {name: importlib.import_module(name) for name in PROGRAMS}
with torch_as_ember(*PROGRAMS) as _ported:
    ported = dict(_ported)


def _plain(value):
    """Tensors as NumPy arrays, dtypes and strings without the library's name."""
    if hasattr(value, "detach") and hasattr(value, "numpy"):
        value = value.detach().cpu()
        if "bfloat16" in str(value.dtype):
            value = value.float()
        return value.numpy()
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, str):
        return value.replace("torch.", "").replace("ember.", "")
    if type(value).__name__ == "dtype" or type(value).__name__ == "DType":
        return str(value).split(".")[-1]
    return value


def _assert_same(got, want, where="result"):
    if isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{where}: {got!r} != {want!r}"
        for i, (a, b) in enumerate(zip(got, want)):
            _assert_same(a, b, f"{where}[{i}]")
    elif isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), f"{where}: keys differ"
        for key in want:
            _assert_same(got[key], want[key], f"{where}[{key!r}]")
    elif isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray), f"{where}: {type(got)} is not an array"
        assert got.shape == want.shape and got.dtype == want.dtype, \
            f"{where}: {got.shape} {got.dtype} != {want.shape} {want.dtype}"
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, equal_nan=True,
                                   err_msg=where)
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-4, abs=1e-5), where
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


def _torch_flags_unfrozen():
    """PyTorch's test utilities (the OpInfo database, imported by other tests in the same
    process) freeze torch.backends' flags; a user program setting them at top level runs
    on torch as it would on its own."""
    if torch.backends.flags_frozen():
        return getattr(torch.backends, "__allow_nonbracketed_mutation")()
    return contextlib.nullcontext()


CASES = [(program, case) for program in PROGRAMS
         for case in sorted(vars(_reference[program])) if case.startswith("case_")]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("program,case", CASES, ids=[f"{p}.{c}" for p, c in CASES])
def test_program_case_matches_torch(program, case):
    with _torch_flags_unfrozen():
        want = _plain(getattr(_reference[program], case)())
    got = _plain(getattr(ported[program], case)())
    _assert_same(got, want)
