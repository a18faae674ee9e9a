"""The Triton int8 GEMM compiled and run on a real GPU (skipped without one): the
benchmark script's kernel at 1024^3 and at the 4096^3 benchmark size, checked against
the NumPy reference of quantized_linear on the first 256 rows (the script exits non-zero
when an element is more than one step off; this test asks for identical integers), and
the script's int8 conv row (zero point 131: padding selected after the load) identical
to quantized_conv2d's reference on its first image. Runs
in a subprocess: this directory's emulation tests set TRITON_INTERPRET=1 in-process."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.cuda
@pytest.mark.parametrize("size", [1024, 4096])
def test_int8_gemm_on_the_gpu_matches_the_reference(size):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "quant_cuda.py"),
                           "--size", str(size), "--quick"], env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "100.0000% of the first" in proc.stdout, proc.stdout
    assert "first image: 100.0000% identical" in proc.stdout, proc.stdout
