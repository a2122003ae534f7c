"""Turn app state into the admin API's JSON documents (pure functions, no I/O)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from nantian.ir import Snapshot, converter

__all__ = ["find_resource", "json_bytes", "snapshot_document"]

_REDACTED = "<redacted>"


def json_bytes(value: object) -> bytes:
    return json.dumps(value, indent=1, sort_keys=False).encode() + b"\n"


def snapshot_document(snapshot: Snapshot) -> dict[str, Any]:
    """The codec form of ``snapshot`` with private keys redacted: the admin API never shows key material."""
    body: dict[str, Any] = converter.unstructure(snapshot)
    for secret in body.get("secrets", []):
        if secret.get("privateKey"):
            secret["privateKey"] = _REDACTED
    return {"version": snapshot.version, "snapshot": body}


def find_resource(
    resources: Sequence[Mapping[str, Any]], kind: str, namespace: str, name: str
) -> Mapping[str, Any] | None:
    """The object of ``kind`` (case-insensitive) called ``namespace/name``; ``-`` or empty namespace = cluster scope."""
    ns = "" if namespace in ("-", "_") else namespace
    for obj in resources:
        meta = obj.get("metadata") or {}
        if (
            str(obj.get("kind", "")).lower() == kind.lower()
            and (meta.get("namespace") or "") == ns
            and meta.get("name") == name
        ):
            return obj
    return None
