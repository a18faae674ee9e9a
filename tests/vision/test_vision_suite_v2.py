"""torchvision.transforms.v2 and tv_tensors cases (in the spirit of torchvision's
test/test_transforms_v2.py and test_tv_tensors.py): ember.vision.transforms.v2 against
torchvision 0.28's v2 on images, bounding boxes (every axis-aligned format) and masks;
random transforms replayed through torchvision's v2 functional with ember's drawn params."""
import numpy as np
import pytest
import torch

import ember
from ember.vision import tv_tensors as etv
from ember.vision.transforms import v2 as E2
from ember.vision.transforms.v2 import functional as EF2
from vision_suite_common import close, image, needs_tv, np_of, same_ints, tv

pytestmark = needs_tv
if tv is not None:
    from torchvision import tv_tensors as ttv
    from torchvision.transforms import v2 as T2
    from torchvision.transforms.v2 import functional as TF2

FORMATS = ["XYXY", "XYWH", "CXCYWH"]
CANVAS = (12, 16)


def _boxes_xyxy(seed, n=5):
    rng = np.random.default_rng(seed)
    xy = rng.random((n, 2)) * np.array([14, 10])
    wh = rng.random((n, 2)) * 6 + 1
    return np.concatenate([xy, xy + wh], 1).astype(np.float32)


def _boxes(seed, fmt, n=5, canvas=CANVAS):
    xyxy = torch.tensor(_boxes_xyxy(seed, n))
    data = tv.ops.box_convert(xyxy, "xyxy", fmt.lower()).numpy()
    return (etv.BoundingBoxes(ember.tensor(data), format=fmt, canvas_size=canvas),
            ttv.BoundingBoxes(torch.tensor(data), format=fmt, canvas_size=canvas))


def _mask(seed, shape=CANVAS):
    m = (np.random.default_rng(seed).random(shape) * 4).astype(np.uint8)
    return etv.Mask(ember.tensor(m)), ttv.Mask(torch.tensor(m))


def _image(seed, dtype="float32", shape=(3,) + CANVAS):
    a = image(seed, shape, dtype)
    return etv.Image(ember.tensor(a)), ttv.Image(torch.tensor(a))


def _same_boxes(e, t, atol=1e-4):
    assert isinstance(e, etv.BoundingBoxes)
    close(e, t.as_subclass(torch.Tensor), atol=atol)
    assert e.format.value == t.format.value
    assert tuple(e.canvas_size) == tuple(t.canvas_size)


# --- tv_tensors -------------------------------------------------------------------------
def test_tv_tensor_ops_return_plain_tensors_and_clone_keeps_metadata():
    b, _ = _boxes(0, "XYXY")
    assert type(b + 1) is ember.Tensor and type(b.sum()) is ember.Tensor
    c = b.clone()
    assert type(c) is etv.BoundingBoxes and c.canvas_size == CANVAS and c.format == b.format
    assert type(b.to(ember.float64)) is etv.BoundingBoxes
    w = etv.wrap(b * 2, like=b, canvas_size=(5, 5))
    assert type(w) is etv.BoundingBoxes and w.canvas_size == (5, 5)
    img = etv.Image(ember.rand(4, 5))
    assert tuple(img.shape) == (1, 4, 5) and type(img * 2) is ember.Tensor


def test_bounding_boxes_validation():
    with pytest.raises(ValueError, match="format"):
        etv.BoundingBoxes(ember.zeros(1, 4), format="XYXYR", canvas_size=(2, 2))
    with pytest.raises(ValueError, match="4 values"):
        etv.BoundingBoxes(ember.zeros(2, 5), format="XYXY", canvas_size=(2, 2))
    one = etv.BoundingBoxes(ember.tensor([1.0, 2, 3, 4]), format="xywh", canvas_size=(5, 5))
    assert tuple(one.shape) == (1, 4) and one.format == etv.BoundingBoxFormat.XYWH


# --- box kernels --------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("op", ["horizontal_flip", "vertical_flip"])
def test_flip_boxes(fmt, op):
    e, t = _boxes(1, fmt)
    _same_boxes(getattr(EF2, op)(e), getattr(TF2, op)(t))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("size,max_size", [((24, 20), None), ([6], None), (8, 13),
                                           ((12, 16), None)])
