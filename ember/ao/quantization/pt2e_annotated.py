"""prepare_pt2e / convert_pt2e for quantizers that annotate nodes (torch's annotation API,
ember/ao/quantization/quantizer/quantizer.py).

prepare: the quantizer annotates the exported graph as it is (op-level nodes, so a
torch quantizer's `node.target == torch.ops.aten.linear.default` reads the same with
`ember`). Each annotated input edge `(producer, consumer)` and output gets an observer
module `activation_post_process_N` built from its spec: an input edge whose spec equals
its producer's output spec reuses the producer's observer (torch's implicit sharing), a
SharedQuantizationSpec reuses the observer of the node or edge it names, a
DerivedQuantizationSpec gets a module whose qparams `derive_qparams_fn` computes from the
observers it is derived from, a FixedQParamsQuantizationSpec a FixedQParamsObserver.

convert: every observer becomes quantize -> dequantize with its qparams (torch's q/dq
reference representation); a constant's quantize is done once at convert
(`fold_quantize=True`, the default: the graph reads the int8 constant and dequantizes
it)."""
from __future__ import annotations

from ...frontend.nn.modules.module import Module
from ...frontend.tensor import Tensor
from ...ir import dtypes
from ...ir.graph import OpKind
from ...ir.quantized import (per_channel_affine, per_channel_affine_float_qparams,
                             per_channel_symmetric, per_tensor_affine)
from .fake_quantize import FixedQParamsFakeQuantize
from .observer import FixedQParamsObserver
from .quantize_fx import QuantizationError
from .quantizer.quantizer import (Q_ANNOTATION_KEY, DerivedQuantizationSpec,
                                  FixedQParamsQuantizationSpec, QuantizationSpec,
                                  SharedQuantizationSpec)

_QUANTIZED = {dtypes.uint8: dtypes.quint8, dtypes.int8: dtypes.qint8,
              dtypes.int32: dtypes.qint32}
_PER_CHANNEL = (per_channel_affine, per_channel_symmetric, per_channel_affine_float_qparams)


def _qdtype(dtype):
    return _QUANTIZED.get(dtype, dtype)


class DerivedObserver(Module):
    """An identity in the graph; its qparams come from other observers at convert."""

    def __init__(self, spec: DerivedQuantizationSpec, sources: list):
        super().__init__()
        self.spec = spec
        self.sources = tuple(sources)          # not submodules: each lives in the graph
        self.dtype = _qdtype(spec.dtype)
        self.qscheme = spec.qscheme or per_tensor_affine
        self.ch_axis = spec.ch_axis
        self.quant_min, self.quant_max = spec.quant_min, spec.quant_max

    def forward(self, x):
        return x

    def calculate_qparams(self):
        return self.spec.derive_qparams_fn(list(self.sources))


def _new_observer(spec, is_qat: bool):
    if isinstance(spec, FixedQParamsQuantizationSpec):
        kw = {k: v for k, v in (("quant_min", spec.quant_min), ("quant_max", spec.quant_max),
                                ("qscheme", spec.qscheme)) if v is not None}
        observer = FixedQParamsObserver.with_args(scale=spec.scale,
                                                  zero_point=spec.zero_point,
                                                  dtype=_qdtype(spec.dtype), **kw)
        # QAT: torch fake-quantizes with the fixed qparams while training
        return FixedQParamsFakeQuantize(observer) if is_qat else observer()
    if spec.is_dynamic and is_qat:
        raise NotImplementedError("prepare_qat_pt2e: is_dynamic=True quantization specs are "
                                  "not supported for QAT by ember's pt2e path; use a static "
                                  "config (is_dynamic=False) for QAT")
    kw = {"dtype": _qdtype(spec.dtype)}
    if spec.is_dynamic:           # a PlaceholderObserver: qparams chosen per call
        kw["is_dynamic"] = True
    for key in ("quant_min", "quant_max", "qscheme"):
        if getattr(spec, key) is not None:
            kw[key] = getattr(spec, key)
    if spec.qscheme in _PER_CHANNEL:
        kw["ch_axis"] = spec.ch_axis if spec.ch_axis is not None else 0
    return spec.observer_or_fake_quant_ctr(**kw)


