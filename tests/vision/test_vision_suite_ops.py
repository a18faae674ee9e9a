"""torchvision.ops cases (in the spirit of torchvision's test/test_ops.py), against
torchvision 0.28's Python code where it runs without its C++ extension (box ops, losses,
blocks, FPN, the `_roi_align` fallback, MultiScaleRoIAlign over that fallback) and against
NumPy references written here from the ops' definitions where torchvision only has C++
kernels (nms, roi_pool, ps_roi_align, ps_roi_pool, deform_conv2d)."""
import math

import numpy as np
import pytest
import torch

import ember
from ember.vision import ops
from vision_suite_common import close, needs_tv, np_of, pair, tv

pytestmark = needs_tv
if tv is not None:
    import torchvision.ops as tops
    import torchvision.ops.poolers as tpoolers
    from torchvision.ops.roi_align import _roi_align
    # the function under torchvision's lazy torch.compile wrapper (compiling takes minutes)
    _tv_roi_align_py = getattr(_roi_align, "__wrapped__", _roi_align)


def _boxes(seed, n, size=30.0, batch=()):
    rng = np.random.default_rng(seed)
    xy = rng.random(batch + (n, 2)) * size
    wh = rng.random(batch + (n, 2)) * size / 2 + 0.5
    return np.concatenate([xy, xy + wh], axis=-1)


def _tv_roi_align(input, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1,
                  aligned=False):
    """torchvision's pure-PyTorch RoIAlign (its fallback path) with roi_align's signature."""
    if isinstance(boxes, (list, tuple)):
        boxes = tops._utils.convert_boxes_to_roi_format(list(boxes))
    oh, ow = (output_size, output_size) if isinstance(output_size, int) else output_size
    return _tv_roi_align_py(input, boxes, spatial_scale, oh, ow, sampling_ratio, aligned)


def _both_grads(fn_e, fn_t, arrays, atol=1e-7):
    """Values and float64 gradients of sum(out * w) agree."""
    e_in = [ember.tensor(a, requires_grad=True) for a in arrays]
    t_in = [torch.tensor(a, requires_grad=True) for a in arrays]
    e_out, t_out = fn_e(*e_in), fn_t(*t_in)
    close(e_out, t_out, atol=atol, rtol=1e-6)
    w = np.random.default_rng(7).random(tuple(t_out.shape))
    (e_out * ember.tensor(w)).sum().backward()
    (t_out * torch.tensor(w)).sum().backward()
    for e, t in zip(e_in, t_in):
        if t.grad is None:
            continue
        close(e.grad, t.grad, atol=atol, rtol=1e-6)


# --- box ops ----------------------------------------------------------------------------
PAIRWISE = ["box_iou", "generalized_box_iou", "distance_box_iou", "complete_box_iou"]


@pytest.mark.parametrize("name", PAIRWISE)
@pytest.mark.parametrize("n,m", [(5, 4), (1, 1), (0, 3)])
def test_pairwise_iou_values_and_grads(name, n, m):
    b1, b2 = _boxes(n, n), _boxes(m + 10, m)
    _both_grads(getattr(ops, name), getattr(tops, name), [b1, b2])


@pytest.mark.parametrize("name", PAIRWISE)
def test_pairwise_iou_batched_leading_dims(name):
    b1, b2 = _boxes(1, 4, batch=(2,)), _boxes(2, 3, batch=(2,))
    close(getattr(ops, name)(*pair(b1)[:1], ember.tensor(b2)),
          getattr(tops, name)(torch.tensor(b1), torch.tensor(b2)), atol=1e-9)


@pytest.mark.parametrize("name", PAIRWISE)
@pytest.mark.parametrize("dtype", ["float16", "int16", "int64"])
def test_pairwise_iou_upcasts_like_torchvision(name, dtype):
    b1 = np.array([[0, 0, 100, 100], [10, 10, 300, 200]]).astype(dtype)
    b2 = np.array([[50, 50, 250, 250], [0, 0, 20, 300]]).astype(dtype)
    e, t = getattr(ops, name)(ember.tensor(b1), ember.tensor(b2)), \
        getattr(tops, name)(torch.tensor(b1), torch.tensor(b2))
    assert str(e.dtype).split(".")[-1] == str(t.dtype).split(".")[-1]
    close(e, t, atol=1e-6)


def test_iou_identical_and_disjoint_boxes():
    b = torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]])
    for name in PAIRWISE:
        e = getattr(ops, name)(ember.tensor(b.numpy()), ember.tensor(b.numpy()))
        close(e, getattr(tops, name)(b, b), atol=1e-6)
        assert abs(np_of(e)[0, 0] - 1.0) < 1e-6


@pytest.mark.parametrize("fmt", ["xyxy", "xywh", "cxcywh"])
def test_box_area_and_iou_formats(fmt):
    b1, b2 = _boxes(3, 5), _boxes(4, 6)
    c1 = tops.box_convert(torch.tensor(b1), "xyxy", fmt)
    c2 = tops.box_convert(torch.tensor(b2), "xyxy", fmt)
    close(ops.box_area(ember.tensor(c1.numpy()), fmt=fmt), tops.box_area(c1, fmt=fmt))
    close(ops.box_iou(ember.tensor(c1.numpy()), ember.tensor(c2.numpy()), fmt=fmt),
          tops.box_iou(c1, c2, fmt=fmt), atol=1e-9)


