"""FX graph-mode quantization: fuse_fx, prepare_fx, convert_fx, convert_to_reference_fx,
prepare_qat_fx (torch.ao.quantization.quantize_fx's names and arguments).

The flow: `prepared = prepare_fx(model, qconfig_mapping, example_inputs)` traces the
model (after fusing conv+bn(+relu) and linear+relu), and inserts observer modules
where values will be quantized; running calibration data through `prepared` records
ranges; `convert_fx(prepared)` replaces observers with quantize nodes and lowers
quantized patterns to int8 ops (quantized_linear / quantized_conv2d / quantized_add
...), dequantizing wherever a float op reads a quantized value. The graph rewrites
are ember/passes/quantize.py; this module decides qconfigs and owns observers and
quantized weights.
"""
from __future__ import annotations

import copy
import operator
import re
import warnings
import numpy as np

from ... import nn
from ...frontend.fx.graph_module import GraphModule
from ...frontend.fx.interpreter import fetch_attr
from ...frontend.fx.tracer import Tracer
from ...frontend.nn import functional as F
from ...frontend.tensor import Tensor
from ...ir import dtypes
from ...ir.errors import EmberError, TraceError
from ...ir.graph import Node, OpKind
from ...ir.ops import OPS_NS
from ...ir.quantized import (per_channel_affine, per_channel_affine_float_qparams,
                             per_channel_symmetric)
from ...ir.registry import is_op
from ...passes import quantize as qpass
from ..nn import qat as nnqat
from ..nn.quantized.modules import call_with_graph_clamps
from ..nn.intrinsic import (BNReLU2d, BNReLU3d, ConvBn2d, ConvBn3d, ConvBnReLU2d, ConvBnReLU3d, ConvReLU1d, ConvReLU2d, ConvReLU3d,
                            LinearBn1d, LinearReLU, _FusedModule)
from ..nn.intrinsic import qat as nniqat
from .backend_config import (USER_PATTERN, BackendConfig, check_qconfig,
                             get_native_backend_config, warn_unknown_patterns)
from .fx.custom_config import ConvertCustomConfig, FuseCustomConfig, PrepareCustomConfig
from .fx.fused_forward import install_fused_forward
from .quant_type import QuantType
from .fake_quantize import FakeQuantizeBase
from .observer import ObserverBase, PlaceholderObserver
from .qconfig_mapping import QConfigMapping


class QuantizationError(EmberError):
    """Bad input to the quantization flow (what was wrong, and which node)."""


class FusionQConfigError(QuantizationError, LookupError):
    """Modules fused into one were given different qconfigs: torch.ao's LookupError."""


# --- custom configs --------------------------------------------------------------------------
def _prepare_config(custom) -> PrepareCustomConfig:
    if custom is None:
        return PrepareCustomConfig()
    return PrepareCustomConfig.from_dict(custom) if isinstance(custom, dict) else custom


def _convert_config(custom) -> ConvertCustomConfig:
    if custom is None:
        return ConvertCustomConfig()
    return ConvertCustomConfig.from_dict(custom) if isinstance(custom, dict) else custom


def _preserve_attributes(source, gm, names) -> None:
    for name in names:
        if hasattr(source, name):
            setattr(gm, name, getattr(source, name))


class _QuantizationTracer(Tracer):
    def __init__(self, skipped_names=(), skipped_classes=()):
        super().__init__()
        self.skipped_names = set(skipped_names)
        self.skipped_classes = tuple(skipped_classes)

    def is_leaf_module(self, m, module_qualified_name: str) -> bool:
        if module_qualified_name in self.skipped_names or \
                (self.skipped_classes and isinstance(m, self.skipped_classes)):
            return True
        if isinstance(m, (_FusedModule, ObserverBase, FakeQuantizeBase, nnqat.Linear,
                          nnqat.Conv2d, nnqat.Conv3d, nniqat.ConvBn2d, nniqat.ConvBn3d,
                          nniqat.LinearBn1d)):
            return True
        # ember.nn's own layers are leaves; model code elsewhere in ember (ember.models'
        # blocks) is traced through, so its convs and adds get quantized too
        cls = type(m)
        return cls.__module__.startswith("ember.frontend.nn.") and \
            cls.__name__ not in ("Sequential", "ModuleList", "ModuleDict")


def _trace(model, custom: PrepareCustomConfig | None) -> GraphModule:
    custom = _prepare_config(custom)
    # standalone and custom modules are called as they are, like non-traceable ones
    leaf_names = list(custom.non_traceable_module_names) + list(custom.standalone_module_names)
    leaf_classes = list(custom.non_traceable_module_classes) + \
        list(custom.standalone_module_classes) + \
        list(custom.float_to_observed_mapping.get(QuantType.STATIC, {}))
    tracer = _QuantizationTracer(leaf_names, leaf_classes)
    try:
        graph = tracer.trace(model)
    except TraceError as err:
        raise QuantizationError(
            f"prepare_fx could not trace {type(model).__name__}: {err}\nMark the submodule "
            f"that contains this code as non-traceable with PrepareCustomConfig()."
            f"set_non_traceable_module_names([...]) (or set_non_traceable_module_classes) "
            f"and pass it as prepare_custom_config; it then stays in float.") from None
    # named GraphModule, not after the model: torch.ao's fused, prepared and converted
    # models print as `GraphModule(...)`
    gm = GraphModule(model, graph)
    for name, value in tracer.tensor_constants.items():
        setattr(gm, name, value)
    return gm


# --- module kinds ----------------------------------------------------------------------------
_SHARED_MODULES = tuple(getattr(nn, n) for n in (
    "ReLU", "ReLU6", "Hardtanh", "MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d",
    "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "Flatten", "Dropout", "Identity")
    if hasattr(nn, n))
_FIXED_MODULES = tuple(getattr(nn, n) for n in ("Sigmoid", "Tanh", "Softmax", "Hardsigmoid")
                       if hasattr(nn, n))
# modules whose output gets an observer of its own, computed in float between dq and q
_OWN_OBSERVER_MODULES = {nn.Hardswish: "hardswish", nn.ELU: "elu", nn.LeakyReLU: "leaky_relu",
                         nn.PReLU: "prelu"}


def _module_kind(module) -> str | None:
    if isinstance(module, (LinearReLU, nniqat.LinearReLU)):
        return "linear_relu"
    if isinstance(module, (ConvReLU2d, ConvBnReLU2d, nniqat.ConvBnReLU2d, nniqat.ConvReLU2d)):
        return "conv2d_relu"
    if isinstance(module, (ConvBn2d, nniqat.ConvBn2d)):
        return "conv2d"
    if isinstance(module, (ConvReLU3d, ConvBnReLU3d, nniqat.ConvBnReLU3d)):
        return "conv3d_relu"
    if isinstance(module, (ConvBn3d, nniqat.ConvBn3d)):
        return "conv3d"
    if type(module) in (nn.Linear, nnqat.Linear, LinearBn1d, nniqat.LinearBn1d):
        return "linear"
    if type(module) in (nn.Conv2d, nnqat.Conv2d):
        return "conv2d"
    if type(module) in (nn.Conv3d, nnqat.Conv3d):       # runs quantized_conv3d's reference
        return "conv3d"
    if type(module) is nn.ReLU:       # exactly: ReLU6 subclasses it but clamps at 6 as well
        return "relu"
    if type(module) in _OWN_OBSERVER_MODULES:
        return _OWN_OBSERVER_MODULES[type(module)]
    if isinstance(module, _SHARED_MODULES):
        return "identity"
    if isinstance(module, _FIXED_MODULES):
        return "sigmoid"
    return None


def _module_kinds(gm: GraphModule) -> dict:
    """call_module target -> kind, and functional linear / conv2d nodes -> kind (keyed
    by the node: their weights are the model's parameters, read by get_attr)."""
    modules = dict(gm.named_modules())
    kinds = {}
    for node in gm.graph.nodes:
        if node.op == OpKind.call_module:
            kind = _module_kind(modules.get(str(node.target)))
            if kind is not None:
                kinds[str(node.target)] = kind
        elif _functional_weighted(node) is not None:
            kinds[node] = _functional_weighted(node)
    return kinds


_FUNCTIONAL_WEIGHTED = {F.linear: "linear", OPS_NS.linear: "linear", F.conv2d: "conv2d",
                        OPS_NS.conv2d: "conv2d"}
_CONV_DEFAULTS = (("stride", 1), ("padding", 0), ("dilation", 1), ("groups", 1))


def _functional_weighted(node) -> str | None:
    """"linear" / "conv2d" for F.linear / F.conv2d whose weight (and bias) the graph
    reads from the model's attributes; None otherwise."""
    if node.op != OpKind.call_function:
        return None
    try:
        kind = _FUNCTIONAL_WEIGHTED.get(node.target)
    except TypeError:                      # an unhashable target
        return None
    if kind is None or len(node.args) < 2:
        return None
    weight = node.args[1]
    bias = node.args[2] if len(node.args) > 2 else node.kwargs.get("bias")
    if getattr(weight, "op", None) != OpKind.get_attr or \
            (bias is not None and getattr(bias, "op", None) != OpKind.get_attr):
        return None
    if kind == "conv2d" and isinstance(_conv_arg(node, 4, "padding"), str):
        return None                        # padding="same": stays float
    return kind


def _conv_arg(node, index: int, name: str):
    defaults = dict(_CONV_DEFAULTS)
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, defaults[name])


# --- fusion ----------------------------------------------------------------------------------
def _fold_bn(conv, bn):
    """A conv (or Linear) equal to conv followed by eval-mode bn, in float32 as torch.ao
    folds. A transposed conv's weight holds the output channels on axis 1."""
    w = np.asarray(conv.weight.detach().numpy(), np.float32)
    axis = 1 if isinstance(conv, (nn.ConvTranspose1d, nn.ConvTranspose2d,
                                  nn.ConvTranspose3d)) else 0
    mean, var = bn.running_mean.numpy(), bn.running_var.numpy()
    b = np.zeros(mean.shape, np.float32) if conv.bias is None else \
        np.asarray(conv.bias.detach().numpy(), np.float32)
    gamma = bn.weight.detach().numpy() if bn.weight is not None else np.ones_like(mean)
    beta = bn.bias.detach().numpy() if bn.bias is not None else np.zeros_like(mean)
    rsqrt = (np.float32(1) / np.sqrt(var + np.float32(bn.eps))).astype(np.float32)
    scale = (gamma * rsqrt).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    fused = copy.deepcopy(conv)
    fused.weight = nn.Parameter(Tensor._from_array(
        (w * scale.reshape(shape)).astype(np.float32)))
    fused.bias = nn.Parameter(Tensor._from_array(((b - mean) * rsqrt * gamma + beta)
                                                 .astype(np.float32)))
    return fused


def _set_module(root, qualname: str, module) -> None:
    parent, _, name = qualname.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, module)


def _sole_user(node):
    users = list(node.users)
    return users[0] if len(users) == 1 else None


def _is_relu(node, modules) -> bool:
    if node is None:
        return False
    if node.op == OpKind.call_module:
        return type(modules.get(str(node.target))) is nn.ReLU
    # torch.ao fuses nn.ReLU and F.relu into the module; torch.relu runs in float after
    # it, and a `.relu()` method call is a separate relu on the quantized output
    # (keeping the conv's / linear's qparams)
    if node.op == OpKind.call_function:
        return node.target is F.relu
    return False


