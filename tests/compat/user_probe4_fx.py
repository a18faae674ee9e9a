"""torch.fx as transform writers use it, following the torch.fx documentation's recipes
in forms the earlier probes did not: pickling and torch.save of a GraphModule, a
Transformer that swaps call_function and call_method targets, node-level editing APIs
(update_arg, replace_input_with, prepend / append, node_copy, find_nodes,
output_node), dead-code elimination around in-place ops, graph.lint errors, unused
submodules deleted, torch.fx.wrap of a function that reads a Proxy's shape,
print_tabular's text, split_module with several outputs crossing partitions, and
GraphModule built from a dict of modules."""
import copy
import contextlib
import io
import operator
import pickle

import numpy as np
import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F
from torch.fx import GraphModule, Interpreter, Transformer, symbolic_trace
from torch.fx.passes.split_module import split_module


def t(*shape, seed=0, scale=1.0):
    return torch.from_numpy((np.random.default_rng(seed).standard_normal(shape) * scale)
                            .astype(np.float32))


def load_(model, scale=0.3):
    with torch.no_grad():
        for i, (name, p) in enumerate(sorted(model.named_parameters())):
            p.copy_(t(*p.shape, seed=1700 + i, scale=scale))
    return model


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 8)
        self.fc2 = nn.Linear(8, 8)
        self.fc3 = nn.Linear(8, 3)
        self.unused = nn.Linear(2, 2)

    def forward(self, x):
        h = torch.relu(self.fc1(x))
        h = self.fc2(h).sigmoid() * h
        return self.fc3(h + 1.0)


def names(gm):
    return [(n.op, n.name, str(n.target) if n.op != "call_function" else n.target.__name__)
            for n in gm.graph.nodes]