@pytest.mark.parametrize("in_fmt", ["xyxy", "xywh", "cxcywh"])
@pytest.mark.parametrize("out_fmt", ["xyxy", "xywh", "cxcywh"])
def test_box_convert_all_pairs(in_fmt, out_fmt):
    b = _boxes(5, 7, batch=(2,))
    close(ops.box_convert(ember.tensor(b), in_fmt, out_fmt),
          tops.box_convert(torch.tensor(b), in_fmt, out_fmt), atol=1e-9)


def test_box_convert_round_trip_and_errors():
    b = ember.tensor(_boxes(6, 4))
    back = ops.box_convert(ops.box_convert(b, "xyxy", "cxcywh"), "cxcywh", "xyxy")
    close(back, b, atol=1e-9)
    with pytest.raises(ValueError, match="Unsupported Bounding Box Conversions"):
        ops.box_convert(b, "xyxy", "yxyx")
    with pytest.raises(ValueError, match="Unsupported Bounding Box area"):
        ops.box_area(b, fmt="xyxyxyxy")


@pytest.mark.parametrize("size", [(20, 25), (5, 100), (100, 5)])
def test_clip_boxes_to_image(size):
    b = _boxes(8, 6, size=60.0) - 10
    close(ops.clip_boxes_to_image(ember.tensor(b), size),
          tops.clip_boxes_to_image(torch.tensor(b), size))


@pytest.mark.parametrize("min_size", [0.5, 3.0, 8.0, 100.0])
def test_remove_small_boxes(min_size):
    b = _boxes(9, 12)
    assert ops.remove_small_boxes(ember.tensor(b), min_size).tolist() == \
        tops.remove_small_boxes(torch.tensor(b), min_size).tolist()


def test_masks_to_boxes():
    rng = np.random.default_rng(3)
    masks = np.zeros((4, 9, 11), np.uint8)
    masks[0, 2:5, 3:9] = 1
    masks[1] = rng.random((9, 11)) > 0.8
    masks[2, 8, 10] = 1
    masks[3, 0, 0] = 1
    close(ops.masks_to_boxes(ember.tensor(masks)), tops.masks_to_boxes(torch.tensor(masks)))
    assert tuple(ops.masks_to_boxes(ember.zeros(0, 4, 4)).shape) == (0, 4)


# --- box losses ------------------------------------------------------------------------
LOSSES = ["generalized_box_iou_loss", "distance_box_iou_loss", "complete_box_iou_loss"]


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_box_losses(name, reduction):
    b1, b2 = _boxes(11, 6), _boxes(12, 6)
    b2[0] = b1[0]                       # one identical pair: zero loss
    b2[1] = b1[1] + 100                 # one disjoint pair
    _both_grads(lambda x, y: getattr(ops, name)(x, y, reduction=reduction),
                lambda x, y: getattr(tops, name)(x, y, reduction=reduction), [b1, b2])


@pytest.mark.parametrize("name", LOSSES)
def test_box_losses_empty_and_bad_reduction(name):
    empty = np.zeros((0, 4), np.float32)
    e = getattr(ops, name)(ember.tensor(empty), ember.tensor(empty), reduction="mean")
    t = getattr(tops, name)(torch.tensor(empty), torch.tensor(empty), reduction="mean")
    close(e, t)
    with pytest.raises(ValueError, match="Invalid Value for arg 'reduction'"):
        getattr(ops, name)(ember.tensor(_boxes(1, 2)), ember.tensor(_boxes(2, 2)),
                           reduction="avg")


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("alpha,gamma", [(0.25, 2), (-1, 2), (0.5, 0), (0.75, 1.5)])
def test_sigmoid_focal_loss(reduction, alpha, gamma):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(5, 7)) * 3
    y = (rng.random((5, 7)) > 0.7).astype(np.float64)
    _both_grads(lambda a: ops.sigmoid_focal_loss(a, ember.tensor(y), alpha, gamma, reduction),
                lambda a: tops.sigmoid_focal_loss(a, torch.tensor(y), alpha, gamma, reduction),
                [x])


# --- NMS ------------------------------------------------------------------------------
def _nms_ref(boxes, scores, thresh):
    order = np.argsort(-scores, kind="stable")
    keep, dead = [], np.zeros(len(boxes), bool)
    for i in order:
        if dead[i]:
            continue
        keep.append(i)
        for j in order:
            if j != i and not dead[j]:
                x1, y1 = max(boxes[i, 0], boxes[j, 0]), max(boxes[i, 1], boxes[j, 1])
                x2, y2 = min(boxes[i, 2], boxes[j, 2]), min(boxes[i, 3], boxes[j, 3])
                inter = max(x2 - x1, 0) * max(y2 - y1, 0)
                ai = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
                aj = (boxes[j, 2] - boxes[j, 0]) * (boxes[j, 3] - boxes[j, 1])
                if inter / (ai + aj - inter) > thresh and scores[j] <= scores[i]:
                    dead[j] = True
    return keep


