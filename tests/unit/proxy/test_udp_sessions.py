"""The sans-IO UDP session table: lookup, bound, idle expiry in LRU order."""

from __future__ import annotations

import pytest

from nantian.proxy.udp_sessions import UdpSessionTable

A, B, C = ("10.0.0.1", 1), ("10.0.0.2", 2), ("10.0.0.3", 3)


def table(max_sessions: int = 2, idle: float = 10.0) -> UdpSessionTable[tuple[str, int], str]:
    return UdpSessionTable(max_sessions=max_sessions, idle_timeout=idle)


def test_add_touch_get_remove() -> None:
    t = table()
    assert t.touch(A, 0.0) is None
    assert t.add(A, "a", 0.0)
    assert A in t and len(t) == 1
    assert t.touch(A, 1.0) == "a" and t.get(A) == "a"
    with pytest.raises(KeyError):
        t.add(A, "again", 1.0)
    assert t.remove(A) == "a" and t.remove(A) is None and len(t) == 0


def test_bounded_new_clients_are_refused() -> None:
    t = table(max_sessions=2)
    assert t.add(A, "a", 0.0) and t.add(B, "b", 0.0)
    assert not t.add(C, "c", 0.0)
    assert t.refused == 1 and C not in t and t.values() == ["a", "b"]


def test_expiry_after_idle_timeout_in_use_order() -> None:
    t = table(max_sessions=3, idle=10.0)
    t.add(A, "a", 0.0)
    t.add(B, "b", 1.0)
    t.add(C, "c", 2.0)
    t.touch(A, 5.0)  # A is used again: now the youngest
    assert t.next_expiry() == 11.0
    assert t.expire(10.9) == []
    assert t.expire(11.0) == [(B, "b")]
    assert t.expire(14.0) == [(C, "c")]
    assert t.next_expiry() == 15.0
    assert t.expire(100.0) == [(A, "a")]
    assert t.next_expiry() is None and len(t) == 0


def test_clear_returns_everything() -> None:
    t = table()
    t.add(A, "a", 0.0)
    t.add(B, "b", 0.0)
    assert t.clear() == [(A, "a"), (B, "b")] and len(t) == 0


def test_invalid_limits() -> None:
    with pytest.raises(ValueError):
        UdpSessionTable(max_sessions=0, idle_timeout=1.0)
    with pytest.raises(ValueError):
        UdpSessionTable(max_sessions=1, idle_timeout=0.0)
