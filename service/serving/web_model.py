"""A web copy of one version, as described to the browser (docs/browser.md): the types the exporter
(service/serving/backends/web_export.py) makes and WebModels (service/serving/web_copies.py) hands out.
Kept apart from both so that neither imports the other's dependencies: the exporter needs ONNX, and an
API worker, which only serves the files, never imports it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from service.errors import NotFound
from service.serving.repository import ModelSpec


class NotForTheBrowser(NotFound):
    """This version has no web copy (an encoded input, a graph tf2onnx cannot convert)."""


@dataclasses.dataclass(frozen=True)
class WebFile:
    name: str  # <sha256 prefix>.onnx, under WebModel.directory
    size: int
    sha256: str
    max_difference: float  # largest change of a shown score against float32, on the check inputs


@dataclasses.dataclass(frozen=True)
class WebModel:
    spec: ModelSpec  # the version exported: its labels, input and crop go into the manifest
    input_name: str  # the ONNX graph's names, which the browser feeds and fetches
    output_name: str
    directory: Path
    files: dict[str, WebFile]  # "float32", "float16"
    source: str  # where the ONNX model comes from (model.onnx, or the verified conversion)

    def path(self, file_name: str) -> Path | None:
        """The file behind a URL's last part, if it is one of this version's."""
        if any(file.name == file_name for file in self.files.values()):
            return self.directory / file_name
        return None
