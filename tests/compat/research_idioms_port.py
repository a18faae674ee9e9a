"""Research idioms in plain PyTorch: custom autograd Functions (once_differentiable,
mark_non_differentiable, setup_context), distributions (squashed Gaussians, KL,
MultivariateNormal, Independent), per-sample gradients with functional_call / vmap /
grad and autograd.functional, MultiheadAttention / Transformer masks, a spatial
transformer (affine_grid, grid_sample modes), kNN / unique / searchsorted, pruning,
checkpoints with weights_only, CPU autocast, sparse adjacency products."""
import io, math
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd import Function
from torch.autograd.function import once_differentiable
from torch.func import functional_call, vmap, grad
import torch.distributions as D
import torch.nn.utils.prune as prune


# ---- misc
def W(*shape, seed=0):
    return torch.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))

class Clamp(Function):
    @staticmethod
    def forward(ctx, x, lo, hi):
        ctx.save_for_backward(x)
        ctx.lo, ctx.hi = lo, hi
        return x.clamp(lo, hi)
    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        x, = ctx.saved_tensors
        mask = (x >= ctx.lo) & (x <= ctx.hi)
        return g * mask, None, None

class SortWithIdx(Function):
    @staticmethod
    def forward(ctx, x):
        v, i = x.sort(dim=-1)
        ctx.mark_non_differentiable(i)
        ctx.save_for_backward(i)
        return v, i
    @staticmethod
    def backward(ctx, gv, gi):
        i, = ctx.saved_tensors
        return torch.zeros_like(gv).scatter(-1, i, gv)

class Scale(Function):
    @staticmethod
    def forward(x, k): return x * k
    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.k = inputs[1]
    @staticmethod
    def backward(ctx, g): return g * ctx.k, None

def case_custom_functions():
    x = W(3, 4).requires_grad_()
    y = Clamp.apply(x, -0.5, 0.5)
    v, i = SortWithIdx.apply(x * 2)
    z = Scale.apply(x, 3.0)
    (y.sum() + (v * torch.arange(4.)).sum() + z.sum()).backward()
    return [y, v, i, x.grad, i.requires_grad, v.requires_grad]

def case_distributions():
    logits = W(4, 5)
    c = D.Categorical(logits=logits)
    n = D.Normal(W(3), torch.ones(3) * 0.5)
    mvn = D.MultivariateNormal(torch.zeros(2), scale_tril=torch.tensor([[1., 0.], [0.5, 2.]]))
    b = D.Bernoulli(probs=torch.tensor([0.2, 0.9]))
    ind = D.Independent(D.Normal(torch.zeros(2, 3), torch.ones(2, 3)), 1)
    act = torch.tensor([0, 4, 2, 1])
    torch.manual_seed(0)
    s = n.rsample((2,))
    return [c.log_prob(act), c.entropy(), c.probs, n.log_prob(W(3, seed=1)), n.entropy(), D.kl_divergence(n, D.Normal(torch.zeros(3), torch.ones(3))),
            mvn.log_prob(torch.tensor([0.3, -1.])), mvn.entropy(), b.log_prob(torch.tensor([1., 0.])), ind.log_prob(torch.ones(2, 3)),
            ind.event_shape, ind.batch_shape, s.shape, c.sample((7,)).shape, D.Beta(2., 3.).mean, D.Gamma(torch.tensor(2.), torch.tensor(3.)).log_prob(torch.tensor(0.5)),
            D.Categorical(probs=torch.tensor([0.1, 0.9])).log_prob(torch.tensor(1)), D.Uniform(0., 2.).cdf(torch.tensor(0.5)),
            D.TransformedDistribution(D.Normal(0., 1.), [D.transforms.ExpTransform()]).log_prob(torch.tensor(2.0)),
            D.Normal(0., 1.).icdf(torch.tensor(0.975))]

def case_per_sample_grads():
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    with torch.no_grad():
        for i, p in enumerate(model.parameters()): p.copy_(W(*p.shape, seed=i))
    params = {k: v.detach() for k, v in model.named_parameters()}
    def loss(p, x, y):
        out = functional_call(model, p, (x.unsqueeze(0),))
        return F.cross_entropy(out, y.unsqueeze(0))
    xs, ys = W(5, 3, seed=9), torch.tensor([0, 1, 1, 0, 1])
    g = vmap(grad(loss), in_dims=(None, 0, 0))(params, xs, ys)
    jac = torch.autograd.functional.jacobian(lambda x: model(x).sum(0), xs[:2])
    hes = torch.autograd.functional.hessian(lambda x: (x ** 3).sum(), xs[0])
    return [g["0.weight"], g["2.bias"], jac, hes]

