"""Automatic mixed precision: the per-thread autocast state and PyTorch's op policies.

While `ember.autocast(device_type, dtype)` is active, `dispatch` hands every op call to
`cast_arguments` before anything else (modes, eager, graph building) sees it. The op's
name picks a policy from the device type's table, and the policy rewrites the call's
floating-point tensor arguments of that device type with `convert_element_type` op
calls, so the casts are ordinary ops: the eager tape differentiates them (gradients
reach float32 parameters in float32) and a graph being traced records them.

The tables are PyTorch's (its autocast op reference; the CPU ones checked op by op
against torch's CPU autocast in tests/frontend/test_autocast_ops.py):

- LOWER: run in the autocast dtype (matmul, linear, convolutions, attention);
- FP32: run in float32 (losses, norms, transcendental math on CUDA);
- FP32_SET_DTYPE: reductions that take `dtype=`: when the caller gave none, ask for
  float32 (CUDA's softmax, log_softmax, sum, prod, cumsum, ...);
- PROMOTE: mixed float dtypes are cast to the widest one (cat, stack, addcmul, ...);
- BANNED: refused with PyTorch's message (binary_cross_entropy on CUDA).

Eligible arguments are PyTorch's: floating-point (not float64) tensors on the autocast
device; integers, float64, other devices and explicit `dtype=` calls pass unchanged.
In-place ops are never autocast. Derivative rules run with autocast suspended, so a
backward computes in the dtypes its forward used (`suspended()`, used by the registry).

Casts of float32 leaf tensors that require grad (parameters) to the lower dtype are
cached until the outermost autocast region exits, when `cache_enabled` (PyTorch's
weight-cast cache); eager calls only: while a graph is traced a cast is a node.
This module imports only other `ir` modules.
"""
from __future__ import annotations

import contextlib
import enum
import functools
import threading

from . import dtypes
from .errors import EmberError
from .meta import HasMeta


class Policy(enum.Enum):
    LOWER = "lower"
    FP32 = "fp32"
    FP32_SET_DTYPE = "fp32_set_dtype"
    PROMOTE = "promote"
    BANNED = "banned"


def _table(**groups: str) -> dict[str, Policy]:
    table = {}
    for policy, names in groups.items():
        for name in names.split():
            table[name] = Policy[policy]
    return table


# ops that run as one op in ember but are composite in PyTorch (einsum, tensordot,
# multi_dot end in torch's mm) are listed where that GEMM puts them.
# `convolution` (aten's) autocasts on CUDA only, as in PyTorch. nn.LSTM runs as one
# `mkldnn_rnn_layer` on CPU and every nn.RNN/LSTM/GRU as one `_cudnn_rnn` on CUDA in torch:
# the module runs its whole recurrence under that name (nn.GRU and nn.RNN on CPU are
# torch composites: their linears autocast one by one).
_GEMM_AND_CONV = """conv1d conv2d conv3d conv_transpose1d conv_transpose2d conv_transpose3d
    linear mm bmm matmul addmm addbmm baddbmm einsum tensordot linalg_multi_dot linalg_vecdot
    scaled_dot_product_attention prelu _addmm_activation"""
_CPU_LOWER = _GEMM_AND_CONV + " mkldnn_rnn_layer _native_multi_head_attention"

