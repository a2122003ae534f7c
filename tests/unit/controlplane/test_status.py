"""StatusBook keeps lastTransitionTime while a condition's status does not change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from nantian.controlplane.status import StatusBook
from nantian.resources import ObjectRef


def _gateway_status(accepted: str) -> dict[str, object]:
    return {
        "conditions": [{"type": "Accepted", "status": accepted, "reason": "Accepted", "observedGeneration": 1}],
        "listeners": [{"name": "http", "conditions": [{"type": "Programmed", "status": "True"}]}],
    }


def test_transition_times_follow_status_changes() -> None:
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    book = StatusBook(clock=lambda: now[0])
    ref = ObjectRef(kind="Gateway", namespace="ns", name="gw")
    first = book.stamp({ref: _gateway_status("True")})
    assert first[ref]["conditions"][0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    now[0] += timedelta(minutes=5)
    second = book.stamp({ref: _gateway_status("True")})
    assert second[ref]["conditions"][0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    now[0] += timedelta(minutes=5)
    third = book.stamp({ref: _gateway_status("False")})
    assert third[ref]["conditions"][0]["lastTransitionTime"] == "2026-01-01T00:10:00Z"
    assert third[ref]["listeners"][0]["conditions"][0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"


def test_input_is_not_modified() -> None:
    book = StatusBook()
    ref = ObjectRef(kind="Gateway", namespace="ns", name="gw")
    status = _gateway_status("True")
    book.stamp({ref: status})
    assert "lastTransitionTime" not in status["conditions"][0]  # type: ignore[index]


def test_an_unchanged_status_object_is_not_walked_again() -> None:
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    book = StatusBook(clock=lambda: now[0])
    a, b = ObjectRef(kind="Gateway", namespace="ns", name="a"), ObjectRef(kind="Gateway", namespace="ns", name="b")
    status_a, status_b = _gateway_status("True"), _gateway_status("True")
    first = book.stamp({a: status_a, b: status_b})
    now[0] += timedelta(minutes=1)
    second = book.stamp({a: status_a, b: _gateway_status("False")})
    assert second[a] is first[a], "the same input object keeps its stamped copy"
    assert second[b]["conditions"][0]["lastTransitionTime"] == "2026-01-01T00:01:00Z"
    now[0] += timedelta(minutes=1)
    third = book.stamp({b: _gateway_status("False")})
    assert set(third) == {b}, "objects that are gone are forgotten"
    assert third[b]["conditions"][0]["lastTransitionTime"] == "2026-01-01T00:01:00Z"
