"""The numeric suite's implementation: weight comparison, per-layer activation report,
and layer sensitivity (see ember/ao/ns/__init__.py for the user-facing summary).

Layers of the float and the quantized model are matched without help from the passes:
both graphs come from the same trace of the same model, fused the same way
(quantize_fx's tracer and fusion run on the float model here too), so
- a module call matches the module call with the same name (what convert left as a
  module: pooling, float leftovers),
- a `quantized_linear` / `quantized_conv2d` matches the module whose packed weight it
  reads (`_packed_<module>_weight`),
- the k-th add (mul) of one graph matches the k-th of the other, float or quantized; a
  quantized add with a fused relu is compared against the float relu after the add,
- the model outputs match each other.
Quantized values are dequantized before comparing; errors accumulate over all batches.
"""
from __future__ import annotations

import copy
import math
import operator
import re

import numpy as np

from ...frontend.autograd import grad_mode
from ...frontend.fx.interpreter import Interpreter
from ...frontend.tensor import Tensor
from ...ir.graph import OpKind
from ...ir.registry import is_op
from ...passes import quantize as qpass
from ..quantization import quantize_fx as qfx
from ..quantization.qconfig_mapping import QConfigMapping


# --- metrics (torch.ao.ns.fx.utils) ----------------------------------------------------------
def _array(t) -> np.ndarray:
    if isinstance(t, Tensor):
        if t.is_quantized:
            t = t.dequantize()
        return np.asarray(t.detach().numpy(), np.float64)
    return np.asarray(t, np.float64)


def _scalar(value: float) -> Tensor:
    return Tensor._from_array(np.asarray(value, np.float32))


def _sqnr_db(signal_energy: float, noise_energy: float) -> float:
    if noise_energy == 0.0:
        return math.inf
    if signal_energy == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal_energy / noise_energy)


def compute_sqnr(x, y) -> Tensor:
    """Signal to quantization noise ratio of y against reference x, in dB:
    20 * log10(||x|| / ||x - y||)."""
    a, b = _array(x), _array(y)
    return _scalar(_sqnr_db(float(np.sum(a * a)), float(np.sum((a - b) ** 2))))


def compute_normalized_l2_error(x, y) -> Tensor:
    """sqrt(sum((x - y)^2) / sum(x^2))."""
    a, b = _array(x), _array(y)
    return _scalar(math.sqrt(float(np.sum((a - b) ** 2)) / float(np.sum(a * a))))


def compute_cosine_similarity(x, y) -> Tensor:
    """Cosine similarity of x and y flattened (one number over the whole tensor)."""
    a, b = _array(x).reshape(-1), _array(y).reshape(-1)
    return _scalar(float(a @ b) / (float(np.linalg.norm(a)) * float(np.linalg.norm(b))))


# --- compare_weights -------------------------------------------------------------------------
def _float_weight_key(qkey: str, float_dict: dict) -> str | None:
    """The float state_dict key a quantized model's weight entry came from."""
    if qkey in float_dict:
        return qkey
    fused = re.fullmatch(r"(.*)\.weight", qkey)
    if fused and fused.group(1) + ".0.weight" in float_dict:
        # a prepared model's fused ConvReLU2d / LinearReLU holds the float layer as its
        # first child: `features.0.weight` converted from `features.0.0.weight`
        return fused.group(1) + ".0.weight"
    if qkey.endswith("._packed_params._packed_weight"):    # a quantized Embedding
        key = qkey[:-len("._packed_params._packed_weight")] + ".weight"
        return key if key in float_dict else None
    functional = re.fullmatch(r"(.*)_packed_weight_\d+", qkey)    # convert_fx, F.linear
    if functional:
        scope = functional.group(1)
        for key in float_dict:
            if key == "weight" and not scope or key.endswith(".weight") and \
                    key[:-len(".weight")].replace(".", "_") == scope:
                return key
    if qkey.startswith("_packed_") and qkey.endswith("_weight"):   # convert_fx
        flat = qkey[len("_packed_"):-len("_weight")]
        for key in float_dict:
            if key.endswith(".weight") and key[:-len(".weight")].replace(".", "_") == flat:
                return key
    return None


_PACKED = "._packed_params._packed_params"


def compare_weights(float_dict: dict, quantized_dict: dict) -> dict:
    """{key: {'float': float weight, 'quantized': quantized weight}} for every quantized
    weight of `quantized_dict` (a state_dict of a convert, convert_fx or quantize_dynamic
    model) whose float weight is in `float_dict`. Keys are torch.ao's: the quantized
    state_dict's (`conv.weight`, a Linear's `fc._packed_params._packed_params`); for
    convert_fx's packed constants, the key torch's swapped module would have. A conv
    folded with its BatchNorm is compared with the unfolded float weight, as torch.ao
    does."""
    return {_torch_key(fkey, float_dict[fkey], qkey): pair
            for fkey, qkey, pair in _matched_weights(float_dict, quantized_dict)}


