"""torch.ao.quantization.utils' public helpers under the same names.

Scripts that write their own observers, fusers or FX passes import these: qparams
arithmetic (`calculate_qmin_qmax`, `determine_qparams`, `check_min_max_valid`,
`validate_qmin_qmax`), qconfig questions (`get_quant_type`, `activation_dtype`, ...),
dtype and qscheme tests, and module-tree helpers (`_parent_name`, `getattr_from_fqn`,
`get_fqn_to_example_inputs`). The qparams formulas are the observers' own (observer.py),
so both give the same bits as torch.ao.
"""
from __future__ import annotations

import functools
import inspect
import warnings
from collections import OrderedDict
from typing import Any, Union

import numpy as np

from ... import nn
from ...frontend.tensor import Tensor
from ...ir import dtypes
from ...ir.quantized import (per_channel_affine, per_channel_affine_float_qparams,
                             per_channel_symmetric, per_tensor_affine, per_tensor_symmetric)
from .observer import _buffer, _values, dtype_qrange, qparams_from_min_max
from .quant_type import QuantType

# --- pattern types (FX fusion / backend patterns) --------------------------------------------
NodePattern = Union[tuple, Any]
Pattern = Union[Any, tuple]
QuantizerCls = Any


class MatchAllNode:
    """A pattern element matching any node (e.g. the residual input of conv-add-relu)."""


def _dtype_names(*names: str) -> set:
    return {getattr(dtypes, n) for n in names if hasattr(dtypes, n)}


_INT8 = ("quint8", "qint8", "uint8", "int8")
_STATIC = _INT8 + ("qint32", "quint4x2", "int16", "int32", "uint16", "float8_e5m2",
                   "float8_e4m3fn")


def _in(dtype, names) -> bool:
    return dtype in _dtype_names(*names)


# --- fixed-qparams ops (check_node) ----------------------------------------------------------
def _fixed_qparams_targets():
    """The modules, functions and methods whose output range is fixed (hardsigmoid,
    sigmoid, tanh, softmax...): torch.ao's `check_node` lists."""
    F = nn.functional
    modules = {getattr(nn, n) for n in ("Hardsigmoid", "Sigmoid", "Softmax", "Tanh",
                                        "AdaptiveAvgPool1d", "AdaptiveAvgPool2d",
                                        "AdaptiveAvgPool3d", "AvgPool1d", "AvgPool2d",
                                        "AvgPool3d", "MaxPool1d", "MaxPool2d", "MaxPool3d",
                                        "Identity", "ReLU", "ReLU6", "Hardtanh")
               if hasattr(nn, n)}
    funcs = {getattr(F, n) for n in ("adaptive_avg_pool1d", "adaptive_avg_pool2d",
                                     "adaptive_avg_pool3d", "elu", "hardswish",
                                     "instance_norm", "layer_norm", "leaky_relu", "silu",
                                     "mish", "dropout", "max_pool1d", "max_pool2d",
                                     "max_pool3d", "relu", "hardtanh", "hardsigmoid",
                                     "sigmoid", "tanh", "softmax") if hasattr(F, n)}
    methods = {"relu", "relu_", "contiguous", "detach", "detach_", "hardsigmoid",
               "hardsigmoid_", "permute", "repeat", "repeat_interleave", "reshape",
               "resize_", "shape", "sigmoid", "sigmoid_", "size", "squeeze", "squeeze_",
               "tanh", "tanh_", "transpose", "unsqueeze", "unsqueeze_", "view"}
    return modules, funcs, methods


def check_node(node, modules):
    """(is_call_function, is_call_method, is_call_module) for a node whose op keeps
    its input's quantization (torch.ao's lists)."""
    module_types, funcs, methods = _fixed_qparams_targets()
    is_function = node.op == "call_function" and node.target in funcs
    is_method = node.op == "call_method" and node.target in methods
    is_module = node.op == "call_module" and type(modules[str(node.target)]) in module_types
    return is_function, is_method, is_module


# --- small helpers ---------------------------------------------------------------------------
def get_combined_dict(default_dict, additional_dict):
    """A copy of `default_dict` updated with `additional_dict` (its values win)."""
    combined = default_dict.copy()
    combined.update(additional_dict)
    return combined


def is_per_tensor(qscheme) -> bool:
    return qscheme == per_tensor_affine or qscheme == per_tensor_symmetric


