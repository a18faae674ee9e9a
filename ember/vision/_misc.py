"""torchvision.ops.FrozenBatchNorm2d and torchvision.ops.feature_pyramid_network's
LastLevelP6P7: the pieces the detection models add to the backbone and the FPN."""
from __future__ import annotations

import ember
from ember import nn
from ember.nn import init
import ember.nn.functional as F

from ._fpn import ExtraFPNBlock

__all__ = ["FrozenBatchNorm2d", "LastLevelP6P7"]


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm2d whose statistics and affine parameters are fixed buffers (detection
    backbones with pretrained weights use it: training never updates them)."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", ember.ones(num_features))
        self.register_buffer("bias", ember.zeros(num_features))
        self.register_buffer("running_mean", ember.zeros(num_features))
        self.register_buffer("running_var", ember.ones(num_features))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        # a BatchNorm2d checkpoint loads too: its step counter has no meaning here
        key = prefix + "num_batches_tracked"
        if key in state_dict:
            state_dict = {k: v for k, v in state_dict.items() if k != key}
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def forward(self, x):
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale.reshape(1, -1, 1, 1) + shift.reshape(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


class LastLevelP6P7(ExtraFPNBlock):
    """Adds 'p6' (a stride-2 3x3 conv of P5, or of C5 when the channel counts differ) and
    'p7' (a stride-2 3x3 conv of relu(p6)), as RetinaNet's pyramid does."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.p6 = nn.Conv2d(in_channels, out_channels, 3, 2, 1)
        self.p7 = nn.Conv2d(out_channels, out_channels, 3, 2, 1)
        for conv in (self.p6, self.p7):
            init.kaiming_uniform_(conv.weight, a=1)
            init.constant_(conv.bias, 0)
        self.use_P5 = in_channels == out_channels

    def forward(self, p, c, names):
        source = p[-1] if self.use_P5 else c[-1]
        p6 = self.p6(source)
        p7 = self.p7(F.relu(p6))
        return list(p) + [p6, p7], list(names) + ["p6", "p7"]
