"""Graph-mode quantization rewrites: insert observers (prepare), then turn them into
quantize/dequantize nodes and lower quantized patterns to int8 ops (convert).

These are the graph halves of ember.ao.quantization.quantize_fx; the user API there
decides qconfigs and owns the observer modules, and hands these passes plain data:
`module_kinds` (call_module target -> kind), `wants(node)` (does this node's qconfig
quantize it) and `new_observer(node, for_node) -> str` (the qualified name of a
fresh observer module to call).

Kinds of nodes (function and method forms are recognized here, both the registry
op form ember's tracer records and torch.fx's forms: operator.add, call_method "add"):

- WEIGHTED ("linear", "conv2d", "conv3d" and their "_relu" forms): quantized
  inputs, an observed output, lowered to quantized_linear / quantized_conv2d /
  quantized_conv3d;
- BINARY ("add", "mul", with a following relu fused): quantized_add / quantized_mul;
- SHARED (pooling, mean, flatten/reshape/views, relu, relu6/hardtanh/clamp, dropout): run
  on the quantized value itself and keep its qparams, so they get no observer of their
  own (prepare re-runs the input's observer on their output; the reference graph keeps
  that as a quantize / dequantize pair, as torch.ao's does);
- CAT (cat / concat / concatenate of a list of tensors): torch.ao's shared qparams:
  every input's observer and the output's are one observer (calibration sees them
  all), so converted, cat joins the integers of values that share scale and zero point;
- FIXED (sigmoid, tanh, hardsigmoid; the nn.Softmax module through module_kinds): their
  output observer has fixed qparams; they run in float between a dequantize and a
  quantize. (As in torch.ao, functional softmax and `torch.relu` outside an add / mul
  pattern are float ops: the next quantized op observes their output as its input);
- OWN_OBSERVER (hardswish, elu, leaky_relu, functional layer_norm; the nn.PReLU
  module): quantized input, an
  output observer of their own (torch.ao's "output uses a different observer than the
  input"); they run in float between a dequantize and a quantize, as torch's quantized
  kernels compute;
- CUSTOM ("custom": a user's float -> observed -> quantized module class): inputs and
  output observed; converted, the module takes and returns quantized values. One that
  returns a tuple (meta["tuple_output"]: LSTM, MultiheadAttention) has the tensors of
  its first three arguments observed (inside tuples too: an LSTM's (h, c)) and no output
  observer: the tensors getitem takes out of its result are quantized values (torch.ao
  puts DeQuantStubs there: prepare_fx adds them, marked meta["dequant_stub_of_tuple"],
  with the tuple rebuilt from them for whole-tuple uses; convert drops them);
- everything else runs in float: convert puts a dequantize in front of it.
"""
from __future__ import annotations

import operator
from typing import Callable

from ember.ir.graph import Graph, Node, OpKind, map_arg
from ember.ir.registry import OPS, is_op

WEIGHTED = {"linear", "linear_relu", "conv2d", "conv2d_relu", "conv3d", "conv3d_relu"}
BINARY = {"add", "mul"}
SHARED = {"view", "reshape", "flatten", "permute", "transpose", "squeeze", "unsqueeze",
          "contiguous", "detach", "max_pool1d", "max_pool2d", "adaptive_max_pool2d",
          "avg_pool1d", "avg_pool2d", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "relu",
          "relu6", "hardtanh", "clamp", "dropout", "identity", "mean", "interpolate"}
CAT = {"cat", "concat", "concatenate"}
FIXED = {"sigmoid", "tanh", "hardsigmoid"}
OWN_OBSERVER = {"hardswish", "elu", "leaky_relu", "prelu", "layer_norm"}
# kinds torch.ao quantizes in module form only (F.prelu has no pattern: it stays float)
MODULE_ONLY = {"prelu"}
CUSTOM = {"custom"}      # a user's custom module: quantized input, quantized output
_OPERATORS = {operator.add: "add", operator.iadd: "add", operator.mul: "mul",
              operator.imul: "mul"}


