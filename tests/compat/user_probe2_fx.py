"""torch.fx transforms as the torch.fx docs and tutorials write them: conv-bn fusion by
hand (the tutorial's matches_module_pattern / replace_node_module), a profiling
Interpreter, shape propagation, split_module, a Tracer subclass with is_leaf_module,
wrap / concrete_args, eliminate_dead_code, node.meta, add_submodule /
delete_all_unused_submodules, to_folder, the generated code, and the torch.fx.passes
utilities users import."""
import copy
import importlib
import operator
import os
import sys
import tempfile

import numpy as np
import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F
from torch.fx import GraphModule, Interpreter, Tracer, symbolic_trace
from torch.fx.node import Node, map_arg
from torch.fx.passes.shape_prop import ShapeProp
from torch.fx.passes.split_module import split_module
from torch.fx import subgraph_rewriter
from torch.fx.experimental import const_fold
from torch.fx.experimental.optimization import fuse as fx_fuse
from torch.fx.experimental.proxy_tensor import make_fx
from torch.fx.passes.infra.partitioner import CapabilityBasedPartitioner
from torch.fx.passes.infra.pass_base import PassBase, PassResult
from torch.fx.passes.operator_support import OperatorSupport
from torch.fx.passes.split_utils import split_by_tags
from torch.fx.passes.infra.pass_manager import PassManager
from torch.fx.passes.utils.matcher_utils import SubgraphMatcher
from torch.nn.utils.fusion import fuse_conv_bn_eval as torch_fuse, fuse_linear_bn_eval


def t(*shape, seed=0, scale=1.0):
    return torch.from_numpy((np.random.default_rng(seed).standard_normal(shape) * scale)
                            .astype(np.float32))


def load_(model, scale=0.3):
    with torch.no_grad():
        for i, (name, p) in enumerate(sorted(model.named_parameters())):
            p.copy_(t(*p.shape, seed=100 + i, scale=scale))
        for name, b in model.named_buffers():
            if name.endswith("running_var"):
                b.copy_(torch.from_numpy(np.linspace(0.5, 1.5, b.numel()).astype(np.float32)))
            elif name.endswith("running_mean"):
                b.copy_(torch.from_numpy(np.linspace(-0.2, 0.2, b.numel()).astype(np.float32)))
    return model


class ConvBNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.bn2(self.conv2(x))
        return self.fc(x.mean(dim=(2, 3)))


# --- the "(beta) Building a Convolution/Batch Norm fuser in FX" tutorial ------------------
def fuse_conv_bn_weights(conv_w, conv_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b):
    if conv_b is None:
        conv_b = torch.zeros_like(bn_rm)
    bn_var_rsqrt = torch.rsqrt(bn_rv + bn_eps)
    conv_w = conv_w * (bn_w * bn_var_rsqrt).reshape([-1] + [1] * (len(conv_w.shape) - 1))
    conv_b = (conv_b - bn_rm) * bn_var_rsqrt * bn_w + bn_b
    return torch.nn.Parameter(conv_w), torch.nn.Parameter(conv_b)


def fuse_conv_bn_eval(conv, bn):
    fused_conv = copy.deepcopy(conv)
    fused_conv.weight, fused_conv.bias = fuse_conv_bn_weights(
        fused_conv.weight, fused_conv.bias, bn.running_mean, bn.running_var, bn.eps,
        bn.weight, bn.bias)
    return fused_conv


def _parent_name(target):
    *parent, name = target.rsplit(".", 1)
    return parent[0] if parent else "", name


def matches_module_pattern(pattern, node, modules):
    if len(node.args) == 0:
        return False
    nodes = (node.args[0], node)
    for expected_type, current_node in zip(pattern, nodes):
        if not isinstance(current_node, torch.fx.Node):
            return False
        if current_node.op != "call_module":
            return False
        if not isinstance(current_node.target, str):
            return False
        if current_node.target not in modules:
            return False
        if type(modules[current_node.target]) is not expected_type:
            return False
    return True


