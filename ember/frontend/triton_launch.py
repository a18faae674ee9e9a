"""Launching a user's `@triton.jit` kernel on ember CUDA tensors (`wrap_triton`).

`wrap_triton(kernel)[grid](*args, **kwargs)` binds the arguments to the kernel's
parameters, splits them into runtime arguments (tensors become device pointers, Python
ints/floats/bools scalars) and `tl.constexpr` ones, and runs the kernel through ember's
runtime: Triton compiles it once per signature (argument types, constexpr values, pointer
alignment, num_warps/num_stages, device) to a cubin, and `runtime.cuda.module.CubinKernel`
launches it on the current stream, as ember's generated kernels are launched.

While a triton_op's function is traced (its fake run, fx tracing, ember.compile) the
tensors are symbolic and the launch does nothing: the function's tensor allocations give
the shapes. CPU tensors are refused by name (Triton kernels read device memory).

Tests without a GPU replace `run_kernel` with Triton's interpreter over host memory
(tests/cuda/emulation.py), as they do for generated kernels.
"""
from __future__ import annotations

import inspect

from ..ir.errors import DeviceError, LoweringError
from .tensor import Tensor

_TRITON_TYPES = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16", "float64": "fp64",
                 "int8": "i8", "int16": "i16", "int32": "i32", "int64": "i64", "uint8": "u8",
                 "bool": "i1"}
_OPTIONS = ("num_warps", "num_stages")
_COMPILED: dict = {}
ALIGNMENT = 16


class TritonKernelLauncher:
    """What wrap_triton returns: `launcher[grid](*args, **kwargs)` launches the kernel."""

    def __init__(self, kernel):
        if not hasattr(kernel, "fn") or not callable(kernel.fn):
            raise TypeError(f"wrap_triton: expected a @triton.jit function, got "
                            f"{type(kernel).__name__}")
        self.kernel = kernel

    def __getitem__(self, grid):
        return lambda *args, **kwargs: launch(self.kernel, grid, args, kwargs)

    def __call__(self, *args, **kwargs):
        raise TypeError("wrap_triton(kernel): give the launch grid first, as for a Triton "
                        "kernel: wrap_triton(kernel)[grid](*args)")


def kernel_name(kernel) -> str:
    return getattr(kernel.fn, "__name__", "kernel")


def constexpr_names(kernel) -> set[str]:
    """Parameters annotated `tl.constexpr` (a class or, with postponed annotations, text)."""
    names = set()
    for name, param in inspect.signature(kernel.fn).parameters.items():
        ann = param.annotation
        text = ann if isinstance(ann, str) else getattr(ann, "__name__", "")
        if text.split(".")[-1] == "constexpr":
            names.add(name)
    return names


def bind(kernel, args: tuple, kwargs: dict) -> tuple[dict, dict]:
    """(arguments by parameter name with defaults, launch options)."""
    kwargs = dict(kwargs)
    options = {k: kwargs.pop(k) for k in _OPTIONS if k in kwargs}
    try:
        bound = inspect.signature(kernel.fn).bind(*args, **kwargs)
    except TypeError as err:
        raise TypeError(f"wrap_triton({kernel_name(kernel)}): {err}") from None
    bound.apply_defaults()
    return dict(bound.arguments), options


def launch(kernel, grid, args: tuple, kwargs: dict) -> None:
    values, options = bind(kernel, args, kwargs)
    if any(_is_traced(v) for v in values.values()):
        return                       # traced: shapes come from the function's allocations
    tensors = [v for v in values.values() if isinstance(v, Tensor)]
    on_host = [name for name, v in values.items()
               if isinstance(v, Tensor) and not v.is_cuda]
    if on_host:
        verb = "is" if len(on_host) == 1 else "are"
        raise DeviceError(f"wrap_triton({kernel_name(kernel)}): Triton kernels run on CUDA "
                          f"tensors, but {', '.join(on_host)} {verb} on the CPU (register a "
                          "'cpu' kernel with register_kernel for CPU operands)")
    devices = {t._storage.device for t in tensors}
    if len(devices) > 1:
        raise DeviceError(f"wrap_triton({kernel_name(kernel)}): Expected all tensors to be on "
                          f"the same device, but found {' and '.join(sorted(devices))}")
    index = tensors[0]._storage.index if tensors else 0
    constexprs = constexpr_names(kernel) | {n for n, v in values.items() if v is None}
    meta = {n: v for n, v in values.items()}
    grid = grid(meta) if callable(grid) else grid
    grid = tuple(int(g) for g in (tuple(grid) + (1, 1))[:3])
    run_kernel(kernel, grid, values, constexprs, options, index)


