"""ObjectRef, FrozenMap, LabelSelector, parse_duration, the package's exports."""

from __future__ import annotations

import pytest

import nantian.resources
from nantian.resources import FrozenMap, LabelSelector, LabelSelectorRequirement, ObjectMeta, ObjectRef, parse_duration


def test_object_ref_str_and_order() -> None:
    assert str(ObjectRef("Gateway", "ns", "gw")) == "Gateway ns/gw"
    assert str(ObjectRef("GatewayClass", "", "c")) == "GatewayClass c"
    refs = [ObjectRef("Service", "b", "a"), ObjectRef("Gateway", "z", "z"), ObjectRef("Service", "a", "z")]
    assert sorted(refs) == [refs[1], refs[2], refs[0]]
    assert len({ObjectRef("A", "b", "c"), ObjectRef("A", "b", "c")}) == 1


def test_frozen_map() -> None:
    m = FrozenMap({"a": "1"})
    assert m == {"a": "1"} and m == FrozenMap({"a": "1"}) and m != {"a": "2"}
    assert hash(m) == hash(FrozenMap({"a": "1"}))
    assert dict(m) == {"a": "1"} and len(m) == 1 and list(m) == ["a"]
    with pytest.raises(TypeError):
        m["b"] = "2"  # type: ignore[index]


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        (LabelSelector(), {}, True),
        (LabelSelector(match_labels=FrozenMap({"a": "1"})), {"a": "1", "b": "2"}, True),
        (LabelSelector(match_labels=FrozenMap({"a": "1"})), {"a": "2"}, False),
        (
            LabelSelector(match_expressions=(LabelSelectorRequirement(key="a", operator="In", values=("1", "2")),)),
            {"a": "2"},
            True,
        ),
        (
            LabelSelector(match_expressions=(LabelSelectorRequirement(key="a", operator="In", values=("1",)),)),
            {},
            False,
        ),
        (
            LabelSelector(match_expressions=(LabelSelectorRequirement(key="a", operator="NotIn", values=("1",)),)),
            {},
            True,
        ),
        (
            LabelSelector(match_expressions=(LabelSelectorRequirement(key="a", operator="NotIn", values=("1",)),)),
            {"a": "1"},
            False,
        ),
        (LabelSelector(match_expressions=(LabelSelectorRequirement(key="a", operator="Exists"),)), {"a": ""}, True),
        (
            LabelSelector(match_expressions=(LabelSelectorRequirement(key="a", operator="DoesNotExist"),)),
            {"a": ""},
            False,
        ),
        (LabelSelector(match_expressions=(LabelSelectorRequirement(key="a", operator="Bogus"),)), {"a": ""}, False),
    ],
)
def test_label_selector(selector: LabelSelector, labels: dict[str, str], expected: bool) -> None:
    assert selector.matches(labels) is expected


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10s", 10.0), ("1h2m3.5s", 3723.5), ("500ms", 0.5), ("0s", 0.0), ("1m", 60.0), ("1h", 3600.0), ("2s300ms", 2.3)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "-1s", "1d", "s", "1.s", " 1s", "1s "])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_exports_are_sorted_and_importable() -> None:
    names = nantian.resources.__all__
    assert len(set(names)) == len(names)
    assert {cls.__name__ for cls in nantian.resources.KIND_CLASSES.values()} <= set(names)
    for name in names:
        assert getattr(nantian.resources, name) is not None


def test_map_fields_are_frozen_even_when_built_by_hand() -> None:
    meta = ObjectMeta(name="x", labels={"a": "b"})
    assert isinstance(meta.labels, FrozenMap) and meta.labels == {"a": "b"}
    assert hash(meta) == hash(ObjectMeta(name="x", labels=FrozenMap({"a": "b"})))
    assert ObjectMeta(name="y").annotations == {}