def is_per_channel(qscheme) -> bool:
    return qscheme in (per_channel_affine, per_channel_affine_float_qparams,
                       per_channel_symmetric)


def getattr_from_fqn(obj: Any, fqn: str) -> Any:
    """`getattr_from_fqn(m, "foo.bar")` is `m.foo.bar`."""
    return functools.reduce(getattr, fqn.split("."), obj)


def _parent_name(target: str) -> tuple[str, str]:
    """'foo.bar.baz' -> ('foo.bar', 'baz'); 'foo' -> ('', 'foo')."""
    parts = target.rsplit(".", 1)
    return ("", parts[0]) if len(parts) == 1 else (parts[0], parts[1])


def to_underlying_dtype(qdtype):
    """The plain integer dtype that stores a quantized dtype (quint8 -> uint8...)."""
    mapping = {"quint8": "uint8", "qint8": "int8", "qint32": "int32", "quint4x2": "uint8",
               "quint2x4": "uint8", "uint8": "uint8", "int8": "int8", "uint16": "uint16",
               "int16": "int16", "int32": "int32", "float8_e5m2": "float8_e5m2",
               "float8_e4m3fn": "float8_e4m3fn"}
    name = getattr(qdtype, "name", None)
    if name not in mapping or not hasattr(dtypes, mapping[name]) or \
            getattr(dtypes, name, None) is not qdtype:
        raise AssertionError("Unsupported dtype: " + str(qdtype))
    return getattr(dtypes, mapping[name])


def has_no_children_ignoring_parametrizations(module) -> bool:
    """True for a leaf module; a parametrized module counts as a leaf when its only
    child is the `parametrizations` container."""
    from ...frontend.nn.utils.parametrize import is_parametrized
    if len(module._modules) == 0:
        return True
    if is_parametrized(module):
        return len(module._modules) == 1 and "parametrizations" in module._modules
    return False


def _get_path_of_module(root, submodule) -> str | None:
    """The qualified name of `submodule` inside `root`, or None."""
    for name, mod in root.named_modules():
        if mod is submodule:
            return name
    return None


# --- qconfig questions -----------------------------------------------------------------------
def _require(qconfig, what: str) -> None:
    if qconfig is None:
        raise AssertionError(f"qconfig must be provided to {what}")


def activation_dtype(qconfig):
    _require(qconfig, "determine activation dtype")
    return qconfig.activation().dtype


def weight_dtype(qconfig):
    _require(qconfig, "determine weight dtype")
    return qconfig.weight().dtype


def get_qconfig_dtypes(qconfig):
    """(activation dtype, weight dtype, whether the activation is quantized dynamically)."""
    _require(qconfig, "extract dtypes")
    activation, weight = qconfig.activation(), qconfig.weight()
    return activation.dtype, weight.dtype, getattr(activation, "is_dynamic", False)


def activation_is_dynamically_quantized(qconfig) -> bool:
    return get_qconfig_dtypes(qconfig)[2]


def activation_is_statically_quantized(qconfig) -> bool:
    return _in(activation_dtype(qconfig), _STATIC + ("float16",)) and \
        not activation_is_dynamically_quantized(qconfig)


def activation_is_int8_quantized(qconfig) -> bool:
    return _in(activation_dtype(qconfig), _INT8)


def activation_is_int32_quantized(qconfig) -> bool:
    return _in(activation_dtype(qconfig), ("qint32", "int32"))


def weight_is_quantized(qconfig) -> bool:
    return _in(weight_dtype(qconfig), ("quint8", "qint8", "float16", "quint4x2", "uint8",
                                       "int8", "int16", "int32", "float8_e5m2",
                                       "float8_e4m3fn"))


def weight_is_statically_quantized(qconfig) -> bool:
    return _in(weight_dtype(qconfig), _INT8)


def op_is_int8_dynamically_quantized(qconfig) -> bool:
    act, weight, is_dynamic = get_qconfig_dtypes(qconfig)
    return _in(act, ("quint8", "uint8")) and _in(weight, ("qint8", "int8")) and is_dynamic