def test_resize_boxes(fmt, size, max_size):
    e, t = _boxes(2, fmt)
    _same_boxes(EF2.resize(e, size, max_size=max_size), TF2.resize(t, size, max_size=max_size))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("box", [(2, 3, 6, 8), (0, 0, 12, 16), (5, 7, 10, 10), (-2, -3, 8, 9)])
def test_crop_boxes(fmt, box):
    e, t = _boxes(3, fmt)
    _same_boxes(EF2.crop(e, *box), TF2.crop(t, *box))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("size", [(6, 8), 10, (14, 20)])
def test_center_crop_boxes(fmt, size):
    e, t = _boxes(4, fmt)
    _same_boxes(EF2.center_crop(e, size), TF2.center_crop(t, size))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("padding", [2, [1, 3], [1, 2, 3, 4]])
def test_pad_boxes(fmt, padding):
    e, t = _boxes(5, fmt)
    _same_boxes(EF2.pad(e, padding), TF2.pad(t, padding))


def test_pad_boxes_refuses_reflect():
    e, _ = _boxes(5, "XYXY")
    with pytest.raises(ValueError, match="not supported with bounding boxes"):
        EF2.pad(e, 2, padding_mode="reflect")


@pytest.mark.parametrize("fmt", FORMATS)
def test_resized_crop_boxes(fmt):
    e, t = _boxes(6, fmt)
    _same_boxes(EF2.resized_crop(e, 2, 3, 8, 9, (16, 18)),
                TF2.resized_crop(t, 2, 3, 8, 9, (16, 18)))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("angle", [0, 15, -40, 90])
@pytest.mark.parametrize("expand", [False, True])
def test_rotate_boxes(fmt, angle, expand):
    e, t = _boxes(7, fmt)
    _same_boxes(EF2.rotate(e, angle, expand=expand), TF2.rotate(t, angle, expand=expand),
                atol=1e-3)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("params", [(20, [1, -2], 1.1, [5.0, 0.0]),
                                    (-10, [0, 0], 0.9, [0.0, 8.0]), (0, [3, 2], 1.0, [0.0, 0.0])])
@pytest.mark.parametrize("center", [None, [3, 4]])
def test_affine_boxes(fmt, params, center):
    e, t = _boxes(8, fmt)
    _same_boxes(EF2.affine(e, *params, center=center), TF2.affine(t, *params, center=center),
                atol=1e-3)


@pytest.mark.parametrize("old", FORMATS)
@pytest.mark.parametrize("new", FORMATS)
def test_convert_bounding_box_format(old, new):
    e, t = _boxes(9, old)
    _same_boxes(EF2.convert_bounding_box_format(e, new_format=new),
                TF2.convert_bounding_box_format(t, new_format=new))
    close(EF2.convert_bounding_box_format(e.as_subclass(ember.Tensor), old_format=old,
                                          new_format=new),
          TF2.convert_bounding_box_format(t.as_subclass(torch.Tensor), old_format=old,
                                          new_format=new), atol=1e-5)


@pytest.mark.parametrize("fmt", FORMATS)
def test_clamp_bounding_boxes(fmt):
    e, t = _boxes(10, fmt)
    e = etv.wrap(e * 1.6 - 3, like=e)
    t = ttv.wrap(t * 1.6 - 3, like=t)
    _same_boxes(EF2.clamp_bounding_boxes(e), TF2.clamp_bounding_boxes(t))
    close(EF2.clamp_bounding_boxes(e.as_subclass(ember.Tensor), format=fmt, canvas_size=CANVAS,
                                   clamping_mode="hard"),
          TF2.clamp_bounding_boxes(t.as_subclass(torch.Tensor), format=fmt, canvas_size=CANVAS,
                                   clamping_mode="hard"), atol=1e-5)


@pytest.mark.parametrize("min_size,min_area", [(1.0, 1.0), (3.0, 10.0)])
def test_sanitize_bounding_boxes_functional(min_size, min_area):
    data = np.array([[0, 0, 5, 5], [2, 2, 2.5, 9], [3, 3, 20, 8], [-1, 0, 4, 4],
                     [1, 1, 4, 7]], np.float32)
    e = etv.BoundingBoxes(ember.tensor(data), format="XYXY", canvas_size=CANVAS)
    t = ttv.BoundingBoxes(torch.tensor(data), format="XYXY", canvas_size=CANVAS)
    eb, ev = EF2.sanitize_bounding_boxes(e, min_size=min_size, min_area=min_area)
    tb, tv_ = TF2.sanitize_bounding_boxes(t, min_size=min_size, min_area=min_area)
    assert np_of(ev).tolist() == tv_.tolist()
    _same_boxes(eb, tb)


