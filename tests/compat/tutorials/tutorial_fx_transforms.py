"""PyTorch's torch.fx tutorials and examples, written against plain PyTorch.

Each `case_*` function follows one tutorial page or example program (named in its
docstring): the conv/BN fuser tutorial, the FX profiling tutorial, the torch.fx
documentation's transformation examples (replace an op, Proxy-based decomposition,
Transformer, Interpreter, ShapeProp) and the programs of pytorch/examples' `fx` folder
(replace_op, subgraph_rewriter_basic_use, inline_function, invert, module_tracer,
wrap_output_dynamically, primitive_library). tests/compat/tutorials/test_pytorch_tutorials.py
runs each with torch and with `torch` imported as ember and compares what they return.
"""
import copy
import operator
import time
from enum import Enum, auto

import numpy as np
import torch
import torch.fx
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F
from torch.fx import Interpreter, Proxy, Tracer, Transformer, replace_pattern, symbolic_trace
from torch.fx.node import Argument, Node, Target, map_arg
from torch.fx.passes.shape_prop import ShapeProp


def seeded(model, scale=0.3):
    """Every parameter (and BatchNorm's running stats) from one NumPy generator."""
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for _, p in model.named_parameters():
            p.copy_(torch.tensor(rng.standard_normal(tuple(p.shape)) * scale, dtype=p.dtype))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.tensor(rng.standard_normal(tuple(b.shape)) * 0.1, dtype=b.dtype))
            elif name.endswith("running_var"):
                b.copy_(torch.tensor(rng.uniform(0.5, 1.5, tuple(b.shape)), dtype=b.dtype))
    return model


def data(*shape, seed=1):
    return torch.tensor(np.random.default_rng(seed).standard_normal(shape), dtype=torch.float32)


def numpy(t):
    return t.detach().numpy()


# --- "(beta) Building a Convolution/Batch Norm fuser in FX" -------------------------

class WrappedBatchNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.mod = nn.BatchNorm2d(1)

    def forward(self, x):
        return self.mod(x)


class M(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 1, 1)
        self.bn1 = nn.BatchNorm2d(1)
        self.conv2 = nn.Conv2d(1, 1, 1)
        self.nested = nn.Sequential(
            nn.BatchNorm2d(1),
            nn.Conv2d(1, 1, 1),
        )
        self.wrapped = WrappedBatchNorm()

    def forward(self, x):
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.conv2(x)
        x = self.nested(x)
        x = self.wrapped(x)
        return x


def fuse_conv_bn_eval(conv, bn):
    assert not (conv.training or bn.training), "Fusion only for eval!"
    fused_conv = copy.deepcopy(conv)
    fused_conv.weight, fused_conv.bias = fuse_conv_bn_weights(
        fused_conv.weight, fused_conv.bias,
        bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias)
    return fused_conv


def fuse_conv_bn_weights(conv_w, conv_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b):
    if conv_b is None:
        conv_b = bn_rm.new_zeros(bn_rm.shape)
    bn_var_rsqrt = torch.rsqrt(bn_rv + bn_eps)
    conv_w = conv_w * (bn_w * bn_var_rsqrt).reshape([-1] + [1] * (len(conv_w.shape) - 1))
    conv_b = (conv_b - bn_rm) * bn_var_rsqrt * bn_w + bn_b
    return torch.nn.Parameter(conv_w), torch.nn.Parameter(conv_b)


def _parent_name(target: str):
    *parent, name = target.rsplit(".", 1)
    return parent[0] if parent else "", name


def replace_node_module(node: fx.Node, modules, new_module):
    assert isinstance(node.target, str)
    parent_name, name = _parent_name(node.target)
    setattr(modules[parent_name], name, new_module)


def fuse(model: torch.nn.Module) -> torch.nn.Module:
    model = copy.deepcopy(model)
    fx_model: fx.GraphModule = fx.symbolic_trace(model)
    modules = dict(fx_model.named_modules())
    for node in fx_model.graph.nodes:
        if node.op != "call_module":
            continue
        if type(modules[node.target]) is nn.BatchNorm2d and \
                type(modules[node.args[0].target]) is nn.Conv2d:
            if len(node.args[0].users) > 1:
                continue
            conv = modules[node.args[0].target]
            bn = modules[node.target]
            fused_conv = fuse_conv_bn_eval(conv, bn)
            replace_node_module(node.args[0], modules, fused_conv)
            node.replace_all_uses_with(node.args[0])
            fx_model.graph.erase_node(node)
    fx_model.graph.lint()
    fx_model.recompile()
    return fx_model


