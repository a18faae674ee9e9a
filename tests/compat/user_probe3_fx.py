"""torch.fx as GitHub repos and blog posts use it (not the tutorials the earlier probes
ported): L1-norm channel pruning by graph walk, LoRA layer surgery, activation
checkpointing and statistics hooks inserted by graph rewrite, FLOPs / memory counting
Interpreters, torch.fx.experimental's normalize and make_fx, ShapeProp's tensor_meta,
replace_pattern's Match objects, manual edits then recompile, and a Tracer with
param_shapes_constant."""
import copy
import operator

import numpy as np
import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F
from torch.fx import GraphModule, Interpreter, Tracer, subgraph_rewriter, symbolic_trace
from torch.fx.experimental.normalize import NormalizeArgs, NormalizeOperators
from torch.fx.experimental.proxy_tensor import make_fx
from torch.fx.passes.shape_prop import ShapeProp
from torch.utils.checkpoint import checkpoint


def t(*shape, seed=0, scale=1.0):
    return torch.from_numpy((np.random.default_rng(seed).standard_normal(shape) * scale)
                            .astype(np.float32))


def load_(model, scale=0.3):
    with torch.no_grad():
        for i, (name, p) in enumerate(sorted(model.named_parameters())):
            p.copy_(t(*p.shape, seed=700 + i, scale=scale))
        for name, b in model.named_buffers():
            if name.endswith("running_var"):
                b.copy_(torch.from_numpy(np.linspace(0.5, 1.5, b.numel()).astype(np.float32)))
            elif name.endswith("running_mean"):
                b.copy_(torch.from_numpy(np.linspace(-0.2, 0.2, b.numel()).astype(np.float32)))
    return model


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 6, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(6)
        self.head = nn.Linear(6, 4)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        x = F.adaptive_avg_pool2d(x, (1, 1))
        return self.head(torch.flatten(x, 1))


# --- channel pruning by graph walk (torch-pruning style, by hand) ----------------------
def _users_chain(node, modules):
    """conv -> bn -> act -> next conv, following single users."""
    bn = next(iter(node.users))
    act = next(iter(bn.users))
    nxt = next(iter(act.users))
    if (bn.op == "call_module" and isinstance(modules[bn.target], nn.BatchNorm2d)
            and nxt.op == "call_module" and isinstance(modules[nxt.target], nn.Conv2d)):
        return bn, nxt
    return None


def prune_conv(gm, conv_name, keep):
    modules = dict(gm.named_modules())
    node = next(n for n in gm.graph.nodes if n.op == "call_module" and n.target == conv_name)
    bn_node, next_node = _users_chain(node, modules)
    conv, bn, nxt = modules[conv_name], modules[bn_node.target], modules[next_node.target]
    scores = conv.weight.detach().abs().sum(dim=(1, 2, 3))
    idx = torch.argsort(scores, descending=True)[:keep].sort().values
    new_conv = nn.Conv2d(conv.in_channels, keep, conv.kernel_size, conv.stride,
                         conv.padding, bias=conv.bias is not None)
    new_conv.weight.data = conv.weight.data[idx].clone()
    if conv.bias is not None:
        new_conv.bias.data = conv.bias.data[idx].clone()
    new_bn = nn.BatchNorm2d(keep, eps=bn.eps, momentum=bn.momentum)
    for name in ("weight", "bias"):
        getattr(new_bn, name).data = getattr(bn, name).data.index_select(0, idx)
    new_bn.running_mean = bn.running_mean[idx].clone()
    new_bn.running_var = bn.running_var[idx].clone()
    new_next = nn.Conv2d(keep, nxt.out_channels, nxt.kernel_size, nxt.stride, nxt.padding,
                         bias=nxt.bias is not None)
    new_next.weight = nn.Parameter(nxt.weight.data[:, idx].clone())
    for target, mod in ((conv_name, new_conv), (bn_node.target, new_bn),
                        (next_node.target, new_next)):
        setattr(gm, target, mod)
    gm.recompile()
    return gm, idx


def case_l1_channel_pruning():
    model = load_(Block()).eval()
    gm = symbolic_trace(copy.deepcopy(model))
    x = t(2, 3, 6, 6, seed=1)
    before = gm(x)
    gm, idx = prune_conv(gm, "conv1", keep=5)
    after = gm(x)
    n_params = sum(p.numel() for p in gm.parameters())
    shapes = [tuple(p.shape) for _, p in gm.named_parameters()]
    return before, after, idx, n_params, shapes, torch.allclose(before, model(x))


