"""`import ember` stays light: ml_dtypes (most of a second to load) comes in the first
time bfloat16's NumPy dtype is needed, the compiler (llvmlite, codegen's kernels) and
the tracing tools on first use of ember.compile / ember.fx. Import time itself is
measured with `python -X importtime -c "import ember"`, never asserted."""
from __future__ import annotations

import subprocess
import sys


def run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_heavy_modules_load_on_first_use():
    code = ("import sys, ember\n"
            "heavy = ('ml_dtypes', 'llvmlite', 'ember.fx', 'ember.compiler', 'ember.compiler.compile', 'lark',\n"
            "         'networkx', 'safetensors')\n"
            "print([m for m in heavy if m in sys.modules])\n"
            "x = ember.ones(2, dtype=ember.bfloat16) * 3\n"
            "print('ml_dtypes' in sys.modules, x.dtype, x.float().tolist())\n")
    assert run(code).splitlines() == ["[]", "True ember.bfloat16 [3.0, 3.0]"]


def test_bfloat16_arrays_made_elsewhere_are_recognised():
    code = ("import ml_dtypes, numpy as np, ember\n"
            "print(ember.tensor(np.ones(2, dtype=ml_dtypes.bfloat16)).dtype)\n")
    assert run(code) == "ember.bfloat16"
