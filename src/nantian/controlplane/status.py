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


class StatusBook:
    """Adds ``lastTransitionTime`` to every condition, keeping the previous time while ``status`` is unchanged."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock: Clock = clock or (lambda: datetime.now(UTC))
        self._seen: dict[tuple[ObjectRef, _Path, str], tuple[str, str]] = {}

    def stamp(self, statuses: Mapping[ObjectRef, Mapping[str, Any]]) -> dict[ObjectRef, dict[str, Any]]:
        now = rfc3339(self._clock())
        seen: dict[tuple[ObjectRef, _Path, str], tuple[str, str]] = {}
        out: dict[ObjectRef, dict[str, Any]] = {}
        for ref, status in statuses.items():
            stamped = copy.deepcopy(dict(status))

            def visit(path: _Path, conditions: list[Any], ref: ObjectRef = ref) -> None:
                for cond in conditions:
                    if not isinstance(cond, dict) or "type" not in cond:
                        continue
                    key = (ref, path, str(cond["type"]))
                    before = self._seen.get(key)
                    value = str(cond.get("status"))
                    when = before[1] if before is not None and before[0] == value else now
                    cond["lastTransitionTime"] = when
                    seen[key] = (value, when)

            _walk(stamped, (), visit)
            out[ref] = stamped
        self._seen = seen
        return out
