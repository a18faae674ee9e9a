"""XNNPACKQuantizer's annotation recipe (what torch's XNNPACK quantizer marks, on ember's
exported graph), for the settings the FX road cannot express: module names, module types
and dynamic configs.

Static configs, per setting (module names, then module types, then the global config
for nodes no name or type covers), in torch's order: linear + relu, linear, conv + relu,
conv, adaptive_avg_pool2d, add + relu, add, mul + relu, mul, cat; then relu, max_pool2d,
flatten, mean, views and the like share their input's observer when that input's output
is quantized. A pattern is annotated when every node of it passes the setting's filter:
a module name or type filter passes a node recorded inside such a module (the export's
`nn_module_stack`), which a weight constant is not, so under those settings a conv (its
weight in its pattern) stays float and a linear + relu is annotated as a linear whose
output the relu shares, as in torch. Dynamic configs annotate linears only. Activations
are signed int8 as in torch (the q/dq form needs no uint8 shift).
"""
from __future__ import annotations

from ....ir import dtypes
from .quantizer import Q_ANNOTATION_KEY, QuantizationAnnotation, SharedQuantizationSpec
from .x86_annotate import class_name, op_name

_SHARE_OUTPUT = {"relu", "hardtanh", "hardtanh_", "max_pool2d", "mean", "permute",
                 "squeeze", "adaptive_avg_pool2d", "view", "reshape", "flatten", "slice"}


def signed(spec):
    """ember's XNNPACK activation spec (uint8 shifted by 128, for its int8 kernels) as
    torch's signed int8 one."""
    from dataclasses import replace
    if spec is None or spec.dtype is not dtypes.quint8 or spec.is_dynamic:
        return spec
    return replace(spec, dtype=dtypes.qint8, quant_min=spec.quant_min - 128,
                   quant_max=spec.quant_max - 128)


class _Specs:
    def __init__(self, config):
        self.input = signed(config.input_spec())
        self.output = signed(config.output_spec())
        self.weight = config.weight_spec()


def _annotated(nodes) -> bool:
    return any((n.meta.get(Q_ANNOTATION_KEY) is not None and
                n.meta[Q_ANNOTATION_KEY]._annotated) for n in nodes if hasattr(n, "meta"))


def _mark_annotated(nodes) -> None:
    for n in nodes:
        if Q_ANNOTATION_KEY not in n.meta:
            n.meta[Q_ANNOTATION_KEY] = QuantizationAnnotation()
        n.meta[Q_ANNOTATION_KEY]._annotated = True


def _passes(nodes, covers) -> bool:
    return all(covers(n) for n in nodes)


def _weighted(node, specs: _Specs):
    """(input_qspec_map, partition) of a linear / conv: input, weight, bias (float)."""
    inputs = {node.args[0]: specs.input, node.args[1]: specs.weight}
    partition = [node, node.args[1]]
    bias = node.args[2] if len(node.args) > 2 else None
    if hasattr(bias, "op"):
        inputs[bias] = None
        partition.append(bias)
    return inputs, partition


def _weighted_relu(gm, specs, covers, op: str) -> None:
    for relu in gm.graph.nodes:
        if op_name(relu) not in ("relu", "relu_") or not hasattr(relu.args[0], "op"):
            continue
        node = relu.args[0]
        if op_name(node) != op or len(node.users) > 1:
            continue
        inputs, partition = _weighted(node, specs)
        partition = [relu] + partition
        if _annotated(partition) or not _passes(partition, covers):
            continue
        node.meta[Q_ANNOTATION_KEY] = QuantizationAnnotation(input_qspec_map=inputs,
                                                             _annotated=True)
        relu.meta[Q_ANNOTATION_KEY] = QuantizationAnnotation(output_qspec=specs.output,
                                                             _annotated=True)
        _mark_annotated(partition)


def _linear(gm, specs, covers) -> None:
    for node in gm.graph.nodes:            # torch filters the linear node alone here
        if op_name(node) != "linear" or not covers(node):
            continue
        inputs, partition = _weighted(node, specs)
        if _annotated([node]):
            continue
        node.meta[Q_ANNOTATION_KEY] = QuantizationAnnotation(
            input_qspec_map=inputs, output_qspec=specs.output, _annotated=True)
        _mark_annotated(partition)


def _conv(gm, specs, covers) -> None:
    for node in gm.graph.nodes:
        if op_name(node) not in ("conv1d", "conv2d"):
            continue
        inputs, partition = _weighted(node, specs)
        if _annotated(partition) or not _passes(partition, covers):
            continue
        node.meta[Q_ANNOTATION_KEY] = QuantizationAnnotation(
            input_qspec_map=inputs, output_qspec=specs.output, _annotated=True)
        _mark_annotated(partition)


