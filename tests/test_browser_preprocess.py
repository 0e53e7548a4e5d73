"""static/inbrowser/preprocess.js in a real browser (Debian's Chromium driven by Playwright) against
the server's own Python: a model run in the page must be fed the very tensor the server feeds it.

Each test reads as a use of the page's API (window.PinpointPreprocess): crop an image around a
point, make the model's input, turn its output into the answer, decode a file as the server would;
and checks the result against service.classify.imaging / .preprocess / .pipeline and
service.serving.model_run byte for byte (JPEG decoding alone is measured against a tolerance:
browsers and Pillow use different decoders)."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from browser_page import CHROMIUM, FLAGS, needs_chromium
from service.classify import pipeline
from service.classify.imaging import RESIZE_FILTERS, CropSpec, DecodedImage, ImageLimits, crop, crop_box, decode
from service.classify.preprocess import prepare
from service.errors import PinpointError
from service.serving import model_run
from service.serving.repository import InputSpec

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = needs_chromium

# Helpers the tests' page-side snippets share: base64 <-> bytes.
HELPERS = """
window.b64bytes = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
window.bytesb64 = (bytes) => {
  const view = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let text = "";
  for (let i = 0; i < view.length; i += 0x8000) text += String.fromCharCode(...view.subarray(i, i + 0x8000));
  return btoa(text);
};
"""


@pytest.fixture(scope="module")
def page(server):
    """One Chromium page on the server's origin with the script loaded as the test page loads it."""
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        opened = browser.new_page()
        opened.goto(server.url + "/healthz")
        opened.add_script_tag(url="/static/inbrowser/preprocess.js")
        opened.add_script_tag(content=HELPERS)
        assert opened.evaluate("typeof PinpointPreprocess.crop") == "function"
        yield opened
        browser.close()


