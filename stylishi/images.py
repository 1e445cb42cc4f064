"""Image intake: anything a browser, a program or a folder hands us becomes a safe RGB picture, or a clear refusal.

Every refusal is an `ImageError` whose message a shopper can act on. Size checks run on the header, before a
single pixel is decoded, so a decompression bomb never reaches memory. Only JPEG, PNG and WebP decoders are ever
run (Pillow's other parsers never see the bytes), a file is read with a cap, and a picture is reduced to at most
`WORK_SIDE` pixels on a side (a JPEG while it is decoded) before any colour conversion, which is integer
arithmetic for 16-bit pictures: one query costs at most the decoded picture (≤ 64 MB at 4096² RGBA) and a little.
"""
from __future__ import annotations

import io
import os
import stat
import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps

from .config import Limits
from .errors import ImageError

ImageInput = Union[str, os.PathLike, bytes, bytearray, memoryview, Image.Image, np.ndarray]

ACCEPTED_FORMATS = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP", "MPO": "JPEG"}  # MPO: phone JPEGs with a depth map
# Other formats are named from their first bytes (for a message that says what to do), never parsed.
_KNOWN_OTHERS = ((b"GIF87a", "GIF"), (b"GIF89a", "GIF"), (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
                 (b"\x00\x00\x01\x00", "ICO"), (b"8BPS", "PSD"), (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"))
# The size every picture is brought down to (or under) before colour conversion: the model sees 224 px, the
# catalog's thumbnails are 256 px, so nothing is lost; a 4096² picture then costs ~3 MB instead of ~400.
WORK_SIDE = 1024
_FORMATS_TEXT = "JPEG, PNG or WebP"
_WHITE = (255, 255, 255)
_METADATA_TOO_BIG = ("The picture carries an oversized metadata block (a colour profile or text of over 1 MB). "
                     "Please save it again without metadata (or take a screenshot of it) and upload that.")

# Our own header checks come first; this is a second fence for anything that slips past them.
Image.MAX_IMAGE_PIXELS = 4096 * 4096 * 2


def load_image(source: ImageInput, limits: Limits | None = None) -> Image.Image:
    """Open, check and normalise one query or catalog image to an upright RGB `PIL.Image`."""
    limits = limits or Limits()
    if isinstance(source, Image.Image):
        _check_size(source.size, limits)
        small = reduce(source)
        return to_rgb(ImageOps.exif_transpose(small) if source.getexif() else small)
    if isinstance(source, np.ndarray):
        return _from_array(source, limits)
    data = _read_bytes(source, limits)
    return _decode(data, limits)


def _read_bytes(source: ImageInput, limits: Limits) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        data = _read_file(Path(source), limits)
    elif source is None:
        raise ImageError(f"No picture arrived. Please upload a {_FORMATS_TEXT} photo.")
    else:
        raise ImageError(f"Expected a picture, got {type(source).__name__}. Upload a {_FORMATS_TEXT} file.")
    if not data:
        raise ImageError("The file is empty (0 bytes). Please upload a photo.")
    if len(data) > limits.max_bytes:
        raise ImageError(_too_big_message(len(data), limits))
    return data


def _read_file(path: Path, limits: Limits) -> bytes:
    """At most `max_bytes + 1` bytes of a regular file (never a device, a FIFO or a folder, which could block or
    never end)."""
    missing = "That image file could not be found. Please choose the picture again."
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        raise ImageError(missing) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise ImageError(missing)
    with os.fdopen(fd, "rb") as f:
        if st.st_size > limits.max_bytes:
            raise ImageError(_too_big_message(st.st_size, limits))
        return f.read(limits.max_bytes + 1)


def _other_format(data: bytes) -> str | None:
    return next((name for magic, name in _KNOWN_OTHERS if data.startswith(magic)), None)


def _decode(data: bytes, limits: Limits) -> Image.Image:
    other = _other_format(data)
    if other:
        raise ImageError(f"{other} images are not supported. Please upload a {_FORMATS_TEXT} image.")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data), formats=list(ACCEPTED_FORMATS))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageError(f"The picture has far too many pixels; the most we accept is {limits.max_side} pixels "
                             "on a side. Please resize it or take a smaller photo.") from None
        except ValueError as exc:
            if "too large" in str(exc).lower():  # Pillow's cap on a PNG's compressed text / colour-profile chunks
                raise ImageError(_METADATA_TOO_BIG) from None
            raise ImageError(f"This file is not a picture we can read. Please upload a {_FORMATS_TEXT} image.") from None
        except Exception:
            raise ImageError(f"This file is not a picture we can read. Please upload a {_FORMATS_TEXT} image.") from None
        if img.format not in ACCEPTED_FORMATS:
            raise ImageError(f"{img.format or 'This'} images are not supported. Please upload a {_FORMATS_TEXT} image.")
        _check_size(img.size, limits)
        try:
            img.seek(0)  # animated WebP/PNG: the first frame is the query
            if img.format in ("JPEG", "MPO"):
                img.draft(img.mode, (WORK_SIDE, WORK_SIDE))  # decode at 1/2, 1/4 or 1/8 scale: never the full size
            img.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageError(_too_many_pixels_message(img.size, limits)) from None
        except ValueError as exc:
            if "too large" in str(exc).lower():
                raise ImageError(_METADATA_TOO_BIG) from None
            raise ImageError("The picture is damaged or incomplete (the file may have been cut off). Please upload "
                             "it again.") from None
        except Exception:
            raise ImageError("The picture is damaged or incomplete (the file may have been cut off). Please upload it again.") from None
    img = reduce(img)
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:
        pass  # a broken EXIF block only costs us the rotation
    return to_rgb(img)


def reduce(img: Image.Image, side: int = WORK_SIDE) -> Image.Image:
    """The picture at most `side` pixels on a side, in its own mode, before any colour conversion.

    Area averaging by a whole factor, one band of rows at a time: Pillow premultiplies a transparent picture into a
    full-size copy before it resamples, which a band keeps small. Nearest for palette and 1-bit pictures.
    """
    w, h = img.size
    if max(w, h) <= side:
        return img
    factor = -(-max(w, h) // side)
    size = (-(-w // factor), -(-h // factor))
    if img.mode in ("P", "PA", "1"):
        return img.resize(size, Image.Resampling.NEAREST)
    try:
        out = Image.new(img.mode, size)
        band = factor * 64
        for top in range(0, h, band):
            out.paste(img.crop((0, top, w, min(h, top + band))).reduce(factor), (0, top // factor))
        return out
    except ValueError:  # a mode reduce() cannot do (16-bit grey): resize() does it without a converted copy
        return img.resize(size, Image.Resampling.BOX)


def _check_size(size: tuple[int, int], limits: Limits) -> None:
    w, h = size
    if w < 1 or h < 1:
        raise ImageError("The picture has no pixels. Please upload a photo.")
    if w > limits.max_side or h > limits.max_side:
        raise ImageError(_too_many_pixels_message(size, limits))


def _too_many_pixels_message(size: tuple[int, int], limits: Limits) -> str:
    return (f"The picture is {size[0]}×{size[1]} pixels; the most we accept is {limits.max_side} pixels on a side. "
            "Please resize it or take a smaller photo.")


def _too_big_message(n: int, limits: Limits) -> str:
    return (f"The file is {n / 1e6:.1f} MB; the most we accept is {limits.max_bytes / 1e6:.0f} MB. "
            "Please upload a smaller photo.")


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB: transparency goes over white (product shots are on white), high bit depths are scaled."""
    if img.mode == "RGB":
        return img
    if img.mode.startswith("I;16") or img.mode == "I":
        # Integer arithmetic, one small temporary: 16-bit (or 32-bit integer) levels scaled to 0..255, rounded.
        arr = np.asarray(img)
        hi = 65535 if img.mode.startswith("I;16") or int(arr.max(initial=0)) > 255 else 255
        arr32 = np.clip(arr, 0, hi).astype(np.uint32)
        arr8 = ((arr32 * 255 + hi // 2) // hi).astype(np.uint8)
        return Image.fromarray(arr8).convert("RGB")
    if img.mode == "F":
        arr = np.nan_to_num(np.asarray(img, dtype=np.float32))
        hi = max(float(arr.max(initial=0.0)), 1.0)
        return Image.fromarray(np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)).convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _WHITE + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _from_array(arr: np.ndarray, limits: Limits) -> Image.Image:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageError("The picture data has an unexpected shape. Please upload a photo file instead.")
    _check_size((arr.shape[1], arr.shape[0]), limits)
    step = -(-max(arr.shape[:2]) // WORK_SIDE)  # a whole-number stride first: no full-size float copy
    if step > 1:
        arr = arr[::step, ::step]
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating):
            scale = 255.0 if float(np.nanmax(arr, initial=0.0)) <= 1.0 else 1.0
            arr = np.nan_to_num(arr.astype(np.float32) * scale)
        elif arr.dtype == np.uint16:
            arr = (arr.astype(np.uint32) + 128) // 257
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return to_rgb(Image.fromarray(np.ascontiguousarray(arr)))


def thumbnail_jpeg(img: Image.Image, max_side: int = 256, quality: int = 85) -> bytes:
    """A small JPEG for the results gallery: cheap to store, send and show."""
    thumb = img.copy()
    thumb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    thumb.save(buf, format="JPEG", quality=quality, optimize=True)
    return buf.getvalue()