def test_integer_boxes_flip_and_convert():
    data = np.array([[1, 2, 7, 9], [0, 0, 4, 5]], np.int64)
    e = etv.BoundingBoxes(ember.tensor(data), format="XYXY", canvas_size=CANVAS)
    t = ttv.BoundingBoxes(torch.tensor(data), format="XYXY", canvas_size=CANVAS)
    for new in FORMATS:
        _same_boxes(EF2.convert_bounding_box_format(EF2.horizontal_flip(e), new_format=new),
                    TF2.convert_bounding_box_format(TF2.horizontal_flip(t), new_format=new))


# --- masks ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("op,args", [
    ("resize", ((24, 20),)), ("resize", ((7, 9),)), ("crop", (1, 2, 6, 7)),
    ("pad", ([1, 2, 3, 4],)),
    ("center_crop", ((8, 8),)), ("horizontal_flip", ()), ("vertical_flip", ()),
    ("rotate", (30,)), ("affine", (15, [1, 2], 1.2, [5.0, 0.0])),
    ("resized_crop", (1, 1, 8, 8, (10, 10)))])
@pytest.mark.parametrize("batched", [False, True])
def test_mask_ops(op, args, batched):
    e, t = _mask(11, (2,) + CANVAS if batched else CANVAS)
    out_e, out_t = getattr(EF2, op)(e, *args), getattr(TF2, op)(t, *args)
    assert isinstance(out_e, etv.Mask)
    same_ints(out_e, out_t.as_subclass(torch.Tensor))


def test_mask_pad_refuses_sequence_fill():
    e, _ = _mask(12)
    with pytest.raises(ValueError, match="Non-scalar fill"):
        EF2.pad(e, 2, fill=[1, 2])


# --- images -------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "uint8"])
@pytest.mark.parametrize("op,args", [
    ("resize", ((8, 10),)), ("resize", ((20, 30),)), ("crop", (1, 2, 6, 7)),
    ("pad", ([1, 2],)),
    ("horizontal_flip", ()), ("rotate", (25,)), ("affine", (10, [1, 1], 1.1, [3.0, 0.0])),
    ("center_crop", ((8, 8),)), ("adjust_brightness", (1.3,)), ("adjust_hue", (0.1,)),
    ("rgb_to_grayscale", ()), ("invert", ()), ("gaussian_blur", ([3, 3], [1.0, 1.0]))])
def test_image_ops(dtype, op, args):
    e, t = _image(13, dtype)
    out_e, out_t = getattr(EF2, op)(e, *args), getattr(TF2, op)(t, *args)
    assert isinstance(out_e, etv.Image)
    if dtype == "uint8":
        same_ints(out_e, out_t.as_subclass(torch.Tensor), 1)
    else:
        close(out_e, out_t.as_subclass(torch.Tensor), atol=1e-4)


@pytest.mark.parametrize("src,dst,scale", [
    ("uint8", "float32", True), ("float32", "uint8", True), ("uint8", "float32", False),
    ("uint8", "int16", True), ("int16", "uint8", True), ("float32", "float64", True)])
def test_to_dtype(src, dst, scale):
    a = image(14, (3, 5, 6), src) if src != "int16" else \
        np.random.default_rng(14).integers(0, 32767, (3, 5, 6)).astype(np.int16)
    e = EF2.to_dtype(ember.tensor(a), getattr(ember, dst), scale)
    t = TF2.to_dtype(torch.tensor(a), getattr(torch, dst), scale)
    close(e, t, atol=0, rtol=0)


# --- transforms on samples ----------------------------------------------------------------------
def _sample(seed):
    ie, it = _image(seed)
    be, bt = _boxes(seed + 1, "XYXY")
    me, mt = _mask(seed + 2)
    labels = np.arange(5)
    return ((ie, {"boxes": be, "masks": me, "labels": ember.tensor(labels)}),
            (it, {"boxes": bt, "masks": mt, "labels": torch.tensor(labels)}))


