"""The stream proxy's access log and counters: one `nantian.access` line per TCP/TLS connection and UDP session with
a one-word result, honouring RuntimeOptions.access_log; totals in ProxyRuntime.counters(). Real sockets on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import typing
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
import trustme
from http1_harness import free_port, running
from stream_harness import echo_server

from nantian import ir
from nantian.proxy.stream_metrics import connection_result
from nantian.proxy.stream_options import StreamOptions
from nantian.proxy.udp_proxy import UdpOptions

TIMEOUT = 5.0


# -- helpers ---------------------------------------------------------------------------------------------------------
def fields(line: str) -> dict[str, str]:
    """``key=value`` pairs of an access line."""
    assert line.startswith("access ")
    return dict(part.split("=", 1) for part in line.split()[1:])


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, str]]:
    return [fields(r.getMessage()) for r in caplog.records if r.name == "nantian.access"]


async def line_of(caplog: pytest.LogCaptureFixture, listener: str, count: int = 1) -> list[dict[str, str]]:
    """The first ``count`` access lines of ``listener``, once written (within :data:`TIMEOUT`)."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            lines = [f for f in access_lines(caplog) if f["listener"] == listener]
            if len(lines) >= count:
                return lines[:count]
            await asyncio.sleep(0.005)


async def eventually(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(TIMEOUT):
        while not predicate():  # noqa: ASYNC110 (polling a condition nothing signals)
            await asyncio.sleep(0.005)


def tcp_server(*, reset: bool = False, ssl_context: ssl.SSLContext | None = None) -> AbstractAsyncContextManager[int]:
    """An echo server until the client's EOF (``reset``: resets the connection after the first chunk)."""
    return echo_server(reset=reset, ssl_context=ssl_context)


async def exchange(port: int, data: bytes = b"ping", *, eof: bool = True) -> bytes:
    """Send ``data`` (then EOF), read until the proxy closes; a reset reads as what came before it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    out = b""
    try:
        writer.write(data)
        if eof:
            writer.write_eof()
        async with asyncio.timeout(TIMEOUT):
            while chunk := await reader.read(65536):
                out += chunk
    except OSError:
        pass
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return out


def listener(port: int, protocol: ir.Protocol, *routes: ir.StreamRoute, **extra: Any) -> ir.Listener:
    return ir.Listener(
        name=f"ns/gw/{port}/{protocol.value}",
        gateway="ns/gw",
        address="127.0.0.1",
        port=port,
        protocol=protocol,
        stream_routes=routes,
        **extra,
    )


def route(kind: str, cluster: str | None, *hostnames: str) -> ir.StreamRoute:
    return ir.StreamRoute(
        name=f"{kind}/ns/r@ns/gw/s",
        route=f"{kind}/ns/r",
        section="ns/gw/s",
        hostnames=hostnames,
        backends=(ir.WeightedCluster(cluster=cluster),),
    )


def cluster(name: str, *ports: int, protocol: ir.AppProtocol = ir.AppProtocol.TCP) -> ir.Cluster:
    return ir.Cluster(
        name=name,
        protocol=protocol,
        endpoints=tuple(ir.Endpoint(address="127.0.0.1", port=p) for p in ports),
        connect_timeout=2.0,
    )


# -- the result words ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("reason", "result"),
    [
        (None, "closed"),
        ("done", "closed"),
        ("downstream closed", "closed"),
        ("idle timeout", "idle_timeout"),
        ("connect failed: [Errno 111] Connect call failed ('127.0.0.1', 9)", "upstream_refused"),
        ("connect failed: TimeoutError", "upstream_timeout"),
        ("upstream [Errno 104] Connection reset by peer", "upstream_reset"),
        ("downstream [Errno 104] Connection reset by peer", "client_reset"),
        ("downstream closed before an upstream was chosen", "client_closed_early"),
        ("no upstream chosen within 10.0 s", "hello_timeout"),
        ("TLS handshake failed: [SSL] unknown ca", "tls_error"),
        ("shut down", "shutdown"),
        ("closed by the proxy", "aborted"),
        ("something new", "error"),
    ],
)
def test_close_reasons_map_to_one_word(reason: str | None, result: str) -> None:
    assert connection_result(reason) == result


# -- TCP -------------------------------------------------------------------------------------------------------------
async def test_tcp_lines_say_how_each_connection_ended(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="nantian.access")
    async with tcp_server() as echo, tcp_server(reset=True) as resetting:
        ports = {name: free_port() for name in ("ok", "none", "dead", "empty", "invalid", "reset")}
        tcp = ir.Protocol.TCP
        listeners = [
            listener(ports["ok"], tcp, route("TCPRoute", "echo")),
            listener(ports["none"], tcp),
            listener(ports["dead"], tcp, route("TCPRoute", "dead")),
            listener(ports["empty"], tcp, route("TCPRoute", "empty")),
            listener(ports["invalid"], tcp, route("TCPRoute", None)),
            listener(ports["reset"], tcp, route("TCPRoute", "resetting")),
        ]
        clusters = [
            cluster("echo", echo),
            cluster("dead", free_port()),
            cluster("empty"),
            cluster("resetting", resetting),
        ]
        async with running(ir.Snapshot.build(listeners, clusters), access_log=True) as rt:
            assert await exchange(ports["ok"]) == b"ping"
            for name in ("none", "dead", "empty", "invalid", "reset"):
                assert await exchange(ports[name], eof=False) == b""
            lines = {name: (await line_of(caplog, f"ns/gw/{port}/TCP"))[0] for name, port in ports.items()}
            counters = rt.counters()
    ok = lines["ok"]
    assert ok["protocol"] == "TCP" and ok["client"] == "127.0.0.1" and ok["result"] == "closed"
    assert ok["route"] == "TCPRoute/ns/r@ns/gw/s" and ok["backend"] == "echo" and ok["upstream"] == f"127.0.0.1:{echo}"
    assert (ok["bytes_in"], ok["bytes_out"]) == ("4", "4") and 0.0 <= float(ok["duration_ms"]) < TIMEOUT * 1000
    assert {name: f["result"] for name, f in lines.items()} == {
        "ok": "closed",
        "none": "no_route",
        "dead": "upstream_refused",
        "empty": "no_endpoints",
        "invalid": "invalid_backend",
        "reset": "upstream_reset",
    }
    assert (lines["none"]["route"], lines["none"]["backend"], lines["none"]["upstream"]) == ("-", "-", "-")
    assert lines["dead"]["backend"] == "dead" and lines["reset"]["bytes_out"] == "0"
    assert counters["stream_connections"] == 6
    assert counters["stream_errors"] == 4  # none, dead, empty, invalid never reached an upstream
    assert counters["stream_connections_refused"] == 0 and counters["requests"] == 0


async def test_idle_timeout_from_runtime_options_ends_with_its_own_result(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="nantian.access")
    async with tcp_server() as echo:
        port = free_port()
        snap = ir.Snapshot.build([listener(port, ir.Protocol.TCP, route("TCPRoute", "echo"))], [cluster("echo", echo)])
        async with running(snap, access_log=True, stream=StreamOptions(idle_timeout=0.2)) as rt:
            loop = asyncio.get_running_loop()
            started = loop.time()
            assert await exchange(port, b"x", eof=False) == b"x"  # then idle: the proxy closes
            assert 0.15 <= loop.time() - started < 3.0
            (line,) = await line_of(caplog, f"ns/gw/{port}/TCP")
            assert line["result"] == "idle_timeout" and float(line["duration_ms"]) >= 150
            assert rt.counters()["stream_errors"] == 0


async def test_runtime_access_log_off_silences_streams_but_they_are_still_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="nantian.access")
    async with tcp_server() as echo:
        port = free_port()
        snap = ir.Snapshot.build([listener(port, ir.Protocol.TCP, route("TCPRoute", "echo"))], [cluster("echo", echo)])
        for options in ({"access_log": False}, {"access_log": True, "stream": StreamOptions(access_log=False)}):
            async with running(snap, **options) as rt:
                assert await exchange(port) == b"ping"
                await eventually(lambda rt=rt: rt.counters()["stream_connections"] == 1)  # type: ignore[misc]
    assert access_lines(caplog) == []


async def test_connections_over_the_limit_are_counted(caplog: pytest.LogCaptureFixture) -> None:
    async with tcp_server() as echo:
        port = free_port()
        snap = ir.Snapshot.build([listener(port, ir.Protocol.TCP, route("TCPRoute", "echo"))], [cluster("echo", echo)])
        async with running(snap, stream=StreamOptions(max_connections=1)) as rt:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(b"x")
                async with asyncio.timeout(TIMEOUT):
                    assert await reader.readexactly(1) == b"x"
                assert await exchange(port) == b""
                assert rt.counters()["stream_connections_refused"] == 1
                assert rt.counters()["active_connections"] == 1
            finally:
                writer.close()
            await eventually(lambda: rt.counters()["stream_connections"] == 1)


# -- TLS -------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def tls_exchange(port: int, ctx: ssl.SSLContext, sni: str) -> bytes:
    """A TLS connection with ``sni``: the echo of ``ping``, or ``b""`` when the proxy refuses it."""
    try:
        async with asyncio.timeout(TIMEOUT):
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=sni)
            try:
                writer.write(b"ping")
                return await reader.readexactly(4)
            finally:
                writer.close()
                with contextlib.suppress(OSError, ssl.SSLError):
                    await writer.wait_closed()
    except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
        return b""


async def test_tls_lines_name_the_sni_and_what_went_wrong(ca: trustme.CA, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="nantian.access")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("a.example").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    async with tcp_server(ssl_context=server_ctx) as backend:
        port = free_port()
        lst = listener(port, ir.Protocol.TLS, route("TLSRoute", "a", "a.example"), tls_mode=ir.TlsMode.PASSTHROUGH)
        snap = ir.Snapshot.build([lst], [cluster("a", backend)])
        name = lst.name
        async with running(snap, access_log=True, stream=StreamOptions(hello_timeout=0.3)) as rt:
            assert await tls_exchange(port, client_ctx, "a.example") == b"ping"
            assert await tls_exchange(port, client_ctx, "b.example") == b""  # no TLSRoute for b.example
            assert await exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", eof=False) == b""  # not TLS
            assert await exchange(port, b"", eof=False) == b""  # no ClientHello within 0.3 s
            served, no_route, not_tls, silent = await line_of(caplog, name, 4)
            counters = rt.counters()
    assert served["protocol"] == "TLS" and served["sni"] == "a.example" and served["result"] == "closed"
    assert served["backend"] == "a" and int(served["bytes_in"]) > 4 and int(served["bytes_out"]) > 4
    assert (no_route["result"], no_route["sni"], no_route["route"]) == ("no_route", "b.example", "-")
    assert not_tls["result"] == "bad_client_hello"
    assert silent["result"] == "hello_timeout" and 250 <= float(silent["duration_ms"]) < 3000
    assert (counters["stream_connections"], counters["stream_errors"]) == (4, 3)


async def test_tls_termination_handshake_failure(ca: trustme.CA, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="nantian.access")
    leaf = ca.issue_cert("t.example")
    secret = ir.Secret(
        name="ns/t",
        certificate_chain="".join(b.bytes().decode() for b in leaf.cert_chain_pems),
        private_key=leaf.private_key_pem.bytes().decode(),
    )
    async with tcp_server() as backend:
        port = free_port()
        lst = listener(
            port,
            ir.Protocol.TLS,
            ir.StreamRoute(
                name="TLSRoute/ns/t@ns/gw/s",
                route="TLSRoute/ns/t",
                section="ns/gw/s",
                hostnames=("t.example",),
                backends=(ir.WeightedCluster(cluster="t"),),
            ),
            tls_mode=ir.TlsMode.TERMINATE,
            certificates=(ir.TlsCertificate(hostname="t.example", secret="ns/t", section="ns/gw/s"),),
        )
        async with running(ir.Snapshot.build([lst], [cluster("t", backend)], [secret]), access_log=True):
            trusting = ssl.create_default_context()
            ca.configure_trust(trusting)
            assert await tls_exchange(port, trusting, "t.example") == b"ping"
            # a ClientHello for t.example, then bytes that are no TLS record: the handshake fails
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            hello_only = trusting.wrap_bio(incoming, outgoing, server_hostname="t.example")
            with contextlib.suppress(ssl.SSLWantReadError):
                hello_only.do_handshake()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(outgoing.read())
                async with asyncio.timeout(TIMEOUT):
                    assert await reader.read(65536)  # the server's first flight
                writer.write(b"\x00" * 64)
                async with asyncio.timeout(TIMEOUT):
                    with contextlib.suppress(OSError):
                        while await reader.read(65536):  # an alert, then the close
                            pass
            finally:
                writer.close()
            terminated, failed = await line_of(caplog, lst.name, 2)
    assert terminated["result"] == "closed" and (terminated["bytes_in"], terminated["bytes_out"]) == ("4", "4")
    assert failed["result"] == "tls_error" and failed["sni"] == "t.example" and failed["upstream"] == "-"


# -- UDP -------------------------------------------------------------------------------------------------------------
class _UdpEcho(asyncio.DatagramProtocol):
    transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        assert self.transport is not None
        self.transport.sendto(b"echo:" + data, addr)


class _UdpClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answers: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.answers.put_nowait(data)


async def udp_ask(port: int, payload: bytes, wait: float = TIMEOUT) -> bytes | None:
    """One datagram from a new client socket; its answer, or ``None`` after ``wait`` seconds."""
    transport, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
        _UdpClient, remote_addr=("127.0.0.1", port)
    )
    try:
        transport.sendto(payload)
        async with asyncio.timeout(wait):
            return await protocol.answers.get()
    except TimeoutError:
        return None
    finally:
        transport.close()


async def test_udp_sessions_are_logged_when_they_end_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="nantian.access")
    loop = asyncio.get_running_loop()
    echo, _ = await loop.create_datagram_endpoint(_UdpEcho, local_addr=("127.0.0.1", 0))
    try:
        port, orphan = free_port(), free_port()
        udp = ir.Protocol.UDP
        snap = ir.Snapshot.build(
            [listener(port, udp, route("UDPRoute", "echo")), listener(orphan, udp)],
            [cluster("echo", int(echo.get_extra_info("sockname")[1]), protocol=ir.AppProtocol.UDP)],
        )
        name = f"ns/gw/{port}/UDP"
        stream = StreamOptions(udp=UdpOptions(session_timeout=0.2, max_sessions=1))
        async with running(snap, access_log=True, stream=stream) as rt:
            assert await udp_ask(port, b"hi") == b"echo:hi"
            assert rt.counters()["udp_sessions_active"] == 1
            assert await udp_ask(port, b"full", wait=0.2) is None  # a second client: max 1 session
            assert await udp_ask(orphan, b"lost", wait=0.1) is None  # no route: dropped
            (idle,) = await line_of(caplog, name)
            assert rt.counters()["udp_sessions_active"] == 0
            assert await udp_ask(port, b"again") == b"echo:again"  # a new session ...
        (_, closed) = await line_of(caplog, name, 2)  # ... ended by the runtime's close
        counters = rt.counters()
    finally:
        echo.close()
    assert idle["protocol"] == "UDP" and idle["result"] == "idle_timeout" and idle["client"] == "127.0.0.1"
    assert (idle["datagrams_in"], idle["datagrams_out"], idle["bytes_in"], idle["bytes_out"]) == ("1", "1", "2", "7")
    assert idle["route"] == "UDPRoute/ns/r@ns/gw/s" and idle["backend"] == "echo"
    assert closed["result"] == "listener_closed"
    assert (counters["udp_sessions"], counters["udp_dropped"], counters["udp_errors"]) == (2, 2, 0)
    assert counters["stream_connections"] == 0


async def test_with_an_access_log_file_stream_lines_go_there(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="nantian.access")
    path = tmp_path / "access.log"
    loop = asyncio.get_running_loop()
    echo, _ = await loop.create_datagram_endpoint(_UdpEcho, local_addr=("127.0.0.1", 0))
    try:
        async with tcp_server() as backend:
            tcp_port, udp_port = free_port(), free_port()
            snap = ir.Snapshot.build(
                [
                    listener(tcp_port, ir.Protocol.TCP, route("TCPRoute", "t")),
                    listener(udp_port, ir.Protocol.UDP, route("UDPRoute", "u")),
                ],
                [
                    cluster("t", backend),
                    cluster("u", int(echo.get_extra_info("sockname")[1]), protocol=ir.AppProtocol.UDP),
                ],
            )
            async with running(snap, access_log=True, access_log_path=str(path)) as rt:
                assert await exchange(tcp_port) == b"ping"
                assert await udp_ask(udp_port, b"hi") == b"echo:hi"
                await eventually(lambda: rt.counters()["stream_connections"] == 1)
            # closing the runtime ended the UDP session and flushed the file
    finally:
        echo.close()
    assert access_lines(caplog) == []
    lines = [fields(line.split(" ", 1)[1]) for line in path.read_text().splitlines()]
    assert sorted((f["protocol"], f["result"]) for f in lines) == [("TCP", "closed"), ("UDP", "listener_closed")]
