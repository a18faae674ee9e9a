"""Printing and bookkeeping users do around their models, and losses with options."""
import collections
import copy
import io

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def t(*shape, seed=0, scale=1.0):
    return torch.from_numpy((np.random.default_rng(seed).standard_normal(shape) * scale)
                            .astype(np.float32))


class Scale(nn.Module):
    def __init__(self, s=2.0):
        super().__init__()
        self.s = s
        self.register_buffer("running", torch.zeros(2))
        self.register_buffer("tmp", torch.ones(1), persistent=False)

    def extra_repr(self):
        return f"s={self.s}"

    def forward(self, x):
        return x * self.s


def case_module_reprs():
    blocks = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)] + [nn.ReLU()])
    seq = nn.Sequential(collections.OrderedDict([("scale", Scale()), ("act", nn.Tanh()),
                                                 ("blocks", blocks)]))
    return (str(seq).splitlines(), repr(nn.ParameterList([nn.Parameter(torch.ones(2))])),
            repr(nn.ParameterDict({"a": nn.Parameter(torch.ones(1))})).splitlines(),
            str(nn.Sequential()), repr(Scale(3.0)),
            list(seq.state_dict()), [n for n, _ in seq.named_buffers()],
            [n for n, _ in seq.named_modules()][:4], repr(torch.Size([2, 3])),
            repr(seq.state_dict()["scale.running"]))


def case_state_dict_and_parameter_bookkeeping():
    shared = nn.Linear(3, 3)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    n_unique = sum(p.numel() for p in model.parameters())
    names = [n for n, _ in model.named_parameters()]
    all_names = [n for n, _ in model.named_parameters(remove_duplicate=False)]
    vec = nn.utils.parameters_to_vector(model.parameters())
    nn.utils.vector_to_parameters(torch.arange(float(vec.numel())), model.parameters())
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    whole = torch.load(buf, weights_only=False)
    counts = collections.Counter(type(m).__name__ for m in model.modules())
    return (n_unique, names, all_names, vec.shape, shared.bias, type(whole).__name__,
            whole[2] is whole[0], dict(counts), list(model.state_dict().keys()))


def case_losses_with_options():
    logits = t(4, 5, seed=1)
    target = torch.tensor([1, 0, 4, -100])
    probs = F.softmax(t(4, 5, seed=2), -1)
    weight = torch.tensor([1.0, 2.0, 0.5, 1.0, 1.0])
    seq_logits = t(2, 5, 3, seed=3)
    seq_target = torch.tensor([[0, 1, 2], [4, -100, 3]])
    return (F.cross_entropy(logits, target, weight=weight, ignore_index=-100),
            F.cross_entropy(logits, probs, label_smoothing=0.2),
            F.cross_entropy(seq_logits, seq_target, reduction="none"),
            F.nll_loss(F.log_softmax(logits, 1), target.clamp(min=0), reduction="sum"),
            F.kl_div(F.log_softmax(logits, -1), F.log_softmax(t(4, 5, seed=4), -1),
                     reduction="batchmean", log_target=True),
            F.smooth_l1_loss(logits, probs, beta=0.5), F.huber_loss(logits, probs, delta=0.3),
            F.binary_cross_entropy_with_logits(logits, probs, reduction="none").mean(0),
            F.margin_ranking_loss(logits[:, 0], logits[:, 1], torch.tensor([1.0, -1, 1, -1])),
            F.triplet_margin_loss(logits, probs, t(4, 5, seed=5)),
            F.cosine_embedding_loss(logits, probs, torch.tensor([1, -1, 1, -1])),
            F.multilabel_soft_margin_loss(logits, (probs > 0.2).float()),
            F.poisson_nll_loss(logits, probs.mul(3)), F.gaussian_nll_loss(logits, probs,
                                                                          probs + 0.1))


