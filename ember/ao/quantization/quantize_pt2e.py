"""Export-based quantization (torch.ao.quantization.quantize_pt2e's names):

    ep = ember.export(model.eval(), (x,))
    quantizer = X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(ep.module(), quantizer)     # or the ExportedProgram itself
    for batch in calibration_data:
        prepared(batch)
    quantized = convert_pt2e(prepared)                  # torch's q/dq graph

Two roads. A quantizer that annotates (torch's annotation API: a user's `annotate(model)`,
X86InductorQuantizer's post-training configs, EmbeddingQuantizer, XNNPACKQuantizer's
dynamic ones) marks the exported graph as recorded (op-level nodes; eval BatchNorm after
a conv folded first, as torch does); ember/ao/quantization/pt2e_annotated.py observes the
annotated edges and outputs, and convert_pt2e gives the q/dq form (a dynamic spec: a
quantize whose qparams come from each call's input).

ember's mapping quantizers (X86InductorQuantizer's QAT configs or `int8_lowering=True`,
XNNPACKQuantizer's static configs) take the FX road: `conv2d` / `linear` with constant
weights are lifted back to modules (named after the weights: `fc1.weight` -> module
`fc1`; `bn1.running_mean` ... -> `bn1`), then the FX path's prepare runs (BN folding, the
same patterns and observers; the quantizer becomes a QConfigMapping) and convert_pt2e is
the FX convert (lowered int8 ops; `use_reference_representation=True` gives the q/dq
reference form).

prepare_qat_pt2e (FX road): a program exported in eval mode (lifted BatchNorm layers go
back to training mode) or in training mode (the training-mode BatchNorm decomposition and
its running-statistic copy_ updates are lifted to nn.BatchNorm2d), so conv+bn(+relu)
become ConvBn(ReLU)2d QAT modules (simulated BN folding). prepare_pt2e refuses a program
exported in training mode, advising model.eval().

Left out: dynamic QAT, grouped/depthwise patterns beyond what the FX path supports, and
programs whose outputs are nested structures other than a tensor or a flat tuple of
tensors.
"""
from __future__ import annotations

import copy

from ...frontend import nn
from ...compiler.compile_guards import LEAF
from ...frontend.fx.graph_module import GraphModule
from ...frontend.nn.modules.module import Module
from ...frontend.tensor import Tensor
from ...ir.graph import OpKind
from ...ir.registry import is_op
from . import pt2e_annotated
from . import quantize_fx as qfx
from .quantize_fx import QuantizationError
from .quantizer import Quantizer


# --- from an exported program to a GraphModule with modules ---------------------------------
def _exported_program(model):
    """The ExportedProgram behind `model` (ep or ep.module()), or None."""
    ep = getattr(model, "ep", model)
    if all(hasattr(ep, a) for a in ("graph", "state_dict", "input_specs", "out_spec")):
        return ep
    return None


def _root_with(state: dict) -> Module:
    """A Module tree holding each `a.b.c` tensor of `state` at that path."""
    root = Module()
    for name, value in state.items():
        *path, last = name.split(".")
        owner = root
        for part in path:
            if part not in owner._modules:
                owner.add_module(part, Module())
            owner = owner._modules[part]
        owner.register_buffer(last, value)
    return root


def _refuse_training_graph(gm) -> None:
    if any(_op(n) == "copy_" for n in gm.graph.nodes):
        raise QuantizationError(
            "prepare_pt2e: the program was exported in training mode (its graph updates "
            "BatchNorm running statistics in place); export the model after model.eval(). "
            "For QAT, prepare_qat_pt2e takes either mode")


def _from_exported(ep) -> GraphModule:
    graph = copy.deepcopy(ep.graph)
    gm = GraphModule(_root_with(ep.tensors), graph, "ExportedModule")
    output = graph.output_node
    outs = output.args[0]
    if ep.out_spec is LEAF and isinstance(outs, (tuple, list)) and len(outs) == 1:
        output.args = (outs[0],)
    elif not (isinstance(ep.out_spec, tuple) and all(s is LEAF for s in ep.out_spec)) and \
            ep.out_spec is not LEAF:
        raise QuantizationError("prepare_pt2e: the exported program returns a nested "
                                "structure; return a tensor or a tuple of tensors")
    return gm


