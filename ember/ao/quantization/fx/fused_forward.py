"""A converted model's forward with its residual adds fused into their convolutions.

convert_fx's graph keeps a ResNet block's `conv2 -> quantized_add(conv2, identity) (+
relu)` pair, as torch.ao's does, and its printed graph and code stay that. Run as two
ops, the add is a pass of its own over both tensors and a call of its own (Python glue
that, with two threads, runs on one while the other waits). So the converted
GraphModule's forward is generated from a copy of its graph where each such pair is one
call of `residual_conv_add`: the conv's GEMM with the add in its epilogue (the conv's
result rounded to its own qparams, then added and requantized: the pair's integers
exactly, frontend/quantized.py conv2d_add), or the pair itself wherever the fused
kernel does not apply (a first call, a traced or symbolic value, a hook on the conv,
another layout).

A pair is a call of a quantized Conv2d (or ConvReLU2d, groups 1) that the graph makes
from one node only and whose one reader is a `quantized_add` of it and another value.
The GraphModule's `recompile` (after a graph edit, a state_dict load that changed a
qparams constant) regenerates the plain forward and then this one from the graph as it
is then (`_forward_rewrite`).

Likewise a quantized Linear (or LinearReLU) whose one reader is `dequantize` (an MLP's or
a classifier's last layer) is one call of `linear_dequantize`: the GEMM's epilogue
dequantizes what it rounds (frontend/quantized.py linear_dequantize: the pair's floats),
so the uint8 result, the dequantize's call and its single-threaded pass are gone.

Every other call of a quantized Conv2d (or ConvReLU2d) is a `conv_step`, and a step
whose every reader is a conv step or a fused pair (resnet's convolutions but the stem and
the last) may leave its kernel running when it returns (`overlap`: the thread pool's
defer, runtime/threads.py): the workers claim its tiles while the calling thread runs
the Python of the next step, whose kernel, or a Python read of the result, joins it
first (ThreadPool.join; the prepared calls' copies, the full paths and the plain pair
settle first). Before any other node, and before the output, the forward joins it.

A conv step whose input is a `quantize_per_tensor` node that it alone reads (the model's
input quantize and its stem) is one `quantize_conv_step`: where the layer's prepared call
reads its input as row pairs (codegen/quantized.py _row_pairs_runner: resnet's 7x7 stem
on AMX hosts), one kernel quantizes the float image straight into that input, and no
quantized tensor is made; elsewhere the two calls.

A MaxPool2d pool step whose input is a conv step or a quantize_conv_step read by it alone
(resnet's stem and its 3x3 / 2 max pool) is one `conv_pool_step`: where the conv's
prepared call reads row pairs, one kernel (codegen/llvm/qstem_pool.py) runs the conv in
bands of output rows into each thread's own buffer and pools each band from there, so
the conv's output (6.4 MB at resnet18's batch 8) is never stored to memory and read back;
elsewhere the two steps.
"""
from __future__ import annotations

import linecache
import operator

import numpy as np

from ....frontend.fx.codegen import python_code
from ....frontend import nn as _nn
from ....frontend.nn.modules import module as _module
from ....frontend.quantized import QuantizedTensor, conv2d_add, settle_deferred, \
    linear_dequantize as _linear_dequantize, linear_dequantize_for as _linear_dequantize_for, \
    _qelementwise, _number
from ....frontend.tensor import Tensor
from ....ir.quantized import QuantizedArray
from ....ir import autocast as _autocast, dispatch as _dispatch, dtypes
from ....ir.torch_function import STATE as _TF_STATE
from ....ir.graph import Graph, OpKind
from ....ir.registry import OPS
from ....runtime.threads import default_pool
from ...nn.quantized import modules as nnq

# conv steps may leave their kernels running (module docstring); [False]: every step
# finishes its kernel before it returns (tools/qprofile.py's per-step times, tests)
OVERLAP = [True]


