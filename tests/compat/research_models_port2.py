"""More model code in the style of public research repos, in plain PyTorch: a WGAN-GP
critic step (gradient penalty through `torch.autograd.grad(create_graph=True)`), a
VQ-VAE quantizer (codebook distances, straight-through estimator, EMA codebook update
with `index_add_` / `bincount`), LoRA adapters on a frozen model (peft-style merge and
unmerge, parameter filtering), MAE random masking (argsort of noise, `gather`, restore
ids), a CLIP contrastive loss (normalized embeddings, learned temperature), a latent
diffusion cross-attention transformer block (GEGLU, context attention, zero-init
projection), and a Mamba-style selective scan reference."""
import math
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def W(*shape, seed=0):
    return torch.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def set_weights(model, scale=0.3):
    with torch.no_grad():
        for i, (n, p) in enumerate(sorted(model.state_dict().items())):
            if p.dtype.is_floating_point and "running_var" not in n:
                p.copy_(W(*p.shape, seed=100 + i) * scale)


def grads(model):
    return {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


# ---------------------------------------------------------------- WGAN-GP
def compute_gradient_penalty(D, real_samples, fake_samples, alpha):
    interpolates = (alpha * real_samples + ((1 - alpha) * fake_samples)).requires_grad_(True)
    d_interpolates = D(interpolates)
    fake = torch.ones(real_samples.shape[0], 1, requires_grad=False)
    gradients = torch.autograd.grad(outputs=d_interpolates, inputs=interpolates, grad_outputs=fake,
                                    create_graph=True, retain_graph=True, only_inputs=True)[0]
    gradients = gradients.view(gradients.size(0), -1)
    return ((gradients.norm(2, dim=1) - 1) ** 2).mean()


def case_wgan_gp():
    G = nn.Sequential(nn.Linear(3, 8), nn.LeakyReLU(0.2), nn.Linear(8, 6), nn.Tanh())
    D = nn.Sequential(nn.Linear(6, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1))
    set_weights(G)
    set_weights(D)
    opt_G = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.0, 0.9))
    opt_D = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.0, 0.9))
    real = torch.tanh(W(4, 6, seed=1))
    log = []
    for i in range(4):
        z = W(4, 3, seed=10 + i)
        opt_D.zero_grad()
        fake_imgs = G(z)
        gp = compute_gradient_penalty(D, real.data, fake_imgs.data, torch.rand(4, 1) * 0 + 0.3)
        d_loss = -torch.mean(D(real)) + torch.mean(D(fake_imgs.detach())) + 10 * gp
        d_loss.backward()
        opt_D.step()
        if i % 2 == 1:                                       # n_critic = 2
            opt_G.zero_grad()
            g_loss = -torch.mean(D(G(z)))
            g_loss.backward()
            opt_G.step()
            log.append(g_loss.item())
        log.append([d_loss.item(), gp.item()])
    # second-order through a smooth critic: the gradient of the input-gradient's norm
    D2 = nn.Sequential(nn.Linear(6, 8), nn.Softplus(), nn.Linear(8, 1))
    set_weights(D2)
    x = W(2, 6, seed=5).requires_grad_()
    (g,) = torch.autograd.grad(D2(x).sum(), x, create_graph=True)
    (gg,) = torch.autograd.grad(g.pow(2).sum(), x)
    return [log, G[0].weight, D[2].weight, g, gg]