def weights_by_float_key(float_dict: dict, quantized_dict: dict) -> dict:
    """compare_weights' pairs keyed by the float state_dict's weight key (`fc.weight`)."""
    return {fkey: pair for fkey, _, pair in _matched_weights(float_dict, quantized_dict)}


def _matched_weights(float_dict: dict, quantized_dict: dict) -> list:
    """(float key, quantized key, {'float', 'quantized'}) for each quantized weight."""
    out = []
    for qkey, qvalue in quantized_dict.items():
        if qkey.endswith(_PACKED) and isinstance(qvalue, tuple):  # a quantized Linear's
            qkey, qvalue = qkey[:-len(_PACKED)] + ".weight", qvalue[0]   # (weight, bias)
        if not (isinstance(qvalue, Tensor) and qvalue.is_quantized):
            continue
        fkey = _float_weight_key(qkey, float_dict)
        if fkey is not None:
            out.append((fkey, qkey, {"float": float_dict[fkey], "quantized": qvalue}))
    return out


def _torch_key(fkey: str, float_weight, qkey: str) -> str:
    """torch.ao keys a Linear's weight (2-D, packed) by its packed entry,
    `fc._packed_params._packed_params`; other weights by `<module>.weight`."""
    embedding = qkey.endswith("._packed_weight")
    if float_weight.dim() == 2 and fkey.endswith(".weight") and not embedding:
        return fkey[:-len(".weight")] + _PACKED
    return fkey


# --- matching layers -------------------------------------------------------------------------
def _op_name(node) -> str | None:
    target = node.target
    if node.op == OpKind.call_method:
        return str(target)
    if node.op != OpKind.call_function:
        return None
    if is_op(target):
        return target.name
    if target in (operator.add, operator.iadd):
        return "add"
    if target in (operator.mul, operator.imul):
        return "mul"
    return getattr(target, "__name__", None)


_BINARY_OF = {"add": "add", "mul": "mul", "quantized_add": "add", "quantized_mul": "mul"}


def _module_op(module) -> str:
    """A converted layer's description: the int8 op its quantized module runs
    (quantized_linear / quantized_conv2d, "+relu" when fused), else its class name."""
    from ..nn.quantized.modules import Conv2d, Conv3d, Linear, _WeightedQuantized
    if not isinstance(module, _WeightedQuantized):
        return type(module).__name__
    op = "quantized_linear" if isinstance(module, Linear) else \
        "quantized_conv3d" if isinstance(module, Conv3d) else \
        "quantized_conv2d" if isinstance(module, Conv2d) else type(module).__name__
    return op + ("+relu" if module._RELU else "")


def _quantized_keys(gm, module_of_flat: dict) -> tuple[dict, dict, set]:
    """node -> layer key for the quantized graph; also each key's op description and
    which binary keys have a fused relu."""
    keys, ops, fused_relu, counts = {}, {}, set(), {}
    for node in gm.graph.nodes:
        name = _op_name(node)
        if node.op == OpKind.call_module:
            keys[node] = str(node.target)
            ops[keys[node]] = _module_op(gm.get_submodule(str(node.target)))
        elif name in ("quantized_linear", "quantized_conv2d"):
            weight = node.args[1]
            flat = str(weight.target)[len("_packed_"):-len("_weight")]
            keys[node] = module_of_flat.get(flat, flat)
            ops[keys[node]] = name + ("+relu" if node.args[-1] is True else "")
        elif name in _BINARY_OF:
            kind = _BINARY_OF[name]
            index = counts.get(kind, 0)
            counts[kind] = index + 1
            keys[node] = f"{kind}#{index}"
            ops[keys[node]] = name
            if name.startswith("quantized_") and node.args[-1] is True:
                fused_relu.add(keys[node])
                ops[keys[node]] += "+relu"
        elif node.op == OpKind.output:
            keys[node] = "output"
            ops["output"] = "output"
    return keys, ops, fused_relu


