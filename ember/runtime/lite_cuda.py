"""The lite runtime's CUDA half: run an artifact packaged with target="cuda".

    model = ember.aot.load_package("model.ember")    # or runtime/lite.py's load_package
    (y,) = model(x)                                  # numpy in, numpy out

Imports numpy, ctypes, the standard library and NVIDIA's driver bindings
(`cuda.bindings.driver`, the cuda-bindings package), and for an artifact with cuDNN
convolutions (its manifest `requires` nvidia-cudnn-frontend) the cuDNN frontend, whose
graphs its sibling lite_cudnn.py builds; never Triton, llvmlite, lark,
networkx or ember's compiler. runtime/lite.py reads and verifies the artifact (every
member's SHA-256, the format version) and hands it here; this file is its sibling and is
loaded by path when lite.py runs on its own.

Loading, in order: a required cuDNN frontend must import at the artifact's cuDNN version
(require_cudnn); the GPU's architecture must be the one the cubins were compiled for
(the manifest's target.capability; else ArtifactError, before anything is loaded); every
cubin is loaded (cuModuleLoadData) and its kernel found (cuModuleGetFunction), with
dynamic shared memory above 48 KiB opted in; one device arena (inputs, intermediates,
results at the byte offsets compiler/aot_cuda.py planned) and one block for the weights
(the safetensors member's data, copied once) are allocated; each launch's argument array
is packed once (pointers are fixed: arena or weights base + offset, then Triton's scratch
pointers); each cuDNN convolution's graph is rebuilt with exactly its recorded engine
config (CudnnConvs). A call copies the inputs into their arena regions, runs the launches on this
model's stream - replayed as one CUDA graph (cuGraphLaunch) when the plan has more than
one launch, since every address is fixed - and copies the results out.
"""
from __future__ import annotations

import ctypes
import json
from typing import NamedTuple

import numpy as np

try:                       # inside the ember package: ember's own error class
    from ..ir.errors import ArtifactError
except ImportError:        # loaded on its own: lite.py sets the same name on this module
    class ArtifactError(Exception):
        """A corrupt, incomplete or mismatched artifact (refused before anything runs)."""

SHARED_LIMIT = 48 * 1024          # dynamic shared memory a kernel may use without opting in
CUDNN_PACKAGE = "nvidia-cudnn-frontend"   # an artifact with cuDNN convolutions requires it


def _lite_cudnn():
    """runtime/lite_cudnn.py (the graph builder shared with ember's in-process cuDNN glue),
    imported in the package, else loaded by path beside this file."""
    try:
        from . import lite_cudnn
        return lite_cudnn
    except ImportError:
        import importlib.util
        import os
        import sys
        module = sys.modules.get("ember_lite_cudnn")
        if module is None:
            where = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lite_cudnn.py")
            spec = importlib.util.spec_from_file_location("ember_lite_cudnn", where)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            sys.modules["ember_lite_cudnn"] = module
        return module


def require_cudnn(manifest: dict, path):
    """The cuDNN frontend module for an artifact that lists it in `requires` (None for one
    that does not): refused with ArtifactError, before anything is loaded, where the
    package does not import, its library does not load, or its cuDNN version is not the
    one the artifact's engine configs were chosen with."""
    requires = manifest.get("requires") or []
    unknown = [r for r in requires if r != CUDNN_PACKAGE] if isinstance(requires, list) \
        else [requires]
    if unknown:
        raise ArtifactError(f"{path}: the artifact requires {', '.join(map(str, unknown))}, "
                            "which this runtime does not know: load it with the ember "
                            "version that wrote it")
    if CUDNN_PACKAGE not in requires:
        return None
    try:
        import cudnn
        have = int(cudnn.backend_version())
    except Exception as err:  # noqa: BLE001 - not installed, or its library does not load
        raise ArtifactError(f"{path}: this artifact runs convolutions on cuDNN and needs "
                            f"NVIDIA's cuDNN frontend (pip install {CUDNN_PACKAGE} and a "
                            f"cuDNN library wheel, nvidia-cudnn-cu12 or -cu13): "
                            f"{type(err).__name__}: {err}") from None
    want = manifest.get("target", {}).get("cudnn_version")
    if want is not None and int(want) != have:
        raise ArtifactError(f"{path}: its cuDNN engine configs were chosen with cuDNN {want}; "
                            f"this machine has cuDNN {have}: package it again here")
    return cudnn


