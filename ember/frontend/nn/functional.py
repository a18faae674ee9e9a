"""ember.nn.functional: torch.nn.functional's names and signatures over registry ops.

Each function does what PyTorch's Python layer does (argument normalisation, default
dims, reductions by name) and then calls the registry op of the same aten name, so
eager execution, tracing and autograd all see one op. Where an op has not been
registered, a few functions fall back to a composition of primitive ops (written with
ember ops, so it still differentiates and traces); the rest raise MissingOpError
naming the op.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from ...ir import autocast
from ...ir.errors import EmberError, ShapeError
from ...ir.registry import OPS
from ..tensor import Tensor
from ..quantized import clamp_already_done
from ..autograd import no_grad
from ._functional_common import BadArgument, maybe_inplace, refuse_traced_sparse_gradient
from ._batch_norm_eager import batch_norm_train, fused_batch_norm_applies
from ._max_pool_eager import tiled_max_pool, tiled_max_pool_applies
from ._functional_losses import (cross_entropy, nll_loss, mse_loss, l1_loss,  # noqa: F401
                                 smooth_l1_loss, huber_loss, binary_cross_entropy,
                                 binary_cross_entropy_with_logits, kl_div)


class MissingOpError(EmberError, NotImplementedError):
    """A functional needs a registry op that has not been declared."""


def _op(name: str, caller: str | None = None):
    op = OPS.get(name)
    if op is None:
        raise MissingOpError(f"ember.nn.functional.{caller or name} needs the registry op "
                             f"'{name}', which is not registered")
    return op


def _has(name: str) -> bool:
    return name in OPS


def _pair(v, n: int = 2) -> list[int]:
    if isinstance(v, (list, tuple)):
        return list(v)
    return [int(v)] * n


# --- activations ----------------------------------------------------------------------
def relu(input: Tensor, inplace: bool = False) -> Tensor:
    return _op("relu_" if inplace else "relu", "relu")(input)


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    return hardtanh(input, 0.0, 6.0, inplace)


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0,
             inplace: bool = False) -> Tensor:
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    if input.dtype.name == "bool":
        raise BadArgument("Bool inputs not supported for hardtanh")
    # dtype.is_quantized, not Tensor.is_quantized: traced values (ember.export) carry a dtype
    if not (input.dtype.is_floating_point or input.dtype.is_complex or
            getattr(input.dtype, "is_quantized", False)):
        # PyTorch truncates the bounds to the integer dtype, then clamps
        return maybe_inplace(input, inplace, lambda x: x.clamp(int(min_val), int(max_val)))
    if not inplace:     # a fused conv epilogue's result: clamped already
        done = clamp_already_done(input, min_val, max_val)
        if done is not None:
            return done
    return maybe_inplace(input, inplace, lambda x: OPS["hardtanh"](x, min_val, max_val))


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    return maybe_inplace(input, inplace, lambda x: OPS["leaky_relu"](x, negative_slope))


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    return maybe_inplace(input, inplace, lambda x: OPS["elu"](x, alpha))


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    if approximate not in ("none", "tanh"):
        raise BadArgument(f"approximate argument must be either none or tanh, got "
                          f"{approximate!r}")
    return _op("gelu")(input, approximate=approximate)


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    return maybe_inplace(input, inplace, OPS["silu"])


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    if _has("softplus"):
        return OPS["softplus"](input, beta, threshold)
    scaled = input * beta
    soft = (scaled.exp() + 1).log() / beta
    return OPS["where"](scaled > threshold, input, soft)


def sigmoid(input: Tensor) -> Tensor:
    return _op("sigmoid")(input)


def tanh(input: Tensor) -> Tensor:
    return _op("tanh")(input)


def _softmax_dim(ndim: int) -> int:
    # PyTorch's legacy implicit-dim rule (it warns; so do we, by docstring)
    return 0 if ndim in (0, 1, 3) else 1


def _softmax_composite(input: Tensor, dim: int, log: bool) -> Tensor:
    shifted = input - input.amax(dim, True).detach()
    exp = shifted.exp()
    total = exp.sum(dim, keepdim=True)
    return shifted - total.log() if log else exp / total


def _softmax_call(name: str, input: Tensor, dim, dtype) -> Tensor:
    """softmax/log_softmax: torch's implicit dim, the cast before, the registry op."""
    if dim is None:
        dim = _softmax_dim(input.ndim)
    if dtype is not None:
        input = input.to(dtype)
    if _has(name):
        return OPS[name](input, dim)
    return _softmax_composite(input, dim, log=name == "log_softmax")


def softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3,
            dtype=None) -> Tensor:
    return _softmax_call("softmax", input, dim, dtype)


def log_softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3,
                dtype=None) -> Tensor:
    return _softmax_call("log_softmax", input, dim, dtype)


# --- linear and convolution -----------------------------------------------------------
def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    if _has("linear"):
        return OPS["linear"](input, weight, bias)
    out = _op("matmul", "linear")(input, weight.transpose(0, 1))
    return out if bias is None else out + bias


@autocast.autocast_as("bilinear")
def bilinear(input1: Tensor, input2: Tensor, weight: Tensor, bias: Tensor | None = None):
    if _has("bilinear"):
        return OPS["bilinear"](input1, input2, weight, bias)
    from ._functional_bilinear import bilinear as composed
    return composed(input1, input2, weight, bias)


def _conv_padding(padding):
    return padding if isinstance(padding, str) else None


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Tensor:
    pad = padding if isinstance(padding, str) else _pair(padding, 1)
    return _op("conv1d")(input, weight, bias, _pair(stride, 1), pad, _pair(dilation, 1),
                         groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Tensor:
    pad = padding if isinstance(padding, str) else _pair(padding)
    return _op("conv2d")(input, weight, bias, _pair(stride), pad, _pair(dilation), groups)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1) -> Tensor:
    return _op("conv_transpose2d")(input, weight, bias, _pair(stride), _pair(padding),
                                   _pair(output_padding), groups, _pair(dilation))


# --- pooling --------------------------------------------------------------------------
def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    stride = kernel_size if stride is None or stride == [] else stride
    args = (input, _pair(kernel_size), _pair(stride), _pair(padding), _pair(dilation),
            ceil_mode)
    if return_indices:
        return tuple(_op("max_pool2d_with_indices", "max_pool2d")(*args))
    if tiled_max_pool_applies(*args):       # MaxPool2d(2) while training: one fused step
        return tiled_max_pool(input, args[1])
    if _has("max_pool2d"):
        return OPS["max_pool2d"](*args)
    return _op("max_pool2d_with_indices", "max_pool2d")(*args)[0]


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None) -> Tensor:
    stride = kernel_size if stride is None or stride == [] else stride
    return _op("avg_pool2d")(input, _pair(kernel_size), _pair(stride), _pair(padding),
                             ceil_mode, count_include_pad, divisor_override)


def adaptive_avg_pool2d(input, output_size) -> Tensor:
    size = _pair(output_size)
    if len(size) != 2:
        raise ShapeError("adaptive_avg_pool2d: output_size must be 2")
    size = [input.shape[-2 + i] if s is None else s for i, s in enumerate(size)]
    if _has("adaptive_avg_pool2d"):
        return OPS["adaptive_avg_pool2d"](input, size)
    if size == [1, 1]:
        return input.mean([-2, -1], keepdim=True)
    raise MissingOpError("ember.nn.functional.adaptive_avg_pool2d needs the registry op "
                         "'adaptive_avg_pool2d' for output sizes other than 1")


# --- normalization --------------------------------------------------------------------
def _normalize_stats(input: Tensor, dims: list[int], eps: float):
    mean = input.mean(dims, keepdim=True)
    centered = input - mean
    var = (centered * centered).mean(dims, keepdim=True)
    return centered / (var + eps).sqrt(), mean, var


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5) -> Tensor:
    """Batch statistics when training (updating running_* in place, unbiased variance),
    running statistics otherwise. momentum=None is handled by the module (it passes
    1/num_batches_tracked), as in PyTorch."""
    if isinstance(eps, (int, float)) and (eps <= 0.0 if training else eps < 0.0):
        raise ValueError(f"batch_norm eps must be "
                         f"{'positive during training' if training else 'non-negative'}, "
                         f"but got {eps}")
    if input.ndim < 2 and input.numel() == 0:   # PyTorch returns an empty copy, no channels
        return input.clone()
    if input.dtype.name in ("float16", "bfloat16"):
        # PyTorch's mixed-type batch norm (every conv-BN net under autocast): statistics,
        # normalization and their backward in float32, the result in the input's dtype;
        # in half precision the mean subtraction and its gradient lose the small terms
        from ...ir.dtypes import float32
        wide = OPS["convert_element_type"](input, float32)
        out = _batch_norm(wide, running_mean, running_var, weight, bias, training, momentum,
                          eps)
        return OPS["convert_element_type"](out, input.dtype)
    return _batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)


