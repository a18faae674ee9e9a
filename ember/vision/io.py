"""torchvision.io's image functions: JPEG/PNG bytes <-> uint8 CxHxW ember tensors
(the video functions, over PyAV, live in _video.py and are re-exported here).

The codec is Pillow (libjpeg-turbo and zlib underneath), imported on first use so that
`import ember.vision` works without it; install it with `pip install ember[vision]`.
Encoded data travels as 1-D uint8 tensors, as in torchvision.
"""
from __future__ import annotations

import enum
import io as _io
import os

import numpy as np

import ember
from ember.ir import dtypes


class ImageReadMode(enum.Enum):
    """How decoded pixels are converted; UNCHANGED keeps the file's channels."""
    UNCHANGED = 0
    GRAY = 1
    GRAY_ALPHA = 2
    RGB = 3
    RGB_ALPHA = 4
    RGBA = 4


_PIL_MODES = {ImageReadMode.GRAY: "L", ImageReadMode.GRAY_ALPHA: "LA",
              ImageReadMode.RGB: "RGB", ImageReadMode.RGB_ALPHA: "RGBA"}


def _pil():
    try:
        from PIL import Image
    except ImportError as err:   # pragma: no cover - depends on the environment
        raise ImportError("ember.vision.io needs Pillow: pip install 'ember[vision]' "
                          "(or pip install Pillow)") from err
    return Image


def _read_mode(mode) -> ImageReadMode:
    if isinstance(mode, str):
        key = mode.upper()
        if key not in ImageReadMode.__members__:
            raise ValueError(f"Unknown image read mode '{mode}'")
        return ImageReadMode[key]
    return ImageReadMode(mode)


# --- files <-> bytes --------------------------------------------------------------------
def read_file(path) -> ember.Tensor:
    """The file's bytes as a 1-D uint8 tensor."""
    with open(os.fspath(path), "rb") as f:
        data = f.read()
    if not data:
        raise RuntimeError(f"read_file: file {path} is empty")
    return ember.from_numpy(np.frombuffer(data, dtype=np.uint8).copy())


def write_file(filename, data) -> None:
    """Write a 1-D uint8 tensor's bytes to filename."""
    arr = _bytes_of(data, "write_file")
    with open(os.fspath(filename), "wb") as f:
        f.write(arr.tobytes())


def _bytes_of(data, name) -> np.ndarray:
    if not isinstance(data, ember.Tensor):
        raise TypeError(f"{name}: expected a Tensor, got {type(data).__name__}")
    if data.dtype != dtypes.uint8 or data.ndim != 1:
        raise RuntimeError(f"{name}: expected a 1 dimensional uint8 tensor, got "
                           f"{data.ndim} dims and dtype {data.dtype}")
    return data.detach().numpy()


# --- decoding ---------------------------------------------------------------------------
def _decode(data, mode, name, expect=None, exif=False):
    Image = _pil()
    raw = _bytes_of(data, name)
    try:
        img = Image.open(_io.BytesIO(raw.tobytes()))
        img.load()
    except Exception as err:
        raise RuntimeError(f"{name}: could not decode the image: {err}") from err
    if expect is not None and img.format != expect:
        raise RuntimeError(f"{name}: expected a {expect} image, got "
                           f"{img.format or 'unknown format'}")
    if exif:   # rotate/flip as the EXIF Orientation tag says
        from PIL import ImageOps
        img = ImageOps.exif_transpose(img)
    mode = _read_mode(mode)
    if mode != ImageReadMode.UNCHANGED:
        img = img.convert(_PIL_MODES[mode])
    elif img.mode not in ("L", "LA", "RGB", "RGBA"):
        # palette, 1-bit, CMYK, 16-bit: decode to the nearest 8-bit layout
        img = img.convert("RGBA" if "A" in img.getbands() or "transparency" in img.info
                          else ("L" if img.mode in ("1", "I", "I;16", "F") else "RGB"))
    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return ember.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def _maybe_list(data, fn):
    if isinstance(data, (list, tuple)):
        return [fn(d) for d in data]
    return fn(data)


