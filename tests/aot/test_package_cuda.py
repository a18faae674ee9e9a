"""ember.aot.compile_and_package(..., target="cuda") without a GPU: Triton compiles the
cubins for the named architecture on the CPU (in a subprocess, through `ember compile
--target cuda`: this process may hold Triton in interpreter mode for the emulated CUDA
tests); the manifest, the launch table and the refusals (a wrong GPU architecture, a
corrupt cubin, an op without a Triton kernel) are checked here. The lite CUDA runtime's host side (arena and weight addresses, argument
packing, CUDA-graph capture and replay, input and result copies) runs against a driver
that keeps "device" memory in host memory and records launches instead of running them.
Running the cubins on a GPU, bit for bit against ember.compile(backend="triton"), is
tests/cuda/test_aot_cuda_gpu.py."""
from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import ember
from ember.compiler.aot_cuda import parse_arch
from ember.ir.errors import ArtifactError, LoweringError
from ember.runtime import lite, lite_cuda

# a driver over host memory that records what the runtime asks of it (the subprocess
# test below executes this same text)
FAKE_DRIVER = '''
import ctypes
import numpy as np

class RecordingDriver:
    def __init__(self, capability=(9, 0)):
        self.cap, self.blocks, self.loaded, self.launches = capability, [], [], []
        self.captures = self.replays = 0
        self.capturing = False

    def capability(self):
        return self.cap

    def current(self):
        pass

    def load(self, cubin, name, shared):
        assert bytes(cubin[:4]) == b"\\x7fELF", "a cubin is an ELF image"
        self.loaded.append(name)
        return object(), name

    def alloc(self, nbytes):
        block = np.full(nbytes + 256, 0xAB, np.uint8)
        self.blocks.append(block)
        return block.ctypes.data + (-block.ctypes.data) % 256

    def free(self, ptr):
        pass

    def stream(self):
        return "stream"

    def to_device(self, dst, host, stream):
        ctypes.memmove(dst, host.ctypes.data, host.nbytes)

    def to_host(self, host, src, stream):
        ctypes.memmove(host.ctypes.data, src, host.nbytes)

    def launch(self, function, grid, block, shared, stream, params):
        assert self.capturing, "with more than one launch, launches are captured"
        self.launches.append((function, tuple(grid), tuple(block), shared, params))

    def capture(self, stream, work):
        self.capturing = True
        work()
        self.capturing = False
        self.captures += 1
        return "graph", "exec"

    def replay(self, executable, stream):
        self.replays += 1

    def synchronize(self, stream):
        pass
'''
_names: dict = {}
exec(FAKE_DRIVER, _names)
RecordingDriver = _names["RecordingDriver"]