def _float_keys(gm, fused_relu: set) -> tuple[dict, dict]:
    """node -> layer key for the fused float graph (and the display name of each key)."""
    kinds = qfx._module_kinds(gm)
    keys, names, counts = {}, {}, {}
    for node in gm.graph.nodes:
        name = _op_name(node)
        if node.op == OpKind.call_module:
            keys[node] = names[str(node.target)] = str(node.target)
        elif name in ("add", "mul") and qpass.node_kind(node, kinds) in qpass.BINARY:
            index = counts.get(name, 0)
            counts[name] = index + 1
            key = f"{name}#{index}"
            relu = qpass._sole_relu_user(node, kinds)
            keys[relu if key in fused_relu and relu is not None else node] = key
            names[key] = node.name
        elif node.op == OpKind.output:
            keys[node] = names["output"] = "output"
    return keys, names


class _Recorder(Interpreter):
    """Runs a GraphModule and keeps the value of every node that has a layer key."""

    def __init__(self, gm, keys: dict):
        super().__init__(gm)
        self.keys = keys
        self.values: dict[str, object] = {}

    def run_node(self, node):
        value = super().run_node(node)
        if node in self.keys:
            self.values[self.keys[node]] = value
        return value


def _flat(value) -> np.ndarray | None:
    """A node's value as one float64 array (tuples concatenated), None if no tensor."""
    if isinstance(value, Tensor):
        return _array(value).reshape(-1)
    if isinstance(value, (tuple, list)):
        parts = [p for p in (_flat(v) for v in value) if p is not None]
        return np.concatenate(parts) if parts else None
    return None


def _batches(data):
    for batch in data:
        if isinstance(batch, Tensor):
            yield (batch,)
        elif isinstance(batch, np.ndarray):
            yield (Tensor._from_array(batch),)
        else:
            yield tuple(batch)


def _fused_float_graph(float_model, prepare_custom_config):
    model = copy.deepcopy(float_model)
    if getattr(model, "training", False):
        model.eval()
    return qfx._fuse_graph(qfx._trace(model, prepare_custom_config))


class _Stats:
    def __init__(self):
        self.signal = self.noise = 0.0
        self.max_error = self.max_abs = 0.0
        self.quantized = False

    def add(self, ref: np.ndarray, got: np.ndarray) -> None:
        diff = ref - got
        self.signal += float(ref @ ref)
        self.noise += float(diff @ diff)
        self.max_error = max(self.max_error, float(np.max(np.abs(diff), initial=0.0)))
        self.max_abs = max(self.max_abs, float(np.max(np.abs(ref), initial=0.0)))


def report(float_model, quantized_model, data, show: bool = True,
           prepare_custom_config=None) -> list[dict]:
    """Per-layer comparison of `quantized_model` (convert_fx's result) against
    `float_model` on `data` (an iterable of batches: a Tensor, or a tuple of the model's
    inputs). Returns one dict per matched layer in graph order: layer, op (what the
    quantized model runs there), quantized (whether its value there is quantized),
    sqnr_db, max_abs_error, float_max_abs. With show=True also prints a table."""
    if not hasattr(quantized_model, "graph"):
        raise TypeError("ember.ao.ns.report: quantized_model must be the GraphModule "
                        "convert_fx returned")
    float_gm = _fused_float_graph(float_model, prepare_custom_config)
    module_of_flat = {str(n.target).replace(".", "_"): str(n.target)
                      for n in float_gm.graph.nodes if n.op == OpKind.call_module}
    q_keys, q_ops, fused_relu = _quantized_keys(quantized_model, module_of_flat)
    f_keys, f_names = _float_keys(float_gm, fused_relu)
    common = [k for k in f_names if k in set(q_keys.values())]
    stats = {k: _Stats() for k in common}
    for args in _batches(data):
        f_run, q_run = _Recorder(float_gm, f_keys), _Recorder(quantized_model, q_keys)
        with grad_mode.no_grad():
            f_run.run(*args)
            q_run.run(*args)
        for key in common:
            ref, got = _flat(f_run.values.get(key)), _flat(q_run.values.get(key))
            if ref is None or got is None or ref.shape != got.shape:
                continue
            stats[key].add(ref, got)
            value = q_run.values[key]
            stats[key].quantized |= isinstance(value, Tensor) and value.is_quantized
    rows = [{"layer": f_names[k], "op": q_ops.get(k, ""), "quantized": s.quantized,
             "sqnr_db": _sqnr_db(s.signal, s.noise), "max_abs_error": s.max_error,
             "float_max_abs": s.max_abs} for k, s in stats.items()]
    if show:
        _print_table("Quantized vs float, per layer", rows,
                     [("layer", "Layer"), ("op", "Quantized op"), ("quantized", "int8 out"),
                      ("sqnr_db", "SQNR (dB)"), ("max_abs_error", "Max abs err"),
                      ("float_max_abs", "Max |float|")])
    return rows


