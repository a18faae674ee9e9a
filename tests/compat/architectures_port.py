"""Model code in plain PyTorch, trained a few steps: a U-Net (BatchNorm, ConvTranspose,
bilinear upsampling, padding skips), a VAE with reparameterization, a seq2seq GRU with
Bahdanau attention (teacher forcing and greedy decoding), a GCN / SAGE-style GNN on
index_add / scatter_reduce / bincount, ConvNeXt and shifted-window Swin blocks
(LayerNorm2d, DropPath, roll, window partition, relative position bias), and a
wav2vec-style feature extractor (GroupNorm, weight-normed positional conv, length
masks)."""
import math
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

def W(*shape, seed=0):
    return torch.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))

def set_weights(model, scale=0.2):
    with torch.no_grad():
        for i, (n, p) in enumerate(sorted(model.state_dict().items())):
            if p.dtype.is_floating_point and "running_var" not in n:
                p.copy_(W(*p.shape, seed=100 + i) * scale)
            elif "running_var" in n:
                p.fill_(1.0)

def train(model, inputs, loss_fn, steps=3, opt="adam"):
    o = torch.optim.Adam(model.parameters(), lr=1e-2) if opt == "adam" else torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    losses = []
    for _ in range(steps):
        o.zero_grad(set_to_none=True)
        loss = loss_fn(model, *inputs)
        loss.backward()
        torch.nn.utils.clip_grad_value_(model.parameters(), 1.0)
        o.step()
        losses.append(loss.item())
    return losses

