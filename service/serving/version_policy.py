"""Which versions of each model to serve: version policies, version labels and shadow versions.

They live in one file, `models.toml` at the root of the model repository, re-read on every poll of
the repository (and on SIGHUP), so a label moves or a policy changes without a restart:

    [color]
    versions = "latest"            # "latest" (the default), "all", {latest = 2} or {specific = [1, 3]}
    labels = {stable = 1, canary = 2, default = 1}   # `default` (if set) answers unqualified requests
    shadow = 2                     # run version 2 beside the serving one, off the answer path

TF Serving's rules, in Pinpoint's words: a label only ever points at a version that is AVAILABLE (a
label whose target is still loading keeps its old target), and a version a label or the shadow names
is kept loaded even when the policy alone would not load it.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

CONFIG_NAME = "models.toml"
LABEL = re.compile(r"^[A-Za-z0-9_]+$")
KEYS = {"versions", "labels", "shadow"}


class PolicyError(ValueError):
    """models.toml cannot be used; the previous policies stay in force."""


@dataclasses.dataclass(frozen=True)
class ModelPolicy:
    kind: str = "latest"  # latest | all | specific
    count: int = 1  # for latest
    specific: tuple[int, ...] = ()
    labels: dict[str, int] = dataclasses.field(default_factory=dict)
    shadow: int | None = None

    def chosen(self, on_disk: list[int]) -> set[int]:
        """The versions the policy itself serves, out of the readable versions on disk."""
        on_disk = sorted(on_disk)
        if self.kind == "all":
            return set(on_disk)
        if self.kind == "specific":
            return set(self.specific) & set(on_disk)
        return set(on_disk[-self.count:]) if on_disk else set()

    def aspired(self, on_disk: list[int]) -> set[int]:
        """The versions to load: the policy's, and those a label or the shadow names."""
        named = set(self.labels.values()) | ({self.shadow} if self.shadow is not None else set())
        return self.chosen(on_disk) | (named & set(on_disk))

    def describe(self) -> str:
        return {"latest": f"latest {self.count}", "all": "all",
                "specific": f"specific {list(self.specific)}"}[self.kind]


DEFAULT = ModelPolicy()


def read_policies(models_dir: Path) -> dict[str, ModelPolicy]:
    """Every model's policy from models_dir/models.toml (none configured: every model is `latest`)."""
    path = models_dir / CONFIG_NAME
    if not path.is_file():
        return {}
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise PolicyError(f"{path}: {error}") from None
    policies = {}
    for name, table in document.items():
        if not isinstance(table, dict):
            raise PolicyError(f"{path}: [{name}] must be a table of versions, labels and shadow")
        try:
            policies[name] = _policy(table)
        except (TypeError, ValueError) as error:
            raise PolicyError(f"{path}: [{name}] {error}") from None
    return policies


def _policy(table: dict) -> ModelPolicy:
    unknown = set(table) - KEYS
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(sorted(unknown))}; keys are {', '.join(sorted(KEYS))}")
    versions = table.get("versions", "latest")
    kind, count, specific = "latest", 1, ()
    if versions == "all":
        kind = "all"
    elif versions == "latest":
        pass
    elif isinstance(versions, dict) and set(versions) == {"latest"}:
        count = _version(versions["latest"], "versions.latest")
    elif isinstance(versions, dict) and set(versions) == {"specific"}:
        kind = "specific"
        if not isinstance(versions["specific"], list) or not versions["specific"]:
            raise ValueError("versions.specific must be a non-empty list of versions")
        specific = tuple(sorted({_version(v, "versions.specific") for v in versions["specific"]}))
    else:
        raise ValueError('versions must be "latest", "all", {latest = N} or {specific = [..]}')
    labels = table.get("labels", {})
    if not isinstance(labels, dict):
        raise ValueError("labels must be a table of label = version")
    for label, version in labels.items():
        if not LABEL.match(label):
            raise ValueError(f"label {label!r} must be letters, digits and '_'")
        _version(version, f"labels.{label}")
    shadow = table.get("shadow")
    return ModelPolicy(kind=kind, count=count, specific=specific, labels=dict(labels),
                       shadow=None if shadow is None else _version(shadow, "shadow"))


def _version(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{where} must be a positive integer version, got {value!r}")
    return value
