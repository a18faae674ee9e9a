"""ember.audio.load / save / info for the formats libsndfile reads and writes (FLAC, OGG
Vorbis, AIFF, ...) through the soundfile package (`pip install ember[audio]`), imported on
first use. WAV stays on the standard-library reader in _wav.py.

As in torchaudio, compressed formats always load as float32 in [-1, 1) (normalize applies
to integer WAV only); integer PCM is scaled by 2^(bits-1).
"""
from __future__ import annotations

import os

import numpy as np

import ember

from ._wav import AudioMetaData

# libsndfile subtypes for (encoding, bits_per_sample); FLAC stores integer PCM only
_SUBTYPES = {("PCM_S", 8): "PCM_S8", ("PCM_S", 16): "PCM_16", ("PCM_S", 24): "PCM_24"}
_BITS = {"PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32, "FLOAT": 32,
         "DOUBLE": 64}


def _soundfile():
    try:
        import soundfile
    except ImportError as err:   # pragma: no cover - depends on the environment
        raise ImportError("ember.audio reads and writes formats other than WAV (FLAC, ...) "
                          "through soundfile: pip install 'ember[audio]' (or pip install "
                          "soundfile)") from err
    return soundfile


def _open_error(uri, err):
    return RuntimeError(f"Failed to open the input \"{os.fspath(uri)}\": {err}")


def info(uri) -> AudioMetaData:
    sf = _soundfile()
    try:
        meta = sf.info(os.fspath(uri))
    except Exception as err:
        raise _open_error(uri, err) from err
    return AudioMetaData(meta.samplerate, meta.frames, meta.channels,
                         _BITS.get(meta.subtype, 0), meta.format)


def load(uri, frame_offset: int = 0, num_frames: int = -1, channels_first: bool = True):
    """(waveform float32 [channels, frames], sample_rate)."""
    sf = _soundfile()
    try:
        data, rate = sf.read(os.fspath(uri), frames=num_frames, start=frame_offset,
                             dtype="float32", always_2d=True)
    except Exception as err:
        raise _open_error(uri, err) from err
    data = np.ascontiguousarray(data.T if channels_first else data)
    return ember.from_numpy(data), rate


def save(uri, arr: np.ndarray, sample_rate: int, format: str, encoding, bits_per_sample,
         compression=None) -> None:
    """Write arr [frames, channels] in format ('flac', 'ogg', ...). FLAC: 16-bit PCM by
    default, bits_per_sample 8, 16 or 24; floats are scaled by 2^(bits-1) and clipped;
    compression is FLAC's level 0-8 (libsndfile takes it as a fraction of 8)."""
    sf = _soundfile()
    fmt = format.upper()
    subtype = None
    if fmt == "FLAC":
        bits = bits_per_sample or 16
        if encoding not in (None, "PCM_S") or (("PCM_S", bits) not in _SUBTYPES):
            raise ValueError(f"save: FLAC stores signed integer PCM of 8, 16 or 24 bits; got "
                             f"encoding {encoding} with {bits} bits per sample")
        subtype = _SUBTYPES[("PCM_S", bits)]
    level = None
    if compression is not None:
        if fmt == "FLAC" and not 0 <= compression <= 8:
            raise ValueError(f"save: FLAC compression level should be in 0..8, got "
                             f"{compression}")
        level = compression / 8.0 if fmt == "FLAC" else float(compression)
    if arr.dtype.kind == "f":
        arr = np.clip(arr, -1.0, 1.0)
    try:
        sf.write(os.fspath(uri), arr, int(sample_rate), format=fmt, subtype=subtype,
                 compression_level=level)
    except Exception as err:
        raise RuntimeError(f"save: could not write \"{os.fspath(uri)}\" as {format}: "
                           f"{err}") from err