def _op(node) -> str | None:
    return node.target.name if node.op == OpKind.call_function and is_op(node.target) \
        else None


def _attr(node) -> str | None:
    """The get_attr target a node reads, directly or through a reshape."""
    if node is None or not hasattr(node, "op"):
        return None
    if _op(node) == "reshape":
        node = node.args[0]
    return str(node.target) if node.op == OpKind.get_attr else None


def _module_name(gm, attr_target: str, suffix: str, fallback: str) -> str:
    """Module name for a lifted layer: the weight's owner path when that owner holds
    nothing else than what the layer takes over, else a fresh name."""
    if attr_target.endswith(suffix):
        name = attr_target[:-len(suffix)]
        existing = _get(gm, name)
        if name and (existing is None or type(existing) is Module and not existing._modules):
            return name
    name, i = fallback, 0
    while hasattr(gm, name):
        i += 1
        name = f"{fallback}_{i}"
    return name


def _get(gm, name):
    try:
        return gm.get_submodule(name)
    except AttributeError:
        return None


def _set(gm, name: str, module) -> None:
    parent, _, last = name.rpartition(".")
    owner = gm.get_submodule(parent) if parent else gm
    if last in owner._modules:
        del owner._modules[last]
    owner.add_module(last, module)


def _tensor(gm, target: str) -> Tensor:
    value = gm
    for part in target.split("."):
        value = getattr(value, part)
    return value


def _param(gm, target: str) -> nn.Parameter:
    return nn.Parameter(_tensor(gm, target).detach().clone())


def _lifted_linear(gm, node):
    weight, bias = node.args[1], node.args[2] if len(node.args) > 2 else None
    out_f, in_f = tuple(_tensor(gm, str(weight.target)).shape)
    mod = nn.Linear(in_f, out_f, bias=bias is not None)
    mod.weight = _param(gm, str(weight.target))
    if bias is not None:
        mod.bias = _param(gm, str(bias.target))
    return mod


def _lifted_conv2d(gm, node):
    args = list(node.args) + [None] * (7 - len(node.args))
    weight, bias = args[1], args[2]
    stride, padding, dilation = (node.kwargs.get(k, args[i] if args[i] is not None else d)
                                 for i, k, d in ((3, "stride", 1), (4, "padding", 0),
                                                 (5, "dilation", 1)))
    groups = node.kwargs.get("groups", args[6] if args[6] is not None else 1)
    w = _tensor(gm, str(weight.target))
    mod = nn.Conv2d(w.shape[1] * groups, w.shape[0], tuple(w.shape[2:]), stride, padding,
                    dilation, groups, bias=bias is not None)
    mod.weight = _param(gm, str(weight.target))
    if bias is not None:
        mod.bias = _param(gm, str(bias.target))
    return mod


def _lift_embeddings(gm) -> None:
    """embedding(table, indices) with a constant table and torch's defaults otherwise ->
    an nn.Embedding call, so that an embedding quantizer sees the module."""
    for node in list(gm.graph.nodes):
        if _op(node) != "embedding" or len(node.args) < 2 or \
                getattr(node.args[0], "op", None) != OpKind.get_attr:
            continue
        rest = list(node.args[2:]) + [node.kwargs.get(k) for k in
                                      ("padding_idx", "scale_grad_by_freq", "sparse")]
        if any(v not in (None, -1, False) for v in rest):
            continue                          # padding_idx etc.: the lookup stays float
        table = str(node.args[0].target)
        weight = _param(gm, table)
        mod = nn.Embedding(weight.shape[0], weight.shape[1])
        mod.weight = weight
        name = _module_name(gm, table, ".weight", "embedding")
        _set(gm, name, mod)
        with gm.graph.inserting_before(node):
            call = gm.graph.call_module(name, (node.args[1],))
        node.replace_all_uses_with(call)
        gm.graph.erase_node(node)


