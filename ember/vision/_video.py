"""torchvision.io's video API over PyAV: VideoReader, read_video, read_video_timestamps,
write_video.

PyAV (FFmpeg's libraries) is imported on first use, so `import ember.vision.io` works
without it; install it with `pip install ember[vision]` (or `pip install av`).
Video frames are uint8 tensors (CxHxW from VideoReader, TxHxWxC from read_video, as in
torchvision); audio frames are float32.
"""
from __future__ import annotations

import math
import os
from fractions import Fraction

import numpy as np

import ember
from ember.ir import dtypes

__all__ = ["VideoReader", "read_video", "read_video_timestamps", "write_video"]

# A frame counts as "at or after" a requested time up to this slack, so that a time computed
# in floating point (0.1 * 3) still lands on the frame stamped exactly at it.
_TIME_SLACK = 1e-6


def _av():
    try:
        import av
    except ImportError as err:   # pragma: no cover - depends on the environment
        raise ImportError("ember.vision.io's video functions need PyAV: pip install "
                          "'ember[vision]' (or pip install av)") from err
    return av


def _open(src, name):
    """Open a path, bytes, or a 1-D uint8 tensor of file contents for reading."""
    av = _av()
    if isinstance(src, ember.Tensor):
        if src.dtype != dtypes.uint8 or src.ndim != 1:
            raise ValueError(f"{name}: a tensor source must be the file's bytes as a 1-D "
                             f"uint8 tensor")
        src = src.detach().numpy().tobytes()
    if isinstance(src, (bytes, bytearray)):
        import io
        src = io.BytesIO(bytes(src))
    elif isinstance(src, (str, os.PathLike)):
        if not os.path.exists(os.fspath(src)):
            raise RuntimeError(f"File not found: {os.fspath(src)}")
        src = os.fspath(src)
    try:
        return av.open(src, metadata_errors="ignore")
    except Exception as err:
        raise RuntimeError(f"{name}: could not open the video: {err}") from err


def _parse_stream(stream: str):
    """'video' -> ('video', 0); 'audio:1' -> ('audio', 1), as torchvision's stream strings."""
    kind, _, index = stream.partition(":")
    if kind not in ("video", "audio"):
        raise ValueError(f"Stream type '{kind}' is not supported; use 'video' or 'audio' "
                         f"(optionally with ':<index>')")
    try:
        return kind, int(index) if index else 0
    except ValueError:
        raise ValueError(f"Invalid stream index in '{stream}'") from None


def _frame_seconds(frame) -> float:
    if frame.pts is None:
        return float(frame.time) if frame.time is not None else 0.0
    return float(frame.pts * frame.time_base)


def _video_data(frame) -> np.ndarray:
    """A decoded video frame as uint8 HxWx3 RGB."""
    return frame.to_ndarray(format="rgb24")


def _audio_data(frame) -> np.ndarray:
    """A decoded audio frame as float32 [samples, channels] (PyAV gives planar formats as
    [channels, samples] and packed ones as [1, samples * channels])."""
    arr = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if frame.format.is_planar:
        arr = arr.T
    else:
        arr = arr.reshape(-1, channels)
    arr = arr.astype(np.float32)
    if frame.format.name.startswith(("s16", "s32", "u8")):   # integer PCM -> [-1, 1)
        bits = {"s16": 16, "s32": 32, "u8": 8}[frame.format.name[:3]]
        arr = (arr - 128.0 if bits == 8 else arr) / float(2 ** (bits - 1))
    return arr