def b64(data: bytes | np.ndarray) -> str:
    return base64.b64encode(data.tobytes() if isinstance(data, np.ndarray) else data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


def spec_json(spec: CropSpec) -> dict:
    """A CropSpec as GET /v1/config describes it to the page."""
    return {"width": spec.width, "height": spec.height, "channels": spec.channels, "fraction": spec.fraction,
            "min_px": spec.min_px, "box": list(spec.box) if spec.box else None, "keep_aspect": spec.keep_aspect,
            "resize": spec.resize}


def random_images(rng) -> list[np.ndarray]:
    """Noise (every pixel differs from its neighbours, so any misplaced tap shows) and smooth
    gradients (rounding of near-equal sums shows), of sizes from tiny to a few hundred pixels."""
    images = []
    for width, height in [(7, 5), (64, 48), (300, 200), (123, 257), (31, 400), (400, 31), (256, 256)]:
        images.append(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        yy, xx = np.mgrid[0:height, 0:width]
        images.append(np.stack([xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1),
                                (xx + 2 * yy) % 256], axis=-1).astype(np.uint8))
    return images


def crop_cases(rng, images):
    """(image index, CropSpec, x, y): every filter, grey and colour, fraction windows and fixed boxes
    (larger and smaller than the output: down- and upscaling), points in the middle, on the edges and
    corners, whole and fractional."""
    cases = []
    for index, image in enumerate(images):
        height, width = image.shape[:2]
        points = [(width / 2, height / 2), (0.0, 0.0), (width - 0.5, height - 0.5), (0.0, height - 0.5),
                  (width * 0.9, 3.25)]
        points += [(float(rng.uniform(0, width)), float(rng.uniform(0, height))) for _ in range(3)]
        for n, (x, y) in enumerate(points):
            for resize in RESIZE_FILTERS:
                out_w, out_h = [(24, 24), (32, 16), (5, 9), (96, 64), (1, 1), (13, 7)][(n + index) % 6]
                kind = (n + len(cases)) % 4
                spec = CropSpec(
                    width=out_w, height=out_h, channels=(1, 3)[(n + index + len(cases)) % 2], resize=resize,
                    fraction=(0.15, 0.5, None, 1.0)[kind], min_px=(24, 3, 8, 40)[kind],
                    box=((int(rng.integers(1, 2 * out_w + 2)), int(rng.integers(1, 2 * out_h + 2)))
                         if kind == 2 else None),
                    keep_aspect=bool((n + index) % 3))
                cases.append((index, spec, x, y))
        # A window of exactly the output size at whole pixels: Pillow copies it (ImagingCrop).
        cases.append((index, CropSpec(width=4, height=3, fraction=None, box=(4, 3), keep_aspect=False), 10.0, 9.5))
    return cases


def test_crops_are_the_servers_byte_for_byte_for_every_filter_window_and_point(page):
    rng = np.random.default_rng(15)
    images = random_images(rng)
    cases = crop_cases(rng, images)
    answers = page.evaluate("""([images, cases]) => {
      const pixels = images.map(([data, width, height]) => ({rgb: b64bytes(data), width, height}));
      return cases.map(([index, spec, x, y]) => {
        const {rgb, width, height} = pixels[index];
        return [PinpointPreprocess.cropBox(spec, width, height, x, y),
                bytesb64(PinpointPreprocess.crop(rgb, width, height, spec, x, y))];
      });
    }""", [[[b64(image), image.shape[1], image.shape[0]] for image in images],
           [[index, spec_json(spec), x, y] for index, spec, x, y in cases]])

    wrong = {}
    for (index, spec, x, y), (box, cropped) in zip(cases, answers):
        image = images[index]
        height, width = image.shape[:2]
        decoded = DecodedImage(rgb=Image.fromarray(image), format="PNG", width=width, height=height)
        assert tuple(box) == crop_box(spec, width, height, x, y)  # the same doubles, not merely close
        if unb64(cropped) != crop(decoded, spec, x, y).tobytes():
            wrong.setdefault(spec.resize, []).append((image.shape, spec, x, y))
    assert not wrong, {resize: f"{len(found)} crops differ, e.g. {found[0]}" for resize, found in wrong.items()}
    assert len(cases) > 400


def test_grey_is_pillows_L_and_transparency_is_flattened_onto_white_as_the_server_does(page):
    # Every (colour, alpha) pair: 256 alphas x 256 colour triples.
    values = np.arange(256, dtype=np.uint8)
    colours = np.stack([values, 255 - values, (values.astype(int) * 7 % 256).astype(np.uint8)], axis=-1)
    rgba = np.concatenate([np.tile(colours, (256, 1)), np.repeat(values, 256)[:, None]], axis=1)
    rgba = rgba.reshape(256, 256, 4)
    rgb = np.random.default_rng(1).integers(0, 256, (64, 1024, 3), dtype=np.uint8)

    flat, grey = page.evaluate("""([rgba, rgb, n]) => [
      bytesb64(PinpointPreprocess.flattenOnWhite(b64bytes(rgba))),
      bytesb64(PinpointPreprocess.toGrey(b64bytes(rgb), n)),
    ]""", [b64(rgba), b64(rgb), 64 * 1024])

    from service.classify.imaging import _to_rgb  # what decode does to an image with alpha
    assert unb64(flat) == np.asarray(_to_rgb(Image.fromarray(rgba, "RGBA"))).tobytes()
    assert unb64(grey) == np.asarray(Image.fromarray(rgb).convert("L")).tobytes()


INPUTS = [
    InputSpec(tensor="x", kind="image", height=6, width=5, channels=3, dtype="float32"),
    InputSpec(tensor="x", kind="image", height=6, width=5, channels=3, dtype="float32", scale=1 / 255),
    InputSpec(tensor="x", kind="image", height=6, width=5, channels=3, dtype="float32", scale=1 / 127.5, offset=-1.0),
    InputSpec(tensor="x", kind="image", height=6, width=5, channels=3, dtype="float32",
              mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375)),
    InputSpec(tensor="x", kind="image", height=6, width=5, channels=3, dtype="float32",
              mean=(0.485 * 255, 0.456 * 255, 0.406 * 255), std=(0.229 * 255, 0.224 * 255, 0.225 * 255), layout="nchw"),
    InputSpec(tensor="x", kind="image", height=6, width=5, channels=1, dtype="float32", mean=(127.5,), std=(64.0,)),
    InputSpec(tensor="x", kind="flat", height=6, width=5, channels=3, dtype="float32", scale=0.1, offset=0.3),
    InputSpec(tensor="x", kind="image", height=6, width=5, channels=3, dtype="uint8"),
    InputSpec(tensor="x", kind="image", height=6, width=5, channels=3, dtype="uint8", layout="nchw"),
    InputSpec(tensor="x", kind="flat", height=6, width=5, channels=1, dtype="uint8"),
]