def replace_node_module(node, modules, new_module):
    assert isinstance(node.target, str)
    parent_name, name = _parent_name(node.target)
    modules[node.target] = new_module
    setattr(modules[parent_name], name, new_module)


def fuse(model):
    model = copy.deepcopy(model)
    fx_model = torch.fx.symbolic_trace(model)
    modules = dict(fx_model.named_modules())
    for node in fx_model.graph.nodes:
        if node.op != "call_module":
            continue
        if matches_module_pattern((nn.Conv2d, nn.BatchNorm2d), node, modules):
            if len(node.args[0].users) > 1:
                continue
            conv = modules[node.args[0].target]
            bn = modules[node.target]
            replace_node_module(node.args[0], modules, fuse_conv_bn_eval(conv, bn))
            node.replace_all_uses_with(node.args[0])
            fx_model.graph.erase_node(node)
    fx_model.graph.lint()
    fx_model.delete_all_unused_submodules()
    fx_model.recompile()
    return fx_model


def case_conv_bn_fuser_tutorial():
    model = load_(ConvBNNet()).eval()
    fused = fuse(model)
    x = t(2, 3, 6, 6, seed=1)
    names = [name for name, _ in fused.named_modules()]
    ops = [n.op for n in fused.graph.nodes]
    return fused(x), model(x), names, ops, sorted(fused.state_dict())


def case_experimental_optimization_fuse():
    model = load_(ConvBNNet()).eval()
    fused = fx_fuse(model)
    x = t(2, 3, 6, 6, seed=2)
    return fused(x), [type(m).__name__ for _, m in fused.named_children()]


def case_nn_utils_fusion():
    model = load_(ConvBNNet()).eval()
    conv = torch_fuse(model.conv2, model.bn2)
    lin = load_(nn.Linear(4, 3)).eval()
    bn = load_(nn.BatchNorm1d(3)).eval()
    fused_lin = fuse_linear_bn_eval(lin, bn)
    x = t(2, 4, 5, 5, seed=3)
    y = t(2, 4, seed=4)
    return conv(x), model.bn2(model.conv2(x)), fused_lin(y), bn(lin(y)), \
        conv.bias is not None


# --- the profiling Interpreter of the "FX-based performance profiling" tutorial -----------
class ProfilingInterpreter(Interpreter):
    def __init__(self, mod):
        gm = torch.fx.symbolic_trace(mod)
        super().__init__(gm)
        self.total_runtime_sec = []
        self.runtimes_sec = {}

    def run(self, *args):
        out = super().run(*args)
        self.total_runtime_sec.append(1.0)
        return out

    def run_node(self, n):
        result = super().run_node(n)
        self.runtimes_sec.setdefault(n, []).append(0.5)
        return result

    def summary(self):
        node_summaries = []
        for node, runtimes in self.runtimes_sec.items():
            node_summaries.append([node.op, str(node), sum(runtimes)])
        node_summaries.sort(key=lambda s: s[1])
        return node_summaries


def case_profiling_interpreter():
    model = load_(ConvBNNet()).eval()
    interp = ProfilingInterpreter(model)
    x = t(1, 3, 6, 6, seed=5)
    with torch.no_grad():
        out = interp.run(x)
        interp.run(x)
    return out, interp.summary(), interp.total_runtime_sec


def case_interpreter_env_and_initial_env():
    gm = symbolic_trace(load_(ConvBNNet()).eval())
    interp = Interpreter(gm, garbage_collect_values=False)
    x = t(1, 3, 6, 6, seed=6)
    out = interp.run(x)
    env_names = sorted(n.name for n in interp.env)
    conv1 = next(n for n in gm.graph.nodes if n.target == "conv1")
    initial = {conv1: torch.zeros(1, 4, 6, 6)}
    out2 = Interpreter(gm).run(x, initial_env=initial)
    return out, env_names, out2, interp.env[conv1].shape


def case_interpreter_fetch_attr_and_boxed():
    gm = symbolic_trace(load_(ConvBNNet()).eval())
    interp = Interpreter(gm)
    w = interp.fetch_attr("conv1.weight")
    x = t(1, 3, 6, 6, seed=7)
    out = interp.boxed_run([x])
    return w, out