def _lift_weighted(gm) -> None:
    """linear/conv2d with constant weights (and bias) -> nn.Linear / nn.Conv2d calls."""
    builders = {"linear": _lifted_linear, "conv2d": _lifted_conv2d}
    for node in list(gm.graph.nodes):
        kind = _op(node)
        if kind not in builders or len(node.args) < 2:
            continue
        weight = node.args[1]
        bias = node.args[2] if len(node.args) > 2 else node.kwargs.get("bias")
        if getattr(weight, "op", None) != OpKind.get_attr or \
                (bias is not None and getattr(bias, "op", None) != OpKind.get_attr):
            continue                              # computed weights stay functional (float)
        module = builders[kind](gm, node)
        name = _module_name(gm, str(weight.target), ".weight", kind)
        _set(gm, name, module)
        with gm.graph.inserting_before(node):
            call = gm.graph.call_module(name, (node.args[0],))
        node.replace_all_uses_with(call)
        gm.graph.erase_node(node)


def _bn_parts(add_node):
    """(mul, div, sub, sqrt, var_eps, x, mean, var, eps, gamma, beta) of the nodes of
    (x - mean) / sqrt(var + eps) * gamma + beta ending at add_node, or None where its
    arguments do not unpack so (what each node computes is checked by the callers)."""
    try:
        mul, beta = add_node.args
        div, gamma = mul.args
        sub, sqrt = div.args
        x, mean = sub.args
        (var_eps,) = sqrt.args
        var, eps = var_eps.args
    except (ValueError, AttributeError, TypeError):
        return None
    return mul, div, sub, sqrt, var_eps, x, mean, var, eps, gamma, beta


def _bn_pattern(add_node):
    """(input, mean, var, eps, gamma, beta) when add_node ends ember's eval-mode
    batch_norm decomposition: (x - mean) / sqrt(var + eps) * gamma + beta."""
    parts = _bn_parts(add_node)
    if parts is None:
        return None
    mul, div, sub, sqrt, var_eps, x, mean, var, eps, gamma, beta = parts
    ops = (_op(mul), _op(div), _op(sub), _op(sqrt), _op(var_eps))
    attrs = (_attr(mean), _attr(var), _attr(gamma), _attr(beta))
    if ops != ("mul", "div", "sub", "sqrt", "add") or None in attrs or \
            not isinstance(eps, float) or _op(mean) != "reshape" or \
            len(mean.args[1]) != 4:
        return None
    return (x, *attrs[:2], eps, *attrs[2:])


def _lift_batch_norm(gm) -> None:
    """ember's eval-mode BatchNorm2d decomposition -> an nn.BatchNorm2d call (eval)."""
    for node in list(gm.graph.nodes):
        if _op(node) != "add":
            continue
        found = _bn_pattern(node)
        if found is None:
            continue
        x, mean, var, eps, gamma, beta = found
        running_mean = _tensor(gm, mean)
        bn = nn.BatchNorm2d(running_mean.shape[0], eps=eps)
        bn.running_mean = running_mean.detach().clone()
        bn.running_var = _tensor(gm, var).detach().clone()
        bn.weight, bn.bias = _param(gm, gamma), _param(gm, beta)
        bn.eval()
        name = _module_name(gm, mean, ".running_mean", "batch_norm")
        _set(gm, name, bn)
        with gm.graph.inserting_before(node):
            call = gm.graph.call_module(name, (x,))
        node.replace_all_uses_with(call)
        gm.graph.erase_node(node)


def _ancestors(node, limit: int = 16) -> set:
    seen, todo = set(), [node]
    while todo and len(seen) < limit * 4:
        n = todo.pop()
        for a in getattr(n, "all_input_nodes", ()):
            if a not in seen:
                seen.add(a)
                todo.append(a)
    return seen