# ---------------------------------------------------------------- VQ-VAE
class VectorQuantizerEMA(nn.Module):
    def __init__(self, num_embeddings=6, embedding_dim=4, commitment_cost=0.25, decay=0.9, epsilon=1e-5):
        super().__init__()
        self._embedding_dim = embedding_dim
        self._num_embeddings = num_embeddings
        self._embedding = nn.Embedding(num_embeddings, embedding_dim)
        self._embedding.weight.data.normal_()
        self._commitment_cost = commitment_cost
        self.register_buffer("_ema_cluster_size", torch.zeros(num_embeddings))
        self._ema_w = nn.Parameter(torch.Tensor(num_embeddings, embedding_dim))
        self._ema_w.data.normal_()
        self._decay = decay
        self._epsilon = epsilon

    def forward(self, inputs):
        inputs = inputs.permute(0, 2, 3, 1).contiguous()
        input_shape = inputs.shape
        flat_input = inputs.view(-1, self._embedding_dim)
        distances = (torch.sum(flat_input ** 2, dim=1, keepdim=True)
                     + torch.sum(self._embedding.weight ** 2, dim=1)
                     - 2 * torch.matmul(flat_input, self._embedding.weight.t()))
        encoding_indices = torch.argmin(distances, dim=1).unsqueeze(1)
        encodings = torch.zeros(encoding_indices.shape[0], self._num_embeddings)
        encodings.scatter_(1, encoding_indices, 1)
        quantized = torch.matmul(encodings, self._embedding.weight).view(input_shape)
        if self.training:
            self._ema_cluster_size = self._ema_cluster_size * self._decay + \
                (1 - self._decay) * torch.sum(encodings, 0)
            n = torch.sum(self._ema_cluster_size.data)
            self._ema_cluster_size = ((self._ema_cluster_size + self._epsilon)
                                      / (n + self._num_embeddings * self._epsilon) * n)
            dw = torch.matmul(encodings.t(), flat_input)
            self._ema_w = nn.Parameter(self._ema_w * self._decay + (1 - self._decay) * dw)
            self._embedding.weight = nn.Parameter(self._ema_w / self._ema_cluster_size.unsqueeze(1))
        e_latent_loss = F.mse_loss(quantized.detach(), inputs)
        loss = self._commitment_cost * e_latent_loss
        quantized = inputs + (quantized - inputs).detach()          # straight-through
        avg_probs = torch.mean(encodings, dim=0)
        perplexity = torch.exp(-torch.sum(avg_probs * torch.log(avg_probs + 1e-10)))
        return loss, quantized.permute(0, 3, 1, 2).contiguous(), perplexity, encodings


class VQVAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(1, 8, 4, 2, 1), nn.ReLU(), nn.Conv2d(8, 4, 3, 1, 1))
        self.vq = VectorQuantizerEMA()
        self.decoder = nn.Sequential(nn.ConvTranspose2d(4, 8, 4, 2, 1), nn.ReLU(), nn.Conv2d(8, 1, 3, 1, 1))

    def forward(self, x):
        z = self.encoder(x)
        loss, quantized, perplexity, enc = self.vq(z)
        return loss, self.decoder(quantized), perplexity, enc


def case_vqvae():
    model = VQVAE()
    set_weights(model, 0.5)
    x = W(2, 1, 6, 6, seed=3)
    optimizer = torch.optim.Adam([p for n, p in model.named_parameters() if "vq." not in n], lr=1e-3, amsgrad=False)
    log = []
    for _ in range(3):
        optimizer.zero_grad()
        vq_loss, recon, perplexity, enc = model(x)
        loss = F.mse_loss(recon, x) + vq_loss
        loss.backward()
        optimizer.step()
        log.append([loss.item(), perplexity.item()])
    model.eval()
    vq_loss, recon, perplexity, enc = model(x)
    return [log, recon, enc.argmax(1), model.vq._ema_cluster_size, model.vq._embedding.weight,
            model.encoder[0].weight.grad]


# ---------------------------------------------------------------- LoRA
class LoRALinear(nn.Linear):
    def __init__(self, in_features, out_features, r=2, lora_alpha=4, lora_dropout=0.0, merge_weights=True, **kwargs):
        nn.Linear.__init__(self, in_features, out_features, **kwargs)
        self.r = r
        self.lora_alpha = lora_alpha
        self.lora_dropout = nn.Dropout(p=lora_dropout) if lora_dropout > 0. else (lambda x: x)
        self.merged = False
        self.merge_weights = merge_weights
        if r > 0:
            self.lora_A = nn.Parameter(self.weight.new_zeros((r, in_features)))
            self.lora_B = nn.Parameter(self.weight.new_zeros((out_features, r)))
            self.scaling = self.lora_alpha / self.r
            self.weight.requires_grad = False
        self.reset_lora()

    def reset_lora(self):
        if hasattr(self, "lora_A"):
            nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
            nn.init.zeros_(self.lora_B)

    def train(self, mode: bool = True):
        nn.Linear.train(self, mode)
        if mode and self.merge_weights and self.merged:
            if self.r > 0:
                self.weight.data -= (self.lora_B @ self.lora_A) * self.scaling
            self.merged = False
        elif not mode and self.merge_weights and not self.merged:
            if self.r > 0:
                self.weight.data += (self.lora_B @ self.lora_A) * self.scaling
            self.merged = True
        return self

    def forward(self, x):
        if self.r > 0 and not self.merged:
            result = F.linear(x, self.weight, bias=self.bias)
            result += (self.lora_dropout(x) @ self.lora_A.transpose(0, 1) @ self.lora_B.transpose(0, 1)) * self.scaling
            return result
        return F.linear(x, self.weight, bias=self.bias)