def _same_sample(e, t):
    close(e[0], t[0].as_subclass(torch.Tensor), atol=1e-4)
    _same_boxes(e[1]["boxes"], t[1]["boxes"], atol=1e-3)
    same_ints(e[1]["masks"], t[1]["masks"].as_subclass(torch.Tensor))
    assert np_of(e[1]["labels"]).tolist() == t[1]["labels"].tolist()


@pytest.mark.parametrize("name,args", [
    ("Resize", ((20, 24),)), ("Resize", (8,)), ("CenterCrop", ((8, 10),)),
    ("Pad", ([1, 2, 3, 4],)),
    ("RandomHorizontalFlip", (1.0,)), ("RandomVerticalFlip", (1.0,)),
    ("ConvertBoundingBoxFormat", ("CXCYWH",)), ("ClampBoundingBoxes", ()),
    ("Normalize", ([0.5, 0.4, 0.3], [0.2, 0.3, 0.4])), ("Grayscale", (3,)),
    ("ToDtype", (ember.float64,))])
def test_deterministic_transforms_on_samples(name, args):
    e, t = _sample(20)
    targs = tuple(torch.float64 if a is ember.float64 else a for a in args)
    out_e, out_t = getattr(E2, name)(*args)(*e), getattr(T2, name)(*targs)(*t)
    _same_sample(out_e, out_t)


def test_compose_and_plain_tensor_heuristic():
    e, t = _sample(21)
    pipe_e = E2.Compose([E2.Resize((16, 20)), E2.RandomHorizontalFlip(1.0), E2.CenterCrop(12)])
    pipe_t = T2.Compose([T2.Resize((16, 20)), T2.RandomHorizontalFlip(1.0), T2.CenterCrop(12)])
    _same_sample(pipe_e(*e), pipe_t(*t))
    plain = ember.rand(3, 6, 8)
    out = E2.RandomHorizontalFlip(1.0)(plain, ember.ones(2, 2))
    close(out[0], np_of(plain)[..., ::-1])
    close(out[1], np.ones((2, 2)))        # only the first plain tensor is the image


def _gen(seed):
    return ember.Generator().manual_seed(seed)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_crop_replay(seed):
    e, t = _sample(22)
    tr = E2.RandomCrop((8, 9), padding=2, generator=_gen(seed))
    p = E2.RandomCrop((8, 9), padding=2, generator=_gen(seed)).make_params([e[0]])
    out_e = tr(*e)
    pad_t = [TF2.pad(x, [2]) for x in (t[0], t[1]["boxes"], t[1]["masks"])]
    crop_t = [TF2.crop(x, p["top"], p["left"], 8, 9) for x in pad_t]
    close(out_e[0], crop_t[0].as_subclass(torch.Tensor), atol=1e-6)
    _same_boxes(out_e[1]["boxes"], crop_t[1])
    same_ints(out_e[1]["masks"], crop_t[2].as_subclass(torch.Tensor))


@pytest.mark.parametrize("seed", [0, 3])
def test_random_resized_crop_replay(seed):
    e, t = _sample(23)
    p = E2.RandomResizedCrop((10, 10), generator=_gen(seed)).make_params([e[0]])
    out_e = E2.RandomResizedCrop((10, 10), generator=_gen(seed))(*e)
    args = (p["top"], p["left"], p["height"], p["width"], [10, 10])
    close(out_e[0], TF2.resized_crop(t[0], *args).as_subclass(torch.Tensor), atol=1e-4)
    _same_boxes(out_e[1]["boxes"], TF2.resized_crop(t[1]["boxes"], *args))
    same_ints(out_e[1]["masks"],
              TF2.resized_crop(t[1]["masks"], *args).as_subclass(torch.Tensor))


@pytest.mark.parametrize("seed", [0, 4])
def test_random_rotation_and_affine_replay(seed):
    e, t = _sample(24)
    p = E2.RandomRotation(30, generator=_gen(seed)).make_params([e[0]])
    out = E2.RandomRotation(30, generator=_gen(seed))(*e)
    _same_boxes(out[1]["boxes"], TF2.rotate(t[1]["boxes"], p["angle"]), atol=1e-3)
    close(out[0], TF2.rotate(t[0], p["angle"]).as_subclass(torch.Tensor), atol=1e-4)
    q = E2.RandomAffine(20, (0.1, 0.1), (0.9, 1.1), 5, generator=_gen(seed)).make_params([e[0]])
    out = E2.RandomAffine(20, (0.1, 0.1), (0.9, 1.1), 5, generator=_gen(seed))(*e)
    args = (q["angle"], list(q["translate"]), q["scale"], list(q["shear"]))
    _same_boxes(out[1]["boxes"], TF2.affine(t[1]["boxes"], *args), atol=1e-3)
    same_ints(out[1]["masks"], TF2.affine(t[1]["masks"], *args).as_subclass(torch.Tensor))