def case_conv_bn_fuser_tutorial():
    """intermediate/fx_conv_bn_fuser: the tutorial's model M, fused, against eager."""
    model = seeded(M()).eval()
    fused = fuse(model)
    inp = data(5, 1, 1, 1)
    traced = fx.symbolic_trace(model)
    return {"fused": numpy(fused(inp)), "eager": numpy(model(inp)),
            "fused_code": fused.code, "traced_code": traced.code,
            "modules": [name for name, _ in fused.named_modules()],
            "targets": [(n.op, str(n.target)) for n in fused.graph.nodes]}


class SmallResNet(nn.Module):
    """The fuser and profiler tutorials use torchvision's resnet18; a small stand-in."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, bias=False),
                                    nn.BatchNorm2d(8), nn.ReLU(inplace=True))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x) + x
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.fc(x)


def case_conv_bn_fuser_on_resnet():
    """intermediate/fx_conv_bn_fuser: `fused_rn18 = fuse(rn18)` and the same outputs."""
    model = seeded(SmallResNet()).eval()
    fused = fuse(model)
    inp = data(2, 3, 16, 16)
    return {"fused": numpy(fused(inp)), "eager": numpy(model(inp)),
            "code": fused.code, "batchnorms": sum(isinstance(m, nn.BatchNorm2d)
                                                  for m in fused.modules())}


# --- "(beta) Building a Simple CPU Performance Profiler with FX" --------------------

class ProfilingInterpreter(Interpreter):
    def __init__(self, mod: torch.nn.Module):
        gm = torch.fx.symbolic_trace(mod)
        super().__init__(gm)
        self.total_runtime_sec = []
        self.runtimes_sec = {}

    def run(self, *args):
        t_start = time.time()
        return_val = super().run(*args)
        t_end = time.time()
        self.total_runtime_sec.append(t_end - t_start)
        return return_val

    def run_node(self, n: torch.fx.Node):
        t_start = time.time()
        return_val = super().run_node(n)
        t_end = time.time()
        self.runtimes_sec.setdefault(n, [])
        self.runtimes_sec[n].append(t_end - t_start)
        return return_val

    def summary(self, should_sort: bool = False):
        node_summaries = []
        mean_total_runtime = np.mean(self.total_runtime_sec)
        for node, runtimes in self.runtimes_sec.items():
            mean_runtime = np.mean(runtimes)
            pct_total = mean_runtime / mean_total_runtime * 100
            node_summaries.append([node.op, str(node), mean_runtime, pct_total])
        if should_sort:
            node_summaries.sort(key=lambda s: s[2], reverse=True)
        return node_summaries


def case_profiling_interpreter():
    """intermediate/fx_profiling_tutorial: ProfilingInterpreter run twice, its summary."""
    model = seeded(SmallResNet()).eval()
    interp = ProfilingInterpreter(model)
    inp = data(2, 3, 16, 16)
    out = interp.run(inp)
    interp.run(inp)
    rows = interp.summary(True)
    traced = torch.fx.symbolic_trace(model)
    return {"out": numpy(out), "eager": numpy(model(inp)),
            "profiled": sorted((op, name) for op, name, _, _ in rows),
            "runs": [len(v) for v in interp.runtimes_sec.values()],
            "percent_ok": all(0 <= pct <= 100.0 + 1e-6 for *_, pct in rows),
            "listing": [(n.op, n.name, str(n.args), str(n.kwargs))
                        for n in traced.graph.nodes]}


# --- torch.fx documentation: "Writing Transformations" ------------------------------

def transform_add_to_mul(m: torch.nn.Module, tracer_class: type = fx.Tracer) -> torch.nn.Module:
    graph: fx.Graph = tracer_class().trace(m)
    for node in graph.nodes:
        if node.op == "call_function":
            if node.target == torch.add:
                node.target = torch.mul
    graph.lint()
    return fx.GraphModule(m, graph)


class AddModule(torch.nn.Module):
    def forward(self, x, y):
        return torch.add(x, y)


def case_fx_docs_direct_graph_manipulation():
    """fx.html "Direct Graph Manipulation": torch.add -> torch.mul via a Tracer's graph."""
    new_m = transform_add_to_mul(AddModule())
    x, y = data(3, 4), data(3, 4, seed=2)
    return {"out": numpy(new_m(x, y)), "code": new_m.code,
            "class": type(new_m).__name__}


