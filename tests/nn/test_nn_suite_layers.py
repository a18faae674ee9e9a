"""Layer behaviour from PyTorch's test/nn tests (test_embedding.py, test_pooling.py,
test_convolution.py, test_dropout.py, test_lazy_modules.py), run under torch and ember."""
from __future__ import annotations

import pytest

from nn_suite_harness import cases_of, run_both


# --- embedding ----------------------------------------------------------------------------

def case_embedding_padding_idx(torch, nn, F, h):
    emb = nn.Embedding(5, 3, padding_idx=1)
    zero_row = emb.weight[1]
    h.det(emb)
    idx = torch.tensor([[0, 1, 4], [1, 1, 2]])
    out = emb(idx)
    out.sum().backward()
    neg = nn.Embedding(5, 3, padding_idx=-2)
    return (zero_row, out, emb.weight.grad, neg.padding_idx, repr(neg),
            h.raises(lambda: nn.Embedding(5, 3, padding_idx=5), "Padding_idx must be within num_embeddings"),
            h.raises(lambda: nn.Embedding(5, 3, padding_idx=-6), "Padding_idx must be within num_embeddings"))


def case_embedding_max_norm_renorms_in_place(torch, nn, F, h):
    emb = h.det(nn.Embedding(6, 4, max_norm=1.0))
    idx = torch.tensor([1, 3, 3])
    before = emb.weight.detach().clone()
    out = emb(idx)
    after = emb.weight.detach().clone()
    w = h.randn(6, 4, seed=1)
    F.embedding(torch.tensor([0, 2]), w, max_norm=0.5, norm_type=1.0)
    return out, after, (after[0] - before[0]).abs().max(), w


def case_embedding_from_pretrained(torch, nn, F, h):
    w = h.randn(4, 3)
    e = nn.Embedding.from_pretrained(w)
    e2 = nn.Embedding.from_pretrained(w, freeze=False, padding_idx=0)
    eb = nn.EmbeddingBag.from_pretrained(w, mode="max")
    return (e.weight.requires_grad, e2.weight.requires_grad, e(torch.tensor([2, 0])),
            repr(e2), eb(torch.tensor([[0, 1], [2, 3]])),
            h.raises(lambda: nn.Embedding.from_pretrained(torch.ones(3)), "2-dimensional"))


def case_embedding_errors(torch, nn, F, h):
    emb = nn.Embedding(4, 2)
    return (h.raises(lambda: emb(torch.tensor([4])), "index out of range"),
            h.raises(lambda: emb(torch.tensor([1.0])), "Long", "Int"),
            h.raises(lambda: nn.Embedding(3, 2, _weight=torch.ones(2, 2)), "Shape of weight does not match"))


def case_embedding_sparse_grad(torch, nn, F, h):
    emb = h.det(nn.Embedding(5, 2, sparse=True))
    emb(torch.tensor([0, 2, 2])).sum().backward()
    g = emb.weight.grad
    return g.is_sparse, g.to_dense(), repr(emb)


def case_embedding_bag_modes_and_offsets(torch, nn, F, h):
    w = h.randn(6, 3)
    out = []
    for mode in ("sum", "mean", "max"):
        eb = nn.EmbeddingBag.from_pretrained(w, mode=mode, freeze=False)
        out.append(eb(torch.tensor([0, 1, 2, 4, 5]), torch.tensor([0, 2])))
        out.append(eb(torch.tensor([0, 1, 2, 4]), torch.tensor([0, 2, 2]))[1])  # empty bag
    eb = nn.EmbeddingBag.from_pretrained(w, mode="sum", freeze=False)
    psw = torch.tensor([1.0, 2.0, 0.5])
    out.append(eb(torch.tensor([0, 1, 3]), torch.tensor([0, 1]), per_sample_weights=psw))
    out.append(eb(torch.tensor([[0, 1], [3, 3]])))
    last = nn.EmbeddingBag.from_pretrained(w, mode="mean", include_last_offset=True)
    out.append(last(torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 4])))
    out.append(h.raises(lambda: nn.EmbeddingBag.from_pretrained(w, mode="max")(
        torch.tensor([0, 1]), torch.tensor([0]), per_sample_weights=torch.ones(2)), "per_sample_weights"))
    out.append(h.raises(lambda: eb(torch.tensor([[0, 1]]), torch.tensor([0])), "offsets"))
    return out


# --- pooling --------------------------------------------------------------------------------

def case_pool_output_too_small_and_padding_errors(torch, nn, F, h):
    x = h.randn(1, 1, 2, 2)
    return (h.raises(lambda: F.max_pool2d(x, 3), "Output size is too small"),
            h.raises(lambda: F.avg_pool2d(x, 3), "Output size is too small"),
            h.raises(lambda: F.max_pool2d(h.randn(1, 1, 6, 6), 2, padding=2), "pad should be at most half"),
            h.raises(lambda: F.avg_pool2d(h.randn(1, 1, 6, 6), 2, padding=2), "pad should be at most half"),
            h.raises(lambda: F.max_pool1d(h.randn(1, 1, 4), 2, stride=0), "stride"),
            h.raises(lambda: F.max_pool2d(h.randn(1, 1, 4, 4), 2, dilation=0), "dilation"),
            h.raises(lambda: F.adaptive_avg_pool2d(h.randn(1, 1, 4, 4), (2,)), "output_size"))


