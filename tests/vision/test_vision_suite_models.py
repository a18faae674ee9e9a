"""torchvision.models cases (as torchvision's test/test_models.py checks them): ember's
classification models given torchvision's state_dict produce torchvision's logits (eval and
train-mode batch norm), with torchvision's state_dict keys, shapes and parameter counts
(resnet50's logits and counts are in test_models.py and test_detection.py),
and its constructor arguments (zero_init_residual, groups, width_per_group,
replace_stride_with_dilation, norm_layer). The 101/152-layer builders are checked at
reduced depth (same blocks) to keep the suite fast; their builders' key sets are checked on
torch's meta device."""
import numpy as np
import pytest
import torch

import ember
from ember.vision import models as em
from ember.vision.models import resnet as eresnet
from vision_suite_common import close, needs_tv, tv

pytestmark = needs_tv
if tv is not None:
    import torchvision.models as tm
    from torchvision.models import resnet as tresnet


def _copy(t_model, e_model):
    sd = {k: v.detach().numpy().copy() for k, v in t_model.state_dict().items()}
    e_model.load_state_dict({k: ember.tensor(v) for k, v in sd.items()}, strict=True)
    assert list(e_model.state_dict()) == list(sd)
    for k, v in e_model.state_dict().items():
        assert tuple(v.shape) == sd[k].shape, k


def _randomize_bn(t_model, seed=0):
    """Non-trivial running statistics, so eval-mode batch norm is exercised."""
    g = torch.Generator().manual_seed(seed)
    for m in t_model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def _compare(t_model, e_model, shape=(2, 3, 32, 32), train=False, atol=1e-4):
    _randomize_bn(t_model)
    _copy(t_model, e_model)
    t_model.train(train)
    e_model.train(train)
    x = np.random.default_rng(1).random(shape).astype(np.float32)
    with torch.no_grad():
        t_out = t_model(torch.tensor(x))
    with ember.no_grad():
        e_out = e_model(ember.tensor(x))
    scale = max(1.0, float(t_out.abs().max()))
    close(e_out, t_out, atol=atol * scale, rtol=1e-4)


NAMED = ["resnet18", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"]


@pytest.mark.parametrize("name", NAMED)
def test_named_model_logits_eval(name):
    torch.manual_seed(0)
    _compare(getattr(tm, name)(num_classes=10), getattr(em, name)(num_classes=10),
             shape=(1, 3, 32, 32))


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small"])
def test_named_model_logits_train_mode(name):
    torch.manual_seed(1)
    kwargs = {"num_classes": 7}
    if name.startswith("mobilenet"):
        kwargs["dropout"] = 0.0
    # batch statistics over 2 x 1 x 1 maps in the last stage amplify rounding: a looser
    # tolerance than eval's
    _compare(getattr(tm, name)(**kwargs), getattr(em, name)(**kwargs), train=True,
             atol=1e-2)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "mobilenet_v3_large",
                                  "mobilenet_v3_small", "resnext50_32x4d"])
def test_parameter_counts_equal_torchvision(name):
    with torch.device("meta"):
        t_count = sum(p.numel() for p in getattr(tm, name)().parameters())
    assert sum(int(p.numel()) for p in getattr(em, name)().parameters()) == t_count


@pytest.mark.parametrize("name", ["resnet101", "resnet152", "resnext101_32x8d",
                                  "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2"])
