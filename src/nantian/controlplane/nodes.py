"""The data planes a controller serves, as ``/api/v1/nodes`` shows them (JSON from the xDS node registry)."""

from __future__ import annotations

import datetime
from typing import Any

from nantian.xds.registry import NodeRecord, NodeRegistry

__all__ = ["node_document", "node_documents"]


def _time(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat(timespec="milliseconds")


def node_document(record: NodeRecord) -> dict[str, Any]:
    """One node: identity, connection, the version it acked, its last refusal and its last status report."""
    nack = record.last_nack
    status = record.last_status
    return {
        "nodeId": record.node_id,
        "build": record.build,
        "gateways": list(record.gateways),
        "peer": record.peer,
        "transport": record.transport,
        "connected": record.connected,
        "connectedSince": _time(record.connected_since),
        "disconnectedAt": _time(record.disconnected_at),
        "versionAcked": record.version_acked,
        "versionPending": record.version_pending,
        "ackedAt": _time(record.acked_at),
        "nacks": record.nacks,
        "lastNack": None if nack is None else {"version": nack.version, "detail": nack.detail, "at": _time(nack.at)},
        "lastStatus": None if status is None else {**status.to_json(), "at": _time(record.status_at)},
        "messagesSent": record.messages_sent,
        "bytesSent": record.bytes_sent,
    }


def node_documents(registry: NodeRegistry) -> list[dict[str, Any]]:
    """Every node the registry knows (connected, or gone for less than its ``forget_after``), by id."""
    return [node_document(r) for r in registry.nodes()]