def _train_bn_pattern(add_node):
    """(input, eps, gamma, beta, mean node, var node) when add_node ends ember's
    training-mode batch_norm decomposition: (x - mean(x)) / sqrt(var(x) + eps) * gamma +
    beta, with mean / var over (0, 2, 3)."""
    parts = _bn_parts(add_node)
    if parts is None:
        return None
    mul, div, sub, sqrt, var_eps, x, mean, var, eps, gamma, beta = parts
    ops = (_op(mul), _op(div), _op(sub), _op(sqrt), _op(var_eps), _op(mean), _op(var))
    if ops != ("mul", "div", "sub", "sqrt", "add", "mean", "mean") or \
            mean.args[0] is not x or _attr(gamma) is None or _attr(beta) is None or \
            not isinstance(eps, float) or list(mean.args[1]) != [0, 2, 3]:
        return None
    return x, eps, _attr(gamma), _attr(beta), mean, var


def _lift_train_batch_norm(gm) -> None:
    """ember's training-mode BatchNorm2d (batch statistics, running statistics updated
    by copy_) -> an nn.BatchNorm2d call in training mode, for prepare_qat_pt2e on a
    program exported in training mode (torch's QAT recipe exports so)."""
    copies = [n for n in gm.graph.nodes if _op(n) == "copy_"]
    for node in list(gm.graph.nodes):
        if _op(node) != "add":
            continue
        found = _train_bn_pattern(node)
        if found is None:
            continue
        x, eps, gamma, beta, mean, var = found
        updates = [c for c in copies if mean in _ancestors(c.args[1])]
        stats = {("running_var" if var in _ancestors(c.args[1]) else "running_mean"): c
                 for c in updates}
        if set(stats) != {"running_mean", "running_var"}:
            continue
        new_mean = stats["running_mean"].args[1]          # old * (1 - m) + batch * m
        try:
            momentum = float(new_mean.args[1].args[1])
        except (AttributeError, IndexError, TypeError, ValueError):
            continue
        running_mean = _tensor(gm, str(stats["running_mean"].args[0].target))
        bn = nn.BatchNorm2d(running_mean.shape[0], eps=eps, momentum=momentum)
        bn.running_mean = running_mean.detach().clone()
        bn.running_var = _tensor(gm, str(stats["running_var"].args[0].target)).detach().clone()
        bn.weight, bn.bias = _param(gm, gamma), _param(gm, beta)
        name = _module_name(gm, str(stats["running_mean"].args[0].target), ".running_mean",
                            "batch_norm")
        _set(gm, name, bn)
        with gm.graph.inserting_before(node):
            call = gm.graph.call_module(name, (x,))
        node.replace_all_uses_with(call)
        gm.graph.erase_node(node)
        prefix = str(stats["running_mean"].args[0].target)[:-len("running_mean")]
        for c in [c for c in copies if _copies_into(c, prefix + "num_batches_tracked")]:
            # the module counts its own calls now (training-mode export records the count)
            bn.num_batches_tracked = _tensor(gm, str(c.args[0].target)).detach().clone()
            stats[prefix + "num_batches_tracked"] = c
        for c in stats.values():
            gm.graph.erase_node(c)
            copies.remove(c)


def _copies_into(node, target: str) -> bool:
    dest = node.args[0] if node.args else None
    return getattr(dest, "op", None) == "get_attr" and str(dest.target) == target


_OUT_OF_PLACE = {"relu_": "relu", "add_": "add", "mul_": "mul"}


def _functionalize_inplace(gm) -> None:
    """relu_/add_/mul_ on a value nothing else reads -> relu/add/mul, so that the FX
    patterns (conv+relu, add+relu, quantized add) see them (`nn.ReLU(inplace=True)`,
    `out += identity` in residual blocks)."""
    from ...ir.ops import OPS_NS
    for node in gm.graph.nodes:
        name = _op(node)
        if name in _OUT_OF_PLACE and node.args and \
                getattr(node.args[0], "users", None) is not None and \
                len(node.args[0].users) == 1:
            node.target = getattr(OPS_NS, _OUT_OF_PLACE[name])


