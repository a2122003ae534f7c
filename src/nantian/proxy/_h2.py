"""The sans-IO HTTP/2 core shared by the downstream front end and the h2c upstream pool.

:class:`H2Core` wraps the :mod:`h2` state machine and adds what a proxy needs on top of it: events with
``str`` headers (ISO-8859-1, lossless), per-stream outbound buffers that are flushed as the peer's flow-control
windows allow, end-of-stream with optional trailers queued behind buffered data, and peer errors turned into
:class:`~nantian.errors.RemoteProtocolError` (after queueing the GOAWAY to send). No sockets, no clock: feed bytes
to :meth:`H2Core.receive`, write :meth:`H2Core.data_to_send` to the peer.

Errors are kept as small as RFC 9113 section 5.4 allows: a malformed message or a frame that breaks one stream
resets that stream only (a malformed request head is answered 400 first) and shows up as :class:`StreamError`;
the connection and its other streams go on. What breaks the connection itself (framing, HPACK, SETTINGS, the
connection window, stream ids) still ends it with GOAWAY.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable

import attrs
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import h2.stream
import hpack
import hpack.hpack
import hpack.table
import hyperframe.frame

from nantian.errors import RemoteProtocolError

__all__ = [
    "CONNECTION_HEADERS",
    "PREFACE",
    "ConnectionEnded",
    "DataReceived",
    "Event",
    "FrameScanner",
    "H2Core",
    "HeadersReceived",
    "SendWindowOpened",
    "StatelessEncoder",
    "StreamEnded",
    "StreamError",
    "StreamReset",
    "TrailersReceived",
    "decode_headers",
    "outbound_headers",
]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
"""The client connection preface: a cleartext connection starting with it speaks HTTP/2 (prior knowledge)."""

CONNECTION_HEADERS = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"})
"""Connection-specific fields HTTP/2 forbids (RFC 9113 section 8.2.2)."""

Headers = list[tuple[str, str]]


@attrs.frozen
class HeadersReceived:
    """A request head (server) or a final response head (client). ``headers`` include pseudo-headers."""

    stream_id: int
    headers: Headers
    end_stream: bool


@attrs.frozen
class DataReceived:
    """Body bytes; acknowledge ``flow_length`` with :meth:`H2Core.acknowledge` once they are consumed."""

    stream_id: int
    data: bytes
    flow_length: int


@attrs.frozen
class TrailersReceived:
    stream_id: int
    headers: Headers


@attrs.frozen
class StreamEnded:
    """The peer finished sending on this stream (after its headers, data or trailers)."""

    stream_id: int


@attrs.frozen
class StreamReset:
    """The stream is gone (RST_STREAM from the peer, or refused by the core). Buffered output was dropped."""

    stream_id: int
    error_code: int


@attrs.frozen
class StreamError:
    """The peer broke HTTP/2 on this stream only (RFC 9113 section 5.4.2: a malformed message, a content-length
    that does not match the body, a frame on a stream it had closed). The core already reset the stream, or, for a
    malformed request head, answered ``answered`` (400) and closed it; buffered output was dropped. The connection
    and its other streams go on."""

    stream_id: int
    error_code: int
    reason: str
    answered: int | None = None


@attrs.frozen
class SendWindowOpened:
    """Buffered output of ``stream_id`` went down to ``buffered`` bytes (senders waiting on it may go on)."""

    stream_id: int
    buffered: int


@attrs.frozen
class ConnectionEnded:
    """The peer sent GOAWAY: streams above ``last_stream_id`` were not processed and no new ones may start."""

    error_code: int
    last_stream_id: int


Event = (
    HeadersReceived
    | DataReceived
    | TrailersReceived
    | StreamEnded
    | StreamReset
    | StreamError
    | SendWindowOpened
    | ConnectionEnded
)


def decode_headers(raw: Iterable[tuple[bytes | str, bytes | str]]) -> Headers:
    """h2 header pairs -> ``(str, str)`` pairs, decoded as ISO-8859-1."""
    if not isinstance(raw, list):
        raw = list(raw)
    try:  # what H2Core's h2 gives (header_encoding=None): bytes only
        return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in raw]  # type: ignore[union-attr]
    except AttributeError:
        pass
    out: Headers = []
    for name, value in raw:
        n = name.decode("latin-1") if isinstance(name, bytes) else name
        v = value.decode("latin-1") if isinstance(value, bytes) else value
        out.append((n, v))
    return out


def outbound_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """End-to-end header fields made fit for HTTP/2: lower-case names, no connection-specific fields, ``te`` only as
    ``trailers``, no stray pseudo-headers, values without surrounding whitespace. A field HTTP/2 cannot carry (empty
    name, or CR, LF or NUL in it) is dropped: h2's own outbound validation is off, this is the check."""
    out: list[tuple[bytes, bytes]] = []
    cache = _OUTBOUND
    for name, value in headers:
        field = (name, value)
        encoded = cache.get(field, _UNKNOWN)
        if encoded is _UNKNOWN:
            encoded = _outbound_field(name, value)
            if encoded is None or encoded[0] not in _SENSITIVE:  # credentials are not kept
                if len(cache) >= _OUTBOUND_CACHED:
                    cache.clear()
                cache[field] = encoded
        if encoded is not None:
            out.append(encoded)
    return out