def _batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps):
    c = input.shape[1]
    dims = [0] + list(range(2, input.ndim))
    if training:
        n = input.numel() // c if c else 0
        if n == 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got "
                             f"input size {list(input.shape)}")
        if fused_batch_norm_applies(input, running_mean, running_var, weight, bias):
            return batch_norm_train(input, running_mean, running_var, weight, bias,
                                    momentum, eps)      # one fused step each way
        normed, mean, var = _normalize_stats(input, dims, eps)
        if running_mean is not None and n > 1:      # an empty batch leaves them (PyTorch)
            with no_grad():
                flat_mean = mean.detach().reshape([c])
                flat_var = var.detach().reshape([c]) * (n / (n - 1))
                # an op-level in-place copy (not a write to the array), so a graph
                # tracer records it and a compiled training step can write it back
                running_mean.copy_(running_mean * (1 - momentum) + flat_mean * momentum)
                running_var.copy_(running_var * (1 - momentum) + flat_var * momentum)
    elif _plain_eager(input, running_mean, running_var, weight, bias):
        return _eval_batch_norm_eager(input, running_mean, running_var, weight, bias, eps)
    else:
        shape = [1, c] + [1] * (input.ndim - 2)
        normed = (input - running_mean.reshape(shape)) / \
            (running_var.reshape(shape) + eps).sqrt()
    return _affine(normed, weight, bias, [1, c] + [1] * (input.ndim - 2))


def _plain_eager(*tensors) -> bool:
    """Eager CPU tensors and no dispatch mode: nothing records these ops' structure (a
    traced eval batch_norm keeps its sub/div/mul/add chain, which fold-bn matches)."""
    from ...ir import dispatch
    return not dispatch.active_modes() and all(
        t is None or (isinstance(t, Tensor) and t._storage.device == "cpu") for t in tensors)


def _eval_batch_norm_eager(input, running_mean, running_var, weight, bias, eps):
    """y = x * scale + shift with per-channel scale = weight / sqrt(var + eps) and
    shift = bias - mean * scale: two passes over the input instead of four (equal to
    the four-op form within float32 rounding)."""
    shape = [1, input.shape[1]] + [1] * (input.ndim - 2)
    scale = (running_var + eps).rsqrt()
    if weight is not None:
        scale = scale * weight
    shift = -running_mean * scale
    if bias is not None:
        shift = shift + bias
    out = input * scale.reshape(shape)
    if out.dtype != shift.dtype or _records_graph(input, running_mean, running_var, weight,
                                                  bias):
        return out + shift.reshape(shape)
    # no graph: the shift goes into the product's own array (one full-size result)
    return out.add_(shift.reshape(shape))


def _records_graph(*tensors) -> bool:
    from ..autograd import grad_mode
    return grad_mode.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in tensors)