def _adaptive_avg_pool2d(gm, specs, covers) -> None:
    for node in gm.graph.nodes:
        if op_name(node) != "adaptive_avg_pool2d" or _annotated([node]) or not covers(node):
            continue
        source = node.args[0]
        ann = source.meta.get(Q_ANNOTATION_KEY)
        shared = ann is not None and ann._annotated and ann.output_qspec is not None
        node.meta[Q_ANNOTATION_KEY] = QuantizationAnnotation(
            input_qspec_map={source: SharedQuantizationSpec(source) if shared
                             else specs.input},
            output_qspec=SharedQuantizationSpec((source, node)), _annotated=True)


def _float_tensor(node) -> bool:
    value = node.meta.get("val") if hasattr(node, "meta") else None
    return value is not None and value.dtype == dtypes.float32


def _binary(gm, specs, covers, op: str, with_relu: bool) -> None:
    for node in gm.graph.nodes:
        if with_relu:
            if op_name(node) not in ("relu", "relu_") or op_name(node.args[0]) not in \
                    (op, op + "_") or len(node.args[0].users) > 1:
                continue
            relu, binary = node, node.args[0]
            partition = [relu, binary]
        else:
            if op_name(node) not in (op, op + "_"):
                continue
            relu, binary = None, node
            partition = [binary]
        if _annotated(partition) or not _passes(partition, covers):
            continue
        inputs, ok = {}, True
        for arg in binary.args[:2]:
            if hasattr(arg, "op"):
                if not _float_tensor(arg):
                    ok = False
                    break
                inputs[arg] = specs.input
        if not ok:
            continue
        if with_relu:
            binary.meta[Q_ANNOTATION_KEY] = QuantizationAnnotation(input_qspec_map=inputs,
                                                                   _annotated=True)
            relu.meta[Q_ANNOTATION_KEY] = QuantizationAnnotation(output_qspec=specs.output,
                                                                 _annotated=True)
        else:
            binary.meta[Q_ANNOTATION_KEY] = QuantizationAnnotation(
                input_qspec_map=inputs, output_qspec=specs.output, _annotated=True)


def _cat(gm, specs, covers) -> None:
    for node in gm.graph.nodes:
        if op_name(node) != "cat" or _annotated([node]) or not covers(node):
            continue
        inputs = list(node.args[0])
        shared = SharedQuantizationSpec((inputs[0], node))
        specs_map = {inputs[0]: specs.input}
        for other in inputs[1:]:
            specs_map.setdefault(other, shared)
        node.meta[Q_ANNOTATION_KEY] = QuantizationAnnotation(
            input_qspec_map=specs_map, output_qspec=shared, _annotated=True)


def annotate_static(gm, config, covers) -> None:
    if config is None:
        return
    specs = _Specs(config)
    _weighted_relu(gm, specs, covers, "linear")
    _linear(gm, specs, covers)
    _weighted_relu(gm, specs, covers, "conv2d")
    _conv(gm, specs, covers)
    _adaptive_avg_pool2d(gm, specs, covers)
    _binary(gm, specs, covers, "add", True)
    _binary(gm, specs, covers, "add", False)
    _binary(gm, specs, covers, "mul", True)
    _binary(gm, specs, covers, "mul", False)
    _cat(gm, specs, covers)


def propagate(gm) -> None:
    """Ops that keep their input's quantization share its observer."""
    for node in gm.graph.nodes:
        if op_name(node) not in _SHARE_OUTPUT or not node.args or \
                not hasattr(node.args[0], "meta"):
            continue
        source = node.args[0]
        ann = source.meta.get(Q_ANNOTATION_KEY)
        if ann is None or ann.output_qspec is None:
            continue
        mine = node.meta.get(Q_ANNOTATION_KEY)
        if mine is not None and mine._annotated:
            continue
        shared = SharedQuantizationSpec(source)
        node.meta[Q_ANNOTATION_KEY] = QuantizationAnnotation(
            input_qspec_map={source: shared}, output_qspec=shared, _annotated=True)


def by_name(name: str):
    return lambda n: name in (n.meta.get("nn_module_stack") or {})


def by_type(kind):
    name = class_name(kind)
    return lambda n: any(cls == name for _, cls in
                         (n.meta.get("nn_module_stack") or {}).values())


__all__ = ["annotate_static", "propagate", "by_name", "by_type", "signed"]