_WITH_RELU = {nn.Conv1d: ConvReLU1d, nn.Conv2d: ConvReLU2d, nn.Conv3d: ConvReLU3d,
              nn.Linear: LinearReLU}
_BN_RELU = {nn.BatchNorm2d: BNReLU2d, nn.BatchNorm3d: BNReLU3d}
# a module followed by an eval-mode BatchNorm of this type: folded (Conv2d is handled
# apart, for QAT's ConvBn2d)
_CONV_BN = {nn.Conv1d: nn.BatchNorm1d, nn.Conv3d: nn.BatchNorm3d, nn.Linear: nn.BatchNorm1d,
            nn.ConvTranspose1d: nn.BatchNorm1d, nn.ConvTranspose2d: nn.BatchNorm2d,
            nn.ConvTranspose3d: nn.BatchNorm3d}


def _module_after(node, modules: dict):
    """(the node's sole user, its module) where that user calls a module, else (None, None)."""
    user = _sole_user(node)
    if user is None or user.op != OpKind.call_module:
        return None, None
    return user, modules.get(str(user.target))


def _absorb(gm: GraphModule, node, user, module):
    """`module` takes the place of node's module and of its sole user (a BatchNorm or relu)."""
    _set_module(gm, str(node.target), module)
    user.replace_all_uses_with(node)
    gm.graph.erase_node(user)
    return module


# a module followed by a training-mode BatchNorm of this type, kept apart for QAT's
# simulated folding (Linear only under prepare_qat_fx; Conv2d is handled apart)
_TRAINING_BN = {nn.Linear: (nn.BatchNorm1d, LinearBn1d), nn.Conv3d: (nn.BatchNorm3d, ConvBn3d)}


def _fuse_graph(gm: GraphModule, is_qat: bool = False) -> GraphModule:
    graph = gm.graph
    modules = dict(gm.named_modules())
    for node in list(graph.nodes):
        if node.op != OpKind.call_module:
            continue
        module = modules.get(str(node.target))
        if type(module) in _CONV_BN and not module.training:
            bn_node, bn = _module_after(node, modules)  # conv/linear + eval BatchNorm: folded
            if type(bn) is _CONV_BN[type(module)] and bn.track_running_stats and \
                    not bn.training:
                module = _absorb(gm, node, bn_node, _fold_bn(module, bn))
        if type(module) in _TRAINING_BN and (is_qat or type(module) is not nn.Linear):
            bn_type, kept_apart = _TRAINING_BN[type(module)]
            bn_node, bn = _module_after(node, modules)
            if type(bn) is bn_type and bn.training and bn.track_running_stats:
                module = _absorb(gm, node, bn_node, kept_apart(module, bn))
        if type(module) is nn.Conv2d:
            bn_node, bn = _module_after(node, modules)
            if isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats:
                # eval: folded now; training: kept apart for QAT's simulated folding
                module = _absorb(gm, node, bn_node, _fold_bn(module, bn) if not bn.training
                                 else ConvBn2d(module, bn))
        if type(module) in (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, ConvBn2d, ConvBn3d):
            relu_node = _sole_user(node)
            if _is_relu(relu_node, modules) and relu_node.args[0] is node:
                with_bn = {ConvBn2d: ConvBnReLU2d, ConvBn3d: ConvBnReLU3d}.get(type(module))
                fused = with_bn(module[0], module[1], nn.ReLU()) if with_bn else \
                    _WITH_RELU[type(module)](module, nn.ReLU())
                _absorb(gm, node, relu_node, fused)
        if type(module) in _BN_RELU:        # a BatchNorm no conv took: fused with its relu
            relu_node = _sole_user(node)
            if _is_relu(relu_node, modules) and relu_node.args[0] is node:
                _absorb(gm, node, relu_node, _BN_RELU[type(module)](module, nn.ReLU()))
    graph.lint()
    gm.recompile()
    gm.delete_all_unused_submodules()     # the BatchNorms folded away, as torch drops them
    return gm


def fuse_fx(model, fuse_custom_config=None, backend_config=None) -> GraphModule:
    """Fuse conv2d + batch_norm (folded in eval mode, ConvBn2d in training mode)
    (+ relu) and linear + relu."""
    custom = FuseCustomConfig.from_dict(fuse_custom_config) \
        if isinstance(fuse_custom_config, dict) else fuse_custom_config
    gm = _fuse_graph(_trace(model, None))
    _preserve_attributes(model, gm, custom.preserved_attributes if custom else [])
    return gm


# --- prepare ---------------------------------------------------------------------------------
def _object_types(node) -> list:
    """Every key a QConfigMapping's object_type entry may use for this node."""
    if node.op == OpKind.call_method:
        return [str(node.target)]
    target = node.target
    found = [target]
    name = target.name if is_op(target) else getattr(target, "__name__", "")
    if target in (operator.add, operator.iadd):
        found += [OPS_NS.add, "add"]
    elif target in (operator.mul, operator.imul):
        found += [OPS_NS.mul, "mul"]
    if name:
        fn = getattr(F, name, None)
        found += [x for x in (fn, getattr(OPS_NS, name, None), name) if x is not None]
    return found


def _assign_qconfigs(gm: GraphModule, mapping: QConfigMapping) -> dict:
    modules = dict(gm.named_modules())
    qconfigs, counts = {}, {}
    for node in gm.graph.nodes:
        if node.op == OpKind.call_module:
            target = str(node.target)
            module = modules.get(target)
            fused = isinstance(module, _FusedModule)
            # module_name_object_type_order counts modules by type within their parent
            # (a fused module as its first part, as torch.ao counts them)
            counted = type(module[0]) if fused else type(module)
            parent = target.rpartition(".")[0]
            index = counts.get((parent, counted), 0)
            counts[(parent, counted)] = index + 1
            kind = _fused_object_type(mapping, module) if fused else type(module)
            order = mapping.module_name_object_type_order_qconfigs.get(
                (parent, counted, index), _UNSET)
            qconfigs[node] = order if order is not _UNSET else \
                mapping.qconfig_for(target, kind)
        elif node.op in (OpKind.call_function, OpKind.call_method):
            qconfigs[node] = _function_qconfig(mapping, node, counts)
    return qconfigs


def _attach_qconfigs(gm, qconfigs: dict) -> None:
    """Every called module carries its QConfig (None included) as `.qconfig`, as torch.ao's
    prepared model does; convert_fx removes them unless `_remove_qconfig=False`."""
    for node, qconfig in qconfigs.items():
        if node.op == OpKind.call_module:
            gm.get_submodule(str(node.target)).qconfig = qconfig


def _strip_qconfigs(gm) -> GraphModule:
    for module in gm.modules():
        module.__dict__.pop("qconfig", None)
    return gm


def _enclosing_module(node) -> tuple:
    """(path, class) of the module a function / method call was traced in; ("", None)
    at the top level."""
    stack = node.meta.get("nn_module_stack") or {}
    return list(stack.values())[-1] if stack else ("", None)


def _function_qconfig(mapping: QConfigMapping, node, counts: dict):
    """A function or method call's QConfig as torch.ao picks it: its own object_type
    entry (else global), overridden by the enclosing module's class entry, then a
    module_name_regex matching the enclosing module's path, then that path's (or an
    ancestor's) module_name entry; for functions, module_name_object_type_order counts
    calls of the function within the enclosing module."""
    types_ = _object_types(node)
    obj = next((t for t in types_ if t in mapping.object_type_qconfigs), types_[0])
    path, module_type = _enclosing_module(node)
    table = mapping.object_type_qconfigs
    qconfig = table.get(obj, mapping.global_qconfig)
    if module_type is not None:
        qconfig = table.get(module_type, qconfig)
    qconfig = next((q for regex, q in mapping.module_name_regex_qconfigs.items()
                    if re.match(regex, path)), qconfig)
    if path:
        found, named = mapping._by_module_name(path)
        qconfig = named if found else qconfig
    if node.op == OpKind.call_function:
        index = counts.get((path, obj), 0)
        counts[(path, obj)] = index + 1
        qconfig = mapping.module_name_object_type_order_qconfigs.get((path, obj, index), qconfig)
    return qconfig


_UNSET = object()


def _fused_object_type(mapping: QConfigMapping, module):
    """The object type a fused module's qconfig is looked up by, as torch.ao decides:
    its own type; its parts' qconfig when every part's object_type entry is the same
    (and not None); parts with different entries are an error."""
    table = mapping.object_type_qconfigs
    parts = [type(m) for m in module]
    first = table.get(parts[0])
    for part in parts[1:]:
        if table.get(part) != first:
            raise FusionQConfigError(
                f"During fusion, we need to specify the same qconfigs for all module types "
                f"in {type(module)} offending type: {part} (prepare_fx: the object_type "
                f"entries of {parts[0].__name__} and {part.__name__} differ)")
    if type(module) not in table and first is not None:
        return parts[0]
    return type(module)


def _is_static(qconfig) -> bool:
    if qconfig is None:
        return False
    probe = qconfig.activation()
    if getattr(probe, "is_dynamic", False):
        return False
    return getattr(probe, "dtype", None) is not None and \
        getattr(probe.dtype, "is_quantized", False)


def _swap_float_functional(model) -> None:
    """FloatFunctional children become FXFloatFunctional, in place, as torch.ao's
    prepare_fx swaps them: the traced graph then holds the plain add / mul / cat (and
    no Identity `activation_post_process` call after it) for the patterns to quantize."""
    from ..nn.quantized import FloatFunctional, FXFloatFunctional
    for name, child in list(model.named_children()):
        if type(child) is FloatFunctional:
            model._modules[name] = FXFloatFunctional()
        else:
            _swap_float_functional(child)