def relu_decomposition(x):
    return (x > 0) * x


decomposition_rules = {F.relu: relu_decomposition}


def decompose(model: torch.nn.Module, tracer_class: type = fx.Tracer) -> torch.nn.Module:
    graph: fx.Graph = tracer_class().trace(model)
    new_graph = fx.Graph()
    env = {}
    tracer = torch.fx.proxy.GraphAppendingTracer(new_graph)
    for node in graph.nodes:
        if node.op == "call_function" and node.target in decomposition_rules:
            proxy_args = [fx.Proxy(env[x.name], tracer) if isinstance(x, fx.Node) else x
                          for x in node.args]
            output_proxy = decomposition_rules[node.target](*proxy_args)
            new_node = output_proxy.node
            env[node.name] = new_node
        else:
            new_node = new_graph.node_copy(node, lambda x: env[x.name])
            env[node.name] = new_node
    return fx.GraphModule(model, new_graph)


class ReluModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        return F.relu(self.lin(x)) + F.relu(x)


def case_fx_docs_proxy_decomposition():
    """fx.html "Proxy/Retracing": F.relu decomposed into (x > 0) * x with Proxies."""
    model = seeded(ReluModel())
    decomposed = decompose(model)
    x = data(3, 4)
    return {"out": numpy(decomposed(x)), "eager": numpy(model(x)),
            "nodes": [(n.op, n.name) for n in decomposed.graph.nodes]}


class NegSigmSwapXformer(Transformer):
    def call_function(self, target: "Target", args, kwargs):
        if target == torch.sigmoid:
            return torch.neg(*args, **kwargs)
        return super().call_function(target, args, kwargs)

    def call_method(self, target: "Target", args, kwargs):
        if target == "neg":
            call_self, *args_tail = args
            return call_self.sigmoid(*args_tail, **kwargs)
        return super().call_method(target, args, kwargs)


def case_fx_docs_transformer_and_interpreter():
    """fx.html "The Interpreter Pattern": NegSigmSwapXformer and Interpreter.run."""
    def fn(x):
        return torch.sigmoid(x).neg()
    gm = torch.fx.symbolic_trace(fn)
    transformed: torch.nn.Module = NegSigmSwapXformer(gm).transform()
    x = data(3, 4)
    return {"transformed": numpy(transformed(x)),
            "expected": numpy(torch.neg(x).sigmoid()),
            "interpreted": numpy(Interpreter(gm).run(x)),
            "code": transformed.code}


class TwoLayerNet(torch.nn.Module):
    def __init__(self, D_in, H, D_out):
        super().__init__()
        self.linear1 = torch.nn.Linear(D_in, H)
        self.linear2 = torch.nn.Linear(H, D_out)

    def forward(self, x):
        h_relu = self.linear1(x).clamp(min=0)
        y_pred = self.linear2(h_relu)
        return y_pred


def case_fx_docs_shape_prop():
    """fx.html ShapeProp example: shapes and dtypes of every node of TwoLayerNet."""
    N, D_in, H, D_out = 64, 1000, 100, 10
    x = data(N, D_in)
    model = seeded(TwoLayerNet(D_in, H, D_out))
    gm = torch.fx.symbolic_trace(model)
    ShapeProp(gm).propagate(x)
    rows = [(node.name, str(node.meta["tensor_meta"].dtype), tuple(node.meta["tensor_meta"].shape))
            for node in gm.graph.nodes]
    return {"rows": rows}


# --- pytorch/examples fx/replace_op.py ------------------------------------------------

class BitwiseModule(torch.nn.Module):
    def forward(self, x, y):
        return x + y, torch.add(x, y), x.add(y)


