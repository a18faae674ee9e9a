"""Cold compile (codegen/triton/device_compile.py): a plan's kernels compiled in parallel
worker processes give the same cubins and launch metadata as compiling them one by one,
and land in the on-disk cubin cache that later compiles read (a torn entry is compiled
again). No GPU: Triton compiles for sm_90 explicitly. Runs in a subprocess because the
interpreter tests of this directory set TRITON_INTERPRET in this process."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

if importlib.util.find_spec("triton") is None:
    pytest.skip("triton is not installed", allow_module_level=True)

SCRIPT = """
import json, os, sys
from ember.codegen.triton import device_compile as dc
from ember.compiler.triton_kernels import model_kernel_set

kernels, _ = model_kernel_set(["mlp"])      # three GEMM+epilogue kernels
jobs = [dc.CompileJob(gk.kernel, (True,) * len(gk.kernel.launch.args), 90)
        for gk in list(kernels.values())[:3]]
root = sys.argv[1]
# one source directory (the cubin's line info names the kernel's file); compile_one does
# not store, so the cubin cache stays empty until compile_many
os.environ["EMBER_CACHE_DIR"] = os.path.join(root, "ember")
# serial, in this process, with its own Triton cache
os.environ["TRITON_CACHE_DIR"] = os.path.join(root, "triton-serial")
serial = [dc.compile_one(job) for job in jobs]
# parallel: worker processes with a fresh Triton cache (they must really compile)
os.environ["TRITON_CACHE_DIR"] = os.path.join(root, "triton-parallel")
assert all(dc.cached(job) is None for job in jobs)
parallel = dc.compile_many(jobs, workers=2)
workers = len(dc._POOLS[2]._processes)
hits = [dc.cached(job) for job in jobs]
# a torn cache entry is not trusted: compiled again (here, serially)
cubin_path, _ = dc._paths(jobs[0])
cubin_path.write_bytes(cubin_path.read_bytes()[:100])
import warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    assert dc.cached(jobs[0]) is None
assert any("damaged entry of the Triton kernel cache" in str(w.message) for w in caught)
again = dc.compile_many(jobs, workers=1)
print(json.dumps({
    "n": len(jobs), "workers": workers,
    "same_cubin": [s.cubin == p.cubin for s, p in zip(serial, parallel)],
    "same_meta": [s.metadata == p.metadata for s, p in zip(serial, parallel)],
    "elf": [p.cubin[:4] == b"\\x7fELF" for p in parallel],
    "hits_equal": [h is not None and h.cubin == p.cubin and h.metadata == p.metadata
                   for h, p in zip(hits, parallel)],
    "again_equal": [a.cubin == p.cubin for a, p in zip(again, parallel)],
    "names": [p.metadata["name"] for p in parallel],
    "worker_triton_cache": len(os.listdir(os.path.join(root, "triton-parallel"))),
}))
"""


def test_parallel_compile_equals_serial_and_fills_the_disk_cache(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["n"] == 3 and report["workers"] == 2
    assert all(report["elf"]), report
    assert all(report["same_cubin"]) and all(report["same_meta"]), report
    assert all(report["hits_equal"]) and all(report["again_equal"]), report
    assert len(set(report["names"])) == 3
    assert report["worker_triton_cache"] >= 3        # the workers compiled, not a cache


HALF = """
import json, os, sys
import ember
from ember.codegen.triton import device_compile as dc
from ember.compiler.triton_kernels import model_kernels
os.environ["EMBER_CACHE_DIR"] = sys.argv[1]
models = [(ember.models.mlp(64, (32,)).eval(), ember.randn(8, 64)),
          (ember.nn.Sequential(ember.nn.Conv2d(3, 8, 3, padding=1), ember.nn.ReLU()).eval(),
           ember.randn(2, 3, 8, 8))]
jobs, types = [], []
for dtype in (ember.float16, ember.bfloat16):
    for model, x in models:
        with ember.autocast("cpu", dtype=dtype):          # the casts are traced
            found, _ = model_kernels(model, [x])
        for gk in found:
            if gk.kind.startswith("gemm"):
                jobs.append(dc.CompileJob(gk.kernel, (True,) * len(gk.kernel.launch.args), 90))
                types.append(sorted({t for _, t in gk.kernel.launch.args}))
results = dc.compile_many(jobs, workers=2)
print(json.dumps({"types": types, "elf": [getattr(r, "cubin", b"")[:4] == b"\\x7fELF"
                                          for r in results],
                  "errors": [str(r) for r in results if isinstance(r, Exception)]}))