def test_sanitize_bounding_boxes_transform():
    ie, it = _image(25)
    data = np.array([[0, 0, 5, 5], [2, 2, 2.5, 9], [3, 3, 20, 8], [1, 1, 4, 7]], np.float32)
    be = etv.BoundingBoxes(ember.tensor(data), format="XYXY", canvas_size=CANVAS)
    bt = ttv.BoundingBoxes(torch.tensor(data), format="XYXY", canvas_size=CANVAS)
    masks = np.random.default_rng(26).integers(0, 2, (4,) + CANVAS).astype(np.uint8)
    e = E2.SanitizeBoundingBoxes()((ie, {"boxes": be, "labels": ember.tensor([1, 2, 3, 4]),
                                          "masks": etv.Mask(ember.tensor(masks))}))
    t = T2.SanitizeBoundingBoxes()((it, {"boxes": bt, "labels": torch.tensor([1, 2, 3, 4]),
                                         "masks": ttv.Mask(torch.tensor(masks))}))
    _same_boxes(e[1]["boxes"], t[1]["boxes"])
    assert np_of(e[1]["labels"]).tolist() == t[1]["labels"].tolist()
    same_ints(e[1]["masks"], t[1]["masks"].as_subclass(torch.Tensor))
    with pytest.raises(ValueError, match="labels"):
        E2.SanitizeBoundingBoxes()((ie, {"boxes": be}))


def test_to_dtype_dict_and_scale():
    e, t = _sample(27)
    ie = etv.Image(ember.tensor((np_of(e[0]) * 255).astype(np.uint8)))
    it = ttv.Image(torch.tensor((np_of(e[0]) * 255).astype(np.uint8)))
    out_e = E2.ToDtype({etv.Image: ember.float32, etv.Mask: ember.int64, "others": None},
                       scale=True)(ie, e[1])
    out_t = T2.ToDtype({ttv.Image: torch.float32, ttv.Mask: torch.int64, "others": None},
                       scale=True)(it, t[1])
    close(out_e[0], out_t[0].as_subclass(torch.Tensor), atol=0)
    assert out_e[1]["masks"].dtype == ember.int64 and isinstance(out_e[1]["masks"], etv.Mask)


def test_to_image_and_to_pure_tensor():
    from PIL import Image
    arr = image(28, (5, 6, 3), "uint8")
    e, t = E2.ToImage()(Image.fromarray(arr)), T2.ToImage()(Image.fromarray(arr))
    assert isinstance(e, etv.Image)
    same_ints(e, t.as_subclass(torch.Tensor))
    assert type(E2.ToPureTensor()(e)) is ember.Tensor


@pytest.mark.parametrize("cls", ["AutoAugment", "RandAugment", "TrivialAugmentWide", "AugMix"])
def test_v2_policies_on_images_refuse_boxes(cls):
    ie, _ = _image(29, "uint8")
    out = getattr(E2, cls)(generator=_gen(0))(ie)
    assert isinstance(out, etv.Image) and out.dtype == ember.uint8
    be, _ = _boxes(30, "XYXY")
    with pytest.raises(TypeError, match="images only"):
        getattr(E2, cls)()(ie, be)


@pytest.mark.parametrize("cls,arg", [
    ("RandomPosterize", 3), ("RandomSolarize", 100), ("RandomAdjustSharpness", 2.0),
    ("RandomAutocontrast", None), ("RandomEqualize", None), ("RandomInvert", None)])
def test_v2_random_color_ops_p1(cls, arg):
    ie, it = _image(31, "uint8")
    args = () if arg is None else (arg,)
    out_e = getattr(E2, cls)(*args, p=1.0)(ie)
    out_t = getattr(T2, cls)(*args, p=1.0)(it)
    same_ints(out_e, out_t.as_subclass(torch.Tensor))


