"""More everyday idioms: hooks, strict=False loading, gradient penalties, weight and
spectral norm, channels_last, distributions, vmap/grad, transformer padding masks,
scatter_reduce / searchsorted / bucketize / isin, half / bfloat16 inference."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.distributions import Categorical, Normal, kl_divergence
from torch.func import functional_call, grad, vmap


def t(*shape, seed=0, scale=1.0):
    return torch.from_numpy((np.random.default_rng(seed).standard_normal(shape) * scale)
                            .astype(np.float32))


def load_(model, scale=0.3):
    with torch.no_grad():
        for i, (name, p) in enumerate(sorted(model.named_parameters())):
            p.copy_(t(*p.shape, seed=400 + i, scale=scale))
    return model


def case_hooks():
    model = load_(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)))
    feats, grads = {}, []
    h1 = model[0].register_forward_hook(lambda m, i, o: feats.__setitem__("fc1", o.detach()))
    h2 = model[2].register_full_backward_hook(lambda m, gi, go: grads.append(go[0].clone()))
    h3 = model[0].register_forward_pre_hook(lambda m, args: (args[0] * 2,))
    x = t(5, 4, seed=1).requires_grad_()
    x.register_hook(lambda g: g * 0.5)
    out = model(x)
    out.sum().backward()
    for h in (h1, h2, h3):
        h.remove()
    return feats["fc1"], grads, x.grad, model(x), len(model[0]._forward_hooks)


def case_load_state_dict_strict_false():
    src = load_(nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2)))
    dst = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2), nn.Linear(2, 2))
    state = {k: v for k, v in src.state_dict().items() if k != "1.bias"}
    state["extra.weight"] = torch.ones(1)
    result = dst.load_state_dict(state, strict=False)
    try:
        dst.load_state_dict({"0.weight": torch.ones(2, 2)}, strict=False)
        err = None
    except RuntimeError as e:
        err = "size mismatch for 0.weight" in str(e)
    return (result.missing_keys, result.unexpected_keys, repr(result), dst[0].weight, err)


def case_gradient_penalty():
    D = load_(nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)))
    real, fake = t(4, 3, seed=2), t(4, 3, seed=3)
    alpha = torch.from_numpy(np.linspace(0, 1, 4, dtype=np.float32)).view(4, 1)
    inter = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    d = D(inter)
    grads = torch.autograd.grad(outputs=d, inputs=inter, grad_outputs=torch.ones_like(d),
                                create_graph=True, retain_graph=True)[0]
    gp = ((grads.norm(2, dim=1) - 1) ** 2).mean()
    gp.backward()
    return gp, [p.grad for p in D.parameters()]


def case_weight_and_spectral_norm():
    lin = load_(nn.Linear(4, 3))
    wn = nn.utils.parametrizations.weight_norm(lin, name="weight", dim=0)
    x = t(2, 4, seed=4)
    out = wn(x)
    names = sorted(n for n, _ in wn.named_parameters())
    removed = nn.utils.parametrize.remove_parametrizations(wn, "weight")
    sn = nn.utils.spectral_norm(load_(nn.Linear(4, 3)), n_power_iterations=30)
    sn.eval()
    sigma = torch.linalg.matrix_norm(sn.weight_orig.detach(), ord=2)
    return out, names, removed(x), torch.allclose(sn.weight, sn.weight_orig / sigma,
                                                  atol=1e-3)


def case_channels_last():
    conv = load_(nn.Conv2d(3, 4, 3, padding=1))
    x = t(2, 3, 5, 5, seed=5)
    conv = conv.to(memory_format=torch.channels_last)
    xc = x.to(memory_format=torch.channels_last)
    out = conv(xc)
    return (out, xc.is_contiguous(), xc.is_contiguous(memory_format=torch.channels_last),
            xc.stride(), conv.weight.is_contiguous(memory_format=torch.channels_last))


def case_distributions():
    mu, sigma = t(3, seed=6), t(3, seed=7).exp()
    normal = Normal(mu, sigma)
    x = t(3, seed=8)
    cat = Categorical(logits=t(4, seed=9))
    return (normal.log_prob(x), normal.entropy(), cat.probs, cat.log_prob(torch.tensor(2)),
            cat.entropy(), kl_divergence(normal, Normal(torch.zeros(3), torch.ones(3))),
            normal.mean, normal.stddev, normal.batch_shape, cat.sample().shape)


def case_func_vmap_grad():
    model = load_(nn.Linear(3, 1))
    params = {k: v.detach() for k, v in model.named_parameters()}
    x, y = t(4, 3, seed=10), t(4, 1, seed=11)

    def loss(p, xi, yi):
        return F.mse_loss(functional_call(model, p, (xi.unsqueeze(0),)), yi.unsqueeze(0))
    per_sample = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)
    batched = vmap(torch.dot)(x, x)
    return per_sample["weight"], per_sample["bias"], batched


def case_transformer_padding_masks():
    layer = nn.TransformerEncoderLayer(d_model=8, nhead=2, dim_feedforward=16, dropout=0.0,
                                       batch_first=True, norm_first=True)
    enc = load_(nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False))
    enc.eval()
    x = t(2, 4, 8, seed=12)
    pad = torch.tensor([[False, False, True, True], [False, False, False, False]])
    causal = nn.Transformer.generate_square_subsequent_mask(4)
    out = enc(x, mask=causal, src_key_padding_mask=pad)
    mha = load_(nn.MultiheadAttention(8, 2, batch_first=True))
    o, w = mha(x, x, x, key_padding_mask=pad, need_weights=True, average_attn_weights=True)
    o2, w2 = mha(x, x, x, attn_mask=causal.bool() if False else None,
                 need_weights=True, average_attn_weights=False)
    return out[:, :2], causal, o, w, w2.shape


def case_scatter_search_isin():
    src = torch.tensor([1.0, 5.0, 2.0, 8.0, 3.0])
    index = torch.tensor([0, 1, 0, 1, 2])
    amax = torch.zeros(3).scatter_reduce(0, index, src, reduce="amax", include_self=False)
    mean = torch.ones(3).scatter_reduce(0, index, src, reduce="mean")
    edges = torch.tensor([0.0, 2.0, 4.0, 6.0])
    vals = torch.tensor([-1.0, 2.0, 3.5, 7.0])
    return (amax, mean, torch.searchsorted(edges, vals), torch.searchsorted(edges, vals,
            right=True), torch.bucketize(vals, edges), torch.isin(index, torch.tensor([1, 2])),
            torch.histc(src, bins=4, min=0, max=8), torch.nan_to_num(
                torch.tensor([float("nan"), float("inf"), -1.0]), nan=0.0, posinf=9.0),
            torch.sort(torch.tensor([2, 1, 2, 1, 0]), stable=True),
            F.one_hot(index, num_classes=4), torch.cdist(t(3, 2, seed=13), t(4, 2, seed=14)))


def case_half_and_bf16_inference():
    model = load_(nn.Sequential(nn.Linear(4, 6), nn.GELU(), nn.LayerNorm(6), nn.Linear(6, 2)))
    x = t(3, 4, seed=15)
    outs = []
    for dtype in (torch.bfloat16, torch.float16, torch.float64):
        m = load_(nn.Sequential(nn.Linear(4, 6), nn.GELU(), nn.LayerNorm(6),
                                nn.Linear(6, 2))).to(dtype)
        with torch.no_grad():
            y = m(x.to(dtype))
        outs.append((y.dtype, m[0].weight.dtype,
                     torch.allclose(y.double(), model(x).double(), atol=5e-2)))
    return outs, model.half()[0].weight.dtype, model.float()[0].weight.dtype


def case_new_tensors_and_factories():
    x = t(2, 3, seed=16).double()
    return (x.new_zeros(2), x.new_ones((1, 2)), x.new_tensor([1, 2]), x.new_full((2,), 3),
            x.new_empty(3).shape, torch.full_like(x, 7, dtype=torch.int32),
            torch.zeros_like(x, dtype=torch.bool), torch.tensor([torch.tensor(1.5),
                                                                   torch.tensor(2.5)]),
            torch.stack([torch.tensor(1), torch.tensor(2)]), torch.as_tensor([1, 2.5]),
            torch.arange(0, 1, 0.25), torch.linspace(0, 1, 5), torch.eye(2, 3),
            torch.empty(2, 0).shape, torch.tensor([]).dtype, torch.tensor([[]]).shape)


def case_optimizer_add_param_group_and_state():
    a = load_(nn.Linear(2, 2))
    b = load_(nn.Linear(2, 1))
    opt = torch.optim.SGD(a.parameters(), lr=0.1, momentum=0.9)
    opt.add_param_group({"params": b.parameters(), "lr": 0.01})
    x = t(3, 2, seed=17)
    for _ in range(2):
        opt.zero_grad()
        b(a(x)).sum().backward()
        opt.step()
    sd = opt.state_dict()
    return ([g["lr"] for g in opt.param_groups], [g["params"] for g in sd["param_groups"]],
            sorted(sd["state"]), sd["state"][0]["momentum_buffer"], repr(opt).splitlines())
