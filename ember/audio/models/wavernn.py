"""WaveRNN (Kalchbrenner et al. 2018) as torchaudio.models.WaveRNN lays it out, so its
state_dict loads: an UpsampleNetwork (a MelResNet over the spectrogram plus stretch-and-
smooth upsampling to the sample rate), then two GRUs and three linear layers giving
per-sample class logits, with the MelResNet's output split into four auxiliary inputs.

`infer` generates a waveform autoregressively, sampling each step from the softmax with
ember's generator.
"""
from __future__ import annotations

import math

import ember
from ember import nn
import ember.nn.functional as F

__all__ = ["WaveRNN", "ResBlock", "MelResNet", "Stretch2d", "UpsampleNetwork"]


class _GRU(nn.Module):
    """One-layer, unidirectional, batch_first GRU with torch's parameter names and gate
    order (r, z, n): the stand-in used only where ember.nn.GRU does not exist yet."""

    def __init__(self, input_size: int, hidden_size: int, batch_first: bool = True):
        super().__init__()
        if not batch_first:
            raise ValueError("WaveRNN's GRU stand-in supports batch_first=True only")
        self.hidden_size = hidden_size
        bound = 1.0 / math.sqrt(hidden_size)
        shapes = {"weight_ih_l0": (3 * hidden_size, input_size),
                  "weight_hh_l0": (3 * hidden_size, hidden_size),
                  "bias_ih_l0": (3 * hidden_size,), "bias_hh_l0": (3 * hidden_size,)}
        for name, shape in shapes.items():
            self.register_parameter(name, nn.Parameter(ember.empty(*shape).uniform_(-bound,
                                                                                   bound)))

    def forward(self, x, h0=None):
        batch, steps = int(x.shape[0]), int(x.shape[1])
        h = ember.zeros(batch, self.hidden_size, dtype=x.dtype) if h0 is None else h0[0]
        gates_in = F.linear(x, self.weight_ih_l0, self.bias_ih_l0).unbind(1)
        outputs = []
        for t in range(steps):
            r_in, z_in, n_in = gates_in[t].chunk(3, dim=-1)
            r_h, z_h, n_h = F.linear(h, self.weight_hh_l0, self.bias_hh_l0).chunk(3, dim=-1)
            r, z = ember.sigmoid(r_in + r_h), ember.sigmoid(z_in + z_h)
            n = ember.tanh(n_in + r * n_h)
            h = (1 - z) * n + z * h
            outputs.append(h)
        return ember.stack(outputs, dim=1), h.unsqueeze(0)


_GRU_CLASS = getattr(nn, "GRU", None) or _GRU


class ResBlock(nn.Module):
    """x + (1x1 conv -> BN -> ReLU -> 1x1 conv -> BN)(x) over [batch, n_freq, time]."""

    def __init__(self, n_freq: int = 128):
        super().__init__()
        self.resblock_model = nn.Sequential(
            nn.Conv1d(n_freq, n_freq, 1, bias=False), nn.BatchNorm1d(n_freq),
            nn.ReLU(inplace=True), nn.Conv1d(n_freq, n_freq, 1, bias=False),
            nn.BatchNorm1d(n_freq))

    def forward(self, specgram):
        return self.resblock_model(specgram) + specgram


class MelResNet(nn.Module):
    """[batch, n_freq, time] -> [batch, n_output, time - kernel_size + 1]: a valid
    convolution, n_res_block ResBlocks, a 1x1 projection."""

    def __init__(self, n_res_block: int = 10, n_freq: int = 128, n_hidden: int = 128,
                 n_output: int = 128, kernel_size: int = 5):
        super().__init__()
        blocks = [ResBlock(n_hidden) for _ in range(n_res_block)]
        self.melresnet_model = nn.Sequential(
            nn.Conv1d(n_freq, n_hidden, kernel_size, bias=False), nn.BatchNorm1d(n_hidden),
            nn.ReLU(inplace=True), *blocks, nn.Conv1d(n_hidden, n_output, 1))

    def forward(self, specgram):
        return self.melresnet_model(specgram)


