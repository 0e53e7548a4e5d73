"""Decode an image safely and cut the region around a point. Knows neither HTTP nor TensorFlow.

Limits are checked from the header before any pixel is decoded, so a decompression bomb costs a
header parse. Coordinates are those of the image as displayed, i.e. after EXIF orientation.
"""

from __future__ import annotations

import dataclasses
import io
import warnings
from collections.abc import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from service.classify import partial_decode
from service.errors import ImageTooLarge, InvalidImage, UnsupportedMediaType, image_too_large

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
class Header:
    """What an image's header says, read without decoding a pixel."""

    image: Image.Image  # opened, not loaded
    format: str
    width: int  # as displayed, after EXIF orientation
    height: int
    orientation: int = 1  # EXIF orientation, 1 = as stored
    data: bytes = b""  # the file the image was opened on

    @property
    def reducible(self) -> bool:
        """JPEG decoders can scale by 1/2, 1/4 or 1/8 while decoding (Pillow's draft mode)."""
        return self.format in ("JPEG", "MPO")


@dataclasses.dataclass(frozen=True)
class DecodedImage:
    rgb: Image.Image  # mode "RGB", orientation applied; possibly decoded at reduced scale
    format: str
    width: int  # full size as displayed: the coordinates callers speak in
    height: int

    @property
    def scale(self) -> tuple[float, float]:
        """Decoded pixels per displayed pixel, along x and y (1.0 unless decoded at reduced scale)."""
        return self.rgb.width / self.width, self.rgb.height / self.height

    @property
    def nbytes(self) -> int:
        return self.rgb.width * self.rgb.height * 3


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


# The crops a decode is for, and the points (displayed pixels) they will be cut at.
CropsAt = tuple[Sequence[CropSpec], Sequence[tuple[float, float]]]


def probe(data: bytes, limits: ImageLimits) -> Header:
    """Open the image and check it against the limits from its header alone (so bombs cost nothing)."""
    if not data:
        raise InvalidImage("the image is empty")
    try:
        with warnings.catch_warnings():
            # Pillow warns (and past 2x its own limit raises) on large images; ours is checked below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        # Pillow's own check (past twice its MAX_IMAGE_PIXELS) fired first: say the size all the same.
        size = _header_size(data, limits.formats)
        if size is None:
            raise ImageTooLarge(f"the image has more than {2 * Image.MAX_IMAGE_PIXELS / 1e6:,.0f} MP; "
                                f"the limit is {limits.max_pixels / 1e6:g} MP") from None
        raise image_too_large(*size, limits.max_pixels, limits.max_side) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise InvalidImage("the bytes are not a decodable image") from None
    if image.format not in limits.formats:
        raise UnsupportedMediaType(f"image format {image.format} is not accepted; "
                                   f"accepted: {', '.join(limits.formats)}")
    width, height = image.size
    if width < 1 or height < 1:
        raise InvalidImage("the image has no pixels")
    if width > limits.max_side or height > limits.max_side or width * height > limits.max_pixels:
        raise image_too_large(width, height, limits.max_pixels, limits.max_side)
    orientation = _orientation(image)
    if orientation in _TRANSPOSING:
        width, height = height, width
    return Header(image=image, format=image.format, width=width, height=height, orientation=orientation,
                  data=data)


def _header_size(data: bytes, formats: tuple[str, ...]) -> tuple[int, int] | None:
    """Width and height as an accepted format's header states them, read by that format's own
    opener, which (unlike Image.open) does not refuse large sizes. For the message only."""
    for fmt in formats:
        factory, accept = Image.OPEN.get(fmt, (None, None))
        if factory is None or (accept is not None and not accept(data[:16])):
            continue
        try:
            return factory(io.BytesIO(data), "").size
        except Exception:  # noqa: BLE001 - any failure just means: size unknown
            continue
    return None


