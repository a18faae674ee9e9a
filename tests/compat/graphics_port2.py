"""3D / image-synthesis model code in plain PyTorch, as the public repos write it: NeRF
(positional encoding, ray generation with meshgrid, volume rendering with `cumprod`,
hierarchical sampling through `searchsorted` on the weights' CDF), PointNet (an input
transform net regularized toward orthogonality, `bmm`, max pooling over points),
a CycleGAN ResNet generator (ReflectionPad2d, InstanceNorm2d, ConvTranspose2d with
output_padding, an image history pool, LSGAN and cycle losses), and a StyleGAN2-style
modulated convolution (weight demodulation, grouped conv over the batch, equalized
learning rate, noise injection)."""
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


# ---------------------------------------------------------------- NeRF
class Embedder:
    def __init__(self, multires, include_input=True):
        self.embed_fns = [lambda x: x] if include_input else []
        freq_bands = 2. ** torch.linspace(0., multires - 1, steps=multires)
        for freq in freq_bands:
            for p_fn in (torch.sin, torch.cos):
                self.embed_fns.append(lambda x, p_fn=p_fn, freq=freq: p_fn(x * freq))
        self.out_dim = 3 * len(self.embed_fns)

    def embed(self, inputs):
        return torch.cat([fn(inputs) for fn in self.embed_fns], -1)