# --- shape propagation and the node table ---------------------------------------------------
def case_shape_prop_metadata():
    gm = symbolic_trace(load_(ConvBNNet()).eval())
    ShapeProp(gm).propagate(t(2, 3, 6, 6, seed=8))
    rows = []
    for node in gm.graph.nodes:
        meta = node.meta.get("tensor_meta")
        if meta is None:
            rows.append((node.name, None))
            continue
        rows.append((node.name, tuple(meta.shape), str(meta.dtype), meta.requires_grad,
                     meta.stride, meta.is_quantized, str(meta.memory_format)))
    return rows


def case_node_table_by_hand():
    # print_tabular needs `tabulate`; users without it print the same columns themselves
    gm = symbolic_trace(load_(ConvBNNet()).eval())
    table = [[n.op, n.name, str(n.target) if isinstance(n.target, str) else
              getattr(n.target, "__name__", str(n.target)), str(n.args), str(n.kwargs)]
             for n in gm.graph.nodes]
    return table


def case_graph_and_code_text():
    gm = symbolic_trace(load_(ConvBNNet()).eval())
    code = gm.code
    graph_text = str(gm.graph)
    return ([line.strip() for line in code.strip().splitlines() if line.strip()],
            [line.strip() for line in graph_text.strip().splitlines()][:3],
            repr(gm).splitlines()[0], gm.graph.python_code("self").src == code)


# --- split_module ---------------------------------------------------------------------------
class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.l1 = nn.Linear(4, 6)
        self.l2 = nn.Linear(6, 6)
        self.l3 = nn.Linear(6, 2)

    def forward(self, x, y):
        a = torch.relu(self.l1(x))
        b = self.l2(a) + y
        return self.l3(torch.tanh(b)), a.sum()


def case_split_module_by_layer():
    model = load_(MLP())
    gm = symbolic_trace(model)
    partition = {}
    stage = 0
    for node in gm.graph.nodes:
        if node.op == "call_module" and node.target == "l2":
            stage = 1
        if node.op == "call_module" and node.target == "l3":
            stage = 2
        partition[node.name] = stage
    split = split_module(gm, model, lambda n: partition[n.name])
    x, y = t(3, 4, seed=9), t(3, 6, seed=10)
    children = [name for name, _ in split.named_children()]
    sub_ops = {name: [n.op for n in m.graph.nodes] for name, m in split.named_children()}
    return split(x, y), gm(x, y), children, sub_ops, [n.op for n in split.graph.nodes]


def case_split_module_keep_original_order():
    model = load_(MLP())
    gm = symbolic_trace(model)
    stages = {"l1": 0, "l2": 1, "l3": 1}
    current = [0]

    def stage_of(node):
        if node.op == "call_module":
            current[0] = stages[node.target]
        return current[0]
    split = split_module(gm, model, stage_of, keep_original_order=True)
    x, y = t(2, 4, seed=11), t(2, 6, seed=12)
    return split(x, y), [name for name, _ in split.named_children()]


# --- Tracer subclasses, leaves, wrap and concrete_args --------------------------------------
class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        if x.sum() > 0:      # data-dependent: only traceable as a leaf
            return torch.relu(self.fc(x))
        return self.fc(x)


