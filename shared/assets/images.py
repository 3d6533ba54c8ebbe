"""What an uploaded or generated image is: its type by magic bytes, confirmed by decoding it (Pillow), and
the JPEG rendition platforms that take only JPEG (Instagram) are given."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Literal

from PIL import Image, UnidentifiedImageError

from shared.errors import InvalidRequest

ImageType = Literal["image/png", "image/jpeg", "image/webp"]
EXTENSIONS: dict[ImageType, str] = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
MAX_PIXELS = 36_000_000
"""Larger images are refused (LinkedIn's cap is 36,152,320 pixels; decompression bombs are far larger)."""
_PIL_FORMATS: dict[str, ImageType] = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}


@dataclass(frozen=True)
class ImageInfo:
    """A checked image."""

    content_type: ImageType
    width: int
    height: int


def sniff(data: bytes) -> ImageType | None:
    """The image type its first bytes announce (PNG, JPEG, WebP), or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def inspect(data: bytes, *, field: str = "file") -> ImageInfo:
    """Check that `data` is a whole PNG, JPEG or WebP image; `InvalidRequest` naming `field` and the fix if not."""
    announced = sniff(data)
    if announced is None:
        raise InvalidRequest(f"`{field}` is not a PNG, JPEG or WebP image (its first bytes say otherwise); upload "
                             "one of those.", details={"field": field})
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise InvalidRequest(f"`{field}` is {width}×{height} pixels; images may have at most {MAX_PIXELS} "
                                     "pixels.", details={"field": field})
            decoded = _PIL_FORMATS.get(image.format or "")
            image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidRequest(f"`{field}` starts like {announced} but does not decode as one ({exc}); upload a whole, "
                             "valid image.", details={"field": field}) from exc
    if decoded != announced:
        raise InvalidRequest(f"`{field}` mixes formats (header {announced}, body {decoded}).", details={"field": field})
    return ImageInfo(content_type=announced, width=width, height=height)


def jpeg_rendition(data: bytes, *, quality: int = 90) -> bytes:
    """The image as a baseline RGB JPEG (transparency flattened onto white); JPEG input is returned as is."""
    if sniff(data) == "image/jpeg":
        return data
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
    out = io.BytesIO()
    flat.save(out, format="JPEG", quality=quality, optimize=True)
    return out.getvalue()
