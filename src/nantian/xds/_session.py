"""The control plane's side of one configuration stream, sans-IO: events in, commands out.

The core decides what a data plane is sent and when; :mod:`nantian.xds.server` only moves messages. Rules:

- Nothing is sent before the node's Hello. A node holding a version the store remembers (``held``) gets a
  delta from it; otherwise a full snapshot.
- At most one message is unanswered. A newer configuration waits for the Ack or Nack of the one in flight,
  then goes out as one delta from what the node acked (intermediate versions are skipped).
- An Ack with the in-flight nonce moves the node to that version; any other nonce is stale and ignored.
- A Nack keeps the node on its last acked version, and that version is not sent again right away (no resend
  loop); a newer configuration is. With ``retry_after``, a refused version that is still the newest is tried
  again on a :class:`Tick` once ``retry_after`` seconds have passed, the wait doubling on each refusal up to
  ``retry_max`` (a port that was taken may be free by then). A Nack with ``resync`` (the delta did not fit what
  the node holds) is answered with the full snapshot of the same version, once.
"""

from __future__ import annotations

from collections import OrderedDict

import attrs

from nantian.ir import Snapshot

__all__ = [
    "Accepted",
    "AckReceived",
    "Close",
    "Command",
    "ConfigChanged",
    "Event",
    "HelloReceived",
    "NackReceived",
    "Rejected",
    "SendDelta",
    "SendSnapshot",
    "ServerSession",
    "Stale",
    "Tick",
]


# --- events -----------------------------------------------------------------------------------------
@attrs.frozen
class HelloReceived:
    """The node introduced itself. ``held`` is the snapshot at ``version`` if the store remembers it."""

    node_id: str
    gateways: frozenset[str]
    version: str
    held: Snapshot | None
    build: str = ""


@attrs.frozen
class AckReceived:
    version: str
    nonce: str


@attrs.frozen
class NackReceived:
    version: str
    nonce: str
    detail: str
    resync: bool = False
    now: float | None = None
    """When (monotonic seconds); the retry of the refused version is timed from it (else from the last Tick)."""


@attrs.frozen
class Tick:
    """Time passes: ``now`` in seconds on a monotonic clock. Refused versions may be retried."""

    now: float


@attrs.frozen
class ConfigChanged:
    """The configuration this node should serve is now ``snapshot`` (its view of the store)."""

    snapshot: Snapshot


Event = HelloReceived | AckReceived | NackReceived | ConfigChanged | Tick


# --- commands ---------------------------------------------------------------------------------------
@attrs.frozen
class SendSnapshot:
    snapshot: Snapshot
    nonce: str


@attrs.frozen
class SendDelta:
    """Send ``diff(base, snapshot)``: the node holds ``base``."""

    base: Snapshot
    snapshot: Snapshot
    nonce: str


@attrs.frozen
class Accepted:
    """The node acked ``version``: it serves it now."""

    version: str


@attrs.frozen
class Rejected:
    """The node refused ``version`` and keeps serving ``serving`` (``None``: nothing yet)."""

    version: str
    detail: str
    serving: str | None


@attrs.frozen
class Stale:
    """An Ack or Nack for a nonce that is not in flight (late, duplicated or invented); nothing changes."""

    nonce: str


@attrs.frozen
class Close:
    """The peer broke the protocol; end the stream with ``reason``."""

    reason: str


Command = SendSnapshot | SendDelta | Accepted | Rejected | Stale | Close

_REMEMBERED_REJECTIONS = 32


@attrs.define
class _Refusal:
    count: int
    retry_at: float


@attrs.define
class _InFlight:
    nonce: str
    snapshot: Snapshot
    full: bool