def case_examples_replace_op():
    """pytorch/examples fx/replace_op.py: every add becomes torch.bitwise_and."""
    traced = symbolic_trace(BitwiseModule())
    patterns = set([operator.add, torch.add, "add"])
    for n in traced.graph.nodes:
        if any(n.target == pattern for pattern in patterns):
            with traced.graph.inserting_after(n):
                new_node = traced.graph.call_function(torch.bitwise_and, n.args, n.kwargs)
                n.replace_all_uses_with(new_node)
            traced.graph.erase_node(n)
    traced.recompile()
    x = torch.tensor([[1, 2], [7, 12]])
    y = torch.tensor([[3, 6], [5, 9]])
    return {"out": [numpy(t) for t in traced(x, y)], "code": traced.code}


# --- pytorch/examples fx/subgraph_rewriter_basic_use.py --------------------------------

class RewriteM(torch.nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x, w1, w2):
        val1 = torch.neg(w1)
        m1 = torch.cat([val1, w2]).sum()
        val2 = torch.neg(w1)
        m2 = torch.cat([val2, w2]).sum()
        return x + torch.max(m1) + torch.max(m2)


def rewrite_pattern(w1, w2):
    return torch.cat([w1, w2]).sum()


def rewrite_replacement(w1, w2):
    return torch.stack([w1, w2])


def case_examples_subgraph_rewriter():
    """pytorch/examples fx/subgraph_rewriter_basic_use.py."""
    traced_module = symbolic_trace(RewriteM())
    x, w1, w2 = data(2, 3), data(2, 3, seed=2), data(2, 3, seed=3)
    before = traced_module(x, w1, w2)
    matches = replace_pattern(traced_module, rewrite_pattern, rewrite_replacement)
    return {"before": numpy(before), "after": numpy(traced_module(x, w1, w2)),
            "matches": len(matches), "code": traced_module.code,
            "anchors": [m.anchor.name for m in matches],
            "nodes_map": [sorted((k.name, v.name) for k, v in m.nodes_map.items())
                          for m in matches]}


# --- pytorch/examples fx/inline_function.py --------------------------------------------

class InlineM(torch.nn.Module):
    def forward(self, x):
        return torch.relu(x) + 1.0


def case_examples_inline_function():
    """pytorch/examples fx/inline_function.py: relu inlined with Proxy retracing."""
    m = symbolic_trace(InlineM())
    tracer = torch.fx.proxy.GraphAppendingTracer(m.graph)
    for node in m.graph.nodes:
        if node.op == "call_function" and node.target == torch.relu:
            with m.graph.inserting_before(node):
                proxy_args = map_arg(node.args, lambda n: fx.Proxy(n, tracer))
                proxy_kwargs = map_arg(node.kwargs, lambda n: fx.Proxy(n, tracer))
                output_proxy = relu_decomposition(*proxy_args, **proxy_kwargs)
                node.replace_all_uses_with(output_proxy.node)
                m.graph.erase_node(node)
    m.recompile()
    x = data(4, 5)
    return {"out": numpy(m(x)), "eager": numpy(InlineM()(x)), "code": m.code}


# --- pytorch/examples fx/invert.py -----------------------------------------------------

invert_mapping = {}


def add_inverse(a, b):
    invert_mapping[a] = b
    invert_mapping[b] = a


inverses = [(torch.sin, torch.arcsin), (torch.cos, torch.arccos),
            (torch.tan, torch.arctan), (torch.exp, torch.log)]
for a_, b_ in inverses:
    add_inverse(a_, b_)


def invert(model: torch.nn.Module) -> torch.nn.Module:
    fx_model = fx.symbolic_trace(model)
    new_graph = fx.Graph()
    env = {}
    for node in reversed(fx_model.graph.nodes):
        if node.op == "call_function":
            new_node = new_graph.call_function(invert_mapping[node.target], (env[node.name],))
            env[node.args[0].name] = new_node
        elif node.op == "output":
            new_node = new_graph.placeholder(node.name)
            env[node.args[0].name] = new_node
        elif node.op == "placeholder":
            new_graph.output(env[node.name])
        else:
            raise RuntimeError("Not implemented")
    new_graph.lint()
    return fx.GraphModule(fx_model, new_graph)


