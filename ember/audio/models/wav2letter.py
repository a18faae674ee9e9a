"""Wav2Letter (Collobert et al. 2016), laid out as torchaudio.models.Wav2Letter: a stack
of 1-D convolutions ending in per-frame class log-probabilities for CTC."""
from __future__ import annotations

from ember import nn
import ember.nn.functional as F

__all__ = ["Wav2Letter"]


def _conv_relu(cin, cout, kernel, stride, padding):
    return [nn.Conv1d(cin, cout, kernel, stride=stride, padding=padding), nn.ReLU(inplace=True)]


class Wav2Letter(nn.Module):
    """(batch, num_features, time) -> (batch, num_classes, frames) log-probabilities.

    input_type "waveform" adds a front conv (kernel 250, stride 160: 10 ms hops at 16 kHz)
    that learns a filter bank from the raw signal; "power_spectrum" and "mfcc" take
    num_features feature channels directly.
    """

    def __init__(self, num_classes: int = 40, input_type: str = "waveform",
                 num_features: int = 1):
        super().__init__()
        if input_type not in ("waveform", "power_spectrum", "mfcc"):
            raise ValueError(f"input_type should be 'waveform', 'power_spectrum' or 'mfcc', "
                             f"got {input_type!r}")
        acoustic_in = 250 if input_type == "waveform" else num_features
        layers = _conv_relu(acoustic_in, 250, 48, 2, 23)
        for _ in range(7):
            layers += _conv_relu(250, 250, 7, 1, 3)
        layers += _conv_relu(250, 2000, 32, 1, 16)
        layers += _conv_relu(2000, 2000, 1, 1, 0)
        layers += _conv_relu(2000, num_classes, 1, 1, 0)
        acoustic_model = nn.Sequential(*layers)
        if input_type == "waveform":
            waveform_model = nn.Sequential(*_conv_relu(num_features, 250, 250, 160, 45))
            self.acoustic_model = nn.Sequential(waveform_model, acoustic_model)
        else:
            self.acoustic_model = acoustic_model

    def forward(self, x):
        return F.log_softmax(self.acoustic_model(x), dim=1)