def _affine(x, weight, bias, shape):
    if weight is not None:
        x = x * weight.reshape(shape)
    if bias is not None:
        x = x + bias.reshape(shape)
    return x


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5) -> Tensor:
    normalized_shape = _pair(normalized_shape, 1)
    if list(input.shape[input.ndim - len(normalized_shape):]) != list(normalized_shape):
        raise ShapeError(f"layer_norm: expected input with shape [*, "
                         f"{', '.join(map(str, normalized_shape))}], got {list(input.shape)}")
    if _has("layer_norm"):
        return OPS["layer_norm"](input, normalized_shape, weight, bias, eps)
    dims = list(range(input.ndim - len(normalized_shape), input.ndim))
    normed = _normalize_stats(input, dims, eps)[0]
    return _affine(normed, weight, bias, list(normalized_shape))


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5) -> Tensor:
    if input.ndim < 2:
        raise ShapeError(f"Expected at least 2 dimensions for input tensor but received "
                         f"{input.ndim}")
    n, c = input.shape[0], input.shape[1]
    if c % num_groups:
        raise ShapeError(f"group_norm: num_channels ({c}) must be divisible by num_groups "
                         f"({num_groups})")
    if _has("group_norm"):
        return OPS["group_norm"](input, num_groups, weight, bias, eps)
    grouped = input.reshape([n, num_groups, input.numel() // max(n * num_groups, 1)])
    normed = _normalize_stats(grouped, [2], eps)[0].reshape(list(input.shape))
    return _affine(normed, weight, bias, [1, c] + [1] * (input.ndim - 2))


def normalize(input, p=2.0, dim=1, eps=1e-12, out=None) -> Tensor:
    # a 0-d input accepts dim 0 or -1, as PyTorch's wrap rule allows
    norm = OPS["linalg_vector_norm"](input, p, [dim] if input.ndim else None, True)
    return input / norm.clamp_min(eps)


# --- dropout, embedding, padding, one_hot -----------------------------------------------
def dropout(input: Tensor, p: float = 0.5, training: bool = True,
            inplace: bool = False) -> Tensor:
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    from ._functional_common import maybe_inplace
    return maybe_inplace(input, inplace, lambda x: _dropout_values(x, p, training))


def _dropout_values(input: Tensor, p: float, training: bool) -> Tensor:
    if _has("dropout"):
        return OPS["dropout"](input, p, training)
    from ..random import numpy_rng
    keep = numpy_rng().random(tuple(input.shape)) >= p
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    mask = Tensor._from_array((keep * scale).astype(input._array.dtype))
    return input * mask


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0,
              scale_grad_by_freq=False, sparse=False) -> Tensor:
    if padding_idx is not None and padding_idx < 0:
        padding_idx += weight.shape[0]
    refuse_traced_sparse_gradient(weight, input, sparse, "embedding")
    if max_norm is not None:
        # as PyTorch: the referenced rows of weight are renormalized in place, untracked
        with no_grad():
            OPS["embedding_renorm_"](weight, input, max_norm, norm_type)
    if _has("embedding"):
        return OPS["embedding"](weight, input, -1 if padding_idx is None else padding_idx,
                                scale_grad_by_freq, sparse)
    matmul = _op("matmul", "embedding")
    onehot = one_hot(input, weight.shape[0]).to(weight.dtype)
    if padding_idx is None:
        return matmul(onehot, weight)
    # the padding row is looked up but gets no gradient, as in PyTorch
    is_pad = (input == padding_idx).unsqueeze(-1).to(weight.dtype)
    return matmul(onehot * (1 - is_pad), weight) + matmul(onehot * is_pad, weight.detach())


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    if num_classes < 0:
        num_classes = int(tensor.amax().item()) + 1 if tensor.numel() else 0
    if _has("one_hot"):
        return OPS["one_hot"](tensor, num_classes)
    from ..factories import arange
    from ...ir import dtypes
    return (tensor.unsqueeze(-1) == arange(num_classes)).to(dtypes.int64)


def pad(input: Tensor, pad: list[int], mode: str = "constant", value=None) -> Tensor:
    if len(pad) % 2:
        raise ShapeError("Padding length must be divisible by 2")
    if len(pad) // 2 > input.ndim:
        raise ShapeError("Padding length should be less than or equal to two times the input "
                         f"dimension but got padding length {len(pad)} and input of dimension "
                         f"{input.ndim}")
    if mode == "constant":
        if _has("constant_pad_nd"):
            return OPS["constant_pad_nd"](input, list(pad), 0.0 if value is None else value)
        return _op("pad")(input, list(pad), mode, value)
    if mode in _PAD_AUTOCAST_NAMES:
        # autocast treats these as aten's reflection_padNd / replication_padNd (CPU: float32)
        name = f"{_PAD_AUTOCAST_NAMES[mode]}{len(pad) // 2}d"
        with autocast.as_one_op(name, input) as (input,):
            return _op("pad")(input, list(pad), mode, value)
    return _op("pad")(input, list(pad), mode, value)


_PAD_AUTOCAST_NAMES = {"reflect": "reflection_pad", "replicate": "replication_pad"}


# --- attention ------------------------------------------------------------------------
def _grouped_query_kv(query, key, value):
    """enable_gqa=True: key/value heads (dim -3) shared by groups of query heads, each
    repeated for its group, as PyTorch's math path does."""
    if query.ndim < 3 or key.ndim < 3 or value.ndim < 3:
        return key, value
    hq, hk, hv = query.shape[-3], key.shape[-3], value.shape[-3]
    if hq % hk or hq % hv:
        raise RuntimeError(f"scaled_dot_product_attention: number of heads in key/value "
                           f"({hk}/{hv}) must divide the number of heads in query ({hq}) "
                           f"with enable_gqa=True")
    if hk != hq:
        key = key.repeat_interleave(hq // hk, dim=-3)
    if hv != hq:
        value = value.repeat_interleave(hq // hv, dim=-3)
    return key, value


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
                                 is_causal=False, scale=None, enable_gqa=False) -> Tensor:
    if enable_gqa:
        key, value = _grouped_query_kv(query, key, value)
    if _has("scaled_dot_product_attention"):
        op = OPS["scaled_dot_product_attention"]
        if dropout_p > 0:   # the fused op's backward cannot see its mask: the mask is its
            return op.decomposition(query, key, value, attn_mask, dropout_p,  # own op here
                                    is_causal, scale=scale)
        return op(query, key, value, attn_mask, dropout_p, is_causal, scale=scale)
    matmul = _op("matmul", "scaled_dot_product_attention")
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = matmul(query, key.transpose(-2, -1)) * scale
    l, s = query.shape[-2], key.shape[-2]
    if is_causal:
        from ..factories import ones
        allowed = Tensor._from_array(np.tril(np.ones((l, s), dtype=bool)))
        scores = OPS["where"](allowed, scores, float("-inf"))
    if attn_mask is not None:
        if attn_mask.dtype.name == "bool":
            scores = OPS["where"](attn_mask, scores, float("-inf"))
        else:
            scores = scores + attn_mask
    weights = softmax(scores, -1)
    weights = dropout(weights, dropout_p, True) if dropout_p > 0 else weights
    return matmul(weights, value)


from ._functional_mha import multi_head_attention_forward  # noqa: E402,F401
from ._functional_masks import _canonical_mask, _none_or_dtype  # noqa: E402,F401
from ._functional_activations import *  # noqa: E402,F401,F403
from ._functional_norms import *  # noqa: E402,F401,F403
from ._functional_dropout import *  # noqa: E402,F401,F403
from ._functional_embedding_bag import embedding_bag  # noqa: E402,F401
from ._functional_losses_extra import *  # noqa: E402,F401,F403
from ._functional_conv import (conv3d, conv_transpose1d, conv_transpose3d,  # noqa: E402,F401
                               unfold, fold)
from ._functional_pool import (  # noqa: E402,F401
    max_pool1d, max_pool3d, max_pool1d_with_indices, max_pool2d_with_indices,
    max_pool3d_with_indices, avg_pool1d, avg_pool3d, adaptive_avg_pool1d, adaptive_avg_pool3d,
    adaptive_max_pool1d, adaptive_max_pool2d, adaptive_max_pool3d,
    adaptive_max_pool1d_with_indices, adaptive_max_pool2d_with_indices,
    adaptive_max_pool3d_with_indices, max_unpool1d, max_unpool2d, max_unpool3d, lp_pool1d,
    lp_pool2d, lp_pool3d, fractional_max_pool2d, fractional_max_pool3d,
    fractional_max_pool2d_with_indices, fractional_max_pool3d_with_indices)
from ._functional_resample import (  # noqa: E402,F401
    interpolate, upsample, upsample_nearest, upsample_bilinear, pixel_shuffle, pixel_unshuffle,
    channel_shuffle, native_channel_shuffle)
from ._functional_grid import grid_sample, affine_grid  # noqa: E402,F401
from ._functional_linear_ce import linear_cross_entropy  # noqa: E402,F401
from ..aten_functions import conv_tbc  # noqa: E402,F401 - torch.nn.functional.conv_tbc
