"""service/defaults.toml, generated from the settings' declarations in service/config.py:

    python -m service.tools.defaults_file > service/defaults.toml

Every setting with its default and its meaning, as a TOML file one can load (tests/test_config.py checks
the committed file is this output)."""

from __future__ import annotations

import json
from typing import Any

from service.config import Settings

_HEADER = """\
# Pinpoint's settings with their defaults. Copy this file and keep the lines you change
# (`pinpoint serve --config F`), or set PINPOINT_<NAME> environment variables (PINPOINT_PORT=9000),
# or pass command-line flags (--port 9000): flags beat the environment, which beats the file.
# Relative paths in this file are relative to its directory; in PINPOINT_* variables and flags, to the
# current directory; the defaults' (models, labels, var/...) to `home`: the checkout Pinpoint runs from.
# Generated from service/config.py (python -m service.tools.defaults_file > service/defaults.toml): edit that.
"""


def _toml(value: Any) -> str:
    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    return json.dumps(str(value))


def render_defaults() -> str:
    """defaults.toml: every setting with its default and its meaning, as a TOML file one can load."""
    lines = [_HEADER]
    tables = []
    for name, field in Settings.model_fields.items():
        extra = field.json_schema_extra or {}
        if isinstance(field.default, dict):
            tables.append((name, field))
            continue
        if extra.get("heading"):
            lines += ["", f"# {extra['heading']}"]
        line = f"{name} = {_toml(field.default)}"
        if field.description:
            line = f"{line:<29} # {field.description}"
        lines.append(line.rstrip())
    for name, field in tables:
        extra = field.json_schema_extra or {}
        lines.append("")
        lines += [f"# {text}".rstrip() for text in (field.description or "").splitlines()]
        lines.append(f"[{name}]")
        if extra.get("example"):
            lines.append(f"# {extra['example']}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_defaults(), end="")