def _ember_cli(args: list, cwd) -> subprocess.CompletedProcess:
    """`python -m ember ...` with Triton compiling for real (no TRITON_INTERPRET)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    root = os.path.dirname(os.path.dirname(ember.__file__))
    env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "ember", *args], capture_output=True,
                          text=True, timeout=600, cwd=cwd, env=env)


@pytest.fixture(scope="module")
def cuda_mlp(tmp_path_factory):
    """`ember compile --target cuda --arch sm_90` of a small MLP: (path, an input)."""
    if importlib.util.find_spec("triton") is None:
        pytest.skip("packaging for CUDA needs Triton (pip install triton)")
    root = tmp_path_factory.mktemp("aot_cuda")
    (root / "net.py").write_text(
        "import ember\n\ndef make():\n"
        "    return ember.models.mlp(in_features=20, hidden=(24,), num_classes=5, seed=3)\n")
    path = root / "mlp_cuda.ember"
    done = _ember_cli(["compile", "net.py:make", "--input", "x:6x20", "--target", "cuda",
                       "--arch", "sm_90", "-o", str(path)], root)
    assert done.returncode == 0, done.stderr
    return path, np.random.default_rng(0).standard_normal((6, 20), dtype=np.float32)


def _plan(path) -> dict:
    with zipfile.ZipFile(path) as z:
        return json.loads(z.read("plan.json"))


def test_manifest_records_the_architecture_and_every_cubin(cuda_mlp):
    path, _ = cuda_mlp
    manifest, members = lite.read_members(path)        # every SHA-256 checked
    assert manifest["target"]["kind"] == "cuda"
    assert manifest["target"]["arch"] == "sm_90" and manifest["target"]["capability"] == [9, 0]
    assert manifest["inputs"] == [{"name": "x", "dtype": "float32", "shape": [6, 20]}]
    assert manifest["outputs"][0]["shape"] == [6, 5]
    plan = json.loads(members["plan.json"])
    cubins = sorted(n for n in members if n.startswith("kernels/"))
    assert cubins and sorted(k["cubin"] for k in plan["kernels"]) == cubins
    assert "model.so" not in members
    for k in plan["kernels"]:
        assert bytes(members[k["cubin"]][:4]) == b"\x7fELF"
        assert k["block"] == [32 * k["num_warps"], 1, 1] and min(k["grid"]) >= 1
        assert all(t.startswith("*") for t in k["arg_types"])
        assert len(k["alignment"]) == len(k["arg_types"])
    for launch in plan["launches"]:
        k = plan["kernels"][launch["kernel"]]
        assert len(launch["args"]) == len(k["arg_types"])
        for region, offset in launch["args"]:
            assert region == "arena" or region.removeprefix("weight:") in plan["weights"]
            assert offset % 16 == 0 or not all(k["alignment"])


def test_architecture_option_and_refusals():
    assert parse_arch("sm_90") == parse_arch(90) == parse_arch("9.0") == 90
    for bad in ("sm_x", "sm_60"):
        with pytest.raises(LoweringError, match="CUDA architecture"):
            parse_arch(bad)


def test_wrong_gpu_architecture_is_refused_before_loading(cuda_mlp):
    path, _ = cuda_mlp
    manifest, members = lite.read_members(path)
    with pytest.raises(ArtifactError, match=r"compiled for CUDA architecture sm_90 .*this GPU "
                                            r"is sm_80"):
        lite_cuda.check_arch(manifest, path, (8, 0))
    driver = RecordingDriver(capability=(8, 9))
    with pytest.raises(ArtifactError, match="sm_89"):
        lite_cuda.CudaLiteModel(path, manifest, members, driver=driver)
    assert driver.loaded == [] and driver.blocks == []          # nothing loaded or allocated


def test_corrupt_cubin_is_refused(cuda_mlp, tmp_path):
    path, _ = cuda_mlp
    bad = tmp_path / "bad.ember"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(bad, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = bytearray(src.read(info))
            if info.filename == "kernels/k0.cubin":
                data[len(data) // 2] ^= 0x40
            dst.writestr(info, bytes(data))
    with pytest.raises(ArtifactError, match="kernels/k0.cubin fails its SHA-256"):
        ember.aot.load_package(bad)


def test_op_without_a_triton_kernel_is_refused_by_name(tmp_path):
    class Inverse(ember.nn.Module):
        def forward(self, x):
            return ember.linalg.inv(x) + 1
    exported = ember.export(Inverse(), (ember.randn(3, 3),))
    with pytest.raises(LoweringError, match=r"step linalg_inv \(linalg_inv\) has no Triton "
                                            "kernel"):
        ember.aot.compile_and_package(exported, tmp_path / "inv.ember", target="cuda")


def _pointers(params: int, count: int) -> list[int]:
    array = ctypes.cast(params, ctypes.POINTER(ctypes.c_void_p))
    return [ctypes.c_uint64.from_address(array[i]).value for i in range(count)]


def test_runtime_launches_at_planned_addresses_and_replays_one_graph(cuda_mlp):
    path, x = cuda_mlp
    manifest, members = lite.read_members(path)
    driver = RecordingDriver()
    model = lite_cuda.CudaLiteModel(path, manifest, members, driver=driver)
    plan = _plan(path)
    assert driver.loaded == [k["name"] for k in plan["kernels"]]
    assert model.graphed and driver.captures == 1
    assert len(driver.launches) == len(plan["launches"])
    for (function, grid, block, shared, params), launch in zip(driver.launches,
                                                              plan["launches"]):
        k = plan["kernels"][launch["kernel"]]
        assert function == k["name"] and list(grid) == k["grid"] and list(block) == k["block"]
        assert shared == k["shared"]
        expected = [model.address(r, o) for r, o in launch["args"]]
        got = _pointers(params, len(expected) + k["scratch_params"])
        assert got[:len(expected)] == expected and got[len(expected):] == \
            [0] * k["scratch_params"]
    (y,) = model(x)
    (y,) = model(x)
    assert driver.replays == 2 and y.shape == (6, 5) and y.dtype == np.float32
    where = plan["inputs"][0]
    arena_input = np.frombuffer((ctypes.c_char * x.nbytes).from_address(
        model.address(where["region"], where["offset"])), np.float32).reshape(x.shape)
    np.testing.assert_array_equal(arena_input, x)               # copied to its region


def test_views_resolve_to_offsets_bit_for_bit(tmp_path):
    """A model made only of views: no launch, the result is the input's region read at
    the view's offset and strides."""
    class Views(ember.nn.Module):
        def forward(self, x):
            return x.transpose(0, 1)[1:]
    x = np.arange(24, dtype=np.float32).reshape(4, 6)
    path = tmp_path / "views.ember"
    ember.aot.compile_and_package(ember.export(Views(), (ember.tensor(x),)), path,
                                  target="cuda")
    manifest, members = lite.read_members(path)
    model = lite_cuda.CudaLiteModel(path, manifest, members, driver=RecordingDriver())
    assert _plan(path)["launches"] == [] and not model.graphed
    (y,) = model(x)
    np.testing.assert_array_equal(y, x.T[1:])
    with pytest.raises(ValueError, match=r"expected shape \[4, 6\]"):
        model(x[:2])