def _outbound_field(name: str, value: str) -> tuple[bytes, bytes] | None:
    """One field as HTTP/2 carries it (``None``: not at all)."""
    n = name.lower()
    if n in CONNECTION_HEADERS or n.startswith(":") or n == "host" or not n:
        return None
    if n == "te" and value.strip().lower() != "trailers":
        return None
    if _FORBIDDEN.search(n) or _FORBIDDEN.search(value):
        return None
    return n.encode("latin-1"), value.strip().encode("latin-1")


_FORBIDDEN = re.compile(r"[\r\n\x00]")
_UNKNOWN = (b"", b"")
_OUTBOUND: dict[tuple[str, str], tuple[bytes, bytes] | None] = {}
"""Fields already made fit for HTTP/2 (most response fields repeat: server, content-type, a date per second)."""
_OUTBOUND_CACHED = 4096


class FrameScanner:
    """Splits GOAWAY frames out of an HTTP/2 byte stream; every other byte passes through unchanged.

    h2 moves its connection state machine to CLOSED when it receives GOAWAY and then refuses the DATA of streams
    that are still allowed to finish (RFC 9113 section 6.8), so the core handles GOAWAY itself.

    :param preface: Bytes at the start that are not frames (the 24-byte client preface, on the server side).
    """

    def __init__(self, *, preface: int = 0) -> None:
        self._passthrough = preface
        self._pending = b""

    def feed(self, data: bytes) -> list[bytes | ConnectionEnded]:
        """Frame bytes for h2 and GOAWAYs, in stream order. Incomplete frame headers and GOAWAYs wait for more."""
        if self._pending:
            data, self._pending = self._pending + data, b""
        out: list[bytes | ConnectionEnded] = []
        start = i = 0
        n = len(data)
        while i < n:
            if self._passthrough:
                step = min(self._passthrough, n - i)
                i += step
                self._passthrough -= step
                continue
            if n - i < 9:
                self._pending = data[i:]
                break
            length = int.from_bytes(data[i : i + 3], "big")
            if data[i + 3] != 0x7:  # not GOAWAY: header and payload go to h2
                self._passthrough = 9 + length
                continue
            if n - i < 9 + length:
                self._pending = data[i:]
                break
            if start < i:
                out.append(data[start:i])
            payload = data[i + 9 : i + 9 + length]
            last = int.from_bytes(payload[0:4], "big") & 0x7FFFFFFF if length >= 8 else 0
            code = int.from_bytes(payload[4:8], "big") if length >= 8 else h2.errors.ErrorCodes.FRAME_SIZE_ERROR
            out.append(ConnectionEnded(code, last))
            i += 9 + length
            start = i
        end = n - len(self._pending)
        if start < end:
            out.append(data[start:end])
        return out


def _static_table() -> tuple[dict[tuple[bytes, bytes], int], dict[bytes, int]]:
    fields: dict[tuple[bytes, bytes], int] = {}
    names: dict[bytes, int] = {}
    for index, (name, value) in enumerate(hpack.table.HeaderTable.STATIC_TABLE, start=1):
        fields.setdefault((name, value), index)
        names.setdefault(name, index)
    return fields, names


_STATIC_FIELDS, _STATIC_NAMES = _static_table()
_SENSITIVE = frozenset({b"authorization", b"proxy-authorization", b"cookie", b"set-cookie"})


def _prefixed(flags: int, value: int, prefix_bits: int) -> bytes:
    encoded = hpack.hpack.encode_integer(value, prefix_bits)
    encoded[0] |= flags
    return bytes(encoded)


