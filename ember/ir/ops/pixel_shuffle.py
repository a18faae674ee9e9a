"""Channel/space rearrangements: pixel_shuffle, pixel_unshuffle, channel_shuffle.

Each is a fixed permutation of its input's elements (a reshape, a transpose and a
reshape back, as a copy), so its derivative is the inverse permutation: pixel_shuffle
and pixel_unshuffle with the same factor undo each other, and channel_shuffle with g
groups is undone by channel_shuffle with C / g groups. Every dtype is accepted.
"""
from __future__ import annotations

from ..errors import ShapeError
from ..meta import TensorMeta
from ..registry import defop
from . import samples as S
from .rules import device_of


def _check_rank(self, name):
    if self.ndim < 3:
        raise ShapeError(f"{name} expects input to have at least 3 dimensions, but got input "
                         f"with {self.ndim} dimension(s)")


def _check_factor(factor, name, what):
    if factor <= 0:
        raise ShapeError(f"{name} expects a positive {what}, but got {factor}")


def _shuffle_shape(self, r):
    _check_rank(self, "pixel_shuffle")
    _check_factor(r, "pixel_shuffle", "upscale_factor")
    *lead, c, h, w = self.shape
    if c % (r * r):
        raise ShapeError(f"pixel_shuffle expects its input's 'channel' dimension to be "
                         f"divisible by the square of upscale_factor, but input.size(-3)={c} "
                         f"is not divisible by {r * r}")
    return tuple(lead) + (c // (r * r), h * r, w * r)


def _unshuffle_shape(self, r):
    _check_rank(self, "pixel_unshuffle")
    _check_factor(r, "pixel_unshuffle", "downscale_factor")
    *lead, c, h, w = self.shape
    for name, n in (("height", h), ("width", w)):
        if n % r:
            dim = -2 if name == "height" else -1
            raise ShapeError(f"pixel_unshuffle expects {name} to be divisible by "
                             f"downscale_factor, but input.size({dim})={n} is not divisible "
                             f"by {r}")
    return tuple(lead) + (c * r * r, h // r, w // r)


def _pixel_shuffle_ref(x, r):
    *lead, c, h, w = x.shape
    k = len(lead)
    blocks = x.reshape(tuple(lead) + (c // (r * r), r, r, h, w))
    perm = tuple(range(k + 1)) + (k + 3, k + 1, k + 4, k + 2)
    return blocks.transpose(perm).reshape(_shuffle_shape(x, r))


def _pixel_unshuffle_ref(x, r):
    *lead, c, h, w = x.shape
    k = len(lead)
    blocks = x.reshape(tuple(lead) + (c, h // r, r, w // r, r))
    perm = tuple(range(k + 1)) + (k + 2, k + 4, k + 1, k + 3)
    return blocks.transpose(perm).reshape(_unshuffle_shape(x, r))


pixel_shuffle = defop(
    "pixel_shuffle(Tensor self, int upscale_factor) -> Tensor",
    meta=lambda self, upscale_factor: TensorMeta(_shuffle_shape(self, upscale_factor),
                                                 self.dtype, device_of([self])),
    reference=lambda x, upscale_factor: _pixel_shuffle_ref(x, upscale_factor).copy(),
    derivative=lambda g, self, upscale_factor: pixel_unshuffle(g, upscale_factor),
    saves=(),
    samples=lambda rng: [S.Sample((S.randn(rng, 2, 8, 3, 2), 2)),
                         S.Sample((S.randn(rng, 9, 2, 2), 3)),
                         S.Sample((S.int_array(rng, 2, 1, 4, 2, 3), 2), grad=False)],
    torch_ref="torch.nn.functional.pixel_shuffle",
    doc="(*, C*r*r, H, W) -> (*, C, H*r, W*r).",
)

pixel_unshuffle = defop(
    "pixel_unshuffle(Tensor self, int downscale_factor) -> Tensor",
    meta=lambda self, downscale_factor: TensorMeta(_unshuffle_shape(self, downscale_factor),
                                                   self.dtype, device_of([self])),
    reference=lambda x, downscale_factor: _pixel_unshuffle_ref(x, downscale_factor).copy(),
    derivative=lambda g, self, downscale_factor: pixel_shuffle(g, downscale_factor),
    saves=(),
    samples=lambda rng: [S.Sample((S.randn(rng, 2, 2, 6, 4), 2)),
                         S.Sample((S.randn(rng, 1, 6, 9), 3)),
                         S.Sample((S.bool_array(rng, 2, 1, 3, 4, 2), 2), grad=False)],
    torch_ref="torch.nn.functional.pixel_unshuffle",
    doc="(*, C, H*r, W*r) -> (*, C*r*r, H, W); the inverse of pixel_shuffle.",
)


def _channel_shuffle_meta(self, groups):
    if self.ndim <= 2:
        raise ShapeError(f"channel_shuffle expects input with > 2 dims, but got input with "
                         f"sizes {list(self.shape)}")
    if groups <= 0:
        raise ShapeError(f"Number of groups to divide channels in must be positive. Value of "
                         f"groups:{groups}")
    if self.shape[1] % groups:
        raise ShapeError(f"Number of channels must be divisible by groups. Got "
                         f"{self.shape[1]} channels and {groups} groups.")
    return TensorMeta(tuple(self.shape), self.dtype, device_of([self]))


def _channel_shuffle_ref(x, groups):
    n, c = x.shape[:2]
    grouped = x.reshape((n, groups, c // groups) + x.shape[2:])
    return grouped.swapaxes(1, 2).reshape(x.shape).copy()


channel_shuffle = defop(
    "channel_shuffle(Tensor self, int groups) -> Tensor",
    meta=_channel_shuffle_meta, reference=_channel_shuffle_ref,
    derivative=lambda g, self, groups: channel_shuffle(g, self.shape[1] // groups),
    saves=(),
    samples=lambda rng: [S.Sample((S.randn(rng, 2, 6, 3, 2), 3)),
                         S.Sample((S.randn(rng, 1, 4, 5), 2)),
                         S.Sample((S.int_array(rng, 2, 6, 2, 1, 2), 2), grad=False)],
    torch_ref="torch.nn.functional.channel_shuffle",
    doc="(N, C, *): channels split into `groups` groups and interleaved.",
)