@pytest.mark.parametrize("thresh", [0.0, 0.2, 0.5, 0.8, 1.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_nms(thresh, seed):
    b = _boxes(seed, 40, size=20.0).astype(np.float32)
    s = np.random.default_rng(seed + 5).random(40).astype(np.float32)
    assert ops.nms(ember.tensor(b), ember.tensor(s), thresh).tolist() == _nms_ref(b, s, thresh)


def test_nms_empty_and_bad_shapes():
    out = ops.nms(ember.zeros(0, 4), ember.zeros(0), 0.5)
    assert out.dtype == ember.int64 and tuple(out.shape) == (0,)
    with pytest.raises(ValueError, match="nms"):
        ops.nms(ember.zeros(3, 5), ember.zeros(3), 0.5)
    with pytest.raises(ValueError, match="scores"):
        ops.nms(ember.zeros(3, 4), ember.zeros(2), 0.5)


@pytest.mark.parametrize("thresh", [0.3, 0.6])
@pytest.mark.parametrize("ncat", [1, 3, 7])
def test_batched_nms_matches_torchvision_with_reference_nms(thresh, ncat):
    # torchvision's batched_nms (the Python part) over the greedy NMS of domain_oracles
    b = _boxes(ncat, 50, size=25.0).astype(np.float32)
    s = np.random.default_rng(ncat).random(50).astype(np.float32)
    idx = np.random.default_rng(ncat + 1).integers(0, ncat, 50)
    e = ops.batched_nms(ember.tensor(b), ember.tensor(s), ember.tensor(idx), thresh)
    t = tops.batched_nms(torch.tensor(b), torch.tensor(s), torch.tensor(idx), thresh)
    assert e.tolist() == t.tolist()


def test_batched_nms_empty():
    e = ops.batched_nms(ember.zeros(0, 4), ember.zeros(0), ember.zeros(0, dtype=ember.int64),
                        0.5)
    assert tuple(e.shape) == (0,) and e.dtype == ember.int64


# --- RoI ops --------------------------------------------------------------------------
def _rois(seed, k, n_images=2, size=14.0):
    rng = np.random.default_rng(seed)
    b = _boxes(seed, k, size=size)
    return np.concatenate([rng.integers(0, n_images, (k, 1)).astype(np.float64), b], 1)


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 1, 2, 3])
@pytest.mark.parametrize("scale,out", [(1.0, 3), (0.5, (2, 4)), (0.25, 1)])
def test_roi_align_vs_torchvision_fallback(aligned, sampling_ratio, scale, out):
    # boxes inside the map: torchvision's Python fallback lacks the C++ kernel's rule that
    # samples beyond [-1, size] read zero (tested against a reference below)
    x = np.random.default_rng(0).random((2, 3, 9, 10))
    rois = _rois(1, 6, size=5.5 / scale)
    _both_grads(lambda a: ops.roi_align(a, ember.tensor(rois), out, scale, sampling_ratio,
                                        aligned),
                lambda a: _tv_roi_align(a, torch.tensor(rois), out, scale, sampling_ratio,
                                        aligned), [x], atol=1e-9)


def test_roi_align_box_list_and_module():
    x = np.random.default_rng(2).random((2, 2, 8, 8)).astype(np.float32)
    lists = [_boxes(3, 2, 4.0).astype(np.float32), _boxes(4, 3, 4.0).astype(np.float32)]
    e = ops.RoIAlign((2, 2), 1.0, 2, aligned=True)(ember.tensor(x),
                                                   [ember.tensor(b) for b in lists])
    t = _tv_roi_align(torch.tensor(x), [torch.tensor(b) for b in lists], (2, 2), 1.0, 2, True)
    close(e, t, atol=1e-5)


def _roi_align_ref(x, rois, oh, ow, scale, sr, aligned):
    """torchvision's C++ RoIAlign, sample by sample (samples outside [-1, size] read 0)."""
    out = np.zeros((len(rois), x.shape[1], oh, ow))
    off = 0.5 if aligned else 0.0
    for k, (b, x1, y1, x2, y2) in enumerate(rois):
        sx, sy = x1 * scale - off, y1 * scale - off
        rw, rh = x2 * scale - off - sx, y2 * scale - off - sy
        if not aligned:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        gh = sr if sr > 0 else math.ceil(rh / oh)
        gw = sr if sr > 0 else math.ceil(rw / ow)
        for c in range(x.shape[1]):
            for i in range(oh):
                for j in range(ow):
                    acc = sum(_bilinear(x[int(b), c], sy + i * rh / oh + (iy + .5) * rh / oh / gh,
                                        sx + j * rw / ow + (ix + .5) * rw / ow / gw)
                              for iy in range(gh) for ix in range(gw))
                    out[k, c, i, j] = acc / max(gh * gw, 1)
    return out