def _prepare(model, qconfig_mapping, example_inputs, prepare_custom_config, is_qat,
             backend_config=None):
    if isinstance(qconfig_mapping, dict):
        qconfig_mapping = QConfigMapping.from_dict(qconfig_mapping)
    if not isinstance(qconfig_mapping, QConfigMapping):
        raise QuantizationError(f"prepare_fx expects a QConfigMapping, got "
                                f"{type(qconfig_mapping).__name__}")
    if example_inputs is None:
        raise QuantizationError("prepare_fx needs example_inputs (a tuple of inputs)")
    custom = _prepare_config(prepare_custom_config)
    _swap_float_functional(model)
    gm = _trace(model, custom)
    gm = _fuse_graph(gm, is_qat)        # in training mode BatchNorm is not folded
    standalone = _prepare_standalone(gm, custom, qconfig_mapping, is_qat, backend_config)
    qconfigs = _assign_qconfigs(gm, qconfig_mapping)
    _attach_qconfigs(gm, qconfigs)
    kinds = _module_kinds(gm)
    kinds.update({str(n.target): "custom" for n in gm.graph.nodes
                  if "standalone_interface" in n.meta})
    swapped = _swappable_modules(gm, qconfigs, kinds, backend_config)
    kinds.update({target: "custom" for target in swapped})
    user_patterns = _user_pattern_nodes(gm, backend_config, kinds)
    kinds.update({_kind_key(n): USER_PATTERN for n in user_patterns})
    custom_modules = _observe_custom_modules(gm, custom, qconfigs, kinds)
    counter = [0]
    owners = {}

    def new_observer(value, for_node) -> str:
        name = f"activation_post_process_{counter[0]}"
        counter[0] += 1
        gm.add_module(name, qconfigs[for_node].activation())
        owners[name] = value.name
        return name

    backend = backend_config or get_native_backend_config()
    if backend_config is not None:
        warn_unknown_patterns(backend_config)

    def wants(node) -> bool:
        qconfig = qconfigs.get(node)
        if not _is_static(qconfig):
            return False
        kind = qpass.node_kind(node, kinds)
        if _observed_anew(node, kinds, modules, is_qat):
            return False
        if kind in qpass.CUSTOM:
            return True
        weight = qconfig.weight() if kind in qpass.WEIGHTED else None
        where = str(node.target) if node.op == OpKind.call_module else \
            getattr(node.target, "name", getattr(node.target, "__name__", str(node.target)))
        config = backend if kind != USER_PATTERN else \
            BackendConfig(backend.name).set_backend_pattern_config(user_patterns[node])
        return check_qconfig(config, kind, qconfig.activation(), weight, node.name, where)

    modules = dict(gm.named_modules())

    def reobserves(node) -> bool:
        """torch.ao's shared-observer ops (pooling, mean, relu, clamp, views,
        torch.flatten, post-training dropout): not the ops it observes anew."""
        return not _observed_anew(node, kinds, modules, is_qat)

    aliases = {}

    def share_observer(target) -> str:
        """torch.ao's shared observer: the same module under the next observer name."""
        name = f"activation_post_process_{counter[0]}"
        counter[0] += 1
        gm.add_module(name, gm.get_submodule(target))
        aliases[name] = aliases.get(target, target)
        return name

    quantized_inputs = _quantized_placeholders(gm, custom.input_quantized_indexes)
    quantized = qpass.insert_observers(gm.graph, kinds, wants, new_observer, reobserves,
                                       share_observer, quantized_inputs)
    _drop_uncalled_observers(gm, owners)      # replaced by a shared one (cat)
    gm._ember_quant = {
        "weighted": {str(n.target): qconfigs[n] for n, k in quantized.items()
                     if k in qpass.WEIGHTED and n.op == OpKind.call_module},
        "functional": {n.name: qconfigs[n] for n, k in quantized.items()
                       if k in qpass.WEIGHTED and n.op == OpKind.call_function},
        "observer_owner": owners, "observer_alias": aliases, "is_qat": is_qat,
        "quantized_inputs": [n.name for n in quantized_inputs],
        "quantized_outputs": list(custom.output_quantized_indexes),
        # values computed under a None qconfig: an observer after one is its reader's
        # input observer, and its qparams are named after the reader (`_input`)
        "unconfigured": {n.name for n in gm.graph.nodes
                         if n.op != OpKind.placeholder and n in qconfigs and qconfigs[n] is None},
        "standalone": standalone,
        "backend_config": backend,
        "custom": custom_modules, "weight_only": _weight_only_modules(gm, qconfigs, kinds),
        "user_patterns": {n.name for n, k in quantized.items() if k == USER_PATTERN},
        "swapped": {t: q for t, q in swapped.items()
                    if any(str(n.target) == t for n in quantized)},
        # qconfigs of quantized modules whose convert needs them (PReLU's weight observer)
        "module_qconfigs": {str(n.target): qconfigs[n] for n, k in quantized.items()
                            if k == "prelu" and n.op == OpKind.call_module}}
    if is_qat:
        _attach_weight_fake_quant(gm, quantized, qconfigs)
    _modules_in_graph_order(gm)
    _preserve_attributes(model, gm, custom.preserved_attributes)
    gm.recompile()           # example_inputs are accepted for torch.ao's signature
    return gm


def _quantized_placeholders(gm, indexes) -> list:
    """The model inputs PrepareCustomConfig.set_input_quantized_indexes names: the
    converted model takes them as quantized tensors (no quantize_per_tensor for them)."""
    placeholders = [n for n in gm.graph.nodes if n.op == OpKind.placeholder]
    for i in indexes:
        if not 0 <= i < len(placeholders):
            raise QuantizationError(f"prepare_fx: input_quantized_indexes names input {i}, "
                                    f"but the model takes {len(placeholders)} input(s)")
    return [placeholders[i] for i in indexes]


def _keep_outputs_quantized(graph, indexes) -> None:
    """PrepareCustomConfig.set_output_quantized_indexes: the model returns those outputs
    quantized, so the dequantize before them is skipped."""
    out = next(n for n in graph.nodes if n.op == OpKind.output)
    value = out.args[0]
    single = not isinstance(value, (tuple, list))
    values = [value] if single else list(value)
    for i in indexes:
        if i < len(values) and _is_dequantize(values[i]):
            values[i] = values[i].args[0]
    out.args = (values[0] if single else type(value)(values),)
    graph.eliminate_dead_code()


def _modules_in_graph_order(gm) -> None:
    """The prepared model's children in the order the graph first reaches them (its
    observers among the model's layers), as torch.ao's prepared GraphModule holds them:
    named_modules() and the state_dict keys come in that order."""
    order = []
    for node in gm.graph.nodes:
        if node.op in (OpKind.call_module, OpKind.get_attr):
            top = str(node.target).split(".")[0]
            if top in gm._modules and top not in order:
                order.append(top)
    rest = [name for name in gm._modules if name not in order]
    children = [(name, gm._modules[name]) for name in order + rest]
    gm._modules.clear()
    gm._modules.update(children)


def _swap_table() -> dict:
    """Float modules convert_fx swaps whole for torch.ao's quantized module (quantized
    input, quantized output), as torch.ao's default mappings do."""
    from ..nn import quantized as nnq
    from ..nn.intrinsic import quantized as nniq
    return {nn.Conv1d: nnq.Conv1d, ConvReLU1d: nniq.ConvReLU1d,
            nn.ConvTranspose1d: nnq.ConvTranspose1d, nn.ConvTranspose2d: nnq.ConvTranspose2d,
            nn.LayerNorm: nnq.LayerNorm, nn.InstanceNorm1d: nnq.InstanceNorm1d,
            nn.InstanceNorm2d: nnq.InstanceNorm2d, nn.InstanceNorm3d: nnq.InstanceNorm3d,
            nn.BatchNorm2d: nnq.BatchNorm2d, nn.BatchNorm3d: nnq.BatchNorm3d,
            BNReLU2d: nniq.BNReLU2d, BNReLU3d: nniq.BNReLU3d}


def _swappable_modules(gm, qconfigs, kinds, backend_config) -> dict:
    """target -> qconfig of the module calls convert will swap for quantized modules
    (a static qconfig; a user's backend config must list the module class)."""
    table = _swap_table()
    listed = None if backend_config is None else \
        {c.pattern for c in backend_config.configs if isinstance(c.pattern, type)}
    found = {}
    for node in gm.graph.nodes:
        if node.op != OpKind.call_module or str(node.target) in kinds:
            continue
        module = gm.get_submodule(str(node.target))
        if type(module) not in table or not _is_static(qconfigs.get(node)) or \
                (listed is not None and type(module) not in listed):
            continue
        bn = module[0] if isinstance(module, (BNReLU2d, BNReLU3d)) else module
        if isinstance(bn, (nn.BatchNorm2d, nn.BatchNorm3d)) and bn.training:
            continue
        found[str(node.target)] = qconfigs[node]
    return found


def _swap_quantizable(gm, table: dict) -> None:
    """Observed float modules -> torch.ao's quantized modules (from_float with the
    module's qconfig and its output observer), which take and return quantized values."""
    classes = _swap_table()
    for node in gm.graph.nodes:
        target = str(node.target)
        if node.op != OpKind.call_module or target not in table:
            continue
        module = gm.get_submodule(target)
        post = next((u for u in node.users if u.op == OpKind.call_module and
                     isinstance(gm.get_submodule(str(u.target)),
                                (ObserverBase, FakeQuantizeBase))), None)
        module.qconfig = table[target]
        if isinstance(module, _FusedModule):
            module[0].qconfig = table[target]
        module.activation_post_process = gm.get_submodule(str(post.target))
        _set_module(gm, target, classes[type(module)].from_float(module))


def _swap_reference(gm, table: dict) -> None:
    """convert_to_reference_fx: the weighted modules convert_fx swaps whole (Conv1d, the
    transposed convolutions) become reference modules with their qconfig's weight
    qparams, between the dequantize and quantize nodes, as torch.ao's reference graph
    has them; the others stay float."""
    for target, qconfig in table.items():
        module = gm.get_submodule(target)
        inner = module[0] if isinstance(module, _FusedModule) else module
        if not isinstance(inner, (nn.Conv1d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                                  nn.ConvTranspose3d)):
            continue
        observer = qconfig.weight()
        reference = _reference_module(gm, inner, observer,
                                      _quantize_weight(inner.weight, observer))
        if isinstance(module, _FusedModule):
            module[0] = reference
        else:
            _set_module(gm, target, reference)


def _kind_key(node):
    """How a kinds table names a node: a module call by its target, others by the node."""
    return str(node.target) if node.op == OpKind.call_module else node


def _user_pattern_nodes(gm, backend_config, kinds) -> dict:
    """node -> the user's BackendPatternConfig it matches, for nodes ember's own patterns
    do not cover (a custom module class or function the backend config lists)."""
    if backend_config is None:
        return {}
    configs = [c for c in backend_config.configs if c.kind == USER_PATTERN]
    modules = dict(gm.named_modules())
    found = {}
    for node in gm.graph.nodes:
        if not configs or qpass.node_kind(node, kinds) is not None:
            continue
        config = next((c for c in configs if c.matches(node, modules)), None)
        if config is not None:
            found[node] = config
    return found


def _observed_anew(node, kinds, modules, is_qat: bool) -> bool:
    """Ops torch.ao has no shared pattern for (the `flatten` method, nn.Flatten) run in
    float, so the next quantized op observes their output with an observer of its own
    (converted: dequantize -> flatten -> quantize, as torch.ao's graph); in QAT dropout
    too (torch.ao gives it a fake quantize of its own)."""
    if node.op == OpKind.call_module:
        anew = (nn.Flatten, nn.Dropout) if is_qat else (nn.Flatten,)
        return isinstance(modules.get(str(node.target)), anew)
    return (is_qat and qpass.node_kind(node, kinds) == "dropout") or \
        (node.op == OpKind.call_method and node.target == "flatten")


def _prepare_standalone(gm, custom, qconfig_mapping, is_qat, backend_config) -> list[str]:
    """Standalone modules are prepared as models of their own (their own mapping, or the
    parent's, and example inputs); the parent calls them with float values."""
    modules = dict(gm.named_modules())
    prepared = []
    for node in gm.graph.nodes:
        if node.op != OpKind.call_module:
            continue
        target = str(node.target)
        entry = custom.standalone_module_names.get(target) or \
            custom.standalone_module_classes.get(type(modules[target]))
        if entry is None:
            continue
        mapping = entry.qconfig_mapping if entry.qconfig_mapping is not None else \
            qconfig_mapping
        sub = _prepare(modules[target], mapping, entry.example_inputs,
                       entry.prepare_custom_config, is_qat,
                       entry.backend_config or backend_config)
        _set_module(gm, target, sub)
        prepared.append(target)
        interface = _prepare_config(entry.prepare_custom_config)
        if interface.input_quantized_indexes or interface.output_quantized_indexes:
            # its own input / output quantized indexes: the parent hands it the int8
            # value and takes its int8 result, as torch.ao's standalone interface
            node.meta["standalone_interface"] = (bool(interface.input_quantized_indexes),
                                                 bool(interface.output_quantized_indexes))
    return prepared