def residual_pairs(gm) -> list:
    """(conv node, add node, other operand) for each fusable pair of gm's graph."""
    calls: dict = {}
    for node in gm.graph.nodes:
        if node.op == OpKind.call_module:
            calls[str(node.target)] = calls.get(str(node.target), 0) + 1
    pairs = []
    for add in gm.graph.nodes:
        if add.op != OpKind.call_function or add.target is not OPS["quantized_add"] or \
                add.kwargs or len(add.args) != 5:
            continue
        for conv, other in ((add.args[0], add.args[1]), (add.args[1], add.args[0])):
            if _fusable_conv(gm, conv, calls) and conv is not other:
                pairs.append((conv, add, other))
                break
    return pairs


def dequantize_pairs(gm) -> list:
    """(linear node, dequantize node) for each quantized Linear call whose one reader is
    `x.dequantize()` / `dequantize(x)` of it."""
    calls: dict = {}
    for node in gm.graph.nodes:
        if node.op == OpKind.call_module:
            calls[str(node.target)] = calls.get(str(node.target), 0) + 1
    pairs = []
    for deq in gm.graph.nodes:
        if deq.kwargs or len(deq.args) != 1 or not (
                deq.op == OpKind.call_method and deq.target == "dequantize" or
                deq.op == OpKind.call_function and deq.target is OPS["dequantize"]):
            continue
        linear = deq.args[0]
        if getattr(linear, "op", None) != OpKind.call_module or \
                calls[str(linear.target)] != 1 or len(linear.users) != 1 or \
                len(linear.args) != 1 or linear.kwargs:
            continue
        if type(gm.get_submodule(str(linear.target))) in _LINEARS:
            pairs.append((linear, deq))
    return pairs


def _fusable_conv(gm, node, calls: dict) -> bool:
    if getattr(node, "op", None) != OpKind.call_module or calls[str(node.target)] != 1 or \
            len(node.users) != 1 or len(node.args) != 1 or node.kwargs:
        return False
    module = gm.get_submodule(str(node.target))
    return isinstance(module, nnq.Conv2d) and module.groups == 1


def install_fused_forward(gm) -> None:
    """Give gm (a converted GraphModule) the forward with its residual pairs fused and its
    conv and pool steps (module docstring), where its graph has any; kept across
    gm.recompile()."""
    gm.__dict__["_forward_rewrite"] = install_fused_forward
    graph = fused_graph(gm)
    if graph is None:
        return
    code = python_code(graph)
    filename = f"<ember-fx-fused-{id(gm):x}>"
    # tracebacks through the generated forward show its lines, as recompile's do
    linecache.cache[filename] = (len(code.src), None, code.src.splitlines(True), filename)
    namespace = dict(code.globals)
    namespace.setdefault("__name__", "ember.fx.generated")
    exec(compile(code.src, filename, "exec"), namespace)  # noqa: S102 - our own codegen
    type(gm).forward = namespace["forward"]


def fused_graph(gm) -> Graph | None:
    """A copy of gm's graph with each residual pair one residual_conv_add call, each
    Linear + dequantize pair one linear_dequantize call, each other conv and each pool
    call a conv_step / pool_step (None where there is no pair and no conv)."""
    pairs, dequantized = residual_pairs(gm), dequantize_pairs(gm)
    if not pairs and not dequantized and not any(_is_conv_call(gm, n) for n in gm.graph.nodes):
        return None
    graph = Graph()
    values: dict = {}
    out = graph.graph_copy(gm.graph, values)
    graph.output(out)
    codegen = gm.graph.__dict__.get("_codegen_impl")
    if codegen is not None:     # a pytree graph's input and output handling
        graph.__dict__["_codegen_impl"] = codegen
    for conv, add, _other in pairs:
        new_conv, new_add = values[conv], values[add]
        # the add's operands as they are now (an earlier pair's add: its fused call)
        new_other = new_add.args[1] if new_add.args[0] is new_conv else new_add.args[0]
        with graph.inserting_before(new_add):
            module = graph.get_attr(str(conv.target))
            fused = graph.call_function(residual_conv_add, (
                module, new_conv.args[0], new_other, *new_add.args[2:]))
        new_add.replace_all_uses_with(fused)
        graph.erase_node(new_add)
        graph.erase_node(new_conv)
    for linear, deq in dequantized:
        new_linear, new_deq = values[linear], values[deq]
        with graph.inserting_before(new_deq):
            module = graph.get_attr(str(linear.target))
            fused = graph.call_function(linear_dequantize, (module, new_linear.args[0]))
        new_deq.replace_all_uses_with(fused)
        graph.erase_node(new_deq)
        graph.erase_node(new_linear)
    _fuse_tails(gm, graph)
    _steps(gm, graph)
    return graph


