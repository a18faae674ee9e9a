"""Idioms from research code: custom autograd Functions, register_buffer tricks,
in-place activations, torch.where with scalars, masked mean pooling, sinusoidal
positional encodings, rotary embeddings, top-p sampling, gumbel tricks, label
utilities and numerics users check."""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def t(*shape, seed=0, scale=1.0):
    return torch.from_numpy((np.random.default_rng(seed).standard_normal(shape) * scale)
                            .astype(np.float32))


class StraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, k):
        ctx.save_for_backward(x)
        ctx.k = k
        return torch.round(x * k) / k

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() < 1).to(grad.dtype), None


def case_custom_function_ste():
    x = t(6, seed=1).requires_grad_()
    y = StraightThrough.apply(x, 4)
    (y * torch.arange(6.0)).sum().backward()
    return y, x.grad, y.grad_fn is not None


def sinusoidal(n, d):
    pe = torch.zeros(n, d)
    position = torch.arange(0, n, dtype=torch.float).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d, 2).float() * (-math.log(10000.0) / d))
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe


def rotary(x, base=10000):
    b, h, n, d = x.shape
    inv_freq = 1.0 / (base ** (torch.arange(0, d, 2).float() / d))
    freqs = torch.einsum("i,j->ij", torch.arange(n).float(), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[None, None], emb.sin()[None, None]
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    rotated = torch.cat((-x2, x1), dim=-1)
    return x * cos + rotated * sin


def case_positional_encodings():
    x = t(1, 2, 5, 4, seed=2)
    freqs = torch.polar(torch.ones(5, 2), torch.outer(torch.arange(5.0), torch.tensor([1.0, 0.1])))
    xc = torch.view_as_complex(x.reshape(1, 2, 5, 2, 2))
    rope_complex = torch.view_as_real(xc * freqs).flatten(3)
    return sinusoidal(6, 4), rotary(x), rope_complex


def top_p_filter(logits, p=0.8):
    sorted_logits, sorted_idx = torch.sort(logits, descending=True)
    cum = torch.cumsum(F.softmax(sorted_logits, dim=-1), dim=-1)
    remove = cum > p
    remove[..., 1:] = remove[..., :-1].clone()
    remove[..., 0] = False
    to_remove = remove.scatter(1, sorted_idx, remove)
    return logits.masked_fill(to_remove, float("-inf"))


def case_sampling_filters():
    logits = t(2, 6, seed=3)
    filtered = top_p_filter(logits)
    probs = F.softmax(filtered, -1)
    g = torch.Generator().manual_seed(0)
    sample = torch.multinomial(probs, 1, generator=g)
    gumbel = F.gumbel_softmax(logits, tau=0.5, hard=True)
    return (filtered, probs, bool(torch.isfinite(filtered.gather(1, sample)).all()),
            gumbel.sum(-1), (gumbel.max(-1).values == 1).all())


def case_masked_mean_and_where_scalars():
    h = t(2, 4, 3, seed=4)
    attention_mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    m = attention_mask.unsqueeze(-1).expand(h.size()).float()
    mean = torch.sum(h * m, 1) / torch.clamp(m.sum(1), min=1e-9)
    w = torch.where(h > 0, h, 0.0)
    w2 = torch.where(attention_mask.bool(), 1, -1)
    ext = (1.0 - attention_mask[:, None, None, :].to(torch.float32)) * torch.finfo(
        torch.float32).min
    return mean, w, w2, w2.dtype, ext, torch.finfo(torch.float16).max, torch.iinfo(
        torch.int8).min, torch.finfo(torch.bfloat16).eps


def case_numerics_users_check():
    x = torch.tensor([1e-45, 1e38, -0.0, 3.0])
    return (torch.isnan(torch.tensor([0.0]) / 0), torch.isinf(x * 10), torch.signbit(x),
            torch.log1p(torch.tensor([1e-8])), torch.expm1(torch.tensor([1e-8])),
            torch.logaddexp(torch.tensor([1000.0]), torch.tensor([1000.0])),
            F.softplus(torch.tensor([100.0, -100.0])), torch.special.logit(
                torch.tensor([0.0, 0.5, 1.0]), eps=1e-6), torch.sigmoid(torch.tensor([-100.0])),
            torch.tensor([2.5, 3.5, -2.5]).round(), torch.tensor([1.2345]).round(decimals=2),
            torch.tensor(7) // torch.tensor(-2), torch.tensor([5.0]).pow(-1),
            torch.tensor([4, 9]).sqrt(), torch.tensor([-8.0]).pow(1 / 3),
            torch.clamp(torch.tensor([1, 5, 9]), min=2.5).dtype)


class RunningNorm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.register_buffer("mean", torch.zeros(d))
        self.register_buffer("count", torch.tensor(0, dtype=torch.long))

    @torch.no_grad()
    def update(self, x):
        self.count += x.shape[0]
        self.mean += (x.mean(0) - self.mean) * x.shape[0] / self.count

    def forward(self, x):
        if self.training:
            self.update(x)
        return x - self.mean


def case_buffers_updated_in_forward():
    rn = RunningNorm(3)
    outs = [rn(t(4, 3, seed=s)) for s in (5, 6)]
    rn.eval()
    outs.append(rn(t(2, 3, seed=7)))
    return outs, rn.mean, rn.count, rn.state_dict()["count"].dtype


def case_inplace_activations_and_views_in_model():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(inplace=True), nn.Dropout(0.0, inplace=True),
                          nn.LeakyReLU(0.1, inplace=True), nn.Linear(4, 2))
    with torch.no_grad():
        for i, p in enumerate(model.parameters()):
            p.copy_(t(*p.shape, seed=10 + i))
    x = t(5, 3, seed=8).requires_grad_()
    out = model(x)
    try:    # ReLU(inplace) then LeakyReLU(inplace): relu's saved output was overwritten
        out.sum().backward()
        error = None
    except RuntimeError as e:
        error = "modified by an inplace operation" in str(e)
    model[3] = nn.LeakyReLU(0.1)
    model.zero_grad()
    out = model(x)
    out.sum().backward()
    y = x.detach().clone()
    F.relu_(y)
    y.sigmoid_().mul_(2).sub_(1)
    return error, out, x.grad, y, [p.grad for p in model.parameters()]
