"""ember: a compiler-centric deep-learning system with a PyTorch-shaped API.

Layers (DESIGN.md): frontend -> passes -> codegen -> runtime, all over ir.
This module re-exports the user API: tensors, dtypes, ops, autograd, nn, ...
"""
from __future__ import annotations

from .ir import dtypes as _dtypes
from .ir.dtypes import (DType as dtype, bool_ as bool, uint8, int8, int16, int32, int64,  # noqa
                        float16, bfloat16, float32, float64, complex64, complex128,
                        promote_types, get_default_dtype, set_default_dtype, can_cast)
from .ir.dtypes import float16 as half, float32 as float, float64 as double  # noqa: A001
from .ir.dtypes import int64 as long, int32 as int, int16 as short  # noqa: A001
from .ir.dtypes import complex64 as cfloat, complex128 as cdouble
from .ir.meta import (MemoryFormat as memory_format, contiguous_format, channels_last,  # noqa
                      channels_last_3d, preserve_format)
from .ir.errors import (EmberError, ShapeError, DTypeError, EmberIndexError, AutogradError,
                        TraceError, VerifyError, ParseError, LoweringError, ArtifactError,
                        DeviceError, OutOfMemoryError)
from .ir import ops as _ops
from .ir.registry import OPS as _OPS
from .ir.symbolic import SymbolicTensor as _SymbolicTensor

from .frontend.tensor import Tensor, Size, is_tensor
from .frontend.device import device
from .frontend import eager as _eager, methods as _methods
from .frontend.factories import *  # noqa: F401,F403
from .frontend.random import Generator, manual_seed, seed, initial_seed, get_rng_state, \
    set_rng_state, default_generator
from .frontend.printing import set_printoptions
from .frontend import autograd
from .frontend.autograd import no_grad, enable_grad, set_grad_enabled, inference_mode, \
    is_grad_enabled, is_inference_mode_enabled

_eager.install()
_methods.install(Tensor)
_methods.install(_SymbolicTensor)
_methods.install_attributes(Tensor)
_methods.install_attributes(_SymbolicTensor)
# basic/advanced indexing is built from op calls, so it records into graphs too (rules use it)
_SymbolicTensor.__getitem__ = Tensor.__getitem__

from . import nn  # noqa: E402
from . import models  # noqa: E402
from .frontend.models import save_weights, load_weights  # noqa: E402
from . import optim  # noqa: E402
from . import linalg  # noqa: E402
from .codegen import lowering as _lowering  # noqa: E402,F401 - sets ops' lowering rules
from .frontend.compile import compile  # noqa: E402,A001
from .frontend.compile_train import compile_train_step  # noqa: E402
from . import fft  # noqa: E402
from . import backends  # noqa: E402
from .frontend import cuda  # noqa: E402 - ember.cuda, torch.cuda's API
from .backends.cuda import set_float32_matmul_precision, get_float32_matmul_precision  # noqa: E402,F401


from .frontend.torch_functions import einsum, tensordot  # noqa: E402
from .frontend.linalg_functions import TOP_LEVEL as _LINALG_TOP_LEVEL  # noqa: E402

globals().update(_LINALG_TOP_LEVEL)
from . import signal  # noqa: E402
globals().update(signal.windows.FACTORIES)


def _export_ops(namespace: dict) -> None:
    """Every top-level registry op becomes ember.<name> unless a wrapper already exists."""
    for _op in _OPS.values():
        if _op.namespace == "" and _op.python_name not in namespace and \
                not _op.python_name.endswith("_"):
            namespace[_op.python_name] = _op


_export_ops(globals())


def result_type(*operands):
    from .ir.ops.rules import result_dtype
    return result_dtype(operands)


def is_floating_point(t) -> bool:
    return t.dtype.is_floating_point


def is_complex(t) -> bool:
    return t.dtype.is_complex


def numel(t) -> int:
    return t.numel()


__version__ = "0.1.0"
from . import masked  # noqa: E402
from .frontend.spectral import stft, istft  # noqa: E402
for _cls in (Tensor, _SymbolicTensor):
    _cls.stft, _cls.istft = stft, istft
from .frontend.linalg_householder import TOP_LEVEL_HOUSEHOLDER as _HOUSEHOLDER  # noqa: E402
globals().update(_HOUSEHOLDER)
for _cls in (Tensor, _SymbolicTensor):
    _cls.ormqr = _HOUSEHOLDER["ormqr"]
