"""Stream listeners on loopback: TLS passthrough by SNI to TLS backends, TLS terminate and TCP to plain backends."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trustme

from nantian import ir
from nantian.errors import ConfigRejected
from nantian.proxy.tls import StreamRoutes, StreamRoutesRef, stream_route_factory

TIMEOUT = 5.0


class Echo(asyncio.Protocol):
    """Greets with its name, then echoes."""

    def __init__(self, name: bytes) -> None:
        self.name = name

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(self.name + b":")

    def data_received(self, data: bytes) -> None:
        assert isinstance(self.transport, asyncio.WriteTransport)
        self.transport.write(data)


@asynccontextmanager
async def backend(name: bytes, ctx: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    server = await asyncio.get_running_loop().create_server(lambda: Echo(name), "127.0.0.1", 0, ssl=ctx)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@asynccontextmanager
async def tls_listener(ref: StreamRoutesRef, connections: set[object]) -> AsyncIterator[int]:
    ctx = ref.current.server_tls.context if ref.current.server_tls is not None else None
    server = await asyncio.get_running_loop().create_server(
        stream_route_factory(ref, connections), "127.0.0.1", 0, ssl=ctx
    )
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for conn in list(connections):
            conn.abort()  # type: ignore[attr-defined]
        await server.wait_closed()


def _listener(mode: ir.TlsMode, routes: tuple[ir.StreamRoute, ...], *certs: ir.TlsCertificate) -> ir.Listener:
    return ir.Listener(
        name="ns/gw/443/TLS",
        gateway="ns/gw",
        address="127.0.0.1",
        port=443,
        protocol=ir.Protocol.TLS,
        tls_mode=mode,
        certificates=certs,
        stream_routes=routes,
    )


def _route(name: str, cluster: str, *hostnames: str) -> ir.StreamRoute:
    return ir.StreamRoute(
        name=name,
        route=f"TLSRoute/ns/{name}",
        section="ns/gw/tls",
        hostnames=hostnames,
        backends=(ir.WeightedCluster(cluster=cluster),),
    )


def _cluster(name: str, port: int) -> ir.Cluster:
    return ir.Cluster(name=name, protocol=ir.AppProtocol.TCP, endpoints=(ir.Endpoint(address="127.0.0.1", port=port),))


async def _talk(port: int, ctx: ssl.SSLContext | None, sni: str | None, message: bytes) -> bytes:
    """Connect, send ``message``, read until the echo of it is in; ``b""`` when the proxy closes on us."""
    async with asyncio.timeout(TIMEOUT):
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=ctx, server_hostname=sni if ctx is not None else None
            )
        except (ssl.SSLError, ConnectionError):
            return b""
        try:
            writer.write(message)
            out = b""
            while not out.endswith(message):
                chunk = await reader.read(4096)
                if not chunk:
                    break
                out += chunk
            return out
        except (ssl.SSLError, ConnectionError):
            return b""
        finally:
            writer.close()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _server_ctx(cert: trustme.LeafCert) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    return ctx


async def test_passthrough_routes_by_sni_without_terminating(ca: trustme.CA) -> None:
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    async with (
        backend(b"alpha", _server_ctx(ca.issue_cert("alpha.example.com"))) as alpha,
        backend(b"wild", _server_ctx(ca.issue_cert("*.wild.test"))) as wild,
    ):
        routes = (_route("alpha", "ns/alpha:443", "alpha.example.com"), _route("wild", "ns/wild:443", "*.wild.test"))
        clusters = {c.name: c for c in (_cluster("ns/alpha:443", alpha), _cluster("ns/wild:443", wild))}
        ref = StreamRoutesRef(name="l", current=StreamRoutes(_listener(ir.TlsMode.PASSTHROUGH, routes), clusters, {}))
        connections: set[object] = set()
        async with tls_listener(ref, connections) as port:
            # The client verifies the *backend's* certificate: the proxy did not terminate.
            assert await _talk(port, client_ctx, "alpha.example.com", b"hi") == b"alpha:hi"
            assert await _talk(port, client_ctx, "x.wild.test", b"yo") == b"wild:yo"
            assert await _talk(port, client_ctx, "nobody.example.org", b"no") == b""
            plain = await _talk(port, None, None, b"GET / HTTP/1.1\r\n\r\n")
            assert plain == b""  # not TLS: dropped


async def test_terminate_sends_plaintext_to_the_backend(ca: trustme.CA) -> None:
    cert = ca.issue_cert("secure.example.com")
    secret = ir.Secret(
        name="ns/cert",
        certificate_chain="".join(b.bytes().decode() for b in cert.cert_chain_pems),
        private_key=cert.private_key_pem.bytes().decode(),
    )
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    async with backend(b"plain") as plain_port:
        listener = _listener(
            ir.TlsMode.TERMINATE,
            (_route("r", "ns/plain:80", "secure.example.com"),),
            ir.TlsCertificate(hostname=None, secret="ns/cert", section="ns/gw/tls"),
        )
        routes = StreamRoutes(listener, {"ns/plain:80": _cluster("ns/plain:80", plain_port)}, {"ns/cert": secret})
        assert routes.server_tls is not None
        ref = StreamRoutesRef(name="l", current=routes)
        connections: set[object] = set()
        async with tls_listener(ref, connections) as port:
            payload = b"x" * 200_000  # larger than socket buffers: back-pressure both ways
            assert await _talk(port, client_ctx, "secure.example.com", payload) == b"plain:" + payload
            assert await _talk(port, client_ctx, "other.example.com", b"?") == b""


async def test_new_connections_use_the_swapped_routes(ca: trustme.CA) -> None:
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    ctx_one = _server_ctx(ca.issue_cert("svc.example.com"))
    ctx_two = _server_ctx(ca.issue_cert("svc.example.com"))
    async with backend(b"one", ctx_one) as one, backend(b"two", ctx_two) as two:
        clusters = {c.name: c for c in (_cluster("ns/one:443", one), _cluster("ns/two:443", two))}

        def table(cluster: str) -> StreamRoutes:
            listener = _listener(ir.TlsMode.PASSTHROUGH, (_route("r", cluster),))
            return StreamRoutes(listener, clusters, {})

        ref = StreamRoutesRef(name="l", current=table("ns/one:443"))
        async with tls_listener(ref, set()) as port:
            assert await _talk(port, client_ctx, "svc.example.com", b"a") == b"one:a"
            ref.current = table("ns/two:443")
            assert await _talk(port, client_ctx, "svc.example.com", b"b") == b"two:b"


async def test_a_dead_backend_closes_the_connection(ca: trustme.CA) -> None:
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    async with backend(b"gone") as port_of_gone:
        pass  # closed again: nothing listens there now
    listener = _listener(ir.TlsMode.PASSTHROUGH, (_route("r", "ns/gone:443"),))
    ref = StreamRoutesRef(
        name="l", current=StreamRoutes(listener, {"ns/gone:443": _cluster("ns/gone:443", port_of_gone)}, {})
    )
    async with tls_listener(ref, set()) as port:
        assert await _talk(port, client_ctx, "svc.example.com", b"a") == b""


def test_terminate_without_usable_certificates_is_rejected() -> None:
    listener = _listener(
        ir.TlsMode.TERMINATE, (), ir.TlsCertificate(hostname=None, secret="ns/missing", section="ns/gw/tls")
    )
    with pytest.raises(ConfigRejected, match="ns/missing"):
        StreamRoutes(listener, {}, {})


async def test_tcp_listener_relays_to_its_route() -> None:
    async with backend(b"tcp") as tcp_port:
        listener = ir.Listener(
            name="ns/gw/9000/TCP",
            gateway="ns/gw",
            address="127.0.0.1",
            port=9000,
            protocol=ir.Protocol.TCP,
            stream_routes=(_route("r", "ns/tcp:9000"),),
        )
        routes = StreamRoutes(listener, {"ns/tcp:9000": _cluster("ns/tcp:9000", tcp_port)}, {})
        assert routes.server_tls is None and not routes.peek_sni
        async with tls_listener(StreamRoutesRef(name="l", current=routes), set()) as port:
            assert await _talk(port, None, None, b"plain bytes") == b"tcp:plain bytes"
