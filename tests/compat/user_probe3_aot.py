"""Ahead-of-time compilation as repos and blog posts write it: torch.export of models with
data-dependent control flow through torch.cond, reading an ExportedProgram's
graph_signature / state_dict / constants / module_call_graph, unflatten and calling its
submodules, export with strict=False, run_decompositions with a custom table,
torch.export.save / load round trips through files and buffers, and AOTInductor
packages of models with several inputs and a dynamic batch."""
import io
import os
import tempfile

import numpy as np
import torch
import torch._inductor
import torch.nn as nn
import torch.nn.functional as F
from torch.export import Dim, export


def t(*shape, seed=0, scale=1.0):
    return torch.from_numpy((np.random.default_rng(seed).standard_normal(shape) * scale)
                            .astype(np.float32))


def load_(model, scale=0.3):
    with torch.no_grad():
        for i, (name, p) in enumerate(sorted(model.named_parameters())):
            p.copy_(t(*p.shape, seed=900 + i, scale=scale))
        for name, b in model.named_buffers():
            if name.endswith("running_var"):
                b.copy_(torch.from_numpy(np.linspace(0.5, 1.5, b.numel()).astype(np.float32)))
            elif name.endswith("running_mean"):
                b.copy_(torch.from_numpy(np.linspace(-0.2, 0.2, b.numel()).astype(np.float32)))
    return model


# --- torch.cond ----------------------------------------------------------------------
class Gate(nn.Module):
    def __init__(self):
        super().__init__()
        self.up = nn.Linear(4, 4)
        self.down = nn.Linear(4, 4)

    def forward(self, x):
        def positive(x):
            return F.relu(self.up(x))

        def negative(x):
            return torch.tanh(self.down(x)) - 1.0

        return torch.cond(x.sum() > 0, positive, negative, (x,))


def case_cond_export_both_branches():
    model = load_(Gate()).eval()
    pos, neg = t(3, 4, seed=1).abs(), -t(3, 4, seed=2).abs()
    eager = (model(pos), model(neg))
    ep = export(model, (pos,))
    m = ep.module()
    return eager, m(pos), m(neg), [s.target for s in ep.graph_signature.input_specs]


