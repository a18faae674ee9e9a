"""Behaviour from PyTorch's test_nn.py (TestNN / TestNNDeviceType, the parts not driven by
common_nn's dicts): normalization buffers, grad utilities, resampling and shape errors,
attention, run under torch and ember."""
from __future__ import annotations

import pytest

from nn_suite_harness import cases_of, run_both


def case_module_hook_dicts_exist(torch, nn, F, h):
    m = nn.Linear(1, 1)
    names = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
             "_state_dict_hooks", "_state_dict_pre_hooks", "_load_state_dict_pre_hooks",
             "_load_state_dict_post_hooks", "_forward_hooks_with_kwargs",
             "_forward_hooks_always_called", "_forward_pre_hooks_with_kwargs")
    return [(n, len(getattr(m, n))) for n in names]


def case_batchnorm_running_stats_momentum(torch, nn, F, h):
    out = []
    for kwargs in ({}, {"momentum": None}, {"momentum": 0.5}, {"track_running_stats": False},
                   {"affine": False}):
        bn = nn.BatchNorm1d(3, **kwargs)
        for seed in range(3):
            y = bn(h.randn(8, 3, seed=seed))
        out += [y, bn.running_mean, bn.running_var, bn.num_batches_tracked,
                [n for n, _ in bn.named_buffers()], list(bn.state_dict().keys()), repr(bn)]
        bn.eval()
        out.append(bn(h.randn(4, 3, seed=9)))
    out.append(h.raises(lambda: nn.BatchNorm1d(3)(h.randn(1, 3)),
                        "Expected more than 1 value per channel when training"))
    out.append(h.raises(lambda: nn.BatchNorm2d(3)(h.randn(2, 3, 4)), "expected 4D input"))
    bn = nn.BatchNorm1d(3)
    bn.reset_running_stats()
    out.append((bn.running_mean, bn.running_var, bn.num_batches_tracked))
    return out


def case_batchnorm_load_old_state_without_num_batches(torch, nn, F, h):
    bn = h.det(nn.BatchNorm2d(2))
    sd = bn.state_dict()
    del sd["num_batches_tracked"]
    sd._metadata[""]["version"] = 1  # saved before num_batches_tracked existed
    fresh = nn.BatchNorm2d(2)
    res = fresh.load_state_dict(sd)
    return res.missing_keys, fresh.num_batches_tracked, fresh.running_mean


def case_layer_group_norm_shapes_and_errors(torch, nn, F, h):
    x = h.randn(2, 6, 4, requires_grad=True)
    ln = h.det(nn.LayerNorm([6, 4], elementwise_affine=True))
    gn = h.det(nn.GroupNorm(3, 6))
    rn = h.det(nn.RMSNorm([4]))
    y = ln(x) + gn(x) + rn(x)
    y.sum().backward()
    return (y, x.grad, repr(ln), repr(gn), repr(rn), repr(nn.LayerNorm(4, bias=False)),
            h.raises(lambda: ln(h.randn(2, 5, 4)), "normalized_shape"),
            h.raises(lambda: nn.GroupNorm(4, 6), "must be divisible by num_groups"),
            h.raises(lambda: gn(h.randn(2, 4, 3)), "divisible by num_groups"))


def case_instance_norm_running_stats(torch, nn, F, h):
    m = nn.InstanceNorm1d(3, track_running_stats=True, affine=True)
    y = m(h.randn(2, 3, 5))
    m.eval()
    z = m(h.randn(2, 3, 5, seed=1))
    return y, z, m.running_mean, m.running_var, repr(m)