# ---------------- U-Net
class DoubleConv(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

class UNet(nn.Module):
    def __init__(self, c=3, n=2, base=4):
        super().__init__()
        self.inc = DoubleConv(c, base)
        self.down1 = nn.Sequential(nn.MaxPool2d(2), DoubleConv(base, base * 2))
        self.down2 = nn.Sequential(nn.MaxPool2d(2), DoubleConv(base * 2, base * 4))
        self.up1 = nn.ConvTranspose2d(base * 4, base * 2, 2, stride=2)
        self.conv1 = DoubleConv(base * 4, base * 2)
        self.up2 = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        self.conv2 = DoubleConv(base * 3, base)
        self.outc = nn.Conv2d(base, n, 1)
    def forward(self, x):
        x1 = self.inc(x); x2 = self.down1(x1); x3 = self.down2(x2)
        u = self.up1(x3)
        dy, dx = x2.size(2) - u.size(2), x2.size(3) - u.size(3)
        u = F.pad(u, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        u = self.conv1(torch.cat([x2, u], dim=1))
        u = self.conv2(torch.cat([x1, self.up2(u)], dim=1))
        return self.outc(u)

def case_unet():
    m = UNet(); set_weights(m)
    x = W(2, 3, 16, 16); y = torch.tensor(np.random.default_rng(1).integers(0, 2, (2, 16, 16)))
    losses = train(m, (x, y), lambda m, x, y: F.cross_entropy(m(x), y))
    m.eval()
    return [losses, m(x), m.inc[1].running_mean]

# ---------------- VAE
class VAE(nn.Module):
    def __init__(self, d=12, h=16, z=4):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(d, h), nn.LeakyReLU(0.2))
        self.mu = nn.Linear(h, z); self.logvar = nn.Linear(h, z)
        self.dec = nn.Sequential(nn.Linear(z, h), nn.Tanh(), nn.Linear(h, d), nn.Sigmoid())
    def reparameterize(self, mu, logvar, eps):
        std = torch.exp(0.5 * logvar)
        return mu + eps * std
    def forward(self, x, eps):
        h = self.enc(x.view(-1, 12))
        mu, logvar = self.mu(h), self.logvar(h)
        return self.dec(self.reparameterize(mu, logvar, eps)), mu, logvar

def vae_loss(m, x, eps):
    recon, mu, logvar = m(x, eps)
    bce = F.binary_cross_entropy(recon, x.view(-1, 12), reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return (bce + kld) / x.size(0)

def case_vae():
    m = VAE(); set_weights(m)
    x = torch.sigmoid(W(5, 3, 4)); eps = W(5, 4, seed=3)
    losses = train(m, (x, eps), vae_loss)
    torch.manual_seed(0)
    z = torch.randn(3, 4)
    return [losses, m.dec(eps[:3]), m.dec(z).shape, torch.randn_like(eps).shape]

# ---------------- seq2seq GRU with attention
class Encoder(nn.Module):
    def __init__(self, v, h):
        super().__init__()
        self.emb = nn.Embedding(v, h, padding_idx=0); self.gru = nn.GRU(h, h, batch_first=True)
        self.drop = nn.Dropout(0.1)
    def forward(self, x):
        return self.gru(self.drop(self.emb(x)))

class BahdanauAttention(nn.Module):
    def __init__(self, h):
        super().__init__()
        self.Wa = nn.Linear(h, h); self.Ua = nn.Linear(h, h); self.Va = nn.Linear(h, 1)
    def forward(self, query, keys):
        scores = self.Va(torch.tanh(self.Wa(query) + self.Ua(keys))).squeeze(2).unsqueeze(1)
        weights = F.softmax(scores, dim=-1)
        return torch.bmm(weights, keys), weights

class Decoder(nn.Module):
    def __init__(self, v, h):
        super().__init__()
        self.emb = nn.Embedding(v, h); self.attn = BahdanauAttention(h)
        self.gru = nn.GRU(2 * h, h, batch_first=True); self.out = nn.Linear(h, v)
    def forward(self, enc_out, hidden, target=None, max_len=5):
        b = enc_out.size(0)
        inp = torch.empty(b, 1, dtype=torch.long).fill_(1)
        outs, attns = [], []
        for i in range(max_len):
            emb = self.emb(inp)
            q = hidden.permute(1, 0, 2)
            ctx, w = self.attn(q, enc_out)
            o, hidden = self.gru(torch.cat((emb, ctx), dim=2), hidden)
            o = self.out(o)
            outs.append(o); attns.append(w)
            if target is not None:
                inp = target[:, i].unsqueeze(1)
            else:
                _, top = o.topk(1)
                inp = top.squeeze(-1).detach()
        return F.log_softmax(torch.cat(outs, dim=1), dim=-1), hidden, torch.cat(attns, dim=1)

class Seq2Seq(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = Encoder(11, 8); self.dec = Decoder(13, 8)
    def forward(self, x, t=None):
        e, h = self.enc(x)
        return self.dec(e, h, t)

def case_seq2seq():
    m = Seq2Seq(); set_weights(m, 0.4); m.eval()
    x = torch.tensor([[3, 4, 5, 0], [6, 7, 0, 0]]); t = torch.tensor([[2, 3, 4, 5, 6], [7, 8, 9, 10, 11]])
    greedy = m(x)
    losses = train(m, (x, t), lambda m, x, t: F.nll_loss(m(x, t)[0].view(-1, 13), t.view(-1), ignore_index=0), opt="sgd")
    return [greedy[0], greedy[2], losses]

# ---------------- GNN with index_add / scatter_reduce
class GCNLayer(nn.Module):
    def __init__(self, i, o):
        super().__init__(); self.lin = nn.Linear(i, o)
    def forward(self, x, edge_index):
        src, dst = edge_index
        n = x.size(0)
        deg = torch.zeros(n).index_add_(0, dst, torch.ones(dst.numel())) + 1
        norm = deg.rsqrt()
        h = self.lin(x)
        msg = h[src] * (norm[src] * norm[dst]).unsqueeze(-1)
        out = torch.zeros_like(h).index_add(0, dst, msg) + h / deg.unsqueeze(-1)
        return out

class SAGEMax(nn.Module):
    def __init__(self, i, o):
        super().__init__(); self.lin = nn.Linear(2 * i, o)
    def forward(self, x, edge_index):
        src, dst = edge_index
        agg = torch.zeros_like(x).scatter_reduce(0, dst.unsqueeze(-1).expand(-1, x.size(1)), x[src], reduce="amax", include_self=False)
        mean = torch.zeros_like(x).scatter_reduce_(0, dst.view(-1, 1).expand_as(x[src]), x[src], reduce="mean", include_self=False)
        cnt = torch.bincount(dst, minlength=x.size(0))
        return self.lin(torch.cat([agg, mean], -1)), cnt

def case_gnn():
    x = W(6, 4)
    ei = torch.tensor([[0, 1, 2, 3, 4, 5, 0, 2], [1, 2, 3, 4, 5, 0, 3, 3]])
    g1, g2 = GCNLayer(4, 5), SAGEMax(5, 3)
    set_weights(g1); set_weights(g2)
    model = nn.ModuleList([g1, g2])
    def loss(m, x, ei):
        h = F.elu(m[0](x, ei))
        out, cnt = m[1](h, ei)
        pooled = torch.zeros(2, 3).index_reduce_(0, torch.tensor([0, 0, 0, 1, 1, 1]), out, "prod", include_self=False) if False else out
        seg = torch.zeros(2, 3).scatter_add_(0, torch.tensor([0, 0, 0, 1, 1, 1]).unsqueeze(1).expand(6, 3), out)
        return seg.pow(2).mean() + 0 * cnt.sum()
    losses = train(model, (x, ei), loss)
    return [losses, g1(x, ei), g2(g1(x, ei), ei)[1]]

# ---------------- Swin / ConvNeXt pieces
class LayerNorm2d(nn.LayerNorm):
    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)

def drop_path(x, p: float = 0., training: bool = False, scale_by_keep: bool = True):
    if p == 0. or not training:
        return x
    keep = 1 - p
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    mask = x.new_empty(shape).bernoulli_(keep)
    if keep > 0.0 and scale_by_keep:
        mask.div_(keep)
    return x * mask

class DropPath(nn.Module):
    def __init__(self, p=0.):
        super().__init__(); self.p = p
    def forward(self, x): return drop_path(x, self.p, self.training)
    def extra_repr(self): return f"drop_prob={round(self.p, 3):0.3f}"

class ConvNeXtBlock(nn.Module):
    def __init__(self, dim, ls=1e-6, dp=0.1):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pw1 = nn.Linear(dim, 4 * dim); self.act = nn.GELU(); self.pw2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(ls * torch.ones(dim))
        self.drop_path = DropPath(dp)
    def forward(self, x):
        s = x
        x = self.dwconv(x).permute(0, 2, 3, 1)
        x = self.pw2(self.act(self.pw1(self.norm(x))))
        x = (self.gamma * x).permute(0, 3, 1, 2)
        return s + self.drop_path(x)

def window_partition(x, ws):
    B, H, W_, C = x.shape
    x = x.view(B, H // ws, ws, W_ // ws, ws, C)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, ws, ws, C)

def window_reverse(windows, ws, H, W_):
    B = int(windows.shape[0] / (H * W_ / ws / ws))
    x = windows.view(B, H // ws, W_ // ws, ws, ws, -1)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(B, H, W_, -1)

class WindowAttention(nn.Module):
    def __init__(self, dim, ws, heads):
        super().__init__()
        self.ws, self.heads = ws, heads
        self.scale = (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * ws - 1) ** 2, heads))
        coords = torch.stack(torch.meshgrid([torch.arange(ws), torch.arange(ws)], indexing="ij"))
        flat = torch.flatten(coords, 1)
        rel = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0).contiguous()
        rel[:, :, 0] += ws - 1; rel[:, :, 1] += ws - 1; rel[:, :, 0] *= 2 * ws - 1
        self.register_buffer("relative_position_index", rel.sum(-1), persistent=False)
        self.qkv = nn.Linear(dim, dim * 3); self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=.02)
    def forward(self, x, mask=None):
        B_, N, C = x.shape
        qkv = self.qkv(x).reshape(B_, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(N, N, -1).permute(2, 0, 1)
        attn = attn + bias.unsqueeze(0)
        if mask is not None:
            nW = mask.shape[0]
            attn = attn.view(B_ // nW, nW, self.heads, N, N) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.heads, N, N)
        attn = attn.softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B_, N, C))