# --- LoRA surgery: replace each Linear by a wrapper through the graph ------------------
class LoRALinear(nn.Module):
    def __init__(self, base, rank=2, alpha=4.0):
        super().__init__()
        self.base = base
        self.lora_a = nn.Parameter(t(rank, base.in_features, seed=11, scale=0.1))
        self.lora_b = nn.Parameter(t(base.out_features, rank, seed=12, scale=0.1))
        self.scaling = alpha / rank

    def forward(self, x):
        return self.base(x) + (x @ self.lora_a.t() @ self.lora_b.t()) * self.scaling


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(6, 12), nn.GELU(), nn.Linear(12, 12), nn.Tanh())
        self.out = nn.Linear(12, 3)

    def forward(self, x):
        return self.out(self.layers(x))


def case_lora_surgery_with_graph_edit():
    model = load_(MLP())
    gm = symbolic_trace(model)
    replaced = []
    for node in list(gm.graph.nodes):
        if node.op == "call_module" and isinstance(gm.get_submodule(node.target), nn.Linear):
            new_name = node.target.replace(".", "_") + "_lora"
            gm.add_submodule(new_name, LoRALinear(gm.get_submodule(node.target)))
            with gm.graph.inserting_after(node):
                new_node = gm.graph.call_module(new_name, node.args, node.kwargs)
            node.replace_all_uses_with(new_node)
            gm.graph.erase_node(node)
            replaced.append(new_name)
    gm.graph.lint()
    gm.recompile()
    for name, p in gm.named_parameters():
        p.requires_grad_("lora" in name.split(".")[-1])
    x = t(5, 6, seed=2)
    out = gm(x)
    out.square().mean().backward()
    grads = {name: p.grad for name, p in gm.named_parameters() if p.grad is not None}
    trainable = sorted(name for name, p in gm.named_parameters() if p.requires_grad)
    return replaced, out, grads, trainable, [n.op for n in gm.graph.nodes]


# --- activation checkpointing inserted by graph rewrite --------------------------------
class Deep(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(8, 8), nn.SiLU()) for _ in range(3))
        self.norm = nn.LayerNorm(8)

    def forward(self, x):
        for block in self.blocks:
            x = x + block(x)
        return self.norm(x)


def insert_checkpoints(gm):
    for node in list(gm.graph.nodes):
        if node.op == "call_module" and node.target.startswith("blocks."):
            with gm.graph.inserting_before(node):
                mod = gm.graph.get_attr(node.target)
                ck = gm.graph.call_function(checkpoint, (mod, *node.args),
                                            {"use_reentrant": False})
            node.replace_all_uses_with(ck)
            gm.graph.erase_node(node)
    gm.recompile()
    return gm


def case_checkpoint_by_graph_rewrite():
    model = load_(Deep())
    gm = insert_checkpoints(symbolic_trace(copy.deepcopy(model)))
    x = t(4, 8, seed=3).requires_grad_()
    out = gm(x)
    out.sum().backward()
    ref_x = x.detach().clone().requires_grad_()
    ref = model(ref_x)
    ref.sum().backward()
    targets = [getattr(n.target, "__name__", n.target) for n in gm.graph.nodes
               if n.op in ("call_function", "get_attr")]
    return out, x.grad, ref_x.grad, gm.get_submodule("blocks.0.0").weight.grad, targets


# --- statistics hooks inserted after every activation ---------------------------------
STATS = []


@torch.fx.wrap
def record_stats(x, name: str):
    STATS.append((name, round(float(x.mean()), 5), round(float(x.std()), 5),
                  float((x == 0).float().mean())))
    return x


def case_stats_hook_insertion():
    STATS.clear()
    model = load_(Block()).eval()
    gm = symbolic_trace(model)
    acts = [n for n in gm.graph.nodes
            if (n.op == "call_function" and n.target in (F.relu, torch.relu))
            or (n.op == "call_method" and n.target == "relu")]
    for node in acts:
        with gm.graph.inserting_after(node):
            hook = gm.graph.call_function(record_stats, (node, node.name))
        node.replace_all_uses_with(hook, delete_user_cb=lambda user: user is not hook)
    gm.recompile()
    out = gm(t(2, 3, 5, 5, seed=4))
    return out, list(STATS), len(acts), "record_stats" in gm.code


# --- FLOPs / memory counting interpreters ---------------------------------------------
class FlopCounter(Interpreter):
    def __init__(self, gm):
        super().__init__(gm)
        self.flops = {}
        self.bytes = {}

    def run_node(self, n):
        out = super().run_node(n)
        if isinstance(out, torch.Tensor):
            self.bytes[n.name] = out.numel() * out.element_size()
        if n.op == "call_module":
            mod = self.module.get_submodule(n.target)
            if isinstance(mod, nn.Conv2d):
                k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
                self.flops[n.name] = 2 * out.numel() * k
            elif isinstance(mod, nn.Linear):
                self.flops[n.name] = 2 * out.numel() * mod.in_features
            elif isinstance(mod, nn.BatchNorm2d):
                self.flops[n.name] = 2 * out.numel()
        return out


