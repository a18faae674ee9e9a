"""ember.vision.io: decode files Pillow wrote to the pixels Pillow reads, round-trips."""
import numpy as np
import pytest

import ember
from ember.vision import io as vio

Image = pytest.importorskip("PIL.Image")


@pytest.fixture
def rgb():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (3, 13, 17)).astype(np.uint8)


def _pil_pixels(path, mode=None):
    img = Image.open(path)
    if mode:
        img = img.convert(mode)
    arr = np.asarray(img)
    return (arr[:, :, None] if arr.ndim == 2 else arr).transpose(2, 0, 1)


@pytest.mark.parametrize("channels,fmt", [(3, "PNG"), (1, "PNG"), (4, "PNG"), (2, "PNG"),
                                          (3, "JPEG"), (1, "JPEG")])
def test_decode_files_pillow_wrote(tmp_path, rgb, channels, fmt):
    rng = np.random.default_rng(channels)
    pixels = rng.integers(0, 256, (13, 17, channels)).astype(np.uint8)
    path = tmp_path / f"img.{fmt.lower()}"
    Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels).save(path, format=fmt)
    out = vio.read_image(str(path))
    assert out.dtype == ember.uint8 and tuple(out.shape) == (channels, 13, 17)
    np.testing.assert_array_equal(out.numpy(), _pil_pixels(path))
    decode = vio.decode_png if fmt == "PNG" else vio.decode_jpeg
    np.testing.assert_array_equal(decode(vio.read_file(path)).numpy(), _pil_pixels(path))
    if fmt == "PNG":   # lossless: the very pixels
        np.testing.assert_array_equal(out.numpy(), pixels.transpose(2, 0, 1))


def test_read_modes(tmp_path, rgb):
    path = tmp_path / "a.png"
    Image.fromarray(rgb.transpose(1, 2, 0)).save(path)
    gray = vio.read_image(path, vio.ImageReadMode.GRAY)
    np.testing.assert_array_equal(gray.numpy(), _pil_pixels(path, "L"))
    rgba = vio.read_image(path, vio.ImageReadMode.RGB_ALPHA)
    assert tuple(rgba.shape) == (4, 13, 17) and (rgba.numpy()[3] == 255).all()
    assert tuple(vio.read_image(path, "gray_alpha").shape) == (2, 13, 17)


def test_png_round_trip(tmp_path, rgb):
    data = vio.encode_png(ember.tensor(rgb), compression_level=9)
    assert data.dtype == ember.uint8 and data.ndim == 1
    np.testing.assert_array_equal(vio.decode_png(data).numpy(), rgb)
    vio.write_png(ember.tensor(rgb[:1]), tmp_path / "g.png")
    np.testing.assert_array_equal(vio.read_image(tmp_path / "g.png").numpy(), rgb[:1])
    assert Image.open(tmp_path / "g.png").mode == "L"


def test_jpeg_round_trip(tmp_path):
    yy, xx = np.mgrid[0:32, 0:40]
    smooth = np.stack([xx * 6, yy * 7, (xx + yy) * 3]).astype(np.uint8)
    data = vio.encode_jpeg(ember.tensor(smooth), quality=95)
    back = vio.decode_jpeg(data).numpy().astype(int)
    assert np.abs(back - smooth).mean() < 2.0
    # what we encode is what Pillow decodes, and our decode equals Pillow's
    vio.write_jpeg(ember.tensor(smooth), tmp_path / "s.jpg", quality=95)
    np.testing.assert_array_equal(vio.read_image(tmp_path / "s.jpg").numpy(),
                                  _pil_pixels(tmp_path / "s.jpg"))
    batch = vio.encode_jpeg([ember.tensor(smooth), ember.tensor(smooth[:1])])
    assert [tuple(d.shape) for d in vio.decode_jpeg(batch)] == [(3, 32, 40), (1, 32, 40)]


def test_bad_inputs(rgb):
    with pytest.raises(RuntimeError, match="dtype should be uint8"):
        vio.encode_png(ember.tensor(rgb.astype(np.float32)))
    with pytest.raises(ValueError, match="between 1 and 100"):
        vio.encode_jpeg(ember.tensor(rgb), quality=0)
    with pytest.raises(RuntimeError, match="number of channels should be 1 or 3"):
        vio.encode_jpeg(ember.tensor(np.zeros((4, 2, 2), np.uint8)))
    with pytest.raises(RuntimeError, match="Compression level"):
        vio.encode_png(ember.tensor(rgb), compression_level=10)
    png = vio.encode_png(ember.tensor(rgb))
    with pytest.raises(RuntimeError, match="expected a JPEG image"):
        vio.decode_jpeg(png)
    with pytest.raises(RuntimeError, match="could not decode"):
        vio.decode_png(ember.tensor(np.arange(20, dtype=np.uint8)))


def test_exif_orientation(tmp_path):
    pixels = np.zeros((4, 6, 3), np.uint8)
    pixels[0, 0] = 255                     # a white top-left pixel
    img = Image.fromarray(pixels)
    exif = img.getexif()
    exif[0x0112] = 6                       # Orientation: rotate 90 CW to display
    img.save(tmp_path / "o.png", exif=exif)
    raw = vio.read_image(tmp_path / "o.png")
    turned = vio.read_image(tmp_path / "o.png", apply_exif_orientation=True)
    assert tuple(raw.shape) == (3, 4, 6) and tuple(turned.shape) == (3, 6, 4)
    assert turned.numpy()[0, 0, 3] == 255  # top-left went to top-right
