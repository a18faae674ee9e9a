"""Deployers' torch.export scripts in forms the earlier probes did not cover: Dim with
bounds shared by several inputs and named in a dict keyed by argument name, nested
(tuple / dict) inputs with dynamic dims, Dim.AUTO / Dim.STATIC, calls outside the
range refused, range_constraints read back, an ExportedProgram called directly
(refused as torch refuses), save / load through a bytes buffer with extra files and
then run at a new batch, ep.module() state_dict and load_state_dict, re-exporting the
unlifted module, run_decompositions() of a model with LayerNorm / GELU / SDPA, and
torch.onnx.export(dynamo=False) with dynamic_axes read back by onnxruntime."""
import io
import os
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.export import Dim, export


def t(*shape, seed=0, scale=1.0):
    return torch.from_numpy((np.random.default_rng(seed).standard_normal(shape) * scale)
                            .astype(np.float32))


def load_(model, scale=0.3):
    with torch.no_grad():
        for i, (name, p) in enumerate(sorted(model.named_parameters())):
            p.copy_(t(*p.shape, seed=2300 + i, scale=scale))
    return model


class Pair(nn.Module):
    def __init__(self):
        super().__init__()
        self.q = nn.Linear(8, 8)
        self.k = nn.Linear(8, 8)

    def forward(self, query, key, scale: float = 1.0):
        scores = self.q(query) @ self.k(key).transpose(-1, -2) * scale
        return scores.softmax(-1)


def _error(fn):
    try:
        fn()
    except AssertionError:                 # torch's failed guard
        return "AssertionError"
    except Exception as err:               # noqa: BLE001 - the type is the result
        return type(err).__name__
    return None


def case_dims_shared_and_named_by_argument():
    model = load_(Pair()).eval()
    batch = Dim("batch", min=1, max=16)
    seq_q, seq_k = Dim("seq_q", max=32), Dim("seq_k", max=32)
    ep = export(model, (t(2, 5, 8, seed=1), t(2, 7, 8, seed=2)),
                dynamic_shapes={"query": {0: batch, 1: seq_q}, "key": {0: batch, 1: seq_k}})
    outs = [ep.module()(t(b, sq, 8, seed=b), t(b, sk, 8, seed=sk))
            for b, sq, sk in ((1, 3, 4), (4, 9, 2), (16, 32, 32))]
    refs = [model(t(b, sq, 8, seed=b), t(b, sk, 8, seed=sk))
            for b, sq, sk in ((1, 3, 4), (4, 9, 2), (16, 32, 32))]
    mismatch = _error(lambda: ep.module()(t(2, 3, 8), t(3, 3, 8)))
    too_big = _error(lambda: ep.module()(t(17, 3, 8), t(17, 3, 8)))
    ranges = sorted((r.lower, r.upper) for r in ep.range_constraints.values())
    return outs, refs, mismatch, too_big, ranges, [p.arg.name for p in
                                                   ep.graph_signature.input_specs][-2:]


class Nested(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, inputs, extras):
        a, b = inputs
        return self.fc(a + b) * extras["gain"] + extras["bias"].mean()


def case_nested_inputs_dynamic():
    model = load_(Nested()).eval()
    n = Dim("n")
    args = ((t(3, 4, seed=3), t(3, 4, seed=4)), {"gain": t(3, 1, seed=5), "bias": t(6, seed=6)})
    ep = export(model, args, dynamic_shapes=(({0: n}, {0: n}),
                                             {"gain": {0: n}, "bias": None}))
    new = ((t(5, 4, seed=7), t(5, 4, seed=8)), {"gain": t(5, 1, seed=9), "bias": t(6, seed=10)})
    return ep.module()(*new), model(*new), len(ep.graph_signature.user_inputs)


def case_dim_auto_and_static():
    model = load_(nn.Sequential(nn.Linear(6, 4), nn.GELU())).eval()
    ep = export(model, (t(4, 6, seed=11),), dynamic_shapes=({0: Dim.AUTO, 1: Dim.STATIC},))
    wrong = _error(lambda: ep.module()(t(4, 5)))
    return ep.module()(t(9, 6, seed=12)), model(t(9, 6, seed=12)), wrong


def case_exported_program_called_directly_and_module_state():
    model = load_(Pair()).eval()
    ep = export(model, (t(1, 2, 8), t(1, 2, 8)))
    direct = _error(lambda: ep(t(1, 2, 8), t(1, 2, 8)))
    m = ep.module()
    sd = m.state_dict()
    fresh = load_(Pair(), scale=0.1).eval()
    fresh.load_state_dict(sd)
    m.load_state_dict({k: v * 0 for k, v in sd.items()})
    x, y = t(1, 2, 8, seed=13), t(1, 2, 8, seed=14)
    return direct, sorted(sd), fresh(x, y), m(x, y), sorted(ep.state_dict)