class PeakMemory(Interpreter):
    """Frees each value after its last use (as a memory planner would) and tracks the peak."""

    def run(self, *args):
        self.last_use = {}
        for node in self.module.graph.nodes:
            for inp in node.all_input_nodes:
                self.last_use[inp] = node
        self.live, self.peak = 0, 0
        return super().run(*args)

    def run_node(self, n):
        out = super().run_node(n)
        if isinstance(out, torch.Tensor):
            self.live += out.numel() * out.element_size()
            self.peak = max(self.peak, self.live)
        for inp in n.all_input_nodes:
            if self.last_use.get(inp) is n and isinstance(self.env.get(inp), torch.Tensor):
                self.live -= self.env[inp].numel() * self.env[inp].element_size()
        return out


def case_flops_and_memory_interpreters():
    model = load_(Block()).eval()
    gm = symbolic_trace(model)
    x = t(2, 3, 8, 8, seed=5)
    counter = FlopCounter(gm)
    out = counter.run(x)
    peak = PeakMemory(gm)
    peak.run(x)
    return out, counter.flops, counter.bytes, sum(counter.flops.values()), peak.peak


# --- torch.fx.experimental helpers ------------------------------------------------------
class Normed(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x, y):
        z = torch.add(self.fc(x), y)
        z = F.softmax(z, -1)
        z = torch.cat([z, y], 1)
        return z * 3 + torch.sum(z, 1, True)


def case_normalize_args_and_operators():
    model = load_(Normed())
    gm = symbolic_trace(model)
    x, y = t(3, 4, seed=6), t(3, 4, seed=7)
    normed = NormalizeArgs(gm).transform()
    calls = [(n.op, getattr(n.target, "__name__", n.target), len(n.args), sorted(n.kwargs))
             for n in normed.graph.nodes if n.op in ("call_function", "call_module")
             and n.target is not torch.add]    # torch leaves add as it is (docs/compat.md)
    ops = NormalizeOperators(symbolic_trace(model)).transform()
    op_targets = [getattr(n.target, "__name__", str(n.target)) for n in ops.graph.nodes
                  if n.op == "call_function"]
    return gm(x, y), normed(x, y), ops(x, y), calls, op_targets


def case_make_fx_with_decompositions():
    def f(x, w):
        return F.silu(x @ w).sum(1, keepdim=True) + torch.addmm(x[:, :2], x, w[:, :2])

    aten = torch.ops.aten

    def silu_decomp(x):
        return x * torch.sigmoid(x)

    x, w = t(3, 4, seed=8), t(4, 5, seed=9)
    plain = make_fx(f)(x, w)
    decomposed = make_fx(f, decomposition_table={aten.silu.default: silu_decomp})(x, w)
    # the graphs hold torch's ATen ops and ember's registry ops (docs/fx.md): compare
    # what they compute and their inputs
    return (plain(x, w), decomposed(x, w),
            [n.name for n in plain.graph.nodes if n.op == "placeholder"])


def case_shape_prop_tensor_meta():
    model = load_(Block()).eval()
    gm = symbolic_trace(model)
    ShapeProp(gm).propagate(t(2, 3, 6, 6, seed=10))
    rows = []
    for n in gm.graph.nodes:
        meta = n.meta.get("tensor_meta")
        if meta is not None:
            rows.append((n.name, tuple(meta.shape), str(meta.dtype), tuple(meta.stride),
                         meta.requires_grad, meta.is_quantized))
    total = sum(int(np.prod(n.meta["tensor_meta"].shape)) for n in gm.graph.nodes
                if "tensor_meta" in n.meta)
    return rows, total


# --- replace_pattern's Match objects ---------------------------------------------------
class AddRelu(nn.Module):
    def forward(self, x, y, z):
        a = torch.relu(torch.add(x, y))
        b = torch.relu(torch.add(a, z))
        return torch.sigmoid(b) + a


def _add_relu_pattern(a, b):
    return torch.relu(torch.add(a, b))


def _fused(a, b):
    return torch.clamp(a + b, min=0.0)


def case_replace_pattern_matches():
    gm = symbolic_trace(AddRelu())
    matches = subgraph_rewriter.replace_pattern(gm, _add_relu_pattern, _fused)
    info = [(m.anchor.name, sorted(k.name for k in m.nodes_map)) for m in matches]
    x, y, z = t(3, 3, seed=11), t(3, 3, seed=12), t(3, 3, seed=13)
    targets = [getattr(n.target, "__name__", str(n.target)) for n in gm.graph.nodes
               if n.op == "call_function"]
    return len(matches), info, targets, gm(x, y, z), AddRelu()(x, y, z)


# --- manual edits then recompile ---------------------------------------------------------
class Small(nn.Module):
    def forward(self, x, y):
        return torch.add(x, y).relu() * 2


