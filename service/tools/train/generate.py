"""Render a generated set in chunks, in parallel, with the same result for any number of workers.

Each chunk of patches has its own random generator, spawned from the set's seed, so a set depends
only on (seed, labels, size, resize): `workers` changes how fast it is made, never what is made.
Workers are spawned (not forked), so a parent that has already started TensorFlow is safe.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os

import numpy as np

CHUNK = 128


def _chunk(args) -> np.ndarray:
    module, names, indices, seed_state, size, resize = args
    import importlib

    patch = importlib.import_module(module).patch
    rng = np.random.default_rng(np.random.SeedSequence(**seed_state))
    return np.stack([patch(rng, names[k], size, resize) for k in indices])


def render(module: str, names: tuple[str, ...], labels: np.ndarray, seed: int, size: int, resize: str,
           workers: int | None = None) -> np.ndarray:
    """uint8 [len(labels), size, size, 3]: patch k drawn by `module`.patch for label names[labels[k]]."""
    chunks = [labels[i:i + CHUNK] for i in range(0, len(labels), CHUNK)]
    seeds = np.random.SeedSequence(seed).spawn(len(chunks))
    jobs = [(module, names, chunk, {"entropy": s.entropy, "spawn_key": s.spawn_key}, size, resize)
            for chunk, s in zip(chunks, seeds)]
    workers = workers or int(os.environ.get("PINPOINT_TRAIN_WORKERS", "2"))
    if workers <= 1 or len(jobs) == 1:
        return np.concatenate([_chunk(job) for job in jobs])
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return np.concatenate(list(pool.map(_chunk, jobs)))