def _fuse_tails(gm, graph: Graph) -> None:
    """Each global average pool whose one use is a flatten to [N, C] read only by a
    linear_dequantize: one pool_linear_dequantize call (a classifier's avgpool, flatten
    and fc + dequantize), the pool, the flatten and its batch-size nodes erased. The
    flatten is torch.flatten(p, 1), p.flatten(1), p.view / p.reshape(p.size(0), -1), or
    an nn.Flatten module, which convert_fx runs on the dequantized pool and quantizes
    after (_flatten_module_of)."""
    for node in list(graph.nodes):
        if node.op != OpKind.call_function or node.target is not linear_dequantize:
            continue
        flat = node.args[1]
        match = _flatten_of(flat) if hasattr(flat, "users") and len(flat.users) == 1 \
            else None
        if match is not None:
            pool, how, size_nodes = match
            readers, erased, extra = {flat, *size_nodes[-1:]}, (flat, *size_nodes), ()
        else:
            match = _flatten_module_of(gm, flat)
            if match is None:
                continue
            pool, module_node, deq = match
            how = module_node
            readers, erased, extra = {deq}, (flat, module_node, deq), flat.args[1:]
        if not hasattr(pool, "users") or \
                not _module_call_of(gm, pool, (_nn.AdaptiveAvgPool2d,)) or \
                gm.get_submodule(str(pool.target)).output_size not in (1, (1, 1), [1, 1]) \
                or set(pool.users) != readers:
            continue
        with graph.inserting_before(node):
            module = graph.get_attr(str(pool.target))
            if extra:
                how = graph.get_attr(str(module_node.target))      # the Flatten module
            fused = graph.call_function(pool_linear_dequantize,
                                        (module, node.args[0], pool.args[0], how, *extra))
        node.replace_all_uses_with(fused)
        for done in (node, *erased, pool):
            graph.erase_node(done)


def _flatten_module_of(gm, q):
    """(pool node, the Flatten node, the dequantize node) where `q`
    is quantize_per_tensor(flatten(p.dequantize()), scale, zero_point, quint8) of an
    nn.Flatten(1, -1) module call (convert_fx quantizes around a Flatten module, as
    torch.ao's does), each read only by the next; else None."""
    if getattr(q, "op", None) != OpKind.call_function or \
            q.target is not OPS["quantize_per_tensor"] or len(q.args) != 4 or q.kwargs or \
            q.args[3] is not dtypes.quint8 or len(q.users) != 1:
        return None
    flat = q.args[0]
    if not hasattr(flat, "users") or len(flat.users) != 1 or \
            not _module_call_of(gm, flat, (_nn.Flatten,)):
        return None
    module = gm.get_submodule(str(flat.target))
    deq = flat.args[0]
    if (module.start_dim, module.end_dim) != (1, -1) or not hasattr(deq, "users") or \
            len(deq.users) != 1 or deq.op != OpKind.call_method or \
            deq.target != "dequantize" or len(deq.args) != 1 or deq.kwargs:
        return None
    return deq.args[0], flat, deq