class NeRF(nn.Module):
    def __init__(self, D=3, W_=16, input_ch=15, input_ch_views=9, skips=(1,)):
        super().__init__()
        self.skips = skips
        self.pts_linears = nn.ModuleList(
            [nn.Linear(input_ch, W_)] + [nn.Linear(W_, W_) if i not in skips else nn.Linear(W_ + input_ch, W_)
                                         for i in range(D - 1)])
        self.views_linears = nn.ModuleList([nn.Linear(input_ch_views + W_, W_ // 2)])
        self.feature_linear = nn.Linear(W_, W_)
        self.alpha_linear = nn.Linear(W_, 1)
        self.rgb_linear = nn.Linear(W_ // 2, 3)
        self.input_ch, self.input_ch_views = input_ch, input_ch_views

    def forward(self, x):
        input_pts, input_views = torch.split(x, [self.input_ch, self.input_ch_views], dim=-1)
        h = input_pts
        for i, l in enumerate(self.pts_linears):
            h = F.relu(self.pts_linears[i](h))
            if i in self.skips:
                h = torch.cat([input_pts, h], -1)
        alpha = self.alpha_linear(h)
        feature = self.feature_linear(h)
        h = torch.cat([feature, input_views], -1)
        for l in self.views_linears:
            h = F.relu(l(h))
        rgb = self.rgb_linear(h)
        return torch.cat([rgb, alpha], -1)


def get_rays(H, W_, focal, c2w):
    i, j = torch.meshgrid(torch.linspace(0, W_ - 1, W_), torch.linspace(0, H - 1, H), indexing="ij")
    i, j = i.t(), j.t()
    dirs = torch.stack([(i - W_ * .5) / focal, -(j - H * .5) / focal, -torch.ones_like(i)], -1)
    rays_d = torch.sum(dirs[..., np.newaxis, :] * c2w[:3, :3], -1)
    rays_o = c2w[:3, -1].expand(rays_d.shape)
    return rays_o, rays_d


def raw2outputs(raw, z_vals, rays_d, white_bkgd=False):
    raw2alpha = lambda raw, dists, act_fn=F.relu: 1. - torch.exp(-act_fn(raw) * dists)
    dists = z_vals[..., 1:] - z_vals[..., :-1]
    dists = torch.cat([dists, torch.Tensor([1e10]).expand(dists[..., :1].shape)], -1)
    dists = dists * torch.norm(rays_d[..., None, :], dim=-1)
    rgb = torch.sigmoid(raw[..., :3])
    alpha = raw2alpha(raw[..., 3], dists)
    weights = alpha * torch.cumprod(torch.cat([torch.ones((alpha.shape[0], 1)), 1. - alpha + 1e-10], -1), -1)[:, :-1]
    rgb_map = torch.sum(weights[..., None] * rgb, -2)
    depth_map = torch.sum(weights * z_vals, -1)
    disp_map = 1. / torch.max(1e-10 * torch.ones_like(depth_map), depth_map / torch.sum(weights, -1))
    acc_map = torch.sum(weights, -1)
    if white_bkgd:
        rgb_map = rgb_map + (1. - acc_map[..., None])
    return rgb_map, disp_map, acc_map, weights, depth_map


def sample_pdf(bins, weights, N_samples, u):
    weights = weights + 1e-5
    pdf = weights / torch.sum(weights, -1, keepdim=True)
    cdf = torch.cumsum(pdf, -1)
    cdf = torch.cat([torch.zeros_like(cdf[..., :1]), cdf], -1)
    u = u.contiguous()
    inds = torch.searchsorted(cdf, u, right=True)
    below = torch.max(torch.zeros_like(inds - 1), inds - 1)
    above = torch.min((cdf.shape[-1] - 1) * torch.ones_like(inds), inds)
    inds_g = torch.stack([below, above], -1)
    matched_shape = [inds_g.shape[0], inds_g.shape[1], cdf.shape[-1]]
    cdf_g = torch.gather(cdf.unsqueeze(1).expand(matched_shape), 2, inds_g)
    bins_g = torch.gather(bins.unsqueeze(1).expand(matched_shape), 2, inds_g)
    denom = (cdf_g[..., 1] - cdf_g[..., 0])
    denom = torch.where(denom < 1e-5, torch.ones_like(denom), denom)
    t = (u - cdf_g[..., 0]) / denom
    return bins_g[..., 0] + t * (bins_g[..., 1] - bins_g[..., 0])


def case_nerf_render_and_train():
    embed_pts, embed_dirs = Embedder(2), Embedder(1)
    model = NeRF(input_ch=embed_pts.out_dim, input_ch_views=embed_dirs.out_dim)
    set_weights(model, 0.4)
    c2w = torch.tensor([[1., 0, 0, 0.1], [0, 1, 0, -0.2], [0, 0, 1, 2.0]])
    rays_o, rays_d = get_rays(3, 4, 2.0, c2w)
    rays_o, rays_d = rays_o.reshape(-1, 3), rays_d.reshape(-1, 3)
    viewdirs = rays_d / torch.norm(rays_d, dim=-1, keepdim=True)
    near, far, n_samples = 1.0, 3.0, 6
    t_vals = torch.linspace(0., 1., steps=n_samples)
    z_vals = (near * (1. - t_vals) + far * t_vals).expand([rays_o.shape[0], n_samples])
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3, betas=(0.9, 0.999))
    target = torch.sigmoid(W(12, 3, seed=2))
    log = []
    for step in range(3):
        pts = rays_o[..., None, :] + rays_d[..., None, :] * z_vals[..., :, None]
        dirs = viewdirs[:, None].expand(pts.shape)
        inputs = torch.cat([embed_pts.embed(pts.reshape(-1, 3)), embed_dirs.embed(dirs.reshape(-1, 3))], -1)
        raw = model(inputs).reshape(pts.shape[0], n_samples, 4)
        rgb_map, disp_map, acc_map, weights, depth_map = raw2outputs(raw, z_vals, rays_d)
        img2mse = lambda x, y: torch.mean((x - y) ** 2)
        mse2psnr = lambda x: -10. * torch.log(x) / torch.log(torch.Tensor([10.]))
        loss = img2mse(rgb_map, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        log.append([loss.item(), mse2psnr(loss.detach()).item()])
    z_mid = .5 * (z_vals[..., 1:] + z_vals[..., :-1])
    u = torch.linspace(0., 1., steps=5).expand(list(z_mid.shape[:-1]) + [5])
    z_fine = sample_pdf(z_mid, weights[..., 1:-1].detach(), 5, u)
    z_all, _ = torch.sort(torch.cat([z_vals, z_fine], -1), -1)
    return [log, rgb_map, disp_map, depth_map, z_fine, z_all[:2], rays_d[:3]]


# ---------------------------------------------------------------- PointNet
class STNkd(nn.Module):
    def __init__(self, k=3):
        super().__init__()
        self.conv1 = nn.Conv1d(k, 16, 1)
        self.conv2 = nn.Conv1d(16, 32, 1)
        self.fc1 = nn.Linear(32, 16)
        self.fc2 = nn.Linear(16, k * k)
        self.bn1, self.bn2, self.bn3 = nn.BatchNorm1d(16), nn.BatchNorm1d(32), nn.BatchNorm1d(16)
        self.k = k

    def forward(self, x):
        batchsize = x.size()[0]
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = torch.max(x, 2, keepdim=True)[0]
        x = x.view(-1, 32)
        x = F.relu(self.bn3(self.fc1(x)))
        x = self.fc2(x)
        iden = torch.eye(self.k, dtype=torch.float32).flatten().view(1, self.k * self.k).repeat(batchsize, 1)
        x = x + iden
        return x.view(-1, self.k, self.k)


class PointNetCls(nn.Module):
    def __init__(self, k=4, feature_transform=True):
        super().__init__()
        self.stn = STNkd(3)
        self.conv1 = nn.Conv1d(3, 16, 1)
        self.conv2 = nn.Conv1d(16, 32, 1)
        self.bn1, self.bn2 = nn.BatchNorm1d(16), nn.BatchNorm1d(32)
        self.feature_transform = feature_transform
        if feature_transform:
            self.fstn = STNkd(k=16)
        self.fc1 = nn.Linear(32, 16)
        self.dropout = nn.Dropout(p=0.0)
        self.fc2 = nn.Linear(16, k)

    def forward(self, x):
        trans = self.stn(x)
        x = torch.bmm(x.transpose(2, 1), trans).transpose(2, 1)
        x = F.relu(self.bn1(self.conv1(x)))
        trans_feat = None
        if self.feature_transform:
            trans_feat = self.fstn(x)
            x = torch.bmm(x.transpose(2, 1), trans_feat).transpose(2, 1)
        x = self.bn2(self.conv2(x))
        x = torch.max(x, 2, keepdim=True)[0].view(-1, 32)
        x = F.relu(self.fc1(x))
        return F.log_softmax(self.fc2(self.dropout(x)), dim=1), trans, trans_feat


def feature_transform_regularizer(trans):
    d = trans.size()[1]
    I = torch.eye(d)[None, :, :]
    return torch.mean(torch.norm(torch.bmm(trans, trans.transpose(2, 1)) - I, dim=(1, 2)))


def case_pointnet():
    model = PointNetCls()
    set_weights(model, 0.3)
    points = W(3, 3, 10, seed=5)
    target = torch.tensor([0, 3, 1])
    # SGD, not the repo's Adam: the biases before BatchNorm get gradients that are zero
    # up to rounding, which Adam's normalization turns into full steps of either sign
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    losses = []
    for _ in range(3):
        optimizer.zero_grad()
        model = model.train()
        pred, trans, trans_feat = model(points)
        loss = F.nll_loss(pred, target) + feature_transform_regularizer(trans_feat) * 0.001
        loss.backward()
        optimizer.step()
        scheduler.step()
        pred_choice = pred.data.max(1)[1]
        losses.append([loss.item(), pred_choice.eq(target.data).cpu().sum().item()])
    model.eval()
    pred, trans, _ = model(points)
    return [losses, pred, trans, model.stn.bn1.running_mean]


# ---------------------------------------------------------------- CycleGAN
class ResnetBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=True),
            nn.InstanceNorm2d(dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=True),
            nn.InstanceNorm2d(dim))

    def forward(self, x):
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    def __init__(self, input_nc=3, output_nc=3, ngf=4, n_blocks=1):
        super().__init__()
        model = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0),
                 nn.InstanceNorm2d(ngf), nn.ReLU(True)]
        for i in range(2):
            mult = 2 ** i
            model += [nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1),
                      nn.InstanceNorm2d(ngf * mult * 2), nn.ReLU(True)]
        mult = 4
        model += [ResnetBlock(ngf * mult) for _ in range(n_blocks)]
        for i in range(2):
            mult = 2 ** (2 - i)
            model += [nn.ConvTranspose2d(ngf * mult, int(ngf * mult / 2), kernel_size=3, stride=2,
                                         padding=1, output_padding=1),
                      nn.InstanceNorm2d(int(ngf * mult / 2)), nn.ReLU(True)]
        model += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*model)

    def forward(self, input):
        return self.model(input)


