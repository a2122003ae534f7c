"""What the admin API shows, as a Protocol each app implements (standalone, controller, proxy)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from nantian.ir import Snapshot

__all__ = ["AdminState"]


class AdminState(Protocol):
    """The read-only view of an app that the admin server serves. Every method is cheap and non-blocking."""

    def ready(self) -> bool:
        """``True`` once the first snapshot is translated (and, with a data plane, applied)."""
        ...

    def resources(self) -> Sequence[Mapping[str, Any]] | None:
        """Every object the source holds, Kubernetes-shaped with the computed ``status``; ``None``: no source here."""
        ...

    def snapshot(self) -> Snapshot | None:
        """The current IR snapshot, or ``None`` before the first one."""
        ...

    def nodes(self) -> Sequence[Mapping[str, Any]]:
        """Connected data planes (node id, version acked, last status report ...); empty when there are none."""
        ...

    def metrics_text(self) -> bytes:
        """Prometheus text exposition of the app's metrics."""
        ...