def _observe_custom_modules(gm, custom, qconfigs, kinds) -> dict:
    """Float modules of the custom float -> observed mapping with a static qconfig become
    `observed_class.from_float(module)` (kind "custom": inputs and output observed)."""
    table = custom.float_to_observed_mapping.get(QuantType.STATIC, {})
    found = {}
    for node in gm.graph.nodes:
        if node.op != OpKind.call_module:
            continue
        module = gm.get_submodule(str(node.target))
        observed_cls = table.get(type(module))
        if observed_cls is None or not _is_static(qconfigs.get(node)):
            continue
        module.qconfig = qconfigs[node]
        observed = observed_cls.from_float(module)
        observed.qconfig = qconfigs[node]
        _set_module(gm, str(node.target), observed)
        kinds[str(node.target)] = "custom"
        # LSTM / MultiheadAttention return tuples: no output observer, the index paths of
        # their tensors in it (passes/quantize.py)
        node.meta["tuple_output"] = _output_tensor_paths(observed, node)
        if isinstance(node.meta["tuple_output"], tuple):
            _dequant_stub_tuple_output(gm, node, node.meta["tuple_output"])
        found[str(node.target)] = qconfigs[node]
    return found


def _dequant_stub_tuple_output(gm, node, paths: tuple) -> None:
    """torch.ao's prepared graph for a custom LSTM: each tensor of the module's tuple
    result taken out by getitems and passed through a DeQuantStub (`dequant_stub_N`),
    the tuple rebuilt from the stubs; the model's own getitems and whole-tuple uses read
    the stubs and rebuilt tuples instead. Converted, each stub is the dequantize of a
    tensor the quantized module returns (passes/quantize.py)."""
    from .stubs import DeQuantStub
    graph = gm.graph
    counter = sum(1 for name, _ in gm.named_children() if name.startswith("dequant_stub_"))
    built, made = {}, set()

    def make(target, args, module=False):
        new = graph.call_module(target, args) if module else graph.call_function(target, args)
        made.add(new)
        return new

    def build(value, prefix):
        items = []
        for index in sorted({p[len(prefix)] for p in paths
                             if len(p) > len(prefix) and p[:len(prefix)] == prefix}):
            path = prefix + (index,)
            item = make(operator.getitem, (value, index))
            if path in paths:
                nonlocal counter
                name = f"dequant_stub_{counter}"
                counter += 1
                gm.add_module(name, DeQuantStub())
                item = make(name, (item,), module=True)
                item.meta["dequant_stub_of_tuple"] = True
            else:
                item = build(item, path)
            built[path] = item
            items.append(item)
        return make(tuple, (items,))

    def redirect(value, prefix):
        for user in list(value.users):
            if user in made:
                continue
            index = user.args[1] if user.op == OpKind.call_function and \
                user.target is operator.getitem and len(user.args) == 2 else None
            if isinstance(index, int) and prefix + (index,) in built:
                redirect(user, prefix + (index,))
            else:
                user.replace_input_with(value, built[prefix])

    with graph.inserting_after(node):
        built[()] = build(node, ())
    redirect(node, ())


def _output_tensor_paths(observed, node):
    """Where an observed custom module's tuple result holds its tensors: an LSTM's
    (out, (h, c)), an MHA's (out, weights) (True: a tuple of unknown layout, an MHA
    called with need_weights=False; False: not a tuple)."""
    from ..nn import quantizable as nnqa
    if isinstance(observed, nnqa.LSTM):
        return ((0,), (1, 0), (1, 1))
    if isinstance(observed, nnqa.MultiheadAttention):
        need_weights = node.kwargs.get("need_weights", node.args[4] if len(node.args) > 4
                                       else True)
        return ((0,), (1,)) if need_weights is True else True
    return False


def _weight_only_modules(gm, qconfigs, kinds) -> dict:
    """Modules whose qconfig quantizes weights only, swapped at convert: Linear (and
    LinearReLU), LSTM, GRU and the recurrent cells under a dynamic qconfig (int8 or
    float16), Embedding/EmbeddingBag under float_qparams_weight_only_qconfig.
    {target: qconfig}"""
    found = {}
    for node, qconfig in qconfigs.items():
        if node.op != OpKind.call_module or qconfig is None:
            continue
        module = gm.get_submodule(str(node.target))
        if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
            if getattr(qconfig.weight(), "qscheme", None) is per_channel_affine_float_qparams:
                found[str(node.target)] = qconfig
        elif (kinds.get(str(node.target)) in ("linear", "linear_relu") or
              type(module) in _DYNAMIC_RNNS) and _is_dynamic(qconfig):
            found[str(node.target)] = qconfig
    return found


_DYNAMIC_RNNS = (nn.LSTM, nn.GRU, nn.RNNCell, nn.LSTMCell, nn.GRUCell)


def _is_dynamic(qconfig) -> bool:
    probe = qconfig.activation()
    return bool(getattr(probe, "is_dynamic", False)) and \
        getattr(probe, "dtype", None) in (dtypes.quint8, dtypes.qint8, dtypes.float16)


def _attach_weight_fake_quant(gm, quantized, qconfigs):
    """QAT: weighted modules become ember.ao.nn.qat modules, which fake-quantize their
    weight in forward (the weight's FakeQuantize is their `weight_fake_quant`)."""
    modules = dict(gm.named_modules())
    for node, kind in quantized.items():
        if kind in qpass.WEIGHTED and node.op == OpKind.call_function:
            _fake_quantize_functional_weight(gm, node, qconfigs[node])
            continue
        if kind not in qpass.WEIGHTED or node.op != OpKind.call_module:
            continue
        target = str(node.target)
        module = modules[target]
        # simulated BN folding, and torch.ao's one-module QAT forms of linear / conv + relu
        qat_cls = {ConvBn2d: nniqat.ConvBn2d, ConvBnReLU2d: nniqat.ConvBnReLU2d,
                   ConvBn3d: nniqat.ConvBn3d, ConvBnReLU3d: nniqat.ConvBnReLU3d,
                   LinearBn1d: nniqat.LinearBn1d, LinearReLU: nniqat.LinearReLU,
                   ConvReLU2d: nniqat.ConvReLU2d}.get(type(module))
        if qat_cls is not None:
            _set_module(gm, target, qat_cls.from_float(module, qconfigs[node].weight()))
            continue
        inner = module[0] if isinstance(module, _FusedModule) else module
        qat_cls = nnqat.Linear if isinstance(inner, nn.Linear) else \
            nnqat.Conv3d if isinstance(inner, nn.Conv3d) else nnqat.Conv2d
        qat = qat_cls.from_float(inner, qconfigs[node].weight())
        if isinstance(module, _FusedModule):
            module[0] = qat
        else:
            _set_module(gm, target, qat)


def _fake_quantize_functional_weight(gm, node, qconfig) -> None:
    """QAT: F.linear / F.conv2d read their weight through a FakeQuantize module (the
    qconfig's weight one, as torch.ao inserts), so training sees the int8 weight; convert
    takes its observer's qparams and the get_attr back."""
    weight_node = node.args[1]
    name = f"{node.name}_weight_fake_quant"
    gm.add_module(name, qconfig.weight())
    with gm.graph.inserting_before(node):
        fq_node = gm.graph.call_module(name, (weight_node,))
    node.args = (node.args[0], fq_node) + tuple(node.args[2:])
    gm._ember_quant.setdefault("functional_weight_fq", {})[node.name] = name


def _unwrap_functional_weight_fake_quant(gm) -> dict:
    """Convert: undo `_fake_quantize_functional_weight`; {node name: the trained weight
    observer} for `_functional_spec`."""
    table = gm._ember_quant.get("functional_weight_fq", {})
    observers = {}
    for node in list(gm.graph.nodes):
        if node.name not in table or len(node.args) < 2:
            continue
        fq_node = node.args[1]
        if fq_node.op != OpKind.call_module or str(fq_node.target) != table[node.name]:
            continue
        fake_quant = gm.get_submodule(table[node.name])
        observers[node.name] = getattr(fake_quant, "activation_post_process", fake_quant)
        node.args = (node.args[0], fq_node.args[0]) + tuple(node.args[2:])
        gm.graph.erase_node(fq_node)
        delattr(gm, table[node.name])
    return observers


def prepare_fx(model, qconfig_mapping, example_inputs, prepare_custom_config=None,
               _equalization_config=None, backend_config=None) -> GraphModule:
    """Trace, fuse and insert observers for post-training static quantization."""
    if getattr(model, "training", False):
        # as torch.ao: a model in training mode is prepared as it is (its calibration
        # then runs training-mode layers such as dropout), except that BatchNorm can only
        # be folded in eval mode (torch.ao fails there with "Fusion only for eval!")
        training_bn = [name for name, m in model.named_modules()
                       if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d))
                       and m.training]
        if training_bn:
            raise QuantizationError(
                f"prepare_fx is for post-training quantization: BatchNorm {training_bn[0]!r} "
                f"is in training mode and can only be folded in eval mode; call model.eval() "
                f"first (or use prepare_qat_fx for training)")
        warnings.warn("prepare_fx: the model is in training mode; post-training "
                      "quantization usually calibrates an eval-mode model (model.eval())",
                      stacklevel=2)
    return _prepare(model, qconfig_mapping, example_inputs, prepare_custom_config, False,
                    backend_config)


def prepare_qat_fx(model, qconfig_mapping, example_inputs, prepare_custom_config=None,
                   backend_config=None) -> GraphModule:
    """Insert fake quantize modules (activations and weights) for quantization-aware
    training. conv2d + BatchNorm2d (+ relu) become ember.ao.nn.intrinsic.qat.ConvBn(ReLU)2d,
    which fold BN into the fake-quantized weight while training."""
    return _prepare(model, qconfig_mapping, example_inputs, prepare_custom_config, True,
                    backend_config)


# --- convert ---------------------------------------------------------------------------------
def _activation_qparams(gm) -> dict:
    owners = gm._ember_quant["observer_owner"]
    out = {}
    for name, module in gm.named_children():
        if not isinstance(module, (ObserverBase, FakeQuantizeBase)) or name not in owners:
            continue
        if isinstance(module, PlaceholderObserver):
            continue
        obs = module.activation_post_process if isinstance(module, FakeQuantizeBase) \
            else module
        min_val = getattr(obs, "min_val", None)
        if min_val is not None and min_val.numel() in (0, 1) and \
                (min_val.numel() == 0 or float(min_val) == float("inf")):
            # torch.ao converts it with the observer's default qparams (scale 1.0, zero
            # point 0): a fresh model converted only to load a calibrated state_dict into
            warnings.warn(
                f"convert_fx: observer {name} (on the output of node '{owners[name]}') has "
                f"seen no data, so it converts with scale 1.0 and zero point 0; run "
                f"calibration inputs through the prepared model before convert_fx")
        if getattr(obs, "qscheme", None) in (per_channel_affine, per_channel_symmetric):
            raise QuantizationError(f"convert_fx: observer {name} (node '{owners[name]}') is "
                                    f"per-channel; activations must be quantized per tensor")
        scale, zero_point = module.calculate_qparams()
        out[name] = (float(scale._values().reshape(-1)[0]),
                     int(zero_point._values().reshape(-1)[0]), obs.dtype)
    for alias, target in gm._ember_quant.get("observer_alias", {}).items():
        if target in out:          # a shared observer's second name
            out[alias] = out[target]
    return out


