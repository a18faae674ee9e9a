"""torchvision.transforms (v1) on tensors, in the spirit of torchvision's
test/test_functional_tensor.py and test_transforms.py: ember.vision.transforms.functional
against torchvision.transforms.functional (0.28) on the same float and uint8 images, and the
random transforms replayed: the parameters ember draws (get_params / _draw with a seeded
generator) are fed to torchvision's functional ops, whose output must equal ember's.
uint8 results may differ by one level where a float sits on .5 (noted per test)."""
import numpy as np
import pytest
import torch

import ember
import ember.vision.transforms as T
import ember.vision.transforms.functional as EF
from vision_suite_common import close, image, needs_tv, np_of, same_ints, tv

pytestmark = needs_tv
if tv is not None:
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode as TIM
    from torchvision.transforms.autoaugment import _apply_op as tv_apply_op

DTYPES = ["float32", "uint8"]


def _both(seed, shape=(3, 10, 12), dtype="float32"):
    a = image(seed, shape, dtype)
    return ember.tensor(a), torch.tensor(a)


def _check(e, t, dtype, max_diff=0, atol=1e-5):
    if dtype == "uint8":
        same_ints(e, t, max_diff)
    else:
        close(e, t, atol=atol)


def _mode(name):
    return EF.InterpolationMode(name), TIM(name)


# --- resize ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["nearest", "nearest-exact", "bilinear", "bicubic"])
@pytest.mark.parametrize("antialias", [True, False])
@pytest.mark.parametrize("size", [(5, 7), (17, 23), 6, [8]])
def test_resize(dtype, mode, antialias, size):
    e, t = _both(1, (3, 10, 12), dtype)
    em, tm = _mode(mode)
    out_e = EF.resize(e, size, em, antialias=antialias)
    out_t = TF.resize(t, size, tm, antialias=antialias)
    _check(out_e, out_t, dtype, max_diff=1, atol=1e-4)


@pytest.mark.parametrize("max_size", [13, 20])
def test_resize_max_size_and_batch(max_size):
    e, t = _both(2, (2, 3, 8, 16))
    close(T.Resize(7, max_size=max_size)(e), TF.resize(t, 7, max_size=max_size), atol=1e-5)


def test_resize_unsupported_mode_is_refused():
    e, _ = _both(3)
    for mode in ("box", "hamming", "lanczos"):
        with pytest.raises(ValueError, match="unsupported with Tensor"):
            EF.resize(e, 5, EF.InterpolationMode(mode))


# --- crops, pads, flips --------------------------------------------------------------------
@pytest.mark.parametrize("size", [4, (6, 3), (10, 12), (13, 15), (11, 5)])
def test_center_crop(size):
    e, t = _both(4)
    close(EF.center_crop(e, size), TF.center_crop(t, size))


@pytest.mark.parametrize("box", [(0, 0, 4, 5), (2, 3, 6, 6), (-2, -3, 6, 8), (7, 9, 6, 6)])
def test_crop_with_out_of_bounds_padding(box):
    e, t = _both(5, dtype="uint8")
    same_ints(EF.crop(e, *box), TF.crop(t, *box))


@pytest.mark.parametrize("vertical", [False, True])
def test_five_and_ten_crop(vertical):
    e, t = _both(6)
    for a, b in zip(EF.five_crop(e, (4, 5)), TF.five_crop(t, (4, 5))):
        close(a, b)
    for a, b in zip(T.TenCrop(4, vertical)(e), TF.ten_crop(t, 4, vertical)):
        close(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "symmetric"])
@pytest.mark.parametrize("padding", [2, [1, 3], [1, 2, 3, 4], [3, 0, 0, 1]])
def test_pad(dtype, mode, padding):
    e, t = _both(7, (3, 6, 7), dtype)
    fill = 3 if dtype == "uint8" else 0.25
    _check(EF.pad(e, padding, fill, mode), TF.pad(t, padding, fill, mode), dtype)


@pytest.mark.parametrize("mode", ["constant", "edge"])
def test_negative_pad_crops(mode):
    e, t = _both(8)
    close(EF.pad(e, [-1, 2, -2, 1], 0, mode), TF.pad(t, [-1, 2, -2, 1], 0, mode))


@pytest.mark.parametrize("dtype", DTYPES)
def test_flips(dtype):
    e, t = _both(9, (2, 3, 5, 6), dtype)
    _check(EF.hflip(e), TF.hflip(t), dtype)
    _check(EF.vflip(e), TF.vflip(t), dtype)


