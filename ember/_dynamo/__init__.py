"""ember._dynamo: the few torch._dynamo names that library code queries.

PyTorch's graph capture is TorchDynamo; ember.compile captures by tracing instead, so
there is no dynamo here, only the answers libraries ask it for (torchvision's roi_align
asks `torch._dynamo.utils.is_compile_supported(device_type)` to pick its Python path).
"""
from . import utils  # noqa: F401