def _flatten_of(flat):
    """(pool node, how, the nodes computing the batch size, the pool's reader last) where
    `flat` is flatten(p, 1), p.flatten(1), or p.reshape / p.view of (p.shape[0], -1) or
    (p.size(0), -1), as a list or as arguments; else None."""
    args = flat.args
    if flat.kwargs or len(args) < 2:
        return None
    one = type(args[1]) is int and args[1] == 1 and len(args) == 2
    if flat.op == OpKind.call_function and flat.target is OPS["flatten"] and one:
        return args[0], "flatten", []
    if flat.op != OpKind.call_method:
        return None
    if flat.target == "flatten" and one:
        return args[0], "flatten_method", []
    if flat.target not in ("reshape", "view"):
        return None
    sizes = args[1] if len(args) == 2 and type(args[1]) in (list, tuple) else args[1:]
    if len(sizes) != 2 or type(sizes[1]) is not int or sizes[1] != -1:
        return None
    size_nodes = _batch_size_nodes(sizes[0], args[0], flat)
    return None if size_nodes is None else (args[0], flat.target, size_nodes)


def _batch_size_nodes(size, p, flat):
    """[size] where size is p.size(0), [size, shape] where it is p.shape[0] (each read
    only by the next), else None."""
    if not hasattr(size, "users") or set(size.users) != {flat} or size.kwargs:
        return None
    if size.op == OpKind.call_method and size.target == "size" and size.args == (p, 0):
        return [size]
    shape = size.args[0] if size.op == OpKind.call_function and \
        size.target is operator.getitem and len(size.args) == 2 and \
        type(size.args[1]) is int and size.args[1] == 0 else None
    if shape is None or not hasattr(shape, "users") or set(shape.users) != {size} or \
            shape.op != OpKind.call_function or shape.target is not getattr or \
            shape.args != (p, "shape") or shape.kwargs:
        return None
    return [size, shape]


def _is_conv_call(gm, node) -> bool:
    return _module_call_of(gm, node, _CONVS)


def _module_call_of(gm, node, types) -> bool:
    return node.op == OpKind.call_module and len(node.args) == 1 and not node.kwargs and \
        type(gm.get_submodule(str(node.target))) in types


def _steps(gm, graph: Graph) -> None:
    """Each conv and pool call of graph a step, each step and fused pair told whether it
    may leave its kernel running (every reader a step), and a join before the first
    other node (or the output) after one that may."""
    for node in list(graph.nodes):
        kind = conv_step if _is_conv_call(gm, node) else \
            pool_step if _module_call_of(gm, node, _POOLS) else None
        if kind is not None:
            with graph.inserting_before(node):
                module = graph.get_attr(str(node.target))
                step = graph.call_function(kind, (module, node.args[0], False))
            node.replace_all_uses_with(step)
            graph.erase_node(node)
    _quantize_steps(graph)
    _conv_pool_steps(gm, graph)
    for step in [n for n in graph.nodes if _is_step(n)]:
        if step.target is not pool_linear_dequantize and step.users and \
                all(_is_step(user) for user in step.users):
            if step.target is residual_conv_add:
                step.kwargs = {"overlap": True}
            else:       # the overlap flag: a conv, pool or quantize step's last argument
                step.args = step.args[:-1] + (True,)
    _insert_joins(graph)


def _quantize_steps(graph: Graph) -> None:
    """Each conv step whose input is a quantize_per_tensor node read by it alone (a
    model's input quantize and its stem) one quantize_conv_step."""
    quantize = OPS["quantize_per_tensor"]
    for node in list(graph.nodes):
        q = node.args[1] if node.op == OpKind.call_function and node.target is conv_step \
            else None
        if getattr(q, "op", None) != OpKind.call_function or q.target is not quantize or \
                len(q.args) != 4 or q.kwargs or len(q.users) != 1:
            continue
        with graph.inserting_before(node):
            step = graph.call_function(quantize_conv_step, (node.args[0], *q.args, False))
        node.replace_all_uses_with(step)
        graph.erase_node(node)
        graph.erase_node(q)