# --- pickle / torch.save of a GraphModule ----------------------------------------------------
def case_pickle_and_save_graph_module():
    model = load_(MLP())
    gm = symbolic_trace(model)
    x = t(4, 6, seed=1)
    again = pickle.loads(pickle.dumps(gm))
    buf = io.BytesIO()
    torch.save(gm, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    deep = copy.deepcopy(gm)
    return (gm(x), again(x), loaded(x), deep(x), 
            sorted(dict(loaded.named_parameters())), again.code == gm.code)


# --- Transformer that swaps targets ----------------------------------------------------------
class SwapOps(Transformer):
    def call_function(self, target, args, kwargs):
        if target is torch.relu:
            target = F.gelu
        return super().call_function(target, args, kwargs)

    def call_method(self, target, args, kwargs):
        if target == "sigmoid":
            return super().call_function(torch.tanh, args, kwargs)
        return super().call_method(target, args, kwargs)


def case_transformer_swaps_function_and_method():
    model = load_(MLP())
    gm = symbolic_trace(model)
    new = SwapOps(gm).transform()
    x = t(3, 6, seed=2)
    want = model.fc3(torch.tanh(model.fc2(F.gelu(model.fc1(x)))) * F.gelu(model.fc1(x)) + 1.0)
    return new(x), want, names(new)


# --- node editing APIs ------------------------------------------------------------------------
def case_node_editing_apis():
    model = load_(MLP())
    gm = symbolic_trace(model)
    g = gm.graph
    (relu,) = g.find_nodes(op="call_function", target=torch.relu)
    (fc2,) = g.find_nodes(op="call_module", target="fc2")
    # clamp the relu's input and feed fc2 from a new negation of relu
    with g.inserting_before(relu):
        clamp = g.call_function(torch.clamp, (relu.args[0],), {"min": -0.5, "max": 0.5})
    relu.update_arg(0, clamp)
    neg = g.create_node("call_function", operator.neg, (relu,), name="negated")
    fc2.prepend(neg)
    fc2.replace_input_with(relu, neg)
    out = g.output_node()
    add = out.args[0].args[0]
    add.update_arg(1, 2.0)
    g.lint()
    gm.recompile()
    x = t(5, 6, seed=3)
    h = torch.relu(torch.clamp(model.fc1(x), min=-0.5, max=0.5))
    want = model.fc3(model.fc2(-h).sigmoid() * h + 2.0)
    users = sorted(u.name for u in relu.users)
    return gm(x), want, names(gm), users, [n.name for n in relu.all_input_nodes], out.name


def case_node_copy_into_new_graph():
    model = load_(MLP())
    gm = symbolic_trace(model)
    new = torch.fx.Graph()
    env = {}
    for node in gm.graph.nodes:
        if node.op == "output":
            new.output(env[node.args[0].name] if False else node.args[0] and
                       env[node.args[0]])
            continue
        env[node] = new.node_copy(node, lambda n: env[n])
        if node.op == "call_module" and node.target == "fc1":
            with new.inserting_after(env[node]):
                env[node] = new.call_method("mul", (env[node], 0.5))
    gm2 = GraphModule(gm, new)
    x = t(2, 6, seed=4)
    h = torch.relu(model.fc1(x) * 0.5)
    want = model.fc3(model.fc2(h).sigmoid() * h + 1.0)
    return gm2(x), want, names(gm2)


# --- dead code around in-place ops, lint errors ----------------------------------------------
class InPlace(nn.Module):
    def forward(self, x, y):
        unused = x * 3
        z = x.clone()
        z = z.add(1)
        dead = torch.relu(x)
        return z + 1


def case_eliminate_dead_code_in_place():
    gm = symbolic_trace(InPlace())
    changed = gm.graph.eliminate_dead_code()
    gm.recompile()
    x, y = t(3, seed=5), t(3, seed=6)
    return changed, names(gm), gm(x, y), gm.graph.eliminate_dead_code()


def case_lint_errors_and_erase_with_users():
    gm = symbolic_trace(load_(MLP()))
    g = gm.graph
    (relu,) = g.find_nodes(op="call_function", target=torch.relu)
    messages = []
    try:
        g.erase_node(relu)
    except RuntimeError as err:
        messages.append(str(err).split(" but ")[0])
    bad = torch.fx.Graph()
    a = bad.placeholder("a")
    other = torch.fx.Graph()
    b = other.placeholder("b")
    bad.output(b)
    try:
        bad.lint()
    except RuntimeError as err:
        messages.append(str(err).split(" but ")[0])
    return messages


def case_delete_unused_submodules_and_add():
    model = load_(MLP())
    gm = symbolic_trace(model)
    before = sorted(name for name, _ in gm.named_children())
    gm.delete_all_unused_submodules()
    after = sorted(name for name, _ in gm.named_children())
    ok = gm.add_submodule("extra.scale", nn.Identity())
    deleted = gm.delete_submodule("fc3")
    missing = gm.delete_submodule("nope")
    return before, after, ok, deleted, missing, sorted(n for n, _ in gm.named_modules())


# --- torch.fx.wrap with a Proxy's shape --------------------------------------------------------
def scaled_by_width(x, factor):
    return x * (factor / x.shape[-1])


torch.fx.wrap("scaled_by_width")


class UsesWrapped(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        y = scaled_by_width(self.fc(x), 2.0)
        return y.view(x.size(0), -1).sum(dim=1, keepdim=True) + x.shape[1]


def case_wrapped_function_reads_shape():
    model = load_(UsesWrapped())
    gm = symbolic_trace(model)
    x = t(3, 4, seed=7)
    calls = [n.target.__name__ for n in gm.graph.nodes if n.op == "call_function"]
    return gm(x), model(x), calls, gm.code


# --- split_module with values crossing partitions --------------------------------------------
class TwoStage(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 4)
        self.c = nn.Linear(8, 2)

    def forward(self, x):
        h = self.a(x)
        skip = torch.relu(h)
        g = self.b(skip) + h
        return self.c(torch.cat([g, skip], dim=-1)), skip.mean()


def case_split_module_crossing_values():
    model = load_(TwoStage())
    gm = symbolic_trace(model)
    stage = {"a": 0, "b": 1, "c": 2}
    current = [0]

    def part(node):
        if node.op == "call_module":
            current[0] = stage[node.target]
        return current[0]

    qualnames = {}
    split = split_module(gm, model, part, qualname_map=qualnames)
    x = t(3, 4, seed=8)
    subs = [(name, [n.op for n in m.graph.nodes]) for name, m in split.named_children()]
    return split(x), model(x), subs, sorted(qualnames.items())


# --- GraphModule from a dict of modules -------------------------------------------------------
def case_graph_module_from_dict():
    g = torch.fx.Graph()
    x = g.placeholder("x")
    h = g.call_module("enc.proj", (x,))
    h = g.call_function(F.silu, (h,))
    w = g.get_attr("scale")
    g.output(g.call_function(operator.mul, (h, w)))
    proj = load_(nn.Linear(3, 3))
    gm = GraphModule({"enc.proj": proj, "scale": torch.tensor([1.0, 2.0, 3.0])}, g,
                     class_name="Built")
    x = t(2, 3, seed=9)
    return (gm(x), F.silu(proj(x)) * torch.tensor([1.0, 2.0, 3.0]), type(gm).__name__,
            sorted(n for n, _ in gm.named_modules()), sorted(n for n, _ in gm.named_buffers()),
            gm.code)


# --- Interpreter that records every value and run with initial_env ----------------------------
class Recorder(Interpreter):
    def __init__(self, gm):
        super().__init__(gm)
        self.seen = {}

    def run_node(self, n):
        result = super().run_node(n)
        if isinstance(result, torch.Tensor):
            self.seen[n.name] = (list(result.shape), float(result.abs().sum()))
        return result


def case_interpreter_records_and_module_iteration():
    class Stack(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)])
            self.heads = nn.ModuleDict({"a": nn.Linear(4, 2), "b": nn.Linear(4, 1)})

        def forward(self, x):
            for i, layer in enumerate(self.layers):
                x = layer(x) if i % 2 == 0 else F.relu(layer(x))
            return self.heads["a"](x), self.heads["b"](x).squeeze(-1)

    model = load_(Stack())
    gm = symbolic_trace(model)
    rec = Recorder(gm)
    x = t(2, 4, seed=10)
    out = rec.run(x)
    return out, model(x), sorted(rec.seen.items()), names(gm)