def invert_me(x):
    return torch.exp(torch.sin(x))


def case_examples_invert():
    """pytorch/examples fx/invert.py: exp(sin(x)) inverted by walking the graph backwards."""
    inverted = invert(invert_me)
    x = torch.tensor([0.1, 0.4, -0.7, 1.2])
    return {"roundtrip": numpy(inverted(invert_me(x))), "x": numpy(x),
            "code": inverted.code}


# --- pytorch/examples fx/module_tracer.py ------------------------------------------------

class ModulePathTracer(torch.fx.Tracer):
    current_module_qualified_name: str = ""
    node_to_originating_module = {}

    def call_module(self, m: torch.nn.Module, forward, args, kwargs):
        old_qualname = self.current_module_qualified_name
        try:
            self.current_module_qualified_name = self.path_of_module(m)
            return super().call_module(m, forward, args, kwargs)
        finally:
            self.current_module_qualified_name = old_qualname

    def create_proxy(self, kind: str, target, args, kwargs, name=None, type_expr=None,
                     *rest, **more):
        proxy = super().create_proxy(kind, target, args, kwargs, name, type_expr, *rest, **more)
        self.node_to_originating_module[proxy.node] = self.current_module_qualified_name
        return proxy


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)

    def forward(self, x):
        return self.norm(torch.relu(self.lin(x)) + x)


class Stack(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.Sequential(Block(), Block())
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.blocks(x).mean(dim=0, keepdim=True))


def case_examples_module_tracer():
    """pytorch/examples fx/module_tracer.py: the module path each node came from."""
    class LeafBlocks(ModulePathTracer):
        node_to_originating_module = {}

        def is_leaf_module(self, m, qualname):
            return super().is_leaf_module(m, qualname)
    tracer = LeafBlocks()
    model = seeded(Stack())
    graph = tracer.trace(model)
    gm = fx.GraphModule(model, graph)
    x = data(3, 4)
    return {"origin": [(node.name, tracer.node_to_originating_module.get(node))
                       for node in graph.nodes],
            "out": numpy(gm(x)), "eager": numpy(model(x))}


# --- pytorch/examples fx/wrap_output_dynamically.py -------------------------------------

class ActivationFunction(Enum):
    RELU = auto()
    LEAKY_RELU = auto()
    PRELU = auto()


activation_functions = {
    ActivationFunction.RELU: nn.ReLU(),
    ActivationFunction.LEAKY_RELU: nn.LeakyReLU(),
    ActivationFunction.PRELU: nn.PReLU(),
}


class WrapM(torch.nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x, y):
        y = torch.cat([x, y])
        return y


def wrap_in_activation_function(m: fx.GraphModule, fn: ActivationFunction) -> fx.GraphModule:
    output_node = None
    for n in reversed(m.graph.nodes):
        if n.op == "output":
            output_node = n
            break
    assert output_node
    assert len(output_node.all_input_nodes) == 1
    wrap_node = output_node.all_input_nodes[0]
    wrap_proxy = Proxy(wrap_node)
    fn_impl = activation_functions[fn]
    fn_impl_traced = symbolic_trace(fn_impl)
    with m.graph.inserting_after(wrap_node):
        fn_impl_output_node = fn_impl_traced(wrap_proxy)
        new_args = (fn_impl_output_node.node,)
        output_node.args = new_args
    m.recompile()
    return m


def case_examples_wrap_output_dynamically():
    """pytorch/examples fx/wrap_output_dynamically.py: LeakyReLU appended after cat."""
    traced = symbolic_trace(WrapM())
    wrapped = wrap_in_activation_function(traced, ActivationFunction.LEAKY_RELU)
    x, y = data(3, 4), data(3, 4, seed=4)
    return {"out": numpy(wrapped(x, y)),
            "expected": numpy(F.leaky_relu(torch.cat([x, y]))), "code": wrapped.code}


# --- pytorch/examples fx/primitive_library.py ---------------------------------------------

def sigmoid_lowp(x: torch.Tensor):
    x = x.float()
    x = x.sigmoid()
    return x.half()


torch.fx.wrap("sigmoid_lowp")


def add_lowp(a: torch.Tensor, b: torch.Tensor):
    a, b = a.float(), b.float()
    c = a + b
    return c.half()


