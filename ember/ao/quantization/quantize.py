"""Eager-mode quantization (torch.ao.quantization.quantize's names).

Static post-training quantization, as in PyTorch's eager-mode tutorial:

    model.qconfig = get_default_qconfig("x86")     # or per submodule; None = stays float
    model = fuse_modules(model.eval(), [["conv", "bn", "relu"]])
    prepared = prepare(model)      # qconfig propagated to children, an observer
                                   # (`activation_post_process`, run by a forward hook)
                                   # after every quantizable leaf and QuantStub
    for batch in calibration_data: prepared(batch)
    quantized = convert(prepared)  # each module swapped for its ember.ao.nn.quantized
                                   # version (mappings in quantization_mappings.py)

The model itself says where tensors are quantized (QuantStub) and return to float
(DeQuantStub); `QuantWrapper` / `add_quant_dequant` put the stubs around a module.
`prepare_qat` first swaps Linear/Conv2d and fused modules for their QAT versions
(fake-quantized weights) and attaches fake quantizes as output observers; `quantize` /
`quantize_qat` run the whole flow with a calibration or training function.

`quantize_dynamic` swaps each selected submodule (nn.Linear, nn.LSTM, nn.GRU) for its
dynamically quantized version: int8 weights quantized once now (per tensor, symmetric,
as torch.ao's default dynamic qconfig), activations quantized per call from each
batch's range.
"""
from __future__ import annotations

import copy
import warnings

import numpy as np

from ... import nn
from ...ir import dtypes
from ..nn import quantized as nnq
from ..nn.intrinsic import _FusedModule
from .fake_quantize import FakeQuantizeBase
from .observer import ObserverBase
from .quantization_mappings import (_get_special_act_post_process,
                                    _has_special_act_post_process,
                                    get_default_dynamic_quant_module_mappings,
                                    get_default_qat_module_mappings,
                                    get_default_qconfig_propagation_list,
                                    get_default_static_quant_module_mappings,
                                    get_default_static_quant_reference_module_mappings)
from .stubs import DeQuantStub, QuantWrapper
from .qconfig import default_dynamic_qconfig, float16_dynamic_qconfig
from .quantize_fx import QuantizationError


def quantize_dynamic(model, qconfig_spec=None, dtype=dtypes.qint8, mapping=None,
                     inplace=False):
    """Dynamically quantize the submodules `qconfig_spec` selects: a set of module types,
    or a dict of type / qualified name -> QConfig (a name covers its submodules); by
    default every nn.Linear, LSTM, GRU and recurrent cell (embeddings given
    float_qparams_weight_only_qconfig in a dict spec become weight-only quantized). Weights become qint8 now, activations
    are quantized per call."""
    if dtype not in (dtypes.qint8, dtypes.float16):
        raise QuantizationError(f"quantize_dynamic: dtype must be ember.qint8 or "
                                f"ember.float16, got {dtype}")
    mapping = mapping if mapping is not None else get_default_dynamic_quant_module_mappings()
    if qconfig_spec is None:       # torch.ao's default: the layers with matmul weights
        qconfig_spec = {nn.Linear, nn.LSTM, nn.GRU, nn.LSTMCell, nn.RNNCell, nn.GRUCell}
    if not isinstance(qconfig_spec, dict):
        default = default_dynamic_qconfig if dtype is dtypes.qint8 else float16_dynamic_qconfig
        qconfig_spec = {key: default for key in qconfig_spec}
    unsupported = [k for k in qconfig_spec if isinstance(k, type) and k not in mapping]
    if unsupported:
        raise QuantizationError(
            f"quantize_dynamic: no dynamic quantized version of "
            f"{', '.join(k.__name__ for k in unsupported)} (supported: "
            f"{', '.join(sorted(k.__name__ for k in mapping))})")
    if not inplace:
        model = copy.deepcopy(model)
    propagate_qconfig_(model, qconfig_spec)
    return convert(model, mapping, inplace=True)


# --- static and QAT eager mode ---------------------------------------------------------------
def propagate_qconfig_(module, qconfig_dict=None, prepare_custom_config_dict=None) -> None:
    """Give every submodule a `qconfig` attribute: its own if set, else the entry for its
    qualified name, else for its type, else its parent's (None: stays float)."""
    _propagate(module, qconfig_dict or {}, None, "")


def _propagate(module, qconfig_dict: dict, parent_qconfig, prefix: str) -> None:
    qconfig = qconfig_dict.get(type(module), parent_qconfig)
    qconfig = qconfig_dict.get(prefix, qconfig)
    module.qconfig = getattr(module, "qconfig", qconfig)
    for name, child in module.named_children():
        _propagate(child, qconfig_dict, module.qconfig, f"{prefix}.{name}" if prefix else name)


def _needs_observation(module) -> bool:
    return getattr(module, "qconfig", None) is not None


def _observer_forward_hook(module, args, output):
    """Runs the module's output through its observer (a fake quantize returns the
    fake-quantized value, so QAT trains against it)."""
    return module.activation_post_process(output)


