"""fuse_modules / fuse_modules_qat (torch.ao.quantization.fuse_modules): eager-mode
fusion of named submodules, before prepare.

Each group of names (conv, bn[, relu] / conv, relu / linear[, bn][, relu] / bn, relu) is
replaced by one module in the first name's place and nn.Identity in the others.
`fuse_modules` needs an eval-mode model: BatchNorm is folded into the conv or linear with
its running statistics. `fuse_modules_qat` needs a training model: conv + bn (+ relu)
stay apart as `ConvBn2d` / `ConvBnReLU2d` for QAT's simulated folding.
"""
from __future__ import annotations

import copy

from ...frontend import nn
from ..nn import intrinsic as nni
from .quantize_fx import _fold_bn


def _same_mode(a, b) -> None:
    if a.training != b.training:
        raise AssertionError(f"{type(a).__name__} and {type(b).__name__} both must be in the "
                             f"same mode (train or eval) to be fused.")


def _folded(is_qat: bool, weighted, bn):
    _same_mode(weighted, bn)
    if weighted.training or bn.training:
        raise AssertionError(f"Fusion of {type(weighted).__name__} and BatchNorm folds the "
                             f"running statistics: call model.eval() first (or use "
                             f"fuse_modules_qat for quantization-aware training)")
    return _fold_bn(weighted, bn)


def fuse_conv_bn(is_qat, conv, bn):
    if is_qat:
        _same_mode(conv, bn)
        fused = {nn.Conv1d: nni.ConvBn1d, nn.Conv2d: nni.ConvBn2d}.get(type(conv))
        if fused is None:
            raise NotImplementedError(f"fuse_modules_qat: only Conv1d / Conv2d + BatchNorm "
                                      f"can be fused for QAT, got {type(conv).__name__}")
        return fused(conv, bn)
    return _folded(is_qat, conv, bn)


def fuse_conv_bn_relu(is_qat, conv, bn, relu):
    if is_qat:
        _same_mode(conv, bn)
        fused = {nn.Conv1d: nni.ConvBnReLU1d, nn.Conv2d: nni.ConvBnReLU2d}.get(type(conv))
        if fused is None:
            raise NotImplementedError(f"fuse_modules_qat: only Conv1d / Conv2d + BatchNorm + "
                                      f"ReLU can be fused for QAT, got {type(conv).__name__}")
        return fused(conv, bn, relu)
    fused = _folded(is_qat, conv, bn)
    relu_kind = {nn.Conv1d: nni.ConvReLU1d, nn.Conv2d: nni.ConvReLU2d, nn.Conv3d: nni.ConvReLU3d}
    return relu_kind[type(conv)](fused, relu)


def fuse_convtranspose_bn(is_qat, convt, bn):
    if is_qat:
        raise NotImplementedError(f"fuse_modules_qat: {type(convt).__name__} + "
                                  f"{type(bn).__name__} is not supported for QAT")
    return _folded(is_qat, convt, bn)


def fuse_linear_bn(is_qat, linear, bn):
    if is_qat:       # kept apart for QAT's simulated folding (ember.ao.nn.intrinsic.qat)
        _same_mode(linear, bn)
        if linear.out_features != bn.num_features:
            raise AssertionError("Output features of Linear must match num_features of "
                                 "BatchNorm1d")
        if not (bn.affine and bn.track_running_stats):
            raise AssertionError("Only support fusing BatchNorm1d with affine set to True, "
                                 "and track_running_stats set to True")
        return nni.LinearBn1d(linear, bn)
    return _folded(is_qat, linear, bn)


