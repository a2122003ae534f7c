"""Sans-IO core of a stream relay (TCP, TLS passthrough, TLS terminate): events in, commands out.

One :class:`Relay` per proxied connection. It holds no sockets and reads no clock: the adapter
(:mod:`nantian.proxy.asyncio_relay`) feeds it what happened on the two sides and executes what it returns.

- Bytes from one side are sent to the other. Bytes the downstream sends before the upstream is connected are kept
  (:attr:`Relay.pending`: the TLS passthrough adapter reads the ClientHello there) and sent once it is.
- An EOF is passed on as a half-close (``ShutdownWrite``) when the other side can take one; once both sides sent
  EOF, or one side cannot be half-closed, the relay closes.
- Flow control: when one side's write buffer is full, reading from the other side pauses until it drains; reading
  from the downstream also pauses while too many bytes wait for the upstream connection.
- Idle timeout: the relay asks for a timer every quarter of the timeout and closes after four quiet ticks in a
  row, so an idle connection closes between 1 and 1.25 timeouts after its last byte.
"""

from __future__ import annotations

import enum

import attrs

__all__ = [
    "Close",
    "Command",
    "ConnectFailed",
    "Connected",
    "ConnectionLost",
    "DataReceived",
    "EofReceived",
    "Event",
    "PauseReading",
    "Relay",
    "ResumeReading",
    "Send",
    "ShutdownWrite",
    "Side",
    "StartTimer",
    "Stop",
    "TimerFired",
    "WriteBlocked",
    "WriteUnblocked",
]

IDLE_TICKS = 4
"""Timer ticks per idle timeout; a connection closes after this many ticks without a byte."""

MAX_PENDING = 1 << 17
"""Bytes kept for the upstream before it is connected; above this, reading from the downstream pauses."""


class Side(enum.Enum):
    """One end of a relayed connection."""

    DOWNSTREAM = "downstream"
    UPSTREAM = "upstream"

    @property
    def other(self) -> Side:
        return Side.UPSTREAM if self is Side.DOWNSTREAM else Side.DOWNSTREAM


# --- events ---------------------------------------------------------------------------------------------------------


@attrs.frozen
class Connected:
    """The upstream connection is established."""


@attrs.frozen
class ConnectFailed:
    """The upstream connection could not be established."""

    reason: str


@attrs.frozen
class DataReceived:
    side: Side
    data: bytes


@attrs.frozen
class EofReceived:
    """``side`` will send no more bytes (a TCP FIN)."""

    side: Side


@attrs.frozen
class ConnectionLost:
    """``side``'s connection is gone (reset, or closed by the peer before we closed it)."""

    side: Side
    reason: str | None = None


@attrs.frozen
class WriteBlocked:
    """``side``'s write buffer is above its high-water mark."""

    side: Side


@attrs.frozen
class WriteUnblocked:
    """``side``'s write buffer drained below its low-water mark."""

    side: Side


@attrs.frozen
class TimerFired:
    """The timer a :class:`StartTimer` asked for went off."""


@attrs.frozen
class Stop:
    """Close the relay now for a local reason (no route, shutdown). ``abort`` drops unsent bytes."""

    reason: str
    abort: bool = True


Event = (
    Connected
    | ConnectFailed
    | DataReceived
    | EofReceived
    | ConnectionLost
    | WriteBlocked
    | WriteUnblocked
    | TimerFired
    | Stop
)

# --- commands -------------------------------------------------------------------------------------------------------


@attrs.frozen
class Send:
    side: Side
    data: bytes


@attrs.frozen
class ShutdownWrite:
    """Half-close: send EOF to ``side`` after what is buffered for it."""

    side: Side


@attrs.frozen
class PauseReading:
    side: Side


@attrs.frozen
class ResumeReading:
    side: Side


@attrs.frozen
class StartTimer:
    """Deliver :class:`TimerFired` after ``delay`` seconds (at most one timer is outstanding)."""

    delay: float


@attrs.frozen
class Close:
    """Close both sides (``abort``: drop unsent bytes, else flush first). Always the last command of a relay."""

    reason: str
    abort: bool = False


Command = Send | ShutdownWrite | PauseReading | ResumeReading | StartTimer | Close


