"""torch.library.triton_op and wrap_triton for ember: a custom op whose kernel is the
user's Triton code.

    @triton.jit
    def add_mul_kernel(x_ptr, y_ptr, out_ptr, n, scale, BLOCK: tl.constexpr): ...

    @ember.library.triton_op("mylib::add_mul", mutates_args=())
    def add_mul(x: Tensor, y: Tensor, scale: float) -> Tensor:
        out = ember.empty_like(x)
        n = out.numel()
        ember.library.wrap_triton(add_mul_kernel)[(triton.cdiv(n, 256),)](
            x, y, out, n, scale, BLOCK=256)
        return out

The function is the op's CUDA kernel: `wrap_triton(kernel)[grid](...)` launches the
Triton kernel through ember's runtime (frontend/triton_launch.py: compiled once per
signature to a cubin, launched on the current stream). As in PyTorch, no fake function is
needed: tracing runs the same function on symbolic tensors, where the launch does
nothing and the tensors it allocates give the shapes (register_fake may replace that).
Everything else is custom_op's: register_autograd for gradients, one node in fx graphs,
an external call in compiled plans, saved by name in exported programs. On CPU tensors
the launch is refused by name unless a 'cpu' kernel is registered with register_kernel.
"""
from __future__ import annotations

from typing import Callable

from ..frontend.triton_launch import TritonKernelLauncher
from .custom_op import CustomOpDef, custom_op

__all__ = ["triton_op", "wrap_triton"]


def wrap_triton(triton_kernel) -> TritonKernelLauncher:
    """torch.library.wrap_triton: `wrap_triton(kernel)[grid](*args, **kwargs)`."""
    return TritonKernelLauncher(triton_kernel)


def triton_op(name: str, fn: Callable | None = None, /, *, mutates_args,
              schema: str | None = None):
    """torch.library.triton_op: `fn` (calling wrap_triton'd kernels) becomes op `name`."""
    def wrap(func: Callable) -> CustomOpDef:
        op = custom_op(name, func, mutates_args=mutates_args, schema=schema)
        op.register_kernel("cuda", func)
        op._fake, op._fake_is_default = func, True     # traced: launches are skipped
        return op
    return wrap(fn) if fn is not None else wrap
