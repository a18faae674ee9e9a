"""Generative model code in plain PyTorch, written the way diffusion / VAE / GAN repos
write it: a DDPM UNet (sinusoidal timestep embedding, GroupNorm32, SiLU, scale-shift
ResBlocks, a QKV attention block with Conv1d projections, nearest `F.interpolate`
upsampling, strided-conv downsampling, skip concatenations), the DDPM noise schedule
(register_buffer'd betas, `extract` by gather, q_sample, a sampling loop under a
seeded generator), a convolutional VAE, and a DCGAN training loop (two optimizers,
`detach`, `retain_graph=True`, BCEWithLogits, `requires_grad_(False)` toggling)."""
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


def grads(model):
    return {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


# ---------------------------------------------------------------- DDPM UNet
def timestep_embedding(timesteps, dim, max_period=10000):
    """Sinusoidal timestep embeddings (as in guided-diffusion)."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(start=0, end=half, dtype=torch.float32) / half
    ).to(device=timesteps.device)
    args = timesteps[:, None].float() * freqs[None]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
    return embedding


class GroupNorm32(nn.GroupNorm):
    def forward(self, x):
        return super().forward(x.float()).type(x.dtype)


def normalization(channels):
    return GroupNorm32(4, channels)


def zero_module(module):
    for p in module.parameters():
        p.detach().zero_()
    return module


class TimestepBlock(nn.Module):
    def forward(self, x, emb):
        raise NotImplementedError


class TimestepEmbedSequential(nn.Sequential, TimestepBlock):
    def forward(self, x, emb):
        for layer in self:
            if isinstance(layer, TimestepBlock):
                x = layer(x, emb)
            else:
                x = layer(x)
        return x


class Upsample(nn.Module):
    def __init__(self, channels, use_conv):
        super().__init__()
        self.channels = channels
        self.use_conv = use_conv
        if use_conv:
            self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        assert x.shape[1] == self.channels
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        if self.use_conv:
            x = self.conv(x)
        return x


class Downsample(nn.Module):
    def __init__(self, channels, use_conv):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1) if use_conv \
            else nn.AvgPool2d(kernel_size=2, stride=2)

    def forward(self, x):
        return self.op(x)


class ResBlock(TimestepBlock):
    def __init__(self, channels, emb_channels, dropout, out_channels=None,
                 use_scale_shift_norm=True):
        super().__init__()
        self.out_channels = out_channels or channels
        self.use_scale_shift_norm = use_scale_shift_norm
        self.in_layers = nn.Sequential(normalization(channels), nn.SiLU(),
                                       nn.Conv2d(channels, self.out_channels, 3, padding=1))
        self.emb_layers = nn.Sequential(
            nn.SiLU(),
            nn.Linear(emb_channels, 2 * self.out_channels if use_scale_shift_norm
                      else self.out_channels))
        self.out_layers = nn.Sequential(
            normalization(self.out_channels), nn.SiLU(), nn.Dropout(p=dropout),
            nn.Conv2d(self.out_channels, self.out_channels, 3, padding=1))
        if self.out_channels == channels:
            self.skip_connection = nn.Identity()
        else:
            self.skip_connection = nn.Conv2d(channels, self.out_channels, 1)

    def forward(self, x, emb):
        h = self.in_layers(x)
        emb_out = self.emb_layers(emb).type(h.dtype)
        while len(emb_out.shape) < len(h.shape):
            emb_out = emb_out[..., None]
        if self.use_scale_shift_norm:
            out_norm, out_rest = self.out_layers[0], self.out_layers[1:]
            scale, shift = torch.chunk(emb_out, 2, dim=1)
            h = out_norm(h) * (1 + scale) + shift
            h = out_rest(h)
        else:
            h = h + emb_out
            h = self.out_layers(h)
        return self.skip_connection(x) + h


class QKVAttention(nn.Module):
    def __init__(self, n_heads):
        super().__init__()
        self.n_heads = n_heads

    def forward(self, qkv):
        bs, width, length = qkv.shape
        assert width % (3 * self.n_heads) == 0
        ch = width // (3 * self.n_heads)
        q, k, v = qkv.reshape(bs * self.n_heads, ch * 3, length).split(ch, dim=1)
        scale = 1 / math.sqrt(math.sqrt(ch))
        weight = torch.einsum("bct,bcs->bts", q * scale, k * scale)
        weight = torch.softmax(weight.float(), dim=-1).type(weight.dtype)
        a = torch.einsum("bts,bcs->bct", weight, v)
        return a.reshape(bs, -1, length)


class AttentionBlock(nn.Module):
    def __init__(self, channels, num_heads=1):
        super().__init__()
        self.channels = channels
        self.num_heads = num_heads
        self.norm = normalization(channels)
        self.qkv = nn.Conv1d(channels, channels * 3, 1)
        self.attention = QKVAttention(self.num_heads)
        self.proj_out = zero_module(nn.Conv1d(channels, channels, 1))

    def forward(self, x):
        b, c, *spatial = x.shape
        x = x.reshape(b, c, -1)
        qkv = self.qkv(self.norm(x))
        h = self.attention(qkv)
        h = self.proj_out(h)
        return (x + h).reshape(b, c, *spatial)


class UNetModel(nn.Module):
    def __init__(self, in_channels=3, model_channels=8, out_channels=3, num_res_blocks=1,
                 attention_resolutions=(2,), dropout=0.0, channel_mult=(1, 2),
                 conv_resample=True, num_heads=2):
        super().__init__()
        self.model_channels = model_channels
        time_embed_dim = model_channels * 4
        self.time_embed = nn.Sequential(nn.Linear(model_channels, time_embed_dim), nn.SiLU(),
                                        nn.Linear(time_embed_dim, time_embed_dim))
        self.input_blocks = nn.ModuleList([
            TimestepEmbedSequential(nn.Conv2d(in_channels, model_channels, 3, padding=1))])
        input_block_chans = [model_channels]
        ch, ds = model_channels, 1
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers = [ResBlock(ch, time_embed_dim, dropout, out_channels=mult * model_channels)]
                ch = mult * model_channels
                if ds in attention_resolutions:
                    layers.append(AttentionBlock(ch, num_heads=num_heads))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                input_block_chans.append(ch)
            if level != len(channel_mult) - 1:
                self.input_blocks.append(TimestepEmbedSequential(Downsample(ch, conv_resample)))
                input_block_chans.append(ch)
                ds *= 2
        self.middle_block = TimestepEmbedSequential(
            ResBlock(ch, time_embed_dim, dropout), AttentionBlock(ch, num_heads=num_heads),
            ResBlock(ch, time_embed_dim, dropout))
        self.output_blocks = nn.ModuleList([])
        for level, mult in list(enumerate(channel_mult))[::-1]:
            for i in range(num_res_blocks + 1):
                layers = [ResBlock(ch + input_block_chans.pop(), time_embed_dim, dropout,
                                   out_channels=model_channels * mult)]
                ch = model_channels * mult
                if ds in attention_resolutions:
                    layers.append(AttentionBlock(ch, num_heads=num_heads))
                if level and i == num_res_blocks:
                    layers.append(Upsample(ch, conv_resample))
                    ds //= 2
                self.output_blocks.append(TimestepEmbedSequential(*layers))
        self.out = nn.Sequential(normalization(ch), nn.SiLU(),
                                 zero_module(nn.Conv2d(model_channels, out_channels, 3, padding=1)))

    def forward(self, x, timesteps):
        hs = []
        emb = self.time_embed(timestep_embedding(timesteps, self.model_channels))
        h = x
        for module in self.input_blocks:
            h = module(h, emb)
            hs.append(h)
        h = self.middle_block(h, emb)
        for module in self.output_blocks:
            h = torch.cat([h, hs.pop()], dim=1)
            h = module(h, emb)
        return self.out(h)


def make_unet():
    model = UNetModel()
    set_weights(model, 0.15)
    x = W(2, 3, 8, 8, seed=1)
    t = torch.tensor([3, 17])
    return model, (x, t)


# ---------------------------------------------------------------- DDPM schedule
def extract(a, t, x_shape):
    b, *_ = t.shape
    out = a.gather(-1, t)
    return out.reshape(b, *((1,) * (len(x_shape) - 1)))


def linear_beta_schedule(timesteps):
    scale = 1000 / timesteps
    return torch.linspace(scale * 0.0001, scale * 0.02, timesteps, dtype=torch.float64)


def cosine_beta_schedule(timesteps, s=0.008):
    steps = timesteps + 1
    x = torch.linspace(0, timesteps, steps, dtype=torch.float64)
    alphas_cumprod = torch.cos(((x / timesteps) + s) / (1 + s) * math.pi * 0.5) ** 2
    alphas_cumprod = alphas_cumprod / alphas_cumprod[0]
    betas = 1 - (alphas_cumprod[1:] / alphas_cumprod[:-1])
    return torch.clip(betas, 0, 0.999)


class GaussianDiffusion(nn.Module):
    def __init__(self, model, timesteps=20, schedule="cosine"):
        super().__init__()
        self.model = model
        self.num_timesteps = timesteps
        betas = cosine_beta_schedule(timesteps) if schedule == "cosine" \
            else linear_beta_schedule(timesteps)
        alphas = 1. - betas
        alphas_cumprod = torch.cumprod(alphas, dim=0)
        alphas_cumprod_prev = F.pad(alphas_cumprod[:-1], (1, 0), value=1.)
        register_buffer = lambda name, val: self.register_buffer(name, val.to(torch.float32))
        register_buffer("betas", betas)
        register_buffer("alphas_cumprod", alphas_cumprod)
        register_buffer("alphas_cumprod_prev", alphas_cumprod_prev)
        register_buffer("sqrt_alphas_cumprod", torch.sqrt(alphas_cumprod))
        register_buffer("sqrt_one_minus_alphas_cumprod", torch.sqrt(1. - alphas_cumprod))
        register_buffer("sqrt_recip_alphas", torch.sqrt(1.0 / alphas))
        posterior_variance = betas * (1. - alphas_cumprod_prev) / (1. - alphas_cumprod)
        register_buffer("posterior_variance", posterior_variance)
        register_buffer("posterior_log_variance_clipped",
                        torch.log(posterior_variance.clamp(min=1e-20)))

    def q_sample(self, x_start, t, noise=None):
        if noise is None:
            noise = torch.randn_like(x_start)
        return (extract(self.sqrt_alphas_cumprod, t, x_start.shape) * x_start +
                extract(self.sqrt_one_minus_alphas_cumprod, t, x_start.shape) * noise)

    def p_losses(self, x_start, t, noise):
        x_noisy = self.q_sample(x_start=x_start, t=t, noise=noise)
        predicted_noise = self.model(x_noisy, t)
        return F.smooth_l1_loss(noise, predicted_noise) + F.mse_loss(predicted_noise, noise)

    @torch.no_grad()
    def p_sample(self, x, t, t_index, noise):
        betas_t = extract(self.betas, t, x.shape)
        sqrt_one_minus_alphas_cumprod_t = extract(self.sqrt_one_minus_alphas_cumprod, t, x.shape)
        sqrt_recip_alphas_t = extract(self.sqrt_recip_alphas, t, x.shape)
        model_mean = sqrt_recip_alphas_t * (
            x - betas_t * self.model(x, t) / sqrt_one_minus_alphas_cumprod_t)
        if t_index == 0:
            return model_mean
        posterior_variance_t = extract(self.posterior_variance, t, x.shape)
        return model_mean + torch.sqrt(posterior_variance_t) * noise

    @torch.no_grad()
    def sample(self, shape, generator=None, steps=4, noise_fn=None):
        noise_fn = noise_fn or (lambda i: torch.randn(shape, generator=generator))
        b = shape[0]
        img = noise_fn(steps)
        imgs = []
        for i in reversed(range(0, steps)):
            noise = noise_fn(i)
            img = self.p_sample(img, torch.full((b,), i, dtype=torch.long), i, noise)
            imgs.append(img.clamp(-1, 1))
        return imgs


def case_unet_forward_and_grads():
    model, (x, t) = make_unet()
    out = model(x, t)
    out.square().mean().backward()
    g = grads(model)
    return [out, timestep_embedding(t, 7), g["input_blocks.0.0.weight"],
            g["middle_block.1.qkv.weight"], g["output_blocks.1.1.qkv.weight"],
            g["time_embed.0.weight"], g["out.2.weight"], len(g)]


def case_ddpm_training_and_sampling():
    model, (x, _) = make_unet()
    diffusion = GaussianDiffusion(model)
    opt = torch.optim.AdamW(diffusion.parameters(), lr=1e-3, weight_decay=0.01)
    losses = []
    for step in range(3):
        t = torch.tensor([step * 5 + 1, 19 - step])
        loss = diffusion.p_losses(x, t, W(*x.shape, seed=10 + step))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(diffusion.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    # torch's and ember's random streams differ: values from given noise, and the
    # seeded generator's run checked for shape and reproducibility
    imgs = diffusion.sample((1, 3, 8, 8), noise_fn=lambda i: W(1, 3, 8, 8, seed=70 + i))
    first = diffusion.sample((1, 3, 8, 8), torch.Generator().manual_seed(1234))
    again = diffusion.sample((1, 3, 8, 8), torch.Generator().manual_seed(1234))
    lin = linear_beta_schedule(10)
    return [losses, imgs[-1], imgs[0], diffusion.posterior_log_variance_clipped,
            diffusion.alphas_cumprod_prev, lin, sorted(diffusion.state_dict())[:6],
            extract(diffusion.betas, torch.tensor([0, 5]), (2, 3, 4, 4)),
            first[-1].shape, all(torch.equal(a, b) for a, b in zip(first, again))]


# ---------------------------------------------------------------- conv VAE
class ConvVAE(nn.Module):
    def __init__(self, in_ch=1, latent=4):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(in_ch, 8, 4, 2, 1, bias=False), nn.BatchNorm2d(8),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(8, 16, 4, 2, 1, bias=False), nn.BatchNorm2d(16), nn.LeakyReLU(0.2, inplace=True),
            nn.Flatten())
        self.fc_mu = nn.Linear(16 * 2 * 2, latent)
        self.fc_var = nn.Linear(16 * 2 * 2, latent)
        self.decoder_input = nn.Linear(latent, 16 * 2 * 2)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(16, 8, 4, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(True),
            nn.ConvTranspose2d(8, in_ch, 4, 2, 1), nn.Tanh())

    def encode(self, x):
        result = self.encoder(x)
        return [self.fc_mu(result), self.fc_var(result)]

    def decode(self, z):
        result = self.decoder_input(z).view(-1, 16, 2, 2)
        return self.decoder(result)

    def reparameterize(self, mu, logvar, eps):
        std = torch.exp(0.5 * logvar)
        return eps * std + mu

    def forward(self, x, eps):
        mu, log_var = self.encode(x)
        z = self.reparameterize(mu, log_var, eps)
        return [self.decode(z), x, mu, log_var]

    def loss_function(self, recons, x, mu, log_var, kld_weight=0.005):
        recons_loss = F.mse_loss(recons, x)
        kld_loss = torch.mean(-0.5 * torch.sum(1 + log_var - mu ** 2 - log_var.exp(), dim=1), dim=0)
        loss = recons_loss + kld_weight * kld_loss
        return {"loss": loss, "Reconstruction_Loss": recons_loss.detach(), "KLD": -kld_loss.detach()}


def case_conv_vae():
    model = ConvVAE()
    set_weights(model, 0.3)
    x = torch.tanh(W(4, 1, 8, 8, seed=2))
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    history = []
    for step in range(3):
        out = model(x, W(4, 4, seed=20 + step))
        losses = model.loss_function(*out)
        opt.zero_grad()
        losses["loss"].backward()
        opt.step()
        history.append({k: v.item() for k, v in losses.items()})
    model.eval()
    with torch.no_grad():
        mu, log_var = model.encode(x)
        samples = model.decode(W(2, 4, seed=40))
    return [history, mu, log_var, samples, model.encoder[1].running_var,
            model.encoder[1].num_batches_tracked]


# ---------------------------------------------------------------- DCGAN
class Generator(nn.Module):
    def __init__(self, nz=4, ngf=4, nc=1):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 2, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh())

    def forward(self, input):
        return self.main(input)


class Discriminator(nn.Module):
    def __init__(self, ndf=4, nc=1):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.utils.spectral_norm(nn.Conv2d(ndf * 2, 1, 4, 1, 0, bias=False)))

    def forward(self, input):
        return self.main(input).view(-1, 1).squeeze(1)


def weights_init(m):
    classname = m.__class__.__name__
    if classname.find("Conv") != -1 and hasattr(m, "weight") and m.weight is not None \
            and not hasattr(m, "weight_orig"):
        nn.init.normal_(m.weight.data, 0.0, 0.02)
    elif classname.find("BatchNorm") != -1:
        nn.init.normal_(m.weight.data, 1.0, 0.02)
        nn.init.constant_(m.bias.data, 0)


def case_dcgan_training_loop():
    torch.manual_seed(0)
    netG, netD = Generator(), Discriminator()
    netG.apply(weights_init)          # random init under the seed: only shapes compared
    set_weights(netG, 0.3)
    set_weights(netD, 0.3)
    criterion = nn.BCEWithLogitsLoss()
    optimizerD = torch.optim.Adam(netD.parameters(), lr=2e-3, betas=(0.5, 0.999))
    optimizerG = torch.optim.Adam(netG.parameters(), lr=2e-3, betas=(0.5, 0.999))
    real = torch.tanh(W(3, 1, 16, 16, seed=3))
    real_label, fake_label = 1., 0.
    log = []
    for i in range(3):
        noise = W(3, 4, 1, 1, seed=50 + i)
        # (1) update D: maximize log(D(x)) + log(1 - D(G(z)))
        netD.zero_grad()
        label = torch.full((3,), real_label, dtype=torch.float)
        errD_real = criterion(netD(real), label)
        errD_real.backward()
        fake = netG(noise)
        label.fill_(fake_label)
        output = netD(fake.detach())
        errD_fake = criterion(output, label)
        errD_fake.backward(retain_graph=True)
        D_G_z1 = output.mean().item()
        optimizerD.step()
        # (2) update G: maximize log(D(G(z))), D frozen
        for p in netD.parameters():
            p.requires_grad_(False)
        netG.zero_grad()
        label.fill_(real_label)
        output = netD(fake)
        errG = criterion(output, label)
        errG.backward()
        optimizerG.step()
        for p in netD.parameters():
            p.requires_grad_(True)
        log.append([errD_real.item() + errD_fake.item(), errG.item(), D_G_z1])
    netG.eval()
    with torch.no_grad():
        sample = netG(W(2, 4, 1, 1, seed=99))
    return [log, sample, netD.main[5].weight_orig, netD.main[5].weight_u,
            netG.main[1].running_mean, [p.grad is None for p in netD.parameters()]]