def case_clip_grad_norm_and_value(torch, nn, F, h):
    m = h.det(nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2)))
    m(h.randn(5, 4)).pow(2).sum().backward()
    total = nn.utils.clip_grad_norm_(m.parameters(), max_norm=0.5)
    grads = [p.grad.clone() for p in m.parameters()]
    m2 = h.det(nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2)))
    m2(h.randn(5, 4)).pow(2).sum().backward()
    inf = nn.utils.clip_grad_norm_(m2.parameters(), 0.1, norm_type="inf")
    m3 = h.det(nn.Linear(4, 3))
    m3(h.randn(5, 4)).sum().backward()
    nn.utils.clip_grad_value_(m3.parameters(), 0.3)
    p = nn.Parameter(torch.ones(2))
    p.grad = torch.tensor([float("nan"), 1.0])
    return (total, grads, inf, [q.grad for q in m2.parameters()], m3.weight.grad,
            nn.utils.clip_grad_norm_([], 1.0),
            h.raises(lambda: nn.utils.clip_grad_norm_([p], 1.0, error_if_nonfinite=True),
                     "non-finite"),
            nn.utils.clip_grad_norm_([nn.Parameter(torch.ones(1))], 1.0))


def case_parameters_vector_roundtrip(torch, nn, F, h):
    m = h.det(nn.Sequential(nn.Linear(2, 3), nn.Conv1d(1, 2, 2)))
    v = nn.utils.parameters_to_vector(m.parameters())
    nn.utils.vector_to_parameters(v * 2, m.parameters())
    return (v, [p for p in m.parameters()],
            h.raises(lambda: nn.utils.vector_to_parameters([1.0], m.parameters()),
                     "expected torch.Tensor", "list"))


def case_interpolate_modes_and_errors(torch, nn, F, h):
    x = h.randn(1, 2, 4, 5, requires_grad=True)
    out = [F.interpolate(x, scale_factor=2, mode="nearest"),
           F.interpolate(x, size=(7, 3), mode="bilinear", align_corners=True),
           F.interpolate(x, scale_factor=1.5, mode="bicubic", align_corners=False),
           F.interpolate(x, size=(3, 8), mode="nearest-exact"),
           F.interpolate(x, scale_factor=(0.5, 1.7), mode="area"),
           F.interpolate(x, scale_factor=1.3, mode="bilinear", recompute_scale_factor=True),
           F.interpolate(h.randn(1, 2, 6), size=4, mode="linear"),
           F.interpolate(h.randn(1, 1, 2, 3, 4), scale_factor=2, mode="trilinear"),
           F.interpolate(x, scale_factor=2, mode="bilinear", antialias=False)]
    sum(o.sum() for o in out[:6]).backward()
    out.append(x.grad)
    out.append(h.raises(lambda: F.interpolate(x, size=(2, 2), scale_factor=2),
                        "only one of size or scale_factor should be defined"))
    out.append(h.raises(lambda: F.interpolate(x), "either size or scale_factor should be defined"))
    out.append(h.raises(lambda: F.interpolate(x, size=2, mode="linear"), "Got 4D input", "linear"))
    out.append(h.raises(lambda: F.interpolate(x, scale_factor=2, mode="nearest", align_corners=True),
                        "align_corners option can only be set"))
    out.append(h.raises(lambda: F.interpolate(x, size=(1, 2, 3)), "spatial dimensions"))
    out.append(h.raises(lambda: F.interpolate(x, scale_factor=2, mode="bogus"), "bogus"))
    up = nn.Upsample(scale_factor=2, mode="bilinear")
    out += [repr(up), repr(nn.Upsample(size=3)), repr(nn.UpsamplingNearest2d(scale_factor=2))]
    return out


def case_pixel_shuffle_fold_unfold(torch, nn, F, h):
    x = h.randn(1, 8, 3, 3)
    out = [nn.PixelShuffle(2)(x), nn.PixelUnshuffle(3)(x), nn.ChannelShuffle(4)(x),
           repr(nn.PixelShuffle(2)), repr(nn.ChannelShuffle(2))]
    out.append(h.raises(lambda: F.pixel_shuffle(h.randn(1, 3, 2, 2), 2), "divisible by"))
    out.append(h.raises(lambda: F.pixel_unshuffle(h.randn(1, 1, 3, 3), 2), "divisible by"))
    u = F.unfold(h.randn(2, 3, 5, 6), kernel_size=(2, 3), padding=1, stride=2, dilation=1)
    out.append(u)
    out.append(F.fold(u, output_size=(5, 6), kernel_size=(2, 3), padding=1, stride=2))
    out.append(repr(nn.Fold(output_size=(4, 4), kernel_size=2)))
    out.append(h.raises(lambda: F.fold(h.randn(1, 5, 9), (4, 4), 2), "divisible by the product of kernel_size"))
    return out


