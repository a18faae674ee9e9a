"""Tensor idioms and nn utilities in plain PyTorch: advanced-index assignment, einsum
forms, where with scalars, in-place ops on views, .data / detach patterns, type
promotion with Python scalars, grad-mode nesting, printing and set_printoptions,
testing.assert_close, parametrize (custom, weight_norm, spectral_norm, orthogonal),
packed LSTM/GRU sequences, nn.init on every layer."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm, spectral_norm, orthogonal
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence, pad_sequence, pack_sequence

def W(*shape, seed=0):
    return torch.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))

def case_adv_index_assign():
    x = torch.zeros(4, 5)
    x[[0, 2], 1:3] = torch.tensor([1., 2.])
    x[x > 1] = -1
    idx = torch.tensor([[0], [3]])
    x[idx, torch.tensor([0, 4])] = 7.
    y = torch.arange(24.).view(2, 3, 4)
    y[..., [0, 3]] *= 2
    y[:, torch.tensor([True, False, True])] += 1
    m = torch.zeros(3, 3); m[torch.arange(3), torch.arange(3)] = torch.tensor([1., 2., 3.])
    return [x, y, m]

def case_einsum():
    a, b = W(2, 3, 4), W(2, 4, 5, seed=1)
    return [torch.einsum("bij,bjk->bik", a, b), torch.einsum("bij->j", a), torch.einsum("ii", W(3, 3)),
            torch.einsum("i,j->ij", W(3), W(4)), torch.einsum("...ij,...jk", a, b), torch.einsum("bij,bij->b", [a, a]),
            torch.einsum("b i j, b j k -> b i k", a, b)]

def case_where_scalars():
    x = W(3, 4)
    return [torch.where(x > 0, x, 0.), torch.where(x > 0, 1, 0), torch.where(x > 0, 1.5, x),
            torch.where(x > 0)[1], str(torch.where(x > 0, 1, 0).dtype), str(torch.where(x > 0, 2.0, 0).dtype)]

def case_inplace_views():
    x = torch.arange(12.).view(3, 4)
    v = x[1]; v.mul_(10)
    x.t()[0].fill_(-1)
    d = x.diagonal(); d.add_(100)
    x[:, 1:3].clamp_(max=50)
    u = x.unsqueeze(0); u.squeeze_(0)
    return [x, u.shape == x.shape]

def case_data_detach_patterns():
    w = W(3, 3).requires_grad_()
    loss = (w * 2).sum(); loss.backward()
    w.data.sub_(0.1 * w.grad)
    g = w.grad.clone(); w.grad.zero_()
    y = w * 3; z = y.detach_() if False else y.detach()
    z.add_(1)
    p = torch.ones(2, requires_grad=True)
    q = p.data; q.mul_(5)
    r = torch.zeros(2).requires_grad_(True)
    s = (r + 1).detach_()
    return [w, g, z, p, p.requires_grad, s.requires_grad, y.requires_grad, w.grad, w.is_leaf, y.grad_fn is not None]

def case_promotion():
    i = torch.tensor([1, 2, 3]); f16 = torch.ones(2, dtype=torch.float16); b = torch.tensor([True, False])
    outs = [i * 2.5, i / 2, i // 2, i + True, b + 1, b * 1.5, f16 * 2.0, f16 + torch.tensor(2.0, dtype=torch.float64),
            i + torch.tensor(1.5), torch.tensor(3, dtype=torch.uint8) + 300 if False else i ** 2, i ** 0.5, 2 ** i, i.float() ** i,
            torch.tensor([1, 2], dtype=torch.int32) + torch.tensor(5), torch.tensor([1, 2], dtype=torch.int8) * 2]
    return [str(o.dtype) .replace("torch.", "") for o in outs] + [o for o in outs]

def case_grad_modes():
    x = torch.ones(2, requires_grad=True)
    with torch.no_grad():
        a = x * 2
        with torch.enable_grad():
            b = x * 2
            with torch.inference_mode():
                c = x * 2
        d = x * 2
    with torch.set_grad_enabled(False):
        e = x * 2
    torch.set_grad_enabled(True)
    @torch.no_grad()
    def f(t): return t * 2
    @torch.inference_mode()
    def g(t): return t * 2
    return [a.requires_grad, b.requires_grad, c.requires_grad, d.requires_grad, e.requires_grad, f(x).requires_grad,
            g(x).requires_grad, torch.is_grad_enabled(), torch.is_inference_mode_enabled(),
            c.is_inference(), a.is_inference(), x.is_inference(), c[0:1].is_inference(), c.clone().is_inference()]

def case_printing():
    out = [repr(torch.tensor([1.5, 2.25, -3.0])), repr(torch.tensor([1e-8, 1.0, 1e8])), repr(torch.arange(5)),
           str(torch.tensor([[1., 2.], [3., 4.]], requires_grad=True)), repr(torch.tensor(3.5)), repr(torch.zeros(2, dtype=torch.float64)),
           repr(torch.tensor([True, False])), repr(torch.ones(2, dtype=torch.int32)), repr(torch.empty(0)), repr(torch.tensor([float('nan'), float('inf'), 1.0])),
           repr(torch.tensor([0.1, 0.123456789])), repr(torch.arange(2000.)), repr(torch.ones(2, 3) * 1e-5)]
    torch.set_printoptions(precision=2)
    out.append(repr(torch.tensor([1.23456, 2.5])))
    torch.set_printoptions(sci_mode=True)
    out.append(repr(torch.tensor([1.23456, 2.5])))
    torch.set_printoptions(profile="default")
    out.append(repr(torch.tensor([1.23456, 2.5])))
    torch.set_printoptions(threshold=5, edgeitems=1)
    out.append(repr(torch.arange(10)))
    torch.set_printoptions(profile="default")
    x = torch.ones(2, requires_grad=True) * 2
    out.append(repr(x).replace("MulBackward0", "X"))
    out.append(repr(torch.ones(2, dtype=torch.float16)))
    out.append(repr(torch.ones(2, dtype=torch.bfloat16)))
    out.append(repr(torch.tensor([1+2j])))
    out.append(repr(torch.tensor([[1e-3, 12345.6]])))
    return [s.replace("torch", "T").replace("ember", "T") for s in out]

def case_assert_close():
    res = []
    torch.testing.assert_close(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0 + 1e-7]))
    try:
        torch.testing.assert_close(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.1]))
        res.append("no error")
    except AssertionError as e:
        res.append("error")
    try:
        torch.testing.assert_close(torch.tensor([1, 2]), torch.tensor([1., 2.]))
    except (AssertionError, TypeError) as e:
        res.append(type(e).__name__)
    torch.testing.assert_close(torch.tensor([1, 2]), torch.tensor([1., 2.]), check_dtype=False)
    torch.testing.assert_close({"a": [torch.ones(1)]}, {"a": [torch.ones(1)]})
    torch.testing.assert_close(1.0, 1.0 + 1e-9)
    torch.testing.assert_close(torch.tensor([float('nan')]), torch.tensor([float('nan')]), equal_nan=True)
    torch.testing.assert_close(torch.tensor([1.0]), torch.tensor([1.05]), rtol=0.1, atol=0)
    return res

def case_parametrize():
    torch.manual_seed(0)
    lin = nn.Linear(4, 3); lin.weight.data = W(3, 4); lin.bias.data = W(3, seed=2)
    class Sym(nn.Module):
        def forward(self, X): return X.triu() + X.triu(1).transpose(-1, -2)
    sq = nn.Linear(3, 3); sq.weight.data = W(3, 3, seed=3); sq.bias.data = W(3, seed=4)
    parametrize.register_parametrization(sq, "weight", Sym())
    res = [sq.weight, parametrize.is_parametrized(sq), sorted(n for n, _ in sq.named_parameters()), type(sq).__name__]
    wn = weight_norm(lin)
    res += [wn.weight, sorted(wn.state_dict().keys()), wn.parametrizations.weight.original0]
    x = W(2, 4, seed=5)
    out = wn(x); out.sum().backward()
    res += [out, wn.parametrizations.weight.original1.grad]
    parametrize.remove_parametrizations(sq, "weight")
    res += [sq.weight, sorted(n for n, _ in sq.named_parameters()), type(sq).__name__]
    with parametrize.cached():
        res.append(wn(x))
    o = orthogonal(nn.Linear(4, 4))
    q = o.weight
    res.append((q @ q.T - torch.eye(4)).abs().max().item() < 1e-5)
    return res

def case_old_weight_norm():
    lin = nn.Linear(4, 3); lin.weight.data = W(3, 4); lin.bias.data = W(3, seed=2)
    m = nn.utils.weight_norm(lin, name="weight", dim=0)
    x = W(2, 4, seed=5)
    res = [m(x), sorted(m.state_dict().keys()), m.weight_g]
    nn.utils.remove_weight_norm(m)
    res += [sorted(m.state_dict().keys()), m(x)]
    return res

def case_spectral_norm_eval():
    lin = nn.Linear(5, 4); lin.weight.data = W(4, 5); lin.bias.data = W(4, seed=2)
    sn = spectral_norm(lin, n_power_iterations=30)
    sn.train()
    for _ in range(3): sn(W(2, 5, seed=7))
    sv = torch.linalg.matrix_norm(sn.weight.detach(), ord=2).item()
    return [abs(sv - 1.0) < 1e-3, sorted(sn.state_dict().keys())]

def case_rnn_packing():
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 4, num_layers=2, batch_first=True, bidirectional=True)
    gru = nn.GRU(3, 4, batch_first=False)
    for i, p in enumerate(list(lstm.parameters()) + list(gru.parameters())):
        p.data = W(*p.shape, seed=10 + i) * 0.3
    seqs = [W(5, 3, seed=1), W(2, 3, seed=2), W(4, 3, seed=3)]
    lengths = torch.tensor([5, 2, 4])
    padded = pad_sequence(seqs, batch_first=True)
    packed = pack_padded_sequence(padded, lengths, batch_first=True, enforce_sorted=False)
    out, (h, c) = lstm(packed)
    unpacked, lens = pad_packed_sequence(out, batch_first=True, total_length=6)
    ps = pack_sequence([seqs[0], seqs[2], seqs[1]])
    gout, gh = gru(ps)
    gun, glens = pad_packed_sequence(gout)
    unpacked.sum().backward()
    return [unpacked, lens, h, c, packed.batch_sizes, packed.sorted_indices, gun, glens, gh, ps.data, lstm.weight_ih_l0.grad]

def case_init_all():
    torch.manual_seed(0)
    layers = [nn.Linear(20, 30), nn.Conv2d(3, 8, 3), nn.Conv1d(4, 4, 5), nn.Embedding(10, 6), nn.LSTM(4, 6)]
    stats = []
    for l in layers:
        for name, p in l.named_parameters():
            if p.dim() >= 2:
                nn.init.kaiming_normal_(p, mode="fan_out", nonlinearity="relu")
                stats.append(round(p.std().item(), 1))
                nn.init.xavier_uniform_(p, gain=nn.init.calculate_gain("tanh"))
                stats.append(p.abs().max().item() <= (nn.init.calculate_gain("tanh") * (6 / sum(nn.init._calculate_fan_in_and_fan_out(p))) ** .5) + 1e-6)
                nn.init.trunc_normal_(p, std=0.02, a=-0.04, b=0.04)
                stats.append(p.abs().max().item() <= 0.04)
                nn.init.orthogonal_(p)
                nn.init.kaiming_uniform_(p, a=5 ** 0.5)
                nn.init.uniform_(p, -0.1, 0.1); nn.init.normal_(p, 0, 0.01)
            else:
                nn.init.zeros_(p); nn.init.ones_(p); nn.init.constant_(p, 0.5)
                stats.append(p.sum().item())
    e = torch.empty(3, 3); nn.init.eye_(e); d = torch.empty(2, 2, 3); nn.init.dirac_(d)
    s = torch.empty(10, 10); nn.init.sparse_(s, 0.5)
    stats += [e, d, (s == 0).sum(0).tolist(), nn.init.calculate_gain("leaky_relu", 0.2), nn.init.calculate_gain("selu")]
    return stats
