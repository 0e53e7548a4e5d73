"""The runner's errors, carried to the API worker: an error of any class of service.errors raised in the
model runner is raised again in the worker as the same class, with the same code, message and
Retry-After, so the worker's code catches it where it would catch it in one process.

An error travels as a Failure named by its code (the contract's machine code, docs/api.md), which
selects the class it is rebuilt as. StaleVersions shares ModelUnavailable's code but the worker must
tell it apart (it looks at the runner's state again and retries), so on the hop it has a code of its
own; the rebuilt error has its class's code again, which is what a client would see. A subclass not
declared here travels as its nearest declared parent (NotForTheBrowser as NotFound); a PinpointError
with a code no class has comes back as a PinpointError with that code. Any other exception in the
runner is a bug: logged there, and here a PinpointError `internal_error` (a 500).
"""

from __future__ import annotations

from service import errors
from service.errors import PinpointError
from service.processes.messages import Failure
from service.serving.manager import StaleVersions

INTERNAL = "internal_error"

# Every class of service.errors by its code (the base class is what a code of no class comes back as),
# and the one subclass that travels under a code of its own.
CLASSES: dict[str, type[PinpointError]] = {
    **{cls.code: cls for cls in vars(errors).values()
       if isinstance(cls, type) and issubclass(cls, PinpointError) and cls is not PinpointError},
    "stale_versions": StaleVersions,
}
_CODES = {cls: code for code, cls in CLASSES.items()}


def failure(error: PinpointError) -> Failure:
    """How `error` travels: under the code of its nearest declared class, if it kept that class's code."""
    for cls in type(error).__mro__:
        code = _CODES.get(cls)
        if code is not None and error.code == cls.code:
            return Failure(code, error.message, error.retry_after)
    return Failure(error.code, error.message, error.retry_after)


def internal(error: BaseException) -> Failure:
    """A runner's bug, as the worker answers it: its kind only (the runner logged the traceback)."""
    return Failure(INTERNAL, f"the model runner failed: {type(error).__name__}")


def rebuild(failure: Failure) -> PinpointError:
    """The error the runner raised, to raise again here."""
    cls = CLASSES.get(failure.code)
    if cls is None:
        return PinpointError(failure.message, code=failure.code, retry_after=failure.retry_after)
    return cls(failure.message, retry_after=failure.retry_after)