class CondWithOperands(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("scale", torch.tensor([2.0, 0.5, 1.0]))

    def forward(self, x, y):
        return torch.cond(x.shape[0] > 2, lambda a, b: a * self.scale + b,
                          lambda a, b: a - b, (x, y))


def case_cond_on_a_shape_with_dynamic_batch():
    model = CondWithOperands()
    batch = Dim("batch", min=1, max=16)
    x, y = t(4, 3, seed=3), t(4, 3, seed=4)
    ep = export(model, (x, y), dynamic_shapes=({0: batch}, {0: batch}))
    m = ep.module()
    small = (t(2, 3, seed=5), t(2, 3, seed=6))
    return m(x, y), m(*small), model(*small)


# --- graph_signature, state_dict, constants, module_call_graph -------------------------
class WithState(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.register_buffer("mask", torch.tensor([1.0, 0.0, 1.0, 1.0]), persistent=False)
        self.offset = torch.tensor(0.25)          # a plain tensor attribute: a constant

    def forward(self, x):
        y = self.bn(self.conv(x))
        return (y * self.mask.view(1, -1, 1, 1)).mean((2, 3)) + self.offset


def case_graph_signature_and_state():
    model = load_(WithState()).eval()
    ep = export(model, (t(2, 3, 6, 6, seed=7),))
    sig = ep.graph_signature
    return (sorted(sig.parameters), sorted(sig.buffers), list(sig.user_inputs),
            len(sig.user_outputs), dict(sig.inputs_to_parameters),
            dict(sig.inputs_to_buffers), dict(sig.buffers_to_mutate),
            sorted(ep.state_dict), sorted(ep.constants), ep.state_dict["conv.weight"],
            [(e.fqn, e.signature is None) for e in ep.module_call_graph],
            ep.module_call_graph[0].signature.forward_arg_names)


def case_train_mode_export_mutates_buffers():
    model = load_(WithState()).train()
    x = t(2, 3, 6, 6, seed=8)
    ep = export(model, (x,))
    sig = ep.graph_signature
    m = ep.module()                        # runs the training graph it was exported with
    out = m(x)
    return (sorted(sig.buffers_to_mutate.values()), out, m.bn.running_mean,
            m.bn.num_batches_tracked)


# --- unflatten --------------------------------------------------------------------------
class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(6, 8)
        self.norm = nn.LayerNorm(8)

    def forward(self, x):
        return self.norm(F.gelu(self.proj(x)))


class TwoTower(nn.Module):
    def __init__(self):
        super().__init__()
        self.query = Encoder()
        self.doc = Encoder()

    def forward(self, q, d):
        return (self.query(q) * self.doc(d)).sum(-1)


def case_unflatten_and_call_submodules():
    model = load_(TwoTower()).eval()
    q, d = t(3, 6, seed=9), t(3, 6, seed=10)
    ep = export(model, (q, d), preserve_module_call_signature=("query",))
    flat = torch.export.unflatten(ep)
    children = sorted(name for name, _ in flat.named_children())
    return (flat(q, d), flat.query(q), model.query(q), flat.doc.proj(d), children,
            [(e.fqn, e.signature is None) for e in ep.module_call_graph],
            sorted(k for k in flat.state_dict() if k.startswith("doc.")))


# --- strict=False ------------------------------------------------------------------------
class Config:
    def __init__(self):
        self.eps = 1e-3
        self.scales = [1.0, 0.5]


class NonStrict(nn.Module):
    def __init__(self):
        super().__init__()
        self.cfg = Config()
        self.fc = nn.Linear(4, 4)

    def forward(self, x, extra=None):
        out = self.fc(x)
        for s in self.cfg.scales:
            out = out + s * x
        if extra is not None:
            out = out * extra["gain"]
        return out / (out.norm(dim=-1, keepdim=True) + self.cfg.eps)


def case_export_non_strict_with_dict_input():
    model = load_(NonStrict())
    x, gain = t(2, 4, seed=11), t(2, 4, seed=12)
    ep = export(model, (x,), {"extra": {"gain": gain}}, strict=False)
    m = ep.module()
    return m(x, extra={"gain": gain}), model(x, extra={"gain": gain}), len(ep.graph_signature.user_inputs)


# --- run_decompositions with a custom table --------------------------------------------
def case_run_decompositions_custom_table():
    class Act(nn.Module):
        def forward(self, x):
            return F.hardswish(x) + F.silu(x) * 0.5

    x = t(3, 5, seed=13) * 3
    ep = export(Act(), (x,))
    table = torch.export.default_decompositions()
    aten = torch.ops.aten
    keep = aten.hardswish.default
    if keep in table:
        del table[keep]
    table[aten.silu.default] = lambda v: v * torch.sigmoid(v)
    ep2 = ep.run_decompositions(table)
    ep3 = ep.run_decompositions({})
    return ep2.module()(x), ep3.module()(x), Act()(x), isinstance(table, dict)


# --- save / load ------------------------------------------------------------------------
class Scorer(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.fc = nn.Linear(4, 1)

    def forward(self, ids, weights):
        e = self.emb(ids) * weights.unsqueeze(-1)
        return self.fc(e.sum(1)).squeeze(-1)


def case_export_save_load_buffer_and_file():
    model = load_(Scorer())
    ids = torch.from_numpy(np.array([[1, 2, 3], [4, 5, 9]], dtype=np.int64))
    w = t(2, 3, seed=14)
    batch = Dim("batch", max=32)
    ep = export(model, (ids, w), dynamic_shapes={"ids": {0: batch}, "weights": {0: batch}})
    buf = io.BytesIO()
    torch.export.save(ep, buf)
    buf.seek(0)
    loaded = torch.export.load(buf)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "scorer.pt2")
        torch.export.save(loaded, path)
        again = torch.export.load(path)
    ids3 = torch.from_numpy(np.array([[0, 1, 2], [3, 3, 3], [7, 8, 9]], dtype=np.int64))
    w3 = t(3, 3, seed=15)
    return (loaded.module()(ids, w), again.module()(ids3, w3), model(ids3, w3),
            sorted(again.state_dict), list(again.graph_signature.user_inputs))


# --- AOTInductor packages: several inputs, dynamic batch --------------------------------
class Fusion(nn.Module):
    def __init__(self):
        super().__init__()
        self.img = nn.Linear(8, 6)
        self.txt = nn.Linear(5, 6)
        self.head = nn.Linear(6, 2)

    def forward(self, image, text, mask):
        h = torch.tanh(self.img(image)) + torch.relu(self.txt(text))
        h = h * mask.unsqueeze(-1)
        return self.head(h), h.sum(-1)


def case_aoti_package_three_inputs_dynamic_batch():
    model = load_(Fusion()).eval()
    batch = Dim("batch", min=1, max=64)
    args = (t(4, 8, seed=16), t(4, 5, seed=17), (t(4, seed=18) > 0).float())
    ep = export(model, args, dynamic_shapes={"image": {0: batch}, "text": {0: batch},
                                             "mask": {0: batch}})
    with tempfile.TemporaryDirectory() as tmp:
        path = torch._inductor.aoti_compile_and_package(
            ep, package_path=os.path.join(tmp, "fusion.pt2"))
        runner = torch._inductor.aoti_load_package(path)
        other = (t(7, 8, seed=19), t(7, 5, seed=20), (t(7, seed=21) > 0).float())
        return runner(*args), runner(*other), model(*other)


def case_export_then_load_state_dict_into_module():
    model = load_(Encoder())
    ep = export(model, (t(2, 6, seed=22),))
    m = ep.module()
    fresh = load_(Encoder(), scale=0.1)
    missing = m.load_state_dict(fresh.state_dict())
    x = t(2, 6, seed=23)
    return m(x), fresh(x), sorted(m.state_dict()), list(missing.missing_keys)


# --- re-export an exported module, Dim.DYNAMIC ------------------------------------------
def case_reexport_module_and_dim_dynamic():
    model = load_(Encoder()).eval()
    x = t(3, 6, seed=24)
    ep = export(model, (x,), dynamic_shapes=({0: Dim.DYNAMIC},))
    again = export(ep.module(), (x,), dynamic_shapes=({0: Dim.DYNAMIC},))
    y = t(5, 6, seed=25)
    return (again.module()(y), model(y), sorted(again.state_dict),
            [s.kind.name for s in again.graph_signature.input_specs])


# --- TorchScript of a model with control flow, saved and loaded -------------------------
class Gated(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)])
        self.threshold = 0.0

    def forward(self, x, steps: int = 2):
        for i, layer in enumerate(self.layers):   # TorchScript: no break in this loop
            if i < steps:
                h = layer(x)
                x = torch.where(h > self.threshold, h, 0.1 * h) + x
        return x.sum(-1) if x.dim() > 1 else x


