"""resnet18's stem BatchNorm (64 channels of 64x112x112, channels-last) split for an H100,
compiled for sm_90 without a GPU (Triton's pipeline and ptxas run on the host): every
phase keeps its registers within what four 4-warp programs a multiprocessor may hold, spills
nothing, loads the activations as 16-byte vectors, and the partial phases divide nothing
per element (codegen/triton/reduce_levels.py factors per-channel divisors out of the sums).
The previous [32, 256] tiles at 16 warps summed five accumulators with three IEEE
divisions an element in the backward and ptxas spilled 700 bytes a thread."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")

_SCRIPT = r'''
import json, re, subprocess, sys, tempfile
from pathlib import Path
import ember
from ember.codegen.lowering import lower_group
from ember.codegen.triton import split_reduce
from ember.frontend.eager_cuda import compile_triton
from ember.ir.meta import meta_of
from ember.ir.symbolic import build_graph
from triton import knobs

F = ember.nn.functional
CL = ember.channels_last


def bn_relu(t, w, b):
    return F.relu(F.batch_norm(t, None, None, w, b, training=True, eps=1e-5))


def bn_backward(dy, t, mean, invstd, w):
    n = t.shape[0] * t.shape[2] * t.shape[3]
    centered = t - mean
    g = dy * w
    dxhat_sum = (g * centered).sum((0, 2, 3), keepdim=True) * -0.5 * invstd * invstd * invstd
    dmean = -(g / (1.0 / invstd)).sum((0, 2, 3), keepdim=True)
    return g * invstd + dxhat_sum * 2.0 * centered / n + dmean / n, dy.sum((0, 2, 3))


big = ember.empty(64, 64, 112, 112, memory_format=CL)
c = ember.empty(64)
c4 = ember.empty(1, 64, 1, 1)
out = {}
for label, fn, args in (("forward", bn_relu, (big, c, c)),
                        ("backward", bn_backward, (big, big, c4, c4, c4))):
    graph, _ = build_graph(fn, [meta_of(t) for t in args])
    split = split_reduce.generate_split(lower_group(graph, "bn").kernel)
    for kernel in split.kernels:
        types = [t for _, t in kernel.launch.args]
        compiled = compile_triton(kernel, [t.startswith("*") for t in types], (9, 0))
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "k.cubin"
            path.write_bytes(compiled.asm["cubin"])
            usage = subprocess.run([knobs.nvidia.cuobjdump.path, "--dump-resource-usage",
                                    str(path)], capture_output=True, text=True).stdout
        ptx = compiled.asm["ptx"]
        out[label + "_" + kernel.name.rsplit("_", 1)[1]] = {
            "regs": int(re.search(r"REG:(\d+)", usage).group(1)),
            "local": int(re.search(r"LOCAL:(\d+)", usage).group(1)),
            "warps": kernel.launch.num_warps, "grid": list(kernel.launch.grid),
            "loads": re.findall(r"ld\.global[.\w]*", ptx),
            "divisions": len(re.findall(r"div\.rn\.f32", ptx))}
print(json.dumps(out))
'''


def test_stem_batch_norm_phases_fit_four_programs_per_sm_without_spills():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    root = Path(__file__).resolve().parents[3]
    env["PYTHONPATH"] = str(root) + os.pathsep + env.get("PYTHONPATH", "")
    run = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True,
                         env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    phases = json.loads(run.stdout.strip().splitlines()[-1])
    assert set(phases) == {"forward_partial0", "forward_final", "backward_partial0",
                           "backward_final"}
    for name, p in phases.items():
        threads = 32 * p["warps"]
        assert p["local"] == 0, (name, p)                      # nothing spilled
        assert 4 * threads * p["regs"] <= 65536, (name, p)     # four programs an SM fit
        assert p["grid"][0] * p["grid"][1] >= 4 * 132 - 32, (name, p)
        assert any(ld.startswith("ld.global.v4") for ld in p["loads"]), (name, p)
    for name in ("forward_partial0", "backward_partial0"):
        p = phases[name]
        assert p["divisions"] == 0, (name, p)
        assert all(ld.startswith("ld.global.v4") for ld in p["loads"]), (name, p)
