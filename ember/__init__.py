"""ember: a compiler-centric deep-learning system with a PyTorch-shaped API.

Layers (docs/design.md): frontend -> passes -> codegen -> runtime, all over ir.
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
from .ir.dtypes import quint8, qint8, qint32, uint16, uint32, uint64  # noqa: F401
from .ir.dtypes import (float8_e4m3fn, float8_e5m2, float8_e4m3fnuz,  # noqa: F401
                        float8_e5m2fnuz, float8_e8m0fnu)
from .ir.quantized import (QScheme as qscheme, per_tensor_affine, per_channel_affine,  # noqa
                           per_tensor_symmetric, per_channel_symmetric,
                           per_channel_affine_float_qparams)
from .ir.meta import (MemoryFormat as memory_format, contiguous_format, channels_last,  # noqa
                      channels_last_3d, preserve_format)
from .ir.meta import (Layout as layout, strided, sparse_coo, sparse_csr, sparse_csc,  # noqa
                      sparse_bsr, sparse_bsc, jagged)
from .ir.errors import (EmberError, ShapeError, DTypeError, EmberIndexError, AutogradError,
                        TraceError, VerifyError, ParseError, LoweringError, ArtifactError,
                        DeviceError, OutOfMemoryError)
from .ir import ops as _ops
from .ir.registry import OPS as _OPS
from .ir import composite as _composite
from .ir.symbolic import SymbolicTensor as _SymbolicTensor

from .frontend.tensor import Tensor, Size, is_tensor
from .frontend.device import device, set_default_device, get_default_device
from .frontend import eager as _eager, methods as _methods
from .frontend.factories import *  # noqa: F401,F403
from .frontend.random import Generator, manual_seed, seed, initial_seed, get_rng_state, \
    set_rng_state, default_generator
from .frontend.printing import set_printoptions
from .frontend import autograd
from .frontend.autograd import no_grad, enable_grad, set_grad_enabled, inference_mode, \
    is_grad_enabled, is_inference_mode_enabled

from .frontend import composites as _composites  # noqa: E402,F401 - registers them
_eager.install()
_methods.install(Tensor)
_methods.install(_SymbolicTensor)
# indexing, conversions and new_* are built from op calls, so they record into graphs too
_methods.install_traced(_SymbolicTensor)
_methods.install_attributes(Tensor)
_methods.install_attributes(_SymbolicTensor)
# x.shape and x.device in a traced function are eager's ember.Size and ember.device
_SymbolicTensor._shape_type = Size
_SymbolicTensor.public_class = Tensor      # isinstance(traced, ember.Tensor) in user code
_SymbolicTensor.device = property(lambda self: device(self.meta.device))

from . import nn  # noqa: E402
from . import models  # noqa: E402
from .frontend.models import save_weights, load_weights  # noqa: E402
from . import optim  # noqa: E402
from . import linalg  # noqa: E402
from .codegen import lowering as _lowering  # noqa: E402,F401 - sets ops' lowering rules
from .frontend.asserts import _assert, CHECKS as _CHECKS  # noqa: E402,F401
globals().update(_CHECKS)                       # torch._check, _check_is_size, ...
from .frontend.dtype_info import finfo, iinfo  # noqa: E402,F401
from .frontend.autocast import autocast, is_autocast_enabled  # noqa: E402,F401
from .frontend.autocast import (get_autocast_dtype, set_autocast_enabled,  # noqa: E402,F401
                                set_autocast_dtype, is_autocast_cache_enabled,
                                set_autocast_cache_enabled, clear_autocast_cache)
from .frontend.comparison import allclose, equal  # noqa: E402,F401
from .frontend.serialization import save, load  # noqa: E402,F401
from . import fft  # noqa: E402
from . import ops  # noqa: E402 - torch.ops.aten's names over the registry
from . import special  # noqa: E402
from . import profiler  # noqa: E402 - ember.profiler, torch.profiler's API
from . import library  # noqa: E402 - ember.library, torch.library's custom ops
from . import _custom_op  # noqa: E402,F401 - torch._custom_op.impl.get_ctx
from . import backends  # noqa: E402
from . import distributed, futures  # noqa: E402 - torch.distributed's API (mpi4py loads lazily)
from .frontend import cuda  # noqa: E402 - ember.cuda, torch.cuda's API
from .frontend import devices as _devices  # noqa: E402,F401 - registers the CUDA device
from .backends.cuda import set_float32_matmul_precision, get_float32_matmul_precision  # noqa: E402,F401
from .runtime.threads import set_num_threads, get_num_threads  # noqa: E402,F401
from .frontend.determinism import (use_deterministic_algorithms,  # noqa: E402,F401
                                   are_deterministic_algorithms_enabled,
                                   is_deterministic_algorithms_warn_only_enabled,
                                   set_deterministic_debug_mode, get_deterministic_debug_mode)


from .frontend.torch_functions import (einsum, tensordot, where,  # noqa: E402,F401
                                       _assert_async, _shape_as_tensor)
from math import e, inf, nan, pi  # noqa: E402,F401 - torch.pi, torch.e, torch.inf, torch.nan
newaxis = None   # torch.newaxis, as numpy's
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
from .frontend.nn._functional_norms import cdist, pdist, cosine_similarity, pairwise_distance  # noqa: E402,F401,E501
from .frontend.nn._functional_grid import (grid_sampler, grid_sampler_2d,  # noqa: E402,F401
                                          grid_sampler_3d, affine_grid_generator)
_composite.export(globals())   # PyTorch functions written as ember op calls (ir/composite.py)
from .frontend import aliases as _aliases  # noqa: E402
from .frontend import aten_functions as _aten_functions, sym_functions as _sym  # noqa: E402
globals().update(_aten_functions.top_level())   # torch.kl_div(x, y, 1), slice_copy, ...
globals().update(_sym.TOP_LEVEL)                # sym_int, sym_max, SymInt, ...
from .frontend.foreach import FOREACH as _FOREACH  # noqa: E402
globals().update(_FOREACH)                      # _foreach_add_, _foreach_lerp_, ...
from .frontend.quantized import (int_repr, q_scale, q_zero_point, q_per_channel_scales,  # noqa: E402,F401,E501
                                 q_per_channel_zero_points, q_per_channel_axis,
                                 quantize_per_tensor_dynamic)
_aliases.install(globals(), (Tensor, _SymbolicTensor))   # arccos, clip, x.det(), FloatTensor, ...


def result_type(*operands):
    from .ir.ops.rules import result_dtype
    return result_dtype(operands)


def is_floating_point(t) -> bool:
    return t.dtype.is_floating_point


def is_complex(t) -> bool:
    return t.dtype.is_complex


def numel(t) -> int:
    return t.numel()


from .torch_version import __version__  # noqa: E402 - compares as a version, as torch's
from . import masked  # noqa: E402
from .frontend.spectral import stft, istft  # noqa: E402
for _cls in (Tensor, _SymbolicTensor):
    _cls.stft, _cls.istft = stft, istft
from .frontend.linalg_householder import TOP_LEVEL_HOUSEHOLDER as _HOUSEHOLDER  # noqa: E402
globals().update(_HOUSEHOLDER)
for _cls in (Tensor, _SymbolicTensor):
    _cls.ormqr = _HOUSEHOLDER["ormqr"]

# Loaded on first use: `import ember; ember.fx.symbolic_trace(m)` works, and `import
# ember` does not pay for the compiler (llvmlite, codegen) or the tracing tools.
_LAZY_SUBMODULES = frozenset({"fx", "jit", "func", "utils", "cli", "passes", "aot", "onnx",
                              "hub", "testing", "random", "version", "functional", "cpu",
                              "multiprocessing", "quantization", "distributions", "amp",
                              "_C", "_dynamo", "_inductor", "compiler", "ao",
                              "export", "accelerator", "sparse", "serialization", "types",
                              "torch_version", "return_types", "xpu", "mps", "quasirandom",
                              "overrides", "_higher_order_ops"})
_LAZY_ATTRIBUTES = {"compile": ("ember.compiler.compile", "compile"),
                    "vmap": ("ember.func", "vmap"),
                    "sparse_coo_tensor": ("ember.sparse", "sparse_coo_tensor"),
                    "spmm": ("ember.sparse", "mm"),
                    "hspmm": ("ember.frontend.sparse_ops", "hspmm"),
                    "smm": ("ember.frontend.sparse_ops", "smm"),
                    "narrow_copy": ("ember.frontend.sparse_ops", "narrow_copy"),
                    **{name: ("ember.frontend.sparse_compressed", name) for name in (
                        "sparse_csr_tensor", "sparse_csc_tensor", "sparse_bsr_tensor",
                        "sparse_bsc_tensor", "sparse_compressed_tensor")},
                    "fork": ("ember.jit", "fork"), "wait": ("ember.jit", "wait"),
                    "Future": ("ember.futures", "Future"),
                    "GradScaler": ("ember.amp", "GradScaler"),
                    "compile_train_step": ("ember.compiler.compile_train",
                                           "compile_train_step")}


def __getattr__(name: str):
    import importlib
    if name in _LAZY_ATTRIBUTES:
        module, attribute = _LAZY_ATTRIBUTES[name]
        value = getattr(importlib.import_module(module), attribute)
    elif name in _LAZY_SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module 'ember' has no attribute '{name}'")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | _LAZY_SUBMODULES | set(_LAZY_ATTRIBUTES))


def _publish_names() -> None:
    """Functions and missing attributes carry the public module's name (frontend/public.py)."""
    import sys
    from .frontend import public
    from .nn import functional, init
    for module, name in ((functional, "ember.nn.functional"), (init, "ember.nn.init"),
                         (fft, "ember.fft"), (linalg, "ember.linalg")):
        public.publish_functions(module, name)
    public.publish_functions(sys.modules[__name__], "ember")
    for module, name in ((functional, "ember.nn.functional"), (init, "ember.nn.init"),
                         (autograd, "ember.autograd"), (cuda, "ember.cuda"),
                         (autograd.functional, "ember.autograd.functional"),
                         (autograd.forward_ad, "ember.autograd.forward_ad")):
        if module.__name__ != name:
            public.name_missing_attributes(module, name)