def _annotated_specs(gm) -> list:
    """[(key, spec)] in graph order; key: a node (its output) or a (producer, consumer)
    edge."""
    specs = []
    for node in gm.graph.nodes:
        ann = node.meta.get(Q_ANNOTATION_KEY)
        if ann is None:
            continue
        for arg, spec in ann.input_qspec_map.items():
            if spec is not None:
                specs.append(((arg, node), spec))
        if ann.output_qspec is not None:
            specs.append((node, ann.output_qspec))
    return specs


def _output_spec(node):
    ann = node.meta.get(Q_ANNOTATION_KEY) if hasattr(node, "meta") else None
    return None if ann is None else ann.output_qspec


def _root_spec(spec, spec_of: dict, seen=()):
    """The spec a SharedQuantizationSpec chain ends at (None for a dangling one)."""
    while isinstance(spec, SharedQuantizationSpec):
        if spec.edge_or_node in seen or spec.edge_or_node not in spec_of:
            return None
        seen = (*seen, spec.edge_or_node)
        spec = spec_of[spec.edge_or_node]
    return spec


def _groups(specs) -> dict:
    """key -> group representative. Shared specs join their target's group; an input
    edge joins its producer's output group when both resolve to specs of the same dtype
    and dynamism and the consumer allows implicit sharing (torch's rule), so each value
    is observed once however many consumers read it."""
    spec_of = dict(specs)
    parent = {key: key for key, _ in specs}

    def find(k):
        while parent[k] is not k and parent[k] != k:
            k = parent[k]
        return k

    def union(a, b):
        ra, rb = find(a), find(b)
        if ra is not rb:
            parent[rb] = ra
    for key, spec in specs:
        if isinstance(spec, SharedQuantizationSpec):
            if spec.edge_or_node not in parent:
                raise QuantizationError(f"prepare_pt2e: SharedQuantizationSpec refers to "
                                        f"{spec.edge_or_node}, which no annotation observes")
            union(spec.edge_or_node, key)
    for key, spec in specs:
        if not isinstance(key, tuple):
            continue
        producer, consumer = key
        if not consumer.meta.get(Q_ANNOTATION_KEY).allow_implicit_sharing:
            continue
        mine = _root_spec(spec, spec_of)
        # the same tensor: other readers' edges first, then the producer's output
        for other in [(producer, u) for u in producer.users if u is not consumer] + \
                [producer]:
            if other in spec_of and _same_qparams_kind(mine, _root_spec(spec_of[other],
                                                                        spec_of)):
                union(other, key)
    return {key: find(key) for key, _ in specs}


_SHARED_ATTRS = ("dtype", "is_dynamic", "quant_min", "quant_max", "qscheme", "ch_axis",
                 "scale", "zero_point")


def _same_qparams_kind(a, b) -> bool:
    """torch's implicit sharing test: two specs of one tensor that agree on these
    attributes share one observer."""
    if a is None or b is None or isinstance(a, DerivedQuantizationSpec) or \
            isinstance(b, DerivedQuantizationSpec):
        return False
    return all(getattr(a, k, None) == getattr(b, k, None) for k in _SHARED_ATTRS)


def _observers_for(specs, is_qat: bool) -> dict:
    """key -> observer module, one per sharing group."""
    group = _groups(specs)
    spec_of = dict(specs)
    owner, by_group = {}, {}
    for key, spec in specs:                       # a group's first concrete spec builds it
        if isinstance(spec, (QuantizationSpec, FixedQParamsQuantizationSpec)) and \
                group[key] not in by_group:
            by_group[group[key]] = _new_observer(spec, is_qat)
    for key, spec in specs:
        if group[key] in by_group:
            owner[key] = by_group[group[key]]
    for key, spec in specs:                       # derived: from the observers above
        root = _root_spec(spec, spec_of)
        if isinstance(root, DerivedQuantizationSpec) and key not in owner:
            missing = [e for e in root.derived_from if e not in owner]
            if missing:
                raise QuantizationError(f"prepare_pt2e: DerivedQuantizationSpec derives "
                                        f"from {missing}, which no annotation observes")
            owner[key] = by_group.setdefault(
                group[key], DerivedObserver(root, [owner[e] for e in root.derived_from]))
    unresolved = [key for key, _ in specs if key not in owner]
    if unresolved:
        raise QuantizationError(f"prepare_pt2e: SharedQuantizationSpec refers to a node or "
                                f"edge no annotation observes: {unresolved}")
    return owner


