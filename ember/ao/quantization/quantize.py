"""Eager-mode entry points: quantize_dynamic (torch.ao.quantization.quantize_dynamic).

Swaps each selected submodule (nn.Linear) for its dynamically quantized version:
int8 weights quantized once now (per tensor, symmetric, as torch.ao's default dynamic
qconfig), activations quantized per call from the batch's range, float in and out.
"""
from __future__ import annotations

import copy

from ... import nn
from ...ir import dtypes
from ..nn.quantized import dynamic as nnqd
from .observer import MinMaxObserver, PerChannelMinMaxObserver
from .qconfig import QConfig, default_dynamic_qconfig
from .quantize_fx import QuantizationError, _quantize_weight


def quantize_dynamic(model, qconfig_spec=None, dtype=dtypes.qint8, mapping=None,
                     inplace=False):
    """Dynamically quantize the submodules `qconfig_spec` names (a set of module types,
    or a dict of type/qualified name -> QConfig); only nn.Linear is supported."""
    if dtype is not dtypes.qint8:
        raise QuantizationError(f"quantize_dynamic: only dtype=ember.qint8 is supported, "
                                f"got {dtype}")
    if qconfig_spec is None:
        qconfig_spec = {nn.Linear}
    if not isinstance(qconfig_spec, dict):
        qconfig_spec = {key: default_dynamic_qconfig for key in qconfig_spec}
    unsupported = [k for k in qconfig_spec if isinstance(k, type) and k is not nn.Linear]
    if unsupported:
        raise QuantizationError(f"quantize_dynamic: no dynamic quantized version of "
                                f"{', '.join(k.__name__ for k in unsupported)} (only nn.Linear)")
    if not inplace:
        model = copy.deepcopy(model)
    for name, module in list(model.named_modules()):
        qconfig = qconfig_spec.get(name, qconfig_spec.get(type(module)))
        if type(module) is not nn.Linear or qconfig is None:
            continue
        _swap(model, name, module, qconfig)
    return model


def _swap(model, name: str, linear, qconfig: QConfig) -> None:
    observer = qconfig.weight()
    if not isinstance(observer, (MinMaxObserver, PerChannelMinMaxObserver)):
        raise QuantizationError(f"quantize_dynamic: {name}: weight observer "
                                f"{type(observer).__name__} is not supported")
    weight = _quantize_weight(linear.weight, observer)
    bias = linear.bias.detach().clone() if linear.bias is not None else None
    new = nnqd.Linear(linear.in_features, linear.out_features, weight, bias)
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, new)


