"""What the work of one request costs in this process, with Pinpoint's own code and no serving around it:
decoding the image, cutting and preparing each model's crop, and each model's inference run in batches.
Issue #25 sets a server's CPU per request beside this sum (its "floor"): what a server spends above it
is serving overhead (HTTP, multipart, the hop to the runner, logs, metrics, the feedback log).

CPU is the process's (every thread: ONNX Runtime's pool too), the best of a few rounds, per request.
Inference is measured through the runtime (the same thread and batching a server uses) at BATCH crops
a run, the size batches reach under load, and at 1 crop a run, what an idle server runs.
"""

from __future__ import annotations

import dataclasses
import time

from service.classify.pipeline import Pipeline
from service.classify.request import Upload
from service.serving import model_run
from service.serving.manager import ModelRef

BATCH = 8


@dataclasses.dataclass
class Floor:
    decode_ms: float  # the image, decoded as the server decodes it (reduced scale, top rows: what the crops allow)
    crops_ms: float  # every model's crop cut and prepared (resized, normalised) for one point
    infer_ms: dict[str, float]  # model -> CPU-ms per crop at BATCH crops a run
    infer_single_ms: dict[str, float]  # model -> CPU-ms per crop at 1 crop a run

    @property
    def total_ms(self) -> float:
        """decode + crops + batched inference of every model: one request's work under load."""
        return self.decode_ms + self.crops_ms + sum(self.infer_ms.values())

    @property
    def total_single_ms(self) -> float:
        """The same with inference one crop a run, as an idle server runs it."""
        return self.decode_ms + self.crops_ms + sum(self.infer_single_ms.values())


def cpu_seconds() -> float:
    """CPU time this process has used: every thread, user and system (CLOCK_PROCESS_CPUTIME_ID: to the
    nanosecond, where os.times counts 10 ms ticks)."""
    return time.process_time()


def _cpu_ms(work, repeats: int, rounds: int = 5) -> float:
    """CPU-ms per call of `work`, the best of `rounds` rounds of `repeats` calls."""
    work()  # warm
    best = float("inf")
    for _ in range(rounds):
        before = cpu_seconds()
        for _ in range(repeats):
            work()
        best = min(best, (cpu_seconds() - before) * 1000 / repeats)
    return best


def _repeats(work, budget_s: float = 0.3) -> int:
    """How many calls of `work` fill about budget_s of wall time."""
    started = time.perf_counter()
    work()
    return max(3, int(budget_s / max(time.perf_counter() - started, 1e-5)))


def measure(engine, image: bytes, point: tuple[int, int], names: list[str] | None, budget_s: float = 0.3) -> Floor:
    """The floor of the upload of one point on `image` for the models `names` (None: every one served),
    on an open in-process Engine (service.engine.Engine.open). Each figure is the best of five rounds
    of about `budget_s` each."""
    refs = [ModelRef.parse(name) for name in names or ()]
    pipeline = engine.pipeline

    def held(work):
        return model_run.run(engine.manager, refs, work, deadline_ms=600_000, partial=False)

    def floor(models: model_run.Models) -> Floor:
        versions = models.versions
        crops = [version.spec.crop for version in versions]

        def decode():
            return pipeline.decode(Upload(image), crops, lambda width, height: [point])

        decoded = decode()
        decode_ms = _cpu_ms(decode, _repeats(decode, budget_s))

        def cut():
            return Pipeline.feeds(decoded, [point], versions)

        crops_ms = _cpu_ms(cut, _repeats(cut, budget_s))
        batched, single = {}, {}
        for version in versions:
            rows = Pipeline.feeds(decoded, [point] * BATCH, [version])[version.key]

            def run_batch(rows=rows, version=version):
                models.run(version, rows)

            def run_one(rows=rows[:1], version=version):
                models.run(version, rows)

            batched[version.name] = _cpu_ms(run_batch, _repeats(run_batch, budget_s)) / BATCH
            single[version.name] = _cpu_ms(run_one, _repeats(run_one, budget_s))
        return Floor(decode_ms, crops_ms, batched, single)

    return held(floor)


def describe(floor: Floor) -> str:
    models = ", ".join(f"{name} {ms:.2f}" for name, ms in sorted(floor.infer_ms.items()))
    singles = ", ".join(f"{name} {ms:.2f}" for name, ms in sorted(floor.infer_single_ms.items()))
    return (f"decode {floor.decode_ms:.2f} + crops {floor.crops_ms:.2f} + inference at {BATCH} crops a run "
            f"({models}) = **{floor.total_ms:.2f} CPU-ms**; with one crop a run ({singles}): "
            f"{floor.total_single_ms:.2f}")