def test_the_model_input_is_numpys_float32_values_in_the_models_layout(page):
    rng = np.random.default_rng(3)
    crops = [rng.integers(0, 256, (spec.height, spec.width, spec.channels), dtype=np.uint8) for spec in INPUTS]
    crops[0][0, 0] = 0  # the extremes too
    crops[0][-1, -1] = 255
    fed = page.evaluate("""(cases) => cases.map(([spec, crop]) => {
      const {data, dims, type} = PinpointPreprocess.feed(spec, b64bytes(crop));
      return [bytesb64(data), dims, type];
    })""", [[{**spec.__dict__, "mean": spec.mean, "std": spec.std}, b64(crop)] for spec, crop in zip(INPUTS, crops)])

    for spec, crop_, (data, dims, dtype) in zip(INPUTS, crops, fed):
        expected = prepare(spec, crop_[np.newaxis])
        assert (dims, dtype) == (list(expected.shape), str(expected.dtype)), spec
        assert unb64(data) == expected.tobytes(), spec  # bit for bit, not approximately


def test_scores_and_top_k_are_the_answers_the_server_gives(page):
    rng = np.random.default_rng(4)
    rows = [rng.normal(0, 3, n).astype(np.float32) for n in (1, 3, 7, 8, 10, 17, 129, 300, 1000)]
    rows.append(np.array([2.0, 5.0, 5.0, -1.0, 5.0, 0.0], np.float32))  # ties keep label order
    rows.append(np.array([0.25, 0.5, 0.25, 0.0078125, 1.5, -0.5], np.float32))  # probabilities as is, clipped
    rows.append(np.array([0.1, np.nan, 0.3], np.float32))  # NaN scores 0
    cases = [(row, softmax) for row in rows for softmax in (True, False)]
    labels = [[f"label {i}" for i in range(len(row))] for row, _ in cases]
    answers = page.evaluate("""(cases) => cases.map(([row, softmax, labels]) => {
      const scores = PinpointPreprocess.scores(new Float32Array(row.map((v) => v === null ? NaN : v)), softmax);
      return [Array.from(scores), PinpointPreprocess.topK(labels, scores, 5)];
    })""", [[[None if np.isnan(v) else float(v) for v in row], softmax, names]
            for (row, softmax), names in zip(cases, labels)])

    for (row, softmax), names, (scores, top) in zip(cases, labels, answers):
        expected = model_run.probabilities(row[np.newaxis], softmax)[0]
        # Math.exp and numpy's exp may differ in the last bit; the sum's order is numpy's own.
        np.testing.assert_allclose(scores, expected, rtol=1e-15, atol=0)
        assert [(t["label"], t["score"]) for t in top] == [
            (label.label, label.score) for label in pipeline._top_k(expected, names, 5)]


def png_with_alpha() -> bytes:
    rng = np.random.default_rng(5)
    rgba = rng.integers(0, 256, (23, 37, 4), dtype=np.uint8)
    rgba[:, :5, 3] = 0  # fully transparent
    rgba[:, 5:10, 3] = 255  # opaque
    rgba[:, 10:14, 3] = rng.integers(1, 8, (23, 4))  # nearly transparent: colour kept only if straight alpha is
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_turned_by_exif(orientation=6) -> bytes:
    """A 60x40 photo-like JPEG stored sideways, to be shown turned (orientation 6: 40x60)."""
    yy, xx = np.mgrid[0:40, 0:60]
    image = np.stack([xx * 4, yy * 6, (xx + yy) * 2 % 256], axis=-1).astype(np.uint8)
    image[8:16, 8:30] = (250, 30, 30)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=92, exif=exif.tobytes())
    return buffer.getvalue()