def case_transformer_masks():
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(8, 2, batch_first=True)
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True, norm_first=True), 2, enable_nested_tensor=False)
    dec = nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    for m in (mha, enc, dec):
        with torch.no_grad():
            for i, p in enumerate(m.parameters()): p.copy_(W(*p.shape, seed=i) * 0.3)
    x = W(2, 5, 8, seed=20); mem = W(2, 3, 8, seed=21)
    kpm = torch.tensor([[False] * 5, [False, False, False, True, True]])
    causal = nn.Transformer.generate_square_subsequent_mask(5)
    o, w = mha(x, x, x, key_padding_mask=kpm, need_weights=True, average_attn_weights=False)
    o2, _ = mha(x, x, x, attn_mask=causal.bool() if False else causal, is_causal=False)
    e = enc(x, mask=causal, src_key_padding_mask=kpm)
    d = dec(x, mem, tgt_mask=causal, tgt_is_causal=True, memory_key_padding_mask=torch.tensor([[False, False, True], [False, False, False]]))
    return [o, w, o2, e, d, causal]

def case_stn_grid_sample():
    theta = torch.tensor([[[0.9, 0.1, 0.05], [-0.1, 1.1, 0.0]]]).repeat(2, 1, 1)
    img = W(2, 3, 8, 8)
    grid = F.affine_grid(theta, img.size(), align_corners=False)
    out = [F.grid_sample(img, grid, align_corners=False)]
    for mode in ("bilinear", "nearest"):
        for pad in ("zeros", "border", "reflection"):
            out.append(F.grid_sample(img, grid * 1.3, mode=mode, padding_mode=pad, align_corners=True))
    return out

def case_knn_unique_search():
    a, b = W(6, 3), W(4, 3, seed=1)
    d = torch.cdist(a, b)
    vals, idx = d.topk(2, dim=1, largest=False)
    labels = torch.tensor([0, 1, 1, 2])
    votes = labels[idx]
    u, inv, cnt = torch.unique(torch.tensor([3, 1, 3, 2, 1, 3]), return_inverse=True, return_counts=True)
    uc = torch.unique_consecutive(torch.tensor([1, 1, 2, 2, 3, 1]), return_counts=True)
    bk = torch.bucketize(torch.tensor([0.1, 0.5, 2.0]), torch.tensor([0.0, 0.5, 1.0]), right=True)
    ss = torch.searchsorted(torch.tensor([[1, 3, 5], [2, 4, 6]]), torch.tensor([[3], [5]]), side="left")
    nz = torch.nonzero(torch.tensor([[0, 1], [1, 1]]), as_tuple=True)
    h = torch.histc(torch.tensor([1., 2., 1., 4.]), bins=4, min=0, max=4)
    mode = torch.mode(torch.tensor([1, 2, 2, 3])).values
    return [d, vals, idx, votes, u, inv, cnt, uc[0], uc[1], bk, ss, nz[0], nz[1], h, mode, torch.kthvalue(a, 2, dim=0).values]

def case_prune():
    lin = nn.Linear(4, 3)
    with torch.no_grad(): lin.weight.copy_(W(3, 4)); lin.bias.copy_(W(3, seed=1))
    prune.l1_unstructured(lin, "weight", amount=0.5)
    prune.ln_structured(lin, "weight", amount=1, n=2, dim=0)
    keys = sorted(lin.state_dict().keys())
    out = lin(W(2, 4, seed=3))
    prune.remove(lin, "weight")
    return [keys, out, lin.weight, sorted(lin.state_dict().keys()), prune.is_pruned(lin)]

def case_save_load_module():
    m = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    with torch.no_grad(): m[0].weight.copy_(W(3, 2))
    buf = io.BytesIO()
    torch.save({"model": m.state_dict(), "epoch": 3, "opt": torch.optim.Adam(m.parameters()).state_dict(), "rng": torch.get_rng_state()}, buf)
    buf.seek(0)
    ck = torch.load(buf, map_location="cpu", weights_only=True)
    m2 = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3)); m2.load_state_dict(ck["model"])
    torch.set_rng_state(ck["rng"])
    buf2 = io.BytesIO(); torch.save(m, buf2); buf2.seek(0)
    m3 = torch.load(buf2, weights_only=False)
    return [m2[0].weight, ck["epoch"], sorted(ck["opt"].keys()), ck["opt"]["param_groups"][0]["lr"], m3[0].weight, type(m3).__name__]

def case_autocast_cpu():
    lin = nn.Linear(4, 4)
    with torch.no_grad(): lin.weight.copy_(W(4, 4)); lin.bias.zero_()
    x = W(2, 4, seed=1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = lin(x)
        s = y.float().softmax(-1)
        z = torch.mm(x, x.t())
    with torch.autocast(device_type="cpu", enabled=False):
        q = lin(x)
    return [str(y.dtype), str(s.dtype), str(z.dtype), str(q.dtype), y.float(), torch.is_autocast_enabled("cpu") if hasattr(torch, "is_autocast_enabled") else False]

def case_sparse_gnn():
    i = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    v = torch.ones(4)
    A = torch.sparse_coo_tensor(i, v, (3, 3))
    x = W(3, 2)
    y = torch.sparse.mm(A, x)
    d = A.to_dense()
    return [y, d, A.coalesce().indices(), A._nnz(), (A @ x)]
