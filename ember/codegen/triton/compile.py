"""Ahead-of-time compilation: generated Triton kernels -> cubin + JSON launch metadata.

No GPU is needed: `triton.compile(ASTSource(fn, signature, constexprs, attrs),
target=GPUTarget("cuda", arch, 32))` runs Triton's whole pipeline (TTIR -> TTGIR ->
LLVM -> PTX -> ptxas) for the named architecture. Each kernel is written as

    <dir>/<name>.<key>.sm_<arch>.cubin     the machine code
    <dir>/<name>.<key>.sm_<arch>.json      how to launch it (FORMAT below)

so a CUDA runtime can cuModuleLoadData the cubin, cuModuleGetFunction(name) and
cuLaunchKernel it without Triton. The JSON holds:

    format         "ember-triton-cubin-1"
    name           entry symbol in the cubin (the @triton.jit function's name)
    arch           "sm_80" / "sm_90"
    grid           [gx, gy, gz]; fixed, because sizes are literals in the source
    grid_rule      how the grid was computed (for readers)
    block          [32 * num_warps, 1, 1]
    num_warps, num_stages, num_ctas
    shared_mem     dynamic shared memory bytes to pass to cuLaunchKernel (above 48 KiB the
                   runtime must first raise CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES)
    args           [[param name, Triton signature type]] - device pointers, in order
    buffers        the kernel-description buffer each pointer argument is (in0, acc, out0,
                   a, b, bias, c, ...)
    extra_params   parameters Triton appends after `args` (global_scratch, profile_scratch
                   in Triton 3.x): pass a null pointer when the matching *_size is 0
    global_scratch_size, global_scratch_align, profile_scratch_size
    pointer_align  every pointer argument must be aligned to this many bytes (the kernel
                   was compiled assuming it: vector loads)
    constexprs, source_key, triton_version, cubin (file name), cubin_sha256

`launch_args(metadata, pointers)` turns that into the cuLaunchKernel arguments.
`python -m ember.compiler.triton_kernels --out DIR [--models mlp,small_cnn,...]` compiles every
kernel the built-in models generate (deduplicated by source) for sm_80 and sm_90.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from .cache import load, write_atomic
from .source import GeneratedKernel

FORMAT = "ember-triton-cubin-1"
ARCHS = (80, 90)
POINTER_ALIGN = 16


@dataclass
class Cubin:
    kernel: GeneratedKernel
    arch: int
    binary: bytes
    metadata: dict


def compile_cubin(kernel: GeneratedKernel, arch: int) -> Cubin:
    """Compile one generated kernel for sm_<arch> (Triton, no GPU needed)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    fn = load(kernel)
    if not hasattr(fn, "arg_names") or type(fn).__name__ == "InterpretedFunction":
        raise RuntimeError("cubin compilation needs compiled Triton: unset TRITON_INTERPRET")
    spec = kernel.launch
    # pointers 16-byte aligned: lets Triton vectorize loads (the runtime guarantees it);
    # bound sizes marked where their values are multiples of 16
    attrs = spec.divisibility_attrs([True] * len(spec.args))
    source = ASTSource(fn, spec.signature(), constexprs=dict(spec.constexprs), attrs=attrs)
    compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32),
                              options={"num_warps": spec.num_warps,
                                       "num_stages": spec.num_stages})
    binary = compiled.asm["cubin"]
    return Cubin(kernel, arch, binary, _metadata(kernel, arch, compiled, binary))


