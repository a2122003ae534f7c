"""The HTTP/2 front end on real loopback sockets: httpx (h2) and a raw h2 client talk to it; a small handler
implementing the exchange seam answers."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import h2.config
import h2.connection
import h2.events
import h2.settings
import httpx
import hyperframe.frame
import pytest
import trustme

from nantian import ir
from nantian.proxy._h2 import ConnectionEnded, FrameScanner
from nantian.proxy.asyncio_h2 import H2Options, H2ServerProtocol, negotiating_factory
from nantian.proxy.exchange import Exchange, ListenerRef
from nantian.proxy.tls import TlsSession, build_server_tls

TIMEOUT = 5.0


class Handler:
    """Answers like a tiny application: /echo echoes the body (and trailers), /grpc-fail answers 503, /slow waits
    until cancelled, anything else describes the request."""

    def __init__(self) -> None:
        self.seen: list[Exchange] = []
        self.cancelled = asyncio.Event()
        self.release = asyncio.Event()

    async def handle(self, exchange: Exchange) -> None:
        self.seen.append(exchange)
        head, sink = exchange.head, exchange.response
        if head.target == "/echo":
            await sink.start(200, [("content-type", "application/octet-stream")])
            while chunk := await exchange.body.read():
                await sink.send(chunk)
            await sink.end(exchange.body.trailers or [("x-trailer", "none")])
        elif head.target == "/early":  # answers without reading the request body
            await sink.start(200, [])
            await sink.send(b"e" * 100_000)
            await sink.end()
        elif head.target == "/big":
            await sink.start(200, [])
            try:
                for _ in range(20):
                    await sink.send(b"z" * 10_000)
            except TimeoutError:
                self.cancelled.set()
                return
            await sink.end()
        elif head.target == "/grpc-fail":
            await sink.start(503, [("content-type", "text/plain")])
            await sink.send(b"no healthy upstream")
            await sink.end()
        elif head.target == "/slow":
            try:
                await sink.start(200, [])
                await sink.send(b"partial")
                await self.release.wait()
                await sink.end()
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        else:
            body = f"{head.method} {head.target} {head.authority} {head.scheme} {head.http_version}".encode()
            await sink.start(200, [("content-type", "text/plain"), ("content-length", str(len(body)))])
            await sink.send(body)
            await sink.end()


class Http1Stub(asyncio.Protocol):
    def __init__(self, session: TlsSession | None) -> None:
        self.session = session

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nh1")
        self.transport.close()


@asynccontextmanager
async def serving(
    handler: Handler,
    *,
    ssl_ctx: ssl.SSLContext | None = None,
    server_tls: object = None,
    options: H2Options | None = None,
    connections: set[object] | None = None,
    errors: list[int] | None = None,
) -> AsyncIterator[int]:
    ref = ListenerRef(name="ns/gw/80/HTTP", current=handler)
    factory = negotiating_factory(
        Http1Stub,
        ref,
        server_tls=server_tls,  # type: ignore[arg-type]
        options=options,
        connections=connections,
        on_error=errors.append if errors is not None else None,
    )
    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0, ssl=ssl_ctx)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


class RawClient:
    """An h2 client over asyncio streams, for what httpx does not expose (trailers, resets, GOAWAY, settings)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="latin-1"))
        self.conn.initiate_connection()
        self.events: list[object] = []
        self.auto_ack = True
        self.scanner = FrameScanner()  # h2 would refuse frames after a graceful GOAWAY

    @classmethod
    async def connect(cls, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        await client.flush()
        return client

    async def flush(self) -> None:
        self.writer.write(self.conn.data_to_send())
        await self.writer.drain()

    async def until(self, kind: type[object], stream_id: int | None = None) -> object:
        async with asyncio.timeout(TIMEOUT):
            while True:
                for ev in self.events:
                    if isinstance(ev, kind) and (stream_id is None or getattr(ev, "stream_id", None) == stream_id):
                        self.events.remove(ev)
                        return ev
                data = await self.reader.read(65536)
                if not data:
                    raise ConnectionError("closed")
                for item in self.scanner.feed(data):
                    if isinstance(item, ConnectionEnded):
                        self.events.append(item)
                        continue
                    for ev in self.conn.receive_data(item):
                        if isinstance(ev, h2.events.DataReceived) and ev.stream_id is not None and self.auto_ack:
                            self.conn.acknowledge_received_data(ev.flow_controlled_length or 0, ev.stream_id)
                        self.events.append(ev)
                await self.flush()

    def body(self, stream_id: int) -> bytes:
        return b"".join(
            ev.data or b"" for ev in self.events if isinstance(ev, h2.events.DataReceived) and ev.stream_id == stream_id
        )

    def close(self) -> None:
        self.writer.close()


def _text(headers: object) -> list[tuple[str, str]]:
    """h2 event headers (typed as bytes, decoded to str by ``header_encoding``) as str pairs."""
    assert isinstance(headers, list)
    return [tuple(x.decode() if isinstance(x, bytes) else str(x) for x in pair) for pair in headers]  # type: ignore[misc]


def _req(path: str, method: str = "GET", **extra: str) -> list[tuple[str, str]]:
    return [(":method", method), (":scheme", "http"), (":authority", "example.com"), (":path", path), *extra.items()]


async def test_prior_knowledge_h2c_request_reaches_the_handler() -> None:
    handler = Handler()
    async with serving(handler) as port, httpx.AsyncClient(http1=False, http2=True, timeout=TIMEOUT) as client:
        r = await client.get(f"http://127.0.0.1:{port}/hello?x=1", headers={"x-test": "yes"})
    assert r.http_version == "HTTP/2"
    assert r.status_code == 200
    assert r.text == f"GET /hello?x=1 127.0.0.1:{port} http 2"
    head = handler.seen[0].head
    assert head.header("x-test") == "yes"
    assert not any(name.startswith(":") for name, _ in head.headers)
    assert head.sni_section is None


async def test_large_bodies_flow_both_ways() -> None:
    payload = bytes(range(256)) * 12_000  # ~3 MiB: more than every window involved
    async with serving(Handler()) as port, httpx.AsyncClient(http1=False, http2=True, timeout=TIMEOUT) as client:
        r = await client.post(f"http://127.0.0.1:{port}/echo", content=payload)
    assert r.status_code == 200
    assert r.content == payload


async def test_concurrent_streams_on_one_connection() -> None:
    async with serving(Handler()) as port, httpx.AsyncClient(http1=False, http2=True, timeout=TIMEOUT) as client:
        rs = await asyncio.gather(
            *(client.post(f"http://127.0.0.1:{port}/echo", content=b"n%d" % i) for i in range(30))
        )
    assert [r.content for r in rs] == [b"n%d" % i for i in range(30)]


async def test_trailers_pass_both_ways() -> None:
    async with serving(Handler()) as port:
        client = await RawClient.connect(port)
        try:
            client.conn.send_headers(1, _req("/echo", "POST"))
            client.conn.send_data(1, b"payload")
            client.conn.send_headers(1, [("grpc-status", "0"), ("x-sum", "7")], end_stream=True)
            await client.flush()
            resp = await client.until(h2.events.ResponseReceived, 1)
            trailers = await client.until(h2.events.TrailersReceived, 1)
            assert isinstance(resp, h2.events.ResponseReceived) and resp.headers is not None
            assert (":status", "200") in _text(resp.headers)
            assert client.body(1) == b"payload"
            assert isinstance(trailers, h2.events.TrailersReceived) and trailers.headers is not None
            assert _text(trailers.headers) == [("grpc-status", "0"), ("x-sum", "7")]
        finally:
            client.close()


async def test_client_reset_cancels_the_exchange() -> None:
    handler = Handler()
    async with serving(handler) as port:
        client = await RawClient.connect(port)
        try:
            client.conn.send_headers(1, _req("/slow"), end_stream=True)
            await client.flush()
            await client.until(h2.events.DataReceived, 1)
            client.conn.reset_stream(1)
            await client.flush()
            async with asyncio.timeout(TIMEOUT):
                await handler.cancelled.wait()
            # The connection still serves new streams.
            client.conn.send_headers(3, _req("/after"), end_stream=True)
            await client.flush()
            await client.until(h2.events.StreamEnded, 3)
            assert client.body(3) == b"GET /after example.com http 2"
        finally:
            client.close()


async def test_shutdown_sends_goaway_and_finishes_open_streams() -> None:
    handler = Handler()
    connections: set[object] = set()
    async with serving(handler, connections=connections) as port:
        client = await RawClient.connect(port)
        try:
            client.conn.send_headers(1, _req("/slow"), end_stream=True)
            await client.flush()
            first = await client.until(h2.events.DataReceived, 1)
            assert isinstance(first, h2.events.DataReceived) and first.data == b"partial"
            (conn,) = connections
            assert isinstance(conn, H2ServerProtocol)
            conn.shutdown()
            goaway = await client.until(ConnectionEnded)
            assert isinstance(goaway, ConnectionEnded)
            assert goaway.error_code == 0 and goaway.last_stream_id == 1
            handler.release.set()
            await client.until(h2.events.StreamEnded, 1)
            async with asyncio.timeout(TIMEOUT):
                assert await client.reader.read() == b""  # the server closes once the stream is done
            assert not connections
        finally:
            client.close()


async def test_settings_advertise_the_stream_limit() -> None:
    async with serving(Handler(), options=H2Options(max_concurrent_streams=7)) as port:
        client = await RawClient.connect(port)
        try:
            ev = await client.until(h2.events.RemoteSettingsChanged)
            assert isinstance(ev, h2.events.RemoteSettingsChanged)
            assert ev.changed_settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS].new_value == 7
        finally:
            client.close()