def case_pool_ceil_mode_and_indices(torch, nn, F, h):
    x = h.randn(1, 2, 5, 7, requires_grad=True)
    y, idx = F.max_pool2d(x, 2, stride=2, ceil_mode=True, return_indices=True)
    up = F.max_unpool2d(y, idx, 2, stride=2, output_size=x.shape[-2:])
    a = F.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
    b = F.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True, divisor_override=2)
    (y.sum() + a.sum() + b.sum()).backward()
    return y, idx, up, a, b, x.grad


def case_pool_modules_repr_and_empty_batch(torch, nn, F, h):
    out = [repr(nn.MaxPool2d(3, stride=2, padding=1, dilation=2, return_indices=True)),
           repr(nn.AvgPool1d(3)), repr(nn.AdaptiveMaxPool2d((None, 3))), repr(nn.LPPool2d(2, 3)),
           repr(nn.FractionalMaxPool2d(2, output_ratio=0.5)), repr(nn.MaxUnpool2d(2))]
    empty = torch.empty(0, 3, 4, 4)
    out += [nn.MaxPool2d(2)(empty), nn.AdaptiveAvgPool2d(2)(empty), nn.AvgPool2d(2)(empty)]
    out.append(nn.AdaptiveMaxPool2d((None, 2))(h.randn(1, 2, 3, 5)))
    return out


def case_adaptive_pool_non_divisible(torch, nn, F, h):
    x = h.randn(2, 3, 7, 9, requires_grad=True)
    y = F.adaptive_avg_pool2d(x, (3, 4))
    z, idx = F.adaptive_max_pool2d(x, (4, 5), return_indices=True)
    (y.sum() + z.sum()).backward()
    return y, z, idx, x.grad


# --- convolution ----------------------------------------------------------------------------

def case_conv_padding_same_valid_and_errors(torch, nn, F, h):
    x = h.randn(1, 2, 7, 8)
    w = h.randn(4, 2, 3, 2, seed=1)
    out = [F.conv2d(x, w, padding="same"), F.conv2d(x, w, padding="valid"),
           F.conv2d(x, w, padding="same", dilation=2)]
    out.append(h.raises(lambda: F.conv2d(x, w, padding="same", stride=2),
                        "padding='same' is not supported for strided convolutions"))
    out.append(h.raises(lambda: nn.Conv2d(2, 4, 3, padding="same", stride=2),
                        "padding='same' is not supported for strided convolutions"))
    out.append(h.raises(lambda: nn.Conv2d(2, 4, 3, padding="bogus"), "Invalid padding string"))
    out.append(h.raises(lambda: nn.Conv2d(3, 4, 3, groups=2), "in_channels must be divisible by groups"))
    out.append(h.raises(lambda: nn.Conv2d(4, 3, 3, groups=2), "out_channels must be divisible by groups"))
    out.append(h.raises(lambda: nn.Conv2d(4, 4, 3, groups=0), "groups must be a positive integer"))
    out.append(h.raises(lambda: nn.Conv2d(2, 4, 3, padding_mode="bogus"), "padding_mode"))
    out.append(h.raises(lambda: F.conv2d(h.randn(1, 3, 5, 5), w), "expected input", "channels"))
    out.append(h.raises(lambda: F.conv2d(h.randn(1, 2, 2, 2), w), "Kernel size can't be greater than actual input size"))
    out.append(h.raises(lambda: F.conv2d(h.randn(3, 5, 5), h.randn(4, 2, 3, 3)), "channels"))
    return out


def case_conv_padding_modes_and_unbatched(torch, nn, F, h):
    out = []
    for mode in ("zeros", "reflect", "replicate", "circular"):
        c = h.det(nn.Conv2d(2, 3, 3, padding=1, padding_mode=mode))
        out.append(c(h.randn(1, 2, 5, 5)))
        out.append(c(h.randn(2, 5, 5)))  # unbatched
        out.append(repr(c))
    c1 = h.det(nn.Conv1d(2, 2, 3, padding=2, padding_mode="circular", groups=2))
    out.append(c1(h.randn(1, 2, 6)))
    return out


def case_conv_transpose_output_size_and_groups(torch, nn, F, h):
    ct = h.det(nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, groups=2))
    x = h.randn(1, 4, 5, 5, requires_grad=True)
    y = ct(x, output_size=[10, 10])
    y.sum().backward()
    out = [y, x.grad, ct.weight.grad, repr(ct),
           h.raises(lambda: ct(x, output_size=[13, 13]), "valid sizes range"),
           h.raises(lambda: nn.ConvTranspose2d(2, 2, 3, padding_mode="reflect"), "zeros")]
    ct1 = h.det(nn.ConvTranspose1d(2, 3, 4, stride=3, output_padding=2, dilation=2))
    out.append(ct1(h.randn(2, 2, 5)))
    out.append(h.raises(lambda: F.conv_transpose2d(h.randn(1, 2, 4, 4), h.randn(2, 2, 3, 3),
                                                   stride=1, output_padding=1), "output padding"))
    return out