def _conv_pool_steps(gm, graph: Graph) -> None:
    """Each MaxPool2d pool step whose input is a conv or quantize_conv_step read by it
    alone (resnet's stem and its max pool) one conv_pool_step."""
    for node in list(graph.nodes):
        if node.op != OpKind.call_function or node.target is not pool_step:
            continue
        conv = node.args[1]
        if getattr(conv, "op", None) != OpKind.call_function or \
                conv.target not in (conv_step, quantize_conv_step) or len(conv.users) != 1 \
                or type(gm.get_submodule(str(node.args[0].target))) is not _nn.MaxPool2d:
            continue
        quant = conv.args[2:5] if conv.target is quantize_conv_step else (None, None, None)
        with graph.inserting_before(node):
            step = graph.call_function(conv_pool_step, (conv.args[0], node.args[0],
                                                        conv.args[1], *quant, False))
        node.replace_all_uses_with(step)
        graph.erase_node(node)
        graph.erase_node(conv)


def _insert_joins(graph: Graph) -> None:
    """A join_deferred call before the first node after an overlapping step that is not
    a step itself (a step's own Python joins where it reads; get_attr reads nothing)."""
    running = False
    for node in list(graph.nodes):
        if _is_step(node):
            running = running or step_overlaps(node)
        elif running and node.op not in (OpKind.get_attr, OpKind.placeholder):
            with graph.inserting_before(node):
                graph.call_function(join_deferred, ())
            running = False


def _is_step(node) -> bool:
    return node.op == OpKind.call_function and node.target in STEPS


def step_overlaps(node) -> bool:
    """Whether a step node (conv, pool or fused pair) may leave its kernel running."""
    if node.target is pool_linear_dequantize:      # its result is read at once
        return False
    return node.kwargs.get("overlap") is True if node.target is residual_conv_add else \
        node.args[-1] is True


def join_deferred() -> None:
    """Finish the kernel a step left running (ThreadPool.join)."""
    default_pool().join()


def _plain(module) -> bool:
    """module(x) is its forward: no hooks, no compiled call, no graph clamp (a conv's)."""
    return module._compiled_call_impl is None and not (
        module._forward_hooks or module._forward_pre_hooks or
        _module._global_forward_hooks or _module._global_forward_pre_hooks or
        _module._global_backward_hooks or _module._global_backward_pre_hooks) and \
        nnq._graph_clamp_of(module) is None


def conv_step(conv, x, overlap):
    """conv(x); overlap: its prepared call may leave the kernel running (module
    docstring). A call the prepared one does not make (hooks, another type) finishes
    any running kernel first (its Python may read x)."""
    if type(x) is not QuantizedTensor or type(conv) not in _CONVS or not _plain(conv):
        settle_deferred()
        return conv(x)
    return _overlapped(conv, x) if overlap and OVERLAP[0] else conv(x)


def quantize_conv_step(conv, x, scale, zero_point, dtype, overlap):
    """conv_step(conv, quantize_per_tensor(x, scale, zero_point, dtype), overlap). Where
    the layer's prepared call reads its input as row pairs (codegen/quantized.py
    _row_pairs_runner: resnet's stem on AMX hosts) and this call repeats it with x's
    float values (the quantize's qparams those it was made for), one kernel quantizes x
    straight into the conv's input (the same integers): no quantized tensor is made, and
    the quantize's own pass and Python are gone."""
    if QUANTIZE_STEM[0]:
        value = _from_float(conv, x, scale, zero_point, dtype, overlap)
        if value is not None:
            return value
    return conv_step(conv, OPS["quantize_per_tensor"](x, scale, zero_point, dtype), overlap)


# quantize_conv_step's one kernel on; [False]: the quantize, then the conv step (A/B)
QUANTIZE_STEM = [True]