def node_kind(node: Node, module_kinds: dict) -> str | None:
    """The quantization kind of a node (None: not a tensor op that quantization knows).
    `module_kinds` maps call_module targets, and may map nodes themselves (functional
    linear / conv2d with weights the caller can quantize)."""
    if node in module_kinds:
        return module_kinds[node]
    if node.op == OpKind.call_module:
        return module_kinds.get(str(node.target))
    if node.op == OpKind.call_function:
        if node.target in _OPERATORS:
            return _OPERATORS[node.target]
        name = node.target.name if is_op(node.target) else getattr(node.target, "__name__", "")
    elif node.op == OpKind.call_method:
        name = str(node.target)
    else:
        return None
    name = name.rstrip("_") if name.endswith("_") and not name.startswith("_") else name
    if (name == "relu" and is_torch_relu(node)) or name in MODULE_ONLY:
        return None     # float ops (torch.relu unless fused after add / mul; F.prelu)
    if name in BINARY or name in SHARED or name in FIXED or name in OWN_OBSERVER:
        return name
    if name in CAT:
        return "cat"
    return None


def is_torch_relu(node: Node) -> bool:
    """`torch.relu(x)` / `torch.relu_(x)` (the registry op, as ember's tracer records it;
    `F.relu` is recorded as the function). torch.ao's patterns treat it apart from F.relu
    and nn.ReLU: fused after add / mul only, and otherwise run in float (it is not one of
    its shared-qparams ops)."""
    return node.op == OpKind.call_function and is_op(node.target) and \
        node.target.name in ("relu", "relu_")


def _tensor_inputs(node: Node, kind: str) -> list[Node]:
    """The inputs a quantized pattern reads as quantized values."""
    if kind in BINARY:
        return [a for a in node.args[:2] if isinstance(a, Node)]
    if kind == "cat":
        return list(node.args[0]) if _cat_of_tensors(node) else []
    return [node.args[0]] if node.args and isinstance(node.args[0], Node) else []


def _cat_of_tensors(node: Node) -> bool:
    """cat(list of tensors, dim) with every list item a graph value (not a constant)."""
    return bool(node.args) and isinstance(node.args[0], (list, tuple)) and \
        len(node.args[0]) > 0 and all(isinstance(a, Node) for a in node.args[0])


def scalar_operand(node: Node):
    """(tensor input, number) of add / mul with one graph value and one Python number
    (None otherwise): torch.ao's quantized add_scalar / mul_scalar."""
    if len(node.args) < 2 or node.kwargs.get("alpha", 1) != 1:
        return None
    a, b = node.args[:2]
    for x, c in ((a, b), (b, a)):
        if isinstance(x, Node) and isinstance(c, (int, float)) and not isinstance(c, bool):
            return x, c
    return None


def scalar_output_qparams(kind: str, scale: float, zero_point: int, c: float,
                          qmin: int, qmax: int) -> tuple[float, int] | None:
    """The output qparams torch.ao's quantized add / mul with a scalar give: add shifts
    the zero point by round(c / scale) while it stays in [qmin, qmax], else widens the
    scale and pins the zero point at the range's end; mul scales the scale by |c| and
    mirrors the zero point for c < 0. None where torch's kernel special-cases (c == 0)."""
    if kind == "add":
        shifted = zero_point - round(c / scale)
        if shifted < qmin:
            return (qmax - shifted) / (qmax - qmin) * scale, qmin
        if shifted > qmax:
            return (shifted - qmin) / (qmax - qmin) * scale, qmax
        return scale, shifted
    if c == 0:
        return None
    return scale * abs(c), (zero_point if c > 0 else qmax + qmin - zero_point)


def _binary_of_tensors(node: Node) -> bool:
    return len(node.args) >= 2 and all(isinstance(a, Node) for a in node.args[:2]) and \
        not node.kwargs.get("alpha", 1) != 1


