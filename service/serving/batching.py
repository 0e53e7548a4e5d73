"""The batching policy: which waiting jobs share a run, and in which order the models of a batch run.

Opportunistic, as TF Serving and Triton behave with no batch timeout: take everything already waiting,
up to `max_batch` crops, and never sleep waiting for a batch to fill, so an idle server answers a lone
request at once. Within a batch the models run one by one, cheapest first, so a request cut off by its
deadline still gets the models that finished (a partial answer).
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import Any


def take_batch(jobs: queue.Queue[Any], first: Any, max_batch: int, crops_of: Callable[[Any], int],
               is_job: Callable[[Any], bool]) -> tuple[list, Any]:
    """`first` plus whatever else is already waiting, up to max_batch crops.

    Returns the batch and the item that did not fit (or a control item), to be taken first next time."""
    batch, crops = [first], crops_of(first)
    while crops < max_batch:
        try:
            item = jobs.get_nowait()
        except queue.Empty:
            return batch, None
        if not is_job(item) or crops + crops_of(item) > max_batch:
            return batch, item
        batch.append(item)
        crops += crops_of(item)
    return batch, None


def run_order(models: list[str], cost_ms: dict[str, float]) -> list[str]:
    """Cheapest first, by the moving average of each model's measured run time."""
    return sorted(models, key=lambda key: cost_ms.get(key, 0.0))


def update_cost(cost_ms: dict[str, float], key: str, elapsed_ms: float) -> None:
    """A moving average, so one slow run (a page fault, a noisy neighbour) moves the estimate a little."""
    previous = cost_ms.get(key)
    cost_ms[key] = elapsed_ms if previous is None else 0.8 * previous + 0.2 * elapsed_ms