class Outer(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.head = nn.Sequential(nn.Linear(4, 4), nn.ReLU())

    def forward(self, x):
        return self.head(self.block(x)) * 2


class LeafTracer(Tracer):
    def is_leaf_module(self, m, module_qualified_name):
        return isinstance(m, Block) or super().is_leaf_module(m, module_qualified_name)


def case_tracer_subclass_leaf_module():
    model = load_(Outer())
    graph = LeafTracer().trace(model)
    gm = GraphModule(model, graph)
    x = t(2, 4, seed=13)
    try:
        symbolic_trace(model)
        message = None
    except torch.fx.proxy.TraceError as e:
        message = str(e).split("\n")[0][:60]
    return (gm(x), [(n.op, str(n.target)) for n in graph.nodes], message,
            gm.__class__.__name__)


class NoTraceSeq(Tracer):
    def is_leaf_module(self, m, qualname):
        return isinstance(m, nn.Sequential) or super().is_leaf_module(m, qualname)


def case_tracer_keeps_sequential_and_root_name():
    model = load_(Outer())
    model.block = nn.Identity()
    tracer = NoTraceSeq()
    graph = tracer.trace(model)
    gm = GraphModule(tracer.root, graph, "OuterTraced")
    x = t(2, 4, seed=14)
    return gm(x), type(gm).__name__, [n.target for n in graph.nodes if n.op ==
                                       "call_module"]


def my_norm(x, eps):
    return x / (x.norm(dim=-1, keepdim=True) + eps)


torch.fx.wrap("my_norm")


class UsesWrapped(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x, mode="norm", scale=None):
        y = my_norm(self.fc(x), 1e-6)
        if mode == "norm":
            y = y * 3
        if scale is not None:
            y = y * scale
        return y


def case_wrap_by_name_and_concrete_args():
    model = load_(UsesWrapped())
    gm = symbolic_trace(model, concrete_args={"mode": "plain", "scale": None})
    x = t(2, 4, seed=15)
    calls = [n.target.__name__ for n in gm.graph.nodes if n.op == "call_function"]
    placeholders = [n.name for n in gm.graph.nodes if n.op == "placeholder"]
    try:
        gm(x, "norm")
        message = None
    except AssertionError as e:
        message = str(e)
    return gm(x, "plain"), model(x, "plain"), calls, placeholders, message


def case_tracer_traced_function_and_autowrap():
    def f(x, y):
        return torch.sin(x) + y.cos() * 2

    graph = Tracer().trace(f)
    gm = GraphModule(torch.nn.Module(), graph)
    a, b = t(3, seed=16), t(3, seed=17)
    return gm(a, b), f(a, b), [n.op for n in graph.nodes]


# --- graph surgery: dead code, meta, erase, submodules --------------------------------------
class Dead(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(3, 3)
        self.b = nn.Linear(3, 3)

    def forward(self, x):
        unused = self.b(x) * 2
        y = torch.relu(self.a(x))
        z = y + 1
        z.add(3)
        return y


def case_eliminate_dead_code():
    gm = symbolic_trace(load_(Dead()))
    before = [n.name for n in gm.graph.nodes]
    changed = gm.graph.eliminate_dead_code()
    gm.recompile()
    after = [n.name for n in gm.graph.nodes]
    removed = gm.delete_all_unused_submodules()
    return changed, before, after, [n for n, _ in gm.named_children()], removed, \
        gm(t(2, 3, seed=18))


def case_node_meta_and_erase():
    gm = symbolic_trace(load_(Dead()))
    for i, node in enumerate(gm.graph.nodes):
        node.meta["idx"] = i
        node.meta["tag"] = node.op.upper()
    relu = next(n for n in gm.graph.nodes if n.target is torch.relu)
    try:
        gm.graph.erase_node(relu)
        message = None
    except RuntimeError as e:
        message = str(e)
    for node in reversed(list(gm.graph.nodes)):
        if node.op == "call_method" and node.target == "add" and not node.users:
            gm.graph.erase_node(node)
    gm.recompile()
    metas = [(n.name, n.meta["idx"], n.meta["tag"]) for n in gm.graph.nodes]
    return message is not None and "users" in message, metas, gm(t(2, 3, seed=19))


def case_add_submodule_and_call_module():
    gm = symbolic_trace(load_(Dead()))
    extra = load_(nn.Linear(3, 3), scale=0.2)
    ok = gm.add_submodule("post.proj", extra)
    out_node = next(n for n in gm.graph.nodes if n.op == "output")
    ret = out_node.args[0]
    with gm.graph.inserting_before(out_node):
        proj = gm.graph.call_module("post.proj", (ret,))
    out_node.args = (proj,)
    gm.graph.eliminate_dead_code()
    gm.recompile()
    gm.delete_all_unused_submodules()
    got = gm.get_submodule("post.proj") is extra
    deleted = gm.delete_submodule("post.proj")
    missing = gm.delete_submodule("nope")
    return ok, got, deleted, missing, [n for n, _ in gm.named_modules()]


def case_get_attr_node_and_parameter():
    gm = symbolic_trace(load_(Dead()))
    gm.register_buffer("offset", t(3, seed=20))
    out_node = next(n for n in gm.graph.nodes if n.op == "output")
    with gm.graph.inserting_before(out_node):
        off = gm.graph.get_attr("offset")
        added = gm.graph.call_function(torch.add, (out_node.args[0], off))
    out_node.args = (added,)
    gm.graph.lint()
    gm.recompile()
    return gm(t(2, 3, seed=21)), "offset" in gm.code, off.op, off.target


def case_map_arg_and_node_helpers():
    gm = symbolic_trace(load_(MLP()))
    names = []
    for node in gm.graph.nodes:
        map_arg(node.args, lambda n: names.append((node.name, n.name)))
    add = next(n for n in gm.graph.nodes if n.target is operator.add)
    return (names, [n.name for n in add.all_input_nodes], add.prev.name, add.next.name,
            sorted(u.name for u in add.users), add.format_node(),
            add.is_impure(), str(add), repr(add))


def case_to_folder_round_trip():
    model = load_(MLP())
    gm = symbolic_trace(model)
    with tempfile.TemporaryDirectory() as folder:
        gm.to_folder(folder, "MyMLP")
        # (ember writes the weights as weights.safetensors, torch as state_dict.pt:
        # docs/fx.md)
        files = sorted(f for f in os.listdir(folder) if f.endswith(".py"))
        sys.path.insert(0, os.path.dirname(folder))
        try:
            package = importlib.import_module(os.path.basename(folder))
            loaded = package.MyMLP()
        finally:
            sys.path.pop(0)
            sys.modules.pop(os.path.basename(folder), None)
            sys.modules.pop(os.path.basename(folder) + ".module", None)
    x, y = t(2, 4, seed=22), t(2, 6, seed=23)
    return files, loaded(x, y), gm(x, y), type(loaded).__name__


def case_graph_copy_and_inline():
    gm = symbolic_trace(load_(MLP()))
    g2 = torch.fx.Graph()
    val_map = {}
    out = g2.graph_copy(gm.graph, val_map)
    g2.output(out)
    new = GraphModule(gm, g2)
    x, y = t(2, 4, seed=24), t(2, 6, seed=25)
    return new(x, y), len(val_map), [n.name for n in g2.nodes]


def case_replace_pattern_with_filters():

    class M(nn.Module):
        def forward(self, x, y):
            a = torch.add(x, y).relu()
            b = torch.add(x, 1).relu()
            return a * b

    def pattern(a, b):
        return torch.add(a, b).relu()

    def replacement(a, b):
        return torch.sigmoid(a - b)

    def only_tensor_rhs(match, original_graph, pattern_graph):
        for node in match.nodes_map.values():
            if node.op == "call_function" and node.target is torch.add:
                return isinstance(node.args[1], torch.fx.Node)
        return True

    gm = symbolic_trace(M())
    matches = subgraph_rewriter.replace_pattern_with_filters(
        gm, pattern, replacement, [only_tensor_rhs])
    x, y = t(3, seed=26), t(3, seed=27)
    return len(matches), gm(x, y), [getattr(n.target, "__name__", n.target)
                                    for n in gm.graph.nodes]


def case_pass_manager_infra():

    class ReluToSigmoid(PassBase):
        def call(self, gm):
            changed = False
            for node in gm.graph.nodes:
                if node.target is torch.relu:
                    node.target = torch.sigmoid
                    changed = True
            gm.recompile()
            return PassResult(gm, changed)

    def drop_dead(gm):
        gm.graph.eliminate_dead_code()
        gm.recompile()
        return PassResult(gm, True)

    gm = symbolic_trace(load_(Dead()))
    pm = PassManager(passes=[ReluToSigmoid(), drop_dead])
    result = pm(gm)
    return result.modified, result.graph_module(t(2, 3, seed=28)), \
        [getattr(n.target, "__name__", n.target) for n in result.graph_module.graph.nodes]


def case_subgraph_matcher():

    def pattern(x):
        return torch.relu(x + 1)

    class M(nn.Module):
        def forward(self, x):
            a = torch.relu(x + 1)
            b = torch.relu(a * 2 + 1)
            return a + b

    pattern_graph = symbolic_trace(pattern).graph
    matcher = SubgraphMatcher(pattern_graph, ignore_literals=False)
    matches = matcher.match(symbolic_trace(M()).graph)
    return len(matches), [sorted(n.name for n in m.nodes_map.values()) for m in matches]


def case_proxy_in_custom_function_and_len_error():
    class M(nn.Module):
        def forward(self, x):
            return x.view(x.size(0), -1).softmax(-1)

    gm = symbolic_trace(M())
    x = t(2, 3, 4, seed=29)

    class Bad(nn.Module):
        def forward(self, x):
            return [x[i] for i in range(len(x))]
    try:
        symbolic_trace(Bad())
        message = None
    except Exception as e:
        # (torch raises RuntimeError; ember's TraceError is one too, naming the line)
        message = isinstance(e, RuntimeError), "'len' is not supported" in str(e)
    return gm(x), [n.op for n in gm.graph.nodes], message


def case_const_fold():

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(t(4, 4, seed=30))

        def forward(self, x):
            w = self.w.t() * 2 + 1
            return x @ w

    gm = symbolic_trace(M())
    folded = const_fold.split_const_subgraphs(gm)
    folded.run_folding()
    x = t(3, 4, seed=31)
    return folded(x), gm(x), [n.op for n in folded.graph.nodes]


def case_make_fx_trace():

    def f(x, y):
        return torch.nn.functional.gelu(x @ y).sum(dim=0)

    x, y = t(3, 4, seed=32), t(4, 2, seed=33)
    gm = make_fx(f)(x, y)
    return gm(x, y), f(x, y), sum(n.op == "placeholder" for n in gm.graph.nodes)


# --- more of what fx users call ---------------------------------------------------------------
class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        y = self.block(x)
        return self.head(y + x).softmax(dim=-1)


def case_nn_module_stack_meta():
    gm = symbolic_trace(load_(Small()))
    stacks = []
    for node in gm.graph.nodes:
        stack = node.meta.get("nn_module_stack")
        stacks.append((node.name, None if stack is None else
                       [(k, v[0] if isinstance(v, tuple) else v) for k, v in stack.items()]))
    return stacks


def case_node_editing_helpers():
    gm = symbolic_trace(load_(Small()))
    graph = gm.graph
    x = next(n for n in graph.nodes if n.op == "placeholder")
    add = next(n for n in graph.nodes if n.target is operator.add)
    with graph.inserting_before(add):
        doubled = graph.call_function(torch.mul, (x, 2.0))
    add.replace_input_with(x, doubled)
    softmax = next(n for n in graph.nodes if n.op == "call_method")
    softmax.update_kwarg("dim", 0)
    head = next(n for n in graph.nodes if n.target == "head")
    copied = None
    with graph.inserting_after(head):
        copied = graph.node_copy(head, lambda n: n)
    found = [n.name for n in graph.find_nodes(op="call_module", target="head")]
    graph.erase_node(copied)
    graph.lint()
    gm.recompile()
    return gm(t(3, 4, seed=40)), add.args[0].name, softmax.kwargs, found, \
        [n.name for n in graph.nodes]


def case_create_node_and_print_readable():
    graph = torch.fx.Graph()
    a = graph.create_node("placeholder", "a")
    b = graph.create_node("call_function", torch.tanh, (a,), name="squash")
    c = graph.create_node("call_method", "sum", (b,), {"dim": 1})
    graph.create_node("output", "output", (c,))
    gm = GraphModule(nn.Module(), graph, "Squasher")
    text = gm.print_readable(print_output=False)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return gm(t(2, 3, seed=41)), lines[0], [n.name for n in graph.nodes], type(gm).__name__


def case_tracer_autowrap_functions():
    def scaled_norm(x):
        return x / x.norm(dim=-1, keepdim=True)

    class M(nn.Module):
        def forward(self, x):
            return scaled_norm(x) * 2

    tracer = Tracer(autowrap_functions=(scaled_norm,))
    graph = tracer.trace(M())
    gm = GraphModule(tracer.root, graph)
    return gm(t(2, 3, seed=42)), [(n.op, getattr(n.target, "__name__", n.target))
                                  for n in graph.nodes]


def case_interpreter_run_node_override_and_transformer_placeholder():
    class Recorder(Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            if isinstance(out, torch.Tensor):
                self.shapes.append((n.name, tuple(out.shape)))
            return out

    gm = symbolic_trace(load_(Small()))
    rec = Recorder(gm)
    rec.shapes = []
    out = rec.run(t(2, 4, seed=43))

    class Renamer(torch.fx.Transformer):
        def placeholder(self, target, args, kwargs):
            proxy = super().placeholder(target, args, kwargs)
            proxy.node.name = "inp"
            return proxy

    renamed = Renamer(gm).transform()
    return out, rec.shapes, [n.name for n in renamed.graph.nodes][:2], renamed(t(2, 4, seed=43))


def case_compile_a_transformed_graph_module():
    fused = fuse(load_(ConvBNNet()).eval())
    compiled = torch.compile(fused)
    x = t(2, 3, 6, 6, seed=44)
    with torch.no_grad():
        return compiled(x), fused(x)


# --- the torch.fx docs' decomposition by retracing with Proxies -----------------------------
def relu_decomposition(x):
    return (x > 0) * x


decomposition_rules = {F.relu: relu_decomposition, torch.relu: relu_decomposition}


def decompose(model, tracer_class=Tracer):
    graph = tracer_class().trace(model)
    new_graph = torch.fx.Graph()
    env = {}
    tracer = torch.fx.proxy.GraphAppendingTracer(new_graph)
    for node in graph.nodes:
        if node.op == "call_function" and node.target in decomposition_rules:
            proxy_args = map_arg(node.args, lambda n: torch.fx.Proxy(env[n.name], tracer))
            output_proxy = decomposition_rules[node.target](*proxy_args)
            env[node.name] = output_proxy.node
        else:
            env[node.name] = new_graph.node_copy(node, lambda x: env[x.name])
    return GraphModule(model, new_graph)


def case_decompose_by_retracing():
    model = load_(ConvBNNet()).eval()
    gm = decompose(model)
    x = t(2, 3, 6, 6, seed=45)
    return gm(x), model(x), [getattr(n.target, "__name__", n.target) for n in gm.graph.nodes]



class AddMulSupport(OperatorSupport):
    def is_node_supported(self, submodules, node):
        return node.op == "call_function" and node.target in (operator.add, operator.mul,
                                                               torch.relu)


def case_capability_partitioner():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            a = torch.relu(x + 1) * 2
            b = self.fc(a)
            return torch.relu(b * 3 + a)

    gm = symbolic_trace(load_(M()))
    partitioner = CapabilityBasedPartitioner(gm, AddMulSupport(),
                                             allows_single_node_partition=True)
    partitions = partitioner.propose_partitions()
    fused = partitioner.fuse_partitions(partitions)
    x = t(3, 4, seed=46)
    return (sorted(sorted(n.name for n in p.nodes) for p in partitions), fused(x), gm(x),
            [n.op for n in fused.graph.nodes])


def case_split_by_tags():
    gm = symbolic_trace(load_(MLP()))
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "output"):
            continue
        node.tag = "front" if node.name in ("l1", "relu") else "back"
    split = split_by_tags(gm, ["front", "back"])
    x, y = t(2, 4, seed=47), t(2, 6, seed=48)
    return split(x, y), gm(x, y), [name for name, _ in split.named_children()]
