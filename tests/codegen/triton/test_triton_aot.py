"""Ahead-of-time compilation to cubin for sm_80 and sm_90 without a GPU, and the launch
metadata a CUDA runtime reads. Runs Triton's compiler in a subprocess: the interpreter
tests set TRITON_INTERPRET in this process, and a kernel decorated under it cannot be
compiled."""
import hashlib
import importlib.util
import json
import os
import subprocess
import sys

import pytest

# not imported here: Triton decides interpreted-or-compiled for its own library functions
# at import, and the interpreter tests of this directory need it imported after their env
if importlib.util.find_spec("triton") is None:
    pytest.skip("triton is not installed", allow_module_level=True)

from ember.codegen.triton.compile import launch_args  # noqa: E402

# The CI subset: every kernel of the MLP and the small CNN, plus two kernels of each kind
# (pointwise, reduction, gemm, gemm+epilogue) of the transformer and the int8 kernels. The full set (all
# built-in models, about 110 kernels, ~5 minutes on 2 cores) is
#   python -m ember.compiler.triton_kernels --out DIR
SUBSET = ["--models", "mlp,small_cnn,transformer,quantized", "--per-kind", "2"]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("cubins")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["EMBER_CACHE_DIR"] = str(out / "cache")
    proc = subprocess.run([sys.executable, "-m", "ember.compiler.triton_kernels", "--out",
                           str(out), "--quiet", *SUBSET], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    metas = [json.loads(p.read_text()) for p in sorted(out.glob("*.sm_*.json"))]
    return out, summary, metas


def test_every_kernel_has_a_cubin_per_arch(compiled):
    out, summary, metas = compiled
    assert summary["compiled_kernels"] >= 8
    assert len(metas) == 2 * summary["compiled_kernels"] == summary["files"]
    by_key = {}
    for meta in metas:
        by_key.setdefault(meta["source_key"], set()).add(meta["arch"])
        binary = (out / meta["cubin"]).read_bytes()
        assert binary[:4] == b"\x7fELF"
        assert hashlib.sha256(binary).hexdigest() == meta["cubin_sha256"]
        assert meta["name"].encode() in binary          # the entry symbol to look up
    assert all(archs == {"sm_80", "sm_90"} for archs in by_key.values())


def test_metadata_describes_the_launch(compiled):
    _, summary, metas = compiled
    kinds = set()
    for meta in metas:
        assert meta["format"] == "ember-triton-cubin-1"
        assert meta["block"] == [32 * meta["num_warps"], 1, 1]
        # pointers for the buffers, then a shape-generic kernel's bound sizes (values given)
        n = len(meta["buffers"])
        assert len(meta["args"]) == n + len(meta.get("sizes", []))
        assert all(ty.startswith("*") for _, ty in meta["args"][:n])
        assert all(ty in ("i32", "i64", "fp32", "fp64") for _, ty in meta["args"][n:])
        assert all(g >= 1 for g in meta["grid"])
        assert meta["shared_mem"] >= 0
        kinds.add("gemm" if "BLOCK_M" in meta["constexprs"] else
                  "reduction" if "RBLOCK" in meta["constexprs"] else "pointwise")
    assert kinds == {"gemm", "reduction", "pointwise"}


def test_launch_args_orders_pointers_and_checks_them():
    meta = {"name": "k", "buffers": ["in0", "acc", "out0"], "grid": [4, 1, 1],
            "block": [128, 1, 1], "shared_mem": 0, "pointer_align": 16,
            "extra_params": ["global_scratch", "profile_scratch"],
            "global_scratch_size": 0, "profile_scratch_size": 0}
    args = launch_args(meta, {"out0": 0x3000, "in0": 0x1000, "acc": 0x2000})
    assert args.params == [0x1000, 0x2000, 0x3000, 0, 0]
    assert args.grid == (4, 1, 1) and args.block == (128, 1, 1)
    with pytest.raises(ValueError, match="acc"):
        launch_args(meta, {"out0": 0x3000, "in0": 0x1000})
    with pytest.raises(ValueError, match="aligned"):
        launch_args(meta, [0x1000, 0x2004, 0x3000])


EVERY_FUNCTION = """
import sys
from ember.codegen import kernel as K
from ember.codegen.triton import source
from ember.codegen.triton.compile import compile_cubin
from ember.ir.dtypes import float32, float64
for dt in (float32, float64):
    x = K.Load("in0", K.Affine((1,)), dt)
    terms = [K.call(op, *[x] * K.SCALAR_OPS[op]) for op, n in K.SCALAR_OPS.items()
             if op not in K.COMPARISONS and op != "where" and not op.startswith("bitwise")]
    total = terms[0]
    for t in terms[1:]:
        total = K.call("add", total, t)
    kernel = K.Kernel("every_fn", (100,), (), [K.BufferSpec("in0", dt, 100)],
                      [K.BufferSpec("out0", dt, 100)], [K.Store("out0", K.Affine((1,)), total)])
    cubin = compile_cubin(source.generate(kernel), 90)
    assert cubin.binary[:4] == b"\\x7fELF"
    assert "libdevice" not in cubin.kernel.source      # reached through emath's wrappers
print("ok")
"""


def test_every_scalar_function_compiles_through_libdevice(tmp_path):
    """A kernel calling every float SCALAR_OP compiles for sm_90 (libdevice calls resolve)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["EMBER_CACHE_DIR"] = str(tmp_path)
    proc = subprocess.run([sys.executable, "-c", EVERY_FUNCTION], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]
