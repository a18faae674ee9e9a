"""Model code ported from PyTorch (torch -> ember), compiled equal to eager: a ConvNeXt
block (at 1x1, 2x2 and 7x7, where size-1 dims once gave wrong values), a
squeeze-and-excitation block, a ViT patch embedding with an attention block, and a conv
whose output is chunked between convolutions."""
import numpy as np
import pytest

import ember
import ember.nn as nn
import ember.nn.functional as F


def _compiled_equals_eager(model, x, tol=2e-4):
    model.eval()
    with ember.no_grad():
        want = model(x)
        got = ember.compile(model)(x)
    assert tuple(got.shape) == tuple(want.shape)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=tol, atol=tol)


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW tensor (ConvNeXt's, timm's)."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim, layer_scale=1e-1):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(layer_scale * ember.ones(dim))

    def forward(self, x):
        shortcut = x
        x = self.dwconv(x).permute(0, 2, 3, 1)            # NCHW -> NHWC
        x = self.pwconv2(self.act(self.pwconv1(self.norm(x))))
        x = (self.gamma * x).permute(0, 3, 1, 2)           # NHWC -> NCHW
        return shortcut + x


class ConvNeXtStage(nn.Module):
    """Downsampling (LayerNorm2d + 2x2 conv) then a block: LayerNorm2d's permutes too."""

    def __init__(self, cin, dim):
        super().__init__()
        self.down = nn.Sequential(LayerNorm2d(cin, eps=1e-6), nn.Conv2d(cin, dim, 2, 2))
        self.block = ConvNeXtBlock(dim)
        self.head_norm = LayerNorm2d(dim, eps=1e-6)

    def forward(self, x):
        return self.head_norm(self.block(self.down(x))).mean([2, 3])


@pytest.mark.parametrize("spatial", [1, 2, 7])
def test_convnext_block(spatial):
    _compiled_equals_eager(ConvNeXtBlock(16), ember.randn(2, 16, spatial, spatial))


@pytest.mark.parametrize("spatial", [2, 4, 14])
def test_convnext_stage_with_layer_norm_2d(spatial):
    _compiled_equals_eager(ConvNeXtStage(8, 16), ember.randn(2, 8, spatial, spatial))


class SqueezeExcitation(nn.Module):
    def __init__(self, channels, squeeze):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x):
        scale = F.adaptive_avg_pool2d(x, 1)
        scale = self.fc2(F.relu(self.fc1(scale))).sigmoid()
        return x * scale


class SEBlock(nn.Module):
    def __init__(self, cin, channels):
        super().__init__()
        self.conv = nn.Conv2d(cin, channels, 3, padding=1)
        self.se = SqueezeExcitation(channels, channels // 4)

    def forward(self, x):
        return self.se(F.relu(self.conv(x)))


@pytest.mark.parametrize("spatial", [1, 5])
def test_squeeze_excitation(spatial):
    _compiled_equals_eager(SEBlock(3, 16), ember.randn(2, 3, spatial, spatial))


class ViTBlock(nn.Module):
    """Patch embedding (conv stride = patch), class token, position embedding, then a
    pre-norm encoder block with hand-written attention and an MLP."""

    def __init__(self, dim=32, heads=4, patch=4, image=8):
        super().__init__()
        self.heads = heads
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        n = (image // patch) ** 2
        self.cls_token = nn.Parameter(ember.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(ember.randn(1, n + 1, dim) * 0.02)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def attention(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q @ k.transpose(-2, -1)) * (c // self.heads) ** -0.5
        x = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj(x)

    def forward(self, img):
        x = self.patch_embed(img).flatten(2).transpose(1, 2)          # B, N, C
        x = ember.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = x + self.attention(self.norm1(x))
        x = x + self.mlp(self.norm2(x))
        return x[:, 0]


def test_vit_patch_embed_and_attention():
    _compiled_equals_eager(ViTBlock(), ember.randn(2, 3, 8, 8))


def test_vit_with_sdpa():
    class SDPA(ViTBlock):
        def attention(self, x):
            b, n, c = x.shape
            qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
            x = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c)
            return self.proj(x)
    _compiled_equals_eager(SDPA(), ember.randn(2, 3, 8, 8))


class ChunkConv(nn.Module):
    """conv -> chunk(2, dim=1) -> conv on one half -> cat (the layout pass's multi-output case)."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        a, b = self.c1(x).chunk(2, dim=1)
        return ember.cat([self.c2(a), b], 1)


def test_chunk_between_convolutions():
    _compiled_equals_eager(ChunkConv(), ember.randn(2, 3, 6, 6))
