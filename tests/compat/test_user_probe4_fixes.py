"""Regression tests of the fourth probe's fixes that its programs (compared with torch in
test_user_probe4_programs.py and test_user_probe4_cli.py) do not show by value."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys

_AMX_TEXT = """
import hashlib
from llvmlite import ir
from ember.codegen.llvm import qgemm_amx
module = ir.Module(name="probe")
qgemm_amx._emit(module, True)
print(hashlib.sha256(str(module).encode()).hexdigest())
"""


def test_amx_conv_kernel_text_is_the_same_in_every_process():
    """The module text is the LLVM disk cache's key: text that changed with the
    process's string hashing (a set iterated) recompiled the AMX kernels (~20 s) in every
    process that ran an int8 conv."""
    digests = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", _AMX_TEXT], env=env, check=True,
                             capture_output=True, text=True).stdout.strip()
        digests.add(out)
    assert len(digests) == 1 and len(next(iter(digests))) == 64


def test_packaging_a_length_dependent_constant_stores_it_per_size(tmp_path):
    """A constant computed from a dynamic sequence length (positions by arange) differs
    per native program: each size's own is stored (it was refused), and the artifact
    runs at every size of the range."""
    import numpy as np

    import ember
    from ember.export import Dim

    class Positions(ember.nn.Module):
        def forward(self, x):
            return x + ember.arange(x.shape[1], dtype=ember.float32)

    ep = ember.export.export(Positions(), (ember.ones(2, 3),),
                             dynamic_shapes=({1: Dim("T", min=2, max=4)},))
    run = ember.aot.load_package(
        ember.aot.compile_and_package(ep, str(tmp_path / "positions.ember")))
    for t in (2, 3, 4):
        x = np.random.default_rng(t).random((2, t), dtype=np.float32)
        np.testing.assert_array_equal(run(ember.tensor(x)).numpy(),
                                      x + np.arange(t, dtype=np.float32))