def test_color_jitter_replay_passes_boxes():
    e, t = _sample(32)
    p = E2.ColorJitter(0.4, 0.3, 0.5, 0.1, generator=_gen(1)).make_params([e[0]])
    out = E2.ColorJitter(0.4, 0.3, 0.5, 0.1, generator=_gen(1))(*e)
    ref = t[0]
    fns = (TF2.adjust_brightness, TF2.adjust_contrast, TF2.adjust_saturation, TF2.adjust_hue)
    for k in p["order"]:
        ref = fns[k](ref, p["factors"][k])
    close(out[0], ref.as_subclass(torch.Tensor), atol=1e-5)
    _same_boxes(out[1]["boxes"], t[1]["boxes"])


# --- detection-style resizes ------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_zoom_out_replay(seed):
    e, t = _sample(33)
    p = E2.RandomZoomOut(fill=0, side_range=(1.0, 2.5), p=1.0,
                         generator=_gen(seed)).make_params([e[0]])
    out = E2.RandomZoomOut(fill=0, side_range=(1.0, 2.5), p=1.0, generator=_gen(seed))(*e)
    ref = [TF2.pad(x, p["padding"], fill=0) for x in (t[0], t[1]["boxes"], t[1]["masks"])]
    close(out[0], ref[0].as_subclass(torch.Tensor))
    _same_boxes(out[1]["boxes"], ref[1])
    same_ints(out[1]["masks"], ref[2].as_subclass(torch.Tensor))
    left, top, right, bottom = p["padding"]
    assert min(p["padding"]) >= 0 and tuple(out[0].shape[-2:]) == \
        (CANVAS[0] + top + bottom, CANVAS[1] + left + right)


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("cls,args", [("ScaleJitter", ((20, 16), (0.5, 1.5))),
                                      ("RandomShortestSize", ([6, 9, 14], 20))])
def test_scale_jitter_and_shortest_size_replay(seed, cls, args):
    e, t = _sample(34)
    p = getattr(E2, cls)(*args, generator=_gen(seed)).make_params([e[0]])
    out = getattr(E2, cls)(*args, generator=_gen(seed))(*e)
    size = list(p["size"])
    close(out[0], TF2.resize(t[0], size).as_subclass(torch.Tensor), atol=1e-4)
    _same_boxes(out[1]["boxes"], TF2.resize(t[1]["boxes"], size))
    same_ints(out[1]["masks"], TF2.resize(t[1]["masks"], size).as_subclass(torch.Tensor))


def test_zoom_out_side_range_error():
    with pytest.raises(ValueError, match="side range"):
        E2.RandomZoomOut(side_range=(0.5, 2.0))


# --- MixUp / CutMix ------------------------------------------------------------------------------
def _batch(seed, labels_2d=False):
    imgs = image(seed, (4, 3, 8, 10))
    labels = np.array([0, 2, 1, 2])
    if labels_2d:
        labels = np.eye(3, dtype=np.float32)[labels] * 0.9 + 0.1 / 3
    return imgs, labels


class _Fixed:
    """A torch Beta stand-in that returns a given lam, so torchvision's MixUp/CutMix mix with
    the weight ember drew."""

    def __init__(self, lam):
        self.lam = lam

    def sample(self, shape):
        return torch.tensor(self.lam)


