"""torchvision.ops.deform_conv2d / DeformConv2d (Dai et al. 2017; the modulated `mask`
of Zhu et al. 2019).

Each kernel tap (i, j) of each output position samples the input bilinearly at its
regular position plus a learned offset (dy, dx); a sample's corners outside the map read
zero. That is grid_sample's bilinear mode with zero padding, so the columns of all taps
come from one grid_sample per offset group (the taps stacked along the height), are scaled
by the mask, and meet the weights in one grouped matmul. Differentiable in the input, the
offsets, the mask, the weight and the bias.
"""
from __future__ import annotations

import math

import ember
from ember import nn
from ember.nn import init
import ember.nn.functional as F


def _pair(v):
    return (int(v), int(v)) if isinstance(v, int) else tuple(int(x) for x in v)


def _check(input, offset, weight, mask, kh, kw):
    if input.ndim != 4 or offset.ndim != 4 or weight.ndim != 4:
        raise ValueError(f"deform_conv2d: input, offset and weight should be 4-D, got "
                         f"{input.ndim}-D, {offset.ndim}-D and {weight.ndim}-D")
    taps = kh * kw
    if int(offset.shape[1]) % (2 * taps) != 0:
        raise RuntimeError(f"deform_conv2d: the shape of the offset tensor at dimension 1 is "
                           f"not valid. It should be a multiple of 2 * weight.size[2] * "
                           f"weight.size[3].\nGot offset.shape[1]={int(offset.shape[1])}, "
                           f"while 2 * weight.size[2] * weight.size[3]={2 * taps}")
    groups = int(offset.shape[1]) // (2 * taps)
    if int(input.shape[1]) % groups != 0:
        raise RuntimeError(f"deform_conv2d: input channels ({int(input.shape[1])}) must be "
                           f"divisible by the number of offset groups ({groups})")
    if mask is not None and int(mask.shape[1]) != groups * taps:
        raise RuntimeError(f"deform_conv2d: mask.shape[1] should be offset groups * kernel "
                           f"taps = {groups * taps}, got {int(mask.shape[1])}")
    return groups


def _sampling_grid(offset_g, base_y, base_x, h, w):
    """grid_sample grid [N, taps * Ho, Wo, 2] (align_corners=False coordinates) of one
    offset group's taps; offset_g is [N, taps, 2, Ho, Wo] (dy, dx)."""
    n, taps, _, ho, wo = (int(s) for s in offset_g.shape)
    py = base_y + offset_g[:, :, 0]                  # [N, taps, Ho, Wo]
    px = base_x + offset_g[:, :, 1]
    gx = (2.0 * px + 1.0) / w - 1.0
    gy = (2.0 * py + 1.0) / h - 1.0
    return ember.stack([gx, gy], dim=-1).reshape([n, taps * ho, wo, 2])


def deform_conv2d(input, offset, weight, bias=None, stride=(1, 1), padding=(0, 0),
                  dilation=(1, 1), mask=None):
    """Deformable convolution. input [N, C_in, H, W]; offset [N, 2 * G * kh * kw, Ho, Wo]
    ((dy, dx) per tap and offset group G); weight [C_out, C_in / groups, kh, kw];
    mask [N, G * kh * kw, Ho, Wo] or None. Returns [N, C_out, Ho, Wo]."""
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
    cout, cin_g, kh, kw = (int(s) for s in weight.shape)
    offset_groups = _check(input, offset, weight, mask, kh, kw)
    n, cin, h, w = (int(s) for s in input.shape)
    groups = cin // cin_g
    taps = kh * kw
    ho = (h + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
    wo = (w + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
    if tuple(int(s) for s in offset.shape[2:]) != (ho, wo):
        raise RuntimeError(f"deform_conv2d: offset output dims {list(offset.shape[2:])} "
                           f"should equal the convolution's output size {[ho, wo]}")
    dev, dt = input.device, input.dtype
    ii = ember.arange(kh, device=dev).to(dt).repeat_interleave(kw).reshape([1, taps, 1, 1])
    jj = ember.arange(kw, device=dev).to(dt).repeat(kh).reshape([1, taps, 1, 1])
    oy = ember.arange(ho, device=dev).to(dt).reshape([1, 1, ho, 1])
    ox = ember.arange(wo, device=dev).to(dt).reshape([1, 1, 1, wo])
    base_y = oy * sh - ph + ii * dh
    base_x = ox * sw - pw + jj * dw
    offsets = offset.reshape([n, offset_groups, taps, 2, ho, wo])
    per_group = cin // offset_groups
    cols = []
    for g in range(offset_groups):
        grid = _sampling_grid(offsets[:, g], base_y, base_x, h, w)
        part = F.grid_sample(input[:, g * per_group:(g + 1) * per_group], grid,
                             mode="bilinear", padding_mode="zeros", align_corners=False)
        part = part.reshape([n, per_group, taps, ho, wo])
        if mask is not None:
            part = part * mask[:, g * taps:(g + 1) * taps].unsqueeze(1)
        cols.append(part)
    cols = ember.cat(cols, dim=1) if offset_groups > 1 else cols[0]
    cols = cols.reshape([n, groups, cin_g * taps, ho * wo])
    wmat = weight.reshape([groups, cout // groups, cin_g * taps])
    out = ember.matmul(wmat.unsqueeze(0), cols).reshape([n, cout, ho, wo])
    if bias is not None:
        out = out + bias.reshape([1, cout, 1, 1])
    return out


class DeformConv2d(nn.Module):
    """Module form of deform_conv2d; forward(input, offset, mask=None)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True):
        super().__init__()
        if in_channels % groups != 0:
            raise ValueError("in_channels must be divisible by groups")
        if out_channels % groups != 0:
            raise ValueError("out_channels must be divisible by groups")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = _pair(kernel_size), _pair(stride)
        self.padding, self.dilation, self.groups = _pair(padding), _pair(dilation), groups
        self.weight = nn.Parameter(ember.empty(out_channels, in_channels // groups,
                                               *self.kernel_size))
        if bias:
            self.bias = nn.Parameter(ember.empty(out_channels))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * self.kernel_size[0] * self.kernel_size[1]
            bound = 1 / math.sqrt(fan_in)
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input, offset, mask=None):
        return deform_conv2d(input, offset, self.weight, self.bias, self.stride,
                             self.padding, self.dilation, mask)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
                f"groups={self.groups}, bias={self.bias is not None}")
