"""More layer edge cases from PyTorch's test_embedding.py, test_pooling.py and
test_convolution.py, run under torch and ember."""
from __future__ import annotations

import pytest

from nn_suite_harness import cases_of, run_both


def case_embedding_max_norm_duplicates_and_grad(torch, nn, F, h):
    w = h.randn(5, 3, requires_grad=True)
    idx = torch.tensor([1, 1, 3, 1])
    with torch.no_grad():
        w_mut = w.detach().clone()
    out = F.embedding(idx, w_mut, max_norm=0.7)
    norms = w_mut.norm(dim=1)
    y = F.embedding(idx, w, padding_idx=3)
    (y * h.randn(4, 3, seed=2)).sum().backward()
    e = h.det(nn.Embedding(4, 2, scale_grad_by_freq=True))
    e(torch.tensor([0, 0, 1, 2, 2, 2])).sum().backward()
    return out, norms, w.grad, e.weight.grad


def case_embedding_input_shapes(torch, nn, F, h):
    e = h.det(nn.Embedding(6, 2))
    return (e(torch.tensor(3)), e(torch.tensor([[[1, 2]], [[3, 4]]])), e(torch.tensor([], dtype=torch.long)),
            e(torch.tensor([1, 2], dtype=torch.int32)))


def case_embedding_bag_padding_idx_and_grads(torch, nn, F, h):
    eb = h.det(nn.EmbeddingBag(6, 3, mode="mean", padding_idx=2))
    idx = torch.tensor([2, 1, 2, 4, 5, 2])
    off = torch.tensor([0, 3])
    y = eb(idx, off)
    y.sum().backward()
    s = h.det(nn.EmbeddingBag(6, 3, mode="sum"))
    z = s(torch.tensor([[1, 2, 3], [0, 0, 5]]))
    z.pow(2).sum().backward()
    return y, eb.weight.grad, z, s.weight.grad, repr(eb)


def case_max_pool_dilation_indices_all_dims(torch, nn, F, h):
    x1 = h.randn(2, 3, 11, requires_grad=True)
    x3 = h.randn(1, 2, 5, 6, 7, requires_grad=True)
    a, ia = F.max_pool1d(x1, 3, stride=2, padding=1, dilation=2, return_indices=True)
    b, ib = F.max_pool3d(x3, (2, 3, 2), stride=(1, 2, 2), padding=(1, 1, 0), return_indices=True,
                         ceil_mode=True)
    (a.sum() + b.sum()).backward()
    up = F.max_unpool3d(b, ib, (2, 3, 2), stride=(1, 2, 2), padding=(1, 1, 0), output_size=x3.shape)
    return a, ia, b, ib, x1.grad, x3.grad, up


def case_avg_pool_ceil_last_window_in_padding(torch, nn, F, h):
    x = h.randn(1, 1, 5, 5)
    return (F.avg_pool2d(x, 2, stride=2, padding=1, ceil_mode=True),
            F.avg_pool2d(x, 3, stride=3, ceil_mode=True),
            F.avg_pool1d(h.randn(1, 2, 7), 3, stride=2, padding=1, ceil_mode=True,
                         count_include_pad=False),
            F.max_pool2d(x, 2, stride=2, padding=1, ceil_mode=True),
            F.lp_pool2d(x.abs(), 2, 2, ceil_mode=True), F.lp_pool1d(h.randn(1, 2, 6).abs(), 3, 2))


def case_adaptive_and_fractional_pool_modules(torch, nn, F, h):
    x = h.randn(2, 3, 9, 10)
    y, idx = nn.AdaptiveMaxPool2d((4, 3), return_indices=True)(x)
    out = [y, idx, nn.AdaptiveAvgPool1d(4)(h.randn(2, 3, 10)),
           nn.AdaptiveAvgPool3d((2, None, 1))(h.randn(1, 2, 4, 5, 6)),
           nn.FractionalMaxPool2d(2, output_size=(4, 5), _random_samples=torch.full((2, 3, 2), 0.5))(x)]
    out.append(h.raises(lambda: nn.FractionalMaxPool2d(2, output_size=(9, 9))(x),
                        "too large relative to input"))
    out.append(h.raises(lambda: nn.FractionalMaxPool2d(2), "requires specifying either an output size"))
    out.append(h.raises(lambda: nn.FractionalMaxPool2d(2, output_ratio=1.5), "output_ratio must be between 0 and 1"))
    return out


def case_conv_same_even_kernel_and_valid(torch, nn, F, h):
    x = h.randn(1, 2, 6, 7, requires_grad=True)
    c = h.det(nn.Conv2d(2, 3, (4, 2), padding="same", dilation=(1, 2)))
    v = h.det(nn.Conv1d(2, 2, 3, padding="valid"))
    y = c(x)
    y.sum().backward()
    return y, x.grad, c.weight.grad, v(h.randn(2, 2, 5)), repr(c), repr(v)


def case_conv_transpose_dilation_groups_grads(torch, nn, F, h):
    ct = h.det(nn.ConvTranspose3d(4, 2, (2, 3, 2), stride=(2, 1, 2), padding=(0, 1, 1),
                                  output_padding=(1, 0, 1), groups=2, dilation=(1, 2, 1)))
    x = h.randn(1, 4, 3, 4, 3, requires_grad=True)
    y = ct(x)
    y.pow(2).sum().backward()
    return y, x.grad, ct.weight.grad, ct.bias.grad


def case_conv_input_rank_errors(torch, nn, F, h):
    c2 = nn.Conv2d(2, 3, 3)
    return (h.raises(lambda: c2(h.randn(2, 5)), "Expected 3D (unbatched) or 4D (batched) input"),
            h.raises(lambda: F.conv1d(h.randn(1, 2, 5), h.randn(3, 2, 3), stride=0), "stride"),
            h.raises(lambda: F.conv2d(h.randn(1, 2, 5, 5), h.randn(3, 2, 3, 3), padding=-1),
                     "negative padding"),
            h.raises(lambda: F.conv2d(h.randn(1, 4, 5, 5), h.randn(3, 2, 3, 3), groups=2),
                     "divisible by 2"))


def case_dropout_zero_element_and_alpha_stats(torch, nn, F, h):
    torch.manual_seed(0)
    e = nn.Dropout(0.5)(torch.empty(0, 3))
    x = torch.randn(20000)
    y = nn.AlphaDropout(0.2)(x)
    return (tuple(e.shape), abs(float(y.mean())) < 0.05, abs(float(y.std()) - 1) < 0.05,
            repr(nn.AlphaDropout(0.2)), repr(nn.FeatureAlphaDropout(0.1)))


cases = cases_of(globals())


@pytest.mark.parametrize("case", cases)
def test_nn_suite_layers2(case):
    run_both(case, rtol=1e-4, atol=1e-5)
