"""ember.vision.ops against torch-written per-sample references (torchvision has no build
for this environment's torch): values, and float64 gradients through torch autograd."""
import math

import numpy as np
import pytest
import torch

import ember
from ember.vision import ops


def _boxes(rng, n, size=20.0):
    xy = rng.random((n, 2)) * size
    wh = rng.random((n, 2)) * size / 2 + 0.5
    return np.concatenate([xy, xy + wh], axis=1)


def _grad(fn_e, fn_t, *arrays):
    """Values and gradients of sum(out * w) w.r.t. every array, ember vs torch (f64)."""
    e_in = [ember.tensor(a, requires_grad=True) for a in arrays]
    t_in = [torch.tensor(a, requires_grad=True) for a in arrays]
    e_out, t_out = fn_e(*e_in), fn_t(*t_in)
    np.testing.assert_allclose(e_out.detach().numpy(), t_out.detach().numpy(), atol=1e-9,
                               rtol=1e-7)
    w = np.random.default_rng(1).random(tuple(t_out.shape))
    (e_out * ember.tensor(w)).sum().backward()
    (t_out * torch.tensor(w)).sum().backward()
    for e, t in zip(e_in, t_in):
        np.testing.assert_allclose(e.grad.numpy(), t.grad.numpy(), atol=1e-9, rtol=1e-7)


def _t_iou(b1, b2):
    a1 = (b1[:, 2] - b1[:, 0]) * (b1[:, 3] - b1[:, 1])
    a2 = (b2[:, 2] - b2[:, 0]) * (b2[:, 3] - b2[:, 1])
    lt = torch.max(b1[:, None, :2], b2[None, :, :2])
    rb = torch.min(b1[:, None, 2:], b2[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (a1[:, None] + a2[None] - inter)


def test_box_iou_area_and_grads():
    rng = np.random.default_rng(0)
    b1, b2 = _boxes(rng, 6), _boxes(rng, 5)
    _grad(ops.box_iou, _t_iou, b1, b2)
    _grad(ops.box_area, lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]), b1)


def test_generalized_box_iou():
    rng = np.random.default_rng(1)
    b1, b2 = _boxes(rng, 4), _boxes(rng, 3)

    def ref(x, y):
        lt = torch.min(x[:, None, :2], y[None, :, :2])
        rb = torch.max(x[:, None, 2:], y[None, :, 2:])
        hull = (rb - lt).prod(-1)
        a1 = (x[:, 2:] - x[:, :2]).prod(-1)
        a2 = (y[:, 2:] - y[:, :2]).prod(-1)
        iou = _t_iou(x, y)
        inter = iou * (a1[:, None] + a2[None]) / (1 + iou)
        union = a1[:, None] + a2[None] - inter
        return iou - (hull - union) / hull
    _grad(ops.generalized_box_iou, ref, b1, b2)


@pytest.mark.parametrize("fmt", ["xywh", "cxcywh"])
def test_box_convert_round_trip(fmt):
    b = _boxes(np.random.default_rng(2), 5)
    out = ops.box_convert(ember.tensor(b), "xyxy", fmt).numpy()
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    ref = np.stack([b[:, 0], b[:, 1], w, h] if fmt == "xywh" else
                   [b[:, 0] + w / 2, b[:, 1] + h / 2, w, h], axis=1)
    np.testing.assert_allclose(out, ref, atol=1e-12)
    back = ops.box_convert(ember.tensor(out), fmt, "xyxy").numpy()
    np.testing.assert_allclose(back, b, atol=1e-12)
    with pytest.raises(ValueError, match="Unsupported Bounding Box"):
        ops.box_convert(ember.tensor(b), "xyxy", "yxyx")


def _ref_nms(boxes, scores, thr):
    """Pick the best remaining box, drop everything overlapping it by more than thr."""
    remaining = list(range(len(boxes)))
    keep = []
    iou = _t_iou(torch.tensor(boxes), torch.tensor(boxes)).numpy()
    while remaining:
        best = max(remaining, key=lambda i: scores[i])
        keep.append(best)
        remaining = [i for i in remaining if i != best and iou[best, i] <= thr]
    return keep


