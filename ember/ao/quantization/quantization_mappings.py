"""Which quantized module eager-mode quantization swaps each float module for
(torch.ao.quantization.quantization_mappings' names)."""
from __future__ import annotations

from ...frontend import nn
from ..nn import intrinsic as nni
from ..nn import qat as nnqat
from ..nn import quantized as nnq
from ..nn.intrinsic import qat as nniqat
from ..nn.intrinsic import quantized as nniq
from ..nn.quantized import dynamic as nnqd
from ..nn.quantized import reference as nnqr
from . import fake_quantize as _fq
from .stubs import DeQuantStub, QuantStub

DEFAULT_STATIC_QUANT_MODULE_MAPPINGS = {
    QuantStub: nnq.Quantize,
    DeQuantStub: nnq.DeQuantize,
    nn.Linear: nnq.Linear,
    nn.Conv1d: nnq.Conv1d,
    nn.Conv2d: nnq.Conv2d,
    nn.Conv3d: nnq.Conv3d,
    nn.ReLU6: nnq.ReLU6,
    nn.Hardswish: nnq.Hardswish,
    nn.ELU: nnq.ELU,
    nn.LayerNorm: nnq.LayerNorm,
    nn.BatchNorm2d: nnq.BatchNorm2d,
    nn.BatchNorm3d: nnq.BatchNorm3d,
    nn.ConvTranspose1d: nnq.ConvTranspose1d,
    nn.ConvTranspose2d: nnq.ConvTranspose2d,
    nn.ConvTranspose3d: nnq.ConvTranspose3d,
    nn.GroupNorm: nnq.GroupNorm,
    nn.InstanceNorm1d: nnq.InstanceNorm1d,
    nn.InstanceNorm2d: nnq.InstanceNorm2d,
    nn.InstanceNorm3d: nnq.InstanceNorm3d,
    nn.LeakyReLU: nnq.LeakyReLU,
    nn.PReLU: nnq.PReLU,
    nn.Dropout: nnq.Dropout,
    nn.Embedding: nnq.Embedding,
    nn.EmbeddingBag: nnq.EmbeddingBag,
    nnq.FloatFunctional: nnq.QFunctional,
    nni.LinearReLU: nniq.LinearReLU,
    nni.ConvReLU1d: nniq.ConvReLU1d,
    nni.ConvReLU2d: nniq.ConvReLU2d,
    nni.ConvReLU3d: nniq.ConvReLU3d,
    nni.BNReLU2d: nniq.BNReLU2d,
    nni.BNReLU3d: nniq.BNReLU3d,
    nnqat.Linear: nnq.Linear,
    nnqat.Conv2d: nnq.Conv2d,
    nnqat.Conv3d: nnq.Conv3d,
    nniqat.LinearReLU: nniq.LinearReLU,
    nniqat.ConvReLU2d: nniq.ConvReLU2d,
    nniqat.ConvBn2d: nnq.Conv2d,
    nniqat.ConvBnReLU2d: nniq.ConvReLU2d,
    nniqat.ConvBn1d: nnq.Conv1d,
    nniqat.ConvBnReLU1d: nniq.ConvReLU1d,
    nniqat.LinearBn1d: nnq.Linear,
}

# convert(is_reference=True): float modules that quantize -> dequantize their weight
DEFAULT_REFERENCE_STATIC_QUANT_MODULE_MAPPINGS = {
    QuantStub: nnq.Quantize,
    DeQuantStub: nnq.DeQuantize,
    nn.Linear: nnqr.Linear,
    nn.Conv1d: nnqr.Conv1d,
    nn.Conv2d: nnqr.Conv2d,
    nn.Conv3d: nnqr.Conv3d,
    nn.ConvTranspose1d: nnqr.ConvTranspose1d,
    nn.ConvTranspose2d: nnqr.ConvTranspose2d,
    nn.ConvTranspose3d: nnqr.ConvTranspose3d,
}

DEFAULT_QAT_MODULE_MAPPINGS = {
    nn.Linear: nnqat.Linear,
    nn.Conv2d: nnqat.Conv2d,
    nn.Conv3d: nnqat.Conv3d,
    nni.LinearReLU: nniqat.LinearReLU,
    nni.ConvReLU2d: nniqat.ConvReLU2d,
    nni.ConvBn2d: nniqat.ConvBn2d,
    nni.ConvBnReLU2d: nniqat.ConvBnReLU2d,
    nni.ConvBn1d: nniqat.ConvBn1d,
    nni.ConvBnReLU1d: nniqat.ConvBnReLU1d,
    nni.LinearBn1d: nniqat.LinearBn1d,
}

DEFAULT_DYNAMIC_QUANT_MODULE_MAPPINGS = {nn.Linear: nnqd.Linear, nn.LSTM: nnqd.LSTM,
                                         nn.GRU: nnqd.GRU, nn.RNNCell: nnqd.RNNCell,
                                         nn.LSTMCell: nnqd.LSTMCell, nn.GRUCell: nnqd.GRUCell,
                                         # weight-only (float_qparams_weight_only_qconfig)
                                         nn.Embedding: nnq.Embedding,
                                         nn.EmbeddingBag: nnq.EmbeddingBag}

