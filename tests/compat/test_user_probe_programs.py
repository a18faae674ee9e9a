"""The user-program probe: short programs written the way PyTorch users write them
(the user_probe_*.py modules in PROGRAMS) run with torch and with `torch` imported as
ember; every case_* function must return the same values (tensors to 1e-4, dtypes by
name, everything else exactly). On torch's side torch.compile is left out (the program
runs eagerly): compiling must not change results, and inductor's compile time would cost
the suite minutes.
Cases named *_messages return error messages: ember's must contain torch's (ember adds
the op's name and the user's line)."""
from __future__ import annotations

import importlib

import pytest

torch = pytest.importorskip("torch")

from porting import assert_same, plain, torch_as_ember  # noqa: E402

PROGRAMS = ["user_probe_training", "user_probe_models", "user_probe_data", "user_probe_fx",
            "user_probe_quant", "user_probe_misc", "user_probe_extra",
            "user_probe_extra2", "user_probe_extra3", "user_probe_extra4",
            "user_probe_autograd", "user_probe_compile"]

_reference = {name: importlib.import_module(name) for name in PROGRAMS}
with torch_as_ember(*PROGRAMS) as _ported:
    ported = dict(_ported)

CASES = [(program, case) for program in PROGRAMS
         for case in sorted(vars(_reference[program])) if case.startswith("case_")]


def _eager_compile(model=None, **options):
    """torch.compile's call forms (`compile(f)`, `@compile(mode=...)`) without compiling."""
    return (lambda fn: fn) if model is None else model


def _assert_messages_contain(got, want):
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        if isinstance(w, str):
            assert isinstance(g, str) and w in g, f"message {i}: {w!r} not in {g!r}"
        else:
            assert g == w, f"message {i}: {g!r} != {w!r}"


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("program,case", CASES, ids=[f"{p}.{c}" for p, c in CASES])
def test_user_probe_case_matches_torch(program, case, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr(torch, "compile", _eager_compile)
        want = plain(getattr(_reference[program], case)())
    got = plain(getattr(ported[program], case)())
    if case.endswith("_messages"):
        _assert_messages_contain(got, want)
    else:
        assert_same(got, want)
