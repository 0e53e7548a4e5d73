"""Decode an image safely and cut the region around a point. Knows neither HTTP nor TensorFlow.

Limits are checked from the header before any pixel is decoded, so a decompression bomb costs a
header parse. Coordinates are those of the image as displayed, i.e. after EXIF orientation.
"""

from __future__ import annotations

import dataclasses
import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from service.errors import ImageTooLarge, InvalidImage, UnsupportedMediaType

RESIZE_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "hamming": Image.Resampling.HAMMING,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


@dataclasses.dataclass(frozen=True)
class ImageLimits:
    max_pixels: int = 40_000_000
    max_side: int = 12_000
    formats: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "MPO")


@dataclasses.dataclass(frozen=True)
class DecodedImage:
    rgb: Image.Image  # mode "RGB", orientation applied
    format: str

    @property
    def width(self) -> int:
        return self.rgb.width

    @property
    def height(self) -> int:
        return self.rgb.height


@dataclasses.dataclass(frozen=True)
class CropSpec:
    """What a model needs cut from the image; models with equal specs share one crop."""

    width: int  # output size, after resize
    height: int
    channels: int = 3
    fraction: float | None = 0.15  # window = fraction of the image's width and height ...
    min_px: int = 24  # ... each side at least this many pixels
    box: tuple[int, int] | None = None  # or a fixed (width, height) window in pixels
    keep_aspect: bool = True
    resize: str = "bilinear"


def decode(data: bytes, limits: ImageLimits) -> DecodedImage:
    """Bytes of an image file -> RGB image, or an InvalidImage / ImageTooLarge / Unsupported error."""
    if not data:
        raise InvalidImage("the image is empty")
    try:
        with warnings.catch_warnings():
            # Pillow warns (and past 2x its own limit raises) on large images; ours is checked below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise ImageTooLarge("the image has more pixels than allowed") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise InvalidImage("the bytes are not a decodable image") from None
    if image.format not in limits.formats:
        raise UnsupportedMediaType(f"image format {image.format} is not accepted; accepted: {', '.join(limits.formats)}")
    width, height = image.size
    if width < 1 or height < 1:
        raise InvalidImage("the image has no pixels")
    if width > limits.max_side or height > limits.max_side or width * height > limits.max_pixels:
        raise ImageTooLarge(
            f"the image is {width}x{height}; at most {limits.max_side} px a side and {limits.max_pixels} pixels are allowed")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image.load()  # the first frame of animated files
            image = _oriented(image)
            rgb = _to_rgb(image)
    except Image.DecompressionBombError:
        raise ImageTooLarge("the image has more pixels than allowed") from None
    except (OSError, ValueError, SyntaxError, EOFError, TypeError, IndexError, KeyError, ZeroDivisionError):
        # Truncated or corrupt data surfaces here, as any of these from Pillow's decoders.
        raise InvalidImage("the image data is truncated or corrupt") from None
    return DecodedImage(rgb=rgb, format=image.format or "")


def _oriented(image: Image.Image) -> Image.Image:
    fmt = image.format
    try:
        oriented = ImageOps.exif_transpose(image)
    except Exception:  # a malformed EXIF block should not cost the caller the image
        return image
    oriented.format = fmt
    return oriented


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any mode -> RGB; transparency is flattened onto white, as a person sees it on a page."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit and float greyscale: scale to 8 bits rather than let convert() clip to white.
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        image = Image.fromarray(np.clip(values * (255.0 / top), 0, 255).astype(np.uint8), "L")
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def window_size(spec: CropSpec, width: int, height: int) -> tuple[float, float]:
    """The window's size before clipping to the image."""
    if spec.box is not None:
        return float(spec.box[0]), float(spec.box[1])
    fraction = spec.fraction or 0.0
    return max(fraction * width, spec.min_px), max(fraction * height, spec.min_px)


def crop_box(spec: CropSpec, width: int, height: int, x: float, y: float) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of the window around (x, y), shifted inside the image, not padded."""
    win_w, win_h = window_size(spec, width, height)
    win_w, win_h = min(win_w, width), min(win_h, height)
    if spec.keep_aspect:
        aspect = spec.width / spec.height
        if win_w / win_h > aspect:
            win_w = win_h * aspect
        else:
            win_h = win_w / aspect
    left = min(max(x - win_w / 2, 0.0), width - win_w)
    top = min(max(y - win_h / 2, 0.0), height - win_h)
    return left, top, left + win_w, top + win_h


def crop(image: DecodedImage, spec: CropSpec, x: float, y: float) -> np.ndarray:
    """The region around (x, y) resized to the spec: uint8 array of shape (height, width, channels)."""
    box = crop_box(spec, image.width, image.height, x, y)
    region = image.rgb.resize((spec.width, spec.height), RESIZE_FILTERS[spec.resize], box=box)
    if spec.channels == 1:
        return np.asarray(region.convert("L"), dtype=np.uint8)[:, :, np.newaxis]
    return np.asarray(region, dtype=np.uint8)
