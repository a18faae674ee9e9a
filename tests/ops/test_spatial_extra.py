"""Conv/pooling/resampling checks the op table cannot express: the nn layers against
torch's (values, float64 gradients, reprs), F-level compositions (lp_pool, max_unpool1d,
grid_sample, affine_grid, interpolate's argument handling, antialias), fractional max
pooling with random windows, and compiled equal to eager for the compositions."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import ember

F = ember.nn.functional


def _pair(rng, *shape, positive=False):
    a = rng.standard_normal(shape)
    if positive:
        a = np.abs(a) + 0.1
    return ember.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)


def _check_layer(rng, name, args, kwargs, shape, positive=False):
    e, t = _pair(rng, *shape, positive=positive)
    em, tm = getattr(ember.nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)
    assert repr(em) == repr(tm)
    eo, to = em(e), tm(t)
    eo, to = (eo if isinstance(eo, tuple) else (eo,)), (to if isinstance(to, tuple) else (to,))
    for a, b in zip(eo, to):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-9, atol=1e-12)
    c = rng.standard_normal(tuple(to[0].shape))
    (ge,) = ember.autograd.grad((eo[0] * ember.tensor(c)).sum(), [e])
    (gt,) = torch.autograd.grad((to[0] * torch.tensor(c)).sum(), [t])
    np.testing.assert_allclose(ge.numpy(), gt.numpy(), rtol=1e-9, atol=1e-12)


LAYERS = [
    ("Conv3d", (2, 4, 3), {"stride": 2, "padding": 1, "bias": False}, (1, 2, 5, 4, 5)),
    ("ConvTranspose1d", (2, 3, 3), {"stride": 2, "output_padding": 1}, (2, 2, 5)),
    ("ConvTranspose3d", (2, 2, 2), {"groups": 2, "dilation": 2}, (1, 2, 3, 2, 3)),
    ("Unfold", (2,), {"padding": 1, "stride": 2}, (2, 3, 5, 4)),
    ("Fold", ((4, 5), 2), {"padding": 1, "stride": 2}, (2, 12, 9)),
    ("MaxPool1d", (3,), {"stride": 2, "padding": 1, "return_indices": True}, (2, 3, 9)),
    ("MaxPool3d", (2,), {"ceil_mode": True}, (1, 2, 5, 4, 5)),
    ("AvgPool1d", (3,), {"stride": 2, "padding": 1, "count_include_pad": False}, (2, 3, 8)),
    ("AvgPool3d", (2,), {"divisor_override": 3}, (1, 2, 4, 4, 5)),
    ("AdaptiveAvgPool1d", (3,), {}, (2, 3, 8)),
    ("AdaptiveAvgPool3d", ((2, None, 3),), {}, (1, 2, 5, 4, 7)),
    ("AdaptiveMaxPool2d", ((3, 2),), {"return_indices": True}, (2, 3, 7, 5)),
    ("AdaptiveMaxPool3d", (2,), {}, (1, 2, 5, 4, 3)),
    ("Upsample", (), {"scale_factor": (1.5, 2, 0.7), "mode": "trilinear",
                      "align_corners": True}, (1, 2, 3, 4, 5)),
    ("Upsample", (), {"scale_factor": 1.7, "mode": "bicubic",
                      "recompute_scale_factor": True}, (1, 2, 3, 4)),
    ("Upsample", (), {"scale_factor": 0.5, "mode": "area"}, (1, 2, 6, 4)),
    ("Upsample", (), {"size": 9, "mode": "linear"}, (2, 2, 5)),
    ("UpsamplingNearest2d", (), {"scale_factor": 3}, (1, 2, 3, 4)),
    ("UpsamplingBilinear2d", (), {"size": (6, 5)}, (1, 2, 3, 4)),
    ("PixelShuffle", (2,), {}, (1, 8, 3, 4)),
    ("PixelUnshuffle", (2,), {}, (1, 2, 4, 6)),
    ("ChannelShuffle", (2,), {}, (1, 4, 3, 4)),
]


@pytest.mark.parametrize("name, args, kwargs, shape", LAYERS,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(LAYERS)])
def test_layers_match_torch(rng, name, args, kwargs, shape):
    torch.manual_seed(0)
    ember.manual_seed(0)
    if name.startswith("Conv"):
        e, t = getattr(ember.nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)
        t.double()
        e.weight = ember.nn.Parameter(ember.tensor(t.weight.detach().numpy()))
        if t.bias is not None:
            e.bias = ember.nn.Parameter(ember.tensor(t.bias.detach().numpy()))
        x = rng.standard_normal(shape)
        np.testing.assert_allclose(e(ember.tensor(x)).detach().numpy(),
                                   t(torch.tensor(x)).detach().numpy(), rtol=1e-9, atol=1e-12)
        return
    _check_layer(rng, name, args, kwargs, shape)


@pytest.mark.parametrize("nd, norm", [(1, 2.0), (2, 3.0), (3, 1.5)])
def test_lp_pool_matches_torch(rng, nd, norm):
    _check_layer(rng, f"LPPool{nd}d", (norm, 2), {"ceil_mode": nd == 3},
                 (1, 2) + (5, 4, 5)[:nd], positive=True)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_max_unpool_inverts_max_pool_like_torch(rng, nd):
    e, t = _pair(rng, *((2, 3) + (6,) * nd))
    eo, ei = getattr(ember.nn, f"MaxPool{nd}d")(2, return_indices=True)(e)
    to, ti = getattr(torch.nn, f"MaxPool{nd}d")(2, return_indices=True)(t)
    eu = getattr(ember.nn, f"MaxUnpool{nd}d")(2)(eo, ei, output_size=list(e.shape))
    tu = getattr(torch.nn, f"MaxUnpool{nd}d")(2)(to, ti, output_size=list(t.shape))
    np.testing.assert_array_equal(eu.detach().numpy(), tu.detach().numpy())


@pytest.mark.parametrize("nd", [2, 3])
def test_fractional_max_pool_windows_hold_their_maxima(nd):
    ember.manual_seed(0)
    x = ember.randn(*((2, 3) + (9, 10, 8)[:nd]))
    layer = getattr(ember.nn, f"FractionalMaxPool{nd}d")(2, output_ratio=0.5,
                                                         return_indices=True)
    out, idx = layer(x)
    assert tuple(out.shape) == (2, 3) + tuple(n // 2 for n in x.shape[2:])
    flat = x.numpy().reshape(2, 3, -1)
    picked = np.take_along_axis(flat, idx.numpy().reshape(2, 3, -1), 2)
    np.testing.assert_array_equal(picked.reshape(out.shape), out.numpy())
    # with the same samples, the windows (and so the maxima) are torch's
    samples = np.random.default_rng(1).random((2, 3, nd))
    want = getattr(torch.nn.functional, f"fractional_max_pool{nd}d")(
        torch.tensor(x.numpy()), 2, output_ratio=(0.5,) * nd, return_indices=True,
        _random_samples=torch.tensor(samples, dtype=torch.float32))
    got = getattr(F, f"fractional_max_pool{nd}d")(x, 2, output_ratio=(0.5,) * nd,
                                                 return_indices=True,
                                                 _random_samples=ember.tensor(
                                                     samples.astype(np.float32)))
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g.numpy(), w.numpy())
    with pytest.raises(ValueError, match="output_size or an output_ratio"):
        getattr(F, f"fractional_max_pool{nd}d")(x, 2)


GRID_CASES = [c for c in itertools.product((2, 3), ("bilinear", "nearest", "bicubic"),
                                           ("zeros", "border", "reflection"), (False, True))
              if not (c[0] == 3 and c[1] == "bicubic")]


@pytest.mark.parametrize("nd, mode, padding, align", GRID_CASES)
def test_grid_sample_matches_torch(rng, nd, mode, padding, align):
    a = rng.standard_normal((2, 2) + (4, 5, 3)[:nd])
    g = rng.uniform(-1.3, 1.3, (2,) + (3, 2, 2)[:nd] + (nd,))
    e_in, t_in = ember.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    e_g, t_g = ember.tensor(g, requires_grad=True), torch.tensor(g, requires_grad=True)
    eo = F.grid_sample(e_in, e_g, mode, padding, align)
    to = torch.nn.functional.grid_sample(t_in, t_g, mode, padding, align)
    np.testing.assert_allclose(eo.detach().numpy(), to.detach().numpy(), atol=1e-12)
    c = rng.standard_normal(tuple(to.shape))
    e_grads = ember.autograd.grad((eo * ember.tensor(c)).sum(), [e_in, e_g], allow_unused=True)
    t_grads = torch.autograd.grad((to * torch.tensor(c)).sum(), [t_in, t_g])
    for eg, tg in zip(e_grads, t_grads):
        want = tg.numpy()
        got = np.zeros_like(want) if eg is None else eg.numpy()   # nearest: no grid path
        np.testing.assert_allclose(got, want, atol=1e-9)


@pytest.mark.parametrize("nd, align", [(2, False), (2, True), (3, False), (3, True)])
def test_affine_grid_matches_torch(rng, nd, align):
    th = rng.standard_normal((2, nd, nd + 1))
    size = [2, 3] + [4, 5, 1][:nd]
    e_th, t_th = ember.tensor(th, requires_grad=True), torch.tensor(th, requires_grad=True)
    eo = F.affine_grid(e_th, size, align)
    to = torch.nn.functional.affine_grid(t_th, size, align)
    np.testing.assert_allclose(eo.detach().numpy(), to.detach().numpy(), atol=1e-12)
    c = rng.standard_normal(tuple(to.shape))
    (ge,) = ember.autograd.grad((eo * ember.tensor(c)).sum(), [e_th])
    (gt,) = torch.autograd.grad((to * torch.tensor(c)).sum(), [t_th])
    np.testing.assert_allclose(ge.numpy(), gt.numpy(), atol=1e-10)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
@pytest.mark.parametrize("kwargs", [dict(size=(4, 5)), dict(scale_factor=0.45),
                                    dict(scale_factor=(1.6, 0.3), align_corners=True)])
def test_interpolate_antialias_matches_torch(rng, mode, kwargs):
    a = rng.standard_normal((2, 3, 9, 8))
    eo = F.interpolate(ember.tensor(a), mode=mode, antialias=True, **kwargs)
    to = torch.nn.functional.interpolate(torch.tensor(a), mode=mode, antialias=True, **kwargs)
    np.testing.assert_allclose(eo.numpy(), to.numpy(), rtol=1e-10, atol=1e-12)


def test_interpolate_argument_errors():
    x = ember.zeros(1, 2, 3, 4)
    with pytest.raises(ValueError, match="only one of size or scale_factor"):
        F.interpolate(x, size=2, scale_factor=2.0)
    with pytest.raises(ValueError, match="align_corners option can only be set"):
        F.interpolate(x, size=2, align_corners=True)
    with pytest.raises(ValueError, match="Anti-alias option is restricted"):
        F.interpolate(x, size=2, mode="nearest", antialias=True)
    with pytest.raises(NotImplementedError, match="trilinear mode needs 5D"):
        F.interpolate(x, size=2, mode="trilinear")
    with pytest.raises(ValueError, match="recompute_scale_factor is not meaningful"):
        F.interpolate(x, size=2, recompute_scale_factor=True)


def test_compositions_compile_equal_to_eager(rng):
    x = ember.tensor(rng.standard_normal((2, 3, 5, 6)).astype(np.float32))
    g = ember.tensor(rng.uniform(-1, 1, (2, 4, 3, 2)).astype(np.float32))
    th = ember.tensor(rng.standard_normal((2, 2, 3)).astype(np.float32))
    cases = [
        (lambda x, g: F.grid_sample(x, g, "bilinear", "reflection", False), (x, g)),
        (lambda x, g: F.grid_sample(x, g, "bicubic", "border", True), (x, g)),
        (lambda th: F.affine_grid(th, [2, 3, 4, 5], False), (th,)),
        (lambda x: F.interpolate(x, scale_factor=1.7, mode="bicubic"), (x,)),
        (lambda x: F.lp_pool2d(x.abs(), 2.0, 2), (x,)),
        (lambda x: F.max_unpool1d(*F.max_pool1d(x.flatten(2), 2, return_indices=True), 2),
         (x,)),
        (lambda x: F.fold(F.unfold(x, 2, padding=1), [5, 6], 2, padding=1), (x,)),
    ]
    for fn, args in cases:
        want = fn(*args)
        got = ember.compile(fn)(*args)
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)
