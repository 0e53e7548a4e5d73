"""The inference thread: every session.run on it, opportunistic batching, dropped work."""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tensorflow as tf

from service.classify.preprocess import prepare
from service.errors import Timeout
from service.serving import repository as model_repository
from service.serving.runtime import Runtime


@pytest.fixture
def specs(repository):
    models, labels = repository
    return repository_specs(models, labels)


def repository_specs(models, labels):
    found = model_repository.scan(models, labels)
    assert not found.problems
    return found.specs


def running(specs, max_batch=32, backend="tensorflow", threads=1):
    """A started runtime with these servables loaded and warm, as the manager would leave it.
    TensorFlow by default: these tests watch its Session.run (the ONNX backend: tests/test_backends.py)."""
    runtime = Runtime(max_batch=max_batch, queue_size=64, intra_op_threads=2, inter_op_threads=1, backend=backend,
                      threads=threads)
    runtime.start()
    for spec in specs:
        runtime.load(spec).result(60)
    return runtime


def feeds_for(specs, colour, count=1):
    crops = {}
    for spec in specs:
        shape = (count, spec.input.height, spec.input.width, spec.input.channels)
        pixels = np.zeros(shape, np.uint8)
        pixels[...] = colour[: spec.input.channels] if spec.input.channels == 3 else 200
        crops[spec.key] = prepare(spec.input, pixels)
    return crops


def test_session_run_happens_only_on_the_runtime_thread(specs, monkeypatch):
    seen = []
    original = tf.compat.v1.Session.run

    def spy(self, *args, **kwargs):  # records the caller, then really runs
        seen.append(threading.get_ident())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(tf.compat.v1.Session, "run", spy)
    runtime = running(specs, max_batch=8)
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(lambda: runtime.submit(feeds_for(specs, (200, 10, 10)), time.monotonic() + 10)
                               .future.result(10)) for _ in range(40)]
        outcomes = [f.result() for f in futures]
    runtime.stop()
    assert all(int(np.argmax(o.outputs["tint@1"][0])) == 0 for o in outcomes)  # red
    assert seen, "session.run was never called"
    assert set(seen) == {runtime.thread_ident}
    assert runtime.thread_ident != threading.get_ident()


def test_waiting_jobs_share_one_run_and_get_their_own_rows(specs, monkeypatch):
    runs = []
    original = tf.compat.v1.Session.run

    def spy(self, fetches, feed_dict=None, **kwargs):
        runs.append(sorted(len(v) for v in (feed_dict or {}).values()))
        return original(self, fetches, feed_dict, **kwargs)

    tint = [s for s in specs if s.name == "tint"]
    runtime = running(tint, max_batch=64)
    monkeypatch.setattr(tf.compat.v1.Session, "run", spy)
    # Hold the thread busy with one job so the next ten queue up behind it.
    gate = threading.Event()
    original_run_batch = runtime._run_batch
    runtime._run_batch = lambda batch: (gate.wait(5), original_run_batch(batch))
    colours = [(200, 10, 10), (10, 200, 10), (10, 10, 200)]
    futures = [runtime.submit(feeds_for(tint, colours[i % 3], count=2), time.monotonic() + 10) for i in range(10)]
    time.sleep(0.2)
    gate.set()
    outcomes = [f.future.result(10) for f in futures]
    runtime.stop()
    for i, outcome in enumerate(outcomes):
        assert outcome.outputs["tint@1"].shape == (2, 3)
        assert list(np.argmax(outcome.outputs["tint@1"], axis=1)) == [i % 3] * 2
    assert len(runs) <= 2, runs  # the first job alone, then the other nine together
    assert max(max(r) for r in runs) >= 18


