"""Hostname rules of the Gateway API: wildcard matching and listener/route hostname intersection."""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["hostname_matches", "intersect", "intersect_all", "valid_hostname"]

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_HOSTNAME_RE = re.compile(rf"^(\*\.)?{_LABEL}(\.{_LABEL})*$")


def valid_hostname(hostname: str) -> bool:
    """A DNS name, optionally starting with ``*.``; no IP addresses, no ports, lower case."""
    if not hostname or len(hostname) > 253 or not _HOSTNAME_RE.match(hostname):
        return False
    return not re.fullmatch(r"[0-9.]+", hostname)


def hostname_matches(pattern: str, hostname: str) -> bool:
    """``pattern`` (exact, ``*.suffix`` or ``*``) covers the exact ``hostname``."""
    if pattern == "*" or pattern == hostname:
        return True
    if pattern.startswith("*."):
        return hostname.endswith(pattern[1:]) and len(hostname) > len(pattern) - 1
    return False


def intersect(listener: str | None, route: str) -> str | None:
    """The hostnames both accept, as one hostname (the more specific), or ``None`` when they do not meet."""
    if listener is None or listener == "*":
        return route
    if route == "*":
        return listener
    if listener == route:
        return route
    if not route.startswith("*."):
        return route if hostname_matches(listener, route) else None
    if not listener.startswith("*."):
        return listener if hostname_matches(route, listener) else None
    # Both wildcards: the longer one is inside the shorter one if it ends with it.
    if route.endswith(listener[1:]):
        return route
    if listener.endswith(route[1:]):
        return listener
    return None


def intersect_all(listener: str | None, route_hostnames: Sequence[str]) -> list[str]:
    """Hostnames a route serves on a listener; a route without hostnames takes the listener's (or ``*``)."""
    if not route_hostnames:
        return [listener or "*"]
    out: list[str] = []
    for h in route_hostnames:
        got = intersect(listener, h)
        if got is not None and got not in out:
            out.append(got)
    return out
