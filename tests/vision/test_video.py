"""ember.vision.io's video API (VideoReader, read_video, write_video) against what PyAV
itself decodes from the same file."""
import numpy as np
import pytest

import ember
from ember.vision import io as vio

av = pytest.importorskip("av", reason="PyAV is not installed (pip install av)")

T, H, W, FPS = 12, 24, 32, 10


def _synthetic_frames():
    frames = np.zeros((T, H, W, 3), np.uint8)
    for i in range(T):
        frames[i, ..., 0] = i * 20
        frames[i, :, i:i + 4, 1] = 255
    return frames


def _write_with_pyav(path, codec="mpeg4"):
    """Encode the synthetic clip with PyAV alone (no ember involved)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"g": "4"}          # a keyframe every 4 frames, for keyframe seeks
        for img in _synthetic_frames():
            container.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        container.mux(stream.encode())


def _pyav_decode(path):
    with av.open(str(path)) as container:
        return [(float(f.pts * f.time_base), f.to_ndarray(format="rgb24"), f.key_frame)
                for f in container.decode(video=0)]


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "clip.mp4"
    _write_with_pyav(path)
    return path


def test_video_reader_frames_equal_pyav(clip):
    expected = _pyav_decode(clip)
    reader = vio.VideoReader(str(clip), "video")
    got = list(reader)
    assert len(got) == len(expected) == T
    for frame, (pts, pixels, _) in zip(got, expected):
        assert frame["data"].dtype == ember.uint8 and tuple(frame["data"].shape) == (3, H, W)
        assert frame["pts"] == pytest.approx(pts)
        np.testing.assert_array_equal(frame["data"].numpy().transpose(1, 2, 0), pixels)
    with pytest.raises(StopIteration):
        next(reader)
    meta = reader.get_metadata()
    assert meta["video"]["fps"] == [pytest.approx(FPS)]
    assert meta["video"]["duration"][0] == pytest.approx(T / FPS, abs=0.11)


def test_video_reader_seek(clip):
    expected = _pyav_decode(clip)
    reader = vio.VideoReader(clip)
    # precise seek: the frame at t, or the first one after it
    for t, index in [(0.3, 3), (0.45, 5), (0.0, 0), (0.1 * 3, 3)]:
        frame = next(reader.seek(t))
        assert frame["pts"] == pytest.approx(expected[index][0])
        np.testing.assert_array_equal(frame["data"].numpy().transpose(1, 2, 0),
                                      expected[index][1])
    # keyframe seek: the last keyframe at or before t
    keyframe_times = [pts for pts, _, key in expected if key]
    frame = next(reader.seek(0.65, keyframes_only=True))
    assert frame["pts"] == pytest.approx(max(t for t in keyframe_times if t <= 0.65))
    assert next(reader.seek(5.0), None) is None        # past the end: exhausted


def test_video_reader_bytes_source_and_bad_stream(clip):
    data = vio.read_file(clip)
    assert len(list(vio.VideoReader(data))) == T
    with pytest.raises(RuntimeError, match="no stream 'audio'"):
        vio.VideoReader(clip, "audio")
    with pytest.raises(ValueError, match="not supported"):
        vio.VideoReader(clip, "subtitles")


def test_read_video_range_and_timestamps(clip):
    expected = _pyav_decode(clip)
    video, audio, info = vio.read_video(str(clip), 0.2, 0.5, pts_unit="sec")
    assert info == {"video_fps": pytest.approx(FPS)}
    assert tuple(video.shape) == (4, H, W, 3) and tuple(audio.shape) == (1, 0)
    np.testing.assert_array_equal(video.numpy(), np.stack([e[1] for e in expected[2:6]]))
    tchw, _, _ = vio.read_video(str(clip), output_format="TCHW")
    assert tuple(tchw.shape) == (T, 3, H, W)
    pts, fps = vio.read_video_timestamps(str(clip), pts_unit="sec")
    assert [float(p) for p in pts] == pytest.approx([e[0] for e in expected])
    assert fps == pytest.approx(FPS)


def test_write_video_then_read(tmp_path):
    frames = _synthetic_frames()
    path = tmp_path / "w.mp4"
    audio = np.sin(np.linspace(0, 200, 8000)).astype(np.float32)[None].repeat(2, 0)
    vio.write_video(str(path), ember.tensor(frames), fps=FPS, video_codec="mpeg4",
                    options={"qscale": "2"}, audio_array=ember.tensor(audio), audio_fps=8000,
                    audio_codec="aac")
    decoded = _pyav_decode(path)
    assert len(decoded) == T
    # lossy codec: close to the source frames, and equal to PyAV's decode of the file
    assert np.abs(np.stack([d[1] for d in decoded]).astype(int) - frames).mean() < 12
    video, aframes, info = vio.read_video(str(path), pts_unit="sec")
    np.testing.assert_array_equal(video.numpy(), np.stack([d[1] for d in decoded]))
    assert info["audio_fps"] == 8000 and aframes.shape[0] == 2
    audio_reader = vio.VideoReader(str(path), "audio")
    first = next(audio_reader)
    assert first["data"].dtype == ember.float32 and first["data"].shape[1] == 2