def decode_jpeg(input, mode=ImageReadMode.UNCHANGED, device="cpu", apply_exif_orientation=False):
    """JPEG bytes (1-D uint8 tensor, or a list of them) -> uint8 CxHxW tensor(s)."""
    def one(data):
        out = _decode(data, mode, "decode_jpeg", "JPEG", apply_exif_orientation)
        return out.to(device) if str(device) != "cpu" else out
    return _maybe_list(input, one)


def decode_png(input, mode=ImageReadMode.UNCHANGED, apply_exif_orientation=False):
    """PNG bytes (1-D uint8 tensor) -> uint8 CxHxW tensor."""
    return _decode(input, mode, "decode_png", "PNG", apply_exif_orientation)


def decode_image(input, mode=ImageReadMode.UNCHANGED, apply_exif_orientation=False):
    """Any format Pillow reads (JPEG, PNG, GIF's first frame, WEBP, ...); a str or path
    argument is read from disk first."""
    if isinstance(input, (str, os.PathLike)):
        input = read_file(input)
    return _decode(input, mode, "decode_image", exif=apply_exif_orientation)


def read_image(path, mode=ImageReadMode.UNCHANGED, apply_exif_orientation=False):
    """Read a JPEG/PNG/... file into a uint8 CxHxW tensor."""
    return _decode(read_file(path), mode, "read_image", exif=apply_exif_orientation)


# --- encoding ---------------------------------------------------------------------------
def _to_pil(input, name):
    Image = _pil()
    if not isinstance(input, ember.Tensor):
        raise TypeError(f"{name}: expected a Tensor, got {type(input).__name__}")
    if input.dtype != dtypes.uint8:
        raise RuntimeError("Input tensor dtype should be uint8")
    if input.ndim != 3:
        raise RuntimeError(f"Input data should be a 3-dimensional tensor, got {input.ndim} "
                           f"dims")
    arr = np.ascontiguousarray(input.detach().numpy().transpose(1, 2, 0))
    channels = arr.shape[2]
    return Image, arr, channels


def encode_jpeg(input, quality: int = 75):
    """uint8 CxHxW tensor (C = 1 or 3), or a list of them -> JPEG bytes as 1-D uint8."""
    if not 1 <= quality <= 100:
        raise ValueError("Image quality should be a positive number between 1 and 100")

    def one(img):
        Image, arr, channels = _to_pil(img, "encode_jpeg")
        if channels not in (1, 3):
            raise RuntimeError(f"The number of channels should be 1 or 3, got: {channels}")
        pil = Image.fromarray(arr[:, :, 0] if channels == 1 else arr)
        buf = _io.BytesIO()
        pil.save(buf, format="JPEG", quality=int(quality))
        return ember.from_numpy(np.frombuffer(buf.getvalue(), dtype=np.uint8).copy())
    if isinstance(input, (list, tuple)) and not input:
        raise ValueError("encode_jpeg requires at least one input tensor when a list is "
                         "passed")
    return _maybe_list(input, one)


def encode_png(input, compression_level: int = 6):
    """uint8 CxHxW tensor (C = 1, 2, 3 or 4) -> PNG bytes as a 1-D uint8 tensor."""
    if not 0 <= compression_level <= 9:
        raise RuntimeError("Compression level should be between 0 and 9")
    Image, arr, channels = _to_pil(input, "encode_png")
    modes = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
    if channels not in modes:
        raise RuntimeError(f"The number of channels should be 1, 2, 3 or 4, got: {channels}")
    pil = Image.fromarray(arr[:, :, 0] if channels == 1 else arr)   # mode from the shape
    buf = _io.BytesIO()
    pil.save(buf, format="PNG", compress_level=int(compression_level))
    return ember.from_numpy(np.frombuffer(buf.getvalue(), dtype=np.uint8).copy())


def write_jpeg(input, filename, quality: int = 75) -> None:
    write_file(filename, encode_jpeg(input, quality))


def write_png(input, filename, compression_level: int = 6) -> None:
    write_file(filename, encode_png(input, compression_level))


# --- video (PyAV) -----------------------------------------------------------------------
from ._video import (VideoReader, read_video, read_video_timestamps,  # noqa: E402,F401
                     write_video)
