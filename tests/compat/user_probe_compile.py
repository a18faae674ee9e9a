"""torch.compile as users call it on whole models: a GPT block, a conv net with
BatchNorm / GroupNorm, an LSTM classifier, under CPU bf16 autocast, with backward, on
functions with Python control flow and .item() graph breaks, torch.compiler.disable,
and compiled optimizer steps."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def t(*shape, seed=0, scale=1.0):
    return torch.from_numpy((np.random.default_rng(seed).standard_normal(shape) * scale)
                            .astype(np.float32))


def load_(model, scale=0.3):
    with torch.no_grad():
        for i, (name, p) in enumerate(sorted(model.named_parameters())):
            p.copy_(t(*p.shape, seed=500 + i, scale=scale))
    return model


class Attn(nn.Module):
    def __init__(self, d=8, h=2):
        super().__init__()
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 16), nn.GELU(), nn.Linear(16, d))
        self.h = h

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln(x)).chunk(3, dim=-1)
        q, k, v = (z.view(B, T, self.h, C // self.h).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.mlp(self.ln(x))


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.gn = nn.GroupNorm(4, 8)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        x = F.silu(self.bn(self.c1(x)))
        x = F.max_pool2d(F.relu(self.gn(self.c2(x))), 2)
        return self.fc(x.mean((2, 3)))


def _compare(model, x, autocast=False):
    compiled = torch.compile(model)
    if autocast:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got, want = compiled(x), model(x)
        return got.dtype, torch.allclose(got.float(), want.float(), atol=5e-2, rtol=5e-2)
    got = compiled(x)
    got.sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    return got, grads


def case_compile_attention_block():
    return _compare(load_(Attn()), t(2, 5, 8, seed=1))


def case_compile_attention_block_bf16():
    return _compare(load_(Attn()), t(2, 5, 8, seed=1), autocast=True)


def case_compile_convnet_train_and_eval():
    model = load_(ConvNet())
    x = t(2, 3, 8, 8, seed=2)
    train = _compare(model, x)
    model.eval()
    with torch.no_grad():
        ev = torch.compile(model)(x)
    return train, ev, model.bn.running_mean, model.bn.num_batches_tracked


def case_compile_convnet_bf16():
    return _compare(load_(ConvNet()).eval(), t(2, 3, 8, 8, seed=2), autocast=True)


class LSTMClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.lstm = nn.LSTM(4, 6, batch_first=True)
        self.fc = nn.Linear(6, 2)

    def forward(self, tokens):
        out, (h, c) = self.lstm(self.emb(tokens))
        return self.fc(h[-1]) + out.mean(1).sum(-1, keepdim=True)


def case_compile_lstm_classifier():
    tokens = torch.from_numpy(np.random.default_rng(3).integers(0, 10, (3, 5)))
    return _compare(load_(LSTMClassifier()), tokens)


def case_compile_python_control_flow_and_item():
    @torch.compile
    def f(x, n: int, flag: bool):
        for _ in range(n):
            x = x * 2 if flag else x - 1
        if x.sum() > 0:
            x = x.relu()
        scale = x.abs().max().item()
        return x / (scale + 1.0), scale

    x = t(4, seed=4)
    return f(x, 2, True), f(x, 3, False), f(-x.abs(), 1, True)


def case_compiler_disable_and_dynamic_shapes():
    @torch.compiler.disable
    def host_side(x):
        return x.numpy().sum().item() if False else float(x.sum())

    def g(x):
        return torch.tanh(x) * host_side(x)

    cg = torch.compile(g, dynamic=True)
    return [cg(t(n, seed=n)) for n in (3, 5, 7)]


def case_compiled_optimizer_step():
    model = load_(nn.Linear(4, 2))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)

    @torch.compile(fullgraph=False)
    def step():
        opt.step()

    x = t(3, 4, seed=5)
    for _ in range(3):
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        step()
    return [p.detach() for p in model.parameters()]


def case_compile_module_method():
    model = load_(ConvNet()).eval()
    model.compile()
    with torch.inference_mode():
        out = model(t(1, 3, 6, 6, seed=6))
    return out, type(model).__name__


class Mixed(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 8)
        self.gru = nn.GRU(8, 8, batch_first=True)
        self.norm = nn.RMSNorm(8) if hasattr(nn, "RMSNorm") else nn.LayerNorm(8)
        self.head = nn.Linear(8, 4)

    def forward(self, tokens):
        h, _ = self.gru(self.emb(tokens))
        with torch.autocast("cpu", enabled=False):
            h = self.norm(h.float())
        logits = self.head(h)
        return F.log_softmax(logits, -1), torch.logsumexp(logits, -1), logits.float().var(-1)


def case_compile_nested_autocast_recurrent():
    model = load_(Mixed()).eval()
    tokens = torch.from_numpy(np.random.default_rng(7).integers(0, 10, (2, 5)))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        eager = model(tokens)
        compiled = torch.compile(model)(tokens)
    return ([o.dtype for o in compiled], [o.dtype for o in eager],
            [torch.allclose(a.float(), b.float(), atol=5e-2, rtol=5e-2)
             for a, b in zip(compiled, eager)])