def mark_only_lora_as_trainable(model, bias="none"):
    for n, p in model.named_parameters():
        if "lora_" not in n:
            p.requires_grad = False
    if bias == "all":
        for n, p in model.named_parameters():
            if "bias" in n:
                p.requires_grad = True


def lora_state_dict(model):
    return {k: v for k, v in model.state_dict().items() if "lora_" in k}


def case_lora_finetune_merge():
    model = nn.Sequential(LoRALinear(6, 8), nn.GELU(), LoRALinear(8, 3, r=4, lora_alpha=8))
    set_weights(model)
    mark_only_lora_as_trainable(model, bias="all")
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    opt = torch.optim.AdamW(filter(lambda p: p.requires_grad, model.parameters()), lr=1e-2)
    x, y = W(5, 6, seed=1), torch.tensor([0, 1, 2, 1, 0])
    losses = []
    model.train()
    for _ in range(3):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    train_out = model(x)
    model.eval()                      # merges B @ A into the weight
    merged_out = model(x)
    merged_weight = model[0].weight.clone()
    model.train()                     # unmerges
    return [losses, trainable, train_out, merged_out, merged_weight, model[0].weight,
            sorted(lora_state_dict(model)), model[0].weight.grad is None, model[2].bias.grad]


# ---------------------------------------------------------------- MAE masking
def random_masking(x, mask_ratio, noise):
    N, L, D = x.shape
    len_keep = int(L * (1 - mask_ratio))
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :len_keep]
    x_masked = torch.gather(x, dim=1, index=ids_keep.unsqueeze(-1).repeat(1, 1, D))
    mask = torch.ones([N, L])
    mask[:, :len_keep] = 0
    mask = torch.gather(mask, dim=1, index=ids_restore)
    return x_masked, mask, ids_restore


def patchify(imgs, p=2):
    h = w = imgs.shape[2] // p
    x = imgs.reshape(shape=(imgs.shape[0], 3, h, p, w, p))
    x = torch.einsum("nchpwq->nhwpqc", x)
    return x.reshape(shape=(imgs.shape[0], h * w, p ** 2 * 3))


def unpatchify(x, p=2):
    h = w = int(x.shape[1] ** .5)
    x = x.reshape(shape=(x.shape[0], h, w, p, p, 3))
    x = torch.einsum("nhwpqc->nchpwq", x)
    return x.reshape(shape=(x.shape[0], 3, h * p, h * p))


def case_mae_masking():
    imgs = W(2, 3, 8, 8, seed=4)
    x = patchify(imgs)
    embed = nn.Linear(12, 6)
    set_weights(embed)
    tokens = embed(x)
    noise = torch.tensor(np.random.default_rng(0).random((2, 16)).astype(np.float32))
    x_masked, mask, ids_restore = random_masking(tokens, 0.75, noise)
    mask_token = nn.Parameter(torch.zeros(1, 1, 6) + 0.1)
    mask_tokens = mask_token.repeat(x_masked.shape[0], ids_restore.shape[1] - x_masked.shape[1], 1)
    x_ = torch.cat([x_masked, mask_tokens], dim=1)
    x_ = torch.gather(x_, dim=1, index=ids_restore.unsqueeze(-1).repeat(1, 1, x_masked.shape[2]))
    head = nn.Linear(6, 12)
    set_weights(head)
    pred = head(x_)
    target = patchify(imgs)
    mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
    target = (target - mean) / (var + 1.e-6) ** .5
    loss = ((pred - target) ** 2).mean(dim=-1)
    loss = (loss * mask).sum() / mask.sum()
    loss.backward()
    return [x_masked, mask, ids_restore, loss, mask_token.grad, embed.weight.grad,
            unpatchify(x), torch.equal(unpatchify(x), imgs)]