_publish_names()


def _register_module_paths() -> None:
    """`import ember.cuda` and `from ember.cuda.amp import autocast` (training scripts' usual
    spelling): ember.cuda is frontend/cuda.py bound as an attribute, so it is also
    registered under its public module path, as ember.autograd is."""
    import importlib
    import sys
    sys.modules.setdefault("ember.cuda", cuda)
    sys.modules.setdefault("ember.cuda.amp", importlib.import_module("ember.amp.cuda_amp"))


_register_module_paths()

from .frontend.torch_function import DisableTorchFunction, DisableTorchFunctionSubclass  # noqa: E402,F401,E501
from .frontend.nn._functional_rnn import TOP_LEVEL as _FUNCTIONAL_RNN  # noqa: E402
globals().update(_FUNCTIONAL_RNN)   # torch.lstm / gru / rnn_*, SyncBatchNorm's stats ops
from .frontend.lobpcg import lobpcg  # noqa: E402,F401


def _route_public_functions() -> None:
    """Each public tensor function of ember, nn.functional, linalg, fft and special asks
    the __torch_function__ protocol first (frontend/torch_function.py)."""
    import sys
    from .frontend.torch_function import route_functions
    from .frontend.overrides import FACTORY_NAMES, is_utility
    from .nn import functional
    root = vars(sys.modules[__name__])
    skip = {name for name in root if is_utility(name)}
    for namespace in (root, vars(functional), vars(linalg), vars(fft), vars(special)):
        route_functions(namespace, skip, FACTORY_NAMES)


_route_public_functions()
