"""Gateway API match precedence, as sort keys: smaller sorts first, and the first matching route wins.

Across all routes of one listener and hostname: an exact path, then a regular expression, then the longest
prefix (by characters); then a method match; then the most header matches; then the most query parameter
matches; ties go to the oldest route (``creationTimestamp``), then ``namespace/name`` alphabetically, then
rule and match order inside the route.
"""

from __future__ import annotations

from nantian.ir import HttpMatch, PathMatchType
from nantian.resources import ObjectMeta

__all__ = ["MatchKey", "RouteAge", "match_key", "route_age"]

RouteAge = tuple[str, str, str]
MatchKey = tuple[int, int, int, int, int, str, str, str, int, int]

_PATH_RANK = {PathMatchType.EXACT: 0, PathMatchType.REGEX: 1, PathMatchType.PREFIX: 2}


def route_age(meta: ObjectMeta) -> RouteAge:
    """Oldest first; objects without a timestamp sort after those with one, then by namespace/name."""
    return (meta.creation_timestamp or "~", meta.namespace, meta.name)


def match_key(match: HttpMatch, age: RouteAge, rule: int, index: int) -> MatchKey:
    """The precedence key of one match of rule ``rule`` of a route of age ``age``."""
    return (
        _PATH_RANK[match.path.type],
        -len(match.path.value),
        0 if match.method is not None else 1,
        -len(match.headers),
        -len(match.query),
        age[0],
        age[1],
        age[2],
        rule,
        index,
    )