class StatelessEncoder:
    """HPACK without a dynamic table: each field is a static-table index or a literal not added to any table, so a
    field's bytes never depend on what was sent before and are computed once and cached.

    hpack's encoder (dynamic table, Huffman) cost about a sixth of the proxy's CPU per HTTP/2 response; this trades
    some bytes on the wire for that. The first header block starts with a dynamic table size update to 0, which every
    decoder accepts. Credentials are sent as never-indexed literals and not cached.
    """

    MAX_CACHED = 4096

    def __init__(self) -> None:
        self._cache: dict[tuple[bytes, bytes], bytes] = {}
        self._announce_size = True
        self.header_table_size = 0
        """Set by h2 when the peer changes SETTINGS_HEADER_TABLE_SIZE; any limit admits a table we do not use."""

    def encode(self, headers: Iterable[tuple[bytes | str, bytes | str]], huffman: bool = True) -> bytes:
        out = [b"\x20"] if self._announce_size else []
        self._announce_size = False
        cache = self._cache
        for name, value in headers:
            n = name.encode("latin-1") if isinstance(name, str) else name
            v = value.encode("latin-1") if isinstance(value, str) else value
            field = cache.get((n, v))
            if field is None:
                field = self._field(n, v)
                if n not in _SENSITIVE:
                    if len(cache) >= self.MAX_CACHED:
                        cache.clear()
                    cache[(n, v)] = field
            out.append(field)
        return b"".join(out)

    @staticmethod
    def _field(name: bytes, value: bytes) -> bytes:
        index = _STATIC_FIELDS.get((name, value))
        if index is not None:
            return _prefixed(0x80, index, 7)  # indexed field
        flags = 0x10 if name in _SENSITIVE else 0x00  # literal never indexed / without indexing
        name_index = _STATIC_NAMES.get(name)
        if name_index is not None:
            head = _prefixed(flags, name_index, 4)
        else:
            head = bytes([flags]) + _prefixed(0, len(name), 7) + name
        return head + _prefixed(0, len(value), 7) + value


@attrs.define
class _Outbound:
    chunks: list[bytes] = attrs.Factory(list)
    size: int = 0
    end: bool = False
    trailers: list[tuple[bytes, bytes]] | None = None
    dirty: bool = False
    """Queued since the last :meth:`H2Core.data_to_send`."""
    reset_after: bool = False
    """Send RST_STREAM(NO_ERROR) once the end went out (we answered before the peer finished sending)."""


class _CountingDecoder(hpack.Decoder):
    """h2's HPACK decoder, counting the header blocks it decoded whole: a header block that failed after decoding
    left the dynamic table in step with the peer's, one that failed while decoding did not."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = 0

    def decode(self, data: bytes, raw: bool = False) -> Iterable[hpack.HeaderTuple]:
        headers = super().decode(data, raw=raw)
        self.blocks += 1
        return headers


class _StreamFailed(h2.events.Event):
    """Returned in place of h2's exception when a frame broke one stream only (becomes :class:`StreamError`)."""

    def __init__(self, stream_id: int, error_code: int, reason: str, answered: int | None) -> None:
        self.stream_id = stream_id
        self.error_code = error_code
        self.reason = reason
        self.answered = answered


_LOCAL_RESETS: dict[int, str] = {
    h2.errors.ErrorCodes.STREAM_CLOSED: "frame on a stream the peer had ended",
    h2.errors.ErrorCodes.FLOW_CONTROL_ERROR: "stream window beyond 2**31-1",
}
_BAD_REQUEST = [(b":status", b"400"), (b"content-length", b"0")]
_CONNECTION_ERRORS = (
    h2.exceptions.TooManyStreamsError,  # beyond our doubled limit: see H2Core.initiate
    h2.exceptions.StreamIDTooLowError,  # h2 decides: RST_STREAM when it reset the stream, else connection error
    h2.exceptions.NoSuchStreamError,  # and StreamClosedError: the same
    h2.exceptions.FlowControlError,  # RFC 9113 section 6.9.1 lets a receiver end the connection; h2 cannot tell
    h2.exceptions.DenialOfServiceError,  # an oversized header block: HPACK stopped halfway through it
)
_SENDABLE = (h2.stream.StreamState.OPEN, h2.stream.StreamState.HALF_CLOSED_REMOTE)