def case_pad_modes_and_errors(torch, nn, F, h):
    x = h.randn(1, 2, 4, 5)
    out = [F.pad(x, (1, 2)), F.pad(x, (1, 1, 2, 0), mode="reflect"),
           F.pad(x, (2, 2, 1, 1), mode="replicate"), F.pad(x, (1, 2, 3, 1), mode="circular"),
           F.pad(x, (-1, 1, 0, -2), value=3.0), F.pad(x, (1, 1), value=-1.5)]
    out.append(h.raises(lambda: F.pad(x, (1,)), "Padding length must be divisible by 2"))
    out.append(h.raises(lambda: F.pad(x, (1, 1, 1, 1, 1, 1, 1, 1, 1, 1)), "Padding length"))
    out.append(h.raises(lambda: F.pad(h.randn(1, 2, 4), (5, 5), mode="reflect"),
                        "Padding size should be less than the corresponding input dimension"))
    out.append(h.raises(lambda: F.pad(x, (1, 1), mode="bogus"), "bogus"))
    out.append(repr(nn.ReflectionPad2d((1, 0, 2, 3))))
    out.append(repr(nn.ConstantPad1d(2, 3.5)))
    return out


def case_cosine_pairwise_pdist(torch, nn, F, h):
    a, b = h.randn(4, 5, seed=1, requires_grad=True), h.randn(4, 5, seed=2)
    out = [F.cosine_similarity(a, b), F.cosine_similarity(a, b, dim=0, eps=1e-3),
           F.pairwise_distance(a, b), F.pairwise_distance(a, b, p=1.0, keepdim=True),
           F.pdist(a), F.pdist(a, p=3), torch.cdist(a, b),
           nn.CosineSimilarity(dim=0)(a, b), nn.PairwiseDistance(p=2.5)(a, b)]
    sum(o.sum() for o in out).backward()
    out.append(a.grad)
    out.append(F.cosine_similarity(torch.zeros(3), torch.zeros(3), dim=0))
    out.append(h.raises(lambda: F.pdist(h.randn(2, 3, 4)), "pdist only supports 2D tensors"))
    return out


def case_one_hot_and_embedding_utils(torch, nn, F, h):
    idx = torch.tensor([0, 3, 1])
    return (F.one_hot(idx), F.one_hot(idx, num_classes=5), F.one_hot(torch.tensor([[1], [2]])),
            h.raises(lambda: F.one_hot(idx, num_classes=2), "Class values must be smaller than num_classes"),
            h.raises(lambda: F.one_hot(torch.tensor([-1, 0])), "Class values must be non-negative"),
            h.raises(lambda: F.one_hot(torch.tensor([1.0])), "Long"))


def case_softmax_family_dims(torch, nn, F, h):
    x = h.randn(2, 3, 4)
    out = [F.softmax(x, dim=1), F.log_softmax(x, dim=-1), F.softmin(x, dim=0),
           F.softmax(x, dim=1, dtype=torch.float64), F.gumbel_softmax(x, tau=1.0, hard=True).sum(-1),
           nn.Softmax(dim=-1)(x), repr(nn.Softmax(dim=1)), repr(nn.LogSoftmax(1)),
           F.softmax(torch.tensor([float("-inf"), 0.0]), dim=0),
           F.softmax(torch.full((3,), float("-inf")), dim=0)]
    return out