def _insert_activation_post_process(module, special_act_post_process=None) -> None:
    if not _needs_observation(module) or isinstance(module, DeQuantStub):
        return
    make = special_act_post_process or module.qconfig.activation
    module.activation_post_process = make()
    module.register_forward_hook(_observer_forward_hook, prepend=True)


def _is_leaf(module) -> bool:
    return next(module.children(), None) is None


def _add_observer_(module, propagation_list, non_leaf_module_list, custom=None) -> None:
    custom = custom or {}
    for name, child in list(module.named_children()):
        if type(child) is nn.Dropout:
            continue        # torch.ao observes no Dropout (its output is its input's)
        if type(child) in custom and _needs_observation(child):
            # a user's custom module: swapped for its observed class, output observed
            # (from_float is expected to carry the qconfig over, as torch.ao's quantizable
            # modules do: an observed module without one is neither observed nor swapped)
            observed_cls = custom[type(child)]
            observed = observed_cls.from_float(child)
            setattr(module, name, observed)
            if not issubclass(observed_cls, tuple(no_observer_set())):
                _insert_activation_post_process(observed)
        elif type(child) in (nnq.FloatFunctional, nnq.QFunctional):
            if _needs_observation(child):     # observed by its methods, not a hook
                child.activation_post_process = child.qconfig.activation()
        elif isinstance(child, _FusedModule) or type(child) in non_leaf_module_list or \
                hasattr(child, "weight_fake_quant"):
            if type(child) in propagation_list or type(child) in non_leaf_module_list:
                _insert_activation_post_process(child)
        elif _has_special_act_post_process(child):     # training Sigmoid / Tanh & co.
            _insert_activation_post_process(child, _get_special_act_post_process(child))
        else:
            _add_observer_(child, propagation_list, non_leaf_module_list, custom)
    if _is_leaf(module) and not isinstance(module, nn.Sequential) and \
            type(module) in propagation_list:
        _insert_activation_post_process(module)


def prepare(model, inplace=False, allow_list=None, observer_non_leaf_module_list=None,
            prepare_custom_config_dict=None):
    """Propagate qconfigs and attach output observers for calibration (eager mode)."""
    if not inplace:
        model = copy.deepcopy(model)
    propagation_list = allow_list if allow_list is not None else \
        get_default_qconfig_propagation_list()
    propagate_qconfig_(model)
    if not any(_needs_observation(m) for m in model.modules()):
        warnings.warn("None of the submodule got qconfig applied. Make sure you passed "
                      "correct configuration through `qconfig_dict` or by assigning the "
                      "`.qconfig` attribute directly on submodules")
    if prepare_custom_config_dict is None:      # torch.ao's default: LSTM / MHA swapped
        prepare_custom_config_dict = get_default_custom_config_dict()
    custom = prepare_custom_config_dict.get("float_to_observed_custom_module_class", {})
    _add_observer_(model, set(propagation_list), set(observer_non_leaf_module_list or ()),
                   custom)
    return model


def no_observer_set() -> set:
    """Observed custom modules that get no output observer (torch.ao's: the quantizable
    LSTM and MultiheadAttention return tuples and observe their own pieces)."""
    from ..nn import quantizable as nnqa
    return {nnqa.LSTM, nnqa.MultiheadAttention}


def get_default_custom_config_dict() -> dict:
    """torch.ao's default custom module config of eager prepare / convert: nn.LSTM and
    nn.MultiheadAttention become their quantizable versions at prepare and quantized
    ones at convert."""
    from ..nn import quantizable as nnqa
    return {"float_to_observed_custom_module_class": {
                nn.LSTM: nnqa.LSTM, nn.MultiheadAttention: nnqa.MultiheadAttention},
            "observed_to_quantized_custom_module_class": {
                nnqa.LSTM: nnq.LSTM, nnqa.MultiheadAttention: nnq.MultiheadAttention}}


def default_eval_fn(model, calib_data):
    """Calibration: run the model over (data, target) pairs, as torch.ao's helper."""
    for data, _target in calib_data:
        model(data)


def prepare_qat(model, mapping=None, inplace=False):
    """Swap modules for their QAT versions (fake-quantized weights) and attach fake
    quantizes after them; the model must be in training mode."""
    if not model.training:
        raise AssertionError("prepare_qat only works on models in training mode (call "
                             "model.train() first)")
    mapping = mapping if mapping is not None else get_default_qat_module_mappings()
    if not inplace:
        model = copy.deepcopy(model)
    propagate_qconfig_(model)
    convert(model, mapping=mapping, inplace=True, remove_qconfig=False)
    return prepare(model, observer_non_leaf_module_list=set(mapping.values()), inplace=True)