@pytest.mark.parametrize("aligned", [False, True])
def test_roi_align_boxes_outside_and_empty(aligned):
    x = np.random.default_rng(5).random((1, 2, 6, 6))
    rois = np.array([[0, -5, -5, -1, -1], [0, 4, 4, 12, 12], [0, 2, 2, 2, 2.0],
                     [0, -0.8, 5.5, 3, 7.5]])
    close(ops.roi_align(ember.tensor(x), ember.tensor(rois), 2, 1.0, 2, aligned),
          _roi_align_ref(x, rois, 2, 2, 1.0, 2, aligned), atol=1e-12)
    assert tuple(ops.roi_align(ember.tensor(x), ember.zeros(0, 5, dtype=ember.float64),
                               3).shape) == (0, 2, 3, 3)


def _roi_pool_ref(x, rois, oh, ow, scale):
    out = np.zeros((len(rois), x.shape[1], oh, ow))
    H, W = x.shape[2:]
    rnd = lambda v: int(math.floor(v + 0.5)) if v >= 0 else -int(math.floor(-v + 0.5))  # noqa
    for k, (b, x1, y1, x2, y2) in enumerate(rois):
        sx, sy, ex, ey = rnd(x1 * scale), rnd(y1 * scale), rnd(x2 * scale), rnd(y2 * scale)
        rh, rw = max(ey - sy + 1, 1), max(ex - sx + 1, 1)
        for i in range(oh):
            for j in range(ow):
                h0 = min(max(int(math.floor(i * rh / oh)) + sy, 0), H)
                h1 = min(max(int(math.ceil((i + 1) * rh / oh)) + sy, 0), H)
                w0 = min(max(int(math.floor(j * rw / ow)) + sx, 0), W)
                w1 = min(max(int(math.ceil((j + 1) * rw / ow)) + sx, 0), W)
                if h1 > h0 and w1 > w0:
                    out[k, :, i, j] = x[int(b), :, h0:h1, w0:w1].max(axis=(1, 2))
    return out


@pytest.mark.parametrize("out", [1, 2, (3, 2)])
@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_roi_pool_vs_reference(out, scale):
    x = np.random.default_rng(6).random((2, 3, 9, 8))
    rois = _rois(7, 5, size=16.0 / scale)
    oh, ow = (out, out) if isinstance(out, int) else out
    close(ops.roi_pool(ember.tensor(x), ember.tensor(rois), out, scale),
          _roi_pool_ref(x, rois, oh, ow, scale), atol=1e-12)


def test_roi_pool_gradient_goes_to_the_max():
    x = np.random.default_rng(8).random((1, 1, 6, 6))
    rois = np.array([[0, 0, 0, 5, 5.0]])
    xe = ember.tensor(x, requires_grad=True)
    ops.RoIPool(1, 1.0)(xe, ember.tensor(rois)).sum().backward()
    g = np_of(xe.grad)
    assert g.sum() == 1.0 and g.ravel()[np.argmax(x)] == 1.0


def _bilinear(img, y, x):
    H, W = img.shape
    if y < -1.0 or y > H or x < -1.0 or x > W:
        return 0.0
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = int(y), int(x)
    if y0 >= H - 1:
        y0 = y1 = H - 1
        y = float(y0)
    else:
        y1 = y0 + 1
    if x0 >= W - 1:
        x0 = x1 = W - 1
        x = float(x0)
    else:
        x1 = x0 + 1
    ly, lx = y - y0, x - x0
    return ((1 - ly) * (1 - lx) * img[y0, x0] + (1 - ly) * lx * img[y0, x1]
            + ly * (1 - lx) * img[y1, x0] + ly * lx * img[y1, x1])


def _ps_roi_align_ref(x, rois, oh, ow, scale, sr):
    cout = x.shape[1] // (oh * ow)
    out = np.zeros((len(rois), cout, oh, ow))
    for k, (b, x1, y1, x2, y2) in enumerate(rois):
        sx, sy = x1 * scale - 0.5, y1 * scale - 0.5
        rw, rh = x2 * scale - 0.5 - sx, y2 * scale - 0.5 - sy
        bh, bw = rh / oh, rw / ow
        gh = sr if sr > 0 else math.ceil(rh / oh)
        gw = sr if sr > 0 else math.ceil(rw / ow)
        for c in range(cout):
            for i in range(oh):
                for j in range(ow):
                    img = x[int(b), (c * oh + i) * ow + j]
                    acc = sum(_bilinear(img, sy + i * bh + (iy + .5) * bh / gh,
                                        sx + j * bw + (ix + .5) * bw / gw)
                              for iy in range(gh) for ix in range(gw))
                    out[k, c, i, j] = acc / (gh * gw)
    return out


@pytest.mark.parametrize("out", [2, (2, 3)])
@pytest.mark.parametrize("sampling_ratio", [-1, 2])
@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_ps_roi_align_vs_reference(out, sampling_ratio, scale):
    oh, ow = (out, out) if isinstance(out, int) else out
    x = np.random.default_rng(9).random((2, 2 * oh * ow, 8, 9))
    rois = _rois(10, 4, size=14.0 / scale)
    e = ops.ps_roi_align(ember.tensor(x), ember.tensor(rois), out, scale, sampling_ratio)
    close(e, _ps_roi_align_ref(x, rois, oh, ow, scale, sampling_ratio), atol=1e-10)