def _print_table(title: str, rows: list[dict], columns: list[tuple[str, str]]) -> None:
    from rich.console import Console
    from rich.table import Table
    table = Table(title=title)
    for _, header in columns:
        table.add_column(header, overflow="fold",
                         justify="left" if header in ("Layer", "Quantized op") else "right")
    for row in rows:
        table.add_row(*[_cell(row[key]) for key, _ in columns])
    Console().print(table)


def _cell(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}" if math.isinf(value) or abs(value) >= 0.01 else f"{value:.2e}"
    return str(value)


# --- sensitivity -----------------------------------------------------------------------------
def _copy_mapping(mapping: QConfigMapping) -> QConfigMapping:
    out = QConfigMapping()
    out.global_qconfig = mapping.global_qconfig
    for attr in ("object_type_qconfigs", "module_name_regex_qconfigs", "module_name_qconfigs",
                 "module_name_object_type_order_qconfigs"):
        setattr(out, attr, copy.copy(getattr(mapping, attr)))
    return out


def _quantize(float_model, mapping, example_inputs, data, custom, backend_config):
    prepared = qfx.prepare_fx(copy.deepcopy(float_model), mapping, example_inputs,
                              prepare_custom_config=custom, backend_config=backend_config)
    for args in data:
        prepared(*args)
    return qfx.convert_fx(prepared)


def _output_sqnr(model, data, reference: list) -> float:
    signal = noise = 0.0
    for args, ref in zip(data, reference):
        with grad_mode.no_grad():
            got = _flat(model(*args))
        signal += float(ref @ ref)
        noise += float((ref - got) @ (ref - got))
    return _sqnr_db(signal, noise)


_METHODS = ("one_at_a_time", "leave_one_out")


def layer_sensitivity(float_model, qconfig_mapping, example_inputs, data,
                      method: str = "one_at_a_time", prepare_custom_config=None,
                      backend_config=None) -> list[dict]:
    """Scores each layer the mapping quantizes (every Linear/Conv2d and their fused
    forms, by module name) by the SQNR of the model's output on `data` (used for
    calibration too), most damaging first:
    - one_at_a_time: only that layer quantized; the lower the SQNR, the more damaging;
    - leave_one_out: every layer but that one quantized; the higher the SQNR, the more
      leaving it in float helps.
    Each row: {'layer', 'output_sqnr_db'}."""
    if method not in _METHODS:
        raise ValueError(f"sensitivity: method must be one of {_METHODS}, got {method!r}")
    if isinstance(qconfig_mapping, dict):
        qconfig_mapping = QConfigMapping.from_dict(qconfig_mapping)
    data = list(_batches(data))
    if not data:
        raise ValueError("sensitivity: data is empty; pass calibration batches")
    with grad_mode.no_grad():
        reference = [_flat(float_model(*args)) for args in data]
    full = qfx.prepare_fx(copy.deepcopy(float_model), qconfig_mapping, example_inputs,
                          prepare_custom_config=prepare_custom_config,
                          backend_config=backend_config)
    rows = []
    for layer, qconfig in full._ember_quant["weighted"].items():
        if method == "one_at_a_time":
            mapping = QConfigMapping().set_module_name(layer, qconfig)
        else:
            mapping = _copy_mapping(qconfig_mapping).set_module_name(layer, None)
        model = _quantize(float_model, mapping, example_inputs, data, prepare_custom_config,
                          backend_config)
        rows.append({"layer": layer, "output_sqnr_db": _output_sqnr(model, data, reference)})
    rows.sort(key=lambda r: r["output_sqnr_db"], reverse=method == "leave_one_out")
    return rows


def sensitivity(float_model, qconfig_mapping, example_inputs, data, n: int,
                method: str = "one_at_a_time", show: bool = False,
                prepare_custom_config=None, backend_config=None) -> QConfigMapping:
    """A copy of `qconfig_mapping` that leaves the `n` layers `layer_sensitivity` finds
    most damaging in float (module_name -> None). show=True prints the scores."""
    if n < 0:
        raise ValueError(f"sensitivity: n must be >= 0, got {n}")
    if isinstance(qconfig_mapping, dict):
        qconfig_mapping = QConfigMapping.from_dict(qconfig_mapping)
    rows = layer_sensitivity(float_model, qconfig_mapping, example_inputs, data, method,
                             prepare_custom_config, backend_config)
    if show:
        _print_table(f"Layer sensitivity ({method}), most damaging first", rows,
                     [("layer", "Layer"), ("output_sqnr_db", "Output SQNR (dB)")])
    mapping = _copy_mapping(qconfig_mapping)
    for row in rows[:n]:
        mapping.set_module_name(row["layer"], None)
    return mapping
