"""Launching without Triton (runtime/cuda/module.py), checked on the CPU: argument bytes,
the void** array, and that the metadata's hidden scratch parameters match what Triton
compiled (the cubin's entry point in PTX has exactly arg_types + scratch_params params).
The compile runs in a subprocess without TRITON_INTERPRET (other tests set it)."""
import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ember.runtime.cuda.module import LaunchMetadata, PackedArgs, pack_argument

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("value, sig, expect", [
    (0x7F00_1234_5678, "*fp32", np.uint64(0x7F00_1234_5678).tobytes()),
    (None, "*i8", bytes(8)),
    (-3, "i32", np.int32(-3).tobytes()),
    (2**40, "i64", np.int64(2**40).tobytes()),
    (1.5, "fp32", np.float32(1.5).tobytes()),
    (0.1, "fp64", np.float64(0.1).tobytes()),
    (-2.25, "fp16", np.float16(-2.25).tobytes()),
    (1.0, "bf16", np.uint16(0x3F80).tobytes()),
    (True, "i1", b"\x01"),
])
def test_arguments_hold_the_bytes_the_kernel_reads(value, sig, expect):
    assert bytes(pack_argument(value, sig)) == expect


def test_bf16_rounds_to_nearest_even():
    # 1 + 2**-8 lies halfway between two bf16 values: ties go to the even mantissa (1.0)
    assert bytes(pack_argument(1 + 2 ** -8, "bf16")) == np.uint16(0x3F80).tobytes()
    assert bytes(pack_argument(1 + 3 * 2 ** -8, "bf16")) == np.uint16(0x3F82).tobytes()


def test_packed_array_points_at_each_argument():
    packed = PackedArgs([0xABC, 7, 2.5], ["*fp32", "i32", "fp32"])
    slots = (ctypes.c_void_p * 3).from_address(packed.address)
    assert ctypes.c_uint64.from_address(slots[0]).value == 0xABC
    assert ctypes.c_int32.from_address(slots[1]).value == 7
    assert ctypes.c_float.from_address(slots[2]).value == 2.5


@pytest.mark.parametrize("keys, scratch", [({}, 0), ({"global_scratch_size": 0}, 1),
                                           ({"global_scratch_size": 0,
                                             "profile_scratch_size": 0}, 2)])
def test_scratch_parameters_follow_the_triton_version(keys, scratch):
    meta = LaunchMetadata.from_dict({"name": "k", "num_warps": 4, **keys}, ["*fp32"])
    assert meta.scratch_params == scratch


def test_unsupported_launch_modes_are_refused():
    from ember.ir.errors import DeviceError
    with pytest.raises(DeviceError, match="cooperative"):
        LaunchMetadata.from_dict({"name": "k", "num_warps": 4, "launch_cooperative_grid": True},
                                 [])


_PROBE = r'''
import json, re, sys
import ember
from ember.codegen.lowering import lower_group
from ember.codegen.triton.source import generate
from ember.frontend.eager_cuda import compile_triton
from ember.ir.meta import meta_of
from ember.ir.symbolic import build_graph
from ember.runtime.cuda.module import LaunchMetadata

def entry_params(ptx):
    return re.search(r"\.entry\s+\w+\s*\((.*?)\)", ptx, re.S).group(1).count(".param")

x = ember.randn(37, 5)
cases = {"pointwise": build_graph(lambda a, b: a * b + 1, [meta_of(x), meta_of(x)])[0],
         "softmax": build_graph(lambda a: ember.softmax(a, 1), [meta_of(x)])[0]}
out = {}
for name, graph in cases.items():
    gen = generate(lower_group(graph, name).kernel)
    arg_types = gen.launch.arg_types()          # pointers, then the shape-generic sizes
    pointers = len(gen.launch.args)
    for alignment in ([True] * pointers, [False] * pointers):
        compiled = compile_triton(gen, alignment, (9, 0))
        meta = LaunchMetadata.from_dict(compiled.metadata._asdict(), arg_types)
        out[f"{name}-{alignment[0]}"] = {
            "params": entry_params(compiled.asm["ptx"]),
            "expected": len(arg_types) + meta.scratch_params,
            "elf": compiled.asm["cubin"][:4] == b"\x7fELF",
            "divisibility": compiled.asm["ttir"].count("tt.divisibility"),
            "pointers": pointers, "num_warps": meta.num_warps,
            "warps_wanted": gen.launch.num_warps}
# the AOT metadata codegen/triton/compile.py writes reads back to the same launch
import tempfile
from ember.codegen.triton import compile as aot
gen = generate(lower_group(cases["softmax"], "softmax").kernel)
with tempfile.TemporaryDirectory() as d:
    path = aot.write_cubin(aot.compile_cubin(gen, 90), d)
    meta = LaunchMetadata.from_dict(json.loads(open(path).read()))
    ptx_params = aot._entry_param_count(compile_triton(gen, [True], (9, 0)).asm["ptx"],
                                        meta.name)
    out["aot"] = {"params": ptx_params, "expected": len(meta.arg_types) + meta.scratch_params,
                  "elf": True, "num_warps": meta.num_warps,
                  "warps_wanted": gen.launch.num_warps, "divisibility": 0, "pointers": 0,
                  "pointer_align": meta.pointer_align}
print(json.dumps(out))
'''


def test_compiled_entry_points_take_the_arguments_the_launcher_packs():
    pytest.importorskip("triton")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    run = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                         env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(run.stdout.strip().splitlines()[-1])
    for name, r in results.items():
        assert r["params"] == r["expected"], (name, r)
        assert r["elf"] and r["num_warps"] == r["warps_wanted"], (name, r)
        if name == "aot":
            assert r["pointer_align"] == 16
            continue
        aligned = name.endswith("True")
        assert (r["divisibility"] == r["pointers"]) if aligned else r["divisibility"] == 0, \
            (name, r)


def test_import_ember_loads_no_cuda_bindings_triton_or_lark():
    """The CUDA runtime imports its bindings on first use: ember imports on any machine."""
    code = ("import sys, ember; print(sorted(m for m in ('cuda.bindings.driver', 'triton', "
            "'lark', 'torch') if m in sys.modules))")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == "[]"


_DIVISION_PROBE = r'''
import json
import ember
from ember.codegen.lowering import lower_group
from ember.codegen.triton.source import generate
from ember.frontend.eager_cuda import compile_triton
from ember.ir.meta import meta_of
from ember.ir.symbolic import build_graph
out = {}
for dtype in (ember.float32, ember.float64):
    x = ember.randn(37, 5, dtype=dtype)
    graph = build_graph(lambda a, b: (a / b + 1.0 / a) * ember.rsqrt(b.abs()),
                        [meta_of(x), meta_of(x)])[0]
    gen = generate(lower_group(graph, "division").kernel)
    ptx = compile_triton(gen, [True] * len(gen.launch.args), (9, 0)).asm["ptx"]
    out[dtype.name] = sorted({w for w in ptx.split() if w.startswith("div.")})
print(json.dumps(out))
'''


def test_generated_division_is_correctly_rounded():
    """float32 / compiles to div.rn.f32 (IEEE, as PyTorch's CUDA kernels and the CPU divide),
    never Triton's default div.full.f32 (2 ulp), which made uint8 colour jitter truncate a
    level below the CPU's on an H100; float64 division is div.rn.f64."""
    pytest.importorskip("triton")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    run = subprocess.run([sys.executable, "-c", _DIVISION_PROBE], capture_output=True,
                         text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert found["float32"] == ["div.rn.f32"], found
    assert found["float64"] == ["div.rn.f64"], found
