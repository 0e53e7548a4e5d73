"""The peers' own virtual environment, .bench-venv/ at the checkout's root: made with `python -m venv`
and filled from PyPI with pinned ranges, so the peers never share (or disturb) Pinpoint's packages.

numpy, Pillow and ONNX Runtime are pinned to the exact versions Pinpoint runs with: the peers crop with
Pinpoint's own code, and the same Pillow and the same ONNX Runtime make their crops and scores the same
bytes. TensorFlow is never installed there: the peers run the models as ONNX (models.py converts them).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]  # the checkout: service/tools/bench/peers/venv.py
VENV = ROOT / ".bench-venv"
STAMP = VENV / ".installed"

# Each framework at the release line the comparison names; the servers under them as their docs install them.
PEERS = [
    "litserve>=0.2,<0.3",
    # 1.4.31 changed how a service's client holds its connections to a dependency (bentoml/BentoML#5540):
    # with 1.4.40, ~15% of the requests at c=32 failed (500, "Server disconnected" from the model
    # service); with 1.4.30, none did in the same run.
    "bentoml>=1.4,<1.4.31",
    "fastapi>=0.110,<1",
    "uvicorn[standard]>=0.29,<1",  # uvloop and httptools: what uvicorn's docs recommend for production
    "python-multipart>=0.0.9,<1",  # FastAPI's and Starlette's form parser
    "py-spy>=0.4,<0.5",  # the sampling profiler of service/tools/bench/profile.py
]


def same_as_pinpoint() -> list[str]:
    """numpy, Pillow and ONNX Runtime at the versions this (Pinpoint's) environment has."""
    return [f"{name}=={metadata.version(name)}" for name in ("numpy", "pillow", "onnxruntime")]


def requirements() -> list[str]:
    return [*PEERS, *same_as_pinpoint()]


def python() -> Path:
    return VENV / "bin" / "python"


def tool(name: str) -> Path:
    """A console script of the venv (bentoml, py-spy)."""
    return VENV / "bin" / name


def missing() -> str:
    """Why the peers cannot run here ("" when they can): no venv, or one filled for other requirements."""
    if not python().exists():
        return f"{VENV} does not exist (python -m service.tools.bench.peers --setup makes it; it needs PyPI)"
    if not STAMP.exists() or STAMP.read_text().strip() != _digest():
        return f"{VENV} was not filled for these requirements (python -m service.tools.bench.peers --setup)"
    return ""


def ensure(quiet: bool = True) -> Path:
    """Make and fill .bench-venv if it is missing or was filled for other requirements; its python."""
    if not missing():
        return python()
    if not python().exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(python()), "-m", "pip", "install", *(["-q"] if quiet else []), *requirements()]
    subprocess.run(pip, check=True)
    STAMP.write_text(_digest() + "\n")
    return python()


def versions() -> dict[str, str]:
    """The peers' installed versions, as the venv's pip reports them."""
    wanted = ("litserve", "bentoml", "fastapi", "uvicorn", "starlette", "python-multipart", "onnxruntime",
              "numpy", "pillow", "py-spy")
    code = ("import json, sys\nfrom importlib import metadata\nfound = {}\nfor name in sys.argv[1:]:\n"
            "    try:\n        found[name] = metadata.version(name)\n"
            "    except metadata.PackageNotFoundError:\n        pass\nprint(json.dumps(found))")
    import json

    done = subprocess.run([str(python()), "-c", code, *wanted], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def _digest() -> str:
    return hashlib.sha256("\n".join(requirements()).encode()).hexdigest()[:16]
