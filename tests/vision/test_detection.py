"""ember.vision.models.detection (RetinaNet and its parts) against torchvision's own
detection code (loaded without its C++ extension, see tests/domain_oracles.py), on the same
weights and inputs, in eval mode."""
from collections import OrderedDict

import numpy as np
import pytest
import torch

import ember
from ember import nn as enn
import ember.nn.functional as EF
from ember.vision.models import detection as edet

from domain_oracles import import_torchvision

torchvision = import_torchvision()
if torchvision is None:
    pytest.skip("torchvision is not installed (pip install --no-deps torchvision)",
                allow_module_level=True)
from torchvision.models import detection as tdet  # noqa: E402
from torchvision.models.detection import _utils as tdet_utils  # noqa: E402


def _e(t):
    return ember.tensor(t.detach().numpy())


def _assert_same_detections(ref, out, box_atol=1e-3, score_atol=1e-5):
    """Same number of detections, and each of torchvision's has an ember twin (same label,
    close box and score); order may differ only among near-equal scores."""
    ref_boxes, ref_scores = ref["boxes"].numpy(), ref["scores"].numpy()
    ref_labels = ref["labels"].numpy()
    boxes, scores, labels = (out[k].numpy() for k in ("boxes", "scores", "labels"))
    assert len(ref_boxes) == len(boxes) > 0
    np.testing.assert_allclose(np.sort(scores), np.sort(ref_scores), atol=score_atol)
    unused = np.ones(len(boxes), bool)
    for box, score, label in zip(ref_boxes, ref_scores, ref_labels):
        dist = np.abs(boxes - box).max(1) + np.abs(scores - score)
        dist[(labels != label) | ~unused] = np.inf
        j = int(np.argmin(dist))
        assert dist[j] < box_atol + score_atol, (box, score, label)
        unused[j] = False


def test_anchor_generator_matches_torchvision():
    sizes, ratios = ((16, 20), (32,)), ((0.5, 1.0, 2.0), (1.0, 3.0))
    ref_gen, gen = tdet.anchor_utils.AnchorGenerator(sizes, ratios), edet.AnchorGenerator(
        sizes, ratios)
    assert gen.num_anchors_per_location() == ref_gen.num_anchors_per_location() == [6, 2]
    images = torch.zeros(2, 3, 64, 96)
    feats = [torch.zeros(2, 4, 16, 24), torch.zeros(2, 4, 7, 12)]
    ref = ref_gen(tdet.image_list.ImageList(images, [(60, 90), (64, 96)]), feats)
    out = gen(edet.ImageList(_e(images), [(60, 90), (64, 96)]), [_e(f) for f in feats])
    assert len(out) == 2
    np.testing.assert_array_equal(out[1].numpy(), ref[1].numpy())


def test_box_coder_matches_torchvision(rng):
    ref_coder = tdet_utils.BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))
    coder = edet.BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))
    xy = rng.uniform(0, 50, (6, 2))
    anchors = np.concatenate([xy, xy + rng.uniform(4, 30, (6, 2))], 1).astype(np.float32)
    codes = rng.standard_normal((6, 8)).astype(np.float32) * 2
    codes[0, 2] = 40.0                       # past bbox_xform_clip: clamped before exp
    ref = ref_coder.decode_single(torch.tensor(codes), torch.tensor(anchors))
    out = coder.decode_single(ember.tensor(codes), ember.tensor(anchors))
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-5, atol=1e-4)
    targets = ref[:, :4].contiguous()
    np.testing.assert_allclose(
        coder.encode_single(_e(targets), ember.tensor(anchors)).numpy(),
        ref_coder.encode_single(targets, torch.tensor(anchors)).numpy(), rtol=1e-4, atol=1e-4)
    batched = coder.decode(ember.tensor(codes[:, :4]), [ember.tensor(anchors)])
    assert tuple(batched.shape) == (6, 1, 4)


def test_transform_matches_torchvision(rng):
    kw = dict(min_size=64, max_size=96, image_mean=[0.4, 0.5, 0.6], image_std=[0.2, 0.3, 0.25])
    ref_t = tdet.transform.GeneralizedRCNNTransform(**kw).eval()
    t = edet.GeneralizedRCNNTransform(**kw).eval()
    # 50x70: 64 / 50 is 1.28 exactly only in double precision (a float32 scale gives 63 rows)
    images = [rng.random((3, 50, 70), np.float32), rng.random((3, 130, 40), np.float32)]
    ref_list, _ = ref_t([torch.tensor(i) for i in images])
    out_list, _ = t([ember.tensor(i) for i in images])
    assert out_list.image_sizes == ref_list.image_sizes == [(64, 89), (96, 29)]
    np.testing.assert_allclose(out_list.tensors.numpy(), ref_list.tensors.numpy(), atol=1e-4)
    boxes = rng.uniform(0, 60, (5, 4)).astype(np.float32)
    ref_post = ref_t.postprocess([{"boxes": torch.tensor(boxes)}], ref_list.image_sizes[:1],
                                 [(50, 70)])
    post = t.postprocess([{"boxes": ember.tensor(boxes)}], out_list.image_sizes[:1], [(50, 70)])
    np.testing.assert_array_equal(post[0]["boxes"].numpy(), ref_post[0]["boxes"].numpy())