class NLayerDiscriminator(nn.Module):
    def __init__(self, input_nc=3, ndf=4):
        super().__init__()
        self.model = nn.Sequential(
            nn.Conv2d(input_nc, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 4, 1, 1, bias=False), nn.InstanceNorm2d(ndf * 2, affine=True),
            nn.LeakyReLU(0.2, True), nn.Conv2d(ndf * 2, 1, 4, 1, 1))

    def forward(self, input):
        return self.model(input)


class ImagePool:
    """A history of generated images (deterministic here: returns the newest half)."""

    def __init__(self, pool_size):
        self.pool_size = pool_size
        self.images = []

    def query(self, images):
        return_images = []
        for image in images:
            image = torch.unsqueeze(image.data, 0)
            if len(self.images) < self.pool_size:
                self.images.append(image)
                return_images.append(image)
            else:
                tmp = self.images[0].clone()
                self.images[0] = image
                return_images.append(tmp)
        return torch.cat(return_images, 0)


def set_requires_grad(nets, requires_grad=False):
    for net in nets if isinstance(nets, list) else [nets]:
        for param in net.parameters():
            param.requires_grad = requires_grad


def case_cyclegan_step():
    G_A, G_B = ResnetGenerator(), ResnetGenerator()
    D_A = NLayerDiscriminator()
    for net in (G_A, G_B, D_A):
        set_weights(net, 0.1)
    import itertools
    # SGD, not the repo's Adam: the conv biases before InstanceNorm get gradients that are
    # zero up to rounding, which Adam's normalization turns into full steps of either sign
    optimizer_G = torch.optim.SGD(itertools.chain(G_A.parameters(), G_B.parameters()), lr=0.02, momentum=0.5)
    optimizer_D = torch.optim.SGD(D_A.parameters(), lr=0.02, momentum=0.5)
    criterionGAN, criterionCycle = nn.MSELoss(), nn.L1Loss()
    pool = ImagePool(1)
    real_A, real_B = torch.tanh(W(2, 3, 16, 16, seed=1)), torch.tanh(W(2, 3, 16, 16, seed=2))
    log = []
    # one step: instance norms over small maps make this model ill-conditioned (torch's
    # own float32 gradients are 2e-5 from float64's), so later steps drift past 1e-4
    for _ in range(1):
        fake_B = G_A(real_A)
        rec_A = G_B(fake_B)
        set_requires_grad([D_A], False)
        optimizer_G.zero_grad()
        pred = D_A(fake_B)
        loss_G = criterionGAN(pred, torch.ones_like(pred)) + criterionCycle(rec_A, real_A) * 10.0
        loss_G.backward()
        optimizer_G.step()
        set_requires_grad([D_A], True)
        optimizer_D.zero_grad()
        fake = pool.query(fake_B)
        pred_real, pred_fake = D_A(real_B), D_A(fake.detach())
        loss_D = (criterionGAN(pred_real, torch.ones_like(pred_real)) +
                  criterionGAN(pred_fake, torch.zeros_like(pred_fake))) * 0.5
        loss_D.backward()
        optimizer_D.step()
        log.append([loss_G.item(), loss_D.item()])
    return [log, fake_B, D_A.model[3].weight, G_A.model[1].weight]


