"""torchvision.ops.FeaturePyramidNetwork: lateral 1x1 convs, a nearest-upsampled top-down
path and 3x3 output convs, with torchvision's module names (inner_blocks.i.0,
layer_blocks.i.0) so its state_dict loads."""
from __future__ import annotations

from collections import OrderedDict

from ember import nn
from ember.nn import init
import ember.nn.functional as F


def _conv_norm(in_channels, out_channels, kernel_size, norm_layer):
    """torchvision's Conv2dNormActivation without an activation: index 0 is the conv (with
    a bias only when there is no norm), index 1 the norm."""
    layers = [nn.Conv2d(in_channels, out_channels, kernel_size, padding=(kernel_size - 1) // 2,
                        bias=norm_layer is None)]
    if norm_layer is not None:
        layers.append(norm_layer(out_channels))
    return nn.Sequential(*layers)


class ExtraFPNBlock(nn.Module):
    """Base of the blocks that add levels after the pyramid (torchvision's interface)."""

    def forward(self, results, x, names):
        raise NotImplementedError


class LastLevelMaxPool(ExtraFPNBlock):
    """Adds 'pool': a stride-2 subsampling (max_pool2d, kernel 1) of the last level."""

    def forward(self, results, x, names):
        names = list(names) + ["pool"]
        results = list(results) + [F.max_pool2d(results[-1], 1, 2, 0)]
        return results, names


class FeaturePyramidNetwork(nn.Module):
    def __init__(self, in_channels_list, out_channels: int, extra_blocks=None,
                 norm_layer=None):
        super().__init__()
        self.inner_blocks = nn.ModuleList()
        self.layer_blocks = nn.ModuleList()
        for in_channels in in_channels_list:
            if in_channels == 0:
                raise ValueError("in_channels=0 is currently not supported")
            self.inner_blocks.append(_conv_norm(in_channels, out_channels, 1, norm_layer))
            self.layer_blocks.append(_conv_norm(out_channels, out_channels, 3, norm_layer))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                init.kaiming_uniform_(m.weight, a=1)
                if m.bias is not None:
                    init.zeros_(m.bias)
        if extra_blocks is not None and not isinstance(extra_blocks, ExtraFPNBlock):
            raise TypeError(f"extra_blocks should be of type ExtraFPNBlock not "
                            f"{type(extra_blocks)}")
        self.extra_blocks = extra_blocks

    def forward(self, x):
        """x: an ordered dict of feature maps, finest first; returns the same keys."""
        names, feats = list(x.keys()), list(x.values())
        last_inner = self.inner_blocks[-1](feats[-1])
        results = [self.layer_blocks[-1](last_inner)]
        for idx in range(len(feats) - 2, -1, -1):
            lateral = self.inner_blocks[idx](feats[idx])
            top_down = F.interpolate(last_inner, size=list(lateral.shape[-2:]),
                                     mode="nearest")
            last_inner = lateral + top_down
            results.insert(0, self.layer_blocks[idx](last_inner))
        if self.extra_blocks is not None:
            results, names = self.extra_blocks(results, feats, names)
        return OrderedDict(zip(names, results))