class CudnnConvs:
    """The artifact's cuDNN convolutions (plan.json "cudnn"): each spec's graph rebuilt
    (lite_cudnn.conv_graph, as ember builds it in-process) and exactly the recorded engine
    config built (lite_cudnn.plan_named), with its workspace; `run(i, pointers, stream)`
    queues convolution i on the stream."""

    def __init__(self, cudnn, entries: list, driver, path):
        graphs = _lite_cudnn()
        self.cudnn, self.handle, self.convs, self.workspaces = cudnn, None, [], []
        if not entries:
            return
        self.handle = cudnn.create_handle()          # on the driver's current context
        for entry in entries:
            try:
                spec = _Spec(entry["spec"])
                missing = [f for f in graphs.SPEC_FIELDS if not hasattr(spec, f)]
                if missing:
                    raise KeyError(", ".join(missing))
                tag = str(entry["engine"])
            except (KeyError, TypeError, AttributeError) as err:
                raise ArtifactError(f"{path}: unreadable cuDNN convolution in the plan "
                                    f"({type(err).__name__}: {err})") from None
            try:
                graph, tensors = graphs.conv_graph(cudnn, spec, self.handle,
                                                   graphs.barred_notes(cudnn, spec))
                index = graphs.plan_named(graph, tag)
            except Exception as err:  # noqa: BLE001 - the frontend's errors have no common base
                raise ArtifactError(f"{path}: cuDNN could not build {entry.get('describe')} "
                                    f"with engine config {tag}: {type(err).__name__}: "
                                    f"{str(err)[:300]}") from None
            if index < 0:
                raise ArtifactError(f"{path}: cuDNN on this machine has no engine config "
                                    f"{tag} for {entry.get('describe')}: "
                                    "package it again here")
            size = int(graph.get_workspace_size_plan_at_index(index))
            workspace = driver.alloc(size) if size > 0 else None
            if workspace is not None:
                self.workspaces.append(workspace)
            self.convs.append((graph, tensors, index, workspace))

    def run(self, i: int, pointers: list, stream) -> None:
        graph, tensors, index, workspace = self.convs[i]
        self.cudnn.set_stream(self.handle, 0 if stream is None else int(stream))
        graph.execute_plan_at_index(dict(zip(tensors, pointers)), workspace, index,
                                    handle=self.handle)


class _ConvLaunch(NamedTuple):
    index: int                # into plan.json's "cudnn"
    pointers: list            # x, w, y (, bias)


class _Spec:
    """A ConvSpec's fields from plan.json (geometry back to tuples)."""

    def __init__(self, fields: dict):
        def tup(v):
            return tuple(tup(e) for e in v) if isinstance(v, list) else v
        for name, value in fields.items():
            setattr(self, name, tup(value))


def check_arch(manifest: dict, path, capability: tuple[int, int]) -> None:
    """Refuse cubins compiled for another GPU architecture than `capability` (major,
    minor): Triton's sm_90 code uses sm_90a-only instructions, so the match is exact."""
    target = manifest.get("target", {})
    need = target.get("capability")
    if not (isinstance(need, list) and len(need) == 2 and all(isinstance(v, int) for v in need)):
        raise ArtifactError(f"{path}: the manifest names no CUDA architecture")
    if tuple(need) != tuple(capability):
        have = f"sm_{capability[0]}{capability[1]}"
        raise ArtifactError(f"{path}: compiled for CUDA architecture {target.get('arch')} "
                            f"(compute capability {need[0]}.{need[1]}); this GPU is {have} "
                            f"({capability[0]}.{capability[1]}): package it again with "
                            f"target='cuda' and options={{'cuda_arch': '{have}'}}")


