"""torch.fx code as PyTorch users write it: symbolic_trace and a transform that swaps
ops (graph.inserting_after, replace_all_uses_with, erase_node, lint, recompile), an
Interpreter subclass, ShapeProp, subgraph_rewriter.replace_pattern, and a Transformer."""
import operator

import numpy as np
import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F
from torch.fx import Interpreter, Transformer, subgraph_rewriter, symbolic_trace
from torch.fx.passes.shape_prop import ShapeProp


def t(*shape, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(shape)
                            .astype(np.float32))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.bn = nn.BatchNorm1d(4)
        with torch.no_grad():
            self.fc.weight.copy_(t(4, 4, seed=1))
            self.fc.bias.copy_(t(4, seed=2))

    def forward(self, x):
        y = torch.relu(self.fc(x))
        z = F.relu(x) + y
        return torch.add(z, 1).sum(dim=-1)


def ops(gm):
    return [(n.op, n.target if isinstance(n.target, str) else getattr(n.target, "__name__",
             str(n.target))) for n in gm.graph.nodes]


def case_swap_relu_for_gelu():
    gm = symbolic_trace(Net().eval())
    before = ops(gm)
    for node in list(gm.graph.nodes):
        if node.op == "call_function" and node.target in (torch.relu, F.relu):
            with gm.graph.inserting_after(node):
                new = gm.graph.call_function(F.gelu, node.args, {"approximate": "tanh"})
            node.replace_all_uses_with(new)
            gm.graph.erase_node(node)
    gm.graph.lint()
    gm.recompile()
    x = t(3, 4, seed=3)
    want = (F.gelu(x, approximate="tanh") + F.gelu(gm.fc(x), approximate="tanh") + 1).sum(-1)
    return before, ops(gm), gm(x), want, "gelu" in gm.code


def case_insert_scaling_after_linear():
    gm = symbolic_trace(Net().eval())
    for node in gm.graph.nodes:
        if node.op == "call_module" and node.target == "fc":
            with gm.graph.inserting_after(node):
                scaled = gm.graph.call_function(operator.mul, (node, 2.0))
            node.replace_all_uses_with(scaled)
            scaled.args = (node, 2.0)   # replace_all_uses_with also rewired this one
            break
    gm.recompile()
    users = [u.name for u in scaled.users]
    return gm(t(2, 4, seed=4)), users, len(gm.graph.nodes)


class CountingInterpreter(Interpreter):
    def __init__(self, gm):
        super().__init__(gm)
        self.calls = []

    def call_function(self, target, args, kwargs):
        self.calls.append(getattr(target, "__name__", str(target)))
        if target is torch.add:
            return super().call_function(torch.sub, args, kwargs)
        return super().call_function(target, args, kwargs)

    def call_module(self, target, args, kwargs):
        self.calls.append(target)
        return super().call_module(target, args, kwargs)


def case_interpreter_subclass():
    gm = symbolic_trace(Net().eval())
    interp = CountingInterpreter(gm)
    x = t(2, 4, seed=5)
    out = interp.run(x)
    return out, interp.calls, gm(x)


def case_shape_prop():
    gm = symbolic_trace(Net().eval())
    ShapeProp(gm).propagate(t(5, 4, seed=6))
    return [(n.name, list(n.meta["tensor_meta"].shape), n.meta["tensor_meta"].dtype)
            for n in gm.graph.nodes if "tensor_meta" in n.meta]


class Mod(nn.Module):
    def forward(self, x, w1, w2):
        a = torch.cat([w1, w2]).sum()
        b = torch.cat([w1, w2]).sum()
        return x + torch.max(a) + torch.max(b)


def pattern(w1, w2):
    return torch.cat([w1, w2]).sum()


def replacement(w1, w2):
    return torch.stack([w1, w2])


def case_subgraph_rewriter():
    gm = symbolic_trace(Mod())
    matches = subgraph_rewriter.replace_pattern(gm, pattern, replacement)
    x, w1, w2 = t(2, 2, seed=7), t(2, 2, seed=8), t(2, 2, seed=9)
    return len(matches), gm(x, w1, w2), ops(gm)


class NegSigmoid(Transformer):
    def call_function(self, target, args, kwargs):
        if target is torch.add:
            return torch.sigmoid(super().call_function(target, args, kwargs)).neg()
        return super().call_function(target, args, kwargs)


def case_transformer_and_graph_printing():
    gm = symbolic_trace(Net().eval())
    new = NegSigmoid(gm).transform()
    x = t(2, 4, seed=10)
    placeholders = [n.name for n in new.graph.nodes if n.op == "placeholder"]
    return new(x), placeholders, [n.name for n in gm.graph.nodes], \
        isinstance(new, torch.fx.GraphModule)


def case_manual_graph_construction():
    graph = torch.fx.Graph()
    x = graph.placeholder("x")
    w = graph.placeholder("w")
    mm = graph.call_function(torch.matmul, (x, w))
    out = graph.call_method("clamp", (mm,), {"min": 0.0})
    graph.output(out)
    gm = torch.fx.GraphModule(nn.Module(), graph)
    return gm(t(2, 3, seed=11), t(3, 2, seed=12)), [n.op for n in graph.nodes]


@torch.fx.wrap
def clamp_to_range(x, lo):
    return x.clamp(min=lo) if lo is not None else x


class Gated(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)
        with torch.no_grad():
            self.fc.weight.copy_(t(3, 3, seed=20))
            self.fc.bias.copy_(t(3, seed=21))

    def forward(self, x, use_gate=True):
        y = self.fc(x)
        if use_gate:
            y = y * torch.sigmoid(y)
        return clamp_to_range(y, 0.0)


def case_wrap_concrete_args_and_trace_errors():
    gm = symbolic_trace(Gated(), concrete_args={"use_gate": False})
    x = t(2, 3, seed=22)
    wrapped_calls = [n.target.__name__ for n in gm.graph.nodes if n.op == "call_function"]

    class Branchy(nn.Module):
        def forward(self, x):
            if x.sum() > 0:
                return x
            return -x
    try:
        symbolic_trace(Branchy())
        message = None
    except torch.fx.proxy.TraceError as e:
        # (ember's message goes on to name the value: "... (bool() of gt)")
        message = str(e).startswith("symbolically traced variables cannot be used as "
                                    "inputs to control flow")
    return gm(x, False), wrapped_calls, message, [n.op for n in gm.graph.nodes]


def case_graph_module_code_text():
    gm = symbolic_trace(Net().eval())
    lines = [line.strip() for line in gm.code.strip().splitlines() if line.strip()]
    return len(lines), lines[0], [n.format_node() is not None for n in gm.graph.nodes]
