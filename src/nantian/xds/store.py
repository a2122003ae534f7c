"""SnapshotStore: the current snapshot, recent history, per-node views and deltas between them.

One store feeds every transport. The reconciler :meth:`~SnapshotStore.publish`\\ es a snapshot; streams
wait for :meth:`~SnapshotStore.wait` and ask for the :meth:`~SnapshotStore.view` their node serves. A node
that reconnects holding a version the store still remembers gets a delta from it
(:meth:`~SnapshotStore.lookup`, :meth:`~SnapshotStore.delta`); otherwise a full snapshot.

The store lives on one asyncio event loop: call it from that loop only (it takes no locks).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from nantian.ir import Delta, Snapshot, diff
from nantian.xds._lru import Lru
from nantian.xds.filtering import for_gateways

__all__ = ["SnapshotStore"]

log = logging.getLogger(__name__)

GatewaySet = frozenset[str]


class SnapshotStore:
    """The current configuration and enough history to send a returning node a delta.

    :param history: How many (node view, version) snapshots to remember for deltas, across all views.
    """

    def __init__(self, *, history: int = 64) -> None:
        self._current: Snapshot | None = None
        self._generation = 0
        self._changed = asyncio.Event()
        self._views: Lru[tuple[GatewaySet, str], Snapshot] = Lru(max(1, history))
        self._current_views: dict[GatewaySet, Snapshot] = {}
        self._deltas: Lru[tuple[str, str], Delta] = Lru(max(1, history))

    @property
    def current(self) -> Snapshot | None:
        """The last published snapshot (the full one, every Gateway)."""
        return self._current

    @property
    def version(self) -> str | None:
        return None if self._current is None else self._current.version

    @property
    def generation(self) -> int:
        """Counts the publishes that changed the version; :meth:`wait` takes the one a caller has seen."""
        return self._generation

    def publish(self, snapshot: Snapshot) -> bool:
        """Make ``snapshot`` current. Wakes waiters and returns ``True`` only if the version changed."""
        if self._current is not None and self._current.version == snapshot.version:
            return False
        self._current = snapshot
        self._current_views = {}
        self._views.put((frozenset(), snapshot.version), snapshot)
        self._generation += 1
        log.info("snapshot.published version=%s generation=%s", snapshot.version, self._generation)
        self._changed.set()
        self._changed = asyncio.Event()
        return True

    async def wait(self, generation: int) -> int:
        """Return as soon as :attr:`generation` differs from ``generation`` (at once if it already does)."""
        while self._generation == generation:
            await self._changed.wait()
        return self._generation

    def view(self, gateways: Iterable[str] = ()) -> Snapshot | None:
        """The current snapshot as a node serving ``gateways`` sees it (all of it when empty)."""
        if self._current is None:
            return None
        key = frozenset(gateways)
        found = self._current_views.get(key)
        if found is None:
            found = for_gateways(self._current, key)
            self._current_views[key] = found
            self._views.put((key, found.version), found)
        return found

    def lookup(self, version: str, gateways: Iterable[str] = ()) -> Snapshot | None:
        """The view at ``version`` for ``gateways`` if the store still remembers it."""
        if not version:
            return None
        key = frozenset(gateways)
        found = self._views.get((key, version))
        if found is None and self.view(key) is not None:  # the current view may not have been computed yet
            found = self._views.get((key, version))
        return found

    def delta(self, base: Snapshot, new: Snapshot) -> Delta:
        """``diff(base, new)``, remembered: every node moving between the same two versions shares it."""
        key = (base.version, new.version)
        found = self._deltas.get(key)
        if found is None:
            found = diff(base, new)
            self._deltas.put(key, found)
        return found