def _one_scale_per_module(gm, qparams: dict) -> dict:
    """Lowered, a weighted module called at several places is one quantized module with
    one output scale and zero point: its last call's, as torch.ao's lowering leaves it.
    Every call's output observer answers those, so the values downstream (a quantized
    add / mul with a number, a cat) carry the qparams the module really gives."""
    weighted = gm._ember_quant["weighted"]
    outputs: dict[str, list] = {}
    for node in gm.graph.nodes:
        if node.op != OpKind.call_module or str(node.target) not in weighted:
            continue
        observers = [str(u.target) for u in node.users
                     if u.op == OpKind.call_module and str(u.target) in qparams]
        if len(observers) == 1:
            outputs.setdefault(str(node.target), []).append(observers[0])
    out = dict(qparams)
    for names in outputs.values():
        for name in names[:-1]:
            out[name] = qparams[names[-1]]
    return out


def _quantize_weight(weight: Tensor, observer) -> Tensor:
    from ...ir.ops.quantize import quantize_per_channel, quantize_per_tensor
    observer(weight.detach())
    scale, zero_point = observer.calculate_qparams()
    qscheme = getattr(observer, "qscheme", None)
    if qscheme is per_channel_affine_float_qparams:          # embeddings: float zero points
        return quantize_per_channel(weight.detach(), scale.to(dtypes.float64),
                                    zero_point.to(dtypes.float32), observer.ch_axis,
                                    observer.dtype)
    if qscheme in (per_channel_affine, per_channel_symmetric):
        return quantize_per_channel(weight.detach(), scale.to(dtypes.float64),
                                    zero_point.long(), observer.ch_axis, observer.dtype)
    return quantize_per_tensor(weight.detach(), float(scale._values()[0]),
                               int(zero_point._values()[0]), observer.dtype)


def _functional_spec(gm, node, qconfig, reference: bool, observer=None) -> dict | None:
    """A functional linear / conv2d's quantized weight. Lowered: a packed buffer the
    int8 op reads (`<scope>_packed_weight_N`, torch.ao's name) with the bias beside it,
    both saved as that one state entry; the float weight and bias leave the model.
    Reference: the float node keeps reading its weight, through the quantize /
    dequantize `_qparams_as_buffers` inserts. Either way the float node remembers the
    weight's qparams (meta "functional_weight") so the qparams numbering is torch.ao's.
    `observer`: QAT's trained weight observer."""
    weight_node = node.args[1]
    # the weight may be a parameter, a buffer or a plain tensor attribute of a submodule
    # (a dotted get_attr target such as "linear1.weight")
    qweight = _quantize_weight(fetch_attr(gm, str(weight_node.target)),
                               observer if observer is not None else qconfig.weight())
    node.meta["functional_weight"] = qweight
    if reference:
        return None
    packed = _free_attr_name(gm, _scope(node) + "_packed_weight_")   # torch.ao's name
    gm.register_buffer(packed, qweight)
    bias = node.args[2] if len(node.args) > 2 else node.kwargs.get("bias")
    bias_key = None
    if bias is not None:
        bias_key = packed + "_bias"
        gm.register_buffer(bias_key, fetch_attr(gm, str(bias.target)).detach().clone())
    _pack_state(gm, packed, bias_key)
    spec = {"weight": packed, "bias": bias_key,
            "float_attrs": [str(weight_node.target)] + ([str(bias.target)] if bias else [])}
    if _functional_weighted(node) == "conv2d":
        values = [_conv_arg(node, i + 3, name) for i, (name, _) in enumerate(_CONV_DEFAULTS)]
        stride, padding, dilation, groups = values
        spec.update(stride=_pair2(stride), padding=_pair2(padding), dilation=_pair2(dilation),
                    groups=int(groups))
    return spec


class _PackedState:
    """The state entries of a lowered functional linear / conv: torch.ao saves its packed
    weight as one entry holding (weight, bias); ember keeps the two as buffers
    (`<packed>` and `<packed>_bias`). As a state_dict post-hook it writes the pair
    under the packed name; as a load_state_dict pre-hook it splits the pair back."""

    def __init__(self, packed: str, bias_key: str | None):
        self.packed, self.bias_key = packed, bias_key

    def save(self, module, state_dict, prefix, local_metadata) -> None:
        key = prefix + self.packed
        if key not in state_dict:
            return
        bias = state_dict.pop(prefix + self.bias_key) if self.bias_key else None
        state_dict[key] = (state_dict[key], bias)

    def load(self, state_dict, prefix, *rest) -> None:
        value = state_dict.get(prefix + self.packed)
        if isinstance(value, (tuple, list)) and len(value) == 2:
            state_dict[prefix + self.packed] = value[0]
            if self.bias_key and value[1] is not None:
                state_dict[prefix + self.bias_key] = value[1]


def _pack_state(gm, packed: str, bias_key: str | None) -> None:
    state = _PackedState(packed, bias_key)
    gm._register_state_dict_hook(state.save)
    gm._register_load_state_dict_pre_hook(state.load)


def _drop_float_attrs(gm, specs: dict) -> None:
    """A lowered functional op's float weight and bias, read by no node any more, leave
    the model (torch.ao's converted model keeps only the packed weight)."""
    read = {str(n.target) for n in gm.graph.nodes if n.op == OpKind.get_attr}
    for spec in specs.values():
        for target in spec.get("float_attrs", ()):
            if target in read:
                continue
            owner_path, _, name = target.rpartition(".")
            owner = gm.get_submodule(owner_path) if owner_path else gm
            if name in owner._parameters:
                del owner._parameters[name]
            elif name in owner._buffers:
                del owner._buffers[name]
            elif hasattr(owner, name):
                delattr(owner, name)


def _pair2(v) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (int(v), int(v))


def _weighted_specs(gm, reference: bool) -> dict:
    modules = dict(gm.named_modules())
    specs = {}
    functional = gm._ember_quant.get("functional", {})
    trained = _unwrap_functional_weight_fake_quant(gm)
    for node in list(gm.graph.nodes):
        if node.name in functional and _functional_weighted(node) is not None:
            spec = _functional_spec(gm, node, functional[node.name], reference,
                                    trained.get(node.name))
            if spec is not None:
                specs[node] = spec
            continue
        target = str(node.target)
        if node.op != OpKind.call_module or target not in gm._ember_quant["weighted"]:
            continue
        module = modules[target]
        inner = module[0] if isinstance(module, _FusedModule) else module
        qconfig = gm._ember_quant["weighted"][target]
        observer = getattr(inner, "weight_fake_quant", None)
        observer = observer.activation_post_process if observer is not None else \
            qconfig.weight()
        qweight = _quantize_weight(inner.weight, observer)
        if reference:            # a reference module: computes with the q/dq weight
            if isinstance(inner, (nnqat.Linear, nnqat.Conv2d, nnqat.Conv3d)):
                inner = inner.to_float()
            reference_module = _reference_module(gm, inner, observer, qweight)
            if isinstance(module, _FusedModule):
                module[0] = reference_module
            else:
                _set_module(gm, target, reference_module)
            continue
        stem = "_packed_" + target.replace(".", "_")
        gm.register_buffer(stem + "_weight", qweight)
        bias = None
        if inner.bias is not None:
            gm.register_buffer(stem + "_bias", inner.bias.detach().clone())
            bias = stem + "_bias"
        spec = {"weight": stem + "_weight", "bias": bias, "module": target,
                "float": inner}
        if isinstance(inner, (nn.Conv2d, nn.Conv3d)):
            if isinstance(inner.padding, str):
                raise QuantizationError(f"convert_fx: {target} uses padding="
                                        f"{inner.padding!r}; give explicit padding")
            spec.update(stride=tuple(inner.stride), padding=tuple(inner.padding),
                        dilation=tuple(inner.dilation), groups=inner.groups)
        specs[node] = spec
    return specs


def _reference_module(gm, float_module, weight_observer, qweight):
    """convert_to_reference_fx's module for a weighted float module: the backend
    config's `reference_quantized_module` for its type (torch.ao.nn.quantized.reference's
    Linear/Conv by default) built with the weight observer's qparams."""
    from ..nn.quantized import reference as nnqr
    from .utils import get_qparam_dict
    defaults = {nn.Linear: nnqr.Linear, nn.Conv1d: nnqr.Conv1d, nn.Conv2d: nnqr.Conv2d,
                nn.Conv3d: nnqr.Conv3d, nn.ConvTranspose1d: nnqr.ConvTranspose1d,
                nn.ConvTranspose2d: nnqr.ConvTranspose2d,
                nn.ConvTranspose3d: nnqr.ConvTranspose3d}
    backend = gm._ember_quant.get("backend_config")
    chosen = None
    for config in getattr(backend, "configs", []):
        pattern = config.pattern[0] if isinstance(config.pattern, tuple) else config.pattern
        if pattern is type(float_module) and config.reference_quantized_module is not None:
            chosen = config.reference_quantized_module
    chosen = chosen or defaults.get(type(float_module))
    if chosen is None:        # no reference class: a float module with the q/dq weight
        float_module.weight = nn.Parameter(qweight.dequantize())
        return float_module
    return chosen.from_float(float_module, get_qparam_dict(weight_observer))


def _fold_qat_conv_bn(gm) -> None:
    """QAT conv-bn modules -> their eval-mode float form (BN folded with its running
    stats); the folded conv keeps the trained weight fake quantize, whose observer then
    quantizes the folded weight."""
    for name, module in list(gm.named_modules()):
        if isinstance(module, (nniqat.ConvBn2d, nniqat.ConvBn3d, nniqat.LinearBn1d)):
            folded = module.to_float()
            conv = folded[0] if isinstance(folded, _FusedModule) else folded
            conv.weight_fake_quant = module.weight_fake_quant
            _set_module(gm, name, folded)


def _drop_uncalled_observers(gm, owners: dict) -> None:
    """Observers no node calls any more (insert_observers made cat's inputs and output
    share the first input's): removed, so they are not asked for qparams they never saw."""
    called = {str(n.target) for n in gm.graph.nodes if n.op == OpKind.call_module}
    for name in [n for n in owners if n not in called]:
        del owners[name]
        if hasattr(gm, name):
            delattr(gm, name)


def _skip_at_convert(gm, qconfig_mapping) -> None:
    """convert_fx(qconfig_mapping=...): nodes whose QConfig that mapping sets to None stay
    float ops (their weights unquantized), as torch.ao converts them; an observer whose
    input and readers all stay float is removed."""
    if isinstance(qconfig_mapping, dict):
        qconfig_mapping = QConfigMapping.from_dict(qconfig_mapping)
    info = gm._ember_quant = dict(gm._ember_quant)
    modules = dict(gm.named_modules())
    qconfigs = _assign_qconfigs(gm, qconfig_mapping)
    skipped = {n.name for n, q in qconfigs.items() if q is None and not (
        n.op == OpKind.call_module and
        isinstance(modules.get(str(n.target)), (ObserverBase, FakeQuantizeBase)))}
    info["unconfigured"] = set(info.get("unconfigured", ())) | skipped
    info["weighted"] = {t: q for t, q in info["weighted"].items()
                        if not any(n.name in skipped and str(n.target) == t
                                   for n in gm.graph.nodes if n.op == OpKind.call_module)}
    info["functional"] = {n: q for n, q in info.get("functional", {}).items()
                          if n not in skipped}
    for node in list(gm.graph.nodes):
        if node.op != OpKind.call_module or str(node.target) not in info["observer_owner"]:
            continue
        around = [node.args[0]] + list(node.users)
        if all(isinstance(n, type(node)) and n.name in info["unconfigured"] for n in around):
            node.replace_all_uses_with(node.args[0])
            gm.graph.erase_node(node)
    gm.graph.lint()