# ---------------------------------------------------------------- CLIP loss
class CLIPHead(nn.Module):
    def __init__(self, d_img=10, d_txt=7, d=6):
        super().__init__()
        self.visual_projection = nn.Linear(d_img, d, bias=False)
        self.text_projection = nn.Parameter(torch.empty(d_txt, d))
        self.logit_scale = nn.Parameter(torch.ones([]) * np.log(1 / 0.07))

    def forward(self, image_features, text_features):
        image_embeds = F.normalize(self.visual_projection(image_features), dim=-1)
        text_embeds = text_features @ self.text_projection
        text_embeds = text_embeds / text_embeds.norm(p=2, dim=-1, keepdim=True)
        logit_scale = self.logit_scale.exp().clamp(max=100)
        logits_per_image = logit_scale * image_embeds @ text_embeds.t()
        return logits_per_image, logits_per_image.t()


def clip_loss(logits_per_image, logits_per_text):
    labels = torch.arange(logits_per_image.shape[0], device=logits_per_image.device, dtype=torch.long)
    return (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)) / 2


def case_clip_contrastive():
    model = CLIPHead()
    set_weights(model)
    with torch.no_grad():
        model.logit_scale.fill_(np.log(1 / 0.07))
    img, txt = W(4, 10, seed=1), W(4, 7, seed=2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(3):
        opt.zero_grad()
        loss = clip_loss(*model(img, txt))
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(loss.item())
    lpi, _ = model(img, txt)
    probs = lpi.softmax(dim=-1)
    return [losses, probs, model.logit_scale, probs.topk(2, dim=-1)]


# ---------------------------------------------------------------- latent diffusion transformer block
class GEGLU(nn.Module):
    def __init__(self, dim_in, dim_out):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x):
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.gelu(gate)


class CrossAttention(nn.Module):
    def __init__(self, query_dim, context_dim=None, heads=2, dim_head=4, dropout=0.):
        super().__init__()
        inner_dim = dim_head * heads
        context_dim = context_dim if context_dim is not None else query_dim
        self.scale = dim_head ** -0.5
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner_dim, bias=False)
        self.to_k = nn.Linear(context_dim, inner_dim, bias=False)
        self.to_v = nn.Linear(context_dim, inner_dim, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner_dim, query_dim), nn.Dropout(dropout))

    def forward(self, x, context=None, mask=None):
        h = self.heads
        q = self.to_q(x)
        context = x if context is None else context
        k, v = self.to_k(context), self.to_v(context)
        b, n, _ = q.shape
        q, k, v = map(lambda t: t.reshape(b, -1, h, t.shape[-1] // h).permute(0, 2, 1, 3).reshape(b * h, -1, t.shape[-1] // h), (q, k, v))
        sim = torch.einsum("b i d, b j d -> b i j", q, k) * self.scale
        if mask is not None:
            mask = mask.reshape(b, -1)
            max_neg_value = -torch.finfo(sim.dtype).max
            mask = mask[:, None, :].repeat_interleave(h, dim=0)
            sim.masked_fill_(~mask, max_neg_value)
        attn = sim.softmax(dim=-1)
        out = torch.einsum("b i j, b j d -> b i d", attn, v)
        out = out.reshape(b, h, n, -1).permute(0, 2, 1, 3).reshape(b, n, -1)
        return self.to_out(out)


class BasicTransformerBlock(nn.Module):
    def __init__(self, dim, n_heads, d_head, context_dim=None):
        super().__init__()
        self.attn1 = CrossAttention(query_dim=dim, heads=n_heads, dim_head=d_head)
        self.ff = nn.Sequential(GEGLU(dim, dim * 4), nn.Dropout(0.), nn.Linear(dim * 4, dim))
        self.attn2 = CrossAttention(query_dim=dim, context_dim=context_dim, heads=n_heads, dim_head=d_head)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, x, context=None, mask=None):
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context=context, mask=mask) + x
        return self.ff(self.norm3(x)) + x


