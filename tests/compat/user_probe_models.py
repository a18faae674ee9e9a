"""Model code as PyTorch users write it: a nanoGPT block (causal sdpa, tied embeddings,
apply(_init_weights)), a small UNet (ConvTranspose2d, Upsample, cat), an LSTM/GRU text
classifier over pack_padded_sequence, a ViT patch embedding written with permute /
reshape, MobileNet-style depthwise blocks with hardswish, a VAE step, a GAN step pair,
a contrastive (InfoNCE) loss and ragged-batch masking with indexing ops."""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence, pad_sequence


def arr(*shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def t(*shape, seed=0, scale=1.0):
    return torch.from_numpy(arr(*shape, seed=seed, scale=scale))


def load_(model, scale=0.2):
    with torch.no_grad():
        for i, (name, p) in enumerate(sorted(model.named_parameters())):
            p.copy_(t(*p.shape, seed=200 + i, scale=scale))
    return model


# ---- nanoGPT
class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=False)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=False)
        self.n_head = n_head

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0,
                                           is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class Block(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd, bias=False)
        self.attn = CausalSelfAttention(n_embd, n_head)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = nn.ModuleDict(dict(c_fc=nn.Linear(n_embd, 4 * n_embd),
                                      c_proj=nn.Linear(4 * n_embd, n_embd)))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        m = self.mlp
        return x + m.c_proj(F.gelu(m.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, vocab=11, block_size=8, n_embd=16, n_head=2, n_layer=2):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(vocab, n_embd), wpe=nn.Embedding(block_size, n_embd),
            h=nn.ModuleList([Block(n_embd, n_head) for _ in range(n_layer)]),
            ln_f=nn.LayerNorm(n_embd)))
        self.lm_head = nn.Linear(n_embd, vocab, bias=False)
        self.transformer.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        for pn, p in self.named_parameters():
            if pn.endswith("c_proj.weight"):
                with torch.no_grad():
                    p.mul_(1 / math.sqrt(2 * n_layer))

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            with torch.no_grad():
                module.weight.copy_(t(*module.weight.shape, seed=module.weight.numel(),
                                      scale=0.02 * 5))
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            with torch.no_grad():
                module.weight.copy_(t(*module.weight.shape, seed=7, scale=0.1))

    def forward(self, idx, targets=None):
        b, tt = idx.size()
        pos = torch.arange(0, tt, dtype=torch.long, device=idx.device)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        if targets is not None:
            logits = self.lm_head(x)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1),
                                   ignore_index=-1)
        else:
            logits = self.lm_head(x[:, [-1], :])
            loss = None
        return logits, loss

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None):
        for _ in range(max_new_tokens):
            logits, _ = self(idx[:, -8:])
            logits = logits[:, -1, :] / temperature
            if top_k is not None:
                v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                logits[logits < v[:, [-1]]] = -float("Inf")
            probs = F.softmax(logits, dim=-1)
            idx_next = torch.argmax(probs, dim=-1, keepdim=True)
            idx = torch.cat((idx, idx_next), dim=1)
        return idx


def case_nanogpt_train_and_generate():
    model = GPT()
    n_params = sum(p.numel() for p in model.parameters())
    idx = torch.from_numpy(np.random.default_rng(0).integers(0, 11, (2, 8)))
    targets = idx.roll(-1, dims=1)
    targets[:, -1] = -1
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.95), fused=None)
    losses = []
    for _ in range(2):
        _, loss = model(idx, targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    tied = model.lm_head.weight is model.transformer.wte.weight
    out = model.generate(idx[:, :3], 4, temperature=0.8, top_k=5)
    return n_params, losses, tied, out, len(list(model.state_dict()))


# ---- UNet
class DoubleConv(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, padding=1),
                         nn.GroupNorm(2, cout), nn.SiLU())


class UNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.inc = DoubleConv(3, 4)
        self.down = nn.Sequential(nn.MaxPool2d(2), DoubleConv(4, 8))
        self.up1 = nn.ConvTranspose2d(8, 4, kernel_size=2, stride=2)
        self.conv1 = DoubleConv(8, 4)
        self.up2 = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        self.outc = nn.Conv2d(12, 2, kernel_size=1)

    def forward(self, x):
        x1 = self.inc(x)
        x2 = self.down(x1)
        u = self.up1(x2)
        diffY, diffX = x1.size()[2] - u.size()[2], x1.size()[3] - u.size()[3]
        u = F.pad(u, [diffX // 2, diffX - diffX // 2, diffY // 2, diffY - diffY // 2])
        y = self.conv1(torch.cat([x1, u], dim=1))
        z = F.interpolate(self.up2(x2), size=y.shape[-2:], mode="nearest")
        return self.outc(torch.cat([y, z], 1))


def case_unet_forward_backward():
    model = load_(UNet())
    x = t(2, 3, 10, 10, seed=1)
    target = torch.from_numpy(np.random.default_rng(2).integers(0, 2, (2, 10, 10)))
    out = model(x)
    loss = F.cross_entropy(out, target) + 0.5 * F.binary_cross_entropy_with_logits(
        out[:, 1], target.float(), pos_weight=torch.tensor(2.0))
    loss.backward()
    model.eval()
    return out, loss, model.up1.weight.grad, model.inc[1].running_mean, model(x)


# ---- RNN text classifier
class TextClassifier(nn.Module):
    def __init__(self, vocab=20, emb=6, hidden=5, classes=3, cell="lstm"):
        super().__init__()
        self.embedding = nn.Embedding(vocab, emb, padding_idx=0)
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn(emb, hidden, num_layers=2, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * hidden, classes)

    def forward(self, text, lengths):
        embedded = self.embedding(text)
        packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        packed_out, hidden = self.rnn(packed)
        if isinstance(hidden, tuple):
            hidden = hidden[0]
        out, out_lengths = pad_packed_sequence(packed_out, batch_first=True)
        feat = torch.cat((hidden[-2, :, :], hidden[-1, :, :]), dim=1)
        return self.fc(feat), out, out_lengths


def case_rnn_text_classifiers():
    rng = np.random.default_rng(3)
    seqs = [torch.from_numpy(rng.integers(1, 20, n)) for n in (5, 2, 4)]
    text = pad_sequence(seqs, batch_first=True, padding_value=0)
    lengths = torch.tensor([len(s) for s in seqs])
    results = []
    for cell in ("lstm", "gru"):
        model = load_(TextClassifier(cell=cell), scale=0.3)
        logits, out, out_lengths = model(text, lengths)
        F.cross_entropy(logits, torch.tensor([0, 2, 1])).backward()
        results += [logits, out, out_lengths, model.embedding.weight.grad[0]]
    return results


# ---- ViT patch embedding
def rearrange_patches(img, p):
    # 'b c (h p1) (w p2) -> b (h w) (p1 p2 c)'
    b, c, H, W = img.shape
    x = img.reshape(b, c, H // p, p, W // p, p)
    x = x.permute(0, 2, 4, 3, 5, 1)
    return x.reshape(b, (H // p) * (W // p), p * p * c)


class PatchEmbed(nn.Module):
    def __init__(self, p=4, c=3, dim=8, n=4):
        super().__init__()
        self.p = p
        self.proj = nn.Linear(p * p * c, dim)
        self.conv = nn.Conv2d(c, dim, p, stride=p)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, n + 1, dim))

    def forward(self, img):
        x = self.proj(rearrange_patches(img, self.p))
        y = self.conv(img).flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat((cls, x), dim=1) + self.pos_embed
        return x, y


def case_vit_patch_embedding():
    model = load_(PatchEmbed())
    img = t(2, 3, 8, 8, seed=4)
    x, y = model(img)
    # the conv and the linear agree when the weights are laid out the same way
    with torch.no_grad():
        w = model.conv.weight.permute(0, 2, 3, 1).reshape(8, -1)
        model.proj.weight.copy_(w)
        model.proj.bias.copy_(model.conv.bias)
    x2, y2 = model(img)
    return x, y, torch.allclose(x2[:, 1:] - model.pos_embed[:, 1:], y2, atol=1e-5)


# ---- MobileNet
class InvertedResidual(nn.Module):
    def __init__(self, c, expand=2):
        super().__init__()
        h = c * expand
        self.block = nn.Sequential(
            nn.Conv2d(c, h, 1, bias=False), nn.BatchNorm2d(h), nn.Hardswish(inplace=True),
            nn.Conv2d(h, h, 3, padding=1, groups=h, bias=False), nn.BatchNorm2d(h),
            nn.Hardswish(), nn.Conv2d(h, c, 1, bias=False), nn.BatchNorm2d(c))
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, c, 1), nn.ReLU6(),
                                nn.Hardsigmoid())

    def forward(self, x):
        y = self.block(x)
        return x + y * self.se(y)


def case_mobilenet_depthwise_hardswish():
    model = load_(nn.Sequential(InvertedResidual(4), InvertedResidual(4)))
    x = t(2, 4, 6, 6, seed=5)
    out = model(x)
    out.mean().backward()
    model.eval()
    return out, model[0].block[3].weight.grad, model(x), F.hardswish(x)


# ---- VAE
class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.Linear(10, 8)
        self.mu = nn.Linear(8, 2)
        self.logvar = nn.Linear(8, 2)
        self.dec = nn.Sequential(nn.Linear(2, 8), nn.LeakyReLU(0.2), nn.Linear(8, 10),
                                 nn.Sigmoid())

    def forward(self, x, eps):
        h = F.relu(self.enc(x))
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu + eps * torch.exp(0.5 * logvar)
        return self.dec(z), mu, logvar


def case_vae_step():
    model = load_(VAE())
    x = torch.sigmoid(t(4, 10, seed=6))
    eps = t(4, 2, seed=7)
    recon, mu, logvar = model(x, eps)
    bce = F.binary_cross_entropy(recon, x, reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    (bce + kld).backward()
    return recon, bce, kld, model.mu.weight.grad, model.logvar.bias.grad


# ---- GAN
def case_gan_step_pair():
    # no bias before BatchNorm: its gradient is rounding noise, which Adam scales up
    G = load_(nn.Sequential(nn.Linear(3, 6, bias=False), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 4),
                            nn.Tanh()))
    D = load_(nn.Sequential(nn.Linear(4, 6), nn.LeakyReLU(0.2, inplace=True),
                            nn.Dropout(0.0), nn.Linear(6, 1)))
    optG = torch.optim.Adam(G.parameters(), lr=2e-3, betas=(0.5, 0.999))
    optD = torch.optim.Adam(D.parameters(), lr=2e-3, betas=(0.5, 0.999))
    criterion = nn.BCEWithLogitsLoss()
    real = t(5, 4, seed=8)
    noise = t(5, 3, seed=9)
    out = []
    for _ in range(2):
        optD.zero_grad()
        fake = G(noise)
        lossD = criterion(D(real), torch.ones(5, 1)) + \
            criterion(D(fake.detach()), torch.full((5, 1), 0.0))
        lossD.backward()
        optD.step()
        optG.zero_grad()
        lossG = criterion(D(fake), torch.ones_like(D(fake)))
        lossG.backward()
        optG.step()
        out += [lossD.item(), lossG.item()]
    return out, [p.detach() for p in G.parameters()], G[1].running_var


# ---- contrastive loss
def case_contrastive_info_nce():
    a = F.normalize(t(6, 5, seed=10), dim=-1)
    b = F.normalize(t(6, 5, seed=11), dim=1, p=2)
    a.requires_grad_(True)
    temperature = 0.07
    logits = a @ b.T / temperature
    labels = torch.arange(a.shape[0])
    loss = (F.cross_entropy(logits, labels, label_smoothing=0.1) +
            F.cross_entropy(logits.t(), labels, label_smoothing=0.1)) / 2
    loss.backward()
    sim = F.cosine_similarity(a.unsqueeze(1), b.unsqueeze(0), dim=-1)
    manual = -(torch.diag(logits) - torch.logsumexp(logits, dim=1)).mean()
    return loss, a.grad, sim, manual, F.cosine_similarity(a, b, eps=1e-6)


# ---- ragged masking
def case_ragged_masking_ops():
    lengths = torch.tensor([3, 1, 4])
    x = t(3, 4, 2, seed=12)
    mask = torch.arange(4)[None, :] < lengths[:, None]
    scores = t(3, 4, seed=13).masked_fill(~mask, float("-inf"))
    attn = scores.softmax(-1)
    pooled = (x * mask.unsqueeze(-1)).sum(1) / lengths.unsqueeze(-1)
    where = torch.where(mask.unsqueeze(-1), x, torch.zeros_like(x))
    nz = mask.nonzero()
    nz_tuple = torch.nonzero(mask, as_tuple=True)
    flat = x[mask]
    seg = torch.repeat_interleave(torch.arange(3), lengths)
    seg_sum = torch.zeros(3, 2).scatter_add_(0, seg.unsqueeze(-1).expand(-1, 2), flat)
    seg_sum2 = torch.zeros(3, 2).index_add_(0, seg, flat)
    gathered = torch.gather(x, 1, (lengths - 1).view(-1, 1, 1).expand(-1, 1, 2)).squeeze(1)
    # (topk's order among tied values is unspecified in PyTorch: scores without ties)
    vals, idx = t(3, 4, seed=13).topk(2, dim=-1)
    order = lengths.argsort(descending=True)
    uniq, counts = torch.unique(seg, return_counts=True)
    uniq2, inverse = torch.unique(torch.tensor([3, 1, 3, 2, 1]), sorted=True,
                                  return_inverse=True)
    bins = torch.bincount(seg, minlength=5)
    weighted = torch.bincount(seg, weights=flat[:, 0])
    offsets = torch.cumsum(lengths, 0) - lengths
    ein = torch.einsum("bld,bl->bd", x, attn)
    ein2 = torch.einsum("bij,bkj->bik", x, x)
    return (attn, pooled, where, nz, nz_tuple, flat, seg_sum, seg_sum2, gathered, vals,
            idx, order, uniq, counts, uniq2, inverse, bins, weighted, offsets, ein, ein2)
