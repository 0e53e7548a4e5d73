"""The manager's decisions as a table (service/serving/decisions.py): given what the repository offers,
the version policy and what the manager knows of each version, what it loads, unloads, forgets and
says; and where labels point. Each row is one poll of the repository; the rows of one story (publish,
swap, roll back) follow each other as the manager would see them.

test_versions.py drives the same stories through a running server; here each rule is one row."""

from __future__ import annotations

import pytest

from service.serving.decisions import KEPT_SERVING, NOT_IN_POLICY, REMOVED, Known, Plan, State, labels, plan
from service.serving.version_policy import ModelPolicy

LATEST = ModelPolicy()
ALL = ModelPolicy(kind="all")
AVAILABLE, LOADING, UNLOADING, END = State.AVAILABLE, State.LOADING, State.UNLOADING, State.END
BROKEN = "tint@2: model.toml: missing key 'input'"


def files(version: int, edit: int = 0) -> tuple:
    """A stand-in for the fingerprint of a version's files (edit: the files were changed)."""
    return (f"models/tint/{version}/model.toml", edit)


def disk(*versions: int) -> dict[int, tuple]:
    return {version: files(version) for version in versions}


def failed(error: str = "warm-up failed: not a GraphDef", fingerprint: tuple | None = None, version: int = 2) -> Known:
    return Known(END, error, files(version) if fingerprint is None else fingerprint)


