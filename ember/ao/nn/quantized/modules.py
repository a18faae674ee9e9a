"""Statically quantized modules (torch.ao.nn.quantized): what eager-mode `convert` swaps
float modules for. Input and output are quantized tensors; each module carries the
output `scale` and `zero_point` its observer recorded during calibration.

- Quantize / DeQuantize: the model's entry and exit (QuantStub / DeQuantStub).
- Linear, Conv1d, Conv2d, Conv3d: int8 weights (`_packed_weight`, per tensor or per output
  channel) and float bias, saved under torch.ao's state_dict keys (`_state.py`); they run the registry's quantized_linear / quantized_conv2d,
  so eager mode uses the native int8 GEMM where codegen has one (Conv1d is a conv2d over
  a height of 1; Conv3d runs quantized_conv3d's reference).
- ReLU6, Hardswish, ELU, LayerNorm, BatchNorm2d, Dropout: elementwise or normalizing
  ops computed on the dequantized values and quantized with the module's output qparams
  (ReLU6 and Dropout keep the input's), as torch's quantized kernels define them.

`from_float(mod)` builds each from its observed float (or QAT) module, as torch.ao does:
the weight is observed by `mod.qconfig.weight()` (a QAT module's trained
`weight_fake_quant`), the output qparams come from `mod.activation_post_process`.
"""
from __future__ import annotations

import warnings
from contextvars import ContextVar

import numpy as np

from ....frontend import nn
from ....frontend.factories import ones, tensor, zeros
from ....frontend.nn import functional as F
from ....frontend.quantized import conv2d_clamped, is_quantized_tensor, run_checked
from ....frontend.tensor import Tensor
from ....ir import dtypes
from ....ir.quantized import (per_channel_affine, per_channel_affine_float_qparams,
                               per_channel_symmetric)
from ....ir.ops.quantize import quantize_per_tensor
from ....ir.ops.quantized import quantized_conv2d, quantized_conv3d, quantized_linear
from ....ir.ops.quantized_pointwise import quantized_hardswish
from ._state import QParamsState


def _output_qparams(mod) -> tuple[float, int]:
    """The calibrated output scale and zero point of an observed float module."""
    post = getattr(mod, "activation_post_process", None)
    if post is None:
        raise RuntimeError(f"{type(mod).__name__}: no activation_post_process to take the "
                           f"output scale and zero point from; run prepare() (with a qconfig "
                           f"on this module) and calibrate before convert()")
    scale, zero_point = post.calculate_qparams()
    return float(scale._values()[0]), int(zero_point._values()[0])


def _requantize(real: Tensor, scale: float, zero_point: int, like) -> Tensor:
    return quantize_per_tensor(real, scale, zero_point, like.dtype)


def _float_and_weight_observer(mod, fused_types: tuple):
    """(the inner float module, its weight observer, the module holding the output
    observer) for a float, fused or QAT module, as torch.ao's from_float picks them."""
    post_holder = mod
    if hasattr(mod, "weight_fake_quant"):          # QAT: the trained fake quantize
        return mod, mod.weight_fake_quant, post_holder
    qconfig = getattr(mod, "qconfig", None)
    if isinstance(mod, fused_types):
        mod = mod[0]
    qconfig = qconfig or getattr(mod, "qconfig", None)
    if qconfig is None:
        raise RuntimeError(f"{type(post_holder).__name__}.from_float: the module has no "
                           f"qconfig (set module.qconfig or pass a qconfig mapping to prepare)")
    return mod, qconfig.weight(), post_holder


def _engine() -> str:
    from ....backends import quantized as backend
    return backend.engine


class Quantize(QParamsState, nn.Module):
    """Quantizes a float tensor per tensor with fixed qparams (QuantStub's converted form)."""

    _QPARAMS_SHAPE = (1,)

    def __init__(self, scale, zero_point, dtype, factory_kwargs=None):
        super().__init__()
        self.scale, self.zero_point, self.dtype = float(scale), int(zero_point), dtype

    def forward(self, x):
        return quantize_per_tensor(x, self.scale, self.zero_point, self.dtype)

    @staticmethod
    def from_float(mod, use_precomputed_fake_quant=False):
        scale, zero_point = _output_qparams(mod)
        return Quantize(scale, zero_point, mod.activation_post_process.dtype)

    def extra_repr(self):
        # torch.ao prints its [1]-shaped buffers as tensors
        scale = Tensor._from_array(np.asarray([self.scale], np.float32))
        zero_point = Tensor._from_array(np.asarray([self.zero_point], np.int64))
        return f"scale={scale}, zero_point={zero_point}, dtype={self.dtype}"