async def test_an_invalid_header_is_answered_400_and_the_connection_goes_on() -> None:
    handler = Handler()
    errors: list[int] = []
    async with serving(handler, errors=errors) as port:
        client = await RawClient.connect(port)
        try:
            client.conn.send_headers(1, _req("/slow"), end_stream=True)
            await client.flush()
            first = await client.until(h2.events.DataReceived, 1)
            assert isinstance(first, h2.events.DataReceived) and first.data == b"partial"
            # h2 validates what it sends; switch that off to send an upper-case name.
            client.conn.config.validate_outbound_headers = False
            client.conn.config.normalize_outbound_headers = False
            client.conn.send_headers(3, [*_req("/"), ("X-Upper", "bad")], end_stream=True)
            await client.flush()
            resp = await client.until(h2.events.ResponseReceived, 3)
            assert isinstance(resp, h2.events.ResponseReceived)
            assert (":status", "400") in _text(resp.headers)
            handler.release.set()  # the stream opened before still completes
            await client.until(h2.events.StreamEnded, 1)
            client.conn.send_headers(5, _req("/after"), end_stream=True)  # and new ones are served
            await client.flush()
            await client.until(h2.events.StreamEnded, 5)
            assert client.body(5) == b"GET /after example.com http 2"
            assert not [ev for ev in client.events if isinstance(ev, ConnectionEnded)]
        finally:
            client.close()
    assert [ex.head.target for ex in handler.seen] == ["/slow", "/after"]
    assert errors == [400]