def prepare_annotated(gm, quantizer, is_qat: bool):
    gm = quantizer.transform_for_annotation(gm) or gm
    quantizer.annotate(gm)
    quantizer.validate(gm)
    specs = _annotated_specs(gm)
    owner = _observers_for(specs, is_qat)
    names: dict = {}

    def name_of(module):
        if id(module) not in names:
            names[id(module)] = f"activation_post_process_{len(names)}"
            gm.add_submodule(names[id(module)], module)
        return names[id(module)]

    graph, output_obs = gm.graph, {}
    for key, _ in specs:                          # outputs first: users then read them
        if isinstance(key, tuple):
            continue
        with graph.inserting_after(key):
            obs = graph.call_module(name_of(owner[key]), (key,))
        key.replace_all_uses_with(obs, delete_user_cb=lambda u, o=obs: u is not o)
        output_obs[key] = obs
    edge_obs: dict = {}                           # (producer, observer id) -> its node
    for key, _ in specs:
        if not isinstance(key, tuple):
            continue
        producer, consumer = key
        current = output_obs.get(producer, producer)
        if producer in output_obs and owner[key] is owner[producer]:
            continue                              # already reads the shared observer
        obs = edge_obs.get((producer, id(owner[key])))
        if obs is None:                           # another reader's observer, reused
            with graph.inserting_before(consumer):
                obs = graph.call_module(name_of(owner[key]), (current,))
            edge_obs[(producer, id(owner[key]))] = obs
        consumer.replace_input_with(current, obs)
    graph.lint()
    gm.recompile()
    gm._pt2e_annotated = True
    return gm.train() if is_qat else gm.eval()


# --- convert ---------------------------------------------------------------------------------
def _qparams(module):
    scale, zero_point = module.calculate_qparams()
    return scale, zero_point


def _quantize(value, module, scale, zero_point):
    from ...ir.ops.quantize import quantize_per_channel, quantize_per_tensor
    if getattr(module, "qscheme", None) in _PER_CHANNEL:
        return quantize_per_channel(value, scale, zero_point, module.ch_axis, module.dtype)
    return quantize_per_tensor(value, float(scale.reshape(-1)[0].item())
                               if isinstance(scale, Tensor) else float(scale),
                               int(zero_point.reshape(-1)[0].item())
                               if isinstance(zero_point, Tensor) else int(zero_point),
                               module.dtype)


_DTYPE_RANGE = {dtypes.quint8: (0, 255), dtypes.qint8: (-128, 127),
                dtypes.qint32: (-2 ** 31, 2 ** 31 - 1)}


def _clamped(graph, source, module, scale: float, zero_point: int):
    """A spec's quant_min / quant_max narrower than the dtype: clamp the float value to
    that range first, so the quantized value stays inside it (torch's quantize clamps
    to quant_min / quant_max)."""
    from ...ir.ops import OPS_NS
    lo, hi = _DTYPE_RANGE.get(module.dtype, (None, None))
    qmin, qmax = getattr(module, "quant_min", lo), getattr(module, "quant_max", hi)
    if qmin is None or qmax is None or lo is None or (qmin <= lo and qmax >= hi):
        return source
    return graph.call_function(OPS_NS.clamp, (source, (max(qmin, lo) - zero_point) * scale,
                                              (min(qmax, hi) - zero_point) * scale))


def _is_observer(gm, node) -> bool:
    return node.op == OpKind.call_module and \
        str(node.target).startswith("activation_post_process_") and \
        hasattr(gm.get_submodule(str(node.target)), "calculate_qparams")


def _constant(gm, node):
    value = gm
    for part in str(node.target).split("."):
        value = getattr(value, part)
    return value