@pytest.mark.parametrize("thr", [0.2, 0.5, 0.8])
def test_nms_and_batched_nms(thr):
    rng = np.random.default_rng(3)
    boxes, scores = _boxes(rng, 40, 10.0), rng.random(40)
    keep = ops.nms(ember.tensor(boxes), ember.tensor(scores), thr)
    assert keep.dtype == ember.int64
    assert keep.tolist() == _ref_nms(boxes, scores, thr)
    cats = rng.integers(0, 3, 40)
    ref = []
    for c in range(3):
        idx = np.nonzero(cats == c)[0]
        ref += [idx[k] for k in _ref_nms(boxes[idx], scores[idx], thr)]
    ref.sort(key=lambda i: -scores[i])
    out = ops.batched_nms(ember.tensor(boxes), ember.tensor(scores), ember.tensor(cats), thr)
    assert out.tolist() == ref


def _bilinear(img, y, x):
    """One RoIAlign sample of img [C, H, W], torch autograd-friendly."""
    h, w = img.shape[-2:]
    if y < -1.0 or y > h or x < -1.0 or x > w:
        return torch.zeros(img.shape[0], dtype=img.dtype)
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = int(y), int(x)
    y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
    if y0 >= h - 1:
        y0 = y1 = h - 1
        y = float(y0)
    if x0 >= w - 1:
        x0 = x1 = w - 1
        x = float(x0)
    ly, lx = y - y0, x - x0
    return ((1 - ly) * (1 - lx) * img[:, y0, x0] + (1 - ly) * lx * img[:, y0, x1]
            + ly * (1 - lx) * img[:, y1, x0] + ly * lx * img[:, y1, x1])


def _ref_roi_align(inp, rois, out, scale, ratio, aligned):
    res = []
    off = 0.5 if aligned else 0.0
    for b, x1, y1, x2, y2 in rois:
        img = inp[int(b)]
        sx, sy = x1 * scale - off, y1 * scale - off
        rw, rh = x2 * scale - off - sx, y2 * scale - off - sy
        if not aligned:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        gh = ratio if ratio > 0 else math.ceil(rh / out[0])
        gw = ratio if ratio > 0 else math.ceil(rw / out[1])
        cells = []
        for ph in range(out[0]):
            for pw in range(out[1]):
                acc = torch.zeros(img.shape[0], dtype=img.dtype)
                for iy in range(gh):
                    for ix in range(gw):
                        y = sy + ph * rh / out[0] + (iy + 0.5) * rh / out[0] / gh
                        x = sx + pw * rw / out[1] + (ix + 0.5) * rw / out[1] / gw
                        acc = acc + _bilinear(img, y, x)
                cells.append(acc / max(gh * gw, 1))
        res.append(torch.stack(cells, -1).reshape(-1, *out))
    return torch.stack(res)


@pytest.mark.parametrize("scale,ratio,aligned", [(1.0, 2, False), (0.5, -1, False),
                                                 (0.5, -1, True), (0.25, 3, True)])
def test_roi_align_matches_sampling_reference(scale, ratio, aligned):
    rng = np.random.default_rng(4)
    inp = rng.random((2, 3, 9, 10))
    rois = np.concatenate([rng.integers(0, 2, (5, 1)), _boxes(rng, 5, 16.0)], axis=1)
    rois[0, 1:] = [-4.0, -3.0, 30.0, 25.0]     # partly outside the map
    _grad(lambda x: ops.roi_align(x, ember.tensor(rois), (3, 4), scale, ratio, aligned),
          lambda x: _ref_roi_align(x, rois, (3, 4), scale, ratio, aligned), inp)


def test_roi_align_list_boxes_and_module():
    rng = np.random.default_rng(5)
    inp = ember.tensor(rng.random((2, 2, 8, 8)))
    per_image = [ember.tensor(_boxes(rng, 2, 6.0)), ember.tensor(_boxes(rng, 3, 6.0))]
    rois = np.concatenate([np.concatenate([np.full((len(b), 1), i), b.numpy()], 1)
                           for i, b in enumerate(per_image)])
    a = ops.RoIAlign(2, 1.0, 2)(inp, per_image)
    b = ops.roi_align(inp, ember.tensor(rois), 2, 1.0, 2)
    np.testing.assert_allclose(a.numpy(), b.numpy())
    assert tuple(ops.roi_align(inp, ember.tensor(rois[:0]), (2, 3)).shape) == (0, 2, 2, 3)


