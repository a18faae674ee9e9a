"""QConfig: which observer (or fake quantize) a value and a weight get.

torch.ao.quantization.qconfig's names: a QConfig holds two constructors (with_args
partials or classes), never instances, so each use gets fresh observers.
"""
from __future__ import annotations

from collections import namedtuple

from ...frontend import nn as _nn
from ...ir import dtypes
from .fake_quantize import (FakeQuantize, FusedMovingAvgObsFakeQuantize,
                            default_fused_per_channel_wt_fake_quant, default_fused_wt_fake_quant,
                            default_per_channel_weight_fake_quant, default_weight_fake_quant,
                            default_fake_quant, default_embedding_fake_quant,
                            default_dynamic_fake_quant)
from .observer import (HistogramObserver, MovingAverageMinMaxObserver, NoopObserver,
                       PlaceholderObserver, ReuseInputObserver, default_dynamic_quant_observer, default_observer,
                       default_per_channel_weight_observer, default_placeholder_observer,
                       default_float_qparams_observer, default_weight_observer,
                       per_channel_weight_observer_range_neg_127_to_127,
                       weight_observer_range_neg_127_to_127)

BACKENDS = ("fbgemm", "x86", "qnnpack", "onednn")


class QConfig(namedtuple("QConfig", ["activation", "weight"])):
    """`QConfig(activation=..., weight=...)`: observer constructors for a node's output
    (activation) and for its weight."""

    __slots__ = ()

    def __new__(cls, activation, weight):
        if isinstance(activation, _nn.Module) or isinstance(weight, _nn.Module):
            raise ValueError("QConfig received observer instance, please pass observer class "
                             "instead. Use MyObserver.with_args(x=1) to override arguments to "
                             "constructor if needed")
        return super().__new__(cls, activation, weight)


class QConfigDynamic(namedtuple("QConfigDynamic", ["activation", "weight"])):
    """torch.ao's older dynamic-quantization qconfig: weight observer constructor (the
    activation defaults to Identity); QConfig with a dynamic activation replaces it."""

    __slots__ = ()

    def __new__(cls, activation=_nn.Identity, weight=_nn.Identity):
        if isinstance(weight, _nn.Module):
            raise ValueError("QConfigDynamic received observer instance, please pass observer "
                             "class instead. Use MyObserver.with_args(x=1) to override "
                             "arguments to constructor if needed")
        return super().__new__(cls, activation, weight)


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend: {backend} not supported. backend must be one of "
                         f"{list(BACKENDS)}")


default_qconfig = QConfig(activation=default_observer, weight=default_weight_observer)
default_debug_qconfig = QConfig(weight=default_weight_observer,
                                activation=HistogramObserver.with_args(reduce_range=True))
default_per_channel_qconfig = QConfig(activation=default_observer,
                                      weight=default_per_channel_weight_observer)
default_dynamic_qconfig = QConfig(activation=default_dynamic_quant_observer,
                                  weight=default_weight_observer)
per_channel_dynamic_qconfig = QConfig(activation=default_dynamic_quant_observer,
                                      weight=default_per_channel_weight_observer)
float16_dynamic_qconfig = QConfig(
    activation=PlaceholderObserver.with_args(dtype=dtypes.float16, is_dynamic=True),
    weight=PlaceholderObserver.with_args(dtype=dtypes.float16))
float16_static_qconfig = QConfig(
    activation=PlaceholderObserver.with_args(dtype=dtypes.float16),
    weight=PlaceholderObserver.with_args(dtype=dtypes.float16))
default_qat_qconfig = QConfig(activation=default_fake_quant, weight=default_weight_fake_quant)
default_dynamic_qat_qconfig = QConfig(activation=default_dynamic_fake_quant,
                                      weight=default_weight_fake_quant)
default_weight_only_qconfig = QConfig(activation=default_placeholder_observer,
                                      weight=default_weight_fake_quant)
default_reuse_input_qconfig = QConfig(activation=ReuseInputObserver, weight=NoopObserver)
# embeddings: weights only, per row with float zero points; the output stays float
float_qparams_weight_only_qconfig = QConfig(activation=default_placeholder_observer,
                                            weight=default_float_qparams_observer)