class ServerSession:
    """Per-stream bookkeeping: who the node is, what it acked, what is in flight, what it refused."""

    def __init__(self, *, retry_after: float | None = None, retry_max: float = 600.0) -> None:
        self.retry_after = retry_after
        self.retry_max = retry_max
        self.node_id: str | None = None
        self.gateways: frozenset[str] = frozenset()
        self.build = ""
        self.acked: Snapshot | None = None
        """The snapshot the node is known to serve (from its Hello or its last Ack)."""
        self.latest: Snapshot | None = None
        """The snapshot the node should serve."""
        self.last_nack: Rejected | None = None
        self._in_flight: _InFlight | None = None
        self._rejected: OrderedDict[str, _Refusal] = OrderedDict()
        self._now: float | None = None
        self._nonces = 0
        self._closed = False

    @property
    def acked_version(self) -> str | None:
        return None if self.acked is None else self.acked.version

    @property
    def pending_nonce(self) -> str | None:
        return None if self._in_flight is None else self._in_flight.nonce

    @property
    def pending_version(self) -> str | None:
        return None if self._in_flight is None else self._in_flight.snapshot.version

    @property
    def introduced(self) -> bool:
        return self.node_id is not None

    def handle(self, event: Event) -> list[Command]:
        """Feed one event; returns what to do, in order."""
        if self._closed:
            return []
        match event:
            case HelloReceived():
                if self.node_id is not None:
                    return self._close("second Hello on one stream")
                if not event.node_id:
                    return self._close("Hello without a node id")
                self.node_id, self.gateways, self.build = event.node_id, event.gateways, event.build
                if event.held is not None and event.held.version == event.version:
                    self.acked = event.held
                return self._next()
            case ConfigChanged(snapshot):
                self.latest = snapshot
                return self._next()
            case Tick(now):
                self._now = now
                return self._next(retrying=True)
            case AckReceived(_, nonce):
                if self.node_id is None:
                    return self._close("Ack before Hello")
                flight = self._in_flight
                if flight is None or flight.nonce != nonce:
                    return [Stale(nonce)]
                self._in_flight = None
                self.acked = flight.snapshot
                self._rejected.pop(flight.snapshot.version, None)
                return [Accepted(flight.snapshot.version), *self._next()]
            case NackReceived(_, nonce, detail, resync, now):
                if self.node_id is None:
                    return self._close("Nack before Hello")
                flight = self._in_flight
                if flight is None or flight.nonce != nonce:
                    return [Stale(nonce)]
                self._in_flight = None
                if resync and not flight.full:
                    self.acked = None  # what it holds is not what we thought: start over from a full snapshot
                    return self._next()
                self._refused(flight.snapshot.version, now if now is not None else self._now)
                rejected = Rejected(flight.snapshot.version, detail, self.acked_version)
                self.last_nack = rejected
                return [rejected, *self._next()]
        return []  # pragma: no cover - the match is exhaustive

    def _refused(self, version: str, now: float | None) -> None:
        previous = self._rejected.pop(version, None)
        count = 1 if previous is None else previous.count + 1
        wait = min(self.retry_max, (self.retry_after or 0.0) * 2 ** (count - 1))
        self._rejected[version] = _Refusal(count, (now or 0.0) + wait)
        while len(self._rejected) > _REMEMBERED_REJECTIONS:
            self._rejected.popitem(last=False)

    def _next(self, *, retrying: bool = False) -> list[Command]:
        if self.node_id is None or self._in_flight is not None or self.latest is None:
            return []
        target = self.latest
        if self.acked is not None and self.acked.version == target.version:
            return []
        refusal = self._rejected.get(target.version)
        if refusal is not None:
            now = self._now
            if not retrying or self.retry_after is None or now is None or now < refusal.retry_at:
                return []
        self._nonces += 1
        nonce = str(self._nonces)
        if self.acked is None:
            self._in_flight = _InFlight(nonce, target, full=True)
            return [SendSnapshot(target, nonce)]
        self._in_flight = _InFlight(nonce, target, full=False)
        return [SendDelta(self.acked, target, nonce)]

    def _close(self, reason: str) -> list[Command]:
        self._closed = True
        return [Close(reason)]
