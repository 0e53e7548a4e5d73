"""Decoding and cropping, without a server."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from fixtures import split_image
from service.classify import imaging
from service.errors import ImageTooLarge, InvalidImage, UnsupportedMediaType

LIMITS = imaging.ImageLimits()


def spec(**kw):
    return imaging.CropSpec(**{"width": 32, "height": 32, **kw})


def test_window_is_a_fraction_of_the_image_with_a_minimum():
    assert imaging.window_size(spec(fraction=0.1, min_px=24), 1000, 500) == (100, 50)
    assert imaging.window_size(spec(fraction=0.1, min_px=24), 100, 100) == (24, 24)
    assert imaging.window_size(spec(box=(64, 48)), 1000, 500) == (64, 48)


def test_window_shifts_inside_at_the_edges_instead_of_padding():
    box = imaging.crop_box(spec(box=(40, 40), keep_aspect=False), 200, 100, 0, 0)
    assert box == (0, 0, 40, 40)
    box = imaging.crop_box(spec(box=(40, 40), keep_aspect=False), 200, 100, 199, 99)
    assert box == (160, 60, 200, 100)


def test_window_larger_than_the_image_is_clipped_to_it():
    assert imaging.crop_box(spec(box=(500, 500), keep_aspect=False), 200, 100, 50, 50) == (0, 0, 200, 100)


def test_keep_aspect_centre_crops_to_the_input_shape():
    left, top, right, bottom = imaging.crop_box(spec(fraction=0.5, keep_aspect=True), 400, 100, 200, 50)
    assert (right - left, bottom - top) == (50, 50)  # 200x50 window cut to the square input
    assert (left + right) / 2 == 200


def test_crop_returns_the_input_size_and_channels():
    decoded = imaging.decode(split_image(), LIMITS)
    assert imaging.crop(decoded, spec(), 10, 10).shape == (32, 32, 3)
    grey = imaging.crop(decoded, spec(channels=1, width=4, height=6), 10, 10)
    assert grey.shape == (6, 4, 1) and grey.dtype == np.uint8


def test_sixteen_bit_png_keeps_its_tones():
    values = np.full((20, 20), 30000, np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, format="PNG")
    decoded = imaging.decode(buffer.getvalue(), LIMITS)
    assert 100 < decoded.rgb.getpixel((5, 5))[0] < 140  # 30000/65535 of white, not clipped to 255


def test_palette_with_transparency_is_flattened_onto_white():
    image = Image.new("P", (10, 10), 0)
    image.putpalette([0, 0, 0] * 256)
    image.info["transparency"] = 0
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", transparency=0)
    assert imaging.decode(buffer.getvalue(), LIMITS).rgb.getpixel((1, 1)) == (255, 255, 255)


def test_limits_are_checked_before_decoding():
    with pytest.raises(ImageTooLarge):
        imaging.decode(split_image(size=(300, 10)), imaging.ImageLimits(max_side=200))
    with pytest.raises(ImageTooLarge):
        imaging.decode(split_image(size=(100, 100)), imaging.ImageLimits(max_pixels=5000))
    with pytest.raises(UnsupportedMediaType):
        imaging.decode(split_image(fmt="BMP"), imaging.ImageLimits(formats=("PNG",)))
    with pytest.raises(InvalidImage):
        imaging.decode(b"GIF89a", LIMITS)
