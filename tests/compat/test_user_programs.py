"""User programs written for PyTorch (data_loading_port, module_utils_port,
tensor_idioms_port, architectures_port, graph_sparse_port, training_scripts_port,
research_idioms_port) run with torch and with `torch` imported as
ember: every case_* function must return the same values (tensors to 1e-4, dtypes by
name, everything else exactly)."""
from __future__ import annotations

import contextlib
import importlib

import pytest

torch = pytest.importorskip("torch")

from porting import assert_same as _assert_same, plain as _plain, torch_as_ember  # noqa: E402

PROGRAMS = ["data_loading_port", "module_utils_port", "tensor_idioms_port",
            "architectures_port", "graph_sparse_port", "training_scripts_port",
            "research_idioms_port"]

_reference = {name: importlib.import_module(name) for name in PROGRAMS}
with torch_as_ember(*PROGRAMS) as _ported:
    ported = dict(_ported)


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