def test_files_decode_to_the_servers_pixels_png_exactly_and_jpeg_closely(page):
    files = {"png": (png_with_alpha(), "image/png"), "jpeg": (jpeg_turned_by_exif(), "image/jpeg")}
    spec = CropSpec(width=16, height=16, fraction=0.5, resize="bilinear")
    seen = page.evaluate("""async ([files, spec]) => {
      const out = {};
      for (const [name, [data, type]] of Object.entries(files)) {
        const {width, height, rgb, via} = await PinpointPreprocess.pixelsOf(new Blob([b64bytes(data)], {type}));
        const crop = PinpointPreprocess.crop(rgb, width, height, spec, 3, 4);
        out[name] = [width, height, bytesb64(rgb), bytesb64(crop), via];
      }
      return out;
    }""", [{name: [b64(data), kind] for name, (data, kind) in files.items()}, spec_json(spec)])

    for name, (data, _) in files.items():
        server = decode(data, ImageLimits())  # reduce=1: what the browser can do too
        width, height, rgb, cropped, via = seen[name]
        # Straight alpha needs WebGL: a 2D canvas premultiplies and loses colour at low alpha.
        assert via == "webgl", f"{name} was read through a {via} canvas"
        assert (width, height) == (server.width, server.height) == server.rgb.size, name
        mine = np.frombuffer(unb64(rgb), np.uint8).reshape(height, width, 3)
        theirs = np.asarray(server.rgb)
        if name == "png":
            assert mine.tobytes() == theirs.tobytes()
            assert unb64(cropped) == crop(server, spec, 3, 4).tobytes()
        else:
            difference = np.abs(mine.astype(int) - theirs)
            print(f"JPEG decode, browser vs Pillow: max {difference.max()}, mean {difference.mean():.3f} levels")
            assert (width, height) == (40, 60)  # turned upright, as imaging.probe reports it
            assert difference.max() <= 8 and difference.mean() < 1.0
            # The red bar is where the server sees it (stored at x 8..30, y 8..16; turned 90° clockwise;
            # its inside: JPEG blurs the edges of a red bar).
            assert (mine[10:28, 26:30, 0] > 200).all() and (theirs[10:28, 26:30, 0] > 200).all()


def test_the_header_states_the_format_and_size_pillow_reads_and_probe_refuses_as_the_server(page):
    """PinpointPreprocess.header (what browser mode checks the limits with, before decoding) against
    Pillow on every accepted format and its variants: JPEG baseline and progressive with EXIF and an
    ICC profile in front of the frame header, PNG, GIF, BMP (bottom-up and top-down), WebP lossy,
    lossless and extended (alpha); TIFF is named, not sized. probe then refuses as imaging.probe does."""
    from PIL import ImageCms

    rng = np.random.default_rng(7)
    pixels = Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8))  # 53×37: width ≠ height
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x0112] = 6
    files = {}

    def save(name, image, **options):
        buffer = io.BytesIO()
        image.save(buffer, **options)
        files[name] = buffer.getvalue()

    save("jpeg", pixels, format="JPEG", quality=90, exif=exif.tobytes(), icc_profile=icc)
    save("jpeg-progressive", pixels, format="JPEG", progressive=True, icc_profile=icc)
    save("png", pixels, format="PNG")
    save("gif", pixels.convert("P"), format="GIF")
    save("bmp", pixels, format="BMP")
    save("webp-lossy", pixels, format="WEBP", quality=80)
    save("webp-lossless", pixels, format="WEBP", lossless=True)
    save("webp-alpha", pixels.convert("RGBA"), format="WEBP", quality=80)
    save("tiff", pixels, format="TIFF")
    top_down = bytearray(files["bmp"])
    top_down[22:26] = (-37).to_bytes(4, "little", signed=True)  # a negative height: rows stored top-down
    files["bmp-top-down"] = bytes(top_down)

    seen = page.evaluate("""async (files) => {
      const out = {};
      for (const [name, data] of Object.entries(files)) {
        out[name] = await PinpointPreprocess.header(new Blob([b64bytes(data)]));
      }
      return out;
    }""", {name: b64(data) for name, data in files.items()})
    for name, data in files.items():
        opened = Image.open(io.BytesIO(data))
        fmt = {"MPO": "JPEG"}.get(opened.format, opened.format)
        sized = name != "tiff"
        assert seen[name] == {"format": fmt, "width": 53 if sized else None, "height": 37 if sized else None}, name
        assert opened.size == (53, 37), name

    limits = {"max_body_bytes": 20 * 2**20, "max_pixels": 53 * 37 - 1, "max_side": 12_000,
              "formats": ["JPEG", "PNG", "WEBP", "GIF", "BMP", "MPO"]}
    refused = page.evaluate("""async ([files, limits]) => {
      const out = {};
      for (const [name, data] of Object.entries(files)) {
        try {
          await PinpointPreprocess.probe(new Blob([b64bytes(data)]), limits);
          out[name] = null;
        } catch (error) {
          out[name] = [error.code, error.message];
        }
      }
      return out;
    }""", [{name: b64(data) for name, data in files.items()}, limits])
    server_limits = ImageLimits(max_pixels=limits["max_pixels"], max_side=limits["max_side"],
                                formats=tuple(limits["formats"]))
    for name, data in files.items():
        with pytest.raises(PinpointError) as caught:
            decode(data, server_limits)
        assert refused[name] == [caught.value.code, caught.value.message], name