def case_jit_script_control_flow_save_load():
    model = load_(Gated()).eval()
    scripted = torch.jit.script(model)
    buf = io.BytesIO()
    torch.jit.save(scripted, buf)
    buf.seek(0)
    loaded = torch.jit.load(buf)
    x = t(3, 4, seed=26)
    return (loaded(x), loaded(x, 3), model(x, 3), scripted(t(4, seed=27), 1),
            sorted(k for k in loaded.state_dict()))


# --- None and int results, a dynamic dim of size 1 ----------------------------------------
class MaybeAux(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        y = self.fc(x)
        return y, None, y.shape[0]


def case_export_none_and_int_outputs_and_batch_one():
    model = load_(MaybeAux())
    ep = export(model, (t(4, 3, seed=28),), dynamic_shapes=({0: Dim("b", min=1, max=8)},))
    m = ep.module()
    one = t(1, 3, seed=29)
    y, none, n = m(one)
    return y, none is None, int(n), model(one)[0]


def case_aoti_package_with_inductor_configs_and_kwargs():
    model = load_(NonStrict()).eval()
    x, gain = t(3, 4, seed=30), t(3, 4, seed=31)
    ep = export(model, (x,), {"extra": {"gain": gain}})
    with tempfile.TemporaryDirectory() as tmp:
        path = torch._inductor.aoti_compile_and_package(
            ep, package_path=os.path.join(tmp, "ns.pt2"),
            inductor_configs={"max_autotune": False, "freezing": True})
        runner = torch._inductor.aoti_load_package(path)
        return runner(x, extra={"gain": gain}), model(x, extra={"gain": gain})
