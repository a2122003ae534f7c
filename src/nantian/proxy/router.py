"""Request routing: host lookup (sections, then virtual hosts) and ordered per-host route matching.

Pure data structures, compiled once per snapshot: regular expressions are compiled here, exact and prefix paths are
indexed so a lookup costs a few dict probes instead of a scan over every route, and the IR's precedence order is
kept (the first matching route in IR order wins).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Final, Generic, TypeVar
from urllib.parse import parse_qsl

from nantian.ir import HttpMatch, PathMatchType, StringMatchType

__all__ = ["HostMap", "RouteTable", "host_of", "split_target"]

T = TypeVar("T")


def host_of(authority: str) -> str:
    """The host part of an authority (``Host`` header), lower-case, without port or trailing dot."""
    if authority.startswith("["):
        end = authority.find("]")
        host = authority[: end + 1] if end > 0 else authority
    else:
        colon = authority.rfind(":")
        host = authority[:colon] if colon >= 0 else authority
    return host.rstrip(".").lower()


def split_target(target: str) -> tuple[str, str]:
    """``/path?query`` -> (``/path``, ``query``). An empty path becomes ``/``."""
    q = target.find("?")
    if q < 0:
        return (target or "/"), ""
    return (target[:q] or "/"), target[q + 1 :]


class HostMap(Generic[T]):
    """Values keyed by hostname pattern: exact names, ``*.suffix`` wildcards, and a catch-all (``None`` or ``*``).

    :meth:`lookup` picks the exact name, else the wildcard with the longest suffix, else the catch-all. A
    wildcard ``*.example.com`` matches any name with at least one more label (``a.b.example.com``), never
    ``example.com`` itself. The first value given for a pattern wins.
    """

    __slots__ = ("_any", "_exact", "_wild")

    def __init__(self, items: Iterable[tuple[str | None, T]]) -> None:
        self._exact: dict[str, T] = {}
        self._wild: dict[str, T] = {}
        self._any: T | None = None
        for pattern, value in items:
            if pattern is None or pattern == "*":
                if self._any is None:
                    self._any = value
            elif pattern.startswith("*."):
                self._wild.setdefault(pattern[2:].rstrip(".").lower(), value)
            else:
                self._exact.setdefault(pattern.rstrip(".").lower(), value)

    def lookup(self, host: str) -> T | None:
        """The value for ``host`` (already lower-case, no port), or ``None``."""
        found = self._exact.get(host)
        if found is not None:
            return found
        if self._wild:
            dot = host.find(".")
            while dot >= 0:
                found = self._wild.get(host[dot + 1 :])
                if found is not None:
                    return found
                dot = host.find(".", dot + 1)
        return self._any

    def values(self) -> list[T]:
        """Every value, exact ones first."""
        out = [*self._exact.values(), *self._wild.values()]
        if self._any is not None:
            out.append(self._any)
        return out


class _Matcher(Generic[T]):
    """Everything but the path of one :class:`~nantian.ir.HttpMatch`, compiled."""

    __slots__ = ("headers", "index", "method", "path_regex", "query", "value")

    def __init__(self, index: int, match: HttpMatch, value: T) -> None:
        self.index = index
        self.value = value
        self.method = match.method.upper() if match.method else None
        self.path_regex = re.compile(match.path.value) if match.path.type is PathMatchType.REGEX else None
        self.headers: tuple[tuple[str, str | None, re.Pattern[str] | None], ...] = tuple(
            (
                h.name.lower(),
                h.value if h.type is StringMatchType.EXACT else None,
                re.compile(h.value) if h.type is StringMatchType.REGEX else None,
            )
            for h in match.headers
        )
        self.query: tuple[tuple[str, str | None, re.Pattern[str] | None], ...] = tuple(
            (
                q.name,
                q.value if q.type is StringMatchType.EXACT else None,
                re.compile(q.value) if q.type is StringMatchType.REGEX else None,
            )
            for q in match.query
        )


def _query_map(query: str) -> dict[str, str]:
    """The first value of each query parameter."""
    acc: dict[str, str] = {}
    for k, v in parse_qsl(query, keep_blank_values=True):
        acc.setdefault(k, v)
    return acc


def _values_match(
    conditions: tuple[tuple[str, str | None, re.Pattern[str] | None], ...], values: dict[str, str]
) -> bool:
    for name, exact, rx in conditions:
        got = values.get(name)
        if got is None:
            return False
        if exact is not None:
            if got != exact:
                return False
        elif rx is not None and rx.fullmatch(got) is None:
            return False
    return True


def _prefix_key(prefix: str) -> str:
    """Prefixes match whole segments and ignore a trailing slash: ``/a/`` and ``/a`` are the same prefix."""
    return prefix.rstrip("/")


MATCH_CACHE_SIZE = 4096
"""Route decisions remembered per virtual host (the table is cleared when full)."""
MATCH_CACHE_KEY_LIMIT: Final = 512
"""Requests whose path, query and matched header values are longer than this (characters) are matched without
the cache, so a client cannot make the cache hold much memory."""

_MISS: Final = object()


class RouteTable(Generic[T]):
    """The routes of one virtual host, in precedence order; :meth:`match` returns the first that matches.

    Exact paths and path prefixes are indexed by path, so only routes whose path can match are checked. Decisions
    are cached: a match depends only on the method, the path, the query (when a route matches on it) and the values
    of the header names some route matches on, so those form the key and repeated requests cost one dict probe.
    """

    __slots__ = ("_cache", "_exact", "_header_names", "_prefix", "_regex", "_uses_query", "size")

    def __init__(self, entries: Sequence[tuple[HttpMatch, T]]) -> None:
        self._exact: dict[str, list[_Matcher[T]]] = {}
        self._prefix: dict[str, list[_Matcher[T]]] = {}
        self._regex: list[_Matcher[T]] = []
        names: dict[str, None] = {}
        uses_query = False
        for i, (match, value) in enumerate(entries):
            m = _Matcher(i, match, value)
            if match.path.type is PathMatchType.EXACT:
                self._exact.setdefault(match.path.value, []).append(m)
            elif match.path.type is PathMatchType.PREFIX:
                self._prefix.setdefault(_prefix_key(match.path.value), []).append(m)
            else:
                self._regex.append(m)
            for name, _, _ in m.headers:
                names[name] = None
            uses_query = uses_query or bool(m.query)
        self._header_names = tuple(names)
        """Every header name some route matches on (the values of these are part of the cache key)."""
        self._uses_query = uses_query
        self._cache: dict[tuple[str | None, ...], T | None] = {}
        self.size = len(entries)

    def candidates(self, path: str) -> list[_Matcher[T]]:
        """Routes whose path part can match ``path``, in precedence order."""
        groups: list[list[_Matcher[T]]] = []
        exact = self._exact.get(path)
        if exact is not None:
            groups.append(exact)
        prefix = self._prefix
        if prefix:
            found = prefix.get("")
            if found is not None:
                groups.append(found)
            last = ""
            slash = path.find("/", 1)
            while slash > 0:
                last = path[:slash]
                found = prefix.get(last)
                if found is not None:
                    groups.append(found)
                slash = path.find("/", slash + 1)
            whole = path.rstrip("/")
            if whole and whole != last:
                found = prefix.get(whole)
                if found is not None:
                    groups.append(found)
        if self._regex:
            groups.append(self._regex)
        if len(groups) == 1:
            return groups[0]
        merged = [m for g in groups for m in g]
        merged.sort(key=lambda m: m.index)
        return merged

    def match(self, method: str, path: str, query: str, headers: Sequence[tuple[str, str]]) -> T | None:
        """The first route (in IR order) matching the request, or ``None``."""
        names = self._header_names
        hmap: dict[str, str] | None = None
        if names:
            hmap = {}
            for k, v in headers:
                if k in names:  # a short tuple: faster than a set here
                    hmap[k] = f"{hmap[k]},{v}" if k in hmap else v
            parts: list[str | None] = [method, path, query if self._uses_query else ""]
            for name in names:  # (a loop and tuple(list): cheaper than *map(...) in compiled code)
                parts.append(hmap.get(name))
            key: tuple[str | None, ...] = tuple(parts)
        else:
            key = (method, path, query) if self._uses_query else (method, path)
        cache = self._cache
        found = cache.get(key, _MISS)
        if found is not _MISS:
            return found  # type: ignore[return-value]
        result = self._match(method, path, query, hmap)
        if len(path) + len(query) + (sum(map(len, hmap.values())) if hmap else 0) <= MATCH_CACHE_KEY_LIMIT:
            if len(cache) >= MATCH_CACHE_SIZE:
                cache.clear()
            cache[key] = result
        return result

    def _match(self, method: str, path: str, query: str, hmap: dict[str, str] | None) -> T | None:
        qmap: dict[str, str] | None = None
        for m in self.candidates(path):
            if m.method is not None and m.method != method:
                continue
            if m.path_regex is not None and m.path_regex.fullmatch(path) is None:
                continue
            if m.headers and (hmap is None or not _values_match(m.headers, hmap)):
                continue
            if m.query:
                if qmap is None:
                    qmap = _query_map(query)
                if not _values_match(m.query, qmap):
                    continue
            return m.value
        return None