class SwinBlock(nn.Module):
    def __init__(self, dim=8, res=8, heads=2, ws=4, shift=2):
        super().__init__()
        self.res, self.ws, self.shift = res, ws, shift
        self.norm1 = nn.LayerNorm(dim); self.attn = WindowAttention(dim, ws, heads)
        self.norm2 = nn.LayerNorm(dim); self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        H = W_ = res
        img_mask = torch.zeros((1, H, W_, 1))
        cnt = 0
        for h in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
            for w in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
                img_mask[:, h, w, :] = cnt; cnt += 1
        mw = window_partition(img_mask, ws).view(-1, ws * ws)
        am = mw.unsqueeze(1) - mw.unsqueeze(2)
        am = am.masked_fill(am != 0, float(-100.0)).masked_fill(am == 0, float(0.0))
        self.register_buffer("attn_mask", am)
    def forward(self, x):
        H = W_ = self.res; B, L, C = x.shape
        s = x
        x = self.norm1(x).view(B, H, W_, C)
        x = torch.roll(x, shifts=(-self.shift, -self.shift), dims=(1, 2))
        xw = window_partition(x, self.ws).view(-1, self.ws * self.ws, C)
        aw = self.attn(xw, mask=self.attn_mask).view(-1, self.ws, self.ws, C)
        x = torch.roll(window_reverse(aw, self.ws, H, W_), shifts=(self.shift, self.shift), dims=(1, 2))
        x = s + x.view(B, H * W_, C)
        return x + self.mlp(self.norm2(x))