class SpatialTransformer(nn.Module):
    def __init__(self, in_channels, n_heads=2, d_head=4, context_dim=5):
        super().__init__()
        inner_dim = n_heads * d_head
        self.norm = nn.GroupNorm(num_groups=4, num_channels=in_channels, eps=1e-6, affine=True)
        self.proj_in = nn.Conv2d(in_channels, inner_dim, kernel_size=1)
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(inner_dim, n_heads, d_head, context_dim)])
        self.proj_out = nn.Conv2d(inner_dim, in_channels, kernel_size=1)

    def forward(self, x, context=None, mask=None):
        b, c, h, w = x.shape
        x_in = x
        x = self.proj_in(self.norm(x))
        x = x.permute(0, 2, 3, 1).reshape(b, h * w, -1)
        for block in self.transformer_blocks:
            x = block(x, context=context, mask=mask)
        x = x.reshape(b, h, w, -1).permute(0, 3, 1, 2).contiguous()
        return self.proj_out(x) + x_in


def make_spatial_transformer():
    model = SpatialTransformer(8)
    set_weights(model)
    return model, (W(2, 8, 3, 3, seed=6), W(2, 4, 5, seed=7))


def case_spatial_transformer():
    model, (x, context) = make_spatial_transformer()
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    out = model(x, context, mask)
    out.square().sum().backward()
    g = grads(model)
    return [out, model(x, context), g["transformer_blocks.0.attn2.to_k.weight"], g["norm.weight"],
            g["transformer_blocks.0.ff.0.proj.weight"]]


# ---------------------------------------------------------------- Mamba-style selective scan
def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    dtype_in = u.dtype
    u = u.float()
    delta = delta.float()
    if delta_bias is not None:
        delta = delta + delta_bias[..., None].float()
    if delta_softplus:
        delta = F.softplus(delta)
    batch, dim, dstate = u.shape[0], A.shape[0], A.shape[1]
    x = A.new_zeros((batch, dim, dstate))
    ys = []
    deltaA = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    deltaB_u = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)
    for i in range(u.shape[2]):
        x = deltaA[:, :, i] * x + deltaB_u[:, :, i]
        y = torch.einsum("bdn,bn->bd", x, C[:, :, i])
        ys.append(y)
    y = torch.stack(ys, dim=2)
    out = y if D is None else y + u * D[..., None]
    if z is not None:
        out = out * F.silu(z)
    return out.to(dtype=dtype_in)


class MambaBlock(nn.Module):
    def __init__(self, d_model=6, d_state=4, d_conv=3, expand=2):
        super().__init__()
        self.d_inner = expand * d_model
        self.dt_rank = math.ceil(d_model / 16)
        self.d_state = d_state
        self.in_proj = nn.Linear(d_model, self.d_inner * 2, bias=False)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, kernel_size=d_conv, groups=self.d_inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + d_state * 2, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1).contiguous()
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(self.d_inner))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)

    def forward(self, hidden_states):
        batch, seqlen, dim = hidden_states.shape
        xz = self.in_proj(hidden_states).transpose(1, 2)
        A = -torch.exp(self.A_log.float())
        x, z = xz.chunk(2, dim=1)
        x = F.silu(self.conv1d(x)[..., :seqlen])
        x_dbl = self.x_proj(x.transpose(1, 2).reshape(batch * seqlen, -1))
        dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = self.dt_proj.weight @ dt.t()
        dt = dt.reshape(self.d_inner, batch, seqlen).permute(1, 0, 2)
        B = B.reshape(batch, seqlen, self.d_state).permute(0, 2, 1).contiguous()
        C = C.reshape(batch, seqlen, self.d_state).permute(0, 2, 1).contiguous()
        y = selective_scan_ref(x, dt, A, B, C, self.D.float(), z=z,
                               delta_bias=self.dt_proj.bias.float(), delta_softplus=True)
        return self.out_proj(y.transpose(1, 2))


def make_mamba():
    model = MambaBlock()
    set_weights(model)
    with torch.no_grad():
        model.A_log.copy_(torch.log(torch.arange(1, 5, dtype=torch.float32).repeat(12, 1)))
    return model, (W(2, 5, 6, seed=8),)


def case_mamba_selective_scan():
    model, (x,) = make_mamba()
    out = model(x)
    out.pow(2).mean().backward()
    g = grads(model)
    return [out, g["A_log"], g["conv1d.weight"], g["dt_proj.bias"], g["in_proj.weight"]]