_CPU_FP32 = """avg_pool3d adaptive_avg_pool3d max_pool3d max_pool3d_with_indices
    adaptive_max_pool3d max_unpool2d max_unpool3d fractional_max_pool2d fractional_max_pool3d
    binary_cross_entropy binary_cross_entropy_with_logits mse_loss nll_loss cross_entropy
    l1_loss smooth_l1_loss huber_loss kl_div ctc_loss prod polar cdist
    cosine_embedding_loss hinge_embedding_loss margin_ranking_loss soft_margin_loss
    triplet_margin_loss multi_margin_loss multilabel_margin_loss poisson_nll_loss
    linalg_cholesky linalg_cholesky_ex linalg_cond linalg_det linalg_eig linalg_eigh
    linalg_eigvals linalg_eigvalsh linalg_inv linalg_inv_ex linalg_lstsq linalg_matrix_rank
    linalg_pinv linalg_qr linalg_slogdet linalg_solve linalg_svd linalg_svdvals
    linalg_tensorinv linalg_tensorsolve geqrf
    reflection_pad1d reflection_pad2d replication_pad1d replication_pad2d replication_pad3d
    fft_fft fft_fft2 fft_fftn fft_hfft fft_hfft2 fft_hfftn fft_ifft fft_ifft2 fft_ifftn
    fft_ihfft fft_ihfft2 fft_ihfftn fft_irfft fft_irfft2 fft_irfftn fft_rfft fft_rfft2
    fft_rfftn"""

_CUDA_FP32 = """acos asin cosh sinh tan erfinv exp expm1 log log10 log2 log1p reciprocal rsqrt
    pow softplus layer_norm group_norm norm cdist logsumexp
    binary_cross_entropy_with_logits mse_loss nll_loss cross_entropy l1_loss smooth_l1_loss
    huber_loss kl_div cosine_embedding_loss hinge_embedding_loss margin_ranking_loss
    soft_margin_loss triplet_margin_loss multi_margin_loss multilabel_margin_loss
    poisson_nll_loss cosine_similarity pdist
    upsample_nearest1d upsample_nearest2d upsample_nearest3d _upsample_nearest_exact1d
    _upsample_nearest_exact2d _upsample_nearest_exact3d upsample_linear1d upsample_bilinear2d
    _upsample_bilinear2d_aa upsample_trilinear3d upsample_bicubic2d _upsample_bicubic2d_aa"""

_CUDA_SET_DTYPE = """softmax log_softmax special_softmax special_log_softmax sum prod cumsum
    cumprod linalg_vector_norm linalg_matrix_norm"""

POLICIES: dict[str, dict[str, Policy]] = {
    "cpu": _table(LOWER=_CPU_LOWER, FP32=_CPU_FP32,
                  PROMOTE="cat stack"),
    "cuda": _table(LOWER=_GEMM_AND_CONV + " convolution mv addmv addr _cudnn_rnn lstm_cell "
                         "gru_cell rnn_tanh_cell rnn_relu_cell", FP32=_CUDA_FP32,
                   FP32_SET_DTYPE=_CUDA_SET_DTYPE, BANNED="binary_cross_entropy",
                   PROMOTE="cat stack addcdiv addcmul atan2 dot index_put scatter_add "
                           "vdot cross bilinear grid_sampler tensordot"),
}

DEFAULT_DTYPES = {"cpu": dtypes.bfloat16, "cuda": dtypes.float16}

_BANNED_MESSAGE = (
    "torch.nn.functional.binary_cross_entropy and torch.nn.BCELoss are unsafe to autocast.\n"
    "Many models use a sigmoid layer right before the binary cross entropy layer.\n"
    "In this case, combine the two layers using "
    "torch.nn.functional.binary_cross_entropy_with_logits\n"
    "or torch.nn.BCEWithLogitsLoss.  binary_cross_entropy_with_logits and BCEWithLogits are\n"
    "safe to autocast.")


class _ThreadState(threading.local):
    def __init__(self):
        self.enabled: dict[str, bool] = {}
        self.dtype: dict[str, dtypes.DType] = dict(DEFAULT_DTYPES)
        self.cache_enabled = True
        self.nesting = 0
        self.suspended = 0
        self.cache: dict[tuple[int, dtypes.DType], tuple] = {}


_state = _ThreadState()
_lock = threading.Lock()
# regions enabled in any thread: dispatch's one-comparison fast path when nobody autocasts
ACTIVE = 0