# --- prepare ---------------------------------------------------------------------------------
def insert_observers(graph: Graph, module_kinds: dict, wants: Callable[[Node], bool],
                     new_observer: Callable[[Node, Node], str],
                     reobserves: Callable[[Node], bool] = lambda n: False,
                     share_observer: Callable[[str], str] = lambda target: target,
                     quantized_inputs=()) -> dict:
    """Insert `call_module` observer nodes; returns {node: kind} of the quantized nodes.

    A quantized pattern's tensor inputs are observed (an observer is added after a
    float producer or a placeholder, once per value) and its output is observed; all
    later uses read the observer's output. A binary op whose only user is a relu is
    observed after the relu (convert fuses them). A SHARED op for which `reobserves(node)`
    holds has its output passed through its input's observer again (the same module:
    torch.ao's "output shares the input's observer", which updates that observer's
    statistics and fake-quantizes the output in QAT); such nodes are marked
    meta["reobserve"] = True, and `drop_reobservations` removes them at convert. The
    second call's target is `share_observer(first call's target)` (the caller may register
    the same module under a new name, as torch.ao numbers it). `quantized_inputs`:
    placeholders the model receives already quantized (no observer for them).
    """
    observed: dict[Node, Node] = {}     # value -> the observer node reading it
    quantized: dict[Node, str] = {}
    observers = set(quantized_inputs)

    def is_quantized_value(n: Node) -> bool:
        return n in observers or (n in quantized and quantized[n] in SHARED)

    def ensure_observed(value: Node, consumer: Node) -> None:
        if is_quantized_value(value):
            return
        if value not in observed:
            with graph.inserting_after(value):
                obs = graph.call_module(new_observer(value, consumer), (value,))
            observed[value] = obs
            observers.add(obs)
        consumer.replace_input_with(value, observed[value])

    def observe_output(node: Node, owner: Node) -> None:
        with graph.inserting_after(node):
            obs = graph.call_module(new_observer(node, owner), (node,))
        node.replace_all_uses_with(obs, delete_user_cb=lambda user: user is not obs)
        observers.add(obs)

    def _share_scalar_operand_observer(node: Node, kind: str) -> None:
        """add / mul with a number: torch.ao's output shares the input's observer (the
        same module observes the input and the result)."""
        x, c = scalar_operand(node)
        if kind == "mul" and c == 0:
            return
        ensure_observed(x, node)
        source = _observer_of(node.args[0] if isinstance(node.args[0], Node) else
                              node.args[1], observers, quantized)
        if source is None or source.op != OpKind.call_module:
            return
        quantized[node] = kind
        with graph.inserting_after(node):     # the same observer under the next name
            again = graph.call_module(share_observer(str(source.target)), (node,))
        again.meta["reobserve"] = again.meta["scalar_operand"] = True
        node.replace_all_uses_with(again, delete_user_cb=lambda user: user is not again)
        observers.add(again)

    for node in list(graph.nodes):
        if node in observers:
            continue
        kind = node_kind(node, module_kinds)
        if kind is None or not wants(node):
            continue
        if kind in CUSTOM and "standalone_interface" in node.meta:
            # a standalone module with quantized inputs and / or output
            quantized_in, quantized_out = node.meta["standalone_interface"]
            for value in dict.fromkeys(_tensor_inputs(node, kind) if quantized_in else ()):
                ensure_observed(value, node)
            if quantized_out:
                observers.add(node)
            quantized[node] = kind
            continue
        if kind in CUSTOM and node.meta.get("tuple_output"):
            _check_tuple_unpacked(node)
            for value in dict.fromkeys(tuple_module_inputs(node)):
                ensure_observed(value, node)
            quantized[node] = kind
            for leaf in tuple_output_leaves(node):     # or the DeQuantStubs after them
                stubs = [u for u in leaf.users if u.meta.get("dequant_stub_of_tuple")]
                observers.update(stubs or [leaf])
            continue
        if kind in BINARY and scalar_operand(node) is not None:
            _share_scalar_operand_observer(node, kind)
            continue
        if kind in BINARY and not _binary_of_tensors(node):
            continue
        inputs = _tensor_inputs(node, kind)
        if not inputs:
            continue
        if kind in SHARED:
            if inputs[0] in observed and not is_quantized_value(inputs[0]):
                # a value already observed for another op (a model input read by a conv
                # and by an Identity shortcut): the shared op reads the observed value,
                # as torch.ao's does, and runs on the quantized tensor
                node.replace_input_with(inputs[0], observed[inputs[0]])
                inputs = _tensor_inputs(node, kind)
            if not is_quantized_value(inputs[0]) and inputs[0] not in quantized and \
                    _may_be_tensor(inputs[0]) and reobserves(node):
                # a float input (a model input, a float op's or a None-qconfig region's
                # output): observed as the op's input, as torch.ao's prepare does, so
                # the op runs on the int8 value and its output shares the observer
                ensure_observed(inputs[0], node)
                inputs = _tensor_inputs(node, kind)
            if is_quantized_value(inputs[0]):
                quantized[node] = kind
                source = inputs[0]
                if source in observers and source.op == OpKind.call_module and \
                        reobserves(node):
                    with graph.inserting_after(node):
                        again = graph.call_module(share_observer(str(source.target)),
                                                  (node,))
                    again.meta["reobserve"] = True
                    node.replace_all_uses_with(again,
                                               delete_user_cb=lambda user: user is not again)
                    observers.add(again)
            continue
        for value in dict.fromkeys(inputs):
            ensure_observed(value, node)
        quantized[node] = kind
        if kind == "cat":
            observe_output(node, node)
            _share_one_observer(graph, node, observers, quantized)
            continue
        relu = _fused_relu(node, kind, module_kinds)
        if relu is not None:
            quantized[relu] = "fused_relu"
            observe_output(relu, node)
        else:
            observe_output(node, node)
    graph.lint()
    return quantized


