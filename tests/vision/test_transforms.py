"""ember.vision.transforms against torch-written references, numpy and colorsys.

torchvision has no build for this environment's torch, so the oracles are
torch.nn.functional (resize, blur, grid sampling), numpy.pad, colorsys (hue) and exact
geometric identities (a 90-degree rotation is rot90, an integer translation a shift).
"""
import colorsys

import numpy as np
import pytest
import torch

import ember
import ember.vision.transforms as T
import ember.vision.transforms.functional as VF


def _img(rng, shape=(3, 9, 11), dtype=np.float32):
    if dtype == np.uint8:
        return rng.integers(0, 256, shape).astype(np.uint8)
    return rng.random(shape).astype(dtype)


def _close(a, b, atol=1e-5):
    a = a.numpy() if hasattr(a, "numpy") else np.asarray(a)
    b = b.numpy() if hasattr(b, "numpy") else np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    np.testing.assert_allclose(a.astype(np.float64), b.astype(np.float64), atol=atol)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.mark.parametrize("size,mode,antialias", [
    ((5, 7), "bilinear", True), ((5, 7), "bilinear", False), (6, "bicubic", True),
    ((13, 20), "bilinear", True), ((4, 4), "nearest", False)])
def test_resize_matches_interpolate(rng, size, mode, antialias):
    x = _img(rng, (2, 3, 9, 11))
    out = VF.resize(ember.tensor(x), size, VF.InterpolationMode(mode), antialias=antialias)
    if isinstance(size, int):   # shorter edge (9) -> 6, long edge int(6 * 11 / 9) = 7
        size = (6, 7)
    ref = torch.nn.functional.interpolate(
        torch.tensor(x), size=size, mode=mode, antialias=antialias and mode != "nearest",
        align_corners=False if mode != "nearest" else None)
    _close(out, ref, 1e-4)


def test_resize_uint8_rounds_and_clamps(rng):
    x = _img(rng, (3, 12, 10), np.uint8)
    out = T.Resize((5, 6), VF.InterpolationMode.BICUBIC)(ember.tensor(x))
    ref = torch.nn.functional.interpolate(torch.tensor(x)[None].float(), size=(5, 6),
                                          mode="bicubic", antialias=True, align_corners=False)
    ref = ref.clamp(0, 255).round().to(torch.uint8)[0]
    assert out.dtype == ember.uint8
    assert np.abs(out.numpy().astype(int) - ref.numpy().astype(int)).max() <= 1


def test_resize_max_size_and_errors(rng):
    x = ember.tensor(_img(rng, (3, 10, 40)))
    assert tuple(T.Resize(8, max_size=20)(x).shape) == (3, 5, 20)
    with pytest.raises(ValueError, match="max_size"):
        T.Resize(8, max_size=8)(x)
    with pytest.raises(ValueError, match="unsupported with Tensor"):
        VF.resize(x, 4, VF.InterpolationMode.LANCZOS)


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "symmetric"])
def test_pad_matches_numpy(rng, mode):
    x = _img(rng, (2, 3, 6, 7))
    out = T.Pad([1, 2, 3, 4], fill=0.5, padding_mode=mode)(ember.tensor(x))
    np_mode = {"edge": "edge", "reflect": "reflect", "symmetric": "symmetric"}.get(mode)
    widths = ((0, 0), (0, 0), (2, 4), (1, 3))
    ref = np.pad(x, widths, mode="constant", constant_values=0.5) if np_mode is None \
        else np.pad(x, widths, mode=np_mode)
    _close(out, ref)


def test_pad_uint8_reflect_keeps_dtype(rng):
    x = _img(rng, (3, 5, 5), np.uint8)
    out = VF.pad(ember.tensor(x), 2, padding_mode="reflect")
    assert out.dtype == ember.uint8
    _close(out, np.pad(x, ((0, 0), (2, 2), (2, 2)), mode="reflect"))