class Stretch2d(nn.Module):
    """Repeat every element freq_scale times along dim -2 and time_scale times along -1."""

    def __init__(self, time_scale: int, freq_scale: int):
        super().__init__()
        self.freq_scale, self.time_scale = freq_scale, time_scale

    def forward(self, specgram):
        return specgram.repeat_interleave(self.freq_scale, -2).repeat_interleave(
            self.time_scale, -1)


class UpsampleNetwork(nn.Module):
    """Spectrogram [batch, n_freq, n_time] -> (upsampled spectrogram [batch, n_freq,
    (n_time - kernel_size + 1) * total_scale], MelResNet features [batch, n_output, same]).
    Each stage stretches time by its scale and smooths with a box filter of width
    2 * scale + 1 (a learnable conv initialised to the mean); the edges the MelResNet's
    valid convolution drops are cut from the upsampled spectrogram too."""

    def __init__(self, upsample_scales, n_res_block: int = 10, n_freq: int = 128,
                 n_hidden: int = 128, n_output: int = 128, kernel_size: int = 5):
        super().__init__()
        total_scale = math.prod(upsample_scales)
        self.total_scale = total_scale
        self.indent = (kernel_size - 1) // 2 * total_scale
        self.resnet = MelResNet(n_res_block, n_freq, n_hidden, n_output, kernel_size)
        self.resnet_stretch = Stretch2d(total_scale, 1)
        layers = []
        for scale in upsample_scales:
            conv = nn.Conv2d(1, 1, kernel_size=(1, scale * 2 + 1), padding=(0, scale),
                             bias=False)
            with ember.no_grad():
                conv.weight.fill_(1.0 / (scale * 2 + 1))
            layers += [Stretch2d(scale, 1), conv]
        self.upsample_layers = nn.Sequential(*layers)

    def forward(self, specgram):
        features = self.resnet_stretch(self.resnet(specgram).unsqueeze(1)).squeeze(1)
        upsampled = self.upsample_layers(specgram.unsqueeze(1)).squeeze(1)
        length = int(upsampled.shape[-1])
        return upsampled[:, :, self.indent:length - self.indent], features