def _may_be_tensor(value: Node) -> bool:
    """False for values that are surely not activation tensors: parameters (get_attr),
    tuples and lists built in the graph, and tuple results of custom modules."""
    if value.op == OpKind.get_attr or value.meta.get("tuple_output"):
        return False
    return not (value.op == OpKind.call_function and value.target in (tuple, list))


def _observer_of(value: Node, observers: set, quantized: dict) -> Node | None:
    """The observer node whose qparams a quantized value carries: the value itself, or
    up through the SHARED ops that keep their input's qparams."""
    while value not in observers:
        if quantized.get(value) not in SHARED or not value.args or \
                not isinstance(value.args[0], Node):
            return None
        value = value.args[0]
    return value


def _share_one_observer(graph: Graph, cat: Node, observers: set, quantized: dict) -> None:
    """Make every observer of cat's inputs and its output's observer the first input's
    (each call_module node of those observers calls the first one's module): one set of
    qparams for all, as torch.ao shares one observer instance among them. A shared op's
    reobservation (its own observer in torch.ao) is retargeted alone: convert drops it,
    so that input keeps its own qparams and the quantized cat requantizes it, as
    torch.ao's converted cat does."""
    found = [_observer_of(v, observers, quantized) for v in cat.args[0]]
    (out_obs,) = [u for u in cat.users if u in observers]
    if any(f is None or f.op != OpKind.call_module for f in found):
        return
    shared = str(found[0].target)
    renamed = {str(f.target) for f in found[1:] if not f.meta.get("reobserve")}
    renamed.add(str(out_obs.target))
    for f in found[1:]:
        if f.meta.get("reobserve"):
            f.target = shared
    for n in graph.nodes:
        if n in observers and n.op == OpKind.call_module and str(n.target) in renamed:
            n.target = shared


def _fused_relu(node: Node, kind: str | None, module_kinds: dict) -> Node | None:
    """The relu a pattern takes in (one observer after it), as torch.ao's fused patterns:
    add / mul, and functional linear / conv (F.linear, F.conv2d; their module forms are
    fused into LinearReLU / ConvReLU2d before), with nn.ReLU or F.relu; torch.relu after
    add / mul only, as torch.ao."""
    if kind in BINARY or (kind in WEIGHTED and node.op == OpKind.call_function):
        return _sole_relu_user(node, module_kinds, with_torch_relu=kind in BINARY)
    return None


def _sole_relu_user(node: Node, module_kinds: dict,
                    with_torch_relu: bool = True) -> Node | None:
    # torch.ao fuses add / mul with nn.ReLU, F.relu and torch.relu, functional linear /
    # conv with nn.ReLU and F.relu only, and nothing with the `.relu()` / `.relu_()`
    # methods (those run on the quantized sum with its qparams)
    users = list(node.users)
    if len(users) != 1 or users[0].op == OpKind.call_method or not users[0].args or \
            users[0].args[0] is not node:
        return None
    if node_kind(users[0], module_kinds) == "relu" or \
            (with_torch_relu and is_torch_relu(users[0])):
        return users[0]
    return None