DEFAULT_OP_LIST_TO_FUSER_METHOD = {
    (nn.Conv1d, nn.BatchNorm1d): fuse_conv_bn,
    (nn.Conv1d, nn.BatchNorm1d, nn.ReLU): fuse_conv_bn_relu,
    (nn.Conv2d, nn.BatchNorm2d): fuse_conv_bn,
    (nn.Conv2d, nn.BatchNorm2d, nn.ReLU): fuse_conv_bn_relu,
    (nn.Conv3d, nn.BatchNorm3d): fuse_conv_bn,
    (nn.Conv3d, nn.BatchNorm3d, nn.ReLU): fuse_conv_bn_relu,
    (nn.ConvTranspose1d, nn.BatchNorm1d): fuse_convtranspose_bn,
    (nn.ConvTranspose2d, nn.BatchNorm2d): fuse_convtranspose_bn,
    (nn.ConvTranspose3d, nn.BatchNorm3d): fuse_convtranspose_bn,
    (nn.Conv1d, nn.ReLU): lambda is_qat, conv, relu: nni.ConvReLU1d(conv, relu),
    (nn.Conv2d, nn.ReLU): lambda is_qat, conv, relu: nni.ConvReLU2d(conv, relu),
    (nn.Conv3d, nn.ReLU): lambda is_qat, conv, relu: nni.ConvReLU3d(conv, relu),
    (nn.Linear, nn.BatchNorm1d): fuse_linear_bn,
    (nn.Linear, nn.ReLU): lambda is_qat, linear, relu: nni.LinearReLU(linear, relu),
    (nn.BatchNorm2d, nn.ReLU): lambda is_qat, bn, relu: nni.BNReLU2d(bn, relu),
    (nn.BatchNorm3d, nn.ReLU): lambda is_qat, bn, relu: nni.BNReLU3d(bn, relu),
}


def get_fuser_method(op_list, additional_fuser_method_mapping=None):
    mapping = {**DEFAULT_OP_LIST_TO_FUSER_METHOD, **(additional_fuser_method_mapping or {})}
    method = mapping.get(tuple(op_list))
    if method is None:
        names = ", ".join(t.__name__ for t in op_list)
        raise NotImplementedError(f"Cannot fuse modules: ({names}); fusable sequences are "
                                  f"conv-bn(-relu), conv-relu, convtranspose-bn, linear-bn, linear-relu, "
                                  f"bn-relu")
    return method


def fuse_known_modules(mod_list, is_qat, additional_fuser_method_mapping=None):
    """The fused module in the first position, nn.Identity in the others; the first
    module's forward pre-hooks and the last one's forward hooks move to the fused one."""
    fuser = get_fuser_method([type(m) for m in mod_list], additional_fuser_method_mapping)
    fused = fuser(is_qat, *mod_list)
    for hook in mod_list[0]._forward_pre_hooks.values():
        fused.register_forward_pre_hook(hook)
    for hook in mod_list[-1]._forward_hooks.values():
        fused.register_forward_hook(hook)
    identities = []
    for m in mod_list[1:]:
        identity = nn.Identity()
        identity.training = mod_list[0].training
        identities.append(identity)
    return [fused] + identities


def _set_by_name(model, name: str, module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, module)


def _fuse_modules(model, modules_to_fuse, is_qat, inplace, fuser_func,
                  fuse_custom_config_dict):
    if not inplace:
        model = copy.deepcopy(model)
    groups = [modules_to_fuse] if all(isinstance(n, str) for n in modules_to_fuse) \
        else modules_to_fuse
    extra = (fuse_custom_config_dict or {}).get("additional_fuser_method_mapping", {})
    for group in groups:
        try:
            mods = [model.get_submodule(name) for name in group]
        except AttributeError as err:
            raise AttributeError(f"fuse_modules: {err} (in group {list(group)})") from None
        for name, new in zip(group, fuser_func(mods, is_qat, extra)):
            _set_by_name(model, name, new)
    return model


def fuse_modules(model, modules_to_fuse, inplace=False, fuser_func=fuse_known_modules,
                 fuse_custom_config_dict=None):
    """Fuse each list of module names in `modules_to_fuse` (or the one list) in an
    eval-mode model."""
    return _fuse_modules(model, modules_to_fuse, False, inplace, fuser_func,
                         fuse_custom_config_dict)


def fuse_modules_qat(model, modules_to_fuse, inplace=False, fuser_func=fuse_known_modules,
                     fuse_custom_config_dict=None):
    """fuse_modules for quantization-aware training: conv + bn stay apart (ConvBn2d)."""
    return _fuse_modules(model, modules_to_fuse, True, inplace, fuser_func,
                         fuse_custom_config_dict)


__all__ = ["fuse_modules", "fuse_modules_qat", "fuse_known_modules", "get_fuser_method"]