def swap_module(mod, mapping, custom_module_class_mapping=None):
    """The quantized (or QAT) module for `mod` if it has a qconfig and a mapping entry
    (a custom observed module: `from_observed`), else `mod`; user forward hooks carry
    over, the observer hook does not."""
    custom = custom_module_class_mapping or {}
    if not _needs_observation(mod) or (type(mod) not in mapping and type(mod) not in custom):
        return mod
    if type(mod) in custom:
        new = custom[type(mod)].from_observed(mod)
    elif getattr(mapping[type(mod)], "_IS_REFERENCE", False):
        new = mapping[type(mod)].from_float(mod, _weight_qparams(mod))
    else:
        new = mapping[type(mod)].from_float(mod)
    for hook in mod._forward_pre_hooks.values():
        new.register_forward_pre_hook(hook)
    for hook in mod._forward_hooks.values():
        if hook is not _observer_forward_hook:
            new.register_forward_hook(hook)
    return new


def _weight_qparams(mod) -> dict:
    """A reference module's weight qparams: the qconfig's weight observer run on the
    float weight (torch.ao's dict: qscheme, dtype, scale, zero_point, axis...)."""
    from .utils import get_qparam_dict
    if getattr(mod, "qconfig", None) is None:
        raise QuantizationError(f"convert(is_reference=True): {type(mod).__name__} has no "
                                f"qconfig to quantize its weight with")
    observer = mod.qconfig.weight()
    observer(mod.weight)
    return get_qparam_dict(observer)


def _convert(module, mapping, prefix: str = "", custom=None) -> None:
    custom = custom or {}
    swapped = {}
    for name, child in module.named_children():
        qualified = f"{prefix}.{name}" if prefix else name
        if not (isinstance(child, _FusedModule) or hasattr(child, "weight_fake_quant") or
                type(child) in custom):
            _convert(child, mapping, qualified, custom)   # fused/QAT/custom: swapped whole
        if _needs_observation(child) and type(child) in mapping:
            _warn_if_uncalibrated(child, qualified)
        swapped[name] = swap_module(child, mapping, custom)
    for name, new in swapped.items():
        if new is not module._modules[name]:
            setattr(module, name, new)


def _warn_if_uncalibrated(module, name: str) -> None:
    """torch.ao converts an observer that saw no data with scale 1.0 and zero point 0;
    so does ember, but it says which module that is."""
    post = module._modules.get("activation_post_process")
    low = getattr(post, "min_val", None)
    if isinstance(post, ObserverBase) and low is not None and low.numel() and \
            float(np.min(low.numpy())) == np.inf:
        warnings.warn(f"convert: {name} ({type(module).__name__}): its observer saw no data, "
                      f"so its output gets scale 1.0 and zero point 0; run calibration data "
                      f"through the prepared model before convert")


def _remove_qconfig(module) -> None:
    for child in module.children():
        _remove_qconfig(child)
    module.__dict__.pop("qconfig", None)
    post = module._modules.get("activation_post_process")
    if isinstance(post, (ObserverBase, FakeQuantizeBase)) and \
            not isinstance(module, FakeQuantizeBase):      # a fake quantize's own observer
        del module._modules["activation_post_process"]
        for key, hook in list(module._forward_hooks.items()):
            if hook is _observer_forward_hook:
                del module._forward_hooks[key]


def convert(module, mapping=None, inplace=False, remove_qconfig=True, is_reference=False,
            convert_custom_config_dict=None, use_precomputed_fake_quant=False):
    """Swap every observed module for its quantized version (the static mappings by
    default), with the qparams its observers recorded. `is_reference=True` swaps
    Linear/Conv for reference modules instead: float modules that quantize and
    dequantize their weight with the qconfig's weight observer's qparams."""
    if not inplace:
        module = copy.deepcopy(module)
    if mapping is None:
        mapping = get_default_static_quant_reference_module_mappings() if is_reference \
            else get_default_static_quant_module_mappings()
    if convert_custom_config_dict is None:      # torch.ao's default: LSTM / MHA
        convert_custom_config_dict = get_default_custom_config_dict()
    _convert(module, mapping, "",
             convert_custom_config_dict.get("observed_to_quantized_custom_module_class", {}))
    if remove_qconfig:
        _remove_qconfig(module)
    return module


def quantize(model, run_fn, run_args, mapping=None, inplace=False):
    """prepare -> run_fn(model, *run_args) (calibration) -> convert, in eval mode."""
    if not inplace:
        model = copy.deepcopy(model)
    model.eval()
    prepare(model, inplace=True)
    run_fn(model, *run_args)
    return convert(model, mapping, inplace=True)


def quantize_qat(model, run_fn, run_args, inplace=False):
    """prepare_qat -> run_fn(model, *run_args) (training) -> convert."""
    if not inplace:
        model = copy.deepcopy(model)
    model.train()
    prepare_qat(model, inplace=True)
    run_fn(model, *run_args)
    return convert(model, inplace=True)


def add_quant_dequant(module):
    """Wrap every leaf submodule that has a qconfig in a QuantWrapper."""
    if _is_leaf(module) and _needs_observation(module):
        return QuantWrapper(module)
    for name, child in list(module.named_children()):
        setattr(module, name, add_quant_dequant(child))
    return module