# --- convert ---------------------------------------------------------------------------------
def tuple_module_inputs(node: Node) -> list[Node]:
    """The graph values among a tuple-returning custom module's first three arguments,
    tuples and lists opened (LSTM: x, (h, c); MultiheadAttention: query, key, value;
    masks come later and stay float)."""
    found = []
    map_arg(tuple(node.args[:3]), found.append)
    return found


def _is_getitem(node: Node) -> bool:
    return node.op == OpKind.call_function and node.target is operator.getitem and \
        len(node.args) == 2 and isinstance(node.args[1], int)


def _tensor_paths(node: Node) -> tuple | None:
    """meta["tuple_output"]: the index paths of the tensors in the module's tuple result
    (an LSTM's ((0,), (1, 0), (1, 1))), or True where the layout is not known."""
    paths = node.meta.get("tuple_output")
    return paths if isinstance(paths, tuple) else None


def _check_tuple_unpacked(node: Node) -> None:
    """Converted, the module returns quantized tensors that only getitem users are known
    to receive (and dequantize where a float op reads them; where the layout is known,
    prepare_fx has already rerouted whole-tuple uses through DeQuantStubs): a use of the
    whole tuple would hand quantized tensors on unnoticed."""
    whole = [u for u in node.users if not _is_getitem(u)]
    if whole:
        raise ValueError(
            f"prepare_fx: the custom module {node.target} returns a tuple that "
            f"{whole[0].name} uses whole; take its tensors out first (e.g. "
            f"`out, weights = self.{node.target}(...)`) so that convert can dequantize each")


def tuple_output_leaves(node: Node) -> list[Node]:
    """The getitem nodes that take tensors out of `node`'s (nested) tuple result: those
    at its tensor paths, or, where the layout is not known, those whose users are not
    all getitems themselves."""
    paths = _tensor_paths(node)
    leaves, todo = [], [(node, ())]
    while todo:
        value, prefix = todo.pop(0)
        for user in value.users:
            if not _is_getitem(user):
                continue
            path = prefix + (user.args[1],)
            if paths is None:
                inner = [u for u in user.users if _is_getitem(u)]
                if inner:
                    todo.append((user, path))
                if len(inner) < len(user.users):
                    leaves.append(user)
            elif path in paths:
                leaves.append(user)
            elif any(p[:len(path)] == path for p in paths):
                todo.append((user, path))
    return leaves


def drop_tuple_dequant_stubs(graph: Graph) -> None:
    """The DeQuantStubs prepare put after the tensors of a custom module's tuple result:
    their readers read the tensor itself (a quantized value convert dequantizes where a
    float op reads it)."""
    for stub in [n for n in graph.nodes if n.meta.get("dequant_stub_of_tuple")]:
        stub.replace_all_uses_with(stub.args[0])
        graph.erase_node(stub)


def number_observers(graph: Graph, observer_names) -> None:
    """meta["observer_index"] = k on the k-th observer call (graph order) of the modules
    in `observer_names`, reobservations included: torch.ao's convert turns each into a
    `quantize_per_tensor_k` / `dequantize_k` pair in that order, and its lowered graph
    keeps those names (`dequantize_4` before the output of a model whose fifth observer
    observes it)."""
    names = set(observer_names)
    index = 0
    for node in graph.nodes:
        if node.op == OpKind.call_module and str(node.target) in names:
            node.meta["observer_index"] = index
            index += 1


def numbered(base: str, node: Node) -> str | None:
    """`base` numbered as torch.ao names the pair made from observer k (`dequantize`,
    `dequantize_1`, ...), where `node` carries meta["observer_index"] (None otherwise)."""
    k = node.meta.get("observer_index")
    if k is None:
        return None
    return base if k == 0 else f"{base}_{k}"


def take_name(graph: Graph, node: Node, name: str | None) -> None:
    """Name `node` `name` where no live node of the graph holds it (an erased node's
    name is free again: the converted graph's names follow torch.ao's)."""
    if name and name != node.name and name.isidentifier() and \
            all(n.name != name for n in graph.nodes):
        graph._used.add(name)
        node.name = name


