"""ServableId: the one written form of a version (`name@version`), read back exactly as written."""

from __future__ import annotations

import pytest

import graphs
from service.serving import repository
from service.serving.servable_id import ServableId


@pytest.mark.parametrize("servable", [ServableId("tint", 1), ServableId("color.v2-b_c", 12), ServableId("a", 100)])
def test_its_written_form_reads_back_as_itself(servable):
    assert ServableId.parse(str(servable)) == servable


def test_it_is_written_name_at_version():
    assert str(ServableId("tint", 2)) == "tint@2"


@pytest.mark.parametrize("text", ["tint", "tint@", "@2", "tint@canary", "tint@0", "tint@-1", "tint@1.5",
                                  "tint@²", "tint@ 2", ""])
def test_anything_else_is_refused(text):
    with pytest.raises(ValueError, match="not a servable id"):
        ServableId.parse(text)


def test_versions_order_by_number_not_text():
    assert sorted([ServableId("tint", 10), ServableId("tint", 9)]) == [ServableId("tint", 9), ServableId("tint", 10)]


def test_the_repository_names_versions_and_their_problems_by_it(tmp_path):
    models, labels = graphs.write_repository(tmp_path, names=("tint",))
    graphs.publish_version(models, "tint", 2, config="not toml [")
    found = repository.scan(models, labels)
    spec = found.versions["tint"][1]
    assert spec.id == ServableId("tint", 1) and spec.key == "tint@1"
    assert set(found.broken) == {"tint"} and set(found.broken["tint"]) == {2}
    assert set(found.problems) == {"tint@2"}