def case_manual_edit_and_recompile():
    gm = symbolic_trace(Small())
    x, y = t(4, seed=14), t(4, seed=15)
    first = gm(x, y)
    for n in gm.graph.nodes:
        if n.op == "call_function" and n.target is torch.add:
            n.target = torch.mul
        if n.op == "call_method" and n.target == "relu":
            n.target = "sigmoid"
        if n.op == "call_function" and n.target is operator.mul:
            n.args = (n.args[0], 5)
    stale = gm(x, y)
    gm.recompile()
    out = gm(x, y)
    code_lines = [line.strip() for line in gm.code.strip().splitlines()
                  if line.strip() and not line.strip().startswith("#")]
    return first, stale, out, code_lines


# --- a Tracer with param_shapes_constant ------------------------------------------------
class ShapeUser(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(t(5, 3, seed=16))

    def forward(self, x):
        out_features = self.weight.shape[0]
        y = x @ self.weight.t()
        return y.reshape(-1, out_features) / out_features


def case_tracer_param_shapes_constant():
    model = ShapeUser()
    graph = Tracer(param_shapes_constant=True).trace(model)
    const = GraphModule(model, graph)
    plain_graph = Tracer().trace(model)
    plain_gm = GraphModule(model, plain_graph)
    x = t(2, 3, seed=17)
    ops = lambda g: [(n.op, str(n.target)) for n in g.nodes]
    return const(x), plain_gm(x), ops(graph), ops(plain_graph)


# --- an inference Transformer: drop Dropout, fold `x * 1.0`, print the nodes ------------
class WithDropout(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        y = self.drop(F.gelu(self.fc(x)))
        return F.dropout(y * 1.0, 0.2, self.training) + x


class StripForInference(torch.fx.Transformer):
    def call_module(self, target, args, kwargs):
        if isinstance(self.submodules[target], nn.Dropout):
            return args[0]
        return super().call_module(target, args, kwargs)

    def call_function(self, target, args, kwargs):
        if target is F.dropout:
            return args[0]
        if target is operator.mul and args[1] == 1.0:
            return args[0]
        return super().call_function(target, args, kwargs)


def case_inference_transformer_and_format_node():
    model = load_(WithDropout()).eval()
    gm = symbolic_trace(model)
    stripped = StripForInference(gm).transform()
    x = t(3, 4, seed=18)
    # a call_function's target prints by its module path (torch's F.gelu is _C._nn.gelu)
    lines = [n.format_node() for n in stripped.graph.nodes if n.op != "call_function"]
    return model(x), stripped(x), [n.op for n in stripped.graph.nodes], lines


# --- a partitioner's memory estimate: torch.fx.passes.graph_manipulation ------------------
def case_graph_manipulation_sizes_and_target_swap():
    from torch.fx.passes import graph_manipulation as gmanip
    model = load_(Block()).eval()
    gm = symbolic_trace(model)
    gmanip.get_size_of_all_nodes(gm, [t(2, 3, 6, 6, seed=19)])
    sizes = [(n.name, tuple(n.size_bytes)) for n in gm.graph.nodes if hasattr(n, "size_bytes")]
    try:
        gmanip.get_tensor_meta(list(symbolic_trace(model).graph.nodes)[1])
        refused = None
    except RuntimeError as err:
        refused = "shape propagation" in str(err)
    gmanip.replace_target_nodes_with(gm, "call_function", torch.relu, "call_function", torch.tanh)
    x = t(2, 3, 6, 6, seed=20)
    return sizes, refused, gm(x), [str(n.target) for n in gm.graph.nodes
                                   if n.op == "call_function"].count(str(torch.tanh))


# --- hooks on traced submodules, dtype moves of a GraphModule, math autowrap ------------
class Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 6)

    def forward(self, x):
        import math
        y = self.fc(x)
        return y / math.sqrt(y.shape[-1])


def case_hooks_dtype_and_math_autowrap():
    model = load_(Scaled())
    gm = symbolic_trace(model)
    seen = []
    handle = gm.fc.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape)))
    x = t(2, 4, seed=21)
    out = gm(x)
    handle.remove()
    gm(x)
    same_module = gm.fc is model.fc
    double = copy.deepcopy(gm).double()
    out64 = double(x.double())
    return out, seen, same_module, out64.dtype, out64, [n.op for n in gm.graph.nodes]


def case_graph_module_class_name_and_python_code():
    model = load_(Block()).eval()
    tracer = Tracer()
    graph = tracer.trace(model)
    gm = GraphModule(tracer.root, graph, "PrunedBlock")
    code = graph.python_code(root_module="self")
    x = t(1, 3, 5, 5, seed=22)
    return (type(gm).__name__, gm(x), sorted(code.globals)[:0], "def forward(self, x)" in code.src,
            gm.__class__.__name__ in str(gm).splitlines()[0])
