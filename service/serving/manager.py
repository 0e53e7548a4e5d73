"""The manager (TF Serving's word): the one owner of model lifecycle.

It alone changes which servables (versions of models) exist: at each poll it reads the repository and
its policies (service/serving/repository.py, service/serving/version_policy.py), asks
service/serving/decisions.py what to do about each model (a pure function of what it knows, tested as a
table), and does it: loads aspired versions beside the serving ones, makes a version AVAILABLE only once
it is warm, moves requests and labels to it, and unloads a version only after its in-flight requests
have finished. Request threads get a handle per request (`acquire`), which is what makes unloading safe.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import structlog

from service.errors import BadRequest, ModelUnavailable, NotFound
from service.serving import decisions, repository
from service.serving import version_policy as policy
from service.serving.decisions import State
from service.serving.repository import ModelSpec
from service.serving.runtime import Runtime
from service.serving.servable_id import Identified

log = structlog.get_logger("pinpoint.manager")


class StaleVersions(ModelUnavailable):
    """A request named exact versions that are no longer AVAILABLE (an API worker's copy of the
    runner's state was a moment old): look again and retry, once."""


@dataclasses.dataclass(frozen=True)
class ModelRef:
    """A model as a request names it: `color`, `color@2` or `color@canary`."""

    name: str
    version: int | None = None
    label: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        name, _, which = text.strip().partition("@")
        if not which:
            return cls(name)
        if which.isdigit():
            return cls(name, version=int(which))
        if policy.LABEL.match(which):
            return cls(name, label=which)
        raise ValueError(f"{text!r}: after '@' give a version number or a label")

    def __str__(self) -> str:
        which = self.version if self.version is not None else self.label
        return self.name if which is None else f"{self.name}@{which}"


@dataclasses.dataclass
class Version(Identified):
    """One version of one model, as the manager tracks it."""

    spec: ModelSpec | None  # None when its model.toml could not be read
    name: str
    version: int
    state: State = State.START
    error: str = ""  # why it failed to load (state END), shown in status
    reason: str = ""  # why it is not serving, when it is not (policy, superseded, ...)
    load_ms: float = 0.0
    cost_ms: float = 0.0
    backend: str = ""  # what runs it once loaded: "tensorflow" or "onnxruntime" (service/serving/loader.py)
    backend_reason: str = ""  # why that backend: verified conversion, fallback and its cause, ...
    in_flight: int = 0
    fingerprint: tuple = ()  # of its files, so a fixed version is retried and a broken one is not
    shadow: dict[str, list[int]] = dataclasses.field(default_factory=dict)  # serving top-1 -> [agreed, total]


class Lease:
    """The versions one request uses, held until it has its answer."""

    def __init__(self, versions: list[Version], errors: dict[str, str] | None = None):
        self.versions = versions
        self.errors = errors or {}  # model -> why the version asked for could not be had (partial=True)


# ---- the manager's state, as a manager in another process follows it (service/processes) ----
@dataclasses.dataclass
class ManagerState:
    """What another process needs to resolve and list versions as this manager would: each field is
    the Manager attribute of the same name, copied (Manager.state, Manager.follow)."""

    versions: dict[str, dict[int, Version]]
    labels: dict[str, dict[str, int]]
    policies: dict[str, policy.ModelPolicy]
    chosen: dict[str, set[int]]
    polled: bool
    policy_error: str
    load_failures: dict[str, int]


class Manager:
    def __init__(self, models_dir: Path, labels_dir: Path, runtime: Runtime):
        self.models_dir, self.labels_dir = models_dir, labels_dir
        self.runtime = runtime
        self.versions: dict[str, dict[int, Version]] = {}  # model -> version -> Version
        self.labels: dict[str, dict[str, int]] = {}  # model -> label -> version (AVAILABLE targets only)
        self.policies: dict[str, policy.ModelPolicy] = {}
        self.chosen: dict[str, set[int]] = {}  # model -> the versions its policy serves (not just keeps loaded)
        self.policy_error = ""
        self.load_failures: dict[str, int] = {}  # model -> versions that failed to load or warm
        self.polled = False  # the first poll has happened: until then nothing is ready
        self._repository_problem = ""  # logged once, not at every poll
        self.draining = False
        self._lock = threading.Condition()
        self._poll_lock = threading.Lock()
        self._pending: list = []  # load futures of this process, for wait_idle

    def configure(self, models_dir: Path, labels_dir: Path) -> None:
        self.models_dir, self.labels_dir = models_dir, labels_dir

    # ---- the repository, read again (poller, SIGHUP, `pinpoint reload`) ----
    def poll(self) -> None:
        """Bring what is loaded in line with the repository and its policies. Loads happen in the
        background; unloading waits for the replacement to be AVAILABLE and for in-flight requests.
        What to do is decided in service/serving/decisions.py; here it is done."""
        with self._poll_lock:
            discovery = repository.scan(self.models_dir, self.labels_dir)
            try:
                self.policies, self.policy_error = policy.read_policies(self.models_dir), ""
            except policy.PolicyError as error:
                if error.args[0] != self.policy_error:
                    log.error("model_policy_invalid", error=str(error))
                self.policy_error = str(error)  # the previous policies stay in force
            on_disk = {name: {number: _fingerprint(spec) for number, spec in versions.items()}
                       for name, versions in discovery.versions.items()}
            with self._lock:
                if discovery.unreadable and discovery.unreadable != self._repository_problem:
                    log.error("model_repository_invalid", error=discovery.unreadable)  # once, not at every poll
                self._repository_problem = discovery.unreadable
                for name in set(self.versions) | set(discovery.versions):
                    known = {number: decisions.Known(entry.state, entry.error, entry.fingerprint)
                             for number, entry in self.versions.get(name, {}).items()}
                    plan = decisions.plan(self.policies.get(name, policy.DEFAULT), on_disk.get(name, {}),
                                          discovery.broken.get(name, {}), known)
                    self._carry_out(name, plan, discovery.versions.get(name, {}), on_disk.get(name, {}))
                self._move_labels()
                self.polled = True
                self._lock.notify_all()

    def _carry_out(self, name: str, plan: decisions.Plan, specs: dict[int, ModelSpec],
                   fingerprints: dict[int, tuple]) -> None:
        known = self.versions.setdefault(name, {})
        self.chosen[name] = set(plan.chosen)
        for number, why in plan.failed.items():
            known[number] = Version(None, name, number, State.END, error=why)
            self._count_failure(name, number, why)
        for number in plan.load:
            self._load(Version(specs[number], name, number, fingerprint=fingerprints[number]))
        for number, reason in plan.unload.items():
            self._unload(known[number], reason)
        for number in plan.forget:
            del known[number]
        for number, reason in plan.reasons.items():
            known[number].reason = reason
        if not known:
            del self.versions[name]

    def _move_labels(self) -> None:
        """After the plans are carried out: a version being unloaded is no longer a label's target."""
        for name in list(self.labels) + [n for n in self.policies if n not in self.labels]:
            available = {number for number, entry in self.versions.get(name, {}).items()
                         if entry.state is State.AVAILABLE}
            moved = decisions.labels(self.policies.get(name, policy.DEFAULT).labels, self.labels.get(name, {}),
                                     available)
            if moved:
                self.labels[name] = moved
            else:
                self.labels.pop(name, None)

    def _load(self, entry: Version) -> None:
        entry.state, entry.error, entry.reason = State.LOADING, "", ""
        self.versions[entry.name][entry.version] = entry
        started = time.perf_counter()
        log.info("version_loading", model=entry.name, version=entry.version)
        future = self.runtime.load(entry.spec)
        self._pending.append(future)

        def loaded(done):
            with self._lock:
                entry.load_ms = round((time.perf_counter() - started) * 1000, 1)
                if self.versions.get(entry.name, {}).get(entry.version) is not entry:
                    return  # forgotten meanwhile
                error = done.exception()
                if error is None:
                    loaded = done.result()
                    entry.state, entry.cost_ms = State.AVAILABLE, loaded.cost_ms
                    entry.backend, entry.backend_reason = loaded.backend, loaded.reason
                    log.info("version_available", model=entry.name, version=entry.version, load_ms=entry.load_ms,
                             backend=loaded.backend)
                else:
                    entry.state, entry.error = State.END, str(error)
                    self._count_failure(entry.name, entry.version, str(error))
                self._lock.notify_all()
            self.poll_soon()  # the swap (labels, unloading the replaced version) follows at once

        future.add_done_callback(loaded)

    def _unload(self, entry: Version, reason: str) -> None:
        entry.state, entry.reason = State.UNLOADING, reason
        log.info("version_unloading", model=entry.name, version=entry.version, reason=reason)

        def unload_when_idle():
            with self._lock:
                self._lock.wait_for(lambda: entry.in_flight == 0)
            self.runtime.unload(entry.key).result(60)
            with self._lock:
                entry.state = State.END
                self._lock.notify_all()
            log.info("version_unloaded", model=entry.name, version=entry.version)

        threading.Thread(target=unload_when_idle, name=f"pinpoint-unload-{entry.key}", daemon=True).start()

    def _count_failure(self, name: str, number: int, error: str) -> None:
        self.load_failures[name] = self.load_failures.get(name, 0) + 1
        log.error("version_load_failed", model=name, version=number, error=error)

    def refresh(self) -> None:
        """Bring this view of the versions up to date: here it is the truth already (an API worker's
        copy of the runner's refreshes: service/processes/runner_client.py)."""

    def poll_soon(self) -> None:
        threading.Thread(target=self.poll, name="pinpoint-poll", daemon=True).start()

    # ---- request threads ----
    @contextlib.contextmanager
    def acquire(self, refs: list[ModelRef], partial: bool = False) -> Iterator[Lease]:
        """The versions these references name (every served model's default when empty, SavedModels without
        a model.toml aside), held for one
        request: none of them unloads until the request is done.

        partial: a reference that cannot be had (unknown, retired, loading) beside one that can goes
        into the lease's `errors` instead of failing the request (docs/api.md: per-model errors unless
        every model failed); when none can be had, the first one's error is raised as it is."""
        with self._lock:
            if not self.polled:
                raise ModelUnavailable("the models are still loading", retry_after=1)
            if not refs:
                # A SavedModel with no model.toml beside it is left out unless named (or alone): nothing
                # says how to normalise a crop for it, and its labels are class numbers (docs/models.md).
                # One served as named tensors only (several inputs...) is never in it: it takes no crop.
                names = [name for name in sorted(self.versions) if not all(
                    entry.spec is not None and entry.spec.tensors_only for entry in self.versions[name].values())]
                regional = [name for name in names if any(
                    entry.spec is None or entry.spec.configured for entry in self.versions[name].values())]
                if self.versions and not names:
                    raise BadRequest("every model here takes named tensors, not an image crop: call them "
                                     "with TF Serving's :predict or the Open Inference Protocol's infer")
                refs = [ModelRef(name) for name in (regional or names)]
            chosen, errors, first = [], {}, None
            for ref in dict.fromkeys(refs):
                try:
                    chosen.append(self._resolve(ref))
                except (NotFound, ModelUnavailable) as error:
                    if not partial:
                        raise
                    first = first or error
                    errors[ref.name] = error.message
            if not chosen:
                if first is not None:
                    raise first
                raise ModelUnavailable("no models are served")
            for entry in chosen:
                entry.in_flight += 1
        try:
            yield Lease(chosen, errors)
        finally:
            with self._lock:
                for entry in chosen:
                    entry.in_flight -= 1
                self._lock.notify_all()

    def _resolve(self, ref: ModelRef) -> Version:
        versions = self.versions.get(ref.name)
        if not versions:
            raise NotFound(f"unknown model {ref.name!r}; served: {', '.join(sorted(self.versions)) or 'none'}")
        if ref.label is not None:
            number = self.labels.get(ref.name, {}).get(ref.label)
            if number is None:
                wanted = self.policies.get(ref.name, policy.DEFAULT).labels.get(ref.label)
                if wanted is None:
                    raise NotFound(f"model {ref.name!r} has no label {ref.label!r}")
                raise ModelUnavailable(f"label {ref.label!r} of {ref.name!r} points at version {wanted}, which is "
                                       "not AVAILABLE", retry_after=1)
            return versions[number]
        if ref.version is not None:
            entry = versions.get(ref.version)
            if entry is None:
                raise NotFound(f"model {ref.name!r} has no version {ref.version}; versions: "
                               f"{', '.join(str(v) for v in sorted(versions))}")
            if entry.state is not State.AVAILABLE:
                raise ModelUnavailable(f"{ref} is {entry.state.value}: {entry.error or entry.reason or 'not serving'}",
                                       retry_after=None if entry.state is State.END else 1)
            return entry
        entry = self.default_version(ref.name)
        if entry is None:
            raise ModelUnavailable(f"no version of {ref.name!r} is AVAILABLE", retry_after=1)
        return entry

    def find(self, name: str, number: int) -> Version | None:
        """One version as it is now, whatever its state."""
        with self._lock:
            return self.versions.get(name, {}).get(number)

    def default_version(self, name: str) -> Version | None:
        """What answers an unqualified request: the `default` label's version, else the highest AVAILABLE
        version the policy serves, else (while a replacement loads, or when it failed) the highest
        AVAILABLE one that is not the shadow version."""
        versions = self.versions.get(name, {})
        labelled = self.labels.get(name, {}).get("default")
        if labelled is not None:
            return versions[labelled]
        chosen = self.chosen.get(name, ())
        shadow = self.policies.get(name, policy.DEFAULT).shadow
        # A shadow version is a candidate under watch: it answers only when asked for by number or label.
        available = [entry for entry in versions.values() if entry.state is State.AVAILABLE
                     and (entry.version != shadow or entry.version in chosen)]
        preferred = [entry for entry in available if entry.version in chosen]
        return max(preferred or available, key=lambda entry: entry.version) if available else None

    def shadow_of(self, name: str, serving: Version) -> Version | None:
        """The version that shadows `serving` (runs on its crops off the answer path), if it can."""
        number = self.policies.get(name, policy.DEFAULT).shadow
        if number is None or number == serving.version:
            return None
        with self._lock:
            entry = self.versions.get(name, {}).get(number)
            return entry if entry is not None and entry.state is State.AVAILABLE else None

    def shadow(self, shadow: Version, rows, serving_top1: list[str]) -> None:
        """Queue `rows` for the shadow version, to run when the runtime is idle; when it has run, count
        whether its top-1 agrees with the answer's, per serving label."""
        job = self.runtime.submit_idle({shadow.key: rows})
        if job is None:
            return  # the idle queue is full: this request goes unshadowed

        def compare(done):
            if done.cancelled() or done.exception() is not None or shadow.key not in done.result().outputs:
                return
            shadowed = [shadow.spec.labels[i] for i in done.result().outputs[shadow.key].argmax(axis=1)]
            with self._lock:
                for served, label in zip(serving_top1, shadowed):
                    counts = shadow.shadow.setdefault(served, [0, 0])
                    counts[0] += served == label
                    counts[1] += 1

        job.future.add_done_callback(compare)

    # ---- readiness ----
    @property
    def ready(self) -> bool:
        """Every model with a version on disk has one AVAILABLE, and none is loading for the first time."""
        with self._lock:
            if self.draining or not self.polled or not self.versions:
                return False
            return all(self.default_version(name) is not None for name in self.versions)

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            self._lock.wait_for(lambda: self.polled and self._settled(),
                                timeout=max(0.0, deadline - time.monotonic()))
        return self.ready

    def _settled(self) -> bool:
        return not any(entry.state in (State.LOADING, State.UNLOADING)
                       for versions in self.versions.values() for entry in versions.values())

    def snapshot(self) -> dict[str, list[Version]]:
        """Every model's versions, highest first, copied under the lock for status documents."""
        with self._lock:
            return {name: [dataclasses.replace(entry, shadow={k: list(v) for k, v in entry.shadow.items()})
                           for _, entry in sorted(versions.items(), reverse=True)]
                    for name, versions in sorted(self.versions.items())}

    # ---- its state, for a manager that follows this one from another process (service/processes) ----
    def state(self) -> ManagerState:
        """A copy taken under the lock, so nothing changes while it is pickled. A draining manager reads
        as not polled yet: its followers stop taking requests as it does."""
        with self._lock:
            return ManagerState(
                versions={name: dict(versions) for name, versions in self.versions.items()},
                labels={name: dict(labels) for name, labels in self.labels.items()},
                policies=dict(self.policies), chosen={name: set(chosen) for name, chosen in self.chosen.items()},
                polled=self.polled and not self.draining, policy_error=self.policy_error,
                load_failures=dict(self.load_failures))

    def follow(self, state: ManagerState) -> None:
        """Take another manager's state as this one's (an API worker's copy of the runner's)."""
        with self._lock:
            for field in dataclasses.fields(state):
                setattr(self, field.name, getattr(state, field.name))
            self._lock.notify_all()


def _fingerprint(spec: ModelSpec) -> tuple:
    files = [spec.directory / repository.CONFIG_NAME, spec.graph_path]
    if spec.is_saved_model:  # its weights change without saved_model.pb changing
        files += sorted((spec.directory / "variables").glob("*"))
    return tuple((str(path), path.stat().st_mtime_ns, path.stat().st_size) for path in files if path.exists())