def _is_traced(value) -> bool:
    """A value being traced (compile's symbolic tensors, fx proxies), not a real one."""
    return bool(getattr(value, "is_symbolic", False)) or \
        type(value).__name__ in ("SymbolicTensor", "Proxy")


def run_kernel(kernel, grid, values: dict, constexprs: set, options: dict, index: int):
    """Compile (cached) and launch through ember's runtime on the current stream."""
    from .devices import data_ptr
    runtime = [(n, v) for n, v in values.items() if n not in constexprs]
    pointers = {n: data_ptr(v) for n, v in runtime if isinstance(v, Tensor)}
    signature = {n: signature_type(n, v, kernel) for n, v in runtime}
    fixed = {n: values[n] for n in values if n in constexprs}
    alignment = tuple(n for n, p in pointers.items() if p % ALIGNMENT == 0)
    key = (kernel, tuple(signature.items()), tuple(sorted(fixed.items(), key=str)),
           alignment, tuple(sorted(options.items())), index)
    compiled = _COMPILED.get(key)
    if compiled is None:
        compiled = _COMPILED[key] = _load(kernel, signature, fixed, alignment, options, index)
    compiled.launch(grid, [pointers.get(n, v) for n, v in runtime])


def signature_type(name: str, value, kernel) -> str:
    """Triton's signature type of one runtime argument."""
    if isinstance(value, Tensor):
        found = _TRITON_TYPES.get(value.dtype.name)
        if found is None:
            raise LoweringError(f"wrap_triton({kernel_name(kernel)}): argument {name!r} has "
                                f"dtype {value.dtype}, which Triton kernels cannot take")
        return "*" + found
    if isinstance(value, bool):
        return "i1"
    if isinstance(value, int):
        return "i32" if -2**31 <= value < 2**31 else "i64"
    if isinstance(value, float):
        return "fp32"
    raise TypeError(f"wrap_triton({kernel_name(kernel)}): argument {name!r} is a "
                    f"{type(value).__name__}; pass tensors, numbers or bools (or annotate the "
                    "parameter tl.constexpr)")


def compile_user_kernel(kernel, signature: dict, constexprs: dict, aligned, options: dict,
                        capability: tuple[int, int]):
    """Triton's CompiledKernel for a user kernel on a CUDA `capability`; needs no GPU."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    names = list(inspect.signature(kernel.fn).parameters)
    full = {n: signature.get(n, "constexpr") for n in names}
    attrs = {(names.index(n),): [["tt.divisibility", ALIGNMENT]] for n in aligned}
    source = ASTSource(kernel, full, constexprs=dict(constexprs), attrs=attrs)
    major, minor = capability
    return triton.compile(source, target=GPUTarget("cuda", major * 10 + minor, 32),
                          options={"num_warps": options.get("num_warps", 4),
                                   "num_stages": options.get("num_stages", 3)})


def _load(kernel, signature, constexprs, aligned, options, index: int):
    from ..runtime.cuda import driver
    from ..runtime.cuda.module import CubinKernel, LaunchMetadata
    try:
        compiled = compile_user_kernel(kernel, signature, constexprs, aligned, options,
                                       driver.capability(index))
    except Exception as err:  # noqa: BLE001 - Triton's errors have no common base
        raise LoweringError(f"Triton could not compile {kernel_name(kernel)}: "
                            f"{type(err).__name__}: {str(err)[:500]}") from err
    meta = compiled.metadata
    meta = meta._asdict() if hasattr(meta, "_asdict") else dict(meta)
    return CubinKernel(compiled.asm["cubin"],
                       LaunchMetadata.from_dict(meta, list(signature.values())), index)