def case_conv_double_and_grad(torch, nn, F, h):
    c = h.det(nn.Conv3d(2, 2, (2, 3, 1), stride=(1, 2, 1), padding=(1, 0, 0), bias=False)).double()
    x = h.randn(1, 2, 4, 5, 3, dtype="float64", requires_grad=True)
    y = c(x)
    y.pow(2).sum().backward()
    return y, x.grad, c.weight.grad, c.bias


# --- dropout --------------------------------------------------------------------------------

def case_dropout_train_eval_p0_p1_inplace(torch, nn, F, h):
    x = h.randn(50, 40)
    out = [nn.Dropout(0.0)(x), nn.Dropout(1.0)(x), nn.Dropout(0.5).eval()(x)]
    torch.manual_seed(0)
    y = nn.Dropout(0.25)(x)
    kept = y != 0
    out.append(bool(torch.allclose(y[kept], x[kept] / 0.75)))
    frac = float(kept.float().mean())
    out.append(0.65 < frac < 0.85)
    xi = x.clone()
    r = F.dropout(xi, 0.5, training=True, inplace=True)
    out.append(r is xi)
    out.append(h.raises(lambda: nn.Dropout(1.5), "dropout probability has to be between 0 and 1"))
    out.append(h.raises(lambda: F.dropout(x, -0.1), "dropout probability has to be between 0 and 1"))
    out.append(repr(nn.Dropout2d(0.2, inplace=True)))
    return out


def case_dropout_nd_channels(torch, nn, F, h):
    torch.manual_seed(0)
    x = torch.ones(4, 16, 5, 5)
    y = nn.Dropout2d(0.5)(x)
    per_channel = y.view(4, 16, 25)
    whole = bool(((per_channel == 0).all(-1) | (per_channel == 2).all(-1)).all())
    z = nn.Dropout1d(0.5)(torch.ones(4, 16, 5)).view(4, 16, 5)
    whole1 = bool(((z == 0).all(-1) | (z == 2).all(-1)).all())
    a = nn.AlphaDropout(0.2).eval()(x)
    f = nn.FeatureAlphaDropout(0.0)(x)
    return whole, whole1, a, f, nn.Dropout3d(0.0)(torch.ones(2, 3, 2, 2, 2))


def case_dropout_grad_masks_match_output(torch, nn, F, h):
    torch.manual_seed(0)
    x = h.randn(30, 30, requires_grad=True)
    y = F.dropout(x, 0.4, training=True)
    y.sum().backward()
    zero_out = y == 0
    return bool(((x.grad == 0) == zero_out).all()), bool(torch.allclose(x.grad[~zero_out],
                                                                         torch.full_like(x.grad[~zero_out], 1 / 0.6)))


# --- lazy modules ------------------------------------------------------------------------------

def case_lazy_linear_materializes(torch, nn, F, h):
    m = nn.LazyLinear(3)
    before = (type(m).__name__, repr(m), type(m.weight).__name__, m.in_features,
              type(m.weight).__name__ == "UninitializedParameter")
    torch.manual_seed(0)
    y = m(h.randn(2, 5))
    after = (type(m).__name__, repr(m), tuple(m.weight.shape), type(m.weight).__name__,
             m.in_features, tuple(y.shape))
    return before, after


def case_lazy_modules_state_dict(torch, nn, F, h):
    full = h.det(nn.Linear(4, 2))
    lazy = nn.LazyLinear(2)
    lazy.load_state_dict(full.state_dict())
    x = h.randn(3, 4)
    out = [tuple(lazy.weight.shape), lazy(x), full(x), type(lazy).__name__]
    lazy2 = nn.LazyLinear(2)
    sd = lazy2.state_dict()
    out.append(list(sd.keys()))
    out.append(h.raises(lambda: nn.Linear(4, 2).load_state_dict(sd), "uninitialized"))
    conv = nn.LazyConv2d(4, 3)
    conv(h.randn(1, 2, 5, 5))
    out.append((type(conv).__name__, tuple(conv.weight.shape), conv.in_channels))
    bn = nn.LazyBatchNorm2d()
    bn(h.randn(2, 3, 4, 4))
    out.append((type(bn).__name__, tuple(bn.running_mean.shape), bn.num_features))
    return out


def case_lazy_uninitialized_errors(torch, nn, F, h):
    m = nn.LazyLinear(3)
    return (h.raises(lambda: m.weight.shape, "uninitialized"),
            h.raises(lambda: m.weight + 1, "uninitialized"),
            m.has_uninitialized_params())


cases = cases_of(globals())


@pytest.mark.parametrize("case", cases)
def test_nn_suite_layers(case):
    run_both(case, rtol=1e-4, atol=1e-5)