@pytest.mark.parametrize("labels_2d", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_mixup_replay(labels_2d, seed):
    imgs, labels = _batch(40 + seed, labels_2d)
    ember.manual_seed(seed)
    lam = E2.MixUp(num_classes=3).make_params([])["lam"]
    ember.manual_seed(seed)
    out_i, out_l = E2.MixUp(num_classes=3)(ember.tensor(imgs), ember.tensor(labels))
    tm = T2.MixUp(num_classes=3)
    tm._dist = _Fixed(lam)
    ref_i, ref_l = tm(torch.tensor(imgs), torch.tensor(labels))
    close(out_i, ref_i, atol=1e-6)
    close(out_l, ref_l, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cutmix_replay(seed):
    imgs, labels = _batch(50 + seed)
    ember.manual_seed(seed)
    p = E2.CutMix(num_classes=3).make_params([ember.tensor(imgs)])
    ember.manual_seed(seed)
    out_i, out_l = E2.CutMix(num_classes=3)(ember.tensor(imgs), ember.tensor(labels))
    x1, y1, x2, y2 = p["box"]
    ref_i = torch.tensor(imgs).clone()
    ref_i[..., y1:y2, x1:x2] = torch.tensor(imgs).roll(1, 0)[..., y1:y2, x1:x2]
    lab = torch.nn.functional.one_hot(torch.tensor(labels), 3).float()
    ref_l = lab.roll(1, 0) * (1 - p["lam_adjusted"]) + lab * p["lam_adjusted"]
    close(out_i, ref_i)
    close(out_l, ref_l, atol=1e-6)


def test_mixup_errors_match_torchvision():
    imgs, labels = _batch(60)
    be, _ = _boxes(61, "XYXY")
    with pytest.raises(ValueError, match="bounding boxes"):
        E2.MixUp(num_classes=3)(ember.tensor(imgs), {"labels": ember.tensor(labels), "b": be})
    with pytest.raises(ValueError, match="batch size"):
        E2.CutMix(num_classes=3)(ember.tensor(imgs[:3]), ember.tensor(labels))
    with pytest.raises(ValueError, match="num_classes"):
        E2.MixUp()(ember.tensor(imgs), ember.tensor(labels))


# --- RandomIoUCrop ------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_random_iou_crop_replay(seed):
    e, t = _sample(70)
    p = E2.RandomIoUCrop(generator=_gen(seed)).make_params([e[0], e[1]["boxes"], e[1]["masks"]])
    out = E2.RandomIoUCrop(generator=_gen(seed))(*e)
    if not p:                                  # the "leave as it is" option
        _same_sample(out, t)
        return
    args = (p["top"], p["left"], p["height"], p["width"])
    close(out[0], TF2.crop(t[0], *args).as_subclass(torch.Tensor))
    ref_boxes = TF2.crop(t[1]["boxes"], *args)
    ref_boxes[~torch.tensor(np_of(p["inside"]))] = 0
    _same_boxes(out[1]["boxes"], ref_boxes)
    same_ints(out[1]["masks"], TF2.crop(t[1]["masks"], *args).as_subclass(torch.Tensor))
    # the chosen crop satisfies its contract: a box centre inside, within the scale limits
    assert bool(np_of(p["inside"]).any())
    assert 0.3 * 16 - 1 <= p["width"] <= 16 and 0.3 * 12 - 1 <= p["height"] <= 12


def test_random_iou_crop_needs_boxes_and_image():
    ie, _ = _image(71)
    with pytest.raises(TypeError, match="bounding boxes"):
        E2.RandomIoUCrop()(ie)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("end", [[[1, 0], [14, 1], [15, 11], [0, 10]],
                                 [[3, 2], [15, 0], [12, 11], [0, 11]]])
def test_perspective_boxes(fmt, end):
    e, t = _boxes(80, fmt)
    start = [[0, 0], [15, 0], [15, 11], [0, 11]]
    _same_boxes(EF2.perspective(e, start, end), TF2.perspective(t, start, end), atol=1e-3)


def test_random_perspective_replay_with_boxes():
    e, t = _sample(81)
    p = E2.RandomPerspective(0.4, p=1.0, generator=_gen(2)).make_params([e[0]])
    out = E2.RandomPerspective(0.4, p=1.0, generator=_gen(2))(*e)
    _same_boxes(out[1]["boxes"], TF2.perspective(t[1]["boxes"], p["start"], p["end"]),
                atol=1e-3)
    ref = TF2.perspective(t[0], p["start"], p["end"], fill=0)     # the transform's fill=0
    close(out[0], ref.as_subclass(torch.Tensor), atol=1e-4)


def test_elastic_on_masks_and_passthrough_of_color_ops():
    me, mt = _mask(90, (1,) + CANVAS)
    disp = (np.random.default_rng(91).normal(size=(1,) + CANVAS + (2,)) * 0.05).astype(
        np.float32)
    same_ints(EF2.elastic_transform(me, ember.tensor(disp)),
              TF2.elastic_transform(mt, torch.tensor(disp)).as_subclass(torch.Tensor))
    be, bt = _boxes(92, "XYXY")
    assert EF2.adjust_brightness(be, 1.5) is be and EF2.gaussian_blur(me, [3, 3]) is me
    with pytest.raises(TypeError, match="bounding boxes"):
        EF2.elastic_transform(be, ember.tensor(disp))
    assert EF2.get_dimensions(me) == [1, CANVAS[0], CANVAS[1]]