async def test_grpc_request_gets_a_trailers_only_error() -> None:
    async with serving(Handler()) as port:
        client = await RawClient.connect(port)
        try:
            client.conn.send_headers(1, _req("/grpc-fail", "POST", **{"content-type": "application/grpc"}))
            client.conn.send_data(1, b"\x00\x00\x00\x00\x00", end_stream=True)
            await client.flush()
            resp = await client.until(h2.events.ResponseReceived, 1)
            await client.until(h2.events.StreamEnded, 1)
            assert isinstance(resp, h2.events.ResponseReceived) and resp.headers is not None
            headers = dict(_text(resp.headers))
            assert headers[":status"] == "200"
            assert headers["grpc-status"] == "14"
            assert headers["content-type"] == "application/grpc"
            assert client.body(1) == b""
        finally:
            client.close()


async def test_http1_connections_go_to_the_http1_protocol() -> None:
    async with serving(Handler()) as port, httpx.AsyncClient(timeout=TIMEOUT) as client:
        r = await client.get(f"http://127.0.0.1:{port}/")
    assert r.http_version == "HTTP/1.1"
    assert r.text == "h1"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def test_alpn_h2_on_tls_carries_the_sni_section(ca: trustme.CA) -> None:
    cert = ca.issue_cert("www.example.com")
    secret = ir.Secret(
        name="ns/www",
        certificate_chain="".join(b.bytes().decode() for b in cert.cert_chain_pems),
        private_key=cert.private_key_pem.bytes().decode(),
    )
    listener = ir.Listener(
        name="ns/gw/443/HTTPS",
        gateway="ns/gw",
        address="127.0.0.1",
        port=443,
        protocol=ir.Protocol.HTTPS,
        certificates=(ir.TlsCertificate(hostname="www.example.com", secret="ns/www", section="ns/gw/www"),),
    )
    tls = build_server_tls(listener, {"ns/www": secret})
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    handler = Handler()
    async with serving(handler, ssl_ctx=tls.context, server_tls=tls) as port:
        transport = httpx.AsyncHTTPTransport(verify=client_ctx, http2=True)
        async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as client:
            r = await client.get(
                f"https://127.0.0.1:{port}/x",
                headers={"host": "www.example.com"},
                extensions={"sni_hostname": "www.example.com"},
            )
            h1 = await httpx.AsyncClient(verify=client_ctx, timeout=TIMEOUT).__aenter__()
            try:
                r1 = await h1.get(f"https://127.0.0.1:{port}/", extensions={"sni_hostname": "www.example.com"})
            finally:
                await h1.aclose()
    assert r.http_version == "HTTP/2"
    assert r.text == "GET /x www.example.com https 2"
    head = handler.seen[0].head
    assert head.sni_section == "ns/gw/www"
    assert head.sni == "www.example.com"
    assert r1.http_version == "HTTP/1.1" and r1.text == "h1"