def get_quant_type(qconfig):
    """STATIC, DYNAMIC or WEIGHT_ONLY from a qconfig's observers' dtypes."""
    _require(qconfig, "determine quant type")
    activation, weight = qconfig.activation(), qconfig.weight()
    is_dynamic = getattr(activation, "is_dynamic", False)
    if _in(weight.dtype, _STATIC):
        if is_dynamic:
            return QuantType.DYNAMIC
        if _in(activation.dtype, _STATIC):
            return QuantType.STATIC
        return QuantType.WEIGHT_ONLY
    if weight.dtype == dtypes.float16:
        if is_dynamic:
            return QuantType.DYNAMIC
        if activation.dtype == dtypes.float16:
            return QuantType.STATIC
    raise Exception(f"Unrecognized dtype combination in get_quant_type: "  # torch.ao's type
                    f"activation({activation.dtype}),weight({weight.dtype})")


def get_swapped_custom_module_class(custom_module, custom_module_class_mapping, qconfig):
    """The observed/quantized class a custom module swaps to, from a
    {QuantType: {float class: observed class}} mapping."""
    class_mapping = custom_module_class_mapping.get(get_quant_type(qconfig), {})
    if type(custom_module) not in class_mapping:
        raise AssertionError(f"did not find corresponding observed module class for "
                             f"{type(custom_module)} in mapping: {class_mapping}")
    return class_mapping[type(custom_module)]


def get_qparam_dict(observer_or_fake_quant) -> dict:
    """qscheme, dtype, scale, zero_point (axis, quant_min/max) of an observer; symmetric
    schemes are reported as affine, as quantized tensors store them."""
    from .observer import PlaceholderObserver
    obs = observer_or_fake_quant
    qscheme = getattr(obs, "qscheme", None)
    if not qscheme or isinstance(obs, PlaceholderObserver):
        return {"qscheme": None, "dtype": obs.dtype}
    qparams = {"qscheme": qscheme, "dtype": obs.dtype}
    if is_per_tensor(qscheme):
        qparams["qscheme"] = per_tensor_affine
    elif is_per_channel(qscheme):
        qparams["qscheme"] = per_channel_affine if qscheme == per_channel_symmetric \
            else qscheme
        qparams["axis"] = obs.ch_axis
    else:
        raise RuntimeError(f"Unrecognized qscheme: {qscheme}")
    qparams["scale"], qparams["zero_point"] = obs.calculate_qparams()
    for key in ("quant_min", "quant_max"):
        if hasattr(obs, key):
            qparams[key] = getattr(obs, key)
    return qparams


# --- qparams arithmetic ----------------------------------------------------------------------
def check_min_max_valid(min_val, max_val) -> bool:
    """False (with a warning) before any value was observed; an error if min > max."""
    lo, hi = _values(min_val), _values(max_val)
    if lo.size == 0 or hi.size == 0:
        warnings.warn("must run observer before calling calculate_qparams. "
                      "Returning default values.", stacklevel=2)
        return False
    if lo.ndim == 0 or hi.ndim == 0:
        if lo == np.inf and hi == -np.inf:
            warnings.warn("must run observer before calling calculate_qparams. "
                          "Returning default values.", stacklevel=2)
            return False
    if np.any(lo > hi):
        raise AssertionError(f"min {lo} should be less than max {hi}")
    return True


def validate_qmin_qmax(quant_min: int, quant_max: int) -> None:
    """A user's quant_min/quant_max must contain 0 and be ordered."""
    if not quant_min <= 0 <= quant_max:
        raise AssertionError("Used-specified quantization range must include 0.")
    if quant_min >= quant_max:
        raise AssertionError("qmin must be strictly less than qmax for user-specified "
                             "quantization range.")


def calculate_qmin_qmax(quant_min, quant_max, has_customized_qrange: bool, dtype,
                        reduce_range: bool) -> tuple[int, int]:
    """The integer range a dtype quantizes into, halved by `reduce_range`; a custom
    range (checked to fit the dtype's bits) is halved too, as torch.ao does."""
    name = getattr(dtype, "name", str(dtype))
    if has_customized_qrange:
        wide = name in ("qint32", "int32")
        lo, hi = (0, 2 ** 32 - 1) if wide else (0, 255)
        if quant_min is not None and quant_max is not None:
            lo, hi = quant_min, quant_max
        bits_range = 2 ** 32 if wide else 256
        if (name in ("qint8", "int8") or wide) and not 0 < hi - lo + 1 <= bits_range:
            raise AssertionError(f"quantization range should be positive and not exceed the "
                                 f"maximum bit range (={bits_range}).")
        if reduce_range:
            quant_min, quant_max = quant_min // 2, quant_max // 2
        return quant_min, quant_max
    return dtype_qrange(name, reduce_range) or (0, 15)


