"""What a demo model costs per crop, on the backend Pinpoint's engine would load it with.

    python -m service.tools.train.cost                    # the three demo models in models/, batch 1, 16 and 32
    python -m service.tools.train.cost --models /tmp/m --only theme --repeats 200

Each version is loaded by service.serving.loader exactly as the engine's runtime loads it (the backend
setting's default: ONNX Runtime for a frozen GraphDef that converts and verifies, TensorFlow
otherwise), with the runtime's thread settings, then run on prepared crops. The figure is the
median wall time of one call divided by the batch size, so it is the model's own cost per crop
(no decode, no crop, no queue). The machine may be shared: the load average is printed beside it.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np


def servable(models_dir: Path, labels_dir: Path, name: str):
    from service.config import load_settings
    from service.serving import loader
    from service.tools.train import run_frozen

    settings = load_settings()
    return loader.load_servable(run_frozen.spec(models_dir, labels_dir, name),
                                loader.LoadOptions.of(settings, onnx_cache=None))


def per_crop_ms(model, batch: int, repeats: int, seed: int = 0) -> float:
    from service.classify.preprocess import prepare

    i = model.spec.input
    crops = np.random.default_rng(seed).integers(0, 256, (batch, i.height, i.width, i.channels), dtype=np.uint8)
    rows = prepare(i, crops)
    for _ in range(5):
        model.run(rows)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.run(rows)
        times.append(time.perf_counter() - started)
    return float(np.median(times)) * 1000 / batch


def measure(models_dir: Path, labels_dir: Path, name: str, repeats: int = 100) -> dict:
    model = servable(models_dir, labels_dir, name)
    try:
        return {"backend": model.backend, "batch1_ms": per_crop_ms(model, 1, repeats),
                "batch16_ms": per_crop_ms(model, 16, max(10, repeats // 6)),
                "batch32_ms": per_crop_ms(model, 32, max(10, repeats // 8)), "load": os.getloadavg()[0]}
    finally:
        model.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service.tools.train.cost", description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--labels", type=Path, default=Path("labels"))
    parser.add_argument("--only", choices=("color", "theme", "pattern"))
    parser.add_argument("--repeats", type=int, default=100)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for name in [args.only] if args.only else ["color", "theme", "pattern"]:
        cost = measure(args.models, args.labels, name, args.repeats)
        print(f"{name}: {cost['backend']}, per crop {cost['batch1_ms']:.3f} ms at batch 1, "
              f"{cost['batch16_ms']:.3f} ms at batch 16, {cost['batch32_ms']:.3f} ms at batch 32 "
              f"(load average {cost['load']:.1f} on {os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the generator's workers): what a training
    run cost, for its card."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
