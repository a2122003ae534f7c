"""NodeRegistry: the data planes a control plane serves, as the admin API's ``/api/v1/nodes`` shows them.

Each transport stream updates its node's record: connected, acked, nacked, reported. A node whose stream
ended stays listed (``connected: false``) for ``forget_after`` seconds, then :meth:`NodeRegistry.prune`
drops it. One asyncio loop; no locks.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import attrs

from nantian.xds.status import StatusReport

__all__ = ["NackRecord", "NodeRecord", "NodeRegistry"]


@attrs.frozen(kw_only=True)
class NackRecord:
    version: str
    detail: str
    at: float
    """Wall-clock seconds."""


@attrs.define(kw_only=True)
class NodeRecord:
    """What the control plane knows about one data plane."""

    node_id: str
    build: str = ""
    gateways: tuple[str, ...] = ()
    peer: str = ""
    transport: str = ""
    connected: bool = True
    connected_since: float = 0.0
    disconnected_at: float | None = None
    version_acked: str | None = None
    version_pending: str | None = None
    acked_at: float | None = None
    nacks: int = 0
    last_nack: NackRecord | None = None
    last_status: StatusReport | None = None
    status_at: float | None = None
    messages_sent: int = 0
    bytes_sent: int = 0
    stream: int = 0
    """Which stream owns the record: a reconnect before the old stream's end is noticed takes it over."""


class NodeRegistry:
    """Records per node id. ``clock`` is wall-clock seconds (injectable for tests)."""

    def __init__(self, *, forget_after: float = 300.0, clock: Callable[[], float] = time.time) -> None:
        self.forget_after = forget_after
        self._clock = clock
        self._nodes: dict[str, NodeRecord] = {}
        self._streams = itertools.count(1)

    def connect(
        self, node_id: str, *, build: str = "", gateways: tuple[str, ...] = (), peer: str = "", transport: str = ""
    ) -> NodeRecord:
        """A stream of ``node_id`` said Hello. Returns its (new or reset) record; keep ``record.stream``."""
        now = self._clock()
        previous = self._nodes.get(node_id)
        record = NodeRecord(
            node_id=node_id,
            build=build,
            gateways=gateways,
            peer=peer,
            transport=transport,
            connected_since=now,
            stream=next(self._streams),
        )
        if previous is not None:  # keep what is still true of the node across reconnects
            record.nacks, record.last_nack = previous.nacks, previous.last_nack
            record.last_status, record.status_at = previous.last_status, previous.status_at
        self._nodes[node_id] = record
        return record

    def disconnect(self, record: NodeRecord) -> None:
        """``record``'s stream ended (ignored if a newer stream took the node over)."""
        current = self._nodes.get(record.node_id)
        if current is record:
            record.connected = False
            record.version_pending = None
            record.disconnected_at = self._clock()

    def acked(self, record: NodeRecord, version: str) -> None:
        record.version_acked = version
        record.version_pending = None
        record.acked_at = self._clock()

    def nacked(self, record: NodeRecord, version: str, detail: str) -> None:
        record.nacks += 1
        record.version_pending = None
        record.last_nack = NackRecord(version=version, detail=detail, at=self._clock())

    def sent(self, record: NodeRecord, version: str, size: int) -> None:
        record.version_pending = version
        record.messages_sent += 1
        record.bytes_sent += size

    def reported(self, record: NodeRecord, status: StatusReport) -> None:
        record.last_status = status
        record.status_at = self._clock()

    def prune(self) -> list[str]:
        """Forget nodes disconnected for longer than ``forget_after``; returns their ids."""
        cutoff = self._clock() - self.forget_after
        gone = [
            n
            for n, r in self._nodes.items()
            if not r.connected and r.disconnected_at is not None and r.disconnected_at < cutoff
        ]
        for node_id in gone:
            del self._nodes[node_id]
        return gone

    def get(self, node_id: str) -> NodeRecord | None:
        return self._nodes.get(node_id)

    def nodes(self) -> list[NodeRecord]:
        """Every known node, sorted by id (pruned first)."""
        self.prune()
        return [self._nodes[n] for n in sorted(self._nodes)]

    def __len__(self) -> int:
        return len(self._nodes)