def _ref_roi_pool(inp, rois, out, scale):
    res = []
    for b, *box in rois:
        img = inp[int(b)]
        x1, y1, x2, y2 = (int(math.floor(v * scale + 0.5)) for v in box)
        rh, rw = max(y2 - y1 + 1, 1), max(x2 - x1 + 1, 1)
        cells = []
        for ph in range(out[0]):
            for pw in range(out[1]):
                hs = min(max(math.floor(ph * rh / out[0]) + y1, 0), img.shape[1])
                he = min(max(math.ceil((ph + 1) * rh / out[0]) + y1, 0), img.shape[1])
                ws = min(max(math.floor(pw * rw / out[1]) + x1, 0), img.shape[2])
                we = min(max(math.ceil((pw + 1) * rw / out[1]) + x1, 0), img.shape[2])
                cells.append(torch.zeros(img.shape[0], dtype=img.dtype) if he <= hs or we <= ws
                             else img[:, hs:he, ws:we].amax(dim=(-2, -1)))
        res.append(torch.stack(cells, -1).reshape(-1, *out))
    return torch.stack(res)


def test_roi_pool_matches_reference():
    rng = np.random.default_rng(6)
    inp = rng.random((2, 3, 9, 10))
    rois = np.concatenate([rng.integers(0, 2, (4, 1)), _boxes(rng, 4, 16.0)], axis=1)
    rois[1, 1:] = [-6.0, 2.0, 40.0, 30.0]
    _grad(lambda x: ops.roi_pool(x, ember.tensor(rois), (2, 3), 0.5),
          lambda x: _ref_roi_pool(x, rois, (2, 3), 0.5), inp)


@pytest.mark.parametrize("reduction,alpha", [("none", 0.25), ("mean", -1), ("sum", 0.6)])
def test_sigmoid_focal_loss(reduction, alpha):
    rng = np.random.default_rng(7)
    x, t = rng.normal(size=(4, 5)), (rng.random((4, 5)) > 0.7).astype(np.float64)

    def ref(x, t):
        p = torch.sigmoid(x)
        ce = torch.nn.functional.binary_cross_entropy_with_logits(x, t, reduction="none")
        p_t = p * t + (1 - p) * (1 - t)
        loss = ce * (1 - p_t) ** 2
        if alpha >= 0:
            loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
        return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]
    _grad(lambda a, b: ops.sigmoid_focal_loss(a, b, alpha, 2, reduction), ref, x, t)
    with pytest.raises(ValueError, match="Invalid Value for arg 'reduction'"):
        ops.sigmoid_focal_loss(ember.tensor(x), ember.tensor(t), reduction="avg")


def test_feature_pyramid_network_matches_torch_mirror():
    from collections import OrderedDict
    tnn = torch.nn

    class TorchFPN(tnn.Module):      # torchvision's structure, written with torch.nn
        def __init__(self, chans, out):
            super().__init__()
            self.inner_blocks = tnn.ModuleList(
                [tnn.Sequential(tnn.Conv2d(c, out, 1)) for c in chans])
            self.layer_blocks = tnn.ModuleList(
                [tnn.Sequential(tnn.Conv2d(out, out, 3, padding=1)) for _ in chans])

        def forward(self, feats):
            last = self.inner_blocks[-1](feats[-1])
            res = [self.layer_blocks[-1](last)]
            for i in range(len(feats) - 2, -1, -1):
                lat = self.inner_blocks[i](feats[i])
                last = lat + torch.nn.functional.interpolate(last, size=lat.shape[-2:],
                                                             mode="nearest")
                res.insert(0, self.layer_blocks[i](last))
            return res + [torch.nn.functional.max_pool2d(res[-1], 1, 2, 0)]

    rng = np.random.default_rng(9)
    chans = [4, 6, 8]
    feats = [rng.normal(size=(2, c, s, s + 1)) for c, s in zip(chans, (16, 8, 5))]
    fpn = ops.FeaturePyramidNetwork(chans, 5, extra_blocks=ops.LastLevelMaxPool())
    mirror = TorchFPN(chans, 5)
    mirror.load_state_dict({k: torch.tensor(v.numpy()) for k, v in fpn.state_dict().items()},
                           strict=True)
    fpn = fpn.to(ember.float64)
    mirror = mirror.double()
    inputs = [ember.tensor(f, requires_grad=True) for f in feats]
    out = fpn(OrderedDict(zip(["p2", "p3", "p4"], inputs)))
    assert list(out.keys()) == ["p2", "p3", "p4", "pool"]
    t_in = [torch.tensor(f, requires_grad=True) for f in feats]
    ref = mirror(t_in)
    for o, r in zip(out.values(), ref):
        np.testing.assert_allclose(o.detach().numpy(), r.detach().numpy(), atol=1e-10)
    sum(o.sum() for o in out.values()).backward()
    sum(r.sum() for r in ref).backward()
    for e, t in zip(inputs, t_in):
        np.testing.assert_allclose(e.grad.numpy(), t.grad.numpy(), atol=1e-9)
