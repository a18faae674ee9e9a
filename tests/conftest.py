"""Shared fixtures: a seeded numpy rng per test, and torch as the oracle."""
from __future__ import annotations

import os
import sys
import zlib

import numpy as np
import pytest

# Triton decides at import whether its kernels run in the interpreter. On a host without
# an NVIDIA GPU (CI) every Triton kernel the tests run is interpreted, so say so before
# any test module imports triton: otherwise whichever module is collected first decides
# (tests/quant before tests/codegen/triton left jit helpers compiled for a GPU there is
# none of). The GPU runner (tests/cuda/run_on_gpu.sh) is unaffected.
if not os.path.exists("/dev/nvidiactl"):
    os.environ.setdefault("TRITON_INTERPRET", "1")


def pytest_configure(config):
    """Where PYTHONDONTWRITEBYTECODE is set (these CI hosts), no process writes bytecode,
    so every test worker and every process a test starts (distributed ranks, scripts, the
    CLI) compiled all of ember from source: `import ember` cost 1.1 s of CPU against 0.5 s
    from bytecode. The controller writes ember's bytecode once (~1.5 s); processes still
    only read it, and a stale file is recompiled in memory as always."""
    if sys.dont_write_bytecode and not hasattr(config, "workerinput"):
        import compileall
        from pathlib import Path
        package = Path(__file__).resolve().parents[1] / "ember"
        try:
            compileall.compile_dir(str(package), quiet=2)
        except OSError:
            pass                    # a read-only checkout: processes compile as before


@pytest.fixture
def rng(request):
    """A numpy Generator seeded from the test's name: fresh per test, reproducible."""
    seed = zlib.crc32(request.node.nodeid.encode())   # stable across runs (hash() is not)
    return np.random.default_rng(seed)


# PyTorch's defaults for torch.backends.cudnn's switches
CUDNN_DEFAULTS = {"enabled": True, "benchmark": False, "deterministic": False,
                  "allow_tf32": True}


@pytest.fixture(autouse=True)
def _ember_cudnn_flags_at_defaults(monkeypatch):
    """ember.backends.cudnn's switches at PyTorch's defaults for each test: users' scripts
    that the compat tests run set them process-wide (`cudnn.benchmark = True`), as scripts
    do, and which tests a worker ran before must not decide what a later one compiles."""
    backends = sys.modules.get("ember.backends")
    if backends is not None:
        for flag, value in CUDNN_DEFAULTS.items():
            monkeypatch.setattr(backends.cudnn, flag, value)
    yield
    # the oracle's side too: ported scripts set torch.backends.cudnn.deterministic = True
    # (a seed_everything helper) and a later test compares ember's defaults with torch's
    torch_cudnn = sys.modules.get("torch.backends.cudnn")
    if torch_cudnn is not None:
        for flag, value in CUDNN_DEFAULTS.items():
            if getattr(torch_cudnn, flag) != value:
                _allow_torch_flag_mutation()
                setattr(torch_cudnn, flag, value)


def _allow_torch_flag_mutation():
    backends = sys.modules.get("torch.backends")
    if backends is not None and backends.flags_frozen():
        backends.flags_frozen.__globals__["__allow_nonbracketed_mutation_flag"] = True


@pytest.fixture(autouse=True)
def _torch_backend_flags_settable():
    """Importing torch's own test utilities (torch.testing._internal: OpInfo samples) calls
    torch.backends.disable_global_flags() for the whole process, after which user-style
    code that sets `torch.backends.cudnn.benchmark = True` on the oracle's side raises;
    which tests a worker ran first must not decide that."""
    _allow_torch_flag_mutation()
    yield