def decode_header(header: Header, reduce: int = 1, crops_at: CropsAt | None = None) -> DecodedImage:
    """Decode the pixels, at 1/reduce scale where the format allows it (JPEG), as RGB. With `crops_at`
    (the crops and the points they will be cut at) a JPEG may be decoded only down to the lowest row
    they read (service/classify/partial_decode.py): those crops alone may then be cut from it."""
    image = header.image
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if reduce > 1 and header.reducible:
                stored_w, stored_h = image.size
                image.draft(None, (-(-stored_w // reduce), -(-stored_h // reduce)))
            rows = image.height
            if crops_at is not None and partial_decode.possible(image, header.data, header.orientation):
                rows = _rows_read(crops_at, header, image.height)
            if rows < image.height:
                partial_decode.load_top_rows(image, header.data, rows)
            else:
                image.load()  # the first frame of animated files
            image = _oriented(image, header.orientation)
            rgb = _to_rgb(image)
    except Image.DecompressionBombError:
        raise ImageTooLarge("the image has more pixels than allowed") from None
    except (OSError, ValueError, SyntaxError, EOFError, TypeError, IndexError, KeyError, ZeroDivisionError):
        # Truncated or corrupt data surfaces here, as any of these from Pillow's decoders.
        raise InvalidImage("the image data is truncated or corrupt") from None
    return DecodedImage(rgb=rgb, format=header.format, width=header.width, height=header.height)


def _rows_read(crops_at: CropsAt, header: Header, decoded_height: int) -> int:
    """The decoded rows that cutting `crops_at` reads (the image stored as displayed)."""
    specs, points = crops_at
    scale = decoded_height / header.height
    boxes = []
    for spec in specs:
        for x, y in points:
            _, top, _, bottom = crop_box(spec, header.width, header.height, x, y)
            boxes.append((top * scale, bottom * scale, spec.height, spec.resize))
    return partial_decode.rows_needed(boxes, decoded_height)


def decode(data: bytes, limits: ImageLimits, reduce: int = 1) -> DecodedImage:
    """Bytes of an image file -> RGB image, or an InvalidImage / ImageTooLarge / Unsupported error."""
    return decode_header(probe(data, limits), reduce)


def reduction(specs, width: int, height: int, margin: float = 1.0) -> int:
    """The largest JPEG scale-down (1, 2, 4 or 8) that still leaves every crop window at least
    `margin` times the pixels its model's input needs: the resize is then still a reduction, and the
    crops change by well under one grey level on average (tests/test_fast_path.py). One step further
    is not worth its time: on a 12 MP photo, 1/8 instead of 1/4 saves ~1.5 ms of a ~15 ms decode
    (Huffman decoding is the floor) but changed the demo pattern model's top answer at 12% of points."""
    allowed = 8.0
    for spec in specs:
        left, top, right, bottom = crop_box(spec, width, height, width / 2, height / 2)
        allowed = min(allowed, (right - left) / (spec.width * margin), (bottom - top) / (spec.height * margin))
    reduce = 1
    while reduce * 2 <= allowed:
        reduce *= 2
    return reduce


_TRANSPOSING = (5, 6, 7, 8)  # EXIF orientations that swap width and height


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(0x0112, 1))
    except Exception:  # a malformed EXIF block: the image is shown as stored
        return 1


_TRANSPOSE = {  # EXIF orientation -> the transpose that shows the image upright (as ImageOps.exif_transpose)
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _oriented(image: Image.Image, orientation: int) -> Image.Image:
    method = _TRANSPOSE.get(orientation)
    return image.transpose(method) if method is not None else image


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
    """The region around (x, y) resized to the spec: uint8 array of shape (height, width, channels).

    The window is placed in displayed coordinates, then mapped onto the pixels actually decoded."""
    left, top, right, bottom = crop_box(spec, image.width, image.height, x, y)
    scale_x, scale_y = image.scale
    box = (left * scale_x, top * scale_y, right * scale_x, bottom * scale_y)
    region = image.rgb.resize((spec.width, spec.height), RESIZE_FILTERS[spec.resize], box=box)
    if spec.channels == 1:
        return np.asarray(region.convert("L"), dtype=np.uint8)[:, :, np.newaxis]
    return np.asarray(region, dtype=np.uint8)
