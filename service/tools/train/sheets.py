"""Contact sheets for labelling real-photo points by eye, before any model answers them.

    python -m service.tools.train.sheets color sklearn:china.jpg:50,40 astronaut:100,400 --out sheet.png
    python -m service.tools.train.sheets pattern --set holdout --out holdout.png     # points already in the check

Each panel shows the neighbourhood of the point with the window Pinpoint crops drawn in magenta and
the point marked in green, beside the crop the model is given (its input size, enlarged without
smoothing). This is how tests/data/real_points.json was labelled: a person reads the panels and
writes down their answer and the alternatives they would accept; the model is never run.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from PIL import Image, ImageDraw

from service.classify.imaging import CropSpec, crop_box


def _spec(model: str) -> CropSpec:
    from service.tools.train import demos, topics

    if model == "theme":
        return CropSpec(width=topics.SIZE, height=topics.SIZE, fraction=topics.FRACTION, min_px=topics.MIN_PX,
                        keep_aspect=True, resize=topics.RESIZE)
    demo = demos.get(model)
    return CropSpec(width=demo.size, height=demo.size, fraction=demo.fraction, min_px=demo.min_px,
                    keep_aspect=True, resize=demo.resize)


def _ticks(draw: ImageDraw.ImageDraw, x: float, y: float, inner: float, outer: float) -> None:
    for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        draw.line([(x + dx * inner, y + dy * inner), (x + dx * outer, y + dy * outer)], fill=(0, 255, 0))


def panel(model: str, image: Image.Image, x: float, y: float, caption: str, side: int = 180) -> Image.Image:
    spec = _spec(model)
    left, top, right, bottom = crop_box(spec, image.width, image.height, x, y)
    window = right - left
    crop = image.resize((spec.width, spec.height), Image.Resampling[spec.resize.upper()],
                        box=(left, top, right, bottom))
    enlarged = crop.resize((side, side), Image.Resampling.NEAREST)
    _ticks(ImageDraw.Draw(enlarged), (x - left) / window * side, (y - top) / window * side, 6, 14)
    half = window * (2.5 if model == "color" else 1.1)  # the neighbourhood: 5 (2.2) windows across
    box = (x - half, y - half, x + half, y + half)
    context = image.crop(tuple(round(v) for v in box)).resize((side, side), Image.Resampling.BILINEAR)
    scale = side / (2 * half)
    draw = ImageDraw.Draw(context)
    draw.rectangle([(left - box[0]) * scale, (top - box[1]) * scale, (right - box[0]) * scale,
                    (bottom - box[1]) * scale], outline=(255, 0, 255))
    _ticks(draw, (x - box[0]) * scale, (y - box[1]) * scale, 4, 10)
    out = Image.new("RGB", (2 * side + 6, side + 16), (40, 40, 40))
    out.paste(context, (0, 16))
    out.paste(enlarged, (side + 6, 16))
    ImageDraw.Draw(out).text((2, 2), caption, fill=(255, 255, 0))
    return out


def sheet(model: str, points: list[tuple[str, float, float]], columns: int = 3) -> Image.Image:
    from service.tools.train.realcheck import load_image

    panels = [panel(model, load_image(name), x, y, f"{n} {name} {x:g},{y:g}") for n, (name, x, y) in enumerate(points)]
    width, height = panels[0].size
    out = Image.new("RGB", (columns * (width + 4), math.ceil(len(panels) / columns) * (height + 4)))
    for n, image in enumerate(panels):
        out.paste(image, ((n % columns) * (width + 4), (n // columns) * (height + 4)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service.tools.train.sheets", description=__doc__.split("\n")[0])
    parser.add_argument("model", choices=("color", "pattern", "theme"), help="whose window to draw")
    parser.add_argument("points", nargs="*",
                        help="IMAGE:X,Y (IMAGE as in realcheck.py: astronaut, sklearn:china.jpg, ...)")
    parser.add_argument("--set", help="instead, the points of the check in this set (dev or holdout)")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    args = parser.parse_args(argv)
    if args.set:
        from service.tools.train.realcheck import load_points

        points = [(p["image"], p["x"], p["y"]) for p in load_points(None, args.model) if p.get("set") == args.set]
    else:
        points = []
        for text in args.points:
            name, _, where = text.rpartition(":")
            x, y = (float(v) for v in where.split(","))
            points.append((name, x, y))
    if not points:
        parser.error("no points")
    sheet(args.model, points).save(args.out)
    print(f"{args.out}: {len(points)} points")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