def quantize_per_tensor_dynamic(x, quant_min: int, quant_max: int, eps: float, dtype):
    """torch's pt2e dynamic activation: qparams chosen from this call's range (widened
    to include 0, scale at least eps, float32 arithmetic: torch's choose_qparams.tensor),
    then quantize_per_tensor with them."""
    import numpy as np
    from ...ir.ops.quantize import quantize_per_tensor
    values = np.asarray(x.detach().numpy(), np.float32)
    lo = np.float32(min(float(values.min()), 0.0)) if values.size else np.float32(0)
    hi = np.float32(max(float(values.max()), 0.0)) if values.size else np.float32(0)
    scale = max(np.float32((hi - lo) / np.float32(quant_max - quant_min)), np.float32(eps))
    zero_point = int(np.clip(quant_min - int(np.round(lo / scale)), quant_min, quant_max))
    return quantize_per_tensor(x, float(scale), zero_point, dtype)


def _dynamic_quantize_node(graph, node, source, module) -> None:
    """A dynamic observer -> quantize_per_tensor_dynamic (qparams per call) followed by
    a dequantize per user, as torch's convert_pt2e makes of a PlaceholderObserver with
    is_dynamic=True."""
    lo, hi = _DTYPE_RANGE[module.dtype]
    qmin = lo if module.quant_min is None else module.quant_min
    qmax = hi if module.quant_max is None else module.quant_max
    with graph.inserting_before(node):
        quantized = graph.call_function(quantize_per_tensor_dynamic, (
            source, qmin, qmax, float(module.eps), module.dtype))
    for user in list(node.users):
        with graph.inserting_before(user):
            dequantized = graph.call_method("dequantize", (quantized,))
        user.replace_input_with(node, dequantized)
    graph.erase_node(node)


def convert_annotated(gm, fold_quantize: bool = True):
    from ...ir.ops import OPS_NS
    graph, frozen = gm.graph, 0
    for node in list(graph.nodes):
        if not _is_observer(gm, node):
            continue
        module = gm.get_submodule(str(node.target))
        (source,) = node.args
        if module.dtype not in _QUANTIZED.values() and module.dtype not in (
                dtypes.quint8, dtypes.qint8, dtypes.qint32):
            node.replace_all_uses_with(source)     # a float "observer": nothing to do
            graph.erase_node(node)
            continue
        if getattr(module, "is_dynamic", False):
            _dynamic_quantize_node(graph, node, source, module)
            continue
        scale, zero_point = _qparams(module)
        with graph.inserting_before(node):
            if fold_quantize and source.op == OpKind.get_attr:
                name = f"_frozen_param{frozen}"
                frozen += 1
                gm.register_buffer(name, _quantize(_constant(gm, source).detach(), module,
                                                   scale, zero_point))
                quantized = graph.get_attr(name)
            else:
                if getattr(module, "qscheme", None) in _PER_CHANNEL:
                    s_name, z_name = f"_scale_{frozen}", f"_zero_point_{frozen}"
                    frozen += 1
                    gm.register_buffer(s_name, scale)
                    gm.register_buffer(z_name, zero_point)
                    quantized = graph.call_function(OPS_NS.quantize_per_channel, (
                        source, graph.get_attr(s_name), graph.get_attr(z_name),
                        module.ch_axis, module.dtype))
                else:
                    s, z = float(scale.reshape(-1)[0].item()), int(zero_point.reshape(-1)[0]
                                                                   .item())
                    quantized = graph.call_function(OPS_NS.quantize_per_tensor, (
                        _clamped(graph, source, module, s, z), s, z, module.dtype))
        for user in list(node.users):            # one dequantize per user, as torch's
            with graph.inserting_before(user):    # DuplicateDQPass leaves it
                dequantized = graph.call_method("dequantize", (quantized,))
            user.replace_input_with(node, dequantized)
        graph.erase_node(node)
    graph.eliminate_dead_code()
    for name in [n for n, _ in gm.named_children() if n.startswith("activation_post_process_")]:
        delattr(gm, name)
    graph.lint()
    gm.recompile()
    return gm