def _relu_as_functional(gm) -> None:
    """An exported program's relus are all the one op (`torch.relu`, `F.relu` and
    nn.ReLU alike); the x86 quantizer fuses each into the conv / linear / add before it,
    as the FX patterns fuse `F.relu` (they run `torch.relu` after a conv in float)."""
    from ...frontend.nn import functional as F
    from ...ir.ops import OPS_NS
    for node in gm.graph.nodes:
        if node.op == OpKind.call_function and node.target is OPS_NS.relu:
            node.target = F.relu


def _graph_module(model) -> GraphModule:
    ep = _exported_program(model)
    if ep is not None:
        gm = _from_exported(ep)
    elif isinstance(model, GraphModule):
        gm = copy.deepcopy(model)
    else:
        raise QuantizationError(f"prepare_pt2e expects an ember.export program (or its "
                                f".module()) or an ember.fx GraphModule, got "
                                f"{type(model).__name__}")
    _functionalize_inplace(gm)
    return gm


def _set_constant(gm, target: str, value) -> None:
    *path, last = target.split(".")
    owner = gm.get_submodule(".".join(path)) if path else gm
    if last in getattr(owner, "_parameters", {}):
        del owner._parameters[last]
    owner.register_buffer(last, value)


def _fold_conv_bn_constants(gm) -> None:
    """conv2d (constant weight) -> eval-mode BatchNorm decomposition => one conv2d with
    the BN folded into its weight and bias (torch's prepare_pt2e folds so before
    annotating): w * gamma / sqrt(var + eps), (b - mean) * gamma / sqrt(var + eps) + beta,
    in torch's order of float32 operations."""
    from ...ir.ops import OPS_NS
    for node in list(gm.graph.nodes):
        found = _op(node) == "add" and _bn_pattern(node)
        if not found:
            continue
        conv, mean, var, eps, gamma, beta = found
        if _op(conv) != "conv2d" or len(conv.users) != 1 or \
                getattr(conv.args[1], "op", None) != OpKind.get_attr:
            continue
        bias = conv.args[2] if len(conv.args) > 2 else None
        if bias is not None and getattr(bias, "op", None) != OpKind.get_attr:
            continue
        weight = _tensor(gm, str(conv.args[1].target)).detach()
        rsqrt = OPS_NS.rsqrt(_tensor(gm, var).detach() + eps)
        g, b_ = _tensor(gm, gamma).detach(), _tensor(gm, beta).detach()
        conv_b = _tensor(gm, str(bias.target)).detach() if bias is not None else \
            OPS_NS.zeros_like(_tensor(gm, mean).detach())
        _set_constant(gm, str(conv.args[1].target),
                      weight * (g * rsqrt).reshape([-1, 1, 1, 1]))
        fused_bias = (conv_b - _tensor(gm, mean).detach()) * rsqrt * g + b_
        if bias is not None:
            _set_constant(gm, str(bias.target), fused_bias)
        else:
            name = _module_name(gm, str(conv.args[1].target) + "_bias", "", "_fused_bias")
            _set_constant(gm, name, fused_bias)
            with gm.graph.inserting_before(conv):
                bias_node = gm.graph.get_attr(name)
            conv.args = (conv.args[0], conv.args[1], bias_node, *conv.args[3:])
        node.replace_all_uses_with(conv)
    gm.graph.eliminate_dead_code()
    gm.recompile()


def _lifted(model, is_qat: bool = False) -> GraphModule:
    gm = _graph_module(model)
    if is_qat:
        _lift_train_batch_norm(gm)
    _refuse_training_graph(gm)
    _relu_as_functional(gm)
    _lift_batch_norm(gm)
    _lift_weighted(gm)
    _lift_embeddings(gm)
    gm.graph.eliminate_dead_code()
    gm.graph.lint()
    gm.recompile()
    return gm