def _ps_roi_pool_ref(x, rois, oh, ow, scale):
    cout = x.shape[1] // (oh * ow)
    H, W = x.shape[2:]
    out = np.zeros((len(rois), cout, oh, ow))
    for k, (b, x1, y1, x2, y2) in enumerate(rois):
        sx, sy, ex, ey = (int(np.round(v * scale)) for v in (x1, y1, x2, y2))
        rh, rw = max(ey - sy, 1), max(ex - sx, 1)
        for c in range(cout):
            for i in range(oh):
                for j in range(ow):
                    h0 = min(max(int(math.floor(i * rh / oh)) + sy, 0), H - 1)
                    h1 = min(max(int(math.ceil((i + 1) * rh / oh)) + sy, 0), H - 1)
                    w0 = min(max(int(math.floor(j * rw / ow)) + sx, 0), W - 1)
                    w1 = min(max(int(math.ceil((j + 1) * rw / ow)) + sx, 0), W - 1)
                    if h1 > h0 and w1 > w0:
                        out[k, c, i, j] = x[int(b), (c * oh + i) * ow + j, h0:h1, w0:w1].mean()
    return out


@pytest.mark.parametrize("out", [2, (3, 2)])
@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_ps_roi_pool_vs_reference(out, scale):
    oh, ow = (out, out) if isinstance(out, int) else out
    x = np.random.default_rng(11).random((2, 2 * oh * ow, 9, 8))
    rois = _rois(12, 5, size=14.0 / scale) + np.array([0, 0.3, 0.3, 0.3, 0.3])
    e = ops.PSRoIPool(out, scale)(ember.tensor(x), ember.tensor(rois))
    close(e, _ps_roi_pool_ref(x, rois, oh, ow, scale), atol=1e-12)


def test_ps_roi_ops_gradients_by_finite_differences():
    x = np.random.default_rng(13).random((1, 8, 6, 6))
    rois = np.array([[0, 0.5, 1.0, 4.5, 5.0], [0, 2.0, 0.0, 5.0, 3.0]])
    for fn in (lambda a: ops.ps_roi_align(a, ember.tensor(rois), 2, 1.0, 2),
               lambda a: ops.ps_roi_pool(a, ember.tensor(rois), 2, 1.0)):
        xe = ember.tensor(x, requires_grad=True)
        w = np.random.default_rng(14).random((2, 2, 2, 2))
        (fn(xe) * ember.tensor(w)).sum().backward()
        # the ops are linear in x: the gradient is the op's adjoint applied to w
        num = np.zeros_like(x)
        for idx in [(0, 0, 1, 1), (0, 3, 2, 4), (0, 7, 4, 3), (0, 5, 0, 0)]:
            d = np.zeros_like(x)
            d[idx] = 1.0
            num[idx] = float((np_of(fn(ember.tensor(d))) * w).sum())
            assert abs(np_of(xe.grad)[idx] - num[idx]) < 1e-10


def test_ps_roi_channel_check():
    with pytest.raises(ValueError, match="multiple of"):
        ops.ps_roi_align(ember.zeros(1, 5, 4, 4), ember.zeros(1, 5), 2)


# --- MultiScaleRoIAlign ---------------------------------------------------------------------
@pytest.fixture
def tv_pooler_fallback(monkeypatch):
    monkeypatch.setattr(tpoolers, "roi_align", _tv_roi_align)


@pytest.mark.parametrize("names", [["feat1"], ["feat1", "feat3"], ["feat1", "feat2", "feat3"]])
@pytest.mark.parametrize("sampling_ratio", [2, -1])
def test_multiscale_roi_align(tv_pooler_fallback, names, sampling_ratio):
    rng = np.random.default_rng(15)
    feats = {"feat1": rng.random((2, 3, 32, 32)).astype(np.float32),
             "feat2": rng.random((2, 3, 16, 16)).astype(np.float32),
             "feat3": rng.random((2, 3, 8, 8)).astype(np.float32)}
    boxes = [np.array([[0, 0, 20, 20], [5, 5, 120, 90], [10, 20, 60, 30]], np.float32),
             np.array([[30, 30, 127, 127], [1, 1, 4, 4]], np.float32)]
    shapes = [(128, 128), (120, 128)]
    e = ops.MultiScaleRoIAlign(names, 3, sampling_ratio)(
        {k: ember.tensor(v) for k, v in feats.items()}, [ember.tensor(b) for b in boxes],
        shapes)
    t = tops.MultiScaleRoIAlign(names, 3, sampling_ratio)(
        {k: torch.tensor(v) for k, v in feats.items()}, [torch.tensor(b) for b in boxes],
        shapes)
    close(e, t, atol=1e-5)