# ---------------------------------------------------------------- StyleGAN2 modulated conv
class EqualLinear(nn.Module):
    def __init__(self, in_dim, out_dim, bias_init=0, lr_mul=1):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.zeros(out_dim).fill_(bias_init))
        self.scale = (1 / math.sqrt(in_dim)) * lr_mul
        self.lr_mul = lr_mul

    def forward(self, input):
        return F.linear(input, self.weight * self.scale, bias=self.bias * self.lr_mul)


class ModulatedConv2d(nn.Module):
    def __init__(self, in_channel, out_channel, kernel_size, style_dim, demodulate=True, upsample=False):
        super().__init__()
        self.eps = 1e-8
        self.kernel_size = kernel_size
        self.in_channel, self.out_channel = in_channel, out_channel
        self.upsample = upsample
        fan_in = in_channel * kernel_size ** 2
        self.scale = 1 / math.sqrt(fan_in)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.randn(1, out_channel, in_channel, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_channel, bias_init=1)
        self.demodulate = demodulate

    def forward(self, input, style):
        batch, in_channel, height, width = input.shape
        style = self.modulation(style).view(batch, 1, in_channel, 1, 1)
        weight = self.scale * self.weight * style
        if self.demodulate:
            demod = torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8)
            weight = weight * demod.view(batch, self.out_channel, 1, 1, 1)
        if self.upsample:
            input = input.view(1, batch * in_channel, height, width)
            weight = weight.view(batch, self.out_channel, in_channel, self.kernel_size, self.kernel_size)
            weight = weight.transpose(1, 2).reshape(batch * in_channel, self.out_channel, self.kernel_size, self.kernel_size)
            out = F.conv_transpose2d(input, weight, padding=0, stride=2, groups=batch)
            _, _, height, width = out.shape
            return out.view(batch, self.out_channel, height, width)
        weight = weight.view(batch * self.out_channel, in_channel, self.kernel_size, self.kernel_size)
        input = input.view(1, batch * in_channel, height, width)
        out = F.conv2d(input, weight, padding=self.padding, groups=batch)
        _, _, height, width = out.shape
        return out.view(batch, self.out_channel, height, width)


