"""A user's Triton kernel for the triton_op tests: a fused (x + y) * scale, and its
triton_op (the kernel must live in a file: @triton.jit reads the function's source)."""
import triton
import triton.language as tl

import ember
from ember import Tensor


@triton.jit
def add_mul_kernel(x_ptr, y_ptr, out_ptr, n, scale, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    x = tl.load(x_ptr + offsets, mask=mask)
    y = tl.load(y_ptr + offsets, mask=mask)
    tl.store(out_ptr + offsets, (x + y) * scale, mask=mask)


def define(name: str):
    """A fresh triton_op `name` with its autograd formula (tests define one each)."""
    @ember.library.triton_op(name, mutates_args=())
    def add_mul(x: Tensor, y: Tensor, scale: float) -> Tensor:
        x, y = x.contiguous(), y.contiguous()
        out = ember.empty_like(x)
        n = out.numel()
        ember.library.wrap_triton(add_mul_kernel)[(triton.cdiv(n, 64),)](
            x, y, out, n, scale, BLOCK=64)
        return out

    def setup_context(ctx, inputs, output):
        ctx.scale = inputs[2]

    def backward(ctx, grad):
        return grad * ctx.scale, grad * ctx.scale, None

    add_mul.register_autograd(backward, setup_context=setup_context)
    return add_mul
