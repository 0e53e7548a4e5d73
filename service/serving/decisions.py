"""What the manager should do about one model, decided from snapshots: TF Serving's aspired-version
policy, with Pinpoint's rules. Pure functions, no lock, no I/O, no clock: the manager
(service/serving/manager.py) takes the snapshots under its lock, asks here, and carries the answer out.

The rules:
- The version policy (service/serving/version_policy.py) names the aspired versions out of the readable
  ones on disk: its own choice plus those a label or the shadow names. Each is loaded unless it is
  loading or serving already, is still unloading (reloaded at a later poll), or failed before with the
  same files (a fixed version is retried, a broken one is not retried at every poll).
- A version that is no longer aspired keeps serving until an aspired version is AVAILABLE (or until no
  version is aspired at all): a new version that fails to load never replaces a working one, and
  removing the newest version rolls back to the one before without a gap.
- A version directory that cannot be read is recorded as failed (END, with why), once per reason; one
  that was loading or serving is left alone and retired by the rules above.
- A version that is gone from disk and not loaded is forgotten.
- A label only ever points at an AVAILABLE version: while its new target is not, it keeps its old one.
"""

from __future__ import annotations

import dataclasses
import enum

from service.serving.version_policy import ModelPolicy

KEPT_SERVING = "kept serving until an aspired version is AVAILABLE"
NOT_IN_POLICY = "not in the version policy"
REMOVED = "removed from the repository"


class State(enum.Enum):
    """A version's state, as TF Serving reports them."""

    START = "START"
    LOADING = "LOADING"
    AVAILABLE = "AVAILABLE"
    UNLOADING = "UNLOADING"
    END = "END"


@dataclasses.dataclass(frozen=True)
class Known:
    """What the manager knows of one version at the moment it decides."""

    state: State
    error: str = ""  # why it failed to load (END)
    fingerprint: tuple = ()  # of the files it was loaded from


@dataclasses.dataclass(frozen=True)
class Plan:
    """What to do about one model's versions, in this order: record failures, then load, unload,
    forget and explain. Versions not named are left as they are."""

    chosen: frozenset[int]  # the versions the policy itself serves (not just keeps loaded)
    failed: dict[int, str] = dataclasses.field(default_factory=dict)  # unreadable on disk: record END with why
    load: tuple[int, ...] = ()  # ascending
    unload: dict[int, str] = dataclasses.field(default_factory=dict)  # version -> why
    forget: tuple[int, ...] = ()
    reasons: dict[int, str] = dataclasses.field(default_factory=dict)  # version -> why it is not serving ("": it is)


def plan(policy: ModelPolicy, on_disk: dict[int, tuple], broken: dict[int, str], known: dict[int, Known]) -> Plan:
    """One model's plan.

    on_disk: the readable versions in the repository -> the fingerprint of their files;
    broken: the versions whose directory could not be read -> why;
    known: the versions the manager tracks -> what it knows of each."""
    failed = {number: why for number, why in broken.items()
              if number not in known or known[number].state in (State.END, State.START) and known[number].error != why}
    known = known | {number: Known(State.END, why) for number, why in failed.items()}
    aspired = policy.aspired(list(on_disk))
    load, serving_reasons = _loads(aspired, on_disk, known)
    unload, forget, retired_reasons = _retirements(aspired, on_disk, broken, known)
    return Plan(frozenset(policy.chosen(list(on_disk))), failed, load, unload, forget,
                serving_reasons | retired_reasons)


def _loads(aspired: set[int], on_disk: dict[int, tuple], known: dict[int, Known]) -> tuple[tuple[int, ...], dict]:
    """The aspired versions to load, and the reason ("") of those already loading or serving."""
    load, reasons = [], {}
    for number in sorted(aspired):
        entry = known.get(number)
        if entry is None:
            load.append(number)
        elif entry.state in (State.LOADING, State.AVAILABLE):
            reasons[number] = ""
        elif entry.state is State.END and entry.error and entry.fingerprint == on_disk[number]:
            pass  # failed before and unchanged since
        elif entry.state is not State.UNLOADING:  # (an unloading one is reloaded at a later poll)
            load.append(number)
    return tuple(load), reasons


def _retirements(aspired: set[int], on_disk: dict[int, tuple], broken: dict[int, str],
                 known: dict[int, Known]) -> tuple[dict[int, str], tuple[int, ...], dict[int, str]]:
    """What becomes of the versions no longer aspired: unloaded (with why), forgotten, or kept with a reason."""
    serving = any(known[number].state is State.AVAILABLE for number in aspired if number in known)
    unload, forget, reasons = {}, [], {}
    for number, entry in known.items():
        if number in aspired:
            continue
        if entry.state is State.AVAILABLE and (serving or not aspired):
            unload[number] = NOT_IN_POLICY if number in on_disk else REMOVED
        elif entry.state is State.AVAILABLE:
            reasons[number] = KEPT_SERVING
        elif entry.state is State.END and number not in on_disk and number not in broken:
            forget.append(number)
        elif entry.state is State.END and not entry.error:
            reasons[number] = NOT_IN_POLICY
    return unload, tuple(forget), reasons


def labels(wanted: dict[str, int], current: dict[str, int], available: set[int]) -> dict[str, int]:
    """Where each label of one model points now: at its wanted version if that is AVAILABLE, else at
    its current one if that still is; a label with neither is dropped."""
    moved = {}
    for label, number in wanted.items():
        if number in available:
            moved[label] = number
        elif label in current and current[label] in available:
            moved[label] = current[label]
    return moved
