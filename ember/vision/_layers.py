"""torchvision.ops.misc's building blocks (Conv2dNormActivation, Conv3dNormActivation,
SqueezeExcitation, MLP, Permute) and torchvision.ops.stochastic_depth /
drop_block2d / drop_block3d. Module trees and parameter names are torchvision's, so state_dicts load."""
from __future__ import annotations

import ember
from ember import nn


def _norm_act_layers(conv_cls, in_channels, out_channels, kernel_size, stride, padding, groups,
                     norm_layer, activation_layer, dilation, inplace, bias, dims):
    if padding is None:
        if isinstance(kernel_size, int) and isinstance(dilation, int):
            padding = (kernel_size - 1) // 2 * dilation
        else:
            ks = kernel_size if not isinstance(kernel_size, int) else (kernel_size,) * dims
            dil = dilation if not isinstance(dilation, int) else (dilation,) * dims
            padding = tuple((k - 1) // 2 * d for k, d in zip(ks, dil))
    if bias is None:
        bias = norm_layer is None
    layers = [conv_cls(in_channels, out_channels, kernel_size, stride, padding,
                       dilation=dilation, groups=groups, bias=bias)]
    if norm_layer is not None:
        layers.append(norm_layer(out_channels))
    if activation_layer is not None:
        params = {} if inplace is None else {"inplace": inplace}
        layers.append(activation_layer(**params))
    return layers


class Conv2dNormActivation(nn.Sequential):
    """Conv2d -> norm (BatchNorm2d) -> activation (ReLU); padding keeps the size at
    stride 1; bias only when there is no norm layer (unless `bias` says)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size=3, stride=1,
                 padding=None, groups: int = 1, norm_layer=nn.BatchNorm2d,
                 activation_layer=nn.ReLU, dilation=1, inplace=True, bias=None):
        super().__init__(*_norm_act_layers(nn.Conv2d, in_channels, out_channels, kernel_size,
                                           stride, padding, groups, norm_layer,
                                           activation_layer, dilation, inplace, bias, 2))
        self.out_channels = out_channels


class Conv3dNormActivation(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, kernel_size=3, stride=1,
                 padding=None, groups: int = 1, norm_layer=nn.BatchNorm3d,
                 activation_layer=nn.ReLU, dilation=1, inplace=True, bias=None):
        super().__init__(*_norm_act_layers(nn.Conv3d, in_channels, out_channels, kernel_size,
                                           stride, padding, groups, norm_layer,
                                           activation_layer, dilation, inplace, bias, 3))
        self.out_channels = out_channels


class SqueezeExcitation(nn.Module):
    """Channel gates (Hu et al.): global average -> fc1 -> activation -> fc2 ->
    scale_activation (Sigmoid by default) -> input * gates."""

    def __init__(self, input_channels: int, squeeze_channels: int, activation=nn.ReLU,
                 scale_activation=nn.Sigmoid):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(input_channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, input_channels, 1)
        self.activation = activation()
        self.scale_activation = scale_activation()

    def _scale(self, input):
        return self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(input)))))

    def forward(self, input):
        return self._scale(input) * input


class MLP(nn.Sequential):
    """Linear -> [norm] -> activation -> Dropout per hidden layer, then Linear -> Dropout."""

    def __init__(self, in_channels: int, hidden_channels, norm_layer=None,
                 activation_layer=nn.ReLU, inplace=None, bias: bool = True,
                 dropout: float = 0.0):
        params = {} if inplace is None else {"inplace": inplace}
        layers, width = [], in_channels
        for hidden in list(hidden_channels)[:-1]:
            layers.append(nn.Linear(width, hidden, bias=bias))
            if norm_layer is not None:
                layers.append(norm_layer(hidden))
            layers.append(activation_layer(**params))
            layers.append(nn.Dropout(dropout, **params))
            width = hidden
        layers.append(nn.Linear(width, list(hidden_channels)[-1], bias=bias))
        layers.append(nn.Dropout(dropout, **params))
        super().__init__(*layers)


class Permute(nn.Module):
    def __init__(self, dims):
        super().__init__()
        self.dims = list(dims)

    def forward(self, x):
        return ember.permute(x, self.dims)


def stochastic_depth(input, p: float, mode: str, training: bool = True, generator=None):
    """Drop whole residual branches (Huang et al. 2016): with probability p zero the input
    per sample ("row") or for the whole batch ("batch"); survivors are scaled by 1/(1-p).
    The draws come from ember's generator (`generator=`, an ember extension), so they are
    not torch's draws for the same seed."""
    if p < 0.0 or p > 1.0:
        raise ValueError(f"drop probability has to be between 0 and 1, but got {p}")
    if mode not in ("batch", "row"):
        raise ValueError(f"mode has to be either 'batch' or 'row', but got {mode}")
    if not training or p == 0.0:
        return input
    survival = 1.0 - p
    size = [int(input.shape[0])] + [1] * (input.ndim - 1) if mode == "row" else [1] * input.ndim
    keep = (ember.rand(size, generator=generator) < survival).to(input.dtype).to(input.device)
    if survival > 0.0:
        keep = keep / survival
    return input * keep


class StochasticDepth(nn.Module):
    def __init__(self, p: float, mode: str):
        super().__init__()
        self.p, self.mode = p, mode

    def forward(self, input):
        return stochastic_depth(input, self.p, self.mode, self.training)

    def extra_repr(self):
        return f"p={self.p}, mode={self.mode}"


def _drop_block(input, p, block_size, inplace, eps, training, dims, generator):
    """DropBlock (Ghiasi et al. 2018): zero block_size^dims regions seeded with rate gamma,
    then rescale by the kept fraction."""
    import ember.nn.functional as F
    if p < 0.0 or p > 1.0:
        raise ValueError(f"drop probability has to be between 0 and 1, but got {p}.")
    if input.ndim != dims + 2:
        raise ValueError(f"input should be {dims + 2} dimensional. Got {input.ndim} "
                         f"dimensions.")
    if not training or p == 0.0:
        return input
    spatial = [int(s) for s in input.shape[2:]]
    block_size = min([block_size] + spatial)
    if block_size % 2 == 0:
        raise ValueError(f"block size should be odd. Got {block_size} which is even.")
    valid = 1
    for s in spatial:
        valid *= s - block_size + 1
    area = 1
    for s in spatial:
        area *= s
    gamma = (p * area) / ((block_size ** dims) * valid)
    seeds_shape = [int(s) for s in input.shape[:2]] + [s - block_size + 1 for s in spatial]
    seeds = (ember.rand(seeds_shape, generator=generator) < gamma).to(input.dtype)
    return _apply_block_mask(input, seeds.to(input.device), block_size, inplace, eps, dims, F)


def _apply_block_mask(input, seeds, block_size, inplace, eps, dims, F):
    half = block_size // 2
    seeds = F.pad(seeds, [half] * (2 * dims), value=0.0)
    pool = F.max_pool2d if dims == 2 else F.max_pool3d
    keep = 1 - pool(seeds, kernel_size=block_size, stride=1, padding=half)
    scale = keep.numel() / (eps + keep.sum())
    if inplace:
        return input.mul_(keep).mul_(scale)
    return input * keep * scale


def drop_block2d(input, p: float, block_size: int, inplace: bool = False, eps: float = 1e-06,
                 training: bool = True, generator=None):
    """DropBlock on [N, C, H, W]; the seeds come from ember's generator (`generator=`)."""
    return _drop_block(input, p, block_size, inplace, eps, training, 2, generator)


def drop_block3d(input, p: float, block_size: int, inplace: bool = False, eps: float = 1e-06,
                 training: bool = True, generator=None):
    """DropBlock on [N, C, D, H, W]."""
    return _drop_block(input, p, block_size, inplace, eps, training, 3, generator)


class DropBlock2d(nn.Module):
    def __init__(self, p: float, block_size: int, inplace: bool = False, eps: float = 1e-06):
        super().__init__()
        self.p, self.block_size, self.inplace, self.eps = p, block_size, inplace, eps

    def forward(self, input):
        return drop_block2d(input, self.p, self.block_size, self.inplace, self.eps,
                            self.training)

    def extra_repr(self):
        return f"p={self.p}, block_size={self.block_size}, inplace={self.inplace}"


class DropBlock3d(DropBlock2d):
    def forward(self, input):
        return drop_block3d(input, self.p, self.block_size, self.inplace, self.eps,
                            self.training)
