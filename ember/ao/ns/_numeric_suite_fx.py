"""torch.ao.ns._numeric_suite_fx's entry points for a float model and its convert_fx (or
quantize_dynamic) result, in torch's results format:

    results[layer][result_type][model_name] = [{'type', 'values', 'ref_node_name',
        'prev_node_name', 'ref_node_target_type', 'prev_node_target_type',
        'index_within_arg', 'index_of_arg', 'fqn', 'qconfig_str', 'comparisons',
        'comparison_fn_name'}]

- extract_weights(name_a, model_a, name_b, model_b): result type 'weight';
- add_loggers(name_a, model_a, name_b, model_b, OutputLogger) -> two GraphModules that
  record each matched layer's output; run data through both, then
  extract_logger_info(model_a, model_b, OutputLogger, name) collects 'node_output';
- extend_logger_results_with_comparison(results, name_1, name_2, fn, comparison_name).

Layers are matched as in ember.ao.ns.report (numeric_suite.py): by module name, by the
packed weight a quantized op reads, and by position for add/mul. Only a float model
against its quantized version is supported (torch also compares two arbitrary
related models, e.g. two quantized variants); should_log_inputs is not supported.
"""
from __future__ import annotations

import copy
import re

from ...frontend.nn.modules.module import Module
from ...frontend.tensor import Tensor
from ...ir.graph import OpKind
from . import numeric_suite as nsu


class OutputLogger(Module):
    """Records the values that pass through it (a layer's output) in `stats`."""

    def __init__(self, ref_node_name: str, prev_node_name: str, model_name: str,
                 ref_name: str, prev_node_target_type: str, ref_node_target_type: str,
                 results_type: str = "node_output", index_within_arg: int = 0,
                 index_of_arg: int = 0, fqn: str | None = None, qconfig_str: str = ""):
        super().__init__()
        self.stats: list = []
        self.ref_node_name, self.prev_node_name = ref_node_name, prev_node_name
        self.model_name, self.ref_name = model_name, ref_name
        self.prev_node_target_type = prev_node_target_type
        self.ref_node_target_type = ref_node_target_type
        self.results_type = results_type
        self.index_within_arg, self.index_of_arg = index_within_arg, index_of_arg
        self.fqn, self.qconfig_str = fqn, qconfig_str

    def forward(self, x):
        if isinstance(x, Tensor):
            self.stats.append(x.detach())
        return x


def _is_quantized_model(model) -> bool:
    return hasattr(model, "quantization_report") or any(
        isinstance(v, Tensor) and v.is_quantized for v in model.state_dict().values())


def _float_and_quantized(name_a, model_a, name_b, model_b, what: str):
    qa, qb = _is_quantized_model(model_a), _is_quantized_model(model_b)
    if qa == qb:
        raise NotImplementedError(f"{what}: ember compares a float model with its quantized "
                                  f"version (convert_fx / quantize_dynamic); got two "
                                  f"{'quantized' if qa else 'float'} models")
    return ((name_b, model_b), (name_a, model_a)) if qa else \
        ((name_a, model_a), (name_b, model_b))


def _entry(results_type: str, values: list, node_name: str, target_type: str,
           fqn: str | None = None) -> dict:
    return {"type": results_type, "values": values, "ref_node_name": node_name,
            "ref_node_target_type": target_type, "prev_node_name": node_name,
            "prev_node_target_type": target_type, "index_within_arg": 0, "index_of_arg": 0,
            "fqn": fqn, "qconfig_str": "", "comparisons": [], "comparison_fn_name": ""}


def _node_style(path: str) -> str:
    """The name fx gives a call_module node of `path` (`features.0` -> `features_0`,
    `0` -> `_0`): torch keys its results by node name."""
    name = re.sub(r"[^0-9a-zA-Z_]+", "_", path)
    return "_" + name if name[:1].isdigit() else name


def _type_name(model, path: str, default: str) -> str:
    """The qualified class name of the module at `path` (torch's ref_node_target_type)."""
    try:
        cls = type(model.get_submodule(path))
    except AttributeError:
        return default
    return f"{cls.__module__}.{cls.__qualname__}"


def extract_weights(model_name_a: str, model_a, model_name_b: str, model_b,
                    base_name_to_sets_of_related_ops=None, unmatchable_types_map=None,
                    op_to_type_to_weight_extraction_fn=None) -> dict:
    """{layer: {'weight': {model name: [entry]}}} for every quantized weight; the float
    model's entry holds its float weight, the quantized model's the quantized one.
    Layers are keyed by their node name and carry their module path as `fqn`."""
    (f_name, f_model), (q_name, q_model) = _float_and_quantized(
        model_name_a, model_a, model_name_b, model_b, "extract_weights")
    results = {}
    for fkey, qkey, pair in nsu._matched_weights(f_model.state_dict(), q_model.state_dict()):
        key = qkey if qkey.endswith(".weight") else fkey
        path = key[:-len(".weight")] if key.endswith(".weight") else key
        layer = _node_style(path)
        results[layer] = {"weight": {
            f_name: [_entry("weight", [pair["float"]], layer,
                            _type_name(f_model, path, "float"), path)],
            q_name: [_entry("weight", [pair["quantized"]], layer,
                            _type_name(q_model, path, "quantized"), path)]}}
    return results


