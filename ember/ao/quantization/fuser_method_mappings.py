"""torch.ao.quantization.fuser_method_mappings' names: the fuser functions live in
fuse_modules.py beside the eager fuse_modules that uses them."""
from .fuse_modules import (DEFAULT_OP_LIST_TO_FUSER_METHOD, fuse_conv_bn,  # noqa: F401
                           fuse_conv_bn_relu, fuse_linear_bn, get_fuser_method)

__all__ = ["fuse_conv_bn", "fuse_conv_bn_relu", "fuse_linear_bn", "get_fuser_method"]