class _Connection(h2.connection.H2Connection):
    """h2's connection state machine, with stream errors confined to their stream (RFC 9113 section 5.4.2).

    h2 raises one :class:`~h2.exceptions.ProtocolError` for everything and then ends the connection. This catches it
    per frame (h2 hands ``_receive_frame`` one frame, a header block already joined with its CONTINUATIONs) and keeps
    it to the stream when the frame belongs to a stream that exists and h2's connection state stayed sound:

    - HEADERS decoded (HPACK table in step) but malformed: bad or upper-case names, connection-specific fields,
      missing, repeated or misplaced pseudo-headers, ``te`` other than ``trailers``, a bad ``content-length``,
      trailers without END_STREAM, a stream depending on itself. A new request is answered 400 (RFC 9113 section
      8.1.1 allows a response before closing), everything else is reset with PROTOCOL_ERROR.
    - DATA beyond or short of the ``content-length`` (:class:`~h2.exceptions.InvalidBodyLengthError`); its bytes
      count against the connection window and are given back.
    - A body ended short of its ``content-length`` by trailers or by END_STREAM on the request head, which h2
      does not check.

    Frames on streams the peer closed are handled by h2 itself (RST_STREAM STREAM_CLOSED, a local
    ``StreamReset`` event). Everything else raises as before.
    """

    def __init__(self, config: h2.config.H2Configuration) -> None:
        super().__init__(config=config)
        self.decoder = self.counting_decoder = _CountingDecoder()
        self.decoder.max_header_list_size = self.DEFAULT_MAX_HEADER_LIST_SIZE

    def _receive_frame(self, frame: hyperframe.frame.Frame) -> list[h2.events.Event]:
        sid = frame.stream_id
        stream = self.streams.get(sid)
        blocks = self.counting_decoder.blocks
        declared = None
        if stream is not None and isinstance(frame, hyperframe.frame.HeadersFrame):
            # Trailers reset h2's count (it reads content-length from them too); a short body goes unnoticed.
            declared = stream._expected_content_length, stream._actual_content_length
        try:
            events = super()._receive_frame(frame)
        except h2.exceptions.ProtocolError as exc:
            if isinstance(exc, _CONNECTION_ERRORS) or self.state_machine.state == h2.connection.ConnectionState.CLOSED:
                raise
            if isinstance(frame, hyperframe.frame.DataFrame):
                stream_level = stream is not None and isinstance(exc, h2.exceptions.InvalidBodyLengthError)
            elif isinstance(frame, hyperframe.frame.HeadersFrame):
                # Decoded whole, on a stream we had or one the peer may open (h2 checked its id before creating it).
                opened = stream is None and not self.config.client_side and sid in self.streams
                stream_level = self.counting_decoder.blocks > blocks and (stream is not None or opened)
            else:
                stream_level = False
            if not stream_level:
                raise
            return [self._stream_failed(frame, str(exc), new=stream is None)]
        if isinstance(frame, hyperframe.frame.HeadersFrame) and "END_STREAM" in frame.flags:
            short = self._short_body(sid, events, declared)
            if short is not None:
                return [self._stream_failed(frame, short, new=stream is None)]
        return events

    def _short_body(
        self, stream_id: int, events: list[h2.events.Event], declared: tuple[int | None, int] | None
    ) -> str | None:
        """Why a header block with END_STREAM ended a body short of its ``content-length`` (``None``: it did not)."""
        for ev in events:
            if isinstance(ev, h2.events.TrailersReceived) and declared is not None:
                expected, actual = declared
                if expected is not None and expected != actual:
                    return f"body ended by trailers after {actual} of {expected} bytes"
            elif isinstance(ev, h2.events.RequestReceived):
                stream = self.streams.get(stream_id)
                expected = stream._expected_content_length if stream is not None else None
                if expected:
                    return f"request without a body declares content-length {expected}"
        return None

    def _stream_failed(self, frame: hyperframe.frame.Frame, reason: str, *, new: bool) -> _StreamFailed:
        """Close the stream of ``frame`` after a stream error; returns the event that reports it."""
        sid = frame.stream_id
        stream = self.streams.get(sid)
        code = h2.errors.ErrorCodes.PROTOCOL_ERROR
        answered = None
        if stream is not None and new and not self.config.client_side and stream.state_machine.state in _SENDABLE:
            self.send_headers(sid, _BAD_REQUEST, end_stream=True)
            answered = 400
            if not stream.closed:  # the client is still sending: stop it without discarding the answer
                self.reset_stream(sid, h2.errors.ErrorCodes.NO_ERROR)
        elif stream is not None and not stream.closed:
            self.reset_stream(sid, code)
        else:
            # h2's state machine closed the stream (on the invalid input, or both ends were done): the RST_STREAM is
            # ours to send, and later frames of the stream get h2's answer to a reset stream.
            if stream is not None:
                stream.state_machine.stream_closed_by = h2.stream.StreamClosedBy.SEND_RST_STREAM
            rst = hyperframe.frame.RstStreamFrame(sid)
            rst.error_code = code
            self._prepare_for_sending([rst])
        if isinstance(frame, hyperframe.frame.DataFrame) and frame.flow_controlled_length:
            # Counted against the connection window but never delivered: nobody else will give it back.
            self.acknowledge_received_data(frame.flow_controlled_length, sid)
        return _StreamFailed(sid, code, reason, answered)


