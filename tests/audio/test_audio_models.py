"""ember.audio.models (ConvTasNet, Wav2Letter) against torch mirrors of torchaudio's module
layouts (torchaudio has no build for this torch): strict state_dict load, outputs and
input gradients agree."""
import numpy as np
import torch
from torch import nn

import ember
from ember.audio.models import ConvTasNet


class _TBlock(nn.Module):
    def __init__(self, io, hidden, k, dilation, no_residual):
        super().__init__()
        self.conv_layers = nn.Sequential(
            nn.Conv1d(io, hidden, 1), nn.PReLU(), nn.GroupNorm(1, hidden, eps=1e-8),
            nn.Conv1d(hidden, hidden, k, padding=dilation, dilation=dilation, groups=hidden),
            nn.PReLU(), nn.GroupNorm(1, hidden, eps=1e-8))
        self.res_out = None if no_residual else nn.Conv1d(hidden, io, 1)
        self.skip_out = nn.Conv1d(hidden, io, 1)


class _TMask(nn.Module):
    def __init__(self, dim, sources, k, feats, hidden, layers, stacks):
        super().__init__()
        self.input_norm = nn.GroupNorm(1, dim, eps=1e-8)
        self.input_conv = nn.Conv1d(dim, feats, 1)
        self.conv_layers = nn.ModuleList(
            [_TBlock(feats, hidden, k, 2 ** i, i == layers - 1 and s == stacks - 1)
             for s in range(stacks) for i in range(layers)])
        self.output_prelu = nn.PReLU()
        self.output_conv = nn.Conv1d(feats, dim * sources, 1)


class _TConvTasNet(nn.Module):
    def __init__(self, sources, kernel, enc, mk, feats, hidden, layers, stacks):
        super().__init__()
        self.stride, self.sources, self.enc, self.kernel = kernel // 2, sources, enc, kernel
        self.encoder = nn.Conv1d(1, enc, kernel, stride=kernel // 2, padding=kernel // 2,
                                 bias=False)
        self.mask_generator = _TMask(enc, sources, mk, feats, hidden, layers, stacks)
        self.decoder = nn.ConvTranspose1d(enc, 1, kernel, stride=kernel // 2,
                                          padding=kernel // 2, bias=False)

    def forward(self, x):
        n = x.shape[-1]
        odd = self.kernel % 2
        rem = n - (odd + (n - odd) // self.stride * self.stride)
        pad = 0 if rem == 0 else self.stride - rem
        x = torch.nn.functional.pad(x, (0, pad))
        feats = self.encoder(x)
        mg = self.mask_generator
        h = mg.input_conv(mg.input_norm(feats))
        out = 0.0
        for block in mg.conv_layers:
            f = block.conv_layers(h)
            if block.res_out is not None:
                h = h + block.res_out(f)
            out = out + block.skip_out(f)
        masks = torch.sigmoid(mg.output_conv(mg.output_prelu(out)))
        masks = masks.view(x.shape[0], self.sources, self.enc, -1)
        masked = (masks * feats.unsqueeze(1)).view(x.shape[0] * self.sources, self.enc, -1)
        y = self.decoder(masked).view(x.shape[0], self.sources, -1)
        return y[..., :n]


def test_conv_tasnet_matches_torch_mirror():
    cfg = dict(num_sources=2, enc_kernel_size=8, enc_num_feats=12, msk_kernel_size=3,
               msk_num_feats=6, msk_num_hidden_feats=10, msk_num_layers=3, msk_num_stacks=2)
    ember.manual_seed(0)
    model = ConvTasNet(**cfg).to(ember.float64)
    mirror = _TConvTasNet(2, 8, 12, 3, 6, 10, 3, 2).double()
    state = model.state_dict()
    mirror.load_state_dict({k: torch.tensor(v.numpy()) for k, v in state.items()}, strict=True)
    x = np.random.default_rng(0).normal(size=(2, 1, 101))   # 101: needs end padding
    ex, tx = ember.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, ref = model(ex), mirror(tx)
    assert tuple(out.shape) == (2, 2, 101)
    np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), atol=1e-10)
    w = np.random.default_rng(1).random((2, 2, 101))
    (out * ember.tensor(w)).sum().backward()
    (ref * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(ex.grad.numpy(), tx.grad.numpy(), atol=1e-9)


def _t_conv_relu(cin, cout, k, s, p):
    return [nn.Conv1d(cin, cout, k, stride=s, padding=p), nn.ReLU()]


def test_wav2letter_matches_torch_mirror():
    from ember.audio.models import Wav2Letter
    layers = _t_conv_relu(10, 250, 48, 2, 23)
    for _ in range(7):
        layers += _t_conv_relu(250, 250, 7, 1, 3)
    layers += _t_conv_relu(250, 2000, 32, 1, 16) + _t_conv_relu(2000, 2000, 1, 1, 0) + \
        _t_conv_relu(2000, 5, 1, 1, 0)
    mirror = nn.Sequential(nn.Sequential(*layers))     # keys acoustic_model.<i>.*
    ember.manual_seed(0)
    model = Wav2Letter(num_classes=5, input_type="mfcc", num_features=10)
    state = {k.replace("acoustic_model.", "0.", 1): torch.tensor(v.numpy())
             for k, v in model.state_dict().items()}
    mirror.load_state_dict(state, strict=True)
    x = np.random.default_rng(3).normal(size=(1, 10, 40)).astype(np.float32)
    out = model(ember.tensor(x)).detach().numpy()
    ref = torch.log_softmax(mirror(torch.tensor(x)), dim=1).detach().numpy()
    np.testing.assert_allclose(out, ref, atol=1e-4)
    assert out.shape == (1, 5, 21)
    wave_model = Wav2Letter(num_classes=5)
    assert list(wave_model.state_dict())[:2] == ["acoustic_model.0.0.weight",
                                                 "acoustic_model.0.0.bias"]
    assert sum(p.numel() for p in wave_model.parameters()) == \
        sum(p.numel() for p in model.parameters()) + 250 * 250 + 250 - 10 * 250 * 48 + \
        250 * 250 * 48
