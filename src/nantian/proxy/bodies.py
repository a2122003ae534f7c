"""Body sources: a buffered stream fed by a protocol (with flow control), bytes, and a replayable recorder."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from nantian.errors import RemoteProtocolError
from nantian.proxy.exchange import BodySource, Headers

__all__ = ["BytesBody", "RecordingBody", "StreamBody", "Tunnel"]

HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024


class StreamBody:
    """A :class:`~nantian.proxy.exchange.BodySource` fed by a protocol's parser callbacks.

    The protocol calls :meth:`feed`, :meth:`finish` and :meth:`fail`; when more than ``HIGH_WATER`` bytes wait
    unread it calls ``pause`` (``transport.pause_reading``), and ``resume`` once reads bring it under ``LOW_WATER``.
    """

    __slots__ = (
        "_buffered",
        "_chunks",
        "_done",
        "_error",
        "_on_first_read",
        "_pause",
        "_paused",
        "_resume",
        "_trailers",
        "_waiter",
        "content_length",
        "received",
    )

    def __init__(
        self,
        content_length: int | None,
        pause: Callable[[], None] | None = None,
        resume: Callable[[], None] | None = None,
    ) -> None:
        self.content_length = content_length
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._pause = pause
        self._resume = resume
        self._paused = False
        self._trailers: Headers | None = None
        self._on_first_read: Callable[[], None] | None = None
        self.received = 0

    @property
    def done(self) -> bool:
        """The sender finished the body (every chunk fed)."""
        return self._done

    @property
    def trailers(self) -> Headers | None:
        return self._trailers

    def on_first_read(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the body is first read (``Expect: 100-continue``)."""
        self._on_first_read = callback

    def _wake(self) -> None:
        w = self._waiter
        if w is not None:
            self._waiter = None
            if not w.done():
                w.set_result(None)

    def feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        self.received += len(data)
        if self._buffered > HIGH_WATER and not self._paused and self._pause is not None:
            self._paused = True
            self._pause()
        self._wake()

    def finish(self, trailers: Headers | None = None) -> None:
        self._done = True
        self._trailers = trailers
        self._wake()

    def fail(self, error: BaseException) -> None:
        if not self._done:
            self._error = error
            self._done = True
        self._wake()

    async def read(self) -> bytes:
        if self._on_first_read is not None:
            cb, self._on_first_read = self._on_first_read, None
            if not self._done:
                cb()
        while True:
            if self._chunks:
                data = self._chunks.popleft()
                self._buffered -= len(data)
                if self._paused and self._buffered < LOW_WATER and self._resume is not None:
                    self._paused = False
                    self._resume()
                return data
            if self._error is not None:
                raise RemoteProtocolError(str(self._error)) from self._error
            if self._done:
                return b""
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            await waiter


class BytesBody:
    """A body held in memory."""

    __slots__ = ("_data", "content_length")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.content_length: int | None = len(data)

    @classmethod
    def expecting(cls, length: int) -> BytesBody:
        """A body of ``length`` bytes still being received; :meth:`fill` it before it is read."""
        body = cls(b"")
        body.content_length = length
        return body

    def fill(self, data: bytes) -> None:
        self._data = data
        self.content_length = len(data)

    @property
    def data(self) -> bytes:
        """The bytes not read yet."""
        return self._data

    @property
    def trailers(self) -> Headers | None:
        return None

    async def read(self) -> bytes:
        data, self._data = self._data, b""
        return data


class RecordingBody:
    """Reads through ``source`` and keeps the first ``limit`` bytes, so the body can be replayed (retries, mirrors).

    :meth:`replay` gives a new source with the same bytes: the recorded ones, then whatever the original still has
    (only one replay may read from the original at a time). ``overflowed`` means the recording is incomplete and a
    replay is impossible once the original has been read past it. ``finished`` is set when the original ended.
    """

    def __init__(self, source: BodySource, limit: int) -> None:
        self._source = source
        self._limit = limit
        self._recorded: list[bytes] = []
        self._size = 0
        self.overflowed = False
        self.finished = asyncio.Event()
        self.content_length = source.content_length

    @property
    def trailers(self) -> Headers | None:
        return self._source.trailers

    @property
    def replayable(self) -> bool:
        return not self.overflowed

    def recorded(self) -> bytes:
        return b"".join(self._recorded)

    async def _pull(self) -> bytes:
        data = await self._source.read()
        if not data:
            self.finished.set()
            return data
        self._size += len(data)
        if not self.overflowed:
            if self._size > self._limit:
                self.overflowed = True
                self._recorded.clear()
            else:
                self._recorded.append(data)
        if self.content_length is not None and self._size >= self.content_length:
            self.finished.set()  # readers that know the length stop before the empty read
        return data

    async def read(self) -> bytes:
        return await self._pull()

    def replay(self) -> BodySource:
        return _Replay(self)


class _Replay:
    def __init__(self, rec: RecordingBody) -> None:
        self._rec = rec
        self._pending = list(rec._recorded)
        self.content_length = rec.content_length

    @property
    def trailers(self) -> Headers | None:
        return self._rec.trailers

    async def read(self) -> bytes:
        if self._pending:
            return self._pending.pop(0)
        if self._rec.finished.is_set():
            return b""
        return await self._rec._pull()


class Tunnel:
    """The reading half of an upgraded (tunnelled) HTTP/1.1 connection, shared by the downstream and upstream
    sides: bytes fed by the protocol are read with flow control; the end or a broken stream reads as ``b""``.
    Subclasses add ``write``, ``write_eof`` and ``close`` for their connection."""

    def __init__(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        self._body = StreamBody(None, pause, resume)

    def feed(self, data: bytes) -> None:
        self._body.feed(data)

    def feed_eof(self) -> None:
        self._body.finish()

    async def read(self) -> bytes:
        try:
            return await self._body.read()
        except RemoteProtocolError:
            return b""