class VideoReader:
    """Frame-by-frame reading of one stream of a video file (torchvision.io.VideoReader).

    `next(reader)` returns {"data": frame, "pts": seconds}: uint8 CxHxW (RGB) for a video
    stream, float32 [samples, channels] for an audio stream. `seek(t)` is precise: the next
    frame is the one stamped at t, or the first one after it.
    """

    def __init__(self, src, stream: str = "video", num_threads: int = 0):
        self._container = _open(src, "VideoReader")
        self._num_threads = num_threads
        self._stream = None
        self._frames = None
        if not self.set_current_stream(stream):
            raise RuntimeError(f"VideoReader: the file has no stream '{stream}'")

    # --- stream selection -----------------------------------------------------------
    def set_current_stream(self, stream: str) -> bool:
        """Switch to 'video', 'audio', 'video:1', ...; False (nothing changed) if absent."""
        kind, index = _parse_stream(stream)
        streams = getattr(self._container.streams, kind)
        if index >= len(streams):
            return False
        self._stream = streams[index]
        if self._num_threads and kind == "video":
            self._stream.codec_context.thread_count = self._num_threads
        self._restart(seek_pts=None)
        return True

    def _restart(self, seek_pts):
        if seek_pts is not None:
            self._container.seek(seek_pts, backward=True, any_frame=False,
                                 stream=self._stream)
        elif self._frames is not None:
            self._container.seek(0, backward=True, any_frame=False, stream=self._stream)
        self._frames = self._container.decode(self._stream)
        self._pending = None

    # --- iteration ------------------------------------------------------------------
    def __iter__(self):
        return self

    def __next__(self):
        if self._pending is not None:
            frame, self._pending = self._pending, None
        else:
            frame = next(self._frames)        # StopIteration ends the stream, as wanted
        return {"data": self._to_tensor(frame), "pts": _frame_seconds(frame)}

    def _to_tensor(self, frame):
        if self._stream.type == "video":
            return ember.from_numpy(np.ascontiguousarray(_video_data(frame).transpose(2, 0, 1)))
        return ember.from_numpy(np.ascontiguousarray(_audio_data(frame)))

    def seek(self, time_s: float, keyframes_only: bool = False) -> "VideoReader":
        """Position before the frame at time_s (or the first after it). With
        keyframes_only, position at the last keyframe at or before time_s instead."""
        time_base = self._stream.time_base
        target = int(math.floor(Fraction(time_s) / time_base)) if time_base else 0
        self._restart(seek_pts=max(target, 0))
        if keyframes_only:
            return self
        for frame in self._frames:
            if _frame_seconds(frame) >= time_s - _TIME_SLACK:
                self._pending = frame
                break
        return self

    # --- metadata -------------------------------------------------------------------
    def get_metadata(self) -> dict:
        """{'video': {'duration': [...], 'fps': [...]}, 'audio': {'duration': [...],
        'framerate': [...]}}, one entry per stream of that type, durations in seconds."""
        meta = {}
        for stream in self._container.streams:
            if stream.type not in ("video", "audio"):
                continue
            rate_key = "fps" if stream.type == "video" else "framerate"
            entry = meta.setdefault(stream.type, {"duration": [], rate_key: []})
            entry["duration"].append(_stream_duration(stream, self._container))
            rate = stream.average_rate if stream.type == "video" else stream.sample_rate
            entry[rate_key].append(float(rate) if rate else 0.0)
        return meta

    def close(self):
        self._container.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _stream_duration(stream, container) -> float:
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:             # microseconds (AV_TIME_BASE)
        return container.duration / 1e6
    return 0.0


# --- whole-file reading -----------------------------------------------------------------
def _to_stream_time(value, stream, pts_unit):
    """A bound in seconds ('sec') or in the stream's time base ('pts') as seconds."""
    if value is None or value == math.inf:
        return math.inf
    if pts_unit == "sec":
        return float(value)
    return float(value * stream.time_base)


def _check_pts_unit(pts_unit):
    if pts_unit not in ("pts", "sec"):
        raise ValueError(f"pts_unit should be 'pts' or 'sec', got '{pts_unit}'")


def read_video(filename, start_pts=0, end_pts=None, pts_unit: str = "pts",
               output_format: str = "THWC"):
    """(video uint8 [T, H, W, C] or [T, C, H, W], audio float32 [channels, samples],
    info {'video_fps', 'audio_fps'}) for the frames stamped in [start_pts, end_pts]."""
    _check_pts_unit(pts_unit)
    output_format = output_format.upper()
    if output_format not in ("THWC", "TCHW"):
        raise ValueError(f"output_format should be either 'THWC' or 'TCHW', got "
                         f"{output_format}.")
    if end_pts is not None and end_pts < start_pts:
        raise ValueError(f"end_pts should be larger than start_pts, got start_pts={start_pts} "
                         f"and end_pts={end_pts}")
    container = _open(filename, "read_video")
    info, frames, audio = {}, [], []
    with container:
        if container.streams.video:
            stream = container.streams.video[0]
            info["video_fps"] = float(stream.average_rate) if stream.average_rate else 0.0
            frames = _frames_between(container, stream, start_pts, end_pts, pts_unit,
                                     _video_data)
        if container.streams.audio:
            stream = container.streams.audio[0]
            info["audio_fps"] = stream.sample_rate
            audio = _audio_between(container, stream, start_pts, end_pts, pts_unit)
    if frames:
        video = np.stack(frames)
    else:
        video = np.zeros((0, 1, 1, 3), np.uint8)
    if output_format == "TCHW":
        video = video.transpose(0, 3, 1, 2)
    aframes = np.concatenate(audio).T if audio else np.zeros((1, 0), np.float32)
    return (ember.from_numpy(np.ascontiguousarray(video)),
            ember.from_numpy(np.ascontiguousarray(aframes)), info)