def _metadata(kernel: GeneratedKernel, arch: int, compiled, binary: bytes) -> dict:
    import triton
    md, spec = compiled.metadata, kernel.launch
    n_params = _entry_param_count(compiled.asm["ptx"], md.name)
    n_args = len(spec.args) + len(spec.sizes)
    extra = ["global_scratch", "profile_scratch"][:max(0, n_params - n_args)]
    return {
        "format": FORMAT, "name": md.name, "arch": f"sm_{arch}",
        "grid": list(spec.grid), "grid_rule": spec.grid_rule,
        "block": [32 * md.num_warps, 1, 1], "num_warps": md.num_warps,
        "num_stages": md.num_stages, "num_ctas": getattr(md, "num_ctas", 1),
        "shared_mem": md.shared,
        "args": [list(a) for a in spec.args] + [[n, t] for n, t, _ in spec.sizes],
        "buffers": list(spec.buffers), "sizes": spec.bound(), "extra_params": extra,
        "global_scratch_size": getattr(md, "global_scratch_size", 0) or 0,
        "global_scratch_align": getattr(md, "global_scratch_align", 1) or 1,
        "profile_scratch_size": getattr(md, "profile_scratch_size", 0) or 0,
        "pointer_align": POINTER_ALIGN, "constexprs": dict(spec.constexprs),
        "source_key": kernel.key(), "triton_version": triton.__version__,
        "cubin_sha256": hashlib.sha256(binary).hexdigest(),
    }


def _entry_param_count(ptx: str, name: str) -> int:
    """Parameters of the kernel's entry in the PTX (Triton appends scratch pointers)."""
    match = re.search(r"\.entry\s+" + re.escape(name) + r"\s*\((.*?)\)", ptx, re.S)
    return len(re.findall(r"\.param\b", match.group(1))) if match else 0


def write_cubin(cubin: Cubin, directory: Path) -> Path:
    """Write <name>.<key>.sm_<arch>.cubin and its .json; returns the JSON's path."""
    stem = f"{cubin.kernel.name}.{cubin.kernel.key()}.sm_{cubin.arch}"
    meta = dict(cubin.metadata, cubin=f"{stem}.cubin")
    write_atomic(Path(directory) / f"{stem}.cubin", cubin.binary)
    path = Path(directory) / f"{stem}.json"
    write_atomic(path, json.dumps(meta, indent=1).encode())
    return path


@dataclass
class LaunchArgs:
    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    shared_mem: int
    params: list                      # device pointers, then the bound sizes, in order


def launch_args(metadata: dict, pointers) -> LaunchArgs:
    """cuLaunchKernel's arguments from a cubin's metadata and device pointers.

    `pointers` maps each name in metadata["buffers"] to a device address (int), or is a
    list in that order. Scratch parameters are null (their sizes must be 0; a kernel that
    needs scratch is refused here, naming it)."""
    buffers = metadata["buffers"]
    if isinstance(pointers, dict):
        missing = [b for b in buffers if b not in pointers]
        if missing:
            raise ValueError(f"{metadata['name']}: no pointer for buffers {missing} "
                             f"(expects {buffers})")
        pointers = [pointers[b] for b in buffers]
    if len(pointers) != len(buffers):
        raise ValueError(f"{metadata['name']} takes {len(buffers)} pointers ({buffers}), "
                         f"got {len(pointers)}")
    align = metadata.get("pointer_align", 1)
    for name, ptr in zip(buffers, pointers):
        if int(ptr) % align:
            raise ValueError(f"{metadata['name']}: buffer {name} at {int(ptr):#x} is not "
                             f"{align}-byte aligned")
    if metadata.get("global_scratch_size", 0) or metadata.get("profile_scratch_size", 0):
        raise ValueError(f"{metadata['name']} needs global scratch memory; allocate it and "
                         "pass its pointer in extra_params")
    params = [int(p) for p in pointers] + list(metadata.get("sizes", [])) + \
        [0] * len(metadata.get("extra_params", []))
    return LaunchArgs(tuple(metadata["grid"]), tuple(metadata["block"]),
                      metadata["shared_mem"], params)


def compile_all(kernels: dict, directory: Path, archs=ARCHS, log=None) -> list[Path]:
    paths = []
    for gk in kernels.values():
        for arch in archs:
            paths.append(write_cubin(compile_cubin(gk.kernel, arch), directory))
        if log:
            log(f"{gk.kind:14s} {gk.node:24s} {gk.kernel.name}")
    return paths
