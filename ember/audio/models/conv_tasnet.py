"""Conv-TasNet (Luo & Mesgarani 2019) for source separation, laid out as torchaudio's
`torchaudio.models.ConvTasNet` (same module names): a learned 1-D conv encoder, a
temporal-convolution-network mask generator (stacks of dilated depthwise blocks with
residual and skip outputs), and a transposed-conv decoder per source."""
from __future__ import annotations

import ember
from ember import nn

__all__ = ["ConvTasNet", "conv_tasnet_base"]


class ConvBlock(nn.Module):
    """1x1 conv -> PReLU -> gLN -> dilated depthwise conv -> PReLU -> gLN, with a residual
    output (absent in the very last block) and a skip output."""

    def __init__(self, io_channels: int, hidden_channels: int, kernel_size: int,
                 padding: int, dilation: int = 1, no_residual: bool = False):
        super().__init__()
        self.conv_layers = nn.Sequential(
            nn.Conv1d(io_channels, hidden_channels, 1), nn.PReLU(),
            nn.GroupNorm(1, hidden_channels, eps=1e-08),
            nn.Conv1d(hidden_channels, hidden_channels, kernel_size, padding=padding,
                      dilation=dilation, groups=hidden_channels),
            nn.PReLU(), nn.GroupNorm(1, hidden_channels, eps=1e-08))
        self.res_out = None if no_residual else nn.Conv1d(hidden_channels, io_channels, 1)
        self.skip_out = nn.Conv1d(hidden_channels, io_channels, 1)

    def forward(self, x):
        feature = self.conv_layers(x)
        residual = None if self.res_out is None else self.res_out(feature)
        return residual, self.skip_out(feature)


class MaskGenerator(nn.Module):
    """The TCN: num_stacks x num_layers ConvBlocks with dilations 1, 2, 4, ... per stack;
    the summed skip outputs become one mask per source."""

    def __init__(self, input_dim: int, num_sources: int, kernel_size: int, num_feats: int,
                 num_hidden: int, num_layers: int, num_stacks: int, msk_activate: str):
        super().__init__()
        self.input_dim, self.num_sources = input_dim, num_sources
        self.input_norm = nn.GroupNorm(1, input_dim, eps=1e-8)
        self.input_conv = nn.Conv1d(input_dim, num_feats, 1)
        self.receptive_field = 0
        self.conv_layers = nn.ModuleList()
        for s in range(num_stacks):
            for layer in range(num_layers):
                dilation = 2 ** layer
                self.conv_layers.append(ConvBlock(
                    num_feats, num_hidden, kernel_size, padding=dilation, dilation=dilation,
                    no_residual=(layer == num_layers - 1 and s == num_stacks - 1)))
                self.receptive_field += kernel_size if s == 0 and layer == 0 else \
                    (kernel_size - 1) * dilation
        self.output_prelu = nn.PReLU()
        self.output_conv = nn.Conv1d(num_feats, input_dim * num_sources, 1)
        if msk_activate == "sigmoid":
            self.mask_activate = nn.Sigmoid()
        elif msk_activate == "relu":
            self.mask_activate = nn.ReLU()
        else:
            raise ValueError(f"Unsupported activation {msk_activate}")

    def forward(self, x):
        batch = int(x.shape[0])
        feats = self.input_conv(self.input_norm(x))
        output = 0.0
        for layer in self.conv_layers:
            residual, skip = layer(feats)
            if residual is not None:
                feats = feats + residual
            output = output + skip
        output = self.mask_activate(self.output_conv(self.output_prelu(output)))
        return output.reshape([batch, self.num_sources, self.input_dim, -1])


class ConvTasNet(nn.Module):
    """(batch, 1, time) mixture -> (batch, num_sources, time) separated sources."""

    def __init__(self, num_sources: int = 2, enc_kernel_size: int = 16,
                 enc_num_feats: int = 512, msk_kernel_size: int = 3,
                 msk_num_feats: int = 128, msk_num_hidden_feats: int = 512,
                 msk_num_layers: int = 8, msk_num_stacks: int = 3,
                 msk_activate: str = "sigmoid"):
        super().__init__()
        self.num_sources, self.enc_num_feats = num_sources, enc_num_feats
        self.enc_kernel_size, self.enc_stride = enc_kernel_size, enc_kernel_size // 2
        self.encoder = nn.Conv1d(1, enc_num_feats, enc_kernel_size, stride=self.enc_stride,
                                 padding=self.enc_stride, bias=False)
        self.mask_generator = MaskGenerator(enc_num_feats, num_sources, msk_kernel_size,
                                            msk_num_feats, msk_num_hidden_feats,
                                            msk_num_layers, msk_num_stacks, msk_activate)
        self.decoder = nn.ConvTranspose1d(enc_num_feats, 1, enc_kernel_size,
                                          stride=self.enc_stride, padding=self.enc_stride,
                                          bias=False)

    def _align_num_frames_with_strides(self, x):
        """Zero-pad the end so that the encoder's strides tile the signal exactly."""
        batch, channels, frames = (int(v) for v in x.shape)
        is_odd = self.enc_kernel_size % 2
        strides = (frames - is_odd) // self.enc_stride
        remaining = frames - (is_odd + strides * self.enc_stride)
        if remaining == 0:
            return x, 0
        pad = self.enc_stride - remaining
        return ember.cat([x, ember.zeros(batch, channels, pad, dtype=x.dtype)], dim=2), pad

    def forward(self, input):
        if input.ndim != 3 or int(input.shape[1]) != 1:
            raise ValueError(f"Expected 3D tensor (batch, channel==1, frames). Found: "
                             f"{list(input.shape)}")
        padded, pads = self._align_num_frames_with_strides(input)
        batch, frames = int(padded.shape[0]), int(padded.shape[2])
        feats = self.encoder(padded)
        masked = self.mask_generator(feats) * feats.unsqueeze(1)
        masked = masked.reshape([batch * self.num_sources, self.enc_num_feats, -1])
        decoded = self.decoder(masked)
        out = decoded.reshape([batch, self.num_sources, frames])
        return out[..., :frames - pads] if pads > 0 else out


def conv_tasnet_base(num_sources: int = 2) -> ConvTasNet:
    """The paper's best non-causal configuration (torchaudio's conv_tasnet_base)."""
    return ConvTasNet(num_sources=num_sources, enc_kernel_size=16, enc_num_feats=512,
                      msk_kernel_size=3, msk_num_feats=128, msk_num_hidden_feats=512,
                      msk_num_layers=8, msk_num_stacks=3, msk_activate="relu")