# --- deform_conv2d ------------------------------------------------------------------------
def _deform_ref(x, offset, weight, bias, stride, pad, dil, mask):
    n, cin, H, W = x.shape
    cout, cin_g, kh, kw = weight.shape
    groups = cin // cin_g
    og = offset.shape[1] // (2 * kh * kw)
    ho = (H + 2 * pad[0] - (dil[0] * (kh - 1) + 1)) // stride[0] + 1
    wo = (W + 2 * pad[1] - (dil[1] * (kw - 1) + 1)) // stride[1] + 1
    out = np.zeros((n, cout, ho, wo))

    def sample(img, y, x_):
        if y <= -1 or y >= H or x_ <= -1 or x_ >= W:
            return 0.0
        y0, x0 = math.floor(y), math.floor(x_)
        v = 0.0
        for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
            for xx, wx in ((x0, 1 - (x_ - x0)), (x0 + 1, x_ - x0)):
                if 0 <= yy < H and 0 <= xx < W:
                    v += wy * wx * img[yy, xx]
        return v
    for b in range(n):
        for co in range(cout):
            g = co // (cout // groups)
            for oy in range(ho):
                for ox in range(wo):
                    acc = 0.0
                    for ci in range(cin_g):
                        c = g * cin_g + ci
                        grp = c // (cin // og)
                        for i in range(kh):
                            for j in range(kw):
                                t = i * kw + j
                                dy = offset[b, grp * 2 * kh * kw + 2 * t, oy, ox]
                                dx = offset[b, grp * 2 * kh * kw + 2 * t + 1, oy, ox]
                                y = oy * stride[0] - pad[0] + i * dil[0] + dy
                                xx = ox * stride[1] - pad[1] + j * dil[1] + dx
                                m = 1.0 if mask is None else mask[b, grp * kh * kw + t, oy, ox]
                                acc += weight[co, ci, i, j] * m * sample(x[b, c], y, xx)
                    out[b, co, oy, ox] = acc + (0 if bias is None else bias[co])
    return out


DEFORM_CASES = [  # cin, cout, k, stride, pad, dil, groups, offset_groups, use_mask, use_bias
    (2, 3, 3, 1, 1, 1, 1, 1, True, True),
    (2, 2, 3, 1, 0, 1, 1, 1, False, False),
    (4, 4, 3, 2, 1, 1, 2, 2, True, True),
    (4, 2, (2, 3), (1, 2), (0, 1), (2, 1), 1, 2, True, False),
    (2, 4, 1, 1, 0, 1, 2, 1, True, True),
]


def _deform_inputs(case, seed=16):
    cin, cout, k, stride, pad, dil, groups, og, use_mask, use_bias = case
    kh, kw = (k, k) if isinstance(k, int) else k
    st = (stride, stride) if isinstance(stride, int) else stride
    pd = (pad, pad) if isinstance(pad, int) else pad
    dl = (dil, dil) if isinstance(dil, int) else dil
    rng = np.random.default_rng(seed)
    H, W = 6, 5
    ho = (H + 2 * pd[0] - (dl[0] * (kh - 1) + 1)) // st[0] + 1
    wo = (W + 2 * pd[1] - (dl[1] * (kw - 1) + 1)) // st[1] + 1
    x = rng.random((1, cin, H, W))
    offset = rng.normal(size=(1, 2 * og * kh * kw, ho, wo)) * 1.5
    weight = rng.normal(size=(cout, cin // groups, kh, kw))
    bias = rng.normal(size=cout) if use_bias else None
    mask = rng.random((1, og * kh * kw, ho, wo)) if use_mask else None
    return x, offset, weight, bias, mask, st, pd, dl


@pytest.mark.parametrize("case", DEFORM_CASES)
def test_deform_conv2d_vs_reference(case):
    x, offset, weight, bias, mask, st, pd, dl = _deform_inputs(case)
    e = ops.deform_conv2d(ember.tensor(x), ember.tensor(offset), ember.tensor(weight),
                          None if bias is None else ember.tensor(bias), st, pd, dl,
                          None if mask is None else ember.tensor(mask))
    close(e, _deform_ref(x, offset, weight, bias, st, pd, dl, mask), atol=1e-10)


def test_deform_conv2d_zero_offset_is_conv2d():
    rng = np.random.default_rng(17)
    x, w, b = rng.random((2, 4, 7, 7)), rng.normal(size=(6, 2, 3, 3)), rng.normal(size=6)
    off = np.zeros((2, 18, 4, 4))
    e = ops.deform_conv2d(ember.tensor(x), ember.tensor(off), ember.tensor(w),
                          ember.tensor(b), stride=2, padding=1)
    t = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), 2, 1,
                                   groups=2)
    close(e, t, atol=1e-10)