def case_convnext_swin():
    cb = nn.Sequential(LayerNorm2d(8), ConvNeXtBlock(8, ls=0.5)); set_weights(cb)
    sb = SwinBlock(); set_weights(sb)
    x = W(2, 8, 8, 8)
    cb.eval()
    y1 = cb(x)
    y2 = sb(x.flatten(2).transpose(1, 2))
    losses = train(sb, (x.flatten(2).transpose(1, 2),), lambda m, x: m(x).square().mean())
    cb.train()
    torch.manual_seed(0)
    y3 = cb(x)
    return [y1, y2, losses, sorted(sb.state_dict().keys()), repr(cb[1].drop_path), y3.shape]

# ---------------- wav2vec feature extractor
class ConvLayer(nn.Module):
    def __init__(self, cin, cout, k, s, gn):
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, k, s, bias=False)
        self.norm = nn.GroupNorm(cout, cout, affine=True) if gn else None
    def forward(self, x):
        x = self.conv(x)
        if self.norm is not None: x = self.norm(x)
        return F.gelu(x)

class FeatureExtractor(nn.Module):
    def __init__(self):
        super().__init__()
        spec = [(16, 10, 5)] + [(16, 3, 2)] * 2 + [(16, 2, 2)]
        layers, cin = [], 1
        for i, (c, k, s) in enumerate(spec):
            layers.append(ConvLayer(cin, c, k, s, i == 0)); cin = c
        self.conv_layers = nn.ModuleList(layers)
        self.proj = nn.Linear(16, 12); self.ln = nn.LayerNorm(16)
        self.pos_conv = nn.utils.parametrizations.weight_norm(nn.Conv1d(12, 12, 5, padding=2, groups=4), name="weight", dim=2)
    def forward(self, wav, lengths):
        x = wav.unsqueeze(1)
        for l in self.conv_layers:
            x = l(x)
        x = self.ln(x.transpose(1, 2))
        for l in self.conv_layers:
            lengths = torch.div(lengths - l.conv.kernel_size[0], l.conv.stride[0], rounding_mode="floor") + 1
        mask = torch.arange(x.shape[1]).expand(x.shape[0], -1) >= lengths[:, None]
        x = self.proj(x).masked_fill(mask[..., None], 0.0)
        x = x + F.gelu(self.pos_conv(x.transpose(1, 2))).transpose(1, 2)
        return x, lengths

def case_wav2vec():
    m = FeatureExtractor(); set_weights(m)
    wav = W(2, 400); lengths = torch.tensor([400, 300])
    out, lens = m(wav, lengths)
    losses = train(m, (wav, lengths), lambda m, w, l: m(w, l)[0].abs().mean())
    return [out, lens, losses]