def case_interpolate_grid_sample_embedding_bag():
    img = t(1, 2, 6, 6, seed=6)
    theta = torch.tensor([[[0.9, 0.1, 0.05], [-0.1, 0.8, 0.0]]])
    grid = F.affine_grid(theta, (1, 2, 4, 4), align_corners=False)
    bag = nn.EmbeddingBag(6, 3, mode="mean")
    with torch.no_grad():
        bag.weight.copy_(t(6, 3, seed=7))
    return (F.interpolate(img, size=(3, 3), mode="bilinear", antialias=True),
            F.interpolate(img, scale_factor=0.5, mode="area"),
            F.interpolate(img, size=(9, 9), mode="bicubic", align_corners=False),
            F.grid_sample(img, grid, mode="bilinear", padding_mode="border",
                          align_corners=False),
            bag(torch.tensor([1, 2, 4, 5, 4]), torch.tensor([0, 2])),
            F.pad(img, (1, 1, 2, 0), mode="reflect").shape,
            F.unfold(img, kernel_size=3, stride=2).shape)


def case_deepcopy_optimizer_and_lr_in_loop():
    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.5, -0.5]]))
        model.bias.fill_(0.1)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    x = t(4, 2, seed=8)
    model(x).sum().backward()
    opt.step()
    twin = copy.deepcopy(opt)
    for g in opt.param_groups:
        g["lr"] = 0.05
    return (twin.param_groups[0]["lr"], opt.param_groups[0]["lr"],
            twin.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["step"])


def case_module_api_corners():
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    model.add_module("head", nn.Linear(3, 1))
    model.register_module("tail", nn.Identity())
    half = copy.deepcopy(model).half()
    dtypes = {k: v.dtype for k, v in half.state_dict().items()}
    model.requires_grad_(False)
    flags = [p.requires_grad for p in model.parameters()]
    model.train(False)
    sd = model.state_dict(prefix="net.", keep_vars=True)
    with torch.device("meta"):
        meta_model = nn.Linear(2, 3)
    empty = meta_model.to_empty(device="cpu")
    fresh = nn.Linear(2, 3)
    result = fresh.load_state_dict(model[0].state_dict(), assign=True)
    model.zero_grad()
    return (dtypes, flags, model.training, model[1].training, sorted(sd),
            type(sd["net.0.weight"]).__name__, model.get_submodule("head").out_features,
            model.get_parameter("0.bias").shape, meta_model.weight.device.type,
            empty.weight.shape, fresh.weight is model[0].weight, repr(result),
            [n for n, _ in model.named_parameters(prefix="m")], model[0].weight.grad)


def case_conv_and_pool_options():
    x1 = t(1, 2, 9, seed=20)
    x2 = t(1, 2, 7, 7, seed=21)
    x3 = t(1, 1, 4, 4, 4, seed=22)
    torch.manual_seed(0)
    c_same = nn.Conv1d(2, 3, 3, padding="same", dilation=2)
    c_circ = nn.Conv2d(2, 2, 3, padding=1, padding_mode="circular")
    c_refl = nn.Conv2d(2, 2, 3, padding=2, padding_mode="reflect", stride=2)
    ct = nn.ConvTranspose1d(2, 2, 3, stride=2, padding=1, output_padding=1)
    for i, m in enumerate((c_same, c_circ, c_refl, ct)):
        with torch.no_grad():
            for j, p in enumerate(m.parameters()):
                p.copy_(t(*p.shape, seed=30 + 10 * i + j))
    pooled, idx = F.max_pool2d(x2, 2, stride=2, return_indices=True, ceil_mode=True)
    return (c_same(x1), c_circ(x2), c_refl(x2), ct(x1),
            F.avg_pool2d(x2, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
            pooled, idx, F.max_unpool2d(pooled, idx, 2, stride=2, output_size=x2.shape[-2:]),
            F.interpolate(x1, scale_factor=1.5, mode="linear", align_corners=False),
            F.interpolate(x3, size=(2, 3, 5), mode="trilinear"),
            F.adaptive_avg_pool2d(x2, (3, 2)), F.adaptive_max_pool1d(x1, 4),
            F.lp_pool2d(x2.abs(), 2, 3), nn.PixelShuffle(2)(t(1, 8, 2, 2, seed=23)))