# --- the driver calls -------------------------------------------------------------------------
class Driver:
    """The driver API calls an artifact needs, on one device's primary context."""

    def __init__(self, device: int = 0):
        try:
            from cuda.bindings import driver as cu
        except ImportError as err:
            raise ArtifactError(f"a CUDA artifact needs NVIDIA's driver bindings (pip install "
                                f"cuda-bindings): {err}") from None
        self.cu, self.device = cu, device
        try:
            self.call("cuInit", 0)
            self._dev = self.call("cuDeviceGet", device)
            self._ctx = self.call("cuDevicePrimaryCtxRetain", self._dev)
        except ArtifactError as err:
            raise ArtifactError(f"a CUDA artifact needs a CUDA GPU (device {device}): "
                                f"{err}") from None
        self.current()

    def call(self, name: str, *args):
        try:
            out = getattr(self.cu, name)(*args)
        except (RuntimeError, OSError, TypeError, ValueError) as err:
            raise ArtifactError(f"{name} failed: {type(err).__name__}: {err}") from None
        result, values = out[0], out[1:]
        if result != self.cu.CUresult.CUDA_SUCCESS:
            raise ArtifactError(f"{name} failed: {result}")
        if not values:
            return None
        return values[0] if len(values) == 1 else values

    def current(self) -> None:
        self.call("cuCtxSetCurrent", self._ctx)

    def capability(self) -> tuple[int, int]:
        attr = self.cu.CUdevice_attribute
        return (int(self.call("cuDeviceGetAttribute",
                              attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, self._dev)),
                int(self.call("cuDeviceGetAttribute",
                              attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, self._dev)))

    def load(self, cubin: bytes, name: str, shared: int):
        """(module, function) of kernel `name` in `cubin`, opted in to `shared` bytes."""
        module = self.call("cuModuleLoadData", cubin)
        function = self.call("cuModuleGetFunction", module, name.encode())
        if shared > SHARED_LIMIT:
            cu = self.cu
            optin = int(self.call("cuDeviceGetAttribute", cu.CUdevice_attribute.
                                  CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
                                  self._dev))
            static = int(self.call("cuFuncGetAttribute", cu.CUfunction_attribute.
                                   CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, function))
            if shared + static > optin:
                raise ArtifactError(f"kernel {name} needs {shared + static} bytes of shared "
                                    f"memory; this GPU allows {optin} per block")
            self.call("cuFuncSetAttribute", function, cu.CUfunction_attribute.
                      CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, optin - static)
        return module, function

    def alloc(self, nbytes: int) -> int:
        return int(self.call("cuMemAlloc", max(int(nbytes), 1)))

    def free(self, ptr: int) -> None:
        self.cu.cuMemFree(ptr)

    def stream(self):
        return self.call("cuStreamCreate", self.cu.CUstream_flags.CU_STREAM_NON_BLOCKING)

    def to_device(self, dst: int, host: np.ndarray, stream) -> None:
        if host.nbytes:
            self.call("cuMemcpyHtoDAsync", dst, host.ctypes.data, host.nbytes, stream)

    def to_host(self, host: np.ndarray, src: int, stream) -> None:
        if host.nbytes:
            self.call("cuMemcpyDtoHAsync", host.ctypes.data, src, host.nbytes, stream)

    def launch(self, function, grid, block, shared: int, stream, params: int) -> None:
        self.call("cuLaunchKernel", function, *grid, *block, shared, stream, params, 0)

    def capture(self, stream, work):
        """A CUDA graph of the launches `work()` queues on `stream`, instantiated."""
        mode = self.cu.CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_RELAXED
        self.call("cuStreamBeginCapture", stream, mode)
        try:
            work()
        finally:
            graph = self.call("cuStreamEndCapture", stream)
        return graph, self.call("cuGraphInstantiate", graph, 0)

    def library(self, work) -> None:
        """A library's launches (cuDNN's): `work()` queues them on the model's stream, where
        a capture records them as it records cuLaunchKernel's."""
        work()

    def replay(self, executable, stream) -> None:
        self.call("cuGraphLaunch", executable, stream)

    def synchronize(self, stream) -> None:
        self.call("cuStreamSynchronize", stream)


# --- the model ----------------------------------------------------------------------------------
def _safetensors_offsets(data, path) -> tuple[int, dict]:
    """(data start, {name: byte offset from it}) of the weights member."""
    if len(data) == 0:
        return 0, {}
    try:
        n = int.from_bytes(bytes(data[:8]), "little")
        header = json.loads(bytes(data[8:8 + n]))
        return 8 + n, {k: int(v["data_offsets"][0]) for k, v in header.items()
                       if not k.startswith("_pad") and k != "__metadata__"}
    except (ValueError, KeyError, TypeError, IndexError) as err:
        raise ArtifactError(f"{path}: unreadable weights ({err})") from None


