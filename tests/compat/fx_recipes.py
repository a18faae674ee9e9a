"""torch.fx as its tutorials and recipes use it, written against plain PyTorch.

tests/compat/test_fx_recipes.py runs every `recipe_*` function here twice: with the
real torch, and with `torch` imported as ember (porting.torch_as_ember), and compares
what they return (numbers as NumPy arrays, generated code and node listings as text).
Weights come from `seeded`, so both runs compute with the same numbers.
"""
import copy
import operator

import numpy as np
import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F
from torch.fx import subgraph_rewriter
from torch.fx.experimental.optimization import fuse
from torch.fx.experimental.proxy_tensor import make_fx
from torch.fx.node import Node
from torch.fx.passes.infra.pass_base import PassBase, PassResult
from torch.fx.passes.infra.pass_manager import PassManager
from torch.fx.passes.shape_prop import ShapeProp
from torch.fx.passes.split_module import split_module


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


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        y = F.relu(self.bn(self.conv(x)))
        y = torch.add(y, self.bn2(self.conv2(y)))
        y = y + 1
        y = y.mean(dim=(2, 3))
        return self.fc(y)


def recipe_replace_add_with_mul():
    gm = fx.symbolic_trace(seeded(ConvNet()).eval())
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target == torch.add:
            node.target = torch.mul
    gm.recompile()
    return {"out": numpy(gm(data(2, 3, 6, 6))), "code": gm.code}


def recipe_insert_after_and_replace_uses():
    def f(x, y):
        return (x + y).sum(1) * 2
    gm = fx.symbolic_trace(f)
    for node in list(gm.graph.nodes):
        if node.op == "call_function" and node.target == operator.add:
            with gm.graph.inserting_after(node):
                relu = gm.graph.call_function(torch.relu, args=(node,))
            node.replace_all_uses_with(relu, delete_user_cb=lambda user: user is not relu)
    gm.graph.lint()
    gm.recompile()
    listing = [n.format_node() for n in gm.graph.nodes]
    return {"out": numpy(gm(data(3, 4), data(3, 4, seed=2))), "code": gm.code,
            "nodes": "\n".join(listing)}


def recipe_erase_and_dead_code():
    def f(x):
        unused = x.exp()  # noqa: F841
        y = torch.neg(x)
        return torch.neg(y) + 1
    gm = fx.symbolic_trace(f)
    for node in list(gm.graph.nodes):
        if node.op == "call_function" and node.target == torch.neg:
            node.replace_all_uses_with(node.args[0])
            gm.graph.erase_node(node)
    gm.graph.eliminate_dead_code()
    gm.recompile()
    return {"out": numpy(gm(data(2, 3))), "code": gm.code,
            "found": [n.name for n in gm.graph.find_nodes(op="placeholder")]}


def recipe_shape_prop():
    gm = fx.symbolic_trace(seeded(ConvNet()).eval())
    ShapeProp(gm).propagate(data(2, 3, 6, 6))
    rows = []
    for node in gm.graph.nodes:
        meta = node.meta.get("tensor_meta")
        rows.append((node.name, str(meta.dtype).split(".")[-1], tuple(meta.shape))
                    if meta is not None else (node.name, None, None))
    return {"rows": rows}


class NegSigmSwap(fx.Transformer):
    def call_function(self, target, args, kwargs):
        if target == torch.sigmoid:
            return torch.neg(*args, **kwargs)
        return super().call_function(target, args, kwargs)

    def call_method(self, target, args, kwargs):
        if target == "neg":
            call_self, *rest = args
            return call_self.sigmoid(*rest, **kwargs)
        return super().call_method(target, args, kwargs)


def recipe_transformer():
    def fn(x):
        return torch.sigmoid(x).neg()
    transformed = NegSigmSwap(fx.symbolic_trace(fn)).transform()
    return {"out": numpy(transformed(data(3, 4))), "code": transformed.code}


class OpCounter(fx.Interpreter):
    def __init__(self, module):
        super().__init__(module)
        self.seen = []

    def run_node(self, n):
        result = super().run_node(n)
        self.seen.append((n.op, n.name, tuple(result.shape) if hasattr(result, "shape")
                          else None))
        return result


def recipe_interpreter():
    model = seeded(ConvNet()).eval()
    counter = OpCounter(fx.symbolic_trace(model))
    out = counter.run(data(1, 3, 5, 5))
    return {"out": numpy(out), "seen": counter.seen}


