"""QConfigMapping: which QConfig each part of a model gets (torch.ao's class and order).

Later entries of the same kind override earlier ones; across kinds, the most specific
wins: global < object_type < module_name_regex < module_name <
module_name_object_type_order. A module name also covers its submodules (the nearest
named ancestor wins). None as a QConfig means "leave this in float".
"""
from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any

from ...frontend import nn
from ...frontend.nn import functional as F
from ...ir.ops import OPS_NS
from .fake_quantize import (default_weight_fake_quant,
                            default_fixed_qparams_range_0to1_fake_quant,
                            default_fixed_qparams_range_neg1to1_fake_quant)
from .observer import (HistogramObserver, MinMaxObserver, PlaceholderObserver,
                       default_fixed_qparams_range_0to1_observer,
                       default_fixed_qparams_range_neg1to1_observer, default_weight_observer)
from .qconfig import (QConfig, default_reuse_input_qconfig, get_default_qat_qconfig,
                      get_default_qconfig, _check_backend)

_GLOBAL = ""
_OBJECT_TYPE = "object_type"
_REGEX = "module_name_regex"
_NAME = "module_name"
_ORDER = "module_name_object_type_order"


class QConfigMapping:
    """Maps model parts to QConfigs; see the module docstring for precedence."""

    def __init__(self):
        self.global_qconfig = None
        self.object_type_qconfigs: "OrderedDict[Any, Any]" = OrderedDict()
        self.module_name_regex_qconfigs: "OrderedDict[str, Any]" = OrderedDict()
        self.module_name_qconfigs: "OrderedDict[str, Any]" = OrderedDict()
        self.module_name_object_type_order_qconfigs: "OrderedDict[tuple, Any]" = OrderedDict()

    def set_global(self, global_qconfig) -> "QConfigMapping":
        self.global_qconfig = global_qconfig
        return self

    def set_object_type(self, object_type, qconfig) -> "QConfigMapping":
        self.object_type_qconfigs[object_type] = qconfig
        return self

    def set_module_name_regex(self, module_name_regex: str, qconfig) -> "QConfigMapping":
        self.module_name_regex_qconfigs[module_name_regex] = qconfig
        return self

    def set_module_name(self, module_name: str, qconfig) -> "QConfigMapping":
        self.module_name_qconfigs[module_name] = qconfig
        return self

    def set_module_name_object_type_order(self, module_name: str, object_type, index: int,
                                          qconfig) -> "QConfigMapping":
        self.module_name_object_type_order_qconfigs[(module_name, object_type, index)] = qconfig
        return self

    def __repr__(self) -> str:
        parts = [f"\n {_GLOBAL or 'global'}: {self.global_qconfig}"]
        for label, table in ((_OBJECT_TYPE, self.object_type_qconfigs),
                             (_REGEX, self.module_name_regex_qconfigs),
                             (_NAME, self.module_name_qconfigs),
                             (_ORDER, self.module_name_object_type_order_qconfigs)):
            parts.append(f"\n {label}: " + "".join(f"\n  {k}: {v}" for k, v in table.items()))
        return f"{type(self).__name__} ({''.join(parts)}\n)"

    def to_dict(self) -> dict:
        return {
            _GLOBAL: self.global_qconfig,
            _OBJECT_TYPE: list(self.object_type_qconfigs.items()),
            _REGEX: list(self.module_name_regex_qconfigs.items()),
            _NAME: list(self.module_name_qconfigs.items()),
            _ORDER: [(*k, v) for k, v in self.module_name_object_type_order_qconfigs.items()],
        }

    @classmethod
    def from_dict(cls, qconfig_dict: dict) -> "QConfigMapping":
        m = cls()
        if _GLOBAL in qconfig_dict:
            m.set_global(qconfig_dict[_GLOBAL])
        for obj, q in qconfig_dict.get(_OBJECT_TYPE, []):
            m.set_object_type(obj, q)
        for regex, q in qconfig_dict.get(_REGEX, []):
            m.set_module_name_regex(regex, q)
        for name, q in qconfig_dict.get(_NAME, []):
            m.set_module_name(name, q)
        for name, obj, index, q in qconfig_dict.get(_ORDER, []):
            m.set_module_name_object_type_order(name, obj, index, q)
        return m

    # -- resolution (what prepare_fx asks) --
    def qconfig_for(self, module_name: str, object_type, index: int | None = None):
        """The QConfig of one model part: a module (its qualified name and type) or a
        function call (the enclosing module's name, the function, its call index)."""
        if index is not None:
            key = (module_name, object_type, index)
            if key in self.module_name_object_type_order_qconfigs:
                return self.module_name_object_type_order_qconfigs[key]
        found, qconfig = self._by_module_name(module_name)
        if found:
            return qconfig
        for regex, q in self.module_name_regex_qconfigs.items():
            if re.match(regex, module_name):
                return q
        if object_type in self.object_type_qconfigs:
            return self.object_type_qconfigs[object_type]
        return self.global_qconfig

    def _by_module_name(self, module_name: str):
        name = module_name
        while True:
            if name in self.module_name_qconfigs:
                return True, self.module_name_qconfigs[name]
            if not name:
                return False, None
            name = name.rpartition(".")[0]