def test_deep_builders_share_the_layout(name):
    """Key names and shapes of the big builders, from each block type at depth one: the
    builders differ only in blocks per stage, groups and width."""
    with torch.device("meta"):
        t_model = getattr(tm, name)()
    _, layers, fixed = eresnet._ARCHS[name]
    expected = [len(getattr(t_model, f"layer{i}")) for i in range(1, 5)]
    assert layers == expected
    block = getattr(t_model, "layer1")[0]
    assert fixed.get("groups", 1) == block.conv2.groups
    width = int(64 * fixed.get("width_per_group", 64) / 64.0) * fixed.get("groups", 1)
    assert tuple(block.conv2.weight.shape) == (width, width // block.conv2.groups, 3, 3)


@pytest.mark.parametrize("block,groups,width", [("Bottleneck", 1, 64), ("Bottleneck", 32, 4),
                                                ("Bottleneck", 1, 128), ("BasicBlock", 1, 64)])
def test_resnet_variants_at_depth_one(block, groups, width):
    torch.manual_seed(2)
    t = tresnet.ResNet(getattr(tresnet, block), [1, 1, 1, 1], num_classes=5, groups=groups,
                       width_per_group=width)
    e = eresnet.ResNet(getattr(eresnet, block), [1, 1, 1, 1], num_classes=5, groups=groups,
                       width_per_group=width)
    _compare(t, e, shape=(1, 3, 16, 16))


@pytest.mark.parametrize("dilation", [[False, False, True], [False, True, True]])
def test_resnet_replace_stride_with_dilation(dilation):
    torch.manual_seed(3)
    t = tresnet.ResNet(tresnet.Bottleneck, [1, 1, 1, 1], num_classes=5,
                       replace_stride_with_dilation=dilation)
    e = eresnet.ResNet(eresnet.Bottleneck, [1, 1, 1, 1], num_classes=5,
                       replace_stride_with_dilation=dilation)
    _compare(t, e, shape=(1, 3, 16, 16))


def test_resnet_zero_init_residual_and_errors():
    e = eresnet.ResNet(eresnet.Bottleneck, [1, 1, 1, 1], zero_init_residual=True)
    assert float(e.layer1[0].bn3.weight.abs().sum()) == 0.0
    with pytest.raises(ValueError, match="BasicBlock only supports"):
        eresnet.ResNet(eresnet.BasicBlock, [1, 1, 1, 1], groups=2)
    with pytest.raises(NotImplementedError, match="Dilation"):
        eresnet.ResNet(eresnet.BasicBlock, [2, 2, 2, 2], replace_stride_with_dilation=[0, 0, 1])
    with pytest.raises(ValueError, match="groups"):
        em.resnext50_32x4d(groups=8)


def test_resnet_norm_layer_argument():
    torch.manual_seed(4)
    t = tresnet.ResNet(tresnet.BasicBlock, [1, 1, 1, 1], num_classes=5,
                       norm_layer=lambda c: torch.nn.GroupNorm(4, c))
    e = eresnet.ResNet(eresnet.BasicBlock, [1, 1, 1, 1], num_classes=5,
                       norm_layer=lambda c: ember.nn.GroupNorm(4, c))
    _compare(t, e, shape=(1, 3, 16, 16))


@pytest.mark.parametrize("name,width_mult", [("mobilenet_v2", 0.5), ("mobilenet_v3_small", 0.75)])
def test_mobilenet_width_mult(name, width_mult):
    torch.manual_seed(5)
    _compare(getattr(tm, name)(num_classes=4, width_mult=width_mult),
             getattr(em, name)(num_classes=4, width_mult=width_mult))


def test_weights_argument_takes_a_torchvision_state_dict():
    torch.manual_seed(6)
    t = tm.resnet18(num_classes=3).eval()
    e = em.resnet18(weights=t.state_dict(), num_classes=3).eval()
    x = np.random.default_rng(7).random((1, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        ref = t(torch.tensor(x))
    close(e(ember.tensor(x)), ref, atol=1e-4)
    with pytest.raises(ValueError, match="download"):
        em.resnet18(weights="IMAGENET1K_V1")


def test_gradients_through_resnet_match():
    torch.manual_seed(8)
    t = tresnet.ResNet(tresnet.BasicBlock, [1, 1, 1, 1], num_classes=3)
    e = eresnet.ResNet(eresnet.BasicBlock, [1, 1, 1, 1], num_classes=3)
    _randomize_bn(t)
    _copy(t, e)
    t.eval()    # batch statistics of 2 x 1 x 1 maps would make the gradients ill-conditioned
    e.eval()
    x = np.random.default_rng(9).random((2, 3, 16, 16)).astype(np.float32)
    t(torch.tensor(x)).pow(2).sum().backward()
    e(ember.tensor(x)).pow(2).sum().backward()
    for (name, tp), (_, ep) in zip(t.named_parameters(), e.named_parameters()):
        scale = max(1e-3, float(tp.grad.abs().max()))
        close(ep.grad, tp.grad, atol=1e-3 * scale, rtol=1e-3)