# --- the state (torch.set_autocast_enabled & co.) -------------------------------------
def is_enabled(device_type: str) -> bool:
    return _state.enabled.get(device_type, False)


def set_enabled(device_type: str, enabled: bool) -> None:
    global ACTIVE
    was = is_enabled(device_type)
    _state.enabled[device_type] = bool(enabled)
    if was != bool(enabled):
        with _lock:
            ACTIVE += 1 if enabled else -1


def get_dtype(device_type: str) -> dtypes.DType:
    return _state.dtype.get(device_type, DEFAULT_DTYPES.get(device_type, dtypes.bfloat16))


def set_dtype(device_type: str, dtype: dtypes.DType) -> None:
    _state.dtype[device_type] = dtype


def is_cache_enabled() -> bool:
    return _state.cache_enabled


def set_cache_enabled(enabled: bool) -> None:
    _state.cache_enabled = bool(enabled)


def increment_nesting() -> int:
    _state.nesting += 1
    return _state.nesting


def decrement_nesting() -> int:
    _state.nesting -= 1
    return _state.nesting


def clear_cache() -> None:
    _state.cache.clear()


class _Suspended:
    """No autocasting inside (derivative rules: a backward keeps its forward's dtypes)."""

    def __enter__(self):
        _state.suspended += 1

    def __exit__(self, *exc_info):
        _state.suspended -= 1


_SUSPENDED = _Suspended()
_NOTHING = contextlib.nullcontext()


def suspended():
    """A context without autocasting; free when no thread autocasts (plans and derivative
    rules enter it on every call)."""
    return _SUSPENDED if ACTIVE else _NOTHING


def state_key() -> tuple:
    """What a compiled plan depends on: the enabled device types and their dtypes."""
    if not ACTIVE:
        return ()
    return tuple(sorted((device, get_dtype(device).name)
                        for device, on in _state.enabled.items() if on))


# --- the rewrite dispatch applies --------------------------------------------------------
def applies() -> bool:
    """Whether this thread autocasts now (an enabled region, not suspended)."""
    return not _state.suspended and any(_state.enabled.values())


def cast_arguments(op, args: tuple) -> tuple:
    """`args` with the eligible tensors cast by `op`'s policy (unchanged when none applies)."""
    if _is_inplace(op):
        return args
    for device_type, policy in _active_policies(op.name):
        if policy is Policy.FP32_SET_DTYPE:
            args = _set_float32_dtype(op, args, device_type)
        else:
            tensors = _cast_values(policy, _tensor_values(op, args), device_type, op.name)
            args = _put_tensor_values(op, args, iter(tensors))
    return args


@contextlib.contextmanager
def as_one_op(name: str, *values):
    """For functions ember composes from several ops where PyTorch has one op (prelu,
    addbmm, linalg.vecdot): yields `values` cast by the policy of PyTorch's op `name`, and
    runs the body without autocast, as one autocast op would.

        with autocast.as_one_op("prelu", input, weight) as (input, weight): ...
    """
    if not (ACTIVE and applies()):
        yield values
        return
    for device_type, policy in _active_policies(name):
        values = tuple(_cast_values(policy, list(values), device_type, name))
    with suspended():
        yield values


def autocast_as(name: str):
    """Decorate a function ember composes from ops where PyTorch has the one autocast op
    `name` (the margin losses, cosine_similarity): its tensor arguments are cast by that
    op's policy and its body runs without autocast."""
    def wrap(fn):
        @functools.wraps(fn)
        def call(*args, **kwargs):
            if not (ACTIVE and applies()) or not any(True for _ in _active_policies(name)):
                return fn(*args, **kwargs)
            keys = list(kwargs)
            values = list(args) + [kwargs[k] for k in keys]
            tensors = [v for v in values if _is_tensor(v)]
            with as_one_op(name, *tensors) as cast:
                cast = iter(cast)
                values = [next(cast) if _is_tensor(v) else v for v in values]
                return fn(*values[:len(args)], **dict(zip(keys, values[len(args):])))
        return call
    return wrap