def _insert_loggers(gm, keys: dict, common: set, names: dict, ops: dict, model_name: str,
                    logger_cls) -> None:
    graph = gm.graph
    for node in list(graph.nodes):
        key = keys.get(node)
        if key is None or key not in common or key == "output":
            continue
        layer = _node_style(names[key])                  # torch's key: a node name
        fqn = "" if "#" in key else key                  # a module's path; '' for an op
        module_name = layer + "_ns_logger_0"
        gm.add_module(module_name, logger_cls(layer, node.name, model_name, layer,
                                              ops.get(key, ""), ops.get(key, ""),
                                              fqn=fqn))
        with graph.inserting_after(node):
            log = graph.call_module(module_name, (node,))
        node.replace_all_uses_with(log, lambda user: user is not log)
    graph.lint()
    gm.recompile()


# the module types torch.ao's numeric suite matches between the two models (its
# related-op sets); others, such as Flatten or Identity, get no logger
_MATCHED_MODULES = frozenset(
    "AdaptiveAvgPool1d AdaptiveAvgPool2d AdaptiveAvgPool3d AvgPool1d AvgPool2d AvgPool3d "
    "BatchNorm2d BatchNorm3d Conv1d Conv2d Conv3d ConvTranspose1d ConvTranspose2d "
    "ConvTranspose3d Dropout ELU Embedding EmbeddingBag GroupNorm Hardsigmoid Hardswish "
    "Hardtanh InstanceNorm1d InstanceNorm2d InstanceNorm3d LSTM LayerNorm LeakyReLU Linear "
    "MaxPool1d MaxPool2d MaxPool3d Mish PReLU ReLU ReLU6 SiLU Sigmoid Softmax Tanh".split())


def _logged(f_gm, key: str) -> bool:
    """Whether add_loggers logs the layer `key` (an op such as add#0, or a module path)."""
    if "#" in key or key == "output":
        return True
    name = type(f_gm.get_submodule(key)).__name__
    # fused forms (ConvReLU2d, ConvBn2d, LinearReLU, BNReLU2d, ...) count as their layer
    return name in _MATCHED_MODULES or name.startswith(("Conv", "Linear", "BN"))


def add_loggers(name_a: str, model_a, name_b: str, model_b, logger_cls=OutputLogger,
                should_log_inputs: bool = False, base_name_to_sets_of_related_ops=None,
                unmatchable_types_map=None):
    """Copies of the two models with a `logger_cls` module after each matched layer."""
    if should_log_inputs:
        raise NotImplementedError("add_loggers: should_log_inputs=True is not supported")
    (f_name, f_model), (q_name, q_model) = _float_and_quantized(
        name_a, model_a, name_b, model_b, "add_loggers")
    if not hasattr(q_model, "graph"):
        raise NotImplementedError("add_loggers: the quantized model must be the GraphModule "
                                  "convert_fx returned")
    f_gm = nsu._fused_float_graph(f_model, None)
    q_gm = copy.deepcopy(q_model)
    module_of_flat = {str(n.target).replace(".", "_"): str(n.target)
                      for n in f_gm.graph.nodes if n.op == OpKind.call_module}
    q_keys, q_ops, fused_relu = nsu._quantized_keys(q_gm, module_of_flat)
    f_keys, f_names = nsu._float_keys(f_gm, fused_relu)
    common = {key for key in set(f_names) & set(q_keys.values())
              if _logged(f_gm, key)}
    f_ops = {k: type(f_gm.get_submodule(k)).__name__ for k in common if k in
             dict(f_gm.named_modules())}
    _insert_loggers(f_gm, f_keys, common, f_names, f_ops, f_name, logger_cls)
    _insert_loggers(q_gm, q_keys, common, f_names, q_ops, q_name, logger_cls)
    return (f_gm, q_gm) if f_model is model_a else (q_gm, f_gm)


def extract_logger_info(model_a, model_b, logger_cls=OutputLogger,
                        model_name_to_use_for_layer_names: str | None = None) -> dict:
    """{layer: {'node_output': {model name: [entry with the logged values]}}}."""
    results: dict = {}
    for model in (model_a, model_b):
        for _, logger in model.named_modules():
            if not isinstance(logger, logger_cls):
                continue
            entry = _entry(logger.results_type, list(logger.stats), logger.ref_node_name,
                           logger.ref_node_target_type, logger.fqn)
            entry["prev_node_name"] = logger.prev_node_name
            entry["prev_node_target_type"] = logger.prev_node_target_type
            results.setdefault(logger.ref_name, {}).setdefault(logger.results_type, {}) \
                .setdefault(logger.model_name, []).append(entry)
    return results


def extend_logger_results_with_comparison(results: dict, model_name_1: str,
                                          model_name_2: str, comparison_fn,
                                          comparison_name: str) -> None:
    """Adds `comparison_name: [comparison_fn(value of model 1, value of model 2), ...]`
    to model 2's entries, in place."""
    for by_type in results.values():
        for by_model in by_type.values():
            if model_name_1 not in by_model or model_name_2 not in by_model:
                continue
            for first, second in zip(by_model[model_name_1], by_model[model_name_2]):
                second[comparison_name] = [comparison_fn(a, b) for a, b in
                                           zip(first["values"], second["values"])]
                second["comparison_fn_name"] = getattr(comparison_fn, "__name__", "")


__all__ = ["OutputLogger", "extract_weights", "add_loggers", "extract_logger_info",
           "extend_logger_results_with_comparison"]