# --- the pt2e entry points -------------------------------------------------------------------
def _check_quantizer(quantizer, is_qat: bool):
    if not isinstance(quantizer, Quantizer):
        raise QuantizationError(f"prepare_pt2e expects a Quantizer (e.g. "
                                f"X86InductorQuantizer), got {type(quantizer).__name__}")
    if getattr(quantizer, "is_qat", is_qat) != is_qat:
        raise QuantizationError(
            "prepare_pt2e: the quantizer's config is for QAT (is_qat=True); use "
            "prepare_qat_pt2e" if not is_qat else
            "prepare_qat_pt2e: the quantizer's config is for post-training quantization; "
            "use get_default_x86_inductor_quantization_config(is_qat=True)")
    return quantizer.qconfig_mapping()


def _annotating(quantizer) -> bool:
    return isinstance(quantizer, Quantizer) and quantizer.uses_annotations


def prepare_pt2e(model, quantizer) -> GraphModule:
    """Insert observers into an exported program (post-training quantization)."""
    if _annotating(quantizer):
        gm = _graph_module(model)
        _refuse_training_graph(gm)
        _fold_conv_bn_constants(gm)
        return pt2e_annotated.prepare_annotated(gm, quantizer, False)
    mapping = _check_quantizer(quantizer, False)
    gm = _lifted(model).eval()
    quantizer.validate(gm)
    return qfx._prepare(gm, mapping, (), None, is_qat=False)


def prepare_qat_pt2e(model, quantizer) -> GraphModule:
    """Insert fake quantizes for quantization-aware training; conv+bn(+relu) train with
    simulated BN folding. Train the returned module (it is in training mode)."""
    if _annotating(quantizer) and getattr(quantizer, "global_config", None) is not None:
        _check_quantizer(quantizer, True)     # ember's x86 / XNNPACK: a PTQ config refused
    if _annotating(quantizer):
        return pt2e_annotated.prepare_annotated(_graph_module(model), quantizer, True)
    mapping = _check_quantizer(quantizer, True)
    gm = _lifted(model, is_qat=True).train()
    quantizer.validate(gm)
    return qfx._prepare(gm, mapping, (), None, is_qat=True)


def convert_pt2e(model, use_reference_representation: bool = False,
                 fold_quantize: bool = True) -> GraphModule:
    """A calibrated (or trained) prepare_pt2e result -> the int8 model (convert_fx's
    lowering), or with use_reference_representation=True the q/dq reference form. A model
    prepared with an annotating quantizer converts to the q/dq form."""
    if getattr(model, "_pt2e_annotated", False):
        # a copy, as convert_fx: the prepared model keeps its observers
        return pt2e_annotated.convert_annotated(_copy_without_annotations(model),
                                                fold_quantize)
    if use_reference_representation:
        return qfx.convert_to_reference_fx(model)
    return qfx.convert_fx(model)


def _copy_without_annotations(model):
    """A deep copy of a prepared model. The annotations stay behind: they name nodes
    later in the graph, which a node-by-node copy of their meta would duplicate."""
    from .quantizer.quantizer import Q_ANNOTATION_KEY
    saved = {n: n.meta.pop(Q_ANNOTATION_KEY) for n in model.graph.nodes
             if Q_ANNOTATION_KEY in n.meta}
    try:
        return copy.deepcopy(model)
    finally:
        for node, ann in saved.items():
            node.meta[Q_ANNOTATION_KEY] = ann


def move_exported_model_to_eval(model):
    """torch needs this for exported graphs; ember's prepared model has real modules."""
    return model.eval()


def move_exported_model_to_train(model):
    return model.train()


def allow_exported_model_train_eval(model):
    """torch makes `model.train()` / `model.eval()` work on an exported graph with this;
    ember's prepared and converted models are modules whose train/eval already switch
    dropout and batch norm, so the model is returned as it is."""
    return model


__all__ = ["prepare_pt2e", "prepare_qat_pt2e", "convert_pt2e", "move_exported_model_to_eval",
           "move_exported_model_to_train", "allow_exported_model_train_eval"]