def observers_to_quantize(graph: Graph, qparams: dict) -> dict:
    """Replace each observer node (qualified name in `qparams`: (scale, zero_point, dtype))
    with `quantize_per_tensor(x, scale, zero_point, dtype)`; returns {node: qparams}."""
    quantize = OPS["quantize_per_tensor"]
    made = {}
    for node in list(graph.nodes):
        if node.op != OpKind.call_module or str(node.target) not in qparams:
            continue
        scale, zero_point, dtype = qparams[str(node.target)]
        with graph.inserting_before(node):
            q = graph.call_function(quantize, (node.args[0], float(scale), int(zero_point),
                                               dtype))
        node.replace_all_uses_with(q)
        graph.erase_node(node)
        _carry_index(node, q)
        take_name(graph, q, numbered("quantize_per_tensor", q))
        made[q] = (scale, zero_point, dtype)
    return made


def _carry_index(source: Node, dest: Node) -> None:
    if "observer_index" in source.meta:
        dest.meta["observer_index"] = source.meta["observer_index"]


def drop_reobservations(graph: Graph) -> None:
    """Remove the second calls of shared observers (insert_observers' reobserved SHARED
    outputs) before lowering: converted, a shared op keeps its input's quantization as it
    is. (Reference graphs keep them: torch.ao's reference quantizes and dequantizes
    after every shared op, and after an add / mul with a number, with the shared
    observer's qparams; lowered, such an add / mul computes its own, see
    lower_quantized.)"""
    for node in list(graph.nodes):
        if node.meta.get("reobserve"):
            if node.meta.get("scalar_operand"):
                node.args[0].meta["scalar_operand_shared"] = True
            else:       # its qparams' names are still counted (torch.ao's numbering)
                node.args[0].meta["dropped_requantize"] = True
            # the op's int8 result is the value torch.ao's quantize there would give:
            # its dequantize takes that pair's name
            _carry_index(node, node.args[0])
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)


def insert_reference_dequantize(graph: Graph, quantize_nodes) -> None:
    """convert_to_reference_fx's form: every quantize is followed by a dequantize, and
    everything reads the dequantized value (dequant -> float op -> quant)."""
    drop_tuple_dequant_stubs(graph)
    dequantize = OPS["dequantize"]
    # a tuple-returning custom module (quantized LSTM / MHA) reads its quantized inputs
    # and returns quantized tensors, each dequantized after the getitem that takes it
    # (and a standalone module with a quantized input interface reads them as they are)
    keeps_quantized = lambda user: user.meta.get("tuple_output", False) or \
        user.meta.get("standalone_interface", (False, False))[0]  # noqa: E731
    quantized_out = [n for n in graph.nodes
                     if n.meta.get("standalone_interface", (False, False))[1]]
    for q in list(quantize_nodes) + quantized_out + \
            [leaf for n in graph.nodes if n.meta.get("tuple_output", False)
             for leaf in tuple_output_leaves(n)]:
        if q.users and all(keeps_quantized(user) for user in q.users):
            continue
        with graph.inserting_after(q):
            dq = graph.call_function(dequantize, (q,))
        take_name(graph, dq, numbered("dequantize", q))
        q.replace_all_uses_with(dq, delete_user_cb=lambda user: user is not dq and
                                not keeps_quantized(user))
    graph.lint()