# id, policy, on disk (readable), broken on disk, known, expected plan
ROWS = [
    # ---- the first poll ----
    ("first poll loads the latest", LATEST, disk(1), {}, {},
     Plan(frozenset({1}), load=(1,))),
    ("an empty repository does nothing", LATEST, {}, {}, {},
     Plan(frozenset())),
    ("latest is the highest number, not the newest directory", LATEST, disk(10, 9), {}, {},
     Plan(frozenset({10}), load=(10,))),
    # ---- publishing a version: load beside, swap when AVAILABLE ----
    ("a published version loads beside the serving one", LATEST, disk(1, 2), {}, {1: Known(AVAILABLE)},
     Plan(frozenset({2}), load=(2,), reasons={1: KEPT_SERVING})),
    ("the old version serves while the new one loads", LATEST, disk(1, 2), {},
     {1: Known(AVAILABLE), 2: Known(LOADING, fingerprint=files(2))},
     Plan(frozenset({2}), reasons={2: "", 1: KEPT_SERVING})),
    ("the old version unloads once the new one is AVAILABLE", LATEST, disk(1, 2), {},
     {1: Known(AVAILABLE), 2: Known(AVAILABLE, fingerprint=files(2))},
     Plan(frozenset({2}), unload={1: NOT_IN_POLICY}, reasons={2: ""})),
    ("nothing is done twice while the old version unloads", LATEST, disk(1, 2), {},
     {1: Known(UNLOADING), 2: Known(AVAILABLE, fingerprint=files(2))},
     Plan(frozenset({2}), reasons={2: ""})),
    ("an unloaded version still on disk says why it does not serve", LATEST, disk(1, 2), {},
     {1: Known(END), 2: Known(AVAILABLE, fingerprint=files(2))},
     Plan(frozenset({2}), reasons={2: "", 1: NOT_IN_POLICY})),
    ("a steady state changes nothing", LATEST, disk(1), {}, {1: Known(AVAILABLE, fingerprint=files(1))},
     Plan(frozenset({1}), reasons={1: ""})),
    # ---- removing the newest version: roll back without a gap ----
    ("removing the serving version reloads the one before, and it serves meanwhile", LATEST, disk(1), {},
     {1: Known(END), 2: Known(AVAILABLE)},
     Plan(frozenset({1}), load=(1,), reasons={2: KEPT_SERVING})),
    ("the removed version unloads once the one before is AVAILABLE", LATEST, disk(1), {},
     {1: Known(AVAILABLE), 2: Known(AVAILABLE)},
     Plan(frozenset({1}), unload={2: REMOVED}, reasons={1: ""})),
    ("a removed version that is unloaded is forgotten", LATEST, disk(1), {},
     {1: Known(AVAILABLE), 2: Known(END)},
     Plan(frozenset({1}), forget=(2,), reasons={1: ""})),
    ("a removed version that failed is forgotten", LATEST, disk(1), {},
     {1: Known(AVAILABLE), 2: failed()},
     Plan(frozenset({1}), forget=(2,), reasons={1: ""})),
    ("a version published again while it unloads is reloaded only once the unload has finished", LATEST, disk(1, 2), {},
     {1: Known(AVAILABLE), 2: Known(UNLOADING)},
     Plan(frozenset({2}), reasons={1: KEPT_SERVING})),
    ("removing every version unloads the model", LATEST, {}, {}, {1: Known(AVAILABLE)},
     Plan(frozenset(), unload={1: REMOVED})),
    ("a version still loading when it is removed is left to finish", LATEST, disk(1), {},
     {1: Known(AVAILABLE), 2: Known(LOADING)},
     Plan(frozenset({1}), reasons={1: ""})),
    # ---- a version that fails to load never replaces a working one ----
    ("a version that failed to load leaves the old one serving", LATEST, disk(1, 2), {},
     {1: Known(AVAILABLE), 2: failed()},
     Plan(frozenset({2}), reasons={1: KEPT_SERVING})),
    ("a failed version is not retried while its files are unchanged", LATEST, disk(2), {}, {2: failed()},
     Plan(frozenset({2}))),
    ("a failed version is retried once its files change", LATEST, {1: files(1), 2: files(2, edit=1)}, {},
     {1: Known(AVAILABLE), 2: failed()},
     Plan(frozenset({2}), load=(2,), reasons={1: KEPT_SERVING})),
    ("a version unloaded without error loads again when aspired", LATEST, disk(1, 2), {},
     {1: Known(AVAILABLE), 2: Known(END, fingerprint=files(2))},
     Plan(frozenset({2}), load=(2,), reasons={1: KEPT_SERVING})),
    # ---- a version directory that cannot be read ----
    ("an unreadable version is recorded as failed and the old one serves on", LATEST, disk(1), {2: BROKEN},
     {1: Known(AVAILABLE)},
     Plan(frozenset({1}), failed={2: BROKEN}, reasons={1: ""})),
    ("an unreadable version is recorded once per reason", LATEST, disk(1), {2: BROKEN},
     {1: Known(AVAILABLE), 2: Known(END, BROKEN)},
     Plan(frozenset({1}), reasons={1: ""})),
    ("a new reason is recorded again", LATEST, disk(1), {2: "tint@2: labels file missing"},
     {1: Known(AVAILABLE), 2: Known(END, BROKEN)},
     Plan(frozenset({1}), failed={2: "tint@2: labels file missing"}, reasons={1: ""})),
    ("an unloaded version whose directory breaks is recorded as failed", LATEST, disk(1), {2: BROKEN},
     {1: Known(AVAILABLE), 2: Known(END)},
     Plan(frozenset({1}), failed={2: BROKEN}, reasons={1: ""})),
    ("a serving version whose directory breaks is unloaded, not recorded", LATEST, disk(1), {2: BROKEN},
     {1: Known(AVAILABLE), 2: Known(AVAILABLE)},
     Plan(frozenset({1}), unload={2: REMOVED}, reasons={1: ""})),
    ("the only version breaking while it serves unloads it", LATEST, {}, {1: BROKEN}, {1: Known(AVAILABLE)},
     Plan(frozenset(), unload={1: REMOVED})),
    ("a model whose only version is unreadable is recorded", LATEST, {}, {1: BROKEN}, {},
     Plan(frozenset(), failed={1: BROKEN})),
    ("a loading version whose directory breaks is left to finish", LATEST, disk(1), {2: BROKEN},
     {1: Known(AVAILABLE), 2: Known(LOADING)},
     Plan(frozenset({1}), reasons={1: ""})),
    # ---- version policies ----
    ("all serves every version", ALL, disk(1, 2, 3), {}, {},
     Plan(frozenset({1, 2, 3}), load=(1, 2, 3))),
    ("latest N serves the N highest", ModelPolicy(count=2), disk(1, 2, 3), {}, {},
     Plan(frozenset({2, 3}), load=(2, 3))),
    ("latest N with fewer versions serves them all", ModelPolicy(count=3), disk(4, 7), {}, {},
     Plan(frozenset({4, 7}), load=(4, 7))),
    ("specific serves exactly those versions", ModelPolicy(kind="specific", specific=(1, 3)), disk(1, 2, 3), {}, {},
     Plan(frozenset({1, 3}), load=(1, 3))),
    ("specific naming a version not on disk serves the others", ModelPolicy(kind="specific", specific=(1, 5)),
     disk(1, 2), {}, {},
     Plan(frozenset({1}), load=(1,))),
    ("specific naming no version on disk unloads the model", ModelPolicy(kind="specific", specific=(5,)),
     disk(1), {}, {1: Known(AVAILABLE)},
     Plan(frozenset(), unload={1: NOT_IN_POLICY})),
    ("pinning an older version loads it and keeps the newer serving meanwhile",
     ModelPolicy(kind="specific", specific=(1,)), disk(1, 2), {}, {1: Known(END), 2: Known(AVAILABLE)},
     Plan(frozenset({1}), load=(1,), reasons={2: KEPT_SERVING})),
    ("the pinned version AVAILABLE retires the newer one", ModelPolicy(kind="specific", specific=(1,)),
     disk(1, 2), {}, {1: Known(AVAILABLE), 2: Known(AVAILABLE)},
     Plan(frozenset({1}), unload={2: NOT_IN_POLICY}, reasons={1: ""})),
    ("going from all to latest retires the older versions", LATEST, disk(1, 2, 3), {},
     {1: Known(AVAILABLE), 2: Known(AVAILABLE), 3: Known(AVAILABLE)},
     Plan(frozenset({3}), unload={1: NOT_IN_POLICY, 2: NOT_IN_POLICY}, reasons={3: ""})),
    ("one failed aspired version does not hold back the unloads another allows", ModelPolicy(count=2),
     disk(1, 2, 3), {}, {1: Known(AVAILABLE), 2: Known(AVAILABLE), 3: failed(version=3)},
     Plan(frozenset({2, 3}), unload={1: NOT_IN_POLICY}, reasons={2: ""})),
    # ---- labels and the shadow keep the versions they name loaded ----
    ("a label keeps its version loaded beside the policy's", ModelPolicy(labels={"stable": 1}), disk(1, 2), {}, {},
     Plan(frozenset({2}), load=(1, 2))),
    ("a label naming a version not on disk loads nothing", ModelPolicy(labels={"canary": 9}), disk(1), {}, {},
     Plan(frozenset({1}), load=(1,))),
    ("a label keeps a serving version from unloading", ModelPolicy(labels={"stable": 1}), disk(1, 2), {},
     {1: Known(AVAILABLE), 2: Known(AVAILABLE)},
     Plan(frozenset({2}), reasons={1: "", 2: ""})),
    ("the shadow is loaded but not chosen", ModelPolicy(kind="specific", specific=(1,), shadow=2), disk(1, 2), {}, {},
     Plan(frozenset({1}), load=(1, 2))),
    ("an AVAILABLE shadow counts as serving: it retires the old version though the chosen one failed",
     ModelPolicy(kind="specific", specific=(3,), shadow=2), disk(1, 2, 3), {},
     {1: Known(AVAILABLE), 2: Known(AVAILABLE), 3: failed(version=3)},
     Plan(frozenset({3}), unload={1: NOT_IN_POLICY}, reasons={2: ""})),
]