def _frames_between(container, stream, start_pts, end_pts, pts_unit, convert):
    start = _to_stream_time(start_pts, stream, pts_unit)
    end = _to_stream_time(end_pts, stream, pts_unit)
    container.seek(0, stream=stream)
    out = []
    for frame in container.decode(stream):
        t = _frame_seconds(frame)
        if t > end + _TIME_SLACK:
            break
        if t >= start - _TIME_SLACK:
            out.append(convert(frame))
    return out


def _audio_between(container, stream, start_pts, end_pts, pts_unit):
    """The audio samples whose own times (frame start + k / rate) lie in [start, end]."""
    start = _to_stream_time(start_pts, stream, pts_unit)
    end = _to_stream_time(end_pts, stream, pts_unit)
    container.seek(0, stream=stream)
    out = []
    for frame in container.decode(stream):
        t0 = _frame_seconds(frame)
        if t0 > end + _TIME_SLACK:
            break
        data = _audio_data(frame)
        times = t0 + np.arange(len(data)) / float(frame.sample_rate)
        keep = (times >= start - _TIME_SLACK) & (times <= end + _TIME_SLACK)
        if keep.any():
            out.append(data[keep])
    return out


def read_video_timestamps(filename, pts_unit: str = "pts"):
    """(the video stream's frame timestamps, in its time base or in seconds, and its fps)."""
    _check_pts_unit(pts_unit)
    with _open(filename, "read_video_timestamps") as container:
        if not container.streams.video:
            return [], None
        stream = container.streams.video[0]
        pts = [packet.pts for packet in container.demux(stream)
               if packet.pts is not None]
        pts.sort()
        fps = float(stream.average_rate) if stream.average_rate else None
    if pts_unit == "sec":
        pts = [Fraction(p) * stream.time_base for p in pts]
    return pts, fps


# --- writing ----------------------------------------------------------------------------
def write_video(filename, video_array, fps: float, video_codec: str = "libx264",
                options=None, audio_array=None, audio_fps=None, audio_codec=None,
                audio_options=None) -> None:
    """Encode a uint8 [T, H, W, C] (C = 3, RGB) tensor as a video file; optionally an
    audio track from a float [channels, samples] tensor."""
    av = _av()
    frames = _as_numpy(video_array, "write_video").astype(np.uint8)
    if frames.ndim != 4 or frames.shape[3] != 3:
        raise ValueError(f"write_video: expected a [T, H, W, 3] uint8 tensor, got shape "
                         f"{tuple(frames.shape)}")
    with av.open(os.fspath(filename), mode="w") as container:
        rate = Fraction(fps).limit_denominator(100000) if not isinstance(fps, int) else fps
        stream = container.add_stream(video_codec, rate=rate)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p" if video_codec != "libx264rgb" else "rgb24"
        stream.options = dict(options or {})
        audio_stream = None
        if audio_array is not None:
            audio_stream = _add_audio_stream(container, audio_array, audio_fps,
                                             audio_codec or "aac", audio_options)
        for img in frames:
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
        if audio_stream is not None:
            _encode_audio(container, audio_stream, audio_array)


def _as_numpy(value, name) -> np.ndarray:
    if isinstance(value, ember.Tensor):
        return value.detach().numpy()
    if hasattr(value, "detach"):      # a tensor of another library
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _add_audio_stream(container, audio_array, audio_fps, audio_codec, audio_options):
    if audio_fps is None:
        raise ValueError("write_video: audio_fps is required with audio_array")
    channels = _as_numpy(audio_array, "write_video").shape[0]
    stream = container.add_stream(audio_codec, rate=int(audio_fps))
    stream.layout = "mono" if channels == 1 else "stereo" if channels == 2 else channels
    stream.options = dict(audio_options or {})
    return stream


def _encode_audio(container, stream, audio_array):
    av = _av()
    samples = _as_numpy(audio_array, "write_video").astype(np.float32)
    fmt = stream.codec_context.format.name if stream.codec_context.format else "fltp"
    layout = stream.layout.name
    planar = samples if fmt.endswith("p") else samples.T.reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(planar),
                                       format="fltp" if fmt.endswith("p") else "flt",
                                       layout=layout)
    frame.sample_rate = stream.codec_context.sample_rate
    container.mux(stream.encode(frame))
    container.mux(stream.encode())