class _TorchTinyBackbone(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, stride=4, padding=1)
        self.conv2 = torch.nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.out_channels = 8

    def forward(self, x):
        c1 = torch.relu(self.conv1(x))
        return OrderedDict([("0", c1), ("1", torch.relu(self.conv2(c1)))])


class _TinyBackbone(enn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = enn.Conv2d(3, 8, 3, stride=4, padding=1)
        self.conv2 = enn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.out_channels = 8

    def forward(self, x):
        c1 = EF.relu(self.conv1(x))
        return OrderedDict([("0", c1), ("1", EF.relu(self.conv2(c1)))])


def _boost_heads(model):
    """Re-draw the head so logits and box codes spread out (the default init makes every
    score ~0.01, or ~0.5 with a zero bias: ties everywhere)."""
    with torch.no_grad():
        for name, conv in model.head.named_modules():
            if isinstance(conv, torch.nn.Conv2d):
                fan_in = conv.weight[0].numel()
                gain = 2.0 if name.endswith(("cls_logits", "bbox_reg")) else 1.4
                conv.weight.normal_(0, gain / fan_in ** 0.5)
                conv.bias.normal_(0, 0.1)


def _calibrate_heads(model, images):
    """_boost_heads, then rescale so that the logits have std ~2 and the box codes ~0.5 on
    these images, whatever the backbone's feature scale."""
    _boost_heads(model)
    with torch.no_grad():
        image_list, _ = model.transform(images)
        feats = list(model.backbone(image_list.tensors).values())
        spread = torch.cat([f.flatten() for f in feats]).std()
        for head in (model.head.classification_head, model.head.regression_head):
            head.conv[0][0].weight.div_(spread)
        outputs = model.head(feats)
        for last, key, target in [(model.head.classification_head.cls_logits, "cls_logits", 2.0),
                                  (model.head.regression_head.bbox_reg, "bbox_regression", 0.5)]:
            factor = target / outputs[key].std()
            last.weight.mul_(factor)
            last.bias.mul_(factor)


def test_retinanet_small_backbone_matches_torchvision():
    torch.manual_seed(0)
    sizes, ratios = ((16,), (32,)), ((0.5, 1.0, 2.0),) * 2
    kw = dict(num_classes=3, min_size=64, max_size=96, score_thresh=0.3, topk_candidates=40,
              detections_per_img=25)
    ref_model = tdet.RetinaNet(_TorchTinyBackbone(), anchor_generator=tdet.anchor_utils
                               .AnchorGenerator(sizes, ratios), **kw).eval()
    _boost_heads(ref_model)
    model = edet.RetinaNet(_TinyBackbone(), anchor_generator=edet.AnchorGenerator(sizes, ratios),
                           **kw).eval()
    assert list(model.state_dict()) == list(ref_model.state_dict())
    model.load_state_dict({k: v.numpy() for k, v in ref_model.state_dict().items()})
    images = [torch.rand(3, 50, 70), torch.rand(3, 80, 60)]
    with torch.no_grad():
        ref = ref_model(images)
    with ember.no_grad():
        out = model([_e(i) for i in images])
    for r, o in zip(ref, out):
        assert o["labels"].dtype == ember.int64
        _assert_same_detections(r, o)


def test_retinanet_head_and_fpn_compile():
    """The dense part (pyramid and heads) traces into ember.compile; only the
    data-dependent post-processing stays eager."""
    from ember.vision.models.detection.backbone_utils import BackboneWithFPN
    ember.manual_seed(0)
    trunk = enn.Sequential()
    trunk.add_module("c1", enn.Conv2d(3, 8, 3, stride=2, padding=1))
    trunk.add_module("c2", enn.Conv2d(8, 16, 3, stride=2, padding=1))
    backbone = BackboneWithFPN(trunk, {"c1": "0", "c2": "1"}, [8, 16], 8,
                               extra_blocks=ember.vision.ops.LastLevelP6P7(8, 8))
    head = edet.RetinaNetHead(8, 9, 3)
    x = ember.randn(2, 3, 32, 48)
    with ember.no_grad():
        feats = backbone(x)
        compiled = ember.compile(backbone)(x)
        assert list(compiled) == list(feats) == ["0", "1", "p6", "p7"]
        for key in feats:
            np.testing.assert_allclose(compiled[key].numpy(), feats[key].numpy(), atol=1e-5)
        eager_out = head(list(feats.values()))
        compiled_out = ember.compile(head)(list(feats.values()))
        for key in eager_out:
            np.testing.assert_allclose(compiled_out[key].numpy(), eager_out[key].numpy(),
                                       atol=1e-5)
    assert ember.compile.explain(backbone, x).graph_break_count == 0
    assert ember.compile.explain(head, list(feats.values())).graph_break_count == 0


def test_retinanet_training_losses_and_gradients_match_torchvision():
    torch.manual_seed(2)
    sizes, ratios = ((16,), (32,)), ((0.5, 1.0, 2.0),) * 2
    kw = dict(num_classes=3, min_size=64, max_size=96)
    ref_model = tdet.RetinaNet(_TorchTinyBackbone(), anchor_generator=tdet.anchor_utils
                               .AnchorGenerator(sizes, ratios), **kw).train()
    _boost_heads(ref_model)
    model = edet.RetinaNet(_TinyBackbone(), anchor_generator=edet.AnchorGenerator(sizes, ratios),
                           **kw).train()
    model.load_state_dict({k: v.numpy() for k, v in ref_model.state_dict().items()})
    images = [torch.rand(3, 50, 70), torch.rand(3, 80, 60)]
    targets = [{"boxes": torch.tensor([[5.0, 6.0, 30.0, 40.0], [20.0, 10.0, 60.0, 28.0]]),
                "labels": torch.tensor([1, 2])},
               {"boxes": torch.tensor([[10.0, 12.0, 50.0, 70.0]]), "labels": torch.tensor([0])}]
    ref = ref_model(images, targets)
    out = model([_e(i) for i in images],
                [{"boxes": _e(t["boxes"]), "labels": _e(t["labels"])} for t in targets])
    assert set(out) == set(ref) == {"classification", "bbox_regression"}
    assert all(ref[key].item() > 0.01 for key in ref)      # foreground anchors exist
    for key in ref:
        np.testing.assert_allclose(out[key].item(), ref[key].item(), rtol=1e-4)
    (ref["classification"] + ref["bbox_regression"]).backward()
    (out["classification"] + out["bbox_regression"]).backward()
    ref_params = dict(ref_model.named_parameters())
    for name, param in model.named_parameters():
        np.testing.assert_allclose(param.grad.numpy(), ref_params[name].grad.numpy(),
                                   rtol=1e-3, atol=1e-5, err_msg=name)
    with pytest.raises(ValueError, match="positive height and width"):
        model([_e(images[0])], [{"boxes": ember.tensor([[5.0, 6.0, 5.0, 9.0]]),
                                 "labels": ember.tensor([1])}])
    with pytest.raises(ValueError, match="targets should not be none"):
        model([_e(images[0])])


def test_retinanet_resnet50_fpn_keys_and_parameter_count():
    model = edet.retinanet_resnet50_fpn()
    ref = tdet.retinanet_resnet50_fpn(weights=None, weights_backbone=None)
    assert list(model.state_dict()) == list(ref.state_dict())
    def count(m):
        return sum(int(np.prod(p.shape)) for p in m.parameters())
    assert count(model) == count(ref)
    # torchvision documents 34,014,999 parameters for retinanet_resnet50_fpn (91 classes):
    # the pretrained build, whose frozen batch norms hold their affine terms as buffers
    edet.backbone_utils.freeze_batch_norms(model.backbone.body)
    assert count(model) == 34_014_999


@pytest.mark.slow
def test_retinanet_resnet50_fpn_matches_torchvision():
    torch.manual_seed(1)
    kw = dict(num_classes=4, min_size=64, max_size=96, score_thresh=0.3, topk_candidates=100,
              detections_per_img=60)
    ref_model = tdet.retinanet_resnet50_fpn(weights=None, weights_backbone=None, **kw).eval()
    with torch.no_grad():   # non-trivial batch-norm statistics
        for name, buf in ref_model.named_buffers():
            if name.endswith("running_var"):
                buf.uniform_(0.5, 1.5)
            elif name.endswith("running_mean"):
                buf.normal_(0, 0.1)
    images = [torch.rand(3, 50, 70)]
    _calibrate_heads(ref_model, images)
    # given weights, ember (like torchvision) freezes the backbone's batch norms
    model = edet.retinanet_resnet50_fpn(weights=ref_model.state_dict(), **kw).eval()
    assert isinstance(model.backbone.body.bn1, ember.vision.ops.FrozenBatchNorm2d)
    assert not model.backbone.body.layer1[0].conv1.weight.requires_grad   # 3 trainable
    assert model.backbone.body.layer2[0].conv1.weight.requires_grad
    with torch.no_grad():
        ref = ref_model(images)
    with ember.no_grad():
        out = model([_e(i) for i in images])
    for r, o in zip(ref, out):
        _assert_same_detections(r, o, box_atol=5e-3, score_atol=5e-5)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "mobilenet_v3_small"])
def test_classification_models_match_torchvision(name):
    """The classification models, earlier checked against torch mirrors, against
    torchvision's own: same keys, and torchvision's weights give the same logits."""
    torch.manual_seed(12)
    ref = getattr(torchvision.models, name)(num_classes=7).eval()
    model = getattr(ember.vision.models, name)(num_classes=7,
                                               weights=ref.state_dict()).eval()
    assert list(model.state_dict()) == list(ref.state_dict())
    x = torch.rand(2, 3, 40, 40)
    with torch.no_grad():
        expected = ref(x)
    with ember.no_grad():
        out = model(_e(x))
    np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-4, atol=1e-4)
