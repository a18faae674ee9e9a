"""ember.audio.models: decoders for acoustic models' outputs (models themselves: later)."""
from .decoder import ctc_greedy_decode, CTCGreedyDecoder  # noqa: F401
