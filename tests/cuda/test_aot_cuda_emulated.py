"""CUDA artifacts end to end without a GPU: the artifact's launch table, run by the lite
CUDA runtime over a driver whose "device" memory is host memory and whose launches run
each kernel's Triton source under Triton's interpreter, equals the in-process
ember.compile(..., backend="triton") plan run the same way (tests/cuda/emulation.py)
bit for bit. This checks everything packaging decides on the host - the plan's kernels
and their order, repacked weights, view offsets, the memory plan's shared regions,
every pointer - and the runtime's addresses, copies and graph capture/replay. The
cubins themselves are not built here (the interpreter cannot run them; Triton's cubin
compile is tests/aot/test_package_cuda.py's); on a GPU the real cubins are compared in
test_aot_cuda_gpu.py."""
import copy
import ctypes
import os

os.environ.setdefault("TRITON_INTERPRET", "1")    # before triton is imported (emulation.py)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("torch")
pytest.importorskip("triton")

import ember  # noqa: E402
from ember import nn  # noqa: E402
from ember.codegen.triton import cache, device_compile  # noqa: E402
from ember.runtime import lite, lite_cuda  # noqa: E402

from test_compile_cuda import EMULATED, device  # noqa: E402,F401

pytestmark = pytest.mark.skipif(not EMULATED, reason="emulated CUDA only (a GPU runs "
                                "test_aot_cuda_gpu.py with the real cubins)")

_NP = {"*fp32": np.float32, "*fp64": np.float64, "*fp16": np.float16, "*i64": np.int64,
       "*i32": np.int32, "*i16": np.int16, "*i8": np.int8, "*u8": np.uint8, "*i1": np.bool_}


class InterpretingDriver:
    """lite_cuda's driver interface over host memory; a launch runs the kernel's Triton
    source (found by the artifact's source_key) under the interpreter, on tensors aliasing
    the memory its pointer arguments point into. Capture records launches; replay runs
    them, as the driver does with a CUDA graph."""

    def __init__(self, plan: dict, sources: dict):
        self.kernels = [sources[k["source_key"]] for k in plan["kernels"]]
        self.blocks, self.loaded, self.recorded = [], 0, None
        self.replays = 0

    def capability(self):
        return (9, 0)

    def current(self):
        pass

    def load(self, cubin, name, shared):
        self.loaded += 1
        return None, self.loaded - 1

    def alloc(self, nbytes):
        block = np.full(nbytes + 256, 0x7F, np.uint8)       # garbage, as device memory is
        start = block.ctypes.data + (-block.ctypes.data) % 256
        self.blocks.append((block, start, block.ctypes.data + block.nbytes))
        return start

    def free(self, ptr):
        pass

    def stream(self):
        return None

    def to_device(self, dst, host, stream):
        ctypes.memmove(dst, host.ctypes.data, host.nbytes)

    def to_host(self, host, src, stream):
        ctypes.memmove(host.ctypes.data, src, host.nbytes)

    def launch(self, function, grid, block, shared, stream, params):
        kernel = self.kernels[function]
        count = len(kernel.launch.args)
        array = ctypes.cast(params, ctypes.POINTER(ctypes.c_void_p))
        pointers = [ctypes.c_uint64.from_address(array[i]).value for i in range(count)]
        call = (kernel, pointers)
        if self.recorded is not None:
            self.recorded.append(call)
        else:
            self._run(*call)

    def library(self, work):
        """A library's launches (the stand-in cuDNN's): recorded in a capture like a kernel."""
        if self.recorded is not None:
            self.recorded.append((None, work))
        else:
            work()

    def _run(self, kernel, pointers):
        if kernel is None:                    # a library call recorded in a capture
            pointers()
            return
        import torch
        buffers = []
        for ptr, (_, sig) in zip(pointers, kernel.launch.args):
            end = next(e for _, s, e in self.blocks if s <= ptr < e)
            dtype = np.dtype(_NP[sig])
            count = (end - ptr) // dtype.itemsize
            raw = (ctypes.c_char * (count * dtype.itemsize)).from_address(ptr)
            buffers.append(torch.from_numpy(np.frombuffer(raw, dtype, count)))
        cache.launch(kernel, buffers)

    def capture(self, stream, work):
        self.recorded = []
        work()
        graph, self.recorded = self.recorded, None
        return graph, graph

    def replay(self, graph, stream):
        self.replays += 1
        for call in graph:
            self._run(*call)

    def synchronize(self, stream):
        pass


def _package(model, x, path, monkeypatch) -> dict:
    """Package for sm_90 with Triton's cubin compile replaced by placeholders (the
    interpreter runs the sources); returns {source key: GeneratedKernel}."""
    sources = {}

    def placeholder_cubins(jobs, workers=None):
        out = []
        for job in jobs:
            spec = job.kernel.launch
            sources[job.kernel.key()] = job.kernel
            out.append(device_compile.DeviceBinary(b"\x7fELF" + job.key().encode(), {
                "name": spec.name, "num_warps": spec.num_warps, "num_stages": spec.num_stages,
                "num_ctas": 1, "shared": 0, "global_scratch_size": 0,
                "profile_scratch_size": 0}))
        return out
    monkeypatch.setattr(device_compile, "compile_many", placeholder_cubins)
    ember.aot.compile_and_package(ember.export(model, (ember.tensor(x),)), path,
                                  target="cuda", options={"cuda_arch": "sm_90"})
    return sources


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 6 * 6, 10)

    def forward(self, x):
        x = self.conv1(x).relu()
        x = (self.conv2(x) + x).relu()
        return self.fc(x.flatten(1))


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(32, 48)
        self.norm = nn.LayerNorm(48)
        self.out = nn.Linear(48, 16)

    def forward(self, x):
        h = self.norm(ember.nn.functional.gelu(self.proj(x)))
        return self.out(h).softmax(-1), h.transpose(0, 1)[1:].sum(-1)


def _case(name):
    rng = np.random.default_rng(0)
    ember.manual_seed(0)
    if name == "mlp":
        return ember.models.mlp(in_features=24, hidden=(32, 16), num_classes=5, seed=3), \
            rng.standard_normal((6, 24), dtype=np.float32)
    if name == "conv":
        return ConvNet(), rng.standard_normal((2, 3, 6, 6), dtype=np.float32)
    return Encoder(), rng.standard_normal((3, 4, 32), dtype=np.float32)


@pytest.mark.parametrize("name", ["mlp", "conv", "encoder"])
def test_artifact_equals_in_process_plan_bit_for_bit(name, device, tmp_path, monkeypatch):
    model, x = _case(name)
    model.eval()
    path = tmp_path / f"{name}.ember"
    sources = _package(model, x, path, monkeypatch)
    on_device = copy.deepcopy(model).to(device)
    with ember.no_grad():
        want = ember.compile(on_device, backend="triton",
                             options={"cuda_graphs": False})(ember.tensor(x).to(device))
    want = [w.cpu().numpy() for w in (want if isinstance(want, tuple) else (want,))]
    manifest, members = lite.read_members(path)
    import json
    plan = json.loads(members["plan.json"])
    driver = InterpretingDriver(plan, sources)
    model_lite = lite_cuda.CudaLiteModel(path, manifest, members, driver=driver)
    assert driver.loaded == len(plan["kernels"]) and model_lite.graphed
    for call in range(2):                              # replayed graph, arena reused
        got = model_lite(x)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
    assert driver.replays == 2
