"""What the HTTP/2 front end's cheaper per-stream code must keep: the request head it builds in one pass, the response
head sent with the connection's next write, the one idle timer per connection, the cache of outbound fields.

Driven in memory: a real h2 client encodes requests and decodes answers, the server protocol writes to a
:class:`~nantian.testing.memory_transport.MemoryTransport`."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import h2.config
import h2.connection
import h2.events
from hypothesis import given
from hypothesis import strategies as st

from nantian.proxy import _h2
from nantian.proxy.asyncio_h2 import H2Options, H2ServerProtocol
from nantian.proxy.exchange import Exchange, ListenerRef
from nantian.testing.memory_transport import MemoryTransport

TIMEOUT = 5.0


class Handler:
    """Records each exchange; ``/wait`` starts its answer, then waits for :attr:`release` before the body."""

    def __init__(self) -> None:
        self.seen: list[Exchange] = []
        self.release = asyncio.Event()

    async def handle(self, exchange: Exchange) -> None:
        self.seen.append(exchange)
        sink = exchange.response
        await sink.start(200, [("content-type", "text/plain"), ("Server", "test")])
        if exchange.head.target == "/wait":
            await self.release.wait()
        await sink.send(b"ok")
        await sink.end()


class Client:
    """A real h2 client connection talking to an in-memory :class:`H2ServerProtocol`."""

    def __init__(self, handler: Handler, options: H2Options | None = None) -> None:
        self.transport = MemoryTransport(("127.0.0.1", 40000))
        self.server = H2ServerProtocol(ListenerRef(name="ns/gw/80/HTTP", current=handler), options=options)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="latin-1"))
        self.conn.initiate_connection()
        self.server.connection_made(cast(Any, self.transport))
        self.events: list[h2.events.Event] = []

    def send(self) -> None:
        self.server.data_received(self.conn.data_to_send())

    def request(self, path: str, *extra: tuple[str, str]) -> int:
        sid = self.conn.get_next_available_stream_id()
        headers = [(":method", "GET"), (":scheme", "http"), (":authority", "example.com"), (":path", path), *extra]
        self.conn.send_headers(sid, headers, end_stream=True)
        self.send()
        return sid

    def receive(self) -> list[h2.events.Event]:
        data = b"".join(self.transport.written)
        self.transport.written.clear()
        self.events += self.conn.receive_data(data)
        return self.events

    async def until(self, kind: type[h2.events.Event], stream_id: int | None = None) -> h2.events.Event:
        async with asyncio.timeout(TIMEOUT):
            while True:
                for ev in self.receive():
                    if isinstance(ev, kind) and (stream_id is None or getattr(ev, "stream_id", None) == stream_id):
                        return ev
                await asyncio.sleep(0.001)


async def test_the_request_head_carries_the_authority_as_its_one_host_field() -> None:
    handler = Handler()
    client = Client(handler)
    s1 = client.request("/", ("content-length", "0"), ("content-type", "application/grpc+proto"))
    s2 = client.request("/", ("host", "example.com"), ("x-a", "1"))
    await client.until(h2.events.StreamEnded, s1)
    await client.until(h2.events.StreamEnded, s2)
    first, second = handler.seen
    assert first.head.headers == [
        ("host", "example.com"),
        ("content-length", "0"),
        ("content-type", "application/grpc+proto"),
    ]
    assert (first.head.method, first.head.target, first.head.authority, first.head.scheme) == (
        "GET",
        "/",
        "example.com",
        "http",
    )
    assert second.head.headers == [("host", "example.com"), ("x-a", "1")]
    assert second.head.header("host") == "example.com"


async def test_a_started_response_head_leaves_with_the_next_write_before_its_body() -> None:
    handler = Handler()
    client = Client(handler)
    sid = client.request("/wait")
    response = await client.until(h2.events.ResponseReceived, sid)
    assert isinstance(response, h2.events.ResponseReceived)
    assert (":status", "200") in cast(list[tuple[str, str]], response.headers)
    assert ("server", "test") in cast(list[tuple[str, str]], response.headers)  # lower-cased for HTTP/2
    assert not any(isinstance(ev, h2.events.DataReceived) for ev in client.events)
    handler.release.set()
    await client.until(h2.events.StreamEnded, sid)
    data = [ev for ev in client.events if isinstance(ev, h2.events.DataReceived)]
    assert [ev.data for ev in data] == [b"ok"]


async def test_the_idle_timeout_counts_from_the_end_of_the_last_stream() -> None:
    handler = Handler()
    client = Client(handler, H2Options(idle_timeout=0.4))
    loop = asyncio.get_running_loop()
    await client.until(h2.events.StreamEnded, client.request("/"))
    await asyncio.sleep(0.25)
    second_done = loop.time()
    await client.until(h2.events.StreamEnded, client.request("/"))  # the timer armed by the first is still running
    await asyncio.sleep(0.25)  # past the first idle spell's deadline, within the second's
    client.receive()
    assert not any(isinstance(ev, h2.events.ConnectionTerminated) for ev in client.events)
    terminated = await client.until(h2.events.ConnectionTerminated)
    assert loop.time() - second_done >= 0.4
    assert isinstance(terminated, h2.events.ConnectionTerminated) and terminated.error_code == 0
    assert client.transport.closed


async def test_a_served_connection_is_not_closed_by_the_idle_timer() -> None:
    handler = Handler()
    client = Client(handler, H2Options(idle_timeout=0.1))
    sid = client.request("/wait")
    await client.until(h2.events.ResponseReceived, sid)
    await asyncio.sleep(0.3)
    assert not client.transport.closed
    handler.release.set()
    await client.until(h2.events.StreamEnded, sid)
    await client.until(h2.events.ConnectionTerminated)


_TEXT = st.text(alphabet=st.sampled_from("aZ-:\r\n\x00 \tq"), max_size=6)


@given(st.lists(st.tuples(_TEXT | st.sampled_from(["te", "TE", "Host", "Set-Cookie", "connection"]), _TEXT)))
def test_outbound_fields_from_the_cache_are_what_a_fresh_conversion_gives(fields: list[tuple[str, str]]) -> None:
    expected = [f for f in (_h2._outbound_field(n, v) for n, v in fields) if f is not None]
    assert _h2.outbound_headers(fields) == expected
    assert _h2.outbound_headers(fields) == expected  # the second time from the cache


def test_credentials_are_not_kept_in_the_outbound_cache() -> None:
    assert _h2.outbound_headers([("Authorization", "Bearer secret"), ("set-cookie", "a=b")]) == [
        (b"authorization", b"Bearer secret"),
        (b"set-cookie", b"a=b"),
    ]
    assert not any("secret" in v or v == "a=b" for _, v in _h2._OUTBOUND)


def test_header_pairs_decode_as_latin_1_whatever_h2_hands_over() -> None:
    assert _h2.decode_headers([(b":path", b"/\xff"), (b"a", b"b")]) == [(":path", "/\xff"), ("a", "b")]
    assert _h2.decode_headers([(b"a", b"b"), ("c", "d")]) == [("a", "b"), ("c", "d")]  # str from h2 as well
    pairs: list[tuple[bytes | str, bytes | str]] = [(b"a", b"b"), ("c", b"d")]
    assert _h2.decode_headers(iter(pairs)) == [("a", "b"), ("c", "d")]


async def test_frames_h2_answers_by_itself_are_written_without_any_stream() -> None:
    client = Client(Handler())
    await asyncio.sleep(0.01)
    client.receive()
    client.conn.ping(b"12345678")
    client.send()
    ack = await client.until(h2.events.PingAckReceived)
    assert isinstance(ack, h2.events.PingAckReceived) and ack.ping_data == b"12345678"