def _from_float(conv, x, scale, zero_point, dtype, overlap):
    """quantize_conv_step's fused call, or None where it does not apply."""
    if type(x) is not Tensor or x.requires_grad or dtype is not dtypes.quint8 or \
            type(conv) not in _CONVS or _dispatch._modes or _autocast.ACTIVE or \
            _TF_STATE.modes or not _plain(conv) or x._storage.device != "cpu":
        return None
    weight = conv._packed_weight
    seen = weight.__dict__.get("_seen_call") if type(weight) is QuantizedTensor else None
    from_float = getattr(getattr(seen, "runner", None), "from_float", None)
    if from_float is None or seen.x_type is not QuantizedTensor or \
            seen.shape != x._array.shape or seen.bias is not conv._bias:
        return None
    state = (dtype, _number(scale, float), _number(zero_point, int), None)
    if state != seen.x_state or seen.rest != conv._call_args(x)[3:]:
        return None
    bias = conv._bias._array if isinstance(conv._bias, Tensor) else conv._bias
    value = _overlapped(from_float, x._array, bias) if overlap and OVERLAP[0] else \
        from_float(x._array, bias)
    return None if value is None else QuantizedTensor._wrap(value)


def conv_pool_step(conv, pool, x, scale, zero_point, dtype, overlap):
    """pool_step(pool, quantize_conv_step(conv, x, scale, zero_point, dtype)), or with
    scale None pool_step(pool, conv_step(conv, x)), of a MaxPool2d. Where the conv's
    prepared call reads its input as row pairs (quantize_conv_step's case: resnet's stem
    on AMX hosts) and repeats this call, one kernel runs the conv in bands of rows and
    pools each band while it is in the thread's cache (codegen/llvm/qstem_pool.py): the
    conv's output is never stored to memory and read back, and the pool's step is gone;
    the same integers. Elsewhere the two steps."""
    if STEM_POOL[0]:
        value = _conv_pool(conv, pool, x, scale, zero_point, dtype, overlap)
        if value is not None:
            return value
    y = conv_step(conv, x, True) if scale is None else \
        quantize_conv_step(conv, x, scale, zero_point, dtype, True)
    return pool_step(pool, y, overlap)


# conv_pool_step's one kernel on; [False]: the two steps (A/B)
STEM_POOL = [True]


def _conv_pool(conv, pool, x, scale, zero_point, dtype, overlap):
    """conv_pool_step's fused call, or None where it does not apply."""
    if type(conv) not in _CONVS or _dispatch._modes or _autocast.ACTIVE or \
            _TF_STATE.modes or not _plain(conv) or not _plain(pool) or \
            pool.dilation not in (1, (1, 1), [1, 1]) or pool.ceil_mode or \
            pool.return_indices:
        return None
    weight = conv._packed_weight
    seen = weight.__dict__.get("_seen_call") if type(weight) is QuantizedTensor else None
    pooled = getattr(getattr(seen, "runner", None), "pooled", None)
    if pooled is None or seen.x_type is not QuantizedTensor or seen.bias is not conv._bias:
        return None
    if scale is None:
        if type(x) is not QuantizedTensor or not seen.matches(seen.op, conv._call_args(x)):
            return None
    else:
        if type(x) is not Tensor or x.requires_grad or dtype is not dtypes.quint8 or \
                x._storage.device != "cpu" or seen.shape != x._array.shape:
            return None
        state = (dtype, _number(scale, float), _number(zero_point, int), None)
        if state != seen.x_state or seen.rest != conv._call_args(x)[3:]:
            return None
    geometry = tuple(_pair(v) for v in (pool.kernel_size,
                                         pool.kernel_size if pool.stride in (None, ())
                                         else pool.stride, pool.padding))
    bias = conv._bias._array if isinstance(conv._bias, Tensor) else conv._bias
    value = _overlapped(pooled, x._array, bias, geometry) if overlap and OVERLAP[0] else \
        pooled(x._array, bias, geometry)
    return None if value is None else QuantizedTensor._wrap(value)


