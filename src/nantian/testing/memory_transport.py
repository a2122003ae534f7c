"""An in-memory stand-in for an asyncio/uvloop stream transport: drive a protocol without sockets.

For property tests and CPU benchmarks of protocol code (the HTTP/1.1 front end and upstream connections): what the
protocol writes is collected in :attr:`MemoryTransport.written`; nothing is sent anywhere. Tests that need the
network use real sockets on loopback instead.
"""

from __future__ import annotations

__all__ = ["MemoryTransport"]


class MemoryTransport:
    """Collects writes; answers ``get_extra_info("peername")`` with ``peer``; reading cannot be paused for real."""

    def __init__(self, peer: tuple[str, int] = ("127.0.0.1", 1), *, can_write_eof: bool = True) -> None:
        self.written: list[bytes] = []
        self.peer = peer
        self.closed = False
        self.eof_written = False
        self._can_write_eof = can_write_eof

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def writelines(self, parts: list[bytes]) -> None:
        self.written.extend(parts)

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self.peer if name == "peername" else default

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return self._can_write_eof

    def write_eof(self) -> None:
        self.eof_written = True