def test_lite_cuda_runs_without_the_compiler(cuda_mlp, tmp_path):
    """lite.py and lite_cuda.py loaded by path, with llvmlite, lark, networkx, triton,
    torch and ember unimportable."""
    path, x = cuda_mlp
    np.save(tmp_path / "x.npy", x)
    blocked = ("llvmlite", "lark", "networkx", "triton", "torch", "ember")
    script = f"""
import importlib.abc, importlib.util, sys
BLOCKED = {blocked!r}
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Blocker())
spec = importlib.util.spec_from_file_location('ember_lite', {lite.__file__!r})
lite = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lite)
{FAKE_DRIVER}
import numpy as np
manifest, members = lite.read_members({str(path)!r})
module = lite._lite_sibling('lite_cuda', 'CUDA runtime')
model = module.CudaLiteModel({str(path)!r}, manifest, members, driver=RecordingDriver())
(y,) = model(np.load({str(tmp_path / 'x.npy')!r}))
assert y.shape == (6, 5)
heavy = [m for m in sys.modules if m.split('.')[0] in BLOCKED]
assert not heavy, heavy
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr


def test_cli_inspect_and_arch_refusal(cuda_mlp, tmp_path):
    from click.testing import CliRunner
    from ember.cli import main
    path, _ = cuda_mlp
    runner = CliRunner()
    shown = runner.invoke(main, ["inspect", str(path)])
    assert shown.exit_code == 0, shown.output
    assert "cuda sm_90" in shown.output and "launches" in shown.output
    refused = runner.invoke(main, ["compile", "ember.models:mlp", "-o", str(tmp_path / "a"),
                                   "--input", "x:2x8", "--arch", "sm_90"])
    assert refused.exit_code != 0 and "--arch applies to --target cuda" in refused.output
