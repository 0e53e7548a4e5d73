"""TensorFlow's C++ start-up notices ("oneDNN custom operations are on", "This TensorFlow binary is
optimized to use available CPU instructions", absl's "All log messages before absl::InitializeLog()")
are written straight to file descriptor 2 while `import tensorflow` runs, whatever TF_CPP_MIN_LOG_LEVEL
says, twice (TensorFlow and its Keras loader each load the library). The command line imports
TensorFlow here first, with descriptor 2 pointed at /dev/null for the length of the import only, so
a command's output holds its own report and errors. An import that fails still raises its error, with
stderr back in place."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys


@contextlib.contextmanager
def native_stderr_silenced():
    """Descriptor 2 goes to /dev/null inside the block; Python's sys.stderr is flushed on both sides."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow() -> None:
    """Import TensorFlow (and Keras, when installed) without their C++ notices; once per process."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules:
        return
    with native_stderr_silenced():  # imported for what importing does: nothing here uses the modules
        importlib.import_module("tensorflow")
        try:
            importlib.import_module("keras")
        except ImportError:
            pass