def determine_qparams(min_val, max_val, quant_min: int, quant_max: int, dtype, eps,
                      has_customized_qrange: bool, qscheme=per_tensor_affine):
    """Scale (float64) and zero point (int64) tensors from observed min/max tensors, per
    tensor or per channel, with the observers' formulas."""
    if not check_min_max_valid(min_val, max_val):
        return _buffer([1.0]), _buffer([0], np.int64)
    lo = np.asarray(_values(min_val), np.float32)
    hi = np.asarray(_values(max_val), np.float32)
    scale, zero_point = qparams_from_min_max(lo, hi, quant_min, quant_max, dtype,
                                             _values(eps), has_customized_qrange, qscheme)
    return _buffer(scale, np.float64), _buffer(zero_point.astype(np.int64), np.int64)


# --- example inputs per submodule ------------------------------------------------------------
def _get_signature_locals(f, loc: dict) -> dict:
    params = inspect.signature(f).parameters
    return {k: v for k, v in loc.items() if k in params}


def _get_default_kwargs(f) -> OrderedDict:
    kwargs = {}
    for name, param in inspect.signature(f).parameters.items():
        if param.default is not param.empty:
            kwargs[name] = param.default
        elif param.kind is param.VAR_POSITIONAL:
            kwargs[name] = ()
        elif param.kind is param.VAR_KEYWORD:
            kwargs[name] = {}
    return OrderedDict(kwargs)


def _normalize_kwargs(func, loc: dict) -> OrderedDict:
    """`func`'s keyword defaults, overridden by the ones in `loc`."""
    normalized = _get_default_kwargs(func)
    for name, value in _get_signature_locals(func, loc).items():
        if name in normalized:
            normalized[name] = value
    return normalized


def _get_num_pos_args(f) -> int:
    return len(inspect.getfullargspec(f).args)


def get_fqn_to_example_inputs(model, example_inputs: tuple) -> dict:
    """Run `model(*example_inputs)` and record every submodule's inputs by qualified
    name, keyword arguments flattened to positions with their defaults filled in."""
    recorded = {}
    original_call = nn.Module.__call__

    def recording_call(self, *args, **kwargs):
        inputs = list(args)
        kwargs_in_order = _normalize_kwargs(self.forward, kwargs)
        to_drop = _get_num_pos_args(self.forward) - 1 - len(inputs)   # -1: self
        while to_drop and kwargs_in_order:
            kwargs_in_order.popitem(last=False)
            to_drop -= 1
        inputs.extend(kwargs_in_order.values())
        fqn = _get_path_of_module(model, self)
        if fqn is not None:
            recorded[fqn] = tuple(inputs)
        return original_call(self, *args, **kwargs)

    nn.Module.__call__ = recording_call
    try:
        model(*example_inputs)
    finally:
        nn.Module.__call__ = original_call
    return recorded


def _assert_and_get_unique_device(module):
    """The one device a module's parameters and buffers live on (None if it has none)."""
    devices = {t.device for t in module.parameters()} | {t.device for t in module.buffers()}
    if len({str(d) for d in devices}) > 1:
        raise AssertionError(f"prepare only works with cpu or single-device CUDA modules, "
                             f"but got devices {devices}")
    return next(iter(devices)) if devices else None


__all__ = [
    "NodePattern", "Pattern", "MatchAllNode", "check_node", "get_combined_dict",
    "is_per_tensor", "is_per_channel", "getattr_from_fqn", "get_qparam_dict",
    "get_swapped_custom_module_class", "activation_dtype", "weight_dtype",
    "activation_is_statically_quantized", "activation_is_dynamically_quantized",
    "activation_is_int8_quantized", "activation_is_int32_quantized", "weight_is_quantized",
    "weight_is_statically_quantized", "op_is_int8_dynamically_quantized",
    "get_qconfig_dtypes", "get_quant_type", "check_min_max_valid", "calculate_qmin_qmax",
    "has_no_children_ignoring_parametrizations", "get_fqn_to_example_inputs",
    "to_underlying_dtype", "determine_qparams", "validate_qmin_qmax",
]