def _pair(v) -> tuple:
    return (int(v), int(v)) if isinstance(v, int) else tuple(int(i) for i in v)


def _overlapped(fn, *args):
    """fn(*args) with this thread's defer window open: its prepared kernel call may
    return with the kernel still running (ThreadPool.defer)."""
    pool = default_pool()
    pool.open_window()
    try:
        return fn(*args)
    finally:
        pool.open_window(False)


def linear_dequantize(linear, x):
    """linear(x).dequantize(), by one GEMM that dequantizes in its epilogue where it
    applies (module docstring: a call the layer has made before with this input's
    geometry and qparams, no hooks on it), else by the two calls."""
    if type(x) is QuantizedTensor and type(linear) in _LINEARS and \
            not (linear._forward_hooks or linear._forward_pre_hooks):
        value = _linear_dequantize((x, linear._packed_weight, linear._bias, linear.scale,
                                    linear.zero_point, linear._RELU))
        if value is not None:
            return value
    return linear(x).dequantize()


def pool_step(pool, x, overlap):
    """pool(x) of a MaxPool2d or an AdaptiveAvgPool2d (conv_step's way): where the native
    max pool or global average pool runs it, whose Python reads no value before its
    kernel's call (which joins a running kernel), the Python runs beside the previous
    step's kernel, and with overlap the max pool's kernel may be left running; any other
    call finishes a running kernel first."""
    if not _native_pool(pool, x):
        settle_deferred()
        return pool(x)
    return _overlapped(pool, x) if overlap and OVERLAP[0] else pool(x)


def pool_linear_dequantize(pool, linear, x, flatten, scale=None, zero_point=None,
                           dtype=None):
    """linear(flatten(pool(x))).dequantize() of a global average pool, a flatten to
    [N, C] (`flatten` names its form: _FLATTENS) and a quantized Linear (a classifier's
    tail). Where the native pool runs pool(x) (_native_pool), its kernel pools x's
    channels-last integers straight into the [N, C] rows the Linear reads (flatten's
    result: the pool keeps x's qparams) and the Linear's prepared dequantizing GEMM
    (frontend/quantized.py linear_dequantize_for, looked up before the pool's kernel
    runs) reads them: the pool's module call and op dispatch, the flatten's and its
    batch-size reads are gone (~0.15 ms of serial Python at two threads in resnet18,
    after the last convolution's join), and this step's checks and lookups run beside
    the last convolution's kernel (the previous step leaves it running: this is a step;
    the pool's kernel joins it). Before the Linear's prepared call exists (its first
    two calls) linear_dequantize runs on the pooled values; anywhere else the three
    calls.

    With scale given, `flatten` is an nn.Flatten(1, -1) module and the graph's tail
    was linear(quantize_per_tensor(flatten(pool(x).dequantize()), scale, zero_point,
    dtype)).dequantize() (convert_fx's form around a Flatten module): the pooled rows
    are dequantized and quantized again by the native kernels those two calls run
    (the same values: flatten moves none), on [N, C] only."""
    requant = scale is not None
    if _native_pool(pool, x) and type(linear) in _LINEARS and \
            (not requant or _plain(flatten) and dtype is dtypes.quint8 and
             _number(scale, float) is not None and _number(zero_point, int) is not None):
        a = x._array
        values = np.empty(a.shape[:2], np.uint8)      # pool(x)'s integers, flattened
        pooled = values
        if requant:     # the requantized rows' tensor (its values set below)
            qscale, qzero = _number(scale, float), _number(zero_point, int)
            flat = QuantizedTensor._wrap(QuantizedArray(values, dtype, qscale, qzero))
        else:
            flat = QuantizedTensor._wrap(QuantizedArray(values, x._qdtype, x._qscale,
                                                        x._qzero_point))
        # the Linear's prepared call looked up before the pool's kernel joins the last
        # convolution's (its Python beside that kernel)
        run = None if linear._forward_hooks or linear._forward_pre_hooks else \
            _linear_dequantize_for((flat, linear._packed_weight, linear._bias, linear.scale,
                                    linear.zero_point, linear._RELU))
        qe = _qelementwise()
        if qe.global_avg_pool_nhwc(a.transpose(0, 2, 3, 1), x._qzero_point,
                                   pooled) is not None:
            if requant:
                values = qe.quantize(qe.dequantize(pooled, x._qscale, x._qzero_point),
                                     qscale, qzero, np.uint8)
                flat = QuantizedTensor._wrap(QuantizedArray(values, dtype, qscale, qzero))
            value = run(values) if run is not None else None
            return value if value is not None else linear_dequantize(linear, flat)
    settle_deferred()
    if requant:
        flat = OPS["quantize_per_tensor"](flatten(pool(x).dequantize()), scale, zero_point,
                                          dtype)
    else:
        flat = _FLATTENS[flatten](pool(x))
    return linear_dequantize(linear, flat)


