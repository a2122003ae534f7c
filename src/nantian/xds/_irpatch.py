"""Apply a structural patch (:mod:`nantian.xds._patch`) directly to an IR value, sharing what did not change.

Structuring a listener of a thousand routes from JSON costs tens of milliseconds; a patch that changes one
route should not. Kept elements and untouched fields are the old (immutable) objects; only changed parts
are structured (with the IR converter) or rebuilt with ``attrs.evolve``. The result equals structuring the
patched JSON; anything this module does not handle raises :class:`Unsupported` and the caller does that.
"""

from __future__ import annotations

import functools
import types
import typing
from typing import Any

import attrs

from nantian.ir import converter

__all__ = ["Unsupported", "patch_value"]


class Unsupported(Exception):
    """This patch cannot be applied structurally here; structure the patched JSON instead."""


def _camel(name: str) -> str:  # the IR codec's wire names (nantian.ir._convert)
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@functools.cache
def _fields(cls: type) -> dict[str, tuple[str, Any]]:
    """Wire name -> (attribute name, resolved type)."""
    hints = typing.get_type_hints(cls)
    return {_camel(a.name): (a.name, hints[a.name]) for a in attrs.fields(cls)}


def _tuple_element(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        arms = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(arms) != 1:
            raise Unsupported(f"union {tp}")
        return _tuple_element(arms[0])
    args = typing.get_args(tp)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return args[0]
    raise Unsupported(f"list patch on {tp}")


def patch_value(old: Any, patch: Any, tp: Any) -> Any:
    """``old`` (of type ``tp``) with ``patch`` applied, as an IR value."""
    if not isinstance(patch, dict):
        raise Unsupported("not a patch")
    if "=" in patch:
        return converter.structure(patch["="], tp)
    if "d" in patch:
        cls = type(old)
        if not attrs.has(cls) or patch.get("x"):
            raise Unsupported(f"object patch on {cls.__name__}")
        fields = _fields(cls)
        changes = {}
        for wire, sub in patch["d"].items():
            if wire not in fields:
                raise Unsupported(f"unknown field {wire!r} of {cls.__name__}")
            name, field_type = fields[wire]
            changes[name] = patch_value(getattr(old, name), sub, field_type)
        return attrs.evolve(old, **changes)
    if "l" in patch:
        if not isinstance(old, tuple):
            raise Unsupported("list patch on a non-tuple")
        element = _tuple_element(tp)
        out: list[Any] = []
        for op in patch["l"]:
            match op:
                case ["k", int(i), int(j)] if 0 <= i <= j <= len(old):
                    out.extend(old[i:j])
                case ["p", int(i), sub] if 0 <= i < len(old):
                    out.append(patch_value(old[i], sub, element))
                case ["n", list(values)]:
                    out.extend(converter.structure(v, element) for v in values)
                case _:
                    raise Unsupported(f"bad list op {op!r}")
        return tuple(out)
    raise Unsupported("unknown patch form")
