"""torchvision.models.detection.backbone_utils: a ResNet trunk whose intermediate layers
feed a FeaturePyramidNetwork (BackboneWithFPN), with torchvision's module names
(backbone.body.*, backbone.fpn.*) so its state_dict keys load as they are."""
from __future__ import annotations

from collections import OrderedDict

from ember import nn

from ..._fpn import FeaturePyramidNetwork
from ..._misc import FrozenBatchNorm2d

__all__ = ["IntermediateLayerGetter", "BackboneWithFPN", "resnet_fpn_extractor"]


class IntermediateLayerGetter(nn.Module):
    """The model's children up to the last one named in return_layers, run in order;
    forward returns an OrderedDict {return_layers[name]: output of that child}."""

    def __init__(self, model, return_layers: dict):
        super().__init__()
        children = dict(model.named_children())
        if not set(return_layers).issubset(children):
            raise ValueError("return_layers are not present in model")
        wanted = dict(return_layers)
        remaining = set(wanted)
        for name, module in model.named_children():
            self.add_module(name, module)
            remaining.discard(name)
            if not remaining:
                break
        self.return_layers = wanted

    def forward(self, x):
        out = OrderedDict()
        for name, module in self.named_children():
            x = module(x)
            if name in self.return_layers:
                out[self.return_layers[name]] = x
        return out


class BackboneWithFPN(nn.Module):
    """body (IntermediateLayerGetter) then fpn; out_channels is the pyramid's width."""

    def __init__(self, backbone, return_layers, in_channels_list, out_channels,
                 extra_blocks=None, norm_layer=None):
        super().__init__()
        self.body = IntermediateLayerGetter(backbone, return_layers=return_layers)
        self.fpn = FeaturePyramidNetwork(in_channels_list=in_channels_list,
                                         out_channels=out_channels, extra_blocks=extra_blocks,
                                         norm_layer=norm_layer)
        self.out_channels = out_channels

    def forward(self, x):
        return self.fpn(self.body(x))


def freeze_batch_norms(module):
    """Replace every BatchNorm2d under module by a FrozenBatchNorm2d (same buffers), as
    torchvision builds detection backbones that start from pretrained weights."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            setattr(module, name, frozen)
        else:
            freeze_batch_norms(child)
    return module


def resnet_fpn_extractor(backbone, trainable_layers: int, returned_layers=None,
                         extra_blocks=None, norm_layer=None):
    """Freeze all but the last trainable_layers of (layer4, layer3, layer2, layer1, conv1)
    and wrap the ResNet in a BackboneWithFPN over returned_layers (default 1..4)."""
    if not 0 <= trainable_layers <= 5:
        raise ValueError(f"Trainable layers should be in the range [0,5], got "
                         f"{trainable_layers}")
    trainable = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable_layers]
    if trainable_layers == 5:
        trainable.append("bn1")
    for name, parameter in backbone.named_parameters():
        if all(not name.startswith(layer) for layer in trainable):
            parameter.requires_grad_(False)
    returned_layers = list(returned_layers or [1, 2, 3, 4])
    if min(returned_layers) <= 0 or max(returned_layers) >= 5:
        raise ValueError(f"Each returned layer should be in the range [1,4]. Got "
                         f"{returned_layers}")
    return_layers = {f"layer{k}": str(v) for v, k in enumerate(returned_layers)}
    in_channels_stage2 = backbone.inplanes // 8
    in_channels_list = [in_channels_stage2 * 2 ** (i - 1) for i in returned_layers]
    return BackboneWithFPN(backbone, return_layers, in_channels_list, 256,
                           extra_blocks=extra_blocks, norm_layer=norm_layer)
