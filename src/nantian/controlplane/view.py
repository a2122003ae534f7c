"""The Kubernetes-shaped view of a resource set with computed statuses (admin API, ``nantian translate``)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from nantian.resources import ObjectRef, ResourceSet

__all__ = ["kube_objects"]

_REDACTED = "<redacted>"


def _document(ref: ObjectRef, raw: Mapping[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(dict(raw))
    if ref.kind == "Secret":
        for field in ("data", "stringData"):
            if isinstance(doc.get(field), dict):
                doc[field] = {k: _REDACTED for k in doc[field]}
    return doc


def kube_objects(
    resources: ResourceSet, statuses: Mapping[ObjectRef, Mapping[str, Any]], *, redact_secrets: bool = True
) -> list[dict[str, Any]]:
    """Every object of ``resources`` as read, with ``status`` replaced where nantian computed one.

    Documents that failed to parse are listed too, with ``status.nantianError`` saying why, so a bad file shows
    up where users look. Secret data is redacted unless ``redact_secrets`` is false.
    """
    out: list[dict[str, Any]] = []
    for ref in sorted(resources.refs()):
        raw = resources.raw(ref)
        doc = _document(ref, raw) if redact_secrets else copy.deepcopy(dict(raw))
        if ref in statuses:
            doc["status"] = copy.deepcopy(dict(statuses[ref]))
        out.append(doc)
    for error in resources.errors:
        kind, _, rest = error.ref.partition(" ")
        namespace, _, name = rest.rpartition("/")
        out.append(
            {
                "kind": kind,
                "metadata": {"namespace": namespace, "name": name},
                "status": {"nantianError": str(error)},
            }
        )
    return out
