"""TCP listeners through the runtime to real asyncio echo servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import uvloop
from http1_harness import free_port, running
from prometheus_client import generate_latest

from nantian import ir
from nantian.proxy import runtime as runtime_module
from nantian.proxy.stream_listeners import StreamFrontEnd, StreamOptions

TIMEOUT = 5.0
LISTENER = "ns/gw/{port}/TCP"


class Echo:
    """A TCP server that echoes every chunk and, after the client's EOF, sends ``<name>|bye`` and closes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = 0
        self.connections = 0
        self.eofs = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        self.connections += 1
        try:
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
            self.eofs += 1
            writer.write(f"{self.name}|bye".encode())
            await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()
            self._writers.discard(writer)

    async def __aenter__(self) -> Echo:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()  # the serving task sees the reset and ends
        await eventually(lambda: not self._writers)


async def eventually(predicate: Callable[[], bool]) -> None:
    """Until ``predicate()`` holds (within :data:`TIMEOUT`)."""
    async with asyncio.timeout(TIMEOUT):
        while not predicate():  # noqa: ASYNC110 (polling a condition nothing signals)
            await asyncio.sleep(0.005)


def tcp_listener(port: int, *routes: ir.StreamRoute, name: str | None = None) -> ir.Listener:
    return ir.Listener(
        name=name or LISTENER.format(port=port),
        gateway="ns/gw",
        address="127.0.0.1",
        port=port,
        protocol=ir.Protocol.TCP,
        stream_routes=routes,
    )


def stream_route(name: str, *backends: tuple[str | None, int]) -> ir.StreamRoute:
    return ir.StreamRoute(
        name=f"TCPRoute/ns/{name}@ns/gw/tcp",
        route=f"TCPRoute/ns/{name}",
        section="ns/gw/tcp",
        backends=tuple(ir.WeightedCluster(cluster=c, weight=w) for c, w in backends),
    )


def tcp_cluster(name: str, *ports: int) -> ir.Cluster:
    return ir.Cluster(
        name=name,
        protocol=ir.AppProtocol.TCP,
        endpoints=tuple(ir.Endpoint(address="127.0.0.1", port=p) for p in ports),
        connect_timeout=2.0,
    )


def snap(listeners: list[ir.Listener], clusters: list[ir.Cluster]) -> ir.Snapshot:
    return ir.Snapshot.build(listeners, clusters)