@pytest.mark.parametrize("size", [(4, 5), 9, (12, 14), (3, 11)])
def test_center_crop(rng, size):
    x = _img(rng)
    out = T.CenterCrop(size)(ember.tensor(x))
    h, w = (size, size) if isinstance(size, int) else size
    padded = np.pad(x, ((0, 0), (max(h - 9, 0) // 2, max(h - 9 + 1, 0) // 2),
                        (max(w - 11, 0) // 2, max(w - 11 + 1, 0) // 2)))
    ph, pw = padded.shape[1:]
    top, left = int(round((ph - h) / 2.0)), int(round((pw - w) / 2.0))
    _close(out, padded[:, top:top + h, left:left + w])


def test_crop_outside_pads_with_zeros(rng):
    x = _img(rng, (1, 4, 4))
    out = VF.crop(ember.tensor(x), -1, 2, 3, 4)
    ref = np.zeros((1, 3, 4), np.float32)
    ref[:, 1:, :2] = x[:, :2, 2:]
    _close(out, ref)


def test_flips(rng):
    x = _img(rng, (2, 3, 4, 5))
    _close(VF.hflip(ember.tensor(x)), x[..., ::-1])
    _close(VF.vflip(ember.tensor(x)), x[..., ::-1, :])
    assert T.RandomHorizontalFlip(p=0.0)(ember.tensor(x)) is not None
    _close(T.RandomHorizontalFlip(p=1.0)(ember.tensor(x)), x[..., ::-1])
    _close(T.RandomVerticalFlip(p=1.0)(ember.tensor(x)), x[..., ::-1, :])
    _close(T.RandomVerticalFlip(p=0.0)(ember.tensor(x)), x)


def test_normalize(rng):
    x = _img(rng, (2, 3, 4, 5))
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    out = T.Normalize(mean, std)(ember.tensor(x))
    ref = (torch.tensor(x) - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None,
                                                                                      None]
    _close(out, ref)
    with pytest.raises(TypeError, match="float tensor"):
        VF.normalize(ember.tensor(_img(rng, dtype=np.uint8)), mean, std)
    with pytest.raises(ValueError, match="division by zero"):
        VF.normalize(ember.tensor(x), mean, [1.0, 0.0, 1.0])


def test_convert_image_dtype():
    u8 = ember.tensor(np.array([[[0, 1, 128, 255]]], np.uint8))
    _close(VF.convert_image_dtype(u8, ember.float32), np.array([[[0, 1, 128, 255]]]) / 255.0)
    f = ember.tensor(np.array([[[0.0, 0.5, 0.999, 1.0]]], np.float32))
    _close(VF.convert_image_dtype(f, ember.uint8), np.array([[[0, 127, 255, 255]]]))
    _close(VF.convert_image_dtype(u8, ember.int16), np.array([[[0, 128, 16384, 32640]]]))
    i16 = ember.tensor(np.array([[[0, 255, 32767]]], np.int16))
    _close(VF.convert_image_dtype(i16, ember.uint8), np.array([[[0, 1, 255]]]))
    with pytest.raises(RuntimeError, match="cannot be performed safely"):
        VF.convert_image_dtype(f, ember.int64)


def _torch_gray(x):
    return (0.2989 * x[..., 0, :, :] + 0.587 * x[..., 1, :, :] + 0.114 * x[..., 2, :, :]
            ).unsqueeze(-3)


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_brightness_contrast_saturation(rng, dtype):
    x = _img(rng, (2, 3, 5, 6), dtype)
    t = torch.tensor(x)
    bound = 255.0 if dtype == np.uint8 else 1.0

    def blend(a, b, r):
        return (r * a + (1 - r) * b).clamp(0, bound).to(t.dtype)
    gray = _torch_gray(t.float()).to(t.dtype)
    mean = gray.float().mean(dim=(-3, -2, -1), keepdim=True)
    _close(VF.adjust_brightness(ember.tensor(x), 1.3), blend(t, torch.zeros_like(t), 1.3))
    _close(VF.adjust_contrast(ember.tensor(x), 0.6), blend(t, mean, 0.6), 1e-5)
    _close(VF.adjust_saturation(ember.tensor(x), 1.7), blend(t, gray, 1.7), 1e-5)
    _close(VF.rgb_to_grayscale(ember.tensor(x), 3), gray.expand(2, 3, 5, 6))


def test_adjust_hue_matches_colorsys(rng):
    x = _img(rng, (3, 4, 5))
    x[:, 0, 0] = 0.4   # a gray pixel: hue undefined, must stay gray
    out = VF.adjust_hue(ember.tensor(x), 0.23).numpy()
    for i in range(4):
        for j in range(5):
            h, s, v = colorsys.rgb_to_hsv(*x[:, i, j])
            ref = colorsys.hsv_to_rgb((h + 0.23) % 1.0, s, v)
            np.testing.assert_allclose(out[:, i, j], ref, atol=1e-5)
    u8 = _img(rng, (3, 4, 5), np.uint8)
    out8 = VF.adjust_hue(ember.tensor(u8), -0.3)
    ref8 = (VF.adjust_hue(ember.tensor(u8.astype(np.float32) / 255), -0.3).numpy() * 255)
    _close(out8, ref8.astype(np.uint8))
    with pytest.raises(ValueError, match="hue_factor"):
        VF.adjust_hue(ember.tensor(x), 0.7)


def test_color_jitter_equals_its_params(rng):
    x = ember.tensor(_img(rng, (3, 6, 6)))
    jitter = T.ColorJitter(0.4, 0.4, 0.4, 0.1, generator=ember.Generator().manual_seed(5))
    out = jitter(x)
    order, b, c, s, h = T.ColorJitter.get_params(
        jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue,
        ember.Generator().manual_seed(5))
    assert sorted(order) == [0, 1, 2, 3] and 0.6 <= b <= 1.4 and -0.1 <= h <= 0.1
    ref = x
    fns = [VF.adjust_brightness, VF.adjust_contrast, VF.adjust_saturation, VF.adjust_hue]
    for i in order:
        ref = fns[i](ref, [b, c, s, h][i])
    _close(out, ref)


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_gaussian_blur_matches_conv(rng, dtype):
    x = _img(rng, (2, 3, 8, 9), dtype)
    out = VF.gaussian_blur(ember.tensor(x), [5, 3], [1.2, 0.7])

    def k1(n, s):
        v = torch.linspace(-(n - 1) / 2, (n - 1) / 2, n, dtype=torch.float64)
        p = torch.exp(-0.5 * (v / s) ** 2)
        return p / p.sum()
    k = torch.outer(k1(3, 0.7), k1(5, 1.2)).float()
    padded = torch.nn.functional.pad(torch.tensor(x).float(), [2, 2, 1, 1], mode="reflect")
    ref = torch.nn.functional.conv2d(padded, k.expand(3, 1, 3, 5).contiguous(), groups=3)
    if dtype == np.uint8:
        assert np.abs(out.numpy().astype(int) - ref.round().numpy().astype(int)).max() <= 1
    else:
        _close(out, ref, 1e-5)


def test_rotate_90_is_rot90(rng):
    x = _img(rng, (2, 3, 6, 6))
    out = VF.rotate(ember.tensor(x), 90.0)
    _close(out, np.rot90(x, 1, axes=(-2, -1)))   # counter-clockwise
    out = VF.rotate(ember.tensor(x[..., :4]), -90.0, expand=True)   # 6x4 -> 4x6
    _close(out, np.rot90(x[..., :4], -1, axes=(-2, -1)))


def test_affine_integer_translation_is_shift(rng):
    x = _img(rng, (3, 5, 6))
    out = VF.affine(ember.tensor(x), 0.0, [2, -1], 1.0, [0.0, 0.0], fill=[0.0, 0.0, 0.0])
    ref = np.zeros_like(x)
    ref[:, :4, 2:] = x[:, 1:, :4]
    _close(out, ref)


def test_affine_bilinear_matches_grid_sample(rng):
    x = _img(rng, (1, 2, 7, 8))
    angle, tr, sc, sh = 17.0, [1.0, -2.0], 1.1, [6.0, -3.0]
    out = VF.affine(ember.tensor(x), angle, tr, sc, sh, VF.InterpolationMode.BILINEAR)
    # independent construction: forward matrix T C R S Sh C^-1, inverted numerically
    rot, sx, sy = np.radians(angle), np.radians(sh[0]), np.radians(sh[1])
    rs = np.array([[np.cos(rot), -np.sin(rot)], [np.sin(rot), np.cos(rot)]]) * sc
    shear_y = np.array([[1, 0], [-np.tan(sy), 1]])   # torchvision's documented RSS =
    shear_x = np.array([[1, -np.tan(sx)], [0, 1]])   # R(a) S(s) SHy(sy) SHx(sx)
    fwd = rs @ shear_y @ shear_x
    inv = np.linalg.inv(fwd)
    h, w = 7, 8
    ys, xs = np.meshgrid(np.arange(h) - h / 2 + 0.5, np.arange(w) - w / 2 + 0.5, indexing="ij")
    pts = np.stack([xs - tr[0], ys - tr[1]], -1) @ inv.T
    grid = torch.tensor(pts / np.array([w / 2, h / 2]), dtype=torch.float32)[None]
    ref = torch.nn.functional.grid_sample(torch.tensor(x), grid, mode="bilinear",
                                          padding_mode="zeros", align_corners=False)
    _close(out, ref, 1e-4)


def test_random_resized_crop_is_resized_crop_of_its_params(rng):
    x = ember.tensor(_img(rng, (3, 20, 30)))
    t = T.RandomResizedCrop(8, generator=ember.Generator().manual_seed(3))
    i, j, h, w = T.RandomResizedCrop.get_params(x, t.scale, t.ratio,
                                                ember.Generator().manual_seed(3))
    assert 0 <= i and i + h <= 20 and 0 <= j and j + w <= 30
    _close(t(x), VF.resized_crop(x, i, j, h, w, [8, 8]))


def test_random_rotation_and_affine_use_their_params(rng):
    x = ember.tensor(_img(rng, (3, 8, 8)))
    rot = T.RandomRotation(30, generator=ember.Generator().manual_seed(1))
    angle = T.RandomRotation.get_params(rot.degrees, ember.Generator().manual_seed(1))
    assert -30 <= angle <= 30
    _close(rot(x), VF.rotate(x, angle, fill=[0.0] * 3))
    aff = T.RandomAffine(20, (0.2, 0.1), (0.8, 1.2), (-5, 5, -3, 3),
                         generator=ember.Generator().manual_seed(2))
    params = T.RandomAffine.get_params(aff.degrees, aff.translate, aff.scale, aff.shear, [8, 8],
                                       ember.Generator().manual_seed(2))
    _close(aff(x), VF.affine(x, *params, fill=[0.0] * 3))


def test_generator_makes_random_transforms_reproducible(rng):
    x = ember.tensor(_img(rng, (2, 3, 16, 16)))

    def pipeline(seed):
        g = ember.Generator().manual_seed(seed)
        return T.Compose([T.RandomResizedCrop(8, generator=g),
                          T.RandomHorizontalFlip(generator=g),
                          T.ColorJitter(0.3, 0.3, 0.3, 0.05, generator=g)])
    _close(pipeline(7)(x), pipeline(7)(x))
    assert not np.allclose(pipeline(7)(x).numpy(), pipeline(8)(x).numpy())


def test_deterministic_pipeline_compiles(rng):
    x = ember.tensor(_img(rng, (2, 3, 12, 14)))
    pipe = ember.nn.Sequential(T.Resize((10, 10)), T.CenterCrop(8), T.Pad(1),
                               T.GaussianBlur(3, sigma=0.8),
                               T.Normalize([0.5, 0.4, 0.3], [0.2, 0.25, 0.3]))
    compiled = ember.compile(pipe)
    _close(compiled(x), pipe(x), 1e-4)
    explained = ember.compile.explain(pipe, x)
    assert explained.graph_break_count == 0, str(explained)


class _Fn(ember.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *args):
        return self.fn(*args)


@pytest.mark.parametrize("name", ["uint8_resize_rotate", "color_tensor_factors", "blur_sigmas"])
def test_functional_compiles_in_one_graph(rng, name):
    """Value checks must not break the graph: compiled == eager with no graph break."""
    x = ember.tensor(_img(rng, (2, 3, 9, 10), np.uint8 if name.startswith("uint8") else
                          np.float32))
    fac = ember.tensor(np.array([0.7, 1.2], np.float32))
    fn, args = {
        "uint8_resize_rotate": (lambda im: VF.rotate(VF.resize(im, [6, 7]), 15.0,
                                                     fill=[0.0] * 3), (x,)),
        "color_tensor_factors": (lambda im, f: VF.adjust_hue(VF.adjust_contrast(
            VF.adjust_brightness(im, f), f), f - 1.0), (x, fac)),
        "blur_sigmas": (lambda im, f: VF.gaussian_blur(im, 3, f), (x, fac))}[name]
    module = _Fn(fn)
    explained = ember.compile.explain(module, *args)
    assert explained.graph_break_count == 0, str(explained)
    _close(ember.compile(module)(*args), module(*args), 1e-5)


# --- per_sample=True (ember extension): one draw per image, equal to per-image calls ----
def _gen(seed):
    return ember.Generator().manual_seed(seed)


def test_per_sample_flips(rng):
    x = ember.tensor(_img(rng, (16, 3, 4, 5)))
    out = T.RandomHorizontalFlip(per_sample=True, generator=_gen(0))(x).numpy()
    flipped = [np.allclose(out[k], x.numpy()[k, ..., ::-1]) for k in range(16)]
    kept = [np.allclose(out[k], x.numpy()[k]) for k in range(16)]
    assert all(f or k for f, k in zip(flipped, kept)) and 0 < sum(flipped) < 16
    coins = ember.rand(16, generator=_gen(0)).numpy() < 0.5
    assert flipped == coins.tolist()
    with pytest.raises(ValueError, match=r"per_sample=True\) needs an"):
        T.RandomVerticalFlip(per_sample=True)(x[0])


def test_per_sample_color_jitter(rng):
    x = ember.tensor(_img(rng, (3, 3, 5, 6)))
    out = T.ColorJitter(0.5, 0.4, 0.3, 0.1, per_sample=True, generator=_gen(4))(x)
    g = _gen(4)
    order = [int(v) for v in ember.randperm(4, generator=g).tolist()]
    draws = [lo + (hi - lo) * ember.rand(3, generator=g).numpy()
             for lo, hi in ((0.5, 1.5), (0.6, 1.4), (0.7, 1.3), (-0.1, 0.1))]
    fns = [VF.adjust_brightness, VF.adjust_contrast, VF.adjust_saturation, VF.adjust_hue]
    for k in range(3):
        ref = x[k]
        for i in order:
            ref = fns[i](ref, float(draws[i][k]))
        _close(out[k], ref, 2e-6)


def test_per_sample_blur_rotation_affine(rng):
    x = ember.tensor(_img(rng, (3, 2, 7, 8)))
    out = T.GaussianBlur(5, (0.5, 2.0), per_sample=True, generator=_gen(5))(x)
    sig = 0.5 + 1.5 * ember.rand(3, generator=_gen(5)).numpy()
    for k in range(3):
        _close(out[k], VF.gaussian_blur(x[k], 5, float(sig[k])), 1e-5)
    out = T.RandomRotation(40, VF.InterpolationMode.BILINEAR, per_sample=True,
                           generator=_gen(6))(x)
    g = _gen(6)
    for k in range(3):
        angle = T.RandomRotation.get_params([-40.0, 40.0], g)
        _close(out[k], VF.rotate(x[k], angle, VF.InterpolationMode.BILINEAR, fill=[0.0] * 2),
               1e-5)
    aff = T.RandomAffine(15, (0.1, 0.2), (0.9, 1.1), 8, per_sample=True, generator=_gen(7))
    out = aff(x)
    g = _gen(7)
    for k in range(3):
        params = T.RandomAffine.get_params(aff.degrees, aff.translate, aff.scale, aff.shear,
                                           [8, 7], g)
        _close(out[k], VF.affine(x[k], *params, fill=[0.0] * 2), 1e-5)


def test_per_sample_resized_crop(rng):
    x = ember.tensor(_img(rng, (3, 3, 12, 16)))
    out = T.RandomResizedCrop(6, per_sample=True, generator=_gen(8))(x)
    one = T.RandomResizedCrop(6, generator=_gen(8))
    for k in range(3):
        _close(out[k], one(x[k]))


def test_per_sample_pipeline_compiles_after_draws(rng):
    """The random parts run eagerly; what follows them compiles as before."""
    x = ember.tensor(_img(rng, (4, 3, 10, 10), np.uint8))
    tail = ember.nn.Sequential(T.ConvertImageDtype(ember.float32),
                               T.Normalize([0.5] * 3, [0.25] * 3))
    flipped = T.RandomHorizontalFlip(per_sample=True, generator=_gen(9))(x)
    _close(ember.compile(tail)(flipped), tail(flipped), 1e-5)
    assert ember.compile.explain(tail, flipped).graph_break_count == 0


# --- float64 gradients through the differentiable transforms, against torch ------------
def _grads(e_fn, t_fn, x):
    ex = ember.tensor(x, requires_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    e_out, t_out = e_fn(ex), t_fn(tx)
    np.testing.assert_allclose(e_out.detach().numpy(), t_out.detach().numpy(), atol=1e-10)
    w = np.random.default_rng(3).random(tuple(t_out.shape))
    (e_out * ember.tensor(w)).sum().backward()
    (t_out * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(ex.grad.numpy(), tx.grad.numpy(), atol=1e-10)


def _t_blend(a, b, r):
    return (r * a + (1 - r) * b).clamp(0, 1)


def _t_gray64(x):
    return (0.2989 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)


_GRAD_CASES = {
    "resize_aa": (lambda x: VF.resize(x, [5, 4]),
                  lambda x: torch.nn.functional.interpolate(x, size=(5, 4), mode="bilinear",
                                                            antialias=True,
                                                            align_corners=False)),
    "normalize": (lambda x: VF.normalize(x, [0.1, 0.2, 0.3], [0.5, 0.6, 0.7]),
                  lambda x: (x - torch.tensor([0.1, 0.2, 0.3], dtype=x.dtype)[:, None, None])
                  / torch.tensor([0.5, 0.6, 0.7], dtype=x.dtype)[:, None, None]),
    "brightness": (lambda x: VF.adjust_brightness(x, 0.8),
                   lambda x: _t_blend(x, torch.zeros_like(x), 0.8)),
    "contrast": (lambda x: VF.adjust_contrast(x, 0.6),
                 lambda x: _t_blend(x, _t_gray64(x).mean(dim=(-3, -2, -1), keepdim=True), 0.6)),
    "saturation": (lambda x: VF.adjust_saturation(x, 0.5),
                   lambda x: _t_blend(x, _t_gray64(x), 0.5)),
    "crop_flip_pad": (lambda x: VF.pad(VF.hflip(VF.crop(x, 1, 2, 5, 6)), [1, 2],
                                       padding_mode="reflect"),
                      lambda x: torch.nn.functional.pad(x[..., 1:6, 2:8].flip(-1), [1, 1, 2, 2],
                                                        mode="reflect")),
}


@pytest.mark.parametrize("name", sorted(_GRAD_CASES))
def test_float64_gradients(name):
    x = np.random.default_rng(2).uniform(0.05, 0.9, (2, 3, 8, 9))
    _grads(*_GRAD_CASES[name], x)


def test_float64_gradients_blur_and_affine():
    x = np.random.default_rng(4).random((2, 3, 8, 9))

    def t_blur(t):
        v = torch.linspace(-1, 1, 3, dtype=torch.float64)
        k = torch.exp(-0.5 * (v / 0.9) ** 2)
        k = k / k.sum()
        k2 = torch.outer(k, k).expand(3, 1, 3, 3)
        return torch.nn.functional.conv2d(
            torch.nn.functional.pad(t, [1, 1, 1, 1], mode="reflect"), k2, groups=3)
    _grads(lambda t: VF.gaussian_blur(t, 3, 0.9), t_blur, x)

    def t_shift(t):   # an integer translation with bilinear sampling is an exact shift
        out = torch.zeros_like(t)
        out[..., 1:, :8] = t[..., :7, 1:]
        return out
    _grads(lambda t: VF.affine(t, 0.0, [-1, 1], 1.0, [0.0, 0.0],
                               VF.InterpolationMode.BILINEAR), t_shift, x)


def test_convert_half_to_uint8_keeps_white():
    """1.0 * 255.999 rounds to 256 in half precision; ember converts through float32."""
    ones = ember.ones(1, 2, 2, dtype=ember.float16)
    assert (VF.convert_image_dtype(ones, ember.uint8).numpy() == 255).all()
    assert (VF.convert_image_dtype(ones.to(ember.bfloat16), ember.uint8).numpy() == 255).all()


@pytest.mark.parametrize("value", [0.5, [0.1, 0.2, 0.3], "random"])
def test_random_erasing(rng, value):
    x = _img(rng, (3, 12, 14))
    out = T.RandomErasing(p=1.0, value=value, generator=_gen(3))(ember.tensor(x)).numpy()
    g = _gen(3)
    assert float(ember.rand(1, generator=g).item()) < 1.0     # the p draw
    vals = None if value == "random" else ([value] if isinstance(value, float) else value)
    i, j, h, w, v = T.RandomErasing.get_params(ember.tensor(x), (0.02, 0.33), (0.3, 3.3),
                                               vals, g)
    ref = x.copy()
    ref[:, i:i + h, j:j + w] = np.broadcast_to(v.numpy(), (3, h, w))
    np.testing.assert_array_equal(out, ref)
    assert 0 < h < 12 and 0 < w < 14
    untouched = T.RandomErasing(p=0.0)(ember.tensor(x))
    np.testing.assert_array_equal(untouched.numpy(), x)
    with pytest.raises(ValueError, match="number of input channels"):
        T.RandomErasing(p=1.0, value=[0.1, 0.2])(ember.tensor(x))