def test_deform_conv2d_gradients_by_finite_differences():
    x, offset, weight, bias, mask, st, pd, dl = _deform_inputs(DEFORM_CASES[0], seed=18)
    arrays = [x, offset, weight, bias, mask]
    e_in = [ember.tensor(a, requires_grad=True) for a in arrays]
    ops.deform_conv2d(e_in[0], e_in[1], e_in[2], e_in[3], st, pd, dl, e_in[4]).sum().backward()
    rng = np.random.default_rng(19)
    for which, arr in enumerate(arrays):
        for _ in range(3):
            idx = tuple(int(rng.integers(0, s)) for s in arr.shape)
            plus, minus = [a.copy() for a in arrays], [a.copy() for a in arrays]
            plus[which][idx] += 1e-6
            minus[which][idx] -= 1e-6
            num = (_deform_ref(plus[0], plus[1], plus[2], plus[3], st, pd, dl, plus[4]).sum()
                   - _deform_ref(minus[0], minus[1], minus[2], minus[3], st, pd, dl,
                                 minus[4]).sum()) / 2e-6
            assert abs(np_of(e_in[which].grad)[idx] - num) < 1e-5, (which, idx)


def test_deform_conv2d_module_and_errors():
    m = ops.DeformConv2d(2, 4, 3, padding=1, bias=False)
    assert m.bias is None and tuple(m.weight.shape) == (4, 2, 3, 3)
    x = ember.rand(1, 2, 5, 5)
    out = m(x, ember.zeros(1, 18, 5, 5))
    t = torch.nn.functional.conv2d(torch.tensor(np_of(x)), torch.tensor(np_of(m.weight)),
                                   padding=1)
    close(out, t, atol=1e-5)
    with pytest.raises(RuntimeError, match="offset"):
        m(x, ember.zeros(1, 17, 5, 5))
    assert set(k for k, _ in tops.DeformConv2d(2, 4, 3).state_dict().items()) == \
        set(ops.DeformConv2d(2, 4, 3).state_dict())


# --- blocks -------------------------------------------------------------------------------
def _load_same(e_mod, t_mod):
    sd = {k: v.detach().numpy().copy() for k, v in t_mod.state_dict().items()}
    e_mod.load_state_dict({k: ember.tensor(v) for k, v in sd.items()})
    assert list(e_mod.state_dict()) == list(sd)


@pytest.mark.parametrize("kwargs", [
    {}, {"kernel_size": 1}, {"stride": 2, "groups": 2}, {"norm_layer": None},
    {"activation_layer": None}, {"dilation": 2}, {"kernel_size": (3, 5)}, {"bias": True},
    {"padding": 0}])
def test_conv2d_norm_activation(kwargs):
    e_kwargs = {k: (ember.nn.BatchNorm2d if v is not None else None) if k == "norm_layer"
                else v for k, v in kwargs.items()}
    if kwargs.get("activation_layer", 1) is None:
        e_kwargs["activation_layer"] = None
    e, t = ops.Conv2dNormActivation(4, 6, **e_kwargs), tops.Conv2dNormActivation(4, 6, **kwargs)
    _load_same(e, t)
    e.eval()
    t.eval()
    x = np.random.default_rng(20).random((2, 4, 9, 9)).astype(np.float32)
    close(e(ember.tensor(x)), t(torch.tensor(x)), atol=1e-5)
    assert e.out_channels == t.out_channels


def test_conv3d_norm_activation():
    e, t = ops.Conv3dNormActivation(2, 3, 3), tops.Conv3dNormActivation(2, 3, 3)
    _load_same(e, t)
    e.eval()
    t.eval()
    x = np.random.default_rng(21).random((1, 2, 5, 6, 4)).astype(np.float32)
    close(e(ember.tensor(x)), t(torch.tensor(x)), atol=1e-5)


@pytest.mark.parametrize("hardsigmoid", [False, True])
def test_squeeze_excitation(hardsigmoid):
    kw_e = {"scale_activation": ember.nn.Hardsigmoid} if hardsigmoid else {}
    kw_t = {"scale_activation": torch.nn.Hardsigmoid} if hardsigmoid else {}
    e, t = ops.SqueezeExcitation(8, 2, **kw_e), tops.SqueezeExcitation(8, 2, **kw_t)
    _load_same(e, t)
    x = np.random.default_rng(22).random((2, 8, 5, 5)).astype(np.float32)
    close(e(ember.tensor(x)), t(torch.tensor(x)), atol=1e-6)


@pytest.mark.parametrize("hidden,norm,dropout", [([8], None, 0.0), ([8, 6, 3], None, 0.0),
                                                 ([8, 5], "ln", 0.0), ([7, 4], None, 0.3)])
def test_mlp(hidden, norm, dropout):
    e = ops.MLP(5, hidden, norm_layer=ember.nn.LayerNorm if norm else None, dropout=dropout)
    t = tops.MLP(5, hidden, norm_layer=torch.nn.LayerNorm if norm else None, dropout=dropout)
    _load_same(e, t)
    assert [type(m).__name__ for m in e] == [type(m).__name__ for m in t]
    e.eval()
    t.eval()
    x = np.random.default_rng(23).random((3, 5)).astype(np.float32)
    close(e(ember.tensor(x)), t(torch.tensor(x)), atol=1e-5)


def test_permute():
    x = np.random.default_rng(24).random((2, 3, 4, 5))
    close(ops.Permute([0, 2, 3, 1])(ember.tensor(x)),
          tops.Permute([0, 2, 3, 1])(torch.tensor(x)))


