"""Compiled cubins: load (cuModuleLoadData), find the kernel, launch it from its metadata.

`LaunchMetadata` is what a launch needs and nothing that compiles: the kernel's name in
the cubin, its runtime arguments' signature types in call order (constexprs are compiled
in and are not arguments), warps, dynamic shared memory, and Triton's hidden scratch
parameters. It reads the dict of Triton's `CompiledKernel.metadata` (`_asdict()`) or the
JSON written next to an ahead-of-time cubin (ember/codegen/triton).

Argument packing follows Triton's launcher (triton/backends/nvidia/driver.{py,c}, 3.5
through 3.9): each runtime argument is stored in its C type (pointers as 64-bit
CUdeviceptr; fp32/fp64 scalars as float/double; fp16/bf16 as their 16-bit patterns), then
two trailing pointers are appended: the global scratch buffer and the profile scratch
buffer, each `grid * num_ctas * size` bytes when the metadata asks for a size, else NULL.
Triton 3.3/3.4 kernels (metadata without `profile_scratch_size`) take only the first.
cuLaunchKernel gets `32 * num_warps` threads per block and `shared` bytes of dynamic
shared memory; above 48 KiB the function must opt in first (cuFuncSetAttribute with
MAX_DYNAMIC_SHARED_SIZE_BYTES), which `CubinKernel` does when it loads.
"""
from __future__ import annotations

import ctypes
import sys
from dataclasses import dataclass

import numpy as np

from ...ir import compile_times, profiling
from ...ir.errors import DeviceError
from . import driver
from .allocator import device_allocator
from .stream import Event, Stream, current_stream

DEFAULT_SHARED_LIMIT = 48 * 1024    # bytes of dynamic shared memory without opting in

# signature type -> ctypes storage of one argument
_SCALAR_TYPES = {
    "i1": ctypes.c_int8, "i8": ctypes.c_int8, "i16": ctypes.c_int16, "i32": ctypes.c_int32,
    "i64": ctypes.c_int64, "u1": ctypes.c_uint8, "u8": ctypes.c_uint8,
    "u16": ctypes.c_uint16, "u32": ctypes.c_uint32, "u64": ctypes.c_uint64,
    "fp32": ctypes.c_float, "f32": ctypes.c_float, "fp64": ctypes.c_double,
}


def pack_argument(value, sig: str):
    """One kernel argument as a ctypes object holding exactly the bytes the kernel reads."""
    if sig.startswith("*"):
        return ctypes.c_uint64(0 if value is None else int(value))
    if sig == "fp16":
        return ctypes.c_uint16(int(np.float16(value).view(np.uint16)))
    if sig == "bf16":
        bits = int(np.float32(value).view(np.uint32))
        bits += 0x7FFF + ((bits >> 16) & 1)           # round to nearest even, as Triton does
        return ctypes.c_uint16(bits >> 16)
    ctype = _SCALAR_TYPES.get(sig)
    if ctype is None:
        raise DeviceError(f"cannot pass a kernel argument of signature type {sig!r}")
    return ctype(value)


@dataclass
class LaunchMetadata:
    name: str
    arg_types: list[str]
    num_warps: int
    shared: int = 0
    num_ctas: int = 1
    scratch_params: int = 2               # trailing hidden pointers (Triton >= 3.5: 2)
    global_scratch_size: int = 0
    global_scratch_align: int = 1
    profile_scratch_size: int = 0
    profile_scratch_align: int = 1
    pointer_align: int = 1                # pointers must be aligned so (compiled assuming it)

    @classmethod
    def from_dict(cls, meta: dict, arg_types: list[str] | None = None) -> "LaunchMetadata":
        """From Triton's metadata dict, or the JSON codegen/triton/compile.py writes beside a
        cubin (format ember-triton-cubin-1: `shared_mem`, `args`, `extra_params`)."""
        if meta.get("launch_cooperative_grid") or meta.get("launch_pdl"):
            raise DeviceError(f"{meta['name']}: cooperative or PDL launches are not supported")
        if arg_types is None:
            arg_types = [sig for _, sig in meta["args"]]
        if "extra_params" in meta:            # counted from the compiled entry point
            scratch = len(meta["extra_params"])
        elif "profile_scratch_size" in meta:
            scratch = 2
        elif "global_scratch_size" in meta:
            scratch = 1
        else:
            scratch = 0
        return cls(meta["name"], list(arg_types), int(meta["num_warps"]),
                   int(meta.get("shared", meta.get("shared_mem", 0))),
                   int(meta.get("num_ctas", 1)), scratch,
                   int(meta.get("global_scratch_size") or 0),
                   int(meta.get("global_scratch_align") or 1),
                   int(meta.get("profile_scratch_size") or 0),
                   int(meta.get("profile_scratch_align") or 1),
                   int(meta.get("pointer_align") or 1))

    def to_json(self) -> dict:
        return dict(self.__dict__)