async def test_rapid_reset_gets_enhance_your_calm() -> None:
    options = H2Options(max_resets_burst=5, max_resets_per_second=0.001)
    async with serving(Handler(), options=options) as port:
        client = await RawClient.connect(port)
        try:
            for sid in range(1, 40, 2):
                client.conn.send_headers(sid, _req("/slow"), end_stream=True)
                client.conn.reset_stream(sid)
            await client.flush()
            ev = await client.until(ConnectionEnded)
            assert isinstance(ev, ConnectionEnded)
            assert ev.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
        finally:
            client.close()


def test_front_end_runs_on_uvloop(ca: trustme.CA) -> None:
    """The apps run uvloop, whose transports are not ``asyncio.Transport`` subclasses."""
    import uvloop

    cert = ca.issue_cert("www.example.com")
    secret = ir.Secret(
        name="ns/www",
        certificate_chain="".join(b.bytes().decode() for b in cert.cert_chain_pems),
        private_key=cert.private_key_pem.bytes().decode(),
    )
    listener = ir.Listener(
        name="ns/gw/443/HTTPS",
        gateway="ns/gw",
        address="127.0.0.1",
        port=443,
        protocol=ir.Protocol.HTTPS,
        certificates=(ir.TlsCertificate(hostname=None, secret="ns/www", section="ns/gw/www"),),
    )
    tls = build_server_tls(listener, {"ns/www": secret})
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)

    async def scenario() -> list[str]:
        seen = []
        async with serving(Handler()) as port, httpx.AsyncClient(http1=False, http2=True, timeout=TIMEOUT) as c:
            seen.append((await c.get(f"http://127.0.0.1:{port}/a")).text)
            seen.append((await c.get(f"http://127.0.0.1:{port}/b")).text)
        async with (
            serving(Handler(), ssl_ctx=tls.context, server_tls=tls) as port,
            httpx.AsyncClient(verify=client_ctx, http2=True, timeout=TIMEOUT) as c,
        ):
            r = await c.get(f"https://127.0.0.1:{port}/c", extensions={"sni_hostname": "www.example.com"})
            seen.append(f"{r.http_version} {r.text}")
        return seen

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        seen = runner.run(scenario())
    assert seen[0].startswith("GET /a ") and seen[1].startswith("GET /b ")
    assert seen[2] == f"HTTP/2 GET /c 127.0.0.1:{seen[2].split(':')[-1].split()[0]} https 2"