# training-mode modules whose output range is known: eager prepare / prepare_qat observe them
# with a fixed-qparams fake quantize (sigmoid-like [0, 1]: 1/256, zp 0; tanh [-1, 1]: 2/256,
# zp 128), whatever the qconfig's activation, as torch.ao does
DEFAULT_MODULE_TO_ACT_POST_PROCESS = {
    nn.Hardsigmoid: _fq.default_fixed_qparams_range_0to1_fake_quant,
    nn.Sigmoid: _fq.default_fixed_qparams_range_0to1_fake_quant,
    nn.Softmax: _fq.default_fixed_qparams_range_0to1_fake_quant,
    nn.Tanh: _fq.default_fixed_qparams_range_neg1to1_fake_quant,
}


def _has_special_act_post_process(module) -> bool:
    return module.training and type(module) in DEFAULT_MODULE_TO_ACT_POST_PROCESS


def _get_special_act_post_process(module):
    """The fixed-qparams fake quantize constructor for a training-mode Sigmoid / Tanh /
    Hardsigmoid / Softmax, else None."""
    if not module.training:
        return None
    return DEFAULT_MODULE_TO_ACT_POST_PROCESS.get(type(module))


# modules a qconfig is propagated to and observed at (besides the mappings' keys)
_INCLUDE_QCONFIG_PROPAGATE_LIST = {nn.Sequential}


def get_default_static_quant_module_mappings() -> dict:
    return dict(DEFAULT_STATIC_QUANT_MODULE_MAPPINGS)


def get_default_static_quant_reference_module_mappings() -> dict:
    return dict(DEFAULT_REFERENCE_STATIC_QUANT_MODULE_MAPPINGS)


def get_default_qat_module_mappings() -> dict:
    return dict(DEFAULT_QAT_MODULE_MAPPINGS)


def get_default_dynamic_quant_module_mappings() -> dict:
    return dict(DEFAULT_DYNAMIC_QUANT_MODULE_MAPPINGS)


def get_embedding_static_quant_module_mappings() -> dict:
    return {nn.Embedding: nnq.Embedding, nn.EmbeddingBag: nnq.EmbeddingBag,
            nnqat.Embedding: nnq.Embedding, nnqat.EmbeddingBag: nnq.EmbeddingBag}


def get_embedding_qat_module_mappings() -> dict:
    from ..nn import qat as nnqat
    mapping = dict(get_default_qat_module_mappings())
    mapping.update({nn.Embedding: nnqat.Embedding, nn.EmbeddingBag: nnqat.EmbeddingBag})
    return mapping


def get_static_quant_module_class(float_module_class, additional_static_quant_mapping=None,
                                  is_reference=False):
    """The quantized (or reference) class eager convert swaps `float_module_class` for."""
    mapping = get_default_static_quant_reference_module_mappings() if is_reference else \
        get_default_static_quant_module_mappings()
    mapping.update(additional_static_quant_mapping or {})
    if float_module_class not in mapping:
        raise AssertionError(f"Float module class {float_module_class} does not have a "
                             f"corresponding quantized module class")
    return mapping[float_module_class]


def get_dynamic_quant_module_class(float_module_class, additional_dynamic_quant_mapping=None):
    mapping = get_default_dynamic_quant_module_mappings()
    mapping.update(additional_dynamic_quant_mapping or {})
    if float_module_class not in mapping:
        raise AssertionError(f"Float module class {float_module_class} does not have a "
                             f"corresponding dynamically quantized module class")
    return mapping[float_module_class]


def get_default_qconfig_propagation_list() -> set:
    return (set(DEFAULT_STATIC_QUANT_MODULE_MAPPINGS) | set(DEFAULT_QAT_MODULE_MAPPINGS) |
            set(DEFAULT_DYNAMIC_QUANT_MODULE_MAPPINGS) | _INCLUDE_QCONFIG_PROPAGATE_LIST)


__all__ = ["DEFAULT_STATIC_QUANT_MODULE_MAPPINGS", "DEFAULT_REFERENCE_STATIC_QUANT_MODULE_MAPPINGS",
           "get_default_static_quant_reference_module_mappings", "DEFAULT_QAT_MODULE_MAPPINGS",
           "DEFAULT_DYNAMIC_QUANT_MODULE_MAPPINGS", "get_default_static_quant_module_mappings",
           "get_default_qat_module_mappings", "get_default_dynamic_quant_module_mappings",
           "get_default_qconfig_propagation_list", "get_embedding_static_quant_module_mappings",
           "get_embedding_qat_module_mappings", "get_static_quant_module_class",
           "get_dynamic_quant_module_class", "DEFAULT_MODULE_TO_ACT_POST_PROCESS"]
