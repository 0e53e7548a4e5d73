"""What travels on the worker hop (service/processes/hop.py), declared once.

An API worker calls the model runner with one of the `Op`s, which are the methods of the Runner
interface (service/processes/runner.py) that cross processes; the runner answers what the method
returned, or a `Failure` that the worker raises again as the same error class
(service/processes/failures.py). On the wire a call is `(op, args)` and an answer `(ok, value)`: plain
tuples whose op is a plain string, because this is the hot path (a member of an Enum pickles in ~9 µs,
a string in ~1; a round trip costs ~300 µs in all, docs/benchmarks.md).
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Literal

from service.serving.manager import ManagerState


class Op(enum.StrEnum):
    """The runner's calls, named as the Runner methods that answer them."""

    STATE = "state"  # RunnerState: what the worker resolves versions from (a few times a second)
    INFER = "infer"  # (feeds, deadline) -> Outcome: run crops (or a TensorCall's named tensors) on the
    # exact versions the worker resolved
    SHADOW = "shadow"  # (key, rows, served top-1 labels) -> None: queue a shadow run, off the answer path
    POLL = "poll"  # () -> None: read the model repository again
    WEB = "web"  # (name, version) -> WebModel: the version's web copy, exported on first ask


@dataclasses.dataclass(slots=True)
class RunnerState:
    """The runner's state as a worker follows it: its manager's, and how many jobs wait for inference."""

    manager: ManagerState
    queue_depth: int


@dataclasses.dataclass(frozen=True, slots=True)
class Failure:
    """An error the runner raised, as it travels: `code` names its class (failures.py), the rest is the error's."""

    code: str
    message: str
    retry_after: float | None = None


Call = tuple[str, tuple]  # (an Op's value, the method's arguments)
Answer = tuple[Literal[True], Any] | tuple[Literal[False], Failure]  # (True, what the op returned) or (False, why not)
