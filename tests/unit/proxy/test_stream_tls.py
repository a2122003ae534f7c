"""TLS listeners through the runtime: passthrough routed by the peeked SNI to real TLS backends, and terminate."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from contextlib import AbstractAsyncContextManager

import pytest
import trustme
import uvloop
from http1_harness import free_port, running
from stream_harness import echo_server

from nantian import ir
from nantian.proxy import runtime as runtime_module
from nantian.proxy.stream_listeners import StreamFrontEnd, StreamOptions

TIMEOUT = 5.0


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(ctx)
    return ctx


def tls_backend(ca: trustme.CA, name: str, *hosts: str) -> AbstractAsyncContextManager[int]:
    """A TLS server for ``hosts`` that greets with ``name`` and then echoes."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(*hosts).configure_cert(ctx)
    return echo_server(greeting=f"{name}\n".encode(), ssl_context=ctx)


def plain_backend(name: str) -> AbstractAsyncContextManager[int]:
    """A plaintext TCP server that greets with ``name`` and then echoes."""
    return echo_server(greeting=f"{name}\n".encode())


def tls_route(name: str, cluster: str | None, *hostnames: str) -> ir.StreamRoute:
    return ir.StreamRoute(
        name=f"TLSRoute/ns/{name}@ns/gw/tls",
        route=f"TLSRoute/ns/{name}",
        section="ns/gw/tls",
        hostnames=hostnames,
        backends=(ir.WeightedCluster(cluster=cluster),),
    )


def cluster(name: str, port: int) -> ir.Cluster:
    return ir.Cluster(name=name, protocol=ir.AppProtocol.TCP, endpoints=(ir.Endpoint(address="127.0.0.1", port=port),))


def tls_listener(
    port: int, mode: ir.TlsMode, *routes: ir.StreamRoute, certificates: tuple[ir.TlsCertificate, ...] = ()
) -> ir.Listener:
    return ir.Listener(
        name=f"ns/gw/{port}/TLS",
        gateway="ns/gw",
        address="127.0.0.1",
        port=port,
        protocol=ir.Protocol.TLS,
        tls_mode=mode,
        certificates=certificates,
        stream_routes=routes,
    )


async def greeting(port: int, ctx: ssl.SSLContext, sni: str, payload: bytes = b"ping") -> tuple[str, bytes]:
    """Connect with TLS and ``sni``: the backend's greeting line and the echo of ``payload``."""
    async with asyncio.timeout(TIMEOUT):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=sni)
        try:
            line = (await reader.readline()).decode().strip()
            writer.write(payload)
            echoed = await reader.readexactly(len(payload))
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
    return line, echoed


async def refused(port: int, ctx: ssl.SSLContext | None, sni: str | None, data: bytes = b"") -> bool:
    """Whether the proxy closes the connection (handshake fails, or EOF before any byte)."""
    async with asyncio.timeout(TIMEOUT):
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=ctx, server_hostname=sni if ctx is not None else None
            )
        except (OSError, ssl.SSLError):
            return True
        try:
            if data:
                writer.write(data)
            return await reader.read(100) == b""
        except (OSError, ssl.SSLError):
            return True
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()


