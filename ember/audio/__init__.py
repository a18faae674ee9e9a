"""ember.audio: torchaudio's names over ember tensors.

`ember.audio.transforms` (Spectrogram, MelScale, MelSpectrogram, MFCC, AmplitudeToDB,
FrequencyMasking, TimeMasking), `ember.audio.functional`, and load/save/info for WAV
files through the standard library.
"""
from . import functional, models, transforms  # noqa: F401
from ._wav import AudioMetaData, info, load, save  # noqa: F401
