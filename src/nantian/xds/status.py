"""What a data plane reports about itself: listeners bound or failed, the version it serves, health, counters."""

from __future__ import annotations

import enum
from collections.abc import Mapping

import attrs

__all__ = ["STATUS_POLL", "Health", "ListenerReport", "StatusReport", "health_of"]

STATUS_POLL = 1.0
"""Seconds between a data plane's looks at its own status (the gRPC client sends a report when what it says
changed; the in-process client records every one: a function call)."""


class Health(enum.Enum):
    SERVING = "Serving"
    """Every listener of the served configuration is bound."""
    DEGRADED = "Degraded"
    """Some listeners failed to bind; the rest serve."""
    NOT_SERVING = "NotServing"
    """No configuration applied yet, or nothing can serve."""


@attrs.frozen(kw_only=True)
class ListenerReport:
    """One IR listener on a data plane: the address and port it bound (offset included) or why it did not."""

    name: str
    address: str
    port: int
    bound: bool
    error: str | None = None


@attrs.frozen(kw_only=True)
class StatusReport:
    """A data plane's view of itself, sent on every change and periodically."""

    version: str | None
    health: Health
    listeners: tuple[ListenerReport, ...] = ()
    counters: Mapping[str, int] = attrs.field(factory=dict, eq=False)

    def to_json(self) -> dict[str, object]:
        """JSON-able form for the admin API."""
        return {
            "version": self.version,
            "health": self.health.value,
            "listeners": [
                {"name": x.name, "address": x.address, "port": x.port, "bound": x.bound, "error": x.error}
                for x in self.listeners
            ],
            "counters": dict(self.counters),
        }


def health_of(version: str | None, listeners: tuple[ListenerReport, ...]) -> Health:
    """``NOT_SERVING`` without a version or when no listener is bound; ``DEGRADED`` when some are not."""
    if version is None:
        return Health.NOT_SERVING
    failed = sum(1 for x in listeners if not x.bound)
    if listeners and failed == len(listeners):
        return Health.NOT_SERVING
    return Health.DEGRADED if failed else Health.SERVING