def _convert(prepared, reference: bool, convert_custom_config=None,
             backend_config=None, qconfig_mapping=None) -> GraphModule:
    if not hasattr(prepared, "_ember_quant"):
        raise QuantizationError("convert_fx expects the GraphModule prepare_fx (or "
                                "prepare_qat_fx) returned")
    custom = _convert_config(convert_custom_config)
    gm = copy.deepcopy(prepared)
    if backend_config is not None:
        gm._ember_quant["backend_config"] = backend_config
    _fold_qat_conv_bn(gm)
    if qconfig_mapping is not None:
        _skip_at_convert(gm, qconfig_mapping)
    qparams = _activation_qparams(gm)
    if not reference:
        qparams = _one_scale_per_module(gm, qparams)
    specs = _weighted_specs(gm, reference)
    kinds = _module_kinds(gm)
    info = gm._ember_quant
    kinds.update({_kind_key(n): USER_PATTERN for n in gm.graph.nodes
                  if n.name in info.get("user_patterns", ())})
    for target in info.get("standalone", []):
        _set_module(gm, target, _convert(gm.get_submodule(target), reference))
    _swap_weight_only(gm, info.get("weight_only", {}), reference)
    if info.get("custom"):
        _swap_custom_modules(gm, info["custom"], custom)
        kinds.update({target: "custom" for target in info["custom"]})
    if info.get("swapped") and not reference:
        _swap_quantizable(gm, info["swapped"])
        kinds.update({target: "custom" for target in info["swapped"]})
    elif info.get("swapped"):
        _swap_reference(gm, info["swapped"])
    qpass.number_observers(gm.graph, qparams)
    if not reference:
        qpass.drop_reobservations(gm.graph)
    quantize_nodes = qpass.observers_to_quantize(gm.graph, qparams)
    quantized_inputs = set(info.get("quantized_inputs", ()))
    quantize_nodes.update({n: (None, None, None) for n in gm.graph.nodes
                           if n.op == OpKind.placeholder and n.name in quantized_inputs})
    if reference:
        qpass.insert_reference_dequantize(gm.graph, quantize_nodes)
    else:
        modules = dict(gm.named_modules())
        qat = gm._ember_quant.get("is_qat")
        unconfigured = gm._ember_quant.get("unconfigured", ())
        qpass.lower_quantized(gm.graph, quantize_nodes, kinds, specs,
                              lambda n: not _observed_anew(n, kinds, modules, qat),
                              lambda n: n.name not in unconfigured)
    _keep_outputs_quantized(gm.graph, info.get("quantized_outputs", ()))
    for name in list(qparams) + [n for n, m in gm.named_children()
                                 if isinstance(m, PlaceholderObserver)]:
        if hasattr(gm, name):
            delattr(gm, name)
    gm.graph.eliminate_dead_code()
    if not reference:
        _drop_float_attrs(gm, specs)
        _quantized_modules(gm, specs)
        _quantized_activation_modules(gm)
        _fuse_output_clamps(gm)
    _qparams_as_buffers(gm)
    if any("scalar_qparams" in n.meta for n in gm.graph.nodes):
        gm.register_load_state_dict_post_hook(rederive_scalar_qparams)
    if not reference:
        _pointwise_on_quantized(gm)
    kinds.update({t: "weight_only" for t in info.get("weight_only", {})})
    gm.quantization_report = _float_report(gm, kinds) if not reference else None
    _dequantize_as_method(gm.graph)
    gm.recompile()
    gm.delete_all_unused_submodules()     # float layers now computed by packed int8 weights
    _preserve_attributes(prepared, gm, custom.preserved_attributes)
    if not reference:
        install_fused_forward(gm)
    return gm


def _module_clamp(module) -> tuple | None:
    """(low, high) where the module is an nn.ReLU6 / nn.Hardtanh, else None."""
    if type(module) is nn.ReLU6:
        return 0.0, 6.0
    if type(module) is nn.Hardtanh:
        return float(module.min_val), float(module.max_val)
    return None


def _clamp_of(node) -> tuple | None:
    """(low, high) real bounds where the node is a relu6 / hardtanh (module or functional
    call, bounds given as numbers) of its first argument, else None."""
    if node.op == OpKind.call_module:
        return _module_clamp(node.graph.owning_module.get_submodule(str(node.target)))
    if node.op != OpKind.call_function or node.target not in (F.relu6, F.hardtanh):
        return None
    if node.target is F.relu6:
        return 0.0, 6.0
    names = ("input", "min_val", "max_val", "inplace")
    bound = dict(zip(names, node.args)) | dict(node.kwargs)
    low, high = bound.get("min_val", -1.0), bound.get("max_val", 1.0)
    if not all(type(v) in (int, float) for v in (low, high)):
        return None
    return float(low), float(high)


def _fuse_output_clamps(gm) -> None:
    """A quantized Conv2d whose one reader is a relu6 / hardtanh on its result (a
    MobileNet's conv -> BatchNorm -> ReLU6) is marked `_fused_clamp` (its bounds): when the
    converted graph calls it, its epilogue clamps to those bounds as well (an exact clamp
    of the integers, the one the clamp node would make), and the clamp node, kept as
    torch.ao keeps it, then finds its input already clamped (frontend/quantized.py
    conv2d_clamped). Only for a module called from one node; the conv called alone gives
    torch.ao's unclamped result (_call_with_fused_clamps)."""
    marked = False
    for conv, _clamp, bounds in _clamp_fusions(gm):
        conv._fused_clamp = bounds
        marked = True
    if marked:          # the class is this GraphModule's own (GraphModule.__new__)
        type(gm).__call__ = _call_with_fused_clamps


def _clamp_fusions(gm) -> list:
    """(conv, clamp module's target or None, bounds) for each quantized Conv2d of gm's
    graph called from one node whose one reader is a relu6 / hardtanh of its result."""
    from ..nn import quantized as nnq
    calls = {}
    for node in gm.graph.nodes:
        if node.op == OpKind.call_module:
            calls[str(node.target)] = calls.get(str(node.target), 0) + 1
    found = []
    for node in gm.graph.nodes:
        if node.op != OpKind.call_module or calls[str(node.target)] != 1:
            continue
        module = gm.get_submodule(str(node.target))
        if not isinstance(module, nnq.Conv2d) or len(node.users) != 1:
            continue
        (user,) = node.users
        bounds = _clamp_of(user) if user.args and user.args[0] is node else None
        if bounds is not None:
            clamp = str(user.target) if user.op == OpKind.call_module else None
            found.append((module, clamp, bounds))
    return found


def _clamp_module_unchanged(gm, target: str | None, bounds: tuple) -> bool:
    """The clamp module the graph calls still clamps to `bounds` (not replaced, its
    bounds not changed) and no hook of it reads its input or result (True for a
    functional clamp: the graph's code holds its bounds)."""
    if target is None:
        return True
    module = gm.get_submodule(target)
    return _module_clamp(module) == bounds and \
        not (module._forward_hooks or module._forward_pre_hooks)


def _call_with_fused_clamps(gm, *args, **kwargs):
    """A converted GraphModule's call: the marked convs of its graph as it is now clamp in
    their epilogue, except where a hook would see the conv's result (a forward hook on the
    conv, any hook on the clamp module): there the pair runs unfused, as torch.ao's."""
    if gm.__dict__.get("_fused_clamps_code") is not gm._code:     # the graph was edited
        gm.__dict__["_fused_clamps"] = [f for f in _clamp_fusions(gm)
                                        if f[0].__dict__.get("_fused_clamp") == f[2]]
        gm.__dict__["_fused_clamps_code"] = gm._code
    clamps = {id(conv): bounds for conv, clamp, bounds in gm._fused_clamps
              if not conv._forward_hooks and _clamp_module_unchanged(gm, clamp, bounds)}
    return call_with_graph_clamps(clamps, nn.Module.__call__, gm, *args, **kwargs)


_FIXED_MODULE_OPS = {nn.Sigmoid: "sigmoid", nn.Tanh: "tanh", nn.Hardsigmoid: "hardsigmoid"}
_POINTWISE = {"sigmoid", "tanh", "hardsigmoid", "mean", "hardswish"}


def _pointwise_name(node) -> str | None:
    """sigmoid / tanh / hardsigmoid / mean / hardswish where the node is one of them
    (module, function or method form), else None."""
    if node.op == OpKind.call_module:
        module = node.graph.owning_module.get_submodule(str(node.target))
        return _FIXED_MODULE_OPS.get(type(module))
    if node.op == OpKind.call_function:
        name = node.target.name if is_op(node.target) else \
            getattr(node.target, "__name__", "")
    elif node.op == OpKind.call_method:
        name = str(node.target)
    else:
        return None
    return name if name in _POINTWISE else None


def _pointwise_on_quantized(gm) -> None:
    """torch.ao's lowering of these ops (its convert keeps them on the int8 value):
    `dequantize -> op -> quantize_per_tensor` becomes the op on the quantized value when
    its quantized kernel gives that quantize's qparams: sigmoid / tanh / hardsigmoid
    (fixed qparams; by table, ir/ops/quantized_pointwise.py) and `mean` (the input's
    qparams, as torch.ao shares them); functional hardswish becomes
    quantized_hardswish(x, output_scale=, output_zero_point=) with the quantize's qparams.
    Runs after the qparams became buffers, so the `_scale_N` numbering is torch.ao's;
    the folded quantize's buffers are deleted, as torch.ao deletes them."""
    from ...ir.ops.quantized_pointwise import fixed_qparams, quantized_hardswish
    graph = gm.graph
    for node in list(graph.nodes):
        name = _pointwise_name(node)
        if name is None or not node.args:
            continue
        source, out_q = node.args[0], qpass._quantize_user(node)
        if out_q is None or not (source.op == OpKind.call_function and
                                 is_op(source.target) and source.target.name == "dequantize"):
            continue
        attrs = out_q.args[1:3]
        if not all(a.op == OpKind.get_attr for a in attrs if hasattr(a, "op")) or \
                not all(hasattr(a, "op") for a in attrs):
            continue
        scale = float(getattr(gm, str(attrs[0].target)).numpy())
        zero_point = int(getattr(gm, str(attrs[1].target)).numpy())
        dtype = out_q.args[3]
        if name == "hardswish":
            if node.op == OpKind.call_module or len(node.args) != 1 or \
                    node.kwargs.get("inplace"):
                continue
            with graph.inserting_before(out_q):
                new = graph.call_function(quantized_hardswish, (source.args[0],), {
                    "output_scale": attrs[0], "output_zero_point": attrs[1]},
                    name="hardswish")     # `hardswish_1` beside the float node, as torch.ao
            out_q.replace_all_uses_with(new)
            graph.erase_node(out_q)
            graph.erase_node(node)
            continue
        if name == "mean":
            if "dtype" in node.kwargs:
                continue
        elif fixed_qparams(name, dtype) != (scale, zero_point) or len(node.args) != 1 or \
                any(v for v in node.kwargs.values()):
            continue
        node.replace_input_with(source, source.args[0])
        out_q.replace_all_uses_with(node)
        graph.erase_node(out_q)
        for attr in attrs:
            if not attr.users:
                graph.erase_node(attr)
                delattr(gm, str(attr.target))
    graph.eliminate_dead_code()