async def exchange(port: int, data: bytes = b"ping") -> bytes:
    """Send ``data``, half-close, read until the proxy closes; a reset reads as what came before it.

    :raises OSError: the connection is refused.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    out = b""
    try:
        writer.write(data)
        await writer.drain()
        writer.write_eof()
        async with asyncio.timeout(TIMEOUT):
            while chunk := await reader.read(65536):
                out += chunk
    except OSError:
        pass  # reset or already closed by the proxy
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return out


@contextlib.contextmanager
def frontend(options: StreamOptions) -> Iterator[StreamFrontEnd]:
    """Serve TCP listeners with a front end of its own options for the test."""
    fe = StreamFrontEnd(options)
    previous = runtime_module.register_listener_frontend(ir.Protocol.TCP, fe)
    try:
        yield fe
    finally:
        runtime_module.register_listener_frontend(ir.Protocol.TCP, previous)


@contextlib.asynccontextmanager
async def connected(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def test_bytes_flow_both_ways_and_half_close_is_passed_on(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="nantian.access")
    async with Echo("one") as one:
        port = free_port()
        s = snap([tcp_listener(port, stream_route("r", ("c", 1)))], [tcp_cluster("c", one.port)])
        async with running(s, access_log=True) as rt:
            assert rt.listener_states()[LISTENER.format(port=port)].bound
            async with connected(port) as (reader, writer):
                writer.write(b"hello")
                async with asyncio.timeout(TIMEOUT):
                    assert await reader.readexactly(5) == b"hello"
                writer.write(b" again")
                async with asyncio.timeout(TIMEOUT):
                    assert await reader.readexactly(6) == b" again"
                writer.write_eof()  # the echo answers only after it sees our EOF
                async with asyncio.timeout(TIMEOUT):
                    assert await reader.read() == b"one|bye"
            assert one.eofs == 1
            await eventually(lambda: any("protocol=TCP" in r.getMessage() for r in caplog.records))
            line = next(r.getMessage() for r in caplog.records if "protocol=TCP" in r.getMessage())
            assert "route=TCPRoute/ns/r@ns/gw/tcp backend=c" in line and "bytes_in=11 bytes_out=18" in line
            text = generate_latest(rt.metrics_registry).decode()
            assert "nantian_proxy_stream_connections_total" in text
            assert f'listener="{LISTENER.format(port=port)}"' in text


async def test_connections_split_by_weight() -> None:
    async with Echo("a") as a, Echo("b") as b, Echo("z") as z:
        port = free_port()
        route = stream_route("r", ("ca", 3), ("cb", 1), ("cz", 0))
        clusters = [tcp_cluster("ca", a.port), tcp_cluster("cb", b.port), tcp_cluster("cz", z.port)]
        async with running(snap([tcp_listener(port, route)], clusters)):
            seen: collections.Counter[bytes] = collections.Counter()
            for _ in range(10):
                answers = await asyncio.gather(*(exchange(port, b"") for _ in range(20)))
                seen.update(answers)
    assert set(seen) == {b"a|bye", b"b|bye"}
    assert sum(seen.values()) == 200
    assert 120 <= seen[b"a|bye"] <= 180  # 150 expected; 4.9 standard deviations either way
    assert z.connections == 0


async def test_only_the_first_route_serves_a_tcp_listener() -> None:
    async with Echo("first") as first, Echo("second") as second:
        port = free_port()
        lst = tcp_listener(port, stream_route("r1", ("c1", 1)), stream_route("r2", ("c2", 1)))
        async with running(snap([lst], [tcp_cluster("c1", first.port), tcp_cluster("c2", second.port)])):
            for _ in range(5):
                assert await exchange(port) == b"pingfirst|bye"
        assert second.connections == 0


async def test_endpoints_of_a_cluster_take_turns() -> None:
    async with Echo("a") as a, Echo("b") as b:
        port = free_port()
        lst = tcp_listener(port, stream_route("r", ("c", 1)))
        async with running(snap([lst], [tcp_cluster("c", a.port, b.port)])):
            answers = [await exchange(port, b"") for _ in range(6)]
    assert collections.Counter(answers) == {b"a|bye": 3, b"b|bye": 3}


async def test_dead_backend_invalid_share_and_no_route_close_the_connection() -> None:
    dead = free_port()  # nothing listens there
    port_dead, port_invalid, port_empty, port_none = free_port(), free_port(), free_port(), free_port()
    listeners = [
        tcp_listener(port_dead, stream_route("dead", ("dead", 1))),
        tcp_listener(port_invalid, stream_route("invalid", (None, 1))),
        tcp_listener(port_empty, stream_route("empty", ("empty", 1))),
        tcp_listener(port_none),
    ]
    clusters = [tcp_cluster("dead", dead), tcp_cluster("empty")]
    async with running(snap(listeners, clusters)) as rt:
        loop = asyncio.get_running_loop()
        for port in (port_dead, port_invalid, port_empty, port_none):
            started = loop.time()
            assert await exchange(port) == b""
            assert loop.time() - started < 2.0
        await eventually(lambda: 'result="refused"' in generate_latest(rt.metrics_registry).decode())


async def test_large_transfer_with_flow_control_both_ways() -> None:
    payload = bytes(range(256)) * 16384  # 4 MiB
    async with Echo("big") as big:
        port = free_port()
        s = snap([tcp_listener(port, stream_route("r", ("c", 1)))], [tcp_cluster("c", big.port)])
        async with running(s), connected(port) as (reader, writer):

            async def send() -> None:
                for i in range(0, len(payload), 65536):
                    writer.write(payload[i : i + 65536])
                    await writer.drain()
                writer.write_eof()

            async with asyncio.timeout(20):
                sender = asyncio.create_task(send())
                received = await reader.read(-1)
                await sender
    assert received == payload + b"big|bye"


async def test_config_swap_keeps_open_connections_and_routes_new_ones_anew() -> None:
    async with Echo("v1") as one, Echo("v2") as two:
        port = free_port()
        name = LISTENER.format(port=port)
        v1 = snap([tcp_listener(port, stream_route("r", ("c1", 1)))], [tcp_cluster("c1", one.port)])
        v2 = snap([tcp_listener(port, stream_route("r", ("c2", 1)))], [tcp_cluster("c2", two.port)])
        async with running(v1) as rt:
            async with connected(port) as (reader, writer):
                writer.write(b"before")
                async with asyncio.timeout(TIMEOUT):
                    assert await reader.readexactly(6) == b"before"
                result = await rt.apply(v2)
                assert result.kept == (name,) and rt.version == v2.version
                writer.write(b"after")
                async with asyncio.timeout(TIMEOUT):
                    assert await reader.readexactly(5) == b"after"
                assert await exchange(port) == b"pingv2|bye"  # a new connection takes the new route
                writer.write_eof()
                async with asyncio.timeout(TIMEOUT):
                    assert await reader.read() == b"v1|bye"  # the open one still reaches the old backend
            await rt.apply(snap([], []))
            with pytest.raises(OSError):
                await exchange(port)


async def test_removed_listener_closes_its_connections() -> None:
    async with Echo("one") as one:
        port = free_port()
        async with running(snap([tcp_listener(port, stream_route("r", ("c", 1)))], [tcp_cluster("c", one.port)])) as rt:
            async with connected(port) as (reader, writer):
                writer.write(b"x")
                async with asyncio.timeout(TIMEOUT):
                    assert await reader.readexactly(1) == b"x"
                assert rt.counters()["active_connections"] == 1
                result = await rt.apply(snap([], []))
                assert result.closed == (LISTENER.format(port=port),)
                async with asyncio.timeout(TIMEOUT):
                    with contextlib.suppress(ConnectionResetError):
                        assert await reader.read() == b""
            assert rt.counters()["active_connections"] == 0


async def test_idle_connections_close() -> None:
    with frontend(StreamOptions(idle_timeout=0.2, access_log=False)) as fe:
        async with Echo("idle") as idle:
            port = free_port()
            lst = tcp_listener(port, stream_route("r", ("c", 1)))
            async with running(snap([lst], [tcp_cluster("c", idle.port)])):
                async with connected(port) as (reader, writer):
                    writer.write(b"x")
                    async with asyncio.timeout(TIMEOUT):
                        assert await reader.readexactly(1) == b"x"
                    loop = asyncio.get_running_loop()
                    started = loop.time()
                    async with asyncio.timeout(TIMEOUT):
                        with contextlib.suppress(ConnectionResetError):
                            assert await reader.read() == b""
                    assert 0.15 <= loop.time() - started < 2.0
                assert fe.connection_count() == 0


async def test_connection_limit_refuses_more() -> None:
    with frontend(StreamOptions(max_connections=1, access_log=False)) as fe:
        async with Echo("one") as one:
            port = free_port()
            lst = tcp_listener(port, stream_route("r", ("c", 1)))
            async with running(snap([lst], [tcp_cluster("c", one.port)])), connected(port) as (reader, writer):
                writer.write(b"x")
                async with asyncio.timeout(TIMEOUT):
                    assert await reader.readexactly(1) == b"x"
                assert await exchange(port) == b""
                assert fe.metrics.counts["stream_connections_refused"] == 1


async def test_drain_closes_open_connections_at_once_and_stops_accepting() -> None:
    async with Echo("one") as one:
        port = free_port()
        lst = tcp_listener(port, stream_route("r", ("c", 1)))
        async with running(snap([lst], [tcp_cluster("c", one.port)])) as rt:
            async with connected(port) as (reader, writer):
                writer.write(b"x")
                async with asyncio.timeout(TIMEOUT):
                    assert await reader.readexactly(1) == b"x"
                loop = asyncio.get_running_loop()
                started = loop.time()
                await rt.drain(3.0)
                assert loop.time() - started < 1.0  # a byte stream has nothing to finish: closed at once
                async with asyncio.timeout(TIMEOUT):
                    assert await reader.read() == b""
            with pytest.raises(OSError):
                await exchange(port)


def test_relaying_on_uvloop() -> None:
    """The apps run on uvloop, whose transports are not asyncio's classes."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(test_bytes_flow_both_ways_and_half_close_is_passed_on_plain())
        runner.run(test_large_transfer_with_flow_control_both_ways())
        runner.run(test_dead_backend_invalid_share_and_no_route_close_the_connection())


async def test_bytes_flow_both_ways_and_half_close_is_passed_on_plain() -> None:
    async with Echo("one") as one:
        port = free_port()
        s = snap([tcp_listener(port, stream_route("r", ("c", 1)))], [tcp_cluster("c", one.port)])
        async with running(s), connected(port) as (reader, writer):
            writer.write(b"hello")
            async with asyncio.timeout(TIMEOUT):
                assert await reader.readexactly(5) == b"hello"
            writer.write_eof()
            async with asyncio.timeout(TIMEOUT):
                assert await reader.read() == b"one|bye"


async def test_a_port_someone_else_holds_fails_to_bind_even_with_so_reuseport() -> None:
    """One process binds stream listeners without SO_REUSEPORT, so a taken port is reported, never shared."""
    import socket

    port = free_port()
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    squatter.bind(("127.0.0.1", port))
    squatter.listen()
    try:
        async with running(snap([], [])) as rt:
            result = await rt.apply(snap([tcp_listener(port, stream_route("r", ("c", 1)))], [tcp_cluster("c", 9)]))
            assert set(result.failed) == {tcp_listener(port).name}
            assert not rt.listener_states()[tcp_listener(port).name].bound
    finally:
        squatter.close()