# --- the backends' default mappings ---------------------------------------------------------
def _fixed_qparams_types():
    """Ops with a known output range, in every form a model may call them by."""
    zero_to_one = [nn.Sigmoid, OPS_NS.sigmoid, F.sigmoid, "sigmoid", "sigmoid_", nn.Softmax,
                   "hardsigmoid", "hardsigmoid_"]
    neg_one_to_one = [nn.Tanh, OPS_NS.tanh, F.tanh, "tanh", "tanh_"]
    for name in ("Hardsigmoid",):
        if hasattr(nn, name):
            zero_to_one.append(getattr(nn, name))
    if getattr(F, "hardsigmoid", None) is not None:
        zero_to_one.append(F.hardsigmoid)
    return zero_to_one, neg_one_to_one


def _per_tensor_weight_types():
    """ConvTranspose modules/functions get per-tensor weights (per-channel is not
    supported for them in torch.ao's native backends)."""
    names = ("ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d")
    fns = ("conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
    return [getattr(nn, n) for n in names if hasattr(nn, n)] + \
        [getattr(F, n) for n in fns if getattr(F, n, None) is not None]


def _default_mapping(is_qat: bool, backend: str, version: int) -> QConfigMapping:
    _check_backend(backend)
    qconfig = get_default_qat_qconfig(backend, version) if is_qat else \
        get_default_qconfig(backend, version)
    weight_per_tensor = default_weight_fake_quant if is_qat else default_weight_observer
    m = QConfigMapping().set_global(qconfig)
    m.set_object_type("reshape", default_reuse_input_qconfig)
    for obj in _per_tensor_weight_types():
        m.set_object_type(obj, QConfig(activation=qconfig.activation, weight=weight_per_tensor))
    layer_norm = QConfig(activation=qconfig.activation, weight=PlaceholderObserver)
    for obj in (F.layer_norm, nn.LayerNorm):
        m.set_object_type(obj, layer_norm)
    if hasattr(nn, "PReLU"):
        m.set_object_type(nn.PReLU, QConfig(activation=HistogramObserver,
                                            weight=MinMaxObserver))
    if is_qat:
        act01, act11 = (default_fixed_qparams_range_0to1_fake_quant,
                        default_fixed_qparams_range_neg1to1_fake_quant)
    else:
        act01, act11 = (default_fixed_qparams_range_0to1_observer,
                        default_fixed_qparams_range_neg1to1_observer)
    zero_to_one, neg_one_to_one = _fixed_qparams_types()
    for obj in zero_to_one:
        m.set_object_type(obj, QConfig(activation=act01, weight=weight_per_tensor))
    for obj in neg_one_to_one:
        m.set_object_type(obj, QConfig(activation=act11, weight=weight_per_tensor))
    return m


def get_default_qconfig_mapping(backend: str = "x86", version: int = 0) -> QConfigMapping:
    """Post-training quantization's default mapping for "x86", "fbgemm", "qnnpack" or
    "onednn"."""
    return _default_mapping(False, backend, version)


def get_default_qat_qconfig_mapping(backend: str = "x86", version: int = 1) -> QConfigMapping:
    """Quantization-aware training's default mapping (fake quantize everywhere)."""
    return _default_mapping(True, backend, version)

