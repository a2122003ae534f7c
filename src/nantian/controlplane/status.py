"""Stamping computed statuses with ``lastTransitionTime``, the one clock-dependent step of status writing.

The translator leaves times out (it has no clock). :class:`StatusBook` remembers what it stamped before, so a
condition whose ``status`` did not change keeps its old transition time, exactly as Kubernetes controllers do.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Hashable, Mapping
from datetime import UTC, datetime
from typing import Any

from nantian.resources import ObjectRef

__all__ = ["StatusBook", "rfc3339"]

Clock = Callable[[], datetime]
_Path = tuple[Hashable, ...]


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _item_key(item: object, index: int) -> Hashable:
    if isinstance(item, Mapping):
        for field in ("parentRef", "ancestorRef"):
            if field in item:
                return json.dumps([item[field], item.get("controllerName")], sort_keys=True)
        if "name" in item:
            return str(item["name"])
    return index


def _walk(node: Any, path: _Path, visit: Callable[[_Path, list[Any]], None]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "conditions" and isinstance(value, list):
                visit((*path, key), value)
            else:
                _walk(value, (*path, key), visit)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            _walk(item, (*path, _item_key(item, i)), visit)


_Seen = dict[tuple[_Path, str], tuple[str, str]]
"""(path of a conditions list, condition type) -> (status, lastTransitionTime)."""


class StatusBook:
    """Adds ``lastTransitionTime`` to every condition, keeping the previous time while ``status`` is unchanged.

    A status that is the very same object as last time (the incremental translator hands back unchanged statuses
    as-is) keeps its stamped copy without being walked again, so a one-object change costs one object's work.
    Returned statuses are shared between calls: treat them as read-only.
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock: Clock = clock or (lambda: datetime.now(UTC))
        self._book: dict[ObjectRef, tuple[Mapping[str, Any], dict[str, Any], _Seen]] = {}

    def stamp(self, statuses: Mapping[ObjectRef, Mapping[str, Any]]) -> dict[ObjectRef, dict[str, Any]]:
        now: str | None = None
        book: dict[ObjectRef, tuple[Mapping[str, Any], dict[str, Any], _Seen]] = {}
        out: dict[ObjectRef, dict[str, Any]] = {}
        for ref, status in statuses.items():
            previous = self._book.get(ref)
            if previous is not None and previous[0] is status:
                book[ref] = previous
                out[ref] = previous[1]
                continue
            if now is None:
                now = rfc3339(self._clock())
            before: _Seen = previous[2] if previous is not None else {}
            seen: _Seen = {}
            stamped = copy.deepcopy(dict(status))

            def visit(
                path: _Path, conditions: list[Any], before: _Seen = before, seen: _Seen = seen, now: str = now
            ) -> None:
                for cond in conditions:
                    if not isinstance(cond, dict) or "type" not in cond:
                        continue
                    key = (path, str(cond["type"]))
                    old = before.get(key)
                    value = str(cond.get("status"))
                    when = old[1] if old is not None and old[0] == value else now
                    cond["lastTransitionTime"] = when
                    seen[key] = (value, when)

            _walk(stamped, (), visit)
            book[ref] = (status, stamped, seen)
            out[ref] = stamped
        self._book = book
        return out
