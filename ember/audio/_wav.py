"""ember.audio.load / save / info for WAV files, with the standard library only; other
formats (FLAC, ...) are handed to _soundfile.py.

PCM (8-bit unsigned, 16, 24 and 32-bit signed) and IEEE float (32, 64-bit) WAVE files,
including WAVE_FORMAT_EXTENSIBLE headers. Reading normalizes integers to float32 in
[-1, 1) as torchaudio does (divide by 2^(bits-1); 8-bit is offset by 128 first).
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import numpy as np

import ember
from ember.ir import dtypes

__all__ = ["load", "save", "info", "AudioMetaData"]

_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE


@dataclass
class AudioMetaData:
    sample_rate: int
    num_frames: int
    num_channels: int
    bits_per_sample: int
    encoding: str


def _read_chunks(path):
    with open(os.fspath(path), "rb") as f:
        data = f.read()
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise RuntimeError(f"Failed to open the input \"{path}\": not a RIFF/WAVE file "
                           f"(ember.audio reads WAV only)")
    chunks, pos = {}, 12
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        chunks.setdefault(cid, data[pos + 8:pos + 8 + size])
        pos += 8 + size + (size & 1)
    if b"fmt " not in chunks or b"data" not in chunks:
        raise RuntimeError(f"Failed to open the input \"{path}\": missing fmt or data chunk")
    return chunks


def _format(fmt: bytes):
    tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == _EXTENSIBLE and len(fmt) >= 26:
        tag = struct.unpack("<H", fmt[24:26])[0]     # first two bytes of the sub-format GUID
    if tag not in (_PCM, _FLOAT):
        raise RuntimeError(f"Unsupported WAV encoding (format tag {tag}); ember.audio reads "
                           f"PCM and IEEE float WAV")
    return tag, channels, rate, bits


def _encoding(tag, bits):
    if tag == _FLOAT:
        return "PCM_F"
    return "PCM_U" if bits == 8 else "PCM_S"


def _is_wav(uri) -> bool:
    """A RIFF/WAVE header, or a .wav name (so a broken .wav file gets the WAV error)."""
    if os.path.splitext(os.fspath(uri))[1].lower() in (".wav", ".wave"):
        return True
    with open(os.fspath(uri), "rb") as f:
        head = f.read(12)
    return head[:4] == b"RIFF" and head[8:12] == b"WAVE"


def _other_format(uri, format) -> bool:
    """True when save should not write WAV: a format other than wav, or (no format) a
    file name whose extension is not .wav."""
    if format is not None:
        return str(format).lower() not in ("wav", "wave")
    ext = os.path.splitext(os.fspath(uri))[1].lower()
    return ext not in ("", ".wav", ".wave")


def info(uri) -> AudioMetaData:
    if not _is_wav(uri):
        from . import _soundfile
        return _soundfile.info(uri)
    chunks = _read_chunks(uri)
    tag, channels, rate, bits = _format(chunks[b"fmt "])
    frames = len(chunks[b"data"]) // (channels * bits // 8)
    return AudioMetaData(rate, frames, channels, bits, _encoding(tag, bits))


def _decode(raw: bytes, tag: int, bits: int, normalize: bool) -> np.ndarray:
    if tag == _FLOAT:
        return np.frombuffer(raw, dtype="<f4" if bits == 32 else "<f8").astype(np.float32)
    if bits == 8:
        ints = np.frombuffer(raw, dtype=np.uint8)
        return (ints.astype(np.float32) - 128.0) / 128.0 if normalize else ints
    if bits == 24:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints = (b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16))
        ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints).astype(np.int32)
        return ints.astype(np.float32) / float(1 << 23) if normalize else ints
    ints = np.frombuffer(raw, dtype={16: "<i2", 32: "<i4"}[bits])
    return (ints.astype(np.float64) / float(1 << (bits - 1))).astype(np.float32) \
        if normalize else ints.astype(ints.dtype.newbyteorder("="))


def load(uri, frame_offset: int = 0, num_frames: int = -1, normalize: bool = True,
         channels_first: bool = True, format=None, buffer_size: int = 4096, backend=None):
    """(waveform, sample_rate): [channels, frames] float32 in [-1, 1) (normalize=True),
    or the file's integer samples (normalize=False, integer WAV only). Formats other than
    WAV (FLAC, ...) load through soundfile as float32."""
    if not _is_wav(uri):
        from . import _soundfile
        return _soundfile.load(uri, frame_offset, num_frames, channels_first)
    chunks = _read_chunks(uri)
    tag, channels, rate, bits = _format(chunks[b"fmt "])
    samples = _decode(chunks[b"data"], tag, bits, normalize)
    frames = samples[:len(samples) // channels * channels].reshape(-1, channels)
    end = None if num_frames < 0 else frame_offset + num_frames
    frames = np.ascontiguousarray(frames[frame_offset:end])
    return ember.from_numpy(frames.T.copy() if channels_first else frames), rate


def _encode(arr: np.ndarray, encoding: str, bits: int) -> bytes:
    if encoding == "PCM_F":
        return arr.astype("<f4" if bits == 32 else "<f8").tobytes()
    if arr.dtype.kind == "f":
        scale = float(1 << (bits - 1))
        arr = np.clip(np.round(arr.astype(np.float64) * scale), -scale, scale - 1)
        if bits == 8:
            arr = arr + 128
    if bits == 8:
        return arr.astype(np.uint8).tobytes()
    if bits == 24:
        ints = arr.astype(np.int64) & 0xFFFFFF
        return np.stack([ints & 0xFF, (ints >> 8) & 0xFF, (ints >> 16) & 0xFF],
                        -1).astype(np.uint8).tobytes()
    return arr.astype("<i2" if bits == 16 else "<i4").tobytes()


def _default_encoding(dtype):
    return {dtypes.float32: ("PCM_F", 32), dtypes.float64: ("PCM_F", 64),
            dtypes.int32: ("PCM_S", 32), dtypes.int16: ("PCM_S", 16),
            dtypes.uint8: ("PCM_U", 8)}.get(dtype, ("PCM_F", 32))


def save(uri, src, sample_rate: int, channels_first: bool = True, format=None,
         encoding: str | None = None, bits_per_sample: int | None = None,
         buffer_size: int = 4096, backend=None, compression=None) -> None:
    """Write a [channels, frames] (or [frames, channels]) tensor as a WAV file (or, by
    format or file extension, FLAC/... through soundfile: see _soundfile.save).

    The default encoding follows the dtype, as torchaudio's: float32 -> 32-bit float,
    int16 -> 16-bit PCM, ... ; floats written as PCM are scaled by 2^(bits-1) and clipped.
    """
    if src.ndim != 2:
        raise ValueError(f"Expected 2D Tensor, got {src.ndim}D.")
    arr = src.detach().numpy()
    arr = arr.T if channels_first else arr                         # [frames, channels]
    if _other_format(uri, format):
        from . import _soundfile
        fmt = format or os.path.splitext(os.fspath(uri))[1][1:]
        _soundfile.save(uri, np.ascontiguousarray(arr), sample_rate, fmt, encoding,
                        bits_per_sample, compression)
        return
    default_enc, default_bits = _default_encoding(src.dtype)
    encoding = encoding or default_enc
    bits = bits_per_sample or (default_bits if encoding == default_enc else
                               {"PCM_F": 32, "PCM_S": 16, "PCM_U": 8}[encoding])
    if (encoding, bits) not in {("PCM_F", 32), ("PCM_F", 64), ("PCM_S", 16), ("PCM_S", 24),
                                ("PCM_S", 32), ("PCM_U", 8)}:
        raise ValueError(f"save: unsupported encoding {encoding} with {bits} bits per sample")
    channels = arr.shape[1]
    payload = _encode(np.ascontiguousarray(arr).reshape(-1), encoding, bits)
    tag = _FLOAT if encoding == "PCM_F" else _PCM
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, int(sample_rate), int(sample_rate) * block,
                      block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    if tag == _FLOAT:   # non-PCM formats carry a fact chunk with the frame count
        body += b"fact" + struct.pack("<II", 4, arr.shape[0])
    body += b"data" + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) & 1
                                                                    else b"")
    with open(os.fspath(uri), "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", len(body)) + body)
