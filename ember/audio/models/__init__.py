"""ember.audio.models: torchaudio.models' ConvTasNet, Wav2Letter, WaveRNN, a greedy CTC decoder."""
from .conv_tasnet import ConvTasNet, conv_tasnet_base  # noqa: F401
from .decoder import ctc_greedy_decode, CTCGreedyDecoder  # noqa: F401
from .wav2letter import Wav2Letter  # noqa: F401
from .wavernn import WaveRNN  # noqa: F401