# the flatten forms _fuse_tails takes, as the graph called them
_FLATTENS = {"flatten": lambda p: OPS["flatten"](p, 1),
             "flatten_method": lambda p: p.flatten(1),
             "reshape": lambda p: p.reshape(p.shape[0], -1),
             "view": lambda p: p.view(p.shape[0], -1)}


def _native_pool(pool, x) -> bool:
    """pool(x) runs the native max pool (channels-last, channels a multiple of 16) or
    global average pool on a per-tensor quint8 CPU value (codegen/quantized.py
    same_qparams_kernel), through fast_calls (no mode active)."""
    if type(x) is not QuantizedTensor or x._qaxis is not None or \
            x._qdtype is not dtypes.quint8 or x._storage.device != "cpu" or \
            _dispatch._modes or _autocast.ACTIVE or _TF_STATE.modes or not _plain(pool) or \
            _qelementwise() is None:
        return False
    a = x._array
    if a.ndim != 4 or not a.transpose(0, 2, 3, 1).flags.c_contiguous:
        return False
    if type(pool) is _nn.MaxPool2d:
        return a.shape[1] % 16 == 0 and pool.dilation in (1, (1, 1), [1, 1]) and \
            not pool.ceil_mode and not pool.return_indices
    return pool.output_size in (1, (1, 1), [1, 1]) and a.shape[2] * a.shape[3] < 1 << 16


def residual_conv_add(conv, x, other, scale, zero_point, relu, overlap=False):
    """quantized_add(conv(x), other, scale, zero_point, relu), by one fused GEMM where it
    applies (module docstring), else by the two calls. overlap: the fused GEMM may be
    left running (conv_step)."""
    # a traced value (a Proxy, a symbolic tensor) takes the pair: it records the two calls
    if type(x) is QuantizedTensor and type(other) is QuantizedTensor and \
            type(conv) in _CONVS and not (conv._forward_hooks or conv._forward_pre_hooks) \
            and x._array.ndim == 4:
        args = (conv._call_args(x), other, scale, zero_point, relu)
        value = _overlapped(conv2d_add, *args) if overlap and OVERLAP[0] else \
            conv2d_add(*args)
        if value is not None:
            return value
    settle_deferred()       # the pair's Python reads the operands
    return OPS["quantized_add"](conv(x), other, scale, zero_point, relu)


def _conv_classes() -> tuple:
    from ...nn.intrinsic.quantized import ConvReLU2d
    return (nnq.Conv2d, ConvReLU2d)


_CONVS = _conv_classes()


def _linear_classes() -> tuple:
    from ...nn.intrinsic.quantized import LinearReLU
    return (nnq.Linear, LinearReLU)


_LINEARS = _linear_classes()


_POOLS = (_nn.MaxPool2d, _nn.AdaptiveAvgPool2d)
STEPS = (conv_step, pool_step, residual_conv_add, quantize_conv_step, pool_linear_dequantize,
         conv_pool_step)
