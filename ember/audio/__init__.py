"""ember.audio: torchaudio's names over ember tensors.

`ember.audio.transforms` (spectral transforms, masks, filters and effects, beamforming),
`ember.audio.functional` (torchaudio.functional's flat namespace: spectral functions,
lfilter and the biquads, features, vad, beamforming), `ember.audio.models`, and
load/save/info for WAV files through the standard library (docs/vision_audio.md).
"""
from . import functional, models, transforms  # noqa: F401
from ._wav import AudioMetaData, info, load, save  # noqa: F401