class StyledConv(nn.Module):
    def __init__(self, in_channel, out_channel, kernel_size, style_dim, upsample=False):
        super().__init__()
        self.conv = ModulatedConv2d(in_channel, out_channel, kernel_size, style_dim, upsample=upsample)
        self.noise_weight = nn.Parameter(torch.zeros(1))
        self.activate_bias = nn.Parameter(torch.zeros(1, out_channel, 1, 1))

    def forward(self, input, style, noise):
        out = self.conv(input, style)
        out = out + self.noise_weight * noise
        return F.leaky_relu(out + self.activate_bias, negative_slope=0.2) * math.sqrt(2)


class TinyStyleGen(nn.Module):
    def __init__(self, style_dim=6):
        super().__init__()
        self.style = nn.Sequential(*[EqualLinear(style_dim, style_dim, lr_mul=0.01) for _ in range(2)])
        self.input = nn.Parameter(torch.randn(1, 4, 4, 4))
        self.conv1 = StyledConv(4, 4, 3, style_dim)
        self.up = StyledConv(4, 3, 3, style_dim, upsample=True)

    def forward(self, z, noises, truncation=1.0, mean_latent=None):
        w = self.style(z / torch.sqrt(torch.mean(z ** 2, dim=1, keepdim=True) + 1e-8))
        if truncation < 1:
            w = mean_latent + truncation * (w - mean_latent)
        out = self.input.repeat(z.shape[0], 1, 1, 1)
        out = self.conv1(out, w, noises[0])
        return self.up(out, w, noises[1]), w


def case_stylegan_modulated_conv():
    model = TinyStyleGen()
    set_weights(model, 0.5)
    z = W(2, 6, seed=3)
    noises = [W(2, 1, 4, 4, seed=4), W(2, 1, 9, 9, seed=5)]
    img, w = model(z, noises)
    mean_latent = model.style(W(8, 6, seed=6)).mean(0, keepdim=True)
    img_t, _ = model(z, noises, truncation=0.7, mean_latent=mean_latent)
    # path length regularization-style gradient of the image w.r.t. the latents
    w_req = w.detach().requires_grad_()
    out = model.up(model.conv1(model.input.repeat(2, 1, 1, 1), w_req, noises[0]), w_req, noises[1])
    noise = W(*out.shape, seed=7) / math.sqrt(out.shape[2] * out.shape[3])
    (grad,) = torch.autograd.grad((out * noise).sum(), w_req, create_graph=True)
    path_lengths = torch.sqrt(grad.pow(2).sum(1))
    path_lengths.mean().backward()
    return [img, img_t, grad, path_lengths, model.conv1.conv.weight.grad, model.style[0].weight.grad]