class DeQuantize(nn.Module):
    """Returns a quantized tensor to float32 (DeQuantStub's converted form)."""

    def forward(self, x):
        return x.dequantize()

    @staticmethod
    def from_float(mod, use_precomputed_fake_quant=False):
        return DeQuantize()


class _WeightedQuantized(QParamsState, nn.Module):
    """Shared by Linear and the convolutions: the packed int8 weight, the float bias and
    the output qparams."""

    _RELU = False

    def _get_name(self) -> str:
        return "Quantized" + type(self).__name__      # torch.ao's printed name

    _QNNPACK_ZERO_BIAS = True      # torch.ao's qnnpack packing stores a zero bias

    def _set_weight_bias(self, qweight, bias) -> None:
        if bias is not None and not isinstance(bias, Tensor):     # a loaded array
            bias = Tensor._from_array(np.asarray(bias, np.float32))
        if bias is None and self._QNNPACK_ZERO_BIAS and _engine() == "qnnpack":
            # under the qnnpack engine torch.ao's Linear / Conv1d / Conv2d (and the
            # transposed ones) pack a zero bias where none is given: bias() returns it,
            # the state_dict saves it and the repr has no `bias=False`
            bias = zeros(self._bias_size(qweight))
        self.register_buffer("_packed_weight", qweight)
        self.register_buffer("_bias", None if bias is None else bias.detach().clone())

    def set_weight_bias(self, w, b) -> None:
        self._set_weight_bias(w, b)

    def _bias_size(self, qweight) -> int:
        return int(qweight.shape[0])

    def weight(self):
        return self._packed_weight

    def bias(self):
        return self._bias

    @classmethod
    def from_float(cls, mod, use_precomputed_fake_quant=False):
        from ...quantization.quantize_fx import _quantize_weight
        inner, weight_post, post_holder = _float_and_weight_observer(mod, cls._FUSED)
        inner = cls._unfused(inner)
        if not isinstance(inner, cls._FLOAT):
            raise TypeError(f"quantized {cls.__name__}.from_float expects nn."
                            f"{cls._FLOAT.__name__} (or its fused / QAT form), got "
                            f"{type(mod).__name__}")
        qweight = _quantize_weight(inner.weight, weight_post)
        if qweight.dtype is not dtypes.qint8:
            raise RuntimeError(f"{cls.__name__}.from_float: weight observer must have dtype "
                               f"qint8, got {qweight.dtype}")
        qmod = cls._like(inner)
        qmod._set_weight_bias(qweight, inner.bias)
        qmod.scale, qmod.zero_point = _output_qparams(post_holder)
        return qmod

    @classmethod
    def _unfused(cls, mod):
        """A QAT conv+bn / linear+bn: BN folded into the float weight and bias with its
        running stats."""
        from ..intrinsic.qat import _FoldedBn
        return mod.folded() if isinstance(mod, _FoldedBn) else mod


class Linear(_WeightedQuantized):
    """y = quantize(x @ W.T + b) with int8 W; x quantized per tensor."""

    _FLOAT = nn.Linear
    _FUSED: tuple = ()
    # torch.ao's keys: its LinearPackedParams child saves the weight dtype and the
    # (weight, bias) tuple, after the module's scale and zero point
    _STATE_TENSORS = ("_packed_params.dtype", "_packed_params._packed_params")
    _HIDDEN_BUFFERS = ("_packed_weight", "_bias")
    _QPARAMS_FIRST = True

    def _state_tensors(self) -> dict:
        return {"_packed_params.dtype": self._packed_weight.dtype,
                "_packed_params._packed_params": (self.weight(), self.bias())}

    def _load_state_tensors(self, values: dict) -> None:
        dtype = values.get("_packed_params.dtype", dtypes.qint8)
        if str(dtype).split(".")[-1] != "qint8":
            raise RuntimeError(f"quantized Linear.load_state_dict: _packed_params.dtype must be "
                               f"qint8 (a statically quantized Linear), got {dtype}")
        packed = values.get("_packed_params._packed_params")
        if packed is not None:
            weight, bias = packed
            self._set_weight_bias(weight, bias)

    def __init__(self, in_features, out_features, bias_=True, dtype=dtypes.qint8):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self._set_weight_bias(quantize_per_tensor(zeros(out_features, in_features), 1.0, 0,
                                                  dtype),
                              zeros(out_features) if bias_ else None)
        self.scale, self.zero_point = 1.0, 0

    @classmethod
    def _like(cls, inner):
        return cls(inner.in_features, inner.out_features, inner.bias is not None)

    def forward(self, x):
        return run_checked(quantized_linear, (x, self._packed_weight, self._bias, self.scale,
                                              self.zero_point, self._RELU))

    def extra_repr(self):
        w = self._packed_weight
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"scale={self.scale}, zero_point={self.zero_point}, qscheme={w.qscheme()}")