async def test_passthrough_routes_by_sni_to_two_tls_backends(ca: trustme.CA) -> None:
    ctx = client_context(ca)
    async with (
        tls_backend(ca, "A", "a.example") as port_a,
        tls_backend(ca, "B", "b.example", "*.wild.example") as port_b,
    ):
        port = free_port()
        lst = tls_listener(
            port,
            ir.TlsMode.PASSTHROUGH,
            tls_route("a", "ca", "a.example"),
            tls_route("b", "cb", "b.example", "*.wild.example"),
        )
        snap = ir.Snapshot.build([lst], [cluster("ca", port_a), cluster("cb", port_b)])
        async with running(snap) as rt:
            assert rt.listener_states()[lst.name].bound
            # the client's handshake completes with the backend's own certificate: the bytes went through untouched
            assert await greeting(port, ctx, "a.example") == ("A", b"ping")
            assert await greeting(port, ctx, "b.example") == ("B", b"ping")
            assert await greeting(port, ctx, "x.wild.example", b"wild") == ("B", b"wild")
            assert await refused(port, ctx, "c.example")
            assert await refused(port, None, None, b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n")


async def test_passthrough_route_without_hostnames_takes_any_sni(ca: trustme.CA) -> None:
    ctx = client_context(ca)
    async with tls_backend(ca, "A", "a.example") as port_a, tls_backend(ca, "ANY", "any.example") as port_any:
        port = free_port()
        lst = tls_listener(port, ir.TlsMode.PASSTHROUGH, tls_route("any", "cany"), tls_route("a", "ca", "a.example"))
        snap = ir.Snapshot.build([lst], [cluster("ca", port_a), cluster("cany", port_any)])
        async with running(snap):
            assert await greeting(port, ctx, "a.example") == ("A", b"ping")  # exact beats the catch-all
            assert await greeting(port, ctx, "any.example") == ("ANY", b"ping")


async def test_passthrough_invalid_backend_closes(ca: trustme.CA) -> None:
    port = free_port()
    lst = tls_listener(port, ir.TlsMode.PASSTHROUGH, tls_route("a", None, "a.example"))
    async with running(ir.Snapshot.build([lst], [])):
        assert await refused(port, client_context(ca), "a.example")


def secret(name: str, cert: trustme.LeafCert) -> ir.Secret:
    return ir.Secret(
        name=name,
        certificate_chain="".join(b.bytes().decode() for b in cert.cert_chain_pems),
        private_key=cert.private_key_pem.bytes().decode(),
    )


async def test_terminate_relays_plaintext_to_the_route_matching_sni(ca: trustme.CA) -> None:
    ctx = client_context(ca)
    async with plain_backend("T") as port_t, plain_backend("U") as port_u:
        port = free_port()
        certs = (
            ir.TlsCertificate(hostname="t.example", secret="ns/t", section="ns/gw/tls"),
            ir.TlsCertificate(hostname="u.example", secret="ns/u", section="ns/gw/tls"),
        )
        lst = tls_listener(
            port,
            ir.TlsMode.TERMINATE,
            tls_route("t", "ct", "t.example"),
            tls_route("u", "cu", "u.example"),
            certificates=certs,
        )
        secrets = [secret("ns/t", ca.issue_cert("t.example")), secret("ns/u", ca.issue_cert("u.example"))]
        snap = ir.Snapshot.build([lst], [cluster("ct", port_t), cluster("cu", port_u)], secrets)
        async with running(snap) as rt:
            assert await greeting(port, ctx, "t.example", b"plain") == ("T", b"plain")
            assert await greeting(port, ctx, "u.example", b"text") == ("U", b"text")
            unverified = ssl.create_default_context()
            unverified.check_hostname = False
            unverified.verify_mode = ssl.CERT_NONE
            assert await refused(port, unverified, "v.example")  # a certificate is served, but no route matches
            # new certificates: the listener keeps its socket and serves the renewed certificate to new connections
            renewed_cert = ca.issue_cert("t.example")
            renewed = [secret("ns/t", renewed_cert), secrets[1]]
            result = await rt.apply(ir.Snapshot.build([lst], [cluster("ct", port_t), cluster("cu", port_u)], renewed))
            assert result.kept == (lst.name,)
            assert await greeting(port, ctx, "t.example") == ("T", b"ping")
            assert await served_certificate(port, ctx, "t.example") == ssl.PEM_cert_to_DER_cert(
                renewed_cert.cert_chain_pems[0].bytes().decode()
            )


async def served_certificate(port: int, ctx: ssl.SSLContext, sni: str) -> bytes:
    """The DER certificate the listener serves for ``sni``."""
    async with asyncio.timeout(TIMEOUT):
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=sni)
        try:
            der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
    assert isinstance(der, bytes)
    return der


async def test_terminate_without_usable_certificates_is_refused(ca: trustme.CA) -> None:
    from nantian.errors import ConfigRejected

    port = free_port()
    lst = tls_listener(port, ir.TlsMode.TERMINATE, tls_route("t", None, "t.example"))
    rt_snap = ir.Snapshot.build([], [])
    async with running(rt_snap) as rt:
        with pytest.raises(ConfigRejected, match="certificate"):
            await rt.apply(ir.Snapshot.build([lst], []))
        assert rt.version == rt_snap.version