def _active_policies(name: str):
    for device_type, on in _state.enabled.items():
        if on:
            policy = POLICIES.get(device_type, {}).get(name)
            if policy is not None:
                yield device_type, policy


def _is_inplace(op) -> bool:
    return op.name.endswith("_") and not op.name.startswith("_")


def _cast_values(policy: Policy, values: list, device_type: str, name: str) -> list:
    if policy is Policy.BANNED:
        if any(_eligible(v, device_type) for v in values):
            raise EmberError(_BANNED_MESSAGE)
        return values
    if policy is Policy.LOWER:
        return _cast_all(values, device_type, get_dtype(device_type))
    if policy is Policy.FP32:
        return _cast_all(values, device_type, dtypes.float32)
    floats = [v.dtype for v in values if _eligible(v, device_type)]
    if len(set(floats)) < 2:                                   # PROMOTE: nothing mixed
        return values
    widest = floats[0]
    for dtype in floats[1:]:
        widest = dtypes.promote_types(widest, dtype)
    return _cast_all(values, device_type, widest)


def _tensor_values(op, args: tuple) -> list:
    values = []
    for index in op.schema.tensor_arg_indices:
        value = args[index]
        if isinstance(value, (list, tuple)):
            values.extend(value)
        else:
            values.append(value)
    return values


def _put_tensor_values(op, args: tuple, values) -> tuple:
    out = list(args)
    for index in op.schema.tensor_arg_indices:
        value = args[index]
        if isinstance(value, (list, tuple)):
            out[index] = type(value)(next(values) for _ in value)
        else:
            out[index] = next(values)
    return tuple(out)


def _is_tensor(value) -> bool:
    # by type: an fx Proxy answers every attribute lookup with a new node
    return isinstance(value, HasMeta) or hasattr(type(value), "_array")


def _device_type(value) -> str:
    device = value.device                  # 'cuda:0' in a TensorMeta, a device on a Tensor
    return str(getattr(device, "type", device)).split(":")[0]


def _eligible(value, device_type: str) -> bool:
    if not _is_tensor(value):
        return False
    dtype = value.dtype
    return dtype.is_floating_point and dtype is not dtypes.float64 and \
        _device_type(value) == device_type


def _cast_all(values: list, device_type: str, dtype: dtypes.DType) -> list:
    return [_cached_cast(v, dtype, device_type)
            if _eligible(v, device_type) and v.dtype is not dtype else v
            for v in values]


def _cached_cast(value, dtype: dtypes.DType, device_type: str):
    from . import dispatch
    from .registry import OPS
    # eager only: under a mode (a graph being traced) the cast is a node, not a value
    cacheable = (_state.cache_enabled and not dispatch.active_modes()
                 and dtype is get_dtype(device_type)
                 and value.dtype is dtypes.float32 and not isinstance(value, HasMeta)
                 and value.requires_grad and value.is_leaf
                 and getattr(value, "_base", None) is None)
    if not cacheable:
        return OPS["convert_element_type"](value, dtype)
    key = (id(value), dtype)
    hit = _state.cache.get(key)
    if hit is not None and hit[0] is value:
        return hit[1]
    cast = OPS["convert_element_type"](value, dtype)
    _state.cache[key] = (value, cast)      # the source is kept alive: its id stays unique
    return cast


def _set_float32_dtype(op, args: tuple, device_type: str) -> tuple:
    """CUDA's softmax/sum/...: no `dtype=` given and a float input -> dtype=float32."""
    index = [a.name for a in op.schema.args].index("dtype")
    first = args[op.schema.tensor_arg_indices[0]]
    if args[index] is not None or not _eligible(first, device_type):
        return args
    out = list(args)
    out[index] = dtypes.float32
    return tuple(out)