# QAT embeddings: the weight fake-quantized per row with float zero points
default_embedding_qat_qconfig = QConfig(activation=NoopObserver.with_args(dtype=dtypes.float32),
                                        weight=default_embedding_fake_quant)
# qnnpack's signed activations (use with get_qnnpack_backend_config())
default_symmetric_qnnpack_qconfig = QConfig(
    activation=HistogramObserver.with_args(dtype=dtypes.qint8, reduce_range=False,
                                           eps=2 ** -12),
    weight=weight_observer_range_neg_127_to_127)
default_per_channel_symmetric_qnnpack_qconfig = QConfig(
    activation=HistogramObserver.with_args(dtype=dtypes.qint8, reduce_range=False,
                                           eps=2 ** -12),
    weight=per_channel_weight_observer_range_neg_127_to_127)


def get_default_qconfig(backend: str = "x86", version: int = 0) -> QConfig:
    """Post-training static quantization's QConfig for a backend: histogram activations
    (halved range on x86/fbgemm), symmetric int8 weights per channel (per tensor on
    qnnpack)."""
    _check_backend(backend)
    if backend in ("fbgemm", "x86"):
        return QConfig(activation=HistogramObserver.with_args(reduce_range=True),
                       weight=default_per_channel_weight_observer)
    if backend == "qnnpack":
        return QConfig(activation=HistogramObserver.with_args(reduce_range=False),
                       weight=default_weight_observer)
    return QConfig(activation=HistogramObserver.with_args(reduce_range=False),
                   weight=default_per_channel_weight_observer)


def get_default_qat_qconfig(backend: str = "x86", version: int = 1) -> QConfig:
    """Quantization-aware training's QConfig for a backend (moving-average fake quant)."""
    _check_backend(backend)
    if version == 0:
        act = FakeQuantize.with_args(observer=MovingAverageMinMaxObserver, quant_min=0,
                                     quant_max=255, reduce_range=backend in ("fbgemm", "x86"))
        weight = default_per_channel_weight_fake_quant if backend != "qnnpack" \
            else default_weight_fake_quant
        return QConfig(activation=act, weight=weight)
    act = FusedMovingAvgObsFakeQuantize.with_args(
        observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255,
        reduce_range=backend in ("fbgemm", "x86"))
    weight = default_fused_per_channel_wt_fake_quant if backend != "qnnpack" \
        else default_fused_wt_fake_quant
    return QConfig(activation=act, weight=weight)


def get_default_qconfig_dict(backend="x86", version=0):
    raise NotImplementedError("get_default_qconfig_dict was removed in PyTorch; use "
                              "get_default_qconfig_mapping")


def get_default_qat_qconfig_dict(backend="x86", version=1):
    raise NotImplementedError("get_default_qat_qconfig_dict was removed in PyTorch; use "
                              "get_default_qat_qconfig_mapping")


def qconfig_equals(a, b) -> bool:
    """Same observer constructors (with_args partials compare by class and arguments)."""
    if a is None or b is None:
        return a is b

    def same(x, y):
        px, py = getattr(x, "p", x), getattr(y, "p", y)
        if hasattr(px, "func") and hasattr(py, "func"):
            return px.func == py.func and px.keywords == py.keywords
        return px == py
    return same(a.activation, b.activation) and same(a.weight, b.weight)


QConfigAny = QConfig | None      # torch.ao's type alias (a qconfig, or None: stay float)


__all__ = [
    'QConfig', 'default_qconfig', 'default_debug_qconfig', 'default_per_channel_qconfig',
    'default_dynamic_qconfig', 'per_channel_dynamic_qconfig', 'float16_dynamic_qconfig', 'float16_static_qconfig',
    'default_qat_qconfig', 'default_dynamic_qat_qconfig', 'default_weight_only_qconfig', 'default_reuse_input_qconfig',
    'get_default_qconfig', 'get_default_qat_qconfig', 'get_default_qconfig_dict',
    'get_default_qat_qconfig_dict', 'QConfigAny', 'QConfigDynamic',
    'qconfig_equals', 'default_symmetric_qnnpack_qconfig', 'float_qparams_weight_only_qconfig',
    'default_per_channel_symmetric_qnnpack_qconfig', 'default_embedding_qat_qconfig']
