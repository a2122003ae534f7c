"""Structural patches between two JSON documents, so a delta carries only what changed inside a resource.

A one-route change rewrites one Listener, which may hold a thousand routes; sending a patch against the
version the data plane holds keeps the bytes proportional to the change. Pure functions, no I/O.

Patch forms (JSON-able):

- ``{"=": value}``: the value is replaced.
- ``{"d": {key: patch, ...}, "x": [key, ...]}``: an object; keys patched or added (``d``), removed (``x``).
- ``{"l": [op, ...]}``: a list rebuilt from ops: ``["k", i, j]`` keeps ``old[i:j]``, ``["p", i, patch]``
  patches ``old[i]``, ``["n", [value, ...]]`` inserts new values.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

__all__ = ["PatchError", "apply_patch", "make_patch"]


class PatchError(ValueError):
    """A patch does not fit the document it is applied to."""


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def make_patch(old: Any, new: Any) -> Any:
    """A patch turning ``old`` into ``new`` (``apply_patch(old, make_patch(old, new)) == new``)."""
    if isinstance(old, dict) and isinstance(new, dict):
        changed = {
            k: make_patch(old[k], v) if k in old else {"=": v} for k, v in new.items() if k not in old or old[k] != v
        }
        patch: dict[str, Any] = {"d": changed}
        removed = sorted(k for k in old if k not in new)
        if removed:
            patch["x"] = removed
        return patch
    if isinstance(old, list) and isinstance(new, list):
        return {"l": _list_ops(old, new)}
    return {"=": new}


def _list_ops(old: list[Any], new: list[Any]) -> list[Any]:
    matcher = difflib.SequenceMatcher(None, [_key(x) for x in old], [_key(x) for x in new], autojunk=False)
    ops: list[Any] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            ops.append(["k", i1, i2])
        elif tag == "replace" and i2 - i1 == j2 - j1:
            for i, j in zip(range(i1, i2), range(j1, j2), strict=True):
                if isinstance(old[i], dict | list) and type(old[i]) is type(new[j]):
                    ops.append(["p", i, make_patch(old[i], new[j])])
                else:
                    ops.append(["n", [new[j]]])
        elif tag in ("replace", "insert"):
            ops.append(["n", new[j1:j2]])
        # "delete": the old elements are simply not kept
    return ops


def apply_patch(old: Any, patch: Any) -> Any:
    """``old`` with ``patch`` applied. Raises :class:`PatchError` if the patch does not fit ``old``."""
    if not isinstance(patch, dict):
        raise PatchError(f"a patch is an object, not {type(patch).__name__}")
    if "=" in patch:
        return patch["="]
    if "d" in patch:
        if not isinstance(old, dict) or not isinstance(patch["d"], dict):
            raise PatchError("object patch on a non-object")
        out = {k: v for k, v in old.items() if k not in set(patch.get("x", ()))}
        for k, sub in patch["d"].items():
            if isinstance(sub, dict) and "=" in sub:
                out[k] = sub["="]
            elif k in old:
                out[k] = apply_patch(old[k], sub)
            else:
                raise PatchError(f"patch for missing key {k!r}")
        return out
    if "l" in patch:
        if not isinstance(old, list) or not isinstance(patch["l"], list):
            raise PatchError("list patch on a non-list")
        result: list[Any] = []
        for op in patch["l"]:
            match op:
                case ["k", int(i), int(j)] if 0 <= i <= j <= len(old):
                    result.extend(old[i:j])
                case ["p", int(i), sub] if 0 <= i < len(old):
                    result.append(apply_patch(old[i], sub))
                case ["n", list(values)]:
                    result.extend(values)
                case _:
                    raise PatchError(f"bad list op {op!r} for a list of {len(old)}")
        return result
    raise PatchError("unknown patch form")