class WaveRNN(nn.Module):
    """forward(waveform [batch, 1, (n_time - kernel_size + 1) * hop_length],
    specgram [batch, 1, n_freq, n_time]) -> logits [batch, 1, that length, n_classes]
    (teacher forcing: each step sees the previous sample from waveform)."""

    def __init__(self, upsample_scales, n_classes: int, hop_length: int,
                 n_res_block: int = 10, n_rnn: int = 512, n_fc: int = 512,
                 kernel_size: int = 5, n_freq: int = 128, n_hidden: int = 128,
                 n_output: int = 128):
        super().__init__()
        self.kernel_size = kernel_size
        self._pad = (kernel_size - 1 if kernel_size % 2 else kernel_size) // 2
        self.n_rnn = n_rnn
        self.n_aux = n_output // 4
        self.hop_length = hop_length
        self.n_classes = n_classes
        self.n_bits = int(math.log2(n_classes))
        total_scale = math.prod(upsample_scales)
        if total_scale != hop_length:
            raise ValueError(f"Expected: total_scale == hop_length, but found {total_scale} "
                             f"!= {hop_length}")
        self.upsample = UpsampleNetwork(upsample_scales, n_res_block, n_freq, n_hidden,
                                        n_output, kernel_size)
        self.fc = nn.Linear(n_freq + self.n_aux + 1, n_rnn)
        self.rnn1 = _GRU_CLASS(n_rnn, n_rnn, batch_first=True)
        self.rnn2 = _GRU_CLASS(n_rnn + self.n_aux, n_rnn, batch_first=True)
        self.relu1 = nn.ReLU(inplace=True)
        self.relu2 = nn.ReLU(inplace=True)
        self.fc1 = nn.Linear(n_rnn + self.n_aux, n_fc)
        self.fc2 = nn.Linear(n_fc + self.n_aux, n_fc)
        self.fc3 = nn.Linear(n_fc, n_classes)

    def _aux_parts(self, aux):
        """The MelResNet features [batch, time, n_output] as four n_aux-wide slices."""
        return [aux[:, :, self.n_aux * i:self.n_aux * (i + 1)] for i in range(4)]

    def forward(self, waveform, specgram):
        if int(waveform.shape[1]) != 1:
            raise ValueError("Require the input channel of waveform is 1")
        if int(specgram.shape[1]) != 1:
            raise ValueError("Require the input channel of specgram is 1")
        waveform, specgram = waveform.squeeze(1), specgram.squeeze(1)
        batch = int(waveform.shape[0])
        h1 = ember.zeros(1, batch, self.n_rnn, dtype=waveform.dtype)
        h2 = ember.zeros(1, batch, self.n_rnn, dtype=waveform.dtype)
        specgram, aux = self.upsample(specgram)
        specgram, aux = specgram.transpose(1, 2), aux.transpose(1, 2)
        a1, a2, a3, a4 = self._aux_parts(aux)
        x = self.fc(ember.cat([waveform.unsqueeze(-1), specgram, a1], dim=-1))
        out, _ = self.rnn1(x, h1)
        x = out + x
        out, _ = self.rnn2(ember.cat([x, a2], dim=-1), h2)
        x = out + x
        x = self.relu1(self.fc1(ember.cat([x, a3], dim=-1)))
        x = self.relu2(self.fc2(ember.cat([x, a4], dim=-1)))
        return self.fc3(x).unsqueeze(1)

    @ember.no_grad()
    def infer(self, specgram, lengths=None, generator=None):
        """Generate a waveform from specgram [batch, n_freq, n_time] one sample at a time.
        Returns (waveform [batch, 1, n_time * hop_length] of class indices scaled to
        [-1, 1] as 2 * index / (2^n_bits - 1) - 1, lengths * hop_length or None).
        The spectrogram is zero-padded by (kernel_size - 1) // 2 frames on each side so the
        output covers every input frame, as torchaudio's infer does."""
        batch = int(specgram.shape[0])
        specgram = F.pad(specgram, [self._pad, self._pad])
        specgram, aux = self.upsample(specgram)
        if lengths is not None:
            lengths = lengths * self.upsample.total_scale
        specgram, aux = specgram.transpose(1, 2), aux.transpose(1, 2)
        a1, a2, a3, a4 = self._aux_parts(aux)
        rnn1_cell, rnn2_cell = _cell_of(self.rnn1), _cell_of(self.rnn2)
        h1 = ember.zeros(batch, self.n_rnn, dtype=specgram.dtype)
        h2 = ember.zeros(batch, self.n_rnn, dtype=specgram.dtype)
        x = ember.zeros(batch, 1, dtype=specgram.dtype)
        outputs = []
        for i in range(int(specgram.shape[1])):
            inp = self.fc(ember.cat([x, specgram[:, i, :], a1[:, i, :]], dim=1))
            h1 = rnn1_cell(inp, h1)
            inp = inp + h1
            h2 = rnn2_cell(ember.cat([inp, a2[:, i, :]], dim=1), h2)
            inp = inp + h2
            inp = F.relu(self.fc1(ember.cat([inp, a3[:, i, :]], dim=1)))
            inp = F.relu(self.fc2(ember.cat([inp, a4[:, i, :]], dim=1)))
            index = self._sample(F.softmax(self.fc3(inp), dim=1), generator)
            # class index in [0, 2^n_bits - 1] -> sample in [-1, 1]
            x = 2 * index.to(specgram.dtype) / (2 ** self.n_bits - 1.0) - 1.0
            outputs.append(x)
        return ember.cat(outputs, dim=1).unsqueeze(1), lengths

    @staticmethod
    def _sample(probs, generator):
        """One class index per row, drawn from probs [batch, n_classes]."""
        return ember.multinomial(probs, 1, generator=generator)


def _cell_of(gru):
    """One GRU step h' = cell(x, h) with the GRU's own weights (no copies)."""
    def step(x, h):
        r_in, z_in, n_in = F.linear(x, gru.weight_ih_l0, gru.bias_ih_l0).chunk(3, dim=-1)
        r_h, z_h, n_h = F.linear(h, gru.weight_hh_l0, gru.bias_hh_l0).chunk(3, dim=-1)
        r, z = ember.sigmoid(r_in + r_h), ember.sigmoid(z_in + z_h)
        n = ember.tanh(n_in + r * n_h)
        return (1 - z) * n + z * h
    return step