def test_tls_listeners_on_uvloop(ca: trustme.CA) -> None:
    """The apps run on uvloop, whose transports (TLS included) are not asyncio's classes."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(test_passthrough_routes_by_sni_to_two_tls_backends(ca))
        runner.run(test_terminate_relays_plaintext_to_the_route_matching_sni(ca))


async def test_passthrough_client_without_a_client_hello_is_closed(ca: trustme.CA) -> None:
    fe = StreamFrontEnd(StreamOptions(hello_timeout=0.2, access_log=False))
    previous = runtime_module.register_listener_frontend(ir.Protocol.TLS, fe)
    try:
        async with tls_backend(ca, "A", "a.example") as port_a:
            port = free_port()
            lst = tls_listener(port, ir.TlsMode.PASSTHROUGH, tls_route("a", "ca", "a.example"))
            async with running(ir.Snapshot.build([lst], [cluster("ca", port_a)])):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                try:
                    writer.write(b"\x16\x03\x01\x00")  # the start of a record header, then silence
                    loop = asyncio.get_running_loop()
                    started = loop.time()
                    async with asyncio.timeout(TIMEOUT):
                        with contextlib.suppress(ConnectionResetError):
                            assert await reader.read() == b""
                    assert 0.15 <= loop.time() - started < 2.0
                finally:
                    writer.close()
                # a client that does send its hello in time is served
                assert await greeting(port, client_context(ca), "a.example") == ("A", b"ping")
    finally:
        runtime_module.register_listener_frontend(ir.Protocol.TLS, previous)


async def test_one_port_mixes_terminate_and_passthrough_by_section_certificates(ca: trustme.CA) -> None:
    """A route whose Gateway listener has certificates is terminated; the others on the port pass through."""
    ctx = client_context(ca)
    async with plain_backend("T") as port_t, tls_backend(ca, "P", "p.example") as port_p:
        port = free_port()
        terminate = ir.StreamRoute(
            name="TLSRoute/ns/t@ns/gw/term",
            route="TLSRoute/ns/t",
            section="ns/gw/term",
            hostnames=("t.example",),
            backends=(ir.WeightedCluster(cluster="ct"),),
        )
        passthrough = ir.StreamRoute(
            name="TLSRoute/ns/p@ns/gw/pass",
            route="TLSRoute/ns/p",
            section="ns/gw/pass",
            hostnames=("p.example",),
            backends=(ir.WeightedCluster(cluster="cp"),),
        )
        lst = tls_listener(
            port,
            ir.TlsMode.TERMINATE,
            terminate,
            passthrough,
            certificates=(ir.TlsCertificate(hostname="t.example", secret="ns/t", section="ns/gw/term"),),
        )
        secrets = [secret("ns/t", ca.issue_cert("t.example"))]
        async with running(ir.Snapshot.build([lst], [cluster("ct", port_t), cluster("cp", port_p)], secrets)):
            assert await greeting(port, ctx, "t.example", b"clear") == ("T", b"clear")
            assert await greeting(port, ctx, "p.example", b"secret") == ("P", b"secret")


async def test_terminate_requires_client_certificates_when_validation_asks(ca: trustme.CA) -> None:
    client_ca = trustme.CA()
    async with plain_backend("T") as port_t:
        port = free_port()
        validation = ir.ClientValidation(ca_secrets=("ns/client-ca",))
        lst = tls_listener(
            port,
            ir.TlsMode.TERMINATE,
            tls_route("t", "ct", "t.example"),
            certificates=(
                ir.TlsCertificate(
                    hostname="t.example", secret="ns/t", section="ns/gw/tls", client_validation=validation
                ),
            ),
        )
        secrets = [
            secret("ns/t", ca.issue_cert("t.example")),
            ir.Secret(name="ns/client-ca", ca_bundle=client_ca.cert_pem.bytes().decode()),
        ]
        async with running(ir.Snapshot.build([lst], [cluster("ct", port_t)], secrets)):
            assert await refused(port, client_context(ca), "t.example", b"x")
            with_cert = client_context(ca)
            client_ca.issue_cert("client.example").configure_cert(with_cert)
            assert await greeting(port, with_cert, "t.example") == ("T", b"ping")


async def test_a_client_closing_within_its_client_hello_is_closed_at_once(ca: trustme.CA) -> None:
    port = free_port()
    lst = tls_listener(port, ir.TlsMode.PASSTHROUGH, tls_route("a", "ca", "a.example"))
    async with running(ir.Snapshot.build([lst], [cluster("ca", free_port())])) as rt:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"\x16\x03\x01\x00\x50\x01")  # a record header and the start of a ClientHello
            writer.write_eof()
            async with asyncio.timeout(1.0):  # well within the hello timeout
                with contextlib.suppress(ConnectionResetError):
                    assert await reader.read() == b""
        finally:
            writer.close()
        assert rt.counters()["active_connections"] == 0