class PackedArgs:
    """The `void**` array cuLaunchKernel reads, and the storage it points into."""

    def __init__(self, values: list, types: list[str]):
        self._objects = [pack_argument(v, t) for v, t in zip(values, types)]
        self._array = (ctypes.c_void_p * max(1, len(self._objects)))(
            *[ctypes.addressof(o) for o in self._objects])

    @property
    def address(self) -> int:
        return ctypes.addressof(self._array)


class CubinKernel:
    """One kernel of a loaded cubin, launchable with `launch(grid, args, stream)`."""

    def __init__(self, cubin: bytes, meta: LaunchMetadata, device: int = 0):
        if meta.num_ctas != 1:
            raise DeviceError(f"{meta.name}: num_ctas={meta.num_ctas} (thread-block clusters) "
                              "is not supported by this launcher")
        driver.context(device)
        self.meta, self.device = meta, device
        with driver.relaxed_capture(), compile_times.stage("cubin loads (cuModuleLoadData)"):
            self._module = driver.call("cuModuleLoadData", cubin)   # (or used in a capture)
        # kept on the kernel: __del__ may run when the module's globals are already gone
        self._unload = driver.bindings().cuModuleUnload
        self._function = driver.call("cuModuleGetFunction", self._module, meta.name.encode())
        if meta.shared > DEFAULT_SHARED_LIMIT:
            self._opt_in_shared_memory()

    def _opt_in_shared_memory(self) -> None:
        cu = driver.bindings()
        optin = driver.device_attribute("MAX_SHARED_MEMORY_PER_BLOCK_OPTIN", self.device)
        static = driver.call("cuFuncGetAttribute",
                             cu.CUfunction_attribute.CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES,
                             self._function)
        if self.meta.shared + static > optin:
            raise DeviceError(f"{self.meta.name} needs {self.meta.shared} bytes of shared "
                              f"memory; this device allows {optin} per block")
        driver.call("cuFuncSetAttribute", self._function,
                    cu.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    optin - static)

    def launch(self, grid: tuple[int, int, int], args: list, stream: Stream | None = None):
        """Launch on `stream` (default: the current stream) with runtime `args` in order."""
        meta = self.meta
        if len(args) != len(meta.arg_types):
            raise DeviceError(f"{meta.name} takes {len(meta.arg_types)} arguments "
                              f"({', '.join(meta.arg_types)}), got {len(args)}")
        gx, gy, gz = (tuple(grid) + (1, 1))[:3]
        if gx * gy * gz == 0:
            return
        self._check_alignment(args)
        stream = stream or current_stream(self.device)
        scratch = self._scratch(gx * gy * gz, stream)
        values = list(args) + [b.ptr if b is not None else None for b in scratch]
        packed = PackedArgs(values, meta.arg_types + ["*i8"] * meta.scratch_params)
        driver.context(self.device)
        timer = profiling.kernel_timer()         # a profile with ProfilerActivity.CUDA
        if timer is not None:
            start, end = (Event(enable_timing=True, device=self.device) for _ in range(2))
            start.record(stream)
        driver.call("cuLaunchKernel", self._function, gx, gy, gz, 32 * meta.num_warps, 1, 1,
                    meta.shared, stream._stream, packed.address, 0)
        if timer is not None:
            end.record(stream)
            timer.kernel(meta.name, self.device, stream.handle, (gx, gy, gz), start, end)
        allocator = device_allocator(self.device)
        for block in scratch:
            if block is not None:       # stream-ordered: only this stream reuses the block
                allocator.free(block)

    def _check_alignment(self, args: list) -> None:
        align = self.meta.pointer_align
        for i, (value, sig) in enumerate(zip(args, self.meta.arg_types)):
            if sig.startswith("*") and value is not None and int(value) % align:
                raise DeviceError(f"{self.meta.name}: pointer argument {i} at {int(value):#x} "
                                  f"is not {align}-byte aligned, as the cubin assumes")

    def _scratch(self, programs: int, stream: Stream) -> list:
        meta = self.meta
        sizes = [meta.global_scratch_size, meta.profile_scratch_size][:meta.scratch_params]
        allocator = device_allocator(self.device)
        return [allocator.malloc(programs * meta.num_ctas * size, stream.handle) if size
                else None for size in sizes]

    def __del__(self, _finalizing=sys.is_finalizing):
        # At interpreter exit the driver frees every module with its context, and this
        # module's globals may already be None: unload only while the process goes on.
        unload = getattr(self, "_unload", None)
        if unload is None or _finalizing():
            return
        try:
            unload(self._module)
        except Exception:   # noqa: BLE001 - the context was destroyed first
            pass


def load_cubin(json_path, device: int = 0) -> CubinKernel:
    """A CubinKernel from an ahead-of-time pair: <stem>.json (codegen/triton/compile.py's
    metadata) and the cubin it names, beside it. Needs no Triton."""
    import json
    from pathlib import Path
    path = Path(json_path)
    meta = json.loads(path.read_text())
    cubin = (path.parent / meta.get("cubin", path.with_suffix(".cubin").name)).read_bytes()
    return CubinKernel(cubin, LaunchMetadata.from_dict(meta), device)