async def test_a_client_that_never_opens_its_window_is_reset() -> None:
    handler = Handler()
    async with serving(handler, options=H2Options(send_timeout=0.2)) as port:
        client = await RawClient.connect(port)
        try:
            client.auto_ack = False
            client.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 16})
            client.conn.send_headers(1, _req("/big"), end_stream=True)
            await client.flush()
            ev = await client.until(h2.events.StreamReset, 1)
            assert isinstance(ev, h2.events.StreamReset)
            assert ev.error_code == h2.errors.ErrorCodes.INTERNAL_ERROR
            async with asyncio.timeout(TIMEOUT):
                await handler.cancelled.wait()  # the core saw a TimeoutError (an OSError) from send
        finally:
            client.close()


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ([(":method", "GET"), (":scheme", "http"), (":authority", "a"), (":path", "no-slash")], "400"),
        ([(":method", "OPTIONS"), (":scheme", "http"), (":authority", "a"), (":path", "*")], "200"),
    ],
)
async def test_request_heads_the_core_must_not_see_are_answered_locally(
    headers: list[tuple[str, str]], status: str
) -> None:
    handler = Handler()
    async with serving(handler) as port:
        client = await RawClient.connect(port)
        try:
            client.conn.config.validate_outbound_headers = False
            client.conn.send_headers(1, headers, end_stream=True)
            await client.flush()
            resp = await client.until(h2.events.ResponseReceived, 1)
            assert isinstance(resp, h2.events.ResponseReceived)
            assert (":status", status) in _text(resp.headers)
        finally:
            client.close()
    assert len(handler.seen) == (1 if status == "200" else 0)


async def test_a_request_without_authority_or_host_is_answered_400() -> None:
    handler = Handler()
    async with serving(handler) as port:
        client = await RawClient.connect(port)
        try:
            client.conn.config.validate_outbound_headers = False
            client.conn.send_headers(1, [(":method", "GET"), (":scheme", "http"), (":path", "/")], end_stream=True)
            await client.flush()
            resp = await client.until(h2.events.ResponseReceived, 1)
            assert isinstance(resp, h2.events.ResponseReceived) and (":status", "400") in _text(resp.headers)
        finally:
            client.close()
    assert handler.seen == []


async def test_an_early_answer_is_sent_whole_before_the_upload_is_stopped() -> None:
    async with serving(Handler()) as port:
        client = await RawClient.connect(port)
        try:
            client.conn.send_headers(1, _req("/early", "POST"))
            client.conn.send_data(1, b"still uploading")
            await client.flush()
            await client.until(h2.events.StreamEnded, 1)
            reset = await client.until(h2.events.StreamReset, 1)
            assert isinstance(reset, h2.events.StreamReset) and reset.error_code == h2.errors.ErrorCodes.NO_ERROR
            assert len(client.body(1)) == 100_000  # the 65,535-byte window did not cut the answer short
        finally:
            client.close()


async def test_an_oversized_header_block_is_refused() -> None:
    handler = Handler()
    async with serving(handler, options=H2Options(max_header_list_size=8192)) as port:
        client = await RawClient.connect(port)
        try:
            await client.until(h2.events.RemoteSettingsChanged)
            client.conn.send_headers(1, _req("/", **{"x-big": "v" * 20_000}), end_stream=True)
            await client.flush()
            ev = await client.until(ConnectionEnded)
            assert isinstance(ev, ConnectionEnded) and ev.error_code != 0
        finally:
            client.close()
    assert handler.seen == []