"""


def test_half_precision_gemm_and_conv_kernels_compile_to_cubins(tmp_path):
    """float16/bfloat16 GEMM and implicit-GEMM conv kernels of autocast-traced models (the
    tensor-core paths) compile for sm_90, in parallel."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, "-c", HALF, str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not report["errors"] and all(report["elf"]), report
    kinds = {t for types in report["types"] for t in types}
    assert {"*fp16", "*bf16"} <= kinds and len(report["types"]) >= 6, report


RENAMED = """
import json, os, sys
os.environ["EMBER_CACHE_DIR"] = sys.argv[1]
import ember
from ember.codegen.lowering import lower_group
from ember.codegen.triton import device_compile as dc
from ember.codegen.triton.source import generate
from ember.ir.meta import meta_of
from ember.ir.symbolic import build_graph

x = ember.randn(37, 5)
graph = build_graph(lambda a: (a * 2).relu(), [meta_of(x)])[0]
other = build_graph(lambda a: (a + 3).relu(), [meta_of(x)])[0]   # other code: an add
first, second = (generate(lower_group(graph, n).kernel) for n in ("first", "second"))
third = generate(lower_group(other, "first").kernel)
jobs = [dc.CompileJob(k, (True, True), 90) for k in (first, second, third)]
compiled = []
real = dc.compile_one
dc.compile_one = lambda job: compiled.append(job.kernel.name) or real(job)
results = dc.compile_many(jobs, workers=1)
print(json.dumps({"keys_differ": first.key() != second.key(),
                  "bodies": [first.body_key() == second.body_key(),
                             first.body_key() == third.body_key()],
                  "compiled": compiled, "names": [r.metadata["name"] for r in results],
                  "hit": dc.cached(jobs[1]) is not None}))
"""


def test_kernels_differing_only_in_name_compile_once(tmp_path):
    """One cubin serves kernels whose code differs only in the function's name (one per
    graph node); its metadata names the entry point it was compiled as."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, "-c", RENAMED, str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["keys_differ"] and r["bodies"] == [True, False]
    assert r["compiled"] == ["first", "first"]          # `second` reused `first`'s cubin
    assert r["names"] == ["first", "first", "first"] and r["hit"]


def test_kernels_named_like_the_math_they_call_keep_their_own_body():
    """A kernel named after the function it calls (`asin` calling asin) must not share a
    cubin with one named after another (`acos` calling acos): only the definition's name
    is left out of the body's identity."""
    import ember
    from ember.codegen.lowering import lower_group
    from ember.codegen.triton.source import generate
    from ember.ir.meta import meta_of
    from ember.ir.symbolic import build_graph
    x = ember.rand(8)
    kernels = {name: generate(lower_group(build_graph(getattr(ember, name), [meta_of(x)])[0],
                                          name).kernel) for name in ("asin", "acos", "sin")}
    keys = {k.body_key() for k in kernels.values()}
    assert len(keys) == 3, {n: k.source for n, k in kernels.items()}


STARTED = """
import json, os, sys
os.environ["EMBER_CACHE_DIR"] = sys.argv[1]
import ember
from ember.codegen.lowering import lower_group
from ember.codegen.triton import device_compile as dc
from ember.codegen.triton.source import generate
from ember.ir import compile_times
from ember.ir.meta import meta_of
from ember.ir.symbolic import build_graph

x = ember.randn(37, 5)
kernels = [generate(lower_group(build_graph(fn, [meta_of(x)])[0], name).kernel)
           for fn, name in ((lambda a: (a * 2).relu(), "double"),
                            (lambda a: (a + 3).sigmoid(), "shifted"))]
jobs = [dc.CompileJob(k, (True, True), 90) for k in kernels]
started = dc.start(jobs, workers=2)
again = dc.start(jobs, workers=2)             # in flight already: not started twice
os.environ[compile_times.ENV] = "1"
with compile_times.call("collect"):
    results = dc.compile_many(jobs, workers=2)
serial = [dc.compile_one(job) for job in jobs]
print(json.dumps({"started": [started, again], "left": len(dc._STARTED),
                  "same": [r.cubin == s.cubin for r, s in zip(results, serial)],
                  "cached_after": dc.start(jobs, workers=2)}))
"""


def test_compiles_started_early_are_collected_by_the_batch(tmp_path):
    """device_compile.start begins a plan's compiles while it is still being built; the
    batch (compile_many) waits for those instead of compiling them again, and the cubins
    are the ones a compile in this process makes."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, "-c", STARTED, str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["started"] == [2, 0] and r["left"] == 0 and r["cached_after"] == 0
    assert r["same"] == [True, True]
    assert "cubins compiled in workers (started early) = 2" in proc.stderr
    assert "cubins compiled in workers =" not in proc.stderr     # none compiled twice
