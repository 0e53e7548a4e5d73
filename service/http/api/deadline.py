"""X-Deadline-Ms: how long a caller will wait for an answer, on every route that runs a model."""

from __future__ import annotations

from service.errors import BadRequest


def deadline_ms(header: str | None, configured: float) -> float:
    """A caller may shorten its deadline with X-Deadline-Ms, never lengthen it past the configured one."""
    if header is None:
        return configured
    try:
        wanted = float(header)
    except ValueError:
        raise BadRequest("X-Deadline-Ms must be a number of milliseconds") from None
    if not wanted > 0:  # nan too
        raise BadRequest("X-Deadline-Ms must be positive")
    return min(wanted, configured)
