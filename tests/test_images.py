"""Image intake: every accepted kind becomes upright RGB; every bad kind is refused with a clear ImageError."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from stylishi.config import Limits
from stylishi.errors import ImageError
from stylishi.images import load_image, thumbnail_jpeg


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def red(size=(40, 30), mode="RGB"):
    return Image.new(mode, size, (200, 10, 10) if mode == "RGB" else None)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_accepted_formats_from_bytes_path_and_pil(tmp_path, fmt):
    data = encode(red(), fmt)
    path = tmp_path / f"x.{fmt.lower()}"
    path.write_bytes(data)
    for source in (data, path, str(path), Image.open(io.BytesIO(data))):
        img = load_image(source)
        assert img.mode == "RGB" and img.size == (40, 30)
        r, g, b = img.getpixel((20, 15))
        assert r > 150 and g < 60 and b < 60


def test_numpy_arrays_of_several_dtypes():
    base = np.zeros((30, 40, 3), dtype=np.uint8)
    base[..., 0] = 200
    assert load_image(base).getpixel((0, 0)) == (200, 0, 0)
    assert load_image(base.astype(np.float32) / 255.0).getpixel((0, 0))[0] in (199, 200)
    assert load_image((base.astype(np.uint16) * 257)).getpixel((0, 0)) == (200, 0, 0)
    rgba = np.concatenate([base, np.zeros((30, 40, 1), np.uint8)], axis=2)  # fully transparent → white
    assert load_image(rgba).getpixel((0, 0)) == (255, 255, 255)
    assert load_image(base[..., 0]).mode == "RGB"  # grayscale
    with pytest.raises(ImageError, match="unexpected shape"):
        load_image(np.zeros((2, 3, 4, 5), np.uint8))


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 20, 20))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    out = load_image(encode(img, "JPEG", exif=exif.tobytes(), quality=95))
    assert out.size == (20, 40)
    assert out.getpixel((10, 5))[0] > 200  # red now on top


@pytest.mark.parametrize("mode,fill,expect", [
    ("RGBA", (255, 0, 0, 0), (255, 255, 255)),       # transparent → white
    ("RGBA", (255, 0, 0, 255), (255, 0, 0)),
    ("LA", (0, 0), (255, 255, 255)),
    ("L", 128, (128, 128, 128)),
    ("CMYK", (0, 255, 255, 0), (255, 0, 0)),
])
def test_modes_become_rgb(mode, fill, expect):
    img = Image.new(mode, (8, 8), fill)
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    out = load_image(encode(img, fmt))
    got = out.getpixel((4, 4))
    assert out.mode == "RGB" and all(abs(a - b) <= 3 for a, b in zip(got, expect)), got


def test_palette_with_transparency_and_16_bit():
    p = Image.new("P", (8, 8), 0)
    p.putpalette([255, 0, 0] + [0, 0, 0] * 255)
    p.info["transparency"] = 0
    assert load_image(encode(p, "PNG", transparency=0)).getpixel((1, 1)) == (255, 255, 255)
    sixteen = Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16))
    assert load_image(encode(sixteen, "PNG")).getpixel((1, 1)) == (255, 255, 255)


def test_animated_webp_uses_first_frame():
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    data = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    assert load_image(data).getpixel((8, 8)) == (255, 0, 0)


# -- refusals --------------------------------------------------------------------------------------------------
def _png_header_only(width: int, height: int) -> bytes:
    """A valid PNG signature + IHDR claiming a huge size, with a tiny IDAT: a decompression bomb's header."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("data,message", [
    (b"", "empty"),
    (b"\x00\x01garbage" * 50, "not a picture"),
    (b"<html><body><img src=x onerror=alert(1)></body></html>", "not a picture"),
    (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', "not a picture"),
    (b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", "not a picture"),
    (b"PK\x03\x04" + b"\x00" * 60, "not a picture"),
    (_png_header_only(50_000, 50_000), "pixels"),
    (_png_header_only(10_000, 1), "pixels"),
])
def test_bad_bytes_are_refused_with_a_clear_message(data, message):
    with pytest.raises(ImageError, match=message):
        load_image(data)