def lower_quantized(graph: Graph, quantize_nodes: dict, module_kinds: dict,
                    weighted: dict, shared_ok: Callable[[Node], bool] = lambda n: True,
                    configured: Callable[[Node], bool] = lambda n: True) -> None:
    """Lower `op -> quantize` pairs whose inputs are quantized to quantized ops; keep
    SHARED ops on quantized values; dequantize every quantized value a float op reads.
    A node for which `configured(node)` is false (its qconfig is None) stays a float op
    even between quantized values, as torch.ao converts it.

    `weighted[node]`: for WEIGHTED call_module nodes, a dict with "weight" and "bias"
    (get_attr qualified names, bias may be None) and, for convs, "stride", "padding",
    "dilation", "groups".
    """
    drop_tuple_dequant_stubs(graph)
    qvalue: dict[Node, tuple] = dict(quantize_nodes)      # quantized node -> qparams
    dequantized: dict[Node, Node] = {}

    def dequant(value: Node) -> Node:
        if value not in dequantized:
            with graph.inserting_after(value):
                dequantized[value] = graph.call_function(OPS["dequantize"], (value,))
            take_name(graph, dequantized[value], numbered("dequantize", value))
        return dequantized[value]

    for node in list(graph.nodes):
        if node in qvalue or node in dequantized.values():
            continue
        if "standalone_interface" in node.meta:
            quantized_in, quantized_out = node.meta["standalone_interface"]
            if not quantized_in:
                for value in node.all_input_nodes:
                    if value in qvalue:
                        node.replace_input_with(value, dequant(value))
            if quantized_out:
                qvalue[node] = (None, None, None)
            continue
        if node_kind(node, module_kinds) in CUSTOM and node.meta.get("tuple_output"):
            # it takes its quantized inputs as they are and returns quantized tensors,
            # whose qparams are the module's own (unknown here: no requantizing cat)
            qvalue.update({leaf: (None, None, None) for leaf in tuple_output_leaves(node)})
            continue
        kind = node_kind(node, module_kinds) if configured(node) else None
        if kind is not None and _lower_pattern(graph, node, qvalue, module_kinds,
                                               weighted) is not None:
            continue
        if kind in BINARY and node.meta.get("scalar_operand_shared"):
            if _lower_scalar_operand(graph, node, kind, qvalue, dequant):
                continue
        if kind in SHARED and node.args and node.args[0] in qvalue and shared_ok(node) and \
                all(a not in qvalue for a in node.all_input_nodes[1:]):
            qvalue[node] = qvalue[node.args[0]]
            continue
        if _reads_only_shape(node):          # x.shape / x.size(): same on the quantized value
            continue
        for value in node.all_input_nodes:
            if value in qvalue and not (node.op == OpKind.call_function and
                                        node.target is OPS["dequantize"]):
                node.replace_input_with(value, dequant(value))
    graph.eliminate_dead_code()
    graph.lint()


_DTYPE_RANGE = {"quint8": (0, 255), "qint8": (-128, 127)}


def _lower_scalar_operand(graph: Graph, node: Node, kind: str, qvalue: dict,
                          dequant: Callable) -> bool:
    """add / mul of a quantized value and a number: computed on the dequantized value and
    quantized with the qparams torch.ao's add_scalar / mul_scalar give (the integers
    are torch's: a zero-point shift, a widened scale, or a mirrored range)."""
    x, c = scalar_operand(node)
    if x not in qvalue:
        return False
    scale, zero_point, dtype = qvalue[x]
    limits = _DTYPE_RANGE.get(str(dtype).rsplit(".", 1)[-1])
    out = None if limits is None else \
        scalar_output_qparams(kind, float(scale), int(zero_point), float(c), *limits)
    if out is None:
        return False
    at = next(i for i, a in enumerate(node.args) if a is c and not isinstance(a, Node))
    if kind == "add":       # torch adds the number rounded to the input's scale
        rounded = float(round(float(c) / float(scale)) * float(scale))
        node.args = tuple(rounded if i == at else a for i, a in enumerate(node.args))
    node.replace_input_with(x, dequant(x))
    with graph.inserting_after(node):
        q = graph.call_function(OPS["quantize_per_tensor"], (node, float(out[0]),
                                                             int(out[1]), dtype))
    q.meta["computed_qparams"] = True      # derived from the input's: no buffers of its own
    # what derives them again when a state_dict brings the input's qparams (quantize_fx's
    # rederive_scalar_qparams): the input, the op, the number and where the op takes it
    q.meta["scalar_qparams"] = (x.name, kind, float(c), limits, node.name, at)
    _carry_index(node, q)
    node.replace_all_uses_with(q, delete_user_cb=lambda user: user is not q)
    qvalue[q] = (out[0], out[1], dtype)
    return True


def _reads_only_shape(node: Node) -> bool:
    if node.op == OpKind.call_method:
        return node.target in ("size", "dim", "numel")
    return node.op == OpKind.call_function and getattr(node.target, "__name__", "") == \
        "getattr" and len(node.args) == 2 and node.args[1] in ("shape", "ndim")