class CudaLiteModel:
    """A loaded CUDA artifact: call with numpy arrays (one per input), get a list of arrays.

    `driver`: the calls this model makes (default: Driver(device)); `cuda_graphs`: True,
    False or "auto" (the artifact's choice: replay when there is more than one launch)."""

    def __init__(self, path, manifest: dict, members: dict, device: int = 0,
                 driver=None, cuda_graphs=None):
        self.path, self.manifest = str(path), manifest
        cudnn = require_cudnn(manifest, path)
        self.driver = driver if driver is not None else Driver(device)
        check_arch(manifest, path, self.driver.capability())
        try:
            self.plan = plan = json.loads(bytes(members["plan.json"]))
            kernels, launches = plan["kernels"], plan["launches"]
            cubins = [members[k["cubin"]] for k in kernels]
            self.graph_text = bytes(members["graph.ir"]).decode()
        except (ValueError, KeyError, TypeError) as err:
            raise ArtifactError(f"{path}: unreadable CUDA plan ({type(err).__name__}: "
                                f"{err})") from None
        d = self.driver
        self._modules = [d.load(bytes(c), k["name"], int(k["shared"]))
                         for c, k in zip(cubins, kernels)]
        self.arena = d.alloc(plan["arena_bytes"])
        weights = members["weights.safetensors"]
        start, offsets = _safetensors_offsets(weights, path)
        blob = np.frombuffer(weights, np.uint8)[start:] if start else np.zeros(1, np.uint8)
        self.weights = d.alloc(blob.nbytes)
        self.stream = d.stream()
        d.to_device(self.weights, np.ascontiguousarray(blob), self.stream)
        self._weight_at = {f"weight:{k}": self.weights + v for k, v in offsets.items()}
        self._scratch: list[int] = []
        self._cudnn = CudnnConvs(cudnn, plan.get("cudnn") or [], d, path) \
            if plan.get("cudnn") else None
        if plan.get("cudnn") and cudnn is None:
            raise ArtifactError(f"{path}: the plan has cuDNN convolutions but the manifest "
                                f"does not list {CUDNN_PACKAGE} in `requires`")
        self._launches = [self._prepare(launch, kernels) for launch in launches]
        mode = plan.get("cuda_graphs", "auto") if cuda_graphs is None else cuda_graphs
        self.graphed = bool(mode is True or (mode == "auto" and len(self._launches) > 1))
        self._graph = None
        if self.graphed:
            d.synchronize(self.stream)          # the weights are in place before capture
            if self._cudnn is not None:         # cuDNN's first execution may load its
                self._launch_all()              # kernels, which a capture cannot do
                d.synchronize(self.stream)
            self._graph = d.capture(self.stream, self._launch_all)
        d.synchronize(self.stream)

    # -- loading ---------------------------------------------------------------------------------
    def address(self, region: str, offset: int) -> int:
        if region == "arena":
            return self.arena + offset
        base = self._weight_at.get(region)
        if base is None:
            raise ArtifactError(f"{self.path}: the plan names weight {region!r}, which the "
                                "weights member lacks")
        return base + offset

    def _prepare(self, launch: dict, kernels: list) -> tuple:
        """(function, grid, block, shared, packed argument array, its storage), or for a
        cuDNN convolution a _ConvLaunch."""
        if "cudnn" in launch:
            i = int(launch["cudnn"])
            if self._cudnn is None or not 0 <= i < len(self._cudnn.convs):
                raise ArtifactError(f"{self.path}: launch {launch['step']} names cuDNN "
                                    f"convolution {i}, which the plan lacks")
            return _ConvLaunch(i, [self.address(a[0], int(a[1])) for a in launch["args"]])
        k = kernels[launch["kernel"]]
        grid, block = tuple(k["grid"]), tuple(k["block"])
        pointers = [0 if a is None else self.address(a[0], int(a[1])) for a in launch["args"]]
        if len(pointers) != len(k["arg_types"]):
            raise ArtifactError(f"{self.path}: launch {launch['step']} passes {len(pointers)} "
                                f"arguments to {k['name']}, which takes {len(k['arg_types'])}")
        programs = grid[0] * grid[1] * grid[2] * int(k.get("num_ctas", 1))
        sizes = [int(k.get("global_scratch_size") or 0),
                 int(k.get("profile_scratch_size") or 0)][:int(k.get("scratch_params", 0))]
        for size in sizes:
            pointers.append(self.driver.alloc(programs * size) if size else 0)
            if size:
                self._scratch.append(pointers[-1])
        storage = [ctypes.c_uint64(p) for p in pointers]
        array = (ctypes.c_void_p * max(1, len(storage)))(*[ctypes.addressof(s) for s in storage])
        _, function = self._modules[launch["kernel"]]
        return function, grid, block, int(k["shared"]), array, storage

    def _launch_all(self) -> None:
        for launch in self._launches:
            if isinstance(launch, _ConvLaunch):
                self.driver.library(lambda c=launch: self._cudnn.run(c.index, c.pointers,
                                                                       self.stream))
                continue
            function, grid, block, shared, array, _ = launch
            self.driver.launch(function, grid, block, shared, self.stream,
                               ctypes.addressof(array))

    # -- running ---------------------------------------------------------------------------------
    @property
    def inputs(self) -> list:
        return self.manifest["inputs"]

    @property
    def outputs(self) -> list:
        return self.manifest["outputs"]

    def __call__(self, *arrays) -> list:
        return self.run(arrays)

    def run(self, arrays) -> list:
        d = self.driver
        d.current()
        given = self._checked(arrays)
        for where, array in zip(self.plan["inputs"], given):
            d.to_device(self.address(where["region"], where["offset"]), array, self.stream)
        if self._graph is not None:
            d.replay(self._graph[1], self.stream)
        else:
            self._launch_all()
        results = []
        for where in self.plan["outputs"]:
            span = np.empty(_extent(where), np.dtype(where["dtype"]))
            d.to_host(span, self.address(where["region"], where["offset"]), self.stream)
            results.append((span, where))
        d.synchronize(self.stream)
        return [np.lib.stride_tricks.as_strided(
                    span, where["shape"], [s * span.itemsize for s in where["strides"]])
                if span.size else np.empty(where["shape"], span.dtype)
                for span, where in results]

    def _checked(self, arrays) -> list:
        """Each input as the flat span its arena region holds (shape and dtype checked)."""
        specs = self.plan["inputs"]
        if len(arrays) != len(specs):
            raise ValueError(f"the model takes {len(specs)} inputs "
                             f"({', '.join(s['name'] for s in self.inputs)}), got {len(arrays)}")
        spans = []
        for spec, where, a in zip(self.inputs, specs, arrays):
            a = np.asarray(a)
            dtype = np.dtype(where["dtype"])
            if list(a.shape) != list(where["shape"]):
                raise ValueError(f"input {spec['name']}: expected shape {where['shape']}, "
                                 f"got {list(a.shape)}")
            if a.dtype != dtype:
                if not np.can_cast(a.dtype, dtype, "same_kind"):
                    raise ValueError(f"input {spec['name']}: expected dtype {spec['dtype']}, "
                                     f"got {a.dtype}")
                a = a.astype(dtype)
            span = np.zeros(max(_extent(where), 1), dtype)
            if a.size:
                np.lib.stride_tricks.as_strided(
                    span, a.shape, [s * dtype.itemsize for s in where["strides"]])[...] = a
            spans.append(span[:_extent(where)])
        return spans

    def close(self) -> None:
        """Free the device memory now (else at interpreter exit, with the context)."""
        d = self.driver
        workspaces = self._cudnn.workspaces if self._cudnn is not None else []
        for ptr in [self.arena, self.weights] + self._scratch + workspaces:
            d.free(ptr)
        self._scratch, self.arena, self.weights = [], 0, 0


def _extent(where: dict) -> int:
    if not all(where["shape"]):
        return 0
    return 1 + sum((n - 1) * s for n, s in zip(where["shape"], where["strides"]))
