"""ember._dynamo: the torch._dynamo names user code and libraries call.

PyTorch's graph capture is TorchDynamo; ember.compile captures by tracing instead, so
there is no dynamo here, only its controls over compiled functions (`reset`,
`disable`, `config`, `explain`, `list_backends`, `register_backend`, `optimize`,
`assume_constant_result`:
ember/compiler/dynamo_names.py), the counting compile backends tests use (`testing`)
and the answers libraries ask it for (torchvision's roi_align asks
`torch._dynamo.utils.is_compile_supported(device_type)` to pick its Python path).
"""
from . import exc, testing, utils  # noqa: F401
from ..compiler import is_compiling  # noqa: F401 - torch._dynamo.is_compiling (older name)
from ..compiler.dynamo_names import (allow_in_graph, assume_constant_result,  # noqa: F401
                                     config, disable, explain, graph_break, list_backends,
                                     mark_dynamic, mark_static, mark_static_address,
                                     maybe_mark_dynamic,
                                     optimize, register_backend, reset)
