"""CUDA matmul precision flags, as PyTorch defines them.

One state, two spellings (as in PyTorch, where both read the same cuBLAS setting):
- `ember.set_float32_matmul_precision("highest" | "high" | "medium")`, default "highest";
- `ember.backends.cuda.matmul.allow_tf32`, default False; True means the precision
  is not "highest". Setting it True selects "high", False selects "highest".

The Triton GEMM (codegen/triton/gemm.py) reads them when it generates a float32
GEMM: "highest" computes in IEEE float32 (`input_precision="ieee"`), "high" and
"medium" in TF32 (`"tf32"`; PyTorch's "medium" also allows bfloat16 internally,
ember uses TF32 for it too). float16 and bfloat16 GEMMs always accumulate in float32.
"""
from __future__ import annotations

PRECISIONS = ("highest", "high", "medium")
_state = {"float32_matmul_precision": "highest"}


def set_float32_matmul_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"set_float32_matmul_precision: expected one of {', '.join(PRECISIONS)}, "
                         f"got {precision!r}")
    _state["float32_matmul_precision"] = precision


def get_float32_matmul_precision() -> str:
    return _state["float32_matmul_precision"]


class _MatmulFlags:
    """`ember.backends.cuda.matmul`: torch.backends.cuda.matmul's flags."""

    # PyTorch's defaults: reduced-precision reductions allowed in fp16/bf16 GEMMs
    allow_fp16_reduced_precision_reduction = True
    allow_bf16_reduced_precision_reduction = True

    @property
    def allow_tf32(self) -> bool:
        return get_float32_matmul_precision() != "highest"

    @allow_tf32.setter
    def allow_tf32(self, value: bool) -> None:
        set_float32_matmul_precision("high" if value else "highest")


matmul = _MatmulFlags()


def float32_input_precision() -> str:
    """Triton's tl.dot input_precision for float32 operands under the current flags."""
    return "tf32" if matmul.allow_tf32 else "ieee"


def is_built() -> bool:
    """True when the CUDA backend's compiler (Triton) can be imported."""
    import importlib.util
    return importlib.util.find_spec("triton") is not None


# scaled_dot_product_attention's backend flags (state in ember.nn.attention)
def sdp_kernel(enable_flash: bool = True, enable_math: bool = True,
               enable_mem_efficient: bool = True, enable_cudnn: bool = True):
    from ..frontend.nn import attention
    return attention.sdp_kernel(enable_flash, enable_math, enable_mem_efficient, enable_cudnn)


def _sdp_flag(backend_name: str):
    def is_enabled() -> bool:
        from ..frontend.nn import attention
        return attention.enabled(attention.SDPBackend[backend_name])

    def enable(on: bool) -> None:
        from ..frontend.nn import attention
        attention.set_enabled(attention.SDPBackend[backend_name], on)
    return is_enabled, enable


flash_sdp_enabled, enable_flash_sdp = _sdp_flag("FLASH_ATTENTION")
math_sdp_enabled, enable_math_sdp = _sdp_flag("MATH")
mem_efficient_sdp_enabled, enable_mem_efficient_sdp = _sdp_flag("EFFICIENT_ATTENTION")
cudnn_sdp_enabled, enable_cudnn_sdp = _sdp_flag("CUDNN_ATTENTION")