# --- geometry -----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("angle", [0, 30, -45, 90, 137.5])
@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("expand,center,fill", [(False, None, None), (True, None, [0.5]),
                                                (False, [2, 3], [1.0, 0.0, 0.5])])
def test_rotate(dtype, angle, mode, expand, center, fill):
    e, t = _both(10, (3, 9, 11), dtype)
    if fill is not None and dtype == "uint8":
        fill = [v * 255 for v in fill]
    em, tm = _mode(mode)
    _check(EF.rotate(e, angle, em, expand, center, fill),
           TF.rotate(t, angle, tm, expand, center, fill), dtype, max_diff=1, atol=1e-4)


AFFINE = [(0, [0, 0], 1.0, [0, 0]), (25, [2, -1], 1.2, [10, 0]), (-60, [0, 3], 0.8, [5, -8]),
          (180, [1, 1], 1.0, 0.0), (10, [-3, 2], 1.5, [20.0])]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("params", AFFINE)
@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_affine(dtype, params, mode):
    e, t = _both(11, (3, 9, 11), dtype)
    em, tm = _mode(mode)
    fill = [7.0, 0.0, 30.0] if dtype == "uint8" else [0.2, 0.0, 1.0]
    _check(EF.affine(e, *params, interpolation=em, fill=fill),
           TF.affine(t, *params, interpolation=tm, fill=fill), dtype, max_diff=1, atol=1e-4)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("fill", [None, [0.5], [1.0, 0.5, 0.0]])
@pytest.mark.parametrize("end", [[[1, 0], [10, 1], [9, 8], [0, 7]],
                                 [[0, 2], [11, 0], [11, 8], [2, 6]]])
def test_perspective(dtype, mode, fill, end):
    e, t = _both(12, (3, 9, 12), dtype)
    if fill is not None and dtype == "uint8":
        fill = [v * 255 for v in fill]
    start = [[0, 0], [11, 0], [11, 8], [0, 8]]
    em, tm = _mode(mode)
    _check(EF.perspective(e, start, end, em, fill), TF.perspective(t, start, end, tm, fill),
           dtype, max_diff=1, atol=1e-4)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_elastic_transform_with_given_displacement(dtype, mode):
    e, t = _both(13, (3, 8, 9), dtype)
    disp = np.random.default_rng(14).normal(size=(1, 8, 9, 2)).astype(np.float32) * 0.1
    em, tm = _mode(mode)
    _check(EF.elastic_transform(e, ember.tensor(disp), em, [0.0]),
           TF.elastic_transform(t, torch.tensor(disp), tm, [0.0]), dtype, max_diff=1,
           atol=1e-5)


def test_elastic_transform_rejects_bad_displacement():
    with pytest.raises(ValueError, match="displacement shape"):
        EF.elastic_transform(ember.rand(3, 4, 4), ember.zeros(1, 4, 5, 2))


# --- colour ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,factors", [
    ("adjust_brightness", [0.0, 0.5, 1.7]), ("adjust_contrast", [0.0, 0.4, 1.6]),
    ("adjust_saturation", [0.0, 0.6, 2.0]), ("adjust_hue", [-0.5, -0.1, 0.25]),
    ("adjust_sharpness", [0.0, 0.5, 2.5]), ("adjust_gamma", [0.5, 1.0, 2.2])])
def test_adjust_color(dtype, name, factors):
    e, t = _both(15, (3, 7, 8), dtype)
    for f in factors:
        _check(getattr(EF, name)(e, f), getattr(TF, name)(t, f), dtype, max_diff=1, atol=1e-5)


@pytest.mark.parametrize("name", ["adjust_brightness", "adjust_contrast", "adjust_sharpness",
                                  "adjust_saturation", "adjust_hue"])
def test_adjust_single_channel(name):
    e, t = _both(16, (1, 6, 6), "uint8")
    f = 0.3 if name == "adjust_hue" else 1.5
    same_ints(getattr(EF, name)(e, f), getattr(TF, name)(t, f), 1)


def test_adjust_gamma_gain():
    e, t = _both(17)
    close(EF.adjust_gamma(e, 0.8, 1.3), TF.adjust_gamma(t, 0.8, 1.3))


@pytest.mark.parametrize("bits", range(0, 9))
def test_posterize(bits):
    e, t = _both(18, (3, 6, 7), "uint8")
    same_ints(EF.posterize(e, bits), TF.posterize(t, bits))