def case_multihead_attention(torch, nn, F, h):
    mha = h.det(nn.MultiheadAttention(8, 2, batch_first=True, dropout=0.0))
    q, k = h.randn(2, 3, 8, seed=1), h.randn(2, 5, 8, seed=2)
    mask = torch.tensor([[False, False, True, True, False], [False, True, False, False, False]])
    out, w = mha(q, k, k, key_padding_mask=mask)
    out2, w2 = mha(q, k, k, need_weights=True, average_attn_weights=False)
    attn_mask = torch.triu(torch.ones(3, 5, dtype=torch.bool), diagonal=1)
    out3, _ = mha(q, k, k, attn_mask=attn_mask, need_weights=False)
    kv = nn.MultiheadAttention(8, 2, kdim=4, vdim=6)
    return (out, w, out2, w2, out3, [n for n, _ in mha.named_parameters()],
            [n for n, _ in kv.named_parameters()],
            h.raises(lambda: nn.MultiheadAttention(7, 2), "embed_dim must be divisible by num_heads"),
            h.raises(lambda: mha(h.randn(2, 3, 6), k, k), "was expecting embedding dimension of 8"))


def case_transformer_layer_args(torch, nn, F, h):
    enc = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, batch_first=True)
    h.det(enc)
    enc.eval()
    x = h.randn(2, 4, 8)
    mask = nn.Transformer.generate_square_subsequent_mask(4)
    out = [enc(x), enc(x, src_mask=mask, is_causal=True), mask,
           [n for n, _ in enc.named_parameters()]]
    stack = nn.TransformerEncoder(enc, num_layers=2, enable_nested_tensor=False)
    out.append([n for n, _ in stack.named_parameters()][:4])
    out.append(stack(x))
    out.append(h.raises(lambda: nn.TransformerEncoderLayer(8, 2, activation="bogus"), "bogus"))
    dec = h.det(nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, norm_first=True)).eval()
    out.append(dec(h.randn(3, 2, 8, seed=3), h.randn(4, 2, 8, seed=4)))
    return out


def case_loss_reductions_and_errors(torch, nn, F, h):
    x = h.randn(4, 3, requires_grad=True)
    t = torch.tensor([0, 2, 1, 2])
    out = [F.cross_entropy(x, t, reduction="none"), F.cross_entropy(x, t, weight=torch.tensor([1.0, 2.0, 0.5])),
           F.cross_entropy(x, t, label_smoothing=0.2), F.nll_loss(F.log_softmax(x, 1), t, ignore_index=2),
           F.mse_loss(x, x.detach() * 0.5, reduction="sum"), F.l1_loss(x, torch.zeros(4, 3)),
           F.smooth_l1_loss(x, torch.zeros(4, 3), beta=0.5), F.huber_loss(x, torch.zeros(4, 3), delta=0.3),
           F.binary_cross_entropy_with_logits(x, torch.ones(4, 3) * 0.3, pos_weight=torch.tensor([1.0, 2.0, 3.0])),
           F.binary_cross_entropy(torch.sigmoid(x), torch.ones(4, 3) * 0.3),
           nn.CrossEntropyLoss(reduction="sum")(x, t), repr(nn.CrossEntropyLoss()),
           F.kl_div(F.log_softmax(x, 1), F.softmax(x.detach() * 2, 1), reduction="batchmean"),
           F.margin_ranking_loss(x[:, 0], x[:, 1], torch.tensor([1.0, -1.0, 1.0, -1.0])),
           F.triplet_margin_loss(x, x.detach() + 0.1, x.detach() * 2),
           F.cosine_embedding_loss(x, x.detach().flip(0), torch.tensor([1, -1, 1, -1]))]
    sum(o.sum() for o in out if hasattr(o, "sum")).backward()
    out.append(x.grad)
    out.append(h.raises(lambda: F.mse_loss(x, x, reduction="bogus"), "is not a valid value for reduction"))
    out.append(h.raises(lambda: F.cross_entropy(x, torch.tensor([0, 1])), "batch_size"))
    out.append(h.raises(lambda: F.nll_loss(x, torch.tensor([0, 1, 2, 3])), "out of bounds"))
    out.append(h.raises(lambda: F.binary_cross_entropy(torch.sigmoid(x), torch.ones(4, 2)), "size"))
    return out


