"""Sans-IO bookkeeping of UDP proxy sessions: one per client address, bounded, expiring when idle.

No sockets and no clock: callers pass ``now`` (seconds, any monotonic origin). A session is "used" whenever a
datagram goes either way; it expires ``idle_timeout`` seconds after its last use. The table holds at most
``max_sessions``: a datagram from a new client beyond that is refused (dropped), so a flood of new source
addresses cannot push established sessions out.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["UdpSessionTable"]

K = TypeVar("K", bound=Hashable)
S = TypeVar("S")


class UdpSessionTable(Generic[K, S]):
    """Sessions by client address, least recently used first.

    :param max_sessions: Most sessions at a time; :meth:`add` refuses more.
    :param idle_timeout: Seconds after its last use a session expires.
    """

    def __init__(self, *, max_sessions: int, idle_timeout: float) -> None:
        if max_sessions < 1 or idle_timeout <= 0:
            raise ValueError("max_sessions must be >= 1 and idle_timeout > 0")
        self.max_sessions = max_sessions
        self.idle_timeout = idle_timeout
        self._sessions: OrderedDict[K, tuple[S, float]] = OrderedDict()
        self.refused = 0
        """New sessions refused because the table was full."""

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, client: object) -> bool:
        return client in self._sessions

    def values(self) -> list[S]:
        """Every live session (oldest use first)."""
        return [s for s, _ in self._sessions.values()]

    def get(self, client: K) -> S | None:
        """The session of ``client`` without marking it used."""
        entry = self._sessions.get(client)
        return entry[0] if entry is not None else None

    def touch(self, client: K, now: float) -> S | None:
        """The session of ``client`` (marked used at ``now``), or ``None`` when it has none."""
        entry = self._sessions.get(client)
        if entry is None:
            return None
        self._sessions[client] = (entry[0], now)
        self._sessions.move_to_end(client)
        return entry[0]

    def add(self, client: K, session: S, now: float) -> bool:
        """Start ``session`` for ``client``; ``False`` (and nothing stored) when the table is full."""
        if client in self._sessions:
            raise KeyError(f"client {client!r} already has a session")
        if len(self._sessions) >= self.max_sessions:
            self.refused += 1
            return False
        self._sessions[client] = (session, now)
        return True

    def remove(self, client: K) -> S | None:
        """Forget ``client``'s session and return it."""
        entry = self._sessions.pop(client, None)
        return entry[0] if entry is not None else None

    def expire(self, now: float) -> list[tuple[K, S]]:
        """Remove and return the sessions unused for ``idle_timeout`` seconds at ``now``."""
        out: list[tuple[K, S]] = []
        limit = now - self.idle_timeout
        while self._sessions:
            client, (session, used) = next(iter(self._sessions.items()))
            if used > limit:
                break
            del self._sessions[client]
            out.append((client, session))
        return out

    def next_expiry(self) -> float | None:
        """When the least recently used session expires, or ``None`` when there is none."""
        if not self._sessions:
            return None
        _, used = next(iter(self._sessions.values()))
        return used + self.idle_timeout

    def clear(self) -> list[tuple[K, S]]:
        """Remove and return every session."""
        out = [(k, s) for k, (s, _) in self._sessions.items()]
        self._sessions.clear()
        return out