def _pair(v, n):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * n


class _ConvNd(_WeightedQuantized):
    _NDIM = 2
    _FUSED: tuple = ()
    # torch.ao's keys: `weight` (the quantized weight as weight() shows it) and `bias`
    _STATE_TENSORS = ("weight", "bias")
    _HIDDEN_BUFFERS = ("_packed_weight", "_bias")

    def _state_tensors(self) -> dict:
        return {"weight": self.weight(), "bias": self.bias()}      # bias None when absent

    def _load_state_tensors(self, values: dict) -> None:
        self._set_weight_bias(values.get("weight", self.weight()),
                              values.get("bias", self.bias()))

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros", dtype=dtypes.qint8):
        super().__init__()
        if padding_mode != "zeros":
            raise ValueError(f"quantized {type(self).__name__}: only padding_mode='zeros' is "
                             f"supported, got {padding_mode!r}")
        if isinstance(padding, str):
            raise ValueError(f"quantized {type(self).__name__}: padding={padding!r} is not "
                             f"supported; give the padding as integers")
        n = self._NDIM
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride = _pair(kernel_size, n), _pair(stride, n)
        self.padding, self.dilation = _pair(padding, n), _pair(dilation, n)
        self.padding_mode = padding_mode
        shape = (out_channels, in_channels // groups) + self.kernel_size
        self._set_weight_bias(quantize_per_tensor(zeros(*shape), 1.0, 0, dtype),
                              zeros(out_channels) if bias else None)
        self.scale, self.zero_point = 1.0, 0

    @classmethod
    def _like(cls, inner):
        return cls(inner.in_channels, inner.out_channels, inner.kernel_size, inner.stride,
                   inner.padding, inner.dilation, inner.groups, inner.bias is not None,
                   inner.padding_mode)

    def extra_repr(self):
        # torch.ao's form: padding, dilation, groups and bias only where not the default
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, scale={self.scale}, zero_point={self.zero_point}")
        if any(self.padding):
            text += f", padding={self.padding}"
        if any(d != 1 for d in self.dilation):
            text += f", dilation={self.dilation}"
        if any(getattr(self, "output_padding", ())):     # transposed convs
            text += f", output_padding={self.output_padding}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias() is None:
            text += ", bias=False"
        return text


#: {id(conv): (low, high)} while a converted graph whose convs feed only a clamp runs
#: (convert_fx marks them `_fused_clamp`; quantize_fx decides per call which may fuse)
_GRAPH_CLAMPS: ContextVar = ContextVar("ember_graph_clamps", default=None)


def _graph_clamp_of(conv) -> tuple | None:
    active = _GRAPH_CLAMPS.get()
    return None if active is None else active.get(id(conv))


def call_with_graph_clamps(clamps: dict, fn, *args, **kwargs):
    """fn(*args, **kwargs) with the convs named in `clamps` clamping in their epilogue."""
    token = _GRAPH_CLAMPS.set(clamps)
    try:
        return fn(*args, **kwargs)
    finally:
        _GRAPH_CLAMPS.reset(token)


class Conv2d(_ConvNd):
    _FLOAT = nn.Conv2d

    def _call_args(self, x) -> tuple:
        """quantized_conv2d's arguments for input x (schema order)."""
        return (x, self._packed_weight, self._bias, self.stride, self.padding,
                self.dilation, self.groups, self.scale, self.zero_point, self._RELU)

    def forward(self, x):
        if x.ndim != 4:
            raise ValueError(f"quantized Conv2d: expected a 4-d input [N, C, H, W], got "
                             f"{list(x.shape)}")
        args = self._call_args(x)
        clamp = _graph_clamp_of(self)
        if clamp is not None and is_quantized_tensor(x):
            # the converted graph calling this conv passes its result only to a clamp
            # (relu6 / hardtanh): the epilogue clamps too, and the clamp node then copies
            # nothing; called alone, the conv gives torch.ao's unclamped result
            return conv2d_clamped(quantized_conv2d, args, *clamp)
        return run_checked(quantized_conv2d, args)


class Conv3d(_ConvNd):
    _QNNPACK_ZERO_BIAS = False      # torch.ao's qnnpack has no 3-d conv
    """Runs on the NumPy reference of quantized_conv3d (no native int8 3-d kernel)."""

    _NDIM = 3
    _FLOAT = nn.Conv3d

    def forward(self, x):
        if x.ndim != 5:
            raise ValueError(f"quantized Conv3d: expected a 5-d input [N, C, D, H, W], got "
                             f"{list(x.shape)}")
        return quantized_conv3d(x, self._packed_weight, self._bias, self.stride, self.padding,
                                self.dilation, self.groups, self.scale, self.zero_point,
                                self._RELU)


class Conv1d(_ConvNd):
    """A conv2d over a height of 1: the weight is kept as [O, I, 1, K] for the kernel and
    shown as [O, I, K] by weight()."""

    _NDIM = 1
    _FLOAT = nn.Conv1d

    def _set_weight_bias(self, qweight, bias) -> None:
        super()._set_weight_bias(_unsqueeze_quantized(qweight, 2), bias)

    def weight(self):
        return _squeeze_quantized(self._packed_weight, 2)

    def forward(self, x):
        if x.ndim != 3:
            raise ValueError(f"quantized Conv1d: expected a 3-d input [N, C, L], got "
                             f"{list(x.shape)}")
        y = quantized_conv2d(x.unsqueeze(2), self._packed_weight, self._bias,
                             (1,) + self.stride, (0,) + self.padding, (1,) + self.dilation,
                             self.groups, self.scale, self.zero_point, self._RELU)
        return y.squeeze(2)


def _unsqueeze_quantized(qt, dim):
    from ....frontend.quantized import QuantizedTensor
    qa = qt._qarray()
    return QuantizedTensor._wrap(qa.with_values(qa.int_repr.reshape(
        qa.int_repr.shape[:dim] + (1,) + qa.int_repr.shape[dim:])))


def _squeeze_quantized(qt, dim):
    from ....frontend.quantized import QuantizedTensor
    qa = qt._qarray()
    return QuantizedTensor._wrap(qa.with_values(qa.int_repr.squeeze(dim)))


class _ConvTransposeNd(_ConvNd):
    """Transposed convolutions: the int8 weight [in, out / groups, *kernel] (per tensor,
    as torch.ao requires), computed on the dequantized input and weight in float and
    quantized with the output qparams (torch's kernel accumulates the integers exactly;
    the float sum can differ from it by rounding, so results agree within a step)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode)
        self.output_padding = _pair(output_padding, self._NDIM)
        shape = (in_channels, out_channels // groups) + self.kernel_size
        self._set_weight_bias(quantize_per_tensor(zeros(*shape), 1.0, 0, dtypes.qint8),
                              self._bias)

    def _bias_size(self, qweight) -> int:
        return self.out_channels        # the weight is [in, out / groups, *kernel]

    @classmethod
    def _like(cls, inner):
        return cls(inner.in_channels, inner.out_channels, inner.kernel_size, inner.stride,
                   inner.padding, inner.output_padding, inner.groups, inner.bias is not None,
                   inner.dilation, inner.padding_mode)

    @classmethod
    def from_float(cls, mod, use_precomputed_fake_quant=False):
        qconfig = getattr(mod, "qconfig", None)
        if qconfig is not None and getattr(qconfig.weight(), "qscheme", None) in (
                per_channel_affine, per_channel_symmetric):
            raise RuntimeError(f"quantized {cls.__name__}: per-channel weight observers are "
                               f"not supported for transposed convolutions (as in torch.ao); "
                               f"give this module a per-tensor qconfig such as "
                               f"ember.ao.quantization.default_qconfig")
        return super().from_float(mod, use_precomputed_fake_quant)

    def forward(self, x):
        if x.ndim != self._NDIM + 2:
            raise ValueError(f"quantized {type(self).__name__}: expected a "
                             f"{self._NDIM + 2}-d input, got {list(x.shape)}")
        y = self._F(x.dequantize(), self._packed_weight.dequantize(), self._bias,
                    self.stride, self.padding, self.output_padding, self.groups,
                    self.dilation)
        return _requantize(y, self.scale, self.zero_point, x)



class ConvTranspose1d(_ConvTransposeNd):
    _NDIM = 1
    _FLOAT = nn.ConvTranspose1d
    _F = staticmethod(F.conv_transpose1d)


class ConvTranspose2d(_ConvTransposeNd):
    _NDIM = 2
    _FLOAT = nn.ConvTranspose2d
    _F = staticmethod(F.conv_transpose2d)


class ConvTranspose3d(_ConvTransposeNd):
    _QNNPACK_ZERO_BIAS = False
    _NDIM = 3
    _FLOAT = nn.ConvTranspose3d
    _F = staticmethod(F.conv_transpose3d)


# --- elementwise and normalization: float math between dequantize and quantize --------------
class ReLU6(nn.ReLU6):
    """min(max(x, 0), 6) on a quantized tensor; keeps the input's scale and zero point."""

    def _get_name(self) -> str:
        return "Quantized" + type(self).__name__      # torch.ao's printed name

    def forward(self, x):
        return quantize_per_tensor(F.relu6(x.dequantize()), x.q_scale(), x.q_zero_point(),
                                   x.dtype)

    @staticmethod
    def from_float(mod, use_precomputed_fake_quant=False):
        return ReLU6(mod.inplace)


class Dropout(nn.Dropout):
    """Identity at inference, as the quantized Dropout is."""

    def _get_name(self) -> str:
        return "Quantized" + type(self).__name__      # torch.ao's printed name

    def forward(self, x):
        return x

    @classmethod
    def from_float(cls, mod, use_precomputed_fake_quant=False):
        return cls(mod.p, mod.inplace)


class _FloatBetween(QParamsState, nn.Module):
    """A module that dequantizes, runs its float op, and quantizes with (scale, zero_point)."""

    def _get_name(self) -> str:
        return "Quantized" + type(self).__name__      # torch.ao's printed name

    def _float_op(self, x):
        raise NotImplementedError

    def forward(self, x):
        return _requantize(self._float_op(x.dequantize()), self.scale, self.zero_point, x)

    def extra_repr(self):
        return f"scale={self.scale}, zero_point={self.zero_point}"


class Hardswish(_FloatBetween):
    def __init__(self, scale, zero_point, device=None, dtype=None):
        super().__init__()
        self.scale, self.zero_point = float(scale), int(zero_point)

    def _float_op(self, x):
        return F.hardswish(x)

    def forward(self, x):
        # torch.ops.quantized.hardswish: the 8-bit kernel (a table over the 256 inputs)
        if x.dtype in (dtypes.quint8, dtypes.qint8) and getattr(x, "_qaxis", None) is None:
            return quantized_hardswish(x, self.scale, self.zero_point)
        return super().forward(x)

    def extra_repr(self):
        return ""           # torch.ao prints a quantized Hardswish as the float one

    @staticmethod
    def from_float(mod, use_precomputed_fake_quant=False):
        return Hardswish(*_output_qparams(mod))


class PReLU(_FloatBetween):
    """torch.ao's quantized PReLU (what convert_fx swaps an nn.PReLU for): the slopes
    quantized per tensor to quint8 with the qconfig weight observer's scale and zero point,
    as torch.ao's from_float quantizes them (a symmetric qint8 observer gives zero point
    0, so negative slopes clamp to 0 there too); x where x >= 0, else slope * x, on the
    dequantized values, quantized with (scale, zero_point). The weight is an attribute
    and the qparams are not state, as in torch.ao."""
    _SAVES_QPARAMS = False

    def __init__(self, output_scale, output_zero_point, num_parameters=1):
        super().__init__()
        from ....frontend.factories import randn
        self.num_parameters = num_parameters
        self.scale, self.zero_point = float(output_scale), int(output_zero_point)
        self.set_weight(quantize_per_tensor(randn(num_parameters), 1.0, 0, dtypes.quint8))

    def set_weight(self, w) -> None:
        object.__setattr__(self, "weight", w)      # a plain attribute: not in state_dict

    def _float_op(self, x):
        return F.prelu(x, self.weight.dequantize())

    def extra_repr(self):
        return ""

    @classmethod
    def from_observed(cls, mod, scale: float, zero_point: int, weight_observer):
        """From the float module, its output qparams and a fresh weight observer."""
        qprelu = cls(scale, zero_point, mod.num_parameters)
        weight = mod.weight.detach().float()
        weight_observer(weight)
        w_scale, w_zero_point = weight_observer.calculate_qparams()
        qprelu.set_weight(quantize_per_tensor(weight, float(w_scale), int(w_zero_point),
                                              dtypes.quint8))
        return qprelu

    @classmethod
    def from_float(cls, mod, use_precomputed_fake_quant=False):
        qconfig = getattr(mod, "qconfig", None)
        if qconfig is None:
            raise RuntimeError("PReLU.from_float: the module has no qconfig (set "
                               "module.qconfig or pass a qconfig mapping to prepare)")
        return cls.from_observed(mod, *_output_qparams(mod), qconfig.weight())

    @classmethod
    def from_reference(cls, mod, scale, zero_point):
        return cls.from_observed(mod, float(scale), int(zero_point), mod.qconfig.weight())


class ELU(_FloatBetween):
    _SAVES_QPARAMS = False          # torch.ao's quantized ELU keeps them out of its state

    def __init__(self, scale, zero_point, alpha=1.0):
        super().__init__()
        self.scale, self.zero_point, self.alpha = float(scale), int(zero_point), alpha

    def _float_op(self, x):
        return F.elu(x, self.alpha)

    def extra_repr(self):
        return f"alpha={self.alpha}"

    @staticmethod
    def from_float(mod, use_precomputed_fake_quant=False):
        return ELU(*_output_qparams(mod), mod.alpha)


class Softmax(_FloatBetween):
    """torch.ao's quantized Softmax (what convert_fx swaps an nn.Softmax for): softmax of
    the dequantized values, quantized with the module's scale and zero point (torch's
    kernel off qnnpack); the qparams are attributes, not state, as torch.ao keeps them."""
    _SAVES_QPARAMS = False

    def __init__(self, dim=None, scale=1.0, zero_point=0):
        super().__init__()
        self.dim, self.scale, self.zero_point = dim, float(scale), int(zero_point)

    def _float_op(self, x):
        return F.softmax(x, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"

    @staticmethod
    def from_float(mod, use_precomputed_fake_quant=False):
        return Softmax(mod.dim, *_output_qparams(mod))


class LayerNorm(_FloatBetween):
    def __init__(self, normalized_shape, weight, bias, scale, zero_point, eps=1e-5,
                 elementwise_affine=True):
        super().__init__()
        self.normalized_shape = tuple(normalized_shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        self.register_buffer("weight", None if weight is None else weight.detach().clone())
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        self.scale, self.zero_point = float(scale), int(zero_point)

    def _float_op(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}")

    @classmethod
    def from_float(cls, mod, use_precomputed_fake_quant=False):
        return cls(mod.normalized_shape, mod.weight, mod.bias, *_output_qparams(mod), mod.eps,
                   mod.elementwise_affine)


class BatchNorm2d(_FloatBetween):
    """Eval-mode BatchNorm2d (running statistics) on a quantized tensor."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        for name, init in (("weight", ones), ("bias", zeros), ("running_mean", zeros),
                           ("running_var", ones)):
            self.register_buffer(name, init(num_features))
        self.register_buffer("num_batches_tracked", tensor(0, dtype=dtypes.int64))
        self.scale, self.zero_point = 1.0, 0

    def _float_op(self, x):
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            False, 0.0, self.eps)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine=True, bias=True, track_running_stats=True")

    @classmethod
    def from_float(cls, mod, use_precomputed_fake_quant=False):
        return cls._with_statistics(mod, mod)

    @classmethod
    def _with_statistics(cls, bn, observed):
        """The quantized module with `bn`'s parameters and statistics and the output
        qparams observed after `observed` (bn itself, or a fused bn-relu)."""
        qbn = cls(bn.num_features, bn.eps, bn.momentum)
        for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            value = getattr(bn, name, None)
            if value is not None:
                setattr(qbn, name, value.detach().clone())
        qbn.scale, qbn.zero_point = _output_qparams(observed)
        return qbn


class BatchNorm3d(BatchNorm2d):
    """Eval-mode BatchNorm3d (running statistics) on a quantized tensor."""


class _AffineNorm(_FloatBetween):
    """Normalizations with optional float weight and bias, computed on the dequantized
    input and quantized with the calibrated output qparams."""

    def _set_affine(self, weight, bias) -> None:
        self.register_buffer("weight", None if weight is None else weight.detach().clone())
        self.register_buffer("bias", None if bias is None else bias.detach().clone())


class GroupNorm(_AffineNorm):
    def __init__(self, num_groups, num_channels, weight, bias, scale, zero_point, eps=1e-5,
                 affine=True, device=None, dtype=None):
        super().__init__()
        self.num_groups, self.num_channels = num_groups, num_channels
        self.eps, self.affine = eps, affine
        self._set_affine(weight, bias)
        self.scale, self.zero_point = float(scale), int(zero_point)

    def _float_op(self, x):
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, "
                f"affine={self.affine}, bias={self.bias is not None}")

    @classmethod
    def from_float(cls, mod, use_precomputed_fake_quant=False):
        return cls(mod.num_groups, mod.num_channels, mod.weight, mod.bias,
                   *_output_qparams(mod), mod.eps, mod.affine)


class _InstanceNorm(_AffineNorm):
    def __init__(self, num_features, weight, bias, scale, zero_point, eps=1e-5,
                 momentum=0.1, affine=False, track_running_stats=False, device=None,
                 dtype=None):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self._set_affine(weight, bias)
        self.scale, self.zero_point = float(scale), int(zero_point)

    def _float_op(self, x):
        return F.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")

    @classmethod
    def from_float(cls, mod, use_precomputed_fake_quant=False):
        return cls(mod.num_features, mod.weight, mod.bias, *_output_qparams(mod), mod.eps,
                   mod.affine)


class InstanceNorm1d(_InstanceNorm):
    pass


class InstanceNorm2d(_InstanceNorm):
    pass


class InstanceNorm3d(_InstanceNorm):
    pass


class LeakyReLU(_FloatBetween):
    def __init__(self, scale, zero_point, negative_slope=0.01, inplace=False, device=None,
                 dtype=None):
        super().__init__()
        self.scale, self.zero_point = float(scale), int(zero_point)
        self.negative_slope, self.inplace = negative_slope, inplace

    def _float_op(self, x):
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")

    @classmethod
    def from_float(cls, mod, use_precomputed_fake_quant=False):
        return cls(*_output_qparams(mod), mod.negative_slope, mod.inplace)


# --- embeddings: weight-only quantization ----------------------------------------------------
class _QuantizedEmbeddingBase(QParamsState, nn.Module):
    """A quint8 weight quantized per row with float zero points
    (float_qparams_weight_only_qconfig); lookups return float rows, dequantized after the
    gather, so only the looked-up rows are converted."""

    def _get_name(self) -> str:
        return "Quantized" + type(self).__name__      # torch.ao's printed name

    _FLOAT: type = nn.Module
    # torch.ao's keys: its EmbeddingPackedParams child saves the weight dtype and the
    # packed weight; no output qparams (the lookups return float rows)
    _STATE_TENSORS = ("_packed_params.dtype", "_packed_params._packed_weight")
    _HIDDEN_BUFFERS = ("_packed_weight",)
    _SAVES_QPARAMS = False

    def _state_tensors(self) -> dict:
        return {"_packed_params.dtype": self._packed_weight.dtype,
                "_packed_params._packed_weight": self._packed_weight}

    def _load_state_tensors(self, values: dict) -> None:
        if "_packed_params._packed_weight" in values:
            self._set_weight(values["_packed_params._packed_weight"])

    def _set_weight(self, qweight) -> None:
        if qweight.qscheme() is not per_channel_affine_float_qparams:
            raise ValueError(f"quantized {type(self).__name__}: the weight must be quantized "
                             f"per row with float qparams (float_qparams_weight_only_qconfig), "
                             f"got qscheme {qweight.qscheme()}")
        self.register_buffer("_packed_weight", qweight)

    def weight(self):
        return self._packed_weight

    def _rows(self, indices):
        """Dequantized rows of the weight at `indices` (any shape)."""
        w = self._packed_weight
        flat = indices.reshape(-1)
        q = w.int_repr()[flat].to(dtypes.float32)
        zero = w.q_per_channel_zero_points()[flat].reshape(-1, 1)
        scale = w.q_per_channel_scales().to(dtypes.float32)[flat].reshape(-1, 1)
        return ((q - zero) * scale).reshape(tuple(indices.shape) + (q.shape[-1],))

    @classmethod
    def from_float(cls, mod, use_precomputed_fake_quant=False):
        from ...quantization.quantize_fx import _quantize_weight
        if not isinstance(mod, cls._FLOAT):
            raise TypeError(f"quantized {cls.__name__}.from_float expects nn."
                            f"{cls._FLOAT.__name__}, got {type(mod).__name__}")
        observer = getattr(mod, "weight_fake_quant", None)     # QAT: the trained one
        if observer is None:
            qconfig = getattr(mod, "qconfig", None)
            if qconfig is None:
                raise RuntimeError(f"quantized {cls.__name__}.from_float: the module has no "
                                   f"qconfig (use float_qparams_weight_only_qconfig)")
            observer = qconfig.weight()
        new = cls._like(mod)
        new._set_weight(_quantize_weight(mod.weight, observer))
        return new


class Embedding(_QuantizedEmbeddingBase):
    _FLOAT = nn.Embedding

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = padding_idx

    @classmethod
    def _like(cls, mod):
        return cls(mod.num_embeddings, mod.embedding_dim, mod.padding_idx)

    def forward(self, indices):
        return self._rows(indices)

    def extra_repr(self):
        return f"num_embeddings={self.num_embeddings}, embedding_dim={self.embedding_dim}, " \
               f"dtype={self._packed_weight.dtype}, qscheme={self._packed_weight.qscheme()}"


class EmbeddingBag(_QuantizedEmbeddingBase):
    """Bags of rows summed (torch's quantized EmbeddingBag), with `offsets` for 1-d input
    and optional per_sample_weights. torch.ao's module keeps any mode's name but its
    kernel sums whatever the mode; so does this one (a script written for torch.ao gets
    torch.ao's numbers), with a warning where the mode is not 'sum'."""

    _FLOAT = nn.EmbeddingBag

    def __init__(self, num_embeddings, embedding_dim, mode="sum", include_last_offset=False):
        super().__init__()
        if mode != "sum":
            warnings.warn(f"quantized EmbeddingBag: mode={mode!r} sums the bags as torch.ao's "
                          f"quantized kernel does (only 'sum' is computed)", stacklevel=2)
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.mode, self.include_last_offset = mode, include_last_offset

    @classmethod
    def _like(cls, mod):
        return cls(mod.num_embeddings, mod.embedding_dim, mod.mode, mod.include_last_offset)

    def forward(self, indices, offsets=None, per_sample_weights=None):
        # each index position gets its own dequantized row; the bags then reduce those
        rows = self._rows(indices.reshape(-1))
        positions = _arange_like(rows.shape[0], indices).reshape(tuple(indices.shape))
        return F.embedding_bag(positions, rows, offsets, mode="sum",   # torch.ao's kernel
                               per_sample_weights=per_sample_weights,
                               include_last_offset=self.include_last_offset)

    def extra_repr(self):
        return f"num_embeddings={self.num_embeddings}, embedding_dim={self.embedding_dim}, " \
               f"dtype={self._packed_weight.dtype}, qscheme={self._packed_weight.qscheme()}"


def _arange_like(n: int, like):
    from ....frontend.factories import arange
    return arange(n, device=like.device)


__all__ = ["Quantize", "DeQuantize", "Linear", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d",
           "ConvTranspose2d", "ConvTranspose3d", "BatchNorm3d", "GroupNorm",
           "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", "LeakyReLU", "Embedding",
           "EmbeddingBag", "ReLU6", "Dropout",
           "Hardswish", "ELU", "LayerNorm", "BatchNorm2d", "Softmax", "PReLU"]