def test_truncated_files_are_refused():
    big = Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8))
    for fmt in ("JPEG", "PNG"):
        data = encode(big, fmt)
        with pytest.raises(ImageError, match="damaged or incomplete"):
            load_image(data[: len(data) // 2])


def test_unsupported_format_is_named():
    with pytest.raises(ImageError, match="GIF images are not supported"):
        load_image(encode(red(), "GIF"))
    with pytest.raises(ImageError, match="BMP images are not supported"):
        load_image(encode(red(), "BMP"))


def test_size_limits(tmp_path):
    limits = Limits(max_bytes=1000, max_side=64)
    noisy = Image.fromarray(np.random.default_rng(1).integers(0, 255, (60, 60, 3), dtype=np.uint8))
    data = encode(noisy, "PNG")
    assert len(data) > 1000
    with pytest.raises(ImageError, match="MB"):
        load_image(data, limits)
    path = tmp_path / "big.png"
    path.write_bytes(data)
    with pytest.raises(ImageError, match="MB"):
        load_image(path, limits)
    with pytest.raises(ImageError, match="64 pixels on a side"):
        load_image(encode(Image.new("RGB", (65, 10)), "PNG"), limits)
    with pytest.raises(ImageError, match="pixels on a side"):
        load_image(Image.new("RGB", (5000, 2)))
    with pytest.raises(ImageError, match="could not be found"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="Expected a picture"):
        load_image(12345)  # type: ignore[arg-type]


def test_default_limit_is_ten_megabytes():
    assert Limits().max_bytes == 10 * 1024 * 1024
    with pytest.raises(ImageError, match="10 MB"):
        load_image(b"\xff\xd8" + b"\0" * (10 * 1024 * 1024 + 1))


def test_thumbnail_is_small_jpeg():
    data = thumbnail_jpeg(Image.new("RGB", (1000, 500), (1, 2, 3)))
    thumb = Image.open(io.BytesIO(data))
    assert thumb.format == "JPEG" and max(thumb.size) == 256


# -- bounded work: allow-listed decoders, capped reads, reduced before colour conversion --------------------------
def test_only_the_jpeg_png_and_webp_decoders_ever_run(monkeypatch):
    """Other formats are named from their magic bytes; no other Pillow parser is handed the bytes."""
    from PIL import BmpImagePlugin, TiffImagePlugin

    def boom(*args, **kwargs):
        raise AssertionError("a decoder outside the allow-list was run")

    monkeypatch.setattr(BmpImagePlugin.BmpImageFile, "_open", boom)
    monkeypatch.setattr(TiffImagePlugin.TiffImageFile, "_open", boom)
    for fmt, name in (("BMP", "BMP"), ("TIFF", "TIFF"), ("GIF", "GIF"), ("ICO", "ICO")):
        with pytest.raises(ImageError, match=f"{name} images are not supported"):
            load_image(encode(red((32, 32)), fmt))
    with pytest.raises(ImageError, match="not a picture we can read"):  # a format with no magic we name: PPM
        load_image(encode(red(), "PPM"))


def test_files_are_read_with_a_cap_and_only_regular_files(tmp_path):
    import os

    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)  # opening it for reading would block for ever
    for path in (fifo, tmp_path, "/dev/zero", tmp_path / "missing.jpg"):
        with pytest.raises(ImageError, match="could not be found"):
            load_image(path)
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff\xd8\xff" + b"\0" * 2_000)
    with pytest.raises(ImageError, match="the most we accept is 0 MB"):
        load_image(big, Limits(max_bytes=1_000))


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "LA", "L", "P", "CMYK", "I", "I;16", "F", "1"])
def test_big_pictures_are_reduced_in_their_own_mode_first(mode):
    from stylishi.images import WORK_SIDE, reduce

    img = Image.new(mode, (3000, 1000))
    small = reduce(img)
    assert small.mode == mode and max(small.size) <= WORK_SIDE and small.size == (1000, 334)
    assert load_image(img).size == (1000, 334)


def test_sixteen_bit_levels_are_scaled_with_integers():
    from stylishi.images import to_rgb

    levels = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    out = np.asarray(to_rgb(Image.fromarray(levels)))[0, :, 0]
    assert out.tolist() == [0, 1, 128, 255]
    wide = Image.fromarray(np.array([[0, 1000, 65535]], dtype=np.int32))  # mode I, over 255: 16-bit range
    assert np.asarray(to_rgb(wide))[0, :, 0].tolist() == [0, 4, 255]


def test_a_big_jpeg_is_decoded_at_a_reduced_scale():
    data = encode(Image.new("RGB", (4096, 3072), (30, 120, 200)), "JPEG")
    img = load_image(data)
    assert img.size == (1024, 768) and img.getpixel((5, 5))[2] > 180
