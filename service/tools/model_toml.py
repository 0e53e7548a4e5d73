"""The one writer of model.toml, a version's serving config (the format is docs/models.md; the server
reads it in service/serving/repository.py).

Three tools write one: `pinpoint convert` (a converted version), `pinpoint inspect --config` (a starting
config, its guesses noted) and `pinpoint train-demo` (the demo models). Each says what goes in the
file as values, with a note where a value needs one; this module alone lays out the text: sections,
key order, quoting, and how numbers and booleans are spelled.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

# An entry of a section: (key, value), (key, value, note: written after the value as a comment), or a
# text alone: a comment line of its own (a setting shown but left out, for instance).
Entry = tuple[str, object] | tuple[str, object, str] | str


def render(*, comments: Sequence[str], top: Sequence[Entry], input: Sequence[Entry], output: Sequence[Entry],
           crop: Sequence[Entry]) -> str:
    """The file: `comments` as its first lines, the top-level settings, then [input], [output], [crop]."""
    lines = [f"# {comment}" for comment in comments]
    lines += [_line(entry) for entry in top]
    for title, entries in (("input", input), ("output", output), ("crop", crop)):
        lines += ["", f"[{title}]", *(_line(entry) for entry in entries)]
    return "\n".join(lines) + "\n"


def crop(fraction: float, min_px: int, resize: str = "bilinear", fraction_note: str = "") -> list[Entry]:
    """The [crop] every tool writes: a window `fraction` of the image around the point, at least
    `min_px`, resized to the input keeping its aspect."""
    return [("fraction", fraction, fraction_note) if fraction_note else ("fraction", fraction),
            ("min_px", min_px), ("keep_aspect", True), ("resize", resize)]


def _line(entry: Entry) -> str:
    if isinstance(entry, str):
        return f"# {entry}"
    key, value, *note = entry
    text = f"{key} = {_value(value)}"
    return f"{text}  # {note[0]}" if note else text


def _value(value: object) -> str:
    if isinstance(value, bool):  # before int: a bool is an int
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return repr(float(value))  # the shortest text that reads back as the same float (numpy's too)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a TOML basic string: JSON's escapes are TOML's
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    raise TypeError(f"model.toml has no spelling for {type(value).__name__}")