class Relay:
    """Copies bytes between the downstream and upstream of one connection; see the module docstring.

    :param idle_timeout: Seconds without a byte in either direction before the relay closes; ``None``: never.
    :param half_close: Sides that can take a half-close (a TLS-terminated downstream cannot).
    :param max_pending: Bytes kept for a not yet connected upstream before reading from the downstream pauses.
    """

    def __init__(
        self,
        *,
        idle_timeout: float | None = None,
        half_close: frozenset[Side] = frozenset(Side),
        max_pending: int = MAX_PENDING,
    ) -> None:
        self._idle_timeout = idle_timeout
        self._half_close = half_close
        self._max_pending = max_pending
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._connected = False
        self._reading = {Side.DOWNSTREAM, Side.UPSTREAM}
        """Sides we still expect bytes from (no EOF yet)."""
        self._blocked: set[Side] = set()
        self._paused: set[Side] = set()
        self._active = True
        self._quiet_ticks = 0
        self.closed = False
        self.close_reason: str | None = None
        self.received = {Side.DOWNSTREAM: 0, Side.UPSTREAM: 0}
        """Bytes received from each side."""

    @property
    def connected(self) -> bool:
        """Whether the upstream is connected."""
        return self._connected

    @property
    def pending(self) -> bytes:
        """Downstream bytes waiting for the upstream connection."""
        return b"".join(self._pending)

    def take_pending(self) -> tuple[bytes, list[Command]]:
        """Remove and return the downstream bytes kept for the upstream, with the commands to run (reading may
        resume). A TLS-terminating adapter takes the ClientHello this way: those bytes are not for the upstream."""
        data = self.pending
        self._pending.clear()
        self._pending_size = 0
        self.received[Side.DOWNSTREAM] -= len(data)
        return data, self._flow()

    def start(self) -> list[Command]:
        """Commands to run when the downstream connection is accepted (the first idle timer)."""
        return self._timer()

    def handle(self, event: Event) -> list[Command]:
        """Feed one event; returns the commands to execute, in order."""
        if self.closed:
            return []  # late events after Close: the adapter's transports are going away
        match event:
            case DataReceived(side, data) if side in self._reading:
                return self._data(side, data)
            case EofReceived(side) if side in self._reading:
                return self._eof(side)
            case Connected() if not self._connected:
                return self._on_connected()
            case ConnectFailed(reason) if not self._connected:
                return self._close(f"connect failed: {reason}", abort=True)
            case ConnectionLost(side, reason):
                return self._lost(side, reason)
            case WriteBlocked(side):
                self._blocked.add(side)
                return self._flow()
            case WriteUnblocked(side):
                self._blocked.discard(side)
                return self._flow()
            case TimerFired():
                return self._tick()
            case Stop(reason, abort):
                return self._close(reason, abort=abort)
            case _:
                return []  # bytes or EOF after EOF, a second Connected: the peer or adapter misbehaves; ignore it

    # -- transitions -------------------------------------------------------------------------------------------------
    def _data(self, side: Side, data: bytes) -> list[Command]:
        if not data:
            return []
        self.received[side] += len(data)
        self._active = True
        if side is Side.DOWNSTREAM and not self._connected:
            self._pending.append(data)
            self._pending_size += len(data)
            return self._flow()
        return [Send(side.other, data)]

    def _eof(self, side: Side) -> list[Command]:
        self._reading.discard(side)
        self._active = True
        if side is Side.DOWNSTREAM and not self._connected:
            return []  # passed on once the upstream is connected
        return self._pass_eof(side)

    def _pass_eof(self, side: Side) -> list[Command]:
        if side.other not in self._half_close:
            return self._close(f"{side.value} closed")
        commands: list[Command] = [ShutdownWrite(side.other)]
        if self._reading:
            return commands
        return [*commands, *self._close("done")]

    def _on_connected(self) -> list[Command]:
        self._connected = True
        commands: list[Command] = []
        if self._pending:
            commands.append(Send(Side.UPSTREAM, self.pending))
            self._pending.clear()
            self._pending_size = 0
        if Side.DOWNSTREAM not in self._reading:
            commands.extend(self._pass_eof(Side.DOWNSTREAM))
            if self.closed:
                return commands
        return [*commands, *self._flow()]

    def _lost(self, side: Side, reason: str | None) -> list[Command]:
        if reason is None and side not in self._reading and side.other not in self._reading:
            return self._close("done")
        return self._close(f"{side.value} {reason or 'closed'}", abort=reason is not None)

    def _flow(self) -> list[Command]:
        want: set[Side] = {s.other for s in self._blocked}
        if not self._connected and self._pending_size > self._max_pending:
            want.add(Side.DOWNSTREAM)
        commands: list[Command] = []
        for side in (Side.DOWNSTREAM, Side.UPSTREAM):
            if side is Side.UPSTREAM and not self._connected:
                continue
            if side in want and side not in self._paused:
                self._paused.add(side)
                commands.append(PauseReading(side))
            elif side not in want and side in self._paused:
                self._paused.discard(side)
                commands.append(ResumeReading(side))
        return commands

    def _timer(self) -> list[Command]:
        if self._idle_timeout is None:
            return []
        return [StartTimer(self._idle_timeout / IDLE_TICKS)]

    def _tick(self) -> list[Command]:
        if self._active:
            self._active = False
            self._quiet_ticks = 0
        else:
            self._quiet_ticks += 1
            if self._quiet_ticks >= IDLE_TICKS:
                return self._close("idle timeout", abort=True)
        return self._timer()

    def _close(self, reason: str, *, abort: bool = False) -> list[Command]:
        self.closed = True
        self.close_reason = reason
        self._pending.clear()
        return [Close(reason, abort=abort)]