def _quantize_user(node: Node) -> Node | None:
    users = list(node.users)
    if len(users) == 1 and users[0].op == OpKind.call_function and \
            users[0].target is OPS["quantize_per_tensor"]:
        return users[0]
    return None


def _lower_pattern(graph: Graph, node: Node, qvalue: dict, module_kinds: dict,
                   weighted: dict) -> Node | None:
    kind = node_kind(node, module_kinds)
    if kind in CUSTOM and node.args and node.args[0] in qvalue:
        out_q = _quantize_user(node)          # the module itself returns a quantized value
        if out_q is not None:
            out_q.replace_all_uses_with(node)
            qvalue[node] = qvalue.pop(out_q)
            graph.erase_node(out_q)
            _carry_index(out_q, node)
            return node
    if kind in WEIGHTED and node in weighted and node.args and node.args[0] in qvalue:
        relu_node = _fused_relu(node, kind, module_kinds)
        out_q = _quantize_user(relu_node if relu_node is not None else node)
        if out_q is None:
            return None
        spec = weighted[node]
        _, scale, zero_point, _ = out_q.args
        with graph.inserting_before(out_q):
            w = graph.get_attr(spec["weight"])
            b = graph.get_attr(spec["bias"]) if spec.get("bias") else None
            relu = kind.endswith("_relu") or relu_node is not None
            if kind.startswith("linear"):
                new = graph.call_function(OPS["quantized_linear"],
                                          (node.args[0], w, b, scale, zero_point, relu))
            else:
                conv = OPS["quantized_conv3d" if kind.startswith("conv3d") else
                           "quantized_conv2d"]
                new = graph.call_function(conv, (
                    node.args[0], w, b, list(spec["stride"]), list(spec["padding"]),
                    list(spec["dilation"]), spec["groups"], scale, zero_point, relu))
        return _replace(graph, out_q, new, qvalue,
                        [relu_node, node] if relu_node is not None else [node])
    if kind == "cat" and _cat_of_tensors(node) and all(a in qvalue for a in node.args[0]):
        out_q = _quantize_user(node)
        # the result takes the first input's qparams (inputs with others are requantized
        # to them by the quantized cat, as torch's is)
        if out_q is None or tuple(qvalue[node.args[0][0]]) != tuple(out_q.args[1:]) or \
                len({qvalue[a][2] for a in node.args[0]}) != 1:
            return None          # other qparams: cat runs in float on dequantized values
        out_q.replace_all_uses_with(node)
        qvalue[node] = qvalue.pop(out_q)
        graph.erase_node(out_q)
        _carry_index(out_q, node)
        # torch.ao's reference graph quantizes cat's result: its qparams' names are
        # still counted (`_scale_0` unused, the next op's `_scale_1`), as torch.ao numbers
        node.meta["dropped_requantize"] = True
        return node
    if kind in BINARY and _binary_of_tensors(node) and \
            all(a in qvalue for a in node.args[:2]):
        relu_node = _sole_relu_user(node, module_kinds)
        tail = relu_node if relu_node is not None else node
        out_q = _quantize_user(tail)
        if out_q is None:
            return None
        _, scale, zero_point, _ = out_q.args
        op = OPS["quantized_add"] if kind == "add" else OPS["quantized_mul"]
        # named as torch.ao's lowering names them: `add_1`, `mul_2`, `add_relu` ...
        name = kind + ("_relu" if relu_node is not None else "")
        with graph.inserting_before(out_q):
            new = graph.call_function(op, (node.args[0], node.args[1], scale, zero_point,
                                           relu_node is not None), name=name)
        dead = [relu_node, node] if relu_node is not None else [node]
        return _replace(graph, out_q, new, qvalue, dead)
    return None


def _replace(graph: Graph, out_q: Node, new: Node, qvalue: dict, dead: list) -> Node:
    # the float node whose output the lowered op now produces (its module scope names
    # the op's qparams, as torch.ao names them)
    new.meta["lowered_from"] = dead[0]
    new.meta["lowered_op"] = dead[-1]     # the op itself (a fused relu's producer)
    out_q.replace_all_uses_with(new)
    qvalue[new] = qvalue.pop(out_q)
    graph.erase_node(out_q)
    _carry_index(out_q, new)
    for n in dead:
        if not n.users:
            graph.erase_node(n)
    return new
