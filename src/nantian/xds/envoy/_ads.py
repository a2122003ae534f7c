"""One Envoy ADS stream (state of the world), sans-IO: discovery requests and configuration changes in,
responses and ack/nack records out.

Per type URL the core remembers the version and nonce it sent, what Envoy acked and what it refused. A
request whose nonce is not the last one sent is stale and ignored; one carrying ``error_detail`` refuses the
version sent (it is not sent again on this stream); anything else acks it. Clusters go out before listeners.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

__all__ = ["AdsSession", "Changed", "Nacked", "Request", "Respond", "TypeAcked"]

ORDER = (
    "type.googleapis.com/envoy.config.cluster.v3.Cluster",
    "type.googleapis.com/envoy.config.listener.v3.Listener",
)


@attrs.frozen
class Request:
    type_url: str
    version: str
    nonce: str
    error: str | None = None


@attrs.frozen
class Changed:
    """The configuration this Envoy should have: ``resources`` by type URL, at ``version``."""

    version: str
    resources: Mapping[str, Sequence[object]] = attrs.field(eq=False)


@attrs.frozen
class Respond:
    type_url: str
    version: str
    nonce: str
    resources: Sequence[object] = attrs.field(eq=False)


@attrs.frozen
class TypeAcked:
    type_url: str
    version: str
    everything: bool
    """Every subscribed type has now acked ``version``."""


@attrs.frozen
class Nacked:
    type_url: str
    version: str
    detail: str


Command = Respond | TypeAcked | Nacked


@attrs.define
class _TypeState:
    sent_version: str | None = None
    sent_nonce: str | None = None
    acked_version: str | None = None
    rejected: set[str] = attrs.field(factory=set)


class AdsSession:
    """Bookkeeping for one StreamAggregatedResources call."""

    def __init__(self) -> None:
        self.types: dict[str, _TypeState] = {}
        self.current: Changed | None = None
        self._nonces = 0

    def handle(self, event: Request | Changed) -> list[Command]:
        if isinstance(event, Changed):
            self.current = event
            return [c for t in self._ordered() if (c := self._maybe_send(t)) is not None]
        state = self.types.get(event.type_url)
        if state is None:  # a new subscription
            self.types[event.type_url] = state = _TypeState()
            send = self._maybe_send(event.type_url)
            return [send] if send is not None else []
        if event.nonce != state.sent_nonce:
            return []  # stale: a reply to something older than what we last sent
        assert state.sent_version is not None
        if event.error is not None:
            state.rejected.add(state.sent_version)
            return [Nacked(event.type_url, state.sent_version, event.error)]
        state.acked_version = state.sent_version
        everything = all(s.acked_version == state.acked_version for s in self.types.values())
        out: list[Command] = [TypeAcked(event.type_url, state.sent_version, everything)]
        send = self._maybe_send(event.type_url)
        return out + ([send] if send is not None else [])

    def _ordered(self) -> list[str]:
        known = [t for t in ORDER if t in self.types]
        return known + sorted(t for t in self.types if t not in ORDER)

    def _maybe_send(self, type_url: str) -> Respond | None:
        state = self.types[type_url]
        current = self.current
        if current is None or state.sent_version == current.version or current.version in state.rejected:
            return None
        self._nonces += 1
        state.sent_version, state.sent_nonce = current.version, str(self._nonces)
        return Respond(type_url, current.version, state.sent_nonce, current.resources.get(type_url, ()))