def test_posterize_needs_uint8():
    with pytest.raises(TypeError, match="uint8"):
        EF.posterize(ember.rand(3, 4, 4), 4)


@pytest.mark.parametrize("dtype,threshold", [("uint8", 0), ("uint8", 128), ("uint8", 255),
                                             ("float32", 0.5), ("float32", 0.0)])
def test_solarize(dtype, threshold):
    e, t = _both(19, (3, 6, 7), dtype)
    _check(EF.solarize(e, threshold), TF.solarize(t, threshold), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", [False, True])
def test_autocontrast(dtype, batch):
    shape = (2, 3, 6, 7) if batch else (3, 6, 7)
    a = image(20, shape, dtype)
    if dtype == "uint8":
        a = (a // 2 + 30).astype(np.uint8)
        a[..., 0, :, :] = 77          # a constant channel stays as it is
    else:
        a = a * 0.5 + 0.2
    _check(EF.autocontrast(ember.tensor(a)), TF.autocontrast(torch.tensor(a)), dtype,
           atol=1e-5)


@pytest.mark.parametrize("shape", [(3, 9, 10), (1, 9, 10), (2, 3, 5, 6)])
def test_equalize(shape):
    a = image(21, shape, "uint8")
    a = (a // 4 + 40).astype(np.uint8)     # a narrow histogram
    same_ints(EF.equalize(ember.tensor(a)), TF.equalize(torch.tensor(a)))


def test_equalize_constant_image_is_unchanged():
    a = np.full((3, 5, 5), 9, np.uint8)
    same_ints(EF.equalize(ember.tensor(a)), TF.equalize(torch.tensor(a)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_invert(dtype):
    e, t = _both(22, (3, 5, 6), dtype)
    _check(EF.invert(e), TF.invert(t), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels", [1, 3])
def test_rgb_to_grayscale(dtype, channels):
    e, t = _both(23, (3, 5, 6), dtype)
    _check(EF.rgb_to_grayscale(e, channels), TF.rgb_to_grayscale(t, channels), dtype)


@pytest.mark.parametrize("inplace", [False, True])
def test_normalize(inplace):
    e, t = _both(24, (2, 3, 4, 5))
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    close(EF.normalize(e, mean, std, inplace), TF.normalize(t, mean, std, inplace))


@pytest.mark.parametrize("src,dst", [("uint8", "float32"), ("float32", "uint8"),
                                     ("uint8", "int32"), ("int32", "uint8"),
                                     ("float32", "float64"), ("uint8", "int16"),
                                     ("float64", "int16"), ("int16", "float32")])
def test_convert_image_dtype(src, dst):
    rng = np.random.default_rng(25)
    if src.startswith("float"):
        a = rng.random((3, 4, 5)).astype(src)
        a[0, 0, 0], a[0, 0, 1] = 1.0, 0.0
    else:
        a = rng.integers(0, np.iinfo(src).max, (3, 4, 5)).astype(src)
    e = EF.convert_image_dtype(ember.tensor(a), getattr(ember, dst))
    t = TF.convert_image_dtype(torch.tensor(a), getattr(torch, dst))
    close(e, t, atol=1e-6)
    assert str(e.dtype).split(".")[-1] == dst


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel,sigma", [(3, None), ((5, 3), (1.5, 0.7)), (7, 2.0), (1, 1.0)])
def test_gaussian_blur(dtype, kernel, sigma):
    e, t = _both(26, (3, 9, 10), dtype)
    _check(EF.gaussian_blur(e, kernel, sigma), TF.gaussian_blur(t, kernel, sigma), dtype,
           max_diff=1, atol=1e-5)


@pytest.mark.parametrize("value", [0.0, [0.1, 0.5, 0.9]])
def test_erase(value):
    e, t = _both(27)
    v = torch.tensor(value).reshape(-1, 1, 1) if isinstance(value, list) else \
        torch.tensor(value)
    close(EF.erase(e, 2, 3, 4, 5, ember.tensor(v.numpy())), TF.erase(t, 2, 3, 4, 5, v))


# --- PIL interop --------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA"])
def test_to_tensor_and_pil_to_tensor(mode):
    from PIL import Image
    arr = image(28, (6, 7, {"RGB": 3, "L": 1, "RGBA": 4}[mode]), "uint8")
    pic = Image.fromarray(arr[..., 0] if mode == "L" else arr, mode)
    close(T.ToTensor()(pic), TF.to_tensor(pic), atol=1e-7)
    same_ints(T.PILToTensor()(pic), TF.pil_to_tensor(pic))


def test_to_pil_image_round_trip():
    e, t = _both(29, (3, 5, 6), "uint8")
    a = np.asarray(T.ToPILImage()(e))
    b = np.asarray(TF.to_pil_image(t))
    assert (a == b).all()


# --- random transforms replayed through torchvision's functional ops ---------------------------
def _gen(seed):
    return ember.Generator().manual_seed(seed)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_crop_replay(seed):
    e, t = _both(30, (3, 12, 14))
    i, j, h, w = T.RandomCrop.get_params(e, (6, 7), _gen(seed))
    close(T.RandomCrop((6, 7), generator=_gen(seed))(e), TF.crop(t, i, j, h, w))


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("padding_mode", ["constant", "reflect"])
def test_random_crop_padding_replay(seed, padding_mode):
    e, t = _both(31, (3, 6, 7))
    out = T.RandomCrop(8, padding=2, padding_mode=padding_mode, generator=_gen(seed))(e)
    padded = TF.pad(t, 2, 0, padding_mode)
    i, j, h, w = T.RandomCrop.get_params(ember.tensor(padded.numpy()), (8, 8), _gen(seed))
    close(out, TF.crop(padded, i, j, h, w))


@pytest.mark.parametrize("seed", [0, 4, 9])
def test_random_resized_crop_replay(seed):
    e, t = _both(32, (3, 16, 20))
    i, j, h, w = T.RandomResizedCrop.get_params(e, (0.08, 1.0), (3 / 4, 4 / 3), _gen(seed))
    close(T.RandomResizedCrop((8, 9), generator=_gen(seed))(e),
          TF.resized_crop(t, i, j, h, w, [8, 9], antialias=True), atol=1e-5)


@pytest.mark.parametrize("seed", [0, 5])
def test_random_rotation_and_affine_replay(seed):
    e, t = _both(33, (3, 10, 10))
    angle = T.RandomRotation.get_params([-40.0, 40.0], _gen(seed))
    close(T.RandomRotation(40, generator=_gen(seed))(e), TF.rotate(t, angle, fill=[0.0] * 3),
          atol=1e-5)
    params = T.RandomAffine.get_params([-30.0, 30.0], (0.2, 0.1), (0.8, 1.2), [-10.0, 10.0],
                                       [10, 10], _gen(seed))
    out = T.RandomAffine(30, (0.2, 0.1), (0.8, 1.2), 10, generator=_gen(seed))(e)
    close(out, TF.affine(t, *params, fill=[0.0] * 3), atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 6])
def test_random_perspective_replay(seed):
    e, t = _both(34, (3, 9, 11), "uint8")
    g = _gen(seed)
    applied = float(ember.rand(1, generator=g).item()) < 0.5
    start, end = T.RandomPerspective.get_params(11, 9, 0.5, g)
    out = T.RandomPerspective(0.5, 0.5, generator=_gen(seed))(e)
    ref = TF.perspective(t, start, end, TIM.BILINEAR, [0.0] * 3) if applied else t
    same_ints(out, ref, 1)


@pytest.mark.parametrize("seed", [0, 7])
def test_elastic_transform_replay(seed):
    e, t = _both(35, (3, 12, 12))
    disp = T.ElasticTransform.get_params([10.0, 10.0], [2.0, 2.0], [12, 12], _gen(seed))
    out = T.ElasticTransform(10.0, 2.0, generator=_gen(seed))(e)
    close(out, TF.elastic_transform(t, torch.tensor(np_of(disp)), TIM.BILINEAR, [0.0]),
          atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_color_jitter_replay(seed):
    e, t = _both(36, (3, 6, 7))
    ranges = ([0.5, 1.5], [0.6, 1.4], [0.0, 2.0], [-0.2, 0.2])
    order, b, c, s, h = T.ColorJitter.get_params(*ranges, _gen(seed))
    ref = t
    for fn_id in order:
        ref = [lambda x: TF.adjust_brightness(x, b), lambda x: TF.adjust_contrast(x, c),
               lambda x: TF.adjust_saturation(x, s), lambda x: TF.adjust_hue(x, h)][fn_id](ref)
    close(T.ColorJitter(0.5, 0.4, 1.0, 0.2, generator=_gen(seed))(e), ref, atol=1e-5)


@pytest.mark.parametrize("cls,fn,arg", [
    ("RandomPosterize", "posterize", 3), ("RandomSolarize", "solarize", 100),
    ("RandomAdjustSharpness", "adjust_sharpness", 2.0),
    ("RandomAutocontrast", "autocontrast", None),
    ("RandomEqualize", "equalize", None), ("RandomInvert", "invert", None)])
@pytest.mark.parametrize("p", [0.0, 1.0])
def test_random_apply_color_ops(cls, fn, arg, p):
    e, t = _both(37, (3, 6, 7), "uint8")
    args = () if arg is None else (arg,)
    out = getattr(T, cls)(*args, p=p)(e)
    ref = getattr(TF, fn)(t, *args) if p == 1.0 else t
    same_ints(out, ref)


@pytest.mark.parametrize("seed", [0, 1])
def test_random_erasing_replay(seed):
    e, t = _both(38)
    g = _gen(seed)
    applied = float(ember.rand(1, generator=g).item()) < 0.5
    i, j, h, w, v = T.RandomErasing.get_params(e, (0.02, 0.33), (0.3, 3.3), [0.5], g)
    out = T.RandomErasing(value=0.5, generator=_gen(seed))(e)
    ref = TF.erase(t, i, j, h, w, torch.tensor(np_of(v))) if applied else t
    close(out, ref)


def test_random_flips_and_grayscale_p():
    e, t = _both(39)
    close(T.RandomHorizontalFlip(1.0)(e), TF.hflip(t))
    close(T.RandomVerticalFlip(1.0)(e), TF.vflip(t))
    close(T.RandomHorizontalFlip(0.0)(e), t)
    close(T.RandomGrayscale(1.0)(e), TF.rgb_to_grayscale(t, 3))


def test_random_choice_and_order():
    e, t = _both(40)
    out = T.RandomChoice([T.RandomHorizontalFlip(1.0), T.RandomVerticalFlip(1.0)],
                         p=[0.0, 1.0])(e)
    close(out, TF.vflip(t))
    both = T.RandomOrder([T.RandomHorizontalFlip(1.0), T.RandomVerticalFlip(1.0)])(e)
    close(both, TF.vflip(TF.hflip(t)))


def test_linear_transformation():
    e, t = _both(41, (2, 3, 2, 2))
    rng = np.random.default_rng(42)
    m, mean = rng.normal(size=(12, 12)).astype(np.float32), rng.random(12).astype(np.float32)
    from torchvision.transforms import LinearTransformation as TLT
    close(T.LinearTransformation(ember.tensor(m), ember.tensor(mean))(e),
          TLT(torch.tensor(m), torch.tensor(mean))(t), atol=1e-4)


# --- augmentation policies ------------------------------------------------------------------
OPS = [("ShearX", 0.3), ("ShearX", -0.2), ("ShearY", 0.25), ("TranslateX", 3.7),
       ("TranslateY", -2.2), ("Rotate", 20.0), ("Rotate", -12.5), ("Brightness", 0.4),
       ("Color", -0.5), ("Contrast", 0.6), ("Sharpness", 0.9), ("Posterize", 4.0),
       ("Solarize", 120.0), ("AutoContrast", 0.0), ("Equalize", 0.0), ("Invert", 0.0),
       ("Identity", 0.0)]


@pytest.mark.parametrize("op,magnitude", OPS)
@pytest.mark.parametrize("fill", [None, [10.0, 20.0, 30.0]])
def test_apply_op_matches_torchvision(op, magnitude, fill):
    from ember.vision.transforms.autoaugment import _apply_op
    e, t = _both(43, (3, 10, 11), "uint8")
    same_ints(_apply_op(e, op, magnitude, EF.InterpolationMode.NEAREST, fill),
              tv_apply_op(t, op, magnitude, TIM.NEAREST, fill), 1)


def _replay(ops, t, fill=None, mode=None):
    for name, magnitude in ops:
        t = tv_apply_op(t, name, magnitude, mode or TIM.NEAREST, fill)
    return t


@pytest.mark.parametrize("policy", ["imagenet", "cifar10", "svhn"])
@pytest.mark.parametrize("seed", range(4))
def test_autoaugment_replay(policy, seed):
    e, t = _both(44 + seed, (3, 12, 12), "uint8")
    pol = T.AutoAugmentPolicy(policy)
    ops = T.AutoAugment(pol, generator=_gen(seed))._draw(12, 12)
    same_ints(T.AutoAugment(pol, generator=_gen(seed))(e), _replay(ops, t), 1)


def test_autoaugment_policy_tables_equal_torchvision():
    from torchvision.transforms import AutoAugment as TAA, AutoAugmentPolicy as TP
    for name in ("imagenet", "cifar10", "svhn"):
        assert T.AutoAugment(T.AutoAugmentPolicy(name)).policies == TAA(TP(name)).policies


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("num_ops,magnitude", [(2, 9), (3, 15)])
def test_randaugment_replay(seed, num_ops, magnitude):
    e, t = _both(50 + seed, (3, 12, 12), "uint8")
    ops = T.RandAugment(num_ops, magnitude, generator=_gen(seed))._draw(12, 12)
    assert len(ops) == num_ops
    out = T.RandAugment(num_ops, magnitude, fill=5, generator=_gen(seed))(e)
    same_ints(out, _replay(ops, t, [5.0] * 3), 1)


@pytest.mark.parametrize("seed", range(4))
def test_trivial_augment_replay(seed):
    e, t = _both(60 + seed, (3, 12, 12), "uint8")
    ops = T.TrivialAugmentWide(generator=_gen(seed))._draw(12, 12)
    same_ints(T.TrivialAugmentWide(generator=_gen(seed))(e), _replay(ops, t), 1)


def test_augmentation_spaces_equal_torchvision():
    from torchvision.transforms import (AugMix as TAM, RandAugment as TRA,
                                        TrivialAugmentWide as TTA)

    def norm(space):
        return {k: (None if v[0] is None or (hasattr(v[0], "ndim") and v[0].ndim == 0)
                    else [round(float(x), 4) for x in v[0]], v[1]) for k, v in space.items()}
    assert norm(T.RandAugment()._augmentation_space(31, (12, 20))) == \
        norm(TRA()._augmentation_space(31, (12, 20)))
    assert norm(T.TrivialAugmentWide()._augmentation_space(31)) == \
        norm(TTA()._augmentation_space(31))
    for all_ops in (True, False):
        assert norm(T.AugMix(all_ops=all_ops)._augmentation_space(10, (12, 20))) == \
            norm(TAM(all_ops=all_ops)._augmentation_space(10, (12, 20)))


@pytest.mark.parametrize("seed", range(3))
def test_augmix_mix_replay(seed):
    e, t = _both(70 + seed, (2, 3, 10, 10), "uint8")
    am = T.AugMix(severity=3, mixture_width=3, generator=_gen(seed))
    chains = am._draw(10, 10)
    m, w = am._weights(2)
    out = am.mix(e, m, w, chains)
    tm, tw = torch.tensor(np_of(m)), torch.tensor(np_of(w))
    mix = tm[:, 0].view(2, 1, 1, 1) * t
    for i, chain in enumerate(chains):
        mix = mix + tw[:, i].view(2, 1, 1, 1) * _replay(chain, t, None, TIM.BILINEAR)
    same_ints(out, mix.to(torch.uint8), 1)
    assert np.allclose(np_of(m).sum(1), 1) and np.allclose(np_of(w).sum(1), np_of(m)[:, 1])


def test_policies_keep_dtype_shape_and_reproduce():
    e, _ = _both(80, (3, 16, 16), "uint8")
    for cls in (T.AutoAugment, T.RandAugment, T.TrivialAugmentWide, T.AugMix):
        ember.manual_seed(0)
        a = cls()(e)
        ember.manual_seed(0)
        b = cls()(e)
        assert a.dtype == ember.uint8 and tuple(a.shape) == (3, 16, 16)
        assert (np_of(a) == np_of(b)).all()
    with pytest.raises(ValueError, match="severity"):
        T.AugMix(severity=11)


# --- compilation ------------------------------------------------------------------------------
class _Ops(ember.nn.Module):
    """Fixed-parameter colour and warp ops in one module."""

    def forward(self, x):
        x = EF.adjust_sharpness(x, 1.7)
        x = EF.solarize(x, 0.8)
        x = EF.autocontrast(x)
        return EF.perspective(x, [[0, 0], [11, 0], [11, 9], [0, 9]],
                              [[1, 0], [10, 1], [11, 8], [0, 9]], fill=[0.0])


def test_new_deterministic_ops_compile_in_one_graph():
    x = ember.tensor(image(90, (2, 3, 10, 12)))
    module = _Ops()
    explained = ember.compile.explain(module, x)
    assert explained.graph_break_count == 0, str(explained)
    close(ember.compile(module)(x), module(x), atol=1e-5)
