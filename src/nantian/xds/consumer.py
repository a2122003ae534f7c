"""What a configuration client drives: the proxy runtime, or anything shaped like it (a recording consumer)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from nantian.ir import Snapshot
from nantian.xds.status import ListenerReport, StatusReport, health_of

__all__ = ["ConfigConsumer", "ListenerStateLike", "status_of"]


class ListenerStateLike(Protocol):
    """One listener as the consumer sees it (``nantian.proxy.ListenerState`` fits)."""

    @property
    def address(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def bound(self) -> bool: ...
    @property
    def error(self) -> str | None: ...


class ConfigConsumer(Protocol):
    """Applies snapshots atomically. ``nantian.proxy.ProxyRuntime`` is one.

    :meth:`apply` either applies all of ``snapshot`` or raises :class:`~nantian.errors.ConfigRejected` and
    changes nothing. Its result may say which listeners failed (``result.failed``); clients only log it.
    """

    @property
    def version(self) -> str | None: ...

    async def apply(self, snapshot: Snapshot) -> object: ...

    def listener_states(self) -> Mapping[str, ListenerStateLike]: ...

    def counters(self) -> Mapping[str, int]: ...


def status_of(consumer: ConfigConsumer, version: str | None) -> StatusReport:
    """A status report of ``consumer`` serving ``version``."""
    listeners = tuple(
        ListenerReport(name=name, address=s.address, port=s.port, bound=s.bound, error=s.error)
        for name, s in sorted(consumer.listener_states().items())
    )
    return StatusReport(
        version=version, health=health_of(version, listeners), listeners=listeners, counters=dict(consumer.counters())
    )