def test_work_whose_caller_gave_up_is_not_run(specs):
    tint = tuple(s for s in specs if s.name == "tint")
    runtime = running(tint)
    gate = threading.Event()
    original_run_batch = runtime._run_batch
    ran = []
    runtime._run_batch = lambda batch: (gate.wait(5), ran.append(len(batch)), original_run_batch(batch))
    first = runtime.submit(feeds_for(tint, (200, 10, 10)), time.monotonic() + 10)
    time.sleep(0.1)  # the thread now holds `first`
    cancelled = runtime.submit(feeds_for(tint, (200, 10, 10)), time.monotonic() + 10)
    expired = runtime.submit(feeds_for(tint, (200, 10, 10)), time.monotonic() + 0.05)
    assert cancelled.future.cancel()
    time.sleep(0.1)
    gate.set()
    assert first.future.result(10).outputs["tint@1"].shape == (1, 3)
    with pytest.raises(Exception) as error:
        expired.future.result(10)
    assert getattr(error.value, "code", None) == "timeout"
    runtime.stop()


def test_an_answer_nobody_waits_for_comes_once_when_the_job_is_done_or_at_its_deadline(specs):
    """infer_then, as the model runner answers its workers: no thread waits; the answer is what infer
    would have returned or raised, given once."""
    batched = [s for s in specs if s.name in ("tint", "bright")]
    runtime = running(batched)
    gate, runs = threading.Event(), []
    original_try = runtime._try

    def second_run_held(key, rows):  # a job's second model runs only once the gate opens
        runs.append(key)
        if len(runs) % 2 == 0:
            gate.wait(5)
        return original_try(key, rows)

    runtime._try = second_run_held
    answers: queue.Queue = queue.Queue()
    runtime.infer_then(feeds_for(batched, (200, 10, 10)), time.monotonic() + 0.3, answers.put)
    partial = answers.get(timeout=5)  # at the deadline: the first model's rows; the second missed it
    assert len(partial.outputs) == 1 and "deadline" in partial.errors[runs[1]]
    gate.set()
    time.sleep(0.2)
    assert answers.empty()  # the job's end, after its deadline, does not answer again

    runtime.infer_then(feeds_for(batched, (200, 10, 10), count=2), time.monotonic() + 10, answers.put)
    whole = answers.get(timeout=5)
    assert {key: rows.shape for key, rows in whole.outputs.items()} == {"tint@1": (2, 3), "bright@1": (2, 2)}
    assert whole.errors == {}

    gate.clear()
    runtime._try = lambda key, rows: (gate.wait(5), original_try(key, rows))[1]
    runtime.infer_then(feeds_for(batched, (200, 10, 10)), time.monotonic() + 0.2, answers.put)
    assert isinstance(answers.get(timeout=5), Timeout)  # nothing had arrived
    gate.set()
    runtime.stop()


def test_a_broken_graph_fails_to_load_and_the_others_serve(repository, tmp_path):
    models, labels = repository
    import shutil
    shutil.copytree(models, tmp_path / "models")
    (tmp_path / "models" / "bright" / "1" / "frozen_graph.pb").write_bytes(b"not a graph")
    found = model_repository.scan(tmp_path / "models", labels)
    specs = {spec.name: spec for spec in found.specs}
    runtime = running([specs["tint"]])
    with pytest.raises(Exception, match="GraphDef"):
        runtime.load(specs["bright"]).result(60)
    outcome = runtime.submit(feeds_for([specs["tint"]], (200, 10, 10)), time.monotonic() + 10).future.result(10)
    assert outcome.outputs["tint@1"].shape == (1, 3)
    runtime.stop()


def test_an_unloaded_servable_is_reported_and_the_others_answer(specs):
    batched = [s for s in specs if s.name in ("tint", "bright")]
    runtime = running(batched)
    runtime.unload("bright@1").result(10)
    outcome = runtime.submit(feeds_for(batched, (200, 10, 10), count=3), time.monotonic() + 10).future.result(10)
    runtime.stop()
    assert outcome.outputs["tint@1"].shape == (3, 3)
    assert outcome.errors == {"bright@1": "bright@1 is not loaded"}