def _swap_weight_only(gm, table: dict, reference: bool = False) -> None:
    from ..nn.intrinsic.quantized import dynamic as nniqd
    from ..nn.quantized import Embedding, EmbeddingBag
    from ..nn.quantized import dynamic as nnqd
    from ..nn.quantized import reference as nnqr
    from .utils import get_qparam_dict
    for target, qconfig in table.items():
        module = gm.get_submodule(target)
        module.qconfig = qconfig
        if reference and isinstance(module, nn.Embedding | nn.EmbeddingBag):
            # torch.ao's reference Embedding / EmbeddingBag: the float module reading the
            # quantize -> dequantize weight
            observer = qconfig.weight()
            observer(module.weight.detach())
            ref_class = nnqr.EmbeddingBag if isinstance(module, nn.EmbeddingBag) else \
                nnqr.Embedding
            _set_module(gm, target, ref_class.from_float(module, get_qparam_dict(observer)))
            continue
        if isinstance(module, LinearReLU):
            module[0].qconfig = qconfig
            new = nniqd.LinearReLU.from_float(module)
        elif type(module) in _DYNAMIC_RNNS:
            new = getattr(nnqd, type(module).__name__).from_float(module)
        elif isinstance(module, nn.EmbeddingBag):
            new = EmbeddingBag.from_float(module)
        elif isinstance(module, nn.Embedding):
            new = Embedding.from_float(module)
        else:
            new = nnqd.Linear.from_float(module)
        _set_module(gm, target, new)


def _swap_custom_modules(gm, table: dict, custom: ConvertCustomConfig) -> None:
    """Observed custom modules -> `quantized_class.from_observed(observed)`, the output
    observer attached as its `activation_post_process` first (torch.ao's order)."""
    mapping = custom.observed_to_quantized_mapping.get(QuantType.STATIC, {})
    for node in gm.graph.nodes:
        target = str(node.target)
        if node.op != OpKind.call_module or target not in table:
            continue
        observed = gm.get_submodule(target)
        quantized_cls = mapping.get(type(observed))
        if quantized_cls is None:
            raise QuantizationError(
                f"convert_fx: no quantized class for the observed custom module {target} "
                f"({type(observed).__name__}); give one with ConvertCustomConfig()."
                f"set_observed_to_quantized_mapping({type(observed).__name__}, ...)")
        post = next((u for u in node.users if u.op == OpKind.call_module and
                     isinstance(gm.get_submodule(str(u.target)),
                                (ObserverBase, FakeQuantizeBase))), None)
        if post is not None:
            observed.activation_post_process = gm.get_submodule(str(post.target))
        _set_module(gm, target, quantized_cls.from_observed(observed))


def _quantized_class(op_name: str, relu: bool):
    from ..nn import intrinsic as _unused  # noqa: F401  (package import order)
    from ..nn.intrinsic import quantized as nniq
    from ..nn import quantized as nnq
    table = {("quantized_linear", False): nnq.Linear, ("quantized_linear", True):
             nniq.LinearReLU, ("quantized_conv2d", False): nnq.Conv2d,
             ("quantized_conv2d", True): nniq.ConvReLU2d, ("quantized_conv3d", False):
             nnq.Conv3d, ("quantized_conv3d", True): nniq.ConvReLU3d}
    return table.get((op_name, relu))


def _quantized_modules(gm, specs: dict) -> None:
    """Lowered module layers become quantized modules under the float module's name, as
    torch.ao's converted models have them (`fc1` -> `ember.ao.nn.quantized.Linear` with
    `weight()`, `scale`, `zero_point`; a fused conv+relu -> `ConvReLU2d`): the node calls
    the module, whose forward runs the same int8 op on the same packed weight, so the
    compilers trace the same quantized_linear / quantized_conv2d through it. A module
    called at several places is called at each (the calls keep their prepared names,
    `fc`, `fc_1`), and its output scale and zero point are its last call's, as torch.ao's
    lowering leaves them (each call site's lowering re-creates the module)."""
    by_weight = {spec["weight"]: spec for spec in specs.values() if "module" in spec}
    calls: dict[str, list] = {}        # module target -> its lowered int8 op nodes
    for node in gm.graph.nodes:
        spec = _lowered_spec(node, by_weight)
        if spec is not None:
            calls.setdefault(spec["module"], []).append(node)
    for target, nodes in calls.items():
        spec = _lowered_spec(nodes[0], by_weight)
        kind = (nodes[0].target.name, bool(nodes[0].args[-1]))
        if any((n.target.name, bool(n.args[-1])) != kind for n in nodes):
            nodes = nodes[:1]       # one module cannot run both with and without relu
        last = nodes[-1]
        qmod = _quantized_class(*kind)._like(spec["float"])
        qmod._set_weight_bias(getattr(gm, spec["weight"]),
                              getattr(gm, spec["bias"]) if spec["bias"] else None)
        qmod.scale, qmod.zero_point = float(last.args[-3]), int(last.args[-2])
        _set_module(gm, target, qmod)
        for node in nodes:
            _call_quantized_module(gm, node, target)
    read = {str(n.target) for n in gm.graph.nodes if n.op == OpKind.get_attr}
    for spec in by_weight.values():       # buffers now held by the modules only
        for key in (spec["weight"], spec["bias"]):
            if key and key not in read and hasattr(gm, key):
                delattr(gm, key)


def _lowered_spec(node, by_weight: dict):
    """The weighted spec of a lowered quantized_linear / _conv2d / _conv3d node of a
    module layer (None for other nodes and functional layers)."""
    if node.op != OpKind.call_function or not is_op(node.target) or node.target.name not in \
            ("quantized_linear", "quantized_conv2d", "quantized_conv3d"):
        return None
    return by_weight.get(str(node.args[1].target))


def _call_quantized_module(gm, node, target: str) -> None:
    graph = gm.graph
    weight, bias_node = node.args[1], node.args[2]
    with graph.inserting_before(node):
        call = graph.call_module(target, (node.args[0],))
    node.replace_all_uses_with(call)
    graph.erase_node(node)
    float_node = node.meta.get("lowered_from")
    _take_name(graph, call, float_node.name if float_node is not None else
               target.replace(".", "_"))
    if "observer_index" in node.meta:     # its dequantize keeps torch.ao's number
        call.meta["observer_index"] = node.meta["observer_index"]
    for attr in (weight, bias_node):
        if attr is not None and not attr.users:
            graph.erase_node(attr)


def _take_name(graph, node, name: str) -> None:
    """Name the node as torch.ao's converted graph does (the module's name) when no
    other node holds that name (the float call it replaces was erased)."""
    if name.isidentifier() and all(n.name != name for n in graph.nodes):
        graph._used.add(name)
        node.name = name


def _activation_module(module, scale: float, zero_point: int, qconfig=None):
    """The torch.ao quantized module for a float activation module run between a
    dequantize and a quantize (None: the module has none)."""
    from ..nn import quantized as nnq
    if type(module) is nn.PReLU and qconfig is not None:
        return nnq.PReLU.from_observed(module, scale, zero_point, qconfig.weight())
    if isinstance(module, nn.Hardswish):
        return nnq.Hardswish(scale, zero_point)
    if isinstance(module, nn.ELU):
        return nnq.ELU(scale, zero_point, module.alpha)
    if isinstance(module, nn.LeakyReLU):
        return nnq.LeakyReLU(scale, zero_point, module.negative_slope)
    if type(module) is nn.Softmax:
        return nnq.Softmax(module.dim, scale, zero_point)
    return None


def _quantized_activation_modules(gm) -> None:
    """Hardswish / ELU / LeakyReLU / Softmax modules between `dequantize` and
    `quantize_per_tensor`
    become torch.ao's quantized modules (their forward dequantizes, runs the float op
    and requantizes with the same qparams: the same values); Dropout on a quantized
    value becomes the quantized Dropout. Names stay the float modules'."""
    from ..nn import quantized as nnq
    for node in list(gm.graph.nodes):
        if node.op != OpKind.call_module or not node.args:
            continue
        module = gm.get_submodule(str(node.target))
        if type(module) is nn.Dropout:
            _set_module(gm, str(node.target), nnq.Dropout(module.p, module.inplace))
            continue
        source, out_q = node.args[0], qpass._quantize_user(node)
        if out_q is None or not (source.op == OpKind.call_function and is_op(source.target)
                                 and source.target.name == "dequantize") or \
                not isinstance(out_q.args[1], (int, float)):
            continue
        new = _activation_module(module, float(out_q.args[1]), int(out_q.args[2]),
                                 gm._ember_quant.get("module_qconfigs", {}).get(
                                     str(node.target)))
        if new is None:
            continue
        _set_module(gm, str(node.target), new)
        node.replace_input_with(source, source.args[0])
        out_q.replace_all_uses_with(node)
        gm.graph.erase_node(out_q)
        if not source.users:
            gm.graph.erase_node(source)


# where each quantized op takes its output scale and zero point
_QPARAM_ARGS = {"quantize_per_tensor": 1, "quantized_linear": 3, "quantized_conv2d": 7,
                "quantized_conv3d": 7, "quantized_add": 2, "quantized_mul": 2}


def _qparams_as_buffers(gm) -> None:
    """Every activation scale / zero point of the converted graph becomes state (float32 /
    int64, 0-d buffers) read through get_attr nodes, as in torch.ao's converted models,
    under torch.ao's names: `<module>_input_scale_0` for a model input a module reads
    first, `<module>_scale_0` after a module, `_scale_N` otherwise. Loading a state_dict
    changes them; compilers tracing the model read their values (a 0-d tensor where the
    op takes a float or an int is its number). A functional linear / conv's weight
    takes the next `<scope>_scale_N` before its output does, as in torch.ao (whose
    lowering then folds the weight's away, leaving the output's `_scale_1`). A shared op
    lowered on the int8 value takes (and leaves unused) the names its reference-graph
    quantize has, as torch.ao's numbering counts it."""
    reserved = set()
    for node in list(gm.graph.nodes):
        if node.meta.pop("dropped_requantize", False) or node.meta.get("computed_qparams"):
            # a shared op (pooling, mean, views, cat) lowered on the int8 value, or an add /
            # mul with a number (qparams derived from its input's): torch.ao's reference
            # quantizes after it, and its lowering keeps that numbering
            stem = _scope(node)
            reserved.add(_free_attr_name(gm, stem + "_scale_", reserved))
            reserved.add(_free_attr_name(gm, stem + "_zero_point_", reserved))
        name = node.target.name if node.op == OpKind.call_function and \
            is_op(node.target) else None
        weight_of = node.meta.get("lowered_op", node)
        if "functional_weight" in weight_of.meta:
            _functional_weight_qparams(gm, node, weight_of, reserved)
        at = _QPARAM_ARGS.get(name)
        if at is None or not isinstance(node.args[at], (int, float)) or \
                node.meta.get("computed_qparams"):
            continue
        stem = _qparams_stem(gm, node)
        scale_key = _free_attr_name(gm, stem + "_scale_", reserved)
        gm.register_buffer(scale_key, Tensor._from_array(np.array(node.args[at], np.float32)))
        zero_key = _free_attr_name(gm, stem + "_zero_point_", reserved)
        gm.register_buffer(zero_key, Tensor._from_array(np.array(node.args[at + 1], np.int64)))
        with gm.graph.inserting_before(node):
            scale_node = gm.graph.get_attr(scale_key)
            zero_node = gm.graph.get_attr(zero_key)
        args = list(node.args)
        args[at], args[at + 1] = scale_node, zero_node
        node.args = tuple(args)


