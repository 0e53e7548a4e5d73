"""The benchmark's images and request bodies, made from a photograph that ships with scikit-image."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import numpy as np
from PIL import Image


def photo(size: tuple[int, int], seed: int = 0) -> bytes:
    """A JPEG of a real photograph at `size`, with a little sensor-like grain when enlarged."""
    from skimage import data

    image = Image.fromarray(data.coffee()).resize(size, Image.Resampling.BICUBIC)
    if size[0] * size[1] > 1_000_000:
        pixels = np.asarray(image).astype(np.int16)
        pixels += np.random.default_rng(seed).integers(-3, 4, pixels.shape, dtype=np.int16)
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def points(size: tuple[int, int], count: int) -> list[list[int]]:
    rng = np.random.default_rng(count)
    return [[int(rng.integers(0, size[0])), int(rng.integers(0, size[1]))] for _ in range(count)]


def multipart(image: bytes, fields: dict[str, str]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = b""
    for name, value in fields.items():
        body += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    body += (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="photo.jpg"\r\n'
             f"Content-Type: image/jpeg\r\n\r\n").encode() + image + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def request(kind: str, image: bytes, name: str, size: tuple[int, int], count: int) -> tuple[str, bytes, str]:
    """(path with query, body, content type) for one input form: multipart, raw or path."""
    where = points(size, count)
    fields = {"points": json.dumps(where)} if count > 1 else {"x": str(where[0][0]), "y": str(where[0][1])}
    if kind == "multipart":
        body, content_type = multipart(image, fields)
        return "/v1/classify", body, content_type
    if kind == "raw":
        query = "&".join(f"{k}={v}" for k, v in fields.items()).replace(" ", "")
        return f"/v1/classify?{query}", image, "image/jpeg"
    document = {"path": name, **({"points": where} if count > 1 else {"x": where[0][0], "y": where[0][1]})}
    return "/v1/classify", json.dumps(document).encode(), "application/json"


def write_images(root: Path) -> dict[str, tuple[bytes, tuple[int, int]]]:
    images = {"640x360.jpg": (640, 360), "12mp.jpg": (4000, 3000)}
    made = {}
    for name, size in images.items():
        data = photo(size)
        (root / name).write_bytes(data)
        made[name] = (data, size)
    return made