@pytest.mark.parametrize("policy, on_disk, broken, known, expected",
                         [pytest.param(*row[1:], id=row[0]) for row in ROWS])
def test_plan(policy, on_disk, broken, known, expected):
    assert plan(policy, on_disk, broken, known) == expected


def test_plan_changes_nothing_it_is_given():
    known = {1: Known(AVAILABLE), 2: failed()}
    on_disk, broken = disk(1, 2), {3: BROKEN}
    before = (dict(known), dict(on_disk), dict(broken))
    plan(LATEST, on_disk, broken, known)
    assert (known, on_disk, broken) == before


# id, wanted (models.toml), current, AVAILABLE versions, expected
LABEL_ROWS = [
    ("a label points at its AVAILABLE target", {"stable": 1}, {}, {1}, {"stable": 1}),
    ("a label whose target is loading is not set yet", {"canary": 2}, {}, {1}, {}),
    ("a label moves once its new target is AVAILABLE", {"canary": 2}, {"canary": 1}, {1, 2}, {"canary": 2}),
    ("a label keeps its old target while the new one is not AVAILABLE", {"canary": 3}, {"canary": 2}, {1, 2},
     {"canary": 2}),
    ("a label whose old and new targets both stopped serving is dropped", {"canary": 3}, {"canary": 2}, {1}, {}),
    ("a label removed from models.toml is dropped", {"stable": 1}, {"stable": 1, "canary": 2}, {1, 2},
     {"stable": 1}),
    ("labels move independently", {"stable": 1, "canary": 3, "default": 1}, {"canary": 2, "default": 2}, {1, 2},
     {"stable": 1, "canary": 2, "default": 1}),
    ("no labels wanted, none kept", {}, {"stable": 1}, {1}, {}),
]


@pytest.mark.parametrize("wanted, current, available, expected",
                         [pytest.param(*row[1:], id=row[0]) for row in LABEL_ROWS])
def test_labels(wanted, current, available, expected):
    assert labels(wanted, current, available) == expected


def test_a_repository_that_is_not_a_directory_is_said_once_and_serves_nothing(tmp_path, monkeypatch):
    import structlog
    from structlog.testing import capture_logs

    from service.serving import manager as manager_module
    from service.serving.manager import Manager

    not_a_directory = tmp_path / "models"
    not_a_directory.write_text("")
    manager = Manager(not_a_directory, tmp_path, runtime=None)  # nothing is loaded: no runtime is asked
    # A logger not used yet: the module's own may be cached (logging set up by a server earlier in this
    # session), and a cached logger does not see capture_logs.
    monkeypatch.setattr(manager_module, "log", structlog.get_logger("pinpoint.manager"))
    with capture_logs() as logs:
        manager.poll()
        manager.poll()
    assert [entry["event"] for entry in logs] == ["model_repository_invalid"]
    assert "is not a directory" in logs[0]["error"]
    assert manager.polled and not manager.versions and not manager.ready