def rederive_scalar_qparams(gm, incompatible_keys=None) -> None:
    """After load_state_dict: an add / mul of a quantized value and a number quantizes
    its result with qparams derived from its input's (torch.ao's add_scalar /
    mul_scalar keep none of their own), held as numbers in the graph; derive them again
    from the input's loaded qparams (and, for add, the number rounded to that scale), in
    graph order so a chain of them follows. An input whose qparams are not read
    directly (a buffer-backed quantized op or module) keeps the numbers it had."""
    by_name = {n.name: n for n in gm.graph.nodes}
    changed = False
    for q in gm.graph.nodes:
        info = q.meta.get("scalar_qparams")
        source = _current_qparams(gm, by_name.get(info[0])) if info else None
        if source is None:
            continue
        _, kind, c, limits, op_name, at = info
        out = qpass.scalar_output_qparams(kind, source[0], source[1], c, *limits)
        op = by_name.get(op_name)
        if out is None or (kind == "add" and op is None):
            continue
        q.args = (q.args[0], float(out[0]), int(out[1])) + tuple(q.args[3:])
        if kind == "add":
            rounded = float(round(c / source[0]) * source[0])
            op.args = tuple(rounded if i == at else a for i, a in enumerate(op.args))
        changed = True
    if changed:
        gm.recompile()


def _current_qparams(gm, node) -> tuple | None:
    """(scale, zero_point) a quantized node's result has now, read from the buffers or
    numbers its op takes them from, or from its quantized module; None otherwise."""
    if node is None:
        return None
    if node.op == OpKind.call_module:
        module = gm.get_submodule(str(node.target))
        scale, zero_point = getattr(module, "scale", None), getattr(module, "zero_point", None)
        if isinstance(scale, (int, float)) and isinstance(zero_point, (int, float)):
            return float(scale), int(zero_point)
        return None
    name = node.target.name if node.op == OpKind.call_function and is_op(node.target) \
        else str(node.target) if node.op == OpKind.call_method else None
    if name in _keeps_input_qparams() and node.args:
        first = node.args[0][0] if name in ("cat", "concat", "concatenate") and \
            isinstance(node.args[0], (list, tuple)) and node.args[0] else node.args[0]
        return _current_qparams(gm, first) if isinstance(first, Node) else None
    at = _QPARAM_ARGS.get(name)
    if at is None:
        return None
    values = []
    for arg in node.args[at:at + 2]:
        if isinstance(arg, Node) and arg.op == OpKind.get_attr:
            arg = fetch_attr(gm, str(arg.target))
        if isinstance(arg, Tensor):
            arg = arg.item()
        if not isinstance(arg, (int, float)):
            return None
        values.append(arg)
    return float(values[0]), int(values[1])


def _keeps_input_qparams() -> set:
    """Ops whose quantized result has their (first) input's scale and zero point."""
    from ...frontend import quantized as q
    return q.SAME_QPARAMS | q.SAME_QPARAMS_REQUANTIZED | q.CLAMPS | {
        "cat", "concat", "concatenate", "relu", "relu_"}


def _functional_weight_qparams(gm, node, float_node, reserved: set) -> None:
    """The weight qparams of a functional linear / conv (`float_node`): named next in
    its scope; lowered (`node` is the int8 op), only the names are taken; reference
    (`node` is the float op), the weight is read through quantize_per_channel (or
    _per_tensor) with those qparams as buffers, then dequantize, as torch.ao's
    reference graph reads it."""
    qweight = float_node.meta.pop("functional_weight")
    stem = _scope(float_node)
    scale_key = _free_attr_name(gm, stem + "_scale_", reserved)
    zero_key = _free_attr_name(gm, stem + "_zero_point_", reserved)
    reserved.update((scale_key, zero_key))
    if node is not float_node:
        return
    per_channel = qweight.qscheme() in (per_channel_affine, per_channel_symmetric)
    if per_channel:
        scale, zero_point = qweight.q_per_channel_scales(), qweight.q_per_channel_zero_points()
    else:
        scale = Tensor._from_array(np.array(qweight.q_scale(), np.float32))
        zero_point = Tensor._from_array(np.array(qweight.q_zero_point(), np.int64))
    gm.register_buffer(scale_key, scale)
    gm.register_buffer(zero_key, zero_point)
    weight = node.args[1]
    graph = gm.graph
    with graph.inserting_before(node):
        scale_node, zero_node = graph.get_attr(scale_key), graph.get_attr(zero_key)
        if per_channel:
            quantized = graph.call_function(OPS_NS.quantize_per_channel, (
                weight, scale_node, zero_node, qweight.q_per_channel_axis(), qweight.dtype))
        else:
            quantized = graph.call_function(OPS_NS.quantize_per_tensor, (
                weight, scale_node, zero_node, qweight.dtype))
        dequantized = graph.call_function(OPS_NS.dequantize, (quantized,))
    node.replace_input_with(weight, dequantized)


def _dequantize_as_method(graph) -> None:
    """`x.dequantize()` (call_method), the form torch.ao's converted graphs print."""
    for node in list(graph.nodes):
        if node.op == OpKind.call_function and is_op(node.target) and \
                node.target.name == "dequantize" and len(node.args) == 1 and not node.kwargs:
            with graph.inserting_before(node):
                method = graph.call_method("dequantize", (node.args[0],))
            node.replace_all_uses_with(method)
            graph.erase_node(node)
            qpass.take_name(graph, method, node.name)     # torch.ao's numbering


def _free_attr_name(gm, prefix: str, reserved=()) -> str:
    index = 0
    while hasattr(gm, f"{prefix}{index}") or f"{prefix}{index}" in reserved:
        index += 1
    return f"{prefix}{index}"


def _qparams_stem(gm, node) -> str:
    """torch.ao's prefix for the qparams a node's output takes: the path of the module
    the observed value was computed in (a module call's own path, a functional op's
    enclosing module, none at the top level); a model input takes the scope of the op
    that first reads it, with `_input` (`conv1_input`, `_input` for a top-level op)."""
    value = node.args[0] if _op_name(node) == "quantize_per_tensor" else node
    unconfigured = getattr(gm, "_ember_quant", {}).get("unconfigured", ())
    if value.op == OpKind.placeholder or value.name in unconfigured:
        users = _in_graph_order(gm.graph, node.users)
        while len(users) == 1 and _is_dequantize(users[0]):   # reference: q -> dq -> op
            users = _in_graph_order(gm.graph, users[0].users)
        linear = [u for u in users if _op_name(u) in ("linear", "quantized_linear")]
        user = (linear or users or [None])[0]
        # the reading op's own scope (a functional linear fused with a relu: the linear's)
        return (_scope(user.meta.get("lowered_op", user)) if user is not None else "") + \
            "_input"
    return _scope(value)


def _in_graph_order(graph, nodes) -> list:
    """`nodes` as the graph runs them (a node's users are kept in the order the uses
    were made, which lowering reshuffles; torch.ao's first reader is the first in the
    prepared graph)."""
    wanted = set(nodes)
    return [n for n in graph.nodes if n in wanted]


def _is_dequantize(node) -> bool:
    return _op_name(node) == "dequantize" or (
        node.op == OpKind.call_method and str(node.target) == "dequantize")


def _op_name(node) -> str | None:
    return node.target.name if node.op == OpKind.call_function and is_op(node.target) \
        else None


def _scope(node) -> str:
    """The module path a node was traced in (for a lowered op, its float node's), as an
    attribute-name stem."""
    node = node.meta.get("lowered_from", node)
    if node.op == OpKind.call_module:
        path = str(node.target)
    else:
        stack = node.meta.get("nn_module_stack") or {}
        path = list(stack.values())[-1][0] if stack else ""
    return path.replace(".", "_")


_QUANT_PLUMBING = {"quantize_per_tensor", "dequantize", "quantized_linear", "quantized_conv2d",
                   "quantized_conv3d", "quantized_add", "quantized_mul", "quantized_hardswish"}


def _float_report(gm, kinds) -> list[tuple[str, str]]:
    """(node, what it calls) for every compute node of the converted graph that runs in
    float: what the patterns or the qconfigs left unquantized, said rather than hidden.
    Shape reads and ops that run on quantized values (pooling, views, relu) are not
    listed."""
    from ..nn.quantized.modules import Dropout, _FloatBetween, _WeightedQuantized
    quantized_ops = _QUANT_PLUMBING
    quantized_values, shape_values = set(), set()
    report = []
    for node in gm.graph.nodes:
        if node.op == OpKind.call_module and isinstance(
                gm.get_submodule(str(node.target)),
                (_WeightedQuantized, _FloatBetween, Dropout)):
            quantized_values.add(node)        # a quantized module (Linear, conv, Hardswish)
            continue
        if qpass._reads_only_shape(node) or (node.all_input_nodes and all(
                n in shape_values for n in node.all_input_nodes)):
            shape_values.add(node)            # sizes and arithmetic on sizes
            continue
        name = node.target.name if is_op(node.target) else None
        if name in quantized_ops and name != "dequantize":
            quantized_values.add(node)
            continue
        if node.op in (OpKind.placeholder, OpKind.get_attr, OpKind.output) or \
                name == "dequantize":
            continue
        kind = qpass.node_kind(node, kinds)
        if kind in qpass.CUSTOM:
            quantized_values.add(node)
            continue
        if kind == "weight_only":             # dynamic int8/float16 Linear, embeddings
            continue
        if (kind in qpass.SHARED or _pointwise_name(node)) and node.args and \
                node.args[0] in quantized_values:
            quantized_values.add(node)        # on the int8 value (_pointwise_on_quantized)
            continue
        if kind == "cat" and qpass._cat_of_tensors(node) and \
                all(a in quantized_values for a in node.args[0]):
            quantized_values.add(node)        # joins the integers (shared qparams)
            continue
        if (kind in qpass.FIXED or kind in qpass.OWN_OBSERVER or kind == USER_PATTERN or
                kind in qpass.SHARED) and qpass._quantize_user(node) is not None:
            continue      # dequantize -> float op -> quantize (a `flatten` method as torch.ao)
        what = str(node.target) if node.op == OpKind.call_module else \
            (name or getattr(node.target, "__name__", str(node.target)))
        report.append((node.name, f"{node.op.value} {what}"))
    return report


def convert_fx(graph_module, convert_custom_config=None, _remove_qconfig=True,
               qconfig_mapping=None, backend_config=None) -> GraphModule:
    """A calibrated prepared model -> an int8 model (quantized ops, float boundaries)."""
    gm = _convert(graph_module, reference=False, convert_custom_config=convert_custom_config,
                  qconfig_mapping=qconfig_mapping)
    return _strip_qconfigs(gm) if _remove_qconfig else gm


def convert_to_reference_fx(graph_module, convert_custom_config=None, _remove_qconfig=True,
                            qconfig_mapping=None, backend_config=None) -> GraphModule:
    """A calibrated prepared model -> the reference form: dequantize -> float op ->
    quantize around every quantized op; weighted modules become reference modules
    (torch.ao.nn.quantized.reference's, or the backend config's
    `reference_quantized_module`)."""
    gm = _convert(graph_module, reference=True, convert_custom_config=convert_custom_config,
                  backend_config=backend_config, qconfig_mapping=qconfig_mapping)
    return _strip_qconfigs(gm) if _remove_qconfig else gm