class H2Core:
    """One HTTP/2 connection, either side. Not thread-safe; one instance per connection.

    :param client_side: ``True`` for the upstream (client) end.
    :param max_concurrent_streams: Our SETTINGS_MAX_CONCURRENT_STREAMS (streams the peer may open).
    :param initial_window_size: Our per-stream receive window (also used to grow the connection window).
    :param max_header_list_size: Largest header block we accept (decoded size).
    :param connection_window_size: Our connection-wide receive window: what all streams together may have
        unread. Larger than one stream's, so a stream whose reader is slow does not stall the others.
    :param enable_connect_protocol: Server: announce extended CONNECT (RFC 8441, WebSocket over HTTP/2).
    """

    def __init__(
        self,
        *,
        client_side: bool,
        max_concurrent_streams: int = 100,
        initial_window_size: int = 1 << 20,
        max_header_list_size: int = 65536,
        enable_connect_protocol: bool = False,
        connection_window_size: int = 4 << 20,
    ) -> None:
        config = h2.config.H2Configuration(
            client_side=client_side,
            header_encoding=None,
            validate_inbound_headers=True,
            normalize_inbound_headers=True,
            # What we send went through outbound_headers() (lower case, trimmed, no connection-specific fields)
            # and came from a parser that validated it; h2's second pass cost ~40% of the per-request CPU.
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        self._conn = _Connection(config)
        settings = {
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: max_concurrent_streams,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: initial_window_size,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: max_header_list_size,
            h2.settings.SettingCodes.ENABLE_PUSH: 0,
        }
        if enable_connect_protocol:
            settings[h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL] = 1
        self._conn.local_settings = h2.settings.Settings(client=client_side, initial_values=settings)
        # Initial values count as already acknowledged, so h2 never copies this one into its HPACK decoder.
        self._conn.decoder.max_header_list_size = max_header_list_size
        self._conn.encoder = StatelessEncoder()  # type: ignore[assignment]
        self._connection_window = max(connection_window_size, initial_window_size)
        self.max_inbound_streams = max_concurrent_streams
        """The stream limit we advertise."""
        self._outbound: dict[int, _Outbound] = {}
        self._goaway = b""
        self._scanner = FrameScanner(preface=0 if client_side else len(PREFACE))
        self.client_side = client_side
        self.closed = False
        """GOAWAY was sent or received: no new streams."""

    # --- lifecycle ----------------------------------------------------------------------------------------------

    def initiate(self) -> None:
        """Queue our preface (client) and SETTINGS; grow the connection receive window to its configured size.

        Server side, once the peer acknowledged our SETTINGS, h2 itself only rejects streams far beyond the advertised
        limit (as a connection error); the caller refuses the ones just beyond it with REFUSED_STREAM, which RFC 9113
        section 5.1.2 prefers (see :attr:`max_inbound_streams`).
        """
        self._conn.initiate_connection()
        if not self.client_side:
            # Takes effect with the peer's ACK of the SETTINGS frame just queued, which still advertises the limit.
            self._conn.local_settings.max_concurrent_streams = 2 * self.max_inbound_streams + 100
        extra = self._connection_window - 65535
        if extra > 0:
            self._conn.increment_flow_control_window(extra)

    def data_to_send(self) -> bytes:
        """Bytes to write to the peer now (possibly empty): queued frames, then the body data the windows allow.

        Body data and stream ends are turned into frames here, not when queued, so a response queued whole in one
        turn (data, then end) leaves as one DATA frame carrying END_STREAM.
        """
        for stream_id in [sid for sid, out in self._outbound.items() if out.dirty]:
            out = self._outbound[stream_id]
            out.dirty = False
            self._flush(stream_id, out)
        data = self._conn.data_to_send()
        if self._goaway:
            data, self._goaway = data + self._goaway, b""
        return data

    @property
    def has_output(self) -> bool:
        """:meth:`data_to_send` may return bytes: frames are queued, or body data or an end waits to be framed."""
        if self._goaway or self._conn._data_to_send:
            return True
        return any(out.dirty for out in self._outbound.values())

    def goaway(self, error_code: int = 0) -> None:
        """Queue GOAWAY: streams up to the highest one the peer opened still finish; no new ones start.

        h2's own ``close_connection`` moves its state machine to CLOSED, after which the open streams could not
        send; so the frame is serialized here and new streams are refused by the caller (:attr:`closed`).
        """
        if not self.closed:
            self.closed = True
            frame = hyperframe.frame.GoAwayFrame(0)
            frame.last_stream_id = self._conn.highest_inbound_stream_id
            frame.error_code = error_code
            self._goaway += frame.serialize()

    @property
    def highest_inbound_stream_id(self) -> int:
        return int(self._conn.highest_inbound_stream_id)

    @property
    def open_outbound_streams(self) -> int:
        return int(self._conn.open_outbound_streams)

    @property
    def max_outbound_streams(self) -> int:
        """How many streams the peer lets us open concurrently."""
        return int(self._conn.remote_settings.max_concurrent_streams)

    # --- input --------------------------------------------------------------------------------------------------

    def receive(self, data: bytes) -> list[Event]:
        """Feed bytes from the peer; returns what happened.

        A peer that broke one stream only gets that stream reset (:class:`StreamError`) and the others go on.

        :raises RemoteProtocolError: the peer broke the connection. A GOAWAY is queued in :meth:`data_to_send`;
            write it, then close the connection.
        """
        events: list[Event] = []
        for item in self._scanner.feed(data):
            if isinstance(item, ConnectionEnded):
                # h2 would close its state machine on GOAWAY and refuse the frames of streams still finishing.
                self.closed = True
                events.append(item)
            else:
                events.extend(self._receive_frames(item))
        return events

    def _receive_frames(self, data: bytes) -> list[Event]:
        try:
            raw_events = self._conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self.closed = True
            raise RemoteProtocolError(f"HTTP/2 protocol error: {exc}") from exc
        events: list[Event] = []
        window_changed = False
        for ev in raw_events:
            match ev:
                case h2.events.RequestReceived() | h2.events.ResponseReceived():
                    assert ev.stream_id is not None and ev.headers is not None
                    ended = ev.stream_ended is not None
                    events.append(HeadersReceived(ev.stream_id, decode_headers(ev.headers), ended))
                case h2.events.DataReceived():
                    assert ev.stream_id is not None and ev.data is not None
                    events.append(DataReceived(ev.stream_id, ev.data, ev.flow_controlled_length or 0))
                case h2.events.TrailersReceived():
                    assert ev.stream_id is not None and ev.headers is not None
                    events.append(TrailersReceived(ev.stream_id, decode_headers(ev.headers)))
                case h2.events.StreamEnded():
                    assert ev.stream_id is not None
                    events.append(StreamEnded(ev.stream_id))
                case h2.events.StreamReset():
                    assert ev.stream_id is not None
                    self._outbound.pop(ev.stream_id, None)
                    code = int(ev.error_code or 0)
                    if ev.remote_reset:
                        events.append(StreamReset(ev.stream_id, code))
                    else:  # h2 reset it: a frame after the peer's END_STREAM, a stream window beyond 2**31-1
                        events.append(StreamError(ev.stream_id, code, _LOCAL_RESETS.get(code, "stream error")))
                case _StreamFailed():
                    self._outbound.pop(ev.stream_id, None)
                    events.append(StreamError(ev.stream_id, ev.error_code, ev.reason, ev.answered))
                case h2.events.WindowUpdated() | h2.events.RemoteSettingsChanged():
                    window_changed = True
                case _:
                    pass  # SETTINGS acks, PINGs (h2 answers them), priority, unknown frames
        if window_changed:
            events.extend(self._flush_all())
        return events

    def acknowledge(self, stream_id: int, flow_length: int) -> None:
        """Give ``flow_length`` bytes of receive window back to the peer (the body was consumed)."""
        if flow_length > 0 and self._conn.state_machine.state != h2.connection.ConnectionState.CLOSED:
            self._conn.acknowledge_received_data(flow_length, stream_id)

    # --- output -------------------------------------------------------------------------------------------------

    def next_stream_id(self) -> int:
        """Client side: the id to use for a new request."""
        return int(self._conn.get_next_available_stream_id())

    def send_headers(self, stream_id: int, headers: list[tuple[bytes, bytes]], *, end_stream: bool = False) -> None:
        """Send a head (pseudo-headers first). Raises ``h2.exceptions.ProtocolError`` for our own bugs only."""
        self._conn.send_headers(stream_id, headers, end_stream=end_stream)
        if not end_stream:
            self._outbound[stream_id] = _Outbound()

    def send_data(self, stream_id: int, data: bytes) -> int:
        """Queue body bytes (framed by :meth:`data_to_send` as the windows allow). Returns the bytes buffered for
        the stream."""
        out = self._outbound.get(stream_id)
        if out is None or out.end:
            return 0  # reset or already ended: drop
        if data:
            out.chunks.append(data)
            out.size += len(data)
            out.dirty = True
        return out.size

    def end_stream(self, stream_id: int, trailers: list[tuple[bytes, bytes]] | None = None) -> None:
        """Finish our side of the stream after its buffered data, with trailers if given."""
        out = self._outbound.get(stream_id)
        if out is None or out.end:
            return
        out.end = True
        out.trailers = trailers or None
        out.dirty = True

    def buffered(self, stream_id: int) -> int:
        """Bytes queued for ``stream_id`` and not yet sent (waiting for window)."""
        out = self._outbound.get(stream_id)
        return out.size if out is not None else 0

    def _finished(self, stream_id: int, out: _Outbound) -> None:
        del self._outbound[stream_id]
        if out.reset_after:
            self.reset(stream_id, h2.errors.ErrorCodes.NO_ERROR)

    @property
    def pending_output(self) -> bool:
        """Some stream still has data or an end waiting for flow-control window."""
        return bool(self._outbound)

    def stop_peer_after_end(self, stream_id: int) -> None:
        """We answered but the peer still sends its body: RST_STREAM(NO_ERROR) once our end is out (RFC 9113
        section 8.1), so a response still waiting for window is not cut short."""
        out = self._outbound.get(stream_id)
        if out is not None:
            out.reset_after = True
        else:
            self.reset(stream_id, h2.errors.ErrorCodes.NO_ERROR)

    def reset(self, stream_id: int, error_code: int = h2.errors.ErrorCodes.CANCEL) -> None:
        """Abort a stream (RST_STREAM) and drop what is buffered for it. Safe on closed streams."""
        self._outbound.pop(stream_id, None)
        with contextlib.suppress(h2.exceptions.ProtocolError):  # already closed on both sides
            self._conn.reset_stream(stream_id, error_code=error_code)

    def stream_open(self, stream_id: int) -> bool:
        """Whether ``stream_id`` exists and is not closed."""
        stream = self._conn.streams.get(stream_id)
        return stream is not None and not stream.closed

    def _flush_all(self) -> list[Event]:
        events: list[Event] = []
        for stream_id, out in list(self._outbound.items()):
            before = out.size
            self._flush(stream_id, out)
            if out.size < before or stream_id not in self._outbound:
                events.append(SendWindowOpened(stream_id, out.size if stream_id in self._outbound else 0))
        return events

    def _flush(self, stream_id: int, out: _Outbound) -> None:
        try:
            while out.chunks:
                window = min(
                    self._conn.local_flow_control_window(stream_id),
                    self._conn.max_outbound_frame_size,
                )
                if window <= 0:
                    return
                chunk = out.chunks[0]
                piece, rest = chunk[:window], chunk[window:]
                if rest:
                    out.chunks[0] = rest
                else:
                    out.chunks.pop(0)
                out.size -= len(piece)
                last = out.end and not out.chunks and out.trailers is None
                self._conn.send_data(stream_id, piece, end_stream=last)
                if last:
                    self._finished(stream_id, out)
                    return
            if out.end:
                if out.trailers is not None:
                    self._conn.send_headers(stream_id, out.trailers, end_stream=True)
                else:
                    self._conn.end_stream(stream_id)
                self._finished(stream_id, out)
        except h2.exceptions.StreamClosedError:
            self._outbound.pop(stream_id, None)