def case_activation_modules_inplace_and_repr(torch, nn, F, h):
    x = h.randn(3, 4)
    out = []
    for mod in (nn.ReLU(inplace=True), nn.LeakyReLU(0.2, inplace=True), nn.ELU(alpha=0.5, inplace=True),
                nn.Hardtanh(-0.5, 0.5, inplace=True), nn.ReLU6(inplace=True), nn.SiLU(inplace=True),
                nn.Hardswish(inplace=True), nn.Mish(inplace=True), nn.CELU(inplace=True),
                nn.SELU(inplace=True), nn.Threshold(0.1, 20.0, inplace=True), nn.RReLU(inplace=True).eval()):
        y = x.clone()
        r = mod(y)
        out += [repr(mod), r is y, y]
    out += [repr(nn.GELU(approximate="tanh")), repr(nn.Softplus(beta=2, threshold=10)),
            repr(nn.PReLU(3)), repr(nn.Hardshrink(0.3)), repr(nn.GLU(dim=0))]
    out.append(h.raises(lambda: F.glu(h.randn(3, 3)), "Halving dimension must be even"))
    return out


def case_rnn_api(torch, nn, F, h):
    lstm = h.det(nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True, proj_size=2))
    x = h.randn(2, 5, 3)
    y, (hn, cn) = lstm(x)
    gru = h.det(nn.GRU(3, 4))
    y2, h2 = gru(h.randn(5, 3, seed=1))  # unbatched
    cell = h.det(nn.LSTMCell(3, 4))
    hc = cell(h.randn(2, 3))
    return (y, hn, cn, [n for n, _ in lstm.named_parameters()], list(lstm.state_dict().keys())[:6],
            repr(lstm), y2, h2, hc, lstm.all_weights[0][0].shape,
            h.raises(lambda: gru(h.randn(5, 2, 4)), "input.size(-1) must be equal to input_size"),
            h.raises(lambda: nn.LSTM(3, 4, proj_size=4), "proj_size has to be smaller than hidden_size"),
            h.raises(lambda: nn.RNN(3, 4, nonlinearity="gelu"), "Unknown nonlinearity"),
            h.raises(lambda: gru(h.randn(5, 2, 3), h.randn(2, 2, 4)), "Expected hidden size"))


def case_flatten_unflatten_identity(torch, nn, F, h):
    x = h.randn(2, 3, 4, 5)
    return (nn.Flatten()(x).shape, nn.Flatten(0, 2)(x).shape, nn.Unflatten(1, (3, 1))(x).shape,
            repr(nn.Flatten()), repr(nn.Unflatten(-1, (5, 1))), nn.Identity(3, unused=True)(x).shape,
            h.raises(lambda: nn.Unflatten(1, (2, 2))(x), "unflatten"))


def case_bilinear_and_linear_errors(torch, nn, F, h):
    bl = h.det(nn.Bilinear(3, 4, 2))
    lin = nn.Linear(3, 2)
    return (bl(h.randn(5, 3), h.randn(5, 4, seed=1)), repr(bl), repr(nn.Linear(3, 2, bias=False)),
            h.raises(lambda: lin(h.randn(4, 5)), "mat1 and mat2 shapes cannot be multiplied"),
            nn.Linear(0, 3)(torch.empty(2, 0)), nn.Linear(3, 2)(torch.empty(0, 3)).shape)


def case_grid_sample_affine_grid(torch, nn, F, h):
    theta = torch.tensor([[[0.9, 0.1, 0.05], [-0.1, 1.1, 0.0]]])
    grid = F.affine_grid(theta, (1, 2, 4, 5), align_corners=False)
    x = h.randn(1, 2, 4, 5, requires_grad=True)
    out = [grid, F.grid_sample(x, grid, align_corners=False),
           F.grid_sample(x, grid, mode="nearest", padding_mode="border", align_corners=True),
           F.grid_sample(x, grid * 1.5, padding_mode="reflection", align_corners=False)]
    sum(o.sum() for o in out[1:]).backward()
    out.append(x.grad)
    out.append(h.raises(lambda: F.affine_grid(theta, (1, 2, 4)), "affine_grid"))
    out.append(h.raises(lambda: F.grid_sample(x, grid, mode="bogus"), "bogus"))
    return out


cases = cases_of(globals())


@pytest.mark.parametrize("case", cases)
def test_nn_suite_testnn(case):
    run_both(case, rtol=1e-4, atol=1e-5)
