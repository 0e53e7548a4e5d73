"""ServableId: one version of one model, the unit that loads, serves and unloads (TF Serving's word).

Its one written form is `name@version` ("color@2"): the runtime keys servables by it, logs and errors
show it, and the model runner's messages carry it. This module is the only place that writes it and
the only place that reads it back. (A request's `color@canary` is a reference, not an id: manager.ModelRef.)
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, order=True)
class ServableId:
    name: str
    version: int

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"

    @classmethod
    def parse(cls, text: str) -> ServableId:
        """`name@version` -> ServableId; ValueError for anything str() would not have written."""
        name, at, version = text.rpartition("@")
        if not at or not name or not (version.isascii() and version.isdigit()) or int(version) < 1:
            raise ValueError(f"{text!r} is not a servable id (name@version, version a positive integer)")
        return cls(name, int(version))


class Identified:
    """For what is one servable and carries its `name` and `version` (a version the manager tracks, a
    version's spec): its id, and the id's written form, by which the runtime keys it and logs name it."""

    name: str
    version: int

    @property
    def id(self) -> ServableId:
        return ServableId(self.name, self.version)

    @property
    def key(self) -> str:
        return str(self.id)