@pytest.mark.parametrize("mode", ["row", "batch"])
@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_stochastic_depth_properties(mode, p):
    x = ember.ones(64, 3, 2, 2)
    sd = ops.StochasticDepth(p, mode)
    sd.eval()
    assert sd(x) is x
    sd.train()
    out = np_of(sd(x))
    if p == 0.0:
        assert (out == 1).all()
        return
    if p == 1.0:
        assert (out == 0).all()
        return
    per_row = out.reshape(64, -1)
    values = np.unique(per_row)
    assert np.isclose(values[:, None], [0.0, 1 / (1 - p)], rtol=1e-6).any(axis=1).all()
    assert (per_row == per_row[:, :1]).all()          # whole samples are dropped
    if mode == "batch":
        assert (per_row == per_row[0, 0]).all()


def test_stochastic_depth_errors_match_torchvision():
    for p, mode in ((1.5, "row"), (0.5, "col")):
        with pytest.raises(ValueError) as e_err:
            ops.stochastic_depth(ember.ones(2, 2), p, mode)
        with pytest.raises(ValueError) as t_err:
            tops.stochastic_depth(torch.ones(2, 2), p, mode)
        assert str(e_err.value) == str(t_err.value)


# --- FPN ------------------------------------------------------------------------------------
@pytest.mark.parametrize("extra", [None, "maxpool", "p6p7"])
def test_feature_pyramid_network(extra):
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool, LastLevelP6P7
    t_extra = {None: None, "maxpool": LastLevelMaxPool(), "p6p7": LastLevelP6P7(8, 8)}[extra]
    e_extra = {None: None, "maxpool": ops.LastLevelMaxPool(),
               "p6p7": ops.LastLevelP6P7(8, 8)}[extra]
    t = tops.FeaturePyramidNetwork([4, 6, 8], 8, extra_blocks=t_extra)
    e = ops.FeaturePyramidNetwork([4, 6, 8], 8, extra_blocks=e_extra)
    _load_same(e, t)
    rng = np.random.default_rng(25)
    feats = {"a": rng.random((1, 4, 16, 16)), "b": rng.random((1, 6, 8, 8)),
             "c": rng.random((1, 8, 4, 4))}
    feats = {k: v.astype(np.float32) for k, v in feats.items()}
    eo = e({k: ember.tensor(v) for k, v in feats.items()})
    to = t({k: torch.tensor(v) for k, v in feats.items()})
    assert list(eo) == list(to)
    for k in to:
        close(eo[k], to[k], atol=1e-5)


# --- DropBlock --------------------------------------------------------------------------------
@pytest.mark.parametrize("dims,block_size", [(2, 3), (2, 5), (3, 3)])
@pytest.mark.parametrize("p", [0.2, 0.5])
def test_drop_block_replay(dims, block_size, p):
    """The seeds ember draws, expanded and rescaled by torchvision's definition."""
    shape = (2, 3) + (9,) * dims if dims == 2 else (1, 2, 6, 7, 5)
    x = np.random.default_rng(27).random(shape).astype(np.float32)
    fn = ops.drop_block2d if dims == 2 else ops.drop_block3d
    out = fn(ember.tensor(x), p, block_size, generator=ember.Generator().manual_seed(3))
    spatial = shape[2:]
    bs = min((block_size,) + spatial)
    gamma = p * np.prod(spatial) / (bs ** dims * np.prod([s - bs + 1 for s in spatial]))
    seeds_shape = shape[:2] + tuple(s - bs + 1 for s in spatial)
    seeds = (ember.rand(list(seeds_shape), generator=ember.Generator().manual_seed(3))
             < gamma).to(ember.float32)
    noise = torch.nn.functional.pad(torch.tensor(np_of(seeds)), [bs // 2] * (2 * dims))
    pool = torch.nn.functional.max_pool2d if dims == 2 else torch.nn.functional.max_pool3d
    keep = 1 - pool(noise, kernel_size=bs, stride=1, padding=bs // 2)
    ref = torch.tensor(x) * keep * (keep.numel() / (1e-6 + keep.sum()))
    close(out, ref, atol=1e-5)


def test_drop_block_eval_p0_and_errors():
    x = ember.rand(1, 2, 5, 5)
    assert ops.drop_block2d(x, 0.5, 3, training=False) is x
    assert ops.drop_block2d(x, 0.0, 3) is x
    m = ops.DropBlock2d(0.3, 3)
    m.eval()
    assert m(x) is x
    for args, t_args in (((x, 1.5, 3), (torch.rand(1, 2, 5, 5), 1.5, 3)),
                         ((x, 0.5, 2), (torch.rand(1, 2, 5, 5), 0.5, 2)),
                         ((ember.rand(2, 5, 5), 0.5, 3), (torch.rand(2, 5, 5), 0.5, 3))):
        with pytest.raises(ValueError) as e_err:
            ops.drop_block2d(*args)
        with pytest.raises(ValueError) as t_err:
            tops.drop_block2d(*t_args)
        assert str(e_err.value) == str(t_err.value)
