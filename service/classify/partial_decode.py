"""Decoding only the top of a JPEG: the rows down to the lowest crop's bottom edge.

A baseline JPEG is stored top to bottom, and its decoder can stop once the rows a request's crops read
are out: the Huffman decoding, the inverse DCT and the colour conversion of the rows below are never
done. For the bench's point in the middle of a 640x360 photo that is ~35% of the decode (~0.25 ms of
~0.8 ms), and more for a point near the top; the crops are the very same pixels (tests/test_fast_path.py).

Pillow decodes a file whole (ImageFile.load), so the rows are asked of its JPEG decoder directly, as
load() asks it, with a shorter extent; the decoder then reports the stream as broken when it is told to
finish early (libjpeg's "too few scanlines"), which is expected here. Only where that report can mean
nothing else is it done, else the image is decoded whole, as before:
- one scan: a sequential frame (SOF0 or SOF1) whose first scan holds every component, so it is the
  only one (read from the markers before the first scan, _single_scan). A progressive or multi-scan
  JPEG reads all its scans before its first row, so a real error would also arrive after zero rows;
  within a sequential scan, damaged data is a warning to libjpeg (Pillow shows it as grey), not an error;
- the file ends with its EOI marker: a truncated upload is decoded whole and refused as truncated, as
  it was, instead of being answered from the part that arrived;
- stored as displayed (EXIF orientation 1 or 2): otherwise the displayed bottom is another edge.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from PIL import Image

# How far beyond its box each resize filter reads, in input pixels at scale 1 (Pillow's Resample.c);
# reducing by s reads s times as far.
FILTER_SUPPORT = {"nearest": 0.0, "box": 0.5, "bilinear": 1.0, "hamming": 1.0, "bicubic": 2.0, "lanczos": 3.0}

_EOI = b"\xff\xd9"
_SEQUENTIAL_FRAMES = (0xC0, 0xC1)  # SOF0 baseline, SOF1 extended sequential (Huffman)
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # markers without a length: TEM, RST0-7
_FINISHED_EARLY = -2  # IMAGING_CODEC_BROKEN: what the decoder says when stopped before the last row


def rows_needed(boxes: Iterable[tuple[float, float, int, str]], decoded_height: int) -> int:
    """How many top rows of the decoded image the crops read: each box is (top, bottom, output height,
    resize filter) in decoded pixels; the resize reads up to FILTER_SUPPORT beyond the bottom (scaled
    when it reduces), and one row more for rounding."""
    lowest = 0.0
    for top, bottom, out_height, resize in boxes:
        reduce = max((bottom - top) / out_height, 1.0)
        lowest = max(lowest, bottom + FILTER_SUPPORT[resize] * reduce + 1)
    return min(decoded_height, math.ceil(lowest))


def possible(image: Image.Image, data: bytes, orientation: int) -> bool:
    """Whether this image may be decoded in part (the module's conditions)."""
    return (image.format == "JPEG" and orientation in (1, 2) and len(image.tile) == 1
            and data.endswith(_EOI) and _single_scan(data))


def _single_scan(data: bytes) -> bool:
    """Whether the JPEG is one sequential scan of every component: its frame marker is SOF0 or SOF1 and
    its first SOS names as many components as the frame has (in sequential mode each component is
    coded in exactly one scan). Walks the marker segments by their lengths, up to the first SOS."""
    at, components = 2, None
    for _ in range(256):
        if at + 4 > len(data) or data[at] != 0xFF:
            return False
        marker = data[at + 1]
        if marker == 0xFF:  # a fill byte before a marker
            at += 1
            continue
        if marker in _STANDALONE:
            at += 2
            continue
        length = int.from_bytes(data[at + 2:at + 4], "big")
        if marker == 0xDA:
            return components is not None and at + 4 < len(data) and data[at + 4] == components
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a frame header (not DHT, JPG, DAC)
            if marker not in _SEQUENTIAL_FRAMES or at + 9 >= len(data):
                return False
            components = data[at + 9]
        at += 2 + length
    return False


def load_top_rows(image: Image.Image, data: bytes, rows: int) -> None:
    """Decode the top `rows` rows of `image` (opened on `data`, its draft scale set) into its pixels; the
    rows below stay blank and must not be read. Raises OSError as Image.load does for bad data."""
    tile = image.tile[0]
    image.load_prepare()
    decoder = Image._getdecoder(image.mode, tile.codec_name, tile.args, image.decoderconfig)
    try:
        decoder.setimage(image.im, (0, 0, image.width, rows))
        consumed, error = decoder.decode(data[tile.offset:] if tile.offset else data)
    finally:
        decoder.cleanup()
    image.tile, image.fp = [], None  # loaded: load() now only hands out the pixels
    if consumed >= 0:
        raise OSError("image file is truncated")  # the decoder asked for more than the file holds
    if error < 0 and not (error == _FINISHED_EARLY and rows < image.height):
        raise OSError(f"decoder error {error}")