def recipe_replace_pattern():
    def pattern(a, b):
        return torch.add(a, b).relu()

    def replacement(a, b):
        return torch.sub(a, b).sigmoid()

    def f(x, y):
        z = torch.add(x, y).relu()
        return z * torch.add(y, z).relu()
    gm = fx.symbolic_trace(f)
    matches = subgraph_rewriter.replace_pattern(gm, pattern, replacement)
    return {"count": len(matches), "out": numpy(gm(data(4), data(4, seed=3))),
            "code": gm.code}


def _parent_name(target):
    *parent, name = target.rsplit(".", 1)
    return (parent[0] if parent else ""), name


def fuse_conv_bn_by_hand(model):
    """The torch.fx conv-bn fusion tutorial's pass, written out."""
    model = copy.deepcopy(model)
    gm = fx.symbolic_trace(model)
    modules = dict(gm.named_modules())
    for node in gm.graph.nodes:
        if node.op != "call_module" or type(modules[node.target]) is not nn.BatchNorm2d:
            continue
        conv_node = node.args[0]
        if not isinstance(conv_node, Node) or conv_node.op != "call_module" or \
                type(modules[conv_node.target]) is not nn.Conv2d or len(conv_node.users) > 1:
            continue
        fused = torch.nn.utils.fusion.fuse_conv_bn_eval(modules[conv_node.target],
                                                        modules[node.target])
        parent, name = _parent_name(conv_node.target)
        setattr(modules[parent] if parent else gm, name, fused)
        node.replace_all_uses_with(conv_node)
        gm.graph.erase_node(node)
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm


def recipe_conv_bn_fusion():
    model = seeded(ConvNet()).eval()
    x = data(2, 3, 6, 6)
    by_hand = fuse_conv_bn_by_hand(model)
    library = fuse(model)
    return {"reference": numpy(model(x)), "by_hand": numpy(by_hand(x)),
            "library": numpy(library(x)),
            "modules": sorted(name for name, _ in by_hand.named_modules()),
            "library_calls": [n.target for n in library.graph.nodes if n.op == "call_module"]}