async def test_streams_over_the_advertised_limit_are_refused() -> None:
    handler = Handler()
    async with serving(handler, options=H2Options(max_concurrent_streams=2)) as port:
        client = await RawClient.connect(port)
        try:
            await client.until(h2.events.RemoteSettingsChanged)  # the client's ACK goes out with the next flush
            # This client ignores the server's limit from here on.
            client.conn.remote_settings.max_concurrent_streams = 100
            client.conn.remote_settings.acknowledge()
            for sid in (1, 3, 5):
                client.conn.send_headers(sid, _req("/slow"), end_stream=True)
            await client.flush()
            refused = await client.until(h2.events.StreamReset, 5)
            assert isinstance(refused, h2.events.StreamReset)
            assert refused.error_code == h2.errors.ErrorCodes.REFUSED_STREAM
            handler.release.set()
            await client.until(h2.events.StreamEnded, 1)
            await client.until(h2.events.StreamEnded, 3)
            # The connection lives on: a new stream is served.
            client.conn.send_headers(7, _req("/after"), end_stream=True)
            await client.flush()
            await client.until(h2.events.StreamEnded, 7)
        finally:
            client.close()
    assert len(handler.seen) == 3


async def test_a_body_longer_than_its_content_length_resets_only_its_stream() -> None:
    handler = Handler()
    errors: list[int] = []
    async with serving(handler, errors=errors) as port:
        client = await RawClient.connect(port)
        try:
            client.conn.send_headers(1, _req("/echo", "POST", **{"content-length": "8"}))
            client.conn.send_headers(3, _req("/echo", "POST", **{"content-length": "4"}))
            client.conn.send_data(1, b"eight by")
            client.conn.send_data(3, b"four but more")  # 13 bytes where 4 were declared
            await client.flush()
            reset = await client.until(h2.events.StreamReset, 3)
            assert isinstance(reset, h2.events.StreamReset)
            assert reset.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
            client.conn.send_data(1, b"", end_stream=True)
            await client.flush()
            resp = await client.until(h2.events.ResponseReceived, 1)
            assert isinstance(resp, h2.events.ResponseReceived) and (":status", "200") in _text(resp.headers)
            await client.until(h2.events.StreamEnded, 1)
            assert client.body(1) == b"eight by"
            assert b"four" not in client.body(3)  # the bad body was never echoed
            assert not [ev for ev in client.events if isinstance(ev, ConnectionEnded)]
        finally:
            client.close()
    assert errors == [400]


async def test_resets_provoked_by_malformed_streams_spend_the_reset_budget() -> None:
    """ "MadeYouReset" (CVE-2025-8671): a client cannot dodge the rapid-reset limit by making the server reset."""
    options = H2Options(max_resets_burst=5, max_resets_per_second=0.001)
    handler = Handler()
    async with serving(handler, options=options) as port:
        client = await RawClient.connect(port)
        try:
            for sid in range(1, 31, 2):
                client.conn.send_headers(sid, _req("/slow", "POST", **{"content-length": "1"}))
                client.conn.send_data(sid, b"too long")
            await client.flush()
            ev = await client.until(ConnectionEnded)
            assert isinstance(ev, ConnectionEnded) and ev.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
        finally:
            client.close()


async def test_a_broken_header_compression_still_ends_the_connection() -> None:
    async with serving(Handler()) as port:
        client = await RawClient.connect(port)
        try:
            await client.until(h2.events.RemoteSettingsChanged)
            # An indexed field beyond both HPACK tables: the decoder cannot stay in step, so the connection ends.
            frame = hyperframe.frame.HeadersFrame(1, data=b"\xbf\x7f", flags=["END_HEADERS", "END_STREAM"])
            client.writer.write(frame.serialize())
            await client.writer.drain()
            ev = await client.until(ConnectionEnded)
            assert isinstance(ev, ConnectionEnded) and ev.error_code != 0
        finally:
            client.close()
