"""`ember.backends`: backend switches with PyTorch's names
(`ember.backends.cuda.matmul.allow_tf32`).

Only flags live here; nothing is imported from codegen or runtime, so every layer may
read them.
"""
from . import cuda  # noqa: F401  (ember.backends.cuda without a separate import)
from . import cudnn  # noqa: F401  (torch.backends.cudnn: ember's optional cuDNN convolutions)
from . import quantized  # noqa: F401  (torch.backends.quantized.engine)
from . import registry  # noqa: F401,E402  (device and compile backend registry: data only)
from . import mps  # noqa: F401  (torch.backends.mps.is_available(): False)
from . import cpu, mkl, mkldnn, openmp, opt_einsum  # noqa: F401,E402  (torch's flags modules)

_REGISTRATION = ("register_device", "unregister_device", "register_backend", "list_backends",
                 "device_buffer", "make_device_tensor")


def __getattr__(name: str):
    """ember.backends.register_device / register_backend: ember.utils.backend_registration's
    functions, imported on first use (that package sits above this flags-only one)."""
    if name in _REGISTRATION:
        from ..utils import backend_registration
        return getattr(backend_registration, name)
    raise AttributeError(f"module 'ember.backends' has no attribute {name!r}")