class Stage(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        if x.sum() > 0:          # data-dependent: must stay a leaf
            return self.lin(x)
        return -self.lin(x)


class TwoStages(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = Stage()
        self.b = Stage()

    def forward(self, x):
        return self.b(torch.tanh(self.a(x)))


class StageLeafTracer(fx.Tracer):
    def is_leaf_module(self, m, module_qualified_name):
        return isinstance(m, Stage) or super().is_leaf_module(m, module_qualified_name)


def recipe_custom_tracer_leaf_module():
    model = seeded(TwoStages())
    graph = StageLeafTracer().trace(model)
    gm = fx.GraphModule(model, graph)
    x = data(3, 4)
    return {"out": numpy(gm(x)), "eager": numpy(model(x)), "code": gm.code}


def recipe_concrete_args():
    def f(x, flag):
        if flag:
            return x * 2
        return x - 1
    gm = fx.symbolic_trace(f, concrete_args={"flag": True})
    return {"out": numpy(gm(data(3), True)),
            "ops": [n.op for n in gm.graph.nodes]}


def clamp_rows(x):
    return x.clamp(min=0) if len(x) > 1 else x


fx.wrap("clamp_rows")


def recipe_wrap():
    def g(x):
        return clamp_rows(x) + 1
    gm = fx.symbolic_trace(g)
    return {"out": numpy(gm(data(3, 2))),
            "targets": [getattr(n.target, "__name__", str(n.target)) for n in gm.graph.nodes]}


class Splittable(nn.Module):
    def __init__(self):
        super().__init__()
        self.param = nn.Parameter(torch.ones(3, 4))
        self.linear = nn.Linear(4, 5)

    def forward(self, x, y):
        z = self.linear(x + self.param).clamp(min=0.0, max=1.0)
        w = self.linear(y).clamp(min=0.0, max=1.0)
        return z + w


def recipe_split_module():
    model = seeded(Splittable())
    counter = [0]

    def round_robin(node):
        counter[0] += 1
        return (counter[0] - 1) % 3
    split = split_module(fx.symbolic_trace(model), model, round_robin)
    x, y = data(3, 4), data(3, 4, seed=5)
    return {"out": numpy(split(x, y)), "eager": numpy(model(x, y)), "code": split.code,
            "submodule_code": split.submod_1.code}


def recipe_graph_by_hand():
    graph = fx.Graph()
    x = graph.placeholder("x")
    w = graph.get_attr("w")
    mm = graph.call_function(torch.matmul, (x, w))
    r = graph.call_method("relu", (mm,))
    graph.output(graph.call_function(operator.add, (r, 1.0)))
    root = nn.Module()
    root.w = nn.Parameter(data(4, 2))
    gm = fx.GraphModule(root, graph)
    return {"out": numpy(gm(data(3, 4))), "code": gm.code}


def recipe_proxy_retracing():
    graph = fx.Graph()
    tracer = fx.proxy.GraphAppendingTracer(graph)
    px = fx.Proxy(graph.placeholder("x"), tracer)
    py = fx.Proxy(graph.placeholder("y"), tracer)
    out = torch.relu(px) * py.sum() + px.sigmoid()
    graph.output(out.node)
    gm = fx.GraphModule(nn.Module(), graph)
    return {"out": numpy(gm(data(5), data(5, seed=7))),
            "ops": [(n.op, n.name) for n in graph.nodes]}


def recipe_node_meta_and_navigation():
    gm = fx.symbolic_trace(seeded(ConvNet()).eval())
    for node in gm.graph.nodes:
        node.meta["users"] = len(node.users)
    first = next(iter(gm.graph.nodes))
    flatten_inputs = []
    for node in gm.graph.nodes:
        if node.op == "call_method" and node.target == "mean":
            with gm.graph.inserting_before(node):
                scaled = gm.graph.call_function(torch.mul, (node.args[0], 0.5))
            node.update_arg(0, scaled)
            flatten_inputs = [n.name for n in node.all_input_nodes]
    gm.recompile()
    gm.add_submodule("extra.identity", nn.Identity())
    return {"first": (first.name, first.op, first.next.name),
            "last": list(reversed(gm.graph.nodes))[0].op,
            "users": [n.meta["users"] for n in gm.graph.nodes if "users" in n.meta],
            "inputs": flatten_inputs, "out": numpy(gm(data(1, 3, 4, 4))),
            "extra": type(gm.get_submodule("extra.identity")).__name__}


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.mha = nn.MultiheadAttention(8, 2, batch_first=True)
        self.ln = nn.LayerNorm(8)

    def forward(self, x):
        a, _ = self.mha(x, x, x, need_weights=False)
        q = x.view(x.shape[0], x.shape[1], 2, 4).transpose(1, 2)
        s = F.scaled_dot_product_attention(q, q, q, is_causal=True)
        return self.ln(a + x) + s.transpose(1, 2).reshape(x.shape)


class RecordingTracer(fx.Tracer):
    """A tracer overriding torch.fx's hooks, as profilers and quantizers write them."""

    def __init__(self):
        super().__init__()
        self.modules_called = []

    def call_module(self, m, forward, args, kwargs):
        self.modules_called.append(type(m).__name__)
        return super().call_module(m, forward, args, kwargs)

    def create_proxy(self, kind, target, args, kwargs, name=None, type_expr=None,
                     proxy_factory_fn=None):
        proxy = super().create_proxy(kind, target, args, kwargs, name, type_expr,
                                     proxy_factory_fn)
        proxy.node.meta["recorded"] = kind
        return proxy


def recipe_tracer_hooks_on_attention():
    model = seeded(Attention(), scale=0.2).eval()
    tracer = RecordingTracer()
    gm = fx.GraphModule(model, tracer.trace(model))
    x = data(2, 5, 8)
    return {"out": numpy(gm(x)), "eager": numpy(model(x)),
            "called": tracer.modules_called,
            "recorded": sorted({n.meta.get("recorded", "-") for n in gm.graph.nodes})}


def recipe_make_fx():
    def f(a):
        return torch.sin(a) * 2 + a.sum()
    traced = make_fx(f)(data(3))
    return {"out": numpy(traced(data(3, seed=9))),
            "placeholders": len([n for n in traced.graph.nodes if n.op == "placeholder"])}


class ReluToGelu(PassBase):
    def call(self, gm):
        modified = False
        for node in gm.graph.nodes:
            if node.op == "call_function" and node.target == torch.relu:
                node.target = F.gelu
                modified = True
        gm.recompile()
        return PassResult(gm, modified)


def drop_dead_code(gm):
    changed = gm.graph.eliminate_dead_code()
    gm.recompile()
    return PassResult(gm, changed)


def recipe_pass_manager():
    def f(x):
        unused = x.exp()  # noqa: F841
        return torch.relu(x) * 2
    result = PassManager(passes=[ReluToGelu(), drop_dead_code], steps=2)(fx.symbolic_trace(f))
    optional = fx.symbolic_trace(lambda x, y=None: x if y is None else x + y,
                                 concrete_args={"y": fx.PH})
    code = result.graph_module.code        # torch spells F.gelu torch._C._nn.gelu
    return {"modified": result.modified, "gelu_calls": code.count("gelu("),
            "exp_calls": code.count("exp("),
            "out": numpy(result.graph_module(data(4))),
            "with_y": numpy(optional(data(2), data(2, seed=4)))}


RECIPES = {name[len("recipe_"):]: fn for name, fn in globals().items()
           if name.startswith("recipe_")}