def case_save_load_buffer_extra_files_new_batch():
    model = load_(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))).eval()
    batch = Dim("batch", min=2, max=64)
    ep = export(model, (t(4, 3, 8, 8, seed=15),), dynamic_shapes=({0: batch},))
    buf = io.BytesIO()
    torch.export.save(ep, buf, extra_files={"meta.json": '{"classes": 2}'})
    buf.seek(0)
    extra = {"meta.json": ""}
    loaded = torch.export.load(buf, extra_files=extra)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.pt2")
        torch.export.save(loaded, path)
        again = torch.export.load(path)
    x = t(7, 3, 8, 8, seed=16)
    return loaded.module()(x), again.module()(x), model(x), extra["meta.json"]


def case_reexport_unlifted_module():
    model = load_(Pair()).eval()
    ep = export(model, (t(2, 3, 8), t(2, 3, 8)))
    ep2 = export(ep.module(), (t(2, 3, 8), t(2, 3, 8)))
    x, y = t(2, 3, 8, seed=17), t(2, 3, 8, seed=18)
    return ep2.module()(x, y), model(x, y), sorted(ep2.state_dict)


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = nn.LayerNorm(8)
        self.qkv = nn.Linear(8, 24)
        self.mlp = nn.Sequential(nn.Linear(8, 16), nn.GELU(approximate="tanh"), nn.Linear(16, 8))

    def forward(self, x):
        q, k, v = self.qkv(self.norm(x)).view(x.shape[0], x.shape[1], 3, 2, 4).unbind(2)
        a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                           v.transpose(1, 2), is_causal=True)
        x = x + a.transpose(1, 2).reshape(x.shape)
        return x + self.mlp(x)


def case_run_decompositions_encoder():
    model = load_(Encoder()).eval()
    seq = Dim("seq", min=2, max=16)
    ep = export(model, (t(2, 5, 8, seed=19),), dynamic_shapes=({1: seq},))
    core = ep.run_decompositions()
    x = t(2, 11, 8, seed=20)
    # (torch keeps core ATen ops such as native_layer_norm; ember decomposes to its
    # primitives: the graphs differ, the values do not)
    return core.module()(x), model(x), ep.module()(x)


def case_onnx_dynamic_axes_onnxruntime():
    import onnxruntime as ort
    model = load_(Encoder()).eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "enc.onnx")
        torch.onnx.export(model, (t(1, 4, 8),), path, input_names=["tokens"],
                          output_names=["hidden"], dynamic_axes={"tokens": {0: "b", 1: "s"},
                                                                 "hidden": {0: "b", 1: "s"}},
                          opset_version=17, dynamo=False)
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        x = t(3, 6, 8, seed=21)
        out = session.run(None, {"tokens": x.numpy()})[0]
        shapes = [(i.name, [d if isinstance(d, int) else "dyn" for d in i.shape])
                  for i in session.get_inputs()]
    return np.abs(out - model(x).detach().numpy()).max() < 1e-4, shapes


class TinyGPT(nn.Module):
    """nanoGPT's attention as its repo writes it: positions by arange(T), q @ k^T scores
    masked by a slice of a registered causal buffer, and an SDPA with a triu mask."""

    def __init__(self):
        super().__init__()
        self.tok = nn.Embedding(50, 8)
        self.pos = nn.Embedding(32, 8)
        self.attn = nn.Linear(8, 24)
        self.out = nn.Linear(8, 50)
        self.register_buffer("bias", torch.tril(torch.ones(32, 32)).view(1, 1, 32, 32))

    def forward(self, idx):
        B, T = idx.shape
        pos = torch.arange(0, T, dtype=torch.long, device=idx.device)
        x = self.tok(idx) + self.pos(pos)
        q, k, v = self.attn(x).split(8, dim=2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / 8 ** 0.5)
        att = att.masked_fill(self.bias[0, :, :T, :T] == 0, float("-inf"))
        y = F.softmax(att, dim=-1) @ v
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        y2 = F.scaled_dot_product_attention(q, k, v, attn_mask=~mask)
        return self.out(y + y2)


def case_gpt_dynamic_sequence_length():
    model = load_(TinyGPT()).eval()
    idx = torch.tensor([[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]])
    ep = export(model, (idx,), dynamic_shapes=({1: Dim("T", min=2, max=31)},))
    buf = io.BytesIO()
    torch.export.save(ep, buf)
    buf.seek(0)
    loaded = torch.export.load(buf)
    outs = []
    for T in (3, 7, 31):
        ids = torch.arange(2 * T).view(2, T) % 50
        outs += [ep.module()(ids), loaded.module()(ids), model(ids)]
    return outs


def case_gpt_onnx_dynamic_sequence_onnxruntime():
    import onnxruntime as ort
    model = load_(TinyGPT()).eval()
    buf = io.BytesIO()
    torch.onnx.export(model, (torch.tensor([[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]]),), buf,
                      input_names=["idx"], output_names=["logits"],
                      dynamic_axes={"idx": {1: "T"}, "logits": {1: "T"}}, opset_version=18,
                      dynamo=False)
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    errors = []
    for T in (3, 9):
        ids = torch.arange(2 * T).view(2, T) % 50
        got = session.run(None, {"idx": ids.numpy()})[0]
        errors.append(float(np.abs(got - model(ids).detach().numpy()).max()) < 1e-4)
    return errors
