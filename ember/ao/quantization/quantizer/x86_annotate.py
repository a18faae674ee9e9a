"""X86InductorQuantizer's annotation recipe (what torchao's x86 quantizer marks, on ember's
exported graph): which values are quantized, shared or left float, node for node.

The recipe, per config (module names first, then operator types, then the global one; a
node annotated by an earlier one is skipped; a None config marks its nodes "not
quantized"):

1. fusion patterns, their *inputs* annotated: conv2d [+ add [+ nn.ReLU]], conv2d + a
   unary module (nn.ReLU, nn.Hardtanh, nn.Hardswish, nn.ReLU6, nn.SiLU), conv2d alone;
   linear [+ add [+ nn.ReLU]], linear + a unary module (nn.ReLU, nn.LeakyReLU, nn.Tanh,
   nn.GELU), linear alone; matmul (under a matmul operator setting only); mul of two
   same-shaped tensors. Activation and weight inputs
   get the config's specs, bias none; the pattern's last node is "the output of a
   quantized pattern" (only the add of a linear + add does not carry its other input's
   observer). Nothing marks the outputs: a value is quantized where a quantized op reads
   it, so a model output stays float.
2. propagation, in graph order: max_pool2d, cat, avg_pool2d, adaptive_avg_pool2d and
   flatten take a quantized input when every input comes out of a quantized pattern
   (flatten only when a quantizable op reads it); their output then shares the input's
   observer (int8 in, int8 out).

The unary and module patterns are told apart by the export's `nn_module_stack`: an
nn.ReLU module fuses, a functional relu (`torch.relu`, `F.relu`) does not, as in torch.
A residual `+` and `torch.add` are the same `add` op in ember's graph, and both fuse
(torch fuses only `+`).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

from ....frontend import nn
from ....frontend.nn import functional as F
from ....ir.graph import OpKind
from ....ir.registry import is_op
from .quantizer import Q_ANNOTATION_KEY, QuantizationAnnotation, SharedQuantizationSpec

INT8_IN_INT8_OUT = {"max_pool2d", "cat", "avg_pool2d", "adaptive_avg_pool2d", "flatten"}
DEFAULT_QUANTIZABLE = INT8_IN_INT8_OUT | {"conv1d", "conv2d", "linear", "mul"}
QUANTIZABLE = DEFAULT_QUANTIZABLE | {"matmul"}

_CONV_UNARY = (nn.ReLU, nn.Hardtanh, nn.Hardswish, nn.ReLU6, nn.SiLU)
_LINEAR_UNARY = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.GELU)


@dataclass
class X86Annotation(QuantizationAnnotation):
    _is_output_of_quantized_pattern: bool = False


def op_name(node) -> str | None:
    return node.target.name if node.op == OpKind.call_function and is_op(node.target) \
        else None


def class_name(cls) -> str:
    """How the export's metadata names a module class."""
    return f"{cls.__module__}.{cls.__qualname__}"


