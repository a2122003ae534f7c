"""Hostname validity, wildcard matching and listener/route intersection."""

from __future__ import annotations

import pytest

from nantian.translate.hostnames import hostname_matches, intersect, intersect_all, valid_hostname


@pytest.mark.parametrize(
    ("hostname", "ok"),
    [
        ("example.com", True),
        ("*.example.com", True),
        ("a-b.c", True),
        ("localhost", True),
        ("Example.com", False),
        ("*.*.example.com", False),
        ("foo.*.com", False),
        ("1.2.3.4", False),
        ("example.com:80", False),
        ("", False),
        ("-bad.com", False),
    ],
)
def test_valid_hostname(hostname: str, ok: bool) -> None:
    assert valid_hostname(hostname) is ok


@pytest.mark.parametrize(
    ("pattern", "hostname", "ok"),
    [
        ("*", "anything.example", True),
        ("foo.com", "foo.com", True),
        ("*.foo.com", "a.foo.com", True),
        ("*.foo.com", "a.b.foo.com", True),
        ("*.foo.com", "foo.com", False),
        ("*.foo.com", "xfoo.com", False),
        ("foo.com", "a.foo.com", False),
    ],
)
def test_hostname_matches(pattern: str, hostname: str, ok: bool) -> None:
    assert hostname_matches(pattern, hostname) is ok


@pytest.mark.parametrize(
    ("listener", "route", "expected"),
    [
        (None, "foo.com", "foo.com"),
        (None, "*.foo.com", "*.foo.com"),
        ("foo.com", "foo.com", "foo.com"),
        ("foo.com", "bar.com", None),
        ("*.foo.com", "a.foo.com", "a.foo.com"),
        ("*.foo.com", "foo.com", None),
        ("a.foo.com", "*.foo.com", "a.foo.com"),
        ("*.foo.com", "*.a.foo.com", "*.a.foo.com"),
        ("*.a.foo.com", "*.foo.com", "*.a.foo.com"),
        ("*.foo.com", "*.bar.com", None),
        ("*", "x.com", "x.com"),
        ("x.com", "*", "x.com"),
    ],
)
def test_intersect(listener: str | None, route: str, expected: str | None) -> None:
    assert intersect(listener, route) == expected


def test_intersect_all_defaults_and_dedupes() -> None:
    assert intersect_all(None, []) == ["*"]
    assert intersect_all("*.foo.com", []) == ["*.foo.com"]
    assert intersect_all("*.foo.com", ["a.foo.com", "bar.com", "a.foo.com", "*.b.foo.com"]) == [
        "a.foo.com",
        "*.b.foo.com",
    ]
    assert intersect_all("a.com", ["b.com"]) == []
