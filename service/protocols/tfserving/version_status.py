"""GetModelStatus's answer as TF Serving prints it (get_model_status_impl.cc; protobuf JSON with
always_print_fields_with_no_presence, int64 as strings, enums by name).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

STATES = ("UNKNOWN", "START", "LOADING", "AVAILABLE", "UNLOADING", "END")


@dataclass(frozen=True)
class VersionStatus:
    version: int
    state: Any  # a STATES name, or an enum member whose .name is one
    error_code: str | None = None  # TF error code name; None: OK, or UNKNOWN when there is a message
    error_message: str = ""


def _version_entry(item: Any) -> dict[str, Any]:
    if not isinstance(item, VersionStatus):
        item = VersionStatus(*item) if isinstance(item, (tuple, list)) else VersionStatus(**item)
    state = getattr(item.state, "name", item.state)
    state = str(state).upper()
    if state not in STATES:
        raise ValueError(f"unknown model version state {item.state!r}")
    code = item.error_code or ("UNKNOWN" if item.error_message else "OK")
    return {
        "version": str(int(item.version)),
        "state": state,
        # ToStatusProto keeps the message only for an error
        "status": {"error_code": code, "error_message": item.error_message if code != "OK" else ""},
    }


def status_document(versions: Iterable[Any]) -> dict[str, Any]:
    """GetModelStatusResponse as TF Serving prints it, newest version first (its VersionMap order).

    Each item a VersionStatus, a (version, state[, error_code[, error_message]]) tuple or a dict of
    those fields. Giving no version is the caller's 404 (see no_versions)."""
    entries = sorted((_version_entry(v) for v in versions), key=lambda e: -int(e["version"]))
    return {"model_version_status": entries}