def _module_of(node):
    """(path, class name) of the innermost submodule whose call recorded node, or None."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return None
    path, cls = list(stack.values())[-1]
    return (path, cls) if path else None


def _from_module(node, types) -> bool:
    """Recorded inside a module of exactly one of `types` (torch matches source
    partitions by exact type)."""
    found = _module_of(node)
    types = types if isinstance(types, tuple) else (types,)
    return found is not None and found[1] in {class_name(t) for t in types}


def _annotated(node) -> bool:
    ann = node.meta.get(Q_ANNOTATION_KEY)
    return ann is not None and ann._annotated


def _output_of_quantized_pattern(node) -> bool:
    ann = node.meta.get(Q_ANNOTATION_KEY)
    return _annotated(node) and getattr(ann, "_is_output_of_quantized_pattern", False)


def _skip(nodes, filter_fn) -> bool:
    return any(_annotated(n) for n in nodes) or not filter_fn(nodes)


def _not_quantized(nodes) -> None:
    for node in nodes:
        node.meta[Q_ANNOTATION_KEY] = X86Annotation(_annotated=True)


def _mark(node, input_qspec_map=None, output=False) -> None:
    node.meta[Q_ANNOTATION_KEY] = X86Annotation(
        input_qspec_map=dict(input_qspec_map or {}), _annotated=True,
        _is_output_of_quantized_pattern=output)


# --- filters: which patterns a setting covers --------------------------------------------------
def module_name_filter(name: str):
    """Every node of the pattern was recorded inside the call of the module at `name`
    (or one of its submodules)."""
    def covers(nodes) -> bool:
        return all(name in (n.meta.get("nn_module_stack") or {}) for n in nodes)
    return covers


def operator_type_filter(op: str):
    def covers(nodes) -> bool:
        count = sum(op_name(n) == op for n in nodes)
        if count > 1:
            raise NotImplementedError(f"X86InductorQuantizer: several {op} nodes within "
                                      f"one pattern")
        return count == 1
    return covers


def global_filter(nodes) -> bool:
    count = sum(op_name(n) in DEFAULT_QUANTIZABLE for n in nodes)
    if count > 1:
        raise NotImplementedError("X86InductorQuantizer: several quantizable operations "
                                  "within one pattern")
    return count == 1


# --- step 1: conv / linear fusion patterns --------------------------------------------------
def _weighted_inputs(node, config) -> dict:
    specs = {node.args[0]: config.input_spec(), node.args[1]: config.weight_spec()}
    bias = node.args[2] if len(node.args) > 2 else None
    if hasattr(bias, "op"):
        specs[bias] = None
    return specs


def _sole_user(node):
    users = list(node.users)
    return users[0] if len(users) == 1 else None


def _unary_after(node, types):
    """The single-node partition of a unary module (of `types`) reading node."""
    for user in node.users:
        if user.op == OpKind.call_function and _from_module(user, types):
            return user
    return None


def _binary_after(node):
    """(add, other operand) when node's only reader is an add of two graph values."""
    add = _sole_user(node)
    if add is None or op_name(add) != "add" or len(add.args) < 2 or \
            not all(hasattr(a, "op") for a in add.args[:2]):
        return None
    other = add.args[1] if add.args[0] is node else add.args[0]
    return add, other


def _is_user_add(add) -> bool:
    """An add the model's forward wrote (not one inside a library module's own ops,
    such as a BatchNorm decomposition left unfolded)."""
    found = _module_of(add)
    return found is None or not found[1].startswith("ember.")


def _weighted_nodes(gm, op: str):
    return [n for n in gm.graph.nodes if op_name(n) == op and len(n.args) >= 2]


def _annotate_weighted(gm, config, filter_fn, op, module_type, unary_types,
                       add_carries_input: bool) -> None:
    """conv2d / linear: binary + unary, binary, unary, alone (torch's order)."""
    nodes = _weighted_nodes(gm, op)
    fusable = [n for n in nodes if _from_module(n, module_type)]
    for with_unary in (True, False):                      # op + add [+ nn.ReLU]
        for node in fusable:
            found = _binary_after(node) if len(node.users) == 1 else None
            if found is None or not _is_user_add(found[0]):
                continue
            add, other = found
            unary = _unary_after(add, nn.ReLU) if with_unary else None
            if with_unary and unary is None:
                continue
            pattern = [n for n in (unary, add, node) if n is not None]
            if _skip(pattern, filter_fn):
                continue
            if config is None:
                _not_quantized(pattern)
                continue
            _mark(node, _weighted_inputs(node, config))
            # torch leaves a linear's residual operand float (accuracy), not a conv's
            _mark(add, {other: config.input_spec()} if add_carries_input else {},
                  output=unary is None)
            if unary is not None:
                _mark(unary, output=True)
    for node in fusable:                                  # op + a unary module
        unary = _unary_after(node, unary_types)
        if unary is None or _skip([unary, node], filter_fn):
            continue
        if config is None:
            _not_quantized([node, unary])
            continue
        _mark(node, _weighted_inputs(node, config))
        _mark(unary, output=True)
    for node in nodes:                                    # alone (functional too)
        if _skip([node], filter_fn):
            continue
        if config is None:
            _not_quantized([node])
            continue
        _mark(node, _weighted_inputs(node, config), output=True)