def test_two_inference_threads_run_two_batches_side_by_side_and_each_gets_its_rows(specs):
    tint = [s for s in specs if s.name == "tint"]
    runtime = running(tint, max_batch=1, threads=2)  # one job a batch: the second job is the other thread's
    both_inside = threading.Barrier(2)
    ran_on = []
    original_run_batch = runtime._run_batch

    def side_by_side(batch):
        ran_on.append(threading.get_ident())
        both_inside.wait(10)  # broken (and the test failed) unless the other thread runs a batch meanwhile
        original_run_batch(batch)

    try:
        runtime._run_batch = side_by_side
        jobs = [runtime.submit(feeds_for(tint, colour), time.monotonic() + 20)
                for colour in [(200, 10, 10), (10, 10, 200)]]
        outcomes = [job.future.result(20) for job in jobs]
        runtime._run_batch = original_run_batch
        runtime.max_batch = 8  # under load: several jobs a batch, on either thread, each given its own rows
        with ThreadPoolExecutor(8) as pool:
            colours = [(200, 10, 10), (10, 200, 10), (10, 10, 200)]
            futures = [pool.submit(lambda i=i: runtime.submit(feeds_for(tint, colours[i % 3], count=2),
                                                              time.monotonic() + 10).future.result(10))
                       for i in range(60)]
            loaded = [future.result() for future in futures]
    finally:
        runtime.stop()
    assert [int(np.argmax(o.outputs["tint@1"][0])) for o in outcomes] == [0, 2]
    assert set(ran_on) == runtime.thread_idents and len(runtime.thread_idents) == 2
    assert all(list(np.argmax(o.outputs["tint@1"], axis=1)) == [i % 3] * 2 for i, o in enumerate(loaded))


def test_with_two_inference_threads_control_work_runs_alone(specs):
    """A drop waits for the batch running; and no batch starts while control work runs (the other thread
    is free, and would take it)."""
    batched = [s for s in specs if s.name in ("tint", "bright")]
    runtime = running(batched, threads=2)
    inside, release = threading.Event(), threading.Event()
    original_run_batch = runtime._run_batch

    def held(batch):
        inside.set()
        release.wait(10)
        original_run_batch(batch)

    try:
        runtime._run_batch = held
        running_job = runtime.submit(feeds_for(batched, (200, 10, 10)), time.monotonic() + 20)
        assert inside.wait(10)
        dropped = runtime.unload("bright@1")
        time.sleep(0.3)
        assert not dropped.done()  # bright is in use by the batch still running
        release.set()
        dropped.result(10)
        runtime._run_batch = original_run_batch
        assert set(running_job.future.result(10).outputs) == {"tint@1", "bright@1"}  # it ran whole

        controlling, done_controlling = threading.Event(), threading.Event()
        runtime._call_on_thread(lambda: (controlling.set(), done_controlling.wait(10)))
        assert controlling.wait(10)
        waiting = runtime.submit(feeds_for(batched, (200, 10, 10)), time.monotonic() + 20)
        time.sleep(0.3)
        assert not waiting.future.done()  # the free thread did not start it meanwhile
        done_controlling.set()
        after = waiting.future.result(10)
    finally:
        release.set()
        runtime.stop()
    assert "bright@1" in after.errors and "tint@1" in after.outputs


def test_a_stop_that_times_out_still_ends_the_thread_and_closes_its_servables(specs):
    tint = [s for s in specs if s.name == "tint"]
    runtime = running(tint)
    inside, release = threading.Event(), threading.Event()
    original_run_batch = runtime._run_batch
    runtime._run_batch = lambda batch: (inside.set(), release.wait(10), original_run_batch(batch))
    (thread,) = runtime._threads
    closed = []
    servable = runtime._servables["tint@1"]
    original_close = servable.close
    servable.close = lambda: (closed.append(True), original_close())
    job = runtime.submit(feeds_for(tint, (200, 10, 10)), time.monotonic() + 20)
    assert inside.wait(10)
    runtime.stop(timeout=0.2)  # the batch still runs
    release.set()
    assert job.future.result(10).outputs["tint@1"].shape == (1, 3)
    thread.join(10)
    assert not thread.is_alive() and closed == [True]
