"""ember.library: torch.library's custom operators (custom_op, register_fake,
register_autograd, register_kernel) and triton_op/wrap_triton for a user's Triton kernel.
`ember.ops.<namespace>.<name>` finds them."""
from .custom_op import (CustomOpDef, Library, custom_op, get_ctx,  # noqa: F401
                        infer_schema, register_autograd, register_fake, register_kernel,
                        register_vmap)
from .triton_op import triton_op, wrap_triton  # noqa: F401
from ..ops import ops_namespace as ops  # noqa: F401 - ember.ops itself

__all__ = ["custom_op", "CustomOpDef", "register_fake", "register_autograd", "register_kernel",
           "register_vmap", "infer_schema", "Library", "get_ctx", "ops", "triton_op", "wrap_triton"]