def _annotate_mul(gm, config, filter_fn) -> None:
    for node in gm.graph.nodes:
        if op_name(node) != "mul" or _skip([node], filter_fn):
            continue
        if config is None:
            _not_quantized([node])
            continue
        a, b = (node.args + (None, None))[:2]
        if not (hasattr(a, "meta") and hasattr(b, "meta")) or \
                "val" not in a.meta or "val" not in b.meta or \
                tuple(a.meta["val"].shape) != tuple(b.meta["val"].shape):
            continue
        _mark(node, {a: config.input_spec(), b: config.input_spec()}, output=True)


def _annotate_matmul(gm, config, filter_fn) -> None:
    """Both operands quantized (only under a matmul operator-type setting: the global
    filter counts default-quantizable ops, which matmul is not)."""
    for node in gm.graph.nodes:
        if op_name(node) != "matmul" or _skip([node], filter_fn):
            continue
        if config is None:
            _not_quantized([node])
            continue
        _mark(node, {a: config.input_spec() for a in node.args if hasattr(a, "op")},
              output=True)


# --- step 2: propagation through int8-in-int8-out ops ----------------------------------------
def _propagate(gm, config, filter_fn) -> None:
    for node in gm.graph.nodes:
        op = op_name(node)
        if op not in INT8_IN_INT8_OUT or _annotated(node) or _skip([node], filter_fn):
            continue
        if config is None:
            _not_quantized([node])
            continue
        if op == "cat":
            inputs = list(node.args[0])
            if not all(_output_of_quantized_pattern(i) for i in inputs):
                continue
            first = inputs[0]
            specs = {first: config.input_spec()}
            for other in inputs[1:]:
                specs.setdefault(other, SharedQuantizationSpec((first, node)))
            _mark(node, specs, output=True)
            continue
        if op == "flatten" and node.users and \
                not any(op_name(u) in QUANTIZABLE for u in node.users):
            continue
        source = node.args[0]
        if not _output_of_quantized_pattern(source):
            if op == "max_pool2d":
                warnings.warn(f"The input of maxpool2d is not quantized, skip annotate "
                              f"maxpool2d with config {config}.")
            continue
        _mark(node, {source: config.input_spec()}, output=True)


def annotate_outputs(gm) -> None:
    """int8 in, int8 out: a propagated op's output shares its input's observer."""
    for node in gm.graph.nodes:
        op = op_name(node)
        if op not in INT8_IN_INT8_OUT or not _output_of_quantized_pattern(node):
            continue
        ann = node.meta[Q_ANNOTATION_KEY]
        first = node.args[0][0] if op == "cat" else node.args[0]
        if first in ann.input_qspec_map:
            ann.output_qspec = SharedQuantizationSpec((first, node))


def annotate_with_config(gm, config, filter_fn) -> None:
    _annotate_weighted(gm, config, filter_fn, "conv2d", nn.Conv2d, _CONV_UNARY, True)
    _annotate_weighted(gm, config, filter_fn, "linear", nn.Linear, _LINEAR_UNARY, False)
    _annotate_matmul(gm, config, filter_fn)
    _annotate_mul(gm, config, filter_fn)
    _propagate(gm, config, filter_fn)


# nn modules / functions -> the op a set_module_type_qconfig / set_function_type_qconfig
# setting covers (torch maps each to its aten operator)
def operator_of(module_or_function) -> str | None:
    import ember
    table = {nn.Conv2d: "conv2d", F.conv2d: "conv2d", nn.Conv1d: "conv1d",
             F.conv1d: "conv1d", nn.Linear: "linear", F.linear: "linear",
             nn.MaxPool2d: "max_pool2d", F.max_pool2d: "max_pool2d", ember.cat: "cat",
             nn.AvgPool2d: "avg_pool2d", F.avg_pool2d: "avg_pool2d",
             nn.AdaptiveAvgPool2d: "adaptive_avg_pool2d",
             F.adaptive_avg_pool2d: "adaptive_avg_pool2d", ember.flatten: "flatten",
             ember.matmul: "matmul", ember.mul: "mul"}
    try:
        return table.get(module_or_function)
    except TypeError:
        return None