torch.fx.wrap("add_lowp")


class Foo(torch.nn.Module):
    def forward(self, x, y):
        x = sigmoid_lowp(x)
        y = sigmoid_lowp(y)
        return add_lowp(x, y)


def inline_lowp_func(n: torch.fx.Node):
    if n.op == "call_function" and n.target.__name__.endswith("_lowp"):
        with n.graph.inserting_before(n):
            tracer = torch.fx.proxy.GraphAppendingTracer(n.graph)
            proxy_args = map_arg(n.args, lambda x: torch.fx.Proxy(x, tracer))
            proxy_kwargs = map_arg(n.kwargs, lambda x: torch.fx.Proxy(x, tracer))
            output_proxy = n.target(*proxy_args, **proxy_kwargs)
            n.replace_all_uses_with(output_proxy.node)
            n.graph.erase_node(n)


def case_examples_primitive_library():
    """pytorch/examples fx/primitive_library.py: wrapped low-precision primitives, inlined."""
    traced = symbolic_trace(Foo())
    before = traced.code
    for node in list(traced.graph.nodes):
        if node.op == "call_function" and node.target is sigmoid_lowp:
            inline_lowp_func(node)
    traced.recompile()
    after_one = traced.code
    for node in list(traced.graph.nodes):
        inline_lowp_func(node)
    traced.recompile()
    x, y = data(3, 4), data(3, 4, seed=5)
    out = traced(x, y)
    return {"before": before, "after_one": after_one, "after_all": traced.code,
            "out": numpy(out.float()), "dtype": str(out.dtype),
            "eager": numpy(Foo()(x, y).float())}


# --- pytorch/examples fx/custom_tracer.py --------------------------------------------------

class M1(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.relu = torch.nn.ReLU()

    def forward(self, x):
        return self.relu(x)


class LowerReluTracer(Tracer):
    def is_leaf_module(self, m: torch.nn.Module, qualname: str):
        if isinstance(m, torch.nn.ReLU):
            return False
        return super().is_leaf_module(m, qualname)


class M2(torch.nn.Module):
    def forward(self, a, b):
        return a + b


class TaggingTracer(Tracer):
    def create_node(self, kind, target, args, kwargs, name=None, type_expr=None):
        n = super().create_node(kind, target, args, kwargs, name)
        n.tag = "foo"
        return n


def case_examples_custom_tracer():
    """pytorch/examples fx/custom_tracer.py: ReLU traced through (not a leaf), and a
    Tracer tagging every node it creates."""
    default_traced = symbolic_trace(M1())
    lowered = LowerReluTracer().trace(M1())
    tagged = TaggingTracer().trace(M2())
    relu_node = [n for n in lowered.nodes if n.op == "call_function"][0]
    return {"default": [(n.op, str(n.target)) for n in default_traced.graph.nodes],
            "lowered": [(n.op, n.name) for n in lowered.nodes],
            "relu_args": (len(relu_node.args), sorted(relu_node.kwargs)),
            "lowered_code": fx.GraphModule(M1(), lowered).code,
            "tags": [getattr(n, "tag", None) for n in tagged.nodes]}


# --- pytorch/examples fx/proxy_based_graph_creation.py ---------------------------------------

def case_examples_proxy_based_graph_creation():
    """pytorch/examples fx/proxy_based_graph_creation.py: a graph built by calling torch
    functions on Proxies over a fresh Graph's placeholders."""
    graph = torch.fx.Graph()
    tracer = torch.fx.proxy.GraphAppendingTracer(graph)
    raw1 = graph.placeholder("x")
    raw2 = graph.placeholder("y")
    y = Proxy(raw1, tracer)
    z = Proxy(raw2, tracer)
    a = torch.cat([y, z])
    b = torch.tanh(a)
    c = torch.neg(b)
    z = torch.add(b, c)
    graph.output(c.node)
    mod = torch.fx.GraphModule(torch.nn.Module(), graph)
    x, w = data(2, 3), data(2, 3, seed=9)
    return {"out": numpy(mod(x, w)), "code": mod.code,
            "nodes": [(n.op, n.name, len(n.users)) for n in graph.nodes]}
